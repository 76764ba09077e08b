/**
 * Control blocks: Condition, For, Parallel, Background. Each is a plain description checked at
 * construction (options, step shapes, expressions compiled); `setSteps` compiles it into run-loop
 * nodes with the pipeline's defaults. Blocks nest anywhere, Background included.
 *
 * @example
 * ```ts
 * pipe.setSteps([
 *   new Condition({ expression: "total > 100 and status == 'new'", branchTrue: [review], branchFalse: [approve] }),
 *   new For({ iterations: 3, validationExpression: 'pending > 0', steps: [drain] }),
 *   new Parallel({ steps: [enrichA, enrichB], maxWorkers: 2 }),
 *   new Background(notify),
 * ]);
 * ```
 */
import { checkMemoryLimitMb } from '../parallel/limits.js';
import { WpipeError, checkOptions, describeType, invalidOption } from '../errors.js';
import { EXECUTOR_KINDS, type ExecutorKind } from '../parallel/executor.js';
import { BLOCK_BRAND, checkItem, type PipelineLike } from './items.js';
import type { Step } from './step.js';
import type { StepFn } from './types.js';
import { compileFor, type CompiledCondition } from './expression.js';
import { optBool, optNumber, optString } from './validate.js';

/**
 * What a step list may hold: a function, a `step()`-wrapped function, a tuple `[fn, name, version?]`
 * (the function may also be a Pipeline), a block, or a nested Pipeline.
 *
 * @example
 * ```ts
 * const items: StepItem[] = [load, [transform, 'transform', 'v2'], new Background(notify), subPipeline];
 * ```
 */
export type StepItem =
  | StepFn
  | Step
  | readonly [StepFn | PipelineLike, string, string?]
  | Condition
  | For
  | Parallel
  | Background
  | PipelineLike;

/**
 * Checks a list option of a block and returns a frozen copy.
 *
 * @example
 * ```ts
 * this.branchTrue = checkItems('Condition', 'branchTrue', options.branchTrue, true);
 * ```
 */
export function checkItems(where: string, name: string, items: unknown, required: boolean): readonly StepItem[] {
  if (items === undefined && !required) return Object.freeze([]);
  if (!Array.isArray(items)) {
    throw new WpipeError('WPIPE_ERR_INVALID_STEP', `${where}.${name} must be an array of steps, got ${describeType(items)}`, {
      details: { path: `${where}.${name}` },
    });
  }
  items.forEach((item, i) => checkItem(item, `${where}.${name}[${i}]`));
  return Object.freeze(items.slice()) as readonly StepItem[];
}

/**
 * Options of {@link Condition}.
 *
 * @example
 * ```ts
 * const o: ConditionOptions = { expression: 'score >= 80', branchTrue: [pass], branchFalse: [fail] };
 * ```
 */
export interface ConditionOptions {
  /** An expression of the context (docs/architecture.md "The expression language"). */
  expression: string;
  branchTrue: readonly StepItem[];
  branchFalse?: readonly StepItem[];
  /** Name in errors, history and progress; default 'Condition'. */
  name?: string;
}

/**
 * Runs `branchTrue` when the expression holds, else `branchFalse`. An expression that fails to
 * evaluate (an undefined name, comparing a number with a string …) fails the step loudly: it never
 * silently takes the false branch.
 *
 * @example
 * ```ts
 * new Condition({ expression: 'n > 10', branchTrue: [double], branchFalse: [inc] });
 * ```
 */
export class Condition {
  /** @internal Recognised by items.ts without an import of this module. */
  readonly [BLOCK_BRAND] = true as const;
  readonly expression: string;
  readonly branchTrue: readonly StepItem[];
  readonly branchFalse: readonly StepItem[];
  readonly name: string;
  /** @internal */ readonly _compiled: CompiledCondition;

  constructor(options: ConditionOptions) {
    const where = 'Condition';
    checkOptions(where, options, ['expression', 'branchTrue', 'branchFalse', 'name']);
    if (options === undefined) throw invalidOption(`${where}: options { expression, branchTrue } are required`);
    this.name = optString(where, 'name', options.name) ?? 'Condition';
    this._compiled = compileFor(where, 'expression', options.expression);
    this.expression = options.expression;
    this.branchTrue = checkItems(where, 'branchTrue', options.branchTrue, true);
    this.branchFalse = options.branchFalse === undefined ? [] : checkItems(where, 'branchFalse', options.branchFalse, false);
  }
}

/**
 * Options of {@link For}: `iterations`, `validationExpression`, or both (then both must hold).
 *
 * @example
 * ```ts
 * const o: ForOptions = { validationExpression: 'pending > 0', iterations: 100, steps: [drain] };
 * ```
 */
export interface ForOptions {
  steps: readonly StepItem[];
  /** At most this many iterations (0 allowed). */
  iterations?: number;
  /** Checked before every iteration, `_loop_iteration` already set to the index about to run. */
  validationExpression?: string;
  /**
   * A safety bound: a loop that would start iteration number `maxIterations` + 1 fails with
   * `WPIPE_ERR_LOOP_LIMIT` instead (a loop bounded by its expression alone stops only when the
   * expression turns false, or when the run's signal aborts).
   */
  maxIterations?: number;
  name?: string;
}

/**
 * Repeats its steps on the context. Before each iteration `_loop_iteration` is set to the index of
 * the iteration about to run (so the expression sees 0 at the first check), then `iterations` and
 * the expression are both checked. After the loop `_loop_iteration` holds the last index that ran.
 *
 * @example
 * ```ts
 * new For({ iterations: 3, steps: [inc] });                       // n: 0 → 3
 * new For({ validationExpression: '_loop_iteration < 2 and n < 10', steps: [inc] });
 * ```
 */
export class For {
  /** @internal Recognised by items.ts without an import of this module. */
  readonly [BLOCK_BRAND] = true as const;
  readonly steps: readonly StepItem[];
  readonly iterations: number | undefined;
  readonly validationExpression: string | undefined;
  readonly maxIterations: number | undefined;
  readonly name: string;
  /** @internal */ readonly _compiled: CompiledCondition | undefined;

  constructor(options: ForOptions) {
    const where = 'For';
    checkOptions(where, options, ['steps', 'iterations', 'validationExpression', 'maxIterations', 'name']);
    if (options === undefined) throw invalidOption(`${where}: options { steps, iterations | validationExpression } are required`);
    this.name = optString(where, 'name', options.name) ?? 'For';
    this.iterations = optNumber(where, 'iterations', options.iterations, { min: 0, integer: true });
    this.maxIterations = optNumber(where, 'maxIterations', options.maxIterations, { min: 1, integer: true });
    this._compiled = options.validationExpression === undefined
      ? undefined
      : compileFor(where, 'validationExpression', options.validationExpression);
    this.validationExpression = options.validationExpression;
    if (this.iterations === undefined && this._compiled === undefined) {
      throw invalidOption(`${where}: give iterations, validationExpression or both`);
    }
    this.steps = checkItems(where, 'steps', options.steps, true);
  }
}

/**
 * Options of {@link Parallel}.
 *
 * @example
 * ```ts
 * const o: ParallelOptions = { steps: [a, b, c], maxWorkers: 2 };
 * ```
 */
export interface ParallelOptions {
  /** One branch per item. */
  steps: readonly StepItem[];
  /** Branches running at once; default: all of them. */
  maxWorkers?: number;
  /** Run every branch in a child process (isolation, memory caps). */
  useProcesses?: boolean;
  /** Memory cap of each worker process, in MiB (needs `useProcesses`). */
  memoryLimitMb?: number;
  /** Branches on threads move the context's ArrayBuffers instead of copying them (see step({ transfer })). */
  transfer?: boolean;
  /** Forces where branches run: 'inline' (this thread), 'threads' (piscina) or 'processes'. */
  executor?: ExecutorKind;
  name?: string;
}

/**
 * Runs its branches concurrently, each on its own shallow copy of the context (`Object.assign`:
 * nested values are shared), at most `maxWorkers` at once. The top-level keys a branch added or changed merge into the context in
 * declared order (never completion order). If any branch fails, the block fails after all
 * branches have settled, with the first failure in declared order and a list of all of them.
 *
 * @example
 * ```ts
 * new Parallel({ steps: [fetchPrices, fetchStock], maxWorkers: 2 });
 * ```
 */
export class Parallel {
  /** @internal Recognised by items.ts without an import of this module. */
  readonly [BLOCK_BRAND] = true as const;
  readonly steps: readonly StepItem[];
  readonly maxWorkers: number | undefined;
  readonly useProcesses: boolean;
  readonly memoryLimitMb: number | undefined;
  readonly transfer: boolean;
  readonly executor: ExecutorKind | undefined;
  readonly name: string;

  constructor(options: ParallelOptions) {
    const where = 'Parallel';
    checkOptions(where, options, ['steps', 'maxWorkers', 'useProcesses', 'memoryLimitMb', 'executor', 'name', 'transfer']);
    if (options === undefined) throw invalidOption(`${where}: options { steps } are required`);
    this.name = optString(where, 'name', options.name) ?? 'Parallel';
    this.maxWorkers = optNumber(where, 'maxWorkers', options.maxWorkers, { min: 1, integer: true });
    this.useProcesses = optBool(where, 'useProcesses', options.useProcesses) ?? false;
    this.memoryLimitMb = optNumber(where, 'memoryLimitMb', options.memoryLimitMb, { min: 0, minExclusive: true });
    // A cap a worker process cannot even start under is refused here, not at the first run.
    if (this.memoryLimitMb !== undefined) checkMemoryLimitMb(where, this.memoryLimitMb);
    this.transfer = optBool(where, 'transfer', options.transfer) ?? false;
    if (options.executor !== undefined && !EXECUTOR_KINDS.includes(options.executor)) {
      throw invalidOption(`${where}: executor must be one of ${EXECUTOR_KINDS.join(', ')}, got ${typeof options.executor === 'string' ? `'${options.executor}'` : describeType(options.executor)}`);
    }
    this.executor = options.executor;
    if (this.memoryLimitMb !== undefined && !this.useProcesses && this.executor !== 'processes' && this.executor !== 'threads') {
      throw invalidOption(`${where}: memoryLimitMb caps the workers running the branches; it needs useProcesses: true (caps each ` +
        `child process) or executor: 'threads' (caps each thread's JS heap)`);
    }
    if (this.useProcesses && this.executor !== undefined && this.executor !== 'processes') {
      throw invalidOption(`${where}: useProcesses: true contradicts executor: '${this.executor}'`);
    }
    this.steps = checkItems(where, 'steps', options.steps, true);
  }
}

/**
 * Options of {@link Background}.
 *
 * @example
 * ```ts
 * new Background(notify, { name: 'notify-slack' });
 * ```
 */
export interface BackgroundOptions {
  name?: string;
}

/**
 * Starts a step without waiting for it. It works on a copy of the context; what it changes or
 * returns is recorded (observers, `close()`), never merged. A failure is logged and recorded, and
 * `pipeline.close()` waits for all outstanding background work.
 *
 * @example
 * ```ts
 * pipe.setSteps([load, new Background(sendMetrics), save]);
 * await pipe.run(data);
 * const failures = await pipe.close();   // waits for sendMetrics
 * ```
 */
export class Background {
  /** @internal Recognised by items.ts without an import of this module. */
  readonly [BLOCK_BRAND] = true as const;
  readonly step: StepItem;
  readonly name: string | undefined;

  constructor(item: StepItem, options: BackgroundOptions = {}) {
    const where = 'Background';
    checkOptions(where, options, ['name']);
    this.name = optString(where, 'name', options.name);
    checkItem(item, 'Background.step');
    this.step = item;
  }
}
