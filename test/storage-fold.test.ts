// What a fold does to a batch of journaled writes (src/storage/ops.ts), the compact boundary form of
// journal lines, and the mapped journal of the native backend (native/journal.cpp). Runs under every
// backend: under js and wasm the journal appends with write(2), under native (and auto with the addon)
// it copies lines into a mapped window — the assertions hold for both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { RunTracker } from '../src/storage/tracker.js';
import { Journal, databaseThreads, readJournal, type JournalOp } from '../src/storage/journal.js';
import { Code, compactBoundary, expandOp } from '../src/storage/ops.js';
import { getBackendInfo } from '../src/backend/load.js';
import { rows, tempDir } from './fixtures/storage/tmp.js';

test('repeated checkpoint saves of a run within one fold are one upsert that still counts every save', () => {
  const t = tempDir();
  const file = t.file('cp.db');
  const tracker = new RunTracker(file, { autoFlushMs: 600_000, foldThreadAfter: Infinity });
  try {
    tracker.startRun({ runId: 'r', pipelineName: 'p', structureHash: 'h' });
    for (let i = 0; i < 5; i++) {
      const id = tracker.startStep({ runId: 'r', name: `s${i}`, position: i });
      tracker.finishStep({ stepId: id, status: 'completed' });
      tracker.saveCheckpoint({ runId: 'r', name: `c${i}`, position: i + 1, context: { i, at: new Date(i) } });
    }
    tracker.flush();
    let [cp] = rows(file, 'SELECT name, position, saves, context FROM checkpoints WHERE pipeline_id = ?', 'r');
    assert.equal(cp!.saves, 5, 'five saves counted');
    assert.equal(cp!.name, 'c4');
    assert.equal(cp!.position, 5, 'the last save wins');
    // Another fold adds to the count.
    tracker.saveCheckpoint({ runId: 'r', name: 'c5', position: 5, context: { i: 5 } });
    tracker.saveCheckpoint({ runId: 'r', name: 'c6', position: 5, context: { i: 6 } });
    tracker.flush();
    [cp] = rows(file, 'SELECT name, saves FROM checkpoints WHERE pipeline_id = ?', 'r');
    assert.deepEqual({ ...cp }, { name: 'c6', saves: 7 });
    const loaded = tracker.loadLatestCheckpoint('r');
    assert.deepEqual(loaded?.context, { i: 6 });
    // Saved and then removed (a run that completes drops its checkpoint) within one fold: no row.
    tracker.saveCheckpoint({ runId: 'r', name: 'c7', position: 5, context: { i: 7 } });
    tracker.finishRun({ runId: 'r', status: 'completed' });
    tracker.flush();
    assert.equal(rows(file, 'SELECT count(*) AS n FROM checkpoints')[0]!.n, 0);
    assert.equal(rows(file, "SELECT status FROM pipelines WHERE id = 'r'")[0]!.status, 'completed');
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test('a step boundary is one compact journal op that expands back to exactly the writes it stands for', () => {
  const end: JournalOp = [Code.FinishStepLean, 'completed', 1, '2026-01-01T00:00:00.001Z', 0.5, null, 'run-1', 3];
  const start: JournalOp = [Code.InsertStepStartLean, 'run-1', 4, 'next', 'v1', 'task', 3, '2026-01-01T00:00:00.001Z'];
  const [op, ...rest] = compactBoundary([end, start]);
  assert.equal(rest.length, 0);
  assert.equal(op![0], Code.StepBoundary);
  assert.ok(JSON.stringify(op).length < JSON.stringify([end, start]).length * 0.75, 'a third shorter or better');
  const out: JournalOp[] = [];
  expandOp(op!, out);
  assert.deepEqual(out, [end, start]);
  // Different timestamps survive too.
  const later = [...start.slice(0, 7), '2026-01-01T00:00:00.002Z'];
  const back: JournalOp[] = [];
  for (const o of compactBoundary([end, later])) expandOp(o, back);
  assert.deepEqual(back, [end, later]);
  // A step's output travels in the compact form too.
  const withOutput = [...end.slice(0, 5), '{"x":1}', 'run-1', 3];
  const again: JournalOp[] = [];
  for (const o of compactBoundary([withOutput, start])) expandOp(o, again);
  assert.deepEqual(again, [withOutput, start]);
  // Anything else is left as it is: an error, another run, more than two writes.
  for (const ops of [
    [end, [Code.InsertStepStartLean, 'run-2', ...start.slice(2)]],
    [end, start, end],
    [[Code.FinishStep, 'error', 1, 'at', 1, null, 'boom', 'E', null, 'run-1', 3], start],
  ] as JournalOp[][]) {
    assert.equal(compactBoundary(ops), ops);
  }
});

test('the journal appends through the backend getBackendInfo() names, and lines cross mapped windows intact', () => {
  const t = tempDir();
  const file = t.file('win.db');
  const journal = new Journal(file);
  try {
    const capability = getBackendInfo().capabilities['storage.journal']!;
    assert.equal(journal.mapped, capability.backend === 'native', JSON.stringify(capability));
    if (process.env.WPIPE_BACKEND === 'native') assert.equal(journal.mapped, true, 'native backend: the journal is mapped');
    if (process.env.WPIPE_BACKEND === 'js' || process.env.WPIPE_BACKEND === 'wasm') assert.equal(journal.mapped, false);
    // 6 MiB of lines, among them one bigger than a whole 4 MiB window, lines just inside and just
    // past the 64 KiB buffer a write(2) line is put together in (3 bytes a '✓'), and non-ASCII text.
    const written: JournalOp[] = [];
    const big = `${'x'.repeat(5 * 1024 * 1024)}ü✓`;
    const sized = (i: number): string => (i === 1500 ? big : i % 500 === 7 ? '✓'.repeat(i % 1000 === 7 ? 21_700 : 21_900) : `ünïcödé ${i} ✓`);
    for (let i = 0; i < 3000; i++) {
      const op: JournalOp = [Code.InsertEvent, `run-${i}`, null, 'note', sized(i), null, null, null, '2026-01-01T00:00:00.000Z'];
      journal.append([op]);
      written.push(op);
    }
    const log = path.join(journal.dir, journal.name);
    const read = readJournal(log, 0);
    assert.equal(read.stoppedAt, undefined);
    assert.equal(read.end, journal.offset, 'the lines end where the journal says');
    assert.equal(read.ops.length, written.length);
    assert.deepEqual(read.ops[1500], written[1500]);
    for (let i = 7; i < 3000; i += 500) assert.deepEqual(read.ops[i], written[i]);
    assert.deepEqual(read.ops.slice(-3), written.slice(-3));
    // Reading from an offset in the middle, and only up to a given end.
    const half = readJournal(log, 0, Math.floor(journal.offset / 2));
    assert.ok(half.ops.length > 0 && half.ops.length < written.length);
    const rest = readJournal(log, half.end);
    assert.equal(half.ops.length + rest.ops.length, written.length);
    if (journal.mapped) assert.ok(fs.statSync(log).size > journal.offset, 'a mapped file ends in the unused rest of its window');
  } finally {
    journal.close();
    t.cleanup();
  }
});

test('RunTracker({ backend }) chooses how the journal appends; a bad choice is an error at construction', () => {
  const t = tempDir();
  try {
    const mappedWith = (backend: 'js' | 'wasm' | 'native' | 'auto'): boolean => {
      const tracker = new RunTracker(t.file(`b-${backend}.db`), { backend, autoFlushMs: 600_000 });
      try {
        tracker.startRun({ runId: 'r', pipelineName: 'p' });
        tracker.finishRun({ runId: 'r', status: 'completed' });
        const mapped = (tracker as unknown as { journalHandle: Journal }).journalHandle.mapped;
        tracker.flush();
        assert.equal(tracker.getRun('r')?.status, 'completed');
        return mapped;
      } finally {
        tracker.close();
      }
    };
    assert.equal(mappedWith('js'), false);
    assert.equal(mappedWith('wasm'), false);
    const nativeAvailable = getBackendInfo().backends.native.available;
    if (nativeAvailable) {
      assert.equal(mappedWith('native'), true);
      assert.equal(mappedWith('auto'), true);
    }
    assert.throws(() => new RunTracker(t.file('bad.db'), { backend: 'fast' as never }), /backend must be one of auto, js, wasm, native/);
  } finally {
    t.cleanup();
  }
});

test('a journal past journalRotateBytes is replaced once folded, with and without a fold thread; nothing is lost', { timeout: 60_000 }, () => {
  const t = tempDir();
  try {
    for (const foldThreadAfter of [Infinity, 0]) {
      const file = t.file(`rotate-${foldThreadAfter}.db`);
      const tracker = new RunTracker(file, { journalRotateBytes: 16 * 1024, foldThreadAfter, autoFlushMs: 600_000 });
      const journal = (): Journal => (tracker as unknown as { journalHandle: Journal }).journalHandle;
      try {
        for (let r = 0; r < 300; r++) {
          tracker.startRun({ runId: `r${r}`, pipelineName: 'p', input: { r } });
          for (let i = 0; i < 3; i++) {
            const id = tracker.startStep({ runId: `r${r}`, name: `s${i}` });
            tracker.finishStep({ stepId: id, status: 'completed', output: { i } });
          }
          tracker.finishRun({ runId: `r${r}`, status: 'completed' });
        }
        assert.ok(journal().generation >= 10, `rotated ${journal().generation} times`);
        const logs = fs.readdirSync(journal().dir).filter((n) => n.endsWith('.log'));
        assert.deepEqual(logs, [journal().name], 'only the current log is left');
        tracker.flush();
        assert.equal(rows(file, "SELECT count(*) AS n FROM pipelines WHERE status = 'completed'")[0]!.n, 300);
        assert.equal(rows(file, "SELECT count(*) AS n FROM steps WHERE status = 'completed'")[0]!.n, 900);
        assert.equal(rows(file, 'SELECT count(*) AS n FROM wpipe_journal')[0]!.n, 1, 'offsets of retired logs are dropped');
      } finally {
        tracker.close();
      }
      assert.equal(fs.existsSync(`${file}.wpipe-journal`), false);
    }
    assert.throws(() => new RunTracker(t.file('bad.db'), { journalRotateBytes: 100 }), /journalRotateBytes must be a number ≥ 4096/);
  } finally {
    t.cleanup();
  }
});

/** The WAL index's frame count and how many of those frames are copied into the database file. */
function walProgress(dbFile: string): { mxFrame: number; nBackfill: number } {
  // -shm layout (SQLite's wal.c): two copies of the 48-byte header (mxFrame at byte 16), then the
  // checkpoint info (nBackfill at byte 96), in native byte order.
  const shm = fs.readFileSync(`${dbFile}-shm`);
  return { mxFrame: shm.readUInt32LE(16), nBackfill: shm.readUInt32LE(96) };
}

test('a checkpoint thread beside the fold thread copies the WAL into the database; a caller who sets walAutocheckpoint manages it', { timeout: 60_000 }, async () => {
  const t = tempDir();
  const busy = (file: string, options: ConstructorParameters<typeof RunTracker>[1]): RunTracker => {
    const tracker = new RunTracker(file, { foldThreadAfter: 0, autoFlushMs: 5, ...options });
    for (let r = 0; r < 200; r++) {
      const runId = `r${r}`;
      tracker.startRun({ runId, pipelineName: 'p' });
      for (let s = 0; s < 5; s++) {
        const id = tracker.startStep({ runId, name: `s${s}`, position: s });
        tracker.finishStep({ stepId: id, status: 'completed', output: { s } });
      }
      tracker.finishRun({ runId, status: 'completed' });
    }
    tracker.flush();
    return tracker;
  };
  const settled = async (file: string, done: (p: { mxFrame: number; nBackfill: number }) => boolean): Promise<{ mxFrame: number; nBackfill: number }> => {
    const deadline = Date.now() + 10_000;
    let p = walProgress(file);
    while (!done(p) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      p = walProgress(file);
    }
    return p;
  };
  try {
    // Default: far below every automatic checkpoint size, yet the WAL is copied back within moments.
    const withThread = t.file('ckpt.db');
    const a = busy(withThread, {});
    const p = await settled(withThread, (q) => q.mxFrame > 0 && q.nBackfill === q.mxFrame);
    assert.ok(p.mxFrame > 0 && p.nBackfill === p.mxFrame, `WAL not checkpointed: ${JSON.stringify(p)}`);
    assert.equal(rows(withThread, 'SELECT count(*) AS n FROM steps')[0]!.n, 1000);
    a.close();
    // walAutocheckpoint set by the caller: no checkpoint thread, and this size never triggers one.
    const managed = t.file('managed.db');
    const b = busy(managed, { walAutocheckpoint: 1_000_000 });
    await new Promise((r) => setTimeout(r, 400)); // several checkpoint intervals
    const q = walProgress(managed);
    assert.ok(q.mxFrame > 0 && q.nBackfill === 0, `WAL checkpointed although the caller manages it: ${JSON.stringify(q)}`);
    b.close();
  } finally {
    t.cleanup();
  }
});

test('busy trackers of one database share its fold and checkpoint threads, stopped with the last of them', { timeout: 60_000 }, async () => {
  const t = tempDir();
  try {
    const file = t.file('shared.db');
    const other = t.file('other.db');
    const runs = (tracker: RunTracker, prefix: string, n: number): void => {
      for (let i = 0; i < n; i++) {
        tracker.startRun({ runId: `${prefix}${i}`, pipelineName: 'p' });
        const s = tracker.startStep({ runId: `${prefix}${i}`, name: 's' });
        tracker.finishStep({ stepId: s, status: 'completed' });
        tracker.finishRun({ runId: `${prefix}${i}`, status: 'completed' });
      }
    };
    const busy = (db: string, prefix: string): RunTracker => {
      const tracker = new RunTracker(db, { foldThreadAfter: 0, autoFlushMs: 5 });
      runs(tracker, prefix, 1);
      return tracker;
    };
    const summary = (): [string, number][] => databaseThreads().map((d): [string, number] => [path.basename(d.file), d.users]).sort();
    const trackers = [busy(file, 'a'), busy(file, 'b'), busy(file, 'c'), busy(other, 'd')];
    assert.deepEqual(summary(), [['other.db', 1], ['shared.db', 3]]);
    const shared = databaseThreads().find((d) => d.file.endsWith('shared.db'))!;
    assert.ok(shared.checkpoint, 'a checkpoint thread beside the fold thread');
    let exited = 0;
    shared.fold.once('exit', () => { exited++; });
    shared.checkpoint.once('exit', () => { exited++; });
    // The one fold thread folds every tracker's journal (they flush by waiting for it).
    trackers.forEach((tracker, i) => runs(tracker, `more${i}-`, 20));
    for (const tracker of trackers) tracker.flush();
    assert.equal(rows(file, 'SELECT count(*) AS n FROM pipelines')[0]!.n, 63);
    assert.equal(trackers.reduce((n, tracker) => n + tracker.stats.foldedWrites, 0), 0, 'no tracker had to fold on its own thread');
    trackers[0]!.close();
    trackers[1]!.close();
    assert.deepEqual(summary(), [['other.db', 1], ['shared.db', 1]]);
    runs(trackers[2]!, 'after', 5); // still folded by the shared thread
    trackers[2]!.flush();
    assert.equal(rows(file, "SELECT count(*) AS n FROM pipelines WHERE id LIKE 'after%'")[0]!.n, 5);
    assert.equal(exited, 0, 'the threads stay while a tracker uses them');
    trackers[2]!.close();
    trackers[3]!.close();
    assert.deepEqual(databaseThreads(), []);
    const deadline = Date.now() + 10_000;
    while (exited < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(exited, 2, 'both threads ended with the last tracker of their database');
    assert.equal(rows(file, 'SELECT count(*) AS n FROM pipelines')[0]!.n, 68);

    // A checkpoint thread that dies costs nothing but speed; the next busy tracker starts another.
    const e = busy(file, 'e');
    const dying = databaseThreads()[0]!.checkpoint!;
    await dying.terminate();
    runs(e, 'e-', 50);
    const f = busy(file, 'f');
    const fresh = databaseThreads()[0]!;
    assert.ok(fresh.checkpoint && fresh.checkpoint !== dying);
    assert.equal(fresh.users, 2);
    e.close();
    f.close();
    assert.deepEqual(databaseThreads(), []);
    assert.equal(rows(file, 'SELECT count(*) AS n FROM pipelines')[0]!.n, 120);
  } finally {
    t.cleanup();
  }
});
