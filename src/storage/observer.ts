/**
 * The thin adapter between the engine's observer hooks (src/engine/hooks.ts) and {@link RunTracker}:
 * `new Pipeline({ trackingDb })` gets run history, checkpoints and resume through it.
 *
 * Mapping:
 * - `onRunStart` → `tracker.beginRun`: a new run id starts a run; the id of a completed run replays
 *   its recorded output (nothing executes); the id of a stopped run resumes after its last
 *   checkpoint (or from the start when it has none); a changed step list (the engine's structure
 *   signature) throws `WPIPE_ERR_RESUME_MISMATCH`.
 * - `onStepStart` / `onStepEnd` → `startStep` / `finishStep` (engine `failed` is recorded as `error`);
 *   nested steps are linked to their block or nested pipeline through `parentStepId`.
 * - `onBoundary` → when checkpoints hold, `saveCheckpoint` with the position of the next step, in
 *   the same commit as the step completion just queued; plus a `checkpoint` event per name.
 * - `onRunEnd` → `finishRun` with the final context as output (a replayed run is left as it is).
 * - `onBackgroundEnd` → a `background` event with what the step changed or its error.
 *
 * Installed at import (a pointer assignment, no I/O): the database opens at the first run.
 *
 * @example
 * ```ts
 * import { Pipeline } from 'wpipe';
 * const pipe = new Pipeline({ pipelineName: 'orders', trackingDb: 'runs.db' }).setSteps([load, save]);
 * pipe.addCheckpoint('loaded', 'rows > 0');
 * await pipe.run({ orderId: 7 }, { runId: 'order-7' }); // resumable by the same runId after a crash
 * ```
 */
import { setTrackingObserverFactory, type RunObserver, type TrackingOptions } from '../engine/hooks.js';
import type { Context } from '../engine/types.js';
import { RunTracker, type StepId, type RunTrackerOptions } from './tracker.js';

/** The observer a pipeline with `trackingDb` gets; `close()` commits and releases the database. */
export interface TrackingObserver extends RunObserver {
  readonly tracker: RunTracker;
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
  const tracker = new RunTracker(options.trackingDb, { durability: options.durability ?? 'step', ...trackerOptions });
  /** Engine step id → tracker step handle, per run in flight. */
  const steps = new Map<string, Map<number, StepId>>();

  return {
    tracker,
    onRunStart(e) {
      const r = tracker.beginRun({ runId: e.runId, pipelineName: e.pipelineName, input: e.context, structureHash: e.signature, fresh: e.generatedId });
      steps.set(e.runId, new Map());
      if (r.outcome === 'completed') return { completed: { result: (r.run.output ?? {}) as Context } };
      if (r.outcome === 'resumed' && r.checkpoint) {
        // Tracker positions name the next step to run; the engine's name the last step done.
        return { resume: { position: r.checkpoint.position - 1, context: r.checkpoint.context as Context } };
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
        ...(parent === undefined ? {} : { parentStepId: parent }),
      });
      map?.set(e.id, id);
    },
    onStepEnd(e) {
      const id = steps.get(e.runId)?.get(e.id);
      if (id === undefined) return;
      tracker.finishStep({
        stepId: id,
        status: e.status === 'failed' ? 'error' : e.status,
        attempts: e.attempts,
        durationMs: e.durationMs,
        ...(e.error === undefined ? {} : { error: e.error }),
      });
    },
    onBoundary(e) {
      if (e.checkpoints.length === 0) return;
      tracker.saveCheckpoint({ runId: e.runId, name: e.checkpoints.join(','), position: e.position + 1, context: e.context });
      for (const name of e.checkpoints) {
        tracker.recordEvent({ runId: e.runId, type: 'checkpoint', name, message: `Checkpoint reached: ${name}`, data: { position: e.position + 1 } });
      }
    },
    onRunEnd(e) {
      steps.delete(e.runId);
      if (e.replayed) return;
      tracker.finishRun({
        runId: e.runId,
        status: e.status,
        output: e.context,
        durationMs: e.durationMs,
        ...(e.error === undefined ? {} : { error: e.error }),
        ...(e.errorStep === undefined ? {} : { errorStep: e.errorStep }),
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
    close() {
      tracker.close();
    },
  };
}

setTrackingObserverFactory((options) => createTrackingObserver(options));
