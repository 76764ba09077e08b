/**
 * Resolved writes of run history: the opcodes a step journal stores and a fold executes, their SQL,
 * and {@link applyOps}, which runs a batch of them (merging a row's insert with its later updates).
 * Shared by the tracker's own folds (src/storage/tracker.ts) and by catching up other journals
 * (src/storage/journal.ts), so the two can never disagree about what a journaled line means.
 *
 * @example
 * ```ts
 * const stmts = prepareWrites(db);
 * db.transaction(() => applyOps(stmts, [[Code.InsertEvent, 'run-1', null, 'note', 'hello', null, null, null, iso]]));
 * ```
 */
import type BetterSqlite3 from 'better-sqlite3';
import { WpipeError } from '../errors.js';
import type { StorageDb } from './db.js';

/** One write as the journal and the fold carry it: an opcode ({@link Code}) and its parameters. */
export type JournalOp = unknown[];

/**
 * Opcodes of resolved writes: what the journal stores and the fold executes (index 0 of a
 * {@link JournalOp}, the statement's parameters after it). Append only: journals of a crashed
 * process are replayed by whatever version opens the database next.
 */
export const enum Code {
  InsertRun = 0,
  FinishRun = 1,
  InsertStep = 2,
  InsertStepStart = 3,
  InsertStepStartLean = 4,
  FinishStep = 5,
  FinishStepLean = 6,
  InsertAttempt = 7,
  InsertEvent = 8,
  UpsertCheckpoint = 9,
  DropCheckpoint = 10,
  InsertAlert = 11,
  InsertMetric = 12,
  /**
   * A step boundary in one write, as journal lines carry it (never executed as such): the clean end
   * of one step and the start of the next in the same run; see {@link compactBoundary}.
   */
  StepBoundary = 13,
  /** A system metrics row of a run or a step (schema v6 columns). */
  InsertMetricSummary = 14,
  /** {@link Code.FinishStep} of a step that ran in a worker: also sets `worker` (schema v7). */
  FinishStepWorker = 15,
  /** {@link Code.InsertStep} of a step that ran in a worker: also sets `worker` (schema v7). */
  InsertStepWorker = 16,
}

export const WRITE_SQL = {
  insertRun: `INSERT INTO pipelines (id, name, worker_id, worker_name, status, started_at, completed_at, total_duration_ms,
      input_data, output_data, output_exact, error_message, error_step, error_code, error_data, parent_pipeline_id,
      parent_step_id, yaml_path, structure_hash, pid, updated_at, owner)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  finishRun: `UPDATE pipelines SET status = ?, completed_at = ?, total_duration_ms = ?, output_data = ?, output_exact = ?,
      error_message = ?, error_step = ?, error_code = ?, error_data = ?, updated_at = ? WHERE id = ?`,
  insertStep: `INSERT INTO steps (pipeline_id, step_order, step_name, step_version, step_type, position, status, attempts,
      parent_step_id, parallel_group, executor, started_at, completed_at, duration_ms, input_data, output_data,
      error_message, error_code, error_traceback)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  // A step committed while still running: bind only what is known (binding costs ~0.15 µs a value).
  insertStepStart: `INSERT INTO steps (pipeline_id, step_order, step_name, step_version, step_type, position, status,
      parent_step_id, parallel_group, executor, started_at, input_data) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)`,
  // The common case binds 7 values instead of 11: no parent, group, executor or input.
  insertStepStartLean: `INSERT INTO steps (pipeline_id, step_order, step_name, step_version, step_type, position, status,
      started_at) VALUES (?, ?, ?, ?, ?, ?, 'running', ?)`,
  finishStep: `UPDATE steps SET status = ?, attempts = ?, completed_at = ?, duration_ms = ?, output_data = ?,
      error_message = ?, error_code = ?, error_traceback = ? WHERE pipeline_id = ? AND step_order = ?`,
  // A step that ends without an error: its error columns are still NULL from the insert.
  finishStepLean: `UPDATE steps SET status = ?, attempts = ?, completed_at = ?, duration_ms = ?, output_data = ?
      WHERE pipeline_id = ? AND step_order = ?`,
  insertAttempt: `INSERT OR REPLACE INTO attempts (pipeline_id, step_order, attempt, status, started_at, duration_ms, error_message, error_code)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  insertEvent: `INSERT INTO events (pipeline_id, step_id, event_type, event_name, message, data, tags, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  upsertCheckpoint: `INSERT INTO checkpoints (pipeline_id, name, position, step_order, structure_hash, context, saves, created_at)
    VALUES (?, ?, ?, ?, ?, ?, 1, ?)
    ON CONFLICT (pipeline_id) DO UPDATE SET name = excluded.name, position = excluded.position, step_order = excluded.step_order,
      structure_hash = excluded.structure_hash, context = excluded.context, saves = saves + 1, created_at = excluded.created_at`,
  dropCheckpoint: 'DELETE FROM checkpoints WHERE pipeline_id = ?',
  insertAlert: `INSERT INTO alerts_fired (alert_config_id, pipeline_id, step_id, metric, metric_value, threshold_value, severity, message, fired_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  insertMetricSummary: `INSERT INTO system_metrics (pipeline_id, scope, step_order, cpu_percent, peak_cpu_percent, rss_mb, peak_rss_mb,
      memory_percent, memory_used_mb, memory_available_mb, samples, duration_ms, sampler, recorded_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  insertMetric: `INSERT INTO system_metrics (pipeline_id, cpu_percent, memory_percent, memory_used_mb, memory_available_mb,
      disk_io_read_mb, disk_io_write_mb, rss_mb, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  finishStepWorker: `UPDATE steps SET status = ?, attempts = ?, completed_at = ?, duration_ms = ?, output_data = ?,
      error_message = ?, error_code = ?, error_traceback = ?, worker = ? WHERE pipeline_id = ? AND step_order = ?`,
  insertStepWorker: `INSERT INTO steps (pipeline_id, step_order, step_name, step_version, step_type, position, status, attempts,
      parent_step_id, parallel_group, executor, started_at, completed_at, duration_ms, input_data, output_data,
      error_message, error_code, error_traceback, worker)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
} as const;

/** Several saves of one run's checkpoint folded into one upsert: the last one's values, `saves` += n. */
const UPSERT_CHECKPOINT_TIMES_SQL = `INSERT INTO checkpoints (pipeline_id, name, position, step_order, structure_hash, context, created_at, saves)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (pipeline_id) DO UPDATE SET name = excluded.name, position = excluded.position, step_order = excluded.step_order,
      structure_hash = excluded.structure_hash, context = excluded.context, saves = saves + excluded.saves, created_at = excluded.created_at`;

const INSERT_STEP_DONE_SQL = `INSERT INTO steps (pipeline_id, step_order, step_name, step_version, step_type, position, status, attempts,
      started_at, completed_at, duration_ms, output_data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/** Statement of each {@link Code}, in opcode order. */
export const CODE_SQL: readonly (keyof typeof WRITE_SQL | null)[] = [
  'insertRun', 'finishRun', 'insertStep', 'insertStepStart', 'insertStepStartLean', 'finishStep', 'finishStepLean',
  'insertAttempt', 'insertEvent', 'upsertCheckpoint', 'dropCheckpoint', 'insertAlert', 'insertMetric',
  null, // 13: StepBoundary, a journal form expanded when read, never executed
  'insertMetricSummary', 'finishStepWorker', 'insertStepWorker',
];

/** Statements of the journal's offset table. */
export const JOURNAL_SQL = {
  getJournalApplied: 'SELECT applied FROM wpipe_journal WHERE name = ?',
  setJournalApplied: `INSERT INTO wpipe_journal (name, applied, updated_at) VALUES (?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET applied = excluded.applied, updated_at = excluded.updated_at`,
  dropJournal: 'DELETE FROM wpipe_journal WHERE name = ?',
} as const;

/** What {@link applyOps} needs: the statement of each opcode. */
export interface WriteStatements {
  byCode: BetterSqlite3.Statement[];
  /** {@link WRITE_SQL.upsertCheckpoint} standing for several saves (its last parameter: how many). */
  upsertCheckpointTimes: BetterSqlite3.Statement;
  /** A step inserted completed, binding only what a clean step has (the rest stays NULL). */
  insertStepDone: BetterSqlite3.Statement;
  /** Multi-row variants of `insertStepDone` by row count, prepared on first use. */
  insertStepsDone: (BetterSqlite3.Statement | undefined)[];
  db: StorageDb;
}

/**
 * Prepares the write statements on a connection (reusing those in `have`, prepared from
 * {@link WRITE_SQL} by the caller).
 */
export function prepareWrites(db: StorageDb, have: Partial<Record<keyof typeof WRITE_SQL, BetterSqlite3.Statement>> = {}): WriteStatements {
  return {
    byCode: CODE_SQL.map((k) => (k === null ? undefined : have[k] ?? db.prepare(WRITE_SQL[k]))) as BetterSqlite3.Statement[],
    upsertCheckpointTimes: db.prepare(UPSERT_CHECKPOINT_TIMES_SQL),
    insertStepDone: db.prepare(INSERT_STEP_DONE_SQL),
    insertStepsDone: [],
    db,
  };
}

/**
 * The journal form of a boundary's writes: a clean step end (no error) followed by the next step's
 * start in the same run becomes one {@link Code.StepBoundary} op, which carries the run
 * id and (when equal) the timestamp once — a line a third shorter to build, checksum, write, read
 * and parse. Anything else is returned as it is. {@link expandOp} is its inverse.
 */
export function compactBoundary(ops: JournalOp[]): JournalOp[] {
  if (ops.length !== 2) return ops;
  const end = ops[0]!;
  const start = ops[1]!;
  if (end[0] !== Code.FinishStepLean || start[0] !== Code.InsertStepStartLean || end[6] !== start[1]) return ops;
  // [13, runId, endedOrder, status, attempts, completedAt, durationMs, order, name, version, kind, position, startedAt?, output?]
  // startedAt is left out when it equals completedAt and there is no output.
  const op: JournalOp = [Code.StepBoundary, start[1], end[7], end[1], end[2], end[3], end[4], start[2], start[3], start[4], start[5], start[6]];
  if (start[7] !== end[3] || end[5] !== null) op.push(start[7]);
  if (end[5] !== null) op.push(end[5]);
  return [op];
}

/** Appends the writes `op` stands for to `out` (a {@link Code.StepBoundary} is two). */
export function expandOp(op: JournalOp, out: JournalOp[]): void {
  if (op[0] === Code.InsertRun && op.length === 22) op.push(null); // journaled before schema v5 (no owner)
  if (op[0] !== Code.StepBoundary) {
    out.push(op);
    return;
  }
  const runId = op[1];
  out.push([Code.FinishStepLean, op[3], op[4], op[5], op[6], op.length > 13 ? op[13] : null, runId, op[2]]);
  out.push([Code.InsertStepStartLean, runId, op[7], op[8], op[9], op[10], op[11], op.length > 12 ? op[12] : op[5]]);
}

/** A step's running row widened to the full insert, so its completion can be merged into it. */
function widenStepStart(op: JournalOp): JournalOp {
  if (op[0] === Code.InsertStepStartLean) {
    const [, runId, order, name, version, kind, position, startedAt] = op;
    return [Code.InsertStep, runId, order, name, version, kind, position, 'running', 0, null, null, null, startedAt, null, null, null, null,
      null, null, null];
  }
  const [, runId, order, name, version, kind, position, parentOrder, group, executor, startedAt, input] = op;
  return [Code.InsertStep, runId, order, name, version, kind, position, 'running', 0, parentOrder, group, executor, startedAt, null, null,
    input, null, null, null, null];
}

/** What a fold batch has seen of one run: where its insert, its steps' inserts and its checkpoint sit in the output. */
interface RunSlots {
  run: number;
  steps: number[];
  /** Index of the pending checkpoint upsert in the output, or -1. */
  checkpoint: number;
  /** Saves folded into that upsert (the statement then adds them to the row's `saves`). */
  saves: number;
}

/** Internal opcode of a checkpoint upsert standing for several saves (never journaled). */
const UPSERT_CHECKPOINT_TIMES = -1;
/** Internal opcode of a step that started and ended in one batch without input or error (output or not). */
const INSERT_STEP_DONE = -2;
/** At most this many clean steps per multi-row INSERT (12 parameters each). */
const MAX_ROWS_PER_INSERT = 16;

/** The INSERT of `n` clean steps at once, prepared on first use. */
function stepsDoneStatement(s: WriteStatements, n: number): BetterSqlite3.Statement {
  let stmt = s.insertStepsDone[n];
  if (stmt === undefined) {
    stmt = s.db.prepare(INSERT_STEP_DONE_SQL + ', (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'.repeat(n - 1));
    s.insertStepsDone[n] = stmt;
  }
  return stmt;
}

function slotsOf(runs: Map<unknown, RunSlots>, runId: unknown): RunSlots {
  let slots = runs.get(runId);
  if (slots === undefined) {
    slots = { run: -1, steps: [], checkpoint: -1, saves: 0 };
    runs.set(runId, slots);
  }
  return slots;
}

/**
 * Executes resolved writes in order (inside the caller's transaction). Within one batch:
 * - a row inserted and then updated is written once: the update is merged into the insert;
 * - repeated checkpoint saves of one run become one upsert (only the last context is kept, and
 *   `saves` still counts every save); a save followed by the checkpoint's removal is not written.
 * Both give the same final rows as executing every write, which is what makes a fold of many
 * boundaries cheaper than the boundaries were.
 */
export function applyOps(s: WriteStatements, ops: readonly JournalOp[]): void {
  let out: (JournalOp | null)[] = ops as JournalOp[];
  if (ops.length > 1) {
    out = [];
    const runs = new Map<unknown, RunSlots>();
    for (const op of ops) {
      switch (op[0]) {
        case Code.InsertRun:
          slotsOf(runs, op[1]).run = out.length;
          out.push(op);
          continue;
        case Code.FinishRun: {
          const at = runs.get(op[11])?.run ?? -1;
          if (at < 0) break;
          const ins = out[at]!.slice();
          // InsertRun: 5 status, 7 completed_at, 8 duration, 10 output, 11 exact, 12-15 error, 21 updated_at.
          ins[5] = op[1]; ins[7] = op[2]; ins[8] = op[3]; ins[10] = op[4]; ins[11] = op[5];
          ins[12] = op[6]; ins[13] = op[7]; ins[14] = op[8]; ins[15] = op[9]; ins[21] = op[10];
          out[at] = ins;
          continue;
        }
        case Code.InsertStepStart:
        case Code.InsertStepStartLean:
        case Code.InsertStep:
          slotsOf(runs, op[1]).steps[op[2] as number] = out.length;
          out.push(op);
          continue;
        case Code.FinishStep:
        case Code.FinishStepLean: {
          const lean = op[0] === Code.FinishStepLean;
          const at = runs.get(op[lean ? 6 : 9])?.steps[op[lean ? 7 : 10] as number] ?? -1;
          if (at < 0) break;
          const prev = out[at]!;
          if (lean && prev[0] === Code.InsertStepStartLean) {
            // The common case: a step started and ended cleanly in this batch, nothing else to bind.
            out[at] = [INSERT_STEP_DONE, prev[1], prev[2], prev[3], prev[4], prev[5], prev[6], op[1], op[2], prev[7], op[3], op[4], op[5]];
            continue;
          }
          const ins = prev[0] === Code.InsertStep ? prev.slice() : widenStepStart(prev);
          // InsertStep: 7 status, 8 attempts, 13 completed_at, 14 duration, 16 output, 17-19 error.
          ins[7] = op[1]; ins[8] = op[2]; ins[13] = op[3]; ins[14] = op[4]; ins[16] = op[5];
          if (!lean) { ins[17] = op[6]; ins[18] = op[7]; ins[19] = op[8]; }
          out[at] = ins;
          continue;
        }
        case Code.UpsertCheckpoint: {
          const slots = slotsOf(runs, op[1]);
          if (slots.checkpoint >= 0) out[slots.checkpoint] = null; // superseded by this save
          slots.checkpoint = out.length;
          slots.saves++;
          out.push(slots.saves === 1 ? op : [UPSERT_CHECKPOINT_TIMES, ...op.slice(1), slots.saves]);
          continue;
        }
        case Code.DropCheckpoint: {
          const slots = runs.get(op[1]);
          if (slots !== undefined && slots.checkpoint >= 0) {
            out[slots.checkpoint] = null; // saved, then removed: the removal alone has the same effect
            slots.checkpoint = -1;
            slots.saves = 0;
          }
          break;
        }
      }
      out.push(op);
    }
  }
  const byCode = s.byCode;
  for (let i = 0; i < out.length; i++) {
    const op = out[i]!;
    if (op === null) continue;
    if (op[0] === INSERT_STEP_DONE) {
      // Consecutive clean steps (a run's whole step list, typically) go in as one multi-row INSERT:
      // a statement call per row was a fifth of a fold's time.
      let j = i + 1;
      while (j < out.length && j - i < MAX_ROWS_PER_INSERT && out[j]?.[0] === INSERT_STEP_DONE) j++;
      if (j - i > 1) {
        const params: unknown[] = [];
        for (let k = i; k < j; k++) {
          const row = out[k]!;
          for (let m = 1; m < row.length; m++) params.push(row[m]);
        }
        stepsDoneStatement(s, j - i).run(...params);
        i = j - 1;
        continue;
      }
    }
    const code = op[0] as number;
    const stmt = code >= 0 ? byCode[code] : code === INSERT_STEP_DONE ? s.insertStepDone : s.upsertCheckpointTimes;
    if (stmt === undefined) throw new WpipeError('WPIPE_ERR_STORAGE', `unknown journaled write (opcode ${String(op[0])}): written by a newer wpipe?`);
    stmt.run(...op.slice(1));
  }
}

/** Position of the run id in each opcode's parameters (index into the op), by {@link Code}. */
const RUN_ID_AT: readonly number[] = [1, 11, 1, 1, 1, 9, 6, 1, 1, 1, 1, 2, 1, 1, 1, 10, 1];

/** The run ids a write names (none for writes about no run). */
export function runIdsOf(op: JournalOp): string[] {
  const at = RUN_ID_AT[op[0] as number];
  const id = at === undefined ? undefined : op[at];
  return typeof id === 'string' ? [id] : [];
}

/** True for a SQLite constraint violation (after {@link storageError} wrapping or not). */
export function isConstraint(error: unknown): boolean {
  const e = error as { code?: unknown; details?: { sqliteCode?: unknown } } | null;
  const code = String(e?.details?.sqliteCode ?? e?.code ?? '');
  return code.startsWith('SQLITE_CONSTRAINT');
}
