/**
 * BullMQ benchmarks (issue 18): what moving work onto Redis costs, on a private redis-server
 * (test/helpers/redis.ts; the suite prints a skip row without one).
 *
 * - 10-step runs/s as whole-run jobs (`pipe.enqueue`, one job per run) through one queue with 1, 2
 *   and 4 worker processes (bench/fixtures/bullmq-worker.ts, concurrency 8 each), against BullMQ's own
 *   flow of 10 chained jobs (FlowProducer: each job the child of the next) with as many plain BullMQ
 *   worker processes, and against wpipe in one process (no queue). Target: the run as one job ≥ 5×
 *   the 10-job chain.
 * - Per-branch overhead: a run of a one-branch Parallel with executor 'bullmq' (one job round trip:
 *   add, a worker takes it, the completed event) against a raw BullMQ round trip (queue.add +
 *   job.waitUntilFinished) of a trivial job on the same Redis.
 * No trackingDb anywhere: the queue is what is measured (the history's cost is bench/storage.ts's).
 *
 * `node --import tsx bench/bullmq.ts [--json] [--quick]`
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { FlowProducer, Queue, QueueEvents, type FlowJob } from 'bullmq';
import { Parallel, Pipeline } from '../src/engine/index.js';
import { useBullmq } from '../src/queue/executor.js';
import { startRedis } from '../test/helpers/redis.js';
import { tenSteps, trivial } from './fixtures/bullmq-pipelines.js';
import { consume, measure, quick, report, withRatio, type Row } from './lib.js';

const rows: Row[] = [];
const row = (name: string, nsPerOp: number, baselineNsPerOp?: number, note?: string): void => {
  rows.push(withRatio({ suite: 'bullmq', case: name, backend: 'js', nsPerOp, baselineNsPerOp, note }));
};

const redis = await startRedis();
if (typeof redis === 'string') {
  rows.push({ suite: 'bullmq', case: 'skipped', backend: 'js', nsPerOp: 0, note: redis });
  report(rows);
  process.exit(0);
}

const workerScript = fileURLToPath(new URL('./fixtures/bullmq-worker.ts', import.meta.url));
const children: ChildProcess[] = [];
const CONCURRENCY = 8;

async function startWorkers(n: number, queue: string, mode: 'wpipe' | 'raw'): Promise<ChildProcess[]> {
  const started: ChildProcess[] = [];
  for (let i = 0; i < n; i++) {
    const c = spawn(process.execPath, ['--import', 'tsx', workerScript, redis.url, queue, mode, String(CONCURRENCY)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(c);
    started.push(c);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      c.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('ready')) resolve(); });
      c.once('exit', (code) => reject(new Error(`bench worker exited ${code}`)));
    });
  }
  return started;
}

async function stopWorkers(list: ChildProcess[]): Promise<void> {
  await Promise.all(list.map((c) => new Promise<void>((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) { resolve(); return; }
    c.once('exit', () => resolve());
    c.kill('SIGTERM');
  })));
}

/** Resolves when `n` jobs of `queue` have completed (counted from the events stream). */
function completions(events: QueueEvents, n: number, accept: (jobId: string) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const onDone = ({ jobId }: { jobId: string }): void => {
      if (accept(jobId) && ++done === n) { events.off('completed', onDone); events.off('failed', onFail); resolve(); }
    };
    const onFail = ({ jobId, failedReason }: { jobId: string; failedReason: string }): void => {
      if (accept(jobId)) reject(new Error(`job ${jobId} failed: ${failedReason}`));
    };
    events.on('completed', onDone);
    events.on('failed', onFail);
  });
}

const RUNS = quick ? 300 : 1500;
let round = 0;

/** ns per run of `RUNS` whole 10-step runs enqueued at once, through `workers` wpipe worker processes. */
async function wholeRuns(workers: number): Promise<number> {
  const name = `runs${workers}`;
  const procs = await startWorkers(workers, name, 'wpipe');
  useBullmq({ connection: redis.url, name });
  const events = new QueueEvents(`${name}-runs`, { connection: redis.connection });
  await events.waitUntilReady();
  const once = async (count: number): Promise<number> => {
    const tag = `r${round++}-`;
    const done = completions(events, count, (id) => id.startsWith(tag));
    const t0 = process.hrtime.bigint();
    // enqueue opens a connection per call; a batch goes through one Queue, as a producer would.
    const q = new Queue(`${name}-runs`, { connection: redis.connection });
    const { serialize } = await import('node:v8');
    const data = serialize({ n: 0 }).toString('base64');
    await q.addBulk(Array.from({ length: count }, (_, i) => ({
      name: 'run', data: { v: 1, pipeline: 'ten', runId: `${tag}${i}`, data }, opts: { jobId: `${tag}${i}`, removeOnComplete: true },
    })));
    await done;
    const ns = Number(process.hrtime.bigint() - t0) / count;
    await q.close();
    return ns;
  };
  await once(100); // warm: modules imported, connections up
  const ns = Math.min(await once(RUNS), await once(RUNS));
  await events.close();
  await stopWorkers(procs);
  return ns;
}

/** ns per flow of `RUNS` BullMQ flows of 10 chained trivial jobs, through `workers` plain BullMQ worker processes. */
async function flows(workers: number): Promise<number> {
  const name = `flow${workers}`;
  const procs = await startWorkers(workers, name, 'raw');
  const events = new QueueEvents(name, { connection: redis.connection });
  await events.waitUntilReady();
  const producer = new FlowProducer({ connection: redis.connection });
  const chain = (tag: string): FlowJob => {
    let job: FlowJob = { name: 'j0', queueName: name, opts: { jobId: `${tag}-0`, removeOnComplete: true } };
    for (let i = 1; i < 10; i++) job = { name: `j${i}`, queueName: name, opts: { jobId: `${tag}-${i}`, removeOnComplete: true }, children: [job] };
    return job; // the root (j9) runs last
  };
  const once = async (count: number): Promise<number> => {
    const tag = `f${round++}`;
    const done = completions(events, count, (id) => id.startsWith(`${tag}x`) && id.endsWith('-9'));
    const t0 = process.hrtime.bigint();
    await producer.addBulk(Array.from({ length: count }, (_, i) => chain(`${tag}x${i}`)));
    await done;
    return Number(process.hrtime.bigint() - t0) / count;
  };
  await once(50);
  const ns = Math.min(await once(RUNS), await once(RUNS));
  await producer.close();
  await events.close();
  await stopWorkers(procs);
  return ns;
}

try {
// ---------------------------------------------------------------- 10-step runs/s
const rps = (ns: number): string => `${Math.round(1e9 / ns)} runs/s`;
const progress = (m: string): void => { process.stderr.write(`bench/bullmq: ${m}\n`); };
{
  const inProcess = await measure(async () => consume(await tenSteps.run({ n: 0 })), 1);
  progress('flows');
  const flow1 = await flows(1);
  const flow2 = await flows(2);
  const flow4 = await flows(4);
  progress('whole runs');
  const whole1 = await wholeRuns(1);
  const whole2 = await wholeRuns(2);
  const whole4 = await wholeRuns(4);
  const cores = availableParallelism();
  row('10-step run in one process (no queue)', inProcess, undefined, rps(inProcess));
  row('BullMQ flow of 10 chained jobs, 1 worker process', flow1, undefined, rps(flow1));
  row('BullMQ flow of 10 chained jobs, 2 worker processes', flow2, undefined, rps(flow2));
  row('BullMQ flow of 10 chained jobs, 4 worker processes', flow4, undefined, `${rps(flow4)} (${cores} cores, shared with Redis and the producer)`);
  row('10-step run as one wpipe job, 1 worker process', whole1, flow1, `${rps(whole1)}; baseline: the BullMQ flow, 1 worker; target ≤ 0.2×`);
  row('10-step run as one wpipe job, 2 worker processes', whole2, flow2, `${rps(whole2)}; baseline: the BullMQ flow, 2 workers; target ≤ 0.2× (${cores} cores)`);
  row('10-step run as one wpipe job, 4 worker processes', whole4, flow4, `${rps(whole4)}; baseline: the BullMQ flow, 4 workers; target ≤ 0.2× (${cores} cores, shared with Redis and the producer)`);
}

// ---------------------------------------------------------------- per-branch overhead
{
  progress('per-branch overhead');
  const procs = await startWorkers(1, 'branch', 'wpipe');
  useBullmq({ connection: redis.url, name: 'branch' });
  const pipe = new Pipeline().setSteps([new Parallel({ steps: [trivial], executor: 'bullmq' })]);
  for (let i = 0; i < 20; i++) await pipe.run({});
  const branch = await measure(async () => consume(await pipe.run({})), 1, quick ? 300 : 1500, 100);
  await pipe.close();
  await stopWorkers(procs);

  const raw = await startWorkers(1, 'rawtrip', 'raw');
  const q = new Queue('rawtrip', { connection: redis.connection });
  const events = new QueueEvents('rawtrip', { connection: redis.connection });
  await events.waitUntilReady();
  const trip = async (): Promise<void> => {
    // Kept a while: waitUntilFinished reads the finished job, which removeOnComplete: true may have deleted.
    const job = await q.add('t', {}, { removeOnComplete: { count: 1000 } });
    consume(await job.waitUntilFinished(events, 30_000));
  };
  for (let i = 0; i < 20; i++) await trip();
  const rawNs = await measure(trip, 1, quick ? 300 : 1500, 100);
  await q.close();
  await events.close();
  await stopWorkers(raw);
  row('one-branch Parallel on bullmq (one job round trip), per run', branch, rawNs, 'baseline: raw BullMQ add + waitUntilFinished of a trivial job');
}

} finally {
  useBullmq(null);
  await stopWorkers(children);
  await redis.stop();
}
report(rows);
