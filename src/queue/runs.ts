/**
 * Whole runs as BullMQ jobs: `pipe.enqueue(data, { runId })` puts a run on `<queue>-runs` with the
 * run id as its job id (BullMQ keeps one job per id: enqueueing an id twice adds nothing), and a
 * worker started with `pipelines` runs it with `pipe.run(data, { runId })` on its own Pipeline
 * object, so the run is recorded in that worker's `trackingDb` with its checkpoints.
 *
 * A worker that dies mid-run leaves the job active until its lock expires; BullMQ's stalled-job
 * check then puts it back (up to `maxStalledRuns` times) and another worker takes it. The retry calls
 * `pipe.run` with the same run id: against the same trackingDb (the same host, or a file on a shared
 * disk) the run id's claim lets only one process execute it and the retry resumes from the last
 * checkpoint; a worker with a different trackingDb has no record of it and runs it from the start.
 *
 * @example
 * ```ts
 * useBullmq({ connection: 'redis://127.0.0.1:6379', name: 'orders' });
 * await pipe.enqueue({ orderId: 7 }, { runId: 'order-7' });
 * ```
 */
import { WpipeError, describeType, invalidOption } from '../errors.js';
import { isPipeline } from '../engine/items.js';
import type { Context } from '../engine/types.js';
import { queueUnavailable, resolveQueue, type QueueOptions, type ResolvedQueue, type RunJobData } from './config.js';
import { configuredQueue, loadBullmq, probe } from './executor.js';
import { importModule } from '../dynamic-import.js';
import { nodeV8 } from '../lazy-builtins.js';

/**
 * A Pipeline as the runs queue uses it: enqueue reads its name and own queue, the worker runs and
 * closes it. (Not the engine's PipelineLike, which is a Pipeline as a step list holds it.)
 */
export interface QueuePipeline {
  readonly pipelineName: string;
  /** @internal The pipeline's own queue (loadPipeline's `bullmq` option): enqueue's default before useBullmq's. */
  readonly _queue?: ResolvedQueue | undefined;
  run(data?: Context, options?: { runId?: string }): Promise<Context>;
  close(): Promise<unknown>;
}

export interface EnqueueOptions {
  /** The run id, and the job id (required: it is what makes the run happen once). */
  readonly runId: string;
  /** BullMQ attempts for a run that fails (default 1: a failed run is in the failed set with its error). */
  readonly attempts?: number;
  /** Another queue than the pipeline's own (loadPipeline's `bullmq`) or useBullmq's. */
  readonly queue?: QueueOptions;
}

/** What enqueue resolves to. */
export interface EnqueuedRun {
  readonly runId: string;
  readonly jobId: string;
  /** The queue the job is on (`<name>-runs`). */
  readonly queue: string;
  /** False when a job with this run id was already on the queue (nothing was added). */
  readonly added: boolean;
}

/**
 * Puts one run of `pipe` on the runs queue.
 *
 * @example
 * ```ts
 * const { added } = await enqueueRun(pipe, { n: 1 }, { runId: 'r-1' });
 * ```
 */
export async function enqueueRun(pipe: QueuePipeline, data: Context | undefined, options: EnqueueOptions): Promise<EnqueuedRun> {
  const where = 'enqueue()';
  if (typeof options !== 'object' || options === null) throw invalidOption(`${where}: options { runId } are required (the run id is the job id)`);
  for (const k of Object.keys(options)) if (!['runId', 'attempts', 'queue'].includes(k)) throw invalidOption(`${where}: unknown option '${k}' (known: runId, attempts, queue)`);
  if (typeof options.runId !== 'string' || options.runId === '' || options.runId.includes(':') || /^\d+$/.test(options.runId)) {
    throw invalidOption(`${where}: runId must be a non-empty string without ':' and not all digits (BullMQ job ids), got ${typeof options.runId === 'string' ? `'${options.runId}'` : describeType(options.runId)}`);
  }
  const attempts = options.attempts ?? 1;
  if (!Number.isInteger(attempts) || attempts < 1 || attempts > 100) throw invalidOption(`${where}: attempts must be an integer 1-100, got ${String(attempts)}`);
  const q = options.queue !== undefined ? resolveQueue(where, options.queue) : (pipe._queue ?? configuredQueue());
  if (q === undefined) {
    throw new WpipeError('WPIPE_ERR_EXECUTOR_UNAVAILABLE', `${where}: no queue: call useBullmq({ connection, name }) first, or pass { queue: { connection, name } }`, { details: { executor: 'bullmq' } });
  }
  let payload: string;
  try {
    payload = nodeV8().serialize(data ?? {}).toString('base64');
  } catch (e) {
    throw new WpipeError('WPIPE_ERR_WORKER_CLONE', `${where}: the initial context cannot be put on a queue: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const job: RunJobData = { v: 1, pipeline: pipe.pipelineName, runId: options.runId, data: payload };
  const { Queue } = await loadBullmq();
  await probe(q);
  const queue = new Queue(q.runsName, { connection: q.connection, prefix: q.prefix });
  queue.on('error', () => {});
  try {
    const added = await queue.add('run', job, { jobId: options.runId, attempts, removeOnComplete: { count: 10_000 }, removeOnFail: { count: 10_000 } });
    // BullMQ returns the existing job for a duplicate id: ours is new if it carries our timestamp.
    const fresh = (await queue.getJob(options.runId))?.timestamp === added.timestamp && added.data.data === payload;
    return { runId: options.runId, jobId: added.id ?? options.runId, queue: q.runsName, added: fresh };
  } catch (e) {
    throw queueUnavailable(q, `add run '${options.runId}'`, e);
  } finally {
    await queue.close().catch(() => {});
  }
}

/**
 * The Pipelines a module exports, by pipelineName.
 *
 * @example
 * ```ts
 * const table = await loadPipelines('startWorker()', pathToFileURL('./pipelines.js').href);
 * ```
 */
export async function loadPipelines(where: string, url: string): Promise<Map<string, QueuePipeline>> {
  let mod: Record<string, unknown>;
  try {
    mod = await importModule(url);
  } catch (e) {
    throw new WpipeError('WPIPE_ERR_MODULE_IMPORT', `${where}: the pipelines module ${url} could not be imported: ${e instanceof Error ? e.message : String(e)}`, { cause: e, details: { module: url } });
  }
  const out = new Map<string, QueuePipeline>();
  for (const v of Object.values(mod)) {
    if (isPipeline(v)) out.set((v as unknown as QueuePipeline).pipelineName, v as unknown as QueuePipeline);
  }
  if (out.size === 0) throw new WpipeError('WPIPE_ERR_MODULE_IMPORT', `${where}: ${url} exports no Pipeline`, { details: { module: url } });
  return out;
}

/**
 * Runs one run job on this worker's pipeline; its value is the job's return value, its failure the
 * job's (BullMQ keeps only the message as failedReason: the code goes in front of it).
 */
export async function runJob(table: Map<string, QueuePipeline>, data: RunJobData, _worker: string): Promise<Context> {
  const pipe = table.get(data.pipeline);
  if (pipe === undefined) {
    throw new WpipeError('WPIPE_ERR_QUEUE_MODULE_REFUSED', `WPIPE_ERR_QUEUE_MODULE_REFUSED: run '${data.runId}': this worker has no pipeline named '${data.pipeline}' (it has ${[...table.keys()].map((k) => `'${k}'`).join(', ')})`, {
      details: { pipeline: data.pipeline, runId: data.runId },
    });
  }
  const initial = nodeV8().deserialize(Buffer.from(data.data, 'base64')) as Context;
  try {
    return await pipe.run(initial, { runId: data.runId });
  } catch (e) {
    if (e instanceof WpipeError && !e.message.startsWith(e.code)) e.message = `${e.code}: ${e.message}`;
    throw e;
  }
}
