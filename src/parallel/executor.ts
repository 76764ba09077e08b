/**
 * The executor contract: the one place that decides *where* one attempt of one step runs.
 *
 * The engine keeps retries, timeouts, merging and error wrapping for itself; an executor only invokes
 * an attempt. `inline` calls the function in this thread (it is what every step outside a Parallel
 * block uses, through a direct call). Worker threads (piscina, threads.ts) and child processes
 * (processes.ts) register their own executors with `registerExecutor` when they are imported
 * (src/parallel/index.ts imports both); nothing in src/engine changes when they do.
 *
 * @example
 * ```ts
 * import { registerExecutor } from './executor.js';
 * registerExecutor('threads', () => ({
 *   kind: 'threads',
 *   call: (c) => pool.run({ ref: c.moduleRef, ctx: c.context }, { signal: c.signal }),
 *   close: () => pool.destroy(),
 * }));
 * ```
 */
import { WpipeError, invalidOption } from '../errors.js';

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

const factories = new Map<ExecutorKind, ExecutorFactory>([['inline', () => inlineExecutor]]);

/**
 * Makes an executor kind available (the piscina and process executors call this). Replaces an
 * earlier registration of the same kind; `null` removes it.
 *
 * @example
 * ```ts
 * registerExecutor('threads', (o) => createThreadExecutor(o));
 * ```
 */
export function registerExecutor(kind: ExecutorKind, factory: ExecutorFactory | null): void {
  if (!EXECUTOR_KINDS.includes(kind)) throw invalidOption(`registerExecutor: unknown executor kind '${String(kind)}'`);
  if (factory === null) {
    // Unregistering (tests, or a pool that failed to start); the in-process executor always stays.
    if (kind === 'inline') throw invalidOption('registerExecutor: the inline executor cannot be removed');
    factories.delete(kind);
    return;
  }
  if (typeof factory !== 'function') throw invalidOption('registerExecutor: factory must be a function');
  factories.set(kind, factory);
}

/**
 * Whether an executor kind can be used in this process.
 *
 * @example
 * ```ts
 * if (!isExecutorAvailable('threads')) console.log('threads not available');
 * ```
 */
export function isExecutorAvailable(kind: ExecutorKind): boolean {
  return factories.has(kind);
}

/**
 * Creates an executor of a registered kind.
 *
 * @example
 * ```ts
 * const ex = createExecutor('inline', { maxWorkers: 4 });
 * ```
 */
export function createExecutor(kind: ExecutorKind, options: ExecutorFactoryOptions): Executor {
  const factory = factories.get(kind);
  if (!factory) throw executorUnavailable(kind);
  return factory(options);
}

function executorUnavailable(kind: ExecutorKind): WpipeError {
  return new WpipeError(
    'WPIPE_ERR_EXECUTOR_UNAVAILABLE',
    kind === 'bullmq'
      ? `the 'bullmq' executor needs a Redis: call useBullmq({ connection, name }) before setSteps`
      : `the '${kind}' executor is not available in this build; use executor: 'inline' (in-process) instead`,
    { details: { executor: kind } },
  );
}

/** What the placement rule looks at for one step inside a Parallel block. */
export interface PlacementRequest {
  /** `executor` option of the Parallel block, if given. */
  readonly forced: ExecutorKind | undefined;
  /** `useProcesses` option of the Parallel block. */
  readonly useProcesses: boolean;
  /** Whether the step carries a module reference. */
  readonly addressable: boolean;
  /** Which pipeline class runs the block: PipelineAsync keeps branches in-process by default. */
  readonly variant: 'pipeline' | 'async';
  /** Where the step is, for error messages. */
  readonly where: string;
  /**
   * Kinds the pipeline brings itself, ahead of the registered ones (a pipeline loaded with
   * loadPipeline's `bullmq` queue has its own 'bullmq' executor): available even when not registered.
   */
  readonly provided?: ReadonlySet<ExecutorKind>;
}

/**
 * The placement rule of docs/architecture.md "Run semantics": a forced `executor` wins; `useProcesses` puts
 * every branch in a child process; otherwise, in `Pipeline`, addressable steps go to worker threads
 * (when that executor is registered) and closures stay inline; `PipelineAsync` stays inline.
 * Asking for a worker for a closure is an error here, at setSteps, never a hang at run time.
 *
 * @example
 * ```ts
 * chooseExecutorKind({ forced: undefined, useProcesses: false, addressable: false, variant: 'pipeline', where: 'steps[0]' }); // 'inline'
 * ```
 */
export function chooseExecutorKind(req: PlacementRequest): ExecutorKind {
  let kind: ExecutorKind;
  if (req.forced) kind = req.forced;
  else if (req.useProcesses) kind = 'processes';
  else if (req.variant === 'pipeline' && req.addressable && factories.has('threads')) kind = 'threads';
  else kind = 'inline';
  if (kind !== 'inline') {
    if (!req.addressable) {
      throw new WpipeError(
        'WPIPE_ERR_TASK_NOT_ADDRESSABLE',
        `${req.where} is a closure and cannot run in the '${kind}' executor: export it from a module and ` +
          `register it with AutoRegister, or give step() a module reference { moduleUrl, exportName }`,
        { details: { where: req.where, executor: kind } },
      );
    }
    if (!factories.has(kind) && req.provided?.has(kind) !== true) throw executorUnavailable(kind);
  }
  return kind;
}

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
