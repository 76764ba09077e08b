/**
 * Expression benchmarks: every backend side by side, as ratios against hand-written JavaScript.
 *
 * - scalar: `test(ctx)` per backend against a hand-written closure of the same comparison;
 * - batch: 1M rows per backend against a hand-written loop over the same typed arrays;
 * - batch sweep: ns per row across sizes, which justifies the auto thresholds in src/backend/load.ts.
 */
import { compileExpression, getBackendInfo } from '../src/index.js';
import { consume, measure, quick, report, withRatio, type Row } from './lib.js';

const info = getBackendInfo();
const backends = (['js', 'wasm', 'native'] as const).filter((b) => info.backends[b].available);
const missing = (['wasm', 'native'] as const).filter((b) => !info.backends[b].available);
if (missing.length > 0) console.error(`bench/expr: unavailable backends: ${missing.map((b) => `${b} (${info.backends[b].detail})`).join('; ')}`);

const rows: Row[] = [];

// ---------------------------------------------------------------- scalar
interface ScalarCase {
  text: string;
  baseline: (c: Record<string, unknown>) => boolean;
  contexts: Array<Record<string, unknown>>;
}

const N = 64;
const scalarCases: ScalarCase[] = [
  {
    text: "x > 5 and kind == 'a'",
    baseline: (c) => (c.x as number) > 5 && c.kind === 'a',
    contexts: Array.from({ length: N }, (_, i) => ({ x: i % 11, kind: i % 3 ? 'a' : 'b' })),
  },
  {
    text: '0 <= temperature <= 30',
    baseline: (c) => 0 <= (c.temperature as number) && (c.temperature as number) <= 30,
    contexts: Array.from({ length: N }, (_, i) => ({ temperature: (i * 7) % 45 - 5 })),
  },
  {
    text: "tier in ['premium', 'vip'] and order_value > 100",
    baseline: (c) => (c.tier === 'premium' || c.tier === 'vip') && (c.order_value as number) > 100,
    contexts: Array.from({ length: N }, (_, i) => ({ tier: ['free', 'premium', 'vip'][i % 3], order_value: i * 5 })),
  },
  {
    text: "'error' in message.lower()",
    baseline: (c) => (c.message as string).toLowerCase().includes('error'),
    contexts: Array.from({ length: N }, (_, i) => ({ message: i % 2 ? 'An ERROR happened' : 'all fine' })),
  },
];

for (const c of scalarCases) {
  const ctxs = c.contexts;
  const baseline = c.baseline;
  const base = await measure(() => {
    let n = 0;
    for (let i = 0; i < 1000; i++) if (baseline(ctxs[i & (N - 1)]!)) n++;
    consume(n);
  }, 1000);
  for (const backend of ['auto', ...backends] as const) {
    const e = compileExpression(c.text, { backend });
    const ns = await measure(() => {
      let n = 0;
      for (let i = 0; i < 1000; i++) if (e.test(ctxs[i & (N - 1)]!)) n++;
      consume(n);
    }, 1000);
    rows.push(withRatio({ suite: 'expr', case: `scalar test: ${c.text}`, backend, nsPerOp: ns, baselineNsPerOp: base }));
  }
}

// ---------------------------------------------------------------- batch, 1M rows
const ROWS = quick ? 200_000 : 1_000_000;
const x = new Float64Array(ROWS);
const y = new Float64Array(ROWS);
for (let i = 0; i < ROWS; i++) {
  x[i] = ((i * 7919) % 1000) / 10;
  y[i] = ((i * 104729) % 500) / 10;
}
const batchText = 'x > 5 and y < 3 or x * y > 400';
const handLoop = (): Uint8Array => {
  const out = new Uint8Array(ROWS);
  for (let i = 0; i < ROWS; i++) {
    const a = x[i]!;
    const b = y[i]!;
    out[i] = (a > 5 && b < 3) || a * b > 400 ? 1 : 0;
  }
  return out;
};
const batchBase = await measure(() => consume(handLoop()), ROWS, quick ? 300 : 1500);
for (const backend of ['auto', ...backends] as const) {
  const e = compileExpression(batchText, { backend });
  const cols = { x, y };
  const ns = await measure(() => consume(e.testBatch(cols)), ROWS, quick ? 300 : 1500);
  rows.push(withRatio({ suite: 'expr', case: `batch ${ROWS} rows: ${batchText}`, backend, nsPerOp: ns, baselineNsPerOp: batchBase, note: `${e.explainBatch(cols).mode}` }));
}

// Strings: the predicate on a string column is computed in JS, the rest in the VM.
const kind = Array.from({ length: ROWS }, (_, i) => (i % 3 ? 'a' : 'b'));
const strText = "x > 5 and kind == 'a'";
const strBase = await measure(() => {
  const out = new Uint8Array(ROWS);
  for (let i = 0; i < ROWS; i++) out[i] = x[i]! > 5 && kind[i] === 'a' ? 1 : 0;
  consume(out);
}, ROWS, quick ? 300 : 1500);
for (const backend of ['auto', ...backends] as const) {
  const e = compileExpression(strText, { backend });
  const ns = await measure(() => consume(e.testBatch({ x, kind })), ROWS, quick ? 300 : 1500);
  rows.push(withRatio({ suite: 'expr', case: `batch ${ROWS} rows: ${strText}`, backend, nsPerOp: ns, baselineNsPerOp: strBase }));
}

// ---------------------------------------------------------------- size sweep (auto thresholds)
const sizes = quick ? [16, 256, 4096, 65536] : [4, 16, 64, 128, 256, 1024, 4096, 16384, 65536];
for (const size of sizes) {
  const xs = x.subarray(0, size);
  const ys = y.subarray(0, size);
  const cols = { x: xs, y: ys };
  for (const backend of backends) {
    const e = compileExpression(batchText, { backend });
    const reps = Math.max(1, Math.floor(65536 / size));
    const ns = await measure(() => {
      for (let r = 0; r < reps; r++) consume(e.testBatch(cols));
    }, reps * size, quick ? 100 : 300);
    rows.push(withRatio({ suite: 'expr', case: `batch sweep ${size} rows`, backend, nsPerOp: ns }));
  }
}

report(rows);
