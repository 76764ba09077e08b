/**
 * The in-memory state of runs and steps in flight, and how a queued change becomes a journaled
 * write ({@link resolveWrite}: an insert the first time, an update after). Used by the tracker
 * (src/storage/tracker.ts) and its committer (src/storage/committer.ts).
 *
 * @example
 * ```ts
 * const op = resolveWrite({ op: Op.Run, run }, owner); // [Code.InsertRun, …] the first time
 * ```
 */
import { serializeError } from '../errors.js';
import { Code, type JournalOp } from './ops.js';
import { serialize } from './serialize.js';
import type { RunStatus, StepStatus } from './records.js';

/** A step handle returned by RunTracker.startStep: a number valid in this thread. */
export type StepId = number;

/** A run as the tracker holds it while it is open (the engine's own run state is RunState in src/engine/run.ts). */
export interface TrackedRun {
  /** The tracker running it (its steps are refused by others). */
  tracker: object;
  runId: string;
  pipelineName: string;
  startedAt: string;
  startedMs: number;
  structureHash: string | null;
  nextOrder: number;
  lastOrder: number;
  /** Row written (journaled or committed): later changes are updates. */
  inserted: boolean;
  /** A checkpoint row may exist (saved here, or found on resume): a completed run drops it. */
  hasCheckpoint: boolean;
  /** In the write queue. */
  queued: boolean;
  finished: boolean;
  /** Claimed in SQLite (a caller-chosen id): in this thread's in-flight map until it ends. */
  claimed: boolean;
  /** Run by runSync: durability 'fsync' syncs inline instead of returning a promise. */
  sync: boolean;
  // row values
  inputText: string | null;
  parentRunId: string | null;
  parentStepOrder: number | null;
  yamlPath: string | null;
  status: RunStatus;
  completedAt: string | null;
  durationMs: number | null;
  outputText: string | null;
  outputExact: number | null;
  errorMessage: string | null;
  errorStep: string | null;
  errorCode: string | null;
  errorData: string | null;
  openSteps: Set<TrackedStep>;
  workerId: string | null;
  workerName: string | null;
}

/** A step as the tracker holds it until its row is written (StepRecord is the row as read back). */
export interface TrackedStep {
  id: StepId;
  run: TrackedRun;
  order: number;
  name: string;
  version: string | null;
  kind: string;
  position: number | null;
  parentOrder: number | null;
  parallelGroup: string | null;
  executor: string | null;
  /** Which worker ran it ('thread 7', 'pid 1234'); null in-process or not known yet. */
  worker: string | null;
  startedAt: string;
  startedMs: number;
  inputText: string | null;
  status: StepStatus;
  attempts: number;
  completedAt: string | null;
  durationMs: number | null;
  outputText: string | null;
  errorMessage: string | null;
  errorCode: string | null;
  errorTraceback: string | null;
  inserted: boolean;
  queued: boolean;
}

export const enum Op { Run, Step, Write }

export type QueuedWrite =
  | { op: Op.Run; run: TrackedRun }
  | { op: Op.Step; step: TrackedStep }
  | { op: Op.Write; write: JournalOp };

/** Step handles of this thread, shared by every tracker so nested pipelines can name parent steps. */
export const stepsById = new Map<StepId, TrackedStep>();
let lastStepId = 0;
/** A new step handle, unique in this thread. */
export function newStepId(): StepId {
  return ++lastStepId;
}


/** The outcome fields of a run that is running (a new run, or one reopened to resume). */
export function runningOutcome(): Pick<TrackedRun, 'status' | 'completedAt' | 'durationMs' | 'outputText' | 'outputExact' | 'errorMessage'
  | 'errorStep' | 'errorCode' | 'errorData' | 'openSteps'> {
  return {
    status: 'running', completedAt: null, durationMs: null, outputText: null, outputExact: null,
    errorMessage: null, errorStep: null, errorCode: null, errorData: null, openSteps: new Set(),
  };
}

export function errorParts(error: unknown): { message: string; code: string | null; stack: string | null; data: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      message: error.message,
      code: typeof code === 'string' ? code : null,
      stack: error.stack ?? null,
      data: serialize(serializeError(error), { mode: 'lenient' }),
    };
  }
  return { message: String(error), code: null, stack: null, data: serialize({ name: 'Error', message: String(error) }, { mode: 'lenient' }) };
}

let isoMs = -1;
let isoText = '';
/**
 * `new Date(ms).toISOString()`, cached for the current millisecond: a step boundary stamps the end
 * of one step and the start of the next within the same millisecond, and formatting costs ~1.4 µs.
 */
export function isoAt(ms: number): string {
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}
export function isoNow(): string {
  return isoAt(Date.now());
}

export function lenient(value: unknown): string | null {
  return value === undefined ? null : serialize(value, { mode: 'lenient' });
}


/** Decides how a queued write reaches the database (insert or update) and marks it written. */
export function resolveWrite(w: QueuedWrite, owner: string | null): JournalOp {
  switch (w.op) {
    case Op.Step: {
      const st = w.step;
      st.queued = false;
      if (st.inserted) {
        if (st.worker !== null) {
          return [Code.FinishStepWorker, st.status, st.attempts, st.completedAt, st.durationMs, st.outputText, st.errorMessage, st.errorCode,
            st.errorTraceback, st.worker, st.run.runId, st.order];
        }
        if (st.errorMessage === null && st.errorCode === null && st.errorTraceback === null) {
          return [Code.FinishStepLean, st.status, st.attempts, st.completedAt, st.durationMs, st.outputText, st.run.runId, st.order];
        }
        return [Code.FinishStep, st.status, st.attempts, st.completedAt, st.durationMs, st.outputText, st.errorMessage, st.errorCode,
          st.errorTraceback, st.run.runId, st.order];
      }
      st.inserted = true;
      if (st.status === 'running') {
        if (st.parentOrder === null && st.parallelGroup === null && st.executor === null && st.inputText === null) {
          return [Code.InsertStepStartLean, st.run.runId, st.order, st.name, st.version, st.kind, st.position, st.startedAt];
        }
        return [Code.InsertStepStart, st.run.runId, st.order, st.name, st.version, st.kind, st.position, st.parentOrder, st.parallelGroup,
          st.executor, st.startedAt, st.inputText];
      }
      // Not written yet: insert the row as it is now (a started-and-finished step is one INSERT).
      if (st.worker !== null) {
        return [Code.InsertStepWorker, st.run.runId, st.order, st.name, st.version, st.kind, st.position, st.status, st.attempts, st.parentOrder,
          st.parallelGroup, st.executor, st.startedAt, st.completedAt, st.durationMs, st.inputText, st.outputText, st.errorMessage,
          st.errorCode, st.errorTraceback, st.worker];
      }
      return [Code.InsertStep, st.run.runId, st.order, st.name, st.version, st.kind, st.position, st.status, st.attempts, st.parentOrder,
        st.parallelGroup, st.executor, st.startedAt, st.completedAt, st.durationMs, st.inputText, st.outputText, st.errorMessage,
        st.errorCode, st.errorTraceback];
    }
    case Op.Run: {
      const r = w.run;
      r.queued = false;
      if (r.inserted) {
        return [Code.FinishRun, r.status, r.completedAt, r.durationMs, r.outputText, r.outputExact, r.errorMessage, r.errorStep, r.errorCode,
          r.errorData, r.completedAt ?? isoNow(), r.runId];
      }
      r.inserted = true;
      return [Code.InsertRun, r.runId, r.pipelineName, r.workerId, r.workerName, r.status, r.startedAt,
        r.completedAt, r.durationMs, r.inputText, r.outputText, r.outputExact, r.errorMessage, r.errorStep, r.errorCode, r.errorData,
        r.parentRunId, r.parentStepOrder, r.yamlPath, r.structureHash, process.pid, r.completedAt ?? r.startedAt, owner];
    }
    case Op.Write:
      return w.write;
  }
}

/** Durations are kept to the microsecond: `0.021190000000046894` is 20 characters in every journal line. */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}


