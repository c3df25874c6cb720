// The gate scanner page in Debian's headless Chromium: a paid ticket's QR code, as
// a picture fed to the page's file input, is decoded (BarcodeDetector or the
// vendored jsQR), verified offline from the event's bundle (WebCrypto Ed25519) and
// admitted; scanning it again says already used; the offline scan syncs to the
// server, which then knows the ticket is in.
//
// Environment as buyer.test.mjs (scripts/browser-test sets it): BASE_URL,
// ADMIN_EMAIL, ADMIN_PASSWORD.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import QRCode from 'qrcode';
import { chromium } from 'playwright-core';

const BASE = process.env.BASE_URL;
assert.ok(BASE, 'BASE_URL must be set (scripts/browser-test does)');

let browser, admin, event, ticket, dir;

async function call(method, url, body, tok) {
  const res = await fetch(url, {
    method,
    headers: {
      'content-type': 'application/json', ...(tok ? { authorization: `Bearer ${tok}` } : {}),
      ...(method === 'POST' && url.endsWith('/checkout') ? { 'idempotency-key': `scan-${Date.now()}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => null);
  assert.ok(res.ok, `${method} ${url}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'],
  });
  admin = await call('POST', `${BASE}/v1/auth/login`, { email: process.env.ADMIN_EMAIL || 'admin@localhost', password: process.env.ADMIN_PASSWORD });
  const venue = await call('POST', `${BASE}/v1/venues`, { name: 'Gate Hall', sections: [{ name: 'A', rows: 1, seats_per_row: 4 }] }, admin.token);
  const starts = new Date(Date.now() + 5 * 86400e3).toISOString().replace(/\.\d+Z$/, 'Z');
  event = await call('POST', `${BASE}/v1/events`, {
    venue_id: venue.id, name: 'Gate night', starts_at: starts, hold_ttl_seconds: 600, max_tickets_per_order: 4,
    tiers: [{ name: 'Stalls', price: { amount: 3000, currency: 'EUR' }, sections: ['A'] }],
    ga_tiers: [{ name: 'Standing', price: { amount: 1500, currency: 'EUR' }, capacity: 10 }],
  }, admin.token);
  await call('PATCH', `${BASE}/v1/events/${event.id}`, { status: 'on_sale' }, admin.token);
  const buyer = await call('POST', `${BASE}/v1/auth/register`, { email: `gate-${Date.now()}@example.com`, password: 'correct horse battery' });
  const hold = await call('POST', `${BASE}/v1/events/${event.id}/holds`, { tier_id: event.ga_tiers[0].id, quantity: 1 }, buyer.token);
  const co = await call('POST', `${BASE}/v1/holds/${hold.hold_id}/checkout`, { email: 'gate@example.com', payment: { token: 'tok_visa' } }, buyer.token);
  let order;
  for (let i = 0; i < 10; i++) {
    order = await call('GET', `${BASE}/v1/orders/${co.order_id}?wait=30`, undefined, buyer.token);
    if (order.status !== 'pending_payment') break;
  }
  assert.equal(order.status, 'paid');
  ticket = order.tickets[0];
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scanner-'));
});

after(async () => {
  await browser?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('a QR picture is decoded, verified offline, admitted once, and synced', async () => {
  const png = path.join(dir, 'ticket.png');
  await QRCode.toFile(png, ticket.code, { errorCorrectionLevel: 'M', margin: 4, scale: 6 });
  const ctx = await browser.newContext({ baseURL: BASE, viewport: { width: 1000, height: 900 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  // Every request the page makes succeeds (but the favicon, which no page has).
  page.on('response', (r) => { if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) errors.push(new Error(`${r.status()} ${r.url()}`)); });
  await page.goto('/');
  await page.evaluate((a) => localStorage.setItem('boxoffice.auth', JSON.stringify({ email: 'admin@localhost', token: a.token, refresh_token: a.refresh_token })), admin);
  await page.goto(`/events/${event.id}/scan`);
  await page.waitForSelector('#scanner[data-ready="1"]');
  const status = await page.textContent('#bundle-status');
  assert.match(status, /checking offline/, status);

  // Offline from here: the page must decide without the server.
  await ctx.setOffline(true);
  await page.fill('#gate', 'north');
  await page.setInputFiles('#scan-file', png);
  await page.waitForSelector('#result[data-result="ok"]');
  assert.match(await page.textContent('#result-detail'), /checked offline/);
  assert.match(await page.textContent('#pending'), /1 scan to sync/);
  await page.setInputFiles('#scan-file', png);
  await page.waitForSelector('#result[data-result="already_used"]');
  // A code with one character changed is refused offline.
  const forged = ticket.code.slice(0, 60) + (ticket.code[60] === 'A' ? 'B' : 'A') + ticket.code.slice(61);
  await page.fill('#manual-code', forged);
  await page.click('#manual button[type=submit]');
  await page.waitForSelector('#result[data-result="invalid"]');

  // Back online: the scan syncs, and the server knows the ticket is in.
  await ctx.setOffline(false);
  await page.click('#sync');
  // (Coming online syncs by itself too; either way the one scan is uploaded once.)
  await page.waitForFunction(() => /Synced 1 scan; 0 double entries/.test(document.querySelector('#sync-status').textContent));
  assert.match(await page.textContent('#pending'), /all scans synced/);
  const bundle = await call('GET', `${BASE}/v1/events/${event.id}/checkin/bundle`, undefined, admin.token);
  assert.equal(bundle.tickets.find((t) => t.id === ticket.id).checked_in, true);
  const again = await call('POST', `${BASE}/v1/checkin`, { code: ticket.code, gate: 'south', scan_id: `s-${Date.now()}`, event_id: event.id }, admin.token);
  assert.equal(again.result, 'already_used');
  assert.equal(again.first_scan.gate, 'north');
  assert.deepEqual(errors, []);
  await ctx.close();
});
