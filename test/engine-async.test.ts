// PipelineAsync: the same API, cooperative between steps, runMany with bounded concurrency.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { Pipeline, PipelineAsync, Condition, For, Parallel, step, ERRORS_KEY, type Context, type StepFailure } from '../src/engine/index.js';
import { ProcessError, TaskError } from '../src/errors.js';

test('PipelineAsync runs async and sync steps like Pipeline', async () => {
  const p = new PipelineAsync().setSteps([async (c: Context) => ({ n: c.n + 1 }), (c: Context) => ({ n: c.n + 1 })]);
  assert.deepEqual(await p.run({ n: 10 }), { n: 12 });
  const q = new PipelineAsync().setSteps([
    async (c: Context) => ({ counter: c.counter + 1 }),
    new Condition({ expression: 'counter > 0', branchTrue: [async (c: Context) => ({ counter: c.counter * 2 })] }),
    new For({ iterations: 3, steps: [async (c: Context) => ({ loops: (c.loops ?? 0) + 1 })] }),
    new Parallel({ steps: [async () => ({ a: 1 }), () => ({ b: 2 })] }),
  ]);
  assert.deepEqual(await q.run({ counter: 2 }), { counter: 6, loops: 3, _loop_iteration: 2, a: 1, b: 2 });
});

test('PipelineAsync raises like Pipeline (the original returned the error instead)', async () => {
  const p = new PipelineAsync().setSteps([step({ name: 'bad' })(async () => { throw new Error('Simulated async error'); })]);
  const e = await p.run().catch((x: unknown) => x) as ProcessError;
  assert.ok(e instanceof ProcessError);
  assert.equal((e.cause as TaskError).stepName, 'bad');
  const coe = await new PipelineAsync({ continueOnError: true }).setSteps([async () => { throw new Error('x'); }, async () => ({ n: 1 })]).run();
  assert.equal(coe.n, 1);
  assert.equal((coe[ERRORS_KEY] as StepFailure[]).length, 1);
});

test('PipelineAsync yields to the event loop between top-level steps', async () => {
  const events: string[] = [];
  const p = new PipelineAsync().setSteps([
    () => { events.push('step1'); setImmediate(() => events.push('immediate')); },
    () => { events.push('step2'); },
  ]);
  await p.run();
  assert.deepEqual(events, ['step1', 'immediate', 'step2']);
  // Pipeline does not: its sync steps run back to back.
  events.length = 0;
  await new Pipeline().setSteps([
    () => { events.push('step1'); setImmediate(() => events.push('immediate')); },
    () => { events.push('step2'); },
  ]).run();
  assert.deepEqual(events.slice(0, 2), ['step1', 'step2']);
});

test('yieldEveryMs lets a fast run keep the thread for a while', async () => {
  const events: string[] = [];
  const p = new PipelineAsync({ yieldEveryMs: 1000 }).setSteps([
    () => { events.push('step1'); setImmediate(() => events.push('immediate')); },
    () => { events.push('step2'); },
  ]);
  await p.run();
  assert.deepEqual(events.slice(0, 2), ['step1', 'step2']);
  assert.throws(() => new PipelineAsync({ yieldEveryMs: -1 }), RangeError);
});

test('concurrent runs of one PipelineAsync interleave and stay independent', async () => {
  const trace: string[] = [];
  const p = new PipelineAsync().setSteps([
    (c: Context) => { trace.push(`${c.id}:a`); },
    (c: Context) => { trace.push(`${c.id}:b`); return { done: c.id }; },
  ]);
  const [x, y] = await Promise.all([p.run({ id: 'x' }), p.run({ id: 'y' })]);
  assert.deepEqual(x, { id: 'x', done: 'x' });
  assert.deepEqual(y, { id: 'y', done: 'y' });
  assert.deepEqual(trace, ['x:a', 'y:a', 'x:b', 'y:b']);
});

test('runMany returns results in input order, bounded by concurrency', async () => {
  let running = 0;
  let peak = 0;
  const p = new PipelineAsync().setSteps([async (c: Context) => {
    running++;
    peak = Math.max(peak, running);
    await delay(c.wait);
    running--;
    return { out: c.i * 2 };
  }]);
  const inputs = [30, 5, 20, 1, 10, 2, 8].map((wait, i) => ({ i, wait }));
  const results = await p.runMany(inputs, { concurrency: 3 });
  assert.deepEqual(results.map((r) => r.out), [0, 2, 4, 6, 8, 10, 12]);
  assert.equal(peak, 3);
  assert.deepEqual(await p.runMany([]), []);
});

test('runMany stops starting runs after a failure and rejects with it', async () => {
  const started: number[] = [];
  const p = new PipelineAsync().setSteps([async (c: Context) => {
    started.push(c.i);
    await delay(5);
    if (c.i === 1) throw new Error('bad input');
  }]);
  const e = await p.runMany(Array.from({ length: 10 }, (_v, i) => ({ i })), { concurrency: 2 }).catch((x: unknown) => x) as ProcessError;
  assert.ok(e instanceof ProcessError);
  assert.match(e.message, /bad input/);
  assert.ok(started.length <= 4, `started ${started.length}`);
});

test('runMany checks its options and can be cancelled', async () => {
  const p = new PipelineAsync().setSteps([async () => { await delay(20); }]);
  await assert.rejects(p.runMany([{}], { concurency: 2 } as never), /did you mean concurrency\?/);
  await assert.rejects(p.runMany([{}], { concurrency: 0 }), RangeError);
  await assert.rejects(p.runMany(5 as never), TypeError);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 5);
  await assert.rejects(p.runMany([{}, {}, {}], { signal: ac.signal }), (e: unknown) => (e as ProcessError).code === 'WPIPE_ERR_PROCESS_CANCELLED');
});

test('PipelineAsync keeps addressable Parallel branches in-process', async () => {
  const addressable = step({ module: { moduleUrl: 'file:///tmp/x.js', exportName: 'x' } })(async () => ({ ran: 'inline' }));
  assert.deepEqual(await new PipelineAsync().setSteps([new Parallel({ steps: [addressable] })]).run(), { ran: 'inline' });
});
