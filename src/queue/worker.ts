/**
 * A BullMQ worker for wpipe's jobs (`startWorker`, and `wpipe worker` on top of it): step attempts
 * from the queue `<name>` (see executor.ts), and, when given `pipelines`, whole runs from
 * `<name>-runs` (see runs.ts).
 *
 * Which modules a step job may import: a job names a module URL, and importing a module runs its
 * code, so a worker only imports what it was given — the `steps` modules (loaded at start, once) and
 * modules under `stepsDir`. A job naming another module fails with WPIPE_ERR_QUEUE_MODULE_REFUSED
 * (in its reply: the engine sees the step fail). Hosts with different checkouts: a job whose URL is
 * not found as is runs a `steps` module with the same file name.
 *
 * @example
 * ```ts
 * const w = await startWorker({ connection: 'redis://127.0.0.1:6379', queue: 'orders', steps: ['./steps.js'] });
 * // …
 * await w.close();
 * ```
 */
import { hostname } from 'node:os';
import { basename, isAbsolute, relative, resolve as resolvePath, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WpipeError, describeType, invalidOption, serializeError } from '../errors.js';
import { runAttempt, type AttemptReply, type AttemptRequest, type LogMessage } from '../parallel/protocol.js';
import { resolveQueue, type QueueConnection, type RunJobData, type StepJobData } from './config.js';
import { CONNECT_TIMEOUT_MS, loadBullmq, probe, withTimeout, type StepJobResult } from './executor.js';
import { runJob, loadPipelines, type QueuePipeline } from './runs.js';
import { importModule } from '../dynamic-import.js';
import { nodeV8 } from '../lazy-builtins.js';

export interface StartWorkerOptions {
  /** The Redis server: a redis:// URL or ioredis options. */
  readonly connection: QueueConnection;
  /** The queue name (default 'wpipe'), as given to useBullmq. */
  readonly queue?: string;
  /** BullMQ's key prefix (default 'bull'). */
  readonly prefix?: string;
  /** Jobs run at once (default 1; step attempts are async: a CPU-bound step wants 1 per process). */
  readonly concurrency?: number;
  /** Step modules to import at start (paths or file: URLs); a job may name any export of these. */
  readonly steps?: readonly string[];
  /** A folder: a job may name any module under it (imported at its first job). */
  readonly stepsDir?: string;
  /**
   * A module (path or URL) exporting Pipelines: the worker also runs whole runs (`pipe.enqueue`) of
   * the pipelines it exports, found by their pipelineName.
   */
  readonly pipelines?: string;
  /** BullMQ's lock duration in ms (default 30 000): a dead worker's job is noticed after about this long. */
  readonly lockDurationMs?: number;
  /** How often a run job whose worker died is retried by BullMQ's stalled check (default 3). */
  readonly maxStalledRuns?: number;
}

export interface WpipeWorker {
  /** host:pid, as it appears in job results. */
  readonly id: string;
  /** Stops taking jobs, waits for the ones running, closes its Redis connections. */
  close(): Promise<void>;
}

/**
 * Starts a worker; resolves once it is connected and taking jobs.
 *
 * @example
 * ```ts
 * const w = await startWorker({ connection: 'redis://10.0.0.5:6379', queue: 'etl', stepsDir: './steps', concurrency: 2 });
 * ```
 */
export async function startWorker(options: StartWorkerOptions): Promise<WpipeWorker> {
  const where = 'startWorker()';
  if (typeof options !== 'object' || options === null) throw invalidOption(`${where}: expected options { connection, queue, steps | stepsDir }, got ${describeType(options)}`);
  const known = ['connection', 'queue', 'prefix', 'concurrency', 'steps', 'stepsDir', 'pipelines', 'lockDurationMs', 'maxStalledRuns'];
  for (const k of Object.keys(options)) if (!known.includes(k)) throw invalidOption(`${where}: unknown option '${k}' (known: ${known.join(', ')})`);
  const q = resolveQueue(where, { connection: options.connection, ...(options.queue === undefined ? {} : { name: options.queue }), ...(options.prefix === undefined ? {} : { prefix: options.prefix }) });
  const concurrency = options.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1000) throw invalidOption(`${where}: concurrency must be an integer 1-1000, got ${String(concurrency)}`);
  const lockDuration = options.lockDurationMs ?? 30_000;
  if (!Number.isInteger(lockDuration) || lockDuration < 100) throw invalidOption(`${where}: lockDurationMs must be an integer ≥ 100, got ${String(lockDuration)}`);
  const maxStalledRuns = options.maxStalledRuns ?? 3;
  if (!Number.isInteger(maxStalledRuns) || maxStalledRuns < 0) throw invalidOption(`${where}: maxStalledRuns must be an integer ≥ 0, got ${String(maxStalledRuns)}`);
  if (options.steps !== undefined && (!Array.isArray(options.steps) || options.steps.some((s) => typeof s !== 'string'))) {
    throw invalidOption(`${where}: steps must be an array of module paths or URLs`);
  }
  if (options.stepsDir !== undefined && typeof options.stepsDir !== 'string') throw invalidOption(`${where}: stepsDir must be a folder path`);
  if ((options.steps ?? []).length === 0 && options.stepsDir === undefined && options.pipelines === undefined) {
    throw invalidOption(`${where}: give steps (modules to import), stepsDir (a folder jobs may import from) or pipelines: a worker imports only what it is given`);
  }

  const stepUrls = (options.steps ?? []).map(toUrl);
  // Import them now: a module that cannot load stops the worker at start, not at its first job.
  for (const u of stepUrls) {
    try {
      await importModule(u);
    } catch (e) {
      throw new WpipeError('WPIPE_ERR_MODULE_IMPORT', `${where}: the step module ${u} could not be imported: ${e instanceof Error ? e.message : String(e)}`, { cause: e, details: { module: u } });
    }
  }
  const stepsDir = options.stepsDir === undefined ? undefined : resolvePath(options.stepsDir);
  let pipelines: Map<string, QueuePipeline> | undefined;
  if (options.pipelines !== undefined) pipelines = await loadPipelines(where, toUrl(options.pipelines));

  const id = `${hostname()}:${process.pid}`;
  const { Worker } = await loadBullmq();
  await probe(q);
  const { Redis } = await importModule<typeof import('ioredis')>('ioredis');

  // Aborts: the engine publishes the job id of an attempt it gave up on.
  const running = new Map<string, AbortController>();
  const sub = new Redis({ ...q.connection, lazyConnect: true } as never);
  sub.on('error', () => {});
  // An abort can overtake the job's start here (the deadline runs from BullMQ's 'active' event):
  // remember the last few ids so such an attempt starts aborted.
  const abortedEarly = new Set<string>();
  const abortReason = (): Error => {
    const reason = new Error('the engine gave up on this attempt (deadline or cancellation)');
    reason.name = 'AbortError';
    return reason;
  };
  sub.on('message', (_channel: string, jobId: string) => {
    const ac = running.get(jobId);
    if (ac !== undefined) {
      ac.abort(abortReason());
      return;
    }
    abortedEarly.add(jobId);
    if (abortedEarly.size > 1000) abortedEarly.delete(abortedEarly.values().next().value!);
  });

  const localUrl = (url: string): string | undefined => {
    const abs = isAbsolute(url) ? pathToFileURL(url).href : url;
    if (stepUrls.includes(abs)) return abs;
    if (stepsDir !== undefined && abs.startsWith('file:')) {
      const rel = relative(stepsDir, fileURLToPath(abs));
      if (rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) && !rel.split(sep).includes('..')) return abs;
    }
    const name = basename(abs);
    return stepUrls.find((u) => basename(u) === name);
  };

  const runStep = async (jobId: string, data: StepJobData): Promise<string> => {
    let req: AttemptRequest;
    try {
      req = nodeV8().deserialize(Buffer.from(data.request, 'base64')) as AttemptRequest;
    } catch (e) {
      throw new Error(`wpipe: the job's request could not be read: ${e instanceof Error ? e.message : String(e)}`);
    }
    const lines: LogMessage[] = [];
    let reply: AttemptReply;
    const url = localUrl(req.moduleUrl);
    if (url === undefined) {
      const error = new WpipeError('WPIPE_ERR_QUEUE_MODULE_REFUSED',
        `step '${req.stepName}': worker ${id} does not import ${req.moduleUrl}: it is not one of its steps modules${stepsDir === undefined ? '' : ` nor under ${stepsDir}`} (start it with --steps or --steps-dir covering it)`,
        { details: { stepName: req.stepName, moduleUrl: req.moduleUrl, worker: id } });
      reply = { id: req.id, ok: false, failure: { kind: 'error', error: serializeError(error) }, context: undefined, logs: 0 };
    } else {
      const ac = new AbortController();
      running.set(jobId, ac);
      if (abortedEarly.delete(jobId)) ac.abort(abortReason());
      try {
        reply = await runAttempt({ ...req, moduleUrl: url }, (line) => { lines.push(line); }, ac.signal);
      } finally {
        running.delete(jobId);
      }
    }
    const result: StepJobResult = { reply, lines, worker: id };
    try {
      return nodeV8().serialize(result).toString('base64');
    } catch (e) {
      const error = new WpipeError('WPIPE_ERR_WORKER_CLONE', `step '${req.stepName}': its reply cannot be sent back from worker ${id}: ${e instanceof Error ? e.message : String(e)}`, {
        details: { stepName: req.stepName, executor: 'bullmq' },
      });
      return nodeV8().serialize({ reply: { id: req.id, ok: false, failure: { kind: 'error', error: serializeError(error) }, context: undefined, logs: 0 }, lines: [], worker: id } satisfies StepJobResult).toString('base64');
    }
  };

  const common = { connection: q.connection, prefix: q.prefix, concurrency, lockDuration, stalledInterval: Math.min(30_000, lockDuration), autorun: false } as const;
  const stepWorker = new Worker(q.name, async (job) => runStep(job.id!, job.data as StepJobData), {
    ...common,
    // The engine retries and times out step attempts: a job whose worker died fails (the engine sees
    // WPIPE_ERR_QUEUE_JOB_FAILED or its own deadline first), it never runs again on its own.
    maxStalledCount: 0,
  });
  stepWorker.on('error', () => {});
  let runWorker: import('bullmq').Worker | undefined;
  if (pipelines !== undefined) {
    const table = pipelines;
    runWorker = new Worker(q.runsName, async (job) => runJob(table, job.data as RunJobData, id), { ...common, maxStalledCount: maxStalledRuns });
    runWorker.on('error', () => {});
  }
  try {
    await withTimeout((async () => {
      await sub.connect();
      await sub.subscribe(q.abortChannel);
      await stepWorker.waitUntilReady();
      if (runWorker !== undefined) await runWorker.waitUntilReady();
    })(), CONNECT_TIMEOUT_MS, `Redis did not answer within ${CONNECT_TIMEOUT_MS / 1000} s`);
  } catch (e) {
    sub.disconnect();
    await Promise.allSettled([stepWorker.close(true), runWorker?.close(true)]);
    throw new WpipeError('WPIPE_ERR_QUEUE_UNAVAILABLE', `${where}: Redis at ${q.label} cannot be reached: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e, details: { queue: q.name, host: q.connection.host, port: q.connection.port },
    });
  }
  void stepWorker.run().catch(() => {});
  void runWorker?.run().catch(() => {});
  let closing: Promise<void> | undefined;
  return {
    id,
    close(): Promise<void> {
      return (closing ??= (async () => {
        await Promise.allSettled([stepWorker.close(), runWorker?.close()]);
        for (const p of pipelines?.values() ?? []) await p.close().catch(() => {});
        await sub.quit().catch(() => sub.disconnect());
      })());
    },
  };
}

function toUrl(p: string): string {
  if (/^file:/.test(p)) return p;
  if (/^[a-z][a-z0-9+.-]*:/i.test(p) && !/^[a-z]:[\\/]/i.test(p)) return p;
  return pathToFileURL(resolvePath(p)).href;
}
