// Observers that wait: onRunStart's { wait }, the ifRunning option, hooks that return promises
// (async runs only), and a checkpoint that cannot be serialized failing its step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import {
  Pipeline, PipelineAsync, step,
  type Context, type RunEndEvent, type RunObserver, type RunStartDecision, type RunStartEvent,
} from '../src/engine/index.js';
import { ProcessError, TaskError, WpipeError } from '../src/errors.js';

/** What run() rejects with for a WpipeError of a finer kind: a ProcessError with its code, the original as cause. */
function wrapping(original: WpipeError): (x: unknown) => boolean {
  return (x) => x instanceof ProcessError && x.code === original.code && x.cause === original;
}

/** A promise with its resolve and reject, to settle a hook's wait from the test. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

/** Collects unhandled rejections while `fn` runs (and a few turns after), so a test can assert there were none. */
async function noUnhandled(fn: () => Promise<void>): Promise<void> {
  const seen: unknown[] = [];
  const onUnhandled = (reason: unknown): void => { seen.push(reason); };
  process.on('unhandledRejection', onUnhandled);
  try {
    await fn();
    await delay(20);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  assert.deepEqual(seen, [], 'no unhandled rejection');
}

/** Steps that log their name when their code runs. */
function loggingSteps(log: string[], names: readonly string[]): ReturnType<typeof step>[] {
  return names.map((name) => step({ name })(() => { log.push(`step:${name}`); return { [name]: true }; }));
}

// ---------------------------------------------------------------- onRunStart { wait }

test('a wait decision is awaited, then onRunStart is asked again: completed returns the recorded result, nothing runs', async () => {
  const log: string[] = [];
  const gate = deferred();
  const starts: RunStartEvent[] = [];
  let ends: RunEndEvent | undefined;
  const owner: RunObserver = {
    onRunStart: (e): RunStartDecision | void => {
      starts.push(e);
      log.push(`onRunStart#${starts.length}`);
      if (starts.length === 1) return { wait: gate.promise.then(() => log.push('owner finished')) };
      return { completed: { result: { recorded: 42 } } };
    },
    onRunEnd: (e) => { ends = e; },
  };
  const p = new Pipeline({ observers: [owner] }).setSteps(loggingSteps(log, ['a', 'b']));
  const running = p.run({ in: 1 }, { runId: 'busy-1' });
  await delay(10);
  assert.deepEqual(log, ['onRunStart#1'], 'still waiting: nothing asked again, nothing ran');
  gate.resolve();
  assert.deepEqual(await running, { recorded: 42 });
  assert.deepEqual(log, ['onRunStart#1', 'owner finished', 'onRunStart#2']);
  assert.equal(starts[0]!.runId, 'busy-1');
  assert.equal(starts[1]!.runId, 'busy-1');
  assert.equal(starts[0]!.ifRunning, 'wait', 'the default');
  assert.equal(starts[0]!.sync, false);
  assert.ok(starts[1]!.startedAt >= starts[0]!.startedAt);
  assert.equal(ends!.replayed, true);
  assert.equal(ends!.status, 'completed');
});

test('a wait can be followed by another wait, then resume: the run starts after the saved position', async () => {
  const log: string[] = [];
  let asked = 0;
  const owner: RunObserver = {
    onRunStart: () => {
      asked++;
      if (asked <= 2) return { wait: delay(5) };
      return { resume: { resumeAt: 1, context: { a: 'saved' } } };
    },
  };
  const out = await new PipelineAsync({ observers: [owner] }).setSteps(loggingSteps(log, ['a', 'b', 'c'])).run({}, { runId: 'r' });
  assert.equal(asked, 3);
  assert.deepEqual(log, ['step:b', 'step:c']);
  assert.deepEqual(out, { a: 'saved', b: true, c: true });
});

test('a wait stops the round of onRunStart and wins over an earlier decision; every observer is asked again', async () => {
  const calls: string[] = [];
  let round = 0;
  const first: RunObserver = { onRunStart: () => { calls.push(`first#${round}`); return { resume: { resumeAt: 1, context: { x: 1 } } }; } };
  const waiter: RunObserver = { onRunStart: () => { round++; calls.push(`waiter#${round}`); return round === 1 ? { wait: Promise.resolve() } : undefined; } };
  const last: RunObserver = { onRunStart: () => { calls.push(`last#${round}`); } };
  const log: string[] = [];
  const out = await new Pipeline({ observers: [first, waiter, last] }).setSteps(loggingSteps(log, ['a', 'b'])).run({}, { runId: 'w' });
  assert.deepEqual(calls, ['first#0', 'waiter#1', 'first#1', 'waiter#2', 'last#2'], 'observers after a wait are not told of a start that is not happening');
  assert.deepEqual(log, ['step:b'], 'the decision of the second round (resume) is taken');
  assert.deepEqual(out, { x: 1, b: true });
});

test('runMany waits too (it runs through run())', async () => {
  let asked = 0;
  const owner: RunObserver = { onRunStart: () => (asked++ === 0 ? { wait: delay(5) } : undefined) };
  const out = await new PipelineAsync({ observers: [owner] }).setSteps([(c: Context) => ({ n: c.n * 2 })]).runMany([{ n: 1 }, { n: 2 }], { concurrency: 2 });
  assert.deepEqual(out, [{ n: 2 }, { n: 4 }]);
  assert.equal(asked, 3);
});

test('aborting the signal during a wait rejects with WPIPE_ERR_PROCESS_CANCELLED; no onRunEnd, nothing runs', async () => {
  await noUnhandled(async () => {
    const log: string[] = [];
    const gate = deferred();
    let seenSignal: AbortSignal | undefined;
    let runEnds = 0;
    const owner: RunObserver = {
      onRunStart: (e) => { seenSignal = e.signal; log.push('onRunStart'); return { wait: gate.promise }; },
      onStepStart: () => { log.push('onStepStart'); },
      onBoundary: () => { log.push('onBoundary'); },
      onRunEnd: () => { runEnds++; },
    };
    const ac = new AbortController();
    const p = new Pipeline({ observers: [owner] }).setSteps(loggingSteps(log, ['a']));
    const running = p.run({}, { runId: 'r', signal: ac.signal });
    await delay(5);
    ac.abort(new Error('user gave up'));
    const e = await running.catch((x: unknown) => x) as ProcessError;
    assert.ok(e instanceof ProcessError);
    assert.equal(e.code, 'WPIPE_ERR_PROCESS_CANCELLED');
    assert.equal((e.cause as Error).message, 'user gave up');
    assert.equal(seenSignal, ac.signal, 'the observer gets the signal, to stop its own wait');
    assert.equal(runEnds, 0, 'a run that never started gets no onRunEnd (as with a signal aborted at start)');
    assert.deepEqual(log, ['onRunStart']);
    // The abandoned wait settling later (even rejecting) changes nothing and is not unhandled.
    gate.reject(new Error('owner died'));
    await delay(5);
    assert.deepEqual(log, ['onRunStart']);
  });
  // A signal already aborted at start: no hook at all, the same error.
  let asked = 0;
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(new Pipeline({ observers: [{ onRunStart: () => { asked++; } }] }).setSteps([() => undefined]).run({}, { signal: ac.signal }),
    (x: unknown) => x instanceof ProcessError && x.code === 'WPIPE_ERR_PROCESS_CANCELLED');
  assert.equal(asked, 0);
});

test('a rejected wait fails the run: a WpipeError as is, anything else as WPIPE_ERR_OBSERVER_FAILED; no onRunEnd', async () => {
  const owned = new WpipeError('WPIPE_ERR_STORAGE', 'database is locked');
  let runEnds = 0;
  const p1 = new Pipeline({ observers: [{ onRunStart: () => ({ wait: Promise.reject(owned) }), onRunEnd: () => { runEnds++; } }] })
    .setSteps([() => assert.fail('ran')]);
  await assert.rejects(p1.run({}, { runId: 'r' }), wrapping(owned));
  const plain = new Error('lost the owner');
  const p2 = new Pipeline({ observers: [{ onRunStart: () => ({ wait: Promise.reject(plain) }), onRunEnd: () => { runEnds++; } }] })
    .setSteps([() => assert.fail('ran')]);
  const e = await p2.run({}, { runId: 'r' }).catch((x: unknown) => x) as ProcessError;
  assert.ok(e instanceof ProcessError);
  assert.equal(e.code, 'WPIPE_ERR_OBSERVER_FAILED');
  assert.equal(e.errorCode, 504);
  assert.equal(e.cause, plain);
  assert.match(e.message, /onRunStart's wait failed: lost the owner/);
  assert.equal(runEnds, 0);
});

test('runSync cannot wait: a wait decision throws WPIPE_ERR_RUN_IN_PROGRESS before anything runs', async () => {
  await noUnhandled(async () => {
    const log: string[] = [];
    let runEnds = 0;
    const owner: RunObserver = {
      onRunStart: (e) => { log.push(`sync=${e.sync}`); return { wait: Promise.reject(new Error('never looked at')) }; },
      onRunEnd: () => { runEnds++; },
    };
    const p = new Pipeline({ pipelineName: 'orders', observers: [owner] }).setSteps(loggingSteps(log, ['a']));
    const e = (() => { try { p.runSync({}, { runId: 'order-7' }); } catch (x) { return x; } })() as WpipeError;
    assert.ok(e instanceof WpipeError);
    assert.equal(e.code, 'WPIPE_ERR_RUN_IN_PROGRESS');
    assert.equal(e.errorCode, 504);
    assert.match(e.message, /run id 'order-7' of pipeline 'orders' is being executed elsewhere/);
    assert.match(e.message, /runSync cannot wait/);
    assert.match(e.message, /await pipeline\.run\(\)/);
    assert.match(e.message, /ifRunning: 'fail'/);
    assert.deepEqual(log, ['sync=true']);
    assert.equal(runEnds, 0);
  });
});

test("ifRunning: 'fail' refuses a wait at once, in run() and runSync", async () => {
  const seen: string[] = [];
  const owner: RunObserver = { onRunStart: (e) => { seen.push(e.ifRunning); return { wait: new Promise(() => {}) }; } };
  const p = new Pipeline({ observers: [owner] }).setSteps([() => assert.fail('ran')]);
  await assert.rejects(p.run({}, { runId: 'r', ifRunning: 'fail' }), (x: unknown) =>
    x instanceof WpipeError && x.code === 'WPIPE_ERR_RUN_IN_PROGRESS' && /ifRunning is 'fail'/.test(x.message));
  assert.throws(() => p.runSync({}, { runId: 'r', ifRunning: 'fail' }), (x: unknown) =>
    x instanceof WpipeError && x.code === 'WPIPE_ERR_RUN_IN_PROGRESS' && /failed: runSync: .*ifRunning is 'fail'/.test(x.message));
  assert.deepEqual(seen, ['fail', 'fail']);
});

test('ifRunning reaches onRunStart (always set) and is validated like the other run options', async () => {
  const seen: string[] = [];
  const p = new Pipeline({ observers: [{ onRunStart: (e) => { seen.push(e.ifRunning); } }] }).setSteps([() => undefined]);
  await p.run();
  await p.run({}, { ifRunning: 'fail' });
  await p.run({}, { ifRunning: 'wait', runId: 'x' });
  p.runSync();
  p.runSync({}, { ifRunning: 'fail' });
  assert.deepEqual(seen, ['wait', 'fail', 'wait', 'wait', 'fail']);
  await assert.rejects(p.run({}, { ifRunning: 'never' } as never), (e: unknown) =>
    e instanceof RangeError && (e as { code?: string }).code === 'WPIPE_ERR_INVALID_OPTION'
    && e.message === `run: ifRunning must be 'wait' or 'fail', got "never"`);
  await assert.rejects(p.run({}, { ifRunning: true } as never), (e: unknown) =>
    e instanceof TypeError && /ifRunning must be 'wait' or 'fail', got boolean/.test(e.message));
  assert.throws(() => p.runSync({}, { ifRunning: 'later' } as never), (e: unknown) => e instanceof RangeError && /^runSync: ifRunning/.test(e.message));
  await assert.rejects(p.run({}, { ifrunning: 'fail' } as never), /unknown option 'ifrunning' \(did you mean ifRunning\?\)/);
  await assert.rejects(p.run({}, { onConflict: 'fail' } as never), /unknown option 'onConflict' \(did you mean ifRunning\?\)/);
  await assert.rejects(p.run({}, { whenBusy: 'wait' } as never), /did you mean ifRunning\?/);
  // The older hints still work.
  await assert.rejects(p.run({}, { runID: 'x' } as never), /unknown option 'runID' \(did you mean runId\?\)/);
  await assert.rejects(p.run({}, { abortSignal: new AbortController().signal } as never), /did you mean signal\?/);
  assert.deepEqual(seen.length, 5, 'rejected options run nothing');
});

test('a malformed onRunStart answer is an observer failure that says what was expected', async () => {
  const p = new Pipeline({ observers: [{ onRunStart: (() => ({ wiat: Promise.resolve() })) as never }] }).setSteps([() => assert.fail('ran')]);
  await assert.rejects(p.run(), (e: unknown) => e instanceof ProcessError && e.code === 'WPIPE_ERR_OBSERVER_FAILED' && /\{ wait: promise \}/.test(e.message));
  const q = new Pipeline({ observers: [{ onRunStart: (async () => undefined) as never }] }).setSteps([() => assert.fail('ran')]);
  await assert.rejects(q.run(), (e: unknown) => e instanceof ProcessError && /returned a promise; to make the run wait, return \{ wait: promise \}/.test(e.message));
});

// ---------------------------------------------------------------- hooks that return promises

test("onStepStart's promise holds the step's code back until it settles; onBoundary's holds the next step", async () => {
  const log: string[] = [];
  const observer: RunObserver = {
    onStepStart: async (e) => { log.push(`onStepStart:${e.name}`); await delay(5); log.push(`durable:${e.name}`); },
    onStepEnd: (e) => { log.push(`onStepEnd:${e.name}`); },
    onBoundary: async (e) => { log.push(`onBoundary:${e.position}`); await delay(5); log.push(`synced:${e.position}`); },
  };
  const out = await new Pipeline({ observers: [observer] }).setSteps(loggingSteps(log, ['a', 'b'])).run();
  assert.deepEqual(out, { a: true, b: true });
  assert.deepEqual(log, [
    'onBoundary:-1', 'synced:-1',
    'onStepStart:a', 'durable:a', 'step:a', 'onStepEnd:a', 'onBoundary:0', 'synced:0',
    'onStepStart:b', 'durable:b', 'step:b', 'onStepEnd:b', 'onBoundary:1', 'synced:1',
  ]);
});

test('every observer that returns a promise is awaited; hooks returning plain values are fine', async () => {
  const log: string[] = [];
  const slow: RunObserver = { onStepStart: (e) => delay(10).then(() => { log.push(`slow:${e.name}`); }) };
  const fast: RunObserver = { onStepStart: (e) => delay(1).then(() => { log.push(`fast:${e.name}`); }) };
  const returnsNumber: RunObserver = { onStepStart: ((e: { name: string }) => log.push(`sync:${e.name}`)) as never };
  await new PipelineAsync({ observers: [slow, returnsNumber, fast] }).setSteps(loggingSteps(log, ['a'])).run();
  assert.deepEqual(log, ['sync:a', 'fast:a', 'slow:a', 'step:a']);
});

test('a rejected onStepStart promise fails the run with that error, before the step runs, continueOnError or not', async () => {
  await noUnhandled(async () => {
    for (const continueOnError of [false, true]) {
      const log: string[] = [];
      const storage = new WpipeError('WPIPE_ERR_STORAGE', 'disk I/O error');
      let end: RunEndEvent | undefined;
      const observer: RunObserver = {
        onStepStart: async (e) => { if (e.name === 'b') throw storage; },
        onRunEnd: (e) => { end = e; },
      };
      const p = new Pipeline({ continueOnError, observers: [observer] }).setSteps(loggingSteps(log, ['a', 'b', 'c']));
      await assert.rejects(p.run(), wrapping(storage));
      assert.deepEqual(log, ['step:a'], `continueOnError: ${continueOnError}`);
      assert.equal(end!.status, 'error');
      assert.ok(wrapping(storage)(end!.error), 'onRunEnd sees what run() rejects with');
    }
    // A plain rejection becomes WPIPE_ERR_OBSERVER_FAILED, as a plain throw does.
    const plain = new Error('ENOSPC');
    const p = new Pipeline({ observers: [{ onStepStart: () => Promise.reject(plain) }] }).setSteps([() => assert.fail('ran')]);
    await assert.rejects(p.run(), (x: unknown) => x instanceof ProcessError && x.code === 'WPIPE_ERR_OBSERVER_FAILED' && x.cause === plain
      && /run observer onStepStart failed: ENOSPC/.test(x.message));
  });
});

test('the first failure in observer order wins, after every returned promise has settled', async () => {
  await noUnhandled(async () => {
    const settled: string[] = [];
    const first = new WpipeError('WPIPE_ERR_STORAGE', 'first');
    const o1: RunObserver = { onBoundary: () => delay(10).then(() => { settled.push('o1'); throw first; }) };
    const o2: RunObserver = { onBoundary: () => { throw new Error('second'); } };
    const o3: RunObserver = { onBoundary: () => delay(15).then(() => { settled.push('o3'); }) };
    const p = new Pipeline({ observers: [o1, o2, o3] }).setSteps([() => assert.fail('ran')]);
    await assert.rejects(p.run(), wrapping(first));
    assert.deepEqual(settled, ['o1', 'o3']);
  });
});

test('cancelling the run while an onStepStart promise is pending: the step does not run and ends cancelled', async () => {
  const log: string[] = [];
  const ac = new AbortController();
  const observer: RunObserver = {
    onStepStart: async () => { ac.abort(); await delay(5); },
    onStepEnd: (e) => { log.push(`onStepEnd:${e.name}:${e.status}`); },
  };
  const p = new Pipeline({ observers: [observer] }).setSteps(loggingSteps(log, ['a']));
  await assert.rejects(p.run({}, { signal: ac.signal }), (x: unknown) => x instanceof ProcessError && x.code === 'WPIPE_ERR_PROCESS_CANCELLED');
  assert.deepEqual(log, ['onStepEnd:a:cancelled']);
});

test("onRunEnd's promise is awaited before run() settles, on success and on failure", async () => {
  const log: string[] = [];
  const observer: RunObserver = { onRunEnd: async (e) => { await delay(10); log.push(`recorded:${e.status}`); } };
  const ok = new Pipeline({ observers: [observer] }).setSteps([() => ({ a: 1 })]);
  assert.deepEqual(await ok.run(), { a: 1 });
  assert.deepEqual(log, ['recorded:completed']);
  const bad = new Pipeline({ observers: [observer] }).setSteps([step({ name: 'boom' })(() => { throw new Error('x'); })]);
  await assert.rejects(bad.run(), (x: unknown) => x instanceof ProcessError && log.at(-1) === 'recorded:error');
  // A replayed run too.
  const replay = new Pipeline({ observers: [{ onRunStart: () => ({ completed: { result: { r: 1 } } }) }, observer] }).setSteps([() => assert.fail('ran')]);
  assert.deepEqual(await replay.run(), { r: 1 });
  assert.equal(log.at(-1), 'recorded:completed');
});

test('a rejected onRunEnd promise fails a successful run; after a failed run it is logged and the run error wins', async () => {
  const storage = new WpipeError('WPIPE_ERR_STORAGE', 'could not finish the run row');
  const observer: RunObserver = { onRunEnd: () => Promise.reject(storage) };
  await assert.rejects(new Pipeline({ observers: [observer] }).setSteps([() => undefined]).run(), wrapping(storage));
  const logged: string[] = [];
  const logger = { info: () => {}, debug: () => {}, warn: () => {}, error: (m: unknown) => { logged.push(String(m)); } };
  const p = new Pipeline({ observers: [observer], logger: logger as never }).setSteps([step({ name: 'boom' })(() => { throw new Error('x'); })]);
  await assert.rejects(p.run(), (x: unknown) => x instanceof ProcessError && (x.cause as TaskError).stepName === 'boom');
  assert.equal(logged.length, 1);
  assert.match(logged[0]!, /onRunEnd failed while reporting a failed run: could not finish the run row/);
});

test('runSync: a hook that returns a promise fails the run with WPIPE_ERR_OBSERVER_FAILED', async () => {
  await noUnhandled(async () => {
    for (const hook of ['onStepStart', 'onStepEnd', 'onBoundary', 'onRunEnd'] as const) {
      const log: string[] = [];
      const observer: RunObserver = { [hook]: () => Promise.reject(new Error('async storage')) };
      const p = new Pipeline({ observers: [observer] }).setSteps(loggingSteps(log, ['a', 'b']));
      const e = (() => { try { p.runSync(); } catch (x) { return x; } })() as ProcessError;
      assert.ok(e instanceof WpipeError, hook);
      assert.equal(e.code, 'WPIPE_ERR_OBSERVER_FAILED', hook);
      assert.match(e.message, new RegExp(`run observer ${hook} returned a promise to a synchronous run`), hook);
      assert.match(e.message, /event\.sync|sync: true/, hook);
      // onRunEnd comes after the last step; every other hook stops the run where it is.
      assert.equal(log.includes('step:b'), hook === 'onRunEnd', hook);
    }
  });
});

// ---------------------------------------------------------------- checkpoints that cannot be saved

function serializeError(keyPath: string): WpipeError {
  return new WpipeError('WPIPE_ERR_CHECKPOINT_SERIALIZE', `${keyPath} is a function, which a checkpoint cannot carry`, { details: { keyPath } });
}

test('a checkpoint that cannot be serialized fails the step that produced it, even under continueOnError', async () => {
  for (const continueOnError of [false, true]) {
    for (const mode of ['throw', 'reject', 'sync'] as const) {
      const log: string[] = [];
      const original = serializeError('handler');
      let end: RunEndEvent | undefined;
      const observer: RunObserver = {
        onBoundary: (e) => {
          if (e.position !== 1) return undefined;
          if (mode === 'reject') return Promise.reject(original);
          throw original;
        },
        onRunEnd: (e) => { end = e; },
      };
      const p = new Pipeline({ pipelineName: 'orders', continueOnError, observers: [observer] }).setSteps([
        step({ name: 'load' })(() => { log.push('load'); return { rows: 1 }; }),
        step({ name: 'make', version: 'v3', retryCount: 1, retryDelay: 0 })((_c: Context, info) => {
          log.push(`make#${info.attempt}`);
          if (info.attempt === 1) throw new Error('flaky');
          return { handler: () => 1 };
        }),
        step({ name: 'after' })(() => { log.push('after'); }),
      ]);
      const label = `continueOnError ${continueOnError}, ${mode}`;
      let e: ProcessError;
      if (mode === 'sync') e = (() => { try { p.runSync(); } catch (x) { return x; } })() as ProcessError;
      else e = await p.run().catch((x: unknown) => x) as ProcessError;
      assert.ok(e instanceof ProcessError, label);
      assert.equal(e.errorCode, 502, label);
      assert.equal(e.code, 'WPIPE_ERR_PROCESS_FAILED', label);
      const te = e.cause as TaskError;
      assert.ok(te instanceof TaskError, label);
      assert.equal(te.code, 'WPIPE_ERR_CHECKPOINT_SERIALIZE', label);
      assert.equal(te.details.stepName, 'make', label);
      assert.equal(te.details.version, 'v3', label);
      assert.equal(te.details.attempts, 2, label);
      assert.equal(te.cause, original, label);
      assert.match(te.message, /step 'make' \(v3\).*cannot be saved in a checkpoint: handler is a function/, label);
      assert.match(e.message, /handler is a function/, label);
      assert.deepEqual(log, ['load', 'make#1', 'make#2'], `${label}: the run stopped`);
      assert.equal(end!.status, 'error', label);
      assert.equal(end!.errorStep, 'make', label);
      assert.equal(end!.error, e, label);
      assert.equal(end!.context._errors, undefined, `${label}: not recorded as a continueOnError failure`);
    }
  }
});

test('an input that cannot be serialized (position -1) fails the run itself, with onRunEnd', async () => {
  const original = serializeError('cb');
  let end: RunEndEvent | undefined;
  const observer: RunObserver = {
    onBoundary: (e) => { if (e.position === -1) throw original; },
    onRunEnd: (e) => { end = e; },
  };
  const p = new Pipeline({ pipelineName: 'orders', continueOnError: true, observers: [observer] }).setSteps([() => assert.fail('ran')]);
  const e = await p.run({ cb: () => 1 }, { runId: 'r-1' }).catch((x: unknown) => x) as ProcessError;
  assert.ok(e instanceof ProcessError);
  assert.equal(e.code, 'WPIPE_ERR_CHECKPOINT_SERIALIZE');
  assert.equal(e.cause, original);
  assert.match(e.message, /pipeline 'orders' run r-1 failed: its input cannot be saved in a checkpoint: cb is a function/);
  assert.equal(end!.status, 'error');
  assert.equal(end!.error, e);
  assert.equal(end!.errorStep, undefined, 'no step ran');
  // runSync alike.
  assert.throws(() => p.runSync({ cb: () => 1 }), (x: unknown) => x instanceof ProcessError && x.code === 'WPIPE_ERR_CHECKPOINT_SERIALIZE' && x.cause === original);
});

test('other onBoundary failures keep their meaning (a WpipeError as is, else WPIPE_ERR_OBSERVER_FAILED)', async () => {
  const storage = new WpipeError('WPIPE_ERR_STORAGE', 'database is locked');
  const p = new Pipeline({ observers: [{ onBoundary: (e) => { if (e.position === 0) throw storage; } }] }).setSteps([() => undefined, () => assert.fail('ran')]);
  await assert.rejects(p.run(), wrapping(storage));
});
