/**
 * An order-processing pipeline: the README's main example and what `npm run demo` runs.
 *
 * It shows retries (a flaky loader that succeeds on its second attempt), a Condition (manual review
 * above 100), a For loop (drain the pending items, at most 10 iterations), a Parallel block (prices
 * and stock looked up concurrently, merged in declared order), a real timeout (a carrier that never
 * answers fails at 50 ms and is recorded under `_errors` because the pipeline continues on error),
 * a Background notification and a checkpoint.
 *
 * Run it: `node --import tsx examples/orders.ts` (prints the final context as JSON).
 *
 * @example
 * ```ts
 * import { createOrdersPipeline } from './orders.js';
 * const pipe = createOrdersPipeline();
 * const result = await pipe.run({ orderId: 7 }, { runId: 'order-7' });
 * await pipe.close();
 * ```
 */
import { setTimeout as delay } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { Background, Condition, For, Parallel, Pipeline, step, type Context, type StepInfo } from '../src/index.js';

const here = import.meta.url;
/** Each step carries its module reference, so a worker thread or process can import it. */
const at = (exportName: string) => ({ module: { moduleUrl: here, exportName } });

const CATALOG: Record<string, { price: number; stock: number }> = {
  'sku-1': { price: 30, stock: 12 },
  'sku-2': { price: 45.5, stock: 0 },
  'sku-3': { price: 12.25, stock: 4 },
};

/** Loads the order; the "database" fails the first attempt of every run (a retry fixes it). */
export const load = step({ name: 'load', version: 'v2', retryCount: 2, retryDelay: 0.01, ...at('load') })(
  async (ctx: Context, info: StepInfo) => {
    await delay(5, undefined, { signal: info.signal });
    if (info.attempt === 1) throw new Error('connection reset by peer');
    return {
      status: 'new',
      items: ['sku-1', 'sku-2', 'sku-3', 'sku-1'],
      loadedOnAttempt: info.attempt,
      customer: ctx.customer ?? 'ACME',
    };
  },
);

/** Looks prices up (concurrently with `checkStock`). */
export const lookupPrices = step({ name: 'lookupPrices', timeout: 1, ...at('lookupPrices') })(async (ctx: Context, info: StepInfo) => {
  await delay(20, undefined, { signal: info.signal });
  const prices = (ctx.items as string[]).map((sku) => CATALOG[sku]?.price ?? 0);
  return { prices, total: prices.reduce((a, b) => a + b, 0) };
});

/** Looks stock up (concurrently with `lookupPrices`). */
export const checkStock = step({ name: 'checkStock', timeout: 1, ...at('checkStock') })(async (ctx: Context, info: StepInfo) => {
  await delay(10, undefined, { signal: info.signal });
  const backordered = (ctx.items as string[]).filter((sku) => (CATALOG[sku]?.stock ?? 0) === 0);
  return { backordered, pending: (ctx.items as string[]).length };
});

/** Takes one item off the queue per For iteration. */
export const pack = step({ name: 'pack', ...at('pack') })((ctx: Context) => ({
  packed: [...((ctx.packed as string[] | undefined) ?? []), (ctx.items as string[])[ctx._loop_iteration as number]],
  pending: (ctx.pending as number) - 1,
}));

export const review = step({ name: 'review', ...at('review') })(() => ({ decision: 'manual review' }));
export const approve = step({ name: 'approve', ...at('approve') })(() => ({ decision: 'approved' }));

/** A carrier API that never answers: the timeout turns it into a recorded failure. */
export const quoteShipping = step({ name: 'quoteShipping', timeout: 0.05, ...at('quoteShipping') })(
  (_ctx: Context, info: StepInfo) => new Promise<Context>((_resolve, reject) => {
    info.signal.addEventListener('abort', () => reject(info.signal.reason), { once: true });
  }),
);

/** Falls back to a flat rate when no quote arrived. */
export const fallbackShipping = step({ name: 'fallbackShipping', ...at('fallbackShipping') })((ctx: Context) =>
  ctx.shipping === undefined ? { shipping: 4.99, shippingSource: 'flat rate' } : undefined);

/** Sends a notification without holding up the run. */
export const notify = step({ name: 'notify', ...at('notify') })(async (ctx: Context) => {
  await delay(10);
  return { notified: `order ${String(ctx.orderId)}: ${String(ctx.decision)}` };
});

/**
 * Builds the pipeline.
 *
 * @example
 * ```ts
 * const out = await createOrdersPipeline({ verbose: true }).run({ orderId: 1 });
 * ```
 */
export function createOrdersPipeline(options: { verbose?: boolean; trackingDb?: string } = {}): Pipeline {
  const pipe = new Pipeline({ pipelineName: 'orders', continueOnError: true, ...options });
  pipe.setSteps([
    load,
    // I/O-bound branches: concurrent in this process. Worker threads are for CPU-bound work: a
    // round trip to a thread costs tens of microseconds, and a new worker takes 0.3-1.5 s to start.
    new Parallel({ name: 'enrich', steps: [lookupPrices, checkStock], maxWorkers: 2, executor: 'inline' }),
    new Condition({ name: 'route', expression: "total > 100 and status == 'new'", branchTrue: [review], branchFalse: [approve] }),
    new For({ name: 'packing', iterations: 10, validationExpression: 'pending > 0', steps: [pack] }),
    quoteShipping,
    fallbackShipping,
    new Background(notify),
  ]);
  pipe.addCheckpoint('priced', 'total > 0');
  return pipe;
}

async function main(): Promise<void> {
  const pipe = createOrdersPipeline({ verbose: process.argv.includes('--verbose') });
  const result = await pipe.run({ orderId: 7 }, { runId: 'order-7' });
  const backgroundFailures = await pipe.close();
  process.stdout.write(`${JSON.stringify({ result, backgroundFailures: backgroundFailures.length }, null, 2)}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
