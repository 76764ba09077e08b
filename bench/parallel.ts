/**
 * Parallel benchmarks: what worker threads and child processes buy and cost.
 *
 * - two 400 ms CPU-bound branches of one Parallel block: in-process (the baseline: they run one
 *   after the other), on threads and in processes (target on 2 cores: < 620 ms);
 * - per-branch overhead of a trivial branch on threads (one run of a one-branch Parallel, and one
 *   executor call without the engine) against a raw piscina round trip of a trivial task in the same
 *   run (target ≤ 1.5×); eight trivial branches per run (maxWorkers = cores) against eight
 *   concurrent raw tasks on as many threads; a trivial branch in a process;
 * - a 1 MiB Float64Array to a thread and back (the step changes it, so it has to come back), copied
 *   and transferred (`StepCall.transfer`), each against raw piscina doing the same.
 *
 * `node --import tsx bench/parallel.ts [--json] [--quick]`
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { Parallel, Pipeline } from '../src/engine/index.js';
import { createExecutor, type StepCall } from '../src/parallel/index.js';
import * as P from './fixtures/parallel-steps.js';
import { consume, measure, quick, report, withRatio, type Row } from './lib.js';

const rows: Row[] = [];
const row = (name: string, nsPerOp: number, baselineNsPerOp?: number, note?: string): void => {
  rows.push(withRatio({ suite: 'parallel', case: name, backend: 'js', nsPerOp, baselineNsPerOp, note }));
};
const cores = `${availableParallelism()} cores`;

const raw = new Piscina({
  filename: fileURLToPath(new URL('./fixtures/parallel-raw-worker.ts', import.meta.url)),
  execArgv: ['--import', import.meta.resolve('tsx')],
  minThreads: availableParallelism(), maxThreads: availableParallelism(),
});
const pipes: Pipeline[] = [];
const parallel = (steps: ConstructorParameters<typeof Parallel>[0]['steps'], opts: Partial<ConstructorParameters<typeof Parallel>[0]>): Pipeline => {
  const p = new Pipeline().setSteps([new Parallel({ steps, maxWorkers: 2, ...opts })]);
  pipes.push(p);
  return p;
};

// ---------------------------------------------------------------- two 400 ms CPU-bound branches
{
  const input = { ms: 400 };
  const inline = parallel([P.cpuA, P.cpuB], { executor: 'inline' });
  const threads = parallel([P.cpuA, P.cpuB], { executor: 'threads' });
  const processes = parallel([P.cpuA, P.cpuB], { useProcesses: true });
  // Workers up (two children: a call that waits for a starting child takes the first one freed).
  for (let i = 0; i < 3; i++) { await threads.run({ ms: 200 }); await processes.run({ ms: 200 }); }
  const n = quick ? 2 : 5;
  const base = await measure(async () => consume(await inline.run(input)), 1, 1000, n);
  const th = await measure(async () => consume(await threads.run(input)), 1, 1000, n);
  const pr = await measure(async () => consume(await processes.run(input)), 1, 1000, n);
  row('2 × 400 ms CPU branches: in-process (one after the other)', base);
  row('2 × 400 ms CPU branches: threads', th, base, `target < 620 ms on 2 cores (${cores})`);
  row('2 × 400 ms CPU branches: processes', pr, base, `target < 620 ms on 2 cores (${cores})`);
}

// ---------------------------------------------------------------- per-branch overhead
/** One signal for every call, as the engine passes its never-aborting one to steps without a deadline. */
const signal = new AbortController().signal;
function stepCall(exportName: string, context: Record<string, unknown>, transfer = false): StepCall {
  return {
    fn: () => { throw new Error('runs in a worker'); },
    moduleRef: { moduleUrl: new URL('./fixtures/parallel-steps.ts', import.meta.url).href, exportName },
    context, info: { signal, attempt: 1, runId: 'bench', stepName: exportName }, signal, memoryLimitMb: undefined, transfer,
  };
}

{
  const R = quick ? 100 : 400;
  const one = parallel([P.trivial], { executor: 'threads' });
  // maxWorkers = cores, as the raw pool: a larger maxWorkers would grow the shared pool past the cores.
  const eight = parallel(Array.from({ length: 8 }, () => P.trivial), { executor: 'threads', maxWorkers: availableParallelism() });
  const inProcess = parallel([P.trivial], { useProcesses: true });
  const ex = createExecutor('threads', { maxWorkers: 2 });
  for (let i = 0; i < 50; i++) { await one.run({}); await eight.run({}); await inProcess.run({}); await raw.run({}); }
  const rawOne = await measure(async () => { for (let i = 0; i < R; i++) consume(await raw.run({ n: i })); }, R);
  const rawEight = await measure(async () => {
    for (let i = 0; i < R / 8; i++) consume(await Promise.all(Array.from({ length: 8 }, (_v, k) => raw.run({ n: k }))));
  }, R);
  const call = await measure(async () => { for (let i = 0; i < R; i++) consume(await ex.call(stepCall('trivial', { n: i }))); }, R);
  const runOne = await measure(async () => { for (let i = 0; i < R; i++) consume(await one.run({ n: i })); }, R);
  const runEight = await measure(async () => { for (let i = 0; i < R / 8; i++) consume(await eight.run({ n: i })); }, R);
  const proc = await measure(async () => { for (let i = 0; i < R; i++) consume(await inProcess.run({ n: i })); }, R);
  row('trivial task: raw piscina round trip', rawOne);
  row('trivial branch on a thread: executor call (no engine)', call, rawOne);
  row('trivial branch on a thread: run() of a 1-branch Parallel', runOne, rawOne, 'target ≤ 1.5×');
  row('8 trivial tasks at once: raw piscina, per task', rawEight);
  row('8 trivial branches of one Parallel on threads, per branch', runEight, rawEight);
  row('trivial branch in a process: run() of a 1-branch Parallel', proc, rawOne, 'IPC to a child process');
  await ex.close();
}

// ---------------------------------------------------------------- 1 MiB Float64Array there and back
{
  const R = quick ? 20 : 100;
  const ex = createExecutor('threads', { maxWorkers: 1 });
  let floats = new Float64Array(1 << 17);
  const rawCopied = await measure(async () => {
    for (let i = 0; i < R; i++) consume(await raw.run({ floats }));
  }, R);
  const rawMoved = await measure(async () => {
    for (let i = 0; i < R; i++) floats = await raw.run({ floats, move: true }, { transferList: [floats.buffer] }) as Float64Array;
  }, R);
  const copied = await measure(async () => {
    for (let i = 0; i < R; i++) {
      const c = stepCall('touch', { floats });
      await ex.call(c);
      floats = c.context.floats as Float64Array;
    }
  }, R);
  const moved = await measure(async () => {
    for (let i = 0; i < R; i++) {
      const c = stepCall('touch', { floats }, true);
      await ex.call(c);
      floats = c.context.floats as Float64Array;
    }
  }, R);
  row('1 MiB Float64Array there and back: raw piscina, copied', rawCopied);
  row('1 MiB Float64Array there and back: raw piscina, moved', rawMoved);
  row('1 MiB Float64Array to a thread and back: copied', copied, rawCopied);
  row('1 MiB Float64Array to a thread and back: transferred', moved, rawMoved, `copied: ${(copied / 1000).toFixed(0)} µs`);
  await ex.close();
}

for (const p of pipes) await p.close();
await raw.destroy();
report(rows);
