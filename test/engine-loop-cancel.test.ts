// A loop of steps that resolve at once (or synchronous steps) in run() lets timers fire, so a
// deadline or the run's AbortSignal stops it; For's maxIterations bounds a loop by its expression.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pipeline, PipelineAsync, For, ProcessError, TaskError, type Context } from '../src/index.js';

test("an endless For of async steps stops when the run's signal aborts (run, PipelineAsync, sync steps too)", { timeout: 20_000 }, async () => {
  const bodies: [string, (c: Context) => unknown][] = [
    ['async step', async () => ({})],
    ['sync step', () => ({})],
  ];
  for (const Kind of [Pipeline, PipelineAsync]) {
    for (const [what, body] of bodies) {
      const pipe = new Kind({ pipelineName: 'spin' }).setSteps([new For({ validationExpression: 'True', steps: [[body, 'tick']] })]);
      const t0 = performance.now();
      await assert.rejects(pipe.run({}, { signal: AbortSignal.timeout(150) }),
        (e: unknown) => e instanceof ProcessError && e.code === 'WPIPE_ERR_PROCESS_CANCELLED', `${Kind.name}, ${what}`);
      const took = performance.now() - t0;
      assert.ok(took < 2000, `${Kind.name}, ${what}: stopped after ${took.toFixed(0)} ms`);
      await pipe.close();
    }
  }
});

test('a long chain of steps that resolve at once lets a timer fire in the middle', async () => {
  let fired = false;
  let firedAt = -1;
  let n = 0;
  const steps = Array.from({ length: 20_000 }, (_, i) => [async () => {
    n = i;
    if (fired && firedAt < 0) firedAt = i;
    const until = performance.now() + 0.003; // ~60 ms for the chain: several yield windows
    while (performance.now() < until) { /* work */ }
    return undefined;
  }, `s${i}`] as [(c: Context) => Promise<undefined>, string]);
  const pipe = new Pipeline({ pipelineName: 'chain' }).setSteps(steps);
  setTimeout(() => { fired = true; }, 5);
  await pipe.run({});
  assert.equal(n, 19_999);
  assert.ok(firedAt > 0 && firedAt < 19_999, `the timer fired during the run (at step ${firedAt})`);
});

test('maxIterations: a loop that would run past it fails with WPIPE_ERR_LOOP_LIMIT; within it nothing changes; bad values are refused', async () => {
  const pipe = new Pipeline({ pipelineName: 'bounded' }).setSteps([
    new For({ validationExpression: 'n < 100', maxIterations: 5, steps: [[(c: Context) => ({ n: (c.n as number) + 1 }), 'inc']] }),
  ]);
  await assert.rejects(pipe.run({ n: 0 }), (e: unknown) => e instanceof ProcessError && e.cause instanceof TaskError
    && e.cause.code === 'WPIPE_ERR_LOOP_LIMIT' && /past its maxIterations \(5\); 'n < 100' still holds/.test(e.cause.message));
  assert.deepEqual(await pipe.run({ n: 96 }), { n: 100, _loop_iteration: 3 });
  assert.deepEqual(pipe.runSync({ n: 97 }), { n: 100, _loop_iteration: 2 });
  assert.throws(() => new For({ validationExpression: 'True', maxIterations: 0, steps: [] }), RangeError);
  assert.throws(() => new For({ validationExpression: 'True', maxIteration: 3, steps: [] } as never), /did you mean maxIterations\?/);
});
