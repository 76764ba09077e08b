/**
 * The run loop. One set of functions serves runSync, run and PipelineAsync: each `exec*` returns
 * `undefined` when its work finished synchronously, or a promise when something really was async.
 * A pipeline of sync steps therefore runs as plain calls (no promise per step, runSync pays none at
 * all), and run() only awaits what returned a thenable. Observer hooks follow the same rule: `notify`
 * returns `undefined` unless a hook really returned a promise (async runs only, see hooks.ts), and
 * only then does the loop go async at that point.
 */
import { timeOrderedUuid } from '../ids.js';
import { setImmediate as setImmediateCb } from 'node:timers';
import { ProcessError, TaskError, WpipeError, closestName, describeType, invalidOption } from '../errors.js';
import type { Executor, ExecutorKind } from '../parallel/executor.js';
import type { CompiledCondition } from './expression.js';
import type {
  BackgroundRecord, BoundaryEvent, RunEndEvent, RunObserver, RunStartDecision, RunStartEvent, StepEndEvent, StepStartEvent,
} from './hooks.js';
import type { Logger } from './logger.js';
import type {
  BackgroundNode, ConditionNode, ExecutorOwner, ForNode, PlanNode, ParallelNode, PipelineNode, Plan, TaskNode,
} from './nodes.js';
import { ProgressBar } from './progress.js';
import { captureError, type StepErrorDetails } from './alerts.js';
import { describePlan } from './compile.js';
import {
  ERRORS_KEY, LOOP_ITERATION_KEY, type Context, type StepDescriptor, type StepFailure, type StepInfo,
} from './types.js';

type Pending = void | Promise<void>;

/**
 * What the run loop needs from the pipeline that runs it (Pipeline implements it). Every member but
 * `pipelineName` is internal, so stripped from the published types, like Pipeline's own.
 *
 * @example
 * ```ts
 * runPlanSync(pipe satisfies RunHost, plan, { n: 1 }, undefined);
 * ```
 */
export interface RunHost {
  readonly pipelineName: string;
  /** @internal */ readonly _logger: Logger;
  /** @internal */ readonly _verbose: boolean;
  /** @internal */ readonly _continueOnError: boolean;
  /** @internal */ readonly _showProgress: boolean;
  /** @internal */ readonly _cooperative: boolean;
  /** @internal */ readonly _yieldEveryMs: number;
  /** @internal */ readonly _checkpoints: readonly { readonly name: string; readonly expression: CompiledCondition }[];
  /** @internal */ _observersForRun(): RunObserver[] | null;
  /** @internal The executor of `kind`: the host's own, or `owner`'s (a nested pipeline's own queue), which the host then closes with its own. */
  _executor(kind: ExecutorKind, owner?: ExecutorOwner): Executor;
  /** @internal */ _trackBackground(work: Promise<void>): void;
  /** @internal Error-capture handlers (pipeline.onError), called on every failed attempt. */
  readonly _errorHandlers: readonly ((details: StepErrorDetails) => unknown)[];
  /** @internal */ _recordBackground(record: BackgroundRecord, observers: readonly RunObserver[] | null): void;
}

/** Errors that end the run whatever continueOnError says (cancellation, observer failures, misuse). */
const FATAL = new WeakSet<object>();
function fatal<E extends Error>(e: E): E {
  FATAL.add(e);
  return e;
}
function isFatal(e: unknown): boolean {
  return typeof e === 'object' && e !== null && FATAL.has(e);
}

class RunState {
  seq = 0;
  position = -1;
  lastTopEnd: StepEndEvent | undefined = undefined;
  lastYield = 0;
  /** Steps and iterations left before dueYield looks at the clock (a short run never does). */
  yieldCountdown = YIELD_FIRST_CHECK;
  plan: Plan | undefined = undefined;
  bar: ProgressBar | undefined = undefined;
  /** Whether anything happens between top-level steps (progress, checkpoints, observers, yields). */
  between = false;
  private id: string | undefined;
  /** Whether the engine made the run id (no caller named it, so no record of it can exist). */
  readonly generatedId: boolean;

  constructor(
    readonly host: RunHost,
    runId: string | undefined,
    readonly signal: AbortSignal | undefined,
    readonly sync: boolean,
    readonly observers: readonly RunObserver[] | null,
  ) {
    this.id = runId;
    this.generatedId = runId === undefined;
  }

  /** Generated on first use: a run nobody asks the id of does not pay for a UUID. */
  get runId(): string {
    return (this.id ??= `RUN-${timeOrderedUuid()}`);
  }

  forBackground(): RunState {
    return new RunState(this.host, this.runId, undefined, false, null);
  }
}

// ---------------------------------------------------------------------------------------------
// What a step receives.

const NO_ABORT = new AbortController().signal;

class Info implements StepInfo {
  private ac: AbortController | undefined = undefined;
  private reason: unknown = undefined;
  private unlink: (() => void) | undefined = undefined;

  constructor(private readonly st: RunState, private readonly node: TaskNode, readonly attempt: number) {}

  get stepName(): string { return this.node.name; }
  get stepVersion(): string { return this.node.version; }
  get runId(): string { return this.st.runId; }
  /** Records a custom event with this run and step (run history keeps it in `events`). */
  recordEvent(event: { type: string; name: string; message?: string; data?: unknown; tags?: readonly string[] }): void {
    if (event === null || typeof event !== 'object' || typeof event.type !== 'string' || typeof event.name !== 'string') {
      throw invalidOption(`info.recordEvent: event must be an object with string type and name, got ${describeType(event)}`);
    }
    const observers = this.st.observers;
    if (observers === null) return;
    // Synchronous (the step is waiting for it); an observer's failure is the step's to handle.
    void notify(observers, 'onEvent', { runId: this.st.runId, pipelineName: this.st.host.pipelineName, stepName: this.node.name, ...event }, true);
  }

  /** The pipeline's logger; a pino-style one (with `child`) gets this run's and step's bindings. */
  get logger(): Logger {
    const base = this.st.host._logger;
    const child = (base as { child?: (bindings: object) => Logger }).child;
    return typeof child === 'function' ? child.call(base, { runId: this.st.runId, step: this.node.name }) : base;
  }

  /** Created on first read: most steps never look at it, and an AbortController is not free. */
  get signal(): AbortSignal {
    if (this.ac === undefined) {
      const runSignal = this.st.signal;
      if (this.reason === undefined && this.node.timeoutMs === 0 && runSignal === undefined) return NO_ABORT;
      const ac = (this.ac = new AbortController());
      if (this.reason !== undefined) ac.abort(this.reason);
      else if (runSignal !== undefined) {
        if (runSignal.aborted) ac.abort(runSignal.reason);
        else {
          const onAbort = (): void => ac.abort(runSignal.reason);
          runSignal.addEventListener('abort', onAbort, { once: true });
          this.unlink = () => runSignal.removeEventListener('abort', onAbort);
        }
      }
    }
    return this.ac.signal;
  }

  abort(reason: unknown): void {
    this.reason = reason;
    this.ac?.abort(reason);
    this.done();
  }

  done(): void {
    if (this.unlink !== undefined) {
      this.unlink();
      this.unlink = undefined;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Errors.

function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message.split('\n')[0] ?? '';
  return String(e);
}

function label(node: PlanNode): string {
  return node.kind === 'task' ? `step '${node.name}' (${node.version})` : `${node.kind} '${node.name}'`;
}

function stepDetails(node: PlanNode, attempts: number): Record<string, unknown> {
  return { stepName: node.name, version: node.version, path: node.path, attempts, pipeline: node.owner, kind: node.kind };
}

function cancelled(st: RunState): ProcessError {
  return fatal(new ProcessError(`pipeline '${st.host.pipelineName}' run ${st.runId} was cancelled`, {
    code: 'WPIPE_ERR_PROCESS_CANCELLED',
    cause: st.signal?.reason,
    details: { pipelineName: st.host.pipelineName, runId: st.runId },
  }));
}

function timeoutError(node: TaskNode, attempt: number): TaskError {
  return new TaskError(`${label(node)} timed out after ${node.timeoutMs / 1000} s (attempt ${attempt})`, {
    code: 'WPIPE_ERR_TASK_TIMEOUT',
    details: { ...stepDetails(node, attempt), attempt, timeoutSeconds: node.timeoutMs / 1000 },
  });
}

function syncUnsupported(node: PlanNode, why: string): WpipeError {
  return fatal(new WpipeError(
    'WPIPE_ERR_RUN_SYNC_UNSUPPORTED',
    `runSync cannot run ${label(node)} at ${node.path}: ${why}; use await pipeline.run() instead`,
    { details: { stepName: node.name, path: node.path } },
  ));
}

/** Codes of a failed attempt that name the step's failure better than WPIPE_ERR_TASK_FAILED does. */
const PROMOTED_CODES = new Set(['WPIPE_ERR_MEMORY_LIMIT', 'WPIPE_ERR_WORKER_EXITED']);

function finalTaskError(node: TaskNode, error: unknown, attempts: number): TaskError {
  const own = error instanceof TaskError && error.code === 'WPIPE_ERR_TASK_TIMEOUT' && error.details.stepName === node.name;
  const plural = attempts === 1 ? 'attempt' : 'attempts';
  const why = own ? `timed out after ${node.timeoutMs / 1000} s` : messageOf(error);
  const code = (error as { code?: unknown } | null)?.code;
  const promoted = !own && typeof code === 'string' && PROMOTED_CODES.has(code);
  return new TaskError(`${label(node)} failed after ${attempts} ${plural}: ${why}`, {
    code: own ? 'WPIPE_ERR_TASK_TIMEOUT' : promoted ? code as 'WPIPE_ERR_MEMORY_LIMIT' : 'WPIPE_ERR_TASK_FAILED',
    cause: error,
    // A promoted failure keeps what it said (the cap, the exit code) beside the step's own details.
    details: promoted ? { ...(error as WpipeError).details, ...stepDetails(node, attempts) } : stepDetails(node, attempts),
  });
}

/** Any failure of a node as a TaskError naming it (TaskErrors from deeper steps pass through). */
function asTaskError(e: unknown, node: PlanNode): TaskError {
  if (e instanceof TaskError) return e;
  return new TaskError(`${label(node)} failed: ${messageOf(e)}`, { cause: e, details: stepDetails(node, 1) });
}

function observerFailure(e: unknown, hook: string): Error {
  if (isFatal(e)) return e as Error;
  if (e instanceof WpipeError) return fatal(e);
  return fatal(new ProcessError(`run observer ${hook} failed: ${messageOf(e)}`, { code: 'WPIPE_ERR_OBSERVER_FAILED', cause: e }));
}

/**
 * Calls one hook of every observer. Returns undefined when every hook returned something that is not
 * a thenable (the common case: no promise is made); otherwise a promise that settles once all the
 * returned promises have. Failures, thrown or rejected, become one error: the first in observer
 * order. In a sync run a thenable is itself the failure (runSync has no event loop to wait on).
 * Kept small so it stays inlined on the hot path; the rest is in notifySlow.
 */
function notify<K extends Exclude<keyof RunObserver, 'onRunStart' | 'onBackgroundEnd'>>(
  observers: readonly RunObserver[], hook: K, event: Parameters<NonNullable<RunObserver[K]>>[0], sync: boolean,
): Pending {
  for (let i = 0; i < observers.length; i++) {
    const o = observers[i]!;
    const f = o[hook] as ((e: unknown) => unknown) | undefined;
    if (f === undefined) continue;
    let r: unknown;
    try {
      r = f.call(o, event);
    } catch (e) {
      return notifySlow(observers, hook, event, sync, i, e, true);
    }
    if (r !== undefined && isThenable(r)) return notifySlow(observers, hook, event, sync, i, r, false);
  }
}

/** notify from the first hook (index `i`) that threw or returned a thenable: the remaining hooks, then one outcome. */
function notifySlow(
  observers: readonly RunObserver[], hook: string, event: unknown, sync: boolean, i: number, first: unknown, threw: boolean,
): Pending {
  let failure: Error | undefined;
  let pending: PromiseLike<unknown>[] | undefined;
  const thrown = (e: unknown): void => {
    const err = observerFailure(e, hook);
    // Once a hook went async, later failures queue behind it so the first in observer order wins.
    if (pending === undefined) failure ??= err;
    else pending.push(Promise.reject(err));
  };
  const returned = (r: PromiseLike<unknown>): void => {
    if (sync) {
      failure ??= promiseInSyncRun(r, hook);
      return;
    }
    if (pending === undefined) {
      // An earlier failure still waits for this hook's work to settle, and still comes first.
      pending = failure === undefined ? [] : [Promise.reject(failure)];
      failure = undefined;
    }
    pending.push(r);
  };
  if (threw) thrown(first);
  else returned(first as PromiseLike<unknown>);
  for (i++; i < observers.length; i++) {
    const o = observers[i]!;
    const f = (o as Record<string, unknown>)[hook] as ((e: unknown) => unknown) | undefined;
    if (f === undefined) continue;
    let r: unknown;
    try {
      r = f.call(o, event);
    } catch (e) {
      thrown(e);
      continue;
    }
    if (r !== undefined && isThenable(r)) returned(r);
  }
  if (pending !== undefined) return settleHooks(pending, hook);
  if (failure !== undefined) throw failure;
}

/** Waits for every promise the hooks returned, then fails with the first rejection, if any. */
async function settleHooks(pending: readonly PromiseLike<unknown>[], hook: string): Promise<void> {
  const results = await Promise.allSettled(pending);
  for (const r of results) if (r.status === 'rejected') throw observerFailure(r.reason, hook);
}

function promiseInSyncRun(r: PromiseLike<unknown>, hook: string): Error {
  Promise.resolve(r).catch(() => {}); // its outcome is moot; do not let it go unhandled
  return fatal(new ProcessError(
    `run observer ${hook} returned a promise to a synchronous run (runSync), which cannot wait for it; ` +
      'an observer must stay synchronous when its RunStartEvent has sync: true, or run the pipeline with await pipeline.run()',
    { code: 'WPIPE_ERR_OBSERVER_FAILED', details: { hook } },
  ));
}

// ---------------------------------------------------------------------------------------------
// Executing nodes.

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

function exec(node: PlanNode, ctx: Context, st: RunState, parent: number): Pending {
  if (st.signal !== undefined && st.signal.aborted) throw cancelled(st);
  if (st.observers !== null) return execObserved(node, ctx, st, parent);
  return execRaw(node, ctx, st, -1, null);
}

interface AttemptCounter {
  attempts: number;
  /** The worker of the last attempt that reached one (StepCall.onStarted). */
  worker?: string;
  /** What the successful attempt returned (merged into the context): StepEndEvent.output. */
  output?: unknown;
}

function execRaw(node: PlanNode, ctx: Context, st: RunState, self: number, rec: AttemptCounter | null): Pending {
  switch (node.kind) {
    case 'task': return execTask(node, ctx, st, 1, rec);
    case 'condition': return execCondition(node, ctx, st, self);
    case 'for': return execFor(node, ctx, st, self);
    case 'parallel': return execParallel(node, ctx, st, self);
    case 'background': return execBackground(node, ctx, st);
    case 'pipeline': return execNested(node, ctx, st, self);
  }
}

function execObserved(node: PlanNode, ctx: Context, st: RunState, parent: number): Pending {
  const start: StepStartEvent = {
    runId: st.runId, pipelineName: node.owner, id: st.seq++, parentId: parent, position: st.position,
    kind: node.kind, name: node.name, version: node.version, path: node.path,
    executor: node.kind === 'task' ? node.placement : undefined, startedAt: Date.now(),
  };
  const p = notify(st.observers!, 'onStepStart', start, st.sync);
  if (p === undefined) return execStarted(node, ctx, st, parent, start, false);
  // The step's code starts only once its onStepStart has settled (e.g. a boundary made durable).
  return p.then(() => execStarted(node, ctx, st, parent, start, true));
}

/** A step whose onStepStart is done: runs it and reports its end. No closure on the sync path. */
function execStarted(node: PlanNode, ctx: Context, st: RunState, parent: number, start: StepStartEvent, waited: boolean): Pending {
  const counter: AttemptCounter = { attempts: node.kind === 'task' ? 0 : 1 };
  const t0 = performance.now();
  let p: Pending;
  try {
    // The run may have been cancelled while an onStepStart promise was pending.
    if (waited && st.signal !== undefined && st.signal.aborted) throw cancelled(st);
    p = execRaw(node, ctx, st, start.id, counter);
  } catch (e) {
    return stepFailed(node, st, parent, start, counter, t0, e);
  }
  if (p === undefined) return stepEnded(node, st, parent, start, counter, t0, undefined);
  return p.then(
    () => stepEnded(node, st, parent, start, counter, t0, undefined),
    (e: unknown) => stepFailed(node, st, parent, start, counter, t0, e),
  );
}

/** Reports a step's end to onStepEnd (a promise when an observer returned one). */
function stepEnded(node: PlanNode, st: RunState, parent: number, start: StepStartEvent, counter: AttemptCounter, t0: number, error: unknown): Pending {
  const event: StepEndEvent = Object.assign({}, start, {
    status: error === undefined ? 'completed' as const : isFatal(error) && error instanceof ProcessError ? 'cancelled' as const : 'failed' as const,
    attempts: Math.max(1, counter.attempts),
    durationMs: performance.now() - t0,
    error: error === undefined ? undefined : error instanceof Error ? error : asTaskError(error, node),
    worker: counter.worker,
    output: error === undefined && counter.output !== null && typeof counter.output === 'object' ? counter.output as Context : undefined,
  });
  if (parent === -1) st.lastTopEnd = event;
  return notify(st.observers!, 'onStepEnd', event, st.sync);
}

/** Reports a failed step, then rethrows its error (an observer's own failure replaces it, as it is fatal). */
function stepFailed(node: PlanNode, st: RunState, parent: number, start: StepStartEvent, counter: AttemptCounter, t0: number, e: unknown): Pending {
  const q = stepEnded(node, st, parent, start, counter, t0, e);
  if (q === undefined) throw e;
  return q.then(() => { throw e; });
}

function execSeq(nodes: readonly PlanNode[], i: number, ctx: Context, st: RunState, parent: number): Pending {
  for (; i < nodes.length; i++) {
    if (dueYield(st)) return execSeqAsync(nodes, i - 1, yieldTurn(), ctx, st, parent);
    const p = exec(nodes[i]!, ctx, st, parent);
    if (p !== undefined) return execSeqAsync(nodes, i, p, ctx, st, parent);
  }
}

/**
 * The rest of a sequence once one of its steps went async. A loop with await (not a chain of
 * `.then` continuations) so a long sequence or loop holds constant memory.
 */
async function execSeqAsync(nodes: readonly PlanNode[], i: number, pending: Promise<void>, ctx: Context, st: RunState, parent: number): Promise<void> {
  await pending;
  for (i++; i < nodes.length; i++) {
    if (dueYield(st)) await yieldTurn();
    const p = exec(nodes[i]!, ctx, st, parent);
    if (p !== undefined) await p;
  }
}

/**
 * Steps and loop iterations an async run executes between two looks at the clock, and how long it
 * may go without letting the event loop turn. Without this, a loop of steps that resolve at once
 * (or of synchronous steps) in `run()` never gives timers a turn: a deadline or an AbortSignal
 * could never fire, and the process spun forever. Counting first keeps the clock off the hot path
 * (bench/engine.ts measures it).
 */
const YIELD_CHECK_EVERY = 8;
const YIELD_AFTER_MS = 10;
/** A run's first look at the clock comes after this many: short runs pay only a decrement per step. */
const YIELD_FIRST_CHECK = 64;

/** Whether an async run should let the event loop turn now (see YIELD_AFTER_MS). Never in runSync. */
function dueYield(st: RunState): boolean {
  if (st.sync || --st.yieldCountdown > 0) return false;
  st.yieldCountdown = YIELD_CHECK_EVERY;
  const now = performance.now();
  if (st.lastYield === 0) {
    st.lastYield = now;
    return false;
  }
  if (now - st.lastYield < YIELD_AFTER_MS) return false;
  st.lastYield = now;
  return true;
}

/** One turn of the event loop (timers and I/O run), as a promise. */
function yieldTurn(): Promise<void> {
  return new Promise((resolve) => setImmediateCb(resolve));
}

/** Merges a step's return value: a plain object merges, undefined/null merge nothing, else an error. */
function mergeResult(node: TaskNode, ctx: Context, value: unknown, attempt: number): void {
  if (value === undefined || value === null || value === ctx) return;
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) {
      Object.assign(ctx, value);
      return;
    }
  }
  const shown = typeof value === 'string'
    ? ` ('${value.length > 40 ? `${value.slice(0, 40)}…` : value}')`
    : typeof value === 'number' || typeof value === 'boolean' ? ` (${String(value)})` : '';
  throw new TaskError(
    `${label(node)} returned ${describeType(value)}${shown}; a step must return a plain object, undefined or null`,
    { code: 'WPIPE_ERR_TASK_RETURN', details: { ...stepDetails(node, attempt), returnedType: describeType(value) } },
  );
}

function execTask(node: TaskNode, ctx: Context, st: RunState, attempt: number, rec: AttemptCounter | null): Pending {
  for (;;) {
    const info = new Info(st, node, attempt);
    let value: unknown;
    let error: unknown;
    let failed = false;
    const t0 = node.timeoutMs > 0 ? performance.now() : 0;
    // In a worker, the deadline starts when the worker begins the attempt (StepCall.onStarted).
    let started: Promise<void> | undefined;
    try {
      if (node.placement === 'inline') value = node.fn(ctx, info);
      else {
        const executor = st.host._executor(node.placement, node.executorOwner);
        let onStarted: ((worker?: string) => void) | undefined;
        if (executor.reportsStart === true) {
          let begin: (() => void) | undefined;
          if (node.timeoutMs > 0) started = new Promise<void>((resolve) => { begin = resolve; });
          onStarted = (worker) => {
            if (rec !== null && worker !== undefined) rec.worker = worker;
            begin?.();
          };
        }
        value = executor.call({
          fn: node.fn as never, moduleRef: node.moduleRef, context: ctx, info, signal: info.signal, memoryLimitMb: node.memoryLimitMb,
          transfer: node.transfer, onStarted,
        });
      }
    } catch (e) {
      failed = true;
      error = e;
    }
    if (!failed) {
      // A plain object (the common return) is data, never a thenable: checking its prototype first
      // spares a megamorphic `then` lookup per step.
      if (value !== null && typeof value === 'object') {
        const proto = Object.getPrototypeOf(value);
        if ((proto === Object.prototype || proto === null) && node.timeoutMs === 0) {
          info.done();
          if (rec !== null) {
            rec.attempts = attempt;
            rec.output = value;
          }
          if (value !== ctx) Object.assign(ctx, value);
          return;
        }
      }
      if (isThenable(value)) {
        if (st.sync) {
          Promise.resolve(value).catch(() => {}); // its failure is moot; do not let it go unhandled
          info.done();
          throw syncUnsupported(node, 'it returned a promise');
        }
        const a = attempt;
        return settleAttempt(node, value, info, t0, st, started).then(
          (v) => {
            if (rec !== null) {
              rec.attempts = a;
              rec.output = v;
            }
            mergeResult(node, ctx, v, a);
          },
          (e: unknown) => {
            const delay = nextDelay(node, e, a, rec, st);
            return sleep(delay, st).then(() => execTask(node, ctx, st, a + 1, rec));
          },
        );
      }
      // A synchronous step cannot be interrupted, but it must not succeed past its deadline.
      if (node.timeoutMs > 0 && performance.now() - t0 > node.timeoutMs) {
        failed = true;
        error = timeoutError(node, attempt);
        info.abort(error);
      } else {
        info.done();
        if (rec !== null) {
          rec.attempts = attempt;
          rec.output = value;
        }
        mergeResult(node, ctx, value, attempt);
        return;
      }
    }
    info.done();
    const delay = nextDelay(node, error, attempt, rec, st);
    if (!st.sync) {
      const a = attempt;
      return sleep(delay, st).then(() => execTask(node, ctx, st, a + 1, rec));
    }
    if (delay > 0) sleepSync(delay);
    attempt++;
  }
}

/** Decides on a failed attempt: returns the delay before the next one, or throws the final error. */
function nextDelay(node: TaskNode, error: unknown, attempt: number, rec: AttemptCounter | null, st: RunState): number {
  if (rec !== null) rec.attempts = attempt;
  if (isFatal(error)) throw error;
  let retry = attempt <= node.retries;
  if (retry && node.retryOn !== undefined) {
    try {
      retry = node.retryOn(error, attempt) === true;
    } catch (e) {
      st.host._logger.warn(`[RETRY] retryOn of ${label(node)} threw (${messageOf(e)}); not retrying`);
      retry = false;
    }
  }
  const handlers = st.host._errorHandlers;
  if (handlers.length > 0) {
    captureError(handlers, { runId: st.runId, pipelineName: st.host.pipelineName, stepName: node.name, attempt, error, willRetry: retry }, st.host._logger);
  }
  if (!retry) throw finalTaskError(node, error, attempt);
  if (st.host._verbose) {
    st.host._logger.info(`[RETRY] ${node.name} failed (attempt ${attempt}/${node.retries + 1}): ${messageOf(error)}`);
  }
  return node.retryDelayMs * node.retryBackoff ** (attempt - 1);
}

/**
 * Waits for an async attempt, with its deadline and the run's cancellation. The deadline timer is
 * deliberately ref'd while the attempt is pending: if the step awaits something that holds no
 * handle, an unref'd timer would let the process exit with run() unsettled instead of failing with
 * WPIPE_ERR_TASK_TIMEOUT. It is cleared the moment the attempt settles, so none outlives a step.
 * With `started` (a step in a worker), the whole deadline runs from the moment the worker begins
 * the attempt; until then only the run's cancellation applies (a queued call is aborted as well).
 */
function settleAttempt(
  node: TaskNode, value: PromiseLike<unknown>, info: Info, t0: number, st: RunState, started?: Promise<void>,
): Promise<unknown> {
  const p = Promise.resolve(value);
  const runSignal = st.signal;
  if (node.timeoutMs === 0 && runSignal === undefined) {
    return p.then((v) => { info.done(); return v; }, (e: unknown) => { info.done(); throw e; });
  }
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    let settled = false;
    const cleanup = (): void => {
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      if (onAbort !== undefined) runSignal!.removeEventListener('abort', onAbort);
      info.done();
    };
    if (runSignal !== undefined) {
      onAbort = () => {
        cleanup();
        const err = cancelled(st);
        info.abort(err);
        reject(err);
      };
      if (runSignal.aborted) {
        onAbort();
        return;
      }
      runSignal.addEventListener('abort', onAbort, { once: true });
    }
    if (node.timeoutMs > 0) {
      const arm = (remaining: number): void => {
        timer = setTimeout(() => {
          cleanup();
          const err = timeoutError(node, info.attempt);
          info.abort(err);
          reject(err);
        }, remaining);
      };
      if (started === undefined) arm(Math.max(0, node.timeoutMs - (performance.now() - t0)));
      else void started.then(() => { if (!settled) arm(node.timeoutMs); });
    }
    p.then((v) => { cleanup(); resolve(v); }, (e: unknown) => { cleanup(); reject(e); });
  });
}

function sleep(ms: number, st: RunState): Promise<void> {
  return new Promise((resolve, reject) => {
    const sig = st.signal;
    if (sig !== undefined && sig.aborted) {
      reject(cancelled(st));
      return;
    }
    if (ms <= 0 && sig === undefined) {
      resolve();
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(cancelled(st));
    };
    const timer = setTimeout(() => {
      sig?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    sig?.addEventListener('abort', onAbort, { once: true });
  });
}

let sleepCell: Int32Array | undefined;
/** runSync's retry delay: a real blocking wait (it is a synchronous API), no busy loop. */
function sleepSync(ms: number): void {
  sleepCell ??= new Int32Array(new SharedArrayBuffer(4));
  Atomics.wait(sleepCell, 0, 0, ms);
}

function evalFailure(node: ConditionNode | ForNode, e: unknown): TaskError {
  return new TaskError(`${label(node)} at ${node.path}: the expression '${node.source}' failed: ${messageOf(e)}`, {
    cause: e,
    code: 'WPIPE_ERR_TASK_FAILED',
    details: { ...stepDetails(node, 1), expression: node.source },
  });
}

function execCondition(node: ConditionNode, ctx: Context, st: RunState, self: number): Pending {
  let holds: boolean;
  try {
    holds = node.expression.test(ctx);
  } catch (e) {
    throw evalFailure(node, e);
  }
  if (st.host._verbose) st.host._logger.info(`[CONDITION] Evaluating: ${node.source} → ${holds ? 'true' : 'false'}`);
  return execSeq(holds ? node.branchTrue : node.branchFalse, 0, ctx, st, self);
}

function execFor(node: ForNode, ctx: Context, st: RunState, self: number): Pending {
  const had = Object.prototype.hasOwnProperty.call(ctx, LOOP_ITERATION_KEY);
  const previous: unknown = ctx[LOOP_ITERATION_KEY];
  // Returns true when iteration `i` should run; when not, leaves `_loop_iteration` as documented.
  const check = (i: number): boolean => {
    if (st.signal !== undefined && st.signal.aborted) throw cancelled(st);
    // Set before the check, so the expression sees the index about to run (0 at the first check).
    ctx[LOOP_ITERATION_KEY] = i;
    let go = node.iterations === undefined || i < node.iterations;
    if (go && node.expression !== undefined) {
      try {
        go = node.expression.test(ctx);
      } catch (e) {
        throw evalFailure(node, e);
      }
    }
    if (go && node.maxIterations !== undefined && i >= node.maxIterations) {
      throw new TaskError(`${label(node)} at ${node.path}: would start iteration ${i + 1}, past its maxIterations (${node.maxIterations})` +
        `${node.source === undefined ? '' : `; '${node.source}' still holds`}`, {
        code: 'WPIPE_ERR_LOOP_LIMIT', details: { ...stepDetails(node, 1), maxIterations: node.maxIterations, expression: node.source },
      });
    }
    if (!go) {
      if (i > 0) ctx[LOOP_ITERATION_KEY] = i - 1; // the last iteration that ran, as in the original
      else if (had) ctx[LOOP_ITERATION_KEY] = previous;
      else delete ctx[LOOP_ITERATION_KEY];
    }
    return go;
  };
  for (let i = 0; check(i); i++) {
    // Let timers (a deadline, the run's AbortSignal) fire between iterations: checked before the
    // iteration runs, and resumed at the same index (its check is repeated, which is pure).
    if (dueYield(st)) return execForAsync(node, i - 1, yieldTurn(), check, ctx, st, self);
    const p = execSeq(node.body, 0, ctx, st, self);
    if (p !== undefined) return execForAsync(node, i, p, check, ctx, st, self);
  }
}

async function execForAsync(
  node: ForNode, i: number, pending: Promise<void>, check: (i: number) => boolean, ctx: Context, st: RunState, self: number,
): Promise<void> {
  await pending;
  for (i++; check(i); i++) {
    if (dueYield(st)) await yieldTurn();
    const p = execSeq(node.body, 0, ctx, st, self);
    if (p !== undefined) await p;
  }
}

/**
 * Runs `n` jobs, at most `limit` at once. Jobs never throw (they record their own failures).
 * Returns undefined when every job finished synchronously.
 */
function runBounded(n: number, limit: number, job: (i: number) => Pending): Pending {
  let next = 0;
  while (next < n) {
    const first = job(next++);
    if (first === undefined) continue;
    return new Promise<void>((resolve) => {
      let inFlight = 0;
      const settle = (): void => {
        inFlight--;
        launch();
      };
      const launch = (): void => {
        while (inFlight < limit && next < n) {
          const p = job(next++);
          if (p !== undefined) {
            inFlight++;
            p.then(settle);
          }
        }
        if (inFlight === 0 && next >= n) resolve();
      };
      inFlight++;
      first.then(settle);
      launch();
    });
  }
}

function changedKeys(base: Context, copy: Context): Context | undefined {
  let out: Context | undefined;
  for (const k of Object.keys(copy)) {
    if (k === ERRORS_KEY) continue;
    const v = copy[k];
    if (v !== base[k] || !Object.prototype.hasOwnProperty.call(base, k)) (out ??= {})[k] = v;
  }
  return out;
}

function execParallel(node: ParallelNode, ctx: Context, st: RunState, self: number): Pending {
  const n = node.branches.length;
  if (n === 0) return;
  const ownErrors = ctx[ERRORS_KEY] !== undefined;
  const copies: Context[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const copy = Object.assign({}, ctx);
    // Each branch gets its own failure list, so continueOnError failures keep declared order too.
    if (ownErrors) copy[ERRORS_KEY] = [];
    copies[i] = copy;
  }
  const errors: unknown[] = new Array(n);
  let anyFailed = false;
  if (st.host._verbose) st.host._logger.info(`[PARALLEL] Executing ${n} branches (workers=${node.maxWorkers})`);
  const job = (i: number): Pending => {
    let p: Pending = undefined;
    try {
      p = exec(node.branches[i]!, copies[i]!, st, self);
    } catch (e) {
      errors[i] = e;
      anyFailed = true;
      return;
    }
    if (p !== undefined) {
      return p.then(undefined, (e: unknown) => {
        errors[i] = e;
        anyFailed = true;
      });
    }
  };
  const finish = (): void => {
    if (anyFailed) throw parallelFailure(node, errors);
    const changes: (Context | undefined)[] = copies.map((c) => changedKeys(ctx, c));
    for (const c of changes) if (c !== undefined) Object.assign(ctx, c);
    for (const c of copies) {
      const list = c[ERRORS_KEY] as StepFailure[] | undefined;
      if (list !== undefined && list.length > 0) {
        if (ctx[ERRORS_KEY] === undefined) ctx[ERRORS_KEY] = [];
        (ctx[ERRORS_KEY] as StepFailure[]).push(...list);
      }
    }
  };
  const p = runBounded(n, node.maxWorkers, job);
  if (p === undefined) return finish();
  return p.then(finish);
}

function parallelFailure(node: ParallelNode, errors: readonly unknown[]): Error {
  for (const e of errors) if (isFatal(e)) return e as Error;
  const failures: { index: number; step: string; code: string; message: string }[] = [];
  let first: TaskError | undefined;
  errors.forEach((e, i) => {
    if (e === undefined) return;
    const te = asTaskError(e, node.branches[i]!);
    first ??= te;
    failures.push({ index: i, step: String(te.details.stepName ?? node.branches[i]!.name), code: te.code, message: te.message });
  });
  // The first failure in declared order is the error; the block and all its failures ride along.
  first!.details.parallel = node.name;
  first!.details.parallelFailures = failures;
  return first!;
}

function execBackground(node: BackgroundNode, ctx: Context, st: RunState): Pending {
  const copy = Object.assign({}, ctx);
  if (copy[ERRORS_KEY] !== undefined) copy[ERRORS_KEY] = [];
  const before = Object.assign({}, copy);
  const bg = st.forBackground();
  const host = st.host;
  const observers = st.observers;
  const t0 = performance.now();
  const base = { runId: bg.runId, pipelineName: node.owner, name: node.name, path: node.path };
  // Started on the next turn of the event loop: a synchronous background step must not block the run.
  const work = new Promise<void>((resolve) => setImmediateCb(resolve))
    .then(() => exec(node.inner, copy, bg, -1))
    .then(
      () => host._recordBackground(Object.assign(base, {
        status: 'completed' as const, changes: changedKeys(before, copy), error: undefined, durationMs: performance.now() - t0,
      }), observers),
      (e: unknown) => host._recordBackground(Object.assign(base, {
        status: 'failed' as const, changes: undefined, error: asTaskError(e, node.inner), durationMs: performance.now() - t0,
      }), observers),
    );
  host._trackBackground(work);
}

function execNested(node: PipelineNode, ctx: Context, st: RunState, self: number): Pending {
  const child = node.child;
  const copy = Object.assign({}, ctx);
  if (st.host._verbose) st.host._logger.info(`[PIPELINE] ${node.owner} → nested '${child.pipelineName}'`);
  const p = runTop(child._plan, 0, copy, st, child._continueOnError, false, self);
  if (p === undefined) {
    Object.assign(ctx, copy);
    return;
  }
  return p.then(() => {
    Object.assign(ctx, copy);
  });
}

// ---------------------------------------------------------------------------------------------
// The top-level loop (also a nested pipeline's own loop, with `outer` false).

function recordFailure(ctx: Context, te: TaskError, node: PlanNode, position: number): void {
  const d = te.details;
  const failure: StepFailure = {
    step: String(d.stepName ?? node.name),
    version: String(d.version ?? node.version),
    path: String(d.path ?? node.path),
    position,
    code: te.code,
    errorCode: te.errorCode,
    message: te.message,
    attempts: typeof d.attempts === 'number' ? d.attempts : 1,
    at: new Date().toISOString(),
  };
  const cause = te.cause;
  if (cause instanceof Error) {
    const code = (cause as Error & { code?: unknown }).code;
    failure.cause = typeof code === 'string' ? { name: cause.name, message: cause.message, code } : { name: cause.name, message: cause.message };
  } else if (cause !== undefined) {
    failure.cause = { name: typeof cause, message: String(cause) };
  }
  if (Array.isArray(d.parallelFailures)) failure.branches = d.parallelFailures as StepFailure['branches'];
  let list = ctx[ERRORS_KEY] as StepFailure[] | undefined;
  if (!Array.isArray(list)) list = ctx[ERRORS_KEY] = [];
  list.push(failure);
}

function onTopFailure(node: PlanNode, position: number, e: unknown, ctx: Context, st: RunState, coe: boolean): void {
  if (isFatal(e)) throw e;
  const te = asTaskError(e, node);
  if (!coe) throw te;
  recordFailure(ctx, te, node, position);
  if (st.host._verbose) st.host._logger.info(`[CONTINUE] ${node.name} failed, continuing: ${te.message}`);
}

function runTop(plan: Plan, i: number, ctx: Context, st: RunState, coe: boolean, outer: boolean, parent: number): Pending {
  const nodes = plan.nodes;
  for (; i < nodes.length; i++) {
    if (dueYield(st)) return runTopAsync(plan, i - 1, yieldTurn(), true, ctx, st, coe, outer, parent);
    const node = nodes[i]!;
    if (outer) st.position = i;
    let p: Pending = undefined;
    try {
      p = exec(node, ctx, st, parent);
    } catch (e) {
      onTopFailure(node, i, e, ctx, st, coe);
    }
    if (p === undefined) {
      if (outer && st.between) p = afterTop(i, ctx, st);
    } else return runTopAsync(plan, i, p, false, ctx, st, coe, outer, parent);
    if (p !== undefined) return runTopAsync(plan, i, p, true, ctx, st, coe, outer, parent);
  }
}

/** The rest of the loop once something went async (see execSeqAsync for why a loop). */
async function runTopAsync(
  plan: Plan, i: number, pending: Promise<void>, pendingIsYield: boolean,
  ctx: Context, st: RunState, coe: boolean, outer: boolean, parent: number,
): Promise<void> {
  const nodes = plan.nodes;
  let p: Pending = pending;
  let isYield = pendingIsYield;
  for (;;) {
    if (p !== undefined) {
      if (isYield) await p;
      else {
        try {
          await p;
        } catch (e) {
          onTopFailure(nodes[i]!, i, e, ctx, st, coe);
        }
        if (outer) {
          const y = afterTop(i, ctx, st);
          if (y !== undefined) await y;
        }
      }
    }
    i++;
    if (i >= nodes.length) return;
    if (dueYield(st)) await yieldTurn();
    const node = nodes[i]!;
    if (outer) st.position = i;
    p = undefined;
    isYield = false;
    try {
      p = exec(node, ctx, st, parent);
    } catch (e) {
      onTopFailure(node, i, e, ctx, st, coe);
    }
    if (p === undefined && outer) {
      p = afterTop(i, ctx, st);
      isYield = true;
    }
  }
}

function afterTop(position: number, ctx: Context, st: RunState): Pending {
  if (st.bar !== undefined) st.bar.tick();
  const b = boundary(position, ctx, st);
  if (b !== undefined) return st.host._cooperative ? b.then(() => maybeYield(st)) : b;
  return maybeYield(st);
}

function maybeYield(st: RunState): Pending {
  if (st.host._cooperative && !st.sync) {
    const now = performance.now();
    if (now - st.lastYield >= st.host._yieldEveryMs) {
      return new Promise<void>((resolve) => setImmediateCb(() => {
        st.lastYield = performance.now();
        resolve();
      }));
    }
  }
}

function boundary(position: number, ctx: Context, st: RunState): Pending {
  const checkpoints = st.host._checkpoints;
  if (checkpoints.length === 0 && st.observers === null) return;
  const reached: string[] = [];
  for (const cp of checkpoints) {
    try {
      if (cp.expression.test(ctx)) reached.push(cp.name);
    } catch (e) {
      // A checkpoint naming a key that a later step creates is normal before that step: not an error.
      if (st.host._verbose) st.host._logger.debug(`[CHECKPOINT] '${cp.name}' not evaluable yet: ${messageOf(e)}`);
    }
  }
  if (st.host._verbose) for (const name of reached) st.host._logger.info(`[CHECKPOINT REACHED] ${name}`);
  if (st.observers !== null) {
    const event: BoundaryEvent = {
      runId: st.runId, pipelineName: st.host.pipelineName, position, resumeAt: position + 1,
      step: position === -1 ? undefined : st.lastTopEnd, checkpoints: reached, context: ctx,
    };
    let p: Pending;
    try {
      p = notify(st.observers, 'onBoundary', event, st.sync);
    } catch (e) {
      throw boundaryFailure(e, position, st);
    }
    if (p !== undefined) return p.then(undefined, (e: unknown) => { throw boundaryFailure(e, position, st); });
  }
}

/**
 * A context that cannot be saved in a checkpoint is a failure of the step that produced it, not of
 * the observer: a TaskError of that step (the run still stops, continueOnError or not: boundaries
 * are outside the per-step recovery of runTop). Before any step ran in this run (position -1, or the
 * boundary a resumed run starts from) there is no such step: the run itself fails.
 */
function boundaryFailure(e: unknown, position: number, st: RunState): unknown {
  if (!(e instanceof WpipeError) || e.code !== 'WPIPE_ERR_CHECKPOINT_SERIALIZE') return e;
  const done = st.lastTopEnd;
  const node = position >= 0 && done !== undefined ? st.plan?.nodes[position] : undefined;
  const name = st.host.pipelineName;
  if (node === undefined) {
    const what = position < 0 ? 'its input' : `the context it resumes from (after step ${position})`;
    return fatal(new ProcessError(`pipeline '${name}' run ${st.runId} failed: ${what} cannot be saved in a checkpoint: ${messageOf(e)}`, {
      code: 'WPIPE_ERR_CHECKPOINT_SERIALIZE',
      cause: e,
      details: { pipelineName: name, runId: st.runId, position },
    }));
  }
  return new TaskError(`${label(node)} at ${node.path}: the context after it cannot be saved in a checkpoint: ${messageOf(e)}`, {
    code: 'WPIPE_ERR_CHECKPOINT_SERIALIZE',
    cause: e,
    details: { ...stepDetails(node, done!.attempts), position },
  });
}

// ---------------------------------------------------------------------------------------------
// Whole runs.

interface Begun {
  st: RunState;
  ctx: Context;
  start: number;
  replay: Context | undefined;
  t0: number;
  startedAt: number;
  /** The checkpoint a resumed run starts from, when the observer named it. */
  resumedFrom?: string | undefined;
}

type IfRunning = 'wait' | 'fail';
/** The decisions that let a run begin (a `wait` only delays the asking). */
type Decision = Exclude<RunStartDecision, { readonly wait: Promise<unknown> }>;

function checkInput(where: string, input: unknown): Context {
  if (input === undefined) return {};
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw invalidOption(`${where}: initialData must be a plain object, got ${describeType(input)}`);
  }
  return input as Context;
}

const RUN_OPTIONS = ['runId', 'signal', 'ifRunning'] as const;

/** "did you mean" for run options: the nearest spelling, else what the key seems to be about. */
function runOptionHint(key: string): string | undefined {
  const near = closestName(key, RUN_OPTIONS);
  if (near !== undefined) return near;
  const k = key.toLowerCase();
  if (k.includes('id')) return 'runId';
  if (k.includes('sig') || k.includes('abort') || k.includes('cancel')) return 'signal';
  if (/running|conflict|busy|wait|owner|lock|concurren/.test(k)) return 'ifRunning';
  return undefined;
}

function checkRunOptions(where: string, options: unknown): {
  runId: string | undefined; signal: AbortSignal | undefined; ifRunning: IfRunning; onRunId: ((id: string) => void) | undefined;
} {
  if (options === undefined) return { runId: undefined, signal: undefined, ifRunning: 'wait', onRunId: undefined };
  if (options === null || typeof options !== 'object') throw invalidOption(`${where}: options must be an object, got ${describeType(options)}`);
  const o = options as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (k !== 'runId' && k !== 'signal' && k !== 'ifRunning') {
      const hint = runOptionHint(k);
      throw invalidOption(`${where}: unknown option '${k}'${hint === undefined ? '' : ` (did you mean ${hint}?)`}`);
    }
  }
  if (o.runId !== undefined && (typeof o.runId !== 'string' || o.runId.length === 0)) {
    throw invalidOption(`${where}: runId must be a non-empty string, got ${describeType(o.runId)}`);
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw invalidOption(`${where}: signal must be an AbortSignal, got ${describeType(o.signal)}`);
  }
  const ifRunning = o.ifRunning === undefined ? 'wait' : o.ifRunning;
  if (ifRunning !== 'wait' && ifRunning !== 'fail') {
    const isString = typeof ifRunning === 'string';
    throw invalidOption(
      `${where}: ifRunning must be 'wait' or 'fail', got ${isString ? JSON.stringify(ifRunning) : describeType(ifRunning)}`,
      isString ? 'RangeError' : 'TypeError',
    );
  }
  return { runId: o.runId as string | undefined, signal: o.signal as AbortSignal | undefined, ifRunning, onRunId: (options as { [RUN_ID_SINK]?: (id: string) => void })[RUN_ID_SINK] };
}

/**
 * @internal A run option (a symbol key, invisible to option checks) receiving the run's id, so
 * runMany and runEach can report the generated id of each run without choosing ids themselves
 * (a chosen id is claimed, a generated one is not).
 */
export const RUN_ID_SINK: unique symbol = Symbol('wpipe.runIdSink');

/** How a run began, as `Pipeline.runDetailed` reports it. */
export interface RunStartDetail {
  readonly runId: string;
  /** A completed run's recorded result was returned; nothing executed. */
  readonly replayed: boolean;
  /** The run resumed a stopped one: from this top-level position (and checkpoint, when named). */
  readonly resumedFrom: { readonly position: number; readonly checkpoint: string | undefined } | undefined;
}

/** @internal A run option (symbol key) receiving the {@link RunStartDetail} once the run has begun. */
export const RUN_DETAIL_SINK: unique symbol = Symbol('wpipe.runDetailSink');

function reportDetail(options: unknown, b: Begun): void {
  const sink = (options as { [RUN_DETAIL_SINK]?: (d: RunStartDetail) => void } | undefined)?.[RUN_DETAIL_SINK];
  if (sink === undefined) return;
  sink({
    runId: b.st.runId, replayed: b.replay !== undefined,
    resumedFrom: b.start > 0 || b.resumedFrom !== undefined ? { position: b.start, checkpoint: b.resumedFrom } : undefined,
  });
}

/**
 * Everything before the first boundary: checks, the run's copy of the input, and the observers'
 * decision. A promise only when an observer answered `wait` (async runs; runSync throws instead).
 */
function begin(host: RunHost, plan: Plan, input: unknown, options: unknown, sync: boolean): Begun | Promise<Begun> {
  const where = sync ? 'runSync' : 'run';
  const data = checkInput(where, input);
  const { runId, signal, ifRunning, onRunId } = checkRunOptions(where, options);
  // The caller's object is never mutated at top level: the run works on its own copy.
  const ctx: Context = Object.assign({}, data);
  if (Array.isArray(ctx[ERRORS_KEY])) ctx[ERRORS_KEY] = (ctx[ERRORS_KEY] as unknown[]).slice();
  const observers = host._observersForRun();
  const st = new RunState(host, runId, signal, sync, observers);
  if (onRunId !== undefined) onRunId(st.runId);
  st.plan = plan;
  if (host._cooperative && !sync) st.lastYield = performance.now();
  if (signal !== undefined && signal.aborted) throw cancelled(st);
  const b: Begun = { st, ctx, start: 0, replay: undefined, t0: 0, startedAt: 0 };
  if (observers === null) return b;
  const steps = describePlan(plan);
  const d = askObservers(b, steps, ifRunning, false);
  if (d !== undefined && 'wait' in d) return waitThenBegin(b, steps, ifRunning, d.wait);
  decide(b, d);
  return b;
}

/**
 * One round of onRunStart. The first resume/completed in observer order is the decision; a `wait`
 * ends the round at once and wins (the run id is busy elsewhere: nothing may start).
 */
function askObservers(b: Begun, steps: readonly StepDescriptor[], ifRunning: IfRunning, waited: boolean): RunStartDecision | undefined {
  const st = b.st;
  const host = st.host;
  // Clocks only when someone reads them (here: observers): two clock reads are a measurable share of
  // a short run. Read again after a wait: the run starts when it really starts.
  b.startedAt = Date.now();
  b.t0 = performance.now();
  const event: RunStartEvent = {
    runId: st.runId, pipelineName: host.pipelineName, context: b.ctx, signature: st.plan!.signature, steps, startedAt: b.startedAt,
    sync: st.sync, generatedId: st.generatedId, ifRunning, signal: st.signal, waited,
  };
  let decision: Decision | undefined;
  for (const o of st.observers!) {
    if (o.onRunStart === undefined) continue;
    let d: unknown;
    try {
      d = o.onRunStart(event);
    } catch (e) {
      throw observerFailure(e, 'onRunStart');
    }
    if (d === undefined || d === null) continue;
    const checked = checkDecision(d);
    if ('wait' in checked) {
      if (st.sync || ifRunning === 'fail') {
        Promise.resolve(checked.wait).catch(() => {}); // not waited for; its outcome must not go unhandled
        throw runInProgress(st, ifRunning);
      }
      return checked;
    }
    decision ??= checked;
  }
  return decision;
}

function checkDecision(d: unknown): RunStartDecision {
  const o = d as Record<string, unknown>;
  if (typeof d === 'object' && d !== null) {
    if ('wait' in o) {
      if (isThenable(o.wait)) return d as RunStartDecision;
    } else if ('completed' in o) {
      if (typeof o.completed === 'object' && o.completed !== null) return d as RunStartDecision;
    } else if ('resume' in o) {
      const r = o.resume as { resumeAt?: unknown } | null;
      if (typeof r === 'object' && r !== null && Number.isInteger(r.resumeAt) && (r.resumeAt as number) >= 0) return d as RunStartDecision;
    }
  }
  if (isThenable(d)) {
    Promise.resolve(d).catch(() => {});
    return failDecision('returned a promise; to make the run wait, return { wait: promise } instead');
  }
  const keys = typeof d === 'object' && d !== null ? ` with keys ${JSON.stringify(Object.keys(o))}` : '';
  return failDecision(`returned ${describeType(d)}${keys}; expected nothing, ` +
    '{ resume: { resumeAt, context } }, { completed: { result } } or { wait: promise }');
}

function failDecision(why: string): never {
  throw observerFailure(new TypeError(`onRunStart ${why}`), 'onRunStart');
}

function runInProgress(st: RunState, ifRunning: IfRunning): WpipeError {
  const name = st.host.pipelineName;
  const what = `run id '${st.runId}' of pipeline '${name}' is being executed elsewhere (another Pipeline object or process)`;
  const message = ifRunning === 'fail'
    ? `${st.sync ? 'runSync' : 'run'}: ${what} and ifRunning is 'fail'`
    : `runSync: ${what} and runSync cannot wait for it; use await pipeline.run() to wait for its outcome, or ifRunning: 'fail' to fail at once`;
  return fatal(new WpipeError('WPIPE_ERR_RUN_IN_PROGRESS', message, { details: { pipelineName: name, runId: st.runId, ifRunning } }));
}

/** An observer answered `wait`: wait (cancellable by the run's signal), ask again, until it may begin. */
async function waitThenBegin(b: Begun, steps: readonly StepDescriptor[], ifRunning: IfRunning, wait: Promise<unknown>): Promise<Begun> {
  const st = b.st;
  for (;;) {
    if (st.host._verbose) st.host._logger.info(`[PIPELINE] ${st.host.pipelineName}: run ${st.runId} is being executed elsewhere; waiting for it`);
    await waitOrCancel(wait, st);
    if (st.signal !== undefined && st.signal.aborted) throw cancelled(st);
    const d = askObservers(b, steps, ifRunning, true);
    if (d === undefined || !('wait' in d)) {
      decide(b, d);
      return b;
    }
    wait = d.wait;
  }
}

/**
 * Settles with `wait`, or rejects with the run's cancellation error as soon as its signal aborts. A
 * rejected wait fails the run like a throwing onRunStart (a WpipeError as is). Either way the run
 * never started: the caller reports no onRunEnd.
 */
function waitOrCancel(wait: PromiseLike<unknown>, st: RunState): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const sig = st.signal;
    let onAbort: (() => void) | undefined;
    if (sig !== undefined) {
      onAbort = () => reject(cancelled(st));
      if (sig.aborted) onAbort();
      else sig.addEventListener('abort', onAbort, { once: true });
    }
    // Subscribed even after an abort: a later rejection of the abandoned wait stays handled.
    Promise.resolve(wait).then(
      () => {
        if (onAbort !== undefined) sig!.removeEventListener('abort', onAbort);
        resolve();
      },
      (e: unknown) => {
        if (onAbort !== undefined) sig!.removeEventListener('abort', onAbort);
        reject(observerFailure(e, "onRunStart's wait"));
      },
    );
  });
}

function decide(b: Begun, decision: Decision | undefined): void {
  if (decision === undefined) return;
  if ('completed' in decision) {
    b.replay = Object.assign({}, decision.completed.result);
  } else {
    b.ctx = Object.assign({}, decision.resume.context);
    b.start = decision.resume.resumeAt;
    b.resumedFrom = decision.resume.checkpoint;
    const host = b.st.host;
    if (host._verbose) host._logger.info(`[CHECKPOINT] Resuming '${b.st.runId}' from step ${b.start}`);
  }
}

/** The run really starts: progress, and the boundary before its first step (inside the run's error handling). */
function open(b: Begun): Pending {
  const { st, ctx } = b;
  const host = st.host;
  if (host._verbose) host._logger.info(`[PIPELINE] ${host.pipelineName}: run ${st.runId} started`);
  st.bar = ProgressBar.maybe(host._showProgress, host.pipelineName, st.plan!.nodes.length);
  st.between = st.bar !== undefined || st.observers !== null || host._checkpoints.length > 0 || (host._cooperative && !st.sync);
  return boundary(b.start - 1, ctx, st);
}

/**
 * The rule for what run() rejects with: a ProcessError (errorCode of its code's family) whose cause
 * chain leads to what failed. A WpipeError of a finer kind (a resume mismatch, a run id in progress
 * or recorded for another pipeline, storage, an observer) becomes a ProcessError with the same
 * `code` and the original as `cause`, so `instanceof ProcessError` and `code` both hold. Exceptions,
 * documented in the README: misuse of the API is a TypeError/RangeError (WPIPE_ERR_INVALID_OPTION)
 * thrown before the run, and runSync on a pipeline it cannot run (WPIPE_ERR_RUN_SYNC_UNSUPPORTED).
 */
function asRunFailure(e: unknown, pipelineName: string, runId: string | undefined): unknown {
  if (!(e instanceof WpipeError) || e instanceof ProcessError) return e;
  const f = new ProcessError(`pipeline '${pipelineName}' failed: ${e.message}`, {
    code: e.code, cause: e, details: { pipelineName, ...(runId === undefined ? {} : { runId }) },
  });
  return isFatal(e) ? fatal(f) : f;
}

/** begin(), with what it throws made a run failure (see asRunFailure). */
function beginOrFail(host: RunHost, plan: Plan, input: unknown, options: unknown, sync: boolean): Begun | Promise<Begun> {
  const runId = (options as { runId?: unknown } | null | undefined)?.runId;
  const id = typeof runId === 'string' ? runId : undefined;
  try {
    const b = begin(host, plan, input, options, sync);
    return b instanceof Promise ? b.catch((e: unknown) => { throw asRunFailure(e, host.pipelineName, id); }) : b;
  } catch (e) {
    throw asRunFailure(e, host.pipelineName, id);
  }
}

function runError(e: unknown, b: Begun): Error {
  if (isFatal(e)) return asRunFailure(e, b.st.host.pipelineName, b.st.runId) as Error;
  const st = b.st;
  if (e instanceof TaskError) {
    return new ProcessError(`pipeline '${st.host.pipelineName}' failed: ${e.message}`, {
      cause: e,
      details: { pipelineName: st.host.pipelineName, runId: st.runId, stepName: e.details.stepName, position: st.position },
    });
  }
  return new ProcessError(`pipeline '${st.host.pipelineName}' failed: ${messageOf(e)}`, {
    cause: e, details: { pipelineName: st.host.pipelineName, runId: st.runId, position: st.position },
  });
}

/** The failing top-level step's name: the TaskError's, else the step the run was at (none before the first). */
function errorStepOf(error: Error, b: Begun): string | undefined {
  const named = (error.cause as TaskError | undefined)?.details?.stepName;
  if (named !== undefined) return String(named);
  const st = b.st;
  if (st.position < 0) return undefined;
  return st.plan?.nodes[st.position]?.name ?? '?';
}

function finish(b: Begun, error: Error | undefined, replayed: boolean): Pending {
  const st = b.st;
  if (st.bar !== undefined) st.bar.finish();
  const host = st.host;
  if (host._verbose) {
    host._logger.info(`[PIPELINE STATUS] ${host.pipelineName} ${st.runId}: ${error === undefined ? 'COMPLETED' : 'ERROR'}`);
  }
  if (st.observers === null) return;
  const event: RunEndEvent = {
    runId: st.runId, pipelineName: host.pipelineName,
    status: error === undefined ? 'completed' : error instanceof ProcessError && error.code === 'WPIPE_ERR_PROCESS_CANCELLED' ? 'cancelled' : 'error',
    context: b.ctx, error, errorStep: error === undefined ? undefined : errorStepOf(error, b),
    failures: Array.isArray(b.ctx[ERRORS_KEY]) ? (b.ctx[ERRORS_KEY] as StepFailure[]) : [],
    startedAt: b.startedAt, durationMs: performance.now() - b.t0, replayed,
  };
  return notify(st.observers, 'onRunEnd', event, st.sync);
}

/** Reports a failed run to onRunEnd (awaited if it returns a promise) and returns the error to throw. */
function endWithError(b: Begun, e: unknown): Error | Promise<Error> {
  const err = runError(e, b);
  // The run's own error is the one the caller needs; the observer's is logged, not lost.
  const logged = (hookError: unknown): Error => {
    b.st.host._logger.error(`[OBSERVER] onRunEnd failed while reporting a failed run: ${messageOf(hookError)}`);
    return err;
  };
  let p: Pending;
  try {
    p = finish(b, err, false);
  } catch (hookError) {
    return logged(hookError);
  }
  if (p === undefined) return err;
  return p.then(() => err, logged);
}

/**
 * runSync: the whole run as plain calls.
 *
 * @example
 * ```ts
 * const out = runPlanSync(pipe, plan, { n: 1 }, { runId: 'r1' });
 * ```
 */
export function runPlanSync(host: RunHost, plan: Plan, input: unknown, options: unknown): Context {
  if (plan.syncBlocker !== undefined) {
    throw new WpipeError('WPIPE_ERR_RUN_SYNC_UNSUPPORTED', `runSync cannot run pipeline '${host.pipelineName}': ${plan.syncBlocker}; use await pipeline.run() instead`);
  }
  // In a sync run nothing returns a promise: a `wait` or a promise from a hook throws instead.
  const b = beginOrFail(host, plan, input, options, true) as Begun;
  if (b.replay !== undefined) {
    finish(b, undefined, true);
    return b.replay;
  }
  try {
    open(b);
    runTop(plan, b.start, b.ctx, b.st, host._continueOnError, true, -1);
  } catch (e) {
    throw endWithError(b, e) as Error;
  }
  try {
    finish(b, undefined, false);
  } catch (e) {
    throw asRunFailure(e, host.pipelineName, b.st.runId);
  }
  return b.ctx;
}

/**
 * run(): awaits only what really is asynchronous.
 *
 * @example
 * ```ts
 * const out = await runPlanAsync(pipe, plan, { n: 1 }, { signal });
 * ```
 */
export async function runPlanAsync(host: RunHost, plan: Plan, input: unknown, options: unknown): Promise<Context> {
  const begun = beginOrFail(host, plan, input, options, false);
  const b = begun instanceof Promise ? await begun : begun;
  reportDetail(options, b);
  if (b.replay !== undefined) {
    const f = finish(b, undefined, true);
    if (f !== undefined) await f;
    return b.replay;
  }
  try {
    const o = open(b);
    if (o !== undefined) await o;
    const p = runTop(plan, b.start, b.ctx, b.st, host._continueOnError, true, -1);
    if (p !== undefined) await p;
  } catch (e) {
    const err = endWithError(b, e);
    throw err instanceof Promise ? await err : err;
  }
  const f = finish(b, undefined, false);
  if (f !== undefined) {
    try {
      await f;
    } catch (e) {
      throw asRunFailure(e, host.pipelineName, b.st.runId);
    }
  }
  return b.ctx;
}
