// The gate scanner (`/events/{id}/scan`, check-in staff): reads a ticket's QR code
// from the camera (BarcodeDetector where the browser has it, else the vendored jsQR)
// or from a picture, and decides offline from the event's bundle: the code's Ed25519
// signature against the published keys (WebCrypto), its event tag, the revoked list,
// and — for rotating codes — the six digits of the current 15-second step ±1. What it
// admits is kept in localStorage and uploaded to `…/checkin/sync`, which reports double
// entries. A code it cannot decide (no bundle, no Ed25519 in this browser, a ticket
// newer than the bundle, a code from before signing) goes to `POST /v1/checkin`.
import './jsqr.js';
import { $, api, requireLogin, showProblem } from './common.js';

const root = $('#scanner');
const EVENT = root.dataset.event;
const BUNDLE_KEY = `boxoffice.scan.bundle.${EVENT}`;
const PENDING_KEY = `boxoffice.scan.pending.${EVENT}`;
const ADMITTED_KEY = `boxoffice.scan.admitted.${EVENT}`;
const RESULTS = {
  ok: 'Admit', already_used: 'Already used', voided: 'Void (refunded)',
  wrong_event: 'Wrong event', invalid: 'Not a valid ticket',
};

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz';

/** RFC 4648 base32 without padding; null for anything else. */
function base32(text) {
  const out = [];
  let acc = 0, bits = 0;
  for (const c of text) {
    const v = B32.indexOf(c);
    if (v < 0) return null;
    acc = (acc << 5) | v; bits += 5;
    if (bits >= 8) { bits -= 8; out.push((acc >> bits) & 255); acc &= (1 << bits) - 1; }
  }
  return acc === 0 && bits < 5 ? new Uint8Array(out) : null;
}

/** 16 bytes as a ULID's text (Crockford base32, lower case, as ids are written). */
function ulid(bytes) {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  let s = '';
  for (let i = 0; i < 26; i++) { s = CROCKFORD[Number(n & 31n)] + s; n >>= 5n; }
  return s;
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const b64url = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), (c) => c.charCodeAt(0));
const load = (key, empty) => { try { return JSON.parse(localStorage.getItem(key)) ?? empty; } catch { return empty; } };
const save = (key, v) => localStorage.setItem(key, JSON.stringify(v));

let bundle = null;
let keys = new Map();
let tickets = new Map();
let offline = false;

async function loadBundle() {
  const status = $('#bundle-status');
  try {
    bundle = await api('GET', `/v1/events/${encodeURIComponent(EVENT)}/checkin/bundle`);
    save(BUNDLE_KEY, bundle);
  } catch (err) {
    bundle = load(BUNDLE_KEY, null);
    if (!bundle) { showProblem(status, err); return; }
  }
  keys = new Map();
  offline = !!(crypto.subtle);
  for (const k of bundle.keys) {
    try {
      keys.set(k.kid, await crypto.subtle.importKey('raw', b64url(k.public_key), { name: 'Ed25519' }, false, ['verify']));
    } catch { offline = false; }
  }
  tickets = new Map(bundle.tickets.map((t) => [t.id, t]));
  status.textContent = `${bundle.tickets.length} tickets, ${bundle.revoked.length} revoked; ` +
    (offline ? 'checking offline.' : 'this browser cannot verify signatures: checking online.');
  root.dataset.ready = '1';
}

async function rotatingDigits(secret, step) {
  const key = await crypto.subtle.importKey('raw', base32(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const msg = new Uint8Array(8);
  new DataView(msg.buffer).setBigInt64(0, BigInt(step));
  const h = new Uint8Array(await crypto.subtle.sign('HMAC', key, msg));
  const off = h[h.length - 1] & 15;
  return ((((h[off] & 0x7f) << 24) | (h[off + 1] << 16) | (h[off + 2] << 8) | h[off + 3]) >>> 0) % 1000000;
}

/** The offline answer, or null when only the server can tell. */
async function decideOffline(text, gate) {
  if (!bundle || !offline) return null;
  const [body, digits, extra] = text.trim().toUpperCase().split('-');
  const bytes = base32(body);
  if (extra !== undefined || !bytes || bytes.length !== 98 || bytes[0] !== 1) return null;
  const key = keys.get(bytes[1]);
  if (!key) return null;
  if (!await crypto.subtle.verify({ name: 'Ed25519' }, key, bytes.slice(34), bytes.slice(0, 34))) return { result: 'invalid' };
  if (hex(bytes.slice(18, 26)) !== bundle.event_tag) return { result: 'wrong_event' };
  const id = `tkt_${ulid(bytes.slice(2, 18))}`;
  const t = tickets.get(id);
  if (!t) return null;
  if (bundle.rotating_codes) {
    if (!/^\d{6}$/.test(digits || '') || !t.rotating_secret) return { result: 'invalid' };
    const step = Math.floor(Date.now() / 1000 / bundle.rotating_period_seconds);
    let good = false;
    for (const s of [step - 1, step, step + 1]) if (await rotatingDigits(t.rotating_secret, s) === Number(digits)) good = true;
    if (!good) return { result: 'invalid' };
  }
  if (t.void || bundle.revoked.includes(id)) return { result: 'voided', ticket: t };
  const admitted = load(ADMITTED_KEY, {});
  if (admitted[id]) return { result: 'already_used', ticket: t, first: admitted[id] };
  if (t.checked_in) return { result: 'already_used', ticket: t };
  const at = new Date().toISOString();
  admitted[id] = { at, gate };
  save(ADMITTED_KEY, admitted);
  const pending = load(PENDING_KEY, []);
  pending.push({ code: text.trim(), gate, scan_id: crypto.randomUUID(), scanned_at: at });
  save(PENDING_KEY, pending);
  showPending();
  return { result: 'ok', ticket: t };
}

function show(out) {
  const r = $('#result');
  r.dataset.result = out.result;
  r.textContent = RESULTS[out.result] || out.result;
  const parts = [];
  if (out.ticket) parts.push(out.ticket.seat_id ? `seat ${out.ticket.seat_id}` : `tier ${out.ticket.tier_id}`);
  if (out.first) parts.push(`first scanned ${out.first.at} at ${out.first.gate}`);
  parts.push(out.online ? 'checked online' : 'checked offline');
  $('#result-detail').textContent = parts.join(' · ');
}

async function check(text) {
  if (!text) return;
  const gate = $('#gate').value.trim() || 'main';
  let out = await decideOffline(text, gate).catch(() => null);
  if (!out) {
    try {
      const r = await api('POST', '/v1/checkin', { code: text.trim(), gate, scan_id: crypto.randomUUID(), event_id: EVENT });
      out = { result: r.result, ticket: r.ticket, first: r.first_scan, online: true };
    } catch (err) {
      if (err.status === 0) out = { result: 'invalid', online: false };
      else { showProblem($('#result-detail'), err); return; }
    }
  }
  show(out);
}

/** The text of the first QR code in an image, a bitmap or a video frame. */
async function decode(source, width, height) {
  if ('BarcodeDetector' in window) {
    try {
      const found = await new window.BarcodeDetector({ formats: ['qr_code'] }).detect(source);
      if (found.length) return found[0].rawValue;
    } catch { /* fall through to jsQR */ }
  }
  const canvas = document.createElement('canvas');
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, width, height);
  const img = ctx.getImageData(0, 0, width, height);
  const qr = self.jsQR(img.data, width, height);
  return qr ? qr.data : null;
}

async function fromFile(ev) {
  const file = ev.target.files[0];
  if (!file) return;
  const bmp = await createImageBitmap(file);
  const text = await decode(bmp, bmp.width, bmp.height);
  ev.target.value = '';
  if (!text) { show({ result: 'invalid' }); $('#result-detail').textContent = 'No QR code found in the picture.'; return; }
  await check(text);
}

async function camera() {
  const video = $('#video');
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
  } catch (err) { $('#result-detail').textContent = `No camera: ${err.message}`; return; }
  video.hidden = false;
  await video.play();
  let last = '', lastAt = 0, busy = false;
  setInterval(async () => {
    if (busy || !video.videoWidth) return;
    busy = true;
    try {
      const text = await decode(video, video.videoWidth, video.videoHeight);
      // One code held in front of the camera is one scan, not one every frame.
      if (text && (text !== last || Date.now() - lastAt > 5000)) { last = text; lastAt = Date.now(); await check(text); }
    } finally { busy = false; }
  }, 250);
}

function showPending() {
  const n = load(PENDING_KEY, []).length;
  $('#pending').textContent = n ? `${n} scan${n === 1 ? '' : 's'} to sync` : 'all scans synced';
}

let syncing = null;

/** Uploads the scans made offline (one upload at a time: the button and the
 * browser's `online` event may both ask). */
function sync() {
  syncing ??= upload().finally(() => { syncing = null; });
  return syncing;
}

async function upload() {
  const pending = load(PENDING_KEY, []);
  const status = $('#sync-status');
  if (!pending.length) { if (!status.textContent) status.textContent = 'Nothing to sync.'; return; }
  let r;
  try {
    r = await api('POST', `/v1/events/${encodeURIComponent(EVENT)}/checkin/sync`, { scans: pending });
  } catch (err) { showProblem(status, err); return; }
  const sent = new Set(pending.map((s) => s.scan_id));
  save(PENDING_KEY, load(PENDING_KEY, []).filter((s) => !sent.has(s.scan_id)));
  showPending();
  status.textContent = `Synced ${pending.length} scan${pending.length === 1 ? '' : 's'}; ${r.conflicts.length} double entr${r.conflicts.length === 1 ? 'y' : 'ies'}.`;
  const list = $('#conflicts');
  list.replaceChildren(...r.conflicts.map((c) => {
    const li = document.createElement('li');
    li.textContent = `${c.ticket_id}: ${c.first.gate} at ${c.first.at}, again ${c.second.gate} at ${c.second.at}`;
    return li;
  }));
}

async function start() {
  if (!requireLogin()) return;
  $('#scan-file').addEventListener('change', fromFile);
  $('#camera').addEventListener('click', camera);
  $('#sync').addEventListener('click', sync);
  $('#manual').addEventListener('submit', (e) => { e.preventDefault(); check($('#manual-code').value); });
  window.addEventListener('online', sync);
  showPending();
  await loadBundle();
}

start();
