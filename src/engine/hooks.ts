/**
 * The observer interface: how run history, checkpoints, metrics and exporters plug into the run
 * loop without the loop knowing them. Hooks are synchronous by default, and should be: better-sqlite3
 * is synchronous, runSync must stay promise-free, and a hook that commits before returning gives the
 * durability docs/architecture.md asks for ("a kill -9 loses at most the step in flight").
 *
 * The documented exceptions, for observers that must wait on something (another process's run, a
 * sync to stable storage), all in async runs only (`run()`, PipelineAsync, runMany):
 * - `onRunStart` may answer `{ wait: promise }`: the engine awaits the promise (the run's
 *   AbortSignal cancels the wait), then calls every observer's `onRunStart` again, until none answers
 *   `wait`. So `onRunStart` can be called more than once for one run.
 * - `onStepStart`, `onStepEnd`, `onBoundary` and `onRunEnd` may return a promise. The engine awaits it
 *   before going on: the step's code does not start before its `onStepStart` promise settles, the next
 *   step does not start before the `onBoundary` promise settles, and run() does not settle before the
 *   `onRunEnd` promise does. When several observers return promises, all are awaited.
 * A hook that returns nothing costs nothing: the loop only goes async when a hook really returns a
 * thenable. In a runSync run (`event.sync` on RunStartEvent) an observer must stay synchronous: a
 * promise from a hook fails the run with WPIPE_ERR_OBSERVER_FAILED, and a `wait` throws
 * WPIPE_ERR_RUN_IN_PROGRESS (runSync cannot wait).
 *
 * Order of calls in one run:
 * `onRunStart` (repeated after each `wait`) → `onBoundary(position -1)` → for each top-level step:
 * `onStepStart` … (nested steps) … `onStepEnd` → `onBoundary(position i)` → … → `onRunEnd`.
 * `onBackgroundEnd` comes whenever a Background step settles, possibly after `onRunEnd`. A run that
 * never started (cancelled before or while waiting, an `onRunStart` that threw) gets no `onRunEnd`.
 *
 * A hook that throws, or whose promise rejects, fails the run: a WpipeError (e.g.
 * WPIPE_ERR_RESUME_MISMATCH, WPIPE_ERR_STORAGE) is rethrown as is, anything else is wrapped in a
 * ProcessError with code WPIPE_ERR_OBSERVER_FAILED. `continueOnError` does not swallow it. One case
 * is a failure of the step rather than of the observer: an `onBoundary` that throws
 * WPIPE_ERR_CHECKPOINT_SERIALIZE after a top-level step fails the run with a TaskError of that step
 * (code WPIPE_ERR_CHECKPOINT_SERIALIZE, `cause` the observer's error), so run() rejects with the usual
 * ProcessError (errorCode 502) and `onRunEnd` names that step; at position -1 (an input no checkpoint
 * can carry) the run fails with a ProcessError of that code.
 *
 * @example
 * ```ts
 * pipe.observe({
 *   onStepEnd: (e) => db.insertStep(e),                        // one row per executed step
 *   onBoundary: (e) => { if (e.checkpoints.length) db.saveCheckpoint(e.runId, e.resumeAt, e.context); },
 *   onRunEnd: (e) => db.finishRun(e.runId, e.status, e.error),
 * });
 * // An observer for run() only that makes each boundary reach the disk before the next step:
 * pipe.observe({ onBoundary: (e) => (e.checkpoints.length ? journal.appendAndSync(e) : undefined) });
 * ```
 */
import type { ExecutorKind } from '../parallel/executor.js';
import type { Context, StepDescriptor, StepFailure } from './types.js';
import type { FiredAlert } from './alerts.js';

/** Kinds of executed steps, as recorded in run history. */
export type StepKind = StepDescriptor['kind'];

/** Passed to `onRunStart`. */
export interface RunStartEvent {
  readonly runId: string;
  readonly pipelineName: string;
  /** The run's own copy of the input (do not mutate). */
  readonly context: Readonly<Context>;
  /** Fingerprint of the step list (kinds, names, versions): compare it before resuming. */
  readonly signature: string;
  readonly steps: readonly StepDescriptor[];
  /** Epoch milliseconds. */
  readonly startedAt: number;
  /** Whether the run was started by runSync. */
  readonly sync: boolean;
  /** True when the engine generated the run id (no `runId` option): nothing can be recorded under it yet. */
  readonly generatedId: boolean;
  /**
   * The run's `ifRunning` option ('wait' by default): when the run id is being executed elsewhere,
   * answer `{ wait }` for 'wait', throw WPIPE_ERR_RUN_IN_PROGRESS for 'fail'. (The engine also refuses
   * a `wait` under 'fail', and in runSync.)
   */
  readonly ifRunning: 'wait' | 'fail';
  /** The run's AbortSignal, if any: a `wait` promise may stop early when it aborts (the engine stops waiting anyway). */
  readonly signal: AbortSignal | undefined;
  /**
   * True when this call follows a `wait`: the run id was being executed elsewhere and that run has
   * (probably) ended. Its outcome is this run's outcome; only a run whose owner died is taken over.
   */
  readonly waited: boolean;
}

/**
 * What `onRunStart` may return: resume at a saved step (`resumeAt`: the index of the first top-level
 * step to run, as {@link BoundaryEvent.resumeAt} gave it), return a completed run's recorded
 * result without executing anything, or wait (async runs only) for the promise to settle and then
 * ask again (the run id is being executed elsewhere; see the module comment). The first `resume` or
 * `completed` in observer order is taken; a `wait` stops the round at once and wins over them. A
 * `wait` whose promise rejects fails the run with that error (a WpipeError as is, else
 * WPIPE_ERR_OBSERVER_FAILED), without `onRunEnd`: the run never started.
 *
 * @example
 * ```ts
 * const decide = (e: RunStartEvent): RunStartDecision | void =>
 *   owners.has(e.runId) ? { wait: owners.get(e.runId)!.finished } : undefined;
 * ```
 */
export type RunStartDecision =
  | { readonly resume: { readonly resumeAt: number; readonly context: Context; readonly checkpoint?: string } }
  | { readonly completed: { readonly result: Context } }
  | { readonly wait: Promise<unknown> };

/** Passed to `onStepStart` for every executed step or block, nested ones included. */
export interface StepStartEvent {
  readonly runId: string;
  /** Name of the pipeline whose step list holds this step (a nested pipeline's own name). */
  readonly pipelineName: string;
  /** Execution order within the run, from 0. */
  readonly id: number;
  /** `id` of the enclosing block or nested pipeline, -1 at top level. */
  readonly parentId: number;
  /** Index of the top-level step this one runs under. */
  readonly position: number;
  readonly kind: StepKind;
  readonly name: string;
  readonly version: string;
  readonly path: string;
  /** Where a task's attempts run ('inline', 'threads', 'processes'); undefined for blocks. */
  readonly executor: ExecutorKind | undefined;
  /** Epoch milliseconds. */
  readonly startedAt: number;
}

/** Passed to `onStepEnd`. */
export interface StepEndEvent extends StepStartEvent {
  readonly status: 'completed' | 'failed' | 'cancelled';
  /** Attempts made (tasks); 1 for blocks. */
  readonly attempts: number;
  readonly durationMs: number;
  /** The TaskError (or cancellation error) when the step did not complete. */
  readonly error: Error | undefined;
  /** Which worker ran the step's last attempt ('thread 7', 'pid 1234'); undefined in-process. */
  readonly worker?: string | undefined;
  /**
   * What a completed task returned (the object merged into the context; the context itself for a
   * step that returned it); undefined for blocks, failed steps and steps that returned nothing.
   */
  readonly output?: Context | undefined;
}

/** Passed to `onBoundary`: before the first step (position -1) and after every top-level step. */
export interface BoundaryEvent {
  readonly runId: string;
  readonly pipelineName: string;
  /** -1 before the first step, else the index of the top-level step just finished. */
  readonly position: number;
  /** Where a run resumed from this boundary starts: the index of the next top-level step (`position + 1`). */
  readonly resumeAt: number;
  /** The top-level step just finished (its own onStepEnd came just before), or undefined at -1. */
  readonly step: StepEndEvent | undefined;
  /** Names of the checkpoints (addCheckpoint) whose expression holds now, in declaration order. */
  readonly checkpoints: readonly string[];
  /** The live context (read it, serialize it; do not mutate it). */
  readonly context: Readonly<Context>;
}

/** Passed to `onRunEnd`. */
export interface RunEndEvent {
  readonly runId: string;
  readonly pipelineName: string;
  readonly status: 'completed' | 'error' | 'cancelled';
  /** The final context (also on failure: what the run had reached). */
  readonly context: Readonly<Context>;
  /** The error run() rejects with, when it does. */
  readonly error: Error | undefined;
  /** Name of the failing top-level step, when there is one. */
  readonly errorStep: string | undefined;
  /** Failures kept under continueOnError (the same array as `context._errors`). */
  readonly failures: readonly StepFailure[];
  readonly startedAt: number;
  readonly durationMs: number;
  /** True when onRunStart answered `completed` and nothing ran. */
  readonly replayed: boolean;
}

/**
 * What a Background step left behind, recorded (never merged). `changes` are the top-level keys its
 * copy of the context gained or changed.
 */
export interface BackgroundRecord {
  readonly runId: string;
  readonly pipelineName: string;
  readonly name: string;
  readonly path: string;
  readonly status: 'completed' | 'failed';
  readonly changes: Context | undefined;
  readonly error: Error | undefined;
  readonly durationMs: number;
}

/**
 * An observer of runs. Every method is optional and synchronous, except that in async runs
 * `onStepStart`, `onStepEnd`, `onBoundary` and `onRunEnd` may return a promise the engine awaits,
 * and `onRunStart` may answer `{ wait }` (see the module comment).
 *
 * @example
 * ```ts
 * const seen: string[] = [];
 * pipe.observe({ onStepStart: (e) => { seen.push(e.name); } });
 * ```
 */
export interface RunObserver {
  onRunStart?(event: RunStartEvent): RunStartDecision | void;
  /** A returned promise (async runs only) holds the step's code back until it settles. */
  onStepStart?(event: StepStartEvent): void | Promise<void>;
  /** A returned promise (async runs only) is awaited before the run goes on. */
  onStepEnd?(event: StepEndEvent): void | Promise<void>;
  /** A returned promise (async runs only) holds the next step back until it settles. */
  onBoundary?(event: BoundaryEvent): void | Promise<void>;
  /** A returned promise (async runs only) is awaited before run() settles. */
  onRunEnd?(event: RunEndEvent): void | Promise<void>;
  /** Synchronous; a throw is logged (the run is over by then). */
  onBackgroundEnd?(record: BackgroundRecord): void;
  /** An alert of the pipeline fired (at the end of a run; see src/engine/alerts.ts). */
  onAlert?(alert: FiredAlert): void;
  /** A step recorded a custom event (`info.recordEvent`). */
  onEvent?(event: RunEvent): void;
}

/** A custom event a step recorded with `info.recordEvent`. */
export interface RunEvent {
  readonly runId: string;
  readonly pipelineName: string;
  readonly stepName: string | undefined;
  readonly type: string;
  readonly name: string;
  readonly message?: string | undefined;
  readonly data?: unknown;
  readonly tags?: readonly string[] | undefined;
}

/** What a tracking-observer factory receives (the pipeline's storage options). */
export interface TrackingOptions {
  readonly trackingDb: string;
  readonly collectSystemMetrics: boolean;
  readonly pipelineName: string;
  readonly verbose: boolean;
  /** 'step': commit at every step boundary (default); 'run': once per run (see PipelineOptions). */
  readonly durability?: 'step' | 'fsync' | 'run';
  /** Keys redacted from what the history records (PipelineOptions.trackingRedact). */
  readonly redact?: readonly (string | RegExp)[] | ((key: string, value: unknown, path: string) => boolean);
  /** Largest stored value (PipelineOptions.trackingMaxValueBytes). */
  readonly maxValueBytes?: number;
  /** Runs pruned when the history opens and at close (PipelineOptions.trackingRetention). */
  readonly retention?: { readonly olderThanDays?: number; readonly keepLast?: number };
  /** The YAML file the pipeline was loaded from (loadPipeline), recorded with each run. */
  readonly yamlPath?: string;
}

/** Builds the run-history/checkpoint observer of a pipeline that has `trackingDb`. */
export type TrackingObserverFactory = (options: TrackingOptions) => RunObserver & {
  close?(): void | Promise<void>;
  /** Deletes old runs from the history; returns how many (see Pipeline.pruneHistory). */
  prune?(options: { olderThanDays?: number; keepLast?: number; perPipeline?: boolean }): number;
};

let trackingFactory: TrackingObserverFactory | undefined;

/**
 * Replaces what turns `trackingDb` into an observer — by default the run history in SQLite
 * (src/storage/observer.ts `createTrackingObserver`, which Pipeline imports); `undefined` restores
 * it. For tests and other stores. Pipelines create their tracking observer lazily, at their first run.
 *
 * @example
 * ```ts
 * setTrackingObserverFactory((o) => new MyStoreObserver(o.trackingDb, o));
 * ```
 */
export function setTrackingObserverFactory(factory: TrackingObserverFactory | undefined): void {
  trackingFactory = factory;
}

/**
 * The factory installed by {@link setTrackingObserverFactory}, if any (`undefined`: the default).
 *
 * @example
 * ```ts
 * if (getTrackingObserverFactory()) console.warn('run history replaced: trackingDb does not go to SQLite');
 * ```
 */
export function getTrackingObserverFactory(): TrackingObserverFactory | undefined {
  return trackingFactory;
}

/** Observers of every run of every pipeline in this thread (see {@link addProcessObserver}). */
const processObservers: RunObserver[] = [];
let processObserversVersion = 0;

/**
 * Adds an observer to every run of every pipeline in this thread (memoryLimit's RSS watchdog uses
 * it to fail the runs in progress once the process passes its cap). Returns a function that
 * removes it. Pipelines pick the change up at their next run.
 *
 * @example
 * ```ts
 * const remove = addProcessObserver({ onRunEnd: (e) => metrics.count(e.status) });
 * ```
 */
export function addProcessObserver(observer: RunObserver): () => void {
  processObservers.push(observer);
  processObserversVersion++;
  return () => {
    const i = processObservers.indexOf(observer);
    if (i < 0) return;
    processObservers.splice(i, 1);
    processObserversVersion++;
  };
}

/** @internal The process-wide observers and a version that changes with them. */
export function processObserverState(): { readonly list: readonly RunObserver[]; readonly version: number } {
  return { list: processObservers, version: processObserversVersion };
}
