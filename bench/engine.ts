/**
 * Engine benchmarks: what the run loop costs over a hand-written loop doing the same work (a copy
 * of the input with Object.assign, then one Object.assign merge per step).
 *
 * - 10 no-op steps: runSync and run against the hand-written loop (targets: within 3× and 8×);
 * - 1,000 steps in one pipeline (per run);
 * - Condition-heavy: 10 Conditions per run against hand-written `if`s;
 * - PipelineAsync runMany throughput (per run), yielding after every step and every 2 ms.
 *
 * `node --import tsx bench/engine.ts [--json] [--quick]`
 */
import { Condition, Pipeline, PipelineAsync, type Context } from '../src/engine/index.js';
import { consume, measure, report, withRatio, type Row } from './lib.js';

const rows: Row[] = [];
const row = (name: string, nsPerOp: number, baselineNsPerOp?: number, note?: string): void => {
  rows.push(withRatio({ suite: 'engine', case: name, backend: 'js', nsPerOp, baselineNsPerOp, note }));
};

type Fn = (ctx: Context) => Context | undefined;

/**
 * `n` steps, each returning one key of its own as a literal (`{ k3: 1 }`). Generated with
 * new Function because a computed key (`{ [key]: 1 }`) builds a slow dictionary object that would
 * dominate both sides and flatter the ratios. (Benchmark code only; the library never does this.)
 */
function makeSteps(n: number): Fn[] {
  return Array.from({ length: n }, (_v, i) => new Function(`return (ctx) => ({ k${i}: 1 })`)() as Fn);
}

/** The baseline: what a hand-written pipeline does. */
function handLoop(steps: readonly Fn[], input: Context): Context {
  const ctx = Object.assign({}, input);
  for (let i = 0; i < steps.length; i++) {
    const r = steps[i]!(ctx);
    if (r !== undefined && r !== null) Object.assign(ctx, r);
  }
  return ctx;
}

const input = { orderId: 7, total: 120, status: 'new' };

// ---------------------------------------------------------------- 10 no-op steps
{
  const steps = makeSteps(10);
  const pipe = new Pipeline().setSteps(steps);
  const R = 2000;
  const base = await measure(() => { for (let i = 0; i < R; i++) consume(handLoop(steps, input)); }, R);
  const sync = await measure(() => { for (let i = 0; i < R; i++) consume(pipe.runSync(input)); }, R);
  const async_ = await measure(async () => { for (let i = 0; i < R; i++) consume(await pipe.run(input)); }, R);
  row('10 steps/run: hand-written loop', base);
  row('10 steps/run: runSync', sync, base, 'target ≤ 3×');
  row('10 steps/run: run', async_, base, 'target ≤ 8×');
}

// ---------------------------------------------------------------- 1,000 steps
{
  const steps = makeSteps(1000);
  const pipe = new Pipeline().setSteps(steps);
  const R = 20;
  const base = await measure(() => { for (let i = 0; i < R; i++) consume(handLoop(steps, input)); }, R);
  const sync = await measure(() => { for (let i = 0; i < R; i++) consume(pipe.runSync(input)); }, R);
  const async_ = await measure(async () => { for (let i = 0; i < R; i++) consume(await pipe.run(input)); }, R);
  row('1,000 steps/run: hand-written loop', base);
  row('1,000 steps/run: runSync', sync, base);
  row('1,000 steps/run: run', async_, base);
}

// ---------------------------------------------------------------- Condition-heavy
{
  const onTrue: Fn = () => ({ routed: 'review' });
  const onFalse: Fn = () => ({ routed: 'approve' });
  const blocks = Array.from({ length: 10 }, () => new Condition({ expression: "total > 100 and status == 'new'", branchTrue: [onTrue], branchFalse: [onFalse] }));
  const pipe = new Pipeline().setSteps(blocks);
  const hand = (inp: Context): Context => {
    const ctx = Object.assign({}, inp);
    for (let i = 0; i < 10; i++) Object.assign(ctx, (ctx.total as number) > 100 && ctx.status === 'new' ? onTrue(ctx) : onFalse(ctx));
    return ctx;
  };
  const R = 1000;
  const base = await measure(() => { for (let i = 0; i < R; i++) consume(hand(input)); }, R);
  const sync = await measure(() => { for (let i = 0; i < R; i++) consume(pipe.runSync(input)); }, R);
  const async_ = await measure(async () => { for (let i = 0; i < R; i++) consume(await pipe.run(input)); }, R);
  row('10 Conditions/run: hand-written ifs', base);
  row('10 Conditions/run: runSync', sync, base);
  row('10 Conditions/run: run', async_, base);
}

// ---------------------------------------------------------------- PipelineAsync runMany
{
  const steps = makeSteps(10);
  const inputs = Array.from({ length: 500 }, (_v, i) => ({ i }));
  const base = await measure(() => { for (const inp of inputs) consume(handLoop(steps, inp)); }, inputs.length);
  const everyStep = new PipelineAsync().setSteps(steps);
  const sliced = new PipelineAsync({ yieldEveryMs: 2 }).setSteps(steps);
  const plain = new Pipeline().setSteps(steps);
  const a = await measure(async () => consume(await everyStep.runMany(inputs, { concurrency: 16 })), inputs.length);
  const b = await measure(async () => consume(await sliced.runMany(inputs, { concurrency: 16 })), inputs.length);
  const c = await measure(async () => consume(await Promise.all(inputs.map((inp) => plain.run(inp)))), inputs.length);
  row('runMany 10 steps, concurrency 16: hand-written loop', base);
  row('runMany: PipelineAsync, yield every step', a, base, `${Math.round(1e9 / a).toLocaleString('en')} runs/s`);
  row('runMany: PipelineAsync, yieldEveryMs 2', b, base, `${Math.round(1e9 / b).toLocaleString('en')} runs/s`);
  row('Promise.all of Pipeline.run (no yields)', c, base, `${Math.round(1e9 / c).toLocaleString('en')} runs/s`);
}

report(rows);
