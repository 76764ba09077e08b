import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { openDb, openConnectionCount, StorageDb, storageError } from '../src/storage/db.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../src/storage/schema.js';
import { RunTracker } from '../src/storage/tracker.js';
import { WpipeError } from '../src/errors.js';
import { tempDir } from './fixtures/storage/tmp.js';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3') as typeof import('better-sqlite3');
const lockHolder = fileURLToPath(new URL('./fixtures/storage/lock-holder.mjs', import.meta.url));

test('nothing is opened at import or construction; the file appears on first use', () => {
  const t = tempDir();
  try {
    assert.equal(openConnectionCount(), 0);
    const tracker = new RunTracker(t.file('lazy.db'));
    assert.equal(fs.existsSync(t.file('lazy.db')), false);
    tracker.getRun('nope');
    assert.equal(fs.existsSync(t.file('lazy.db')), true);
    assert.equal(openConnectionCount(), 1);
    tracker.close();
    assert.equal(openConnectionCount(), 0);
  } finally {
    t.cleanup();
  }
});

test('schema: WAL, synchronous=NORMAL, user_version and the migrations table', () => {
  const t = tempDir();
  try {
    const db = openDb(t.file('s.db'));
    assert.equal(db.raw.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(db.raw.pragma('synchronous', { simple: true }), 1);
    assert.equal(db.raw.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    const migrations = db.raw.prepare('SELECT version, name FROM wpipe_migrations ORDER BY version').all() as { version: number }[];
    assert.deepEqual(migrations.map((m) => m.version), MIGRATIONS.map((m) => m.version));
    const tables = (db.raw.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    for (const name of ['pipelines', 'steps', 'attempts', 'events', 'checkpoints', 'alerts_config', 'alerts_fired', 'system_metrics', 'wsqlitemodel', 'recordmodel']) {
      assert.ok(tables.includes(name), `missing table ${name}`);
    }
    db.close();
  } finally {
    t.cleanup();
  }
});

test('migration from version 1 keeps the data and adds the later tables', () => {
  const t = tempDir();
  try {
    const raw = new Database(t.file('m.db'));
    raw.exec('CREATE TABLE wpipe_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
    raw.exec(MIGRATIONS[0]!.sql);
    raw.prepare('INSERT INTO wpipe_migrations VALUES (1, ?, ?)').run(MIGRATIONS[0]!.name, new Date().toISOString());
    raw.pragma('user_version = 1');
    raw.prepare("INSERT INTO pipelines (id, name, status, started_at, parent_pipeline_id) VALUES ('old', 'p', 'completed', '2020-01-01T00:00:00.000Z', 'up')").run();
    raw.prepare(`INSERT INTO steps (pipeline_id, step_order, step_name, status, attempts, started_at, output_data)
      VALUES ('old', 1, 's', 'error', 2, '2020-01-01T00:00:00.000Z', '{"a":1}')`).run();
    const before = raw.prepare('SELECT * FROM steps').all();
    raw.close();
    const db = openDb(t.file('m.db'));
    assert.equal(db.raw.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    assert.equal((db.prepare('SELECT count(*) AS n FROM recordmodel').get() as { n: number }).n, 0);
    assert.equal((db.prepare("SELECT status FROM pipelines WHERE id = 'old'").get() as { status: string }).status, 'completed');
    // Versions 4 and 5 rebuilt pipelines and steps (status checks without IN lists, run owners): rows, keys, indexes kept;
    // version 7 added the steps' worker column (NULL for old rows).
    assert.deepEqual(db.prepare('SELECT * FROM steps').all(), (before as object[]).map((r) => ({ ...r, worker: null })));
    const schema = db.prepare("SELECT type, name, sql FROM sqlite_master WHERE tbl_name IN ('pipelines', 'steps') ORDER BY name").all() as { type: string; name: string; sql: string | null }[];
    assert.deepEqual(schema.map((r) => r.name), ['pipelines', 'pipelines_parent', 'pipelines_running_owner', 'pipelines_started_at', 'steps']);
    for (const r of schema) if (r.type === 'table') assert.doesNotMatch(r.sql!, / IN \(/, r.name);
    assert.equal(db.prepare("SELECT id FROM pipelines WHERE parent_pipeline_id = 'up'").pluck().get(), 'old');
    assert.throws(() => db.transaction(() => db.prepare("UPDATE steps SET status = 'bogus'").run()), /CHECK constraint/);
    assert.throws(() => db.transaction(() => db.prepare("INSERT INTO steps (pipeline_id, step_order, step_name, status, started_at) VALUES ('old', 1, 's', 'completed', 'x')").run()), /UNIQUE|PRIMARY/);
    assert.equal(db.raw.pragma('integrity_check', { simple: true }), 'ok');
    db.close();
  } finally {
    t.cleanup();
  }
});

test('a database from a newer wpipe is refused with a clear error', () => {
  const t = tempDir();
  try {
    const raw = new Database(t.file('n.db'));
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    assert.throws(() => openDb(t.file('n.db')), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_STORAGE' && /newer/.test(e.message));
    assert.equal(openConnectionCount(), 0);
  } finally {
    t.cleanup();
  }
});

test('one connection per file per thread, reference-counted; prepared statements cached', () => {
  const t = tempDir();
  try {
    const a = openDb(t.file('c.db'));
    const b = openDb(`${t.dir}/./c.db`);
    assert.equal(a, b);
    assert.equal(a.prepare('SELECT 1'), a.prepare('SELECT 1'));
    a.close();
    assert.ok(b.isOpen);
    b.close();
    assert.equal(b.isOpen, false);
    assert.equal(openConnectionCount(), 0);
    const c = openDb(t.file('c.db'));
    assert.notEqual(c, a);
    c.close();
  } finally {
    t.cleanup();
  }
});

test('SQLite errors become WPIPE_ERR_STORAGE and keep SQLite code in cause and details', () => {
  const t = tempDir();
  try {
    const db = openDb(t.file('e.db'));
    const insert = () => db.prepare("INSERT INTO pipelines (id, name, status, started_at) VALUES ('x', 'p', 'running', 'now')").run();
    db.transaction(insert);
    assert.throws(() => db.transaction(insert), (e: unknown) => {
      assert.ok(e instanceof WpipeError);
      assert.equal(e.code, 'WPIPE_ERR_STORAGE');
      assert.equal(e.errorCode, 504);
      assert.equal(e.details.sqliteCode, 'SQLITE_CONSTRAINT_PRIMARYKEY');
      assert.equal((e.cause as { code: string }).code, 'SQLITE_CONSTRAINT_PRIMARYKEY');
      return true;
    });
    // The failed transaction was rolled back: the connection is usable.
    assert.equal(db.raw.inTransaction, false);
    assert.throws(() => db.transaction(() => db.prepare("UPDATE pipelines SET status = 'bogus'").run()), /CHECK constraint/);
    db.close();
    assert.throws(() => openDb(t.file('missing.db'), { fileMustExist: true }), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_STORAGE');
    const wrapped = storageError(Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_WRITE' }), 'commit', 'f.db');
    assert.equal(wrapped.details.sqliteCode, 'SQLITE_IOERR_WRITE');
  } finally {
    t.cleanup();
  }
});

test('option validation: unknown options get a hint, bad values a RangeError', () => {
  assert.throws(() => openDb('x.db', { busyTimeout: 5 } as never), (e: unknown) => e instanceof TypeError && /did you mean busyTimeoutMs/.test(e.message));
  assert.throws(() => openDb('x.db', { busyTimeoutMs: -1 }), RangeError);
  assert.throws(() => openDb(''), TypeError);
  assert.throws(() => new RunTracker('x.db', { durabilty: 'run' } as never), /did you mean durability/);
  assert.throws(() => new RunTracker('x.db', { durability: 'never' as never }), RangeError);
});

function holdLock(file: string, ms: number): Promise<{ done: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [lockHolder, file, String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const done = new Promise<void>((res) => child.on('exit', () => res()));
    child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('locked')) resolve({ done }); });
    child.on('error', reject);
  });
}

test('SQLITE_BUSY on BEGIN IMMEDIATE is retried with backoff until the lock is free', async () => {
  const t = tempDir();
  try {
    const file = t.file('busy.db');
    openDb(file).close();
    const db = openDb(file, { busyTimeoutMs: 5 });
    const { done } = await holdLock(file, 300);
    db.transaction(() => db.prepare("INSERT INTO events (event_type, event_name, created_at) VALUES ('t', 'n', 'now')").run());
    // The lock was held when the transaction began (the child said so before we started), so the
    // write got through only by retrying: counted, not timed (a wall-clock bound raced the child).
    assert.ok(db.stats.busyRetries > 0, 'the application-level retry stepped in');
    assert.equal(db.prepare("SELECT count(*) FROM events WHERE event_name = 'n'").pluck().get(), 1);
    db.close();
    await done;
  } finally {
    t.cleanup();
  }
});

test('past the retry deadline SQLITE_BUSY surfaces as WPIPE_ERR_STORAGE with the SQLite code', async () => {
  const t = tempDir();
  try {
    const file = t.file('busy2.db');
    openDb(file).close();
    const db = openDb(file, { busyTimeoutMs: 5, busyDeadlineMs: 60 });
    const { done } = await holdLock(file, 600);
    assert.throws(() => db.transaction(() => 0), (e: unknown) => {
      assert.ok(e instanceof WpipeError && e.code === 'WPIPE_ERR_STORAGE');
      assert.match(String(e.details.sqliteCode), /^SQLITE_BUSY/);
      return true;
    });
    db.close();
    await done;
  } finally {
    t.cleanup();
  }
});

test('StorageDb.wrap adopts a caller-owned connection and leaves it open', () => {
  const t = tempDir();
  try {
    const raw = new Database(t.file('w.db'));
    const db = StorageDb.wrap(raw);
    assert.equal(raw.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    db.close();
    assert.ok(raw.open);
    raw.close();
  } finally {
    t.cleanup();
  }
});

test('a statement that failed against a schema another connection broke works again as soon as it is mended', () => {
  const t = tempDir();
  const file = t.file('schema.db');
  const db = openDb(file);
  try {
    db.raw.exec('CREATE TABLE things (id INTEGER PRIMARY KEY)');
    const insert = db.prepare('INSERT INTO things (id) VALUES (?)');
    db.transaction(() => insert.run(1));
    const other = new Database(file);
    // The cached statement is recompiled with the trigger, which calls a function nobody has.
    other.exec('CREATE TRIGGER broken BEFORE INSERT ON things BEGIN SELECT no_such_function(); END');
    for (const id of [2, 3]) {
      assert.throws(() => db.transaction(() => insert.run(id)), (e: WpipeError) => e.code === 'WPIPE_ERR_STORAGE' && e.details.sqliteCode === 'SQLITE_ERROR');
    }
    other.exec('DROP TRIGGER broken');
    other.close();
    // SQLite alone would fail here until something made this connection reload its schema.
    db.transaction(() => insert.run(4));
    assert.deepEqual(db.raw.prepare('SELECT id FROM things ORDER BY id').pluck().all(), [1, 4]);
  } finally {
    db.close();
    t.cleanup();
  }
});

test('page size: new files get 1 KiB pages and a 16 MiB autocheckpoint; existing files keep theirs', () => {
  const t = tempDir();
  try {
    const db = openDb(t.file('new.db'));
    assert.equal(db.raw.pragma('page_size', { simple: true }), 1024);
    assert.equal(db.raw.pragma('wal_autocheckpoint', { simple: true }), 16384);
    db.close();
    const old = new Database(t.file('old.db'));
    old.exec('CREATE TABLE x (a)');
    old.close();
    const reopened = openDb(t.file('old.db'), { pageSize: 1024 });
    assert.equal(reopened.raw.pragma('page_size', { simple: true }), 4096);
    assert.equal(reopened.raw.pragma('wal_autocheckpoint', { simple: true }), 4096);
    reopened.close();
    const chosen = openDb(t.file('big.db'), { pageSize: 8192, walAutocheckpoint: 100 });
    assert.equal(chosen.raw.pragma('page_size', { simple: true }), 8192);
    assert.equal(chosen.raw.pragma('wal_autocheckpoint', { simple: true }), 100);
    chosen.close();
    assert.throws(() => openDb(t.file('bad.db'), { pageSize: 1000 }), RangeError);
  } finally {
    t.cleanup();
  }
});
