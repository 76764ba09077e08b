// What every worker executor owes the engine's deadline (StepCall.onStarted, src/parallel/executor.ts):
// it says it reports starts, and reports each attempt's start exactly once, before the attempt
// settles, naming the worker. Shared by the thread and process executor suites.
import assert from 'node:assert/strict';
import {
  createExecutor, createProcessExecutor, createThreadExecutor, registerExecutor, type ExecutorKind, type StepCall,
} from '../../src/parallel/index.js';
import * as S from '../fixtures/parallel/steps.js';

/**
 * Two calls on a one-worker executor of `kind` (the first also starts the worker, the second waits
 * for it): each reports its start once, before it settles, with a worker id matching `worker`.
 */
export async function checkReportsStarts(kind: ExecutorKind, worker: RegExp): Promise<void> {
  const ex = createExecutor(kind, { maxWorkers: 1 });
  try {
    const order: string[] = [];
    const ac = new AbortController();
    const call = (n: number): StepCall => ({
      fn: S.add as never, moduleRef: { moduleUrl: new URL('../fixtures/parallel/steps.ts', import.meta.url).href, exportName: 'add' },
      context: { a: n, b: 1 }, info: { signal: ac.signal, attempt: 1, runId: 'r', stepName: 'add' }, signal: ac.signal,
      memoryLimitMb: undefined,
      onStarted: (id) => {
        assert.match(id ?? '', worker);
        order.push(`started ${n}`);
      },
    });
    assert.equal(ex.reportsStart, true);
    const results = await Promise.all([1, 2].map((n) => Promise.resolve(ex.call(call(n))).then((v) => { order.push(`settled ${n}`); return v; })));
    assert.deepEqual(results, [{ sum: 2 }, { sum: 3 }]);
    for (const n of [1, 2]) {
      assert.equal(order.filter((e) => e === `started ${n}`).length, 1, order.join(', '));
      assert.ok(order.indexOf(`started ${n}`) < order.indexOf(`settled ${n}`), order.join(', '));
    }
  } finally {
    await ex.close();
  }
}

/**
 * Puts back what the registry starts with for `kind` after a test replaced it with a fake: the
 * thread and process executors for 'threads' and 'processes', nothing for the others.
 */
export function restoreExecutor(kind: ExecutorKind): void {
  registerExecutor(kind, kind === 'threads' ? createThreadExecutor : kind === 'processes' ? createProcessExecutor : null);
}
