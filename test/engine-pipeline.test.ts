// Pipeline construction, setSteps, data flow, errors, retries, runSync, continueOnError, logging.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Pipeline, PipelineAsync, Condition, For, Parallel, Background, step, isStep, ERRORS_KEY,
  type StepInfo, type Logger, type Context, type StepFailure,
} from '../src/engine/index.js';
import { ERROR_CATALOG, ProcessError, TaskError, WpipeError } from '../src/errors.js';

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const push = (level: string) => (o: object | string, m?: string): void => { lines.push(`${level} ${typeof o === 'string' ? o : m ?? ''}`); };
  return { lines, debug: push('debug'), info: push('info'), warn: push('warn'), error: push('error') };
}

function catchSync(fn: () => unknown): Error & { code?: string; errorCode?: number } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  assert.fail('expected a throw');
}

// ---------------------------------------------------------------- options

test('Pipeline defaults', () => {
  const p = new Pipeline();
  assert.equal(p.pipelineName, 'Pipeline');
  assert.equal(p.trackingDb, undefined);
  assert.equal(p.collectSystemMetrics, false);
  assert.deepEqual(p.steps, []);
});

test('trackingDb records runs with Pipeline imported from the engine alone: the engine imports the run history, no side-effect import wires it', async () => {
  // This file imports src/engine, never the package entry nor src/storage.
  const dir = mkdtempSync(join(tmpdir(), 'wpipe-engine-tracking-'));
  try {
    const db = join(dir, 'runs.db');
    const p = new Pipeline({ pipelineName: 'orders', trackingDb: db }).setSteps([function load() { return { rows: 3 }; }]);
    assert.deepEqual(await p.run({}, { runId: 'order-7' }), { rows: 3 });
    await p.close();
    const Database = createRequire(import.meta.url)('better-sqlite3') as typeof import('better-sqlite3');
    const conn = new Database(db, { readonly: true });
    try {
      assert.deepEqual(conn.prepare('SELECT id, name, status FROM pipelines').all(), [{ id: 'order-7', name: 'orders', status: 'completed' }]);
      assert.equal((conn.prepare('SELECT count(*) AS n FROM steps').get() as { n: number }).n, 1);
    } finally {
      conn.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Pipeline stores trackingDb and collectSystemMetrics for the storage layer', () => {
  const p = new Pipeline({ pipelineName: 'orders', trackingDb: 'runs.db', collectSystemMetrics: true });
  assert.equal(p.pipelineName, 'orders');
  assert.equal(p.trackingDb, 'runs.db');
  assert.equal(p.collectSystemMetrics, true);
});

test('a misspelt option is a TypeError with a hint', () => {
  const e = catchSync(() => new Pipeline({ trackingDB: 'x.db' } as never));
  assert.ok(e instanceof TypeError);
  assert.match(e.message, /unknown option 'trackingDB' \(did you mean trackingDb\?\)/);
  assert.equal(e.code, 'WPIPE_ERR_INVALID_OPTION');
  assert.equal(e.errorCode, 500);
  assert.match(catchSync(() => new Pipeline({ continueOnErrors: true } as never)).message, /did you mean continueOnError\?/);
  assert.match(catchSync(() => new PipelineAsync({ yieldEveryMS: 1 } as never)).message, /did you mean yieldEveryMs\?/);
});

test('wrong option types are TypeErrors, out-of-range values RangeErrors', () => {
  const cases: [object, typeof TypeError, RegExp][] = [
    [{ verbose: 'yes' }, TypeError, /verbose must be a boolean, got string/],
    [{ pipelineName: 3 }, TypeError, /pipelineName must be a string, got number/],
    [{ pipelineName: '' }, RangeError, /pipelineName must not be empty/],
    [{ maxRetries: -1 }, RangeError, /maxRetries must be >= 0, got -1/],
    [{ maxRetries: 1.5 }, RangeError, /maxRetries must be an integer/],
    [{ maxRetries: '2' }, TypeError, /maxRetries must be a number, got string/],
    [{ retryDelay: -0.1 }, RangeError, /retryDelay must be >= 0/],
    [{ retryDelay: Infinity }, RangeError, /retryDelay must be finite/],
    [{ retryBackoff: 0.5 }, RangeError, /retryBackoff must be >= 1/],
    [{ retryOn: true }, TypeError, /retryOn must be a function, got boolean/],
    [{ logger: {} }, TypeError, /logger must have debug, info, warn and error methods/],
    [{ observers: {} }, TypeError, /observers must be an array/],
  ];
  for (const [options, cls, re] of cases) {
    const e = catchSync(() => new Pipeline(options as never));
    assert.ok(e instanceof cls, `${JSON.stringify(options)} → ${e.name}`);
    assert.match(e.message, re);
  }
  assert.ok(catchSync(() => new Pipeline('orders' as never)) instanceof TypeError);
});

// ---------------------------------------------------------------- step()

test('step() keeps metadata readable and the function callable', () => {
  const inc = step({ name: 'inc', version: 'v2', retryCount: 0, retryDelay: 0.5, timeout: 1.5, description: 'adds one', tags: ['math'] })(
    (ctx: Context) => ({ n: ctx.n + 1 }),
  );
  assert.deepEqual(inc({ n: 1 }), { n: 2 });
  assert.equal(inc.meta.name, 'inc');
  assert.equal(inc.meta.version, 'v2');
  assert.equal(inc.meta.retryCount, 0);
  assert.equal(inc.meta.retryDelay, 0.5);
  assert.equal(inc.meta.timeout, 1.5);
  assert.equal(inc.meta.description, 'adds one');
  assert.deepEqual(inc.meta.tags, ['math']);
  assert.equal(inc.name, 'inc');
  assert.ok(isStep(inc));
  assert.ok(!isStep(() => undefined));
  // Defaults: function name and v1.0.
  function load(): void {}
  const s = step()(load);
  assert.equal(s.meta.name, 'load');
  assert.equal(s.meta.version, 'v1.0');
  assert.equal(s.meta.retryCount, undefined);
});

test('step() wrapping one function twice gives independent steps', () => {
  const fn = (): void => undefined;
  const a = step({ name: 'a' })(fn);
  const b = step({ name: 'b' })(fn);
  assert.equal(a.meta.name, 'a');
  assert.equal(b.meta.name, 'b');
  assert.equal(a.meta.fn, fn);
  assert.equal(step({ name: 'c' })(a).meta.fn, fn);
});

test('step() validates its options', () => {
  assert.match(catchSync(() => step({ retrycount: 1 } as never)).message, /did you mean retryCount\?/);
  assert.ok(catchSync(() => step({ timeout: 0 })) instanceof RangeError);
  assert.ok(catchSync(() => step({ timeout: -1 })) instanceof RangeError);
  assert.ok(catchSync(() => step({ retryCount: -1 })) instanceof RangeError);
  assert.ok(catchSync(() => step({ tags: 'x' } as never)) instanceof TypeError);
  assert.ok(catchSync(() => step({ module: { moduleUrl: 'file:///x.js' } } as never)) instanceof TypeError);
  assert.match(catchSync(() => step((() => undefined) as never)).message, /options must be an object, got function/);
  assert.ok(catchSync(() => step()('nope' as never)) instanceof TypeError);
  const withRef = step({ module: { moduleUrl: 'file:///x.js', exportName: 'load' } })(() => undefined);
  assert.deepEqual(withRef.meta.module, { moduleUrl: 'file:///x.js', exportName: 'load' });
});

// ---------------------------------------------------------------- setSteps

test('setSteps accepts functions, step()s, tuples, blocks and nested pipelines', () => {
  const child = new Pipeline({ pipelineName: 'child' });
  function plain(): void {}
  const p = new Pipeline().setSteps([
    plain,
    step({ name: 'named', version: 'v9' })(() => undefined),
    [() => undefined, 'S1', 'v3'],
    [() => undefined, 'S2'],
    new Condition({ expression: 'True', branchTrue: [plain] }),
    new For({ iterations: 1, steps: [plain] }),
    new Parallel({ steps: [plain] }),
    new Background(plain),
    child,
    [child, 'Child', 'v2'],
  ]);
  assert.deepEqual(p.steps.map((s) => [s.kind, s.name, s.version, s.path]), [
    ['task', 'plain', 'v1.0', 'steps[0]'],
    ['task', 'named', 'v9', 'steps[1]'],
    ['task', 'S1', 'v3', 'steps[2]'],
    ['task', 'S2', 'v1.0', 'steps[3]'],
    ['condition', 'Condition', 'v1.0', 'steps[4]'],
    ['for', 'For', 'v1.0', 'steps[5]'],
    ['parallel', 'Parallel', 'v1.0', 'steps[6]'],
    ['background', 'plain', 'v1.0', 'steps[7]'],
    ['pipeline', 'child', 'v1.0', 'steps[8]'],
    ['pipeline', 'Child', 'v2', 'steps[9]'],
  ]);
});

test('setSteps rejects what is not a step, naming where it is', () => {
  const bad = (items: unknown[]): WpipeError => catchSync(() => new Pipeline().setSteps(items as never)) as WpipeError;
  let e = bad([() => undefined, 'nope']);
  assert.ok(e instanceof WpipeError);
  assert.equal(e.code, 'WPIPE_ERR_INVALID_STEP');
  assert.equal(e.errorCode, 500);
  assert.match(e.message, /^steps\[1\] is a string \('nope'\), not a step/);
  assert.equal(e.details.path, 'steps[1]');
  assert.match(bad([42]).message, /steps\[0\] is a number \(42\)/);
  assert.match(bad([null]).message, /steps\[0\] is null/);
  assert.match(bad([{}]).message, /steps\[0\] is an object/);
  assert.match(bad([['not_a_tuple']]).message, /steps\[0\] is a tuple of length 1/);
  assert.match(bad([[() => undefined, 7]]).message, /steps\[0\]\[1\] is a number \(7\); the name/);
  assert.match(bad([['x', 'name']]).message, /steps\[0\]\[0\] is a string/);
  assert.match(catchSync(() => new Pipeline().setSteps('x' as never)).message, /steps must be an array, got string/);
});

test('blocks check their steps at construction, naming the path', () => {
  const e = catchSync(() => new Condition({ expression: 'True', branchTrue: [() => undefined, 'nope' as never] })) as WpipeError;
  assert.equal(e.code, 'WPIPE_ERR_INVALID_STEP');
  assert.match(e.message, /^Condition\.branchTrue\[1\] is a string/);
  assert.match(catchSync(() => new For({ iterations: 1, steps: [1 as never] })).message, /^For\.steps\[0\] is a number/);
  assert.match(catchSync(() => new Parallel({ steps: [undefined as never] })).message, /^Parallel\.steps\[0\] is undefined/);
  assert.match(catchSync(() => new Background('x' as never)).message, /^Background\.step is a string/);
  assert.match(catchSync(() => new Parallel({ steps: 'x' as never })).message, /Parallel\.steps must be an array/);
});

test('a pipeline cannot contain itself, directly or through a child', () => {
  const a = new Pipeline({ pipelineName: 'a' });
  const b = new Pipeline({ pipelineName: 'b' }).setSteps([a]);
  assert.match(catchSync(() => a.setSteps([a])).message, /nesting would never end/);
  assert.match(catchSync(() => a.setSteps([new Condition({ expression: 'True', branchTrue: [b] })])).message, /steps\[0\]\.branchTrue\[0\] is the pipeline 'b'/);
});

test('addSteps appends and re-checks', () => {
  const p = new Pipeline().setSteps([() => ({ a: 1 })]);
  p.addSteps([(c: Context) => ({ b: c.a + 1 })]);
  assert.deepEqual(p.runSync(), { a: 1, b: 2 });
  assert.match(catchSync(() => p.addSteps([3 as never])).message, /^steps\[2\] is a number/);
});

// ---------------------------------------------------------------- data flow

test('the caller object is never mutated at top level; merges are last-writer-wins', async () => {
  const input = { x: 5, list: [] as number[] };
  const p = new Pipeline().setSteps([
    (c: Context) => ({ result: c.x * 2, x: 1 }),
    (c: Context) => { c.inPlace = true; },
    () => null,
    (c: Context) => ({ result: c.result + 1 }),
  ]);
  const out = await p.run(input);
  assert.deepEqual(out, { x: 1, list: [], result: 11, inPlace: true });
  assert.deepEqual(input, { x: 5, list: [] });
  assert.notEqual(out, input);
  assert.deepEqual(p.runSync(input), out);
});

test('run() without data starts from {}; steps see earlier keys', async () => {
  const order: number[] = [];
  const p = new Pipeline().setSteps([
    () => { order.push(1); return { a: 1 }; },
    (c: Context) => { order.push(2); return { b: c.a + 1 }; },
  ]);
  assert.deepEqual(await p.run(), { a: 1, b: 2 });
  assert.deepEqual(order, [1, 2]);
  assert.deepEqual(await new Pipeline().run(), {});
});

test('a step returning the context itself is fine', async () => {
  const p = new Pipeline().setSteps([(c: Context) => { c.n = 2; return c; }]);
  assert.deepEqual(await p.run({ n: 1 }), { n: 2 });
});

test('a non-object return is a TaskError naming the step and the type', async () => {
  class Thing {}
  const cases: [unknown, RegExp][] = [
    [42, /returned number \(42\)/],
    ['ab', /returned string \('ab'\)/],
    [[1, 2], /returned array/],
    [new Map(), /returned Map/],
    [new Thing(), /returned Thing/],
    [true, /returned boolean \(true\)/],
  ];
  for (const [value, re] of cases) {
    const p = new Pipeline().setSteps([step({ name: 'bad', retryCount: 3, retryDelay: 0 })(() => value as never)]);
    const e = await p.run().then(() => assert.fail('resolved'), (x: unknown) => x) as ProcessError;
    assert.ok(e instanceof ProcessError);
    const te = e.cause as TaskError;
    assert.ok(te instanceof TaskError);
    assert.equal(te.code, 'WPIPE_ERR_TASK_RETURN');
    assert.equal(te.stepName, 'bad');
    assert.equal(te.details.attempts, 1, 'a bad return is not retried');
    assert.match(te.message, re);
    assert.match(te.message, /a step must return a plain object, undefined or null/);
    assert.throws(() => p.runSync(), (x: unknown) => x instanceof ProcessError && (x.cause as TaskError).code === 'WPIPE_ERR_TASK_RETURN');
  }
  // Null-prototype objects are plain too.
  const np = Object.assign(Object.create(null) as object, { k: 1 });
  assert.deepEqual({ ...(await new Pipeline().setSteps([() => np as never]).run()) }, { k: 1 });
});

test('initialData and run options are checked', async () => {
  const p = new Pipeline();
  await assert.rejects(p.run(5 as never), (e: unknown) => e instanceof TypeError && /initialData must be a plain object, got number/.test(e.message));
  await assert.rejects(p.run([] as never), TypeError);
  await assert.rejects(p.run({}, { runID: 'x' } as never), /unknown option 'runID' \(did you mean runId\?\)/);
  await assert.rejects(p.run({}, { runId: 3 } as never), TypeError);
  await assert.rejects(p.run({}, { signal: {} } as never), /signal must be an AbortSignal/);
  assert.throws(() => p.runSync(null as never), TypeError);
  assert.throws(() => p.runSync({}, { signal: new AbortController().signal } as never), /signal is not supported/);
});

// ---------------------------------------------------------------- errors

test('a failing step rejects with ProcessError → TaskError → the original error', async () => {
  const original = new RangeError('kaboom');
  const p = new Pipeline({ pipelineName: 'orders' }).setSteps([
    () => ({ a: 1 }),
    step({ name: 'load', version: 'v2', retryCount: 1, retryDelay: 0 })(() => { throw original; }),
    () => assert.fail('must not run'),
  ]);
  const e = await p.run({}, { runId: 'r1' }).then(() => assert.fail('resolved'), (x: unknown) => x) as ProcessError;
  assert.ok(e instanceof ProcessError);
  assert.ok(e instanceof WpipeError);
  assert.equal(e.errorCode, 502);
  assert.equal(e.code, 'WPIPE_ERR_PROCESS_FAILED');
  assert.equal(e.name, 'ProcessError');
  assert.match(e.message, /^pipeline 'orders' failed: step 'load' \(v2\) failed after 2 attempts: kaboom$/);
  assert.equal(e.details.runId, 'r1');
  const te = e.cause as TaskError;
  assert.ok(te instanceof TaskError);
  assert.equal(te.errorCode, 502);
  assert.equal(te.code, 'WPIPE_ERR_TASK_FAILED');
  assert.equal(te.stepName, 'load');
  assert.equal(te.details.version, 'v2');
  assert.equal(te.details.attempts, 2);
  assert.equal(te.details.path, 'steps[1]');
  assert.equal(te.cause, original);
  // The same shape from runSync.
  const s = catchSync(() => p.runSync()) as ProcessError;
  assert.ok(s instanceof ProcessError);
  assert.equal((s.cause as TaskError).cause, original);
});

test('thrown non-errors are kept as the cause', async () => {
  const p = new Pipeline().setSteps([() => { throw 'plain string'; }]);
  const e = await p.run().catch((x: unknown) => x) as ProcessError;
  assert.equal((e.cause as TaskError).cause, 'plain string');
  assert.match(e.message, /plain string/);
});

test('the engine codes are in the catalog with their families', () => {
  assert.equal(ERROR_CATALOG.WPIPE_ERR_EXECUTOR_UNAVAILABLE.errorCode, 500);
  assert.equal(ERROR_CATALOG.WPIPE_ERR_RUN_SYNC_UNSUPPORTED.errorCode, 500);
  assert.equal(ERROR_CATALOG.WPIPE_ERR_OBSERVER_FAILED.errorCode, 504);
  assert.equal(ERROR_CATALOG.WPIPE_ERR_PROCESS_CANCELLED.errorCode, 504);
  assert.equal(ERROR_CATALOG.WPIPE_ERR_TASK_TIMEOUT.errorCode, 502);
});

// ---------------------------------------------------------------- retries

test('retryCount extra attempts; info.attempt counts from 1', async () => {
  const seen: number[] = [];
  const flaky = step({ name: 'flaky', retryCount: 2, retryDelay: 0 })((_c: Context, info: StepInfo) => {
    seen.push(info.attempt);
    if (info.attempt < 3) throw new Error('not yet');
    return { ok: info.attempt };
  });
  assert.deepEqual(await new Pipeline().setSteps([flaky]).run(), { ok: 3 });
  assert.deepEqual(seen, [1, 2, 3]);
  seen.length = 0;
  assert.deepEqual(new Pipeline().setSteps([flaky]).runSync(), { ok: 3 });
  assert.deepEqual(seen, [1, 2, 3]);
});

test('retryCount 0 means no retry, whatever the pipeline default', async () => {
  let calls = 0;
  const once = step({ retryCount: 0 })(() => { calls++; throw new Error('x'); });
  const e = await new Pipeline({ maxRetries: 3, retryDelay: 0 }).setSteps([once]).run().catch((x: unknown) => x) as ProcessError;
  assert.equal(calls, 1);
  assert.equal((e.cause as TaskError).details.attempts, 1);
});

test('pipeline maxRetries applies to steps that do not say; retryOn can refuse', async () => {
  let calls = 0;
  const fail = (): void => { calls++; throw new TypeError('bad'); };
  await assert.rejects(new Pipeline({ maxRetries: 2, retryDelay: 0 }).setSteps([fail]).run());
  assert.equal(calls, 3);
  calls = 0;
  const onlyRange = (e: unknown): boolean => e instanceof RangeError;
  await assert.rejects(new Pipeline({ maxRetries: 2, retryDelay: 0, retryOn: onlyRange }).setSteps([fail]).run());
  assert.equal(calls, 1);
  calls = 0;
  const s = step({ retryCount: 2, retryDelay: 0, retryOn: (_e, attempt) => attempt < 2 })(fail);
  await assert.rejects(new Pipeline().setSteps([s]).run());
  assert.equal(calls, 2);
});

test('retryDelay and exponential backoff are honoured (run and runSync)', async () => {
  const times: number[] = [];
  const s = step({ retryCount: 2, retryDelay: 0.02, retryBackoff: 2 })(() => { times.push(performance.now()); throw new Error('x'); });
  await assert.rejects(new Pipeline().setSteps([s]).run());
  assert.ok(times[1]! - times[0]! >= 18, `first delay ${times[1]! - times[0]!}`);
  assert.ok(times[2]! - times[1]! >= 38, `second delay ${times[2]! - times[1]!}`);
  times.length = 0;
  assert.throws(() => new Pipeline().setSteps([s]).runSync());
  assert.ok(times[2]! - times[0]! >= 55);
});

test('a retry that succeeds merges only the successful attempt', async () => {
  const s = step({ retryCount: 1, retryDelay: 0 })(async (c: Context, info: StepInfo) => {
    c.touched = (c.touched ?? 0) + 1;
    if (info.attempt === 1) throw new Error('first');
    return { attempt: info.attempt };
  });
  assert.deepEqual(await new Pipeline().setSteps([s]).run(), { touched: 2, attempt: 2 });
});

// ---------------------------------------------------------------- runSync / no needless promises

test('runSync runs without creating a single promise; run() only a couple', async () => {
  const steps = Array.from({ length: 10 }, (_v, i) => (c: Context) => ({ [`k${i}`]: i, n: (c.n ?? 0) + 1 }));
  const p = new Pipeline().setSteps(steps);
  let promises = 0;
  const hook = createHook({ init(_id, type) { if (type === 'PROMISE') promises++; } }).enable();
  const out = p.runSync({});
  hook.disable();
  assert.equal(out.n, 10);
  assert.equal(promises, 0);
  promises = 0;
  hook.enable();
  const pending = p.run({});
  hook.disable();
  assert.ok(promises <= 2, `run() created ${promises} promises for 10 sync steps`);
  assert.equal((await pending).n, 10);
});

test('runSync refuses async functions before running anything', () => {
  let ran = false;
  const p = new Pipeline().setSteps([() => { ran = true; }, new For({ iterations: 1, steps: [async () => undefined] })]);
  const e = catchSync(() => p.runSync()) as WpipeError;
  assert.equal(e.code, 'WPIPE_ERR_RUN_SYNC_UNSUPPORTED');
  assert.match(e.message, /steps\[1\]\.steps\[0\] is an async function; use await pipeline\.run\(\) instead/);
  assert.equal(ran, false);
});

test('runSync fails clearly when a plain function returns a promise (never retried or swallowed)', () => {
  let calls = 0;
  const sneaky = step({ name: 'sneaky', retryCount: 3 })(() => { calls++; return Promise.reject(new Error('late')) as never; });
  const p = new Pipeline({ continueOnError: true }).setSteps([sneaky]);
  const e = catchSync(() => p.runSync()) as WpipeError;
  assert.equal(e.code, 'WPIPE_ERR_RUN_SYNC_UNSUPPORTED');
  assert.match(e.message, /step 'sneaky' \(v1\.0\) at steps\[0\]: it returned a promise/);
  assert.equal(calls, 1);
});

// ---------------------------------------------------------------- continueOnError

test('continueOnError keeps failures under _errors; a later success never erases them', async () => {
  const input = { n: 10, [ERRORS_KEY]: [] as StepFailure[] };
  const p = new Pipeline({ continueOnError: true }).setSteps([
    step({ name: 'boom', retryCount: 1, retryDelay: 0 })(() => { throw new Error('Stop here'); }),
    (c: Context) => ({ n: c.n + 1 }),
    [() => { throw new TypeError('second'); }, 'two', 'v7'],
    (c: Context) => ({ n: c.n + 1 }),
  ]);
  for (const out of [await p.run(input), p.runSync(input)]) {
    assert.equal(out.n, 12);
    const errors = out[ERRORS_KEY] as StepFailure[];
    assert.equal(errors.length, 2);
    assert.deepEqual(
      { ...errors[0], at: undefined },
      {
        step: 'boom', version: 'v1.0', path: 'steps[0]', position: 0, code: 'WPIPE_ERR_TASK_FAILED', errorCode: 502,
        message: "step 'boom' (v1.0) failed after 2 attempts: Stop here", attempts: 2,
        cause: { name: 'Error', message: 'Stop here' }, at: undefined,
      },
    );
    assert.match(errors[0]!.at, /^\d{4}-\d\d-\d\dT/);
    assert.equal(errors[1]!.step, 'two');
    assert.equal(errors[1]!.version, 'v7');
    assert.equal(errors[1]!.position, 2);
    assert.deepEqual(errors[1]!.cause, { name: 'TypeError', message: 'second' });
  }
  assert.equal(input[ERRORS_KEY].length, 0, "the caller's array is not mutated");
});

test('continueOnError: a failure inside a Condition branch stops the branch, the top level goes on', async () => {
  const p = new Pipeline({ continueOnError: true }).setSteps([
    new Condition({ expression: 'True', branchTrue: [() => ({ a: 1 }), step({ name: 'inner' })(() => { throw new Error('in branch'); }), () => ({ skipped: false })] }),
    () => ({ after: true }),
  ]);
  const out = await p.run();
  assert.equal(out.a, 1);
  assert.equal(out.skipped, undefined);
  assert.equal(out.after, true);
  const [f] = out[ERRORS_KEY] as StepFailure[];
  assert.equal(f!.step, 'inner');
  assert.equal(f!.path, 'steps[0].branchTrue[1]');
  assert.equal(f!.position, 0);
});

test('without continueOnError no _errors key appears on success', async () => {
  const out = await new Pipeline().setSteps([() => ({ a: 1 })]).run();
  assert.equal(ERRORS_KEY in out, false);
});

// ---------------------------------------------------------------- logging

test('verbose lines go through the logger, not console', async () => {
  const logger = recordingLogger();
  const original = console.log;
  let consoleCalls = 0;
  console.log = () => { consoleCalls++; };
  try {
    const flaky = step({ name: 'flaky', retryCount: 1, retryDelay: 0 })((_c: Context, i: StepInfo) => { if (i.attempt === 1) throw new Error('once'); });
    await new Pipeline({ pipelineName: 'v', verbose: true, logger }).setSteps([
      flaky,
      new Condition({ expression: 'True', branchTrue: [] }),
      new Parallel({ steps: [() => undefined] }),
    ]).run({}, { runId: 'r' });
  } finally {
    console.log = original;
  }
  assert.equal(consoleCalls, 0);
  const text = logger.lines.join('\n');
  assert.match(text, /info \[PIPELINE\] v: run r started/);
  assert.match(text, /info \[RETRY\] flaky failed \(attempt 1\/2\): once/);
  assert.match(text, /info \[CONDITION\] Evaluating: True → true/);
  assert.match(text, /info \[PARALLEL\] Executing 1 branches/);
  assert.match(text, /info \[PIPELINE STATUS\] v r: COMPLETED/);
});

test('a quiet pipeline logs nothing on success', async () => {
  const logger = recordingLogger();
  await new Pipeline({ logger }).setSteps([() => ({ a: 1 })]).run();
  assert.deepEqual(logger.lines, []);
});

test('info gives the step its name, version, run id and logger', async () => {
  const logger = recordingLogger();
  let seen: StepInfo | undefined;
  await new Pipeline({ logger }).setSteps([step({ name: 's', version: 'v3' })((_c: Context, info: StepInfo) => { seen = info; info.logger.info('hello'); })])
    .run({}, { runId: 'run-1' });
  assert.equal(seen!.stepName, 's');
  assert.equal(seen!.stepVersion, 'v3');
  assert.equal(seen!.runId, 'run-1');
  assert.equal(seen!.attempt, 1);
  assert.ok(seen!.signal instanceof AbortSignal);
  assert.deepEqual(logger.lines, ['info hello']);
  // A generated run id is stable within a run.
  const ids = new Set<string>();
  await new Pipeline().setSteps([(_c: Context, i: StepInfo) => { ids.add(i.runId); }, (_c: Context, i: StepInfo) => { ids.add(i.runId); }]).run();
  assert.equal(ids.size, 1);
  assert.match([...ids][0]!, /^RUN-[0-9a-f-]{36}$/);
});
