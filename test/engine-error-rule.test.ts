// One family for run() failures, typed TaskError fields, option aliases, and seconds that look like
// milliseconds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pipeline, step, ProcessError, TaskError, WpipeError, type Context } from '../src/index.js';
import { tempDir } from './fixtures/storage/tmp.js';

test('every failure of run() is a ProcessError with the finer code and its cause chain (resume mismatch, run id conflict)', async () => {
  const t = tempDir();
  try {
    const file = t.file('rule.db');
    const a = new Pipeline({ pipelineName: 'p', trackingDb: file }).setSteps([[(c: Context) => { if (!c.ok) throw new Error('no'); return {}; }, 'one']]);
    await assert.rejects(a.run({}, { runId: 'r1' }));
    await a.close();
    const changed = new Pipeline({ pipelineName: 'p', trackingDb: file }).setSteps([[() => ({}), 'one'], [() => ({}), 'two']]);
    const e = await changed.run({}, { runId: 'r1' }).catch((x: unknown) => x);
    assert.ok(e instanceof ProcessError, String(e));
    assert.equal(e.code, 'WPIPE_ERR_RESUME_MISMATCH');
    assert.equal(e.errorCode, 504);
    assert.ok(e.cause instanceof WpipeError && e.cause.code === 'WPIPE_ERR_RESUME_MISMATCH');
    const other = new Pipeline({ pipelineName: 'q', trackingDb: file }).setSteps([[() => ({}), 'x']]);
    const c = await other.run({}, { runId: 'r1' }).catch((x: unknown) => x);
    assert.ok(c instanceof ProcessError && c.code === 'WPIPE_ERR_RUN_ID_CONFLICT');
    await changed.close();
    await other.close();
    // The documented exceptions: misuse is a TypeError/RangeError before the run.
    await assert.rejects(other.run({}, { runid: 'x' } as never), TypeError);
  } finally {
    t.cleanup();
  }
});

test('TaskError carries the step name, version and attempts as typed fields', async () => {
  const p = new Pipeline({ pipelineName: 'typed' }).setSteps([step({ name: 'load', version: 'v7', retryCount: 2, retryDelay: 0 })(() => { throw new Error('x'); })]);
  const e = await p.run().catch((x: unknown) => x) as ProcessError;
  const task = e.cause as TaskError;
  assert.ok(task instanceof TaskError);
  assert.equal(task.stepName, 'load');
  assert.equal(task.stepVersion, 'v7');
  assert.equal(task.attempts, 3);
});

test('option names from other libraries get the right hint', () => {
  assert.throws(() => step({ retries: 3 } as never), /unknown option 'retries' \(did you mean retryCount\?\)/);
  assert.throws(() => step({ timeoutMs: 500 } as never), /did you mean timeout, in seconds\?/);
  assert.throws(() => step({ delay: 1 } as never), /did you mean retryDelay, in seconds\?/);
  assert.throws(() => new Pipeline({ retryCount: 2 } as never), /did you mean maxRetries\?/);
  assert.throws(() => new Pipeline({ retries: 2 } as never), /did you mean maxRetries\?/);
  assert.throws(() => new Pipeline({ name: 'x' } as never), /did you mean pipelineName\?/);
});

test('a timeout or retryDelay of 1,000 s or more warns once that it is in seconds', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error & { code?: string }): void => { if (w.code === 'WPIPE_WARN_SECONDS') warnings.push(w.message); };
  process.on('warning', onWarning);
  try {
    step({ name: 'a', timeout: 5000 })(() => ({}));
    step({ name: 'b', timeout: 5000 })(() => ({}));
    step({ name: 'c', timeout: 30 })(() => ({}));
    new Pipeline({ retryDelay: 2500 });
    await new Promise((r) => setImmediate(r));
    assert.equal(warnings.length, 2, warnings.join('\n'));
    assert.match(warnings[0]!, /timeout is in seconds: 5000 is 83 minutes\. If you meant 5000 ms, write timeout: 5\./);
    assert.match(warnings[1]!, /retryDelay is in seconds: 2500 is 42 minutes/);
  } finally {
    process.off('warning', onWarning);
  }
});
