/**
 * One owner per run id (docs/architecture.md "Durable state"): who may execute a run id, decided in one SQLite
 * transaction before the run's first step, so conflicts never reach a fold.
 *
 * A run id the caller chose is claimed by {@link claimRun}: `BEGIN IMMEDIATE`, catch the database up
 * with every step journal beside it ({@link foldJournals}: what other trackers and processes have
 * journaled, and the journals of dead processes), then read the run's row:
 * - none: insert it as `running` under this tracker's journal owner — committed now, so any other
 *   claimant sees it;
 * - recorded for another pipeline: `WPIPE_ERR_RUN_ID_CONFLICT` (never another pipeline's result);
 * - `completed`: its recorded result, nothing executes;
 * - `running` under a live owner (a process holding its lock, or another tracker of this thread):
 *   `busy` — the caller waits (and claims again) or fails fast with `WPIPE_ERR_RUN_IN_PROGRESS`;
 * - `error` or `cancelled` when the caller has just waited for that run: `failed` — its outcome is
 *   the caller's (a later start resumes it);
 * - otherwise (`error`, `cancelled`, `interrupted`, or `running` under a dead owner): reopened under
 *   this owner and resumed from its last checkpoint, or refused with `WPIPE_ERR_RESUME_MISMATCH`
 *   when the pipeline's steps changed.
 * Generated run ids (time-ordered UUIDs) cannot collide and skip the claim: their row is journaled.
 *
 * Within a thread, runs in flight are also kept in {@link inFlight}, so a second start of the same id
 * (another Pipeline object on the same file) waits on a promise instead of polling the database.
 *
 * @example
 * ```ts
 * const c = claimRun(db, stmts, { runId: 'job-1', pipelineName: 'orders', owner, insert });
 * if (c.outcome === 'busy') await later();
 * ```
 */
import { WpipeError } from '../errors.js';
import type { StorageDb } from './db.js';
import { foldJournals, ownerAlive, type FoldReport } from './journal.js';
import { serialize } from './serialize.js';
import { rowToCheckpoint, rowToRun, type CheckpointRecord, type RunRecord, type RunStatus } from './records.js';
import type { WriteStatements } from './ops.js';
import type BetterSqlite3 from 'better-sqlite3';

/** Statements the claim uses (prepared by the tracker). */
export const CLAIM_SQL = {
  getRun: 'SELECT * FROM pipelines WHERE id = ?',
  getCheckpoint: 'SELECT * FROM checkpoints WHERE pipeline_id = ?',
  maxOrder: 'SELECT max(step_order) AS m FROM steps WHERE pipeline_id = ?',
  interruptSteps: `UPDATE steps SET status = 'interrupted', completed_at = ?,
      error_message = coalesce(error_message, 'interrupted: the process stopped while this step ran') WHERE pipeline_id = ? AND status = 'running'`,
  reopenRun: `UPDATE pipelines SET status = 'running', resumes = resumes + 1, completed_at = NULL, total_duration_ms = NULL,
      error_message = NULL, error_step = NULL, error_code = NULL, error_data = NULL, pid = ?, owner = ?, updated_at = ? WHERE id = ?`,
  resumeEvent: `INSERT INTO events (pipeline_id, step_id, event_type, event_name, message, data, tags, created_at)
    VALUES (?, NULL, 'resume', ?, ?, ?, NULL, ?)`,
} as const;

export type ClaimStatements = { [K in keyof typeof CLAIM_SQL]: BetterSqlite3.Statement } & WriteStatements;

/** What {@link claimRun} decided. */
export type Claim =
  | { outcome: 'started' }
  | { outcome: 'not-found' }
  | { outcome: 'completed'; run: RunRecord }
  | { outcome: 'busy'; run: RunRecord }
  | { outcome: 'failed'; run: RunRecord }
  | { outcome: 'resumed'; run: RunRecord; previousStatus: RunStatus; checkpoint: CheckpointRecord | undefined; maxOrder: number };

/** Arguments of {@link claimRun}. */
export interface ClaimArgs {
  runId: string;
  pipelineName: string | undefined;
  structureHash?: string | undefined;
  /** This tracker's journal owner: the claimed row names it. */
  owner: string | null;
  /** The InsertRun parameters (without the opcode) to insert when the id is not recorded; undefined: do not start it. */
  insert: unknown[] | undefined;
  /**
   * False after waiting for another run of this id: its failure is this start's outcome
   * (`failed`), not a run to resume. A run whose owner died is resumed either way.
   */
  resumeFailed: boolean;
}

/**
 * Claims `runId` for `owner` (see the module comment). Returns the decision and what catching up
 * the journals found (already committed, and the dead owners' files removed).
 */
export function claimRun(db: StorageDb, s: ClaimStatements, args: ClaimArgs): { claim: Claim; report: FoldReport | undefined } {
  let report: FoldReport | undefined;
  let claim: Claim;
  try {
    claim = db.transaction((): Claim => {
      report = foldJournals(db, s, args.owner ?? undefined);
      return decide(db, s, args);
    });
  } catch (error) {
    report?.abandon();
    throw error;
  }
  report?.afterCommit();
  return { claim, report };
}

function decide(db: StorageDb, s: ClaimStatements, args: ClaimArgs): Claim {
  const { runId } = args;
  const row = s.getRun.get(runId) as Record<string, unknown> | undefined;
  if (!row) {
    if (args.insert === undefined) return { outcome: 'not-found' };
    s.byCode[0]!.run(...args.insert);
    return { outcome: 'started' };
  }
  const record = rowToRun(row);
  if (args.pipelineName !== undefined && record.pipelineName !== args.pipelineName) {
    throw new WpipeError(
      'WPIPE_ERR_RUN_ID_CONFLICT',
      `run id '${runId}' is recorded in ${db.path} for pipeline '${record.pipelineName}', not '${args.pipelineName}': ` +
        'run ids are unique per database; use another runId (for example prefixed with the pipeline name)',
      { details: { runId, recordedPipeline: record.pipelineName, pipelineName: args.pipelineName, file: db.path } },
    );
  }
  if (record.status === 'completed') return { outcome: 'completed', run: record };
  if (record.status === 'running' && record.owner !== args.owner && ownerAlive(db.path, record.owner)) return { outcome: 'busy', run: record };
  if (record.status === 'running' && record.owner === args.owner && args.owner !== null) return { outcome: 'busy', run: record };
  if (!args.resumeFailed && (record.status === 'error' || record.status === 'cancelled')) return { outcome: 'failed', run: record };
  const cpRow = s.getCheckpoint.get(runId) as Record<string, unknown> | undefined;
  const recordedHash = (cpRow?.structure_hash as string | null | undefined) ?? record.structureHash;
  if (args.structureHash !== undefined && recordedHash && recordedHash !== args.structureHash) {
    const where = cpRow ? ` from checkpoint '${String(cpRow.name)}' at position ${String(cpRow.position)}` : '';
    throw new WpipeError(
      'WPIPE_ERR_RESUME_MISMATCH',
      `cannot resume run '${runId}' of pipeline '${record.pipelineName}'${where}: the pipeline's steps changed since it was recorded ` +
        `(structure hash ${recordedHash} then, ${args.structureHash} now). Restore the old step list, or start a new run with another runId.`,
      { details: { runId, recordedHash, currentHash: args.structureHash } },
    );
  }
  const previousStatus: RunStatus = record.status === 'running' ? 'interrupted' : record.status;
  const iso = new Date().toISOString();
  s.interruptSteps.run(iso, runId);
  s.reopenRun.run(process.pid, args.owner, iso, runId);
  s.resumeEvent.run(runId, runId, `Run resumed after status '${previousStatus}'`,
    serialize({ previousStatus, previousError: record.error, checkpoint: cpRow ? { name: cpRow.name, position: cpRow.position } : null }, { mode: 'lenient' }),
    iso);
  const maxOrder = (s.maxOrder.get(runId) as { m: number | null }).m ?? 0;
  const reopened = rowToRun(s.getRun.get(runId) as Record<string, unknown>);
  return { outcome: 'resumed', run: reopened, previousStatus, checkpoint: cpRow ? rowToCheckpoint(cpRow) : undefined, maxOrder };
}

/** A run in flight in this thread, by database file and run id: a second start waits on `done`. */
interface InFlight {
  done: Promise<void>;
  settle: () => void;
}

const inFlight = new Map<string, InFlight>();
const key = (dbPath: string, runId: string): string => `${dbPath}\0${runId}`;

/** The promise a second start of a run in flight in this thread waits on, if it is in flight. */
export function inFlightRun(dbPath: string, runId: string): Promise<void> | undefined {
  return inFlight.get(key(dbPath, runId))?.done;
}

/** Marks a run as in flight in this thread (after a claim that started or resumed it). */
export function enterRun(dbPath: string, runId: string): void {
  let settle!: () => void;
  const done = new Promise<void>((resolve) => {
    settle = resolve;
  });
  inFlight.set(key(dbPath, runId), { done, settle });
}

/** The run is over in this thread (finished, or its tracker closed): waiters claim again. */
export function leaveRun(dbPath: string, runId: string): void {
  const k = key(dbPath, runId);
  const entry = inFlight.get(k);
  if (entry === undefined) return;
  inFlight.delete(k);
  entry.settle();
}
