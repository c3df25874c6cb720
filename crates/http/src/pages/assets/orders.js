// My orders: the buyer's orders, newest first, each a link to its page.
import { $, api, requireLogin, showProblem, money, when } from './common.js';

const STATUS = { pending_payment: 'waiting for payment', payment_unknown: 'checking payment', paid: 'paid', failed: 'failed', refunded: 'refunded', cancelled: 'cancelled' };

async function start() {
  if (!requireLogin()) return;
  const list = $('#orders');
  let r;
  try { r = await api('GET', '/v1/me/orders'); } catch (err) { list.replaceChildren(); showProblem($('#message'), err); return; }
  list.replaceChildren();
  if (!r.orders.length) {
    const li = document.createElement('li');
    li.className = 'meta';
    li.textContent = 'No orders yet. ';
    const a = document.createElement('a'); a.href = '/'; a.textContent = 'Find an event';
    li.append(a);
    list.append(li);
    return;
  }
  const names = new Map();
  for (const o of r.orders.sort((a, b) => b.created_at.localeCompare(a.created_at))) {
    if (!names.has(o.event_id)) names.set(o.event_id, api('GET', `/v1/events/${encodeURIComponent(o.event_id)}`).then((e) => e.name).catch(() => 'Event'));
    const li = document.createElement('li');
    li.className = 'card event-card';
    const a = document.createElement('a');
    a.href = `/orders/${encodeURIComponent(o.id)}`;
    a.className = 'event-link';
    a.textContent = 'Order';
    names.get(o.event_id).then((n) => { a.textContent = n; });
    const meta = document.createElement('p');
    meta.className = 'meta';
    meta.textContent = `${when(o.created_at)} · ${o.tickets.length || o.items.length} ticket(s) · ${money(o.total)} · ${STATUS[o.status] || o.status}`;
    li.append(a, meta);
    list.append(li);
  }
}

start();
