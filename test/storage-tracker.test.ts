import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { RunTracker } from '../src/storage/tracker.js';
import { TaskError, WpipeError } from '../src/errors.js';
import { tempDir } from './fixtures/storage/tmp.js';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3') as typeof import('better-sqlite3');
const exitFlushFixture = fileURLToPath(new URL('./fixtures/storage/exit-flush.ts', import.meta.url));

/** Another connection, as a crash survivor would see the file: only committed rows. */
function committed(file: string) {
  const raw = new Database(file, { readonly: true });
  return {
    run: (id: string) => raw.prepare('SELECT * FROM pipelines WHERE id = ?').get(id) as Record<string, unknown> | undefined,
    steps: (id: string) => raw.prepare('SELECT * FROM steps WHERE pipeline_id = ? ORDER BY step_order').all(id) as Record<string, unknown>[],
    checkpoint: (id: string) => raw.prepare('SELECT * FROM checkpoints WHERE pipeline_id = ?').get(id) as Record<string, unknown> | undefined,
    count: (table: string) => (raw.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n,
    close: () => raw.close(),
  };
}

test('journal: false — each boundary commits the previous completion with the next start', () => {
  const t = tempDir();
  const file = t.file('t.db');
  const tracker = new RunTracker(file, { workerId: 'w1', workerName: 'host-a', journal: false });
  try {
    // fresh: a generated id, whose row goes with the first boundary (a chosen id is claimed by its own commit: see storage-ownership).
    const run = tracker.startRun({ runId: 'r1', pipelineName: 'orders', input: { id: 7, at: new Date(0) }, structureHash: 'h1', fresh: true });
    assert.equal(run.status, 'running');
    assert.equal(tracker.pendingWrites, 1);
    const s1 = tracker.startStep({ runId: 'r1', name: 'load', version: 'v1', kind: 'task', position: 0 });
    assert.equal(tracker.pendingWrites, 0);
    let view = committed(file);
    assert.equal(view.run('r1')?.status, 'running');
    assert.equal(view.run('r1')?.worker_id, 'w1');
    assert.deepEqual(view.steps('r1').map((s) => [s.step_name, s.status]), [['load', 'running']]);
    view.close();

    tracker.finishStep({ stepId: s1, status: 'completed', attempts: 1, durationMs: 2.5, output: { rows: 3 } });
    tracker.saveCheckpoint({ runId: 'r1', name: 'loaded', resumeAt: 1, context: { id: 7, rows: 3, seen: new Set([1]) } });
    assert.equal(tracker.pendingWrites, 2, 'completion and checkpoint wait for the next boundary');
    const tx = tracker.db.stats.transactions;
    const s2 = tracker.startStep({ runId: 'r1', name: 'save', version: 'v2', position: 1 });
    assert.equal(tracker.db.stats.transactions, tx + 1, 'one commit for the whole boundary');
    view = committed(file);
    const steps = view.steps('r1');
    assert.deepEqual(steps.map((s) => [s.step_order, s.step_name, s.status]), [[1, 'load', 'completed'], [2, 'save', 'running']]);
    assert.equal(steps[0]!.attempts, 1);
    assert.equal(steps[0]!.duration_ms, 2.5);
    assert.equal(steps[0]!.output_data, '{"rows":3}');
    assert.equal(view.checkpoint('r1')?.position, 1);
    assert.equal(view.checkpoint('r1')?.step_order, 1);
    view.close();

    const cp = tracker.loadLatestCheckpoint('r1');
    assert.ok(cp && cp.context && (cp.context as { seen: Set<number> }).seen instanceof Set);
    assert.equal(cp.name, 'loaded');

    tracker.finishStep({ stepId: s2, status: 'completed', attempts: 1, durationMs: 1 });
    tracker.finishRun({ runId: 'r1', status: 'completed', output: { id: 7, rows: 3, when: new Date(5) } });
    assert.equal(tracker.pendingWrites, 0);
    const done = tracker.getRun('r1')!;
    assert.equal(done.status, 'completed');
    assert.ok(done.completedAt && done.durationMs !== null && done.durationMs >= 0);
    assert.ok((done.output as { when: Date }).when instanceof Date);
    assert.equal(done.outputExact, true);
    assert.ok((done.input as { at: Date }).at instanceof Date);
    assert.equal(done.structureHash, 'h1');
    assert.equal(tracker.loadLatestCheckpoint('r1'), undefined, 'a completed run drops its checkpoint');
    assert.deepEqual(tracker.getSteps('r1').map((s) => s.status), ['completed', 'completed']);
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test('a 10-step run is 11 commits with journal: false', () => {
  const t = tempDir();
  const tracker = new RunTracker(t.file('c.db'), { journal: false });
  try {
    tracker.getRun('warm-up');
    const before = tracker.db.stats.transactions;
    tracker.startRun({ runId: 'r', pipelineName: 'p', fresh: true });
    for (let i = 0; i < 10; i++) {
      const id = tracker.startStep({ runId: 'r', name: `s${i}`, position: i });
      tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0 });
    }
    tracker.finishRun({ runId: 'r', status: 'completed' });
    assert.equal(tracker.db.stats.transactions - before, 11);
    assert.equal(tracker.stats.journalAppends, 0);
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test('default durability: a 10-step run is 11 journal appends, folded into SQLite by one commit', async () => {
  const t = tempDir();
  const file = t.file('j.db');
  const tracker = new RunTracker(file, { autoFlushMs: 20 });
  try {
    tracker.getRun('warm-up');
    const before = tracker.db.stats.transactions;
    tracker.startRun({ runId: 'r', pipelineName: 'p', input: { n: 1 }, fresh: true });
    for (let i = 0; i < 10; i++) {
      const id = tracker.startStep({ runId: 'r', name: `s${i}`, position: i });
      assert.equal(tracker.pendingWrites, 0, 'a boundary leaves nothing that is not durable');
      tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0, output: { i } });
    }
    tracker.finishRun({ runId: 'r', status: 'completed', output: { done: true } });
    assert.equal(tracker.stats.journalAppends, 11);
    assert.equal(tracker.db.stats.transactions - before, 0, 'nothing committed to SQLite yet');
    assert.ok(tracker.unfoldedWrites > 0);
    const dir = `${file}.wpipe-journal`;
    const logs = fs.readdirSync(dir).filter((n) => n.endsWith('.log'));
    assert.equal(logs.length, 1);
    const text = fs.readFileSync(path.join(dir, logs[0]!), 'utf8');
    assert.equal(text.trim().split('\n').length, 12, 'a header and one line per boundary');
    let view = committed(file);
    assert.equal(view.run('r'), undefined, 'another connection sees the run only after the fold');
    view.close();
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(tracker.unfoldedWrites, 0, 'the timer folded within autoFlushMs');
    assert.equal(tracker.db.stats.transactions - before, 1, 'one commit for the whole run');
    view = committed(file);
    assert.equal(view.run('r')?.status, 'completed');
    assert.equal(view.run('r')?.output_data, '{"done":true}');
    assert.deepEqual(view.steps('r').map((s) => [s.step_name, s.status, s.output_data]),
      Array.from({ length: 10 }, (_, i) => [`s${i}`, 'completed', `{"i":${i}}`]));
    view.close();
    tracker.close();
    assert.equal(fs.existsSync(dir), false, 'close() removes the folded journal');
    const raw = new Database(file, { readonly: true });
    assert.equal((raw.prepare('SELECT count(*) AS n FROM wpipe_journal').get() as { n: number }).n, 0);
    raw.close();
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test("a step's worker is recorded whether its start was written or not; another tracker folding the journal sees it", () => {
  // Default durability journals each start at its boundary, so a worker step's end is an update
  // (FinishStepWorker); durability 'run' journals the whole run at its end, so a worker step is one
  // insert (InsertStepWorker); journal: false commits to SQLite directly.
  for (const options of [{}, { durability: 'run' as const }, { journal: false }]) {
    const t = tempDir();
    const file = t.file('w.db');
    const a = new RunTracker(file, { ...options, autoFlushMs: 60_000 });
    const b = new RunTracker(file);
    try {
      a.startRun({ runId: 'r', pipelineName: 'p', fresh: true });
      const top = a.startStep({ runId: 'r', name: 'in-thread', position: 0, executor: 'threads' });
      a.finishStep({ stepId: top, status: 'completed', attempts: 1, durationMs: 1, worker: 'thread 3' });
      const par = a.startStep({ runId: 'r', name: 'Parallel', position: 1, kind: 'parallel' });
      const child = a.startStep({ runId: 'r', name: 'in-child', parentStep: par, executor: 'processes' });
      a.finishStep({ stepId: child, status: 'error', attempts: 2, durationMs: 1, error: new Error('boom'), worker: 'pid 4242' });
      const local = a.startStep({ runId: 'r', name: 'inline', parentStep: par });
      a.finishStep({ stepId: local, status: 'completed', attempts: 1, durationMs: 1 });
      a.finishStep({ stepId: par, status: 'error', attempts: 1, durationMs: 2 });
      a.finishRun({ runId: 'r', status: 'error', error: new Error('boom') });
      const expected = [
        ['in-thread', 'threads', 'thread 3', null], ['Parallel', null, null, 'unknown error'],
        ['in-child', 'processes', 'pid 4242', 'boom'], ['inline', null, null, null],
      ];
      const label = JSON.stringify(options);
      // b folds a's journal (a has not folded it yet) before it reads.
      assert.deepEqual(b.getSteps('r').map((x) => [x.name, x.executor, x.worker, x.error?.message ?? null]), expected, label);
      a.close();
      const view = committed(file);
      assert.deepEqual(view.steps('r').map((x) => [x.step_name, x.executor, x.worker, x.error_message]), expected, label);
      view.close();
    } finally {
      a.close();
      b.close();
      t.cleanup();
    }
  }
});

test('failures are recorded as failures: step and run error with message, code, stack and failing step', () => {
  const t = tempDir();
  const tracker = new RunTracker(t.file('f.db'));
  try {
    tracker.startRun({ runId: 'bad', pipelineName: 'p' });
    const id = tracker.startStep({ runId: 'bad', name: 'boom', version: 'v3' });
    const cause = new Error('connection refused');
    tracker.recordAttempt({ stepId: id, attempt: 1, status: 'error', durationMs: 4, error: cause });
    tracker.recordAttempt({ stepId: id, attempt: 2, status: 'timeout', durationMs: 50, error: new TaskError('timed out', { code: 'WPIPE_ERR_TASK_TIMEOUT' }) });
    const err = new TaskError("step 'boom' failed after 2 attempts", { cause, details: { stepName: 'boom' } });
    tracker.finishStep({ stepId: id, status: 'error', attempts: 2, durationMs: 60, error: err });
    tracker.finishRun({ runId: 'bad', status: 'error', error: err, errorStep: 'boom' });
    const run = tracker.getRun('bad')!;
    assert.equal(run.status, 'error');
    assert.equal(run.error?.message, "step 'boom' failed after 2 attempts");
    assert.equal(run.error?.code, 'WPIPE_ERR_TASK_FAILED');
    assert.match(run.error!.detail!, /connection refused/, 'the cause chain is kept');
    assert.equal(run.errorStep, 'boom');
    const [step] = tracker.getSteps('bad');
    assert.equal(step!.status, 'error');
    assert.equal(step!.attempts, 2);
    assert.equal(step!.error?.code, 'WPIPE_ERR_TASK_FAILED');
    assert.match(step!.error!.detail!, /TaskError/);
    const attempts = tracker.db.raw.prepare('SELECT attempt, status, error_message, error_code FROM attempts WHERE pipeline_id = ? ORDER BY attempt').all('bad');
    assert.deepEqual(attempts, [
      { attempt: 1, status: 'error', error_message: 'connection refused', error_code: null },
      { attempt: 2, status: 'timeout', error_message: 'timed out', error_code: 'WPIPE_ERR_TASK_TIMEOUT' },
    ]);
    // An error run keeps nothing else silently: cancelled is its own status.
    tracker.startRun({ runId: 'stop', pipelineName: 'p' });
    tracker.finishRun({ runId: 'stop', status: 'cancelled' });
    assert.equal(tracker.getRun('stop')!.status, 'cancelled');
    tracker.startRun({ runId: 'unknown', pipelineName: 'p' });
    tracker.finishRun({ runId: 'unknown', status: 'error' });
    assert.equal(tracker.getRun('unknown')!.error?.message, 'unknown error');
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test('events, alerts and system metrics are committed by the timer when no boundary follows', async () => {
  const t = tempDir();
  const file = t.file('e.db');
  const tracker = new RunTracker(file, { autoFlushMs: 5 });
  try {
    tracker.startRun({ runId: 'r', pipelineName: 'p' });
    const id = tracker.startStep({ runId: 'r', name: 's' });
    tracker.recordEvent({ runId: 'r', stepId: id, type: 'checkpoint', name: 'cp', message: 'Checkpoint reached: cp', data: { n: 1 }, tags: ['a'] });
    tracker.recordAlert({ stepId: id, metric: 'step_duration_ms', value: 812, threshold: 500, severity: 'warning', message: 'slow' });
    tracker.recordSystemMetrics({ runId: 'r', cpuPercent: 12.5, memoryPercent: 40, memoryUsedMb: 100, rssMb: 80 });
    tracker.recordEvent({ type: 'note', name: 'global' });
    assert.equal(tracker.pendingWrites, 4);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(tracker.pendingWrites, 0);
    const view = committed(file);
    assert.equal(view.count('events'), 2);
    assert.equal(view.count('alerts_fired'), 1);
    assert.equal(view.count('system_metrics'), 1);
    view.close();
    const ev = tracker.db.raw.prepare("SELECT * FROM events WHERE event_name = 'cp'").get() as Record<string, unknown>;
    assert.equal(ev.pipeline_id, 'r');
    assert.equal(ev.step_id, 1);
    assert.equal(ev.tags, '["a"]');
    const alert = tracker.db.raw.prepare('SELECT * FROM alerts_fired').get() as Record<string, unknown>;
    assert.equal(alert.pipeline_id, 'r');
    assert.equal(alert.metric_value, 812);
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test('nested pipelines and block children are linked to their parents', () => {
  const t = tempDir();
  const tracker = new RunTracker(t.file('n.db'));
  const childTracker = new RunTracker(t.file('child.db'));
  try {
    tracker.startRun({ runId: 'parent', pipelineName: 'outer' });
    const block = tracker.startStep({ runId: 'parent', name: 'Parallel Block', kind: 'parallel', position: 0 });
    const a = tracker.startStep({ runId: 'parent', name: 'a', parentStep: block, parallelGroup: 'group_1', executor: 'threads' });
    const nested = tracker.startStep({ runId: 'parent', name: 'inner', kind: 'pipeline', parentStep: block, executor: 'inline' });
    tracker.startRun({ runId: 'child', pipelineName: 'inner', parentRunId: 'parent', parentStep: nested });
    // A nested pipeline with its own database still names the parent step through the handle.
    childTracker.startRun({ runId: 'child2', pipelineName: 'inner', parentStep: nested });
    childTracker.finishRun({ runId: 'child2', status: 'completed' });
    tracker.finishRun({ runId: 'child', status: 'completed', output: { x: 1 } });
    for (const id of [a, nested, block]) tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 1 });
    tracker.finishRun({ runId: 'parent', status: 'completed' });
    const steps = tracker.getSteps('parent');
    assert.deepEqual(steps.map((s) => [s.order, s.name, s.kind, s.parentStepId, s.parallelGroup, s.executor]), [
      [1, 'Parallel Block', 'parallel', null, null, null],
      [2, 'a', 'task', 1, 'group_1', 'threads'],
      [3, 'inner', 'pipeline', 1, null, 'inline'],
    ]);
    const child = tracker.getRun('child')!;
    assert.equal(child.parentRunId, 'parent');
    assert.equal(child.parentStepId, 3);
    const child2 = childTracker.getRun('child2')!;
    assert.equal(child2.parentRunId, 'parent');
    assert.equal(child2.parentStepId, 3);
  } finally {
    tracker.close();
    childTracker.close();
    t.cleanup();
  }
});

test('resumeRun: not found, completed (recorded result) and crashed (reopened from its checkpoint)', () => {
  const t = tempDir();
  const file = t.file('r.db');
  try {
    const first = new RunTracker(file);
    assert.deepEqual(first.resumeRun({ runId: 'none' }), { outcome: 'not-found' });
    first.startRun({ runId: 'done', pipelineName: 'p', structureHash: 'h' });
    first.finishRun({ runId: 'done', status: 'completed', output: { total: 10n } });
    first.startRun({ runId: 'crash', pipelineName: 'p', structureHash: 'h', input: { n: 0 } });
    const s1 = first.startStep({ runId: 'crash', name: 'one', position: 0 });
    first.finishStep({ stepId: s1, status: 'completed', attempts: 1, durationMs: 1 });
    first.saveCheckpoint({ runId: 'crash', name: 'after-one', resumeAt: 1, context: { n: 1, m: new Map([['k', 1]]) } });
    first.startStep({ runId: 'crash', name: 'two', position: 1 }); // the step in flight when the process dies
    first.recordEvent({ runId: 'crash', type: 'note', name: 'lost' }); // queued, never committed: "the step in flight"
    // Simulate the kill: drop the tracker without flushing.
    (first as unknown as { c: { queue: unknown[] } }).c.queue = [];
    first.close();

    const second = new RunTracker(file);
    const completed = second.resumeRun({ runId: 'done', structureHash: 'h' });
    assert.equal(completed.outcome, 'completed');
    assert.deepEqual(completed.outcome === 'completed' && completed.run.output, { total: 10n });

    assert.throws(() => second.resumeRun({ runId: 'crash', structureHash: 'other' }), (e: unknown) => {
      assert.ok(e instanceof WpipeError);
      assert.equal(e.code, 'WPIPE_ERR_RESUME_MISMATCH');
      assert.match(e.message, /steps changed/);
      assert.match(e.message, /after-one/);
      return true;
    });
    assert.equal(second.getRun('crash')!.resumes, 0, 'a refused resume changes nothing');

    const r = second.resumeRun({ runId: 'crash', structureHash: 'h' });
    assert.equal(r.outcome, 'resumed');
    if (r.outcome !== 'resumed') return;
    assert.equal(r.previousStatus, 'interrupted', 'close() recorded the run in flight as interrupted');
    assert.equal(r.run.resumes, 1);
    assert.equal(r.checkpoint?.position, 1);
    assert.deepEqual(r.checkpoint?.context, { n: 1, m: new Map([['k', 1]]) });
    const s2 = second.startStep({ runId: 'crash', name: 'two', position: 1 });
    second.finishStep({ stepId: s2, status: 'completed', attempts: 1, durationMs: 1 });
    second.finishRun({ runId: 'crash', status: 'completed', output: { n: 2 } });
    const steps = second.getSteps('crash');
    assert.deepEqual(steps.map((s) => [s.order, s.name, s.status]), [[1, 'one', 'completed'], [2, 'two', 'interrupted'], [3, 'two', 'completed']]);
    const events = second.db.raw.prepare("SELECT event_type, event_name FROM events WHERE pipeline_id = 'crash'").all();
    assert.deepEqual(events, [{ event_type: 'resume', event_name: 'crash' }]);
    assert.equal(second.getRun('crash')!.status, 'completed');
    second.close();
  } finally {
    t.cleanup();
  }
});

test('checkpoints: unsupported values fail before anything is queued; a structure mismatch is refused', () => {
  const t = tempDir();
  const tracker = new RunTracker(t.file('cp.db'));
  try {
    tracker.startRun({ runId: 'r', pipelineName: 'p', structureHash: 'h1' });
    const id = tracker.startStep({ runId: 'r', name: 's', position: 0 });
    const before = tracker.pendingWrites;
    assert.throws(
      () => tracker.finishStepWithCheckpoint(
        { stepId: id, status: 'completed', attempts: 1, durationMs: 1 },
        { runId: 'r', name: 'cp', resumeAt: 1, context: { orders: [{}, {}, {}, { when: () => 0 }] } },
      ),
      (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_CHECKPOINT_SERIALIZE' && /orders\[3\]\.when/.test(e.message),
    );
    assert.equal(tracker.pendingWrites, before, 'the step completion was not queued either');
    tracker.finishStepWithCheckpoint(
      { stepId: id, status: 'completed', attempts: 1, durationMs: 1 },
      { runId: 'r', name: 'cp', resumeAt: 1, context: { ok: true } },
    );
    tracker.saveCheckpoint({ runId: 'r', name: 'cp2', resumeAt: 1, context: { ok: 2 } });
    const cp = tracker.loadLatestCheckpoint('r')!;
    assert.equal(cp.name, 'cp2');
    assert.equal(cp.saves, 2);
    assert.throws(() => tracker.loadLatestCheckpoint('r', { structureHash: 'h2' }), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_RESUME_MISMATCH');
    assert.throws(() => tracker.saveCheckpoint({ runId: 'r', name: 'x', resumeAt: -1, context: {} }), RangeError);
    assert.throws(() => tracker.saveCheckpoint({ runId: 'nope', name: 'x', resumeAt: 0, context: {} }), /not in progress/);
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test("durability 'run' is durable once per run (one journal line) and loses unfinished runs on a crash", () => {
  const t = tempDir();
  const file = t.file('run.db');
  const tracker = new RunTracker(file, { durability: 'run' });
  try {
    tracker.startRun({ runId: 'fast', pipelineName: 'p', fresh: true });
    for (let i = 0; i < 5; i++) {
      const id = tracker.startStep({ runId: 'fast', name: `s${i}` });
      tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0, output: { i } });
    }
    assert.equal(tracker.stats.journalAppends, 0, 'nothing durable before finishRun');
    tracker.finishRun({ runId: 'fast', status: 'completed' });
    assert.equal(tracker.stats.journalAppends, 1);
    assert.equal(tracker.pendingWrites, 0);
    assert.deepEqual(tracker.getSteps('fast').map((s) => s.status), Array(5).fill('completed'));
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test("durability 'run' with journal: false commits once per run", () => {
  const t = tempDir();
  const file = t.file('run.db');
  const tracker = new RunTracker(file, { durability: 'run', journal: false });
  try {
    tracker.getRun('warm-up');
    const before = tracker.db.stats.transactions;
    tracker.startRun({ runId: 'fast', pipelineName: 'p', fresh: true });
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) {
      const id = tracker.startStep({ runId: 'fast', name: `s${i}` });
      ids.push(id);
      tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0, output: { i } });
    }
    const view = committed(file);
    assert.equal(view.run('fast'), undefined, 'nothing committed before finishRun');
    tracker.finishRun({ runId: 'fast', status: 'completed' });
    assert.equal(tracker.db.stats.transactions - before, 1);
    assert.equal(view.steps('fast').length, 5);
    assert.deepEqual(view.steps('fast').map((s) => s.status), Array(5).fill('completed'));
    view.close();
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test('transaction() groups several commit points into one commit', () => {
  const t = tempDir();
  const tracker = new RunTracker(t.file('g.db'));
  try {
    tracker.startRun({ runId: 'r', pipelineName: 'p' });
    tracker.getSteps('r');
    const before = tracker.db.stats.transactions;
    const ids = tracker.transaction(() => [0, 1, 2].map((i) => tracker.startStep({ runId: 'r', name: `b${i}` })));
    assert.equal(tracker.db.stats.transactions - before, 1);
    assert.equal(tracker.getSteps('r').length, 3);
    for (const id of ids) tracker.finishStep({ stepId: id, status: 'skipped' });
    tracker.finishRun({ runId: 'r', status: 'completed' });
    assert.deepEqual(tracker.getSteps('r').map((s) => [s.status, s.attempts]), Array(3).fill(['skipped', 0]));
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test('misuse is reported clearly', () => {
  const t = tempDir();
  const tracker = new RunTracker(t.file('x.db'));
  try {
    tracker.startRun({ runId: 'r', pipelineName: 'p' });
    assert.throws(() => tracker.startRun({ runId: 'r', pipelineName: 'p' }), (e: unknown) => e instanceof WpipeError && /already recorded/.test(e.message));
    tracker.finishRun({ runId: 'r', status: 'completed' });
    assert.throws(() => tracker.startRun({ runId: 'r', pipelineName: 'p' }), /resumeRun/);
    assert.throws(() => tracker.startStep({ runId: 'zzz', name: 's' }), /not in progress/);
    assert.throws(() => tracker.finishStep({ stepId: 999_999, status: 'completed' }), /unknown step id/);
    assert.throws(() => tracker.startRun({ runId: '', pipelineName: 'p' }), TypeError);
    tracker.startRun({ runId: 'r2', pipelineName: 'p' });
    assert.throws(() => tracker.finishRun({ runId: 'r2', status: 'done' as never }), RangeError);
    const id = tracker.startStep({ runId: 'r2', name: 's' });
    assert.throws(() => tracker.finishStep({ stepId: id, status: 'running' as never }), RangeError);
  } finally {
    tracker.close();
    t.cleanup();
  }
  assert.throws(() => tracker.getRun('r'), /after close/);
});

test('a Background step finishing after its run ended is still committed', () => {
  const t = tempDir();
  const tracker = new RunTracker(t.file('bg.db'));
  try {
    tracker.startRun({ runId: 'r', pipelineName: 'p' });
    const bg = tracker.startStep({ runId: 'r', name: 'notify', kind: 'background' });
    tracker.finishRun({ runId: 'r', status: 'completed' });
    tracker.finishStep({ stepId: bg, status: 'error', attempts: 1, durationMs: 30, error: new Error('smtp down') });
    assert.equal(tracker.pendingWrites, 0);
    assert.deepEqual(tracker.getSteps('r').map((s) => [s.status, s.error?.message]), [['error', 'smtp down']]);
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test('writes still queued at a normal process exit are committed', () => {
  const t = tempDir();
  try {
    const file = t.file('exit.db');
    const r = spawnSync(process.execPath, ['--import', 'tsx', exitFlushFixture, file], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    const view = committed(file);
    assert.equal(view.count('events'), 1);
    assert.equal(view.run('exit')?.status, 'interrupted', 'a run in flight at exit can never finish: recorded as interrupted (resumable)');
    view.close();
  } finally {
    t.cleanup();
  }
});
