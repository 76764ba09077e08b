/**
 * The 'bullmq' executor: each attempt of a step that runs in it (a Parallel branch with
 * `executor: 'bullmq'`, or a `step({ executor: 'bullmq' })`) becomes one job on a BullMQ queue in
 * Redis, run by a worker (`startWorker`, `wpipe worker`) on any host that has the step's module.
 *
 * - Registered by {@link useBullmq}, not on import: it needs a Redis. Until then asking for it is
 *   WPIPE_ERR_EXECUTOR_UNAVAILABLE at setSteps. Each pipeline's executor opens its own Queue and
 *   QueueEvents (three Redis connections) at its first call and closes them at `pipe.close()`.
 * - The job carries the step's module URL and export name, the context, attempt, run id and step
 *   name (protocol.ts AttemptRequest, v8-serialized, so a context crosses as it does to a child
 *   process); the reply (the job's return value) carries the step's value, the context as the step
 *   left it and the step's error with class, code and cause (serializeError). A step's failure is a
 *   completed job whose reply says so; a *failed* job means the job itself failed (its worker died
 *   and the stalled check gave up on it, a worker refused the module): WPIPE_ERR_QUEUE_JOB_FAILED.
 * - Retries and deadlines stay the engine's: `attempts: 1`, one job per engine attempt. The deadline
 *   starts when a worker takes the job (the 'active' event → StepCall.onStarted); at the deadline
 *   (or the run's cancellation) the call rejects at once, a job no worker took yet is removed, and
 *   the worker running it is told (Redis pub/sub) to abort the attempt's `info.signal`.
 *
 * @example
 * ```ts
 * useBullmq({ connection: 'redis://127.0.0.1:6379', name: 'orders' });
 * const pipe = new Pipeline().setSteps([new Parallel({ steps: [a, b], executor: 'bullmq' })]);
 * ```
 */
import { WpipeError } from '../errors.js';
import { InFlight, type Executor, type StepCall } from '../parallel/executor.js';
import { registerExecutor } from '../parallel/registry.js';
import { applyReply, cloneError, encodeRequest, findUncloneable, writeLog, type AttemptReply, type LogMessage } from '../parallel/protocol.js';
import { queueUnavailable, resolveQueue, type QueueOptions, type ResolvedQueue, type StepJobData } from './config.js';
import { importModule } from '../dynamic-import.js';
import { nodeCrypto, nodeV8 } from '../lazy-builtins.js';

/** A step job's return value: the worker's reply and the log lines the step wrote (v8, base64). */
export interface StepJobResult {
  readonly reply: AttemptReply;
  readonly lines: readonly LogMessage[];
  readonly worker: string;
}

/** How long opening a queue may take before the attempt fails with WPIPE_ERR_QUEUE_UNAVAILABLE (ioredis itself reconnects forever). */
export const CONNECT_TIMEOUT_MS = 10_000;

let configured: ResolvedQueue | undefined;

/**
 * Points this process's BullMQ layer at a Redis and a queue name and registers the 'bullmq'
 * executor; `null` unregisters it (pipelines already made keep theirs until closed).
 *
 * @example
 * ```ts
 * useBullmq({ connection: { host: 'redis.internal', port: 6379 }, name: 'etl' });
 * ```
 */
export function useBullmq(options: QueueOptions | null): void {
  if (options === null) {
    configured = undefined;
    registerExecutor('bullmq', null);
    return;
  }
  const q = resolveQueue('useBullmq()', options);
  configured = q;
  registerExecutor('bullmq', () => createBullmqExecutor(q));
}

/** The queue useBullmq configured (pipe.enqueue uses it). */
export function configuredQueue(): ResolvedQueue | undefined {
  return configured;
}

type Bull = typeof import('bullmq');
let bullPromise: Promise<Bull> | undefined;
/** bullmq (and ioredis), imported at the first job: a pipeline that never queues never loads them. */
export function loadBullmq(): Promise<Bull> {
  return (bullPromise ??= importModule<typeof import('bullmq')>('bullmq'));
}

interface Pending {
  readonly call: StepCall;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
  started: boolean;
}

/**
 * A 'bullmq' executor on queue `q` (useBullmq registers a factory making these).
 *
 * @example
 * ```ts
 * const ex = createBullmqExecutor(resolveQueue('test', { connection: url }));
 * ```
 */
export function createBullmqExecutor(q: ResolvedQueue): Executor {
  const inflight = new InFlight();
  const abandoning = new InFlight();
  const pending = new Map<string, Pending>();
  let closed = false;
  let opened: Promise<{ queue: import('bullmq').Queue; events: import('bullmq').QueueEvents }> | undefined;

  const open = (): Promise<{ queue: import('bullmq').Queue; events: import('bullmq').QueueEvents }> => (opened ??= (async () => {
    const { Queue, QueueEvents } = await loadBullmq();
    // QueueEvents reads from '$' by default: events written before its first blocking XREAD (which
    // can come after waitUntilReady on a loaded machine) would be missed, and a call would wait for a
    // completion it never hears of. Start from the stream's last entry as of now instead.
    const lastEventId = await probe(q, `${q.prefix}:${q.name}:events`);
    const queue = new Queue(q.name, { connection: q.connection, prefix: q.prefix });
    const events = new QueueEvents(q.name, { connection: q.connection, prefix: q.prefix, lastEventId });
    // Errors surface on the calls (add fails, deadlines); an 'error' listener keeps them from
    // being unhandled while ioredis reconnects.
    queue.on('error', () => {});
    events.on('error', () => {});
    events.on('active', ({ jobId }) => {
      const p = pending.get(jobId);
      if (p !== undefined && !p.started) {
        p.started = true;
        p.call.onStarted?.(`bullmq job ${jobId}`);
      }
    });
    events.on('completed', ({ jobId, returnvalue }) => {
      const p = pending.get(jobId);
      if (p === undefined) return;
      pending.delete(jobId);
      let result: StepJobResult;
      try {
        result = nodeV8().deserialize(Buffer.from(String(returnvalue), 'base64')) as StepJobResult;
      } catch (e) {
        p.reject(jobFailed(q, p.call, jobId, `its return value could not be read (${e instanceof Error ? e.message : String(e)})`, e));
        return;
      }
      for (const line of result.lines) writeLog(p.call.info.logger, line);
      try {
        p.resolve(applyReply(p.call, result.reply));
      } catch (e) {
        p.reject(e);
      }
    });
    events.on('failed', ({ jobId, failedReason }) => {
      const p = pending.get(jobId);
      if (p === undefined) return;
      pending.delete(jobId);
      p.reject(jobFailed(q, p.call, jobId, failedReason, undefined));
    });
    try {
      await withTimeout(Promise.all([queue.waitUntilReady(), events.waitUntilReady()]), CONNECT_TIMEOUT_MS, `Redis did not answer within ${CONNECT_TIMEOUT_MS / 1000} s`);
    } catch (e) {
      // close() and disconnect() wait for a connection that never comes: ask them down, do not wait.
      void Promise.allSettled([queue.disconnect(), events.disconnect()]);
      opened = undefined;
      throw queueUnavailable(q, 'be opened', e);
    }
    return { queue, events };
  })());

  const attempt = async (call: StepCall): Promise<unknown> => {
    const stepName = call.info.stepName;
    if (closed) throw new WpipeError('WPIPE_ERR_WORKER_EXITED', `step '${stepName}': the bullmq executor is closed`, { details: { stepName, executor: 'bullmq' } });
    const req = encodeRequest(call, 0);
    const bad = findUncloneable(call.context, 'ctx');
    if (bad !== undefined) throw cloneError('process', stepName, 'to', bad);
    let request: string;
    try {
      request = nodeV8().serialize(req).toString('base64');
    } catch (e) {
      throw cloneError('process', stepName, 'to', 'ctx', e);
    }
    const { queue } = await open();
    if (call.signal.aborted) throw call.signal.reason;
    const jobId = nodeCrypto().randomUUID();
    const data: StepJobData = {
      v: 1, runId: req.runId, stepName, attempt: req.attempt, moduleUrl: req.moduleUrl, exportName: req.exportName, request,
    };
    const done = new Promise<unknown>((resolve, reject) => {
      pending.set(jobId, { call, resolve, reject, started: false });
    });
    const onAbort = (): void => {
      const p = pending.get(jobId);
      if (p === undefined) return;
      pending.delete(jobId);
      p.reject(call.signal.reason);
      void abandoning.track(abandon(queue, jobId));
    };
    call.signal.addEventListener('abort', onAbort, { once: true });
    try {
      await queue.add('step', data, { jobId, attempts: 1, removeOnComplete: true, removeOnFail: { count: 1000 } });
    } catch (e) {
      pending.delete(jobId);
      call.signal.removeEventListener('abort', onAbort);
      throw queueUnavailable(q, `add a job for step '${stepName}'`, e);
    }
    try {
      return await done;
    } finally {
      call.signal.removeEventListener('abort', onAbort);
    }
  };

  /** A job given up on: removed if no worker has it, else its worker is told to abort the attempt. */
  let publisher: Promise<import('ioredis').Redis> | undefined;
  const abandon = async (queue: import('bullmq').Queue, jobId: string): Promise<void> => {
    try {
      publisher ??= importModule<typeof import('ioredis')>('ioredis').then(({ Redis }) => {
        const r = new Redis(q.connection as never);
        r.on('error', () => {});
        return r;
      });
      await (await publisher).publish(q.abortChannel, jobId);
      const job = await queue.getJob(jobId);
      if (job !== undefined && (await job.isWaiting())) await job.remove();
    } catch {
      // Redis away or the job is locked by its worker: the abort message is what reaches it
    }
  };

  return {
    kind: 'bullmq',
    reportsStart: true,
    call(call: StepCall): Promise<unknown> {
      return inflight.track(attempt(call));
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await inflight.settled();
      await abandoning.settled();
      const o = opened;
      opened = undefined;
      if (o === undefined) return;
      let parts: Awaited<typeof o>;
      try {
        parts = await o;
      } catch {
        return;
      }
      await Promise.allSettled([parts.queue.close(), parts.events.close(), publisher?.then((r) => r.quit().catch(() => r.disconnect()))]);
    },
  };
}

function jobFailed(q: ResolvedQueue, call: StepCall, jobId: string, reason: string, cause: unknown): WpipeError {
  const stepName = call.info.stepName;
  return new WpipeError('WPIPE_ERR_QUEUE_JOB_FAILED', `step '${stepName}': its BullMQ job ${jobId} on ${q.label} failed: ${reason}`, {
    cause, details: { stepName, executor: 'bullmq', jobId, queue: q.name, failedReason: reason },
  });
}

/** `p`, or a rejection with `message` after `ms` (the timer never keeps the process alive). */
export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
    timer.unref();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * One connection attempt without retries: BullMQ's clients reconnect forever (and keep the process
 * alive doing so), so a Redis that is not there is found out here, before any of them exists.
 * Returns the id of the last entry of `stream` ('0-0' when it has none or none is asked).
 *
 * @example
 * ```ts
 * await probe(q); // throws WPIPE_ERR_QUEUE_UNAVAILABLE
 * ```
 */
export async function probe(q: ResolvedQueue, stream?: string): Promise<string> {
  const { Redis } = await importModule<typeof import('ioredis')>('ioredis');
  const r = new Redis({ ...q.connection, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: CONNECT_TIMEOUT_MS } as never);
  let last: unknown;
  r.on('error', (e) => { last = e; });
  let id = '0-0';
  try {
    await r.connect();
    await r.ping();
    if (stream !== undefined) {
      const tail = await r.xrevrange(stream, '+', '-', 'COUNT', 1);
      if (tail.length > 0) id = tail[0]![0];
    }
  } catch (e) {
    r.disconnect();
    throw queueUnavailable(q, 'be reached', last ?? e);
  }
  await r.quit().catch(() => r.disconnect());
  return id;
}
