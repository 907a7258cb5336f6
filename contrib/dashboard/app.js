// The sparkgw dashboard: plain JavaScript over the REST API. Jobs are
// polled with the updatedSince cursor, so an open page costs the server a
// small indexed read every two seconds however many jobs there are.
'use strict';

const STATES = ['QUEUED', 'DISPATCHING', 'SUBMITTED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLING', 'CANCELLED', 'REJECTED'];
const POLL_MS = 2000;
const $ = (sel) => document.querySelector(sel);
const jobs = new Map(); // id -> job
let cursor = null;
let shown = null; // id of the job in the detail view

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? '' : String(k)));
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

function matches(job) {
  const state = $('#f-state').value, team = $('#f-team').value.trim(), text = $('#f-text').value.trim();
  if (state && job.state !== state) return false;
  if (team && (job.labels || {}).team !== team) return false;
  if (text && !job.name.includes(text)) return false;
  return true;
}

function renderJobs() {
  const body = $('#job-table tbody');
  const rows = [...jobs.values()].filter(matches).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  const now = Date.now();
  body.replaceChildren(...rows.map((j) => {
    const created = Date.parse(j.createdAt), updated = Date.parse(j.updatedAt);
    const p = j.placement;
    return el('tr', { 'data-id': j.id, onclick: () => openJob(j.id) },
      el('td', {}, j.name, el('div', { class: 'note' }, j.id)),
      el('td', {}, el('span', { class: 'state ' + j.state }, j.state)),
      el('td', {}, (j.labels || {}).team || ''),
      el('td', {}, p ? [p.pool, p.cluster, p.namespace].filter(Boolean).join(' / ') : ''),
      el('td', {}, age(now - created)),
      el('td', {}, finished(j) ? age(updated - created) : ''),
      el('td', {}, cores(j)));
  }));
  $('#jobs-note').textContent = rows.length ? '' : 'No jobs match.';
}

// The first read takes the newest page; then only what changed.
async function loadJobs(reset) {
  try {
    if (reset || cursor === null) {
      const sel = $('#f-selector').value.trim();
      const q = new URLSearchParams({ limit: '200' });
      if (sel) q.set('labelSelector', sel);
      const list = await api('/api/v1/jobs?' + q);
      jobs.clear();
      for (const j of list.items) jobs.set(j.id, j);
      const changes = await api('/api/v1/jobs?updatedSince=' + maxRv() + '&limit=1');
      cursor = changes.cursor;
    } else {
      for (;;) {
        const page = await api('/api/v1/jobs?limit=500&updatedSince=' + cursor);
        for (const j of page.items) jobs.set(j.id, j);
        cursor = page.cursor;
        if (page.items.length < 500) break;
      }
    }
    renderJobs();
    if (shown && jobs.has(shown)) renderSummary(jobs.get(shown));
  } catch (err) {
    $('#jobs-note').textContent = err.status === 401 ? 'Enter a token above.' : 'Cannot list jobs: ' + err.message;
  }
}

function maxRv() {
  let rv = 0;
  for (const j of jobs.values()) rv = Math.max(rv, Number(j.resourceVersion));
  return rv;
}

function show(tab) {
  for (const s of document.querySelectorAll('.tab')) s.classList.toggle('on', s.id === tab);
  for (const b of document.querySelectorAll('nav button')) b.classList.toggle('on', b.dataset.tab === tab || (tab === 'detail' && b.dataset.tab === 'jobs'));
  if (tab === 'fleet') loadFleet();
  if (tab === 'usage') loadUsage();
}

function renderSummary(j) {
  $('#d-title').textContent = j.name + ' (' + j.id + ')';
  $('#d-summary').replaceChildren(el('span', { class: 'state ' + j.state }, j.state), ' ',
    j.reason || '', j.message ? ': ' + j.message : '', j.run > 1 ? ' · run ' + j.run : '',
    j.waitReason ? ' · waits: ' + j.waitReason : '');
  $('#d-cancel').disabled = finished(j) || j.state === 'CANCELLING';
  const ui = $('#d-ui');
  // Through the gateway: the running driver's UI, or a finished job's History Server page.
  if (j.driver && j.links.ui) { ui.href = j.links.ui; ui.style.display = ''; } else ui.style.display = 'none';
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
  show('detail');
  const j = await api('/api/v1/jobs/' + id);
  jobs.set(id, j);
  renderSummary(j);
  $('#d-reasons').replaceChildren(...((j.placement && j.placement.reasons) || []).map((r) => el('li', {}, r)));
  await Promise.all([loadEvents(id), loadConf(id), loadLog(id)]);
}

async function loadEvents(id) {
  const ev = await api('/api/v1/jobs/' + id + '/events');
  $('#d-events').replaceChildren(...ev.items.map((e) => el('li', {},
    new Date(e.time).toLocaleTimeString(), ' ', el('span', { class: 'state ' + e.state }, e.state), ' ', e.reason,
    e.message ? ': ' + e.message : '')));
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
    $('#queue tbody').replaceChildren(...q.items.map((i) => el('tr', {}, el('td', {}, i.position), el('td', {}, i.name),
      el('td', {}, i.team || ''), el('td', {}, i.pool || ''), el('td', {}, i.priority), el('td', {}, i.reason))));
    $('#queue-note').textContent = q.items.length ? '' : 'Nothing waits.';
  } catch (err) {
    $('#queue-note').textContent = err.status === 403 ? 'The queue is for operators.' : 'Cannot read the queue: ' + err.message;
  }
}

// One SVG chart: a line a team over the hours.
function chart(title, hours, series, unit) {
  const W = 720, H = 220, L = 50, B = 24, colors = ['#2f6fde', '#e0663a', '#2a9d6f', '#9b59b6', '#c9a227', '#555'];
  const max = Math.max(1e-9, ...Object.values(series).flat());
  const x = (i) => L + i * (W - L - 10) / Math.max(1, hours.length - 1);
  const y = (v) => H - B - v / max * (H - B - 16);
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('width', W);
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    svg.append(e);
  };
  add('line', { x1: L, y1: H - B, x2: W - 10, y2: H - B, stroke: '#ccd' });
  add('text', { x: 4, y: 14 }, (max < 1 ? max.toPrecision(2) : max.toFixed(1)) + ' ' + unit);
  hours.forEach((h, i) => { if (i % 3 === 0) add('text', { x: x(i) - 14, y: H - 6 }, h); });
  Object.entries(series).forEach(([team, vals], k) => {
    add('polyline', { points: vals.map((v, i) => x(i) + ',' + y(v)).join(' '), fill: 'none', stroke: colors[k % colors.length], 'stroke-width': 2 });
    add('text', { x: W - 150, y: 16 + 14 * k, fill: colors[k % colors.length] }, team);
  });
  return el('div', { class: 'chart' }, el('h3', {}, title), svg);
}

async function loadUsage() {
  const now = Date.now(), hour = 3600e3, start = Math.floor(now / hour) * hour - 11 * hour;
  const hours = [], coreH = {}, memH = {};
  try {
    const windows = await Promise.all(Array.from({ length: 12 }, (_, i) => {
      const from = new Date(start + i * hour).toISOString(), to = new Date(Math.min(now, start + (i + 1) * hour)).toISOString();
      hours.push(new Date(start + i * hour).toISOString().slice(11, 16));
      return api('/api/v1/usage?groupBy=team&from=' + from + '&to=' + to);
    }));
    windows.forEach((w, i) => {
      for (const item of w.items) {
        const team = item.key || '(none)';
        (coreH[team] = coreH[team] || new Array(12).fill(0))[i] = item.coreSeconds / 3600;
        (memH[team] = memH[team] || new Array(12).fill(0))[i] = item.memoryGiBSeconds / 3600;
      }
    });
    $('#usage-charts').replaceChildren(chart('Core-hours', hours, coreH, 'core-h'), chart('Memory GiB-hours', hours, memH, 'GiB-h'));
  } catch (err) {
    $('#usage-charts').textContent = 'Cannot read usage: ' + err.message;
  }
}

function poll() {
  loadJobs(false);
  if (shown && $('#detail').classList.contains('on')) {
    loadEvents(shown).catch(() => {});
    const j = jobs.get(shown);
    if (j && (j.state === 'RUNNING' || j.state === 'SUBMITTED')) loadLog(shown).catch(() => {});
  }
}

function start() {
  for (const s of STATES) $('#f-state').append(el('option', { value: s }, s));
  $('#token').value = localStorage.getItem('sparkgw-token') || '';
  $('#token').addEventListener('change', () => { localStorage.setItem('sparkgw-token', $('#token').value.trim()); shareTokenWithUI(); loadJobs(true); });
  shareTokenWithUI();
  for (const b of document.querySelectorAll('nav button')) b.addEventListener('click', () => { shown = null; show(b.dataset.tab); });
  for (const id of ['#f-state', '#f-team', '#f-text']) $(id).addEventListener('input', renderJobs);
  $('#f-selector').addEventListener('change', () => loadJobs(true));
  $('#filters').addEventListener('submit', (e) => e.preventDefault());
  $('#back').addEventListener('click', (e) => { e.preventDefault(); shown = null; show('jobs'); });
  $('#d-cancel').addEventListener('click', cancelShown);
  loadJobs(true);
  setInterval(poll, POLL_MS);
}

start();
