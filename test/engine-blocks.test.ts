// Condition, For, Parallel, Background and nested pipelines, with the original's faults fixed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import {
  Pipeline, PipelineAsync, Condition, For, Parallel, Background, step, ERRORS_KEY,
  type Context, type Logger, type StepFailure,
} from '../src/engine/index.js';
import { ExpressionError, ProcessError, TaskError, WpipeError } from '../src/errors.js';
import { registerExecutor } from '../src/parallel/registry.js';
import { restoreExecutor } from './helpers/executor-start.js';

const inc = (c: Context): Context => ({ n: c.n + 1 });
const double = (c: Context): Context => ({ n: c.n * 2 });

function silentLogger(): Logger & { errors: string[] } {
  const errors: string[] = [];
  const none = (): void => {};
  return { errors, debug: none, info: none, warn: none, error: (o, m) => { errors.push(typeof o === 'string' ? o : m ?? ''); } };
}

async function rejection(p: Promise<unknown>): Promise<ProcessError> {
  return p.then(() => assert.fail('resolved'), (e: unknown) => e as ProcessError);
}

// ---------------------------------------------------------------- Condition

test('Condition takes the branch its expression chooses', async () => {
  const p = new Pipeline().setSteps([new Condition({ expression: 'n > 10', branchTrue: [double], branchFalse: [inc] })]);
  assert.equal((await p.run({ n: 15 })).n, 30);
  assert.equal(p.runSync({ n: 5 }).n, 6);
  const noFalse = new Pipeline().setSteps([new Condition({ expression: 'n > 10', branchTrue: [inc] })]);
  assert.deepEqual(await noFalse.run({ n: 5 }), { n: 5 });
  const nested = new Pipeline().setSteps([
    new Condition({ expression: 'n > 1', branchTrue: [new Condition({ expression: 'n > 3', branchTrue: [inc], branchFalse: [double] })] }),
  ]);
  assert.equal((await nested.run({ n: 5 })).n, 6);
  const rich = new Pipeline().setSteps([
    new Condition({ expression: "tier in ['premium', 'vip'] and order_value > 100", branchTrue: [() => ({ vip: true })], branchFalse: [() => ({ vip: false })] }),
  ]);
  assert.equal((await rich.run({ tier: 'vip', order_value: 150 })).vip, true);
  assert.equal((await rich.run({ tier: 'basic', order_value: 150 })).vip, false);
});

test('a Condition whose expression fails to evaluate fails loudly (never the false branch)', async () => {
  let falseRan = false;
  const p = new Pipeline().setSteps([
    new Condition({ name: 'gate', expression: 'missing > 3', branchTrue: [inc], branchFalse: [() => { falseRan = true; }] }),
  ]);
  const e = await rejection(p.run({ n: 1 }));
  assert.equal(falseRan, false);
  const te = e.cause as TaskError;
  assert.ok(te instanceof TaskError);
  assert.equal(te.stepName, 'gate');
  assert.equal(te.details.kind, 'condition');
  assert.match(te.message, /condition 'gate' at steps\[0\]: the expression 'missing > 3' failed: NameError: name 'missing' is not defined/);
  assert.ok(te.cause instanceof ExpressionError);
  assert.equal((te.cause as ExpressionError).code, 'WPIPE_ERR_EXPRESSION_EVAL');
  // A type error too (comparing a number with a string is an error, not false).
  await assert.rejects(p.run({ missing: 'x' }), (x: unknown) => ((x as ProcessError).cause as TaskError).cause instanceof ExpressionError);
});

test('Condition syntax errors and bad options surface at construction', () => {
  assert.throws(() => new Condition({ expression: 'n >', branchTrue: [] }), (e: unknown) => e instanceof ExpressionError && e.code === 'WPIPE_ERR_EXPRESSION_SYNTAX');
  assert.throws(() => new Condition({ expresion: 'n > 1', branchTrue: [] } as never), /did you mean expression\?/);
  assert.throws(() => new Condition({ expression: 5, branchTrue: [] } as never), TypeError);
  assert.throws(() => new Condition({ expression: '  ', branchTrue: [] }), RangeError);
  assert.throws(() => new Condition({ expression: 'True' } as never), (e: unknown) => (e as WpipeError).code === 'WPIPE_ERR_INVALID_STEP');
  assert.throws(() => new Condition(undefined as never), TypeError);
});

// ---------------------------------------------------------------- For

test('For with iterations, with an expression, and with both (both must hold)', async () => {
  assert.deepEqual(await new Pipeline().setSteps([new For({ iterations: 3, steps: [inc] })]).run({ n: 0 }), { n: 3, _loop_iteration: 2 });
  assert.deepEqual(new Pipeline().setSteps([new For({ validationExpression: 'n < 10', steps: [inc] })]).runSync({ n: 5 }), { n: 10, _loop_iteration: 4 });
  // Both: the count stops it first …
  assert.equal((await new Pipeline().setSteps([new For({ iterations: 2, validationExpression: 'n < 10', steps: [inc] })]).run({ n: 5 })).n, 7);
  // … or the expression does (the original ignored the expression when iterations was given).
  assert.equal((await new Pipeline().setSteps([new For({ iterations: 10, validationExpression: 'n < 7', steps: [inc] })]).run({ n: 5 })).n, 7);
});

test('For: zero iterations leaves no _loop_iteration; nested loops multiply', async () => {
  assert.deepEqual(await new Pipeline().setSteps([new For({ iterations: 0, steps: [inc] })]).run({ n: 1 }), { n: 1 });
  assert.deepEqual(await new Pipeline().setSteps([new For({ iterations: 0, steps: [inc] })]).run({ n: 1, _loop_iteration: 9 }), { n: 1, _loop_iteration: 9 });
  const nested = new For({ iterations: 2, steps: [new For({ iterations: 3, steps: [inc] })] });
  assert.equal((await new Pipeline().setSteps([nested]).run({ n: 0 })).n, 6);
});

test('_loop_iteration is visible to the expression from the first check', async () => {
  const seen: number[] = [];
  const loop = new For({ validationExpression: '_loop_iteration < 3', steps: [(c: Context) => { seen.push(c._loop_iteration); }] });
  const out = await new Pipeline().setSteps([loop]).run();
  assert.deepEqual(seen, [0, 1, 2]);
  assert.equal(out._loop_iteration, 2);
  // With an async body too.
  seen.length = 0;
  const asyncLoop = new For({ validationExpression: '_loop_iteration < 2', steps: [async (c: Context) => { seen.push(c._loop_iteration); }] });
  await new Pipeline().setSteps([asyncLoop]).run();
  assert.deepEqual(seen, [0, 1]);
});

test('For: a failing expression fails loudly; an inner failure stops the loop', async () => {
  const e = await rejection(new Pipeline().setSteps([new For({ validationExpression: 'missing < 3', steps: [inc] })]).run({ n: 0 }));
  assert.match(e.message, /for 'For' at steps\[0\]: the expression 'missing < 3' failed: NameError/);
  let runs = 0;
  const boom = step({ name: 'boom' })((c: Context) => { runs++; if (c._loop_iteration === 1) throw new Error('second pass'); });
  const f = await rejection(new Pipeline().setSteps([new For({ iterations: 5, steps: [boom] })]).run());
  assert.equal(runs, 2);
  assert.equal((f.cause as TaskError).stepName, 'boom');
  assert.equal((f.cause as TaskError).details.path, 'steps[0].steps[0]');
});

test('For options are checked at construction', () => {
  assert.throws(() => new For({ steps: [inc] }), /give iterations, validationExpression or both/);
  assert.throws(() => new For({ iterations: -1, steps: [] }), RangeError);
  assert.throws(() => new For({ iterations: 1.5, steps: [] }), RangeError);
  assert.throws(() => new For({ validationExpression: 'n <', steps: [] }), ExpressionError);
  assert.throws(() => new For({ iteration: 3, steps: [] } as never), /did you mean iterations\?/);
});

// ---------------------------------------------------------------- Parallel

test('Parallel merges in declared order, not completion order', async () => {
  const order: string[] = [];
  const slow = async (): Promise<Context> => { await delay(30); order.push('slow'); return { x: 'slow', a: 1 }; };
  const fast = async (): Promise<Context> => { await delay(1); order.push('fast'); return { x: 'fast', b: 2 }; };
  const out = await new Pipeline().setSteps([new Parallel({ steps: [fast, slow] })]).run();
  assert.deepEqual(order, ['fast', 'slow']);
  assert.deepEqual(out, { x: 'slow', a: 1, b: 2 });
  const out2 = await new Pipeline().setSteps([new Parallel({ steps: [slow, fast] })]).run();
  assert.equal(out2.x, 'fast');
});

test('Parallel: each branch works on its own copy; changes to existing keys are kept', async () => {
  const seen: unknown[] = [];
  const a = (c: Context): Context => { c.counter += 1; seen.push(c.counter); return { a: 1 }; };
  const b = (c: Context): Context => { seen.push(c.counter); return { b: 2, counter: c.counter + 10 }; };
  const out = await new Pipeline().setSteps([new Parallel({ steps: [a, b] })]).run({ counter: 0 });
  assert.deepEqual(seen, [1, 0], 'b does not see the change a made to its own copy');
  // The original dropped changes to existing keys when a branch also added keys; here both merge.
  assert.deepEqual(out, { counter: 10, a: 1, b: 2 });
});

test('Parallel branches really overlap (all three started before any finished)', async () => {
  const events: string[] = [];
  const sleepy = (k: string) => async (): Promise<Context> => { events.push(`start ${k}`); await delay(30); events.push(`end ${k}`); return { [k]: true }; };
  const out = await new Pipeline().setSteps([new Parallel({ steps: [sleepy('a'), sleepy('b'), sleepy('c')], maxWorkers: 3 })]).run();
  assert.deepEqual(events.slice(0, 3), ['start a', 'start b', 'start c']);
  assert.deepEqual(out, { a: true, b: true, c: true });
});

test('Parallel respects maxWorkers', async () => {
  let running = 0;
  let peak = 0;
  const branch = async (): Promise<void> => {
    running++;
    peak = Math.max(peak, running);
    await delay(10);
    running--;
  };
  await new PipelineAsync().setSteps([new Parallel({ steps: [branch, branch, branch, branch, branch], maxWorkers: 2 })]).run();
  assert.equal(peak, 2);
});

test('Parallel fails after every branch settles, with the first failure in declared order', async () => {
  let slowFinished = false;
  const slowOk = async (): Promise<Context> => { await delay(40); slowFinished = true; return { ok: 1 }; };
  const failLate = step({ name: 'late' })(async () => { await delay(20); throw new Error('late boom'); });
  const failEarly = step({ name: 'early' })(async () => { throw new Error('early boom'); });
  const e = await rejection(new Pipeline().setSteps([new Parallel({ name: 'fan', steps: [slowOk, failLate, failEarly] }), () => assert.fail('ran')]).run());
  assert.equal(slowFinished, true, 'the block waited for the slow branch');
  const te = e.cause as TaskError;
  assert.equal(te.stepName, 'late', 'declared order, not completion order');
  assert.equal((te.cause as Error).message, 'late boom');
  assert.equal(te.details.parallel, 'fan');
  const failures = te.details.parallelFailures as { index: number; step: string }[];
  assert.deepEqual(failures.map((f) => [f.index, f.step]), [[1, 'late'], [2, 'early']]);
});

test('Parallel under continueOnError: nothing of a failed block merges, every branch failure is recorded', async () => {
  const out = await new Pipeline({ continueOnError: true }).setSteps([
    new Parallel({ steps: [() => ({ merged: true }), step({ name: 'x' })(() => { throw new Error('x'); }), step({ name: 'y' })(() => { throw new Error('y'); })] }),
    () => ({ after: true }),
  ]).run();
  assert.equal(out.merged, undefined);
  assert.equal(out.after, true);
  const [f] = out[ERRORS_KEY] as StepFailure[];
  assert.equal(f!.step, 'x');
  assert.deepEqual(f!.branches!.map((b) => b.step), ['x', 'y']);
});

test('Parallel of sync steps runs under runSync too', () => {
  const out = new Pipeline().setSteps([new Parallel({ steps: [() => ({ a: 1 }), () => ({ b: 2 })] })]).runSync();
  assert.deepEqual(out, { a: 1, b: 2 });
});

test('Parallel options and worker placement are checked at construction and setSteps', () => {
  assert.throws(() => new Parallel({ steps: [], maxWorkers: 0 }), RangeError);
  assert.throws(() => new Parallel({ steps: [], memoryLimitMb: 256 }), /memoryLimitMb caps the workers running the branches; it needs useProcesses: true \(caps each child process\) or executor: 'threads'/);
  assert.throws(() => new Parallel({ steps: [], executor: 'fibers' as never }), /executor must be one of inline, threads, processes/);
  assert.throws(() => new Parallel({ steps: [], useProcesses: true, executor: 'threads' }), /contradicts/);
  assert.throws(() => new Parallel({ step: [] } as never), /did you mean steps\?/);
  const closure = (): void => {};
  assert.throws(
    () => new Pipeline().setSteps([new Parallel({ steps: [closure], executor: 'threads' })]),
    (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_TASK_NOT_ADDRESSABLE' && /steps\[0\]\.steps\[0\] \(step 'closure'\) is a closure/.test(e.message),
  );
  const addressable = step({ module: { moduleUrl: 'file:///tmp/steps.js', exportName: 'load' } })(closure);
  // The engine brings the worker executors itself (this file imports src/engine, not src/parallel):
  // placing a branch in a child process is accepted at setSteps (nothing starts until a run).
  new Pipeline().setSteps([new Parallel({ steps: [addressable], useProcesses: true, memoryLimitMb: 256 })]);
  registerExecutor('processes', null);
  registerExecutor('threads', null);
  try {
    assert.throws(
      () => new Pipeline().setSteps([new Parallel({ steps: [addressable], useProcesses: true, memoryLimitMb: 256 })]),
      (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_EXECUTOR_UNAVAILABLE',
    );
    // Without a threads executor registered, addressable steps stay inline by default.
    assert.deepEqual(new Pipeline().setSteps([new Parallel({ steps: [addressable] })]).runSync(), {});
  } finally {
    restoreExecutor('processes');
    restoreExecutor('threads');
  }
});

// ---------------------------------------------------------------- Background

test('Background does not block the run and its result is not merged', async () => {
  let finished = false;
  const bg = async (c: Context): Promise<Context> => { c.mutated = true; await delay(80); finished = true; return { bgValue: 1 }; };
  const p = new Pipeline().setSteps([() => ({ a: 1 }), new Background(bg), (c: Context) => ({ b: c.a + 1 })]);
  const out = await p.run();
  assert.deepEqual(out, { a: 1, b: 2 });
  assert.equal(finished, false);
  assert.equal(p.pendingBackground, 1);
  assert.deepEqual(await p.close(), []);
  assert.equal(finished, true, 'close() waited for it');
  assert.equal(p.pendingBackground, 0);
});

test('a synchronous Background step runs after the current run, not inside it', () => {
  const order: string[] = [];
  const p = new Pipeline().setSteps([new Background(() => { order.push('bg'); }), () => { order.push('next'); }]);
  p.runSync();
  assert.deepEqual(order, ['next']);
  return p.close().then(() => assert.deepEqual(order, ['next', 'bg']));
});

test('Background failures are logged and recorded, never lost', async () => {
  const logger = silentLogger();
  const records: unknown[] = [];
  const p = new Pipeline({ logger, observers: [{ onBackgroundEnd: (r) => records.push(r) }] }).setSteps([
    new Background(step({ name: 'notify', retryCount: 1, retryDelay: 0 })(async () => { throw new Error('smtp down'); })),
    () => ({ done: true }),
  ]);
  assert.deepEqual(await p.run({}, { runId: 'bg-run' }), { done: true });
  const failures = await p.close();
  assert.equal(failures.length, 1);
  const [f] = failures;
  assert.equal(f!.status, 'failed');
  assert.equal(f!.name, 'notify');
  assert.equal(f!.runId, 'bg-run');
  assert.ok(f!.error instanceof TaskError);
  assert.equal((f!.error as TaskError).details.attempts, 2);
  assert.match(logger.errors.join('\n'), /\[BACKGROUND ERROR\] notify: step 'notify' \(v1\.0\) failed after 2 attempts: smtp down/);
  assert.equal(records.length, 1);
  assert.deepEqual(await p.close(), [], 'reported once');
});

test('Background records what its copy gained; tuples and blocks work as background steps', async () => {
  const records: { name: string; changes: unknown }[] = [];
  let ran = 0;
  const p = new Pipeline({ observers: [{ onBackgroundEnd: (r) => records.push(r) }] }).setSteps([
    new Background([() => { ran++; return { sent: true }; }, 'mailer', 'v2']),
    new Background(new For({ iterations: 2, steps: [() => { ran++; }] }), { name: 'loop' }),
  ]);
  await p.run({ a: 1 });
  await p.close();
  assert.equal(ran, 3);
  assert.deepEqual(records.map((r) => [r.name, r.changes]), [['mailer', { sent: true }], ['loop', { _loop_iteration: 1 }]]);
});

test('Background inside a Condition branch runs (the original skipped it silently)', async () => {
  let ran = false;
  const p = new Pipeline().setSteps([new Condition({ expression: 'True', branchTrue: [new Background(() => { ran = true; })] })]);
  await p.run();
  await p.close();
  assert.equal(ran, true);
});

// ---------------------------------------------------------------- nested pipelines

test('nested pipelines: data flows through the child and back', async () => {
  const child = new Pipeline({ pipelineName: 'child' }).setSteps([(c: Context) => ({ intermediate: c.x * 2 }), (c: Context) => ({ processed: c.intermediate })]);
  const second = new Pipeline({ pipelineName: 'second' }).setSteps([(c: Context) => ({ final: c.processed * 2 })]);
  const parent = new Pipeline().setSteps([child, [second, 'Second', 'v2'], (c: Context) => ({ plain: c.final + 1 })]);
  const out = await parent.run({ x: 5 });
  assert.deepEqual(out, { x: 5, intermediate: 10, processed: 10, final: 20, plain: 21 });
  assert.deepEqual(parent.runSync({ x: 5 }), out);
});

test('a failing child pipeline names the inner step (no doubled prefixes)', async () => {
  const child = new Pipeline({ pipelineName: 'child' }).setSteps([step({ name: 'inner' })(() => { throw new Error('child boom'); })]);
  const e = await rejection(new Pipeline({ pipelineName: 'parent' }).setSteps([child]).run());
  assert.equal(e.message, "pipeline 'parent' failed: step 'inner' (v1.0) failed after 1 attempt: child boom");
  const te = e.cause as TaskError;
  assert.equal(te.stepName, 'inner');
  assert.equal(te.details.pipeline, 'child');
  assert.equal((te.cause as Error).message, 'child boom');
});

test("a child's continueOnError applies to the child's own steps", async () => {
  const child = new Pipeline({ pipelineName: 'child', continueOnError: true }).setSteps([() => { throw new Error('soft'); }, () => ({ c: 1 })]);
  const out = await new Pipeline().setSteps([child, () => ({ p: 1 })]).run();
  assert.equal(out.c, 1);
  assert.equal(out.p, 1);
  assert.equal((out[ERRORS_KEY] as StepFailure[])[0]!.message.includes('soft'), true);
});

test('a nested PipelineAsync runs inside a Pipeline and vice versa', async () => {
  const child = new PipelineAsync({ pipelineName: 'a' }).setSteps([async (c: Context) => ({ n: c.n + 1 })]);
  const parent = new Pipeline().setSteps([child, new PipelineAsync().setSteps([new Pipeline().setSteps([double])])]);
  assert.equal((await parent.run({ n: 5 })).n, 12);
  assert.throws(() => parent.runSync({ n: 1 }), /nested pipeline 'a' at steps\[0\]: step 'step' at steps\[0\] is an async function/);
});

test('long async loops and sequences finish in constant memory (no continuation chains)', async () => {
  const tick = async (c: Context): Promise<Context> => ({ n: c.n + 1 });
  const loop = new For({ iterations: 20_000, steps: [tick] });
  assert.equal((await new Pipeline().setSteps([loop]).run({ n: 0 })).n, 20_000);
  const many = Array.from({ length: 2_000 }, () => tick);
  assert.equal((await new PipelineAsync({ yieldEveryMs: 5 }).setSteps(many).run({ n: 0 })).n, 2_000);
  assert.equal(new Pipeline().setSteps(Array.from({ length: 5_000 }, () => inc)).runSync({ n: 0 }).n, 5_000);
});
