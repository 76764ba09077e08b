/**
 * `npm run demo`: a real pipeline run with its run history in SQLite, through the public API.
 *
 * 1. runs the orders pipeline (examples/orders.ts: a retry, Parallel, Condition, For, a real timeout,
 *    Background, a checkpoint) with `trackingDb`, and prints the result;
 * 2. runs it again with the same runId: the recorded result comes back and nothing executes;
 * 3. reads the history back (statistics, the steps as CSV) with PipelineExporter (and names the same
 *    pipeline in YAML, examples/orders.yaml, for the `wpipe` command);
 * 4. evaluates one expression over a million rows on every available backend.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createOrdersPipeline } from './orders.js';
import { PipelineExporter, compileExpression, getBackendInfo } from '../src/index.js';

const outDir = join(process.cwd(), '.wpipe-demo');
mkdirSync(outDir, { recursive: true });
const dbPath = join(outDir, 'runs.db');
for (const suffix of ['', '-wal', '-shm']) rmSync(dbPath + suffix, { force: true });

const line = (title: string): void => console.log(`\n── ${title} ${'─'.repeat(Math.max(0, 72 - title.length))}`);

line('backends');
const info = getBackendInfo();
for (const name of ['js', 'wasm', 'native'] as const) {
  const b = info.backends[name];
  console.log(`  ${name.padEnd(7)} ${b.available ? 'available' : 'unavailable'}  ${b.detail}${b.features.length ? ` [${b.features.join(', ')}]` : ''}`);
}
for (const [capability, c] of Object.entries(info.capabilities)) console.log(`  ${capability}: ${c.backend} (${c.reason})`);

line('run 1: the orders pipeline, tracked');
const pipe = createOrdersPipeline({ trackingDb: dbPath });
const t0 = performance.now();
const result = await pipe.run({ orderId: 7, customer: 'ACME' }, { runId: 'order-7' });
console.log(`  finished in ${(performance.now() - t0).toFixed(1)} ms`);
const shown = ['loadedOnAttempt', 'total', 'backordered', 'decision', 'packed', 'pending', 'shipping', 'shippingSource'];
for (const key of shown) console.log(`  ${key.padEnd(16)} ${JSON.stringify(result[key])}`);
console.log(`  _errors          ${JSON.stringify((result._errors as Array<{ step: string; code: string }>).map((e) => `${e.step}: ${e.code}`))}`);

line('run 2: the same runId again');
const t1 = performance.now();
const again = await pipe.run({ orderId: 7, customer: 'ACME' }, { runId: 'order-7' });
console.log(`  returned the recorded result in ${(performance.now() - t1).toFixed(1)} ms without running a step`);
console.log(`  same result: ${JSON.stringify(again.total) === JSON.stringify(result.total) && again.decision === result.decision}`);
const backgroundFailures = await pipe.close();
console.log(`  background failures: ${backgroundFailures.length}`);

line('the run history');
const exporter = new PipelineExporter(dbPath);
const stats = JSON.parse(exporter.exportStatistics({ format: 'json' }) as string) as Record<string, unknown>;
console.log(`  statistics: ${JSON.stringify(stats)}`);
const csv = exporter.exportPipelineLogs({ format: 'csv' }) as string;
console.log('  runs as CSV (RFC 4180):');
for (const row of csv.trimEnd().split('\r\n').slice(0, 3)) console.log(`    ${row.length > 150 ? `${row.slice(0, 150)}…` : row}`);
exporter.close();
console.log(`\n  history file: ${relative(process.cwd(), dbPath)}`);
console.log("  export it:    new PipelineExporter('.wpipe-demo/runs.db').exportPipelineLogs({ format: 'csv', outputPath: 'runs.csv' })");
console.log('  the same pipeline written in YAML, from a terminal: npx wpipe run examples/orders.yaml --db .wpipe-demo/runs.db');

line('one expression over 1,000,000 rows');
const rows = 1_000_000;
const x = new Float64Array(rows);
const y = new Float64Array(rows);
for (let i = 0; i < rows; i++) {
  x[i] = (i * 7919) % 1000 / 10;
  y[i] = (i * 104729) % 500 / 10;
}
const text = 'x > 5 and y < 3 or x * y > 400';
for (const backend of ['js', 'wasm', 'native'] as const) {
  if (!info.backends[backend].available) {
    console.log(`  ${backend.padEnd(7)} unavailable`);
    continue;
  }
  const e = compileExpression(text, { backend });
  e.testBatch({ x, y }); // warm up
  const start = performance.now();
  const out = e.testBatch({ x, y });
  const ms = performance.now() - start;
  let n = 0;
  for (let i = 0; i < rows; i++) n += out[i]!;
  console.log(`  ${backend.padEnd(7)} ${ms.toFixed(1).padStart(7)} ms  (${((ms * 1e6) / rows).toFixed(2)} ns/row, ${n} rows match '${text}')`);
}
