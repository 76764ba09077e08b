// Whole runs as BullMQ jobs against a real Redis: pipe.enqueue puts a run on `<name>-runs` with its
// run id as job id (enqueued twice: one job, one execution); a worker process started with
// `pipelines` runs it and records it in its trackingDb; a worker SIGKILLed mid-run leaves the job to
// BullMQ's stalled check, and the retry on another worker (same trackingDb) resumes after the last
// finished step; a poison run ends in the failed set with its error after its attempts; a pipeline
// the worker does not have is refused; bad options are refused before anything is queued.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Pipeline } from '../src/engine/index.js';
import { useBullmq } from '../src/queue/executor.js';
import { WpipeError } from '../src/errors.js';
import { freePort, redisSuite } from './helpers/redis.js';

const T = { timeout: 120_000 };
const here = fileURLToPath(new URL('.', import.meta.url));
const pipelinesModule = join(here, 'fixtures', 'bullmq', 'pipelines.ts');
const tmp = mkdtempSync(join(tmpdir(), 'wpipe-bullmq-runs-'));

const queues: Queue[] = [];
const suite = redisSuite();
suite.cleanup(async () => {
  for (const q of queues) await q.close();
  rmSync(tmp, { recursive: true, force: true });
});

function runsQueue(name: string): Queue {
  const q = new Queue(`${name}-runs`, { connection: suite.redis!.connection });
  queues.push(q);
  return q;
}

/** Polls the job until it is completed or failed (bounded generously: nothing here depends on speed). */
async function settled(q: Queue, jobId: string, ms = 90_000): Promise<{ state: string; returnvalue: unknown; failedReason: string; attemptsMade: number }> {
  const end = Date.now() + ms;
  for (;;) {
    const job = await q.getJob(jobId);
    const state = job === undefined ? 'missing' : await job.getState();
    if (state === 'completed' || state === 'failed') {
      const done = (await q.getJob(jobId))!; // read after the state is final: `job` may predate it
      return { state, returnvalue: done.returnvalue, failedReason: done.failedReason, attemptsMade: done.attemptsMade };
    }
    if (Date.now() > end) throw new Error(`job ${jobId} still ${state} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').filter((l) => l !== '') : [];
}

test('enqueue refuses bad options before anything is queued', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const pipe = new Pipeline({ pipelineName: 'orders' });
  useBullmq(null);
  await assert.rejects(pipe.enqueue({}, { runId: 'r-1' }), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_EXECUTOR_UNAVAILABLE' && /useBullmq/.test(e.message));
  useBullmq({ connection: suite.redis!.url, name: 'bad' });
  await assert.rejects(pipe.enqueue({}, undefined as never), /runId/);
  await assert.rejects(pipe.enqueue({}, { runId: 'a:b' }), /without ':'/);
  await assert.rejects(pipe.enqueue({}, { runId: '42' }), /not all digits/);
  await assert.rejects(pipe.enqueue({}, { runId: 'r', attempts: 0 }), /attempts/);
  await assert.rejects(pipe.enqueue({}, { runId: 'r', atempts: 2 } as never), /unknown option 'atempts'/);
  await assert.rejects(pipe.enqueue({ f: () => 1 }, { runId: 'r' }), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_WORKER_CLONE');
  const port = await freePort();
  await assert.rejects(pipe.enqueue({}, { runId: 'r', queue: { connection: `redis://127.0.0.1:${port}` } }),
    (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_QUEUE_UNAVAILABLE' && /ECONNREFUSED/.test(e.message));
  assert.equal(await runsQueue('bad').count(), 0);
});

test('a run enqueued twice is one job: two workers racing for it run it once, recorded in their shared trackingDb', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const db = join(tmp, 'once.db');
  const log = join(tmp, 'once.log');
  // Two worker processes on one queue and one trackingDb (one host, one disk: a safe combination).
  await Promise.all([0, 1].map(() => suite.workers!.start({ queue: 'once', pipelines: pipelinesModule }, { WPIPE_TEST_DB: db })));
  useBullmq({ connection: suite.redis!.url, name: 'once' });
  const pipe = new Pipeline({ pipelineName: 'orders' });
  const [a, b] = await Promise.all([pipe.enqueue({ n: 21, log }, { runId: 'order-1' }), pipe.enqueue({ n: 21, log }, { runId: 'order-1' })]);
  assert.deepEqual([a.added, b.added].sort(), [false, true], 'one of the two added the job');
  assert.equal(a.jobId, 'order-1');
  assert.equal(a.queue, 'once-runs');
  const q = runsQueue('once');
  const r = await settled(q, 'order-1');
  assert.equal(r.state, 'completed', r.failedReason);
  assert.equal((r.returnvalue as { n: number }).n, 42);
  // Enqueued again after it completed: BullMQ still has the job, nothing runs again.
  const c = await pipe.enqueue({ n: 21, log }, { runId: 'order-1' });
  assert.equal(c.added, false);
  assert.deepEqual(lines(log).map((l) => l.split(' ')[0]), ['first', 'middle', 'last']);
  assert.ok(existsSync(db), 'the worker recorded the run in its trackingDb');
});

test('a worker SIGKILLed mid-run: the stalled check retries the job and the retry resumes after the finished step', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const db = join(tmp, 'resume.db');
  const log = join(tmp, 'resume.log');
  const marker = join(tmp, 'resume.marker');
  // Short locks: a dead worker's job is noticed after about 1-2 s by the other worker's stalled check.
  const w1 = await suite.workers!.start({ queue: 'resume', pipelines: pipelinesModule, lockDurationMs: 1000 }, { WPIPE_TEST_DB: db });
  const w2 = await suite.workers!.start({ queue: 'resume', pipelines: pipelinesModule, lockDurationMs: 1000 }, { WPIPE_TEST_DB: db });
  useBullmq({ connection: suite.redis!.url, name: 'resume' });
  await new Pipeline({ pipelineName: 'orders' }).enqueue({ n: 5, log, marker }, { runId: 'order-resume' });
  const end = Date.now() + 60_000;
  while (!(existsSync(marker) && readFileSync(marker, 'utf8') !== '')) {
    if (Date.now() > end) throw new Error('the run never reached its middle step');
    await new Promise((r) => setTimeout(r, 25));
  }
  const victim = Number(readFileSync(marker, 'utf8'));
  assert.ok(victim === w1.pid || victim === w2.pid);
  process.kill(victim, 'SIGKILL');
  const r = await settled(runsQueue('resume'), 'order-resume');
  assert.equal(r.state, 'completed', r.failedReason);
  const out = r.returnvalue as { n: number; first: number; middle: number; last: number };
  assert.equal(out.n, 10);
  assert.equal(out.first, victim, 'the first step ran once, on the worker that died: the retry resumed after it');
  assert.notEqual(out.middle, victim);
  assert.deepEqual(lines(log).map((l) => l.split(' ')[0]), ['first', 'middle', 'last'], 'no step ran twice');
});

test('a poison run ends in the failed set with its error after its attempts', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  await suite.workers!.start({ queue: 'poison', pipelines: pipelinesModule });
  useBullmq({ connection: suite.redis!.url, name: 'poison' });
  await new Pipeline({ pipelineName: 'poison' }).enqueue({}, { runId: 'poison-1', attempts: 2 });
  const r = await settled(runsQueue('poison'), 'poison-1');
  assert.equal(r.state, 'failed');
  assert.equal(r.attemptsMade, 2);
  assert.match(r.failedReason, /WPIPE_ERR_PROCESS_FAILED: .*poisoned input/);
});

test('a pipeline the worker does not have fails its job with WPIPE_ERR_QUEUE_MODULE_REFUSED', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  await suite.workers!.start({ queue: 'unknown', pipelines: pipelinesModule });
  useBullmq({ connection: suite.redis!.url, name: 'unknown' });
  await new Pipeline({ pipelineName: 'nosuch' }).enqueue({}, { runId: 'nosuch-1' });
  const r = await settled(runsQueue('unknown'), 'nosuch-1');
  assert.equal(r.state, 'failed');
  assert.match(r.failedReason, /WPIPE_ERR_QUEUE_MODULE_REFUSED: .*no pipeline named 'nosuch' .*'orders', 'poison'/);
});

test('startWorker refuses bad options and a module without pipelines', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const { startWorker } = await import('../src/queue/worker.js');
  await assert.rejects(startWorker({ connection: suite.redis!.url, queue: 'x' }), /give steps/);
  await assert.rejects(startWorker({ connection: suite.redis!.url, steps: ['./a.js'], concurency: 2 } as never), /unknown option 'concurency'/);
  await assert.rejects(startWorker({ connection: suite.redis!.url, steps: ['./a.js'], concurrency: 0 }), /concurrency/);
  const empty = join(tmp, 'empty.mjs');
  writeFileSync(empty, 'export const x = 1;\n');
  await assert.rejects(startWorker({ connection: suite.redis!.url, pipelines: empty }), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_MODULE_IMPORT' && /exports no Pipeline/.test(e.message));
  await assert.rejects(startWorker({ connection: suite.redis!.url, steps: [join(tmp, 'missing.mjs')] }), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_MODULE_IMPORT');
  const port = await freePort();
  await assert.rejects(startWorker({ connection: `redis://127.0.0.1:${port}`, steps: [empty] }), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_QUEUE_UNAVAILABLE');
});
