// The sparkgw dashboard: plain JavaScript over the REST API. Every view has
// its own address (#/jobs?state=FAILED&sort=age, #/jobs/ID, #/fleet,
// #/usage?window=7d&by=user), so links can be shared and back and forward
// work. Jobs are polled with the updatedSince cursor: an open page costs the
// server a small indexed read every two seconds however many jobs there are.
'use strict';

const STATES = ['QUEUED', 'DISPATCHING', 'SUBMITTED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLING', 'CANCELLED', 'REJECTED'];
const POLL_MS = 2000;
const PAGE = 200;
const $ = (sel) => document.querySelector(sel);
const jobs = new Map(); // id -> job
let cursor = null;
let older = null; // the continue token of the next page of older jobs
let loadedSelector = null;
let shown = null; // id of the job in the detail view
let listHash = '#/jobs';
let sort = { key: 'age', desc: false };

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const k of kids.flat()) e.append(k instanceof Node ? k : document.createTextNode(k == null ? '' : String(k)));
  return e;
}

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers);
  const token = localStorage.getItem('sparkgw-token');
  if (token) headers.Authorization = 'Bearer ' + token;
  const res = await fetch(path, Object.assign({}, opts, { headers }));
  const text = await res.text();
  const body = text ? JSON.parse(text) : null;
  if (!res.ok) throw Object.assign(new Error((body && body.detail) || res.statusText), { status: res.status });
  return body;
}

function age(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm' + String(s % 60).padStart(2, '0') + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h' + String(Math.floor(s % 3600 / 60)).padStart(2, '0') + 'm';
  return Math.floor(s / 86400) + 'd';
}

function cores(job) {
  const d = (job.spec && job.spec.driver) || {}, e = (job.spec && job.spec.executor) || {};
  const n = e.instances == null ? 2 : e.instances;
  return (d.cores || 1) + n * (e.cores || 1);
}

function finished(job) {
  return ['SUCCEEDED', 'FAILED', 'CANCELLED', 'REJECTED'].includes(job.state);
}

// A failure's reason (OOMKilled, exit code, DriverDeleted), else why it waits.
function reasonOf(job) {
  if (['FAILED', 'REJECTED', 'CANCELLED'].includes(job.state)) return job.reason || '';
  return job.waitReason || '';
}

// ---- addresses ----

function parseHash() {
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || '') };
}

// The list's filters and sort, as its address says them.
function listParams() {
  const p = new URLSearchParams();
  for (const [id, key] of [['#f-state', 'state'], ['#f-team', 'team'], ['#f-selector', 'selector'], ['#f-text', 'q']]) {
    const v = $(id).value.trim();
    if (v) p.set(key, v);
  }
  if (sort.key !== 'age' || sort.desc) p.set('sort', (sort.desc ? '-' : '') + sort.key);
  return p;
}

// Filters typed in change the address without adding to the history.
function saveListAddress() {
  const q = listParams().toString();
  listHash = '#/jobs' + (q ? '?' + q : '');
  history.replaceState(null, '', listHash);
}

function route() {
  const { parts, params } = parseHash();
  if (parts[0] === 'jobs' && parts[1]) return openJob(parts[1]);
  shown = null;
  if (parts[0] === 'fleet') return show('fleet');
  if (parts[0] === 'usage') {
    $('#u-window').value = params.get('window') || '24h';
    $('#u-by').value = params.get('by') || 'team';
    if (!$('#u-window').value) $('#u-window').value = '24h'; // an address naming no such option
    if (!$('#u-by').value) $('#u-by').value = 'team';
    return show('usage');
  }
  $('#f-state').value = params.get('state') || '';
  $('#f-team').value = params.get('team') || '';
  $('#f-selector').value = params.get('selector') || '';
  $('#f-text').value = params.get('q') || '';
  const s = params.get('sort') || 'age';
  sort = { key: s.replace(/^-/, ''), desc: s.startsWith('-') };
  listHash = location.hash || '#/jobs';
  $('#back').href = listHash;
  show('jobs');
  if ($('#f-selector').value.trim() !== loadedSelector) loadJobs(true); else renderJobs();
}

// ---- jobs ----

function matches(job) {
  const state = $('#f-state').value, team = $('#f-team').value.trim(), text = $('#f-text').value.trim();
  if (state && job.state !== state) return false;
  if (team && (job.labels || {}).team !== team) return false;
  if (text && !job.name.includes(text)) return false;
  return true;
}

const SORTS = {
  name: (j) => j.name, state: (j) => STATES.indexOf(j.state), reason: (j) => reasonOf(j), team: (j) => (j.labels || {}).team || '',
  placement: (j) => (j.placement ? j.placement.cluster + '/' + j.placement.namespace : ''),
  age: (j) => -Date.parse(j.createdAt), duration: (j) => (finished(j) ? Date.parse(j.updatedAt) - Date.parse(j.createdAt) : -1),
  cores: (j) => cores(j),
};

function renderJobs() {
  const body = $('#job-table tbody'), by = SORTS[sort.key] || SORTS.age;
  const rows = [...jobs.values()].filter(matches).sort((a, b) => {
    const x = by(a), y = by(b);
    const c = typeof x === 'number' ? x - y : String(x).localeCompare(String(y));
    return (sort.desc ? -c : c) || b.createdAt.localeCompare(a.createdAt);
  });
  const now = Date.now();
  for (const th of document.querySelectorAll('#job-table th')) {
    th.classList.toggle('sorted', th.dataset.sort === sort.key);
    th.classList.toggle('desc', th.dataset.sort === sort.key && sort.desc);
  }
  body.replaceChildren(...rows.map((j) => {
    const created = Date.parse(j.createdAt), updated = Date.parse(j.updatedAt);
    const p = j.placement;
    return el('tr', { 'data-id': j.id, onclick: () => { location.hash = '#/jobs/' + encodeURIComponent(j.id); } },
      el('td', {}, j.name, el('div', { class: 'note' }, j.id)),
      el('td', {}, el('span', { class: 'state ' + j.state }, j.state)),
      el('td', { class: 'reason' }, reasonOf(j)),
      el('td', {}, (j.labels || {}).team || ''),
      el('td', {}, p ? [p.pool, p.cluster, p.namespace].filter(Boolean).join(' / ') : ''),
      el('td', {}, age(now - created)),
      el('td', {}, finished(j) ? age(updated - created) : ''),
      el('td', {}, cores(j)));
  }));
  $('#jobs-note').textContent = rows.length ? '' : 'No jobs match.';
  $('#jobs-count').textContent = jobs.size + ' jobs loaded, newest first' + (older ? '; older ones on demand' : '');
  $('#more').hidden = !older;
}

function listQuery(extra) {
  const q = new URLSearchParams(Object.assign({ limit: String(PAGE) }, extra));
  const sel = $('#f-selector').value.trim();
  if (sel) q.set('labelSelector', sel);
  return q;
}

// The first read takes the newest page; then only what changed.
async function loadJobs(reset) {
  try {
    if (reset || cursor === null) {
      loadedSelector = $('#f-selector').value.trim();
      const list = await api('/api/v1/jobs?' + listQuery());
      jobs.clear();
      for (const j of list.items) jobs.set(j.id, j);
      older = list.continue || null;
      cursor = String(maxRv());
    } else {
      for (;;) {
        const page = await api('/api/v1/jobs?' + listQuery({ limit: '500', updatedSince: cursor }));
        for (const j of page.items) jobs.set(j.id, j);
        cursor = page.cursor;
        if (page.items.length < 500) break;
      }
      // Why a queued job waits is the dispatcher's live view, not a
      // stored change: while jobs wait, the newest page is read again.
      if ([...jobs.values()].some((j) => j.state === 'QUEUED')) {
        const list = await api('/api/v1/jobs?' + listQuery());
        for (const j of list.items) jobs.set(j.id, j);
      }
    }
    renderJobs();
    if (shown && jobs.has(shown)) renderSummary(jobs.get(shown));
  } catch (err) {
    $('#jobs-note').textContent = err.status === 401 ? 'Enter a token above.' : 'Cannot list jobs: ' + err.message;
  }
}

async function loadOlder() {
  if (!older) return;
  try {
    const page = await api('/api/v1/jobs?' + listQuery({ continue: older }));
    for (const j of page.items) if (!jobs.has(j.id)) jobs.set(j.id, j);
    older = page.continue || null;
    renderJobs();
  } catch (err) {
    $('#jobs-note').textContent = 'Cannot list older jobs: ' + err.message;
  }
}

function maxRv() {
  let rv = 0;
  for (const j of jobs.values()) rv = Math.max(rv, Number(j.resourceVersion));
  return rv;
}

function show(tab) {
  for (const s of document.querySelectorAll('.tab')) s.classList.toggle('on', s.id === tab);
  for (const b of document.querySelectorAll('nav a')) b.classList.toggle('on', b.dataset.tab === tab || (tab === 'detail' && b.dataset.tab === 'jobs'));
  if (tab === 'fleet') loadFleet();
  if (tab === 'usage') loadUsage();
}

// ---- one job ----

function renderSummary(j) {
  $('#d-title').textContent = j.name + ' (' + j.id + ')';
  $('#d-summary').replaceChildren(el('span', { class: 'state ' + j.state }, j.state), ' ',
    j.reason || '', j.message ? ': ' + j.message : '', j.run > 1 ? ' · run ' + j.run : '',
    j.waitReason ? ' · waits: ' + j.waitReason : '');
  $('#d-cancel').disabled = finished(j) || j.state === 'CANCELLING';
  const ui = $('#d-ui');
  // Through the gateway's proxy: the running driver's Spark UI, and after
  // the driver ends the History Server's page of the application.
  if (j.driver && j.links.ui) {
    ui.href = j.links.ui;
    ui.textContent = j.state === 'RUNNING' ? 'Spark UI' : finished(j) ? 'History Server' : 'Spark UI (when it runs)';
    ui.style.display = '';
  } else ui.style.display = 'none';
  const s = j.spec || {}, d = s.driver || {}, e = s.executor || {};
  const labels = Object.entries(j.labels || {}).map(([k, v]) => el('span', { class: 'label' }, k + '=' + v));
  const facts = [
    ['User', j.user], ['Labels', labels], ['Type', (s.type || '') + (s.sparkVersion ? ' · Spark ' + s.sparkVersion : '')],
    ['Application', s.sql ? s.sql : s.mainApplicationFile], ['Main class', s.mainClass],
    ['Arguments', (s.arguments || []).map((a) => el('code', {}, a))],
    ['Driver', `${d.cores || 1} cores, ${d.memory || 'default'} memory`],
    ['Executors', `${e.instances == null ? 2 : e.instances} × ${e.cores || 1} cores, ${e.memory || 'default'} memory`],
    ['Created', new Date(j.createdAt).toLocaleString()],
  ].filter(([, v]) => v != null && v !== '' && !(Array.isArray(v) && !v.length));
  $('#d-facts tbody').replaceChildren(...facts.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {}, v))));
}

// Spark UI links are followed by the browser, which sends no header: the
// gateway takes the token from this cookie for those pages only.
function shareTokenWithUI() {
  const token = localStorage.getItem('sparkgw-token') || '';
  const secure = location.protocol === 'https:' ? '; Secure' : '';
  document.cookie = 'sparkgw_token=' + encodeURIComponent(token) + '; Path=/api/v1/jobs/; SameSite=Strict' + secure +
    (token ? '' : '; Max-Age=0');
}

async function openJob(id) {
  shown = id;
  $('#back').href = listHash;
  show('detail');
  try {
    const j = await api('/api/v1/jobs/' + encodeURIComponent(id));
    jobs.set(id, j);
    renderSummary(j);
    $('#d-reasons').replaceChildren(...((j.placement && j.placement.reasons) || []).map((r) => el('li', {}, r)));
    await Promise.all([loadEvents(id), loadConf(id), loadLog(id), loadPods(id)]);
  } catch (err) {
    $('#d-title').textContent = id;
    $('#d-summary').textContent = err.status === 404 ? 'No such job.' : 'Cannot read the job: ' + err.message;
  }
}

async function loadEvents(id) {
  const ev = await api('/api/v1/jobs/' + id + '/events');
  $('#d-events').replaceChildren(...ev.items.map((e) => el('li', {},
    new Date(e.time).toLocaleTimeString(), ' ', el('span', { class: 'state ' + e.state }, e.state), ' ', e.reason,
    e.message ? ': ' + e.message : '')));
}

async function loadPods(id) {
  const p = await api('/api/v1/jobs/' + id + '/pods');
  const now = Date.now();
  $('#d-pods tbody').replaceChildren(...p.items.map((pod) => el('tr', { class: 'pod' },
    el('td', {}, pod.role), el('td', {}, pod.endedAt ? 'ended' : 'running'), el('td', {}, pod.coresMilli / 1000),
    el('td', {}, pod.memoryMiB + ' MiB'), el('td', {}, new Date(pod.startedAt).toLocaleTimeString()),
    el('td', {}, age((pod.endedAt ? Date.parse(pod.endedAt) : now) - Date.parse(pod.startedAt))),
    el('td', {}, pod.coreSeconds.toFixed(1)))));
  const running = p.items.filter((pod) => !pod.endedAt && pod.role === 'executor').length;
  const executors = p.items.filter((pod) => pod.role === 'executor').length;
  const t = p.total;
  $('#d-cost').textContent = (p.items.length ? `${executors} executors (${running} running). ` : 'No pod has run yet. ') +
    `${(t.coreSeconds / 3600).toFixed(3)} core-h, ${(t.memoryGiBSeconds / 3600).toFixed(3)} GiB-h` +
    (t.gpuSeconds ? `, ${(t.gpuSeconds / 3600).toFixed(3)} GPU-h` : '') + (t.cost != null ? `; cost ${t.cost.toFixed(4)}` : '');
}

async function loadConf(id) {
  try {
    const c = await api('/api/v1/jobs/' + id + '/conf');
    $('#d-conf tbody').replaceChildren(...Object.keys(c.conf).sort().map((k) =>
      el('tr', {}, el('td', {}, k), el('td', {}, c.conf[k].value), el('td', {}, c.conf[k].source))));
  } catch (err) {
    $('#d-conf tbody').replaceChildren(el('tr', {}, el('td', { colspan: '3' }, 'Not placed yet.')));
  }
}

// Only a driver that exists has a log; a cancelled one is gone.
async function loadLog(id) {
  const j = jobs.get(id);
  if (!j || !j.driver || j.state === 'CANCELLING' || j.state === 'CANCELLED') {
    $('#d-log').textContent = '(no driver log)';
    return;
  }
  const token = localStorage.getItem('sparkgw-token');
  const res = await fetch('/api/v1/jobs/' + id + '/logs?tailLines=200', { headers: token ? { Authorization: 'Bearer ' + token } : {} });
  $('#d-log').textContent = res.ok ? await res.text() : '(no driver log yet)';
}

async function cancelShown() {
  if (!shown) return;
  try {
    const j = await api('/api/v1/jobs/' + shown, { method: 'DELETE' });
    jobs.set(j.id, j);
    renderSummary(j);
  } catch (err) {
    $('#d-summary').append(' · cancel refused: ' + err.message);
  }
}

// ---- fleet ----

async function loadFleet() {
  try {
    const fleet = await api('/api/v1/pools');
    $('#pools').replaceChildren(...fleet.items.map((p) => el('div', { class: 'pool' },
      el('h3', {}, 'Pool ' + p.name),
      el('table', {}, el('thead', {}, el('tr', {}, ...['Cluster', 'Health', 'Rotation', 'Weight', 'Mode', 'Active jobs',
        'Namespaces: pods / max, cores'].map((h) => el('th', {}, h)))),
        el('tbody', {}, ...p.clusters.map((c) => el('tr', {},
          el('td', {}, c.name),
          el('td', { class: c.healthy ? 'ok' : 'bad' }, c.healthy ? 'healthy' : 'unhealthy'),
          el('td', {}, c.rotation), el('td', {}, c.weightInForce), el('td', {}, c.mode || ''), el('td', {}, c.activeJobs),
          el('td', {}, Object.entries(c.namespaces || {}).map(([n, u]) =>
            `${n} (${u.group}): ${u.pods} / ${u.maxPods}, ${Number(u.cores).toFixed(1)}`).join('; ')))))))));
  } catch (err) {
    $('#pools').textContent = 'Cannot read the fleet: ' + err.message;
  }
  try {
    const q = await api('/api/v1/queue?limit=50');
    $('#queue tbody').replaceChildren(...q.items.map((i) => el('tr', { onclick: () => { location.hash = '#/jobs/' + i.id; } },
      el('td', {}, i.position), el('td', {}, i.name), el('td', {}, i.team || ''), el('td', {}, i.pool || ''),
      el('td', {}, i.priority), el('td', {}, i.reason))));
    $('#queue-note').textContent = q.items.length ? '' : 'Nothing waits.';
  } catch (err) {
    $('#queue-note').textContent = err.status === 403 ? 'The queue is for operators.' : 'Cannot read the queue: ' + err.message;
  }
}

// ---- usage ----

// A window: how many buckets of how long, and how a bucket is labelled.
const WINDOWS = {
  '1h': { n: 12, ms: 300e3, label: (d) => d.toISOString().slice(11, 16) },
  '6h': { n: 12, ms: 1800e3, label: (d) => d.toISOString().slice(11, 16) },
  '24h': { n: 24, ms: 3600e3, label: (d) => d.toISOString().slice(11, 16) },
  '7d': { n: 28, ms: 6 * 3600e3, label: (d) => d.toISOString().slice(5, 13).replace('T', ' ') + 'h' },
  '30d': { n: 30, ms: 86400e3, label: (d) => d.toISOString().slice(5, 10) },
};
// The lines' colours; style.css gives the legend's swatches (.c0 ... .c7) the
// same, as a style attribute would break the Content-Security-Policy.
const COLORS = ['#2f6fde', '#e0663a', '#2a9d6f', '#9b59b6', '#c9a227', '#d6457a', '#3aa6b9', '#7a7f87'];
const MAX_SERIES = 7; // the rest is one "others" line

// One SVG chart: a line a group over the buckets; the legend is the table below.
function chart(title, labels, series, colors, unit) {
  const W = 760, H = 220, L = 56, B = 24;
  const max = Math.max(1e-9, ...Object.values(series).flat());
  const x = (i) => L + i * (W - L - 10) / Math.max(1, labels.length - 1);
  const y = (v) => H - B - v / max * (H - B - 16);
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    svg.append(e);
  };
  add('line', { x1: L, y1: H - B, x2: W - 10, y2: H - B, stroke: '#ccd' });
  add('text', { x: 4, y: 14 }, (max < 1 ? max.toPrecision(2) : max.toFixed(1)) + ' ' + unit);
  const every = Math.ceil(labels.length / 8);
  labels.forEach((h, i) => { if (i % every === 0) add('text', { x: x(i) - 16, y: H - 6 }, h); });
  for (const [key, vals] of Object.entries(series))
    add('polyline', { points: vals.map((v, i) => x(i) + ',' + y(v)).join(' '), fill: 'none', stroke: colors[key], 'stroke-width': 2 });
  return el('div', { class: 'chart' }, el('h3', {}, title), svg);
}

function saveUsageAddress() {
  history.replaceState(null, '', '#/usage?window=' + $('#u-window').value + '&by=' + $('#u-by').value);
}

async function loadUsage() {
  const w = WINDOWS[$('#u-window').value] || WINDOWS['24h'], by = $('#u-by').value;
  const now = Date.now(), start = Math.floor(now / w.ms) * w.ms - (w.n - 1) * w.ms;
  const labels = [], per = {}, totals = {};
  let priced = false;
  try {
    const buckets = await Promise.all(Array.from({ length: w.n }, (_, i) => {
      const from = new Date(start + i * w.ms), to = new Date(Math.min(now, start + (i + 1) * w.ms));
      labels.push(w.label(from));
      return api('/api/v1/usage?groupBy=' + by + '&from=' + from.toISOString() + '&to=' + to.toISOString());
    }));
    buckets.forEach((b, i) => {
      for (const item of b.items) {
        const key = item.key || '(none)';
        const t = totals[key] = totals[key] || { core: 0, mem: 0, gpu: 0, cost: 0 };
        const p = per[key] = per[key] || { core: new Array(w.n).fill(0), mem: new Array(w.n).fill(0), cost: new Array(w.n).fill(0) };
        p.core[i] = item.coreSeconds / 3600;
        p.mem[i] = item.memoryGiBSeconds / 3600;
        p.cost[i] = item.cost || 0;
        t.core += item.coreSeconds / 3600;
        t.mem += item.memoryGiBSeconds / 3600;
        t.gpu += item.gpuSeconds / 3600;
        t.cost += item.cost || 0;
        if (item.cost != null) priced = true;
      }
    });
    // The biggest groups get a line each, the rest one line together.
    const keys = Object.keys(totals).sort((a, b) => totals[b].core - totals[a].core);
    const top = keys.slice(0, MAX_SERIES), rest = keys.slice(MAX_SERIES);
    const colors = {}, series = { core: {}, mem: {}, cost: {} };
    top.forEach((k, i) => { colors[k] = COLORS[i]; });
    for (const m of ['core', 'mem', 'cost']) {
      for (const k of top) series[m][k] = per[k][m];
      if (rest.length) series[m]['(others)'] = per[rest[0]][m].map((_, i) => rest.reduce((s, k) => s + per[k][m][i], 0));
    }
    if (rest.length) colors['(others)'] = COLORS[MAX_SERIES];
    const charts = [chart('Core-hours', labels, series.core, colors, 'core-h'), chart('Memory GiB-hours', labels, series.mem, colors, 'GiB-h')];
    if (priced) charts.push(chart('Cost', labels, series.cost, colors, ''));
    $('#usage-charts').replaceChildren(...charts);
    $('#usage-totals thead').replaceChildren(el('tr', {}, el('th', {}, by), el('th', {}, 'Core-h'), el('th', {}, 'GiB-h'),
      el('th', {}, 'GPU-h'), priced ? el('th', {}, 'Cost') : ''));
    $('#usage-totals tbody').replaceChildren(...keys.map((k) => el('tr', { class: 'usage-row' },
      el('td', {}, el('span', { class: 'swatch c' + (k in colors ? COLORS.indexOf(colors[k]) : MAX_SERIES) }),
        by === 'job' && k !== '(none)' ? el('a', { href: '#/jobs/' + encodeURIComponent(k) }, k) : k),
      el('td', {}, totals[k].core.toFixed(3)), el('td', {}, totals[k].mem.toFixed(3)), el('td', {}, totals[k].gpu.toFixed(3)),
      priced ? el('td', {}, totals[k].cost.toFixed(4)) : '')));
    if (!keys.length) $('#usage-charts').append(el('p', { class: 'note' }, 'Nothing ran in this window.'));
  } catch (err) {
    $('#usage-charts').textContent = 'Cannot read usage: ' + err.message;
  }
}

// ---- start ----

function poll() {
  loadJobs(false);
  if (shown && $('#detail').classList.contains('on')) {
    loadEvents(shown).catch(() => {});
    const j = jobs.get(shown);
    if (j && (j.state === 'RUNNING' || j.state === 'SUBMITTED')) {
      loadLog(shown).catch(() => {});
      loadPods(shown).catch(() => {});
    }
  }
}

function start() {
  for (const s of STATES) $('#f-state').append(el('option', { value: s }, s));
  $('#token').value = localStorage.getItem('sparkgw-token') || '';
  $('#token').addEventListener('change', () => { localStorage.setItem('sparkgw-token', $('#token').value.trim()); shareTokenWithUI(); loadJobs(true); });
  shareTokenWithUI();
  for (const id of ['#f-state', '#f-team', '#f-text']) $(id).addEventListener('input', () => { saveListAddress(); renderJobs(); });
  $('#f-selector').addEventListener('change', () => { saveListAddress(); loadJobs(true); });
  $('#filters').addEventListener('submit', (e) => e.preventDefault());
  for (const th of document.querySelectorAll('#job-table th[data-sort]')) th.addEventListener('click', () => {
    sort = { key: th.dataset.sort, desc: sort.key === th.dataset.sort ? !sort.desc : false };
    saveListAddress();
    renderJobs();
  });
  $('#more').addEventListener('click', loadOlder);
  $('#d-cancel').addEventListener('click', cancelShown);
  for (const id of ['#u-window', '#u-by']) $(id).addEventListener('change', () => { saveUsageAddress(); loadUsage(); });
  $('#usage-form').addEventListener('submit', (e) => e.preventDefault());
  window.addEventListener('hashchange', route);
  if (!location.hash) history.replaceState(null, '', '#/jobs');
  route();
  setInterval(poll, POLL_MS);
}

start();
