// The waiting room's page (issue 12): join the event's queue (solving the room's
// proof of work in a Web Worker first), then follow one's place live (the queue's
// event stream, polling when the stream fails) until admitted. The admission token
// is kept for this tab (sessionStorage) and the buyer goes back to the seat map,
// whose holds send it. Joining twice gives the same place, so a reload or a lost
// queue id costs nothing but another proof of work.
import { $, api, requireLogin, showProblem, say, when, roughly, saveAdmission, forgetAdmission, admission } from './common.js';
import { solve } from './pow.js';

const root = $('#queue');
const eventId = root.dataset.eventId;
const message = $('#message');
const QUEUE_KEY = `boxoffice.queue.${eventId}`;
const POLL_MS = 3000;
const shop = `/events/${encodeURIComponent(eventId)}`;

let stream = null;
let poller = null;
let queueId = null;
let finished = false;

/** Solves the challenge off the page (a worker), or on it, in batches, without one. */
function work(challenge, difficulty) {
  const bar = $('#work-progress');
  const expected = 2 ** difficulty;
  const progress = (tried) => { bar.value = Math.min(99, Math.round(100 * (1 - Math.exp(-tried / expected)))); };
  $('#work').hidden = false;
  const done = (v) => { bar.value = 100; $('#work').hidden = true; return v; };
  let worker;
  try {
    worker = new Worker(new URL('./pow.js', import.meta.url), { type: 'module' });
  } catch {
    return solve(challenge, difficulty, progress).then(done);
  }
  return new Promise((resolve, reject) => {
    worker.onmessage = (e) => {
      if (e.data.tried) progress(e.data.tried);
      else if (e.data.nonce) { worker.terminate(); resolve(done(e.data.nonce)); }
      else { worker.terminate(); reject(new Error(e.data.error)); }
    };
    worker.onerror = () => {
      // A worker that cannot start (a browser without module workers): on the page.
      worker.terminate();
      solve(challenge, difficulty, progress).then((n) => resolve(done(n)), reject);
    };
    worker.postMessage({ challenge, difficulty });
  });
}

async function join() {
  const c = await api('GET', `/v1/events/${encodeURIComponent(eventId)}/queue/challenge`);
  const body = {};
  if (c.difficulty > 0) {
    body.challenge = c.challenge;
    body.nonce = await work(c.challenge, c.difficulty);
  }
  return api('POST', `/v1/events/${encodeURIComponent(eventId)}/queue`, body);
}

function stop() {
  if (stream) { stream.close(); stream = null; }
  clearTimeout(poller);
  poller = null;
}

/** Says where the buyer stands; the position line is the live region. */
function show(v) {
  $('#now').dataset.state = v.state;
  const state = $('#state-line');
  const pos = $('#position-line');
  const wait = $('#wait-line');
  $('#leave').hidden = false;
  switch (v.state) {
    case 'pre_queue': {
      const opens = root.dataset.saleOpensAt;
      state.textContent = 'You are in the pre-queue.';
      pos.textContent = `You joined as number ${v.position}. Your place in line will be drawn at random when the sale opens${opens ? ` at ${when(opens)}` : ''}.`;
      wait.textContent = v.estimated_wait_seconds != null ? `Estimated wait: ${roughly(v.estimated_wait_seconds)}.` : '';
      break;
    }
    case 'waiting':
      state.textContent = 'You are in the queue.';
      pos.textContent = v.position <= 1
        ? 'You are next in line.'
        : `Your place in line: ${v.position} (${v.position - 1} ${v.position === 2 ? 'person' : 'people'} ahead of you).`;
      wait.textContent = `Estimated wait: ${roughly(v.estimated_wait_seconds)}.`;
      break;
    case 'admitted': {
      finished = true;
      stop();
      saveAdmission(eventId, { token: v.admission_token, expires_at: v.session_expires_at, queue_id: v.queue_id });
      const left = Math.max(0, Math.round((new Date(v.session_expires_at).getTime() - Date.now()) / 1000));
      state.textContent = 'It is your turn!';
      pos.textContent = `You have ${roughly(left).replace('about ', '')} to choose your seats and pay (until ${when(v.session_expires_at)}).`;
      wait.textContent = 'Taking you to the seat map…';
      $('#go-shop').hidden = false;
      $('#leave').hidden = true;
      location.assign(shop);
      break;
    }
    case 'expired':
      finished = true;
      stop();
      forgetAdmission(eventId);
      sessionStorage.removeItem(QUEUE_KEY);
      state.textContent = 'Your shopping time is over.';
      pos.textContent = 'Your turn came and your shopping session has ended. Each buyer gets one turn in this queue.';
      wait.textContent = '';
      $('#leave').hidden = true;
      break;
    default:
      state.textContent = v.state;
  }
}

/** Polls the place (when the stream is not there), slowing down when asked to. */
function poll(delay = POLL_MS) {
  clearTimeout(poller);
  poller = setTimeout(async () => {
    if (finished) return;
    try {
      show(await api('GET', `/v1/queue/${encodeURIComponent(queueId)}`));
      poll();
    } catch (err) {
      if (err.code === 'not_found') { sessionStorage.removeItem(QUEUE_KEY); showProblem(message, err); return; }
      poll(err.code === 'rate_limited' ? 2 * POLL_MS : POLL_MS);
    }
  }, delay);
}

function follow() {
  if (typeof EventSource === 'undefined') { poll(0); return; }
  stream = new EventSource(`/v1/queue/${encodeURIComponent(queueId)}/stream`);
  stream.addEventListener('state', (e) => show(JSON.parse(e.data)));
  stream.onerror = () => {
    // The stream ends when the buyer is admitted; a failure before that falls back
    // to polling (a proxy that buffers streams, a node restarting).
    if (finished || !stream) return;
    stream.close();
    stream = null;
    poll(0);
  };
}

async function leave() {
  stop();
  finished = true;
  try {
    if (queueId) await api('DELETE', `/v1/queue/${encodeURIComponent(queueId)}`);
  } catch { /* leaving is best effort: the session also runs out on its own */ }
  sessionStorage.removeItem(QUEUE_KEY);
  forgetAdmission(eventId);
  location.assign(shop);
}

async function start() {
  if (root.dataset.room !== 'on') return;
  if (!requireLogin()) return;
  $('#leave').addEventListener('click', leave);
  // Already in: straight back to shopping.
  if (admission(eventId)) {
    say($('#state-line'), 'You are already in: your shopping time is running.');
    $('#go-shop').hidden = false;
    return;
  }
  queueId = sessionStorage.getItem(QUEUE_KEY);
  if (!queueId) {
    try {
      const v = await join();
      queueId = v.queue_id;
      sessionStorage.setItem(QUEUE_KEY, queueId);
      show(v);
    } catch (err) {
      $('#work').hidden = true;
      $('#state-line').textContent = 'You are not in the queue yet.';
      if (err.message === 'no_webcrypto') say(message, 'Joining needs a secure (https) connection to this site.');
      else showProblem(message, err);
      return;
    }
  }
  follow();
}

start();
