// xp2p dashboard: the server's pages. Every figure comes from the JSON API of the same server
// and refreshes every 2 seconds; sign-in, formats and the refresh loop are xp2p.js's (shared
// with the client's page).
'use strict';

const state = {
  page: 'overview',
  selected: null,          // proxy name shown in the detail panel
  totalRange: '15m',
  proxyRange: '1h',
  proxyType: '',
  proxyFilter: '',
  clientFilter: '',
  sort: { key: 'name', asc: true },
  last: {},                // latest answers, by endpoint
};

// ---------- navigation ----------

function route() {
  const h = decodeURIComponent(location.hash.replace(/^#/, ''));
  let [page, ...rest] = h.split('/');
  if (!['overview', 'clients', 'proxies', 'sessions'].includes(page)) page = 'overview';
  state.page = page;
  state.selected = page === 'proxies' && rest.length ? rest.join('/') : null;
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('on', a.dataset.page === page);
  for (const s of document.querySelectorAll('.page')) s.hidden = s.id !== 'page-' + page;
  if (page !== 'proxies' || !state.selected) $('proxy-detail').hidden = true;
  refresh();
}

// refreshPage fetches what the current page shows and renders it.
async function refreshPage(current) {
  const page = state.page;
  const jobs = { overview: api('/api/overview') };
  if (page === 'overview') {
    jobs.traffic = api('/api/traffic?range=' + state.totalRange);
    jobs.proxies = api('/api/proxies');
  } else if (page === 'clients') {
    jobs.clients = api('/api/clients');
  } else if (page === 'proxies') {
    jobs.proxies = api('/api/proxies');
    if (state.selected) {
      jobs.proxyTraffic = api('/api/proxies/' + encodeURIComponent(state.selected) + '/traffic?range=' + state.proxyRange)
        .catch((e) => { if (e.status === 404) return null; throw e; });
    }
  } else if (page === 'sessions') {
    jobs.sessions = api('/api/sessions');
  }
  const data = {};
  for (const [k, p] of Object.entries(jobs)) data[k] = await p;
  if (!current()) return;
  Object.assign(state.last, data);
  render(page, data);
}

function render(page, d) {
  renderHeader(d.overview);
  if (page === 'overview') renderOverview(d.overview, d.traffic, d.proxies);
  if (page === 'clients') renderClients(d.clients);
  if (page === 'proxies') renderProxies(d.proxies, d.proxyTraffic);
  if (page === 'sessions') renderSessions(d.overview, d.sessions);
}

function renderHeader(o) {
  setText('version', fmtVersion(o.version));
  setText('uptime', fmtAge(o.uptimeSeconds));
  setText('count-clients', String(o.clientsOnline));
  setText('count-proxies', String(o.proxies.online));
  setText('count-sessions', o.p2p.active ? String(o.p2p.active) : '');
}

// ---------- overview ----------

function renderOverview(o, traffic, proxies) {
  setText('ov-clients', fmtInt(o.clientsOnline), o.clientsOnline);
  setText('ov-clients-sub', o.clientsOnline === 1 ? '1 machine connected' : fmtInt(o.clientsOnline) + ' machines connected');
  setText('ov-proxies', fmtInt(o.proxies.online), o.proxies.online);
  const types = Object.entries(o.proxies.byType).filter(([, n]) => n > 0).map(([t, n]) => n + ' ' + t);
  setText('ov-proxies-sub', (types.length ? types.join(' · ') : 'none online') + (o.proxies.offline ? ' · ' + o.proxies.offline + ' offline' : ''));
  setText('ov-conns', fmtInt(o.connections), o.connections);
  const t = o.traffic;
  setText('ov-in', fmtBytes(t.in), t.in);
  setText('ov-in-sub', 'today ' + fmtBytes(t.todayIn) + ' · ' + fmtRate(t.rateIn));
  setText('ov-out', fmtBytes(t.out), t.out);
  setText('ov-out-sub', 'today ' + fmtBytes(t.todayOut) + ' · ' + fmtRate(t.rateOut));
  setText('ov-p2p', fmtBytes(t.p2p), t.p2p);
  setText('ov-p2p-sub', 'today ' + fmtBytes(t.todayP2p) + ' · ' + fmtRate(t.rateP2p));
  const p = o.p2p;
  setText('ov-sessions', fmtInt(p.active), p.active);
  const decided = p.direct + p.relayed + p.failed;
  setText('ov-sessions-sub', plural(p.attempts, 'attempt') + (decided ? ' · ' + pct(p.directRatio) + ' direct' : '') +
    (p.timeToDirectP50Ms ? ' · punch ' + fmtMs(p.timeToDirectP50Ms) : ''));
  const af = o.authFailures;
  setText('ov-auth', fmtInt(af.clients + af.dashboard), af.clients + af.dashboard);
  setText('ov-auth-sub', af.clients + ' client tokens · ' + af.dashboard + ' dashboard');

  drawChart($('chart-total'), traffic, ['in', 'out', 'p2p'], { seconds: traffic.step < 60 });

  const today = (x) => x.todayIn + x.todayOut + (x.p2p ? x.p2p.today : 0);
  const top = proxies.slice().sort((a, b) => today(b) - today(a) || a.name.localeCompare(b.name)).slice(0, 6);
  fillBody($('top-proxies'), top.map((x) => el('tr', { 'data-name': x.name },
    el('td', null, el('a', { href: '#proxies/' + encodeURIComponent(x.name) }, x.name)),
    el('td', null, tag(x.type)),
    el('td', null, pill(x.status)),
    el('td', { class: 'num' }, x.type === 'xp2p' ? p2pSplit(x.p2p.today) : inOut(x.todayIn, x.todayOut, fmtBytes)),
    el('td', { class: 'num' }, x.type === 'xp2p' ? p2pSplit(x.p2p.rate, fmtRate) : inOut(x.rateIn, x.rateOut, fmtRate)),
    el('td', { class: 'num' }, x.type === 'xp2p' ? plural(x.p2p.sessions, 'session') : fmtInt(x.connections)))),
  'No proxies yet. Clients register them with [[proxies]] in client.toml.');
}

function inOut(a, b, f) {
  return el('span', { class: 'split' }, el('span', { class: 'in', title: 'in: from users towards the client' }, f(a)),
    el('span', { class: 'arrow' }, '/'), el('span', { class: 'out', title: 'out: from the client towards users' }, f(b)));
}

function p2pSplit(v, f) {
  return el('span', { class: 'split', title: 'P2P, both directions' }, el('span', { class: 'p2p' }, (f || fmtBytes)(v)));
}

function plural(n, word) { return fmtInt(n) + ' ' + word + (n === 1 ? '' : 's'); }

// ---------- clients ----------

function renderClients(clients) {
  const f = state.clientFilter.toLowerCase();
  const rows = clients.filter((c) => !f || [c.hostname, c.id, c.address, c.user, c.nat, ...c.proxies].join(' ').toLowerCase().includes(f))
    .map((c) => el('tr', { 'data-id': c.id },
      el('td', null, two(c.hostname || c.id, (c.user ? c.user + ' · ' : '') + c.id)),
      el('td', null, mono(c.address), c.privateAddrs.length ? el('div', { class: 'secondary', title: c.privateAddrs.join('\n') }, c.privateAddrs.length + ' LAN candidate' + (c.privateAddrs.length > 1 ? 's' : '')) : null),
      el('td', null, el('span', { class: 'tag' }, c.transport)),
      el('td', null, c.nat ? c.nat : el('span', { class: 'secondary', title: 'The client did not report its NAT behaviour' }, 'not measured')),
      el('td', null, c.version),
      el('td', { title: fmtDate(c.since) }, fmtAge(c.onlineSeconds)),
      el('td', null, c.proxies.length ? el('div', { class: 'chips' }, ...c.proxies.map((p) => el('span', { class: 'chip' }, p))) : el('span', { class: 'secondary' }, 'none')),
      el('td', { class: 'num' }, String(c.sessions))));
  fillBody($('clients-table'), rows, clients.length ? 'No client matches the filter.' : 'No clients online.');
}

// ---------- proxies ----------

function proxyToday(p) { return p.type === 'xp2p' ? p.p2p.today : p.todayIn + p.todayOut; }
function proxyRate(p) { return p.type === 'xp2p' ? p.p2p.rate : p.rateIn + p.rateOut; }
function proxyTotal(p) { return p.type === 'xp2p' ? p.p2p.relayBytes + p.p2p.directBytes : p.bytesIn + p.bytesOut; }

const sorters = {
  name: (a, b) => a.name.localeCompare(b.name),
  type: (a, b) => a.type.localeCompare(b.type),
  port: (a, b) => (a.remotePort || 0) - (b.remotePort || 0),
  status: (a, b) => a.status.localeCompare(b.status),
  conns: (a, b) => (a.p2p ? a.p2p.sessions : a.connections) - (b.p2p ? b.p2p.sessions : b.connections),
  today: (a, b) => proxyToday(a) - proxyToday(b),
  total: (a, b) => proxyTotal(a) - proxyTotal(b),
  rate: (a, b) => proxyRate(a) - proxyRate(b),
};

function renderProxies(proxies, traffic) {
  const f = state.proxyFilter.toLowerCase();
  let list = proxies.filter((p) => (!state.proxyType || p.type === state.proxyType) &&
    (!f || [p.name, p.type, String(p.remotePort || ''), ...p.owners.map((o) => o.hostname + ' ' + o.id)].join(' ').toLowerCase().includes(f)));
  const cmp = sorters[state.sort.key] || sorters.name;
  list.sort((a, b) => (state.sort.asc ? 1 : -1) * (cmp(a, b) || sorters.name(a, b)));
  for (const th of $('proxies-table').tHead.rows[0].cells) {
    th.classList.toggle('sorted', th.dataset.sort === state.sort.key);
    th.classList.toggle('asc', th.dataset.sort === state.sort.key && state.sort.asc);
  }
  const rows = list.map((p) => {
    const isP2P = p.type === 'xp2p';
    const owners = p.owners.map((o) => o.hostname || o.id).join(', ');
    return el('tr', { 'data-name': p.name, class: p.name === state.selected ? 'selected' : null },
      el('td', { class: 'strong' }, p.name),
      el('td', null, tag(p.type)),
      el('td', null, isP2P ? el('span', { class: 'secondary' }, 'P2P service') : p.remotePort ? mono(':' + p.remotePort) : '–'),
      el('td', null, pill(p.status)),
      el('td', null, owners || el('span', { class: 'secondary' }, '–')),
      el('td', { class: 'num', title: isP2P ? 'active P2P sessions' : fmtInt(p.totalConnections) + ' in total' }, isP2P ? plural(p.p2p.sessions, 'session') : fmtInt(p.connections)),
      el('td', { class: 'num', 'data-bytes': proxyToday(p) }, isP2P ? p2pSplit(p.p2p.today) : inOut(p.todayIn, p.todayOut, fmtBytes)),
      el('td', { class: 'num' }, isP2P ? p2pSplit(p.p2p.relayBytes + p.p2p.directBytes) : inOut(p.bytesIn, p.bytesOut, fmtBytes)),
      el('td', { class: 'num' }, fmtRate(proxyRate(p))));
  });
  fillBody($('proxies-table'), rows, proxies.length ? 'No proxy matches the filter.' : 'No proxies yet. Clients register them with [[proxies]] in client.toml.');
  renderProxyDetail(proxies.find((p) => p.name === state.selected), traffic);
}

function fact(label, value) { return el('div', null, el('span', null, label), value); }

function renderProxyDetail(p, traffic) {
  const panel = $('proxy-detail');
  if (!state.selected) { panel.hidden = true; return; }
  panel.hidden = false;
  setText('pd-name', state.selected);
  if (!p) {
    $('pd-type').hidden = true;
    $('pd-status').replaceWith(Object.assign(pill('offline', 'unknown'), { id: 'pd-status' }));
    $('pd-facts').replaceChildren(el('div', { class: 'muted' }, 'The server does not know this proxy (any more).'));
    $('chart-proxy').replaceChildren();
    $('pd-legend').replaceChildren();
    return;
  }
  const type = $('pd-type');
  type.hidden = false;
  type.className = 'tag ' + p.type;
  type.textContent = p.type;
  $('pd-status').replaceWith(Object.assign(pill(p.status), { id: 'pd-status' }));
  const owners = p.owners.map((o) => (o.hostname || o.id) + ' (' + o.address + ')').join(', ') || '–';
  const facts = [];
  if (p.type === 'xp2p') {
    facts.push(fact('Service', 'P2P, reached by visitors'),
      fact('Provider', owners),
      fact('Active sessions', String(p.p2p.sessions)),
      fact('Today', fmtBytes(p.p2p.today)),
      fact('Relayed', fmtBytes(p.p2p.relayBytes)),
      fact('Direct', fmtBytes(p.p2p.directBytes)),
      fact('Rate', fmtRate(p.p2p.rate)));
  } else {
    facts.push(fact('Remote port', p.remotePort ? String(p.remotePort) : '–'),
      fact('Client', owners),
      fact('Connections', fmtInt(p.connections) + ' open · ' + fmtInt(p.totalConnections) + ' total'),
      fact('Today', fmtBytes(p.todayIn) + ' in · ' + fmtBytes(p.todayOut) + ' out'),
      fact('Total', fmtBytes(p.bytesIn) + ' in · ' + fmtBytes(p.bytesOut) + ' out'),
      fact('Rate', fmtRate(p.rateIn) + ' in · ' + fmtRate(p.rateOut) + ' out'));
  }
  $('pd-facts').replaceChildren(...facts);
  const keys = p.type === 'xp2p' ? ['p2p'] : ['in', 'out'];
  $('pd-legend').replaceChildren(...keys.map((k) => el('span', null, el('i', { class: 'dot ' + k }), k === 'p2p' ? 'P2P (both directions)' : k)));
  if (traffic) drawChart($('chart-proxy'), traffic, keys, { seconds: traffic.step < 60 });
}

// ---------- P2P sessions ----------

function sideName(s) { return s.hostname || s.clientId; }

function renderSessions(o, s) {
  const p = o.p2p;
  setText('ss-active', fmtInt(p.active), p.active);
  setText('ss-active-sub', fmtInt(p.attempts) + ' paired since start');
  const decided = p.direct + p.relayed + p.failed;
  setText('ss-direct', decided ? pct(p.directRatio) : '–');
  setText('ss-direct-sub', p.direct + ' direct · ' + p.relayed + ' relay only · ' + p.failed + ' failed');
  setText('ss-punch', fmtMs(p.timeToDirectP50Ms));
  setText('ss-punch-sub', p.timeToDirectP90Ms ? 'median · 90% under ' + fmtMs(p.timeToDirectP90Ms) : 'median hole-punching time');
  setText('ss-ready', fmtMs(p.timeToReadyP50Ms));

  fillBody($('sessions-table'), s.active.map((x) => el('tr', { 'data-id': x.id },
    el('td', null, two(x.service, x.id.slice(0, 8))),
    el('td', null, sideName(x.visitor), el('span', { class: 'arrow' }, '→'), sideName(x.provider)),
    el('td', null, pill(x.path, x.path === 'relay' ? 'relayed' : x.path)),
    el('td', null, mono(x.visitor.addr || '?'), el('span', { class: 'arrow' }, x.path === 'direct' ? '⇄' : '⇄ server ⇄'), mono(x.provider.addr || '?')),
    el('td', { class: 'num' }, fmtMs(x.rttMs)),
    el('td', { class: 'num' }, fmtMs(x.timeToReadyMs)),
    el('td', { class: 'num' }, fmtMs(x.timeToDirectMs)),
    el('td', { class: 'num' }, fmtBytes(x.relayBytes)),
    el('td', { class: 'num' }, fmtBytes(x.directBytes)),
    el('td', { class: 'num' }, fmtAge(x.ageSeconds)))), 'No active P2P sessions. Visitors open one on their first connection.');

  const now = Date.now();
  fillBody($('ended-table'), s.ended.map((x) => el('tr', { 'data-id': x.id },
    el('td', null, two(x.service, x.id.slice(0, 8))),
    el('td', null, sideName(x.visitor), el('span', { class: 'arrow' }, '→'), sideName(x.provider)),
    el('td', null, pill(x.path, x.path === 'relay' ? 'relayed' : x.path === 'connecting' ? 'never ready' : x.path)),
    el('td', { class: 'num' }, fmtMs(x.timeToReadyMs)),
    el('td', { class: 'num' }, fmtMs(x.timeToDirectMs)),
    el('td', { class: 'num' }, fmtBytes(x.relayBytes + x.directBytes)),
    el('td', { class: 'num' }, fmtAge(x.ageSeconds)),
    el('td', { class: 'num', title: fmtDate(x.ended) }, fmtAge((now - new Date(x.ended)) / 1000) + ' ago'))), 'None yet.');
}

// ---------- chart (SVG, drawn by hand) ----------

const SVGNS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

// niceScale returns [max, step] for an axis of byte rates: round steps in the unit of the data.
function niceScale(maxValue) {
  if (!(maxValue > 0)) return [1024, 256];
  const [v, i] = scaled(maxValue);
  const unit = Math.pow(1024, i);
  const raw = v / 4;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  const step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
  const top = Math.ceil(v / step) * step;
  return [top * unit, step * unit];
}

function drawChart(box, series, keys, opts) {
  const W = Math.max(320, box.clientWidth);
  const H = Math.max(160, box.clientHeight);
  const pad = { l: 70, r: 12, t: 10, b: 26 };
  const n = series.t.length;
  const stepMs = (series.step || 60) * 1000;
  let maxV = 0;
  for (const k of keys) for (const v of series[k]) maxV = Math.max(maxV, v);
  const [top, step] = niceScale(maxV);
  const t0 = n ? series.t[0] : Date.now() - 15 * 60000;
  const t1 = n ? series.t[n - 1] + stepMs : Date.now();
  const x = (t) => pad.l + (t - t0) / Math.max(1, t1 - t0) * (W - pad.l - pad.r);
  const y = (v) => pad.t + (1 - v / top) * (H - pad.t - pad.b);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': 'Traffic over time' });

  const axis = svg('g', { class: 'axis' });
  for (let v = 0; v <= top + step / 2; v += step) {
    axis.append(svg('line', { class: 'gridline', x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v) }));
    const label = svg('text', { x: pad.l - 8, y: y(v) + 4, 'text-anchor': 'end' });
    label.textContent = fmtRate(v);
    axis.append(label);
  }
  const span = t1 - t0;
  const tickEvery = [10e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 10800e3, 21600e3]
    .find((s) => span / s <= Math.max(3, Math.floor((W - pad.l) / 90))) || 21600e3;
  let lastLabel = '';
  for (let t = Math.ceil(t0 / tickEvery) * tickEvery; t <= t1; t += tickEvery) {
    const text = fmtClock(t, tickEvery < 60e3);
    if (text === lastLabel) continue;
    lastLabel = text;
    const label = svg('text', { x: x(t), y: H - 6, 'text-anchor': 'middle' });
    label.textContent = text;
    axis.append(label);
  }
  root.append(axis);

  const mid = (i) => x(series.t[i] + stepMs / 2);
  for (const k of keys) {
    if (!n) break;
    // Each point is the rate over its step. A lone point spans its whole step, so that it shows.
    const px = n === 1 ? [x(series.t[0]), x(series.t[0] + stepMs)] : null;
    let d = '';
    if (px) d = `M${px[0].toFixed(1)},${y(series[k][0]).toFixed(1)}L${px[1].toFixed(1)},${y(series[k][0]).toFixed(1)}`;
    else for (let i = 0; i < n; i++) d += (i ? 'L' : 'M') + mid(i).toFixed(1) + ',' + y(series[k][i]).toFixed(1);
    const xs = px || [mid(0), mid(n - 1)];
    const area = d + `L${xs[1].toFixed(1)},${y(0)}L${xs[0].toFixed(1)},${y(0)}Z`;
    root.append(svg('path', { class: 'area s-' + k, d: area }));
    root.append(svg('path', { class: 'line s-' + k, d }));
  }
  if (maxV === 0) {
    const note = svg('text', { class: 'empty-note', x: (pad.l + W - pad.r) / 2, y: (pad.t + H - pad.b) / 2, 'text-anchor': 'middle' });
    note.textContent = n ? 'No traffic in this range' : 'Collecting samples…';
    root.append(note);
  }
  const cursor = svg('line', { class: 'cursor', y1: pad.t, y2: H - pad.b, visibility: 'hidden' });
  root.append(cursor);

  const tip = el('div', { class: 'tooltip', hidden: '' });
  const show = (clientX) => {
    if (!n) return;
    const r = root.getBoundingClientRect();
    const px = (clientX - r.left) * W / r.width;
    let best = 0;
    for (let i = 1; i < n; i++) if (Math.abs(mid(i) - px) < Math.abs(mid(best) - px)) best = i;
    cursor.setAttribute('x1', mid(best));
    cursor.setAttribute('x2', mid(best));
    cursor.setAttribute('visibility', 'visible');
    tip.replaceChildren(el('div', { class: 't' }, fmtClock(series.t[best], stepMs < 60e3) + (stepMs >= 60e3 ? ' – ' + fmtClock(series.t[best] + stepMs) : '')),
      ...keys.map((k) => el('div', null, el('i', { class: 'dot ' + k }), (k === 'p2p' ? 'P2P' : k) + ' ' + fmtRate(series[k][best]))));
    tip.hidden = false;
    const left = mid(best) * r.width / W;
    tip.style.left = Math.min(r.width - tip.offsetWidth - 4, Math.max(0, left + 12)) + 'px';
    tip.style.top = '8px';
    box.dataset.hoverX = String(clientX);
  };
  root.addEventListener('mousemove', (e) => show(e.clientX));
  root.addEventListener('mouseleave', () => {
    cursor.setAttribute('visibility', 'hidden');
    tip.hidden = true;
    delete box.dataset.hoverX;
  });
  box.replaceChildren(root, tip);
  box.dataset.max = String(maxV);
  if (box.dataset.hoverX) show(Number(box.dataset.hoverX));
}

// ---------- wiring ----------

function segment(id, attr, onPick) {
  $(id).addEventListener('click', (e) => {
    const b = e.target.closest('button');
    if (!b) return;
    for (const x of $(id).querySelectorAll('button')) x.classList.toggle('on', x === b);
    onPick(b.dataset[attr]);
  });
}

function start() {
  window.addEventListener('hashchange', route);
  segment('range-total', 'range', (r) => { state.totalRange = r; refresh(); });
  segment('range-proxy', 'range', (r) => { state.proxyRange = r; refresh(); });
  segment('type-filter', 'type', (t) => { state.proxyType = t; if (state.last.proxies) renderProxies(state.last.proxies, state.last.proxyTraffic); });
  $('proxy-filter').addEventListener('input', (e) => { state.proxyFilter = e.target.value; if (state.last.proxies) renderProxies(state.last.proxies, state.last.proxyTraffic); });
  $('client-filter').addEventListener('input', (e) => { state.clientFilter = e.target.value; if (state.last.clients) renderClients(state.last.clients); });
  $('proxies-table').tHead.addEventListener('click', (e) => {
    const th = e.target.closest('th[data-sort]');
    if (!th) return;
    const key = th.dataset.sort;
    state.sort = { key, asc: state.sort.key === key ? !state.sort.asc : key === 'name' || key === 'type' || key === 'port' };
    if (state.last.proxies) renderProxies(state.last.proxies, state.last.proxyTraffic);
  });
  $('proxies-table').tBodies[0].addEventListener('click', (e) => {
    const tr = e.target.closest('tr[data-name]');
    if (!tr) return;
    location.hash = tr.dataset.name === state.selected ? 'proxies' : 'proxies/' + encodeURIComponent(tr.dataset.name);
  });
  $('pd-close').addEventListener('click', () => { location.hash = 'proxies'; });
  window.addEventListener('resize', () => {
    if (state.page === 'overview' && state.last.traffic) drawChart($('chart-total'), state.last.traffic, ['in', 'out', 'p2p'], { seconds: state.last.traffic.step < 60 });
  });
  boot({ what: 'server', subtitle: 'Server dashboard', refresh: refreshPage, show: route });
}

document.addEventListener('DOMContentLoaded', start);
