/**
 * The executor kinds a pipeline can use, and the placement rule. The built-in kinds are here from
 * the start: 'inline', 'threads' (piscina worker threads, threads.ts) and 'processes' (child
 * processes, processes.ts), neither of which creates anything until its first call; 'bullmq' is
 * registered by useBullmq (src/queue/executor.ts). The engine imports this module itself, so a
 * Pipeline imported from anywhere in the package places steps the same way (no side-effect import
 * wires the executors in).
 *
 * @example
 * ```ts
 * const ex = createExecutor('threads', { maxWorkers: 4 });
 * ```
 */
import { WpipeError, invalidOption } from '../errors.js';
import { EXECUTOR_KINDS, inlineExecutor, type Executor, type ExecutorFactory, type ExecutorFactoryOptions, type ExecutorKind } from './executor.js';
import { createProcessExecutor } from './processes.js';
import { createThreadExecutor } from './threads.js';

const factories = new Map<ExecutorKind, ExecutorFactory>([
  ['inline', () => inlineExecutor],
  ['threads', createThreadExecutor],
  ['processes', createProcessExecutor],
]);

/**
 * Makes an executor kind available (useBullmq registers 'bullmq'; tests replace the built-in ones).
 * Replaces an earlier registration of the same kind; `null` removes it.
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
