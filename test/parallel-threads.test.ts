// The 'threads' executor: steps on piscina worker threads, as the engine places them (addressable
// Parallel branches in Pipeline), with hostile steps that exit, throw non-Errors, never settle and
// loop forever; errors, in-place changes, log lines and transfers across the boundary.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { threadId } from 'node:worker_threads';
import { Pipeline, PipelineAsync, Parallel, step, type Context } from '../src/engine/index.js';
import { createExecutor, isExecutorAvailable, threadPoolStats, type StepCall } from '../src/parallel/index.js';
import { TaskError, WpipeError } from '../src/errors.js';
import * as S from './fixtures/parallel/steps.js';
import { checkReportsStarts } from './helpers/executor-start.js';
import { chain, codes } from './helpers/errors.js';

const T = { timeout: 30_000 };

const pipes: Pipeline[] = [];
function pipeline(steps: ConstructorParameters<typeof Parallel>[0]['steps'], opts: Partial<ConstructorParameters<typeof Parallel>[0]> = {}): Pipeline {
  const p = new Pipeline({ retryDelay: 0 }).setSteps([new Parallel({ steps, maxWorkers: 2, ...opts })]);
  pipes.push(p);
  return p;
}

after(async () => {
  for (const p of pipes) await p.close();
  assert.deepEqual(threadPoolStats(), { users: 0, threads: 0, size: 0, pending: 0, pools: 0 });
});

test('the threads executor is there from the start; addressable branches of Pipeline run on threads, PipelineAsync stays inline', T, async () => {
  assert.equal(isExecutorAvailable('threads'), true);
  const out = await pipeline([S.where]).run({ tag: 'X' });
  assert.notEqual(out.atX.threadId, threadId, 'ran in a worker thread');
  assert.equal(out.atX.pid, process.pid);
  const asyncPipe = new PipelineAsync().setSteps([new Parallel({ steps: [S.where] })]);
  assert.equal((await asyncPipe.run({ tag: 'Y' })).atY.threadId, threadId, 'PipelineAsync keeps branches in-process');
  await asyncPipe.close();
});

test('CPU-bound branches run in parallel: two 300 ms branches take well under the sequential time', T, async (t) => {
  if (availableParallelism() < 2) {
    t.skip(`needs 2 cores, os.availableParallelism() is ${availableParallelism()}`);
    return;
  }
  const p = pipeline([S.spinA, S.spinB]);
  await p.run({ ms: 20 }); // both threads up and the module imported
  const t0 = performance.now();
  const out = await p.run({ ms: 300 });
  const ms = performance.now() - t0;
  assert.equal(out.a, 1);
  assert.equal(out.b, 1);
  assert.ok(ms < 0.85 * 600, `two 300 ms branches took ${ms.toFixed(0)} ms (sequential: 600 ms)`);
});

test('a step that calls process.exit() ends its thread: WPIPE_ERR_WORKER_EXITED, the sibling is untouched, the pool recovers', T, async () => {
  const p = pipeline([S.exits, S.add]);
  const err = await p.run({ a: 1, b: 2 }).then(() => assert.fail('must fail'), (e: unknown) => e);
  assert.ok(codes(err).includes('WPIPE_ERR_WORKER_EXITED'), codes(err).join(' > '));
  const exited = chain(err).find((c) => (c as WpipeError).code === 'WPIPE_ERR_WORKER_EXITED') as WpipeError;
  assert.match(exited.message, /exited with code 3 .*process\.exit\(\)/);
  const failures = (err as { cause: TaskError }).cause.details.parallelFailures as { step: string }[];
  assert.deepEqual(failures.map((f) => f.step), ['exits'], 'only the exiting branch failed');
  assert.equal((await pipeline([S.add]).run({ a: 2, b: 3 })).sum, 5);
});

test('a non-Error thrown in a thread comes back as the value itself', T, async () => {
  const e1 = await pipeline([S.throwsString]).run().then(() => assert.fail('must fail'), (e: unknown) => e);
  assert.equal(chain(e1).at(-1), 'boom');
  const e2 = await pipeline([S.throwsObject]).run().then(() => assert.fail('must fail'), (e: unknown) => e);
  assert.deepEqual(chain(e2).at(-1), { reason: 'not an Error', n: 42 });
});

test('errors cross with class, code, errorCode, message, stack and cause chain', T, async () => {
  const err = await pipeline([S.throwsCoded]).run().then(() => assert.fail('must fail'), (e: unknown) => e);
  const [, task, inner, custom, root] = chain(err) as [unknown, TaskError, TaskError, Error & { code?: string }, Error];
  assert.equal(task.code, 'WPIPE_ERR_TASK_FAILED');
  assert.ok(inner instanceof TaskError, 'a TaskError thrown in the thread is a TaskError here');
  assert.equal(inner.code, 'WPIPE_ERR_API');
  assert.equal(inner.errorCode, 501);
  assert.equal(inner.message, 'inner task failed');
  assert.match(inner.stack ?? '', /steps\.ts/, 'the stack is the worker\'s');
  assert.equal(custom.name, 'CustomError');
  assert.equal(custom.code, 'E_CUSTOM');
  assert.equal(custom.message, 'custom');
  assert.equal(root.name, 'RangeError');
  assert.equal(root.message, 'root cause');
});

test('a step that never settles fails with WPIPE_ERR_TASK_TIMEOUT at its deadline', T, async () => {
  const t0 = performance.now();
  const err = await pipeline([S.neverSettles]).run().then(() => assert.fail('must fail'), (e: unknown) => e);
  const ms = performance.now() - t0;
  assert.equal((err as { cause: TaskError }).cause.code, 'WPIPE_ERR_TASK_TIMEOUT');
  assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
});

test('a synchronous infinite loop is stopped at its deadline: the thread is terminated, the retry runs, siblings are untouched', T, async () => {
  const p = pipeline([S.loopsForever, S.add]);
  await pipeline([S.add]).run({ a: 0, b: 0 }); // threads warm
  const t0 = performance.now();
  const err = await p.run({ a: 1, b: 1 }).then(() => assert.fail('must fail'), (e: unknown) => e);
  const ms = performance.now() - t0;
  assert.equal((err as { cause: TaskError }).cause.code, 'WPIPE_ERR_TASK_TIMEOUT');
  assert.deepEqual(((err as { cause: TaskError }).cause.details.parallelFailures as { step: string }[]).map((f) => f.step), ['loopsForever']);
  assert.ok(ms < 1000, `a 0.3 s timeout took ${ms.toFixed(0)} ms to fail`);

  const out = await pipeline([S.loopsOnce, S.add]).run({ a: 2, b: 2 });
  assert.ok(out.attempt >= 2, 'a retry ran after the hard timeout');
  assert.equal(out.sum, 4);
});

test('in-place changes come back as they do in-process; unchanged keys keep the parent\'s objects', T, async () => {
  const input = () => ({ list: [1, 2, 3], count: 1, gone: 'x', nested: { deep: { n: 1 } }, floats: new Float64Array(4), shared: { keep: true } });
  const sibling = (ctx: Context): void => { ctx.shared = { fromSibling: true }; };
  const inline = new Pipeline().setSteps([new Parallel({ steps: [S.mutates, sibling], executor: 'inline' })]);
  const threads = new Pipeline().setSteps([new Parallel({ steps: [S.mutates, sibling] })]);
  pipes.push(inline, threads);
  const out = await threads.run(input());
  assert.deepEqual(out, await inline.run(input()), 'same result as in-process');
  assert.deepEqual(out.list, [1, 2, 3, 4]);
  assert.equal(out.count, 2);
  assert.equal(out.added, 'yes');
  assert.equal(out.nested.deep.n, 2);
  assert.equal(out.floats[0], 42);
  assert.deepEqual(out.shared, { fromSibling: true }, 'the worker branch did not overwrite a sibling\'s write with its copy');

  // Outside a Parallel block the step's own context is written back: deleted keys are deleted.
  const ex = createExecutor('threads', { maxWorkers: 1 });
  const call = directCall(input(), 'mutates');
  const kept = call.context.shared;
  await ex.call(call);
  await ex.close();
  assert.equal('gone' in call.context, false);
  assert.equal(call.context.shared, kept, 'an unchanged key keeps its object');

  const retried = await pipeline([S.mutatesThenFails]).run({});
  assert.equal(retried.seenTries, 2, 'the retry saw the failed attempt\'s in-place change, as in-process');
});

test('info fields reach the step; its log lines reach the pipeline\'s logger', T, async () => {
  const lines: string[] = [];
  const sink = (level: string) => (o: object | string, m?: string): void => {
    lines.push([level, m, typeof o === 'string' ? o : JSON.stringify(o)].filter((x) => x !== undefined).join(' '));
  };
  const p = new Pipeline({ logger: { debug: sink('debug'), info: sink('info'), warn: sink('warn'), error: sink('error') } })
    .setSteps([new Parallel({ steps: [S.logs] })]);
  pipes.push(p);
  const out = await p.run({}, { runId: 'run-logs-1' });
  assert.deepEqual(out.info, { attempt: 1, runId: 'run-logs-1', stepName: 'logs', stepVersion: 'v9' });
  assert.deepEqual(lines, ['info hello from logs', 'warn with fields {"n":1}']);
});

test('what cannot cross is a clear error: a function in the context, a function returned, a class instance returned', T, async () => {
  const e1 = await pipeline([S.add]).run({ a: 1, b: 2, db: { query: () => 1 } }).then(() => assert.fail('must fail'), (e: unknown) => e);
  const clone = chain(e1).find((c) => (c as WpipeError).code === 'WPIPE_ERR_WORKER_CLONE') as WpipeError;
  assert.match(clone.message, /ctx\.db\.query \(function\)/);
  const e2 = await pipeline([S.returnsFunction]).run().then(() => assert.fail('must fail'), (e: unknown) => e);
  assert.match((chain(e2).find((c) => (c as WpipeError).code === 'WPIPE_ERR_WORKER_CLONE') as Error).message, /return value\.f \(function\)/);
  const e3 = await pipeline([S.returnsInstance]).run().then(() => assert.fail('must fail'), (e: unknown) => e);
  const ret = chain(e3).find((c) => (c as WpipeError).code === 'WPIPE_ERR_TASK_RETURN') as WpipeError;
  assert.match(ret.message, /returned Foo/);
});

function directCall(context: Record<string, unknown>, exportName: string, extra: Partial<StepCall> = {}): StepCall {
  return {
    fn: () => assert.fail('must run in the worker'), moduleRef: { moduleUrl: new URL('./fixtures/parallel/steps.ts', import.meta.url).href, exportName },
    context, info: { signal: new AbortController().signal, attempt: 1, runId: 'r', stepName: exportName }, signal: new AbortController().signal,
    memoryLimitMb: undefined, ...extra,
  };
}

test('typed arrays are copied by default and moved with transfer: true (64 MiB without a copy)', T, async () => {
  const ex = createExecutor('threads', { maxWorkers: 1 });
  try {
    const copied = new Float64Array(1 << 17).fill(1);
    const c1 = directCall({ floats: copied }, 'scales');
    await ex.call(c1);
    assert.equal(copied.buffer.byteLength, 1 << 20, 'copied: the caller keeps its buffer');
    assert.equal(copied[0], 1);
    assert.equal((c1.context.floats as Float64Array)[0], 2, 'the changed array came back');

    const big = new Float64Array(8 << 20).fill(1.5); // 64 MiB
    const c2 = directCall({ floats: big, label: 'x' }, 'scales', { transfer: true });
    const t0 = performance.now();
    await ex.call(c2);
    const ms = performance.now() - t0;
    assert.equal(big.buffer.byteLength, 0, 'moved: the caller\'s buffer is detached, not copied');
    const back = c2.context.floats as Float64Array;
    assert.equal(back.length, 8 << 20);
    assert.equal(back[0], 3);
    assert.equal(back[back.length - 1], 3);
    assert.ok(ms < 2000, `64 MiB there and back took ${ms.toFixed(0)} ms`);
  } finally {
    await ex.close();
  }
});

test('Parallel({ transfer: true }) and step({ transfer: true }) move buffers through the engine; without it they are copied', T, async () => {
  const run = async (parallelTransfer: boolean): Promise<{ before: Float64Array; out: Context }> => {
    const before = new Float64Array(1 << 16).fill(1);
    const p = new Pipeline({ pipelineName: 'transfer' }).setSteps([
      new Parallel({ steps: [S.scales], executor: 'threads', transfer: parallelTransfer }),
    ]);
    const out = await p.run({ floats: before });
    await p.close();
    return { before, out };
  };
  const copied = await run(false);
  assert.equal(copied.before.buffer.byteLength, 8 << 16, 'copied: the caller keeps its buffer');
  assert.equal((copied.out.floats as Float64Array)[0], 2);
  const moved = await run(true);
  assert.equal(moved.before.buffer.byteLength, 0, 'moved: detached on this side');
  assert.equal((moved.out.floats as Float64Array)[0], 2);
  assert.equal(step({ name: 't', transfer: true })(() => undefined).meta.transfer, true);
  assert.throws(() => step({ transfer: 'yes' } as never), TypeError);
  assert.throws(() => new Parallel({ steps: [], transfer: 1 } as never), TypeError);
});

test("memoryLimitMb on threads caps each thread's JS heap: a branch past it fails with WPIPE_ERR_MEMORY_LIMIT, its sibling and the process live on", T, async () => {
  const CAP = 256;
  const p = pipeline([S.growsHeap, S.add], { executor: 'threads', memoryLimitMb: CAP });
  const err = await p.run({ a: 1, b: 2 }).then(() => assert.fail('must fail'), (e: unknown) => e);
  const mem = chain(err).find((c) => (c as { code?: unknown }).code === 'WPIPE_ERR_MEMORY_LIMIT') as TaskError | undefined;
  assert.ok(mem instanceof TaskError, `a TaskError with WPIPE_ERR_MEMORY_LIMIT in the chain: ${codes(err).join(' > ')}`);
  assert.equal(mem.errorCode, 502);
  assert.deepEqual([mem.details.memoryLimitMb, mem.details.executor, mem.details.stepName], [CAP, 'threads', 'growsHeap']);
  assert.match(mem.message, /step 'growsHeap' exceeded the memory cap of its worker thread's heap \(256 MB\): V8 stopped its thread at the heap limit/);
  assert.equal(((err as { cause: TaskError }).cause.details.parallelFailures as { step: string }[]).length, 1, 'only the greedy branch failed');
  // The capped pool serves the next call with a new thread, and the threads have their cap.
  const limits = await pipeline([S.limits], { executor: 'threads', memoryLimitMb: CAP }).run({});
  assert.equal((limits.resourceLimits as { maxOldGenerationSizeMb?: number } | undefined)?.maxOldGenerationSizeMb, CAP);
  assert.equal((await pipeline([S.add]).run({ a: 3, b: 3 })).sum, 6, 'uncapped threads never noticed');
  assert.ok(threadPoolStats().pools >= 2, 'a capped pool beside the uncapped one');
});

test('expressions inside a thread run on the backend this process uses (the addon and the .wasm load in workers)', T, async () => {
  const forced = process.env.WPIPE_BACKEND;
  const out = await pipeline([S.evaluates], { executor: 'threads' }).run({});
  assert.equal(out.passed, 4096 / 8 * 2, 'x in 0..7: x * 2 > 10 for 6 and 7');
  assert.notEqual(out.threadId, threadId, 'it ran in a worker thread');
  if (forced === 'js' || forced === 'wasm' || forced === 'native') assert.equal(out.used, forced);
  else assert.ok(['js', 'wasm', 'native'].includes(out.used as string));
});

test('each attempt reports its start (the deadline starts there, not at the call): once, before it settles, naming its worker', T, async () => {
  await checkReportsStarts('threads', /^thread \d+$/);
});

test('close() destroys the shared pool once its last user closes; a new executor makes a new pool', T, async () => {
  const a = createExecutor('threads', { maxWorkers: 1 });
  const b = createExecutor('threads', { maxWorkers: 3 });
  await a.call(directCall({ a: 1, b: 1 }, 'add'));
  const users = threadPoolStats().users;
  assert.ok(threadPoolStats().threads >= 1);
  await a.close();
  assert.equal(threadPoolStats().users, users - 1);
  assert.equal(await b.call(directCall({ a: 1, b: 2 }, 'add')).then(() => 'ok'), 'ok');
  assert.ok(threadPoolStats().size >= 3, 'sized from the largest maxWorkers asked');
  await b.close();
  await assert.rejects(Promise.resolve(b.call(directCall({}, 'add'))), (e: unknown) => (e as WpipeError).code === 'WPIPE_ERR_WORKER_EXITED');
});

test('a closure asked to run on threads is refused at setSteps', () => {
  const closure = step({ name: 'closure' })(() => undefined);
  assert.throws(() => new Pipeline().setSteps([new Parallel({ steps: [closure], executor: 'threads' })]),
    (e: unknown) => (e as WpipeError).code === 'WPIPE_ERR_TASK_NOT_ADDRESSABLE');
});
