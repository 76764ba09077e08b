/**
 * The 'threads' executor: step attempts on piscina 5 worker threads (thread-worker.ts).
 *
 * One pool per process, shared by every pipeline and created at the first call (nothing at import):
 * `max(os.availableParallelism(), largest maxWorkers asked)` threads, as many as there are cores
 * kept alive, the rest retired after a minute idle. It is reference-counted by the executors using
 * it (one per pipeline, made at the pipeline's first worker call) and destroyed when the last one
 * closes; idle threads are unref'd by piscina, so the pool never keeps the process alive on its own.
 * A pipeline that asks for more workers than the pool has gets a larger pool; the old one finishes
 * its tasks and closes.
 *
 * Hard timeouts: the engine aborts `call.signal` at the attempt's deadline or on cancellation; the
 * signal goes to `pool.run`, and piscina terminates the thread running the task (a synchronous
 * `for (;;) {}` included) and starts another. A step that calls `process.exit()` ends only its
 * thread; the call fails with WPIPE_ERR_WORKER_EXITED and the pool replaces the thread.
 *
 * @example
 * ```ts
 * import './threads.js';                       // registers 'threads'
 * const ex = createExecutor('threads', { maxWorkers: 4 });
 * const value = await ex.call(stepCall);       // runs in a worker thread
 * await ex.close();                            // the last close destroys the pool
 * ```
 */
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import type { Piscina } from 'piscina';
import { WpipeError } from '../errors.js';
import { InFlight, type Executor, type ExecutorFactoryOptions, type StepCall } from './executor.js';
import {
  LOG_TAG, STARTED_TAG, applyReply, cloneError, collectTransferables, encodeRequest, findUncloneable, isLogMessage, isStartedMessage, writeLog,
  type AttemptReply, type LogMessage,
} from './protocol.js';
import { memoryLimitError } from './limits.js';
import { workerEntry } from './worker-entry.js';

/** Threads above the core count are kept this long when idle (piscina idleTimeout; its timer is unref'd). */
const IDLE_MS = 60_000;
/** How long a reply waits for log lines still in flight on the other channel before it settles anyway. */
const LOG_GRACE_MS = 1_000;

interface PendingCall {
  readonly logger: StepCall['info']['logger'];
  /** StepCall.onStarted, until the thread says it has begun. */
  onStarted: ((worker?: string) => void) | undefined;
  seen: number;
  /** Set when the reply arrived before all its log lines. */
  waiting: { expected: number; resolve: () => void } | undefined;
}

/** One pool: every thread of it has the same heap cap (piscina's resourceLimits are per pool). */
interface CappedPool {
  readonly pool: Piscina;
  readonly size: number;
}

/** The process-wide pools (one per memory cap, `undefined` = uncapped) and who uses them. */
const shared = {
  users: 0,
  /** Largest maxWorkers of the executors open now. */
  wanted: 1,
  pools: new Map<number | undefined, CappedPool>(),
  retiring: new Set<Promise<void>>(),
  pending: new Map<number, PendingCall>(),
  nextId: 1,
};

function reportStarted(p: PendingCall | undefined, worker: string | undefined): void {
  const started = p?.onStarted;
  if (started === undefined) return;
  p!.onStarted = undefined;
  started(worker);
}

function onPoolMessage(m: unknown): void {
  if (isStartedMessage(m)) {
    reportStarted(shared.pending.get(m[STARTED_TAG]), m.worker);
    return;
  }
  if (!isLogMessage(m)) return;
  const p = shared.pending.get(m[LOG_TAG]);
  if (p === undefined) return; // a line from a step whose call has settled: nobody to give it to
  writeLog(p.logger, m as LogMessage);
  p.seen++;
  if (p.waiting !== undefined && p.seen >= p.waiting.expected) p.waiting.resolve();
}

function onPoolError(e: unknown): void {
  // A thread failed outside any task (a step's leftover timer threw after it returned): piscina
  // replaces it; without a listener the 'error' event would take this process down.
  process.emitWarning(`wpipe: a worker thread failed outside any step: ${e instanceof Error ? e.message : String(e)}`);
}

/** os.availableParallelism() costs a syscall (about 3 µs): read once. */
let cores = 0;

/** piscina, loaded at the first pool: importing wpipe must stay cheap (~20 ms to require it here). */
let PiscinaClass: typeof Piscina | undefined;
function piscina(): typeof Piscina {
  PiscinaClass ??= (createRequire(import.meta.url)('piscina') as { Piscina: typeof Piscina }).Piscina;
  return PiscinaClass;
}

/**
 * The pool for a memory cap. A capped pool's threads get V8 resourceLimits: the cap is the thread's
 * heap (old generation; the young generation is V8's default, a few MiB), and a thread that
 * outgrows it is terminated by V8 (ERR_WORKER_OUT_OF_MEMORY). Memory outside the heap (ArrayBuffer
 * contents, native allocations) belongs to the process and is not capped: a hard cap is the
 * processes executor's. Capped pools keep no idle threads warm (minThreads 0).
 */
function currentPool(cap: number | undefined): Piscina {
  if (cores === 0) cores = availableParallelism();
  const size = Math.max(cores, shared.wanted);
  const current = shared.pools.get(cap);
  if (current !== undefined && current.size >= size) return current.pool;
  if (current !== undefined) retire(current.pool);
  const entry = workerEntry('thread-worker');
  const pool = new (piscina())({
    filename: entry.file,
    execArgv: [...entry.execArgv],
    maxThreads: size,
    minThreads: cap === undefined ? Math.min(size, cores) : 0,
    idleTimeout: IDLE_MS,
    ...(cap === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: cap } }),
  });
  pool.on('message', onPoolMessage);
  pool.on('error', onPoolError);
  shared.pools.set(cap, { pool, size });
  return pool;
}

/** Lets a pool finish its tasks, then destroys it. */
function retire(pool: Piscina): void {
  const done: Promise<void> = pool.close().catch(() => {}).finally(() => shared.retiring.delete(done));
  shared.retiring.add(done);
}

async function releasePool(): Promise<void> {
  shared.users--;
  if (shared.users > 0) return;
  const pools = [...shared.pools.values()];
  shared.pools.clear();
  shared.wanted = 1;
  const closing = [...shared.retiring];
  for (const p of pools) closing.push(p.pool.destroy());
  await Promise.allSettled(closing);
}

function waitForLogs(p: PendingCall, expected: number): Promise<void> | undefined {
  if (p.seen >= expected) return undefined;
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, LOG_GRACE_MS);
    p.waiting = { expected, resolve: () => { clearTimeout(timer); resolve(); } };
  });
}

/** What a failed `pool.run` means for the step. */
function poolFailure(e: unknown, call: StepCall): unknown {
  if (call.signal.aborted) return call.signal.reason ?? e; // the engine has settled the attempt already
  const message = e instanceof Error ? e.message : String(e);
  const stepName = call.info.stepName;
  const cap = call.memoryLimitMb;
  if (cap !== undefined && (e as { code?: unknown } | null)?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
    return memoryLimitError(stepName, cap, 'threads', `V8 stopped its thread at the heap limit (${message})`, e);
  }
  const exited = /^worker exited with code: (-?\d+)/.exec(message);
  const why = exited
    ? `exited with code ${exited[1]} before the step settled (a step that calls process.exit() ends its thread)`
    : message === 'Terminating worker thread'
      ? 'was stopped: the thread pool was destroyed'
      : `died: ${message}`;
  return new WpipeError('WPIPE_ERR_WORKER_EXITED', `the worker thread running step '${stepName}' ${why}; the pool starts another thread`, {
    cause: e, details: { stepName, executor: 'threads', exitCode: exited ? Number(exited[1]) : undefined },
  });
}

/**
 * A 'threads' executor on the shared pool.
 *
 * @example
 * ```ts
 * const ex = createThreadExecutor({ maxWorkers: 2 });
 * ```
 */
export function createThreadExecutor(options: ExecutorFactoryOptions): Executor {
  shared.users++;
  shared.wanted = Math.max(shared.wanted, options.maxWorkers);
  const inflight = new InFlight();
  let closed = false;
  return {
    kind: 'threads',
    reportsStart: true,
    call(call: StepCall): Promise<unknown> {
      if (closed) return Promise.reject(new WpipeError('WPIPE_ERR_WORKER_EXITED', `step '${call.info.stepName}': the threads executor is closed`));
      const bad = findUncloneable(call.context, 'ctx');
      if (bad !== undefined) return Promise.reject(cloneError('thread', call.info.stepName, 'to', bad));
      const id = shared.nextId++;
      const req = encodeRequest(call, id);
      const pending: PendingCall = { logger: call.info.logger, onStarted: call.onStarted, seen: 0, waiting: undefined };
      shared.pending.set(id, pending);
      const transferList = call.transfer === true ? collectTransferables(call.context) : undefined;
      const run = currentPool(call.memoryLimitMb).run(req, { signal: call.signal, transferList: transferList as never }) as Promise<AttemptReply>;
      const finish = (reply: AttemptReply): unknown => {
        shared.pending.delete(id);
        // The reply can overtake the "started" message (they travel on two ports): it has started.
        reportStarted(pending, reply.worker);
        return applyReply(call, reply);
      };
      const done = run.then(
        (reply) => {
          const wait = waitForLogs(pending, reply.logs);
          return wait === undefined ? finish(reply) : wait.then(() => finish(reply));
        },
        (e: unknown) => {
          shared.pending.delete(id);
          throw poolFailure(e, call);
        },
      );
      return inflight.track(done);
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await inflight.settled();
      await releasePool();
    },
  };
}

/**
 * The pool's state, for tests and diagnostics: executors open, threads alive, calls awaiting a reply.
 *
 * @example
 * ```ts
 * threadPoolStats(); // { users: 0, threads: 0, pending: 0 }
 * ```
 */
export function threadPoolStats(): { users: number; threads: number; size: number; pending: number; pools: number } {
  let threads = 0;
  let size = 0;
  for (const p of shared.pools.values()) {
    threads += p.pool.threads.length;
    size = Math.max(size, p.size);
  }
  return { users: shared.users, threads, size, pending: shared.pending.size, pools: shared.pools.size };
}

