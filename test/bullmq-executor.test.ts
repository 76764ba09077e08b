// The 'bullmq' executor against a real Redis (a private redis-server, test/helpers/redis.ts): Parallel
// branches as jobs run by worker *processes* (test/fixtures/bullmq/worker.ts), merged in declared
// order; structured-clone types and errors (class, code, cause) across; a module the worker was not
// given refused; no Redis and no useBullmq as clear errors; a worker SIGKILLed mid-branch handled by
// the engine's deadline and retry, or (without a deadline) by BullMQ's stalled check failing the job;
// close() leaving nothing that keeps a process alive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pipeline, Parallel, step, type Context } from '../src/engine/index.js';
import { useBullmq } from '../src/queue/executor.js';
import { WpipeError } from '../src/errors.js';
import { freePort, redisSuite } from './helpers/redis.js';
import Database from 'better-sqlite3';
import * as S from './fixtures/bullmq/steps.js';
import { outside } from './fixtures/bullmq/other-steps.js';
import { chain, find } from './helpers/errors.js';
import type { WorkerProcess } from './helpers/bullmq-workers.js';

const T = { timeout: 120_000 };
const here = fileURLToPath(new URL('.', import.meta.url));
const stepsModule = join(here, 'fixtures', 'bullmq', 'steps.ts');
const tmp = mkdtempSync(join(tmpdir(), 'wpipe-bullmq-test-'));

const pipes: Pipeline[] = [];
const suite = redisSuite();
suite.cleanup(async () => {
  for (const p of pipes) await p.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** Starts a worker process running startWorker and waits for it to say it is ready. */
const spawnWorker = (options: Record<string, unknown>): Promise<WorkerProcess> => suite.workers!.start(options);

function pipeline(steps: ConstructorParameters<typeof Parallel>[0]['steps'], opts: Record<string, unknown> = {}): Pipeline {
  const p = new Pipeline({ retryDelay: 0, ...opts }).setSteps([new Parallel({ steps, executor: 'bullmq' })]);
  pipes.push(p);
  return p;
}

function failureOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => assert.fail('must fail'), (e: unknown) => e);
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('without useBullmq, executor: \'bullmq\' is refused at setSteps with the hint', T, (t) => {
  if (suite.skip) return t.skip(suite.skip);
  useBullmq(null);
  assert.throws(() => new Pipeline().setSteps([new Parallel({ steps: [S.add], executor: 'bullmq' })]), (e: unknown) => {
    const w = find(e, 'WPIPE_ERR_EXECUTOR_UNAVAILABLE');
    assert.ok(w, String(e));
    assert.match(w.message, /useBullmq/);
    return true;
  });
  assert.throws(() => useBullmq({ connection: 'http://x' }), /redis:\/\//);
  assert.throws(() => useBullmq({ connection: suite.redis!.url, name: 'a:b' }), /name must be/);
  assert.throws(() => useBullmq({ connection: suite.redis!.url, nmae: 'x' } as never), /unknown option 'nmae'/);
});

test('a closure cannot go to the queue: WPIPE_ERR_TASK_NOT_ADDRESSABLE at setSteps', T, (t) => {
  if (suite.skip) return t.skip(suite.skip);
  useBullmq({ connection: suite.redis!.url, name: 'closure' });
  assert.throws(() => new Pipeline().setSteps([new Parallel({ steps: [(ctx: Context) => ctx], executor: 'bullmq' })]), (e: unknown) => {
    assert.ok(find(e, 'WPIPE_ERR_TASK_NOT_ADDRESSABLE'), String(e));
    return true;
  });
});

test('branches run in a worker process and merge in declared order, as in-process', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const w = await spawnWorker({ queue: 'merge', steps: [stepsModule], concurrency: 4 });
  useBullmq({ connection: suite.redis!.url, name: 'merge' });
  const steps = [S.slowFirst, S.fastSecond, S.add, S.where];
  const inline = new Pipeline().setSteps([new Parallel({ steps, executor: 'inline' })]);
  pipes.push(inline);
  const queued = pipeline(steps);
  const input = { a: 2, b: 3, tag: 'X' };
  const expected = await inline.run(input, { runId: 'inline-1' });
  const out = await queued.run(input, { runId: 'queued-1' });
  assert.equal(out.v, expected.v, 'the later declared branch wins, whatever finished first');
  assert.equal(out.v, 'second');
  assert.equal(out.sum, 5);
  assert.equal(out.first, true);
  assert.equal(out.second, true);
  const at = out.atX as { pid: number; attempt: number; runId: string };
  assert.equal(at.pid, w.pid, 'the branch ran in the worker process');
  assert.notEqual(at.pid, process.pid);
  assert.equal(at.attempt, 1);
  assert.equal(at.runId, 'queued-1');
});

test('lines a step writes through info.logger in the worker reach the pipeline\'s logger', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  await spawnWorker({ queue: 'logs', steps: [stepsModule] });
  useBullmq({ connection: suite.redis!.url, name: 'logs' });
  const lines: unknown[][] = [];
  const capture = (...a: unknown[]): void => { lines.push(a); };
  const logger = { debug: capture, info: capture, warn: capture, error: capture, child: () => logger };
  const p = pipeline([S.where], { logger });
  await p.run({ tag: 'L' });
  assert.ok(lines.some((l) => l[1] === 'where ran' && (l[0] as { tag?: string }).tag === 'L'), JSON.stringify(lines));
});

test('the run history records the branch as executor bullmq with its job as the worker', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  await spawnWorker({ queue: 'history', steps: [stepsModule] });
  useBullmq({ connection: suite.redis!.url, name: 'history' });
  const db = join(tmp, 'history.db');
  const p = pipeline([S.add], { trackingDb: db });
  await p.run({ a: 1, b: 1 }, { runId: 'hist-1' });
  await p.close();
  const conn = new Database(db, { readonly: true });
  try {
    const rows = conn.prepare("SELECT step_name, status, executor, worker FROM steps WHERE pipeline_id = 'hist-1' AND step_name = 'add'").all() as { status: string; executor: string; worker: string }[];
    assert.equal(rows.length, 1, JSON.stringify(rows));
    assert.equal(rows[0]!.status, 'completed');
    assert.equal(rows[0]!.executor, 'bullmq');
    assert.match(rows[0]!.worker, /^bullmq job [0-9a-f-]{36}$/);
  } finally {
    conn.close();
  }
});

test('structured-clone types cross both ways (Map, Date, Uint8Array), in-place changes come back', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  await spawnWorker({ queue: 'types', steps: [stepsModule] });
  useBullmq({ connection: suite.redis!.url, name: 'types' });
  const p = pipeline([S.mapIt]);
  const out = await p.run({ m: new Map([['a', 1]]) });
  assert.deepEqual(out.m, new Map([['a', 1], ['b', 2]]));
  assert.ok(out.when instanceof Date);
  assert.equal((out.when as Date).getTime(), 0);
  assert.deepEqual(out.bytes, new Uint8Array([1, 2, 3]));
});

test('errors come back with class, code and cause chain', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  await spawnWorker({ queue: 'errors', steps: [stepsModule] });
  useBullmq({ connection: suite.redis!.url, name: 'errors' });
  const e1 = await failureOf(pipeline([S.throwsCustom], { maxRetries: 0 }).run({}));
  const custom = chain(e1).find((c) => (c as Error).name === 'CustomError') as Error & { code?: string; cause?: unknown };
  assert.ok(custom, `a CustomError in ${String(e1)}`);
  assert.equal(custom.message, 'custom failure');
  assert.equal(custom.code, 'E_CUSTOM');
  assert.equal((custom.cause as Error).name, 'RangeError');
  assert.equal((custom.cause as Error).message, 'root cause');

  const e2 = await failureOf(pipeline([S.throwsCoded], { maxRetries: 0 }).run({}));
  const api = find(e2, 'WPIPE_ERR_API');
  assert.ok(api, String(e2));
  assert.equal(api.name, 'TaskError');
  assert.equal(api.message, 'inner task failed');
});

test('a module the worker was not given is refused: WPIPE_ERR_QUEUE_MODULE_REFUSED', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  await spawnWorker({ queue: 'refuse', steps: [stepsModule] });
  useBullmq({ connection: suite.redis!.url, name: 'refuse' });
  const e = await failureOf(pipeline([outside], { maxRetries: 0 }).run({}));
  const refused = find(e, 'WPIPE_ERR_QUEUE_MODULE_REFUSED');
  assert.ok(refused, String(e));
  assert.match(refused.message, /other-steps/);
});

test('no Redis: the attempt fails with WPIPE_ERR_QUEUE_UNAVAILABLE (not a hang)', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const port = await freePort();
  useBullmq({ connection: `redis://127.0.0.1:${port}`, name: 'nowhere' });
  const e = await failureOf(pipeline([S.add], { maxRetries: 0 }).run({ a: 1, b: 1 }));
  const u = find(e, 'WPIPE_ERR_QUEUE_UNAVAILABLE');
  assert.ok(u, String(e));
  assert.match(u.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
});

test('a worker SIGKILLed mid-branch: the deadline fails the attempt and the retry runs on another worker', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const marker = join(tmp, 'hang-1');
  const w1 = await spawnWorker({ queue: 'kill', steps: [stepsModule] });
  const w2 = await spawnWorker({ queue: 'kill', steps: [stepsModule] });
  useBullmq({ connection: suite.redis!.url, name: 'kill' });
  const hang = step({ name: 'hangsOnce', timeout: 3, retryCount: 2, retryDelay: 0, module: { moduleUrl: new URL('./fixtures/bullmq/steps.ts', import.meta.url).href, exportName: 'hangsOnce' } })(S.hangsOnce);
  const p = pipeline([hang]);
  const run = p.run({ marker });
  await waitFor(() => existsSync(marker) && readFileSync(marker, 'utf8') !== '', 60_000, 'the first attempt to start');
  const victim = Number(readFileSync(marker, 'utf8'));
  assert.ok(victim === w1.pid || victim === w2.pid);
  process.kill(victim, 'SIGKILL');
  const out = await run;
  assert.ok((out.attempt as number) >= 2, `retried: ${JSON.stringify(out)}`);
  assert.notEqual(out.pidHang, victim);
  assert.ok(out.pidHang === w1.pid || out.pidHang === w2.pid);
});

test('a worker SIGKILLed mid-branch without a deadline: the stalled check fails the job (WPIPE_ERR_QUEUE_JOB_FAILED), never lost', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const marker = join(tmp, 'hang-2');
  // Short locks: a dead worker's job is noticed after about 1-2 s by the surviving worker's stalled check.
  await spawnWorker({ queue: 'stall', steps: [stepsModule], lockDurationMs: 1000 });
  await spawnWorker({ queue: 'stall', steps: [stepsModule], lockDurationMs: 1000 });
  useBullmq({ connection: suite.redis!.url, name: 'stall' });
  const p = pipeline([S.hangsOnce], { maxRetries: 0 });
  const run = failureOf(p.run({ marker }));
  await waitFor(() => existsSync(marker) && readFileSync(marker, 'utf8') !== '', 60_000, 'the attempt to start');
  process.kill(Number(readFileSync(marker, 'utf8')), 'SIGKILL');
  const e = await run;
  const f = find(e, 'WPIPE_ERR_QUEUE_JOB_FAILED');
  assert.ok(f, String(e));
  assert.match(f.message, /stalled/);
});

test('the deadline aborts the worker\'s attempt (its info.signal)', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const marker = join(tmp, 'abort-1');
  await spawnWorker({ queue: 'abort', steps: [stepsModule] });
  useBullmq({ connection: suite.redis!.url, name: 'abort' });
  const s = step({ name: 'waitsForAbort', timeout: 2, retryCount: 0, module: { moduleUrl: new URL('./fixtures/bullmq/steps.ts', import.meta.url).href, exportName: 'waitsForAbort' } })(S.waitsForAbort);
  const e = await failureOf(pipeline([s]).run({ marker }));
  assert.ok(find(e, 'WPIPE_ERR_TASK_TIMEOUT'), String(e));
  await waitFor(() => existsSync(marker) && readFileSync(marker, 'utf8') === 'aborted', 30_000, 'the worker to abort the attempt');
});

test('a process that used the executor exits by itself after close()', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  await spawnWorker({ queue: 'exit', steps: [stepsModule] });
  const c = spawn(process.execPath, ['--import', 'tsx', join(here, 'fixtures', 'bullmq', 'client.ts'), suite.redis!.url, 'exit'], { stdio: ['ignore', 'pipe', 'inherit'] });
  suite.workers!.children.add(c);
  let out = '';
  c.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => { c.kill('SIGKILL'); resolve(-1); }, 60_000);
    c.once('exit', (n) => { clearTimeout(timer); resolve(n); });
  });
  assert.equal(code, 0, `exited by itself (-1: still alive after 60 s); output: ${out}`);
  assert.deepEqual(JSON.parse(out.trim()), { a: 2, b: 5, sum: 7, v: 'second', second: true });
});
