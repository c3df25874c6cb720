// What every page shares: the API client (with the buyer's tokens), errors in a
// buyer's words, money and time formatting, the countdown, the header's login state.

const AUTH_KEY = 'boxoffice.auth';

export const $ = (sel, root = document) => root.querySelector(sel);

export function auth() {
  try { return JSON.parse(localStorage.getItem(AUTH_KEY) || 'null'); } catch { return null; }
}

export function setAuth(a) {
  if (a) localStorage.setItem(AUTH_KEY, JSON.stringify(a)); else localStorage.removeItem(AUTH_KEY);
}

/** An API answer that was not a success: its status and the contract's error code. */
export class ApiProblem extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || (status === 0 ? 'network_error' : 'unknown_error');
    this.body = body || {};
  }
}

let refreshing = null;

async function refresh() {
  const a = auth();
  if (!a || !a.refresh_token) return false;
  refreshing ??= fetch('/v1/auth/refresh', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refresh_token: a.refresh_token }),
  }).then(async (r) => {
    if (!r.ok) { setAuth(null); return false; }
    const t = await r.json();
    setAuth({ ...a, token: t.token, refresh_token: t.refresh_token });
    return true;
  }).catch(() => false).finally(() => { refreshing = null; });
  return refreshing;
}

/** Calls the API; resolves to the JSON body (null for 204), or throws ApiProblem. */
export async function api(method, path, body, headers = {}, retried = false) {
  const h = { ...headers };
  const a = auth();
  if (a && a.token) h.authorization = `Bearer ${a.token}`;
  if (body !== undefined) h['content-type'] = 'application/json';
  // A checkout of a hold made with a waiting-room admission names it, so the
  // shopper's session ends and the slot goes to the next in line.
  const checkout = method === 'POST' && /^\/v1\/holds\/([^/]+)\/checkout$/.exec(path);
  const admitted = checkout && sessionStorage.getItem(HOLD_ADMISSION_KEY + decodeURIComponent(checkout[1]));
  if (admitted) h['boxoffice-admission'] = admitted;
  let res;
  try {
    res = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiProblem(0, null);
  }
  if (res.status === 401 && !retried && a && await refresh()) {
    return api(method, path, body, headers, true);
  }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!res.ok) throw new ApiProblem(res.status, json);
  return json;
}

/** GETs a file of the API with the buyer's token (an `<img>` or a link cannot send
 * it); resolves to a Blob, or throws ApiProblem. */
export async function apiBlob(path, retried = false) {
  const a = auth();
  const h = a && a.token ? { authorization: `Bearer ${a.token}` } : {};
  let res;
  try {
    res = await fetch(path, { headers: h });
  } catch {
    throw new ApiProblem(0, null);
  }
  if (res.status === 401 && !retried && a && await refresh()) return apiBlob(path, true);
  if (!res.ok) throw new ApiProblem(res.status, await res.json().catch(() => null));
  return res.blob();
}

const WORDS = {
  seats_unavailable: 'Some of the seats you chose were just taken by someone else.',
  sold_out: 'Sorry, there are not enough tickets left for that.',
  not_on_sale: 'Tickets for this event are not on sale right now.',
  event_cancelled: 'This event has been cancelled.',
  hold_expired: 'Your reservation ran out of time, so the seats went back on sale. Please choose again.',
  invalid_credentials: 'That email and password do not match an account.',
  email_taken: 'There is already an account with this email. Try logging in instead.',
  unauthorized: 'Please log in again to go on.',
  invalid_refresh_token: 'Please log in again to go on.',
  refresh_token_reused: 'For your safety you were logged out. Please log in again.',
  rate_limited: 'Too many tries in a short time. Please wait a moment and try again.',
  customer_limit_reached: 'You have reached the ticket limit for this event.',
  admission_required: 'This event has a waiting room: please join the queue first.',
  no_waiting_room: 'This event has no waiting room right now: you can choose your seats straight away.',
  queue_not_open: 'The queue for this event is not open at the moment.',
  challenge_required: 'Your browser has to finish a short check before joining. Please reload the page.',
  challenge_failed: 'The check before joining did not work out. Please reload the page to try again.',
  challenge_expired: 'The check before joining took too long. Please reload the page to try again.',
  seats_available: 'There are tickets available right now: choose them above instead of waiting.',
  not_found: 'We could not find that. It may have expired or been removed.',
  idempotency_key_reused: 'This payment was already sent with other details. Please reload the page.',
  card_declined: 'Your card was declined. Nothing was charged; try another card.',
  insufficient_funds: 'Your card does not have enough funds. Nothing was charged; try another card.',
  network_error: 'We could not reach boxoffice. Check your connection and try again.',
  timeout: 'That took too long on our side. Please try again.',
  service_unavailable: 'We are very busy right now. Please try again in a moment.',
};

/** A buyer's sentence for an error code (the API's message for bad input). */
export function explain(err) {
  const code = err.code || String(err);
  if (WORDS[code]) return WORDS[code];
  if (code === 'invalid_request' && err.message) return `Please check what you entered: ${err.message}.`;
  return 'Something went wrong on our side. Please try again.';
}

/** Shows a problem in `el`: the sentence, and the code behind it in small print. */
export function showProblem(el, err) {
  el.replaceChildren();
  el.classList.add('problem');
  el.append(explain(err) + ' ');
  const code = document.createElement('code');
  code.className = 'error-code';
  code.textContent = err.code || String(err);
  el.append(code);
}

export function say(el, text) {
  el.classList.remove('problem');
  el.textContent = text;
}

export function money(m) {
  if (!m) return '';
  const v = (m.amount / 100).toFixed(2);
  return m.currency === 'EUR' ? `€${v}` : `${v} ${m.currency}`;
}

export function when(iso) {
  return new Date(iso).toLocaleString('en-GB', {
    weekday: 'short', day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: 'UTC',
  }) + ' UTC';
}

/** Sends the buyer to log in, coming back here after. */
export function requireLogin() {
  if (auth()) return true;
  location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  return false;
}

/** Ticks `el` down to `expiresAt` (mm:ss), calling onEnd once at zero. */
export function countdown(el, expiresAt, onEnd) {
  const end = new Date(expiresAt).getTime();
  let done = false;
  const tick = () => {
    const left = Math.max(0, Math.round((end - Date.now()) / 1000));
    el.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
    el.dataset.secondsLeft = String(left);
    el.classList.toggle('urgent', left <= 60);
    if (left === 0 && !done) { done = true; clearInterval(timer); onEnd && onEnd(); }
  };
  const timer = setInterval(tick, 1000);
  tick();
  return () => clearInterval(timer);
}

/** The event's layout, keyed by seat id (for labels on hold/order pages). */
export async function seatLabels(eventId) {
  const layout = await api('GET', `/v1/events/${encodeURIComponent(eventId)}/layout`);
  const seats = new Map();
  for (const s of layout.seats) seats.set(s.id, `Section ${s.section}, row ${s.row}, seat ${s.label}`);
  const tiers = new Map();
  for (const t of [...layout.tiers, ...layout.ga_tiers]) tiers.set(t.id, t.name);
  return { seats, tiers };
}

// --- the waiting room's admission, kept for this tab -------------------------

const ADMISSION_KEY = 'boxoffice.admission.';
const HOLD_ADMISSION_KEY = 'boxoffice.admission.hold.';

/** Keeps an admission (`{token, expires_at, queue_id}`) for the event, for this tab. */
export function saveAdmission(eventId, a) {
  sessionStorage.setItem(ADMISSION_KEY + eventId, JSON.stringify(a));
}

/** The event's admission while its session lasts, else null (and it is forgotten). */
export function admission(eventId) {
  let a = null;
  try { a = JSON.parse(sessionStorage.getItem(ADMISSION_KEY + eventId) || 'null'); } catch { a = null; }
  if (a && a.token && new Date(a.expires_at).getTime() > Date.now()) return a;
  sessionStorage.removeItem(ADMISSION_KEY + eventId);
  return null;
}

export function forgetAdmission(eventId) {
  sessionStorage.removeItem(ADMISSION_KEY + eventId);
}

/** Remembers that a hold was made with `token`, so its checkout names it. */
export function holdAdmitted(holdId, token) {
  sessionStorage.setItem(HOLD_ADMISSION_KEY + holdId, token);
}

/** "about 3 minutes", "less than a minute": an estimate, said as one. */
export function roughly(seconds) {
  if (seconds == null) return 'not known yet';
  if (seconds < 60) return 'less than a minute';
  const m = Math.round(seconds / 60);
  if (m < 90) return `about ${m} minute${m > 1 ? 's' : ''}`;
  const h = Math.round(m / 6) / 10;
  return `about ${h} hours`;
}

function header() {
  const a = auth();
  const login = $('#nav-login');
  const logout = $('#nav-logout');
  if (!login || !logout) return;
  login.hidden = !!a;
  logout.hidden = !a;
  if (a) logout.title = `Logged in as ${a.email}`;
  logout.addEventListener('click', async () => {
    const cur = auth();
    if (cur && cur.refresh_token) {
      await api('POST', '/v1/auth/logout', { refresh_token: cur.refresh_token }).catch(() => {});
    }
    setAuth(null);
    location.assign('/');
  });
}

header();
