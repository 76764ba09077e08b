import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pipeline, Parallel, WpipeError, ProcessError, AutoRegister } from '../src/index.js';
import { isExecutorAvailable, registerExecutor } from '../src/parallel/index.js';
import { restoreExecutor } from './helpers/executor-start.js';
import { HistoryQuery } from '../src/storage/query.js';
import { tempDir } from './fixtures/storage/tmp.js';

type Ctx = Record<string, unknown>;

test('Pipeline({ trackingDb }) records runs and steps; a failure is recorded as a failure', async () => {
  const t = tempDir();
  const file = t.file('p.db');
  const pipe = new Pipeline({ pipelineName: 'orders', trackingDb: file });
  pipe.setSteps([
    [(c: Ctx) => ({ rows: 3 }), 'load', 'v1'],
    new Parallel({ steps: [[() => ({ a: 1 }), 'enrichA'], [() => ({ b: 2 }), 'enrichB']] }),
    [(c: Ctx) => { if (c.fail) throw new Error('bad row, "7"'); return { saved: true }; }, 'save', 'v2'],
  ]);
  try {
    const out = await pipe.run({ orderId: 1 }, { runId: 'ok-1' });
    assert.equal(out.saved, true);
    await assert.rejects(pipe.run({ orderId: 2, fail: true }, { runId: 'bad-1' }), ProcessError);
    await pipe.close();
    const q = new HistoryQuery(file);
    const ok = q.getRunDetail('ok-1')!;
    assert.equal(ok.status, 'completed');
    assert.deepEqual(ok.steps.map((s) => [s.name, s.kind, s.status, s.parentStepId]), [
      ['load', 'task', 'completed', null],
      ['Parallel', 'parallel', 'completed', null],
      ['enrichA', 'task', 'completed', 2],
      ['enrichB', 'task', 'completed', 2],
      ['save', 'task', 'completed', null],
    ]);
    const bad = q.getRunDetail('bad-1')!;
    assert.equal(bad.status, 'error');
    assert.equal(bad.errorStep, 'save');
    assert.match(bad.errorMessage!, /bad row/);
    assert.equal(bad.steps.at(-1)!.status, 'error');
    // Each completed task's output is what it returned; blocks and failed steps have none.
    assert.deepEqual(ok.steps.map((s) => [s.name, s.output]), [
      ['load', { rows: 3 }], ['Parallel', null], ['enrichA', { a: 1 }], ['enrichB', { b: 2 }], ['save', { saved: true }],
    ]);
    assert.deepEqual(bad.steps.map((s) => [s.name, s.output]), [
      ['load', { rows: 3 }], ['Parallel', null], ['enrichA', { a: 1 }], ['enrichB', { b: 2 }], ['save', null],
    ]);
    q.close();
  } finally {
    t.cleanup();
  }
});

test('step outputs are recorded redacted and capped like run outputs, and a step that returns nothing records none', async () => {
  const t = tempDir();
  const file = t.file('o.db');
  const pipe = new Pipeline({ pipelineName: 'secrets', trackingDb: file, trackingRedact: ['password'], trackingMaxValueBytes: 256 });
  pipe.setSteps([
    [() => ({ user: 'ann', password: 'hunter2' }), 'login'],
    [() => ({ blob: 'x'.repeat(500) }), 'big'],
    [() => undefined, 'nothing'],
  ]);
  try {
    await pipe.run({}, { runId: 's-1' });
    await pipe.close();
    const q = new HistoryQuery(file);
    const steps = q.getRunDetail('s-1')!.steps;
    assert.deepEqual(steps[0]!.output, { user: 'ann', password: '[REDACTED]' });
    assert.equal((steps[1]!.output as { $truncated?: boolean }).$truncated, true);
    assert.equal(steps[2]!.output, null);
    q.close();
  } finally {
    t.cleanup();
  }
});

test('a step output the history cannot read (a throwing getter, a throwing Proxy) is recorded as unreadable; the run completes', async () => {
  const t = tempDir();
  const file = t.file('h.db');
  const getter = { get boom(): never { throw new Error('getter!'); } };
  const proxy = new Proxy({}, { ownKeys() { throw new Error('ownKeys!'); }, get() { throw new Error('get!'); } });
  const pipe = new Pipeline({ pipelineName: 'hostile', trackingDb: file });
  pipe.setSteps([[() => ({ nested: { deep: getter } }), 'getter'], [() => ({ p: proxy }), 'proxy'], [() => ({ ok: 1 }), 'after']]);
  try {
    const out = await pipe.run({}, { runId: 'h-1' });
    assert.equal(out.ok, 1);
    await pipe.close();
    const q = new HistoryQuery(file);
    const run = q.getRunDetail('h-1')!;
    assert.equal(run.status, 'completed');
    assert.deepEqual(run.steps.map((s) => [s.name, s.status, s.output]), [
      ['getter', 'completed', { nested: { deep: { boom: '[Unreadable: getter!]' } } }],
      ['proxy', 'completed', { p: '[Unreadable: ownKeys!]' }],
      ['after', 'completed', { ok: 1 }],
    ]);
    q.close();
  } finally {
    t.cleanup();
  }
});

test('resume by runId after a failure runs only what is left; a completed runId replays; a changed pipeline is refused', async () => {
  const t = tempDir();
  const file = t.file('r.db');
  const ran: string[] = [];
  let failOnce = true;
  const steps = [
    [(c: Ctx) => { ran.push('a'); return { n: 1, when: new Date(0) }; }, 'a'],
    [(c: Ctx) => { ran.push('b'); return { n: (c.n as number) + 1, seen: new Set([1]) }; }, 'b'],
    [(c: Ctx) => { ran.push('c'); if (failOnce) { failOnce = false; throw new Error('flaky'); } return { n: (c.n as number) + 1 }; }, 'c'],
  ] as const;
  try {
    const p1 = new Pipeline({ pipelineName: 'job', trackingDb: file }).setSteps([...steps]);
    p1.addCheckpoint('progress', 'n > 0');
    await assert.rejects(p1.run({}, { runId: 'job-1' }), ProcessError);
    await p1.close();
    assert.deepEqual(ran, ['a', 'b', 'c']);

    const p2 = new Pipeline({ pipelineName: 'job', trackingDb: file }).setSteps([...steps]);
    p2.addCheckpoint('progress', 'n > 0');
    const out = await p2.run({}, { runId: 'job-1' });
    assert.deepEqual(ran, ['a', 'b', 'c', 'c'], 'only the failed step ran again');
    assert.equal(out.n, 3);
    assert.ok(out.when instanceof Date && out.seen instanceof Set, 'the checkpoint carried Date and Set');

    const replay = await p2.run({}, { runId: 'job-1' });
    assert.deepEqual(ran, ['a', 'b', 'c', 'c'], 'a completed run id executes nothing');
    assert.equal(replay.n, 3);
    await p2.close();

    // Another failed run, then the step list changes: resuming it is refused.
    failOnce = true;
    const p3 = new Pipeline({ pipelineName: 'job', trackingDb: file }).setSteps([...steps]);
    p3.addCheckpoint('progress', 'n > 0');
    await assert.rejects(p3.run({}, { runId: 'job-2' }));
    await p3.close();
    const p4 = new Pipeline({ pipelineName: 'job', trackingDb: file }).setSteps([steps[0], [() => ({ other: 1 }), 'different'], steps[2]]);
    p4.addCheckpoint('progress', 'n > 0');
    await assert.rejects(p4.run({}, { runId: 'job-2' }), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_RESUME_MISMATCH');
    await p4.close();
  } finally {
    t.cleanup();
  }
});

test('a context value a checkpoint cannot carry fails the run with the key path', async () => {
  const t = tempDir();
  try {
    const file = t.file('s.db');
    const pipe = new Pipeline({ pipelineName: 'p', trackingDb: file }).setSteps([[() => ({ handler: () => 1 }), 'make']]);
    pipe.addCheckpoint('always', 'True');
    // The step whose result cannot be saved fails (a TaskError naming it and the key path), not an observer.
    await assert.rejects(pipe.run({}, { runId: 'cp-1' }), (e: unknown) => e instanceof WpipeError && e.errorCode === 502 && e.cause instanceof WpipeError
      && e.cause.code === 'WPIPE_ERR_CHECKPOINT_SERIALIZE' && /step 'make'/.test(e.cause.message) && /handler/.test(e.cause.message));
    await pipe.close();
    const q = new HistoryQuery(file);
    const run = q.getRunDetail('cp-1')!;
    assert.equal(run.status, 'error', 'the run end is recorded');
    assert.equal(run.errorStep, 'make');
    assert.deepEqual(run.steps.map((s) => [s.name, s.status]), [['make', 'error']]);
    q.close();
  } finally {
    t.cleanup();
  }
});

test("trackingDurability: 'run' records the same history with one commit per run; a bad value is a RangeError", async () => {
  const t = tempDir();
  const file = t.file('run-durability.db');
  const pipe = new Pipeline({ pipelineName: 'fast', trackingDb: file, trackingDurability: 'run' });
  pipe.setSteps([[() => ({ a: 1 }), 'one'], [() => ({ b: 2 }), 'two']]);
  try {
    assert.deepEqual(await pipe.run({}, { runId: 'r-1' }), { a: 1, b: 2 });
    await pipe.close();
    const q = new HistoryQuery(file);
    const run = q.getRunDetail('r-1')!;
    assert.equal(run.status, 'completed');
    assert.deepEqual(run.steps.map((s) => [s.name, s.status]), [['one', 'completed'], ['two', 'completed']]);
    q.close();
    assert.throws(() => new Pipeline({ trackingDb: file, trackingDurability: 'sometimes' as never }), RangeError);
  } finally {
    t.cleanup();
  }
});

// Where each step ran. The real thread executor first: the fake test below replaces the 'threads'
// registration and removes it after, which would also remove a real one registered at import.
const workerSteps = new URL('./fixtures/autoregister/worker-steps.ts', import.meta.url);

/**
 * Runs a Parallel forced to `kind` (one AutoRegister'd branch, one closure kept apart) with history;
 * returns [name, executor, worker] rows, the worker's number replaced by N.
 */
async function recordedExecutors(runId: string, kind: 'threads' | 'processes' = 'threads'): Promise<Array<[string, string | null, string | null]>> {
  const t = tempDir();
  const file = t.file('executor.db');
  try {
    const enrich = (await AutoRegister.fromModule(workerSteps, { tags: ['io'] }))[0]!;
    const pipe = new Pipeline({ pipelineName: 'placed', trackingDb: file }).setSteps([
      [() => ({ n: 2 }), 'load'],
      new Parallel({ steps: [enrich], executor: kind }),
      new Parallel({ steps: [[() => ({ local: true }), 'local']] }),
    ]);
    assert.deepEqual(await pipe.run({}, { runId }), { n: 2, enriched: 2, local: true });
    await pipe.close();
    const q = new HistoryQuery(file);
    const steps = q.getRunDetail(runId)!.steps;
    const pids = steps.map((s) => /^pid (\d+)$/.exec(s.worker ?? '')?.[1]).filter((p) => p !== undefined);
    assert.ok(!pids.includes(String(process.pid)), 'a process worker is another process');
    const rows = steps.map((s): [string, string | null, string | null] => [s.name, s.executor, s.worker?.replace(/\d+$/, 'N') ?? null]);
    q.close();
    return rows;
  } finally {
    t.cleanup();
  }
}

const EXPECTED_PLACES: Array<[string, string | null, string | null]> = [
  ['load', null, null], ['Parallel', null, null], ['enrich', 'threads', 'thread N'], ['Parallel', null, null], ['local', null, null],
];

test("run history records where each step ran: a Parallel branch forced to the real 'threads' executor", async (t) => {
  if (!isExecutorAvailable('threads')) {
    const reason = "the 'threads' executor is not registered in this build yet (src/parallel/threads.ts)";
    console.log(`# skipped: ${reason}`);
    t.skip(reason);
    return;
  }
  assert.deepEqual(await recordedExecutors('real-threads-1'), EXPECTED_PLACES);
});

test("run history records the worker of a step in a child process: 'pid N', another process", async () => {
  assert.deepEqual(await recordedExecutors('real-processes-1', 'processes'), [
    ['load', null, null], ['Parallel', null, null], ['enrich', 'processes', 'pid N'], ['Parallel', null, null], ['local', null, null],
  ]);
});

test('resume and replay of a run whose Parallel branches ran in workers: the branches are not run again', async () => {
  const t = tempDir();
  try {
    const file = t.file('resume-workers.db');
    const log = t.file('branch-runs.log');
    const { appendsLine } = await import('./fixtures/parallel/resume-steps.js');
    let failNext = true;
    const build = () => {
      const pipe = new Pipeline({ pipelineName: 'resumable', trackingDb: file }).setSteps([
        new Parallel({ steps: [appendsLine], executor: 'threads' }),
        new Parallel({ steps: [appendsLine], useProcesses: true }),
        [() => {
          if (failNext) { failNext = false; throw new Error('flaky'); }
          return { finished: true };
        }, 'flaky'],
      ]);
      pipe.addCheckpoint('branches-done', 'appended >= 1');
      return pipe;
    };
    const first = build();
    await assert.rejects(first.run({ log }, { runId: 'w-1' }), /flaky/);
    await first.close();
    const ranFirst = (await import('node:fs')).readFileSync(log, 'utf8').trim().split('\n');
    assert.equal(ranFirst.length, 2, 'both worker branches ran once');
    assert.notEqual(ranFirst[0], ranFirst[1], 'one in a thread, one in a child process');

    const second = build();
    const result = await second.run({ log }, { runId: 'w-1' });
    assert.equal(result.finished, true);
    assert.equal((await import('node:fs')).readFileSync(log, 'utf8').trim().split('\n').length, 2, 'resumed after the checkpoint: no branch ran again');
    // A completed run id replays its result without executing anything.
    const detailed = await second.runDetailed({ log }, { runId: 'w-1' });
    assert.equal(detailed.replayed, true);
    assert.deepEqual(detailed.result, result);
    assert.equal((await import('node:fs')).readFileSync(log, 'utf8').trim().split('\n').length, 2);
    await second.close();
    const q = new HistoryQuery(file);
    const steps = q.getRunDetail('w-1')!.steps.filter((s) => s.name === 'appendsLine');
    q.close();
    assert.deepEqual(steps.map((s) => [s.executor, s.worker?.replace(/\d+$/, 'N')]), [['threads', 'thread N'], ['processes', 'pid N']]);
  } finally {
    t.cleanup();
  }
});

test("run history records where each step ran: 'threads' for a branch on a (fake) thread executor, NULL in-process", async () => {
  const calls: string[] = [];
  registerExecutor('threads', () => ({
    kind: 'threads',
    call: (c) => { calls.push(c.moduleRef!.exportName); return Promise.resolve(c.fn(c.context, c.info as never)); },
    close: async () => {},
  }));
  try {
    // An executor that does not report its starts names no worker.
    assert.deepEqual(await recordedExecutors('fake-threads-1'), EXPECTED_PLACES.map(([n, e]) => [n, e, null]));
    assert.deepEqual(calls, ['enrich']);
  } finally {
    restoreExecutor('threads');
  }
});

test('started_at is when the run started, not when its database finished opening', async () => {
  const t = tempDir();
  try {
    const file = t.file('timing.db');
    const pipe = new Pipeline({ pipelineName: 'timing', trackingDb: file }).setSteps([[async () => { await new Promise((r) => setTimeout(r, 30)); return {}; }, 'wait']]);
    await pipe.run({}, { runId: 't-1' }); // the first run opens and migrates the database
    await pipe.close();
    const q = new HistoryQuery(file);
    const run = q.getRunDetail('t-1')!;
    q.close();
    const wall = Date.parse(run.completedAt!) - Date.parse(run.startedAt);
    assert.ok(Math.abs(wall - run.durationMs!) <= 5, `completed_at − started_at = ${wall} ms, total_duration_ms = ${run.durationMs}`);
  } finally {
    t.cleanup();
  }
});
