// Log in / register: the tokens go to localStorage; then back where the buyer was.
import { $, api, setAuth, showProblem } from './common.js';

const form = $('#auth');
const mode = form.dataset.mode;
const next = new URLSearchParams(location.search).get('next');
// Only a path on this site: never an open redirect.
const back = next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
const sw = $('#switch');
if (sw && next) sw.href += `?next=${encodeURIComponent(back)}`;

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const email = $('#email').value.trim();
  const body = { email, password: $('#password').value };
  const button = form.querySelector('button');
  button.disabled = true;
  try {
    const t = await api('POST', mode === 'register' ? '/v1/auth/register' : '/v1/auth/login', body);
    setAuth({ email, token: t.token, refresh_token: t.refresh_token });
    location.assign(back);
  } catch (err) {
    button.disabled = false;
    showProblem($('#message'), err);
  }
});
