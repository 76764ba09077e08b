import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import zlib from 'node:zlib';
import { RunTracker } from '../src/storage/tracker.js';
import { HistoryQuery } from '../src/storage/query.js';
import { readJournal } from '../src/storage/journal.js';
import { rows, tempDir } from './fixtures/storage/tmp.js';
import { WpipeError } from '../src/errors.js';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3') as typeof import('better-sqlite3');
const child = fileURLToPath(new URL('./fixtures/storage/journal-child.ts', import.meta.url));

/** Records one completed run of one step. */
function runOneStep(tracker: RunTracker, id: string): void {
  tracker.startRun({ runId: id, pipelineName: 'p', fresh: true });
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

/** A journal line as the writer encodes it: checksum, space, body, newline. */
function line(body: string): string {
  return `${(zlib.crc32(body) >>> 0).toString(16).padStart(8, '0')} ${body}\n`;
}

test('kill -9: a live journal is caught up by readers; once its owner is dead it is replayed once, its run in flight marked interrupted', { timeout: 60_000 }, async () => {
  const t = tempDir();
  try {
    const db = t.file('j.db');
    const c = await startChild(db);
    const dir = `${db}.wpipe-journal`;
    // While the owner lives, a reader folds what its journal holds and leaves the journal to it.
    const early = new RunTracker(db);
    assert.equal(early.getRun('r2')?.status, 'completed', 'a finished run is seen although its owner never folded it');
    assert.equal(early.getRun('r3')?.status, 'running', 'its owner is alive: still running');
    assert.deepEqual(early.stats.interruptedRuns, []);
    early.close();
    assert.equal(fs.readdirSync(dir).filter((n) => n.endsWith('.log')).length, 1, 'a live journal is not removed');
    await c.kill();

    const tracker = new RunTracker(db);
    try {
      assert.equal(tracker.getRun('r3')?.status, 'interrupted', 'the dead owner\'s run in flight');
      assert.deepEqual(tracker.stats.interruptedRuns, ['r3']);
      assert.equal(fs.existsSync(dir), false, `the replayed journal is removed: ${fs.existsSync(dir) ? fs.readdirSync(dir).join(', ') : ''}`);
      assert.deepEqual(rows(db, 'SELECT id, status FROM pipelines ORDER BY id'), [
        { id: 'r1', status: 'completed' }, { id: 'r2', status: 'completed' }, { id: 'r3', status: 'interrupted' },
      ]);
      assert.deepEqual(rows(db, "SELECT step_name, status FROM steps WHERE pipeline_id = 'r3' ORDER BY step_order").map((r) => `${String(r.step_name)}:${String(r.status)}`),
        ['s0:completed', 's1:completed', 's2:completed', 's3:interrupted'], 'everything up to the step in flight');
      assert.equal(rows(db, "SELECT count(*) AS n FROM steps WHERE pipeline_id IN ('r1', 'r2')")[0]!.n, 10, 'no step applied twice');
      const resumed = tracker.resumeRun({ runId: 'r3' });
      assert.equal(resumed.outcome, 'resumed');
      assert.ok(resumed.outcome === 'resumed' && resumed.previousStatus === 'interrupted' && resumed.checkpoint?.position === 2
        && (resumed.checkpoint.context as { at: Date }).at instanceof Date, 'the checkpoint saved with a journaled boundary survives');
      assert.equal(rows(db, 'PRAGMA integrity_check')[0]!.integrity_check, 'ok');
    } finally {
      tracker.close();
    }
  } finally {
    t.cleanup();
  }
});

test('a corrupt line is skipped and counted, the lines after it still apply, the log is quarantined and the runs named', { timeout: 60_000 }, async () => {
  const t = tempDir();
  try {
    const db = t.file('corrupt.db');
    const log = await killedChildJournal(db);
    const intact = readJournal(log, 0);
    assert.deepEqual(intact.skipped, []);
    const text = fs.readFileSync(log, 'utf8');
    const lines = text.split('\n');
    // Flip one byte inside the line that finishes run r2's third step (a bit rot on disk), zero
    // another line out entirely, and append a torn line (a crash mid-write).
    const target = lines.findIndex((l) => l.includes('"r2"') && l.includes('"s3"'));
    assert.ok(target > 0);
    lines[target] = lines[target]!.replace('"r2"', '"r9"');
    const zeroed = lines.findIndex((l, i) => i > target && l.includes('"r2"'));
    lines[zeroed] = '\0'.repeat(lines[zeroed]!.length);
    fs.writeFileSync(log, `${lines.join('\n')}${line('[[8,"r3",null,"note","after",null,null,null,"2026-01-01T00:00:00.000Z"]]')}0badc0de [[8`);
    const read = readJournal(log, 0);
    assert.equal(read.skipped.length, 2);
    assert.equal(read.torn, true);
    assert.ok(read.skippedRuns.includes('r9'), 'a damaged line whose JSON still parses names its run');
    const errors: { code: string; message: string; details: Record<string, unknown> }[] = [];
    const tracker = new RunTracker(db, { onError: (e) => errors.push(e) });
    try {
      assert.equal(tracker.getRun('r3')?.status, 'interrupted', 'lines after the bad ones applied');
      assert.equal(rows(db, "SELECT count(*) AS n FROM events WHERE event_name = 'after'")[0]!.n, 1, 'the intact line after the damage applied');
      const [damaged] = tracker.stats.damagedJournals;
      assert.equal(damaged?.skipped.length, 2);
      assert.ok(damaged?.quarantined?.endsWith('.corrupt') && fs.existsSync(damaged.quarantined), 'the log is kept, renamed');
      const report = errors.find((e) => e.code === 'WPIPE_ERR_JOURNAL_CORRUPT');
      assert.ok(report, JSON.stringify(errors.map((e) => e.message)));
      assert.match(report.message, /2 line\(s\) failed their checksum/);
      assert.match(report.message, /r9/);
      assert.equal(report.details.skippedLines, 2);
    } finally {
      tracker.close();
    }
  } finally {
    t.cleanup();
  }
});

test('a reader on the same connection sees what this thread wrote at once (read-your-writes)', () => {
  const t = tempDir();
  const db = t.file('ryw.db');
  const tracker = new RunTracker(db, { autoFlushMs: 600_000 });
  const query = new HistoryQuery(db);
  try {
    tracker.startRun({ runId: 'mine', pipelineName: 'p', fresh: true });
    const id = tracker.startStep({ runId: 'mine', name: 's' });
    tracker.finishStep({ stepId: id, status: 'completed' });
    tracker.finishRun({ runId: 'mine', status: 'completed' });
    assert.ok(tracker.unfoldedWrites > 0);
    assert.equal(rows(db, 'SELECT count(*) AS n FROM pipelines')[0]!.n, 0, 'a plain SQLite connection does not see it yet');
    assert.equal(query.getRunDetail('mine')?.status, 'completed');
    assert.equal(tracker.unfoldedWrites, 0);
  } finally {
    query.close();
    tracker.close();
    t.cleanup();
  }
});

test('a journal append that fails (disk full, I/O error) makes that boundary a SQLite commit, reports it, and starts a new journal', () => {
  const t = tempDir();
  const db = t.file('broken.db');
  const errors: string[] = [];
  const tracker = new RunTracker(db, { autoFlushMs: 600_000, onError: (e) => errors.push(e.message) });
  try {
    tracker.startRun({ runId: 'b', pipelineName: 'p', fresh: true });
    const s1 = tracker.startStep({ runId: 'b', name: 's1' });
    // Take the journal's file descriptor away: the next write(2) fails with EBADF.
    const journal = (tracker as unknown as { c: { journalHandle: { fd: number } } }).c.journalHandle;
    fs.closeSync(journal.fd);
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

test('a fold that fails keeps the journaled writes; the next run start fails loudly at once until a fold succeeds; close() leaves the journal for the next open', { timeout: 60_000 }, async () => {
  const t = tempDir();
  const db = t.file('broken-fold.db');
  const errors: string[] = [];
  const open = (): RunTracker => new RunTracker(db, { onError: (e) => errors.push(e.message) });
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
    const t0 = performance.now();
    assert.throws(() => runOneStep(tracker, 'during-2'), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_STORAGE' && /no run can start/.test(e.message));
    assert.ok(performance.now() - t0 < 1000, 'fails at once, no stall');
    // A chosen id is claimed through SQLite: it cannot start (let alone run again) while writes fail.
    assert.throws(() => tracker.startRun({ runId: 'before', pipelineName: 'p' }), WpipeError);
    assert.equal(completedRuns(db), 1);
    mendSchema();
    tracker.flush();
    assert.equal(completedRuns(db), 2, 'the writes of the failed fold were kept');
    breakSchema();
    runOneStep(tracker, 'at-exit');
    assert.throws(() => tracker.close(), /no_such_function/);
    mendSchema();
    tracker = open();
    assert.equal(tracker.getRun('at-exit')?.status, 'completed', 'replayed when the database is opened next');
    tracker.close();
    assert.equal(completedRuns(db), 3);
    assert.deepEqual(fs.existsSync(`${db}.wpipe-journal`) ? fs.readdirSync(`${db}.wpipe-journal`) : [], []);
    // Without a journal, a boundary whose commit fails throws, and its writes wait in memory.
    tracker = new RunTracker(db, { journal: false });
    runOneStep(tracker, 'no-journal-before');
    breakSchema();
    tracker.startRun({ runId: 'no-journal', pipelineName: 'p', fresh: true });
    assert.throws(() => tracker.startStep({ runId: 'no-journal', name: 's' }), /no_such_function/);
    mendSchema();
    tracker.flush();
    assert.equal(rows(db, "SELECT status FROM pipelines WHERE id = 'no-journal'")[0]?.status, 'running');
    tracker.close();
    assert.equal(rows(db, "SELECT status FROM pipelines WHERE id = 'no-journal'")[0]?.status, 'interrupted', 'close() records a run in flight as interrupted');
    // Memory is bounded: writes in no journal that pile up past the queue's bound (10,000) while
    // every commit fails are dropped, and the error counts them.
    tracker = new RunTracker(db, { journal: false, durability: 'run' });
    runOneStep(tracker, 'bounded-before');
    breakSchema();
    tracker.startRun({ runId: 'bounded', pipelineName: 'p', fresh: true });
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

test('a journal no version can apply is reported and left in place; nothing of it is half-applied; the database still opens and reads', { timeout: 60_000 }, async () => {
  const t = tempDir();
  try {
    const db = t.file('unreadable.db');
    const log = await killedChildJournal(db);
    // An intact line holding a write no version of wpipe knows.
    fs.appendFileSync(log, line('[[999,"x"]]'));
    const errors: string[] = [];
    const tracker = new RunTracker(db, { onError: (e) => errors.push(e.message) });
    try {
      assert.equal(tracker.getRun('r1')?.status, 'completed', 'the database opens and reads');
      assert.match(errors.join('\n'), /cannot be applied \(left in place\): unknown journaled write \(opcode 999\)/);
      assert.ok(fs.existsSync(log), 'kept for a post-mortem and a later version');
      assert.equal(tracker.getRun('r2'), undefined, 'nothing of that journal was half-applied');
    } finally {
      tracker.close();
    }
  } finally {
    t.cleanup();
  }
});
