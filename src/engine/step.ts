/**
 * `step(options)(fn)`: attaches a name, a version, retry and timeout settings (and, for worker
 * placement, a module reference and an executor) to a step function. The result is a new function that behaves
 * exactly like `fn` when called directly; its settings are readable as `.meta`.
 *
 * @example
 * ```ts
 * export const load = step({ name: 'load', version: 'v2', retryCount: 2, retryDelay: 0.1, timeout: 5 })(
 *   async (ctx, info) => ({ rows: await fetchRows(ctx.orderId, info.signal) }),
 * );
 * load.meta.retryCount; // 2
 *
 * // A CPU-bound step in a child process of its own: a hard timeout and a memory cap, no Parallel
 * // block needed (export it and register it with AutoRegister so the process can import it).
 * export const crunch = step({ name: 'crunch', timeout: 30, executor: 'processes', memoryLimitMb: 512 })(crunchFn);
 * ```
 */
import { checkOptions, closestName, describeType, invalidOption } from '../errors.js';
import { EXECUTOR_KINDS, type ExecutorKind, type ModuleRef } from '../parallel/executor.js';
import type { StepFn } from './types.js';
import { optBool, optFunction, optNumber, optString, warnIfMilliseconds } from './validate.js';
import { checkMemoryLimitMb } from '../parallel/limits.js';

/**
 * Decides whether a failed attempt is retried (return false to fail at once).
 *
 * @example
 * ```ts
 * const onlyNetwork: RetryPredicate = (e) => (e as { code?: string }).code === 'ECONNRESET';
 * ```
 */
export type RetryPredicate = (error: unknown, attempt: number) => boolean;

/**
 * Options of `step()`. Durations are in seconds (fractions allowed), as in the Python original.
 *
 * @example
 * ```ts
 * const opts: StepOptions = { name: 'enrich', retryCount: 0, timeout: 0.5, tags: ['io'] };
 * ```
 */
export interface StepOptions {
  /** Defaults to the function's name. */
  name?: string;
  /** Defaults to 'v1.0'. */
  version?: string;
  /** Extra attempts after the first; 0 means none (never "use the pipeline default"). */
  retryCount?: number;
  /** Seconds to wait before a retry. */
  retryDelay?: number;
  /** Multiplier applied to the delay after each retry (1 = constant, 2 = doubling). */
  retryBackoff?: number;
  /** Which failures are retried; default: all except cancellation and bad return values. */
  retryOn?: RetryPredicate;
  /** Deadline of each attempt, in seconds: the attempt fails with WPIPE_ERR_TASK_TIMEOUT and `info.signal` aborts. */
  timeout?: number;
  description?: string;
  tags?: readonly string[];
  /** Where a worker thread or process can import this step from (AutoRegister fills it in). */
  module?: ModuleRef;
  /**
   * Where this step's attempts run, wherever it sits (top level, Condition, For, Background, or a
   * Parallel branch without a forced placement): 'inline' (this thread), 'threads' (a worker
   * thread) or 'processes' (a child process). A worker gives a hard timeout (the worker is
   * terminated at the deadline) and, for processes, a memory cap. Needs the step to be addressable
   * (a module reference, e.g. through AutoRegister): a closure asking for a worker is refused at
   * setSteps with WPIPE_ERR_TASK_NOT_ADDRESSABLE. A Parallel's own `executor` or `useProcesses`
   * wins over this option; this option wins over the Parallel's default placement.
   */
  executor?: ExecutorKind;
  /** Memory cap of the child process running this step, in MiB (needs `executor: 'processes'`). */
  memoryLimitMb?: number;
  /**
   * In a worker thread, move the context's ArrayBuffers and typed arrays to the worker (and the
   * result's back) instead of copying them (default false). After a transfer the caller's buffers
   * are detached: only for data the run does not read again on this side.
   */
  transfer?: boolean;
}

/**
 * The settings `step()` attached, as read back from `.meta`.
 *
 * @example
 * ```ts
 * const { name, version, retryCount } = load.meta;
 * ```
 */
export interface StepMeta {
  readonly name: string;
  readonly version: string;
  readonly retryCount: number | undefined;
  readonly retryDelay: number | undefined;
  readonly retryBackoff: number | undefined;
  readonly retryOn: RetryPredicate | undefined;
  readonly timeout: number | undefined;
  readonly description: string;
  readonly tags: readonly string[];
  readonly module: ModuleRef | undefined;
  /** The executor step() asked for; undefined = the placement of where the step sits. */
  readonly executor: ExecutorKind | undefined;
  readonly memoryLimitMb: number | undefined;
  readonly transfer: boolean;
  /** The function that was wrapped; the engine calls it directly. */
  readonly fn: StepFn;
}

/**
 * A function wrapped by `step()`: callable like the original, with its settings on `.meta`.
 *
 * @example
 * ```ts
 * const s: Step = step({ name: 'x' })((ctx) => ({ y: ctx.x }));
 * ```
 */
export type Step<F extends StepFn = StepFn> = F & { readonly meta: StepMeta };

const STEP_OPTIONS = [
  'name', 'version', 'retryCount', 'retryDelay', 'retryBackoff', 'retryOn', 'timeout', 'description', 'tags', 'module',
  'executor', 'memoryLimitMb', 'transfer',
] as const;

/**
 * The default version of a step, as in the original.
 *
 * @example
 * ```ts
 * step()(fn).meta.version === DEFAULT_VERSION; // 'v1.0'
 * ```
 */
export const DEFAULT_VERSION = 'v1.0';

/**
 * Wraps a step function with metadata. See the module example.
 *
 * @example
 * ```ts
 * const inc = step({ name: 'inc', retryCount: 0 })((ctx) => ({ n: ctx.n + 1 }));
 * inc({ n: 1 }, info); // { n: 2 }: still callable
 * ```
 */
export function step(options: StepOptions = {}): <F extends StepFn>(fn: F) => Step<F> {
  if (typeof options === 'function') {
    throw invalidOption('step: options must be an object, got function (write step({ name: … })(fn), or pass fn to setSteps directly)');
  }
  const where = 'step()';
  checkOptions(where, options, STEP_OPTIONS);
  const name = optString(where, 'name', options.name);
  const version = optString(where, 'version', options.version) ?? DEFAULT_VERSION;
  const retryCount = optNumber(where, 'retryCount', options.retryCount, { min: 0, integer: true });
  const retryDelay = optNumber(where, 'retryDelay', options.retryDelay, { min: 0 });
  const retryBackoff = optNumber(where, 'retryBackoff', options.retryBackoff, { min: 1 });
  const retryOn = optFunction<RetryPredicate>(where, 'retryOn', options.retryOn);
  const timeout = optNumber(where, 'timeout', options.timeout, { min: 0, minExclusive: true, max: 2 ** 31 / 1000 - 1 });
  warnIfMilliseconds(where, 'timeout', timeout);
  warnIfMilliseconds(where, 'retryDelay', retryDelay);
  const description = optString(where, 'description', options.description, true) ?? '';
  const tags = checkTags(where, options.tags);
  const module = checkModuleRef(where, options.module);
  const executor = checkExecutor(where, options.executor);
  const memoryLimitMb = optNumber(where, 'memoryLimitMb', options.memoryLimitMb, { min: 0, minExclusive: true });
  const transfer = optBool(where, 'transfer', options.transfer) ?? false;
  if (memoryLimitMb !== undefined) checkMemoryLimitMb(where, memoryLimitMb);
  if (memoryLimitMb !== undefined && executor !== 'processes' && executor !== 'threads') {
    throw invalidOption(`${where}: memoryLimitMb caps the worker running the step; it needs executor: 'processes' (caps the child ` +
      `process) or 'threads' (caps the thread's JS heap)${executor === undefined ? '' : `, got executor: '${executor}'`}`);
  }

  return <F extends StepFn>(fn: F): Step<F> => {
    if (typeof fn !== 'function') throw invalidOption(`step(): expected a function to wrap, got ${describeType(fn)}`);
    const inner: StepFn = isStep(fn) ? fn.meta.fn : fn;
    const stepName = name ?? (fn.name || 'step');
    const meta: StepMeta = Object.freeze({
      name: stepName, version, retryCount, retryDelay, retryBackoff, retryOn, timeout, description, tags, module,
      executor, memoryLimitMb, transfer, fn: inner,
    });
    // A named wrapper (not `fn` itself with a property added): wrapping one function twice with
    // different settings must give two independent steps.
    const wrapped = { [stepName]: function (this: unknown, ...args: Parameters<F>) { return inner.apply(this, args); } }[stepName]!;
    Object.defineProperty(wrapped, 'meta', { value: meta, enumerable: true });
    return wrapped as unknown as Step<F>;
  };
}

/**
 * A new step with the settings of `s` plus a module reference (AutoRegister uses it: the user's
 * export is never changed). `s` keeps working as before.
 *
 * @example
 * ```ts
 * const addressable = withModuleRef(load, { moduleUrl: import.meta.url, exportName: 'load' });
 * ```
 */
export function withModuleRef<F extends StepFn>(s: Step<F>, module: ModuleRef): Step<F> {
  // StepMeta carries every StepOptions field under the same name, so nothing is left behind.
  const { fn: _fn, ...options } = s.meta;
  return step({ ...options, module })(s);
}

/**
 * Whether `value` was made by `step()`.
 *
 * @example
 * ```ts
 * isStep(step()(fn)); // true
 * ```
 */
export function isStep(value: unknown): value is Step {
  if (typeof value !== 'function') return false;
  const meta = (value as { meta?: unknown }).meta;
  return typeof meta === 'object' && meta !== null && Object.isFrozen(meta) && typeof (meta as StepMeta).fn === 'function';
}

/**
 * Validates an `executor` option: a TypeError for a non-string, a RangeError naming the allowed
 * kinds (with a hint) for an unknown one.
 *
 * @example
 * ```ts
 * checkExecutor('step()', 'thread'); // RangeError: … must be one of 'inline', 'threads', 'processes', 'bullmq', got 'thread' (did you mean 'threads'?)
 * ```
 */
export function checkExecutor(where: string, value: unknown): ExecutorKind | undefined {
  if (value === undefined) return undefined;
  const allowed = EXECUTOR_KINDS.map((k) => `'${k}'`).join(', ');
  if (typeof value !== 'string') throw invalidOption(`${where}: executor must be one of ${allowed}, got ${describeType(value)}`);
  if (!(EXECUTOR_KINDS as readonly string[]).includes(value)) {
    const hint = closestName(value, EXECUTOR_KINDS);
    throw invalidOption(`${where}: executor must be one of ${allowed}, got '${value}'${hint ? ` (did you mean '${hint}'?)` : ''}`, 'RangeError');
  }
  return value as ExecutorKind;
}

function checkTags(where: string, tags: unknown): readonly string[] {
  if (tags === undefined) return Object.freeze([]);
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) {
    throw invalidOption(`${where}: tags must be an array of strings, got ${describeType(tags)}`);
  }
  return Object.freeze([...tags]);
}

/**
 * Validates a module reference ({ moduleUrl, exportName }).
 *
 * @example
 * ```ts
 * checkModuleRef('step()', { moduleUrl: import.meta.url, exportName: 'load' });
 * ```
 */
export function checkModuleRef(where: string, ref: unknown): ModuleRef | undefined {
  if (ref === undefined) return undefined;
  checkOptions(`${where} module`, ref, ['moduleUrl', 'exportName']);
  const r = ref as Partial<ModuleRef>;
  const moduleUrl = optString(where, 'module.moduleUrl', r.moduleUrl);
  const exportName = optString(where, 'module.exportName', r.exportName);
  if (!moduleUrl || !exportName) throw invalidOption(`${where}: module needs both moduleUrl and exportName`);
  return Object.freeze({ moduleUrl, exportName });
}

