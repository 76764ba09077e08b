/**
 * What run history holds, as the library hands it out: run, step and checkpoint records and the
 * decoders from their rows. Shared by the tracker (src/storage/tracker.ts), the query layer
 * (src/storage/query.ts) and the exporter, so a column is decoded in one place.
 *
 * @example
 * ```ts
 * const run = rowToRun(db.prepare('SELECT * FROM pipelines WHERE id = ?').get('order-7') as Record<string, unknown>);
 * run.status; // 'completed'
 * ```
 */
import { deserialize } from './serialize.js';
import type { StepKind } from '../engine/hooks.js';

/**
 * Status of a run row. `interrupted`: its process died (or closed its tracker) while it ran; the next
 * `run()` with its id resumes it.
 */
export type RunStatus = 'running' | 'completed' | 'error' | 'cancelled' | 'interrupted';
/** Status of a step row (`interrupted`: the process stopped while it ran; set on resume). */
export type StepStatus = 'running' | 'completed' | 'error' | 'skipped' | 'cancelled' | 'interrupted';
/**
 * What a step row's `step_type` holds: one of the engine's step kinds (StepKind in
 * src/engine/hooks.ts), or any other text a database written elsewhere may hold (rows reported
 * from other hosts, older files).
 */
export type RecordedStepKind = StepKind | (string & {});
/** Where a step ran. */
export type StepExecutor = 'inline' | 'threads' | 'processes' | (string & {});
/** A recorded error. */
export interface RecordedError {
  message: string;
  code: string | null;
  /** Stack (steps) or the serialized error with its cause chain (runs). */
  detail: string | null;
}

/** A run row, decoded. */
export interface RunRecord {
  runId: string;
  pipelineName: string;
  status: RunStatus;
  startedAt: string;
  completedAt: string | null;
  durationMs: number | null;
  input: unknown;
  output: unknown;
  /** True when `output` is exactly what the run returned (false: some values were placeholders). */
  outputExact: boolean;
  error: RecordedError | null;
  errorStep: string | null;
  parentRunId: string | null;
  parentStepId: number | null;
  structureHash: string | null;
  resumes: number;
  workerId: string | null;
  workerName: string | null;
  pid: number | null;
  /** The journal owner (`<pid>-<random>`) that runs or last ran it; see src/storage/journal.ts. */
  owner: string | null;
}

/** A step row, decoded. `order` is its step_order; `parentStepId` the parent's step_order. */
export interface StepRecord {
  runId: string;
  order: number;
  name: string;
  version: string | null;
  kind: RecordedStepKind;
  position: number | null;
  status: StepStatus;
  attempts: number;
  parentStepId: number | null;
  parallelGroup: string | null;
  /**
   * Where the step's attempts ran: 'threads' (a worker thread) or 'processes' (a child process);
   * null means in-process (the calling thread), which is also what blocks and rows written before
   * this column was filled record.
   */
  executor: string | null;
  /** Which worker ran it: 'thread <threadId>' or 'pid <pid>'; null in-process (and before schema v7). */
  worker: string | null;
  startedAt: string;
  completedAt: string | null;
  durationMs: number | null;
  input: unknown;
  output: unknown;
  error: RecordedError | null;
}

/** The latest checkpoint of a run, decoded. */
export interface CheckpointRecord {
  runId: string;
  name: string;
  /** Where a resume starts: the index of the next top-level step (the engine's `resumeAt`). */
  position: number;
  /** step_order of the last step row written before the checkpoint. */
  stepOrder: number | null;
  structureHash: string | null;
  context: unknown;
  /** How many times a checkpoint of this run was saved. */
  saves: number;
  createdAt: string;
}

export function decode(text: unknown): unknown {
  return typeof text === 'string' ? deserialize(text) : undefined;
}

function str(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}
function num(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

/** Decodes a `pipelines` row. */
export function rowToRun(row: Record<string, unknown>): RunRecord {
  return {
    runId: String(row.id),
    pipelineName: String(row.name),
    status: row.status as RunStatus,
    startedAt: String(row.started_at),
    completedAt: str(row.completed_at),
    durationMs: num(row.total_duration_ms),
    input: decode(row.input_data),
    output: decode(row.output_data),
    outputExact: row.output_exact === 1,
    error: row.error_message === null || row.error_message === undefined
      ? null
      : { message: String(row.error_message), code: str(row.error_code), detail: str(row.error_data) },
    errorStep: str(row.error_step),
    parentRunId: str(row.parent_pipeline_id),
    parentStepId: num(row.parent_step_id),
    structureHash: str(row.structure_hash),
    resumes: Number(row.resumes ?? 0),
    workerId: str(row.worker_id),
    workerName: str(row.worker_name),
    pid: num(row.pid),
    owner: str(row.owner),
  };
}

/** Decodes a `steps` row. */
export function rowToStep(row: Record<string, unknown>): StepRecord {
  return {
    runId: String(row.pipeline_id),
    order: Number(row.step_order),
    name: String(row.step_name),
    version: str(row.step_version),
    kind: String(row.step_type),
    position: num(row.position),
    status: row.status as StepStatus,
    attempts: Number(row.attempts),
    parentStepId: num(row.parent_step_id),
    parallelGroup: str(row.parallel_group),
    executor: str(row.executor),
    worker: str(row.worker),
    startedAt: String(row.started_at),
    completedAt: str(row.completed_at),
    durationMs: num(row.duration_ms),
    input: decode(row.input_data),
    output: decode(row.output_data),
    error: row.error_message === null || row.error_message === undefined
      ? null
      : { message: String(row.error_message), code: str(row.error_code), detail: str(row.error_traceback) },
  };
}

export function rowToCheckpoint(row: Record<string, unknown>): CheckpointRecord {
  return {
    runId: String(row.pipeline_id),
    name: String(row.name),
    position: Number(row.position),
    stepOrder: num(row.step_order),
    structureHash: str(row.structure_hash),
    context: deserialize(String(row.context)),
    saves: Number(row.saves),
    createdAt: String(row.created_at),
  };
}
