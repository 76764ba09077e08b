/**
 * The fold thread of a busy tracker: moves journaled writes into SQLite so the thread running the
 * pipeline only pays for the journal appends (src/storage/journal.ts). Every `intervalMs` it opens a
 * write transaction, reads the journal's applied offset from `wpipe_journal`, reads the intact lines
 * after it straight from the journal file, applies them and records the new offset — the same steps
 * as recovery, so the tracker's own thread may fold too (before its reads, at close) and neither can
 * apply a line twice: whoever takes the write lock second finds the offset moved.
 *
 * Shared cells (BigInt64Array): [0] the journal's generation (the tracker bumps it when it rotates
 * the file), [1] the folded offset packed as `generation << 32 | offset`, [2] stop, [3] the end of
 * the journal's lines packed the same way (published by the tracker after each append: a mapped
 * journal file is longer than its lines), [4] this thread's state: 0 not started, 1 running (set
 * before it opens the database), 2 done with SQLite for good.
 *
 * The same script runs the database's checkpoint thread, role `checkpoint` (one per database file
 * in a process, shared by its fold threads), that copies the WAL back into the database file
 * (`PRAGMA wal_checkpoint(PASSIVE)`) every `intervalMs`: run by whichever
 * commit crosses `wal_autocheckpoint`, that copy and its two fsyncs stalled the fold for ~7 ms per
 * MB of WAL (~70% of it waiting on the disk) while the backlog grew. A passive checkpoint never
 * blocks the fold's writes. The fold's own connection keeps an automatic checkpoint at 4× the usual
 * size as a backstop, should this thread fall behind or die. Only cells [2] and [4] are used.
 *
 * Started by {@link FoldThread} in journal.ts; never imported by the library's main thread.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { openDb, type OpenDbOptions, type StorageDb } from './db.js';
import { readJournal } from './journal.js';
import { JOURNAL_SQL, applyOps, applyOpsEach, isConstraint, prepareWrites } from './ops.js';

/** What the tracker passes to the fold thread. */
export interface FoldWorkerData {
  role: 'fold' | 'checkpoint';
  /** Whether a checkpoint thread runs beside the fold thread (role `fold` then keeps only a backstop). */
  checkpointer: boolean;
  dbPath: string;
  dir: string;
  owner: string;
  shared: SharedArrayBuffer;
  intervalMs: number;
  openOptions: OpenDbOptions;
}

const data = workerData as FoldWorkerData;
const cells = new BigInt64Array(data.shared);
const stopping = (): boolean => Atomics.load(cells, 2) !== 0n;

function report(error: unknown): void {
  const e = error as { message?: unknown; code?: unknown; details?: { sqliteCode?: unknown } } | null;
  parentPort?.postMessage({ message: String(e?.message ?? error), code: e?.code, sqliteCode: e?.details?.sqliteCode });
}

/** WAL size at which the fold's own commit checkpoints when a checkpoint thread runs beside it. */
const BACKSTOP_CHECKPOINT_BYTES = 64 * 1024 * 1024;

/** The thread's connection and statements, and what it folded last. */
class Folder {
  // Short waits inside SQLite (busy retries happen in JS, which checks the stop flag between them):
  // the thread must be able to leave SQLite promptly when it is stopped (see FoldThread.stop).
  readonly db: StorageDb = openDb(data.dbPath, { ...data.openOptions, busyTimeoutMs: 10 });
  readonly writes = prepareWrites(this.db);
  readonly getApplied = this.db.prepare(JOURNAL_SQL.getJournalApplied);
  readonly setApplied = this.db.prepare(JOURNAL_SQL.setJournalApplied);
  private lastGen = -1;
  private lastSize = -1;

  constructor() {
    this.db.busyAbort = stopping;
    if (data.checkpointer) {
      const pageSize = this.db.raw.pragma('page_size', { simple: true }) as number;
      this.db.raw.pragma(`wal_autocheckpoint = ${Math.ceil(BACKSTOP_CHECKPOINT_BYTES / pageSize)}`);
    }
  }

  /** Folds what the journal holds now; returns true when it has caught up with the file. */
  foldOnce(): boolean {
    const gen = Number(Atomics.load(cells, 0));
    const name = `${data.owner}.${gen}.log`;
    const file = path.join(data.dir, name);
    const published = Atomics.load(cells, 3);
    let size: number;
    if (Number(published >> 32n) === gen) {
      size = Number(published & 0xffffffffn);
    } else {
      try {
        size = fs.statSync(file).size;
      } catch {
        return true; // rotated or closed meanwhile
      }
    }
    if (gen === this.lastGen && size === this.lastSize) return true;
    let end = -1;
    const fold = (each: boolean): number => {
      let dropped = 0;
      const body = (): void => {
        end = -1;
        if (Number(Atomics.load(cells, 0)) !== gen) return; // rotated while waiting for the lock
        const applied = (this.getApplied.get(name) as { applied: number } | undefined)?.applied ?? 0;
        let contents;
        try {
          contents = readJournal(file, applied, size);
        } catch (error) {
          if ((error as { code?: unknown }).code === 'ENOENT') return;
          throw error;
        }
        if (contents.end <= applied) {
          end = applied;
          return;
        }
        end = contents.end;
        if (each) dropped = applyOpsEach(this.db, this.writes, contents.ops);
        else applyOps(this.writes, contents.ops);
        this.setApplied.run(name, contents.end, new Date().toISOString());
      };
      this.db.transaction(body);
      return dropped;
    };
    try {
      fold(false);
    } catch (error) {
      if (!isConstraint(error)) throw error;
      const dropped = fold(true);
      report(new Error(`${dropped} journaled write(s) of ${name} could not be applied (constraint) and were skipped`));
    }
    this.lastGen = gen;
    this.lastSize = size;
    if (end >= 0) {
      Atomics.store(cells, 1, (BigInt(gen) << 32n) | BigInt(end));
      Atomics.notify(cells, 1); // a tracker may be waiting for this fold (back-pressure)
    }
    return end < 0 || end >= size;
  }

  /**
   * Folds until stopped. Sleeps an interval only once caught up: behind, it folds again at once
   * (what accumulated meanwhile is the next batch), so its throughput is not halved by its pauses.
   */
  run(): void {
    let caughtUp = true;
    while (!stopping()) {
      if (caughtUp) Atomics.wait(cells, 2, 0n, data.intervalMs);
      if (stopping()) break;
      try {
        caughtUp = this.foldOnce();
      } catch (error) {
        caughtUp = true;
        // A busy wait cut short because we are being stopped is no failure: the tracker folds the rest.
        if (!stopping()) report(error);
      }
    }
    this.db.close();
  }
}

/** Role `checkpoint`: copies the WAL into the database file while the fold goes on. */
class Checkpointer {
  readonly db: StorageDb = openDb(data.dbPath, { ...data.openOptions, busyTimeoutMs: 10 });

  run(): void {
    let failing = false;
    while (!stopping()) {
      Atomics.wait(cells, 2, 0n, data.intervalMs);
      if (stopping()) break;
      try {
        // PASSIVE: copies what no reader still needs, never waits for a lock, never blocks a writer.
        this.db.raw.pragma('wal_checkpoint(PASSIVE)');
        failing = false;
      } catch (error) {
        // Another connection checkpointing right now is no failure: the next round catches up. A
        // real failure is reported once, not every round, until a checkpoint succeeds again.
        const code = String((error as { code?: unknown } | null)?.code ?? '');
        if (!stopping() && !failing && !code.startsWith('SQLITE_BUSY') && !code.startsWith('SQLITE_LOCKED')) report(error);
        failing = true;
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
