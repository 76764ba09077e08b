// The steps of examples/orders.yaml (`npx wpipe run examples/orders.yaml`): the same order-processing
// steps as examples/orders.ts, as plain JavaScript so the command can import them without a
// TypeScript loader. A pipeline file can name only `step(...)` exports of modules in its folder.
import { setTimeout as delay } from 'node:timers/promises';
import { step } from 'wpipe';

const CATALOG = {
  'sku-1': { price: 30, stock: 12 },
  'sku-2': { price: 45.5, stock: 0 },
  'sku-3': { price: 12.25, stock: 4 },
};

/** Loads the order; the "database" fails the first attempt of every run (the YAML gives it retries). */
export const load = step({ name: 'load' })(async (ctx, info) => {
  await delay(5, undefined, { signal: info.signal });
  if (info.attempt === 1) throw new Error('connection reset by peer');
  return {
    status: 'new',
    items: ['sku-1', 'sku-2', 'sku-3', 'sku-1'],
    loadedOnAttempt: info.attempt,
    customer: ctx.customer ?? 'ACME',
  };
});

/** Looks prices up (concurrently with `checkStock`). */
export const lookupPrices = step({ name: 'lookupPrices' })(async (ctx, info) => {
  await delay(20, undefined, { signal: info.signal });
  const prices = ctx.items.map((sku) => CATALOG[sku]?.price ?? 0);
  return { prices, total: prices.reduce((a, b) => a + b, 0) };
});

/** Looks stock up (concurrently with `lookupPrices`). */
export const checkStock = step({ name: 'checkStock' })(async (ctx, info) => {
  await delay(10, undefined, { signal: info.signal });
  const backordered = ctx.items.filter((sku) => (CATALOG[sku]?.stock ?? 0) === 0);
  return { backordered, pending: ctx.items.length };
});

/** Takes one item off the queue per loop iteration. */
export const pack = step({ name: 'pack' })((ctx) => ({
  packed: [...(ctx.packed ?? []), ctx.items[ctx._loop_iteration]],
  pending: ctx.pending - 1,
}));

export const review = step({ name: 'review' })(() => ({ decision: 'manual review' }));
export const approve = step({ name: 'approve' })(() => ({ decision: 'approved' }));

/** A carrier API that never answers: the timeout in the YAML turns it into a recorded failure. */
export const quoteShipping = step({ name: 'quoteShipping' })((_ctx, info) => new Promise((_resolve, reject) => {
  info.signal.addEventListener('abort', () => reject(info.signal.reason), { once: true });
}));

/** Falls back to a flat rate when no quote arrived. */
export const fallbackShipping = step({ name: 'fallbackShipping' })((ctx) =>
  ctx.shipping === undefined ? { shipping: 4.99, shippingSource: 'flat rate' } : undefined);

/** Sends a notification without holding up the run. */
export const notify = step({ name: 'notify' })(async (ctx) => {
  await delay(10);
  return { notified: `order ${String(ctx.orderId)}: ${String(ctx.decision)}` };
});

/** A helper, not a step: a pipeline file naming it is refused. */
export function formatTotal(total) {
  return `${total.toFixed(2)} EUR`;
}
