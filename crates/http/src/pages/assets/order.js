// The order page follows the payment (long-polling `?wait=`) until it is decided,
// then shows the tickets, or why it failed in words, with the code behind them.
import { $, api, apiBlob, requireLogin, showProblem, say, money, seatLabels } from './common.js';

const orderId = $('#order').dataset.orderId;
const message = $('#message');
const STATUS = {
  pending_payment: 'Waiting for the payment…',
  payment_unknown: 'Checking the payment with the bank…',
  paid: 'Paid',
  failed: 'Payment failed',
  refunded: 'Refunded',
  cancelled: 'Cancelled',
};

function show(o, names) {
  const st = $('#status');
  st.textContent = STATUS[o.status] || o.status;
  st.dataset.status = o.status;
  $('#total').textContent = money(o.total);
  const action = o.next_action && o.next_action.url;
  $('#action').hidden = !action;
  if (action) $('#action-link').href = o.next_action.url;
  if (o.status === 'failed') {
    showProblem(message, { code: o.failure_code || 'payment_failed' });
    const a = document.createElement('a');
    a.href = `/events/${encodeURIComponent(o.event_id)}`; a.textContent = ' Back to the event';
    message.append(a);
  } else {
    say(message, '');
  }
  if (o.tickets && o.tickets.length) {
    const list = $('#tickets');
    list.replaceChildren();
    for (const t of o.tickets) {
      const li = document.createElement('li');
      li.className = 'ticket';
      const what = document.createElement('span');
      what.textContent = `${t.seat_id ? names.seats.get(t.seat_id) || t.seat_id : names.tiers.get(t.tier_id) || 'Standing'} · ${money(t.price)}${t.status === 'voided' ? ' · voided' : ''}`;
      const code = document.createElement('code');
      code.className = 'ticket-code';
      code.textContent = t.code;
      li.append(what, code);
      if (o.status === 'paid' || o.status === 'refunded') li.append(qrImage(t));
      list.append(li);
    }
  }
  const pdf = o.status === 'paid' || o.status === 'refunded';
  $('#pdf').hidden = !pdf;
  if (pdf) $('#pdf-link').onclick = () => download(o.id);
}

// The QR code: the route needs the buyer's token, so it is fetched here and shown
// as a data: URL (the page's CSP allows 'self' and data: images, no blob:).
function qrImage(t) {
  const img = document.createElement('img');
  img.className = 'ticket-qr';
  img.alt = `QR code of ticket ${t.id}`;
  img.width = 160;
  img.height = 160;
  img.dataset.ticketId = t.id;
  apiBlob(`/v1/tickets/${encodeURIComponent(t.id)}/qr.svg`)
    .then((b) => b.text())
    .then((svg) => { img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`; })
    .catch(() => { img.alt = 'The QR code could not be loaded'; });
  return img;
}

async function download(id) {
  try {
    const blob = await apiBlob(`/v1/orders/${encodeURIComponent(id)}/tickets.pdf`);
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `tickets-${id}.pdf`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  } catch (err) {
    showProblem(message, err);
  }
}

async function start() {
  if (!requireLogin()) return;
  let names = { seats: new Map(), tiers: new Map() };
  let o;
  for (let attempt = 0; ; attempt++) {
    try {
      o = await api('GET', `/v1/orders/${encodeURIComponent(orderId)}${o ? '?wait=25' : ''}`);
      if (attempt === 0) names = await seatLabels(o.event_id).catch(() => names);
      show(o, names);
      if (o.status !== 'pending_payment' && o.status !== 'payment_unknown') return;
    } catch (err) {
      showProblem(message, err);
      if (err.status && err.status < 500) return;
      await new Promise((r) => setTimeout(r, Math.min(10000, 1000 * 2 ** attempt)));
    }
  }
}

start();
