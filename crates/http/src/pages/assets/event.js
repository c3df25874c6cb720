// The event page: the seat map, the step-through list (section → row → seats), the
// buyer's choice, best available, standing tickets, and the live stream keeping
// all of them current. With the event's waiting room on, holds carry this tab's
// admission (queue.js got it); sold out, the page offers the waitlist and follows
// the buyer's entry to its offer.
import {
  $, api, auth, requireLogin, showProblem, say, money, when, countdown,
  admission, forgetAdmission, holdAdmitted,
} from './common.js';
import { SeatMap, AVAILABLE, HELD, SOLD } from './seatmap.js';

const root = $('#event');
const eventId = root.dataset.eventId;
const max = Number(root.dataset.max) || 8;
const message = $('#message');
const PICK_KEY = `boxoffice.pick.${eventId}`;

let layout = null;      // the layout's seats, in layout order
let map = null;
let holding = false;    // our own hold is on its way: its H's are ours
const selected = new Set();
const statusOf = (i) => (map ? map.status[i] : AVAILABLE);
const label = (s) => `Section ${s.section}, row ${s.row}, seat ${s.label}`;

function go(holdId) {
  sessionStorage.removeItem(PICK_KEY);
  location.assign(`/holds/${encodeURIComponent(holdId)}`);
}

function needLogin() {
  if (auth()) return false;
  sessionStorage.setItem(PICK_KEY, JSON.stringify([...selected].map((i) => layout[i].id)));
  requireLogin();
  return true;
}

// --- the choice -------------------------------------------------------------

function toggle(i, announce = true) {
  if (selected.has(i)) {
    selected.delete(i);
    map.setMine(i, false);
  } else {
    if (statusOf(i) !== AVAILABLE) {
      if (announce) say(message, `${label(layout[i])} is not available.`);
      return;
    }
    if (selected.size >= max) {
      say(message, `You can choose up to ${max} seats in one order.`);
      return;
    }
    selected.add(i);
    map.setMine(i, true);
  }
  if (announce) say(message, '');
  basket();
  syncList();
}

function basket() {
  const list = $('#basket-list');
  list.replaceChildren();
  const tiers = new Map(tierInfo.map((t) => [t.id, t]));
  let total = 0, currency = 'EUR';
  for (const i of [...selected].sort((a, b) => a - b)) {
    const s = layout[i];
    const t = tiers.get(s.tier_id);
    if (t) { total += t.price.amount; currency = t.price.currency; }
    const li = document.createElement('li');
    li.textContent = `${label(s)} · ${t ? `${t.name} ${money(t.price)}` : ''} `;
    const rm = document.createElement('button');
    rm.type = 'button'; rm.className = 'link'; rm.textContent = 'Remove';
    rm.setAttribute('aria-label', `Remove ${label(s)}`);
    rm.addEventListener('click', () => toggle(i));
    li.append(rm);
    list.append(li);
  }
  $('#basket-summary').textContent = selected.size
    ? `${selected.size} seat${selected.size > 1 ? 's' : ''} chosen · ${money({ amount: total, currency })}`
    : 'No seats chosen yet.';
  $('#hold').disabled = selected.size === 0 || root.dataset.onSale !== 'yes';
}

// --- the step-through list --------------------------------------------------

let sections = [];      // [{name, rows: [{name, seats: [index…]}]}]
let tierInfo = [];

function buildSections() {
  const bySection = new Map();
  layout.forEach((s, i) => {
    let sec = bySection.get(s.section);
    if (!sec) bySection.set(s.section, sec = { name: s.section, rows: new Map() });
    let row = sec.rows.get(s.row);
    if (!row) sec.rows.set(s.row, row = { name: s.row, seats: [] });
    row.seats.push(i);
  });
  sections = [...bySection.values()].map((s) => ({ name: s.name, rows: [...s.rows.values()] }));
  for (const s of sections) for (const r of s.rows) r.seats.sort((a, b) => layout[a].x - layout[b].x);
}

function freeCount(seats) { return seats.filter((i) => statusOf(i) === AVAILABLE).length; }

/** Runs of adjacent free seats in a row: [[first, last, count]…]. */
function runs(seats) {
  const out = [];
  let start = -1;
  seats.forEach((i, k) => {
    const free = statusOf(i) === AVAILABLE || selected.has(i);
    if (free && start < 0) start = k;
    if ((!free || k === seats.length - 1) && start >= 0) {
      const end = free ? k : k - 1;
      out.push([seats[start], seats[end], end - start + 1]);
      start = -1;
    }
  });
  return out;
}

function fillSections() {
  const sel = $('#pick-section');
  sel.replaceChildren();
  sel.append(new Option('Choose a section', ''));
  for (const [k, s] of sections.entries()) {
    const free = s.rows.reduce((n, r) => n + freeCount(r.seats), 0);
    sel.append(new Option(`Section ${s.name} (${free} free)`, String(k)));
  }
  sel.disabled = false;
}

function fillRows() {
  const s = sections[Number($('#pick-section').value)];
  const sel = $('#pick-row');
  sel.replaceChildren();
  $('#pick-seats').replaceChildren();
  $('#pick-runs').textContent = '';
  if (!s) { sel.disabled = true; return; }
  sel.append(new Option('Choose a row', ''));
  for (const [k, r] of s.rows.entries()) {
    const best = Math.max(0, ...runs(r.seats).map((x) => x[2]));
    sel.append(new Option(`Row ${r.name}: ${freeCount(r.seats)} free, up to ${best} adjacent`, String(k)));
  }
  sel.disabled = false;
}

function currentRow() {
  const s = sections[Number($('#pick-section').value)];
  return s && s.rows[Number($('#pick-row').value)];
}

function fillSeats() {
  const r = currentRow();
  const box = $('#pick-seats');
  box.replaceChildren();
  if (!r) { $('#pick-runs').textContent = ''; return; }
  for (const i of r.seats) {
    const s = layout[i];
    const l = document.createElement('label');
    l.className = 'seat-option';
    const cb = document.createElement('input');
    cb.type = 'checkbox';
    cb.dataset.index = String(i);
    cb.addEventListener('change', () => { toggle(i); });
    l.append(cb, ` ${s.label}`);
    box.append(l);
  }
  syncList();
}

/** Brings the list's checkboxes and the runs line up to date, in place (focus stays). */
function syncList() {
  const r = currentRow();
  if (!r) return;
  for (const cb of $('#pick-seats').querySelectorAll('input')) {
    const i = Number(cb.dataset.index);
    const mine = selected.has(i);
    const free = statusOf(i) === AVAILABLE;
    cb.checked = mine;
    cb.disabled = !mine && !free;
    const s = layout[i];
    cb.setAttribute('aria-label', `Seat ${s.label}${mine ? ', chosen' : free ? ', available' : ', taken'}`);
  }
  const rs = runs(r.seats);
  $('#pick-runs').textContent = rs.length
    ? `Row ${r.name}: ` + rs.map(([a, b, n]) => (n === 1 ? `seat ${layout[a].label} (1 seat)` : `seats ${layout[a].label}–${layout[b].label} (${n} adjacent seats)`)).join('; ')
    : `Row ${r.name} is full.`;
}

// --- live updates -----------------------------------------------------------

function taken(indices) {
  const lost = indices.filter((i) => selected.has(i));
  if (!lost.length || holding) return;
  for (const i of lost) { selected.delete(i); map.setMine(i, false); }
  const names = lost.map((i) => label(layout[i])).join('; ');
  const kept = selected.size;
  showProblem(message, { code: 'seats_unavailable' });
  message.prepend(`${names}: just taken by someone else. ${kept ? `Your other ${kept} seat${kept > 1 ? 's stay' : ' stays'} chosen. ` : ''}`);
  basket();
}

function applyGa(ga) {
  const left = $('#ga-left');
  if (!left || !ga) return;
  const tier = $('#ga-tier').value;
  const g = ga.find((x) => x.tier_id === tier);
  if (g) left.textContent = g.remaining > 0 ? `${g.remaining} left` : 'Sold out';
  gaState = ga;
}
let gaState = null;

function stream(onSnapshot) {
  const es = new EventSource(`/v1/events/${encodeURIComponent(eventId)}/stream`);
  es.addEventListener('snapshot', (e) => {
    const snap = JSON.parse(e.data);
    if (map) {
      map.setAll(snap.status);
      for (const i of selected) map.setMine(i, true);
      taken([...selected].filter((i) => map.status[i] !== AVAILABLE));
      syncList();
    }
    applyGa(snap.ga);
    onSnapshot && onSnapshot();
    onSnapshot = null;
    soldOutCheck();
    waitlistSoon();
  });
  es.addEventListener('change', (e) => {
    const ch = JSON.parse(e.data);
    const gone = [];
    if (map) {
      for (const [i, st] of ch.changes) {
        const s = st === 'H' ? HELD : st === 'S' ? SOLD : AVAILABLE;
        map.setStatus(i, s);
        if (s !== AVAILABLE) gone.push(i);
      }
      taken(gone);
      syncList();
    }
    applyGa(ch.ga);
    root.dataset.version = String(ch.version);
    soldOutCheck();
    waitlistSoon();
  });
  return es;
}

// --- the waiting room -------------------------------------------------------

const room = root.dataset.room === 'on';
let stopRoomClock = null;

/** Shows whether this tab is in (with the shopping time left) or must queue. */
function roomBanner() {
  if (!room) return;
  const a = admission(eventId);
  if (stopRoomClock) { stopRoomClock(); stopRoomClock = null; }
  $('#room-in').hidden = !a;
  $('#room-out').hidden = !!a;
  if (a) {
    stopRoomClock = countdown($('#room-countdown'), a.expires_at, () => {
      forgetAdmission(eventId);
      roomBanner();
      say(message, 'Your shopping time is over. Seats you already reserved stay yours until their own time runs out.');
    });
  }
}

// --- the waitlist -----------------------------------------------------------

const WAITLIST_KEY = `boxoffice.waitlist.${eventId}`;
const WAITLIST_POLL_MS = 5000;
let entry = null;       // the buyer's entry, as the API last said
let wlTimer = null;
let wlSoon = null;

function showWaitlist() { $('#waitlist').hidden = false; }

/** Sold out (no seat free on the map, or the chosen standing area at 0): offer the line. */
function soldOutCheck() {
  const seatsGone = map && layout && layout.length > 0 && !map.status.some((st) => st === AVAILABLE);
  const gaGone = gaState && gaState.some((g) => g.remaining === 0);
  if (seatsGone || gaGone || entry) showWaitlist();
  if (!entry && gaGone && !seatsGone && gaState) {
    const g = gaState.find((x) => x.remaining === 0);
    if (g) $('#wl-tier').value = g.tier_id;
  }
}

function offerWaitlist(tierId, quantity) {
  showWaitlist();
  if (!entry) {
    if (tierId) $('#wl-tier').value = tierId;
    if (quantity) $('#wl-qty').value = String(Math.min(quantity, max));
  }
  $('#waitlist').scrollIntoView({ block: 'nearest' });
}

function renderEntry(e) {
  entry = e;
  const status = $('#wl-status');
  const offer = $('#wl-offer');
  $('#waitlist-join').hidden = true;
  $('#wl-entry').hidden = false;
  offer.hidden = true;
  $('#wl-leave').hidden = false;
  $('#waitlist').dataset.state = e.state;
  const n = `${e.quantity} ticket${e.quantity > 1 ? 's' : ''}`;
  switch (e.state) {
    case 'waiting':
      status.textContent = e.position
        ? `You are on the waitlist for ${n}: number ${e.position} in line.`
        : `You are on the waitlist for ${n}.`;
      break;
    case 'offered':
      status.textContent = `Tickets came back for you: ${n}, kept for you${e.expires_at ? ` until ${when(e.expires_at)}` : ''}.`;
      $('#wl-offer-link').href = `/holds/${encodeURIComponent(e.hold_id)}`;
      offer.hidden = false;
      break;
    case 'converted':
      status.textContent = 'You bought the tickets the waitlist offered you. See My orders.';
      $('#wl-leave').hidden = true;
      break;
    case 'expired':
      status.textContent = 'The tickets offered to you were not bought in time, so they went to the next in line.';
      $('#wl-leave').hidden = true;
      break;
    default:
      forgetEntry();
  }
}

function forgetEntry() {
  entry = null;
  localStorage.removeItem(WAITLIST_KEY);
  $('#wl-entry').hidden = true;
  $('#waitlist-join').hidden = false;
  delete $('#waitlist').dataset.state;
}

/** Reads the entry again now; then every few seconds while it can still change. */
async function refreshEntry() {
  clearTimeout(wlTimer);
  const id = localStorage.getItem(WAITLIST_KEY);
  if (!id || !auth()) return;
  try {
    renderEntry(await api('GET', `/v1/waitlist/${encodeURIComponent(id)}`));
    showWaitlist();
  } catch (err) {
    if (err.code === 'not_found' || err.code === 'unauthorized') { forgetEntry(); return; }
  }
  if (entry && (entry.state === 'waiting' || entry.state === 'offered')) {
    wlTimer = setTimeout(refreshEntry, WAITLIST_POLL_MS);
  }
}

/** Seats moved: an offer may have been made (coalesced: a sale moves many seats). */
function waitlistSoon() {
  if (!entry || entry.state !== 'waiting' || wlSoon) return;
  wlSoon = setTimeout(() => { wlSoon = null; refreshEntry(); }, 300);
}

function waitlistStart() {
  $('#waitlist-join').addEventListener('submit', async (e) => {
    e.preventDefault();
    if (needLogin()) return;
    const body = { quantity: Number($('#wl-qty').value) };
    if ($('#wl-tier').value) body.tier_id = $('#wl-tier').value;
    const button = $('#wl-join');
    button.disabled = true;
    try {
      const v = await api('POST', `/v1/events/${encodeURIComponent(eventId)}/waitlist`, body);
      localStorage.setItem(WAITLIST_KEY, v.waitlist_id);
      say(message, '');
      renderEntry(v);
      refreshEntry();
    } catch (err) {
      showProblem(message, err);
    } finally {
      button.disabled = false;
    }
  });
  $('#wl-leave').addEventListener('click', async () => {
    const id = localStorage.getItem(WAITLIST_KEY);
    try {
      if (id) await api('DELETE', `/v1/waitlist/${encodeURIComponent(id)}`);
      forgetEntry();
      say(message, 'You left the waitlist.');
    } catch (err) { showProblem(message, err); }
  });
  refreshEntry();
}

// --- actions ----------------------------------------------------------------

async function hold(body, button) {
  if (needLogin()) return;
  button.disabled = true;
  holding = true;
  const admitted = room && admission(eventId);
  try {
    const h = await api('POST', `/v1/events/${encodeURIComponent(eventId)}/holds`, body,
      admitted ? { 'boxoffice-admission': admitted.token } : {});
    if (admitted) holdAdmitted(h.hold_id, admitted.token);
    go(h.hold_id);
  } catch (err) {
    holding = false;
    button.disabled = false;
    if (err.code === 'admission_required') {
      // No admission, or one the room no longer honours: to the queue.
      forgetAdmission(eventId);
      roomBanner();
      showProblem(message, err);
      const a = document.createElement('a');
      a.href = `/events/${encodeURIComponent(eventId)}/queue`;
      a.textContent = ' Join the queue';
      message.append(a);
      return;
    }
    if (err.code === 'sold_out') {
      showProblem(message, err);
      offerWaitlist(body.tier_id || (body.best_available && body.best_available.tier_id) || '', body.quantity || (body.best_available && body.best_available.quantity));
      return;
    }
    if (err.code === 'seats_unavailable' && map) {
      const ids = new Set((err.body.error && err.body.error.seats) || []);
      const lost = [];
      layout.forEach((s, i) => { if (ids.has(s.id)) lost.push(i); });
      for (const i of lost) map.setStatus(i, HELD);
      taken(lost);
      syncList();
      return;
    }
    showProblem(message, err);
  }
}

async function start() {
  roomBanner();
  waitlistStart();
  const ga = $('#ga');
  if (ga) {
    ga.addEventListener('submit', (e) => {
      e.preventDefault();
      hold({ tier_id: $('#ga-tier').value, quantity: Number($('#ga-qty').value) }, ga.querySelector('button'));
    });
    $('#ga-tier').addEventListener('change', () => applyGa(gaState));
  }
  const canvas = $('#map');
  if (!canvas) { stream(); return; }
  const t0 = performance.now();
  let data;
  try {
    data = await api('GET', `/v1/events/${encodeURIComponent(eventId)}/layout`);
  } catch (err) {
    showProblem(message, err);
    return;
  }
  layout = data.seats;
  tierInfo = data.tiers;
  const tierIndex = new Map(data.tiers.map((t, k) => [t.id, k]));
  map = new SeatMap(canvas, $('#minimap'), layout.map((s) => ({ x: s.x, y: s.y, tier: tierIndex.get(s.tier_id) || 0 })), (i) => toggle(i));
  buildSections();
  stream(() => {
    fillSections();
    // A choice kept across logging in comes back.
    const kept = JSON.parse(sessionStorage.getItem(PICK_KEY) || '[]');
    if (kept.length) {
      const ids = new Set(kept);
      layout.forEach((s, i) => { if (ids.has(s.id) && map.status[i] === AVAILABLE) toggle(i, false); });
      sessionStorage.removeItem(PICK_KEY);
    }
    $('#map-loading').hidden = true;
    canvas.dataset.ready = '1';
    performance.mark('map-interactive');
    canvas.dataset.readyMs = String(Math.round(performance.now() - t0));
  });
  $('#pick-section').addEventListener('change', fillRows);
  $('#pick-row').addEventListener('change', fillSeats);
  $('#zoom-in').addEventListener('click', () => map.zoomAt(1.4, map.cssW / 2, map.cssH / 2));
  $('#zoom-out').addEventListener('click', () => map.zoomAt(1 / 1.4, map.cssW / 2, map.cssH / 2));
  $('#zoom-fit').addEventListener('click', () => map.fit());
  $('#hold').addEventListener('click', (e) => hold({ seats: [...selected].map((i) => layout[i].id) }, e.currentTarget));
  $('#best').addEventListener('submit', (e) => {
    e.preventDefault();
    const ba = { quantity: Number($('#best-qty').value) };
    if ($('#best-tier').value) ba.tier_id = $('#best-tier').value;
    hold({ best_available: ba }, e.currentTarget.querySelector('button'));
  });
  basket();
  // For tests and measurements.
  window.boxoffice = { map, layout, selected };
}

start();
