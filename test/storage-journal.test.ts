import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import zlib from 'node:zlib';
import { RunTracker } from '../src/storage/tracker.js';
import { HistoryQuery } from '../src/storage/query.js';
import { readJournal } from '../src/storage/journal.js';
import { rows, tempDir } from './fixtures/storage/tmp.js';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3') as typeof import('better-sqlite3');
const child = fileURLToPath(new URL('./fixtures/storage/journal-child.ts', import.meta.url));
const lockHolder = fileURLToPath(new URL('./fixtures/storage/lock-holder.mjs', import.meta.url));

/** Records one completed run of one step. */
function runOneStep(tracker: RunTracker, id: string): void {
  tracker.startRun({ runId: id, pipelineName: 'p' });
  const s = tracker.startStep({ runId: id, name: 's' });
  tracker.finishStep({ stepId: s, status: 'completed' });
  tracker.finishRun({ runId: id, status: 'completed' });
}

/** Completed runs, as another connection sees them. */
function completedRuns(db: string): number {
  return rows(db, "SELECT count(*) AS n FROM pipelines WHERE status = 'completed'")[0]!.n as number;
}

/**
 * A trigger that calls a function no connection has: every INSERT into pipelines fails with
 * SQLITE_ERROR, not a constraint, so nothing can be skipped. `DROP_FAILING_TRIGGER` mends it.
 */
const FAILING_TRIGGER = 'CREATE TRIGGER wpipe_test_fail BEFORE INSERT ON pipelines BEGIN SELECT no_such_function(); END';
const DROP_FAILING_TRIGGER = 'DROP TRIGGER IF EXISTS wpipe_test_fail';

/** Starts the 'kill' child and resolves once its journal holds everything (it printed 'ready'). */
function startChild(db: string): Promise<{ kill: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, db, 'kill'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    p.on('exit', (code) => { if (!out.includes('ready')) reject(new Error(`child exited ${code}: ${err}`)); });
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) {
        resolve({ kill: () => new Promise((r) => { p.on('exit', () => r()); p.kill('SIGKILL'); }) });
      }
    });
  });
}

/** Runs the child in 'kill' mode, kills it, and returns the path of the journal it left behind. */
async function killedChildJournal(db: string): Promise<string> {
  const c = await startChild(db);
  await c.kill();
  const dir = `${db}.wpipe-journal`;
  return path.join(dir, fs.readdirSync(dir).find((n) => n.endsWith('.log'))!);
}

/**
 * Writes `text` where the journal's next line would go: right after its last intact line (with the
 * native addon a journal file is a mapped window, longer than its lines, so not at the file's end).
 */
function writeAfterLines(log: string, text: string): void {
  const fd = fs.openSync(log, 'r+');
  try {
    fs.writeSync(fd, text, readJournal(log, 0).end);
  } finally {
    fs.closeSync(fd);
  }
}

test('kill -9: the journal of the dead process is replayed once, after what it had folded, when the database is opened next', { timeout: 60_000 }, async () => {
  const t = tempDir();
  try {
    const db = t.file('j.db');
    const c = await startChild(db);
    const dir = `${db}.wpipe-journal`;
    // While the owner lives, its journal is left alone.
    const early = new RunTracker(db);
    early.getRun('nothing');
    assert.deepEqual(early.stats.recoveredJournals, []);
    early.close();
    assert.equal(fs.readdirSync(dir).filter((n) => n.endsWith('.log')).length, 1, 'a live journal is not touched');
    assert.deepEqual(rows(db, 'SELECT id FROM pipelines ORDER BY id').map((r) => r.id), ['r1'], 'only the folded run is in SQLite');
    await c.kill();

    const tracker = new RunTracker(db);
    try {
      assert.equal(tracker.getRun('r2')?.status, 'completed');
      const [recovered] = tracker.stats.recoveredJournals;
      assert.ok(recovered && recovered.writes > 0 && recovered.stoppedAt === undefined, JSON.stringify(tracker.stats.recoveredJournals));
      assert.equal(fs.existsSync(dir), false, `the replayed journal is removed: ${fs.existsSync(dir) ? fs.readdirSync(dir).join(', ') : ''}`);
      assert.deepEqual(rows(db, 'SELECT id, status FROM pipelines ORDER BY id'), [
        { id: 'r1', status: 'completed' }, { id: 'r2', status: 'completed' }, { id: 'r3', status: 'running' },
      ]);
      assert.deepEqual(rows(db, "SELECT step_name, status FROM steps WHERE pipeline_id = 'r3' ORDER BY step_order").map((r) => `${String(r.step_name)}:${String(r.status)}`),
        ['s0:completed', 's1:completed', 's2:completed', 's3:running'], 'everything up to the step in flight');
      assert.equal(rows(db, "SELECT count(*) AS n FROM steps WHERE pipeline_id IN ('r1', 'r2')")[0]!.n, 10, 'no step applied twice');
      // The killed run resumes like any stopped run.
      const resumed = tracker.resumeRun({ runId: 'r3' });
      assert.equal(resumed.outcome, 'resumed');
      assert.ok(resumed.outcome === 'resumed' && resumed.checkpoint?.position === 2 && (resumed.checkpoint.context as { at: Date }).at instanceof Date,
        'the checkpoint saved with a journaled boundary survives');
      assert.equal(rows(db, "SELECT status FROM steps WHERE pipeline_id = 'r3' AND step_name = 's3'")[0]!.status, 'interrupted');
      assert.equal(rows(db, 'SELECT count(*) AS n FROM wpipe_journal')[0]!.n, 0);
      assert.equal(rows(db, 'PRAGMA integrity_check')[0]!.integrity_check, 'ok');
    } finally {
      tracker.close();
    }
  } finally {
    t.cleanup();
  }
});

test('a torn or corrupt last line ends the replay: the intact lines before it are applied', { timeout: 60_000 }, async () => {
  const t = tempDir();
  try {
    const db = t.file('torn.db');
    const log = await killedChildJournal(db);
    const intact = readJournal(log, 0);
    assert.equal(intact.stoppedAt, undefined);
    // A power loss can leave a line half written, or a line whose bytes did not all reach the disk.
    writeAfterLines(log, '00000000 [[8,"r2",null,"note","lost",null,null,null,"2026-01-01T00:00:00.000Z"]]\n0badc0de [[8');
    const torn = readJournal(log, 0);
    assert.equal(torn.ops.length, intact.ops.length);
    assert.match(torn.stoppedAt ?? '', /checksum mismatch/);
    const tracker = new RunTracker(db);
    try {
      tracker.getRun('r2');
      assert.match(tracker.stats.recoveredJournals[0]?.stoppedAt ?? '', /checksum/);
      assert.equal(tracker.getRun('r2')?.status, 'completed');
      assert.equal(rows(db, "SELECT count(*) AS n FROM events WHERE event_name = 'lost'")[0]!.n, 0);
    } finally {
      tracker.close();
    }
  } finally {
    t.cleanup();
  }
});

test('a fold thread moves the journal into SQLite; a process that never calls close() still exits with everything folded', { timeout: 60_000 }, () => {
  const t = tempDir();
  try {
    const db = t.file('exit.db');
    const r = spawnSync(process.execPath, ['--import', 'tsx', child, db, 'exit'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, `exit ${String(r.status)} ${r.signal ?? ''}: ${r.stderr}`);
    assert.equal(rows(db, "SELECT count(*) AS n FROM pipelines WHERE status = 'completed'")[0]!.n, 20);
    assert.equal(rows(db, 'SELECT count(*) AS n FROM steps')[0]!.n, 100);
    assert.equal(fs.existsSync(`${db}.wpipe-journal`), false, 'the exit hook removed the journal');
  } finally {
    t.cleanup();
  }
});

test('with a fold thread, the writes reach SQLite without this thread folding them', { timeout: 60_000 }, async () => {
  const t = tempDir();
  const db = t.file('thread.db');
  const tracker = new RunTracker(db, { autoFlushMs: 5, foldThreadAfter: 0 });
  try {
    for (let r = 0; r < 50; r++) {
      tracker.startRun({ runId: `t${r}`, pipelineName: 'p' });
      const id = tracker.startStep({ runId: `t${r}`, name: 's' });
      tracker.finishStep({ stepId: id, status: 'completed' });
      tracker.finishRun({ runId: `t${r}`, status: 'completed' });
    }
    // The thread starts (and under tsx compiles) in the background: give it time.
    const deadline = Date.now() + 30_000;
    while (rows(db, 'SELECT count(*) AS n FROM pipelines')[0]!.n !== 50 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(rows(db, 'SELECT count(*) AS n FROM pipelines')[0]!.n, 50);
    assert.equal(tracker.stats.folds, 0, 'this thread folded nothing');
    assert.equal(tracker.unfoldedWrites, 0);
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test('a reader on the same connection sees what this thread wrote at once (read-your-writes)', () => {
  const t = tempDir();
  const db = t.file('ryw.db');
  const tracker = new RunTracker(db, { autoFlushMs: 600_000 });
  const query = new HistoryQuery(db);
  try {
    tracker.startRun({ runId: 'mine', pipelineName: 'p' });
    const id = tracker.startStep({ runId: 'mine', name: 's' });
    tracker.finishStep({ stepId: id, status: 'completed' });
    tracker.finishRun({ runId: 'mine', status: 'completed' });
    assert.ok(tracker.unfoldedWrites > 0);
    assert.equal(rows(db, 'SELECT count(*) AS n FROM pipelines')[0]!.n, 0, 'another connection does not see it yet');
    assert.equal(query.getRunDetail('mine')?.status, 'completed');
    assert.equal(tracker.unfoldedWrites, 0);
  } finally {
    query.close();
    tracker.close();
    t.cleanup();
  }
});

test('two processes use one run id at once: the fold keeps every other write and reports the conflict', () => {
  const t = tempDir();
  const db = t.file('dup.db');
  const a = new RunTracker(db, { autoFlushMs: 600_000 });
  const errors: string[] = [];
  const b = new RunTracker(db, { autoFlushMs: 600_000, onError: (e) => errors.push(e.message) });
  try {
    a.startRun({ runId: 'same', pipelineName: 'a' });
    a.finishRun({ runId: 'same', status: 'completed' });
    b.startRun({ runId: 'same', pipelineName: 'b' }); // b cannot see a's journal
    b.recordEvent({ runId: 'other', type: 'note', name: 'kept' });
    b.finishRun({ runId: 'same', status: 'completed' });
    a.flush();
    assert.throws(() => b.flush(), (e: Error & { details?: Record<string, unknown> }) => e.details?.droppedWrites === 1);
    assert.equal(rows(db, "SELECT pipeline_id FROM events WHERE event_name = 'kept'").length, 1);
    assert.equal(rows(db, "SELECT name FROM pipelines WHERE id = 'same'")[0]!.name, 'a');
    assert.equal(b.unfoldedWrites, 0);
  } finally {
    a.close();
    b.close();
    t.cleanup();
  }
});

test('a journal append that fails (disk full, I/O error) makes that boundary a SQLite commit, reports it, and starts a new journal', () => {
  const t = tempDir();
  const db = t.file('broken.db');
  const errors: string[] = [];
  const tracker = new RunTracker(db, { autoFlushMs: 600_000, foldThreadAfter: Infinity, onError: (e) => errors.push(e.message) });
  try {
    tracker.startRun({ runId: 'b', pipelineName: 'p' });
    const s1 = tracker.startStep({ runId: 'b', name: 's1' });
    // Take the journal's file descriptor away: the next write(2) fails with EBADF. A mapped journal
    // (native addon) loses its window too, as when a new window cannot be mapped.
    const journal = (tracker as unknown as { journalHandle: { fd: number; mapped: boolean; unmapWindow(): void } }).journalHandle;
    const fd = journal.fd;
    if (journal.mapped) journal.unmapWindow();
    fs.closeSync(fd);
    tracker.finishStep({ stepId: s1, status: 'completed' });
    const before = tracker.db.stats.transactions;
    const s2 = tracker.startStep({ runId: 'b', name: 's2' });
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /appending to the step journal failed/);
    assert.equal(tracker.db.stats.transactions - before, 1, 'the boundary was committed to SQLite instead');
    assert.deepEqual(rows(db, "SELECT step_name, status FROM steps WHERE pipeline_id = 'b' ORDER BY step_order"),
      [{ step_name: 's1', status: 'completed' }, { step_name: 's2', status: 'running' }], 'durable before the next step runs');
    tracker.finishStep({ stepId: s2, status: 'completed' });
    tracker.finishRun({ runId: 'b', status: 'completed' });
    assert.equal(tracker.stats.journalAppends, 2, 'a fresh journal took over after the fold');
    tracker.flush();
    assert.equal(rows(db, "SELECT status FROM pipelines WHERE id = 'b'")[0]!.status, 'completed');
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test('a fold thread that dies is noticed: the tracker folds on its own thread again and nothing is lost', { timeout: 60_000 }, async () => {
  const t = tempDir();
  const db = t.file('dead-thread.db');
  const errors: string[] = [];
  const tracker = new RunTracker(db, { autoFlushMs: 5, foldThreadAfter: 0, onError: (e) => errors.push(e.message) });
  try {
    runOneStep(tracker, 'before');
    const thread = (tracker as unknown as { foldThread: { alive: boolean; worker: { terminate(): Promise<number> } } }).foldThread;
    await thread.worker.terminate();
    assert.equal(thread.alive, false);
    const folds = tracker.stats.folds;
    for (let i = 0; i < 5; i++) runOneStep(tracker, `after-${i}`);
    const deadline = Date.now() + 10_000;
    while (tracker.stats.folds === folds && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(tracker.stats.folds > folds, 'the timer folded on this thread');
    assert.equal(rows(db, "SELECT count(*) AS n FROM pipelines WHERE status = 'completed'")[0]!.n, 6);
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test('a fold thread whose folds keep failing reports the failure once, not every round, and folds everything once it can again', { timeout: 60_000 }, async () => {
  const t = tempDir();
  const db = t.file('failing-fold.db');
  const errors: string[] = [];
  const tracker = new RunTracker(db, { autoFlushMs: 2, foldThreadAfter: 0, onError: (e) => errors.push(e.message) });
  const other = new Database(db);
  const until = async (done: () => boolean, what: string): Promise<void> => {
    const deadline = Date.now() + 30_000;
    while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(done(), what);
  };
  try {
    runOneStep(tracker, 'before');
    await until(() => completedRuns(db) === 1, 'the fold thread folds');
    other.exec(FAILING_TRIGGER);
    runOneStep(tracker, 'during-1');
    await until(() => errors.length > 0, 'the failure is reported');
    for (let i = 2; i <= 5; i++) {
      runOneStep(tracker, `during-${i}`);
      await new Promise((r) => setTimeout(r, 60)); // fold rounds fail meanwhile
    }
    assert.equal(errors.length, 1, `reported once, not ${errors.length} times`);
    assert.match(errors[0]!, /no_such_function/);
    assert.equal(completedRuns(db), 1);
    other.exec(DROP_FAILING_TRIGGER);
    await until(() => completedRuns(db) === 6, 'everything journaled meanwhile is folded');
    // Failing again after a success is a new failure: reported again.
    other.exec(FAILING_TRIGGER);
    runOneStep(tracker, 'again');
    await until(() => errors.length === 2, 'a new failure is reported');
    other.exec(DROP_FAILING_TRIGGER);
    tracker.flush();
    assert.equal(completedRuns(db), 7);
    assert.equal(errors.length, 2);
  } finally {
    other.exec(DROP_FAILING_TRIGGER);
    other.close();
    tracker.close();
    t.cleanup();
  }
});

test('a fold that fails for a reason that does not pass (a broken schema) keeps the journaled writes: they fold once it can, or replay at the next open', { timeout: 60_000 }, async () => {
  const t = tempDir();
  const db = t.file('broken-fold.db');
  const errors: string[] = [];
  const open = (): RunTracker => new RunTracker(db, { foldThreadAfter: Infinity, onError: (e) => errors.push(e.message) });
  const breakSchema = (): void => {
    const other = new Database(db);
    other.exec(FAILING_TRIGGER);
    other.close();
  };
  const mendSchema = (): void => {
    const other = new Database(db);
    other.exec(DROP_FAILING_TRIGGER);
    other.close();
  };
  try {
    let tracker = open();
    runOneStep(tracker, 'before');
    tracker.flush();
    breakSchema();
    runOneStep(tracker, 'during-1');
    assert.throws(() => tracker.flush(), /no_such_function/);
    runOneStep(tracker, 'during-2');
    assert.throws(() => tracker.flush(), /no_such_function/);
    assert.equal(completedRuns(db), 1);
    mendSchema();
    tracker.flush();
    assert.equal(completedRuns(db), 3, 'the writes of the failed folds were kept');
    // Broken until the process ends: close() cannot fold, the journal stays, the next open replays it.
    breakSchema();
    runOneStep(tracker, 'at-exit');
    assert.throws(() => tracker.close(), /no_such_function/);
    mendSchema();
    tracker = open();
    assert.equal(tracker.getRun('at-exit')?.status, 'completed', 'replayed when the database is opened next');
    tracker.close();
    assert.equal(completedRuns(db), 4);
    assert.deepEqual(fs.existsSync(`${db}.wpipe-journal`) ? fs.readdirSync(`${db}.wpipe-journal`) : [], []);
    // Without a journal, a boundary whose commit fails throws, and its writes wait in memory.
    tracker = new RunTracker(db, { journal: false });
    runOneStep(tracker, 'no-journal-before');
    breakSchema();
    tracker.startRun({ runId: 'no-journal', pipelineName: 'p' });
    assert.throws(() => tracker.startStep({ runId: 'no-journal', name: 's' }), /no_such_function/);
    mendSchema();
    tracker.flush();
    assert.equal(rows(db, "SELECT status FROM pipelines WHERE id = 'no-journal'")[0]?.status, 'running');
    tracker.close();
    // Memory is bounded: writes in no journal that pile up past the queue's bound (10,000) while
    // every commit fails are dropped, and the error counts them.
    tracker = new RunTracker(db, { journal: false, durability: 'run' });
    runOneStep(tracker, 'bounded-before');
    breakSchema();
    tracker.startRun({ runId: 'bounded', pipelineName: 'p' });
    let dropped: unknown;
    for (let i = 0; i < 30_000 && dropped === undefined; i++) {
      try {
        tracker.finishStep({ stepId: tracker.startStep({ runId: 'bounded', name: `s${i}` }), status: 'completed' });
      } catch (error) {
        dropped = (error as { details?: { droppedWrites?: unknown } }).details?.droppedWrites;
      }
    }
    assert.ok(typeof dropped === 'number' && dropped >= 10_000, `dropped ${String(dropped)}`);
    mendSchema();
    tracker.close();
  } finally {
    mendSchema();
    t.cleanup();
  }
});

test('lines written while a fold thread runs are read back from the file, not kept in memory; a run split across a dying thread folds whole', { timeout: 60_000 }, async () => {
  const t = tempDir();
  const db = t.file('file-lines.db');
  // The thread sleeps autoFlushMs between folds: here it never folds, so this thread's own fold
  // must read every line back from the journal file.
  const tracker = new RunTracker(db, { autoFlushMs: 600_000, foldThreadAfter: 0 });
  const internals = tracker as unknown as { journaled: unknown[]; foldThread: { worker: { terminate(): Promise<number> } } };
  try {
    for (let r = 0; r < 30; r++) {
      tracker.startRun({ runId: `f${r}`, pipelineName: 'p', input: { r } });
      const id = tracker.startStep({ runId: `f${r}`, name: 's' });
      tracker.finishStep({ stepId: id, status: 'completed', output: { r } });
      tracker.finishRun({ runId: `f${r}`, status: 'completed', output: { r } });
    }
    assert.ok(internals.journaled.length <= 1, `only the line before the thread started is in memory (${internals.journaled.length})`);
    assert.ok(tracker.unfoldedWrites > 0);
    // A run whose start is a file line and whose end is kept in memory (the thread died between).
    tracker.startRun({ runId: 'split', pipelineName: 'p' });
    const s = tracker.startStep({ runId: 'split', name: 'across' });
    await internals.foldThread.worker.terminate();
    tracker.finishStep({ stepId: s, status: 'completed' });
    tracker.finishRun({ runId: 'split', status: 'completed' });
    tracker.flush();
    assert.equal(tracker.unfoldedWrites, 0);
    assert.equal(rows(db, "SELECT count(*) AS n FROM pipelines WHERE status = 'completed'")[0]!.n, 31);
    assert.equal(rows(db, "SELECT count(*) AS n FROM steps WHERE status = 'completed'")[0]!.n, 31);
    assert.deepEqual(rows(db, "SELECT step_name, status FROM steps WHERE pipeline_id = 'split'"), [{ step_name: 'across', status: 'completed' }]);
    assert.deepEqual(tracker.getRun('f29')?.output, { r: 29 }, 'values read back from the file are the ones written');
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test('a fold thread that falls maxFoldLagBytes behind makes boundaries wait for it (back-pressure), and nothing is lost', { timeout: 60_000 }, async () => {
  const t = tempDir();
  const db = t.file('lag.db');
  const tracker = new RunTracker(db, { autoFlushMs: 5, foldThreadAfter: 0, maxFoldLagBytes: 4096 });
  try {
    const runOnce = (id: string): void => {
      tracker.startRun({ runId: id, pipelineName: 'p' });
      for (let i = 0; i < 5; i++) {
        const s = tracker.startStep({ runId: id, name: `s${i}` });
        tracker.finishStep({ stepId: s, status: 'completed' });
      }
      tracker.finishRun({ runId: id, status: 'completed' });
    };
    runOnce('warm');
    // The thread starts (and under tsx compiles) in the background: wait for its first fold.
    const deadline = Date.now() + 30_000;
    while (rows(db, 'SELECT count(*) AS n FROM pipelines')[0]!.n === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (let r = 0; r < 300; r++) runOnce(`lag-${r}`); // far more than 4 KiB of lines, with no pause
    assert.ok(tracker.stats.foldWaits > 0, JSON.stringify(tracker.stats));
    tracker.flush();
    assert.equal(rows(db, "SELECT count(*) AS n FROM pipelines WHERE status = 'completed'")[0]!.n, 301);
    assert.equal(rows(db, 'SELECT count(*) AS n FROM steps')[0]!.n, 301 * 5);
    assert.throws(() => new RunTracker(db, { maxFoldLagBytes: 10 }), /maxFoldLagBytes must be a number ≥ 1024/);
  } finally {
    tracker.close();
    t.cleanup();
  }
});

test('a process that exits while its fold thread waits for a lock another process holds exits cleanly; its journal is replayed later', { timeout: 60_000 }, async () => {
  const t = tempDir();
  try {
    const db = t.file('busy-exit.db');
    const c = spawn(process.execPath, ['--import', 'tsx', child, db, 'busy-exit'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    c.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((resolve) => c.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 30_000;
    while (!out.includes('folding') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(out.includes('folding'), `child did not start: ${err}`);
    const holder = spawn(process.execPath, [lockHolder, db, '4000'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const holderDone = new Promise((resolve) => holder.on('exit', resolve));
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    c.stdin.write('go\n');
    const code = await exited;
    // Before FoldThread.stop waited for the thread, process exit terminated it inside SQLite, which
    // aborts the process ("FATAL ERROR: v8::ToLocalChecked Empty MaybeLocal" from better-sqlite3).
    assert.equal(code, 0, `child exit ${String(code)}: ${err}`);
    assert.doesNotMatch(err, /FATAL/);
    assert.match(err, /reported: .*busy/i, 'the failed exit fold was reported');
    await holderDone;
    const tracker = new RunTracker(db);
    try {
      assert.equal(tracker.getRun('w20')?.status, 'completed'); // opening replays the dead journal
      assert.equal(tracker.stats.recoveredJournals.length, 1, JSON.stringify(tracker.stats.recoveredJournals));
      assert.equal(rows(db, "SELECT count(*) AS n FROM pipelines WHERE status = 'completed'")[0]!.n, 21);
      assert.equal(rows(db, "SELECT count(*) AS n FROM steps WHERE status = 'completed'")[0]!.n, 2 + 20 * 5);
      assert.equal(rows(db, 'PRAGMA integrity_check')[0]!.integrity_check, 'ok');
    } finally {
      tracker.close();
    }
  } finally {
    t.cleanup();
  }
});

test('a replayed write that conflicts with what another process recorded meanwhile is skipped and reported; the rest is replayed', { timeout: 60_000 }, async () => {
  const t = tempDir();
  try {
    const db = t.file('conflict.db');
    const c = await startChild(db);
    await c.kill();
    // Another process recorded a run under the same id before anyone replayed the dead one's journal.
    const raw = new Database(db);
    raw.prepare("INSERT INTO pipelines (id, name, status, started_at) VALUES ('r2', 'other', 'completed', '2026-01-01T00:00:00.000Z')").run();
    raw.close();
    const errors: string[] = [];
    const tracker = new RunTracker(db, { onError: (e) => errors.push(e.message) });
    try {
      assert.equal(tracker.getRun('r2')?.pipelineName, 'other', 'what was recorded is kept');
      const [r] = tracker.stats.recoveredJournals;
      assert.ok(r && r.dropped >= 1 && r.error === undefined, JSON.stringify(tracker.stats.recoveredJournals));
      assert.match(errors.join('\n'), /broke a constraint and were skipped/);
      assert.equal(tracker.getRun('r3')?.status, 'running', 'the rest of the journal was replayed');
      assert.equal(fs.existsSync(`${db}.wpipe-journal`), false);
    } finally {
      tracker.close();
    }
  } finally {
    t.cleanup();
  }
});

test('a journal that cannot be replayed is reported and left in place; the database still opens', { timeout: 60_000 }, async () => {
  const t = tempDir();
  try {
    const db = t.file('unreadable.db');
    const log = await killedChildJournal(db);
    // An intact line holding a write no version of wpipe knows.
    const body = '[[999,"x"]]';
    writeAfterLines(log, `${(zlib.crc32(body) >>> 0).toString(16).padStart(8, '0')} ${body}\n`);
    const errors: string[] = [];
    const tracker = new RunTracker(db, { onError: (e) => errors.push(e.message) });
    try {
      assert.equal(tracker.getRun('r1')?.status, 'completed', 'the database opens and reads');
      assert.match(tracker.stats.recoveredJournals[0]?.error ?? '', /unknown journaled write \(opcode 999\)/);
      assert.match(errors.join('\n'), /failed \(left in place\)/);
      assert.ok(fs.existsSync(log), 'kept for a post-mortem and the next open');
      assert.equal(tracker.getRun('r2'), undefined, 'nothing of that journal was half-applied');
    } finally {
      tracker.close();
    }
  } finally {
    t.cleanup();
  }
});
