/**
 * RunTracker: the run history and checkpoint writer the engine calls at each state change.
 *
 * ## When things are durable (durability `'step'`, the default)
 *
 * Writes that describe work already done — `startRun`, `finishStep`, `saveCheckpoint`,
 * `recordAttempt`, `recordEvent`, `recordAlert`, `recordSystemMetrics` — are queued, and the queue is
 * made durable at ONCE by the next call that precedes user code: `startStep` (its own row goes with
 * it) and `finishRun`. So a step boundary is one durable write holding "step N completed (+ its
 * checkpoint) and step N+1 running", and a 10-step run is 11 of them. No user code ever runs while a
 * completion it follows is not durable, hence a `kill -9` loses at most the step in flight (its
 * completion, and any attempts/events recorded since the last boundary).
 *
 * For a database in a file, a boundary is one line appended to this tracker's step journal
 * (src/storage/journal.ts: one `write(2)`, or a copy into a mapped window of the file with the
 * native addon — as durable against a killed process as a WAL commit with `synchronous=NORMAL`, at a
 * fraction of its cost), and the journaled writes are folded into SQLite in one transaction within
 * `autoFlushMs` (10 ms), before any read through this tracker, at `close()` and at process exit —
 * by a worker thread once the tracker is busy (`foldThreadAfter`), which reads the lines back from
 * the file and which boundaries wait for when it falls `maxFoldLagBytes` behind. The journals of
 * dead processes are replayed into the database the next time a tracker opens it. Other connections therefore see a boundary within `autoFlushMs`. With
 * `journal: false` (or an in-memory database) each boundary is its own SQLite commit instead.
 * Queued writes with no boundary after them (an event from a timer, a Background step finishing)
 * are committed within `autoFlushMs` by an unref'd timer, and at process exit.
 *
 * Checkpoints: `saveCheckpoint` serializes the context at once (strictly: an unsupported value
 * throws `WPIPE_ERR_CHECKPOINT_SERIALIZE` naming its key path, before anything is written) and the
 * row lands in the same commit as the step completion queued before it. One checkpoint row is kept
 * per run (the latest); a run that completes drops it (its output is the recorded result).
 *
 * ## Durability `'run'` (opt-in, faster)
 *
 * Everything of a run is made durable once, at `finishRun` (one journal line, or one commit with
 * `journal: false`; also at `flush()`, or when 10,000 writes are queued). What a `kill -9` can lose: every run not yet finished — its row, steps, attempts,
 * events and checkpoints — so such a run cannot be resumed and leaves no trace. Finished runs are
 * complete. Choose it for high-volume pipelines whose runs are cheap to redo.
 *
 * ## Identity
 *
 * `startStep` returns a {@link StepId}: a number valid in this thread (any tracker of the thread
 * resolves it, so a nested pipeline with its own database can still name its parent step). In the
 * database a step is (`pipeline_id`, `step_order`); `step_order` counts every step row of the run
 * from 1 and continues after a resume.
 *
 * @example
 * ```ts
 * const tracker = new RunTracker('runs.db');
 * const run = tracker.startRun({ runId: 'order-7', pipelineName: 'orders', input: { orderId: 7 }, structureHash: 'h1' });
 * const s1 = tracker.startStep({ runId: run.runId, name: 'load', version: 'v1', position: 0 });
 * tracker.finishStep({ stepId: s1, status: 'completed', attempts: 1, durationMs: 3.2, output: { rows: 10 } });
 * tracker.saveCheckpoint({ runId: run.runId, name: 'loaded', position: 1, context: { orderId: 7, rows: 10 } });
 * tracker.finishRun({ runId: run.runId, status: 'completed', output: { orderId: 7, rows: 10 } });
 * tracker.close();
 * ```
 */
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { WpipeError, checkOptions, invalidOption, serializeError } from '../errors.js';
import { StorageDb, openDb, storageError, type OpenDbOptions } from './db.js';
import { FoldThread, Journal, isFileDb, readJournal, recoverJournals, type JournalOp, type RecoveredJournal } from './journal.js';
import { Code, JOURNAL_SQL, WRITE_SQL, applyOps, applyOpsEach, compactBoundary, isConstraint, prepareWrites, type WriteStatements } from './ops.js';
import { deserialize, serialize, serializeBestEffort } from './serialize.js';
import { journalMapper, requestedBackend } from '../backend/load.js';
import type { BackendChoice } from '../backend/types.js';

/** Status of a run row. */
export type RunStatus = 'running' | 'completed' | 'error' | 'cancelled';
/** Status of a step row (`interrupted`: the process stopped while it ran; set on resume). */
export type StepStatus = 'running' | 'completed' | 'error' | 'skipped' | 'cancelled' | 'interrupted';
/** What kind of node a step row stands for. */
export type StepKind = 'task' | 'condition' | 'for' | 'parallel' | 'background' | 'pipeline' | 'checkpoint' | (string & {});
/** Where a step ran. */
export type StepExecutor = 'inline' | 'threads' | 'processes' | (string & {});
/** When queued writes are committed; see the module comment. */
export type Durability = 'step' | 'run';
/** A step handle returned by {@link RunTracker.startStep}. */
export type StepId = number;

/** Options of {@link RunTracker}. */
export interface RunTrackerOptions extends OpenDbOptions {
  /** `'step'` (default): committed at every step boundary. `'run'`: once per run, see above. */
  durability?: Durability;
  /** Recorded on each run row (reference `worker_id` / `worker_name`). */
  workerId?: string;
  workerName?: string;
  /** Upper bound, in ms, on how long a queued write with no following boundary waits (default 10). */
  autoFlushMs?: number;
  /**
   * Receives errors of background folds (timer, fold thread, process exit); a fold thread whose
   * every round fails reports the failure once, when it starts. Default: a process warning.
   */
  onError?: (error: WpipeError) => void;
  /**
   * Make commit points durable through the step journal (default true for a database in a file):
   * a boundary is one append to a journal file, folded into SQLite within `autoFlushMs`. `false`:
   * every commit point is its own SQLite commit (other connections see it at once; about 4× slower).
   */
  journal?: boolean;
  /**
   * Journal appends after which a worker thread takes over folding the journal into SQLite, so the
   * thread running pipelines only pays for the appends (default 256: a busy tracker hands its
   * journal over, a tracker that records a few runs does not). `0`: from the first append;
   * `Infinity`: never. The worker is the database's fold thread, one per file in this thread,
   * shared by its busy trackers (the first sets its interval and options); a checkpoint thread
   * copies the WAL back beside it, unless `walAutocheckpoint` is given.
   */
  foldThreadAfter?: number;
  /**
   * Journal bytes the fold thread may fall behind before a boundary waits for it to catch up
   * (back-pressure; default 16 MiB, about 8,000 ten-step runs). Lines the thread has not folded
   * are read back from the journal file, never kept in memory.
   */
  maxFoldLagBytes?: number;
  /**
   * How the step journal appends (else WPIPE_BACKEND, else `auto`): `native` copies lines into a
   * window of the file mapped by the addon (no system call per line; an error if the addon does not
   * load), `js` and `wasm` use write(2), `auto` maps when the addon loads. Equally durable.
   */
  backend?: BackendChoice;
  /**
   * Size past which the journal file is replaced by a new one once everything in it is folded
   * (default 64 MiB; at least 4096).
   */
  journalRotateBytes?: number;
}

/** What a tracker did, for tests and benchmarks. */
export interface TrackerStats {
  /** Boundaries made durable by a journal append. */
  journalAppends: number;
  /** Transactions that moved writes into SQLite. */
  folds: number;
  /** Writes moved into SQLite. */
  foldedWrites: number;
  /** Orphan journals (of dead processes) this tracker replayed when it opened the database. */
  recoveredJournals: RecoveredJournal[];
  /** Boundaries that waited for a fold thread that had fallen `maxFoldLagBytes` behind. */
  foldWaits: number;
}

const TRACKER_OPTIONS = [
  'durability', 'workerId', 'workerName', 'autoFlushMs', 'onError', 'journal', 'foldThreadAfter', 'maxFoldLagBytes', 'backend', 'journalRotateBytes',
  'busyTimeoutMs', 'busyDeadlineMs', 'fileMustExist', 'walAutocheckpoint', 'pageSize',
] as const;

/** Arguments of {@link RunTracker.startRun}. */
export interface StartRunArgs {
  runId: string;
  pipelineName: string;
  input?: unknown;
  /** Identifies the pipeline's step structure; a resume with another hash is refused. */
  structureHash?: string;
  parentRunId?: string;
  /** The parent step (a StepId of any tracker of this thread) that runs this nested pipeline. */
  parentStepId?: StepId;
  yamlPath?: string;
  /**
   * `beginRun` only: the id was generated just now (the engine's time-ordered UUIDs), so it cannot
   * be recorded yet and the lookup for a resume is skipped.
   */
  fresh?: boolean;
}

/** Arguments of {@link RunTracker.startStep}. */
export interface StartStepArgs {
  runId: string;
  name: string;
  version?: string;
  kind?: StepKind;
  /** Index among the pipeline's top-level steps (what a resume counts); omit inside blocks. */
  position?: number;
  parentStepId?: StepId;
  parallelGroup?: string;
  executor?: StepExecutor;
  /** Recorded (leniently serialized) as the step's input; omit to save the cost. */
  input?: unknown;
}

/** Arguments of {@link RunTracker.finishStep}. */
export interface FinishStepArgs {
  stepId: StepId;
  status: Exclude<StepStatus, 'running' | 'interrupted'>;
  attempts?: number;
  durationMs?: number;
  /** What the step returned (leniently serialized). */
  output?: unknown;
  error?: unknown;
}

/** Arguments of {@link RunTracker.recordAttempt}: one attempt of a step (typically a failed one before a retry). */
export interface RecordAttemptArgs {
  stepId: StepId;
  attempt: number;
  status: 'completed' | 'error' | 'timeout' | 'cancelled';
  durationMs?: number;
  error?: unknown;
  startedAt?: Date;
}

/** Arguments of {@link RunTracker.recordEvent}. */
export interface RecordEventArgs {
  runId?: string;
  stepId?: StepId;
  type: string;
  name: string;
  message?: string;
  data?: unknown;
  tags?: readonly string[];
}

/** Arguments of {@link RunTracker.recordAlert}. */
export interface RecordAlertArgs {
  runId?: string;
  stepId?: StepId;
  configId?: number;
  metric: string;
  value: number;
  threshold: number;
  severity: 'info' | 'warning' | 'critical' | (string & {});
  message?: string;
}

/** Arguments of {@link RunTracker.recordSystemMetrics}. */
export interface RecordSystemMetricsArgs {
  runId?: string;
  cpuPercent?: number;
  memoryPercent?: number;
  memoryUsedMb?: number;
  memoryAvailableMb?: number;
  diskIoReadMb?: number;
  diskIoWriteMb?: number;
  rssMb?: number;
  recordedAt?: Date;
}

/** Arguments of {@link RunTracker.saveCheckpoint}. */
export interface SaveCheckpointArgs {
  runId: string;
  name: string;
  /** Top-level position to resume at (the index of the next step to run). */
  position: number;
  context: unknown;
  structureHash?: string;
}

/** Arguments of {@link RunTracker.finishRun}. */
export interface FinishRunArgs {
  runId: string;
  status: Exclude<RunStatus, 'running'>;
  output?: unknown;
  error?: unknown;
  /** Name of the step that failed the run. */
  errorStep?: string;
  /** Overrides the duration computed from the run's start. */
  durationMs?: number;
}

/** Arguments of {@link RunTracker.resumeRun}. */
export interface ResumeRunArgs {
  runId: string;
  /** The pipeline's current structure hash; differing from the recorded one refuses the resume. */
  structureHash?: string;
}

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
}

/** A step row, decoded. `order` is its step_order; `parentStepId` the parent's step_order. */
export interface StepRecord {
  runId: string;
  order: number;
  name: string;
  version: string | null;
  kind: string;
  position: number | null;
  status: StepStatus;
  attempts: number;
  parentStepId: number | null;
  parallelGroup: string | null;
  executor: string | null;
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
  position: number;
  /** step_order of the last step row written before the checkpoint. */
  stepOrder: number | null;
  structureHash: string | null;
  context: unknown;
  /** How many times a checkpoint of this run was saved. */
  saves: number;
  createdAt: string;
}

/** What {@link RunTracker.resumeRun} found. */
export type ResumeResult =
  | { outcome: 'not-found' }
  | { outcome: 'completed'; run: RunRecord }
  | { outcome: 'resumed'; run: RunRecord; previousStatus: RunStatus; checkpoint: CheckpointRecord | undefined };

// ---------------------------------------------------------------------------------------------
// In-memory state of runs and steps in flight.

interface RunState {
  tracker: RunTracker;
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
  openSteps: Set<StepState>;
  workerId: string | null;
  workerName: string | null;
}

interface StepState {
  id: StepId;
  run: RunState;
  order: number;
  name: string;
  version: string | null;
  kind: string;
  position: number | null;
  parentOrder: number | null;
  parallelGroup: string | null;
  executor: string | null;
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

const enum Op { Run, Step, Write }

type QueuedWrite =
  | { op: Op.Run; run: RunState }
  | { op: Op.Step; step: StepState }
  | { op: Op.Write; write: JournalOp };

/** Step handles of this thread, shared by every tracker so nested pipelines can name parent steps. */
const stepsById = new Map<StepId, StepState>();
let nextStepId = 1;

/** Trackers with queued writes, flushed at process exit. */
const pendingTrackers = new Set<RunTracker>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const tracker of [...pendingTrackers]) tracker.exitQuietly();
  });
}

const MAX_QUEUE_RUN_MODE = 10_000;
/**
 * Journal bytes a fold thread may fall behind (about 8,000 ten-step runs) before a boundary waits
 * for it (option `maxFoldLagBytes`), and how long it waits before folding on its own thread.
 */
const MAX_FOLD_LAG_BYTES = 16 * 1024 * 1024;
const FOLD_WAIT_MS = 2_000;
/** How often a database's checkpoint thread copies the WAL into the database file. */
const CHECKPOINT_INTERVAL_MS = 100;

const SQL = {
  ...WRITE_SQL,
  ...JOURNAL_SQL,
  getRun: 'SELECT * FROM pipelines WHERE id = ?',
  runExists: 'SELECT status FROM pipelines WHERE id = ?',
  getSteps: 'SELECT * FROM steps WHERE pipeline_id = ? ORDER BY step_order',
  getCheckpoint: 'SELECT * FROM checkpoints WHERE pipeline_id = ?',
  maxOrder: 'SELECT max(step_order) AS m FROM steps WHERE pipeline_id = ?',
  interruptSteps: `UPDATE steps SET status = 'interrupted', completed_at = ?,
      error_message = coalesce(error_message, 'interrupted: the process stopped while this step ran') WHERE pipeline_id = ? AND status = 'running'`,
  reopenRun: `UPDATE pipelines SET status = 'running', resumes = resumes + 1, completed_at = NULL, total_duration_ms = NULL,
      error_message = NULL, error_step = NULL, error_code = NULL, error_data = NULL, pid = ?, updated_at = ? WHERE id = ?`,
} as const;

type Stmts = { [K in keyof typeof SQL]: BetterSqlite3.Statement } & WriteStatements;

/** The outcome fields of a run that is running (a new run, or one reopened to resume). */
function runningOutcome(): Pick<RunState, 'status' | 'completedAt' | 'durationMs' | 'outputText' | 'outputExact' | 'errorMessage'
  | 'errorStep' | 'errorCode' | 'errorData' | 'openSteps'> {
  return {
    status: 'running', completedAt: null, durationMs: null, outputText: null, outputExact: null,
    errorMessage: null, errorStep: null, errorCode: null, errorData: null, openSteps: new Set(),
  };
}

function errorParts(error: unknown): { message: string; code: string | null; stack: string | null; data: string } {
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
function isoAt(ms: number): string {
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}
function isoNow(): string {
  return isoAt(Date.now());
}

function lenient(value: unknown): string | null {
  return value === undefined ? null : serialize(value, { mode: 'lenient' });
}

function decode(text: unknown): unknown {
  return typeof text === 'string' ? deserialize(text) : undefined;
}

/**
 * Writes run history and checkpoints to a SQLite file. See the module comment for when writes are
 * committed and what a crash can lose.
 *
 * @example
 * ```ts
 * const tracker = new RunTracker('runs.db', { durability: 'step' });
 * const prior = tracker.resumeRun({ runId: 'job-1', structureHash: hash });
 * if (prior.outcome === 'completed') return prior.run.output;
 * ```
 */
export class RunTracker {
  readonly durability: Durability;
  private readonly target: string | StorageDb | BetterSqlite3.Database;
  private readonly options: RunTrackerOptions;
  private dbHandle: StorageDb | undefined;
  private s: Stmts | undefined;
  private queue: QueuedWrite[] = [];
  /** Resolved writes that are in no journal and not in SQLite yet (queued writes a flush resolved, or a failed append's). */
  private unfolded: JournalOp[] = [];
  /** Journal lines not known to be folded: their writes, and the journal offset at their end. */
  private journaled: { end: number; ops: JournalOp[] }[] = [];
  private journaledOps = 0;
  /**
   * Journal lines written while a fold thread runs are not kept in memory: the file has them. They
   * span [fileFrom, fileTo) of the current log (empty when equal); `fileLines` counts them.
   */
  private fileFrom = 0;
  private fileTo = 0;
  private fileLines = 0;
  private foldThread: FoldThread | undefined;
  private foldThreadAfter: number;
  private readonly maxFoldLag: number;
  /** Runs finished since the last fold: a new run with one of these ids must fold first. */
  private readonly unfoldedRunIds = new Set<string>();
  private journalHandle: Journal | undefined;
  private unregisterPending: (() => void) | undefined;
  private readonly useJournal: boolean;
  private readonly counters: TrackerStats = { journalAppends: 0, folds: 0, foldedWrites: 0, recoveredJournals: [], foldWaits: 0 };
  private readonly runs = new Map<string, RunState>();
  private holdDepth = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly autoFlushMs: number;
  private closed = false;
  private readonly ownsDb: boolean;

  /**
   * @param db a file path (opened lazily, on first use, through this thread's connection cache),
   *   a {@link StorageDb}, or a better-sqlite3 connection you own.
   */
  constructor(db: string | StorageDb | BetterSqlite3.Database, options: RunTrackerOptions = {}) {
    checkOptions('RunTracker', options, TRACKER_OPTIONS);
    if (typeof db !== 'string' && !(db instanceof StorageDb) && (typeof db !== 'object' || db === null || typeof (db as BetterSqlite3.Database).prepare !== 'function')) {
      throw invalidOption('RunTracker: db must be a file path, a StorageDb or a better-sqlite3 Database');
    }
    const durability = options.durability ?? 'step';
    if (durability !== 'step' && durability !== 'run') {
      throw invalidOption(`RunTracker: durability must be 'step' or 'run', got ${JSON.stringify(durability)}`, 'RangeError');
    }
    const autoFlushMs = options.autoFlushMs ?? 10;
    if (typeof autoFlushMs !== 'number' || !(autoFlushMs >= 0)) {
      throw invalidOption(`RunTracker: autoFlushMs must be a number ≥ 0, got ${String(autoFlushMs)}`, 'RangeError');
    }
    this.durability = durability;
    this.autoFlushMs = autoFlushMs;
    this.target = db;
    this.options = options;
    this.ownsDb = typeof db === 'string';
    if (options.journal !== undefined && typeof options.journal !== 'boolean') {
      throw invalidOption(`RunTracker: journal must be a boolean, got ${typeof options.journal}`);
    }
    this.useJournal = options.journal !== false;
    const after = options.foldThreadAfter ?? 256;
    if (typeof after !== 'number' || !(after >= 0)) {
      throw invalidOption(`RunTracker: foldThreadAfter must be a number ≥ 0 (or Infinity), got ${String(after)}`, 'RangeError');
    }
    this.foldThreadAfter = after;
    const lag = options.maxFoldLagBytes ?? MAX_FOLD_LAG_BYTES;
    if (typeof lag !== 'number' || !(lag >= 1024)) {
      throw invalidOption(`RunTracker: maxFoldLagBytes must be a number ≥ 1024, got ${String(lag)}`, 'RangeError');
    }
    this.maxFoldLag = lag;
    const rotate = options.journalRotateBytes;
    if (rotate !== undefined && (typeof rotate !== 'number' || !(rotate >= 4096))) {
      throw invalidOption(`RunTracker: journalRotateBytes must be a number ≥ 4096, got ${String(rotate)}`, 'RangeError');
    }
    // A bad choice, or a forced native backend that does not load, is an error now, not at the first boundary.
    if (this.useJournal && (options.backend !== undefined || requestedBackend() === 'native')) journalMapper(options.backend);
  }

  /** The connection, opened on first use. */
  get db(): StorageDb {
    if (this.dbHandle) return this.dbHandle;
    if (this.closed) throw new WpipeError('WPIPE_ERR_STORAGE', 'RunTracker: used after close()');
    const t = this.target;
    const { busyTimeoutMs, busyDeadlineMs, fileMustExist, walAutocheckpoint, pageSize } = this.options;
    const openOptions: OpenDbOptions = {};
    if (busyTimeoutMs !== undefined) openOptions.busyTimeoutMs = busyTimeoutMs;
    if (busyDeadlineMs !== undefined) openOptions.busyDeadlineMs = busyDeadlineMs;
    if (fileMustExist !== undefined) openOptions.fileMustExist = fileMustExist;
    if (walAutocheckpoint !== undefined) openOptions.walAutocheckpoint = walAutocheckpoint;
    if (pageSize !== undefined) openOptions.pageSize = pageSize;
    const db = typeof t === 'string' ? openDb(t, openOptions) : t instanceof StorageDb ? t : StorageDb.wrap(t, openOptions);
    this.dbHandle = db;
    if (this.useJournal && isFileDb(db.path)) {
      // Journals of dead processes first: their runs must be complete before anything reads them.
      try {
        this.counters.recoveredJournals = recoverJournals(db, this.stmts);
      } catch (error) {
        this.reportQuietly(storageError(error, 'replaying step journals', db.path));
      }
      for (const r of this.counters.recoveredJournals) {
        if (r.error !== undefined) this.reportQuietly(new WpipeError('WPIPE_ERR_STORAGE', `replaying step journal ${r.name} of ${db.path} failed (left in place): ${r.error}`, { details: { file: db.path, journal: r.name } }));
        else if (r.dropped > 0) this.reportQuietly(new WpipeError('WPIPE_ERR_STORAGE', `replaying step journal ${r.name} of ${db.path}: ${r.dropped} write(s) broke a constraint and were skipped`, { details: { file: db.path, journal: r.name, droppedWrites: r.dropped } }));
      }
    }
    return db;
  }

  /** This tracker's step journal, opened at the first boundary (undefined: commit to SQLite directly). */
  private get journal(): Journal | undefined {
    if (this.journalHandle || !this.useJournal) return this.journalHandle;
    const db = this.db;
    if (!isFileDb(db.path)) return undefined;
    const { backend, journalRotateBytes } = this.options;
    this.journalHandle = new Journal(db.path, {
      ...(backend === undefined ? {} : { backend }),
      ...(journalRotateBytes === undefined ? {} : { rotateBytes: journalRotateBytes }),
    });
    this.unregisterPending = db.addPendingSource(() => this.flushQuietly());
    pendingTrackers.add(this);
    installExitHook();
    return this.journalHandle;
  }

  /** Counters of journal appends, folds and replayed journals. */
  get stats(): Readonly<TrackerStats> {
    return this.counters;
  }

  private get stmts(): Stmts {
    if (this.s) return this.s;
    const db = this.db;
    const out = {} as Record<string, BetterSqlite3.Statement>;
    for (const [k, sql] of Object.entries(SQL)) out[k] = db.prepare(sql);
    const stmts = out as unknown as Stmts;
    Object.assign(stmts, prepareWrites(db, stmts));
    this.s = stmts;
    return stmts;
  }

  /** Number of writes queued and not yet durable (no boundary since). */
  get pendingWrites(): number {
    return this.queue.length;
  }

  /**
   * Number of writes durable in the step journal and not yet folded into SQLite (journal lines the
   * fold thread has not reached count one each: they are in the file, not in memory).
   */
  get unfoldedWrites(): number {
    this.trimJournaled();
    return this.unfolded.length + this.journaledOps + (this.fileLagBytes() > 0 ? this.fileLines : 0);
  }

  /** Bytes of journal lines kept only in the file that the fold thread has not folded yet. */
  private fileLagBytes(): number {
    const journal = this.journalHandle;
    if (!journal || this.fileTo <= this.fileFrom) return 0;
    const folded = this.foldThread?.foldedOffset(journal.generation) ?? 0;
    return Math.max(0, this.fileTo - Math.max(folded, this.fileFrom));
  }

  // -------------------------------------------------------------------------------------------
  // Runs

  /**
   * Records a new run as `running` (committed with its first step, see the module comment).
   * Throws `WPIPE_ERR_STORAGE` if the id is already recorded: use {@link resumeRun} for that.
   *
   * @example
   * ```ts
   * tracker.startRun({ runId: 'r1', pipelineName: 'orders', input: { id: 1 }, structureHash: 'abc' });
   * ```
   */
  startRun(args: StartRunArgs): RunRecord {
    const { runId, pipelineName } = args;
    if (typeof runId !== 'string' || runId.length === 0) throw invalidOption('startRun: runId must be a non-empty string');
    if (typeof pipelineName !== 'string') throw invalidOption('startRun: pipelineName must be a string');
    if (this.unfoldedRunIds.has(runId)) this.flush();
    if (this.runs.has(runId) || this.stmts.runExists.get(runId) !== undefined) {
      throw new WpipeError('WPIPE_ERR_STORAGE', `startRun: run '${runId}' is already recorded in ${this.db.path}; resume it with resumeRun() or use a new runId`, {
        details: { runId, file: this.db.path },
      });
    }
    return this.startNewRun(args);
  }

  /**
   * What the engine calls at the start of every run: a new id starts a run ({@link startRun}); a
   * recorded id goes through {@link resumeRun} (replay a completed run, resume a stopped one, or
   * refuse a changed pipeline). Costs one indexed read more than startRun, no extra commit.
   *
   * @example
   * ```ts
   * const r = tracker.beginRun({ runId, pipelineName: 'orders', input, structureHash });
   * if (r.outcome === 'completed') return r.run.output;
   * ```
   */
  beginRun(args: StartRunArgs): { outcome: 'started'; run: RunRecord } | Exclude<ResumeResult, { outcome: 'not-found' }> {
    const { runId, pipelineName } = args;
    if (typeof runId !== 'string' || runId.length === 0) throw invalidOption('beginRun: runId must be a non-empty string');
    if (typeof pipelineName !== 'string') throw invalidOption('beginRun: pipelineName must be a string');
    if (args.fresh === true) return { outcome: 'started', run: this.startNewRun(args) };
    if (this.unfoldedRunIds.has(runId)) this.flush();
    if (!this.runs.has(runId) && this.stmts.runExists.get(runId) === undefined) return { outcome: 'started', run: this.startNewRun(args) };
    const resumeArgs: ResumeRunArgs = { runId };
    if (args.structureHash !== undefined) resumeArgs.structureHash = args.structureHash;
    const r = this.resumeRun(resumeArgs);
    // Deleted between the read and the transaction: start it after all.
    return r.outcome === 'not-found' ? { outcome: 'started', run: this.startNewRun(args) } : r;
  }

  private startNewRun(args: StartRunArgs): RunRecord {
    const { runId, pipelineName } = args;
    const parent = args.parentStepId === undefined ? undefined : stepsById.get(args.parentStepId);
    const now = Date.now();
    const run: RunState = {
      tracker: this,
      runId,
      pipelineName,
      startedAt: isoAt(now),
      startedMs: now,
      structureHash: args.structureHash ?? null,
      nextOrder: 1,
      lastOrder: 0,
      inserted: false,
      hasCheckpoint: false,
      queued: false,
      finished: false,
      inputText: lenient(args.input),
      parentRunId: args.parentRunId ?? parent?.run.runId ?? null,
      parentStepOrder: parent ? parent.order : null,
      yamlPath: args.yamlPath ?? null,
      ...runningOutcome(),
      workerId: this.options.workerId ?? null,
      workerName: this.options.workerName ?? null,
    };
    this.runs.set(runId, run);
    this.queueRun(run);
    this.afterQueued();
    return this.recordOf(run, args.input);
  }

  /**
   * Looks up a run by id before running it. `not-found`: start it with {@link startRun}.
   * `completed`: return `run.output` without executing anything. Otherwise (a run that crashed, was
   * killed, failed or was cancelled) the run is reopened as `running` — steps left `running` by the
   * dead process become `interrupted`, `resumes` is incremented, a `resume` event is recorded — and
   * its latest checkpoint is returned to resume from. A run whose structure hash differs from
   * `structureHash` is refused with `WPIPE_ERR_RESUME_MISMATCH` and left untouched.
   *
   * @example
   * ```ts
   * const r = tracker.resumeRun({ runId: 'job-1', structureHash: hash });
   * if (r.outcome === 'resumed' && r.checkpoint) startAt = r.checkpoint.position;
   * ```
   */
  resumeRun(args: ResumeRunArgs): ResumeResult {
    const { runId } = args;
    if (typeof runId !== 'string' || runId.length === 0) throw invalidOption('resumeRun: runId must be a non-empty string');
    this.flush();
    if (this.runs.has(runId)) {
      throw new WpipeError('WPIPE_ERR_STORAGE', `resumeRun: run '${runId}' is in progress in this process`, { details: { runId } });
    }
    const db = this.db;
    const stmts = this.stmts;
    return db.transaction((): ResumeResult => {
      const row = stmts.getRun.get(runId) as Record<string, unknown> | undefined;
      if (!row) return { outcome: 'not-found' };
      const record = rowToRun(row);
      if (record.status === 'completed') return { outcome: 'completed', run: record };
      const cpRow = stmts.getCheckpoint.get(runId) as Record<string, unknown> | undefined;
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
      const now = new Date();
      const iso = now.toISOString();
      stmts.interruptSteps.run(iso, runId);
      stmts.reopenRun.run(process.pid, iso, runId);
      stmts.insertEvent.run(runId, null, 'resume', runId, `Run resumed after status '${record.status}'`,
        lenient({ previousStatus: record.status, previousError: record.error, checkpoint: cpRow ? { name: cpRow.name, position: cpRow.position } : null }),
        null, iso);
      const maxOrder = (stmts.maxOrder.get(runId) as { m: number | null }).m ?? 0;
      const run: RunState = {
        tracker: this,
        runId,
        pipelineName: record.pipelineName,
        startedAt: record.startedAt,
        startedMs: Date.parse(record.startedAt),
        structureHash: args.structureHash ?? record.structureHash,
        nextOrder: maxOrder + 1,
        lastOrder: maxOrder,
        inserted: true,
        hasCheckpoint: cpRow !== undefined,
        queued: false,
        finished: false,
        inputText: null,
        parentRunId: record.parentRunId,
        parentStepOrder: record.parentStepId,
        yamlPath: null,
        ...runningOutcome(),
        workerId: record.workerId,
        workerName: record.workerName,
      };
      this.runs.set(runId, run);
      const reopened = rowToRun(stmts.getRun.get(runId) as Record<string, unknown>);
      return { outcome: 'resumed', run: reopened, previousStatus: record.status, checkpoint: cpRow ? rowToCheckpoint(cpRow) : undefined };
    });
  }

  /**
   * Records the end of a run and commits everything queued (in both durabilities). A completed
   * run's checkpoint is dropped; an `error` or `cancelled` run keeps it for a resume.
   *
   * @example
   * ```ts
   * tracker.finishRun({ runId: 'r1', status: 'error', error: err, errorStep: 'load' });
   * ```
   */
  finishRun(args: FinishRunArgs): void {
    const run = this.requireRun(args.runId, 'finishRun');
    const status = args.status;
    if (status !== 'completed' && status !== 'error' && status !== 'cancelled') {
      throw invalidOption(`finishRun: status must be 'completed', 'error' or 'cancelled', got ${JSON.stringify(status)}`, 'RangeError');
    }
    const now = Date.now();
    run.status = status;
    run.completedAt = isoAt(now);
    run.durationMs = roundMs(args.durationMs ?? now - run.startedMs);
    if (args.output !== undefined) {
      const out = serializeBestEffort(args.output);
      run.outputText = out.text;
      run.outputExact = out.exact ? 1 : 0;
    }
    if (args.error !== undefined) {
      const e = errorParts(args.error);
      run.errorMessage = e.message;
      run.errorCode = e.code;
      run.errorData = e.data;
    } else if (status === 'error') {
      run.errorMessage = 'unknown error';
    }
    run.errorStep = args.errorStep ?? null;
    run.finished = true;
    this.queueRun(run);
    if (status === 'completed' && run.hasCheckpoint) this.queue.push({ op: Op.Write, write: [Code.DropCheckpoint, run.runId] });
    this.runs.delete(run.runId);
    this.unfoldedRunIds.add(run.runId);
    for (const step of [...run.openSteps]) {
      if (step.status !== 'running') {
        run.openSteps.delete(step);
        stepsById.delete(step.id);
      }
    }
    this.commitPoint(true);
  }

  // -------------------------------------------------------------------------------------------
  // Steps

  /**
   * Records a step as `running` and commits it together with everything queued before (the
   * previous step's completion and checkpoint), so this step's code runs only after they are
   * durable. Returns the step's handle.
   *
   * @example
   * ```ts
   * const id = tracker.startStep({ runId: 'r1', name: 'load', version: 'v1', kind: 'task', position: 0 });
   * ```
   */
  startStep(args: StartStepArgs): StepId {
    const run = this.requireRun(args.runId, 'startStep');
    if (typeof args.name !== 'string') throw invalidOption('startStep: name must be a string');
    const parent = args.parentStepId === undefined ? undefined : stepsById.get(args.parentStepId);
    const id = nextStepId++;
    const order = run.nextOrder++;
    const startedMs = Date.now();
    run.lastOrder = order;
    const step: StepState = {
      id,
      run,
      order,
      name: args.name,
      version: args.version ?? null,
      kind: args.kind ?? 'task',
      position: args.position ?? null,
      parentOrder: parent && parent.run === run ? parent.order : null,
      parallelGroup: args.parallelGroup ?? null,
      executor: args.executor ?? null,
      startedAt: isoAt(startedMs),
      startedMs,
      inputText: args.input === undefined ? null : lenient(args.input),
      status: 'running',
      attempts: 0,
      completedAt: null,
      durationMs: null,
      outputText: null,
      errorMessage: null,
      errorCode: null,
      errorTraceback: null,
      inserted: false,
      queued: false,
    };
    stepsById.set(id, step);
    run.openSteps.add(step);
    this.queueStep(step);
    this.commitPoint(false);
    return id;
  }

  /**
   * Records a step's end — `completed`, `error` (a failure is recorded as a failure, with its
   * message, code and stack), `skipped` or `cancelled` — queued for the next commit point.
   *
   * @example
   * ```ts
   * tracker.finishStep({ stepId: id, status: 'error', attempts: 3, durationMs: 12, error: err });
   * ```
   */
  finishStep(args: FinishStepArgs): void {
    const step = this.requireStep(args.stepId, 'finishStep');
    const status = args.status;
    if (status !== 'completed' && status !== 'error' && status !== 'skipped' && status !== 'cancelled') {
      throw invalidOption(`finishStep: status must be 'completed', 'error', 'skipped' or 'cancelled', got ${JSON.stringify(status)}`, 'RangeError');
    }
    step.status = status;
    step.attempts = args.attempts ?? (status === 'skipped' ? 0 : Math.max(1, step.attempts));
    const now = Date.now();
    step.completedAt = isoAt(now);
    step.durationMs = roundMs(args.durationMs ?? now - step.startedMs);
    if (args.output !== undefined) step.outputText = lenient(args.output);
    if (args.error !== undefined) {
      const e = errorParts(args.error);
      step.errorMessage = e.message;
      step.errorCode = e.code;
      step.errorTraceback = e.stack;
    } else if (status === 'error') {
      step.errorMessage = 'unknown error';
    }
    this.queueStep(step);
    const run = step.run;
    if (run.finished) {
      // A step outliving its run (Background): no boundary follows, commit it now.
      run.openSteps.delete(step);
      stepsById.delete(step.id);
      this.commitPoint(true);
    } else {
      this.afterQueued();
    }
  }

  /**
   * Finishes a step and saves a checkpoint; both land in the same commit (as any finishStep and
   * saveCheckpoint queued before the next commit point do — this method only says so by its name).
   *
   * @example
   * ```ts
   * tracker.finishStepWithCheckpoint(
   *   { stepId: id, status: 'completed', attempts: 1, durationMs: 2 },
   *   { runId: 'r1', name: 'loaded', position: 1, context: ctx },
   * );
   * ```
   */
  finishStepWithCheckpoint(step: FinishStepArgs, checkpoint: SaveCheckpointArgs): void {
    // Serialize first: an unsupported value must fail before the step's completion is queued.
    const params = this.checkpointParams(checkpoint);
    this.holdDepth++;
    try {
      this.finishStep(step);
      this.queue.push({ op: Op.Write, write: params });
    } finally {
      this.holdDepth--;
    }
    this.afterQueued();
  }

  /**
   * Records one attempt of a step (typically each failed attempt before a retry), queued.
   *
   * @example
   * ```ts
   * tracker.recordAttempt({ stepId: id, attempt: 1, status: 'timeout', durationMs: 5000, error: err });
   * ```
   */
  recordAttempt(args: RecordAttemptArgs): void {
    const step = this.requireStep(args.stepId, 'recordAttempt');
    step.attempts = Math.max(step.attempts, args.attempt);
    const e = args.error === undefined ? undefined : errorParts(args.error);
    this.queue.push({
      op: Op.Write,
      write: [Code.InsertAttempt, step.run.runId, step.order, args.attempt, args.status, (args.startedAt ?? new Date()).toISOString(),
        args.durationMs ?? null, e?.message ?? null, e?.code ?? null],
    });
    this.afterQueued();
  }

  // -------------------------------------------------------------------------------------------
  // Checkpoints

  /**
   * Saves the run's checkpoint (context and the position to resume at). The context is serialized
   * now, strictly; the row is committed with the step completion queued before it.
   *
   * @example
   * ```ts
   * tracker.saveCheckpoint({ runId: 'r1', name: 'loaded', position: 3, context: { rows: new Map() } });
   * ```
   */
  saveCheckpoint(args: SaveCheckpointArgs): void {
    const params = this.checkpointParams(args);
    this.queue.push({ op: Op.Write, write: params });
    this.afterQueued();
  }

  private checkpointParams(args: SaveCheckpointArgs): unknown[] {
    const run = this.requireRun(args.runId, 'saveCheckpoint');
    if (typeof args.name !== 'string') throw invalidOption('saveCheckpoint: name must be a string');
    if (!Number.isInteger(args.position) || args.position < 0) {
      throw invalidOption(`saveCheckpoint: position must be an integer ≥ 0, got ${String(args.position)}`, 'RangeError');
    }
    const text = serialize(args.context);
    run.hasCheckpoint = true;
    return [Code.UpsertCheckpoint, run.runId, args.name, args.position, run.lastOrder, args.structureHash ?? run.structureHash, text, isoNow()];
  }

  /**
   * The latest checkpoint of a run, decoded, or undefined. With `structureHash`, a checkpoint saved
   * by a differently structured pipeline throws `WPIPE_ERR_RESUME_MISMATCH`.
   *
   * @example
   * ```ts
   * const cp = tracker.loadLatestCheckpoint('r1');
   * if (cp) { ctx = cp.context; startAt = cp.position; }
   * ```
   */
  loadLatestCheckpoint(runId: string, options: { structureHash?: string } = {}): CheckpointRecord | undefined {
    this.flush();
    let row: Record<string, unknown> | undefined;
    try {
      row = this.stmts.getCheckpoint.get(runId) as Record<string, unknown> | undefined;
    } catch (error) {
      throw storageError(error, 'loadLatestCheckpoint', this.db.path);
    }
    if (!row) return undefined;
    const cp = rowToCheckpoint(row);
    if (options.structureHash !== undefined && cp.structureHash && cp.structureHash !== options.structureHash) {
      throw new WpipeError(
        'WPIPE_ERR_RESUME_MISMATCH',
        `checkpoint '${cp.name}' of run '${runId}' was saved by a pipeline with other steps (structure hash ${cp.structureHash}, now ${options.structureHash})`,
        { details: { runId, recordedHash: cp.structureHash, currentHash: options.structureHash } },
      );
    }
    return cp;
  }

  // -------------------------------------------------------------------------------------------
  // Events, alerts, metrics

  /**
   * Records an event (checkpoint reached, retry, warning …), queued.
   *
   * @example
   * ```ts
   * tracker.recordEvent({ runId: 'r1', type: 'checkpoint', name: 'loaded', message: 'Checkpoint reached: loaded' });
   * ```
   */
  recordEvent(args: RecordEventArgs): void {
    if (typeof args.type !== 'string' || typeof args.name !== 'string') throw invalidOption('recordEvent: type and name must be strings');
    const step = args.stepId === undefined ? undefined : stepsById.get(args.stepId);
    this.queue.push({
      op: Op.Write,
      write: [Code.InsertEvent, args.runId ?? step?.run.runId ?? null, step ? step.order : null, args.type, args.name, args.message ?? null,
        lenient(args.data), args.tags === undefined ? null : JSON.stringify(args.tags), isoNow()],
    });
    this.afterQueued();
  }

  /**
   * Records a fired alert, queued.
   *
   * @example
   * ```ts
   * tracker.recordAlert({ runId: 'r1', metric: 'step_duration_ms', value: 812, threshold: 500, severity: 'warning' });
   * ```
   */
  recordAlert(args: RecordAlertArgs): void {
    const step = args.stepId === undefined ? undefined : stepsById.get(args.stepId);
    this.queue.push({
      op: Op.Write,
      write: [Code.InsertAlert, args.configId ?? null, args.runId ?? step?.run.runId ?? null, step ? step.order : null, args.metric, args.value,
        args.threshold, args.severity, args.message ?? null, isoNow()],
    });
    this.afterQueued();
  }

  /**
   * Records one system metrics sample, queued.
   *
   * @example
   * ```ts
   * tracker.recordSystemMetrics({ runId: 'r1', cpuPercent: 12.5, rssMb: 80 });
   * ```
   */
  recordSystemMetrics(args: RecordSystemMetricsArgs): void {
    this.queue.push({
      op: Op.Write,
      write: [Code.InsertMetric, args.runId ?? null, args.cpuPercent ?? null, args.memoryPercent ?? null, args.memoryUsedMb ?? null,
        args.memoryAvailableMb ?? null, args.diskIoReadMb ?? null, args.diskIoWriteMb ?? null, args.rssMb ?? null,
        (args.recordedAt ?? new Date()).toISOString()],
    });
    this.afterQueued();
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  /**
   * A run as recorded (queued writes are committed first), or undefined.
   *
   * @example
   * ```ts
   * tracker.getRun('r1')?.status; // 'completed'
   * ```
   */
  getRun(runId: string): RunRecord | undefined {
    this.flush();
    const row = this.stmts.getRun.get(runId) as Record<string, unknown> | undefined;
    return row ? rowToRun(row) : undefined;
  }

  /**
   * The step rows of a run in step_order.
   *
   * @example
   * ```ts
   * tracker.getSteps('r1').map((s) => `${s.name}:${s.status}`);
   * ```
   */
  getSteps(runId: string): StepRecord[] {
    this.flush();
    return (this.stmts.getSteps.all(runId) as Record<string, unknown>[]).map(rowToStep);
  }

  /** The step_order of a step handle (what the database and the query API call a step). */
  stepOrder(stepId: StepId): number | undefined {
    return stepsById.get(stepId)?.order;
  }

  // -------------------------------------------------------------------------------------------
  // Commit control

  /**
   * Runs `fn` with commit points deferred, then commits everything it queued at once.
   *
   * @example
   * ```ts
   * tracker.transaction(() => { tracker.finishStep(a); tracker.startStep(b); tracker.startStep(c); });
   * ```
   */
  transaction<T>(fn: () => T): T {
    this.holdDepth++;
    let result: T;
    try {
      result = fn();
    } finally {
      this.holdDepth--;
    }
    if (this.holdDepth === 0) this.flush();
    return result;
  }

  /**
   * Commits every queued write now, in one transaction, with the journaled writes not yet folded.
   *
   * @example
   * ```ts
   * tracker.recordEvent({ type: 'note', name: 'deploy' }); tracker.flush();
   * ```
   */
  flush(): void {
    this.foldNow(true);
  }

  /**
   * {@link flush}. With `letThreadFold`, lines only the journal file holds are left to a live fold
   * thread (woken, and waited for at most {@link FOLD_WAIT_MS}): racing it for SQLite's write lock
   * cost busy waits that overshoot by milliseconds, then the same fold here.
   */
  private foldNow(letThreadFold: boolean): void {
    if (this.queue.length > 0) {
      const ops = this.resolveQueue();
      for (let i = 0; i < ops.length; i++) this.unfolded.push(ops[i]!);
    }
    if (this.unfolded.length === 0 && this.journaled.length === 0 && this.fileTo <= this.fileFrom) return;
    const thread = this.foldThread;
    if (letThreadFold && thread?.alive && this.journalHandle && this.fileTo > this.fileFrom) {
      thread.waitFolded(this.journalHandle.generation, this.fileTo, FOLD_WAIT_MS);
    }
    // A tracker with a journal stays registered: the exit hook removes its journal.
    if (!this.journalHandle) pendingTrackers.delete(this);
    // The auto-flush timer is left armed: clearing and re-arming one per step boundary costs more
    // than letting it fire once per autoFlushMs on an empty queue.
    const journal = this.journalHandle;
    const stmts = this.stmts;
    const db = this.db;
    let applied = 0;
    /** Inside the transaction: what is not in the database yet (the fold thread may have done part). */
    const pending = (): JournalOp[] => {
      const ops: JournalOp[] = [];
      const done = journal ? ((stmts.getJournalApplied.get(journal.name) as { applied: number } | undefined)?.applied ?? 0) : 0;
      // In offset order: lines kept in memory before a fold thread started, the lines only the file
      // holds, and lines kept in memory again (after the thread died).
      const { fileFrom, fileTo } = this;
      for (const line of this.journaled) if (line.end > done && line.end <= fileFrom) for (const op of line.ops) ops.push(op);
      const from = Math.max(done, fileFrom);
      if (journal && fileTo > from) {
        const file = path.join(journal.dir, journal.name);
        const contents = readJournal(file, from, fileTo);
        if (contents.end < fileTo) {
          throw new WpipeError('WPIPE_ERR_STORAGE', `the step journal ${file} cannot be read back: ${contents.stoppedAt ?? 'it ends early'}`);
        }
        for (const op of contents.ops) ops.push(op);
      }
      for (const line of this.journaled) if (line.end > done && line.end > fileTo) for (const op of line.ops) ops.push(op);
      for (const op of this.unfolded) ops.push(op);
      applied = ops.length;
      return ops;
    };
    const record = (): void => {
      if (journal) stmts.setJournalApplied.run(journal.name, journal.offset, isoNow());
    };
    try {
      try {
        db.transaction(() => {
          applyOps(stmts, pending());
          record();
        });
      } catch (error) {
        if (!isConstraint(error)) throw error;
        // A write that can never apply (e.g. a run id another process recorded meanwhile): commit
        // the others, one savepoint each, and report the ones dropped.
        let dropped = 0;
        db.transaction(() => {
          dropped = applyOpsEach(db, stmts, pending(), record);
        });
        this.afterFold(applied);
        const wrapped = storageError(error, 'commit of run history', db.path);
        wrapped.details.droppedWrites = dropped;
        throw wrapped;
      }
    } catch (error) {
      const wrapped = storageError(error, 'commit of run history', db.path);
      if (wrapped.details.droppedWrites !== undefined) throw wrapped;
      // Whatever the cause (a lock held too long, a full disk, a read-only file, a schema someone
      // changed), nothing the journal holds is dropped: its lines stay in its file, not in memory,
      // and the next fold reads them back from what SQLite has applied (if none succeeds, the next
      // open replays them). Writes in no journal wait in memory, up to the queue's bound.
      if (journal) {
        this.fileLines += this.journaledOps;
        this.journaled = [];
        this.journaledOps = 0;
        this.fileFrom = 0;
        this.fileTo = journal.offset;
      }
      if (this.unfolded.length >= MAX_QUEUE_RUN_MODE) {
        wrapped.details.droppedWrites = this.unfolded.length;
        this.unfolded = [];
      }
      pendingTrackers.add(this); // everything kept is folded by a later flush, or at exit
      throw wrapped;
    } finally {
      this.unfoldedRunIds.clear();
    }
    this.afterFold(applied);
  }

  /** After a fold committed: forget what it folded, and rotate a journal that grew too large. */
  private afterFold(applied: number): void {
    this.unfolded = [];
    this.journaled = [];
    this.journaledOps = 0;
    this.fileLines = 0;
    this.counters.folds++;
    this.counters.foldedWrites += applied;
    const journal = this.journalHandle;
    if (journal?.wantsRotation) {
      const retired = journal.rotate();
      this.foldThread?.setGeneration(journal.generation);
      this.foldThread?.publish(journal.generation, journal.offset);
      const stmts = this.stmts;
      this.db.runWithRetry(() => stmts.dropJournal.run(retired), 'dropping a folded journal');
    }
    if (journal) this.fileFrom = this.fileTo = journal.offset;
  }

  /** Drops journal lines the fold thread has committed. */
  private trimJournaled(): void {
    const thread = this.foldThread;
    const journal = this.journalHandle;
    if (!thread || !journal || this.journaled.length === 0) return;
    const folded = thread.foldedOffset(journal.generation);
    let n = 0;
    while (n < this.journaled.length && this.journaled[n]!.end <= folded) this.journaledOps -= this.journaled[n++]!.ops.length;
    if (n > 0) this.journaled.splice(0, n);
  }

  /** Turns the queue into resolved writes (insert or update decided now) and empties it. */
  private resolveQueue(): JournalOp[] {
    const queue = this.queue;
    this.queue = [];
    const ops: JournalOp[] = new Array(queue.length);
    for (let i = 0; i < queue.length; i++) ops[i] = resolveWrite(queue[i]!);
    return ops;
  }

  /**
   * A commit point (every boundary in `'step'` durability, the end of a run in `'run'`): the queue
   * becomes durable now — one journal line, or one SQLite commit when there is no journal (or it
   * failed).
   */
  private makeDurable(): void {
    const journal = this.journal;
    if (journal === undefined || journal.broken) {
      this.flush();
      return;
    }
    const ops = this.resolveQueue();
    if (ops.length === 0) return;
    try {
      journal.append(compactBoundary(ops));
    } catch (error) {
      // Not durable in the journal: commit to SQLite now, or fail the boundary.
      for (let i = 0; i < ops.length; i++) this.unfolded.push(ops[i]!);
      this.flush();
      this.reportQuietly(error);
      return;
    }
    const appends = ++this.counters.journalAppends;
    const thread = this.foldThread;
    if (thread?.alive) {
      // The fold thread reads these lines from the file: nothing is kept in memory.
      this.fileTo = journal.offset;
      this.fileLines++;
      thread.publish(journal.generation, journal.offset);
      if (journal.wantsRotation) {
        this.flush(); // folds the rest here, then starts a new file
        return;
      }
      if (journal.offset - Math.max(thread.foldedOffset(journal.generation), this.fileFrom) > this.maxFoldLag) {
        // The thread is far behind: wait for it to halve its lag (back-pressure). Folding here
        // instead would contend with it for SQLite's write lock; only a stuck thread makes us.
        this.counters.foldWaits++;
        if (!thread.waitFolded(journal.generation, journal.offset - this.maxFoldLag / 2, FOLD_WAIT_MS)) this.foldNow(false);
        return;
      }
      this.afterQueued();
      return;
    }
    this.journaled.push({ end: journal.offset, ops });
    this.journaledOps += ops.length;
    if (thread === undefined && appends >= this.foldThreadAfter) this.startFoldThread(journal);
    if ((appends & 63) === 0) this.trimJournaled();
    if (this.journaledOps >= MAX_QUEUE_RUN_MODE || journal.wantsRotation) {
      // No fold thread (or a dead one): fold here, which also bounds memory.
      this.trimJournaled();
      if (this.journaledOps >= MAX_QUEUE_RUN_MODE || journal.wantsRotation) this.flush();
      return;
    }
    this.afterQueued();
  }

  private startFoldThread(journal: Journal): void {
    const { busyTimeoutMs, busyDeadlineMs, walAutocheckpoint } = this.options;
    const openOptions: OpenDbOptions = {};
    if (busyTimeoutMs !== undefined) openOptions.busyTimeoutMs = busyTimeoutMs;
    if (busyDeadlineMs !== undefined) openOptions.busyDeadlineMs = busyDeadlineMs;
    // A caller who set walAutocheckpoint manages checkpoints: the fold's connection follows it, and
    // no checkpoint thread runs beside the fold.
    if (walAutocheckpoint !== undefined) openOptions.walAutocheckpoint = walAutocheckpoint;
    const checkpointMs = walAutocheckpoint === undefined ? CHECKPOINT_INTERVAL_MS : undefined;
    try {
      this.foldThread = new FoldThread(journal, this.db.path, Math.max(1, this.autoFlushMs), openOptions, (e) => this.reportQuietly(e), checkpointMs);
      this.foldThread.publish(journal.generation, journal.offset);
      this.fileFrom = this.fileTo = journal.offset; // lines from here on are read back from the file
      this.fileLines = 0;
    } catch (error) {
      this.foldThreadAfter = Infinity; // folds stay on this thread
      this.reportQuietly(error);
    }
  }

  private reportQuietly(error: unknown): void {
    const e = error instanceof WpipeError ? error : storageError(error, 'flush', String(this.target));
    if (this.options.onError) this.options.onError(e);
    else process.emitWarning(e.message, { code: e.code });
  }

  /** @internal Flush from a timer or process exit: errors go to `onError`, never thrown. */
  flushQuietly(): void {
    try {
      this.flush();
    } catch (error) {
      this.reportQuietly(error);
    }
  }

  /** The auto-flush timer: fold here, unless a live fold thread is doing it. */
  private onTimer(): void {
    if (this.foldThread?.alive && this.queue.length === 0 && this.unfolded.length === 0) {
      this.trimJournaled();
      // Look again later while anything is unfolded (the thread may die).
      if (this.journaled.length > 0 || this.fileLagBytes() > 0) this.afterQueued();
      return;
    }
    this.flushQuietly();
  }

  /** @internal At process exit: fold, and remove the journal once nothing in it is left unfolded. */
  exitQuietly(): void {
    // The thread must be out of SQLite before exit; stopped first, it neither holds up this last
    // fold (waited for, it may be stuck behind another process's lock) nor contends with it.
    this.stopFoldThread();
    this.flushQuietly();
    // Folded: the journal goes. Else it stays for the next open to replay.
    if (this.journalHandle && this.unfolded.length === 0 && this.journaled.length === 0 && this.fileTo <= this.fileFrom) this.closeJournal();
  }

  private stopFoldThread(): void {
    this.foldThread?.stop();
    this.foldThread = undefined;
  }

  /** Stops using the journal (and its fold thread) and returns it, for closing or releasing. */
  private detachJournal(): Journal | undefined {
    const journal = this.journalHandle;
    this.journalHandle = undefined;
    this.stopFoldThread();
    this.unregisterPending?.();
    this.unregisterPending = undefined;
    return journal;
  }

  /** Removes this tracker's journal (everything in it is folded) and its offset row. */
  private closeJournal(): void {
    const journal = this.detachJournal();
    if (!journal) return;
    if (this.queue.length === 0) pendingTrackers.delete(this);
    const name = journal.name;
    journal.close();
    try {
      const stmts = this.stmts;
      this.db.runWithRetry(() => stmts.dropJournal.run(name), 'dropping a folded journal');
    } catch (error) {
      // A stale offset row is harmless: journal names are never reused.
      this.reportQuietly(error);
    }
  }

  /**
   * Commits what is queued and gives the connection back (closing it when this tracker opened it
   * and nobody else uses it). Runs still in flight stay `running` in the database.
   *
   * @example
   * ```ts
   * tracker.close();
   * ```
   */
  close(): void {
    if (this.closed) return;
    try {
      if (this.dbHandle) {
        this.flush();
        this.closeJournal();
      }
    } finally {
      this.closed = true;
      // Still attached when the last fold failed: the journal's log stays for the next open to replay.
      this.detachJournal()?.release();
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      pendingTrackers.delete(this);
      for (const run of this.runs.values()) for (const step of run.openSteps) stepsById.delete(step.id);
      this.runs.clear();
      if (this.dbHandle && this.ownsDb) this.dbHandle.close();
      this.dbHandle = undefined;
      this.s = undefined;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Internals

  private requireRun(runId: string, where: string): RunState {
    const run = this.runs.get(runId);
    if (run === undefined) {
      throw new WpipeError('WPIPE_ERR_STORAGE', `${where}: run '${String(runId)}' is not in progress in this tracker (startRun or resumeRun it first)`, {
        details: { runId },
      });
    }
    return run;
  }

  private requireStep(stepId: StepId, where: string): StepState {
    const step = stepsById.get(stepId);
    if (step === undefined || step.run.tracker !== this) {
      throw new WpipeError('WPIPE_ERR_STORAGE', `${where}: unknown step id ${String(stepId)} (not started by this tracker, or its run is over)`, {
        details: { stepId },
      });
    }
    return step;
  }

  private queueRun(run: RunState): void {
    if (!run.queued) {
      run.queued = true;
      this.queue.push({ op: Op.Run, run });
    }
  }

  private queueStep(step: StepState): void {
    if (!step.queued) {
      step.queued = true;
      this.queue.push({ op: Op.Step, step });
    }
  }

  /** A call that precedes user code (startStep) or ends a run (finishRun). */
  private commitPoint(endOfRun: boolean): void {
    if (this.holdDepth > 0) return;
    if (this.durability === 'step') {
      this.makeDurable();
      return;
    }
    if (endOfRun) {
      this.makeDurable();
      return;
    }
    this.afterQueued();
  }

  /** A write was queued without a commit point: make sure it is committed eventually. */
  private afterQueued(): void {
    if (this.holdDepth > 0) return;
    pendingTrackers.add(this);
    installExitHook();
    if (this.durability === 'run') {
      if (this.queue.length >= MAX_QUEUE_RUN_MODE) this.flush();
      return;
    }
    if (this.unfolded.length >= MAX_QUEUE_RUN_MODE) {
      this.flush();
      return;
    }
    if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.onTimer();
      }, this.autoFlushMs);
      this.timer.unref();
    }
  }

  private recordOf(run: RunState, input: unknown): RunRecord {
    return {
      runId: run.runId,
      pipelineName: run.pipelineName,
      status: run.status,
      startedAt: run.startedAt,
      completedAt: run.completedAt,
      durationMs: run.durationMs,
      input,
      output: decode(run.outputText),
      outputExact: run.outputExact === 1,
      error: run.errorMessage === null ? null : { message: run.errorMessage, code: run.errorCode, detail: run.errorData },
      errorStep: run.errorStep,
      parentRunId: run.parentRunId,
      parentStepId: run.parentStepOrder,
      structureHash: run.structureHash,
      resumes: 0,
      workerId: this.options.workerId ?? null,
      workerName: this.options.workerName ?? null,
      pid: process.pid,
    };
  }
}

/** Decides how a queued write reaches the database (insert or update) and marks it written. */
function resolveWrite(w: QueuedWrite): JournalOp {
  switch (w.op) {
    case Op.Step: {
      const st = w.step;
      st.queued = false;
      if (st.inserted) {
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
        r.parentRunId, r.parentStepOrder, r.yamlPath, r.structureHash, process.pid, r.completedAt ?? r.startedAt];
    }
    case Op.Write:
      return w.write;
  }
}

/** Durations are kept to the microsecond: `0.021190000000046894` is 20 characters in every journal line. */
function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
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

function rowToCheckpoint(row: Record<string, unknown>): CheckpointRecord {
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
