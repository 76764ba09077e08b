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
 * Started by {@link FoldThread} in journal.ts; never imported by the library's main thread.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { openDb, type OpenDbOptions, type StorageDb } from './db.js';
import { readJournal } from './journal.js';
import { JOURNAL_SQL, applyOps, applyOpsEach, isConstraint, prepareWrites, type WriteStatements } from './ops.js';

/** What the tracker passes to the fold thread. */
export interface FoldWorkerData {
  dbPath: string;
  dir: string;
  owner: string;
  shared: SharedArrayBuffer;
  intervalMs: number;
  openOptions: OpenDbOptions;
}

const data = workerData as FoldWorkerData;
const cells = new BigInt64Array(data.shared);
// Say we run before touching SQLite, then look at the stop flag: a tracker that stopped us before
// this saw cell 4 at 0 and did not wait, and we never open the database (see FoldThread.stop).
Atomics.store(cells, 4, 1n);
const stoppedEarly = Atomics.load(cells, 2) !== 0n;
// Never used when stopped early (nothing below runs then).
// Short waits inside SQLite (busy retries happen in JS, which checks the stop flag between them):
// the thread must be able to leave SQLite promptly when it is stopped (see FoldThread.stop).
const db = stoppedEarly ? (undefined as unknown as StorageDb) : openDb(data.dbPath, { ...data.openOptions, busyTimeoutMs: 10 });
if (!stoppedEarly) db.busyAbort = () => Atomics.load(cells, 2) !== 0n;
const writes = stoppedEarly ? (undefined as unknown as WriteStatements) : prepareWrites(db);
const getApplied = stoppedEarly ? undefined! : db.prepare(JOURNAL_SQL.getJournalApplied);
const setApplied = stoppedEarly ? undefined! : db.prepare(JOURNAL_SQL.setJournalApplied);
let lastGen = -1;
let lastSize = -1;

function report(error: unknown): void {
  const e = error as { message?: unknown; code?: unknown; details?: { sqliteCode?: unknown } } | null;
  parentPort?.postMessage({ message: String(e?.message ?? error), code: e?.code, sqliteCode: e?.details?.sqliteCode });
}

/** Folds what the journal holds now; returns true when it has caught up with the file. */
function foldOnce(): boolean {
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
  if (gen === lastGen && size === lastSize) return true;
  let end = -1;
  const fold = (each: boolean): number => {
    let dropped = 0;
    const body = (): void => {
      end = -1;
      if (Number(Atomics.load(cells, 0)) !== gen) return; // rotated while waiting for the lock
      const applied = (getApplied.get(name) as { applied: number } | undefined)?.applied ?? 0;
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
      if (each) dropped = applyOpsEach(db, writes, contents.ops);
      else applyOps(writes, contents.ops);
      setApplied.run(name, contents.end, new Date().toISOString());
    };
    db.transaction(body);
    return dropped;
  };
  try {
    fold(false);
  } catch (error) {
    if (!isConstraint(error)) throw error;
    const dropped = fold(true);
    report(new Error(`${dropped} journaled write(s) of ${name} could not be applied (constraint) and were skipped`));
  }
  lastGen = gen;
  lastSize = size;
  if (end >= 0) {
    Atomics.store(cells, 1, (BigInt(gen) << 32n) | BigInt(end));
    Atomics.notify(cells, 1); // a tracker may be waiting for this fold (back-pressure)
  }
  return end < 0 || end >= size;
}

// Sleep an interval only once caught up: behind, fold again at once (what accumulated meanwhile is
// the next batch), so the thread's throughput is not halved by its own pauses.
let caughtUp = true;
while (!stoppedEarly && Atomics.load(cells, 2) === 0n) {
  if (caughtUp) Atomics.wait(cells, 2, 0n, data.intervalMs);
  if (Atomics.load(cells, 2) !== 0n) break;
  try {
    caughtUp = foldOnce();
  } catch (error) {
    caughtUp = true;
    // A busy wait cut short because we are being stopped is no failure: the tracker folds the rest.
    if (Atomics.load(cells, 2) === 0n) report(error);
  }
}
try {
  if (!stoppedEarly) db.close();
} finally {
  // Out of SQLite for good: a tracker stopping us may now let the process exit (cell 4 = 2).
  Atomics.store(cells, 4, 2n);
  Atomics.notify(cells, 4);
}
