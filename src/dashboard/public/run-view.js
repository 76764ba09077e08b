// A run's detail: summary, error, step timeline (Gantt), the run's graph as a tree, each step's
// input/output/error, checkpoint, alerts, events and resource charts. Values are set as text (dom.js).
import { h, s, fill, ms, when, pretty, badge, table } from './dom.js';

const KIND_LABEL = { taken: 'branch taken', iteration: 'iteration', parallel: 'parallel', background: 'background', child: 'child' };

/** Depth of each step in the parent tree. */
function depths(steps) {
  const byOrder = new Map(steps.map((x) => [x.order, x]));
  const depth = new Map();
  const of = (st) => {
    if (depth.has(st.order)) return depth.get(st.order);
    const parent = st.parentStepId === null ? undefined : byOrder.get(st.parentStepId);
    const d = parent ? of(parent) + 1 : 0;
    depth.set(st.order, d);
    return d;
  };
  for (const st of steps) of(st);
  return depth;
}

/** Step rows drawn at most (a 10,000-iteration For loop records 10,000 rows; the Data tab has them all). */
export const MAX_ROWS = 500;

function more(n, what) {
  return n > MAX_ROWS ? h('p', { class: 'muted' }, `… and ${n - MAX_ROWS} more ${what} (the Data tab pages through them all)`) : null;
}

/** The step timeline: one bar per step from its start to its end, on the run's time axis. */
export function gantt(run) {
  const steps = run.steps.slice(0, MAX_ROWS);
  if (steps.length === 0) return h('p', { class: 'muted' }, 'No steps recorded.');
  // The axis starts at the first step: the time before it (opening the history, the run's own
  // set-up) is said in the axis label instead of squeezing every bar to the right.
  const runStart = Date.parse(run.startedAt);
  const t0 = Math.min(...steps.map((x) => Date.parse(x.startedAt)));
  const ends = steps.map((x) => Date.parse(x.startedAt) + (x.durationMs ?? (x.status === 'running' ? Math.max(0, Date.now() - Date.parse(x.startedAt)) : 0)));
  const runEnd = run.durationMs !== null ? Math.max(runStart + run.durationMs, ...ends) : Math.max(...ends, t0 + 1);
  const span = Math.max(runEnd - t0, 1);
  const depth = depths(steps);
  const rowH = 22;
  const labelW = 240;
  const width = 900;
  const barW = width - labelW - 200;
  const svg = s('svg', { class: 'gantt', viewBox: `0 0 ${width} ${steps.length * rowH + 24}`, width: '100%', role: 'img', 'aria-label': 'step timeline' });
  svg.append(
    s('text', { x: labelW, y: 12, class: 'axis' }, t0 > runStart ? `first step at +${ms(t0 - runStart)}` : '0'),
    s('text', { x: labelW + barW, y: 12, class: 'axis', 'text-anchor': 'end' }, `+${ms(span)}`));
  steps.forEach((st, i) => {
    const y = 20 + i * rowH;
    const start = Math.max(0, Date.parse(st.startedAt) - t0);
    const x = labelW + (start / span) * barW;
    // A step still running is drawn up to now.
    const dur = st.durationMs ?? (st.status === 'running' ? Math.max(0, Date.now() - Date.parse(st.startedAt)) : 0);
    const w = Math.max(2, Math.min(dur / span, 1) * barW);
    const d = depth.get(st.order) ?? 0;
    const where = st.executor ?? 'inline';
    const g = s('g', { class: 'gantt-row', 'data-status': st.status, 'data-order': st.order });
    g.append(
      s('title', null, `${st.name} (${st.kind}) — ${st.status}, ${ms(st.durationMs)}, ${st.attempts} attempt(s), ${where}; started +${ms(start)}`),
      s('text', { x: 4 + d * 14, y: y + 14, class: 'gantt-label' }, `${st.name}`),
      s('rect', { x, y: y + 3, width: w, height: rowH - 8, rx: 3, class: 'bar', 'data-status': st.status }),
      s('text', { x: labelW + barW + 8, y: y + 14, class: 'gantt-meta' },
        `${ms(st.durationMs)}${st.attempts > 1 ? ` · ${st.attempts} attempts` : ''} · ${where}`),
    );
    svg.append(g);
  });
  return [svg, more(run.steps.length, 'steps')];
}

/** The run's graph as a tree: top-level steps in order, nested steps under their block with the edge label. */
export function graphTree(graph) {
  if (!graph || graph.nodes.length === 0) return h('p', { class: 'muted' }, 'No steps recorded.');
  const total = graph.nodes.length;
  graph = { ...graph, nodes: graph.nodes.slice(0, MAX_ROWS) };
  const edgeTo = new Map(graph.edges.filter((e) => e.label !== 'next').map((e) => [e.to, e]));
  const children = new Map();
  const top = [];
  for (const n of graph.nodes) {
    const e = edgeTo.get(n.id);
    if (e) {
      if (!children.has(e.from)) children.set(e.from, []);
      children.get(e.from).push(n);
    } else top.push(n);
  }
  const node = (n) => {
    const e = edgeTo.get(n.id);
    const label = e ? (e.label === 'iteration' ? `iteration ${e.iteration}` : KIND_LABEL[e.label] ?? e.label) : null;
    const kids = children.get(n.id) ?? [];
    return h('li', { class: 'node-item' },
      label ? h('span', { class: 'edge-label', 'data-kind': e.label }, label) : null,
      h('div', { class: 'node', 'data-status': n.status, 'data-kind': n.kind, title: n.error ?? '' },
        h('span', { class: 'node-name' }, n.name),
        h('span', { class: 'node-kind' }, n.kind),
        badge(n.status),
        h('span', { class: 'node-time' }, ms(n.durationMs)),
        n.attempts > 1 ? h('span', { class: 'node-retries' }, `${n.attempts} attempts`) : null,
        n.executor ? h('span', { class: 'node-exec' }, n.executor) : null),
      kids.length ? h('ul', { class: `tree-children kind-${n.kind}` }, kids.map(node)) : null);
  };
  return [h('ul', { class: 'tree', 'aria-label': 'run graph' }, top.map(node)), more(total, 'nodes')];
}

function stepDetails(run) {
  return h('div', { class: 'steps' }, run.steps.slice(0, MAX_ROWS).map((st) => {
    const attempts = run.attempts.filter((a) => a.stepOrder === st.order);
    return h('details', { class: 'step', 'data-status': st.status, 'data-order': st.order },
      h('summary', null, badge(st.status), ' ', h('b', null, st.name), ` #${st.order} · ${st.kind} · ${st.version ?? ''} · ${ms(st.durationMs)}`,
        st.attempts > 1 ? ` · ${st.attempts} attempts` : '', st.executor ? ` · ${st.executor}` : ''),
      h('div', { class: 'kv' },
        h('span', null, 'started'), h('span', null, when(st.startedAt)),
        h('span', null, 'completed'), h('span', null, when(st.completedAt))),
      st.errorMessage ? h('div', { class: 'error-box' }, h('b', null, st.errorCode ?? 'error'), ': ', st.errorMessage) : null,
      st.errorTraceback ? h('details', null, h('summary', null, 'traceback'), h('pre', null, st.errorTraceback)) : null,
      h('div', { class: 'io' },
        h('div', null, h('h5', null, 'input'), h('pre', null, st.input === null ? '—' : pretty(st.input))),
        h('div', null, h('h5', null, 'output'), h('pre', null, st.output === null ? '—' : pretty(st.output)))),
      attempts.length ? table(h('table', { class: 'grid small' }), [
        { label: 'attempt', value: (a) => a.attempt },
        { label: 'status', value: (a) => badge(a.status) },
        { label: 'duration', value: (a) => ms(a.durationMs) },
        { label: 'error', value: (a) => a.errorMessage ?? '' },
      ], attempts) : null);
  }), more(run.steps.length, 'steps'));
}

/** Resource chart (uPlot) for a run's system_metrics rows, when there are any. */
function metricsChart(run) {
  const rows = run.metrics.filter((m) => m.scope === 'step' || m.scope === null);
  if (run.metrics.length === 0) return null;
  const box = h('div', { class: 'chart', id: 'metrics-chart' });
  const names = new Map(run.steps.map((x) => [x.order, x.name]));
  const source = rows.length ? rows : run.metrics;
  const xs = source.map((_, i) => i + 1);
  const data = [xs, source.map((m) => m.rssMb), source.map((m) => m.peakRssMb), source.map((m) => m.cpuPercent)];
  requestAnimationFrame(() => {
    if (!window.uPlot) return;
    // eslint-disable-next-line no-new
    new window.uPlot({
      width: Math.max(300, box.clientWidth || 600), height: 200,
      scales: { x: { time: false } },
      axes: [
        { splits: () => xs, values: (_u, ticks) => ticks.map((t) => (source[t - 1]?.stepOrder === null ? 'run' : names.get(source[t - 1]?.stepOrder) ?? String(t))) },
        { label: 'MB' }, { side: 1, scale: '%', label: 'CPU %', grid: { show: false } }],
      series: [{ label: 'step' }, { label: 'RSS MB', stroke: '#2563eb' }, { label: 'peak RSS MB', stroke: '#dc2626' }, { label: 'CPU %', stroke: '#16a34a', scale: '%' }],
    }, data, box);
  });
  return h('section', null, h('h4', null, 'Resources'), box,
    table(h('table', { class: 'grid small' }), [
      { label: 'scope', value: (m) => m.scope ?? '' },
      { label: 'step', value: (m) => (m.stepOrder === null ? 'run' : names.get(m.stepOrder) ?? m.stepOrder) },
      { label: 'RSS MB', value: (m) => m.rssMb?.toFixed(1) ?? '—' },
      { label: 'peak RSS MB', value: (m) => m.peakRssMb?.toFixed(1) ?? '—' },
      { label: 'CPU %', value: (m) => m.cpuPercent?.toFixed(1) ?? '—' },
      { label: 'sampler', value: (m) => m.sampler ?? '' },
    ], run.metrics));
}

/** Renders the whole detail panel. */
export function renderRun(el, run, graph, { onAck, onOpenRun }) {
  fill(el,
    h('div', { class: 'detail-head' },
      h('h2', { id: 'run-title' }, run.pipelineName),
      badge(run.status),
      h('div', { class: 'kv' },
        h('span', null, 'run'), h('code', { id: 'run-id' }, run.runId),
        h('span', null, 'started'), h('span', null, when(run.startedAt)),
        h('span', null, 'duration'), h('span', null, ms(run.durationMs)),
        h('span', null, 'worker'), h('span', null, [run.workerName, run.workerId, run.pid ? `pid ${run.pid}` : null].filter(Boolean).join(' · ') || '—'),
        h('span', null, 'resumes'), h('span', null, String(run.resumes)),
        run.parentRunId ? [h('span', null, 'parent'), h('button', { type: 'button', class: 'link', onclick: () => onOpenRun(run.parentRunId) }, run.parentRunId)] : null)),
    run.errorMessage ? h('div', { class: 'error-box', id: 'run-error' },
      h('b', null, run.errorCode ?? 'error'), run.errorStep ? ` in step ${run.errorStep}` : '', ': ', run.errorMessage) : null,
    h('h4', null, 'Timeline'), h('div', { id: 'timeline' }, gantt(run)),
    h('h4', null, 'Graph'), h('div', { id: 'graph' }, graphTree(graph)),
    metricsChart(run),
    h('h4', null, 'Steps'), stepDetails(run),
    h('h4', null, 'Input and output'),
    h('div', { class: 'io' },
      h('div', null, h('h5', null, 'input'), h('pre', null, pretty(run.input))),
      h('div', null, h('h5', null, `output${run.outputExact ? '' : ' (placeholders for values JSON cannot carry)'}`), h('pre', null, pretty(run.output)))),
    h('h4', null, 'Checkpoint'),
    run.checkpoint
      ? h('p', null, `'${run.checkpoint.name}' at position ${run.checkpoint.position}, saved ${run.checkpoint.saves} time(s), last ${when(run.checkpoint.createdAt)}`)
      : h('p', { class: 'muted' }, 'none'),
    run.children.length ? [h('h4', null, 'Nested runs'), h('ul', null, run.children.map((c) =>
      h('li', null, h('button', { type: 'button', class: 'link', onclick: () => onOpenRun(c.runId) }, `${c.pipelineName} · ${c.runId}`), ' ', badge(c.status))))] : null,
    h('h4', null, 'Alerts'),
    table(h('table', { class: 'grid small', id: 'run-alerts' }), [
      { label: 'severity', value: (a) => badge(a.severity) },
      { label: 'message', value: (a) => a.message ?? a.metric },
      { label: 'fired', value: (a) => when(a.firedAt) },
      { label: '', value: (a) => (a.acknowledged ? 'acknowledged' : h('button', { type: 'button', onclick: () => onAck(a.id) }, 'Acknowledge')) },
    ], run.alerts, 'no alerts'),
    h('h4', null, 'Events'),
    table(h('table', { class: 'grid small' }), [
      { label: 'time', value: (e) => when(e.createdAt) },
      { label: 'type', value: (e) => e.type },
      { label: 'name', value: (e) => e.name },
      { label: 'message', value: (e) => e.message ?? '' },
    ], run.events, 'no events'));
}
