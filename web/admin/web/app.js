// xp2p client page: frpc's admin UI. Every figure comes from this client's JSON API and
// refreshes every 2 seconds; sign-in, formats and the refresh loop are xp2p.js's (shared with
// the server's dashboard).
'use strict';

const PAGES = ['overview', 'proxies', 'visitors', 'sessions', 'logs', 'config'];
const state = { page: 'overview', configDirty: false, configLoaded: false };

// Durations in the status come as nanoseconds.
const nsMs = (ns) => (ns || 0) / 1e6;

function route() {
  let page = decodeURIComponent(location.hash.replace(/^#/, ''));
  if (!PAGES.includes(page)) page = 'overview';
  state.page = page;
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('on', a.dataset.page === page);
  for (const s of document.querySelectorAll('.page')) s.hidden = s.id !== 'page-' + page;
  if (page === 'config' && !state.configDirty) loadConfig();
  refresh();
}

async function refreshPage(current) {
  const [st, logs] = await Promise.all([api('/api/status'), api('/api/logs')]);
  if (!current()) return;
  render(st, logs);
}

function render(st, logs) {
  setText('version', fmtVersion(st.version));
  setText('uptime', fmtAge((Date.now() - new Date(st.started)) / 1000));
  setText('count-proxies', String(st.proxies.length));
  setText('count-visitors', st.visitors.length ? String(st.visitors.length) : '');
  setText('count-sessions', st.sessions.length ? String(st.sessions.length) : '');
  const errors = logs.filter((l) => l.level === 'ERROR').length;
  setText('count-logs', errors ? String(errors) : '');
  renderOverview(st, logs);
  renderProxies(st.proxies);
  renderVisitors(st.visitors);
  renderSessions(st.sessions);
  renderLogs($('logs-table'), logs, true);
}

function renderOverview(st, logs) {
  const up = st.servers.filter((s) => s.connected).length;
  setText('ov-servers', up + ' of ' + st.servers.length, up);
  setText('ov-servers-sub', up === st.servers.length ? 'all connected' : up ? 'running on ' + up + ' of ' + st.servers.length : 'not connected: see the logs');
  const nat = st.nat || '';
  const m = nat.match(/^([^(]+)\s*(?:\((.*)\))?$/);
  setText('ov-nat', m ? m[1].trim() : 'not measured yet');
  let natSub = m && m[2] ? m[2] : nat ? '' : 'measured at start and every 30 minutes';
  const pm = st.portMapping;
  if (pm && pm.public) natSub = 'port ' + pm.public + ' mapped by ' + pm.protocol + (natSub ? ' · ' + natSub : '');
  else if (pm && pm.error) natSub = 'no port mapping: ' + pm.error + (natSub ? ' · ' + natSub : '');
  setText('ov-nat-sub', natSub);
  const running = st.proxies.filter((p) => p.status === 'running').length;
  setText('ov-proxies', running + ' of ' + st.proxies.length, running);
  setText('ov-proxies-sub', st.proxies.length ? 'running' : 'none: add [[proxies]] in the config');
  const direct = st.sessions.filter((s) => s.path === 'direct').length;
  setText('ov-sessions', String(st.sessions.length), st.sessions.length);
  setText('ov-sessions-sub', st.sessions.length ? direct + ' direct · ' + (st.sessions.length - direct) + ' relayed' : 'visitors open one on their first connection');

  fillBody($('servers-table'), st.servers.map((s) => el('tr', { 'data-addr': s.addr },
    el('td', null, mono(s.addr)),
    el('td', null, s.connected ? pill('online', 'connected') : pill('offline', 'not connected')),
    el('td', null, s.transport ? el('span', { class: 'tag' }, s.transport) : '–'),
    el('td', { class: 'num' }, fmtMs(nsMs(s.rtt))),
    el('td', null, s.observed ? mono(s.observed) : '–'),
    el('td', { title: s.since ? fmtDate(s.since) : '' }, s.since ? fmtAge((Date.now() - new Date(s.since)) / 1000) + ' ago' : '–'))),
  'No server in the config.');
  renderLogs($('recent-logs'), logs.slice(-5), false);
}

function renderProxies(proxies) {
  fillBody($('proxies-table'), proxies.map((p) => el('tr', { 'data-name': p.name },
    el('td', { class: 'strong' }, p.name),
    el('td', null, tag(p.type)),
    el('td', null, mono(p.local)),
    el('td', null, p.type === 'xp2p' ? el('span', { class: 'secondary' }, 'P2P service') : p.remote ? mono(p.remote) : '–'),
    el('td', null, pill(p.status === 'running' ? 'online' : 'offline', p.status)),
    el('td', { class: 'num' }, fmtInt(p.conns)),
    el('td', { class: 'num' }, inOut(p.bytesIn, p.bytesOut)))),
  'No proxies. Add [[proxies]] in the config (Config tab) to publish a service of this machine.');
}

function renderVisitors(visitors) {
  fillBody($('visitors-table'), visitors.map((v) => el('tr', { 'data-name': v.name },
    el('td', { class: 'strong' }, v.name),
    el('td', null, tag(v.type)),
    el('td', null, (v.serverUser ? v.serverUser + '.' : '') + v.service),
    el('td', null, mono(v.bind + '/' + v.protocol)),
    el('td', null, v.path ? pathPill(v.path) : el('span', { class: 'secondary' }, 'no session')),
    el('td', { class: 'num' }, fmtInt(v.sessions)),
    el('td', { class: 'num' }, fmtInt(v.conns)),
    el('td', { class: 'num' }, inOut(v.bytesIn, v.bytesOut)),
    el('td', { class: 'secondary', title: v.lastError || '' }, v.lastError || '–'))),
  'No visitors. Add [[visitors]] in the config to reach a P2P service of another machine.');
}

function pathPill(path) { return pill(path, path === 'relay' ? 'relayed' : path); }

function renderSessions(sessions) {
  fillBody($('sessions-table'), sessions.map((s) => el('tr', { 'data-id': s.id },
    el('td', null, two(s.service, s.id.slice(0, 8))),
    el('td', null, s.role),
    el('td', null, pathPill(s.path)),
    el('td', null, mono(s.local || '?'), el('span', { class: 'arrow' }, s.path === 'direct' ? '⇄' : '⇄ server ⇄'), mono(s.remote || '?')),
    el('td', { class: 'num' }, fmtMs(nsMs(s.rtt))),
    el('td', { class: 'num' }, fmtMs(nsMs(s.timeToReady))),
    el('td', { class: 'num' }, fmtMs(nsMs(s.timeToDirect))),
    el('td', { class: 'num' }, fmtBytes(s.relayBytes)),
    el('td', { class: 'num' }, fmtBytes(s.directBytes)),
    el('td', { class: 'num' }, fmtInt(s.streams)),
    el('td', { class: 'num' }, fmtAge(nsMs(s.age) / 1000)))),
  'No P2P sessions. A visitor opens one on its first connection.');
}

function renderLogs(table, logs, details) {
  const rows = logs.slice().reverse().map((l) => el('tr', { class: 'log-' + l.level.toLowerCase() },
    el('td', { class: 'mono', title: fmtDate(l.time) }, fmtClock(new Date(l.time).getTime(), true)),
    el('td', null, pill(l.level === 'ERROR' ? 'bad' : 'warn', l.level.toLowerCase())),
    el('td', null, l.message, !details && l.attrs ? el('div', { class: 'secondary' }, l.attrs) : null),
    details ? el('td', { class: 'secondary mono wrap' }, l.attrs || '') : null));
  fillBody(table, rows, 'No warnings or errors since the client started.');
}

function inOut(a, b) {
  return el('span', { class: 'split' }, el('span', { class: 'in', title: 'in: towards this machine' }, fmtBytes(a)),
    el('span', { class: 'arrow' }, '/'), el('span', { class: 'out', title: 'out: from this machine' }, fmtBytes(b)));
}

// ---------- config ----------

async function loadConfig() {
  try {
    const c = await api('/api/config');
    $('config-text').value = c.text;
    setText('config-file', c.file);
    state.configDirty = false;
    state.configLoaded = true;
    if (!c.text) result('muted', 'The client cannot show the file it started with; paste the configuration to apply.');
    else result('', '');
  } catch (e) {
    if (e instanceof AuthError) { showLogin('Your session ended; please sign in again.'); return; }
    result('bad', 'Cannot read the configuration: ' + e.message);
  }
}

function result(kind, text) {
  const r = $('config-result');
  r.className = 'result ' + kind;
  r.textContent = text;
}

async function applyConfig() {
  const btn = $('config-apply');
  btn.disabled = true;
  result('muted', 'Applying…');
  const file = ($('config-file').textContent || 'client.toml').split('/').pop();
  try {
    const res = await api('/api/reload?file=' + encodeURIComponent(file), {
      method: 'POST', headers: { 'Content-Type': 'application/toml' }, body: $('config-text').value,
    });
    const r = res.result || {};
    const parts = [];
    for (const [what, names] of [['added', r.added], ['removed', r.removed], ['changed', r.changed]]) {
      if (names && names.length) parts.push(what + ': ' + names.join(', '));
    }
    const unchanged = (r.unchanged || []).length;
    let text = parts.length ? 'Applied. ' + parts.join('; ') + '; ' + unchanged + ' unchanged (their connections stay open).' : 'Applied: nothing changed.';
    if (res.warnings && res.warnings.length) text += '\n' + res.warnings.map((w) => 'warning: ' + w).join('\n');
    result('ok', text);
    state.configDirty = false;
    refresh();
  } catch (e) {
    if (e instanceof AuthError) { showLogin('Your session ended; please sign in again.'); return; }
    result('bad', 'Not applied (the running configuration stays):\n' + e.message);
  } finally {
    btn.disabled = false;
  }
}

function start() {
  window.addEventListener('hashchange', route);
  $('config-text').addEventListener('input', () => { state.configDirty = true; });
  $('config-apply').addEventListener('click', applyConfig);
  $('config-revert').addEventListener('click', loadConfig);
  boot({ what: 'client', subtitle: 'Client', refresh: refreshPage, show: route });
}

document.addEventListener('DOMContentLoaded', start);
