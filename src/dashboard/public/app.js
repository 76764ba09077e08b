// The dashboard page: run list (filters, search, keyset paging), a run's detail, trends, alerts,
// events, analyses, the table browser, and live updates from /api/stream. No build step; every value
// from the API is set as text (see dom.js).
import { h, fill, ms, when, badge, table } from './dom.js';
import { renderRun } from './run-view.js';

const $ = (id) => document.getElementById(id);
const PAGE = 50;

const state = {
  filter: { status: '', name: '', q: '' },
  cursors: [null], // cursor of each page visited; the last is the current page's
  next: null,
  runs: [],
  selected: null,
  dataPage: 1,
  tab: 'runs',
  follow: undefined,
};

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

async function api(path, init) {
  const res = await fetch(path, { credentials: 'same-origin', ...init });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    if (res.status === 401) showBanner('This dashboard needs its token: open it as /?token=… (the token given to wpipe dashboard --token).');
    throw new ApiError(res.status, body);
  }
  return body;
}

function showBanner(text) {
  const b = $('banner');
  fill(b, text);
  b.hidden = false;
}

function reportError(error) {
  showBanner(`Error: ${error.message}`);
}

// ---- statistics ----

let statsTimer = null;
async function loadStats() {
  const st = await api('/api/stats');
  const card = (label, value, id) => h('div', { class: 'card', id }, h('div', { class: 'card-value' }, String(value)), h('div', { class: 'card-label' }, label));
  fill($('cards'),
    card('runs', st.totalRuns.toLocaleString(), 'card-runs'),
    card('success', `${st.successRate}%`, 'card-success'),
    card('mean time', ms(st.meanDurationMs), 'card-mean'),
    card('steps', st.totalSteps.toLocaleString(), 'card-steps'),
    card('errors', st.errors.toLocaleString(), 'card-errors'),
    card('running', st.running.toLocaleString(), 'card-running'),
    card('open alerts', st.unacknowledgedAlerts.toLocaleString(), 'card-alerts'));
}
function scheduleStats() {
  if (statsTimer) return;
  statsTimer = setTimeout(() => { statsTimer = null; loadStats().catch(reportError); }, 1000);
}

// ---- run list ----

function listQuery(cursor) {
  const p = new URLSearchParams({ limit: String(PAGE) });
  if (state.filter.status) p.set('status', state.filter.status);
  if (state.filter.name) p.set('name', state.filter.name);
  if (state.filter.q) p.set('q', state.filter.q);
  if (cursor) p.set('cursor', cursor);
  return `/api/pipelines?${p}`;
}

async function loadRuns() {
  const cursor = state.cursors[state.cursors.length - 1];
  const page = await api(listQuery(cursor));
  state.runs = page.runs;
  state.next = page.nextCursor;
  renderRuns();
}

function runRow(r, fresh) {
  const tr = h('tr', { class: `run-row${r.runId === state.selected ? ' selected' : ''}${fresh ? ' fresh' : ''}`, 'data-run': r.runId, tabindex: 0 },
    h('td', null, badge(r.status)),
    h('td', { class: 'name' }, r.pipelineName, r.workerId ? h('div', { class: 'host muted', title: r.workerName ?? '' }, r.workerId) : null),
    h('td', null, h('code', null, r.runId)),
    h('td', null, when(r.startedAt)),
    h('td', null, ms(r.durationMs)));
  tr.addEventListener('click', () => openRun(r.runId));
  tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') openRun(r.runId); });
  return tr;
}

function renderRuns(freshIds = new Set()) {
  fill($('runs-body'), state.runs.length === 0
    ? h('tr', null, h('td', { colspan: 5, class: 'muted' }, 'No runs match.'))
    : state.runs.map((r) => runRow(r, freshIds.has(r.runId))));
  fill($('page-info'), `page ${state.cursors.length}`);
  $('next-page').disabled = !state.next;
  $('first-page').disabled = state.cursors.length === 1;
}

function matches(r) {
  const f = state.filter;
  if (f.status && r.status !== f.status) return false;
  if (f.name && r.pipelineName !== f.name) return false;
  if (f.q) {
    const q = f.q.toLowerCase();
    if (![r.runId, r.pipelineName, r.errorMessage ?? ''].some((v) => v.toLowerCase().includes(q))) return false;
  }
  return true;
}

/** Live: merge pushed runs into the first page (newest first), refresh the open run if it changed. */
function onRuns(runs) {
  scheduleStats();
  if (state.cursors.length === 1) {
    const byId = new Map(state.runs.map((r) => [r.runId, r]));
    const fresh = new Set();
    for (const r of runs) {
      if (matches(r)) { byId.set(r.runId, r); fresh.add(r.runId); } else byId.delete(r.runId);
    }
    state.runs = [...byId.values()]
      .sort((a, b) => (a.startedAt < b.startedAt ? 1 : a.startedAt > b.startedAt ? -1 : a.runId < b.runId ? 1 : -1))
      .slice(0, PAGE);
    renderRuns(fresh);
  }
  if (state.selected && runs.some((r) => r.runId === state.selected)) openRun(state.selected, { keepHash: true }).catch(reportError);
  if (state.tab === 'alerts') loadAlerts().catch(reportError);
}

// ---- a run ----

async function openRun(runId, { keepHash = false } = {}) {
  state.selected = runId;
  for (const tr of document.querySelectorAll('#runs-body tr')) tr.classList.toggle('selected', tr.dataset.run === runId);
  if (!keepHash) history.replaceState(null, '', `#run=${encodeURIComponent(runId)}`);
  const enc = encodeURIComponent(runId);
  let run;
  let graph;
  try {
    [run, graph] = await Promise.all([api(`/api/pipelines/${enc}`), api(`/api/pipelines/${enc}/graph`)]);
  } catch (error) {
    if (error.status === 404) { fill($('detail'), h('p', { class: 'muted' }, `No run ${runId}.`)); return; }
    throw error;
  }
  if (state.selected !== runId) return;
  // Keep the scroll position and the steps the reader opened across a refresh.
  const detail = $('detail');
  const open = new Set([...detail.querySelectorAll('details[open]')].map((d) => d.dataset.order));
  const same = detail.dataset.run === runId;
  const scroll = window.scrollY;
  renderRun(detail, run, graph, { onAck: (id) => acknowledge(id).then(() => openRun(runId, { keepHash: true })).catch(reportError), onOpenRun: (id) => openRun(id) });
  detail.dataset.run = runId;
  if (same) {
    for (const d of detail.querySelectorAll('details[data-order]')) if (open.has(d.dataset.order)) d.open = true;
    window.scrollTo(0, scroll);
  }
  // A running run's steps move on without its row changing: follow it while it runs.
  clearTimeout(state.follow);
  if (run.status === 'running') state.follow = setTimeout(() => { if (state.selected === runId) openRun(runId, { keepHash: true }).catch(reportError); }, 1000);
}

async function acknowledge(id) {
  await api(`/api/alerts/${encodeURIComponent(String(id))}/acknowledge`, { method: 'POST' });
  await loadStats();
}

// ---- other tabs ----

let trendPlot = null;
async function loadTrends() {
  const days = Number($('trend-days').value);
  const t = await api(`/api/trends?days=${encodeURIComponent(String(days))}`);
  // Every day of the period, days without runs as zeros (the API omits them).
  const byDay = new Map(t.points.map((p) => [p.bucket.slice(0, 10), p]));
  const pts = [];
  for (let i = days - 1; i >= 0; i--) {
    const day = new Date(Date.now() - i * 86_400_000).toISOString().slice(0, 10);
    pts.push(byDay.get(day) ?? { bucket: `${day}T00:00:00.000Z`, runs: 0, completed: 0, errors: 0, cancelled: 0, meanDurationMs: null });
  }
  table($('trend-table'), [
    { label: 'day', value: (p) => p.bucket.slice(0, 10) },
    { label: 'runs', value: (p) => p.runs },
    { label: 'completed', value: (p) => p.completed },
    { label: 'errors', value: (p) => p.errors },
    { label: 'mean time', value: (p) => ms(p.meanDurationMs) },
  ], pts.filter((p) => p.runs > 0).reverse(), 'no runs in this period');
  const box = $('trend-chart');
  if (trendPlot) { trendPlot.destroy(); trendPlot = null; }
  if (!window.uPlot || pts.length === 0) return;
  const data = [pts.map((p) => Date.parse(p.bucket) / 1000), pts.map((p) => p.runs), pts.map((p) => p.completed), pts.map((p) => p.errors)];
  trendPlot = new window.uPlot({
    width: Math.max(300, box.clientWidth || 800), height: 240,
    series: [{}, { label: 'runs', stroke: '#2563eb' }, { label: 'completed', stroke: '#16a34a' }, { label: 'errors', stroke: '#dc2626' }],
  }, data, box);
}

async function loadAlerts() {
  const open = $('alerts-open').checked;
  const [alerts, config] = await Promise.all([api(`/api/alerts?limit=200${open ? '&unacknowledged=true' : ''}`), api('/api/alerts/config')]);
  table($('alerts-table'), [
    { label: 'severity', value: (a) => badge(a.severity) },
    { label: 'message', value: (a) => a.message ?? a.metric },
    { label: 'value', value: (a) => (a.value === null ? '' : String(Math.round(a.value * 100) / 100)) },
    { label: 'run', value: (a) => (a.runId ? h('button', { type: 'button', class: 'link', onclick: () => { switchTab('runs'); openRun(a.runId).catch(reportError); } }, a.runId) : '') },
    { label: 'fired', value: (a) => when(a.firedAt) },
    { label: '', value: (a) => (a.acknowledged ? 'acknowledged' : h('button', { type: 'button', class: 'ack', 'data-id': a.id, onclick: () => acknowledge(a.id).then(loadAlerts).catch(reportError) }, 'Acknowledge')) },
  ], alerts, 'no alerts');
  table($('alerts-config'), [
    { label: 'name', value: (c) => c.name },
    { label: 'metric', value: (c) => c.metric },
    { label: 'condition', value: (c) => `${c.condition} ${c.value}` },
    { label: 'severity', value: (c) => badge(c.severity) },
  ], config, 'none configured');
}

async function loadEvents() {
  const events = await api('/api/events?limit=200');
  table($('events-table'), [
    { label: 'time', value: (e) => when(e.createdAt) },
    { label: 'type', value: (e) => e.type },
    { label: 'name', value: (e) => e.name },
    { label: 'run', value: (e) => e.runId ?? '' },
    { label: 'message', value: (e) => e.message ?? '' },
  ], events, 'no events');
}

async function loadAnalysis() {
  const [states, pipes, slow] = await Promise.all([api('/api/analysis/states'), api('/api/analysis/pipelines'), api('/api/slow-steps?limit=15')]);
  const el = $('analysis');
  fill(el,
    h('h3', null, 'Pipelines'),
    table(h('table', { class: 'grid' }), [
      { label: 'pipeline', value: (p) => p.name }, { label: 'runs', value: (p) => p.runs }, { label: 'errors', value: (p) => p.errors },
      { label: 'error rate', value: (p) => `${p.errorRate}%` }, { label: 'mean time', value: (p) => ms(p.meanMs) }, { label: 'last', value: (p) => when(p.lastStartedAt) },
    ], pipes.pipelines),
    h('h3', null, 'Slowest steps (completed)'),
    table(h('table', { class: 'grid' }), [
      { label: 'step', value: (x) => x.stepName }, { label: 'count', value: (x) => x.count }, { label: 'mean', value: (x) => ms(x.meanMs) }, { label: 'max', value: (x) => ms(x.maxMs) },
    ], slow),
    h('h3', null, 'Steps with most errors'),
    table(h('table', { class: 'grid' }), [
      { label: 'step', value: (x) => x.name }, { label: 'executions', value: (x) => x.executions }, { label: 'errors', value: (x) => x.errors }, { label: 'error rate', value: (x) => `${x.errorRate}%` },
    ], states.mostErrors, 'no step errors'),
    h('h3', null, 'Most used steps'),
    table(h('table', { class: 'grid' }), [
      { label: 'step', value: (x) => x.name }, { label: 'executions', value: (x) => x.executions }, { label: 'mean', value: (x) => ms(x.meanMs) },
    ], states.mostUsed));
}

async function loadData() {
  const name = $('data-table').value;
  const page = await api(`/api/data/${encodeURIComponent(name)}?page=${state.dataPage}&pageSize=25`);
  const cols = page.rows.length ? Object.keys(page.rows[0]) : [];
  table($('data-grid'), cols.map((c) => ({ label: c, value: (r) => (r[c] === null ? '' : String(r[c])) })), page.rows, 'empty');
  fill($('data-page'), `page ${page.page}`);
  $('data-prev').disabled = page.page <= 1;
  $('data-next').disabled = !page.hasMore;
}

const LOADERS = { runs: () => Promise.resolve(), trends: loadTrends, alerts: loadAlerts, events: loadEvents, analysis: loadAnalysis, data: loadData };

function switchTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.tab === tab);
  for (const sec of document.querySelectorAll('section.tab')) sec.hidden = sec.id !== `tab-${tab}`;
  LOADERS[tab]().catch(reportError);
}

// ---- live updates ----

function connectLive() {
  const live = $('live');
  const es = new EventSource('/api/stream');
  es.addEventListener('hello', () => { fill(live, 'live'); live.className = 'live on'; });
  es.addEventListener('runs', (e) => {
    try {
      onRuns(JSON.parse(e.data).runs);
    } catch (error) {
      reportError(error);
    }
  });
  es.onerror = () => { fill(live, 'reconnecting…'); live.className = 'live off'; };
}

// ---- wiring ----

function wire() {
  for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => switchTab(b.dataset.tab));
  $('filters').addEventListener('submit', (e) => {
    e.preventDefault();
    state.filter = { status: $('f-status').value, name: $('f-name').value.trim(), q: $('f-q').value.trim() };
    state.cursors = [null];
    loadRuns().catch(reportError);
  });
  $('f-status').addEventListener('change', () => $('filters').requestSubmit());
  $('next-page').addEventListener('click', () => {
    if (!state.next) return;
    state.cursors.push(state.next);
    loadRuns().catch(reportError);
  });
  $('first-page').addEventListener('click', () => {
    state.cursors = [null];
    loadRuns().catch(reportError);
  });
  $('trend-days').addEventListener('change', () => loadTrends().catch(reportError));
  $('alerts-open').addEventListener('change', () => loadAlerts().catch(reportError));
  $('data-table').addEventListener('change', () => { state.dataPage = 1; loadData().catch(reportError); });
  $('data-prev').addEventListener('click', () => { state.dataPage = Math.max(1, state.dataPage - 1); loadData().catch(reportError); });
  $('data-next').addEventListener('click', () => { state.dataPage++; loadData().catch(reportError); });
}

async function main() {
  wire();
  connectLive();
  const hash = new URLSearchParams(location.hash.slice(1));
  // The list first, statistics after: the server answers one request at a time (SQLite reads are
  // synchronous), and the statistics scan the whole history (~90 ms at 100,000 runs), so asked
  // together they would hold up the list.
  await loadRuns();
  document.body.dataset.ready = 'true';
  document.body.dataset.readyMs = String(Math.round(performance.now()));
  await loadStats().catch(reportError);
  const run = hash.get('run');
  if (run) await openRun(run, { keepHash: true });
}

main().catch(reportError);
