/**
 * Resolved writes of run history: the opcodes a step journal stores and a fold executes, their SQL,
 * and {@link applyOps}, which runs a batch of them (merging a row's insert with its later updates).
 * Shared by the tracker (src/storage/tracker.ts), the fold thread (src/storage/fold-worker.ts) and
 * journal recovery, so the three can never disagree about what a journaled line means.
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
import type { JournalOp } from './journal.js';

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
}

export const WRITE_SQL = {
  insertRun: `INSERT INTO pipelines (id, name, worker_id, worker_name, status, started_at, completed_at, total_duration_ms,
      input_data, output_data, output_exact, error_message, error_step, error_code, error_data, parent_pipeline_id,
      parent_step_id, yaml_path, structure_hash, pid, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
  insertMetric: `INSERT INTO system_metrics (pipeline_id, cpu_percent, memory_percent, memory_used_mb, memory_available_mb,
      disk_io_read_mb, disk_io_write_mb, rss_mb, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
} as const;

/** Statement of each {@link Code}, in opcode order. */
export const CODE_SQL: readonly (keyof typeof WRITE_SQL)[] = [
  'insertRun', 'finishRun', 'insertStep', 'insertStepStart', 'insertStepStartLean', 'finishStep', 'finishStepLean',
  'insertAttempt', 'insertEvent', 'upsertCheckpoint', 'dropCheckpoint', 'insertAlert', 'insertMetric',
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
}

/** Prepares the write statements on a connection. */
export function prepareWrites(db: StorageDb): WriteStatements {
  return { byCode: CODE_SQL.map((k) => db.prepare(WRITE_SQL[k])) };
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

/**
 * Executes resolved writes in order (inside the caller's transaction). A row inserted and then
 * updated within the same batch is written once: the update is merged into the insert, which is
 * what makes a fold of many boundaries cheaper than the boundaries were (same final rows).
 */
export function applyOps(s: WriteStatements, ops: readonly JournalOp[]): void {
  let out: JournalOp[] = ops as JournalOp[];
  if (ops.length > 1) {
    out = [];
    const inserted = new Map<string, number>();
    for (const op of ops) {
      switch (op[0]) {
        case Code.InsertRun:
          inserted.set(`r\u0000${String(op[1])}`, out.length);
          out.push(op);
          continue;
        case Code.FinishRun: {
          const at = inserted.get(`r\u0000${String(op[11])}`);
          if (at === undefined) break;
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
          inserted.set(`s\u0000${String(op[1])}\u0000${String(op[2])}`, out.length);
          out.push(op);
          continue;
        case Code.FinishStep:
        case Code.FinishStepLean: {
          const lean = op[0] === Code.FinishStepLean;
          const at = inserted.get(`s\u0000${String(op[lean ? 6 : 9])}\u0000${String(op[lean ? 7 : 10])}`);
          if (at === undefined) break;
          const prev = out[at]!;
          const ins = prev[0] === Code.InsertStep ? prev.slice() : widenStepStart(prev);
          // InsertStep: 7 status, 8 attempts, 13 completed_at, 14 duration, 16 output, 17-19 error.
          ins[7] = op[1]; ins[8] = op[2]; ins[13] = op[3]; ins[14] = op[4]; ins[16] = op[5];
          if (!lean) { ins[17] = op[6]; ins[18] = op[7]; ins[19] = op[8]; }
          out[at] = ins;
          continue;
        }
      }
      out.push(op);
    }
  }
  const byCode = s.byCode;
  for (let i = 0; i < out.length; i++) {
    const op = out[i]!;
    const stmt = byCode[op[0] as number];
    if (stmt === undefined) throw new WpipeError('WPIPE_ERR_STORAGE', `unknown journaled write (opcode ${String(op[0])}): written by a newer wpipe?`);
    stmt.run(...op.slice(1));
  }
}


/**
 * Applies writes one savepoint each, in one transaction: a write that cannot apply (a constraint
 * it breaks, e.g. a run id another process recorded meanwhile) is skipped instead of failing the
 * others. `also` runs in the same transaction (e.g. recording the journal offset). Returns how many
 * writes were skipped.
 */
export function applyOpsEach(db: StorageDb, s: WriteStatements, ops: readonly JournalOp[], also?: () => void): number {
  let dropped = 0;
  db.transaction(() => {
    for (const op of ops) {
      db.raw.exec('SAVEPOINT wpipe_write');
      try {
        applyOps(s, [op]);
      } catch {
        db.raw.exec('ROLLBACK TO wpipe_write');
        dropped++;
      }
      db.raw.exec('RELEASE wpipe_write');
    }
    also?.();
  });
  return dropped;
}

/** True for a SQLite constraint violation (after {@link storageError} wrapping or not). */
export function isConstraint(error: unknown): boolean {
  const e = error as { code?: unknown; details?: { sqliteCode?: unknown } } | null;
  const code = String(e?.details?.sqliteCode ?? e?.code ?? '');
  return code.startsWith('SQLITE_CONSTRAINT');
}
