/**
 * The thin adapter between the engine's observer hooks (src/engine/hooks.ts) and {@link RunTracker}:
 * `new Pipeline({ trackingDb })` gets run history, checkpoints and resume through it.
 *
 * Mapping:
 * - `onRunStart` → `tracker.beginRun`: a new run id starts a run; the id of a completed run replays
 *   its recorded output (nothing executes); the id of a stopped run resumes after its last
 *   checkpoint (or from the start when it has none); a changed step list (the engine's structure
 *   signature) throws `WPIPE_ERR_RESUME_MISMATCH`; an id another live run executes answers
 *   `{ wait }` (claimed again when that run ends, or every 10 ms for another process), or throws
 *   `WPIPE_ERR_RUN_IN_PROGRESS` under `ifRunning: 'fail'` and in runSync.
 * - `onStepStart` and `onRunEnd` return the group commit to await under durability 'fsync'.
 * - `onStepStart` / `onStepEnd` → `startStep` / `finishStep` (engine `failed` is recorded as `error`);
 *   nested steps are linked to their block or nested pipeline through `parentStep` (recorded as the parent's order, `parentStepId`); a task run
 *   in a worker thread or process records its executor ('threads', 'processes'), an in-process one
 *   leaves the column NULL.
 * - `onBoundary` → when checkpoints hold, `saveCheckpoint` with the position of the next step, in
 *   the same commit as the step completion just queued; plus a `checkpoint` event per name.
 * - `onRunEnd` → `finishRun` with the final context as output (a replayed run is left as it is).
 * - `onBackgroundEnd` → a `background` event with what the step changed or its error.
 *
 * Pipeline (src/engine/pipeline.ts) calls it at a tracked pipeline's first run, which opens the database.
 *
 * @example
 * ```ts
 * import { Pipeline } from 'wpipe';
 * const pipe = new Pipeline({ pipelineName: 'orders', trackingDb: 'runs.db' }).setSteps([load, save]);
 * pipe.addCheckpoint('loaded', 'rows > 0');
 * await pipe.run({ orderId: 7 }, { runId: 'order-7' }); // resumable by the same runId after a crash
 * ```
 */
import type { RunObserver, TrackingOptions } from '../engine/hooks.js';
import type { Context } from '../engine/types.js';
import os from 'node:os';
import { ResourceMonitor } from '../observe/monitor.js';
import { ProcessError, WpipeError, deserializeError, type SerializedError } from '../errors.js';
import { deserialize } from './serialize.js';
import type { RunRecord } from './records.js';
import { RunTracker, type StepId, type RunTrackerOptions } from './tracker.js';
import type { PruneOptions } from './history-controls.js';

/** Sampling interval of collectSystemMetrics windows (the host sampler: one thread per process). */
const METRICS_INTERVAL_MS = 50;

let metricsWarned = false;
function warnMetricsOnce(error: unknown): void {
  if (metricsWarned) return;
  metricsWarned = true;
  process.emitWarning(`collectSystemMetrics: resource sampling failed, runs go on without it: ${(error as Error)?.message ?? String(error)}`,
    { code: 'WPIPE_WARN_METRICS' });
}

/** How often a run waiting for another process's run of the same id claims again. */
const BUSY_POLL_MS = 10;

/**
 * The error a run recorded, rebuilt (class, code, message, cause chain): what a start that waited for
 * that run rejects with.
 */
function outcomeOf(run: RunRecord): Error {
  let recorded: Error | undefined;
  try {
    if (run.error?.detail) recorded = deserializeError(deserialize(run.error.detail) as SerializedError);
  } catch {
    // an unreadable record: the message below still says what happened
  }
  if (recorded instanceof WpipeError) return recorded;
  return new ProcessError(`pipeline '${run.pipelineName}' failed: run '${run.runId}' ${run.status === 'cancelled' ? 'was cancelled' : 'failed'} ` +
    `while this start waited for it: ${run.error?.message ?? 'unknown error'}`, {
    code: run.status === 'cancelled' ? 'WPIPE_ERR_PROCESS_CANCELLED' : 'WPIPE_ERR_PROCESS_FAILED',
    ...(recorded === undefined ? {} : { cause: recorded }),
    details: { runId: run.runId, pipelineName: run.pipelineName, errorStep: run.errorStep },
  });
}

/** A promise settled after `ms`, or at once when `signal` aborts (the engine then stops waiting). */
function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The observer a pipeline with `trackingDb` gets; `close()` commits and releases the database. */
export interface TrackingObserver extends RunObserver {
  readonly tracker: RunTracker;
  prune(options: PruneOptions): number;
  close(): void;
}

/**
 * Builds the tracking observer for one pipeline.
 *
 * @example
 * ```ts
 * const observer = createTrackingObserver({ trackingDb: 'runs.db', pipelineName: 'p', collectSystemMetrics: false, verbose: false });
 * pipe.observe(observer);
 * ```
 */
export function createTrackingObserver(options: TrackingOptions, trackerOptions: RunTrackerOptions = {}): TrackingObserver {
  const tracker = new RunTracker(options.trackingDb, {
    durability: options.durability ?? 'step',
    ...(options.redact === undefined ? {} : { redact: options.redact }),
    ...(options.maxValueBytes === undefined ? {} : { maxValueBytes: options.maxValueBytes }),
    ...trackerOptions,
  });
  /** collectSystemMetrics: a resource window per run and per top-level step in flight. */
  const windows = options.collectSystemMetrics ? new Map<string, ResourceMonitor>() : undefined;
  const openWindow = (key: string): void => {
    if (windows === undefined) return;
    try {
      windows.set(key, new ResourceMonitor(key, { intervalMs: METRICS_INTERVAL_MS }).start());
    } catch (error) {
      warnMetricsOnce(error);
    }
  };
  const closeWindow = (key: string, runId: string, stepId: StepId | undefined): void => {
    const monitor = windows?.get(key);
    if (monitor === undefined) return;
    windows!.delete(key);
    try {
      const s = monitor.stop();
      const total = os.totalmem() / 2 ** 20;
      const free = os.freemem() / 2 ** 20;
      tracker.recordResourceSummary({
        runId, ...(stepId === undefined ? {} : { stepId }), avgCpuPercent: s.avgCpuPercent, peakCpuPercent: s.peakCpuPercent,
        endRssMb: s.endRamMb, peakRssMb: s.peakRamMb, samples: s.samples, durationMs: s.elapsedSeconds * 1000, sampler: s.backend,
        memoryPercent: ((total - free) / total) * 100, memoryUsedMb: total - free, memoryAvailableMb: free,
      });
    } catch (error) {
      warnMetricsOnce(error);
    }
  };
  const retention = options.retention;
  let pruned = false;
  /** Retention (trackingRetention): once when the history is first used, and at close. */
  const pruneForRetention = (): void => {
    if (retention === undefined) return;
    try {
      tracker.prune({ ...(retention.olderThanDays === undefined ? {} : { olderThanDays: retention.olderThanDays }),
        ...(retention.keepLast === undefined ? {} : { keepLast: retention.keepLast }) });
    } catch (error) {
      process.emitWarning(`trackingRetention: pruning ${options.trackingDb} failed: ${(error as Error).message}`, { code: 'WPIPE_ERR_STORAGE' });
    }
  };
  /** Engine step id → tracker step handle, per run in flight. */
  const steps = new Map<string, Map<number, StepId>>();

  return {
    tracker,
    onRunStart(e) {
      if (!pruned) {
        pruned = true;
        pruneForRetention();
      }
      const r = tracker.beginRun({
        runId: e.runId, pipelineName: e.pipelineName, input: e.context, structureHash: e.signature, fresh: e.generatedId, sync: e.sync,
        startedAt: e.startedAt,
        waited: e.waited,
        ...(options.yamlPath === undefined ? {} : { yamlPath: options.yamlPath }),
      });
      if (r.outcome === 'failed') throw outcomeOf(r.run);
      if (r.outcome === 'busy') {
        if (e.ifRunning === 'fail' || e.sync) {
          throw new WpipeError('WPIPE_ERR_RUN_IN_PROGRESS',
            `run '${e.runId}' of pipeline '${e.pipelineName}' is being executed ${r.wait ? 'by another run in this process' : `by another process${r.run.pid ? ` (pid ${r.run.pid})` : ''}`}` +
              (e.sync ? '; runSync cannot wait for it: use await pipeline.run() to wait and get its outcome' : ' and ifRunning is \'fail\''),
            { details: { runId: e.runId, owner: r.run.owner, pid: r.run.pid } });
        }
        // Another tracker of this thread: its end settles the promise. Another process: look again soon.
        return { wait: r.wait ?? delay(BUSY_POLL_MS, e.signal) };
      }
      steps.set(e.runId, new Map());
      if (r.outcome !== 'completed') openWindow(e.runId);
      if ((r.outcome === 'completed' || r.outcome === 'resumed') && !tracker.inputMatches(r.run, e.context)) {
        // Warned, not refused: a retry of a crashed job with one changed field (a timestamp, say)
        // must still resume; the input of record is the one the run started with.
        process.emitWarning(`run '${e.runId}' of '${e.pipelineName}' ${r.outcome === 'completed' ? 'is completed: its recorded result is returned'
          : 'resumes from its checkpoint'}, and the input given now differs from the one it was started with; the new input is ignored`,
        { code: 'WPIPE_WARN_INPUT_IGNORED' });
      }
      if (r.outcome === 'completed') {
        if (!r.run.outputExact) {
          // Redacted, truncated or not serializable when it was recorded: still never run again.
          process.emitWarning(`run '${e.runId}' of '${e.pipelineName}' is completed; its recorded output is not exact (redacted, truncated ` +
            'or not serializable), and that is what this replay returns', { code: 'WPIPE_WARN_REPLAY_INEXACT' });
        }
        return { completed: { result: (r.run.output ?? {}) as Context } };
      }
      if (r.outcome === 'resumed' && r.checkpoint) {
        return { resume: { resumeAt: r.checkpoint.position, context: r.checkpoint.context as Context, checkpoint: r.checkpoint.name } };
      }
      return undefined;
    },
    onStepStart(e) {
      const map = steps.get(e.runId);
      const parent = e.parentId === -1 ? undefined : map?.get(e.parentId);
      const id = tracker.startStep({
        runId: e.runId,
        name: e.name,
        version: e.version,
        kind: e.kind,
        ...(e.parentId === -1 ? { position: e.position } : {}),
        ...(parent === undefined ? {} : { parentStep: parent }),
        // Where the step ran: recorded for worker threads and processes only; NULL means in-process.
        ...(e.executor === undefined || e.executor === 'inline' ? {} : { executor: e.executor }),
      });
      map?.set(e.id, id);
      if (windows !== undefined && e.parentId === -1) openWindow(`${e.runId}\0${e.id}`);
      return tracker.takeSync();
    },
    onStepEnd(e) {
      const id = steps.get(e.runId)?.get(e.id);
      if (id === undefined) return;
      if (windows !== undefined && e.parentId === -1) closeWindow(`${e.runId}\0${e.id}`, e.runId, id);
      tracker.finishStep({
        stepId: id,
        status: e.status === 'failed' ? 'error' : e.status,
        attempts: e.attempts,
        durationMs: e.durationMs,
        ...(e.error === undefined ? {} : { error: e.error }),
        ...(e.worker === undefined ? {} : { worker: e.worker }),
        ...(e.output === undefined ? {} : { output: e.output }),
      });
    },
    onBoundary(e) {
      if (e.checkpoints.length === 0) return;
      try {
        tracker.saveCheckpoint({ runId: e.runId, name: e.checkpoints.join(','), resumeAt: e.resumeAt, context: e.context });
      } catch (error) {
        // The engine fails the step just finished with this error: its row says so too.
        const id = e.step === undefined ? undefined : steps.get(e.runId)?.get(e.step.id);
        if (id !== undefined && (error as { code?: unknown }).code === 'WPIPE_ERR_CHECKPOINT_SERIALIZE') {
          tracker.finishStep({ stepId: id, status: 'error', attempts: e.step!.attempts, durationMs: e.step!.durationMs, error });
        }
        throw error;
      }
      for (const name of e.checkpoints) {
        tracker.recordEvent({ runId: e.runId, type: 'checkpoint', name, message: `Checkpoint reached: ${name}`, data: { position: e.resumeAt } });
      }
    },
    onRunEnd(e) {
      steps.delete(e.runId);
      if (e.replayed) return;
      closeWindow(e.runId, e.runId, undefined);
      tracker.finishRun({
        runId: e.runId,
        status: e.status,
        output: e.context,
        durationMs: e.durationMs,
        ...(e.error === undefined ? {} : { error: e.error }),
        ...(e.errorStep === undefined ? {} : { errorStep: e.errorStep }),
      });
      return tracker.takeSync();
    },
    onAlert(a) {
      const t = a.threshold;
      const configId = tracker.alertConfigId({
        name: a.name, metric: t ? t.metric : `${a.scope}:${a.expression}`, condition: t ? t.operator : a.expression, value: t ? t.value : 0,
        severity: a.severity, message: a.message,
      });
      const value = t !== undefined && typeof a.values[t.metric] === 'number' ? (a.values[t.metric] as number) : a.durationMs;
      tracker.recordAlert({
        runId: a.runId, configId, metric: t ? t.metric : a.scope === 'step' ? 'step_duration_ms' : 'run_duration_ms', value,
        threshold: t ? t.value : null, severity: a.severity,
        message: a.stepName === undefined ? a.message : `${a.message} (step '${a.stepName}')`,
      });
    },
    onEvent(ev) {
      tracker.recordEvent({
        runId: ev.runId, type: ev.type, name: ev.name,
        ...(ev.message === undefined ? {} : { message: ev.message }),
        data: ev.stepName === undefined ? ev.data : { step: ev.stepName, ...(ev.data === undefined ? {} : { data: ev.data }) },
        ...(ev.tags === undefined ? {} : { tags: ev.tags }),
      });
    },
    onBackgroundEnd(b) {
      tracker.recordEvent({
        runId: b.runId,
        type: 'background',
        name: b.name,
        message: `Background step '${b.name}' ${b.status}`,
        data: { status: b.status, durationMs: b.durationMs, changes: b.changes, error: b.error },
      });
    },
    prune(o) {
      return tracker.prune(o);
    },
    close() {
      pruneForRetention();
      tracker.close();
    },
  };
}

