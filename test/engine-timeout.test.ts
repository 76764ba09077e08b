// Real timeouts and cancellation: deadlines fire even for steps that never settle, signals abort,
// and no timer outlives a run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { Pipeline, PipelineAsync, For, Parallel, step, type Context, type StepInfo, ERRORS_KEY, type StepFailure } from '../src/engine/index.js';
import { ProcessError, TaskError } from '../src/errors.js';

const never = (): Promise<never> => new Promise<never>(() => {});

function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

async function rejection(p: Promise<unknown>): Promise<ProcessError> {
  return p.then(() => assert.fail('resolved'), (e: unknown) => e as ProcessError);
}

test('a step that never settles fails at its deadline with WPIPE_ERR_TASK_TIMEOUT', async () => {
  let signal: AbortSignal | undefined;
  const hang = step({ name: 'hang', version: 'v2', timeout: 0.05 })((_c: Context, info: StepInfo) => {
    signal = info.signal;
    return never();
  });
  const before = activeTimers();
  const t0 = performance.now();
  const e = await rejection(new Pipeline().setSteps([hang]).run());
  const elapsed = performance.now() - t0;
  assert.ok(elapsed >= 45 && elapsed < 1000, `elapsed ${elapsed}`);
  assert.ok(e instanceof ProcessError);
  assert.equal(e.errorCode, 502);
  const te = e.cause as TaskError;
  assert.ok(te instanceof TaskError);
  assert.equal(te.code, 'WPIPE_ERR_TASK_TIMEOUT');
  assert.equal(te.stepName, 'hang');
  assert.equal(te.details.version, 'v2');
  assert.equal(te.details.attempts, 1);
  assert.match(te.message, /^step 'hang' \(v2\) failed after 1 attempt: timed out after 0\.05 s$/);
  assert.equal((te.cause as TaskError).code, 'WPIPE_ERR_TASK_TIMEOUT');
  assert.ok(signal!.aborted, 'info.signal aborts at the deadline');
  assert.equal((signal!.reason as TaskError).code, 'WPIPE_ERR_TASK_TIMEOUT');
  assert.equal(activeTimers(), before, 'no timer is left behind');
});

test('each attempt gets its own deadline and signal', async () => {
  const signals: AbortSignal[] = [];
  const hang = step({ timeout: 0.03, retryCount: 2, retryDelay: 0 })((_c: Context, info: StepInfo) => {
    signals.push(info.signal);
    return never();
  });
  const e = await rejection(new Pipeline().setSteps([hang]).run());
  assert.equal((e.cause as TaskError).details.attempts, 3);
  assert.equal((e.cause as TaskError).code, 'WPIPE_ERR_TASK_TIMEOUT');
  assert.equal(signals.length, 3);
  assert.equal(new Set(signals).size, 3);
  assert.ok(signals.every((s) => s.aborted));
});

test('a step that resolves in time succeeds and leaves no timer behind', async () => {
  const before = activeTimers();
  const quick = step({ timeout: 5 })(async () => { await delay(5); return { ok: true }; });
  assert.deepEqual(await new Pipeline().setSteps([quick]).run(), { ok: true });
  assert.equal(activeTimers(), before);
});

test('a step that cooperates with info.signal stops its own work', async () => {
  let stoppedBy: unknown;
  const polite = step({ timeout: 0.03 })(async (_c: Context, info: StepInfo) => {
    try {
      await delay(10_000, undefined, { signal: info.signal });
    } catch (e) {
      stoppedBy = e;
      throw e;
    }
  });
  await assert.rejects(new Pipeline().setSteps([polite]).run());
  assert.equal((stoppedBy as Error).name, 'AbortError');
  assert.equal(activeTimers(), 0);
});

test('a synchronous step that returns past its deadline fails with a timeout (run and runSync)', async () => {
  const busy = step({ name: 'busy', timeout: 0.01 })(() => {
    const end = performance.now() + 30;
    while (performance.now() < end) { /* spin */ }
    return { done: true };
  });
  const e = await rejection(new Pipeline().setSteps([busy]).run());
  assert.equal((e.cause as TaskError).code, 'WPIPE_ERR_TASK_TIMEOUT');
  assert.throws(() => new Pipeline().setSteps([busy]).runSync(), (x: unknown) => (x as ProcessError).cause instanceof TaskError
    && ((x as ProcessError).cause as TaskError).code === 'WPIPE_ERR_TASK_TIMEOUT');
});

test('a late result after a timeout is ignored, and its rejection is not unhandled', async () => {
  let unhandled = 0;
  const onUnhandled = (): void => { unhandled++; };
  process.on('unhandledRejection', onUnhandled);
  try {
    let thrown!: () => void;
    const lateThrow = new Promise<void>((resolve) => { thrown = resolve; });
    const late = step({ timeout: 0.02 })(async () => {
      await delay(60);
      thrown();
      throw new Error('too late');
    });
    const e = await rejection(new Pipeline().setSteps([late]).run());
    assert.equal((e.cause as TaskError).code, 'WPIPE_ERR_TASK_TIMEOUT');
    // Wait for the late rejection itself, then two turns of the loop: Node reports an unhandled
    // rejection once the microtasks after it have run.
    await lateThrow;
    for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
    assert.equal(unhandled, 0);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('cancelling a run rejects with WPIPE_ERR_PROCESS_CANCELLED and aborts the step', async () => {
  const ac = new AbortController();
  let stepSignal: AbortSignal | undefined;
  let attempts = 0;
  const hang = step({ retryCount: 5, retryDelay: 0 })((_c: Context, info: StepInfo) => {
    attempts++;
    stepSignal = info.signal;
    return never();
  });
  const pending = new Pipeline({ pipelineName: 'c' }).setSteps([hang, () => assert.fail('must not run')]).run({}, { signal: ac.signal, runId: 'r9' });
  setTimeout(() => ac.abort(new Error('user said stop')), 20);
  const e = await rejection(pending);
  assert.ok(e instanceof ProcessError);
  assert.equal(e.code, 'WPIPE_ERR_PROCESS_CANCELLED');
  assert.equal(e.errorCode, 504);
  assert.match(e.message, /pipeline 'c' run r9 was cancelled/);
  assert.equal((e.cause as Error).message, 'user said stop');
  assert.equal(attempts, 1, 'a cancelled attempt is not retried');
  assert.ok(stepSignal!.aborted);
  assert.equal(activeTimers(), 0);
});

test('an already aborted signal runs nothing', async () => {
  let ran = false;
  const e = await rejection(new Pipeline().setSteps([() => { ran = true; }]).run({}, { signal: AbortSignal.abort() }));
  assert.equal(e.code, 'WPIPE_ERR_PROCESS_CANCELLED');
  assert.equal(ran, false);
});

test('cancellation between steps, during a retry delay and inside a For loop', async () => {
  const ac = new AbortController();
  const stopper = (): void => ac.abort();
  let e = await rejection(new Pipeline().setSteps([async () => { stopper(); }, () => assert.fail('ran')]).run({}, { signal: ac.signal }));
  assert.equal(e.code, 'WPIPE_ERR_PROCESS_CANCELLED');

  const ac2 = new AbortController();
  const t0 = performance.now();
  const failing = step({ retryCount: 1, retryDelay: 30 })(() => { throw new Error('x'); });
  setTimeout(() => ac2.abort(), 20);
  e = await rejection(new Pipeline().setSteps([failing]).run({}, { signal: ac2.signal }));
  assert.equal(e.code, 'WPIPE_ERR_PROCESS_CANCELLED');
  assert.ok(performance.now() - t0 < 5000);

  const ac3 = new AbortController();
  let iterations = 0;
  const loop = new For({ validationExpression: 'True', steps: [async () => { iterations++; if (iterations === 3) ac3.abort(); }] });
  e = await rejection(new Pipeline().setSteps([loop]).run({}, { signal: ac3.signal }));
  assert.equal(e.code, 'WPIPE_ERR_PROCESS_CANCELLED');
  assert.equal(iterations, 3);
  assert.equal(activeTimers(), 0);
});

test('continueOnError never swallows a cancellation', async () => {
  const ac = new AbortController();
  const p = new Pipeline({ continueOnError: true }).setSteps([
    () => { throw new Error('recorded'); },
    async () => { ac.abort(); await never(); },
    () => assert.fail('ran'),
  ]);
  const e = await rejection(p.run({}, { signal: ac.signal }));
  assert.equal(e.code, 'WPIPE_ERR_PROCESS_CANCELLED');
});

test('cancellation reaches every Parallel branch', async () => {
  const ac = new AbortController();
  const signals: AbortSignal[] = [];
  let allStarted!: () => void;
  const started = new Promise<void>((resolve) => { allStarted = resolve; });
  const branch = (_c: Context, info: StepInfo): Promise<never> => {
    if (signals.push(info.signal) === 3) allStarted();
    return never();
  };
  const pending = new PipelineAsync().setSteps([new Parallel({ steps: [branch, branch, branch] })]).run({}, { signal: ac.signal });
  await started; // every branch is running: abort now
  ac.abort();
  const e = await rejection(pending);
  assert.equal(e.code, 'WPIPE_ERR_PROCESS_CANCELLED');
  assert.equal(signals.length, 3);
  assert.ok(signals.every((s) => s.aborted));
});

test('a timeout under continueOnError is recorded with its code', async () => {
  const out = await new Pipeline({ continueOnError: true }).setSteps([
    step({ name: 'slow', timeout: 0.02 })(() => never()),
    () => ({ after: 1 }),
  ]).run();
  const [f] = out[ERRORS_KEY] as StepFailure[];
  assert.equal(f!.code, 'WPIPE_ERR_TASK_TIMEOUT');
  assert.equal(f!.step, 'slow');
  assert.equal(out.after, 1);
});
