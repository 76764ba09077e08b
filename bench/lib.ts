/**
 * Shared helpers of the benchmark suites: measure with tinybench, report rows as a table or JSON.
 * A suite is a standalone script (`node --import tsx bench/<suite>.ts [--json]`); bench/index.ts runs
 * each in a fresh process.
 */
import { Bench } from 'tinybench';

export interface Row {
  suite: string;
  case: string;
  backend: string;
  /** Median nanoseconds per operation (per row for batch cases). */
  nsPerOp: number;
  /** The hand-written baseline of the same case, when there is one. */
  baselineNsPerOp?: number;
  /** nsPerOp / baselineNsPerOp: how many times slower than the baseline (< 1 is faster). */
  ratio?: number;
  note?: string;
}

export const jsonMode = process.argv.includes('--json');
export const quick = process.argv.includes('--quick') || process.env.WPIPE_BENCH_QUICK === '1';

/**
 * Median ns per operation of `fn`, where one call of `fn` performs `opsPerCall` operations (loop
 * inside the task so tinybench's own per-call overhead does not dominate). tinybench runs at least
 * `minIterations` calls and for at least `timeMs`: long calls pass a small `minIterations`. Warmup:
 * at least `min(16, minIterations)` calls (tinybench's own minimum is 16 whatever the time, which
 * for calls of a second is most of the benchmark).
 */
export async function measure(fn: () => unknown, opsPerCall: number, timeMs = quick ? 150 : 600, minIterations = 64): Promise<number> {
  const bench = new Bench({
    time: timeMs, warmupTime: Math.min(200, timeMs / 2), iterations: minIterations, warmupIterations: Math.min(16, minIterations),
  });
  bench.add('task', fn);
  await bench.run();
  const result = bench.tasks[0]!.result as unknown as { latency?: { p50: number }; error?: unknown };
  if (!result.latency) throw new Error(`benchmark task failed: ${String(result.error)}`);
  return (result.latency.p50 * 1e6) / opsPerCall;
}

export function withRatio(row: Row): Row {
  if (row.baselineNsPerOp) row.ratio = Number((row.nsPerOp / row.baselineNsPerOp).toFixed(2));
  row.nsPerOp = Number(row.nsPerOp.toFixed(row.nsPerOp < 10 ? 2 : 1));
  if (row.baselineNsPerOp) row.baselineNsPerOp = Number(row.baselineNsPerOp.toFixed(row.baselineNsPerOp < 10 ? 2 : 1));
  return row;
}

export function report(rows: Row[]): void {
  if (jsonMode) {
    process.stdout.write(`${JSON.stringify(rows)}\n`);
    return;
  }
  console.table(rows.map((r) => ({ case: r.case, backend: r.backend, 'ns/op': r.nsPerOp, 'baseline ns/op': r.baselineNsPerOp ?? '', 'x baseline': r.ratio ?? '', note: r.note ?? '' })));
}

/** Keeps a value alive so the optimiser cannot drop the work that made it. */
export let sink: unknown;
export function consume(v: unknown): void {
  sink = v;
}
