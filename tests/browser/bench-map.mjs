// Measures (not a test; docs/benchmarks.md has the numbers): how long a
// 50,000-seat map takes to become interactive in headless Chromium, and the frame
// times while panning and zooming it. Usage (a server running, admin password known):
//   BASE_URL=http://127.0.0.1:8080 ADMIN_PASSWORD=… node bench-map.mjs
import { chromium } from 'playwright-core';

const BASE = process.env.BASE_URL;
const SEATS_SECTIONS = 10, ROWS = 50, PER_ROW = 100; // 50,000 seats

async function call(method, path, body, tok) {
  const res = await fetch(BASE + path, {
    method, headers: { 'content-type': 'application/json', ...(tok ? { authorization: `Bearer ${tok}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const j = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(j)}`);
  return j;
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };

const token = (await call('POST', '/v1/auth/login', { email: process.env.ADMIN_EMAIL || 'admin@localhost', password: process.env.ADMIN_PASSWORD })).token;
const sections = Array.from({ length: SEATS_SECTIONS }, (_, k) => ({ name: `S${k + 1}`, rows: ROWS, seats_per_row: PER_ROW }));
const venue = await call('POST', '/v1/venues', { name: 'Bench Stadium', sections }, token);
const ev = await call('POST', '/v1/events', {
  venue_id: venue.id, name: 'Bench 50k', starts_at: new Date(Date.now() + 30 * 86400e3).toISOString().replace(/\.\d+Z$/, 'Z'),
  hold_ttl_seconds: 600, max_tickets_per_order: 8,
  tiers: sections.map((s, k) => ({ name: `Tier ${k % 4}${s.name}`, price: { amount: 2000 + 500 * k, currency: 'EUR' }, sections: [s.name] })),
}, token);
await call('PATCH', `/v1/events/${ev.id}`, { status: 'on_sale' }, token);

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync'],
});
const out = {};
for (const run of ['cold', 'warm', 'warm2']) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  await page.goto(`${BASE}/events/${ev.id}`);
  await page.waitForSelector('#map[data-ready="1"]', { timeout: 120000 });
  out[`interactive_ms_${run}`] = await page.evaluate(() => Math.round(performance.getEntriesByName('map-interactive')[0].startTime));
  out[`seats`] = await page.evaluate(() => window.boxoffice.map.n);
  // Where the time went: the layout's download (its transfer and the server's
  // compression included) and what followed it (parse, map, first snapshot).
  const [fetchMs, afterMs] = await page.evaluate(() => {
    const r = performance.getEntriesByType('resource').find((e) => e.name.endsWith('/layout'));
    const ready = performance.getEntriesByName('map-interactive')[0].startTime;
    return [Math.round(r.responseEnd - r.startTime), Math.round(ready - r.responseEnd)];
  });
  out[`layout_fetch_ms_${run}`] = fetchMs;
  out[`after_layout_ms_${run}`] = afterMs;
  if (run === 'warm2') {
    const box = await page.locator('#map').boundingBox();
    const cx = box.x + box.width / 2, cy = box.y + box.height / 2;
    for (const [name, zooms] of [['overview', 0], ['zoomed_x8', 9]]) {
      await page.evaluate(() => window.boxoffice.map.fit());
      await page.mouse.move(cx, cy);
      for (let k = 0; k < zooms; k++) await page.mouse.wheel(0, -200);
      // rAF intervals while dragging (the browser's frame pacing) and the map's own draw times.
      await page.evaluate(() => {
        window.boxoffice.map.frameTimes.length = 0;
        window.__ivals = []; let last = performance.now();
        const f = (t) => { window.__ivals.push(t - last); last = t; if (window.__ivals.length < 400) requestAnimationFrame(f); };
        requestAnimationFrame(f);
      });
      await page.mouse.down();
      for (let k = 0; k < 120; k++) await page.mouse.move(cx + 200 * Math.sin(k / 10), cy + 120 * Math.cos(k / 10));
      await page.mouse.up();
      const [draws, ivals] = await page.evaluate(() => [window.boxoffice.map.frameTimes.slice(), window.__ivals.slice(2)]);
      out[`${name}_frames`] = draws.length;
      out[`${name}_draw_ms_p50`] = +pct(draws, 0.5).toFixed(2);
      out[`${name}_draw_ms_p95`] = +pct(draws, 0.95).toFixed(2);
      out[`${name}_draw_ms_max`] = +Math.max(...draws).toFixed(2);
      out[`${name}_frame_interval_ms_p50`] = +pct(ivals, 0.5).toFixed(2);
      out[`${name}_frame_interval_ms_p95`] = +pct(ivals, 0.95).toFixed(2);
    }
    // A live change of one seat reaching this page, repainted.
    await page.evaluate(() => window.boxoffice.map.fit());
  }
  await page.close();
}
console.log(JSON.stringify(out, null, 1));
await browser.close();
