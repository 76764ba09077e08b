// The example pipeline (examples/orders.ts) that the demo and the README use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createOrdersPipeline } from '../examples/orders.js';
import type { StepFailure } from '../src/engine/index.js';

test('the orders example retries, branches, loops, runs in parallel and records its timeout', async () => {
  const pipe = createOrdersPipeline();
  const out = await pipe.run({ orderId: 7 }, { runId: 'order-7' });
  assert.equal(out.loadedOnAttempt, 2);
  assert.equal(out.total, 117.75);
  assert.deepEqual(out.backordered, ['sku-2']);
  assert.equal(out.decision, 'manual review');
  assert.equal(out.pending, 0);
  assert.deepEqual(out.packed, ['sku-1', 'sku-2', 'sku-3', 'sku-1']);
  assert.equal(out.shipping, 4.99);
  const errors = out._errors as StepFailure[];
  assert.deepEqual(errors.map((e) => [e.step, e.code]), [['quoteShipping', 'WPIPE_ERR_TASK_TIMEOUT']]);
  assert.deepEqual(await pipe.close(), []);
});
