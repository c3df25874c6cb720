// The hold page: what is kept, for how long (a live countdown), and the way on.
import { $, api, requireLogin, showProblem, say, money, countdown, seatLabels } from './common.js';

const holdId = $('#hold').dataset.holdId;
const message = $('#message');

async function start() {
  if (!requireLogin()) return;
  let h;
  try {
    h = await api('GET', `/v1/holds/${encodeURIComponent(holdId)}`);
  } catch (err) {
    showProblem(message, err);
    $('#to-checkout').hidden = true; $('#release').hidden = true;
    return;
  }
  $('#total').textContent = money(h.total);
  const back = `/events/${encodeURIComponent(h.event_id)}`;
  const ev = await api('GET', back.replace('/events/', '/v1/events/')).catch(() => null);
  if (ev) $('#event-name').textContent = ev.name;
  const items = $('#items');
  const names = await seatLabels(h.event_id).catch(() => ({ seats: new Map(), tiers: new Map() }));
  if (h.seats.length) {
    for (const id of h.seats) {
      const li = document.createElement('li');
      li.textContent = names.seats.get(id) || id;
      items.append(li);
    }
  } else {
    const li = document.createElement('li');
    li.textContent = `${h.quantity} × ${names.tiers.get(h.tier_id) || 'standing'}`;
    items.append(li);
  }
  const over = () => {
    showProblem(message, { code: 'hold_expired' });
    const a = document.createElement('a');
    a.href = back; a.textContent = ' Choose again';
    message.append(a);
    $('#to-checkout').hidden = true; $('#release').hidden = true;
  };
  if (h.status !== 'active') {
    if (h.status === 'converted') { say(message, 'These seats are already bought: see My orders.'); $('#to-checkout').hidden = true; $('#release').hidden = true; return; }
    over();
    return;
  }
  countdown($('#countdown'), h.expires_at, over);
  $('#release').addEventListener('click', async () => {
    try {
      await api('DELETE', `/v1/holds/${encodeURIComponent(holdId)}`);
      location.assign(back);
    } catch (err) { showProblem(message, err); }
  });
}

start();
