// The seat map on a canvas, from the layout's x/y. Built for 50,000 seats:
// - the whole map is painted once into an off-screen bitmap (one small square per
//   seat) and each frame at overview zoom is a single drawImage of it; a status
//   change repaints that one seat in the bitmap;
// - zoomed in, only the seats in view are drawn (a grid of buckets finds them),
//   batched by colour (one path per colour, one fill each);
// - frames are drawn on requestAnimationFrame, only when something changed.

export const AVAILABLE = 0, HELD = 1, SOLD = 2;
const PALETTE = ['#1b7f3b', '#b3261e', '#6a3fb5', '#a3460c', '#00677d', '#8c1d63'];
const HELD_COLOUR = '#c9ccd1', SOLD_COLOUR = '#6b7077', MINE_COLOUR = '#0b57d0';
const SEAT = 8;          // drawn size of a seat, in layout units (pitch is 10)
const CELL = 64;         // grid bucket size, in layout units
const BITMAP_MAX = 4096; // the off-screen bitmap's largest side, in pixels
const TOOLS = 56;        // the zoom buttons' strip on the left, kept clear at fit

export class SeatMap {
  /**
   * seats: [{x, y, tier}] (tier: palette index); onPick(index) when a seat is clicked.
   */
  constructor(canvas, minimap, seats, onPick) {
    this.canvas = canvas;
    this.minimap = minimap;
    this.onPick = onPick;
    const n = seats.length;
    this.n = n;
    this.xs = new Float32Array(n);
    this.ys = new Float32Array(n);
    this.tier = new Uint8Array(n);
    this.status = new Uint8Array(n);
    this.mine = new Uint8Array(n);
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (let i = 0; i < n; i++) {
      const s = seats[i];
      this.xs[i] = s.x; this.ys[i] = s.y; this.tier[i] = s.tier % PALETTE.length;
      if (s.x < minX) minX = s.x; if (s.y < minY) minY = s.y;
      if (s.x > maxX) maxX = s.x; if (s.y > maxY) maxY = s.y;
    }
    if (!n) { minX = minY = 0; maxX = maxY = 10; }
    this.bounds = { minX: minX - 10, minY: minY - 10, maxX: maxX + SEAT + 10, maxY: maxY + SEAT + 10 };
    this.buildGrid();
    this.frameTimes = [];
    this.view = { scale: 1, tx: 0, ty: 0 };
    this.dirty = false;
    this.resize();
    this.buildBitmap();
    this.fit();
    this.listen();
  }

  buildGrid() {
    const b = this.bounds;
    this.gw = Math.max(1, Math.ceil((b.maxX - b.minX) / CELL));
    this.gh = Math.max(1, Math.ceil((b.maxY - b.minY) / CELL));
    const counts = new Uint32Array(this.gw * this.gh + 1);
    const cellOf = new Uint32Array(this.n);
    for (let i = 0; i < this.n; i++) {
      const c = this.cellAt(this.xs[i], this.ys[i]);
      cellOf[i] = c; counts[c + 1]++;
    }
    for (let c = 1; c < counts.length; c++) counts[c] += counts[c - 1];
    this.cellStart = counts.slice();
    this.cellSeats = new Uint32Array(this.n);
    const fill = counts.slice();
    for (let i = 0; i < this.n; i++) this.cellSeats[fill[cellOf[i]]++] = i;
  }

  cellAt(x, y) {
    const b = this.bounds;
    const cx = Math.min(this.gw - 1, Math.max(0, Math.floor((x - b.minX) / CELL)));
    const cy = Math.min(this.gh - 1, Math.max(0, Math.floor((y - b.minY) / CELL)));
    return cy * this.gw + cx;
  }

  colour(i) {
    if (this.mine[i]) return MINE_COLOUR;
    if (this.status[i] === HELD) return HELD_COLOUR;
    if (this.status[i] === SOLD) return SOLD_COLOUR;
    return PALETTE[this.tier[i]];
  }

  buildBitmap() {
    const b = this.bounds;
    const w = b.maxX - b.minX, h = b.maxY - b.minY;
    this.bscale = Math.min(1, BITMAP_MAX / w, BITMAP_MAX / h);
    this.bitmap = document.createElement('canvas');
    this.bitmap.width = Math.max(1, Math.ceil(w * this.bscale));
    this.bitmap.height = Math.max(1, Math.ceil(h * this.bscale));
    const g = this.bitmap.getContext('2d');
    g.fillStyle = '#ffffff';
    g.fillRect(0, 0, this.bitmap.width, this.bitmap.height);
    const byColour = new Map();
    for (let i = 0; i < this.n; i++) {
      const c = this.colour(i);
      let list = byColour.get(c);
      if (!list) byColour.set(c, list = []);
      list.push(i);
    }
    const s = Math.max(1, SEAT * this.bscale);
    for (const [c, list] of byColour) {
      g.fillStyle = c;
      g.beginPath();
      for (const i of list) g.rect((this.xs[i] - b.minX) * this.bscale, (this.ys[i] - b.minY) * this.bscale, s, s);
      g.fill();
    }
  }

  paintBitmapSeat(i) {
    const g = this.bitmap.getContext('2d');
    const b = this.bounds;
    const s = Math.max(1, SEAT * this.bscale);
    g.fillStyle = this.colour(i);
    g.fillRect((this.xs[i] - b.minX) * this.bscale, (this.ys[i] - b.minY) * this.bscale, s, s);
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const r = this.canvas.getBoundingClientRect();
    this.cssW = Math.max(1, r.width); this.cssH = Math.max(1, r.height);
    this.canvas.width = Math.round(this.cssW * dpr);
    this.canvas.height = Math.round(this.cssH * dpr);
    this.dpr = dpr;
    this.redraw();
  }

  fitScale() {
    const b = this.bounds;
    return Math.min((this.cssW - TOOLS) / (b.maxX - b.minX), this.cssH / (b.maxY - b.minY));
  }

  fit() {
    const b = this.bounds;
    const s = this.fitScale();
    this.view.scale = s;
    this.view.tx = TOOLS + (this.cssW - TOOLS - (b.maxX - b.minX) * s) / 2 - b.minX * s;
    this.view.ty = (this.cssH - (b.maxY - b.minY) * s) / 2 - b.minY * s;
    this.redraw();
  }

  zoomAt(factor, sx, sy) {
    const v = this.view;
    const min = this.fitScale() * 0.8, max = 6;
    const next = Math.min(max, Math.max(min, v.scale * factor));
    const k = next / v.scale;
    v.tx = sx - (sx - v.tx) * k;
    v.ty = sy - (sy - v.ty) * k;
    v.scale = next;
    this.redraw();
  }

  pan(dx, dy) { this.view.tx += dx; this.view.ty += dy; this.redraw(); }

  /** Centre and zoom on a seat (the list's choice shows on the map). */
  focusSeat(i) {
    const v = this.view;
    if (v.scale < 1.5) v.scale = 1.5;
    v.tx = this.cssW / 2 - (this.xs[i] + SEAT / 2) * v.scale;
    v.ty = this.cssH / 2 - (this.ys[i] + SEAT / 2) * v.scale;
    this.redraw();
  }

  /** Where seat i's centre is, in page CSS pixels (for tests and tooltips). */
  screenPos(i) {
    const r = this.canvas.getBoundingClientRect();
    const v = this.view;
    return { x: r.left + (this.xs[i] + SEAT / 2) * v.scale + v.tx, y: r.top + (this.ys[i] + SEAT / 2) * v.scale + v.ty };
  }

  seatAt(sx, sy) {
    const v = this.view;
    const x = (sx - v.tx) / v.scale, y = (sy - v.ty) / v.scale;
    const b = this.bounds;
    const cx0 = Math.floor((x - SEAT - b.minX) / CELL), cy0 = Math.floor((y - SEAT - b.minY) / CELL);
    let best = -1, bestD = Infinity;
    for (let cy = cy0; cy <= cy0 + 1; cy++) {
      if (cy < 0 || cy >= this.gh) continue;
      for (let cx = cx0; cx <= cx0 + 1; cx++) {
        if (cx < 0 || cx >= this.gw) continue;
        const c = cy * this.gw + cx;
        for (let k = this.cellStart[c]; k < this.cellStart[c + 1]; k++) {
          const i = this.cellSeats[k];
          const dx = x - (this.xs[i] + SEAT / 2), dy = y - (this.ys[i] + SEAT / 2);
          const d = dx * dx + dy * dy;
          if (d < bestD) { bestD = d; best = i; }
        }
      }
    }
    // Within the seat's square plus a little slack for fingers.
    const slack = Math.max(SEAT * 0.75, 6 / v.scale);
    return bestD <= slack * slack ? best : -1;
  }

  setStatus(i, st) {
    if (this.status[i] === st) return;
    this.status[i] = st;
    this.paintBitmapSeat(i);
    this.redraw();
  }

  setMine(i, on) {
    this.mine[i] = on ? 1 : 0;
    this.paintBitmapSeat(i);
    this.redraw();
  }

  /** Replaces every status (a snapshot: 'A' | 'H' | 'S' per seat). */
  setAll(text) {
    for (let i = 0; i < this.n && i < text.length; i++) {
      const c = text.charCodeAt(i);
      this.status[i] = c === 72 ? HELD : c === 83 ? SOLD : AVAILABLE;
    }
    this.buildBitmap();
    this.redraw();
  }

  redraw() {
    if (this.dirty) return;
    this.dirty = true;
    requestAnimationFrame(() => { this.dirty = false; this.draw(); });
  }

  draw() {
    const t0 = performance.now();
    const g = this.canvas.getContext('2d');
    const v = this.view, b = this.bounds;
    g.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    g.fillStyle = '#ffffff';
    g.fillRect(0, 0, this.cssW, this.cssH);
    // The world rectangle in view.
    const x0 = -v.tx / v.scale, y0 = -v.ty / v.scale;
    const x1 = x0 + this.cssW / v.scale, y1 = y0 + this.cssH / v.scale;
    const seatPx = SEAT * v.scale;
    if (seatPx <= Math.max(3, SEAT * this.bscale * 1.5)) {
      // Overview: the bitmap, scaled.
      g.imageSmoothingEnabled = true;
      g.drawImage(this.bitmap, b.minX * v.scale + v.tx, b.minY * v.scale + v.ty,
        (b.maxX - b.minX) * v.scale, (b.maxY - b.minY) * v.scale);
    } else {
      const cx0 = Math.max(0, Math.floor((x0 - SEAT - b.minX) / CELL)), cx1 = Math.min(this.gw - 1, Math.floor((x1 - b.minX) / CELL));
      const cy0 = Math.max(0, Math.floor((y0 - SEAT - b.minY) / CELL)), cy1 = Math.min(this.gh - 1, Math.floor((y1 - b.minY) / CELL));
      const paths = new Map();
      const r = Math.min(seatPx / 4, 3);
      const mineRing = [];
      for (let cy = cy0; cy <= cy1; cy++) {
        for (let cx = cx0; cx <= cx1; cx++) {
          const c = cy * this.gw + cx;
          for (let k = this.cellStart[c]; k < this.cellStart[c + 1]; k++) {
            const i = this.cellSeats[k];
            const col = this.colour(i);
            let p = paths.get(col);
            if (!p) paths.set(col, p = new Path2D());
            const sx = this.xs[i] * v.scale + v.tx, sy = this.ys[i] * v.scale + v.ty;
            if (seatPx > 12 && p.roundRect) p.roundRect(sx, sy, seatPx, seatPx, r); else p.rect(sx, sy, seatPx, seatPx);
            if (this.mine[i] && seatPx > 10) mineRing.push(sx, sy);
          }
        }
      }
      for (const [col, p] of paths) { g.fillStyle = col; g.fill(p); }
      // Your seats get a white tick mark too: not told by colour alone.
      if (mineRing.length) {
        g.strokeStyle = '#ffffff'; g.lineWidth = Math.max(1.5, seatPx / 8);
        g.beginPath();
        for (let k = 0; k < mineRing.length; k += 2) {
          const sx = mineRing[k], sy = mineRing[k + 1];
          g.moveTo(sx + seatPx * 0.25, sy + seatPx * 0.5);
          g.lineTo(sx + seatPx * 0.45, sy + seatPx * 0.7);
          g.lineTo(sx + seatPx * 0.75, sy + seatPx * 0.3);
        }
        g.stroke();
      }
    }
    this.drawMinimap(x0, y0, x1, y1);
    const dt = performance.now() - t0;
    this.frameTimes.push(dt);
    if (this.frameTimes.length > 600) this.frameTimes.shift();
  }

  drawMinimap(x0, y0, x1, y1) {
    const zoomed = this.view.scale > this.fitScale() * 1.3;
    this.minimap.hidden = !zoomed;
    if (!zoomed) return;
    const b = this.bounds;
    const w = 140, h = Math.max(40, Math.round(140 * (b.maxY - b.minY) / (b.maxX - b.minX)));
    if (this.minimap.width !== w || this.minimap.height !== h) { this.minimap.width = w; this.minimap.height = h; }
    const g = this.minimap.getContext('2d');
    g.drawImage(this.bitmap, 0, 0, w, h);
    const k = w / (b.maxX - b.minX);
    g.strokeStyle = '#d93025'; g.lineWidth = 2;
    g.strokeRect((x0 - b.minX) * k, (y0 - b.minY) * k, (x1 - x0) * k, (y1 - y0) * k);
  }

  listen() {
    const c = this.canvas;
    const pointers = new Map();
    let moved = 0, pinch = 0;
    c.addEventListener('wheel', (e) => {
      e.preventDefault();
      const r = c.getBoundingClientRect();
      this.zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    c.addEventListener('pointerdown', (e) => {
      c.setPointerCapture(e.pointerId);
      pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
      moved = 0;
      if (pointers.size === 2) { const [a, b2] = [...pointers.values()]; pinch = Math.hypot(a.x - b2.x, a.y - b2.y); }
    });
    c.addEventListener('pointermove', (e) => {
      const p = pointers.get(e.pointerId);
      if (!p) return;
      const dx = e.clientX - p.x, dy = e.clientY - p.y;
      p.x = e.clientX; p.y = e.clientY;
      if (pointers.size === 1) {
        moved += Math.abs(dx) + Math.abs(dy);
        this.pan(dx, dy);
      } else if (pointers.size === 2) {
        moved += 100;
        const [a, b2] = [...pointers.values()];
        const d = Math.hypot(a.x - b2.x, a.y - b2.y);
        const r = c.getBoundingClientRect();
        if (pinch > 0) this.zoomAt(d / pinch, (a.x + b2.x) / 2 - r.left, (a.y + b2.y) / 2 - r.top);
        pinch = d;
      }
    });
    const up = (e) => {
      if (!pointers.has(e.pointerId)) return;
      pointers.delete(e.pointerId);
      if (pointers.size === 0 && moved < 6 && e.type === 'pointerup') {
        const r = c.getBoundingClientRect();
        const i = this.seatAt(e.clientX - r.left, e.clientY - r.top);
        if (i >= 0) this.onPick(i);
      }
      pinch = 0;
    };
    c.addEventListener('pointerup', up);
    c.addEventListener('pointercancel', up);
    c.addEventListener('keydown', (e) => {
      const step = 60;
      const keys = {
        ArrowLeft: () => this.pan(step, 0), ArrowRight: () => this.pan(-step, 0),
        ArrowUp: () => this.pan(0, step), ArrowDown: () => this.pan(0, -step),
        '+': () => this.zoomAt(1.25, this.cssW / 2, this.cssH / 2), '=': () => this.zoomAt(1.25, this.cssW / 2, this.cssH / 2),
        '-': () => this.zoomAt(0.8, this.cssW / 2, this.cssH / 2), 0: () => this.fit(),
      };
      const f = keys[e.key];
      if (f) { e.preventDefault(); f(); }
    });
    new ResizeObserver(() => {
      const r = c.getBoundingClientRect();
      if (Math.abs(r.width - this.cssW) > 0.5 || Math.abs(r.height - this.cssH) > 0.5) { this.resize(); this.fit(); }
    }).observe(c);
  }
}

export const tierColour = (i) => PALETTE[i % PALETTE.length];
