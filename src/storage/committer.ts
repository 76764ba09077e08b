/**
 * The committer of a tracker: when its queued writes become durable and how they reach SQLite.
 *
 * - A commit point (every boundary in durability 'step' and 'fsync', the end of a run in 'run')
 *   turns the queue into ONE journal line (src/storage/journal.ts) — plus its fdatasync in 'fsync',
 *   inline for a synchronous run, shared with concurrent runs (group commit) otherwise — or into one
 *   SQLite commit when there is no journal or it broke.
 * - A fold moves what the journal holds (kept in memory too) into SQLite in one transaction with the
 *   journal's applied offset: within `autoFlushMs` by an unref'd timer, when 10,000 writes wait,
 *   before the tracker reads or claims, at close and at process exit.
 * - A fold that fails keeps everything (the journal file has it) and is remembered: the tracker's
 *   next run start retries it and fails loudly while it cannot ({@link Committer.retryFailedFold}).
 *
 * @example
 * ```ts
 * const c = new Committer(host, { durability: 'step', autoFlushMs: 10, journal: true }, () => tracker.exitQuietly());
 * c.queueStep(step); c.commitPoint(false, run); // durable before the step's code runs
 * ```
 */
import { WpipeError } from '../errors.js';
import { storageError, type StorageDb } from './db.js';
import { Journal, applyEach, isFileDb, syncFile, type JournalOp } from './journal.js';
import { compactBoundary, type JOURNAL_SQL, type WriteStatements } from './ops.js';
import { Op, isoNow, resolveWrite, type QueuedWrite, type TrackedRun, type TrackedStep } from './run-state.js';
import type BetterSqlite3 from 'better-sqlite3';

/** Queued or journaled writes after which a fold runs at once (bounds memory; 'run' durability too). */
const MAX_QUEUE = 10_000;

/** When queued writes become durable; see src/storage/tracker.ts. */
export type Durability = 'step' | 'run' | 'fsync';

/** What the committer needs from its tracker. */
export interface CommitterHost {
  /** The connection (opened on first use). */
  readonly db: StorageDb;
  readonly stmts: WriteStatements & { [K in keyof typeof JOURNAL_SQL]: BetterSqlite3.Statement };
  /** Reports an error that must not be thrown (a background fold, a journal that broke). */
  report(error: unknown): void;
  /** Runs in flight in this tracker (group commit pays only when several are). */
  runsInFlight(): number;
}

/** Options of a {@link Committer}. */
export interface CommitterOptions {
  durability: Durability;
  autoFlushMs: number;
  /** Whether boundaries go to a journal (a database in a file only). */
  journal: boolean;
  rotateBytes?: number | undefined;
}

/** Committers with writes or a journal, folded (and their runs interrupted) at process exit. */
const atExit = new Map<Committer, () => void>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const onExit of [...atExit.values()]) onExit();
  });
}

/** The write queue, journal and folds of one tracker (see the module comment). */
export class Committer {
  /** Boundaries appended, folds made, writes folded. */
  readonly counters = { journalAppends: 0, folds: 0, foldedWrites: 0 };
  /** Commit points are deferred while above 0 (RunTracker.transaction). */
  holdDepth = 0;
  /** The last fold failed with this (reported once; the next run start must fold first, or fail). */
  foldError: WpipeError | undefined;
  private queue: QueuedWrite[] = [];
  /** Resolved writes in no journal and not in SQLite yet (a flush resolved them, or an append failed). */
  private unfolded: JournalOp[] = [];
  /** Journal lines not folded yet: their writes, and the journal offset at their end. */
  private journaled: { end: number; ops: JournalOp[] }[] = [];
  private journaledOps = 0;
  private journalHandle: Journal | undefined;
  private unregisterPending: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** A group commit (durability 'fsync') the caller of the last boundary must await. */
  private pendingSync: Promise<void> | undefined;
  private syncsOfClosed = 0;
  /** Runs whose rows have writes not yet in SQLite (a claim of one of these folds first). */
  private readonly unfoldedRuns = new Set<string>();

  constructor(private readonly host: CommitterHost, private readonly o: CommitterOptions, private readonly onExit: () => void) {}

  /** The journal (and owner lock), created at first use; undefined for a database in memory. */
  get journal(): Journal | undefined {
    if (this.journalHandle) return this.journalHandle;
    const db = this.host.db;
    if (!isFileDb(db.path)) return undefined;
    this.journalHandle = new Journal(db.path, { preallocate: this.o.durability === 'fsync', ...(this.o.rotateBytes === undefined ? {} : { rotateBytes: this.o.rotateBytes }) });
    this.unregisterPending = db.addPendingSource(() => this.flushQuietly());
    this.keepForExit();
    return this.journalHandle;
  }

  /** This tracker's journal owner, if its journal is open (not opening it). */
  get openOwner(): string | undefined {
    return this.journalHandle?.owner;
  }

  /** fdatasync calls made (durability 'fsync'). */
  get syncs(): number {
    return this.syncsOfClosed + (this.journalHandle?.syncs ?? 0);
  }

  /** Writes queued and not yet durable. */
  get pendingWrites(): number {
    return this.queue.length;
  }

  /** Writes durable in the journal (or waiting in memory) and not yet in SQLite. */
  get unfoldedWrites(): number {
    return this.unfolded.length + this.journaledOps;
  }

  /** Whether writes about run `runId` wait to be folded (queued, journaled or in memory). */
  touched(runId: string): boolean {
    return this.unfoldedRuns.has(runId);
  }

  /** Queues a write that is no row of a run or step (events, attempts, checkpoints …). */
  push(write: JournalOp): void {
    this.queue.push({ op: Op.Write, write });
  }

  queueRun(run: TrackedRun): void {
    this.unfoldedRuns.add(run.runId);
    if (!run.queued) {
      run.queued = true;
      this.queue.push({ op: Op.Run, run });
    }
  }

  queueStep(step: TrackedStep): void {
    if (!step.queued) {
      step.queued = true;
      this.queue.push({ op: Op.Step, step });
    }
  }

  /** A call that precedes user code (startStep) or ends a run (finishRun). */
  commitPoint(endOfRun: boolean, run: TrackedRun | undefined): void {
    if (this.holdDepth > 0) return;
    if (this.o.durability !== 'run' || endOfRun) {
      this.makeDurable(run);
      return;
    }
    this.afterQueued();
  }

  /** A write was queued or journaled without a fold: make sure it is folded within autoFlushMs. */
  afterQueued(): void {
    if (this.holdDepth > 0) return;
    this.keepForExit();
    if (this.queue.length >= MAX_QUEUE || this.unfolded.length >= MAX_QUEUE) {
      this.flush();
      return;
    }
    if (this.o.durability === 'run' && this.unfolded.length === 0 && this.journaled.length === 0) return;
    // Left armed between boundaries: clearing and re-arming a timer per boundary costs more than
    // letting it fire once per autoFlushMs.
    if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flushQuietly();
      }, this.o.autoFlushMs);
      this.timer.unref();
    }
  }

  /**
   * Durability 'fsync' in an async run: the group commit the last boundary waits for, once; the
   * caller awaits it before user code runs (or before the run resolves).
   */
  takeSync(): Promise<void> | undefined {
    const p = this.pendingSync;
    this.pendingSync = undefined;
    return p;
  }

  /**
   * Commits every queued and journaled write now, in one transaction. Throws `WPIPE_ERR_STORAGE`
   * when it cannot: nothing is dropped (journaled lines stay in the journal file, the rest in
   * memory, up to 10,000) and the next fold tries again.
   */
  flush(): void {
    if (this.queue.length > 0) {
      const ops = this.resolveQueue();
      for (let i = 0; i < ops.length; i++) this.unfolded.push(ops[i]!);
    }
    if (this.unfolded.length === 0 && this.journaled.length === 0) return;
    // A committer with a journal stays registered: the exit hook removes its journal.
    if (!this.journalHandle) atExit.delete(this);
    const journal = this.journalHandle;
    const { db, stmts } = this.host;
    let applied = 0;
    let dropped = 0;
    try {
      db.transaction(() => {
        // What the journal holds past its applied offset (another tracker or process catching up may
        // have folded part of it), then what is in no journal.
        const done = journal?.started ? ((stmts.getJournalApplied.get(journal.name) as { applied: number } | undefined)?.applied ?? 0) : 0;
        const ops: JournalOp[] = [];
        for (const line of this.journaled) if (line.end > done) for (const op of line.ops) ops.push(op);
        for (const op of this.unfolded) ops.push(op);
        applied = ops.length;
        dropped = applyEach(db, stmts, ops);
        if (journal?.started) stmts.setJournalApplied.run(journal.name, journal.offset, isoNow());
      });
    } catch (error) {
      const wrapped = storageError(error, 'commit of run history', db.path);
      // Whatever the cause (a lock held too long, a full disk, a read-only file), nothing the
      // journal holds is dropped, and the next fold or the next open replays it.
      this.foldError = wrapped;
      if (this.unfolded.length >= MAX_QUEUE) {
        // Bounded: what no journal holds cannot wait in memory forever.
        wrapped.details.droppedWrites = this.unfolded.length;
        this.unfolded = [];
      }
      this.keepForExit();
      throw wrapped;
    }
    this.foldError = undefined;
    this.unfoldedRuns.clear();
    this.unfolded = [];
    this.journaled = [];
    this.journaledOps = 0;
    this.counters.folds++;
    this.counters.foldedWrites += applied - dropped;
    if (dropped > 0) {
      this.host.report(new WpipeError('WPIPE_ERR_STORAGE', `commit of run history on ${db.path}: ${dropped} write(s) broke a constraint and were skipped`, {
        details: { file: db.path, droppedWrites: dropped },
      }));
    }
    if (journal?.wantsRotation) {
      if (this.o.durability === 'fsync') syncFile(`${db.path}-wal`); // the lines it held are in SQLite for good
      const retired = journal.rotate();
      db.runWithRetry(() => stmts.dropJournal.run(retired), 'dropping a folded journal');
    }
  }

  /** The last fold failed: try again before a run starts, and fail the start while it cannot. */
  retryFailedFold(): void {
    if (this.foldError === undefined) return;
    const before = this.foldError;
    try {
      this.flush();
    } catch (error) {
      const e = storageError(error, 'commit of run history', this.host.db.path);
      throw new WpipeError('WPIPE_ERR_STORAGE', `run history cannot be written to ${this.host.db.path}, so no run can start: ${e.message}`, {
        cause: e, details: { ...e.details, previous: before.message },
      });
    }
  }

  /** A flush from a timer or process exit: errors are reported (once per failing streak), never thrown. */
  flushQuietly(): void {
    const failing = this.foldError !== undefined;
    try {
      this.flush();
    } catch (error) {
      if (!failing) this.host.report(error);
    }
  }

  /** Whether everything is in SQLite (nothing queued, journaled or waiting). */
  get folded(): boolean {
    return this.queue.length === 0 && this.unfolded.length === 0 && this.journaled.length === 0;
  }

  /** Removes the journal (everything in it is folded) and its offset row. */
  closeJournal(): void {
    const journal = this.detachJournal();
    if (!journal) return;
    if (this.queue.length === 0) atExit.delete(this);
    const name = journal.name;
    const started = journal.started;
    if (this.o.durability === 'fsync' && started) syncFile(`${this.host.db.path}-wal`);
    journal.close();
    if (!started) return;
    try {
      const stmts = this.host.stmts;
      this.host.db.runWithRetry(() => stmts.dropJournal.run(name), 'dropping a folded journal');
    } catch (error) {
      // A stale offset row is harmless: journal names are never reused.
      this.host.report(error);
    }
  }

  /** Stops for good: a journal still attached (its last fold failed) is left for the next catch-up to replay. */
  dispose(): void {
    this.detachJournal()?.release();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    atExit.delete(this);
  }

  private keepForExit(): void {
    if (!atExit.has(this)) {
      atExit.set(this, this.onExit);
      installExitHook();
    }
  }

  private detachJournal(): Journal | undefined {
    const journal = this.journalHandle;
    this.journalHandle = undefined;
    if (journal) this.syncsOfClosed += journal.syncs;
    this.unregisterPending?.();
    this.unregisterPending = undefined;
    return journal;
  }

  /** Turns the queue into resolved writes (insert or update decided now) and empties it. */
  private resolveQueue(): JournalOp[] {
    const queue = this.queue;
    this.queue = [];
    const owner = this.journalHandle?.owner ?? null;
    const ops: JournalOp[] = new Array(queue.length);
    for (let i = 0; i < queue.length; i++) ops[i] = resolveWrite(queue[i]!, owner);
    return ops;
  }

  /** One durable write of the queue: a journal line (and its sync in 'fsync'), or a SQLite commit. */
  private makeDurable(run: TrackedRun | undefined): void {
    const journal = this.o.journal ? this.journal : undefined;
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
      this.host.report(error);
      return;
    }
    this.counters.journalAppends++;
    this.journaled.push({ end: journal.offset, ops });
    this.journaledOps += ops.length;
    if (this.o.durability === 'fsync') {
      // Alone, a run syncs inline: a round trip through the thread pool costs more than it saves.
      // With other runs in flight, the sync is shared (group commit) and awaited by the caller.
      if (run === undefined || run.sync || this.host.runsInFlight() <= 1) journal.syncNow();
      else this.pendingSync = journal.synced();
    }
    if (this.journaledOps >= MAX_QUEUE || journal.wantsRotation) {
      this.flush();
      return;
    }
    this.afterQueued();
  }
}
