// The flash-crowd front door in Debian's headless Chromium (issue 12 item 6): the
// waiting room's queue page (proof of work in the browser, the pre-queue, the live
// place in line, admission) and holds with the admission token; a buyer who skips
// the queue is refused in words; the waitlist of a sold-out event, its place in
// line, and its offer bought through to `paid`.
//
// Environment as buyer.test.mjs (scripts/browser-test sets it): BASE_URL,
// BASE_URL2 (the second buyer's node; default BASE_URL), ADMIN_EMAIL,
// ADMIN_PASSWORD; SCREENSHOTS=dir writes the queue and waitlist pages at 1280 and
// 390 px; RESULTS=file appends the measured numbers (JSON lines).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.BASE_URL;
const BASE2 = process.env.BASE_URL2 || BASE;
const MODE = process.env.MODE || 'embedded';
const SHOTS = process.env.SCREENSHOTS;
assert.ok(BASE, 'BASE_URL must be set (scripts/browser-test does)');

/** The room's sale opens this long after the event is made: the buyer joins the pre-queue before. */
const PRE_QUEUE_MS = 20000;
/** Leading zero bits of the join's proof of work: real work, quick enough for a test. */
const DIFFICULTY = 10;

let browser, token, roomEvent, soldOut, saleOpensAt;
const tag = `fd${Date.now().toString(36)}`;

async function call(method, url, body, tok, headers = {}) {
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json', ...(tok ? { authorization: `Bearer ${tok}` } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = res.status === 204 ? null : await res.json().catch(() => null);
  assert.ok(res.ok, `${method} ${url}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

function record(what, value) {
  const line = JSON.stringify({ mode: MODE, what, value, at: new Date().toISOString() });
  console.log(`measured: ${line}`);
  if (process.env.RESULTS) fs.appendFileSync(process.env.RESULTS, line + '\n');
}

/** The page fits a 360 px phone: nothing wider than the screen. */
async function fitsPhone(page) {
  const was = page.viewportSize();
  await page.setViewportSize({ width: 360, height: 780 });
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.setViewportSize(was);
  assert.ok(wide <= 360, `the page is ${wide} px wide at 360`);
}

async function shoot(page, name) {
  if (!SHOTS) return;
  const was = page.viewportSize();
  for (const [w, h] of [[1280, 860], [390, 844]]) {
    await page.setViewportSize({ width: w, height: h });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await page.screenshot({ path: path.join(SHOTS, `${name}-${w}.png`) });
  }
  await page.setViewportSize(was);
}

async function newPage(base = BASE) {
  const ctx = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => { throw e; });
  if (process.env.DEBUG) {
    page.on('console', (m) => console.log(`console.${m.type()}: ${m.text()}`));
    page.on('response', (r) => r.status() >= 400 && console.log(`http ${r.status()} ${r.request().method()} ${r.url()}`));
  }
  return page;
}

async function mapReady(page) {
  await page.waitForSelector('#map[data-ready="1"]');
}

async function clickSeat(page, i) {
  // The room's banner pushes the map down: bring it into the window first.
  await page.locator('#map').scrollIntoViewIfNeeded();
  await page.evaluate((i) => window.boxoffice.map.focusSeat(i), i);
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const p = await page.evaluate((i) => window.boxoffice.map.screenPos(i), i);
  await page.mouse.click(p.x, p.y);
}

/** A new customer, logged in in `page` (its token is returned for API calls). */
async function loggedIn(page, base = BASE) {
  const email = `buyer-${tag}-${Math.random().toString(36).slice(2, 8)}@example.com`;
  const t = await call('POST', `${base}/v1/auth/register`, { email, password: 'correct horse battery' });
  await page.goto('/');
  await page.evaluate(([email, t]) => localStorage.setItem('boxoffice.auth', JSON.stringify({ email, token: t.token, refresh_token: t.refresh_token })), [email, t]);
  return t.token;
}

const iso = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

async function onSale(venue, body) {
  const ev = await call('POST', `${BASE}/v1/events`, {
    venue_id: venue.id, starts_at: iso(Date.now() + 20 * 86400e3), hold_ttl_seconds: 600,
    tiers: [{ name: 'Stalls', price: { amount: 3900, currency: 'EUR' }, sections: ['A'] }],
    ...body,
  }, token);
  await call('PATCH', `${BASE}/v1/events/${ev.id}`, { status: 'on_sale' }, token);
  return ev;
}

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'],
  });
  token = (await call('POST', `${BASE}/v1/auth/login`, { email: process.env.ADMIN_EMAIL || 'admin@localhost', password: process.env.ADMIN_PASSWORD })).token;
  const hall = await call('POST', `${BASE}/v1/venues`, { name: 'Sala Fila', sections: [{ name: 'A', rows: 2, seats_per_row: 10 }] }, token);
  const opens = iso(Date.now() + PRE_QUEUE_MS);
  saleOpensAt = Date.parse(opens);   // whole seconds, as sent
  roomEvent = await onSale(hall, {
    name: `Queue ${tag} Night`, max_tickets_per_order: 4, sale_starts_at: opens,
    waiting_room: {
      enabled: true, admission_per_minute: 600, max_active_shoppers: null, session_seconds: 300,
      pre_queue_opens_at: iso(Date.now() - 60e3), challenge_difficulty: DIFFICULTY,
    },
  });
  const booth = await call('POST', `${BASE}/v1/venues`, { name: 'Sala Pequena', sections: [{ name: 'A', rows: 1, seats_per_row: 4 }] }, token);
  soldOut = await onSale(booth, { name: `Sold ${tag} Out`, max_tickets_per_order: 4 });
  if (SHOTS) fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
});

test('the waiting room: join from the event page with a proof of work, the pre-queue, admission, a hold with the token, the checkout ends the session', async () => {
  const page = await newPage(BASE);
  await loggedIn(page, BASE);
  await page.goto(`/events/${roomEvent.id}`);
  await page.waitForSelector('#room-out:not([hidden])');
  assert.match(await page.textContent('#room'), /5 minutes to choose your seats and pay/);
  const t0 = Date.now();
  await page.click('#room-join');
  await page.waitForURL(`**/events/${roomEvent.id}/queue`);
  // Joined before the sale opens: a place in the pre-queue, drawn at the start.
  await page.waitForSelector('#now[data-state="pre_queue"]', { timeout: PRE_QUEUE_MS });
  record(`queue page: event page click to joined (proof of work ${DIFFICULTY} bits)`, Date.now() - t0);
  assert.ok(Date.now() < saleOpensAt, 'joined before the sale opened (else the pre-queue is not shown)');
  assert.match(await page.textContent('#position-line'), /You joined as number 1\. Your place in line will be drawn at random when the sale opens at /);
  assert.equal(await page.getAttribute('#position-line', 'aria-live'), 'polite');
  assert.match(await page.textContent('#session-length'), /5 minutes/);
  assert.equal(await page.isVisible('#leave'), true);
  const queueId = await page.evaluate((id) => sessionStorage.getItem(`boxoffice.queue.${id}`), roomEvent.id);
  assert.ok(queueId, 'the queue id is kept for this tab');
  await fitsPhone(page);
  await shoot(page, 'queue');
  // The sale opens, the draw is made, the room admits: back to the seat map.
  await page.waitForURL(`**/events/${roomEvent.id}`, { timeout: PRE_QUEUE_MS + 30000 });
  record('queue page: sale start to back on the seat map, ms', Date.now() - saleOpensAt);
  await page.waitForSelector('#room-in:not([hidden])');
  await page.waitForFunction(() => /^\d+:\d\d$/.test(document.querySelector('#room-countdown').textContent));
  const left = Number(await page.getAttribute('#room-countdown', 'data-seconds-left'));
  assert.ok(left > 200 && left <= 300, `shopping time left starts near the room's 300 s: ${left}`);
  await mapReady(page);
  await clickSeat(page, 0);
  await page.waitForFunction(() => window.boxoffice.selected.size === 1);
  const held = page.waitForResponse((r) => r.request().method() === 'POST' && /\/v1\/events\/[^/]+\/holds$/.test(r.url()));
  await page.click('#hold');
  const res = await held;
  assert.equal(res.status(), 201, 'the hold with the admission was made');
  assert.ok(res.request().headers()['boxoffice-admission'], 'the hold sent Boxoffice-Admission');
  await page.waitForURL(/\/holds\/[^/]+$/);
  // Checking out names the admission: the session ends, the slot goes to the next.
  await page.click('#to-checkout');
  await page.waitForURL(/\/checkout$/);
  const paid = page.waitForRequest((r) => r.method() === 'POST' && /\/v1\/holds\/[^/]+\/checkout$/.test(r.url()));
  await page.click('#pay-button');
  assert.ok((await paid).headers()['boxoffice-admission'], 'the checkout sent Boxoffice-Admission');
  await page.waitForURL(/\/orders\/[^/]+$/);
  await page.waitForSelector('#status[data-status="paid"]', { timeout: 30000 });
  const after = await call('GET', `${BASE}/v1/queue/${encodeURIComponent(queueId)}`);
  assert.equal(after.state, 'expired', `the checkout ended the shopping session: ${JSON.stringify(after)}`);
  await page.context().close();
});

test('a buyer who skips the queue is refused in words (admission_required), with the way to the queue', async () => {
  const page = await newPage(BASE2);
  await loggedIn(page, BASE2);
  await page.goto(`/events/${roomEvent.id}`);
  await mapReady(page);
  await clickSeat(page, 5);
  await page.waitForFunction(() => window.boxoffice.selected.size === 1);
  const held = page.waitForResponse((r) => r.request().method() === 'POST' && /\/v1\/events\/[^/]+\/holds$/.test(r.url()));
  await page.click('#hold');
  assert.equal((await held).status(), 403);
  await page.waitForSelector('#message code');
  const msg = await page.textContent('#message');
  assert.match(msg, /This event has a waiting room: please join the queue first\./);
  assert.match(msg, /admission_required/);
  assert.equal(await page.getAttribute('#message a', 'href'), `/events/${roomEvent.id}/queue`);
  assert.match(page.url(), new RegExp(`/events/${roomEvent.id}$`), 'still on the event page');
  await page.context().close();
});

test('a sold-out event offers the waitlist; the buyer sees their place, then the offer when a seat comes back, and buys it to paid', async () => {
  // Someone holds every seat.
  const holder = await call('POST', `${BASE}/v1/auth/register`, { email: `holder-${tag}@example.com`, password: 'correct horse battery' });
  const all = await call('POST', `${BASE}/v1/events/${soldOut.id}/holds`, { best_available: { quantity: 4 } }, holder.token);
  // The buyer (on the other node when there are two) finds it sold out.
  const page = await newPage(BASE2);
  await loggedIn(page, BASE2);
  await page.goto(`/events/${soldOut.id}`);
  await mapReady(page);
  await page.waitForSelector('#waitlist:not([hidden])');
  await page.selectOption('#wl-qty', '1');
  await page.click('#wl-join');
  await page.waitForSelector('#waitlist[data-state="waiting"]');
  assert.match(await page.textContent('#wl-status'), /You are on the waitlist for 1 ticket: number 1 in line\./);
  assert.equal(await page.getAttribute('#wl-status', 'aria-live'), 'polite');
  await fitsPhone(page);
  await shoot(page, 'waitlist');
  // The seats come back: the first in line is offered one, live on the page.
  const t0 = Date.now();
  await call('DELETE', `${BASE}/v1/holds/${all.hold_id}`, undefined, holder.token);
  await page.waitForSelector('#waitlist[data-state="offered"]', { timeout: 30000 });
  record(`waitlist offer seen by the buyer (${BASE === BASE2 ? 'same node' : 'other node'}), ms from release`, Date.now() - t0);
  assert.match(await page.textContent('#wl-status'), /Tickets came back for you: 1 ticket, kept for you until /);
  await shoot(page, 'waitlist-offer');
  await page.click('#wl-offer-link');
  await page.waitForURL(/\/holds\/[^/]+$/);
  await page.waitForFunction(() => document.querySelectorAll('#items li').length === 1);
  await page.click('#to-checkout');
  await page.waitForURL(/\/checkout$/);
  await page.click('#pay-button');
  await page.waitForURL(/\/orders\/[^/]+$/);
  await page.waitForSelector('#status[data-status="paid"]', { timeout: 30000 });
  // Back on the event page, the entry says it was bought.
  await page.goto(`/events/${soldOut.id}`);
  await page.waitForSelector('#waitlist[data-state="converted"]');
  await page.context().close();
});
