/**
 * The fold thread of a database: moves the journaled writes of this process's busy trackers of one
 * database file into SQLite, so the threads running pipelines only pay for the journal appends
 * (src/storage/journal.ts). Every `intervalMs` it opens ONE write transaction and, for each journal,
 * reads its applied offset from `wpipe_journal`, reads the intact lines after it straight from the
 * file, applies them and records the new offset — the same steps as recovery, so a tracker's own
 * thread may fold too (before its reads, at close) and neither can apply a line twice: whoever
 * takes the write lock second finds the offset moved. One thread and one commit per database,
 * however many trackers write it (a thread per tracker had them queueing for the write lock).
 *
 * The thread's own cells (BigInt64Array): [2] stop (and the futex it sleeps on: a notify wakes it),
 * [4] its state: 0 not started, 1 running (set before it opens the database), 2 done with SQLite for
 * good. Each journal has cells of its own: [0] its generation (the tracker bumps it when it rotates
 * the file), [1] the folded offset packed as `generation << 32 | offset`, [2] set by the tracker to
 * have its journal back, [3] the end of its lines packed the same way (published by the tracker after
 * each append: a mapped journal file is longer than its lines), [4] set by this thread once it has
 * let go of the journal (never inside a transaction).
 *
 * The same script runs the database's checkpoint thread, role `checkpoint` (one per database file
 * in a process, beside its fold thread), that copies the WAL back into the database file
 * (`PRAGMA wal_checkpoint(PASSIVE)`) every `intervalMs`: run by whichever
 * commit crosses `wal_autocheckpoint`, that copy and its two fsyncs stalled the fold for ~7 ms per
 * MB of WAL (~70% of it waiting on the disk) while the backlog grew. A passive checkpoint never
 * blocks the fold's writes. The fold's own connection keeps an automatic checkpoint at 4× the usual
 * size as a backstop, should this thread fall behind or die. It uses only its own cells.
 *
 * Started by {@link FoldThread} in journal.ts; never imported by the library's main thread.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { openDb, type OpenDbOptions, type StorageDb } from './db.js';
import { readJournal } from './journal.js';
import { JOURNAL_SQL, applyOps, applyOpsEach, isConstraint, prepareWrites } from './ops.js';

/** What the tracker passes to the fold thread. */
export interface FoldWorkerData {
  role: 'fold' | 'checkpoint';
  /** Whether a checkpoint thread runs beside the fold thread (role `fold` then keeps only a backstop). */
  checkpointer: boolean;
  dbPath: string;
  /** The thread's own cells: [2] stop (and the futex that wakes it), [4] its state. */
  shared: SharedArrayBuffer;
  intervalMs: number;
  openOptions: OpenDbOptions;
  /** Role `fold`: where journals to fold arrive ({@link AddJournal} messages). */
  port?: MessagePort;
}

/** A journal for the fold thread to take on (sent on {@link FoldWorkerData.port}). */
export interface AddJournal {
  dir: string;
  owner: string;
  /** The journal's cells (see the module comment). */
  shared: SharedArrayBuffer;
}

const data = workerData as FoldWorkerData;
const cells = new BigInt64Array(data.shared);
const stopping = (): boolean => Atomics.load(cells, 2) !== 0n;

function report(error: unknown, owner?: string): void {
  const e = error as { message?: unknown; code?: unknown; details?: { sqliteCode?: unknown } } | null;
  parentPort?.postMessage({ message: String(e?.message ?? error), code: e?.code, sqliteCode: e?.details?.sqliteCode, owner });
}

/** The longest pause between rounds while every round fails (unless the interval is longer). */
const MAX_FAILING_PAUSE_MS = 1000;

/**
 * A failure that repeats every round (a full disk, a broken schema) is reported once, when it
 * starts, not every few milliseconds until it ends, and rounds back off while it lasts (a tracker
 * that needs a fold wakes the thread anyway): `failed` counts a failure, `succeeded` ends the
 * streak, `pauseMs` is the pause before the next round.
 */
function failureStreak(intervalMs: number): { failed: (error: unknown) => void; succeeded: () => void; pauseMs: () => number } {
  let failures = 0;
  return {
    failed: (error) => {
      if (failures++ === 0) report(error);
    },
    succeeded: () => {
      failures = 0;
    },
    pauseMs: () => Math.max(intervalMs, Math.min(MAX_FAILING_PAUSE_MS, intervalMs * 2 ** Math.min(failures, 16))),
  };
}

/** WAL size at which the fold's own commit checkpoints when a checkpoint thread runs beside it. */
const BACKSTOP_CHECKPOINT_BYTES = 64 * 1024 * 1024;

/** One journal this thread folds, and how far it had got. */
interface Slot {
  dir: string;
  owner: string;
  cells: BigInt64Array;
  lastGen: number;
  lastSize: number;
}

/** What one pass found in a journal: the file, and the offset its fold reached (-1: nothing). */
interface SlotPass {
  slot: Slot;
  gen: number;
  size: number;
  name: string;
  end: number;
}

/** Releases a slot: its tracker, waiting in FoldThread.stop, may now remove the journal. */
function acknowledge(slot: Slot): void {
  Atomics.store(slot.cells, 4, 1n);
  Atomics.notify(slot.cells, 4);
}

/** The thread's connection and statements, and the journals it folds. */
class Folder {
  // Short waits inside SQLite (busy retries happen in JS, which checks the stop flag between them):
  // the thread must be able to leave SQLite promptly when it is stopped (see FoldThread.stop).
  readonly db: StorageDb = openDb(data.dbPath, { ...data.openOptions, busyTimeoutMs: 10 });
  readonly writes = prepareWrites(this.db);
  readonly getApplied = this.db.prepare(JOURNAL_SQL.getJournalApplied);
  readonly setApplied = this.db.prepare(JOURNAL_SQL.setJournalApplied);
  private slots: Slot[] = [];

  constructor() {
    // A busy wait also ends when a tracker asks for its journal back: it must not wait out another
    // process's lock (the next pass folds the others).
    this.db.busyAbort = () => stopping() || this.slots.some((slot) => Atomics.load(slot.cells, 2) !== 0n);
    if (data.checkpointer) {
      const pageSize = this.db.raw.pragma('page_size', { simple: true }) as number;
      this.db.raw.pragma(`wal_autocheckpoint = ${Math.ceil(BACKSTOP_CHECKPOINT_BYTES / pageSize)}`);
    }
  }

  /** Takes on newly sent journals and lets go of those whose trackers asked for them back. */
  private admit(): void {
    for (let m = data.port && receiveMessageOnPort(data.port); m; m = receiveMessageOnPort(data.port!)) {
      const add = m.message as AddJournal;
      this.slots.push({ dir: add.dir, owner: add.owner, cells: new BigInt64Array(add.shared), lastGen: -1, lastSize: -1 });
    }
    const keep: Slot[] = [];
    for (const slot of this.slots) {
      if (Atomics.load(slot.cells, 2) === 0n) keep.push(slot);
      else acknowledge(slot);
    }
    this.slots = keep;
  }

  /** Where a journal's lines end now, or undefined when nothing changed since its last fold. */
  private look(slot: Slot): SlotPass | undefined {
    const gen = Number(Atomics.load(slot.cells, 0));
    const name = `${slot.owner}.${gen}.log`;
    const published = Atomics.load(slot.cells, 3);
    let size: number;
    if (Number(published >> 32n) === gen) {
      size = Number(published & 0xffffffffn);
    } else {
      try {
        size = fs.statSync(path.join(slot.dir, name)).size;
      } catch {
        return undefined; // rotated or closed meanwhile
      }
    }
    if (gen === slot.lastGen && size === slot.lastSize) return undefined;
    return { slot, gen, size, name, end: -1 };
  }

  /** Inside a transaction: applies a journal's lines past its recorded offset. Returns writes skipped. */
  private foldSlot(pass: SlotPass, each: boolean): number {
    pass.end = -1;
    if (Number(Atomics.load(pass.slot.cells, 0)) !== pass.gen) return 0; // rotated while waiting for the lock
    const applied = (this.getApplied.get(pass.name) as { applied: number } | undefined)?.applied ?? 0;
    let contents;
    try {
      contents = readJournal(path.join(pass.slot.dir, pass.name), applied, pass.size);
    } catch (error) {
      if ((error as { code?: unknown }).code === 'ENOENT') return 0;
      throw error;
    }
    if (contents.end <= applied) {
      pass.end = applied;
      return 0;
    }
    pass.end = contents.end;
    let dropped = 0;
    if (each) dropped = applyOpsEach(this.db, this.writes, contents.ops);
    else applyOps(this.writes, contents.ops);
    this.setApplied.run(pass.name, contents.end, new Date().toISOString());
    return dropped;
  }

  /**
   * Folds what every journal holds now, all in ONE transaction (one commit however many trackers
   * write this database); returns true when it has caught up with them. A write that breaks a
   * constraint sends each journal through its own transaction, skipping only such writes.
   */
  foldAll(): boolean {
    const passes: SlotPass[] = [];
    for (const slot of this.slots) {
      const pass = this.look(slot);
      if (pass) passes.push(pass);
    }
    if (passes.length === 0) return true;
    try {
      this.db.transaction(() => {
        for (const pass of passes) this.foldSlot(pass, false);
      });
    } catch (error) {
      if (!isConstraint(error)) throw error;
      for (const pass of passes) {
        try {
          this.db.transaction(() => this.foldSlot(pass, false));
        } catch (inner) {
          if (!isConstraint(inner)) throw inner;
          let dropped = 0;
          this.db.transaction(() => {
            dropped = this.foldSlot(pass, true);
          });
          report(new Error(`${dropped} journaled write(s) of ${pass.name} could not be applied (constraint) and were skipped`), pass.slot.owner);
        }
      }
    }
    let caughtUp = true;
    for (const pass of passes) {
      pass.slot.lastGen = pass.gen;
      pass.slot.lastSize = pass.size;
      if (pass.end >= 0) {
        Atomics.store(pass.slot.cells, 1, (BigInt(pass.gen) << 32n) | BigInt(pass.end));
        Atomics.notify(pass.slot.cells, 1); // a tracker may be waiting for this fold (back-pressure, flush)
      }
      if (pass.end >= 0 && pass.end < pass.size) caughtUp = false;
    }
    return caughtUp;
  }

  /**
   * Folds until stopped. Sleeps an interval only once caught up: behind, it folds again at once
   * (what accumulated meanwhile is the next batch), so its throughput is not halved by its pauses.
   */
  run(): void {
    let caughtUp = true;
    const streak = failureStreak(data.intervalMs);
    try {
      while (!stopping()) {
        if (caughtUp) Atomics.wait(cells, 2, 0n, streak.pauseMs());
        if (stopping()) break;
        this.admit();
        try {
          caughtUp = this.foldAll();
          streak.succeeded();
        } catch (error) {
          caughtUp = true;
          // A busy wait cut short because we are stopped, or a tracker wants its journal back, is no
          // failure: that tracker folds the rest itself.
          const released = this.slots.some((slot) => Atomics.load(slot.cells, 2) !== 0n);
          if (!stopping() && !released) streak.failed(error);
        }
      }
    } finally {
      this.db.close();
      for (const slot of this.slots) acknowledge(slot);
      data.port?.close(); // else the open port keeps this thread alive
    }
  }
}

/** Role `checkpoint`: copies the WAL into the database file while the fold goes on. */
class Checkpointer {
  readonly db: StorageDb = openDb(data.dbPath, { ...data.openOptions, busyTimeoutMs: 10 });

  run(): void {
    const streak = failureStreak(data.intervalMs);
    while (!stopping()) {
      Atomics.wait(cells, 2, 0n, streak.pauseMs());
      if (stopping()) break;
      try {
        // PASSIVE: copies what no reader still needs, never waits for a lock, never blocks a writer.
        this.db.raw.pragma('wal_checkpoint(PASSIVE)');
        streak.succeeded();
      } catch (error) {
        // Another connection checkpointing right now is no failure: the next round catches up.
        const code = String((error as { code?: unknown } | null)?.code ?? '');
        if (!stopping() && !code.startsWith('SQLITE_BUSY') && !code.startsWith('SQLITE_LOCKED')) streak.failed(error);
      }
    }
    this.db.close();
  }
}

// Say we run before touching SQLite, then look at the stop flag: a tracker that stopped us before
// this saw cell 4 at 0 and did not wait for us, so we must not open the database (FoldThread.stop).
Atomics.store(cells, 4, 1n);
try {
  if (!stopping()) (data.role === 'checkpoint' ? new Checkpointer() : new Folder()).run();
} finally {
  // Out of SQLite for good: a tracker stopping us may now let the process exit (cell 4 = 2).
  Atomics.store(cells, 4, 2n);
  Atomics.notify(cells, 4);
}
