/**
 * The executor contract: the one place that decides *where* one attempt of one step runs.
 *
 * The engine keeps retries, timeouts, merging and error wrapping for itself; an executor only invokes
 * an attempt. `inline` calls the function in this thread (it is what every step outside a Parallel
 * block uses, through a direct call). Worker threads (piscina, threads.ts) and child processes
 * (processes.ts) implement the same interface; registry.ts holds the kinds a pipeline can use and
 * the placement rule.
 *
 * @example
 * ```ts
 * const threads: Executor = {
 *   kind: 'threads',
 *   call: (c) => pool.run({ ref: c.moduleRef, ctx: c.context }, { signal: c.signal }),
 *   close: () => pool.destroy(),
 * };
 * ```
 */

/** Where a step attempt runs ('bullmq': a job on a BullMQ queue in Redis, registered by useBullmq, src/queue/executor.ts). */
export type ExecutorKind = 'inline' | 'threads' | 'processes' | 'bullmq';

/** All executor kinds, for option validation. */
export const EXECUTOR_KINDS: readonly ExecutorKind[] = Object.freeze(['inline', 'threads', 'processes', 'bullmq']);

/**
 * How a worker thread or process finds a step: the URL (or absolute path) of an ES module and the
 * name of its export. A closure has none and can only run inline.
 *
 * @example
 * ```ts
 * const ref: ModuleRef = { moduleUrl: import.meta.url, exportName: 'load' };
 * ```
 */
export interface ModuleRef {
  readonly moduleUrl: string;
  readonly exportName: string;
}

/** One attempt of one step, as handed to an executor. */
export interface StepCall {
  /** The step function itself (inline executors call it; worker executors use `moduleRef`). */
  readonly fn: (ctx: Record<string, unknown>, info: never) => unknown;
  /** Set when the step is addressable from another thread or process. */
  readonly moduleRef: ModuleRef | undefined;
  /** The context this attempt works on. A worker executor merges in-place changes back into it. */
  readonly context: Record<string, unknown>;
  /**
   * The `info` object the step receives (signal, attempt, runId, stepName, logger). Worker executors
   * send its plain fields and rebuild an AbortSignal on the other side.
   */
  readonly info: {
    readonly signal: AbortSignal;
    readonly attempt: number;
    readonly runId: string;
    readonly stepName: string;
    readonly stepVersion?: string;
    /** The pipeline's logger: lines a step writes through `info.logger` in a worker come back here. */
    readonly logger?: StepCallLogger;
  };
  /** Aborts at the attempt's deadline or when the run is cancelled: a worker executor terminates the worker. */
  readonly signal: AbortSignal;
  /**
   * Called once when a worker begins the attempt: its thread or process is up and the step's module
   * is about to be imported. The engine starts the attempt's deadline here, so a worker's start-up
   * (0.3–1.5 s for a new thread or process) and the wait for a free one never count against it; the
   * step's own module loading does. Given only to executors whose `reportsStart` is true, which
   * must then call it (a call never started has no deadline, only the run's cancellation), with the
   * worker's id ('thread 7', 'pid 1234') for the run history.
   */
  readonly onStarted?: (worker?: string) => void;
  /** Per-process memory cap (process executor only). */
  readonly memoryLimitMb: number | undefined;
  /**
   * Move the context's ArrayBuffers (and typed arrays' buffers) to the worker thread and back instead
   * of copying them (threads only; a process always copies). The caller gives them up: after the call
   * the buffers this context held are detached everywhere they are shared (other branches, the
   * caller's own objects), and the context holds the ones that came back. Set by the engine when a
   * step or Parallel block opts in; absent means copy.
   */
  readonly transfer?: boolean;
}

/** The four methods of the pipeline's logger an executor writes a worker's log lines to. */
export interface StepCallLogger {
  debug(objOrMessage: object | string, message?: string): void;
  info(objOrMessage: object | string, message?: string): void;
  warn(objOrMessage: object | string, message?: string): void;
  error(objOrMessage: object | string, message?: string): void;
}

/**
 * Runs step attempts somewhere. `call` returns what the step returned (or a promise of it); a
 * failure rejects with the step's error rebuilt with its class, code and message (see
 * `deserializeError`). It must settle promptly once `call.signal` aborts.
 *
 * @example
 * ```ts
 * const inline: Executor = { kind: 'inline', call: (c) => c.fn(c.context, c.info as never), close: async () => {} };
 * ```
 */
export interface Executor {
  readonly kind: ExecutorKind;
  /** True when `call` reports StepCall.onStarted; otherwise the deadline runs from the call. */
  readonly reportsStart?: boolean;
  call(call: StepCall): unknown;
  /** Releases pools and processes; awaits work in flight. */
  close(): Promise<void>;
}

/** Options an executor factory receives (pools are created lazily, per pipeline). */
export interface ExecutorFactoryOptions {
  /** Upper bound of concurrent attempts the pipeline will submit (the largest Parallel maxWorkers). */
  readonly maxWorkers: number;
}

export type ExecutorFactory = (options: ExecutorFactoryOptions) => Executor;

/**
 * The in-process executor: calls the step in this thread. Every step outside a worker runs this
 * way (the engine inlines the call for speed; this object is the same thing behind the interface).
 *
 * @example
 * ```ts
 * const value = inlineExecutor.call(stepCall);
 * ```
 */
export const inlineExecutor: Executor = Object.freeze({
  kind: 'inline' as const,
  call(call: StepCall): unknown {
    return call.fn(call.context, call.info as never);
  },
  async close(): Promise<void> {},
});

/**
 * The calls an executor has in flight, so `close()` can wait for them (the thread and process
 * executors share this).
 *
 * @example
 * ```ts
 * const inflight = new InFlight();
 * return inflight.track(pool.run(task));   // in call()
 * await inflight.settled();                // in close()
 * ```
 */
export class InFlight {
  private readonly calls = new Set<Promise<unknown>>();

  /** Keeps `done` until it settles and returns it. */
  track<T>(done: Promise<T>): Promise<T> {
    this.calls.add(done);
    const forget = (): void => { this.calls.delete(done); };
    done.then(forget, forget);
    return done;
  }

  /** Settles once every call tracked so far has. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.calls]);
  }
}
