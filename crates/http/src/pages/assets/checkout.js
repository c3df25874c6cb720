// Checkout: email and a test card, one Idempotency-Key per (hold, what was sent),
// so a double click or a retry after a lost answer pays once.
import { $, api, auth, requireLogin, showProblem, say, money, countdown } from './common.js';

const holdId = $('#checkout').dataset.holdId;
const message = $('#message');

function key(body) {
  const k = `boxoffice.pay.${holdId}.${JSON.stringify(body)}`;
  let v = sessionStorage.getItem(k);
  if (!v) { v = crypto.randomUUID(); sessionStorage.setItem(k, v); }
  return v;
}

async function start() {
  if (!requireLogin()) return;
  const a = auth();
  if (a && a.email) $('#email').value = a.email;
  const form = $('#pay');
  let h;
  try {
    h = await api('GET', `/v1/holds/${encodeURIComponent(holdId)}`);
  } catch (err) { showProblem(message, err); form.hidden = true; return; }
  $('#total').textContent = money(h.total);
  $('#count').textContent = `(${h.quantity} ticket${h.quantity > 1 ? 's' : ''})`;
  const over = () => { showProblem(message, { code: 'hold_expired' }); form.hidden = true; };
  if (h.status !== 'active') { over(); return; }
  countdown($('#countdown'), h.expires_at, over);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { email: $('#email').value.trim(), payment: { token: form.card.value } };
    const button = $('#pay-button');
    button.disabled = true;
    say(message, 'Sending your payment…');
    try {
      const o = await api('POST', `/v1/holds/${encodeURIComponent(holdId)}/checkout`, body, { 'idempotency-key': key(body) });
      location.assign(`/orders/${encodeURIComponent(o.order_id)}`);
    } catch (err) {
      button.disabled = false;
      showProblem(message, err);
    }
  });
}

start();
