// One owner per run id (docs/architecture.md "Durable state"), checked the way users hit it: two Pipeline
// objects on one file, processes racing for the same ids, an owner killed while another waits, run
// ids reused across pipelines, steps whose output cannot be saved, processes that die mid-run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Pipeline, PipelineAsync, PipelineExporter, type Context } from '../src/index.js';
import { ProcessError, TaskError, WpipeError } from '../src/errors.js';
import { HistoryQuery } from '../src/storage/query.js';
import { rows, tempDir } from './fixtures/storage/tmp.js';

// Run ownership does not depend on the expression backend: this suite runs once (scripts/test.mjs:
// the js pass), its checkpoints evaluate under auto here and in the processes it starts, whatever
// WPIPE_BACKEND the pass has (the expr suites test each backend).
delete process.env.WPIPE_BACKEND;
const child = fileURLToPath(new URL('./fixtures/storage/owner-child.ts', import.meta.url));

/** Starts the owner-child fixture; `ready` resolves when it prints 'ready', `done` when it exits. */
function start(args: string[]): { ready: Promise<void>; done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>; kill: (s?: NodeJS.Signals) => void } {
  const p = spawn(process.execPath, ['--import', 'tsx', child, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WPIPE_DEBUG: '1' } });
  let stdout = '';
  let stderr = '';
  let onReady!: () => void;
  const ready = new Promise<void>((r) => { onReady = r; });
  p.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (stdout.includes('ready\n')) onReady();
  });
  p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
    p.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { ready, done, kill: (s = 'SIGKILL') => { p.kill(s); } };
}

/** How often each `<runId> <step>` appears in a log the steps append to. */
function executions(log: string): Map<string, number> {
  const counts = new Map<string, number>();
  if (!fs.existsSync(log)) return counts;
  for (const line of fs.readFileSync(log, 'utf8').split('\n')) {
    if (!line) continue;
    const [id, step] = line.split(' ');
    const k = `${id} ${step}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

function counter(): { steps: (name: string) => [(ctx: Context) => Context, string]; count: Map<string, number> } {
  const count = new Map<string, number>();
  return {
    count,
    steps: (name) => [(ctx: Context) => {
      count.set(name, (count.get(name) ?? 0) + 1);
      if (name === 'b' && ctx.failB) throw new Error('b fails');
      return { [name]: (ctx[name] as number | undefined ?? 0) + 1 };
    }, name],
  };
}

test('two Pipeline objects on one file, no pause: a completed id replays, a failed id resumes after its checkpoint', async () => {
  const t = tempDir();
  try {
    const file = t.file('two.db');
    const c = counter();
    const make = (): Pipeline => {
      const p = new Pipeline({ pipelineName: 'orders', trackingDb: file }).setSteps([c.steps('a'), c.steps('b'), c.steps('c')]);
      p.addCheckpoint('after-a', 'a >= 1');
      return p;
    };
    const first = make();
    const second = make();
    const out = await first.run({}, { runId: 'job-1' });
    assert.deepEqual(await second.run({}, { runId: 'job-1' }), out, 'the recorded result');
    assert.deepEqual([...c.count], [['a', 1], ['b', 1], ['c', 1]], 'nothing executed again');

    await assert.rejects(first.run({ failB: true }, { runId: 'job-2' }), ProcessError);
    c.count.clear();
    // The failed run resumes from its checkpoint (after a) in the other object: a is not run again.
    await assert.rejects(second.run({}, { runId: 'job-2' }), /b fails/, 'resumed with the checkpointed context (failB still set)');
    assert.deepEqual([...c.count], [['b', 1]], 'resumed after the checkpoint: a did not run again');
    await first.close();
    await second.close();
    const q = new HistoryQuery(file);
    assert.equal(q.getRunDetail('job-1')?.status, 'completed');
    assert.equal(q.getRunDetail('job-2')?.status, 'error');
    assert.equal(q.getRunDetail('job-2')?.resumes, 1);
    q.close();
  } finally {
    t.cleanup();
  }
});

test('two Pipeline objects start one id together: it executes once, both get its outcome; ifRunning fail and runSync fail fast', async () => {
  const t = tempDir();
  try {
    const file = t.file('together.db');
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const steps = [[async () => { runs++; await gate; return { done: true }; }, 'slow'] as [(c: Context) => Promise<Context>, string]];
    const a = new Pipeline({ pipelineName: 'p', trackingDb: file }).setSteps(steps);
    const b = new PipelineAsync({ pipelineName: 'p', trackingDb: file }).setSteps(steps);
    const pa = a.run({}, { runId: 'same' });
    await new Promise((r) => setTimeout(r, 20));
    const pb = b.run({}, { runId: 'same' });
    await assert.rejects(b.run({}, { runId: 'same', ifRunning: 'fail' }), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_RUN_IN_PROGRESS' && /same/.test(e.message));
    assert.throws(() => new Pipeline({ pipelineName: 'p', trackingDb: file }).setSteps([[() => ({}), 'x']]).runSync({}, { runId: 'same' }),
      (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_RUN_IN_PROGRESS' && /runSync cannot wait/.test(e.message));
    release();
    assert.deepEqual(await pa, { done: true });
    assert.deepEqual(await pb, { done: true });
    assert.equal(runs, 1);
    // A waiter whose signal aborts stops waiting.
    await a.close();
    await b.close();
  } finally {
    t.cleanup();
  }
});

test('a start that waited for a run that then failed rejects with its error (nothing runs again); a later start resumes it', async () => {
  const t = tempDir();
  try {
    const file = t.file('waited.db');
    let aRuns = 0;
    let bRuns = 0;
    let fixed = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const steps = (): [(c: Context) => unknown, string][] => [
      [() => { aRuns++; return { a: 1 }; }, 'a'],
      [async () => { bRuns++; await gate; if (!fixed) throw new Error('b broke'); return { b: 1 }; }, 'b'],
    ];
    const first = new Pipeline({ pipelineName: 'p', trackingDb: file }).setSteps(steps());
    first.addCheckpoint('after-a', 'a == 1');
    const second = new Pipeline({ pipelineName: 'p', trackingDb: file }).setSteps(steps());
    second.addCheckpoint('after-a', 'a == 1');
    const p1 = first.run({}, { runId: 'w' });
    await new Promise((r) => setTimeout(r, 20));
    const p2 = second.run({}, { runId: 'w' });
    release();
    await assert.rejects(p1, /b broke/);
    await assert.rejects(p2, (e: unknown) => e instanceof ProcessError && /b broke/.test(String((e as Error).message) + String(((e as Error).cause as Error | undefined)?.message)));
    assert.deepEqual([aRuns, bRuns], [1, 1], 'the waiter executed nothing');
    // A later start (not a waiter) resumes from the checkpoint.
    fixed = true;
    assert.deepEqual(await second.run({ ignored: 'a resume starts from the checkpoint' }, { runId: 'w' }), { a: 1, b: 1 });
    assert.deepEqual([aRuns, bRuns], [1, 2]);
    await first.close();
    await second.close();
  } finally {
    t.cleanup();
  }
});

test('a run id recorded for another pipeline is an error, never that pipeline\'s result (same process and another process)', async () => {
  const t = tempDir();
  try {
    const file = t.file('ids.db');
    const log = t.file('ids.log');
    const orders = start([file, 'race', log, 'orders', '7']);
    assert.equal((await orders.done).code, 0);
    let refundsRan = false;
    const refunds = new Pipeline({ pipelineName: 'refunds', trackingDb: file }).setSteps([[() => { refundsRan = true; return {}; }, 'refund']]);
    await assert.rejects(refunds.run({}, { runId: '7' }), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_RUN_ID_CONFLICT' && /orders/.test(e.message));
    assert.equal(refundsRan, false);
    await refunds.close();
    // The other way round, in another process.
    const local = new Pipeline({ pipelineName: 'local', trackingDb: file }).setSteps([[() => ({}), 'x']]);
    await local.run({}, { runId: 'order-8' });
    await local.close();
    const other = start([file, 'race', log, 'orders', 'order-8']);
    const r = await other.done;
    assert.deepEqual(JSON.parse(r.stdout), { 'order-8': { error: 'WPIPE_ERR_RUN_ID_CONFLICT' } }, r.stderr);
    assert.equal(executions(log).get('order-8 a'), undefined);
  } finally {
    t.cleanup();
  }
});

test('two processes started together on the same id, 20 rounds: each step executes once, both get the result', { timeout: 120_000 }, async () => {
  const t = tempDir();
  try {
    const file = t.file('race.db');
    const log = t.file('race.log');
    for (let round = 0; round < 20; round++) {
      const id = `round-${round}`;
      const [x, y] = [start([file, 'race', log, 'race', id]), start([file, 'race', log, 'race', id])];
      const [rx, ry] = await Promise.all([x.done, y.done]);
      assert.equal(rx.code, 0, rx.stderr);
      assert.equal(ry.code, 0, ry.stderr);
      const expected = { [id]: { id, a: true, b: true, c: true } };
      assert.deepEqual(JSON.parse(rx.stdout), expected, rx.stderr);
      assert.deepEqual(JSON.parse(ry.stdout), expected, ry.stderr);
    }
    const counts = executions(log);
    assert.equal(counts.size, 60);
    for (const [k, n] of counts) assert.equal(n, 1, `${k} executed ${n} times`);
    assert.equal(rows(file, 'SELECT count(*) AS n FROM pipelines')[0]!.n, 20);
    assert.equal(rows(file, 'SELECT count(*) AS n FROM steps')[0]!.n, 60);
  } finally {
    t.cleanup();
  }
});

test('4 processes × 250 runs with 10% of the ids shared: every step of every id executed exactly once, row counts exact', { timeout: 120_000 }, async () => {
  const t = tempDir();
  try {
    const file = t.file('four.db');
    const log = t.file('four.log');
    const shared = Array.from({ length: 25 }, (_, i) => `shared-${i}`);
    const procs = [0, 1, 2, 3].map((p) => start([file, 'race', log, 'four', [...Array.from({ length: 225 }, (_, i) => `p${p}-${i}`), ...shared].join(',')]));
    const results = await Promise.all(procs.map((p) => p.done));
    for (const r of results) {
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as Record<string, { id: string; c?: boolean; error?: string }>;
      assert.equal(Object.keys(out).length, 250);
      for (const id of shared) assert.deepEqual(out[id], { id, a: true, b: true, c: true });
    }
    const counts = executions(log);
    assert.equal(counts.size, (4 * 225 + 25) * 3);
    for (const [k, n] of counts) assert.equal(n, 1, `${k} executed ${n} times`);
    assert.equal(rows(file, 'SELECT count(*) AS n FROM pipelines')[0]!.n, 4 * 225 + 25);
    assert.equal(rows(file, "SELECT count(*) AS n FROM pipelines WHERE status = 'completed'")[0]!.n, 4 * 225 + 25);
    assert.equal(rows(file, 'SELECT count(*) AS n FROM steps')[0]!.n, (4 * 225 + 25) * 3);
  } finally {
    t.cleanup();
  }
});

test('the owner is SIGKILLed while another process waits: the waiter takes the run over from its checkpoint', { timeout: 60_000 }, async () => {
  const t = tempDir();
  try {
    const file = t.file('takeover.db');
    const log = t.file('takeover.log');
    const owner = start([file, 'slow', log, 'job']);
    await owner.ready;
    const waiter = new Pipeline({ pipelineName: 'slow', trackingDb: file });
    let cRan = 0;
    waiter.addCheckpoint('after-a', 'a');
    waiter.setSteps([[() => { throw new Error('a must not run again'); }, 'a'], [() => ({ b: 'taken over' }), 'b'], [() => { cRan++; return { c: true }; }, 'c']]);
    const waiting = waiter.run({}, { runId: 'job' });
    let settled = false;
    void waiting.finally(() => { settled = true; });
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(settled, false, 'waits while the owner lives');
    owner.kill('SIGKILL');
    await owner.done;
    const out = await waiting;
    assert.equal(out.b, 'taken over');
    assert.equal(cRan, 1);
    await waiter.close();
    const q = new HistoryQuery(file);
    const run = q.getRunDetail('job')!;
    assert.equal(run.status, 'completed');
    assert.equal(run.resumes, 1);
    assert.deepEqual(run.steps.map((s) => [s.name, s.status]), [['a', 'completed'], ['b', 'interrupted'], ['b', 'completed'], ['c', 'completed']]);
    q.close();
  } finally {
    t.cleanup();
  }
});

test('a step whose output a checkpoint cannot carry (throwing getter, hostile Proxy) fails that step; the run end is recorded and the id stays usable', async () => {
  const t = tempDir();
  try {
    const file = t.file('hostile.db');
    const hostile = new Proxy({}, { ownKeys: () => { throw new Error('trap'); }, get: () => { throw new Error('trap'); } });
    for (const [id, value] of [['getter', { nested: { get bad(): number { throw new Error('getter'); } } }], ['proxy', { nested: hostile }]] as const) {
      const p = new Pipeline({ pipelineName: 'hostile', trackingDb: file }).setSteps([[() => ({ value }), 'make'], [() => ({ after: 1 }), 'after']]);
      p.addCheckpoint('always', 'True');
      await assert.rejects(p.run({}, { runId: id }), (e: unknown) => e instanceof ProcessError && e.cause instanceof TaskError
        && e.cause.code === 'WPIPE_ERR_CHECKPOINT_SERIALIZE' && /value/.test(e.cause.message));
      await p.close();
      const q = new HistoryQuery(file);
      const run = q.getRunDetail(id)!;
      assert.equal(run.status, 'error', 'never left running');
      assert.deepEqual(run.steps.map((s) => [s.name, s.status]), [['make', 'error']]);
      q.close();
      // The id is usable: a pipeline that no longer returns it resumes and completes.
      const fixed = new Pipeline({ pipelineName: 'hostile', trackingDb: file }).setSteps([[() => ({ value: 1 }), 'make'], [() => ({ after: 1 }), 'after']]);
      assert.deepEqual(await fixed.run({}, { runId: id }), { value: 1, after: 1 });
      await fixed.close();
    }
    // Without a checkpoint the output is recorded best-effort (placeholders), and the run completes.
    const p = new Pipeline({ pipelineName: 'hostile', trackingDb: file }).setSteps([[() => ({ hostile }), 'make']]);
    await p.run({}, { runId: 'no-checkpoint' });
    await p.close();
    const row = rows(file, "SELECT status, output_exact FROM pipelines WHERE id = 'no-checkpoint'")[0]!;
    assert.deepEqual(row, { status: 'completed', output_exact: 0 });
  } finally {
    t.cleanup();
  }
});

test('runs of a process that died are recorded as interrupted (process.exit in a step, SIGKILL) and resumable', { timeout: 60_000 }, async () => {
  const t = tempDir();
  try {
    const file = t.file('died.db');
    const r = await start([file, 'exit-in-step']).done;
    assert.equal(r.code, 3, r.stderr);
    assert.deepEqual(rows(file, "SELECT status FROM pipelines WHERE id = 'exits-1'"), [{ status: 'interrupted' }], 'recorded at exit, before anyone opens the file again');
    const many = start([file, 'many', '5']);
    await many.ready;
    many.kill('SIGKILL');
    await many.done;
    const q = new HistoryQuery(file);
    const runs = q.listRuns({ limit: 100 }).runs.filter((x) => x.pipelineName === 'many');
    assert.equal(runs.length, 5);
    assert.ok(runs.every((x) => x.status === 'completed'));
    q.close();
  } finally {
    t.cleanup();
  }
});

test('a blocked event loop does not hide finished runs from wpipe readers; after SIGTERM every finished run is seen', { timeout: 60_000 }, async () => {
  const t = tempDir();
  try {
    const file = t.file('blocked.db');
    const blocked = start([file, 'block']);
    await blocked.ready; // 'done' finished; its process is now stuck in a 3 s synchronous step
    const t0 = performance.now();
    const q = new HistoryQuery(file);
    assert.equal(q.getRunDetail('done')?.status, 'completed');
    assert.equal(q.getRunDetail('blocker')?.status, 'running');
    assert.ok(performance.now() - t0 < 1500, 'seen while the owner is blocked');
    await blocked.done;
    const many = start([file, 'many', '101']);
    await many.ready;
    many.kill('SIGTERM');
    await many.done;
    assert.equal(q.listRuns({ limit: 500 }).runs.filter((x) => x.pipelineName === 'many' && x.status === 'completed').length, 101);
    q.close();
    // The exporter, a reader that is not a tracker, sees the same.
    const exporter = new PipelineExporter(file);
    const exported = JSON.parse(exporter.exportPipelineLogs({ format: 'json' })) as { name: string; status: string }[];
    exporter.close();
    assert.equal(exported.filter((r) => r.name === 'many' && r.status === 'completed').length, 101);
  } finally {
    t.cleanup();
  }
});
