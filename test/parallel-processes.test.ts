// The 'processes' executor: steps in child processes (useProcesses / executor: 'processes'), with
// hostile steps that exit, throw non-Errors, never settle, loop forever and blow their memory cap
// (each way a capped child can fail), errors across the boundary, child reuse and replacement, caps
// that cannot share a child, and close() leaving nothing behind.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Pipeline, Parallel, step, type Context } from '../src/engine/index.js';
import {
  ABORT_GRACE_MS, checkMemoryLimitMb, createExecutor, isExecutorAvailable, minMemoryLimitMb, processPoolStats, type StepCall,
} from '../src/parallel/index.js';
import { TaskError, WpipeError } from '../src/errors.js';
import * as S from './fixtures/parallel/steps.js';
import { checkReportsStarts } from './helpers/executor-start.js';
import { chain, find } from './helpers/errors.js';

const T = { timeout: 30_000 };
/** At least the minimum under tsx (192), small enough to fill fast. */
const CAP = 200;

const pipes: Pipeline[] = [];
function pipeline(steps: ConstructorParameters<typeof Parallel>[0]['steps'], opts: Partial<ConstructorParameters<typeof Parallel>[0]> = {}): Pipeline {
  const p = new Pipeline({ retryDelay: 0 }).setSteps([new Parallel({ steps, maxWorkers: 2, useProcesses: true, ...opts })]);
  pipes.push(p);
  return p;
}

function failureOf(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => assert.fail('must fail'), (e: unknown) => e);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

after(async () => {
  for (const p of pipes) await p.close();
  assert.deepEqual(processPoolStats(), { users: 0, children: [] });
});

test('useProcesses runs branches in child processes, reused across runs', T, async () => {
  assert.equal(isExecutorAvailable('processes'), true);
  const p = pipeline([S.where]);
  const first = (await p.run({ tag: 'A' })).atA;
  assert.notEqual(first.pid, process.pid);
  const second = (await p.run({ tag: 'A' })).atA;
  assert.equal(second.pid, first.pid, 'the same child took the next call');
  const forced = new Pipeline().setSteps([new Parallel({ steps: [S.add], executor: 'processes' })]);
  pipes.push(forced);
  assert.equal((await forced.run({ a: 1, b: 2 })).sum, 3);
});

test('CPU-bound branches run in parallel in two processes', T, async (t) => {
  if (availableParallelism() < 2) {
    t.skip(`needs 2 cores, os.availableParallelism() is ${availableParallelism()}`);
    return;
  }
  const p = pipeline([S.spinA, S.spinB]);
  // Until two children are up: a call waiting for a child that is still starting takes the first one freed.
  for (let i = 0; i < 20; i++) {
    const warm = await p.run({ ms: 50 });
    if (warm.pidA !== warm.pidB) break;
  }
  const t0 = performance.now();
  const out = await p.run({ ms: 300 });
  const ms = performance.now() - t0;
  assert.notEqual(out.pidA, out.pidB);
  assert.ok(ms < 0.85 * 600, `two 300 ms branches took ${ms.toFixed(0)} ms (sequential: 600 ms)`);
});

test('a step that calls process.exit() ends its child: WPIPE_ERR_WORKER_EXITED, the sibling is untouched, a new child replaces it', T, async () => {
  const p = pipeline([S.exits, S.where]);
  const err = await failureOf(p.run({ tag: 'E' }));
  const exited = find(err, 'WPIPE_ERR_WORKER_EXITED');
  assert.ok(exited, 'WPIPE_ERR_WORKER_EXITED in the cause chain');
  assert.match(exited.message, /exited with code 3 .*process\.exit\(\)/);
  assert.deepEqual(((err as { cause: TaskError }).cause.details.parallelFailures as { step: string }[]).map((f) => f.step), ['exits']);
  const dead = exited.details.pid as number;
  const next = (await pipeline([S.where]).run({ tag: 'N' })).atN.pid;
  assert.notEqual(next, dead);
  assert.equal(alive(dead), false);
});

test('non-Errors and errors cross with class, code, message and cause chain', T, async () => {
  assert.equal(chain(await failureOf(pipeline([S.throwsString]).run())).at(-1), 'boom');
  assert.deepEqual(chain(await failureOf(pipeline([S.throwsObject]).run())).at(-1), { reason: 'not an Error', n: 42 });
  const [, , inner, custom, root] = chain(await failureOf(pipeline([S.throwsCoded]).run())) as [unknown, unknown, TaskError, Error & { code?: string }, Error];
  assert.ok(inner instanceof TaskError);
  assert.equal(inner.code, 'WPIPE_ERR_API');
  assert.equal(custom.name, 'CustomError');
  assert.equal(custom.code, 'E_CUSTOM');
  assert.equal(root.name, 'RangeError');
  assert.equal(root.message, 'root cause');
});

test('in-place changes come back from a child as they do in-process', T, async () => {
  const input = () => ({ list: [1, 2, 3], count: 1, gone: 'x', nested: { deep: { n: 1 } }, floats: new Float64Array(4), shared: { keep: true } });
  const sibling = (ctx: Context): void => { ctx.shared = { fromSibling: true }; };
  const inline = new Pipeline().setSteps([new Parallel({ steps: [S.mutates, sibling], executor: 'inline' })]);
  pipes.push(inline);
  const procs = new Pipeline().setSteps([new Parallel({ steps: [S.mutates] , useProcesses: true }), new Parallel({ steps: [sibling] })]);
  pipes.push(procs);
  assert.deepEqual(await procs.run(input()), await inline.run(input()));
});

test('a step that never settles times out; one that honours info.signal keeps its child', T, async () => {
  const t0 = performance.now();
  const err = await failureOf(pipeline([S.neverSettles]).run());
  assert.equal((err as { cause: TaskError }).cause.code, 'WPIPE_ERR_TASK_TIMEOUT');
  assert.ok(performance.now() - t0 < 1000 + 2000, 'the deadline plus at most a child start');
  await new Promise((r) => setTimeout(r, ABORT_GRACE_MS + 200)); // the never-settling child is killed after the grace

  const p = pipeline([S.waitsForAbort]);
  const e1 = await failureOf(p.run());
  assert.equal((e1 as { cause: TaskError }).cause.code, 'WPIPE_ERR_TASK_TIMEOUT');
  const pids = processPoolStats().children.flatMap((c) => c.pids);
  await new Promise((r) => setTimeout(r, ABORT_GRACE_MS + 200)); // past the grace: nothing was killed
  assert.deepEqual(processPoolStats().children.flatMap((c) => c.pids), pids, JSON.stringify(processPoolStats()));
});

test('a synchronous infinite loop is SIGKILLed at its deadline; the retry runs in a new child; siblings are untouched', T, async () => {
  const warm = pipeline([S.where, S.where]);
  await warm.run({});
  const p = pipeline([S.loopsForever, S.add]);
  const t0 = performance.now();
  const err = await failureOf(p.run({ a: 1, b: 1 }));
  const ms = performance.now() - t0;
  assert.equal((err as { cause: TaskError }).cause.code, 'WPIPE_ERR_TASK_TIMEOUT');
  assert.deepEqual(((err as { cause: TaskError }).cause.details.parallelFailures as { step: string }[]).map((f) => f.step), ['loopsForever']);
  // The deadline (300 ms), then the abort grace before SIGKILL, then slack for a loaded 2-core machine:
  // the point is that a loop that never yields is ended at all, in bounded time.
  const bound = 300 + ABORT_GRACE_MS + 1500;
  assert.ok(ms < bound, `a 0.3 s timeout took ${ms.toFixed(0)} ms to fail (bound ${bound} ms)`);

  const out = await pipeline([S.loopsOnce, S.add]).run({ a: 2, b: 2 });
  assert.ok(out.attempt >= 2, 'a retry ran after the hard timeout');
  assert.equal(out.sum, 4);
  assert.equal(alive(process.pid), true);
});

test(`memory caps: over ${CAP} MB a branch fails with WPIPE_ERR_MEMORY_LIMIT whichever way its child fails; the rest lives on`, T, async () => {
  // V8 aborts (SIGABRT) when its heap cannot grow under RLIMIT_DATA.
  const p = pipeline([S.allocates, S.add], { memoryLimitMb: CAP });
  const err = await failureOf(p.run({ a: 1, b: 2 }));
  const mem = find(err, 'WPIPE_ERR_MEMORY_LIMIT');
  assert.ok(mem instanceof TaskError, 'a TaskError with WPIPE_ERR_MEMORY_LIMIT in the chain');
  assert.equal(mem.errorCode, 502);
  assert.equal(mem.details.memoryLimitMb, CAP);
  assert.deepEqual(((err as { cause: TaskError }).cause.details.parallelFailures as { step: string }[]).map((f) => f.step), ['allocates']);

  // One allocation refused by RLIMIT_DATA: a RangeError in the step, reported as over the cap.
  const once = await failureOf(pipeline([S.allocatesOnce], { memoryLimitMb: CAP }).run());
  const m2 = find(once, 'WPIPE_ERR_MEMORY_LIMIT');
  assert.match(m2?.message ?? '', /allocation failed/);
  assert.equal((m2?.cause as Error).name, 'RangeError');

  // The same pool serves the next call (a fresh child), and uncapped work never noticed.
  assert.equal((await pipeline([S.add], { memoryLimitMb: CAP }).run({ a: 2, b: 2 })).sum, 4);
  assert.equal((await pipeline([S.add]).run({ a: 3, b: 3 })).sum, 6);
});

test('memory caps: the RSS watchdog kills a child over its cap that RLIMIT_DATA did not stop', T, async () => {
  process.env.WPIPE_PROCESS_RLIMIT = '0';
  try {
    const err = await failureOf(pipeline([S.allocatesSlowly], { memoryLimitMb: CAP + 8 }).run());
    const mem = find(err, 'WPIPE_ERR_MEMORY_LIMIT');
    assert.match(mem?.message ?? '', /RSS reached \d+ MiB and the watchdog killed it/);
  } finally {
    delete process.env.WPIPE_PROCESS_RLIMIT;
  }
});

test('children with different caps never share a process; the cap reaches the child', T, async () => {
  const capped = (mb: number | undefined): Pipeline => pipeline([S.limits], { memoryLimitMb: mb });
  const a = (await capped(CAP).run({ tag: 'A' })).limitsA;
  const b = (await capped(CAP + 56).run({ tag: 'B' })).limitsB;
  const c = (await capped(undefined).run({ tag: 'C' })).limitsC;
  assert.equal(new Set([a.pid, b.pid, c.pid]).size, 3, 'three caps, three children');
  assert.deepEqual(a.execArgv, [`--max-old-space-size=${CAP - 64}`]);
  assert.deepEqual(b.execArgv, [`--max-old-space-size=${CAP + 56 - 64}`]);
  assert.deepEqual(c.execArgv, []);
  const pools = processPoolStats().children;
  for (const [cap, pid] of [[CAP, a.pid], [CAP + 56, b.pid], [undefined, c.pid]] as const) {
    assert.ok(pools.find((p) => p.cap === cap)?.pids.includes(pid), `pid ${pid} in the pool of cap ${cap}`);
  }
});

test('caps below the measured safe minimum are refused with a RangeError', T, async () => {
  const min = minMemoryLimitMb();
  assert.throws(() => checkMemoryLimitMb('new Parallel()', 40), (e: unknown) =>
    e instanceof RangeError && (e as { code?: string }).code === 'WPIPE_ERR_INVALID_OPTION' &&
    e.message.includes(`memoryLimitMb must be at least ${min}`) && e.message.includes('got 40'));
  assert.doesNotThrow(() => checkMemoryLimitMb('new Parallel()', min));
  // Refused where the cap is written, not at the first run.
  assert.throws(() => pipeline([S.add], { memoryLimitMb: 64 }), (e: unknown) => e instanceof RangeError && /at least/.test(e.message));
  assert.throws(() => step({ name: 'capped', executor: 'processes', memoryLimitMb: 64, module: { moduleUrl: import.meta.url, exportName: 'x' } })(() => ({})), RangeError);
});

test('a context that cannot be cloned is a clear error, not a dead child', T, async () => {
  const err = await failureOf(pipeline([S.add]).run({ a: 1, b: 2, fn: () => 1 }));
  assert.match(find(err, 'WPIPE_ERR_WORKER_CLONE')?.message ?? '', /ctx\.fn \(function\)/);
});

test('each attempt reports its start (the deadline starts there, not at the call): once, before it settles, naming its worker', T, async () => {
  await checkReportsStarts('processes', /^pid \d+$/);
});

test('the executor rejects calls once closed', T, async () => {
  const ex = createExecutor('processes', { maxWorkers: 1 });
  await ex.close();
  const call = { info: { stepName: 'x' } } as unknown as StepCall;
  await assert.rejects(Promise.resolve(ex.call(call)), (e: unknown) => (e as WpipeError).code === 'WPIPE_ERR_WORKER_EXITED');
});

test('close() leaves no worker, process or handle behind: a process that used both executors exits by itself', T, async () => {
  const script = fileURLToPath(new URL('./fixtures/parallel/close-script.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  let closedAt = 0;
  child.stdout.on('data', () => { if (closedAt === 0 && out.includes('\n')) closedAt = performance.now(); });
  const killer = setTimeout(() => child.kill('SIGKILL'), 25_000);
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
  clearTimeout(killer);
  assert.equal(signal, null, 'it was not killed: it exited by itself');
  assert.equal(code, 0);
  const report = JSON.parse(out.trim()) as {
    sum: number; childPid: number; before: { threads: number; pids: number[] };
    afterClose: { threads: { users: number; threads: number }; processes: { users: number; children: unknown[] } };
  };
  assert.equal(report.sum, 3);
  assert.ok(report.before.threads >= 1 && report.before.pids.length >= 2, JSON.stringify(report.before));
  assert.deepEqual({ users: report.afterClose.threads.users, threads: report.afterClose.threads.threads }, { users: 0, threads: 0 });
  assert.deepEqual(report.afterClose.processes, { users: 0, children: [] });
  assert.ok(performance.now() - closedAt < 3000, 'it exited promptly after close()');
  for (const pid of report.before.pids) assert.equal(alive(pid), false, `child ${pid} is gone`);
});
