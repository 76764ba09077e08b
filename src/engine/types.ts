/**
 * Types shared by the engine: the context, what a step receives, what it may return.
 *
 * @example
 * ```ts
 * const load: StepFn = async (ctx, info) => {
 *   const res = await fetch(ctx.url, { signal: info.signal });
 *   return { rows: await res.json() };
 * };
 * ```
 */
import type { Logger } from './logger.js';

/**
 * A pipeline context: a plain object of named values (e.g. `{ orderId: 7, rows: [] }`). Values are typed `any` on purpose, so a step
 * can read `ctx.total + 1` without a cast; type your own steps more narrowly where it helps.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Context = Record<string, any>;

/**
 * What a step may return: a plain object merged into the context, or nothing.
 *
 * @example
 * ```ts
 * const r: StepResult = { total: 120 };
 * ```
 */
export type StepResult = Context | void | null | undefined;

/**
 * What every step receives as its second argument.
 *
 * @example
 * ```ts
 * const slow: StepFn = async (_ctx, info) => {
 *   await setTimeout(1000, undefined, { signal: info.signal });   // aborts at the step's deadline
 *   info.logger.info(`attempt ${info.attempt} of ${info.stepName} in ${info.runId}`);
 * };
 * ```
 */
export interface StepInfo {
  /** Aborts at the attempt's deadline (`timeout`) or when the run is cancelled. */
  readonly signal: AbortSignal;
  /** 1 for the first attempt, 2 for the first retry … */
  readonly attempt: number;
  /** The run's id (given to `run()` or generated). */
  readonly runId: string;
  readonly stepName: string;
  readonly stepVersion: string;
  /** The pipeline's logger (a pino-style logger gives a child with `runId` and `step`). */
  readonly logger: Logger;
  /**
   * Records a custom event with this run and step (run history keeps it in `events`; observers get
   * `onEvent`).
   */
  recordEvent(event: { type: string; name: string; message?: string; data?: unknown; tags?: readonly string[] }): void;
}

/**
 * A step: a function of the context. It may return a plain object (merged, last writer wins),
 * nothing, or a promise of either; it may also change `ctx` in place.
 *
 * @example
 * ```ts
 * const double: StepFn = (ctx) => ({ n: ctx.n * 2 });
 * ```
 */
export type StepFn = (ctx: Context, info: StepInfo) => StepResult | PromiseLike<StepResult>;

/**
 * Options of `run()`.
 *
 * @example
 * ```ts
 * const ac = new AbortController();
 * await pipe.run({ orderId: 7 }, { runId: 'order-7', signal: ac.signal });
 * await pipe.run({ orderId: 8 }, { runId: 'order-8', ifRunning: 'fail' });  // never wait for another owner
 * ```
 */
export interface RunOptions {
  /** Identifies the run (history, checkpoints, resume). Generated when absent. */
  runId?: string;
  /** Cancels the run: it rejects with ProcessError `WPIPE_ERR_PROCESS_CANCELLED`. */
  signal?: AbortSignal;
  /**
   * What to do when `runId` is being executed elsewhere (another Pipeline object or process, see
   * docs/architecture.md "Durable state"): 'wait' (default) waits for that run and returns, or rejects with,
   * its outcome; 'fail' rejects at once with `WPIPE_ERR_RUN_IN_PROGRESS`. runSync cannot wait: there
   * it throws `WPIPE_ERR_RUN_IN_PROGRESS` in both cases. Run history decides whether a run id is
   * busy; without it nothing ever waits.
   */
  ifRunning?: 'wait' | 'fail';
}

/**
 * The context key under which `continueOnError` keeps failures: an array of {@link StepFailure},
 * appended to and never cleared by a later success.
 *
 * @example
 * ```ts
 * const failures = (result[ERRORS_KEY] ?? []) as StepFailure[];
 * ```
 */
export const ERRORS_KEY = '_errors';

/**
 * The context key a For loop sets to the 0-based index of its current iteration.
 *
 * @example
 * ```ts
 * new For({ validationExpression: `${LOOP_ITERATION_KEY} < 3`, steps: [poll] });
 * ```
 */
export const LOOP_ITERATION_KEY = '_loop_iteration';

/**
 * One failure kept under `ctx._errors` when `continueOnError` is set. Plain JSON data.
 *
 * @example
 * ```ts
 * const out = await new Pipeline({ continueOnError: true }).setSteps([boom, next]).run();
 * out._errors[0]; // { step: 'boom', path: 'steps[0]', code: 'WPIPE_ERR_TASK_FAILED', message: '…', attempts: 1, … }
 * ```
 */
export interface StepFailure {
  /** Name of the step that failed (the innermost one, for a failure inside a block). */
  step: string;
  version: string;
  /** Where the step sits in its pipeline, e.g. `steps[2].branchTrue[0]`. */
  path: string;
  /** Index of the top-level step the failure happened under. */
  position: number;
  /** Stable code (`WPIPE_ERR_TASK_FAILED`, `WPIPE_ERR_TASK_TIMEOUT` …) and numeric family. */
  code: string;
  errorCode: number;
  message: string;
  /** Attempts made (1 + retries). */
  attempts: number;
  /** Class name and message of the step's own error, when there is one. */
  cause?: { name: string; message: string; code?: string };
  /** For a Parallel block with several failing branches: each of them. */
  branches?: { step: string; code: string; message: string }[];
  /** ISO-8601 time of the failure. */
  at: string;
}

/**
 * A short description of one top-level step, as `pipeline.steps` lists them.
 *
 * @example
 * ```ts
 * pipe.steps.map((s) => `${s.kind}:${s.name}@${s.version}`);
 * ```
 */
export interface StepDescriptor {
  readonly kind: 'task' | 'condition' | 'for' | 'parallel' | 'background' | 'pipeline';
  readonly name: string;
  readonly version: string;
  readonly path: string;
}
