/**
 * `Wsqlite` and `SQLite`: the small record writers of the Python original (reference §6.2–6.3),
 * on the same storage engine as run history (WAL, busy retry, one connection per file per thread).
 *
 * Values are stored as JSON text through the declared serializer in lenient mode: what JSON can
 * carry round-trips exactly (and Date, Map, Set, BigInt … are tagged); functions and class
 * instances become readable placeholders such as `"[Function f]"` instead of failing the write.
 *
 * Fixed from the original: `SQLite.write({ recordId })` updates only the fields it is given (the
 * original set the others to NULL); an error thrown in a `Wsqlite.with` block is recorded in the
 * `error` column (the original never recorded it); reads give back values, not raw JSON strings.
 *
 * @example
 * ```ts
 * await Wsqlite.with({ dbName: 'register.db' }, (db) => {
 *   db.input = { x: 1 };
 *   db.output = compute(db.input);
 *   db.details = { host: 'a' };
 * });
 * const store = new SQLite('register.db');
 * const id = store.write({ input: { a: 1 }, output: 'text', details: 'plain' });
 * store.readById(id); // { id, input: { a: 1 }, output: 'text', details: 'plain', datetime: '…' }
 * ```
 */
import { WpipeError, checkOptions, invalidOption, serializeError } from '../errors.js';
import { openDb, type StorageDb } from './db.js';
import { deserialize, serialize } from './serialize.js';
import { nodeCrypto } from '../lazy-builtins.js';

/** Options of {@link Wsqlite}. */
export interface WsqliteOptions {
  /** Path of the SQLite file (created if missing). */
  dbName: string;
  /** SQLite busy wait in ms before the retry with backoff starts (default 1000). */
  busyTimeoutMs?: number;
}

const WSQLITE_OPTIONS = ['dbName', 'busyTimeoutMs'] as const;

function encode(value: unknown): string | null {
  return value === undefined ? null : serialize(value, { mode: 'lenient' });
}

function decodeColumn(text: unknown): unknown {
  return typeof text === 'string' ? deserialize(text) : null;
}

/**
 * One record of the `wsqlitemodel` table, written as it changes: the first assignment inserts the
 * row, each later one updates it, each in its own commit. One instance (one block) is one record.
 *
 * With `Wsqlite.with`, an error thrown in the block is recorded in `error` and re-thrown. With
 * `using db = new Wsqlite(…)` the record is saved and the connection released when the scope ends;
 * JavaScript does not tell a disposer which error is leaving the scope, so in that form assign
 * `db.error = e` in a `catch` yourself.
 *
 * @example
 * ```ts
 * {
 *   using db = new Wsqlite({ dbName: 'register.db' });
 *   db.input = { n: 1 };
 *   db.output = { doubled: 2 };
 * } // saved and released here
 * ```
 */
export class Wsqlite {
  /** A random id for this record, for logs (not stored). */
  readonly recordUuid: string = nodeCrypto().randomUUID();
  private readonly dbName: string;
  private readonly busyTimeoutMs: number | undefined;
  private conn: StorageDb | undefined;
  private rowId: number | undefined;
  private values: { input?: unknown; output?: unknown; details?: unknown; error?: unknown } = {};
  private closed = false;

  constructor(options: WsqliteOptions) {
    checkOptions('Wsqlite', options, WSQLITE_OPTIONS);
    if (options === undefined || typeof options.dbName !== 'string' || options.dbName.length === 0) {
      throw invalidOption('Wsqlite: dbName must be a non-empty string (the SQLite file path)');
    }
    this.dbName = options.dbName;
    this.busyTimeoutMs = options.busyTimeoutMs;
  }

  /**
   * Runs `fn` with a fresh record and saves it; an error thrown (or a rejection) in `fn` is recorded
   * in `error` and re-thrown. Resolves to what `fn` returned.
   *
   * @example
   * ```ts
   * const out = await Wsqlite.with({ dbName: 'register.db' }, async (db) => {
   *   db.input = req;
   *   return (db.output = await handle(req));
   * });
   * ```
   */
  static async with<T>(options: WsqliteOptions, fn: (db: Wsqlite) => T | Promise<T>): Promise<Awaited<T>> {
    if (typeof fn !== 'function') throw invalidOption('Wsqlite.with: the second argument must be a function');
    const db = new Wsqlite(options);
    try {
      const result = await fn(db);
      db.save();
      return result;
    } catch (error) {
      if (!db.closed) {
        db.values.error = serializeError(error);
        try {
          db.save();
        } catch (saveError) {
          // The block's own error matters more; still, a record that could not be written must be heard.
          process.emitWarning(`Wsqlite: could not record the error of a block in ${db.dbName}: ${(saveError as Error).message}`, {
            code: 'WPIPE_ERR_STORAGE',
          });
        }
      }
      throw error;
    } finally {
      db.close();
    }
  }

  /** The row id, once the record has been written. */
  get id(): number | undefined {
    return this.rowId;
  }

  get input(): unknown {
    return this.values.input;
  }
  set input(value: unknown) {
    this.values.input = value;
    this.save();
  }

  get output(): unknown {
    return this.values.output;
  }
  set output(value: unknown) {
    this.values.output = value;
    this.save();
  }

  get details(): unknown {
    return this.values.details;
  }
  set details(value: unknown) {
    this.values.details = value;
    this.save();
  }

  get error(): unknown {
    return this.values.error;
  }
  /** An Error is stored with its class, code, message, stack and cause chain. */
  set error(value: unknown) {
    this.values.error = value instanceof Error ? serializeError(value) : value;
    this.save();
  }

  /** Writes the record now (insert the first time, update after), in its own commit. */
  save(): void {
    if (this.closed) throw new WpipeError('WPIPE_ERR_STORAGE', `Wsqlite: record ${this.rowId ?? '(unsaved)'} of ${this.dbName} was used after it was closed`);
    const db = this.db();
    const v = this.values;
    const params = [encode(v.input), encode(v.output), encode(v.details), encode(v.error)];
    db.transaction(() => {
      if (this.rowId === undefined) {
        const info = db.prepare('INSERT INTO wsqlitemodel (input, output, details, error, datetime) VALUES (?, ?, ?, ?, ?)')
          .run(...params, new Date().toISOString());
        this.rowId = Number(info.lastInsertRowid);
      } else {
        db.prepare('UPDATE wsqlitemodel SET input = ?, output = ?, details = ?, error = ? WHERE id = ?').run(...params, this.rowId);
      }
    });
  }

  /** Number of records in this file's `wsqlitemodel` table. */
  countRecords(): number {
    return (this.db().prepare('SELECT count(*) AS n FROM wsqlitemodel').get() as { n: number }).n;
  }

  /** Saves the record if it was never written, and releases the connection. */
  close(): void {
    if (this.closed) return;
    try {
      if (this.rowId === undefined) this.save();
    } finally {
      this.closed = true;
      this.conn?.close();
      this.conn = undefined;
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  private db(): StorageDb {
    if (!this.conn) this.conn = openDb(this.dbName, this.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: this.busyTimeoutMs });
    return this.conn;
  }
}

/** A record of the `recordmodel` table, as {@link SQLite.readById} returns it. */
export interface StoredRecord {
  id: number;
  input: unknown;
  output: unknown;
  details: unknown;
  datetime: string;
}

/** Arguments of {@link SQLite.write}. */
export interface WriteRecordArgs {
  input?: unknown;
  output?: unknown;
  details?: unknown;
  /** Update this record instead of inserting one; fields left undefined keep their value. */
  recordId?: number;
}

const WRITE_ARGS = ['input', 'output', 'details', 'recordId'] as const;

/**
 * A record writer over the `recordmodel` table; every write is its own commit.
 *
 * @example
 * ```ts
 * using store = new SQLite('register.db');
 * const id = store.write({ input: { a: 1 } });
 * store.write({ output: { b: 2 }, recordId: id }); // input kept
 * store.countRecords(); // 1
 * ```
 */
export class SQLite {
  readonly dbPath: string;
  private conn: StorageDb | undefined;
  private closed = false;

  constructor(dbPath: string) {
    if (typeof dbPath !== 'string' || dbPath.length === 0) throw invalidOption('SQLite: dbPath must be a non-empty string (the SQLite file path)');
    this.dbPath = dbPath;
  }

  /**
   * Inserts a record and returns its id, or with `recordId` updates the given fields of that record
   * (throws `WPIPE_ERR_STORAGE` if it does not exist) and returns the id.
   *
   * @example
   * ```ts
   * const id = store.write({ input: { a: 1 }, output: 'text', details: 'plain' });
   * ```
   */
  write(args: WriteRecordArgs = {}): number {
    checkOptions('SQLite.write', args, WRITE_ARGS);
    const { recordId } = args;
    if (recordId !== undefined && (!Number.isInteger(recordId) || recordId < 1)) {
      throw invalidOption(`SQLite.write: recordId must be a positive integer, got ${String(recordId)}`, 'RangeError');
    }
    const db = this.db();
    return db.transaction(() => {
      if (recordId === undefined) {
        const info = db.prepare('INSERT INTO recordmodel (input, output, details, datetime) VALUES (?, ?, ?, ?)')
          .run(encode(args.input), encode(args.output), encode(args.details), new Date().toISOString());
        return Number(info.lastInsertRowid);
      }
      const sets: string[] = [];
      const params: unknown[] = [];
      for (const key of ['input', 'output', 'details'] as const) {
        if (args[key] !== undefined) {
          sets.push(`${key} = ?`);
          params.push(encode(args[key]));
        }
      }
      const exists = db.prepare('SELECT 1 FROM recordmodel WHERE id = ?').get(recordId);
      if (!exists) {
        throw new WpipeError('WPIPE_ERR_STORAGE', `SQLite.write: record ${recordId} does not exist in ${this.dbPath}`, { details: { recordId } });
      }
      if (sets.length > 0) db.prepare(`UPDATE recordmodel SET ${sets.join(', ')} WHERE id = ?`).run(...params, recordId);
      return recordId;
    });
  }

  /**
   * The record with this id, its values decoded, or undefined.
   *
   * @example
   * ```ts
   * store.readById(1)?.input; // { a: 1 }
   * ```
   */
  readById(id: number): StoredRecord | undefined {
    const row = this.db().prepare('SELECT id, input, output, details, datetime FROM recordmodel WHERE id = ?').get(id) as
      | Record<string, unknown>
      | undefined;
    if (!row) return undefined;
    return {
      id: Number(row.id),
      input: decodeColumn(row.input),
      output: decodeColumn(row.output),
      details: decodeColumn(row.details),
      datetime: String(row.datetime),
    };
  }

  /** Number of records. */
  countRecords(): number {
    return (this.db().prepare('SELECT count(*) AS n FROM recordmodel').get() as { n: number }).n;
  }

  /** Releases the connection. */
  close(): void {
    this.closed = true;
    this.conn?.close();
    this.conn = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private db(): StorageDb {
    if (this.closed) throw new WpipeError('WPIPE_ERR_STORAGE', `SQLite: ${this.dbPath} was used after close()`);
    if (!this.conn) this.conn = openDb(this.dbPath);
    return this.conn;
  }
}
