// step({ executor, memoryLimitMb }): one addressable step placed in a worker, wherever it sits, with
// fake executors registered through registerExecutor (deterministic: no real thread or process).
//
// Each test registers its fakes and puts the registry back as it was after (restoreExecutor: the
// real thread and process executors, which the engine brings itself).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Pipeline, PipelineAsync, Parallel, Condition, For, Background, step, AutoRegister, WpipeError, ProcessError, TaskError,
  type Context, type StepStartEvent,
} from '../src/index.js';
import { registerExecutor, isExecutorAvailable, type ExecutorKind, type StepCall } from '../src/parallel/index.js';
import { restoreExecutor } from './helpers/executor-start.js';

const ref = (exportName: string) => ({ moduleUrl: 'file:///srv/steps.js', exportName });

/** Registers fake executors that run the step in this thread and record each call with its kind. */
async function withFakes(kinds: readonly ExecutorKind[], body: (calls: Array<{ kind: ExecutorKind; call: StepCall }>) => Promise<void>): Promise<void> {
  const calls: Array<{ kind: ExecutorKind; call: StepCall }> = [];
  for (const kind of kinds) {
    registerExecutor(kind, () => ({
      kind,
      call: (c) => {
        calls.push({ kind, call: c });
        return Promise.resolve().then(() => c.fn(c.context, c.info as never));
      },
      close: async () => {},
    }));
  }
  try {
    await body(calls);
  } finally {
    for (const kind of kinds) restoreExecutor(kind);
  }
}

const invalid = (kind: typeof TypeError | typeof RangeError, message: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof kind, String(e));
  assert.equal((e as { code?: string }).code, 'WPIPE_ERR_INVALID_OPTION');
  assert.match((e as Error).message, message);
  return true;
};

const codeIs = (code: string, message?: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof WpipeError, String(e));
  assert.equal(e.code, code);
  if (message) assert.match(e.message, message);
  return true;
};

test('step() validates executor and memoryLimitMb, and reads them back on .meta', () => {
  const fn = (): Context => ({});
  assert.throws(() => step({ executor: 'thread' as never }), invalid(RangeError,
    /^step\(\): executor must be one of 'inline', 'threads', 'processes', 'bullmq', got 'thread' \(did you mean 'threads'\?\)$/));
  assert.throws(() => step({ executor: 'process' as never }), invalid(RangeError, /got 'process' \(did you mean 'processes'\?\)$/));
  assert.throws(() => step({ executor: 'gpu' as never }), invalid(RangeError, /got 'gpu'$/));
  assert.throws(() => step({ executor: 2 as never }), invalid(TypeError, /executor must be one of 'inline', 'threads', 'processes', 'bullmq', got number$/));
  assert.throws(() => step({ executr: 'threads' } as never), invalid(TypeError, /unknown option 'executr' \(did you mean executor\?\)/));
  assert.throws(() => step({ memoryLimitMb: 256 }), invalid(TypeError,
    /^step\(\): memoryLimitMb caps the worker running the step; it needs executor: 'processes' \(caps the child process\) or 'threads' \(caps the thread's JS heap\)$/));
  assert.throws(() => step({ executor: 'inline', memoryLimitMb: 256 }), invalid(TypeError, /or 'threads' \(caps the thread's JS heap\), got executor: 'inline'$/));
  assert.equal(step({ executor: 'threads', memoryLimitMb: 256 })(fn).meta.memoryLimitMb, 256);
  assert.throws(() => step({ executor: 'processes', memoryLimitMb: 0 }), invalid(RangeError, /memoryLimitMb must be > 0, got 0/));
  assert.throws(() => step({ executor: 'processes', memoryLimitMb: '1g' as never }), invalid(TypeError, /memoryLimitMb must be a number, got string/));
  const s = step({ executor: 'processes', memoryLimitMb: 256 })(fn);
  assert.equal(s.meta.executor, 'processes');
  assert.equal(s.meta.memoryLimitMb, 256);
  assert.equal(step()(fn).meta.executor, undefined);
  // A closure may ask for a worker at step(): AutoRegister may still give it a module reference.
  assert.doesNotThrow(() => step({ executor: 'threads' })(fn));
});

test('a top-level addressable step with executor runs through that executor, with its reference and cap', async () => {
  await withFakes(['threads', 'processes'], async (calls) => {
    const crunch = step({ name: 'crunch', executor: 'threads', module: ref('crunch') })((ctx: Context) => ({ sq: (ctx.n as number) ** 2 }));
    const capped = step({ name: 'capped', executor: 'processes', memoryLimitMb: 256, module: ref('capped') })((ctx: Context) => ({ m: (ctx.sq as number) + 1 }));
    const local = step({ name: 'local' })((ctx: Context) => ({ l: ctx.m }));
    const starts: StepStartEvent[] = [];
    const pipe = new Pipeline({ observers: [{ onStepStart: (e) => { starts.push(e); } }] }).setSteps([crunch, capped, local]);
    assert.deepEqual(await pipe.run({ n: 3 }), { n: 3, sq: 9, m: 10, l: 10 });
    assert.deepEqual(calls.map((c) => [c.kind, c.call.moduleRef?.exportName, c.call.memoryLimitMb]), [
      ['threads', 'crunch', undefined],
      ['processes', 'capped', 256],
    ]);
    assert.ok(calls[0]!.call.signal instanceof AbortSignal);
    assert.equal(calls[0]!.call.info.stepName, 'crunch');
    assert.deepEqual(starts.map((e) => [e.name, e.executor]), [['crunch', 'threads'], ['capped', 'processes'], ['local', 'inline']]);
    await pipe.close();
  });
});

test('runSync refuses a pipeline with a worker step, before running anything', async () => {
  await withFakes(['threads'], async (calls) => {
    let ran = 0;
    const first = (): Context => { ran++; return {}; };
    const crunch = step({ name: 'crunch', executor: 'threads', module: ref('crunch') })(() => ({}));
    const pipe = new Pipeline({ pipelineName: 'sync' }).setSteps([first, new Condition({ expression: 'True', branchTrue: [crunch] })]);
    assert.throws(() => pipe.runSync(), codeIs('WPIPE_ERR_RUN_SYNC_UNSUPPORTED',
      /^runSync cannot run pipeline 'sync': step 'crunch' at steps\[1\]\.branchTrue\[0\] runs in the 'threads' executor; use await pipeline\.run\(\) instead$/));
    assert.equal(ran, 0);
    assert.equal(calls.length, 0);
  });
});

test('inside Condition, For and Background a step keeps its own executor', async () => {
  await withFakes(['threads'], async (calls) => {
    const inc = step({ name: 'inc', executor: 'threads', module: ref('inc') })((ctx: Context) => ({ n: (ctx.n as number) + 1 }));
    const note = step({ name: 'note', executor: 'threads', module: ref('note') })(() => ({ noted: true }));
    const pipe = new Pipeline().setSteps([
      new Condition({ expression: 'n == 0', branchTrue: [inc] }),
      new For({ iterations: 2, steps: [inc] }),
      new Background(note),
    ]);
    assert.deepEqual(await pipe.run({ n: 0 }), { n: 3, _loop_iteration: 1 });
    await pipe.close();
    assert.deepEqual(calls.map((c) => c.call.moduleRef!.exportName).sort(), ['inc', 'inc', 'inc', 'note']);
  });
});

test('a closure asking for a worker is refused at setSteps with the path, top level or nested', () => {
  const closure = step({ name: 'crunch', executor: 'threads' })(() => ({}));
  for (const [items, path] of [
    [[closure], 'steps[0]'],
    [[new For({ iterations: 1, steps: [() => ({}), closure] })], 'steps[0].steps[1]'],
    [[new Background(closure)], 'steps[0].step'],
  ] as const) {
    assert.throws(() => new Pipeline().setSteps(items as never), codeIs('WPIPE_ERR_TASK_NOT_ADDRESSABLE',
      new RegExp(`^${path.replace(/[.[\]]/g, '\\$&')} \\(step 'crunch'\\) is a closure and cannot run in the 'threads' executor: export it from a module and register it with AutoRegister`)));
  }
});

test("placement precedence: a Parallel's executor or useProcesses wins; a step's executor wins over the default placement", async () => {
  await withFakes(['threads', 'processes'], async (calls) => {
    const threaded = step({ name: 'threaded', executor: 'threads', module: ref('threaded') })(() => ({ t: 1 }));
    const pinnedInline = step({ name: 'pinnedInline', executor: 'inline', module: ref('pinnedInline') })(() => ({ i: 1 }));
    const plain = step({ name: 'plain', module: ref('plain') })(() => ({ p: 1 }));
    const kinds = async (pipe: Pipeline): Promise<Array<[string, string | undefined]>> => {
      const seen: Array<[string, string | undefined]> = [];
      pipe.observe({ onStepStart: (e) => { if (e.kind === 'task') seen.push([e.name, e.executor]); } });
      await pipe.run({});
      await pipe.close();
      return seen;
    };
    // Default placement in Pipeline: addressable → threads; a step's 'inline' keeps it in-process.
    assert.deepEqual(await kinds(new Pipeline().setSteps([new Parallel({ steps: [plain, pinnedInline, threaded] })])),
      [['plain', 'threads'], ['pinnedInline', 'inline'], ['threaded', 'threads']]);
    // PipelineAsync keeps branches in-process by default, but a step's own executor wins.
    assert.deepEqual(await kinds(new PipelineAsync().setSteps([new Parallel({ steps: [plain, threaded] })])),
      [['plain', 'inline'], ['threaded', 'threads']]);
    // The block's explicit choice wins over the step's.
    assert.deepEqual(await kinds(new Pipeline().setSteps([new Parallel({ steps: [threaded, plain], executor: 'inline' })])),
      [['threaded', 'inline'], ['plain', 'inline']]);
    assert.deepEqual(await kinds(new Pipeline().setSteps([new Parallel({ steps: [threaded, pinnedInline], useProcesses: true })])),
      [['threaded', 'processes'], ['pinnedInline', 'processes']]);
    assert.ok(calls.length > 0);
  });
});

test("memory caps: a step's own cap wins over its Parallel's; a forced placement that would drop it is refused", async () => {
  await withFakes(['threads', 'processes'], async (calls) => {
    const own = step({ name: 'own', executor: 'processes', memoryLimitMb: 256, module: ref('own') })(() => ({}));
    const inherits = step({ name: 'inherits', module: ref('inherits') })(() => ({}));
    const pipe = new Pipeline().setSteps([new Parallel({ steps: [own, inherits], useProcesses: true, memoryLimitMb: 512 })]);
    await pipe.run({});
    await pipe.close();
    assert.deepEqual(calls.map((c) => [c.call.moduleRef!.exportName, c.kind, c.call.memoryLimitMb]), [
      ['own', 'processes', 256],
      ['inherits', 'processes', 512],
    ]);
    assert.throws(() => new Pipeline().setSteps([new Parallel({ steps: [inherits, own], executor: 'inline' })]),
      codeIs('WPIPE_ERR_INVALID_STEP',
        /^steps\[0\]\.steps\[1\] \(step 'own'\) has memoryLimitMb 256, which caps a worker, but its Parallel block forces executor 'inline': remove the block's executor or the step's memoryLimitMb$/));
    // Forced onto threads, the step's own cap goes with it (a cap on the thread's heap).
    calls.length = 0;
    const onThreads = new Pipeline().setSteps([new Parallel({ steps: [inherits, own], executor: 'threads' })]);
    await onThreads.run({});
    await onThreads.close();
    assert.deepEqual(calls.map((c) => [c.call.moduleRef!.exportName, c.kind, c.call.memoryLimitMb]), [['inherits', 'threads', undefined], ['own', 'threads', 256]]);
  });
});

test('a worker step past its timeout fails with WPIPE_ERR_TASK_TIMEOUT and the executor sees its signal abort', async () => {
  const aborted: unknown[] = [];
  registerExecutor('threads', () => ({
    kind: 'threads',
    // A step that never settles on its own: only the signal ends it (a real executor terminates the worker).
    call: (c) => new Promise((_, reject) => c.signal.addEventListener('abort', () => { aborted.push(c.signal.reason); reject(c.signal.reason); })),
    close: async () => {},
  }));
  try {
    const hang = step({ name: 'hang', executor: 'threads', timeout: 0.05, retryCount: 1, retryDelay: 0, module: ref('hang') })(() => ({}));
    const pipe = new Pipeline().setSteps([hang]);
    const err = await pipe.run({}).then(() => assert.fail('must time out'), (e: unknown) => e);
    assert.ok(err instanceof ProcessError);
    const task = err.cause as TaskError;
    assert.ok(task instanceof TaskError);
    assert.equal(task.stepName, 'hang');
    assert.equal(task.code, 'WPIPE_ERR_TASK_TIMEOUT');
    assert.match(task.message, /^step 'hang' \(v1\.0\) failed after 2 attempts: timed out after 0\.05 s$/);
    assert.equal(aborted.length, 2, 'both attempts were aborted');
    await pipe.close();
  } finally {
    restoreExecutor('threads');
  }
});

test("a worker's start-up does not count against the deadline: it runs from the executor's onStarted", async () => {
  // A fake worker executor that takes 300 ms to "start" (a new thread or process under tsx takes
  // 0.3–1.5 s), then runs a 30 ms step. The step's timeout is 0.15 s: counted from the call it would
  // fail, counted from the start it passes. A second step hangs after its start: it still times out.
  let starts = 0;
  registerExecutor('processes', () => ({
    kind: 'processes',
    reportsStart: true,
    call: (c) => new Promise((resolve, reject) => {
      c.signal.addEventListener('abort', () => reject(c.signal.reason), { once: true });
      setTimeout(() => {
        starts++;
        c.onStarted?.();
        if (c.info.stepName === 'hang') return; // never settles: only the deadline ends it
        setTimeout(() => resolve(c.fn(c.context, c.info as never)), 30);
      }, 300);
    }),
    close: async () => {},
  }));
  try {
    const quick = step({ name: 'quick', executor: 'processes', timeout: 0.15, module: ref('quick') })(() => ({ quick: true }));
    const pipe = new Pipeline().setSteps([quick]);
    assert.deepEqual(await pipe.run({}), { quick: true });
    const hang = step({ name: 'hang', executor: 'processes', timeout: 0.15, module: ref('hang') })(() => ({}));
    const pipe2 = new Pipeline().setSteps([hang]);
    const err = await pipe2.run({}).then(() => assert.fail('must time out'), (e: unknown) => e);
    assert.equal(((err as ProcessError).cause as TaskError).code, 'WPIPE_ERR_TASK_TIMEOUT');
    assert.equal(starts, 2);
    await pipe.close();
    await pipe2.close();
  } finally {
    restoreExecutor('processes');
  }
});

test('an executor that does not report starts keeps the deadline from the call', async () => {
  registerExecutor('processes', () => ({
    kind: 'processes',
    // no reportsStart: onStarted is not offered, and the 300 ms "start-up" counts
    call: (c) => new Promise((resolve, reject) => {
      assert.equal(c.onStarted, undefined);
      c.signal.addEventListener('abort', () => reject(c.signal.reason), { once: true });
      setTimeout(() => resolve(c.fn(c.context, c.info as never)), 300);
    }),
    close: async () => {},
  }));
  try {
    const slow = step({ name: 'slow', executor: 'processes', timeout: 0.15, module: ref('slow') })(() => ({}));
    const pipe = new Pipeline().setSteps([slow]);
    const err = await pipe.run({}).then(() => assert.fail('must time out'), (e: unknown) => e);
    assert.equal(((err as ProcessError).cause as TaskError).code, 'WPIPE_ERR_TASK_TIMEOUT');
    await pipe.close();
  } finally {
    restoreExecutor('processes');
  }
});

test('AutoRegister + step({ executor }): a registered module step runs in its worker with its module reference', async () => {
  await withFakes(['threads', 'processes'], async (calls) => {
    const url = new URL('./fixtures/autoregister/worker-steps.ts', import.meta.url);
    const pipe = await AutoRegister.registerAll(new Pipeline(), url);
    assert.deepEqual(await pipe.run({ n: 4 }), { n: 4, sum: 6, crunchedBy: 'crunch', capped: 5, enriched: 4 });
    assert.deepEqual(calls.map((c) => [c.kind, c.call.moduleRef, c.call.memoryLimitMb]), [
      ['threads', { moduleUrl: url.href, exportName: 'crunch' }, undefined],
      ['processes', { moduleUrl: url.href, exportName: 'capped' }, 256],
    ]);
    await pipe.close();
  });
  // The same steps given directly (no module reference) are refused, with the hint to use AutoRegister.
  const { crunch } = await import('./fixtures/autoregister/worker-steps.js');
  await withFakes(['threads'], async () => {
    assert.throws(() => new Pipeline().setSteps([crunch]), codeIs('WPIPE_ERR_TASK_NOT_ADDRESSABLE', /register it with AutoRegister/));
  });
});

test('a worker executor that is not available is a clear error at setSteps', () => {
  assert.equal(isExecutorAvailable('processes'), true, 'the engine brings the process executor itself');
  registerExecutor('processes', null);
  try {
    const capped = step({ name: 'capped', executor: 'processes', module: ref('capped') })(() => ({}));
    assert.throws(() => new Pipeline().setSteps([capped]), codeIs('WPIPE_ERR_EXECUTOR_UNAVAILABLE', /the 'processes' executor is not available/));
  } finally {
    restoreExecutor('processes');
  }
});

test("a nested pipeline's own executor (loadPipeline's queue) runs its steps, and the outer pipeline's close() closes it too", async () => {
  const made: Array<{ closed: number }> = [];
  const inner = new Pipeline({ pipelineName: 'inner' });
  inner._provideExecutor('bullmq', () => {
    const state = { closed: 0 };
    made.push(state);
    return {
      kind: 'bullmq',
      call: (c: StepCall) => Promise.resolve().then(() => c.fn(c.context, c.info as never)),
      close: async () => { state.closed++; },
    };
  });
  const remote = step({ name: 'remote', executor: 'bullmq', module: ref('remote') })((ctx: Context) => ({ n: (ctx.n as number) + 1 }));
  inner.setSteps([remote]);
  const outer = new Pipeline({ pipelineName: 'outer' }).setSteps([inner]);
  assert.equal(isExecutorAvailable('bullmq'), false, 'nothing registered process-wide');
  assert.deepEqual(await outer.run({ n: 1 }), { n: 2 });
  assert.equal(made.length, 1, "the inner pipeline's own executor ran the step");
  await outer.close();
  assert.equal(made[0]!.closed, 1, "the outer pipeline's close() closed the executor its run used");
  // Made again at the next use, and closed by whichever pipeline ran it.
  assert.deepEqual(await inner.run({ n: 5 }), { n: 6 });
  assert.equal(made.length, 2);
  await inner.close();
  assert.equal(made[1]!.closed, 1);
  await outer.close();
  assert.equal(made[0]!.closed, 1, 'closed once');
});
