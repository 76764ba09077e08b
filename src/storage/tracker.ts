/**
 * RunTracker: the run history and checkpoint writer the engine calls at each state change.
 *
 * ## Who runs a run id
 *
 * One owner per run id (docs/architecture.md "Durable state"): a run id the caller chose is claimed in SQLite
 * before its first step (src/storage/claim.ts), so a second start — another Pipeline object, another
 * process — never executes it twice: it waits for the owner (`busy`), replays a completed run's
 * result, or resumes a run whose owner failed or died. Generated run ids cannot collide and skip the
 * claim. A run id is recorded for one pipeline name: another pipeline reusing it is an error.
 *
 * ## When things are durable (durability `'step'`, the default)
 *
 * Writes that describe work already done — `finishStep`, `saveCheckpoint`, `recordAttempt`,
 * `recordEvent` … — are queued, and the queue is made durable at once by the next call that precedes
 * user code (`startStep`, its own row goes with it) and by `finishRun`. So a step boundary is one
 * durable write holding "step N completed (+ its checkpoint) and step N+1 running"; no user code runs
 * while a completion it follows is not durable, hence a `kill -9` loses at most the step in flight.
 *
 * For a database in a file a boundary is one line appended to this tracker's step journal
 * (src/storage/journal.ts: one `write(2)`, as durable against a killed process as a WAL commit with
 * `synchronous=NORMAL`, at a fraction of its cost). Journaled writes are folded into SQLite in one
 * transaction on this thread: within `autoFlushMs` (10 ms) by an unref'd timer while the event loop
 * runs, before any read through this tracker, before a claim of an id it holds writes for, when
 * 10,000 writes wait, at `close()` and at process exit.
 * Whoever reads through wpipe (a claim, a tracker's reads, the query layer, the exporter) first
 * catches the database up with every journal beside it — other trackers', other processes', dead
 * processes' — so a run that finished is seen at once even while its process is busy. Plain SQLite
 * readers see it within `autoFlushMs` while its process's event loop runs (a synchronous step that
 * blocks the loop delays it; the next wpipe reader or the next run start does not wait for that).
 * With `journal: false` (or an in-memory database) each boundary is its own SQLite commit instead.
 *
 * ## Durability `'fsync'` (power loss)
 *
 * As `'step'`, and every journal line is on stable storage (fdatasync) before the step after it
 * runs and before the run resolves. A run alone (and runSync) syncs inline; with several runs in
 * flight, boundaries share one fdatasync (group commit): the caller awaits
 * {@link RunTracker.takeSync}. The log is written ahead with zeros so a sync flushes the line, not
 * the file's size. Claims, journal rotation and close sync the WAL too.
 *
 * ## Durability `'run'` (opt-in, faster)
 *
 * Everything of a run is made durable once, at `finishRun`. What a `kill -9` can lose: the runs not
 * yet finished (a claimed run's row stays and becomes `interrupted`, resumable from its start).
 *
 * Checkpoints: `saveCheckpoint` serializes the context at once (strictly: an unsupported value
 * throws `WPIPE_ERR_CHECKPOINT_SERIALIZE` naming its key path, before anything is written) and the
 * row lands in the same durable write as the step completion queued before it. One checkpoint row
 * is kept per run (the latest); a run that completes drops it (its output is the recorded result).
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
 * tracker.saveCheckpoint({ runId: run.runId, name: 'loaded', resumeAt: 1, context: { orderId: 7, rows: 10 } });
 * tracker.finishRun({ runId: run.runId, status: 'completed', output: { orderId: 7, rows: 10 } });
 * tracker.close();
 * ```
 */
import type BetterSqlite3 from 'better-sqlite3';
import { WpipeError, checkOptions, invalidOption } from '../errors.js';
import { StorageDb, openDb, storageError, type OpenDbOptions } from './db.js';
import { foldJournals, hasOtherJournals, isFileDb, syncFile, type FoldReport, type FoldedJournal } from './journal.js';
import { Code, JOURNAL_SQL, WRITE_SQL, prepareWrites, type WriteStatements } from './ops.js';
import { serialize, serializeBestEffort } from './serialize.js';
import { Committer, type Durability } from './committer.js';
import {
  Op, errorParts, isoAt, isoNow, lenient, newStepId, resolveWrite, roundMs, runningOutcome, stepsById,
  type TrackedRun, type StepId, type TrackedStep,
} from './run-state.js';
import { CLAIM_SQL, claimRun, enterRun, inFlightRun, leaveRun } from './claim.js';
import { DEFAULT_MAX_VALUE_BYTES, capText, pruneHistory, redact, redactTest, type PruneOptions, type RedactOption } from './history-controls.js';
import { decode, rowToCheckpoint, rowToRun, rowToStep, type CheckpointRecord, type RunRecord, type RunStatus, type RecordedStepKind, type StepExecutor, type StepRecord, type StepStatus } from './records.js';

export { rowToRun, rowToStep };
export type { CheckpointRecord, RecordedError, RecordedStepKind, RunRecord, RunStatus, StepExecutor, StepRecord, StepStatus } from './records.js';

export type { Durability } from './committer.js';
export type { StepId } from './run-state.js';

/** Options of {@link RunTracker}. */
export interface RunTrackerOptions extends OpenDbOptions {
  /**
   * `'step'` (default): every boundary survives a killed process. `'fsync'`: every boundary is on
   * stable storage before the step after it runs (survives power loss; concurrent runs share one
   * fdatasync). `'run'`: a run is made durable once, at its end. See the module comment.
   */
  durability?: Durability;
  /** Recorded on each run row (reference `worker_id` / `worker_name`). */
  workerId?: string;
  workerName?: string;
  /** Upper bound, in ms, on how long a journaled write waits for its fold while the event loop runs (default 10). */
  autoFlushMs?: number;
  /**
   * Receives errors of background folds (timer, process exit) and reports about other journals
   * (lines skipped for a bad checksum, runs of dead processes marked interrupted). A failure that
   * repeats is reported once per streak. Default: a process warning.
   */
  onError?: (error: WpipeError) => void;
  /**
   * Make boundaries durable through the step journal (default true for a database in a file): a
   * boundary is one append to a journal file, folded into SQLite within `autoFlushMs`. `false`:
   * every boundary is its own SQLite commit (2–4× slower here, bench/storage.ts).
   */
  journal?: boolean;
  /** Size past which the journal file is replaced by a new one once everything in it is folded (default 64 MiB; at least 4096). */
  journalRotateBytes?: number;
  /**
   * Keys recorded as '[REDACTED]' in run inputs, outputs, step outputs and event data (names,
   * RegExps, or a function); see src/storage/history-controls.ts (checkpoints keep what resume needs).
   */
  redact?: RedactOption;
  /** Largest stored value in bytes of JSON (default 1 MiB); a longer one is stored as a truncation marker. */
  maxValueBytes?: number;
}

/** What a tracker did, for tests and benchmarks. */
export interface TrackerStats {
  /** Boundaries made durable by a journal append. */
  journalAppends: number;
  /** Transactions that moved journaled writes into SQLite. */
  folds: number;
  /** Writes moved into SQLite. */
  foldedWrites: number;
  /** fdatasync calls of durability 'fsync' (fewer than its boundaries when runs share them). */
  syncs: number;
  /** Claims of caller-chosen run ids (each one SQLite transaction). */
  claims: number;
  /** Journals of other owners with skipped lines or dropped writes, seen while catching up. */
  damagedJournals: FoldedJournal[];
  /** Runs of dead processes this tracker marked interrupted while catching up. */
  interruptedRuns: string[];
}

const TRACKER_OPTIONS = [
  'durability', 'workerId', 'workerName', 'autoFlushMs', 'onError', 'journal', 'journalRotateBytes', 'redact', 'maxValueBytes',
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
  /**
   * The handle (startStep's return, of any tracker of this thread) of the step that runs this nested
   * pipeline. The run's record gives that step's order as `parentStepId`.
   */
  parentStep?: StepId;
  yamlPath?: string;
  /**
   * `beginRun` only: the id was generated just now (the engine's time-ordered UUIDs), so it cannot
   * be recorded yet: no claim, its row is journaled with its first step.
   */
  fresh?: boolean;
  /** Epoch ms the run started at (default: now); the engine passes its own, read before the database opened. */
  startedAt?: number;
  /** `beginRun` only: the run is executed synchronously (runSync): durability 'fsync' syncs inline. */
  sync?: boolean;
  /** `beginRun` only: this start waited for another run of the id: that run's failure is answered `failed`, not resumed. */
  waited?: boolean;
}

/** Arguments of {@link RunTracker.startStep}. */
export interface StartStepArgs {
  runId: string;
  name: string;
  version?: string;
  kind?: RecordedStepKind;
  /** Index among the pipeline's top-level steps (what a resume counts); omit inside blocks. */
  position?: number;
  /** The handle (startStep's return) of the block or nested pipeline this step runs in; its record gives the parent's order as `parentStepId`. */
  parentStep?: StepId;
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
  /** Which worker ran the step ('thread 7', 'pid 1234'), for a step run by a worker executor. */
  worker?: string;
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
  /** The threshold crossed, when the alert is a plain threshold. */
  threshold: number | null;
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

/** Arguments of {@link RunTracker.recordResourceSummary}: what a run or a step used (collectSystemMetrics). */
export interface RecordResourceSummaryArgs {
  runId: string;
  /** The step it is about (a top-level step); omit for the whole run. */
  stepId?: StepId;
  avgCpuPercent: number;
  peakCpuPercent: number;
  endRssMb: number;
  peakRssMb: number;
  samples: number;
  durationMs: number;
  /** Which sampler measured it ('native' thread or the 'js' worker). */
  sampler: string;
  memoryPercent?: number;
  memoryUsedMb?: number;
  memoryAvailableMb?: number;
}

/** Arguments of {@link RunTracker.saveCheckpoint}. */
export interface SaveCheckpointArgs {
  runId: string;
  name: string;
  /**
   * The index of the top-level step a resume starts at (the next step to run): the engine's
   * boundary `position` (the step just finished, -1 before the first) plus one. Stored in the
   * checkpoints table's `position` column.
   */
  resumeAt: number;
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

/** What {@link RunTracker.resumeRun} found. */
export type ResumeResult =
  | { outcome: 'not-found' }
  /** Running under a live owner (another process, or another tracker of this thread): wait, then ask again. */
  | { outcome: 'busy'; run: RunRecord; wait: Promise<void> | undefined }
  /** (After a wait) the run this start waited for failed or was cancelled: its error is this start's outcome. */
  | { outcome: 'failed'; run: RunRecord }
  | { outcome: 'completed'; run: RunRecord }
  | { outcome: 'resumed'; run: RunRecord; previousStatus: RunStatus; checkpoint: CheckpointRecord | undefined };

const SQL = {
  ...WRITE_SQL,
  ...JOURNAL_SQL,
  ...CLAIM_SQL,
  getSteps: 'SELECT * FROM steps WHERE pipeline_id = ? ORDER BY step_order',
} as const;

type Stmts = { [K in keyof typeof SQL]: BetterSqlite3.Statement } & WriteStatements;


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
  /** The write queue, the journal and the folds. */
  private readonly c: Committer;
  private readonly counters: Pick<TrackerStats, 'claims' | 'damagedJournals' | 'interruptedRuns'> = { claims: 0, damagedJournals: [], interruptedRuns: [] };
  private readonly runs = new Map<string, TrackedRun>();
  private closed = false;
  private readonly ownsDb: boolean;
  private readonly redactKey: ((key: string, value: unknown, path: string) => boolean) | undefined;
  private readonly maxValueBytes: number;
  /** alerts_config ids by configuration (see alertConfigId). */
  private readonly alertConfigs = new Map<string, number>();

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
    if (durability !== 'step' && durability !== 'run' && durability !== 'fsync') {
      throw invalidOption(`RunTracker: durability must be 'step', 'fsync' or 'run', got ${JSON.stringify(durability)}`, 'RangeError');
    }
    const autoFlushMs = options.autoFlushMs ?? 10;
    if (typeof autoFlushMs !== 'number' || !(autoFlushMs >= 0)) {
      throw invalidOption(`RunTracker: autoFlushMs must be a number ≥ 0, got ${String(autoFlushMs)}`, 'RangeError');
    }
    if (options.journal !== undefined && typeof options.journal !== 'boolean') {
      throw invalidOption(`RunTracker: journal must be a boolean, got ${typeof options.journal}`);
    }
    if (durability === 'fsync' && options.journal === false) {
      throw invalidOption("RunTracker: durability 'fsync' needs the step journal (journal: false was given)");
    }
    const rotate = options.journalRotateBytes;
    if (rotate !== undefined && (typeof rotate !== 'number' || !(rotate >= 4096))) {
      throw invalidOption(`RunTracker: journalRotateBytes must be a number ≥ 4096, got ${String(rotate)}`, 'RangeError');
    }
    this.durability = durability;
    this.target = db;
    this.options = options;
    this.ownsDb = typeof db === 'string';
    this.redactKey = redactTest('RunTracker', options.redact);
    const maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    if (typeof maxValueBytes !== 'number' || !(maxValueBytes >= 256)) {
      throw invalidOption(`RunTracker: maxValueBytes must be a number ≥ 256, got ${String(maxValueBytes)}`, 'RangeError');
    }
    this.maxValueBytes = maxValueBytes;
    this.c = new Committer(this, { durability, autoFlushMs, journal: options.journal !== false, rotateBytes: rotate }, () => this.exitQuietly());
  }

  /** The connection, opened on first use (and caught up with the journals beside it). */
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
    if (isFileDb(db.path)) {
      // Journals of dead processes first: their runs must be complete (or marked interrupted)
      // before anything reads them. A failure here is reported, not fatal: the next catch-up retries.
      try {
        this.catchUp();
      } catch (error) {
        this.report(storageError(error, 'replaying step journals', db.path));
      }
    }
    return db;
  }

  /**
   * Folds every other journal of the database into it (live owners' lines, dead owners' whole
   * logs), in one transaction, and reports what was damaged.
   */
  private catchUp(): void {
    const db = this.db;
    let report: FoldReport | undefined;
    try {
      db.transaction(() => {
        report = foldJournals(db, this.stmts, this.c.openOwner);
      });
    } catch (error) {
      report?.abandon();
      throw error;
    }
    report?.afterCommit();
    if (report) this.noteCaughtUp(report);
  }

  private noteCaughtUp(report: FoldReport): void {
    for (const id of report.interrupted) this.counters.interruptedRuns.push(id);
    for (const j of report.journals) {
      this.counters.damagedJournals.push(j);
      if (j.error !== undefined) {
        this.report(new WpipeError('WPIPE_ERR_STORAGE', `step journal ${j.name} of ${this.db.path} cannot be applied (left in place): ${j.error}`, {
          details: { file: this.db.path, journal: j.name },
        }));
        continue;
      }
      const lost = j.skipped.length > 0
        ? `${j.skipped.length} line(s) failed their checksum and were skipped (${j.skipped.map((l) => `byte ${l.at}: ${l.reason}`).join('; ')})`
        : `${j.dropped} write(s) broke a constraint and were skipped`;
      const runs = j.affectedRuns.length > 0 ? `; runs affected: ${j.affectedRuns.join(', ')}` : '';
      const kept = j.quarantined ? `; the log is kept as ${j.quarantined}` : '';
      this.report(new WpipeError('WPIPE_ERR_JOURNAL_CORRUPT', `step journal ${j.name} of ${this.db.path}: ${lost}; the lines after them were applied${runs}${kept}`, {
        details: { file: this.db.path, journal: j.name, skippedLines: j.skipped.length, droppedWrites: j.dropped, affectedRuns: j.affectedRuns, quarantined: j.quarantined },
      }));
    }
  }

  /** Counters of journal appends, folds, syncs, claims and what catching up found. */
  get stats(): Readonly<TrackerStats> {
    return { ...this.c.counters, syncs: this.c.syncs, ...this.counters };
  }

  /** @internal The prepared statements (the committer uses them). */
  get stmts(): Stmts {
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
    return this.c.pendingWrites;
  }

  /** Number of writes durable in the step journal (or waiting in memory) and not yet folded into SQLite. */
  get unfoldedWrites(): number {
    return this.c.unfoldedWrites;
  }

  // -------------------------------------------------------------------------------------------
  // Runs

  /**
   * Records a new run as `running`. Throws `WPIPE_ERR_STORAGE` if the id is already recorded (use
   * {@link beginRun} or {@link resumeRun} for that).
   *
   * @example
   * ```ts
   * tracker.startRun({ runId: 'r1', pipelineName: 'orders', input: { id: 1 }, structureHash: 'abc' });
   * ```
   */
  startRun(args: StartRunArgs): RunRecord {
    const r = this.beginRun(args);
    if (r.outcome !== 'started') {
      throw new WpipeError('WPIPE_ERR_STORAGE', `startRun: run '${args.runId}' is already recorded in ${this.db.path} (${r.run.status}); resume it with resumeRun() (or beginRun()) or use a new runId`, {
        details: { runId: args.runId, file: this.db.path },
      });
    }
    return r.run;
  }

  /**
   * What the engine calls at the start of every run. A generated id (`fresh`) starts at once (its
   * row is journaled with its first step). A chosen id is claimed (src/storage/claim.ts): `started`,
   * `completed` (return `run.output`, execute nothing), `resumed` (from `checkpoint`, if any), or
   * `busy` (a live owner runs it: await `wait`, then ask again). Throws `WPIPE_ERR_RUN_ID_CONFLICT`
   * for an id recorded for another pipeline and `WPIPE_ERR_RESUME_MISMATCH` for changed steps.
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
    this.c.retryFailedFold();
    if (args.fresh === true) {
      if (isFileDb(this.db.path)) void this.c.journal; // its owner lock names the run's owner
      const run = this.newTrackedRun(args);
      this.c.queueRun(run);
      this.c.afterQueued();
      return { outcome: 'started', run: this.recordOf(run, args.input) };
    }
    return this.claim(args, true) as { outcome: 'started'; run: RunRecord } | Exclude<ResumeResult, { outcome: 'not-found' }>;
  }

  /**
   * Looks up a run by id before running it, claiming it when it can run here: `not-found`;
   * `completed` (return `run.output` without executing anything); `busy` (running under a live
   * owner); else (a run that failed, was cancelled, or whose process died) it is reopened as
   * `running` under this tracker — steps left `running` become `interrupted`, `resumes` is
   * incremented, a `resume` event is recorded — and its latest checkpoint is returned. A run whose
   * structure hash differs from `structureHash` is refused with `WPIPE_ERR_RESUME_MISMATCH`.
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
    return this.claim({ runId, pipelineName: undefined as unknown as string, ...(args.structureHash === undefined ? {} : { structureHash: args.structureHash }) }, false) as ResumeResult;
  }

  /** The claim of a chosen run id (src/storage/claim.ts), with this thread's in-flight runs first. */
  private claim(args: StartRunArgs, start: boolean): { outcome: 'started'; run: RunRecord } | ResumeResult {
    const { runId } = args;
    const db = this.db;
    const waiting = inFlightRun(db.path, runId);
    if (waiting !== undefined) {
      const here = this.runs.get(runId);
      return { outcome: 'busy', run: here ? this.recordOf(here, undefined) : ({ runId, status: 'running' } as RunRecord), wait: waiting };
    }
    // What this tracker holds about this id goes in first (the claim reads the database); other
    // runs' writes stay batched for the next fold.
    if (this.c.touched(runId)) this.flush();
    const journal = this.c.journal;
    const run = start ? this.newTrackedRun(args) : undefined;
    const insert = run === undefined ? undefined : (resolveWrite({ op: Op.Run, run }, journal?.owner ?? null).slice(1));
    let result;
    try {
      result = claimRun(db, this.stmts, {
        runId, pipelineName: start ? args.pipelineName : undefined, structureHash: args.structureHash, owner: journal?.owner ?? null, insert,
        resumeFailed: args.waited !== true,
      });
    } catch (error) {
      if (run !== undefined) this.runs.delete(runId);
      throw storageError(error, 'claiming a run id', db.path);
    }
    this.counters.claims++;
    if (result.report) this.noteCaughtUp(result.report);
    const claim = result.claim;
    if (this.durability === 'fsync') syncFile(`${db.path}-wal`); // the claim must survive power loss too
    switch (claim.outcome) {
      case 'started':
        run!.claimed = true;
        enterRun(db.path, runId);
        return { outcome: 'started', run: this.recordOf(run!, args.input) };
      case 'not-found':
        return { outcome: 'not-found' };
      case 'completed':
      case 'failed':
      case 'busy':
        if (run !== undefined) this.runs.delete(runId);
        return claim.outcome === 'busy' ? { outcome: 'busy', run: claim.run, wait: undefined } : { outcome: claim.outcome, run: claim.run };
      case 'resumed': {
        const record = claim.run;
        const resumed: TrackedRun = {
          ...(run ?? this.newTrackedRun({ runId, pipelineName: record.pipelineName })),
          startedAt: record.startedAt,
          startedMs: Date.parse(record.startedAt),
          structureHash: args.structureHash ?? record.structureHash,
          nextOrder: claim.maxOrder + 1,
          lastOrder: claim.maxOrder,
          inserted: true,
          hasCheckpoint: claim.checkpoint !== undefined,
          claimed: true,
          inputText: null,
          parentRunId: record.parentRunId,
          parentStepOrder: record.parentStepId,
          workerId: record.workerId,
          workerName: record.workerName,
        };
        resumed.openSteps = new Set();
        this.runs.set(runId, resumed);
        enterRun(db.path, runId);
        return { outcome: 'resumed', run: record, previousStatus: claim.previousStatus, checkpoint: claim.checkpoint };
      }
    }
  }

  private newTrackedRun(args: StartRunArgs): TrackedRun {
    const { runId, pipelineName } = args;
    const parent = args.parentStep === undefined ? undefined : stepsById.get(args.parentStep);
    // When the run started (the engine's clock, read before the database opened), else now.
    const now = args.startedAt ?? Date.now();
    const run: TrackedRun = {
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
      claimed: false,
      sync: args.sync === true,
      inputText: this.recordText(args.input),
      parentRunId: args.parentRunId ?? parent?.run.runId ?? null,
      parentStepOrder: parent ? parent.order : null,
      yamlPath: args.yamlPath ?? null,
      ...runningOutcome(),
      workerId: this.options.workerId ?? null,
      workerName: this.options.workerName ?? null,
    };
    this.runs.set(runId, run);
    return run;
  }

  /**
   * Records the end of a run and makes it durable (in every durability). A completed run's
   * checkpoint is dropped; an `error` or `cancelled` run keeps it for a resume. With durability
   * 'fsync' in an async run, {@link takeSync} then returns the sync to await.
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
      const out = serializeBestEffort(this.redactKey ? redact(args.output, this.redactKey) : args.output, { maxBytes: this.maxValueBytes });
      const capped = capText(out.text, this.maxValueBytes);
      run.outputText = capped.text;
      run.outputExact = out.exact && capped.exact && this.redactKey === undefined ? 1 : 0;
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
    this.c.queueRun(run);
    if (status === 'completed' && run.hasCheckpoint) this.c.push([Code.DropCheckpoint, run.runId]);
    this.runs.delete(run.runId);
    for (const step of [...run.openSteps]) {
      if (step.status !== 'running') {
        run.openSteps.delete(step);
        stepsById.delete(step.id);
      }
    }
    try {
      this.c.commitPoint(true, run);
    } finally {
      if (run.claimed) leaveRun(this.db.path, run.runId);
    }
  }

  /**
   * Durability 'fsync' in an async run: the group commit the last boundary (startStep, finishRun)
   * waits for, once; the caller awaits it before user code runs (or before the run resolves).
   */
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
    const parent = args.parentStep === undefined ? undefined : stepsById.get(args.parentStep);
    const id = newStepId();
    const order = run.nextOrder++;
    const startedMs = Date.now();
    run.lastOrder = order;
    const step: TrackedStep = {
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
      worker: null,
      startedAt: isoAt(startedMs),
      startedMs,
      inputText: this.recordText(args.input),
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
    this.c.queueStep(step);
    this.c.commitPoint(false, run);
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
    if (args.output !== undefined) step.outputText = this.recordText(args.output);
    if (args.worker !== undefined) step.worker = String(args.worker);
    if (args.error !== undefined) {
      const e = errorParts(args.error);
      step.errorMessage = e.message;
      step.errorCode = e.code;
      step.errorTraceback = e.stack;
    } else if (status === 'error') {
      step.errorMessage = 'unknown error';
    }
    this.c.queueStep(step);
    const run = step.run;
    if (run.finished) {
      // A step outliving its run (Background): no boundary follows, commit it now.
      run.openSteps.delete(step);
      stepsById.delete(step.id);
      this.c.commitPoint(true, undefined);
    } else {
      this.c.afterQueued();
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
   *   { runId: 'r1', name: 'loaded', resumeAt: 1, context: ctx },
   * );
   * ```
   */
  finishStepWithCheckpoint(step: FinishStepArgs, checkpoint: SaveCheckpointArgs): void {
    // Serialize first: an unsupported value must fail before the step's completion is queued.
    const params = this.checkpointParams(checkpoint);
    this.c.holdDepth++;
    try {
      this.finishStep(step);
      this.c.push(params);
    } finally {
      this.c.holdDepth--;
    }
    this.c.afterQueued();
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
    this.c.push([Code.InsertAttempt, step.run.runId, step.order, args.attempt, args.status, (args.startedAt ?? new Date()).toISOString(),
        args.durationMs ?? null, e?.message ?? null, e?.code ?? null]);
    this.c.afterQueued();
  }

  // -------------------------------------------------------------------------------------------
  // Checkpoints

  /**
   * Saves the run's checkpoint (context and the position to resume at). The context is serialized
   * now, strictly; the row is committed with the step completion queued before it.
   *
   * @example
   * ```ts
   * tracker.saveCheckpoint({ runId: 'r1', name: 'loaded', resumeAt: 3, context: { rows: new Map() } });
   * ```
   */
  saveCheckpoint(args: SaveCheckpointArgs): void {
    const params = this.checkpointParams(args);
    this.c.push(params);
    this.c.afterQueued();
  }

  private checkpointParams(args: SaveCheckpointArgs): unknown[] {
    const run = this.requireRun(args.runId, 'saveCheckpoint');
    if (typeof args.name !== 'string') throw invalidOption('saveCheckpoint: name must be a string');
    if (!Number.isInteger(args.resumeAt) || args.resumeAt < 0) {
      throw invalidOption(`saveCheckpoint: resumeAt must be an integer ≥ 0, got ${String(args.resumeAt)}`, 'RangeError');
    }
    const text = serialize(args.context);
    run.hasCheckpoint = true;
    return [Code.UpsertCheckpoint, run.runId, args.name, args.resumeAt, run.lastOrder, args.structureHash ?? run.structureHash, text, isoNow()];
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
    this.readable();
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
    this.c.push([Code.InsertEvent, args.runId ?? step?.run.runId ?? null, step ? step.order : null, args.type, args.name, args.message ?? null,
        this.recordText(args.data), args.tags === undefined ? null : JSON.stringify(args.tags), isoNow()]);
    this.c.afterQueued();
  }

  /**
   * Records a fired alert, queued.
   *
   * @example
   * ```ts
   * tracker.recordAlert({ runId: 'r1', metric: 'step_duration_ms', value: 812, threshold: 500, severity: 'warning' });
   * ```
   */
  /**
   * The id of the alert configuration named `name` in `alerts_config`, created or updated to these
   * values (one transaction, once per name and values in this tracker's life).
   *
   * @example
   * ```ts
   * const id = tracker.alertConfigId({ name: 'slow', metric: 'duration_ms', condition: '>', value: 5000, severity: 'critical' });
   * ```
   */
  alertConfigId(config: { name: string; metric: string; condition: string; value: number; severity: string; message?: string }): number {
    const key = JSON.stringify(config);
    const known = this.alertConfigs.get(key);
    if (known !== undefined) return known;
    const db = this.db;
    const id = db.transaction(() => {
      db.prepare(`INSERT INTO alerts_config (name, metric, condition, value, severity, message) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (name) DO UPDATE SET metric = excluded.metric, condition = excluded.condition, value = excluded.value,
          severity = excluded.severity, message = excluded.message`).run(config.name, config.metric, config.condition, config.value, config.severity, config.message ?? null);
      return (db.prepare('SELECT id FROM alerts_config WHERE name = ?').get(config.name) as { id: number }).id;
    });
    this.alertConfigs.set(key, id);
    return id;
  }

  recordAlert(args: RecordAlertArgs): void {
    const step = args.stepId === undefined ? undefined : stepsById.get(args.stepId);
    this.c.push([Code.InsertAlert, args.configId ?? null, args.runId ?? step?.run.runId ?? null, step ? step.order : null, args.metric, args.value,
        args.threshold, args.severity, args.message ?? null, isoNow()]);
    this.c.afterQueued();
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
    this.c.push([Code.InsertMetric, args.runId ?? null, args.cpuPercent ?? null, args.memoryPercent ?? null, args.memoryUsedMb ?? null,
        args.memoryAvailableMb ?? null, args.diskIoReadMb ?? null, args.diskIoWriteMb ?? null, args.rssMb ?? null,
        (args.recordedAt ?? new Date()).toISOString()]);
    this.c.afterQueued();
  }

  /**
   * Records what a run or one of its steps used (a `system_metrics` row with `scope` 'run' or 'step'),
   * queued.
   *
   * @example
   * ```ts
   * tracker.recordResourceSummary({ runId: 'r1', avgCpuPercent: 40, peakCpuPercent: 98, endRssMb: 80, peakRssMb: 310, samples: 12, durationMs: 1200, sampler: 'native' });
   * ```
   */
  recordResourceSummary(args: RecordResourceSummaryArgs): void {
    const step = args.stepId === undefined ? undefined : stepsById.get(args.stepId);
    this.c.push([Code.InsertMetricSummary, args.runId, step ? 'step' : 'run', step ? step.order : null, args.avgCpuPercent, args.peakCpuPercent,
      args.endRssMb, args.peakRssMb, args.memoryPercent ?? null, args.memoryUsedMb ?? null, args.memoryAvailableMb ?? null, args.samples,
      roundMs(args.durationMs), args.sampler, isoNow()]);
    this.c.afterQueued();
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
    this.readable();
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
    this.readable();
    return (this.stmts.getSteps.all(runId) as Record<string, unknown>[]).map(rowToStep);
  }

  /**
   * Deletes old runs and everything recorded about them (see pruneHistory in
   * src/storage/history-controls.ts); returns how many runs went.
   *
   * @example
   * ```ts
   * tracker.prune({ olderThanDays: 30, keepLast: 100 });
   * ```
   */
  prune(options: PruneOptions): number {
    this.readable();
    return pruneHistory(this.db, options);
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
    this.c.holdDepth++;
    let result: T;
    try {
      result = fn();
    } finally {
      this.c.holdDepth--;
    }
    if (this.c.holdDepth === 0) this.flush();
    return result;
  }

  /**
   * Commits every queued and journaled write now, in one transaction. Throws `WPIPE_ERR_STORAGE`
   * when it cannot: nothing is dropped (journaled lines stay in the journal file, the rest in
   * memory) and the next fold tries again.
   *
   * @example
   * ```ts
   * tracker.recordEvent({ type: 'note', name: 'deploy' }); tracker.flush();
   * ```
   */
  flush(): void {
    this.c.flush();
  }

  /**
   * Durability 'fsync' in an async run: the group commit the last boundary (startStep, finishRun)
   * waits for, once; the caller awaits it before user code runs (or before the run resolves).
   */
  takeSync(): Promise<void> | undefined {
    return this.c.takeSync();
  }

  /** Before a read: fold what this tracker holds, then catch up every other journal of the database. */
  private readable(): void {
    this.flush();
    const db = this.db;
    db.syncPending(); // this thread's other trackers
    if (!isFileDb(db.path) || !hasOtherJournals(db.path)) return;
    try {
      this.catchUp();
    } catch (error) {
      // What SQLite has is still worth reading (a read-only file, a lock held too long): say why it may be behind.
      this.report(storageError(error, 'folding other step journals before a read', db.path));
    }
  }

  /** A value as the history records it: redacted, leniently serialized, capped (null for undefined). */
  private recordText(value: unknown): string | null {
    if (value === undefined) return null;
    const text = serialize(this.redactKey ? redact(value, this.redactKey) : value, { mode: 'lenient', maxBytes: this.maxValueBytes });
    return capText(text, this.maxValueBytes).text;
  }

  /**
   * Whether `input` is what `run` recorded as its input (compared as the history records inputs:
   * redacted and capped alike). A replayed or resumed run ignores the input given now.
   *
   * @example
   * ```ts
   * if (!tracker.inputMatches(r.run, input)) console.warn('this input is ignored');
   * ```
   */
  inputMatches(run: RunRecord, input: unknown): boolean {
    return this.recordText(run.input ?? {}) === this.recordText(input ?? {});
  }

  /** @internal Runs in flight in this tracker (the committer's group commit asks). */
  runsInFlight(): number {
    return this.runs.size;
  }

  /** @internal Reports an error that must not be thrown (to `onError`, else as a process warning). */
  report(error: unknown): void {
    const e = error instanceof WpipeError ? error : storageError(error, 'flush', String(this.target));
    if (this.options.onError) this.options.onError(e);
    else process.emitWarning(e.message, { code: e.code });
  }

  /**
   * @internal At process exit (`process.exit()` in a step, an uncaught exception): runs still in
   * flight can never finish here, so they are recorded as `interrupted`; then fold, and remove the
   * journal once nothing in it is left unfolded.
   */
  exitQuietly(): void {
    this.interruptOpenRuns();
    this.c.flushQuietly();
    if (this.c.folded) this.c.closeJournal();
  }

  /** Queues the runs still open as `interrupted` (they cannot finish: exit, or close()). */
  private interruptOpenRuns(): void {
    if (this.runs.size === 0 || !this.dbHandle) return;
    const iso = isoNow();
    for (const run of this.runs.values()) {
      for (const step of run.openSteps) {
        if (step.status === 'running') {
          step.status = 'interrupted';
          step.completedAt = iso;
          step.errorMessage = 'interrupted: the run was still in flight when its tracker closed or its process exited';
          this.c.queueStep(step);
        }
      }
      run.status = 'interrupted';
      this.c.queueRun(run);
      if (run.claimed) leaveRun(this.dbHandle.path, run.runId);
    }
  }

  /**
   * Commits what is queued and gives the connection back (closing it when this tracker opened it
   * and nobody else uses it). Runs still in flight are recorded as `interrupted` (resumable).
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
        this.interruptOpenRuns();
        this.flush();
        this.c.closeJournal();
      }
    } finally {
      this.closed = true;
      this.c.dispose();
      for (const run of this.runs.values()) for (const step of run.openSteps) stepsById.delete(step.id);
      this.runs.clear();
      if (this.dbHandle && this.ownsDb) this.dbHandle.close();
      this.dbHandle = undefined;
      this.s = undefined;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Internals

  private requireRun(runId: string, where: string): TrackedRun {
    const run = this.runs.get(runId);
    if (run === undefined) {
      throw new WpipeError('WPIPE_ERR_STORAGE', `${where}: run '${String(runId)}' is not in progress in this tracker (startRun or resumeRun it first)`, {
        details: { runId },
      });
    }
    return run;
  }

  private requireStep(stepId: StepId, where: string): TrackedStep {
    const step = stepsById.get(stepId);
    if (step === undefined || step.run.tracker !== this) {
      throw new WpipeError('WPIPE_ERR_STORAGE', `${where}: unknown step id ${String(stepId)} (not started by this tracker, or its run is over)`, {
        details: { stepId },
      });
    }
    return step;
  }

  private recordOf(run: TrackedRun, input: unknown): RunRecord {
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
      owner: this.c.openOwner ?? null,
    };
  }
}

