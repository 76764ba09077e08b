import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Wsqlite, SQLite } from '../src/storage/wsqlite.js';
import { openConnectionCount } from '../src/storage/db.js';
import { TaskError, WpipeError } from '../src/errors.js';
import { tempDir } from './fixtures/storage/tmp.js';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3') as typeof import('better-sqlite3');

function rows(file: string): Record<string, unknown>[] {
  const raw = new Database(file, { readonly: true });
  try {
    return raw.prepare('SELECT * FROM wsqlitemodel ORDER BY id').all() as Record<string, unknown>[];
  } finally {
    raw.close();
  }
}

test('Wsqlite.with writes one record, updated as each value is assigned', async () => {
  const t = tempDir();
  const file = t.file('w.db');
  try {
    const result = await Wsqlite.with({ dbName: file }, (db) => {
      db.input = { x: 1, when: new Date(0) };
      assert.equal(rows(file).length, 1, 'the first assignment inserts at once');
      assert.equal(rows(file)[0]!.output, null);
      db.output = { y: 2 };
      assert.equal(rows(file)[0]!.output, '{"y":2}', 'each assignment is committed as it happens');
      db.details = { host: 'a', fn: () => 0 };
      return 42;
    });
    assert.equal(result, 42);
    const [row] = rows(file);
    assert.equal(row!.input, '{"x":1,"when":{"$t":"Date","v":"1970-01-01T00:00:00.000Z"}}');
    assert.equal(row!.details, '{"host":"a","fn":"[Function fn]"}', 'unsupported values become placeholders, not failures');
    assert.equal(row!.error, null);
    assert.ok(typeof row!.datetime === 'string');
    assert.equal(openConnectionCount(), 0, 'the connection is released');
  } finally {
    t.cleanup();
  }
});

test('an error thrown in a Wsqlite.with block is recorded and re-thrown (sync and async)', async () => {
  const t = tempDir();
  const file = t.file('e.db');
  try {
    const boom = new TaskError('boom', { cause: new Error('root cause') });
    await assert.rejects(Wsqlite.with({ dbName: file }, (db) => {
      db.input = { a: 1 };
      throw boom;
    }), (e: unknown) => e === boom);
    await assert.rejects(Wsqlite.with({ dbName: file }, async () => {
      await new Promise((r) => setTimeout(r, 1));
      throw new RangeError('late');
    }), RangeError);
    const [first, second] = rows(file);
    const err = JSON.parse(String(first!.error)) as { name: string; code: string; message: string; cause: { message: string } };
    assert.equal(err.name, 'TaskError');
    assert.equal(err.code, 'WPIPE_ERR_TASK_FAILED');
    assert.equal(err.cause.message, 'root cause');
    assert.equal(first!.input, '{"a":1}', 'what was written before the error is kept');
    assert.equal(JSON.parse(String(second!.error)).message, 'late');
  } finally {
    t.cleanup();
  }
});

test('using db = new Wsqlite(...) saves on dispose; an empty block still makes a record', () => {
  const t = tempDir();
  const file = t.file('u.db');
  try {
    {
      using db = new Wsqlite({ dbName: file });
      db.input = { n: 1 };
      db.error = new Error('noted by hand');
      assert.equal(db.id, 1);
    }
    {
      using _empty = new Wsqlite({ dbName: file });
    }
    const all = rows(file);
    assert.equal(all.length, 2);
    assert.equal(JSON.parse(String(all[0]!.error)).message, 'noted by hand');
    assert.equal(all[1]!.input, null);
    const db = new Wsqlite({ dbName: file });
    assert.equal(db.countRecords(), 2);
    db.close();
    assert.throws(() => { db.input = 1; }, (e: unknown) => e instanceof WpipeError && /after it was closed/.test(e.message));
    assert.equal(openConnectionCount(), 0);
  } finally {
    t.cleanup();
  }
});

test('Wsqlite option validation', async () => {
  assert.throws(() => new Wsqlite({ dbname: 'x.db' } as never), (e: unknown) => e instanceof TypeError && /did you mean dbName/.test(e.message));
  assert.throws(() => new Wsqlite({ dbName: '' }), TypeError);
  await assert.rejects(Wsqlite.with({ dbName: 'x.db' }, 'nope' as never), TypeError);
});

test('SQLite: write, readById, countRecords, and partial updates that keep other fields', () => {
  const t = tempDir();
  const file = t.file('s.db');
  const store = new SQLite(file);
  try {
    const id = store.write({ input: { a: 1 }, output: 'text', details: 'plain' });
    assert.equal(id, 1);
    const rec = store.readById(id)!;
    assert.deepEqual({ ...rec, datetime: 'x' }, { id: 1, input: { a: 1 }, output: 'text', details: 'plain', datetime: 'x' });
    assert.equal(store.write({ input: 'in', recordId: id }), id);
    const updated = store.readById(id)!;
    assert.equal(updated.input, 'in');
    assert.equal(updated.output, 'text', 'fields not given keep their value (the original nulled them)');
    assert.equal(updated.details, 'plain');
    const id2 = store.write({ output: { big: 2n, at: new Date(1) } });
    assert.equal(id2, 2);
    const r2 = store.readById(id2)!;
    assert.equal(r2.input, null);
    assert.equal((r2.output as { big: bigint }).big, 2n);
    assert.equal(store.countRecords(), 2);
    assert.equal(store.readById(99), undefined);
    assert.throws(() => store.write({ input: 1, recordId: 99 }), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_STORAGE' && /does not exist/.test(e.message));
    assert.throws(() => store.write({ recordId: 0 }), RangeError);
    assert.throws(() => store.write({ inptu: 1 } as never), /did you mean input/);
  } finally {
    store.close();
    t.cleanup();
  }
  assert.throws(() => new SQLite(''), TypeError);
});
