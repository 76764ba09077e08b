// The executor interface: the one place worker threads and processes will plug in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pipeline, PipelineAsync, Parallel, step, type Context } from '../src/engine/index.js';
import {
  registerExecutor, isExecutorAvailable, createExecutor, inlineExecutor, chooseExecutorKind, type StepCall,
} from '../src/parallel/index.js';
import { WpipeError } from '../src/errors.js';

// Importing src/parallel registers the real worker executors (test/parallel-*.test.ts cover them);
// this file checks the contract and the placement rule with fakes, from an empty registry.
registerExecutor('threads', null);
registerExecutor('processes', null);

test('the inline executor calls the step in this thread', () => {
  const call = { fn: (c: Context) => ({ got: c.x }), context: { x: 1 }, info: {} } as unknown as StepCall;
  assert.deepEqual(inlineExecutor.call(call), { got: 1 });
  assert.equal(createExecutor('inline', { maxWorkers: 1 }), inlineExecutor);
  assert.equal(isExecutorAvailable('inline'), true);
  assert.throws(() => createExecutor('threads', { maxWorkers: 1 }), (e: unknown) => (e as WpipeError).code === 'WPIPE_ERR_EXECUTOR_UNAVAILABLE');
  assert.throws(() => registerExecutor('inline', null), TypeError);
  assert.throws(() => registerExecutor('gpu' as never, () => inlineExecutor), TypeError);
});

test('the placement rule: forced, processes, threads for addressable steps in Pipeline only', () => {
  const base = { forced: undefined, useProcesses: false, addressable: true, variant: 'pipeline' as const, where: 'steps[0]' };
  assert.equal(chooseExecutorKind(base), 'inline', 'threads not registered: inline');
  registerExecutor('threads', () => inlineExecutor);
  registerExecutor('processes', () => inlineExecutor);
  try {
    assert.equal(chooseExecutorKind(base), 'threads');
    assert.equal(chooseExecutorKind({ ...base, variant: 'async' }), 'inline');
    assert.equal(chooseExecutorKind({ ...base, addressable: false }), 'inline');
    assert.equal(chooseExecutorKind({ ...base, useProcesses: true }), 'processes');
    assert.equal(chooseExecutorKind({ ...base, forced: 'inline' }), 'inline');
    assert.throws(() => chooseExecutorKind({ ...base, addressable: false, forced: 'threads' }), (e: unknown) => (e as WpipeError).code === 'WPIPE_ERR_TASK_NOT_ADDRESSABLE');
  } finally {
    registerExecutor('threads', null);
    registerExecutor('processes', null);
  }
});

test('a Parallel step placed on a registered executor goes through it, with its module reference', async () => {
  const calls: StepCall[] = [];
  let closed = 0;
  let made = 0;
  registerExecutor('threads', (o) => {
    made++;
    assert.equal(o.maxWorkers, 2);
    return {
      kind: 'threads',
      call: (c) => { calls.push(c); return Promise.resolve({ fromWorker: c.moduleRef!.exportName, attempt: c.info.attempt }); },
      close: async () => { closed++; },
    };
  });
  try {
    const ref = { moduleUrl: 'file:///srv/steps.js', exportName: 'enrich' };
    const enrich = step({ name: 'enrich', module: ref })(() => assert.fail('must run in the executor'));
    const local = (): Context => ({ local: true });
    const p = new Pipeline().setSteps([new Parallel({ steps: [enrich, local], maxWorkers: 2 })]);
    assert.throws(() => p.runSync(), (e: unknown) => (e as WpipeError).code === 'WPIPE_ERR_RUN_SYNC_UNSUPPORTED');
    assert.deepEqual(await p.run({ a: 1 }), { a: 1, fromWorker: 'enrich', attempt: 1, local: true });
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]!.moduleRef, ref);
    assert.equal(calls[0]!.context.a, 1);
    assert.ok(calls[0]!.signal instanceof AbortSignal);
    await p.run({ a: 2 });
    assert.equal(made, 1, 'one executor per pipeline, created lazily and reused');
    await p.close();
    assert.equal(closed, 1);
    // PipelineAsync keeps the same steps in-process unless forced.
    const q = new PipelineAsync().setSteps([new Parallel({ steps: [step({ module: ref })(() => ({ inline: true }))] })]);
    assert.deepEqual(await q.run(), { inline: true });
  } finally {
    registerExecutor('threads', null);
  }
});
