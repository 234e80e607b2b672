// xp2p's web front ends (the server's dashboard, the client's page) share this script: number
// and time formats, text-only DOM helpers, calls to the JSON API of the same origin, the sign-in
// card, and the refresh loop with its live indicator. Plain JavaScript, no framework, no external
// resources. A page's own script (static/app.js) calls xp2p.boot() with what it shows.
'use strict';

const $ = (id) => document.getElementById(id);

// ---------- formatting ----------

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];

function scaled(n) {
  let i = 0;
  while (Math.abs(n) >= 1024 && i < UNITS.length - 1) { n /= 1024; i++; }
  return [n, i];
}

function fmtBytes(n) {
  if (n == null || !isFinite(n)) return '–';
  if (n === 0) return '0 B';
  const [v, i] = scaled(n);
  const digits = i === 0 ? 0 : v < 10 ? 2 : v < 100 ? 1 : 0;
  return v.toFixed(digits) + ' ' + UNITS[i];
}

function fmtRate(n) {
  if (n == null || !isFinite(n) || n < 0.5) return '0 B/s';
  return fmtBytes(n) + '/s';
}

function fmtMs(ms) {
  if (!ms) return '–';
  if (ms < 1) return Math.round(ms * 1000) + ' µs';
  if (ms < 10) return ms.toFixed(2) + ' ms';
  if (ms < 1000) return ms.toFixed(ms < 100 ? 1 : 0) + ' ms';
  return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
}

function fmtAge(sec) {
  sec = Math.max(0, Math.floor(sec || 0));
  if (sec < 60) return sec + ' s';
  const m = Math.floor(sec / 60);
  if (m < 60) return m + ' min';
  const h = Math.floor(m / 60);
  if (h < 24) return h + ' h ' + (m % 60) + ' min';
  const d = Math.floor(h / 24);
  return d + ' d ' + (h % 24) + ' h';
}

function fmtInt(n) { return (n || 0).toLocaleString('en-US'); }

function fmtClock(ms, seconds) {
  const d = new Date(ms);
  const p = (x) => String(x).padStart(2, '0');
  return p(d.getHours()) + ':' + p(d.getMinutes()) + (seconds ? ':' + p(d.getSeconds()) : '');
}

function fmtDate(iso) {
  const d = new Date(iso);
  return isNaN(d) ? '' : d.toLocaleString();
}

function pct(x) { return Math.round(x * 100) + '%'; }

// ---------- DOM helpers (text only: names come from clients and are never parsed as HTML) ----------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v);
    }
  }
  for (const c of children) {
    if (c == null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function setText(id, text, raw) {
  const e = $(id);
  if (!e) return;
  if (e.textContent !== text) e.textContent = text;
  if (raw !== undefined) e.dataset.value = String(raw);
}

function fillBody(table, rows, emptyText) {
  const tbody = table.tBodies[0];
  const cols = table.tHead.rows[0].cells.length;
  if (!rows.length) {
    rows = [el('tr', null, el('td', { class: 'empty', colspan: cols }, emptyText))];
  }
  tbody.replaceChildren(...rows);
}

function tag(type) { return el('span', { class: 'tag ' + type }, type); }
function pill(kind, text) { return el('span', { class: 'pill ' + kind }, text || kind); }
function mono(text) { return el('span', { class: 'mono' }, text); }
function two(main, secondary) {
  return el('div', null, el('div', { class: 'strong' }, main), secondary ? el('div', { class: 'secondary' }, secondary) : null);
}

// ---------- API ----------

class AuthError extends Error {}

// apiURL resolves an API path against the page's origin. A page opened as
// http://user:password@host:7500/ (as frp's panel is) has the credentials in its own URL, and
// fetch() refuses any URL that carries some, so a relative path must not inherit them.
function apiURL(path) { return new URL(path, location.origin).href; }

// urlCredentials are the user and password in the page's own URL, if it was opened with some
// (document.URL keeps them; location.href does not).
function urlCredentials() {
  const u = new URL(document.URL);
  if (!u.username && !u.password) return null;
  return { user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) };
}

async function api(path, opts = {}) {
  const res = await fetch(apiURL(path), {
    method: opts.method || 'GET',
    credentials: 'same-origin',
    cache: 'no-store',
    headers: Object.assign({ 'X-Requested-With': 'xp2p' }, opts.headers || {}),
    body: opts.body,
  });
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  if (res.status === 401 && !opts.login) throw new AuthError((body && body.error) || 'authentication required');
  if (!res.ok) {
    const err = new Error((body && body.error) || res.status + ' ' + res.statusText);
    err.status = res.status;
    throw err;
  }
  return body;
}

// ---------- the refresh loop ----------

// poller runs a page's refresh function every REFRESH_MS while the page is shown. A refresh
// started by an older generation (a page switch, a sign-out) drops its answers.
const REFRESH_MS = 2000;
const poller = { timer: null, generation: 0, fn: null };

function stopPolling() {
  poller.generation++;
  clearTimeout(poller.timer);
  poller.timer = null;
}

// refresh calls the page's refresh function (async, given a current() that tells whether its
// answers are still wanted), shows whether the endpoint answered, and schedules the next one.
async function refresh() {
  stopPolling();
  const gen = poller.generation;
  const current = () => gen === poller.generation;
  try {
    await poller.fn(current);
    if (!current()) return;
    setLive(true);
  } catch (e) {
    if (!current()) return;
    if (e instanceof AuthError) { showLogin('Your session ended; please sign in again.'); return; }
    setLive(false, e.message);
  }
  if (current()) poller.timer = setTimeout(refresh, REFRESH_MS);
}

function setLive(ok, why) {
  const live = $('live');
  if (!live) return;
  live.classList.toggle('ok', ok);
  live.classList.toggle('bad', !ok);
  setText('live-text', ok ? 'live' : 'disconnected');
  live.title = ok ? 'Figures refresh every 2 seconds' : 'Cannot reach the ' + xp2p.what + ': ' + (why || '') + '. Retrying.';
}

// ---------- sign-in ----------

const xp2p = { what: 'server', authRequired: false, show: null };

function loginCard(subtitle) {
  const form = el('form', { id: 'login-form', class: 'login-card', autocomplete: 'on' },
    el('div', { class: 'brand big' }, el('img', { src: '/favicon.svg', alt: '', width: 28, height: 28 }), ' xp2p'),
    el('p', { class: 'muted' }, subtitle),
    el('label', { for: 'login-user' }, 'User'),
    el('input', { id: 'login-user', name: 'user', autocomplete: 'username' }),
    el('label', { for: 'login-password' }, 'Password'),
    el('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password' }),
    el('div', { id: 'login-error', class: 'login-error', role: 'alert' }),
    el('button', { id: 'login-submit', type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', submitLogin);
  $('login').replaceChildren(form);
}

function showLogin(message) {
  stopPolling();
  $('app').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  (($('login-user').value) ? $('login-password') : $('login-user')).focus();
}

async function login(user, password) {
  const me = await api('/api/login', {
    method: 'POST', login: true,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user, password }),
  });
  securityBanner(me && me.warning);
}

// securityBanner shows the endpoint's security warning (a well-known password on an address
// other machines reach) in red above every page, for as long as the browser is signed in.
function securityBanner(text) {
  let b = $('security-banner');
  if (!text) { if (b) b.remove(); return; }
  if (!b) {
    b = document.createElement('div');
    b.id = 'security-banner';
    b.className = 'security-banner';
    b.setAttribute('role', 'alert');
    document.body.prepend(b);
  }
  b.textContent = text;
}

async function submitLogin(ev) {
  ev.preventDefault();
  const btn = $('login-submit');
  btn.disabled = true;
  $('login-error').textContent = '';
  try {
    await login($('login-user').value, $('login-password').value);
    $('login-password').value = '';
    showApp();
  } catch (e) {
    $('login-error').textContent = e.status === 401 ? 'Wrong user or password.' : e.message;
    $('login-password').select();
  } finally {
    btn.disabled = false;
  }
}

async function logout() {
  try { await api('/api/logout', { method: 'POST' }); } catch (e) { /* gone anyway */ }
  securityBanner('');
  showLogin('Signed out.');
}

function showApp() {
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = !xp2p.authRequired;
  xp2p.show();
}

function fmtVersion(v) { return /^\d/.test(v) ? 'v' + v : v; }

// boot signs the browser in and shows the page. opts: what (the endpoint, in messages),
// subtitle (under the logo of the sign-in card), refresh (async function(current) that fetches
// and renders what the page shows), show (called each time the page appears after sign-in).
async function boot(opts) {
  xp2p.what = opts.what;
  xp2p.show = opts.show;
  poller.fn = opts.refresh;
  loginCard(opts.subtitle);
  $('logout').addEventListener('click', logout);
  try {
    const me = await api('/api/me');
    xp2p.authRequired = me.authRequired;
    setText('version', fmtVersion(me.version));
    if (me.authenticated) { securityBanner(me.warning); showApp(); return; }
    const creds = urlCredentials();
    if (creds) {
      // Opened as http://user:password@host/: sign in with those, as frp users expect.
      $('login-user').value = creds.user;
      try {
        await login(creds.user, creds.password);
        showApp();
        return;
      } catch (e) {
        showLogin(e.status === 401 ? 'The user and password in the address are wrong.' : e.message);
        return;
      }
    }
    showLogin();
  } catch (e) {
    showLogin('Cannot reach the ' + opts.what + ': ' + e.message);
  }
}
