import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HistoryQuery } from '../src/storage/query.js';
import { WpipeError } from '../src/errors.js';
import { tempDir } from './fixtures/storage/tmp.js';
import { seedHistory } from './fixtures/storage/history.js';

const t = tempDir();
const file = t.file('q.db');
let q: HistoryQuery;
before(() => {
  seedHistory(file);
  q = new HistoryQuery(file);
});
after(() => {
  q.close();
  t.cleanup();
});

test('listRuns: newest first, with total and paging', () => {
  const all = q.listRuns();
  assert.equal(all.total, 6);
  assert.deepEqual(all.runs.map((r) => r.runId), ['b2', 'b1', 'a4', 'a3', 'a2', 'a1']);
  const page = q.listRuns({ limit: 2, offset: 2 });
  assert.equal(page.total, 6);
  assert.deepEqual(page.runs.map((r) => r.runId), ['a4', 'a3']);
  assert.equal(q.listRuns({ limit: 2, offset: 10 }).runs.length, 0);
});

test('listRuns: filters by status, pipeline name, since/until and combinations', () => {
  assert.deepEqual(q.listRuns({ status: 'error' }).runs.map((r) => r.runId), ['a3']);
  assert.deepEqual(q.listRuns({ status: ['error', 'cancelled'] }).runs.map((r) => r.runId), ['a4', 'a3']);
  assert.equal(q.listRuns({ pipelineName: 'billing, "EU"' }).total, 2);
  assert.deepEqual(q.listRuns({ since: '2025-03-01T11:00:00Z', until: new Date('2025-03-02T09:30:00Z') }).runs.map((r) => r.runId), ['a4', 'a3']);
  assert.deepEqual(q.listRuns({ pipelineName: 'orders', status: 'completed', since: Date.parse('2025-03-01T10:30:00Z') }).runs.map((r) => r.runId), ['a2']);
  const a3 = q.listRuns({ runId: 'a3' }).runs[0]!;
  assert.equal(a3.errorMessage, 'bad row, "7"');
  assert.equal(a3.errorStep, 'load');
  assert.equal(a3.durationMs, 300);
  assert.equal(q.listRuns({ parentRunId: null }).total, 6);
});

test('listRuns: invalid filters are rejected clearly', () => {
  assert.throws(() => q.listRuns({ stauts: 'error' } as never), /did you mean status/);
  assert.throws(() => q.listRuns({ status: 'failed' as never }), RangeError);
  assert.throws(() => q.listRuns({ limit: 0 }), RangeError);
  assert.throws(() => q.listRuns({ since: 'yesterday' }), RangeError);
});

test('getRunDetail: the run with steps, attempts, events, alerts and its checkpoint', () => {
  const d = q.getRunDetail('a3')!;
  assert.equal(d.status, 'error');
  assert.deepEqual(d.input, { note: 'line1\nline2, "quoted"' });
  assert.deepEqual(d.output, { total: 300 });
  assert.equal(d.steps.length, 1);
  assert.equal(d.steps[0]!.status, 'error');
  assert.equal(d.steps[0]!.attempts, 2);
  assert.deepEqual(d.attempts.map((a) => [a.stepOrder, a.attempt, a.errorMessage]), [[1, 1, 'first try']]);
  assert.deepEqual(d.events.map((e) => [e.type, e.name, e.stepId]), [['checkpoint', 'loaded', 1]]);
  assert.deepEqual(d.alerts.map((a) => [a.severity, a.value]), [['critical', 150]]);
  assert.equal(d.checkpoint, null);
  assert.deepEqual(d.children, []);
  assert.equal(q.getRunDetail('nope'), undefined);
  const running = q.getRunDetail('b2')!;
  assert.equal(running.status, 'running');
  assert.equal(running.steps[0]!.status, 'running');
});

test('stats: counts, success rate over finished runs, mean/p50/p95 durations', () => {
  const s = q.stats();
  assert.equal(s.totalRuns, 6);
  assert.equal(s.completed, 3);
  assert.equal(s.errors, 1);
  assert.equal(s.cancelled, 1);
  assert.equal(s.running, 1);
  assert.equal(s.successRate, 60);
  assert.equal(s.meanDurationMs, 400);
  assert.equal(s.p50DurationMs, 300);
  assert.equal(s.p95DurationMs, 1000);
  assert.equal(s.totalSteps, 6);
  assert.equal(s.stepErrors, 1);
  assert.equal(s.stepSuccessRate, 80);
  assert.equal(s.alertsFired, 1);
  const orders = q.stats({ pipelineName: 'orders' });
  assert.equal(orders.totalRuns, 4);
  assert.equal(orders.successRate, 50);
  assert.equal(orders.p50DurationMs, 200);
  const one = q.stats({ runId: 'a1' });
  assert.deepEqual([one.totalRuns, one.completed, one.successRate], [1, 1, 100]);
  const none = q.stats({ pipelineName: 'ghost' });
  assert.deepEqual([none.totalRuns, none.successRate, none.meanDurationMs, none.p95DurationMs], [0, 0, null, null]);
});

test('trends: runs per hour and per day, oldest first', () => {
  assert.deepEqual(q.trends({ bucket: 'day' }).map((p) => [p.bucket, p.runs, p.completed, p.errors, p.cancelled]), [
    ['2025-03-01T00:00:00.000Z', 3, 2, 1, 0],
    ['2025-03-02T00:00:00.000Z', 2, 1, 0, 1],
    ['2025-03-03T00:00:00.000Z', 1, 0, 0, 0],
  ]);
  const hours = q.trends({ bucket: 'hour', pipelineName: 'orders', until: '2025-03-02T00:00:00Z' });
  assert.deepEqual(hours.map((p) => [p.bucket, p.runs, p.meanDurationMs]), [
    ['2025-03-01T10:00:00.000Z', 2, 150],
    ['2025-03-01T11:00:00.000Z', 1, 300],
  ]);
  assert.throws(() => q.trends({ bucket: 'week' as never }), RangeError);
});

test('events, alerts, system metrics and pipeline names', () => {
  assert.equal(q.events().length, 5);
  assert.equal(q.events({ type: 'checkpoint', limit: 2 }).length, 2);
  assert.equal(q.alerts({ severity: 'critical' })[0]!.message, 'slow, very');
  assert.equal(q.alerts({ severity: 'info' }).length, 0);
  assert.equal(q.systemMetrics().length, 2);
  assert.equal(q.systemMetrics({ runId: 'a1' })[0]!.cpuPercent, 12.5);
  assert.deepEqual(q.pipelineNames().map((p) => [p.name, p.runs]), [['billing, "EU"', 2], ['orders', 4]]);
});

test('a missing database file is an error, not an empty history', () => {
  const missing = new HistoryQuery(t.file('missing.db'));
  assert.throws(() => missing.listRuns(), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_STORAGE');
});
