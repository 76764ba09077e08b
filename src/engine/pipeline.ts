/**
 * Pipeline and PipelineAsync: the public face of the engine (docs/architecture.md "Public API").
 *
 * @example
 * ```ts
 * const pipe = new Pipeline({ pipelineName: 'orders', maxRetries: 1, retryDelay: 0.1 });
 * pipe.setSteps([
 *   step({ name: 'load', timeout: 5 })(async (ctx, info) => ({ rows: await load(ctx.orderId, info.signal) })),
 *   new Condition({ expression: 'len(rows) > 0', branchTrue: [price], branchFalse: [skip] }),
 * ]);
 * const result = await pipe.run({ orderId: 7 }, { runId: 'order-7' });
 * ```
 */
import { WpipeError, checkOptions, describeType, invalidOption } from '../errors.js';
import type { Executor, ExecutorFactory, ExecutorKind } from '../parallel/executor.js';
import { createExecutor } from '../parallel/registry.js';
import { PIPELINE_BRAND, compilePlan, checkItem, describePlan, type StepItem } from './compile.js';
import { compileFor, type CompiledCondition } from './expression.js';
import {
  getTrackingObserverFactory, processObserverState, type BackgroundRecord, type RunObserver, type TrackingObserverFactory, type TrackingOptions,
} from './hooks.js';
import { getDefaultLogger, isLogger, type Logger } from './logger.js';
import { createTrackingObserver } from '../storage/observer.js';
import { ApiReporter, type ApiReporterOptions } from '../dashboard/reporter.js';
import type { ExecutorOwner, PlanNode, Plan } from './nodes.js';
import { RUN_DETAIL_SINK, RUN_ID_SINK, runPlanAsync, runPlanSync, type RunHost, type RunStartDetail } from './run.js';
import type { RetryPredicate } from './step.js';
import type { Context, RunOptions, StepDescriptor } from './types.js';
import {
  AlertEvaluator, compileAlert, duplicateAlert,
  type AlertOptions, type AlertRule, type AlertSeverity, type FinishedRun, type StepErrorDetails,
} from './alerts.js';
import { optBool, optFunction, optNumber, optString, warnIfMilliseconds } from './validate.js';

/**
 * Options of `new Pipeline(…)`. Unknown or misspelt options are errors.
 *
 * @example
 * ```ts
 * const o: PipelineOptions = { pipelineName: 'orders', continueOnError: true, maxRetries: 2, retryDelay: 0.5 };
 * ```
 */
export interface PipelineOptions {
  /** Default 'Pipeline'. */
  pipelineName?: string;
  /** Log each step, retry, condition and checkpoint through `logger`. */
  verbose?: boolean;
  /** SQLite file for run history and checkpoints (wired in by the storage layer). */
  trackingDb?: string;
  /** Default extra attempts of a step whose step() says nothing (default 0). */
  maxRetries?: number;
  /** Default seconds between attempts (default 1, as in the original). */
  retryDelay?: number;
  /** Default multiplier of the delay after each retry (default 1: constant). */
  retryBackoff?: number;
  /** Default predicate deciding which failures are retried. */
  retryOn?: RetryPredicate;
  /** Go on after a failed top-level step; failures are kept under `ctx._errors`. */
  continueOnError?: boolean;
  /** A progress bar on stderr, only when stderr is a TTY (default false). */
  showProgress?: boolean;
  /** Sample CPU and memory during runs (needs trackingDb; wired in by the storage layer). */
  collectSystemMetrics?: boolean;
  /**
   * How durable run history is (needs trackingDb; README "Durability levels"): 'step' (default)
   * makes every step boundary survive a killed process (kill -9 loses at most the step in flight);
   * 'fsync' also puts every boundary on stable storage before the next step runs (survives power
   * loss; concurrent runs share one fdatasync); 'run' makes a run durable once, at its end (a crash
   * loses every unfinished run's steps and checkpoints: it restarts from the beginning).
   */
  trackingDurability?: 'step' | 'fsync' | 'run';
  /**
   * Keys the history records as '[REDACTED]' (in run inputs and outputs, step outputs, event data;
   * not in checkpoints, which resume needs): names, RegExps, or `(key, value, path) => boolean`.
   */
  trackingRedact?: readonly (string | RegExp)[] | ((key: string, value: unknown, path: string) => boolean);
  /** Largest value the history stores, in bytes of JSON (default 1 MiB); longer ones become a truncation marker. */
  trackingMaxValueBytes?: number;
  /** Prune the history when it opens and at close(): runs older than `olderThanDays`, beyond the newest `keepLast`. */
  trackingRetention?: { olderThanDays?: number; keepLast?: number };
  /** Where verbose lines, warnings and background failures go (pino-compatible); default stderr. */
  logger?: Logger;
  /** Observers of every run (see RunObserver). */
  observers?: readonly RunObserver[];
  /**
   * Report runs and steps to a remote wpipe dashboard (`POST <baseUrl>/api/ingest`), so one
   * dashboard shows several hosts: `{ baseUrl, token, timeoutMs?, required?, … }` (ApiReporter's
   * options). Reports are queued, batched and retried with a bound; a slow or failing remote never
   * slows or fails a run unless `required: true`. `close()` sends what is queued.
   */
  api?: ApiReporterOptions;
}

/**
 * Options of `new PipelineAsync(…)`.
 *
 * @example
 * ```ts
 * new PipelineAsync({ pipelineName: 'events', yieldEveryMs: 2 });
 * ```
 */
export interface PipelineAsyncOptions extends PipelineOptions {
  /**
   * Yield to the event loop after a top-level step once the run has held the thread this long
   * (ms). 0 (default) yields after every top-level step.
   */
  yieldEveryMs?: number;
}

/**
 * Options of `runMany`.
 *
 * @example
 * ```ts
 * await pipe.runMany(events, { concurrency: 32 });
 * ```
 */
export interface RunManyOptions {
  /** Runs in flight at once (default 10). */
  concurrency?: number;
  /** Cancels every run still going and stops starting new ones. */
  signal?: AbortSignal;
  /**
   * Resolve to one {@link RunOutcome} per input (in input order, as `Promise.allSettled` does)
   * instead of rejecting at the first failure (default false).
   */
  settled?: boolean;
}

/**
 * How one run of `runMany({ settled: true })` or `runEach` ended: `value` (the final context) or
 * `reason` (the error `run()` rejected with), the run's id and the input's index.
 */
export type RunOutcome<T extends Context = Context> =
  | { readonly status: 'fulfilled'; readonly value: T; readonly runId: string; readonly index: number }
  | { readonly status: 'rejected'; readonly reason: unknown; readonly runId: string; readonly index: number };

/** Options of `runEach`. */
export interface RunEachOptions {
  /** Runs in flight at once (default 10). */
  concurrency?: number;
  /** Cancels every run still going and stops starting new ones. */
  signal?: AbortSignal;
}

const PIPELINE_OPTIONS = [
  'pipelineName', 'verbose', 'trackingDb', 'maxRetries', 'retryDelay', 'retryBackoff', 'retryOn',
  'continueOnError', 'showProgress', 'collectSystemMetrics', 'trackingDurability', 'trackingRedact', 'trackingMaxValueBytes',
  'trackingRetention', 'logger', 'observers', 'api',
] as const;

const MAX_KEPT_BACKGROUND_FAILURES = 1000;

/**
 * A pipeline: a list of steps and blocks run over a context. See the module example, docs/architecture.md
 * "Run semantics" for the data flow, and RunObserver for history and checkpoints.
 *
 * @example
 * ```ts
 * const pipe = new Pipeline({ pipelineName: 'double' }).setSteps([(ctx) => ({ n: ctx.n * 2 })]);
 * pipe.runSync({ n: 2 });            // { n: 4 }
 * await pipe.run({ n: 3 });          // { n: 6 }
 * ```
 */
export class Pipeline {
  readonly [PIPELINE_BRAND] = true as const;
  readonly pipelineName: string;
  readonly trackingDb: string | undefined;
  readonly collectSystemMetrics: boolean;
  readonly trackingDurability: 'step' | 'fsync' | 'run';
  private readonly trackingControls: Partial<Pick<TrackingOptions, 'redact' | 'maxValueBytes' | 'retention'>>;

  /** @internal */ readonly _verbose: boolean;
  /** @internal */ readonly _continueOnError: boolean;
  /** @internal */ readonly _showProgress: boolean;
  /** @internal */ readonly _logger: Logger;
  /** @internal */ _plan: Plan;
  /** @internal */ readonly _checkpoints: { readonly name: string; readonly expression: CompiledCondition; readonly source: string }[] = [];

  private readonly maxRetries: number;
  private readonly retryDelay: number;
  private readonly retryBackoff: number;
  private readonly retryOn: RetryPredicate | undefined;
  private items: StepItem[] = [];
  private readonly observers: RunObserver[] = [];
  /** @internal The YAML file this pipeline was loaded from (set by loadPipeline; the history records it). */
  _yamlPath: string | undefined = undefined;
  /** The remote reporter of the `api` option, closed (queue sent) by close(). */
  private readonly reporter: ApiReporter | undefined;
  private observerSnapshot: RunObserver[] | null = null;
  /** The version of the process-wide observers the snapshot holds. */
  private processObserversSeen = -1;
  private tracking: (RunObserver & { close?(): void | Promise<void> }) | undefined;
  private readonly executors = new Map<ExecutorKind, Executor>();
  /** Nested pipelines whose own executors this one's runs used: close() closes theirs too. */
  private readonly borrowedExecutors = new Set<ExecutorOwner>();
  /** Executor kinds this pipeline brings itself, ahead of the registered ones (loadPipeline's `bullmq` queue). */
  private ownExecutors: Map<ExecutorKind, ExecutorFactory> | undefined;
  /** @internal The queue `enqueue` uses when its options name none (set by loadPipeline's `bullmq`). */
  _queue: import('../queue/config.js').ResolvedQueue | undefined = undefined;
  private readonly background = new Set<Promise<void>>();
  private readonly alertRules: AlertRule[] = [];
  private readonly errorHandlers: ((details: StepErrorDetails) => unknown)[] = [];
  private alertHook: RunObserver | undefined;
  private alertEvaluatorCache: AlertEvaluator | undefined;
  private get alertEvaluator(): AlertEvaluator {
    return (this.alertEvaluatorCache ??= new AlertEvaluator(this._logger));
  }
  private backgroundFailures: BackgroundRecord[] = [];
  private droppedBackgroundFailures = 0;

  constructor(options: PipelineOptions = {}) {
    const where = `new ${this.constructor.name}()`;
    checkOptions(where, options, this.knownOptions());
    this.pipelineName = optString(where, 'pipelineName', options.pipelineName) ?? 'Pipeline';
    this._verbose = optBool(where, 'verbose', options.verbose) ?? false;
    this.trackingDb = optString(where, 'trackingDb', options.trackingDb);
    this.maxRetries = optNumber(where, 'maxRetries', options.maxRetries, { min: 0, integer: true }) ?? 0;
    this.retryDelay = optNumber(where, 'retryDelay', options.retryDelay, { min: 0 }) ?? 1;
    warnIfMilliseconds(where, 'retryDelay', this.retryDelay);
    this.retryBackoff = optNumber(where, 'retryBackoff', options.retryBackoff, { min: 1 }) ?? 1;
    this.retryOn = optFunction<RetryPredicate>(where, 'retryOn', options.retryOn);
    this._continueOnError = optBool(where, 'continueOnError', options.continueOnError) ?? false;
    this._showProgress = optBool(where, 'showProgress', options.showProgress) ?? false;
    this.collectSystemMetrics = optBool(where, 'collectSystemMetrics', options.collectSystemMetrics) ?? false;
    const durability = options.trackingDurability ?? 'step';
    if (durability !== 'step' && durability !== 'run' && durability !== 'fsync') {
      throw invalidOption(`${where}: trackingDurability must be 'step', 'fsync' or 'run', got ${JSON.stringify(durability)}`, 'RangeError');
    }
    this.trackingDurability = durability;
    const controls: { redact?: PipelineOptions['trackingRedact']; maxValueBytes?: number; retention?: PipelineOptions['trackingRetention'] } = {};
    if (options.trackingRedact !== undefined) {
      if (!Array.isArray(options.trackingRedact) && typeof options.trackingRedact !== 'function') {
        throw invalidOption(`${where}: trackingRedact must be an array of key names and RegExps, or a function, got ${describeType(options.trackingRedact)}`);
      }
      controls.redact = options.trackingRedact;
    }
    const maxValueBytes = optNumber(where, 'trackingMaxValueBytes', options.trackingMaxValueBytes, { min: 256, integer: true });
    if (maxValueBytes !== undefined) controls.maxValueBytes = maxValueBytes;
    if (options.trackingRetention !== undefined) {
      const r = options.trackingRetention;
      if (r === null || typeof r !== 'object') throw invalidOption(`${where}: trackingRetention must be an object { olderThanDays?, keepLast? }`);
      checkOptions(`${where} trackingRetention`, r, ['olderThanDays', 'keepLast']);
      optNumber(where, 'trackingRetention.olderThanDays', r.olderThanDays, { min: 0 });
      optNumber(where, 'trackingRetention.keepLast', r.keepLast, { min: 0, integer: true });
      if (r.olderThanDays === undefined && r.keepLast === undefined) throw invalidOption(`${where}: trackingRetention needs olderThanDays, keepLast or both`);
      controls.retention = r;
    }
    this.trackingControls = controls;
    if (options.logger !== undefined && !isLogger(options.logger)) {
      throw invalidOption(`${where}: logger must have debug, info, warn and error methods, got ${describeType(options.logger)}`);
    }
    this._logger = options.logger ?? getDefaultLogger();
    if (options.observers !== undefined) {
      if (!Array.isArray(options.observers)) throw invalidOption(`${where}: observers must be an array, got ${describeType(options.observers)}`);
      for (const o of options.observers) this.observe(o);
    }
    if (options.api !== undefined) {
      if (options.api === null || typeof options.api !== 'object') throw invalidOption(`${where}: api must be an object { baseUrl, token, … }, got ${describeType(options.api)}`);
      this.reporter = new ApiReporter(options.api);
      this.observe(this.reporter);
    }
    this._plan = this.compile([]);
  }

  /** @internal Option names this class accepts. */
  protected knownOptions(): readonly string[] {
    return PIPELINE_OPTIONS;
  }

  /** @internal Which placement rule Parallel blocks follow. */
  protected variant(): 'pipeline' | 'async' {
    return 'pipeline';
  }

  /** @internal */ get _cooperative(): boolean { return false; }
  /** @internal */ get _yieldEveryMs(): number { return 0; }

  private compile(items: readonly unknown[]): Plan {
    return compilePlan(items, {
      maxRetries: this.maxRetries, retryDelay: this.retryDelay, retryBackoff: this.retryBackoff, retryOn: this.retryOn,
      variant: this.variant(), owner: this, ownerName: this.pipelineName,
      ...(this.ownExecutors === undefined ? {} : { provided: new Set(this.ownExecutors.keys()) }),
    });
  }

  /**
   * @internal Gives this pipeline its own executor of `kind`, used instead of the process-wide one
   * (registerExecutor / useBullmq) and available at setSteps even when none is registered:
   * loadPipeline's `bullmq` queue is this pipeline's, not the process's. Call before setSteps.
   */
  _provideExecutor(kind: ExecutorKind, factory: ExecutorFactory): void {
    (this.ownExecutors ??= new Map()).set(kind, factory);
  }

  /**
   * Replaces the step list. The whole tree is checked first: anything that is not a step or block
   * throws WpipeError WPIPE_ERR_INVALID_STEP naming its path (`steps[2].branchTrue[0]`).
   *
   * @example
   * ```ts
   * pipe.setSteps([load, [transform, 'transform', 'v2'], new Parallel({ steps: [a, b] })]);
   * ```
   */
  setSteps(steps: readonly StepItem[]): this {
    if (!Array.isArray(steps)) {
      throw new WpipeError('WPIPE_ERR_INVALID_STEP', `setSteps: steps must be an array, got ${describeType(steps)}`, { details: { path: 'steps' } });
    }
    steps.forEach((item, i) => checkItem(item, `steps[${i}]`));
    this._plan = this.compile(steps);
    this.items = steps.slice();
    return this;
  }

  /**
   * Appends steps (checked like setSteps; paths continue the existing numbering).
   *
   * @example
   * ```ts
   * pipe.addSteps([save]);
   * ```
   */
  addSteps(steps: readonly StepItem[]): this {
    if (!Array.isArray(steps)) {
      throw new WpipeError('WPIPE_ERR_INVALID_STEP', `addSteps: steps must be an array, got ${describeType(steps)}`, { details: { path: 'steps' } });
    }
    return this.setSteps([...this.items, ...steps]);
  }

  /**
   * The top-level steps, as descriptors (kind, name, version, path).
   *
   * @example
   * ```ts
   * pipe.steps.map((s) => s.name); // ['load', 'transform']
   * ```
   */
  get steps(): readonly StepDescriptor[] {
    return describePlan(this._plan);
  }

  /**
   * Adds a checkpoint: `expression` is compiled now (a syntax error throws here) and evaluated
   * before the first step and after every top-level step; whenever it holds, run history saves the
   * context and the position (through the observers' `onBoundary`), so a stopped run can resume.
   * An expression that cannot be evaluated yet (a name a later step creates) simply does not hold.
   *
   * @example
   * ```ts
   * pipe.addCheckpoint('loaded', 'rows > 0');
   * ```
   */
  addCheckpoint(name: string, expression: string): this {
    const where = 'addCheckpoint';
    if (typeof name !== 'string' || name.length === 0) throw invalidOption(`${where}: name must be a non-empty string, got ${describeType(name)}`);
    if (this._checkpoints.some((c) => c.name === name)) throw invalidOption(`${where}: a checkpoint named '${name}' already exists`);
    this._checkpoints.push({ name, expression: compileFor(where, 'expression', expression), source: expression });
    return this;
  }

  /**
   * Adds an alert: an expression over the run (or, with `scope: 'step'`, over each step it ran),
   * evaluated when each run ends; when it holds, the alert fires — recorded in the run history
   * (`alerts_fired`), handed to observers (`onAlert`) and to `onFire`. Names an expression can read:
   * run scope `duration_ms, status, failed, steps, error_rate, rss_mb, max_rss_mb, pipeline`; step
   * scope `duration_ms, status, failed, attempts, step, kind, pipeline`. See src/engine/alerts.ts.
   *
   * @example
   * ```ts
   * pipe.addAlert('slow', 'duration_ms > 5000', { severity: 'critical' });
   * pipe.addAlert('retried', 'attempts > 1', { scope: 'step' });
   * ```
   */
  addAlert(name: string, expression: string, options: AlertOptions = {}): this {
    const rule = compileAlert('addAlert', name, expression, options);
    if (this.alertRules.some((r) => r.name === name)) throw duplicateAlert('addAlert', name);
    this.alertRules.push(rule);
    this.observerSnapshot = null;
    return this;
  }

  /** The alerts added so far. */
  get alerts(): readonly { readonly name: string; readonly expression: string; readonly scope: 'run' | 'step'; readonly severity: AlertSeverity }[] {
    return this.alertRules.map((r) => ({ name: r.name, expression: r.expression, scope: r.scope, severity: r.severity }));
  }

  /**
   * Error capture: `handler` is called with every failed attempt of any step (retried or not), for
   * logging or metrics. It is not a step: what it throws or rejects with is logged, and it can never
   * re-trigger itself. It does not change `continueOnError` (the Python original's did). Returns a
   * function that removes it.
   *
   * @example
   * ```ts
   * const stop = pipe.onError((e) => console.error(`${e.stepName} attempt ${e.attempt}: ${String(e.error)}`));
   * ```
   */
  onError(handler: (details: StepErrorDetails) => unknown): () => void {
    if (typeof handler !== 'function') throw invalidOption(`onError: handler must be a function, got ${describeType(handler)}`);
    this.errorHandlers.push(handler);
    return () => {
      const i = this.errorHandlers.indexOf(handler);
      if (i >= 0) this.errorHandlers.splice(i, 1);
    };
  }

  /** @internal */
  get _errorHandlers(): readonly ((details: StepErrorDetails) => unknown)[] {
    return this.errorHandlers;
  }

  /** The observer that evaluates alerts at the end of each run (only while there are alerts). */
  private alertObserver(): RunObserver {
    const stepsOf = new Map<string, FinishedRun['steps'][number][]>();
    const evaluator = this.alertEvaluator;
    return {
      onStepEnd: (e) => {
        if (!this.alertRules.some((r) => r.scope === 'step')) return;
        let list = stepsOf.get(e.runId);
        if (list === undefined) stepsOf.set(e.runId, (list = []));
        list.push({ name: e.name, kind: e.kind, status: e.status, attempts: e.attempts, durationMs: e.durationMs });
      },
      onRunEnd: (e) => {
        const steps = stepsOf.get(e.runId) ?? [];
        stepsOf.delete(e.runId);
        if (e.replayed) return;
        const fired = evaluator.evaluate(this.alertRules, { runId: e.runId, pipelineName: e.pipelineName, status: e.status, durationMs: e.durationMs, steps });
        if (fired.length === 0) return;
        const observers = this.observerSnapshot ?? [];
        evaluator.deliver(fired, this.alertRules, (alert) => {
          for (const o of observers) o.onAlert?.(alert);
        });
      },
    };
  }

  /**
   * `run()`, telling how the result came about: `replayed` (a completed run id: its recorded result,
   * nothing executed), `resumedFrom` (a stopped run resumed from that position and checkpoint), and
   * the run's id.
   *
   * @example
   * ```ts
   * const { result, replayed, resumedFrom } = await pipe.runDetailed(order, { runId: `order-${order.id}` });
   * if (replayed) log.info('already done');
   * ```
   */
  async runDetailed<T extends Context = Context>(initialData?: Context, options?: RunOptions): Promise<RunStartDetail & { result: T }> {
    let detail: RunStartDetail | undefined;
    const result = await this.run<T>(initialData, { ...(options ?? {}), [RUN_DETAIL_SINK]: (d: RunStartDetail) => { detail = d; } } as RunOptions);
    return { ...detail!, result };
  }

  /**
   * Deletes old runs of the history (`trackingDb`) with everything recorded about them — of every
   * pipeline in that database, not only this one's (`keepLast` counts per pipeline name unless
   * `perPipeline: false`); runs still running are kept. Returns how many went.
   *
   * @example
   * ```ts
   * pipe.pruneHistory({ olderThanDays: 30, keepLast: 1000 });
   * ```
   */
  pruneHistory(options: { olderThanDays?: number; keepLast?: number; perPipeline?: boolean }): number {
    if (this.trackingDb === undefined) throw invalidOption('pruneHistory: this pipeline has no trackingDb');
    this._observersForRun();
    const tracking = this.tracking as { prune?: (o: typeof options) => number } | undefined;
    if (tracking?.prune === undefined) throw new WpipeError('WPIPE_ERR_STORAGE', 'pruneHistory: the run history in use cannot prune (a tracking factory installed with setTrackingObserverFactory without prune())');
    return tracking.prune(options);
  }

  /**
   * The checkpoints added so far.
   *
   * @example
   * ```ts
   * pipe.checkpoints; // [{ name: 'loaded', expression: 'rows > 0' }]
   * ```
   */
  get checkpoints(): readonly { readonly name: string; readonly expression: string }[] {
    return this._checkpoints.map((c) => ({ name: c.name, expression: c.source }));
  }

  /**
   * Adds a run observer (run history, metrics, tests). Returns a function that removes it.
   *
   * @example
   * ```ts
   * const stop = pipe.observe({ onRunEnd: (e) => console.log(e.status) });
   * stop();
   * ```
   */
  observe(observer: RunObserver): () => void {
    if (observer === null || typeof observer !== 'object') throw invalidOption(`observe: observer must be an object, got ${describeType(observer)}`);
    this.observers.push(observer);
    this.observerSnapshot = null;
    return () => {
      const i = this.observers.indexOf(observer);
      if (i >= 0) this.observers.splice(i, 1);
      this.observerSnapshot = null;
    };
  }

  /** @internal */
  _observersForRun(): RunObserver[] | null {
    if (this.tracking === undefined && this.trackingDb !== undefined) {
      // The run history in SQLite (src/storage/observer.ts), unless a test or another store replaced it.
      const factory: TrackingObserverFactory = getTrackingObserverFactory() ?? createTrackingObserver;
      this.tracking = factory({
        trackingDb: this.trackingDb, collectSystemMetrics: this.collectSystemMetrics,
        pipelineName: this.pipelineName, verbose: this._verbose, durability: this.trackingDurability,
        ...this.trackingControls,
        ...(this._yamlPath === undefined ? {} : { yamlPath: this._yamlPath }),
      });
      this.observerSnapshot = null;
    }
    const shared = processObserverState();
    if (this.observerSnapshot === null || this.processObserversSeen !== shared.version) {
      const all = this.tracking === undefined ? this.observers.slice() : [this.tracking, ...this.observers];
      all.push(...shared.list);
      // Alerts are evaluated last: the run's own end is recorded first.
      if (this.alertRules.length > 0) all.push((this.alertHook ??= this.alertObserver()));
      this.observerSnapshot = all;
      this.processObserversSeen = shared.version;
    }
    return this.observerSnapshot.length === 0 ? null : this.observerSnapshot;
  }

  /** @internal */
  _executor(kind: ExecutorKind, owner?: ExecutorOwner): Executor {
    if (owner !== undefined && owner !== this) {
      // A nested pipeline's own executor (loadPipeline's queue): closed by this pipeline's close()
      // too, as the executors it lent were before nested pipelines had their own.
      this.borrowedExecutors.add(owner);
      return owner._executor(kind);
    }
    let ex = this.executors.get(kind);
    if (ex === undefined) {
      const own = this.ownExecutors?.get(kind);
      const options = { maxWorkers: maxWorkersOf(this._plan.nodes) };
      ex = own === undefined ? createExecutor(kind, options) : own(options);
      this.executors.set(kind, ex);
    }
    return ex;
  }

  /** @internal */
  _trackBackground(work: Promise<void>): void {
    this.background.add(work);
    void work.finally(() => this.background.delete(work));
  }

  /** @internal */
  _recordBackground(record: BackgroundRecord, observers: readonly RunObserver[] | null): void {
    if (record.status === 'failed') {
      this._logger.error(`[BACKGROUND ERROR] ${record.name}: ${record.error?.message ?? 'unknown error'}`);
      if (this.backgroundFailures.length >= MAX_KEPT_BACKGROUND_FAILURES) {
        this.backgroundFailures.shift();
        this.droppedBackgroundFailures++;
      }
      this.backgroundFailures.push(record);
    } else if (this._verbose) {
      this._logger.info(`[BACKGROUND] ${record.name} completed in ${record.durationMs.toFixed(1)} ms`);
    }
    if (observers === null) return;
    for (const o of observers) {
      try {
        o.onBackgroundEnd?.(record);
      } catch (e) {
        this._logger.error(`[OBSERVER] onBackgroundEnd failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  /**
   * Runs the pipeline on a copy of `initialData`. Resolves to the final context; rejects with a
   * ProcessError (errorCode 502) whose `cause` is the failing step's TaskError, whose `cause` is
   * the step's own error. Cancelling `signal` rejects with code WPIPE_ERR_PROCESS_CANCELLED.
   *
   * @example
   * ```ts
   * const out = await pipe.run({ orderId: 7 }, { runId: 'order-7', signal: AbortSignal.timeout(30_000) });
   * ```
   */
  run<T extends Context = Context>(initialData?: Context, options?: RunOptions): Promise<T> {
    return runPlanAsync(this, this._plan, initialData, options) as Promise<T>;
  }

  /**
   * Puts one run on the BullMQ runs queue (`<name>-runs` of `options.queue`, else of loadPipeline's
   * `bullmq`, else of useBullmq) for a worker started with `pipelines` to run (src/queue/runs.ts).
   * The run id is the job id: enqueueing it again adds nothing (`added: false`), and the worker's
   * `run(data, { runId })` executes it once.
   *
   * @example
   * ```ts
   * useBullmq({ connection: 'redis://127.0.0.1:6379', name: 'orders' });
   * await pipe.enqueue({ orderId: 7 }, { runId: 'order-7' });
   * ```
   */
  async enqueue(initialData: Context | undefined, options: import('../queue/runs.js').EnqueueOptions): Promise<import('../queue/runs.js').EnqueuedRun> {
    const { enqueueRun } = await import('../queue/runs.js');
    return enqueueRun(this as unknown as import('../queue/runs.js').QueuePipeline, initialData, options);
  }

  /**
   * Runs a pipeline whose steps are all synchronous and inline, with no promise at all. Throws
   * WPIPE_ERR_RUN_SYNC_UNSUPPORTED (before running anything) for async functions or worker
   * placement, and as soon as a step returns a promise. Retry delays block the thread.
   *
   * @example
   * ```ts
   * const out = pipe.runSync({ n: 1 });
   * ```
   */
  runSync<T extends Context = Context>(initialData?: Context, options?: Omit<RunOptions, 'signal'>): T {
    if (options !== undefined && options !== null && typeof options === 'object' && 'signal' in options) {
      throw invalidOption('runSync: signal is not supported (nothing can interrupt a synchronous run); use run()');
    }
    return runPlanSync(this, this._plan, initialData, options) as T;
  }

  /**
   * Waits for all outstanding Background work, closes executors and the tracking observer, and
   * returns the Background failures recorded since the last close (at most 1,000 are kept).
   *
   * @example
   * ```ts
   * const failures = await pipe.close();
   * for (const f of failures) console.error(f.name, f.error);
   * ```
   */
  async close(): Promise<BackgroundRecord[]> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
    await this._closeExecutors();
    const borrowed = [...this.borrowedExecutors];
    this.borrowedExecutors.clear();
    await Promise.all(borrowed.map((o) => o._closeExecutors()));
    const tracking = this.tracking;
    this.tracking = undefined;
    this.observerSnapshot = null;
    await tracking?.close?.();
    await this.reporter?.close();
    const failures = this.backgroundFailures;
    this.backgroundFailures = [];
    if (this.droppedBackgroundFailures > 0) {
      this._logger.warn(`[BACKGROUND] ${this.droppedBackgroundFailures} older background failures were dropped (only ${MAX_KEPT_BACKGROUND_FAILURES} are kept)`);
      this.droppedBackgroundFailures = 0;
    }
    return failures;
  }

  /** @internal Closes the executors this pipeline made (made again at their next use). */
  async _closeExecutors(): Promise<void> {
    const executors = [...this.executors.values()];
    this.executors.clear();
    await Promise.all(executors.map((e) => e.close()));
  }

  /** Background steps still running. */
  get pendingBackground(): number {
    return this.background.size;
  }

  /** `await using pipe = new Pipeline(…)` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function maxWorkersOf(nodes: readonly PlanNode[]): number {
  let max = 1;
  const walk = (list: readonly PlanNode[]): void => {
    for (const n of list) {
      if (n.kind === 'parallel') { max = Math.max(max, n.maxWorkers); walk(n.branches); }
      else if (n.kind === 'condition') { walk(n.branchTrue); walk(n.branchFalse); }
      else if (n.kind === 'for') walk(n.body);
      else if (n.kind === 'background') walk([n.inner]);
    }
  };
  walk(nodes);
  return max;
}

const ASYNC_OPTIONS = [...PIPELINE_OPTIONS, 'yieldEveryMs'] as const;

/**
 * The variant for many concurrent runs: same API as Pipeline, but cooperative (it yields to the
 * event loop between top-level steps), Parallel branches stay in-process by default, and
 * `runMany` runs a batch of inputs with bounded concurrency.
 *
 * @example
 * ```ts
 * const pipe = new PipelineAsync({ pipelineName: 'events' }).setSteps([parse, enrich, store]);
 * const results = await pipe.runMany(events, { concurrency: 32 });
 * ```
 */
export class PipelineAsync extends Pipeline {
  private readonly yieldMs: number;

  constructor(options: PipelineAsyncOptions = {}) {
    super(options);
    this.yieldMs = optNumber(`new ${this.constructor.name}()`, 'yieldEveryMs', options.yieldEveryMs, { min: 0 }) ?? 0;
  }

  protected override knownOptions(): readonly string[] {
    return ASYNC_OPTIONS;
  }

  protected override variant(): 'pipeline' | 'async' {
    return 'async';
  }

  /** @internal */ override get _cooperative(): boolean { return true; }
  /** @internal */ override get _yieldEveryMs(): number { return this.yieldMs; }

  /**
   * Runs the pipeline once per input, at most `concurrency` at a time; resolves to the results in
   * input order. On the first failure no new run starts; runs in flight finish, then it rejects with
   * that failure. With `settled: true` it never rejects for a run: it resolves to one
   * {@link RunOutcome} per input (`{ status, value | reason, runId, index }`), so one bad input among
   * thousands loses none of the others' results.
   *
   * @example
   * ```ts
   * const out = await pipe.runMany([{ n: 1 }, { n: 2 }], { concurrency: 2 });
   * const all = await pipe.runMany(events, { settled: true });
   * const failed = all.filter((r) => r.status === 'rejected');
   * ```
   */
  runMany<T extends Context = Context>(inputs: Iterable<Context>, options: RunManyOptions & { settled: true }): Promise<RunOutcome<T>[]>;
  runMany<T extends Context = Context>(inputs: Iterable<Context>, options?: RunManyOptions & { settled?: false }): Promise<T[]>;
  async runMany<T extends Context = Context>(inputs: Iterable<Context>, options: RunManyOptions = {}): Promise<T[] | RunOutcome<T>[]> {
    const where = 'runMany';
    checkOptions(where, options, ['concurrency', 'signal', 'settled']);
    const { concurrency, signal } = this.batchOptions(where, options);
    const settled = optBool(where, 'settled', options.settled) ?? false;
    if (inputs === null || typeof (inputs as Iterable<Context>)[Symbol.iterator] !== 'function') {
      throw invalidOption(`${where}: inputs must be an iterable of objects, got ${describeType(inputs)}`);
    }
    const list = Array.from(inputs);
    if (settled) {
      const out: RunOutcome<T>[] = new Array(list.length);
      for await (const r of this.runEach<T>(list, { concurrency, ...(signal === undefined ? {} : { signal }) })) out[r.index] = r;
      return out;
    }
    const results: T[] = new Array(list.length);
    let next = 0;
    let failure: { error: unknown } | undefined;
    const runOptions: RunOptions | undefined = signal === undefined ? undefined : { signal };
    const worker = async (): Promise<void> => {
      while (failure === undefined && next < list.length) {
        const i = next++;
        try {
          results[i] = await this.run<T>(list[i], runOptions);
        } catch (e) {
          failure ??= { error: e };
        }
      }
    };
    const workers: Promise<void>[] = [];
    for (let k = 0; k < Math.min(concurrency, list.length); k++) workers.push(worker());
    await Promise.all(workers);
    if (failure !== undefined) throw failure.error;
    return results;
  }

  /**
   * Runs the pipeline once per input (an iterable or an async iterable, read lazily) and yields each
   * run's {@link RunOutcome} as it finishes, at most `concurrency` in flight. Back-pressure: a new
   * input is read and started only when a result has been taken, so a slow consumer holds at most
   * `concurrency` results and a stream of inputs is never read ahead. Leaving the loop early
   * (`break`) starts nothing more and waits for the runs in flight.
   *
   * @example
   * ```ts
   * for await (const r of pipe.runEach(readEvents(), { concurrency: 16 })) {
   *   if (r.status === 'rejected') log.warn({ runId: r.runId }, String(r.reason));
   * }
   * ```
   */
  async *runEach<T extends Context = Context>(inputs: Iterable<Context> | AsyncIterable<Context>, options: RunEachOptions = {}): AsyncGenerator<RunOutcome<T>, void, undefined> {
    const where = 'runEach';
    checkOptions(where, options, ['concurrency', 'signal']);
    const { concurrency, signal } = this.batchOptions(where, options);
    const source = inputs as Partial<Iterable<Context> & AsyncIterable<Context>> | null;
    const asyncIt = source?.[Symbol.asyncIterator];
    const syncIt = source?.[Symbol.iterator];
    if (typeof asyncIt !== 'function' && typeof syncIt !== 'function') {
      throw invalidOption(`${where}: inputs must be an iterable or async iterable of objects, got ${describeType(inputs)}`);
    }
    const it: AsyncIterator<Context> | Iterator<Context> = typeof asyncIt === 'function' ? asyncIt.call(inputs) : syncIt!.call(inputs);
    type Settled = { slot: number; outcome: RunOutcome<T> };
    const inFlight = new Map<number, Promise<Settled>>();
    let index = 0;
    let exhausted = false;
    const startOne = async (): Promise<void> => {
      const n = await it.next();
      if (n.done === true) {
        exhausted = true;
        return;
      }
      const i = index++;
      let runId = '';
      const runOptions = { ...(signal === undefined ? {} : { signal }), [RUN_ID_SINK]: (id: string) => { runId = id; } };
      const p = this.run<T>(n.value, runOptions as RunOptions).then(
        (value): Settled => ({ slot: i, outcome: { status: 'fulfilled', value, runId, index: i } }),
        (reason: unknown): Settled => ({ slot: i, outcome: { status: 'rejected', reason, runId, index: i } }),
      );
      inFlight.set(i, p);
    };
    try {
      for (;;) {
        while (!exhausted && inFlight.size < concurrency && !(signal?.aborted ?? false)) await startOne();
        if (inFlight.size === 0) return;
        const { slot, outcome } = await Promise.race(inFlight.values());
        inFlight.delete(slot);
        yield outcome;
      }
    } finally {
      await Promise.all(inFlight.values());
      if (!exhausted) await (it as { return?: () => unknown }).return?.();
    }
  }

  private batchOptions(where: string, options: { concurrency?: number; signal?: AbortSignal }): { concurrency: number; signal: AbortSignal | undefined } {
    const concurrency = optNumber(where, 'concurrency', options.concurrency, { min: 1, integer: true }) ?? 10;
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidOption(`${where}: signal must be an AbortSignal, got ${describeType(signal)}`);
    return { concurrency, signal };
  }
}
