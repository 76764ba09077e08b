/**
 * The SQLite engine under run history, checkpoints, Wsqlite/SQLite and the exporter.
 *
 * - Opened lazily: importing this module opens nothing; {@link openDb} does, on first use.
 * - One connection per database file per thread: a small cache keyed by the resolved path, shared by
 *   every tracker, record writer and exporter of this thread and reference-counted; the last
 *   {@link StorageDb.close} closes it. (better-sqlite3 connections must not cross threads; module
 *   state is per isolate, so each worker thread naturally gets its own cache.)
 * - WAL, `synchronous=NORMAL`: a commit is an append to the WAL, which survives `kill -9` of the
 *   process; only an OS crash or power loss can lose the last commits (never corrupt the file).
 * - Writes go through {@link StorageDb.transaction}: `BEGIN IMMEDIATE` takes the write lock up front, so
 *   a transaction never fails half-way on a lock upgrade. `busy_timeout` absorbs short waits; when it
 *   runs out, `BEGIN IMMEDIATE` is retried with full-jitter exponential backoff until a deadline, so
 *   many processes writing one file do not see `SQLITE_BUSY`.
 * - Errors are `WpipeError` with code `WPIPE_ERR_STORAGE`; SQLite's own error (with its `code`, e.g.
 *   `SQLITE_CONSTRAINT_PRIMARYKEY`) is kept as `cause` and in `details.sqliteCode`.
 *
 * @example
 * ```ts
 * const db = openDb('runs.db');
 * db.transaction(() => db.prepare('INSERT INTO events(event_type, event_name, created_at) VALUES (?, ?, ?)')
 *   .run('note', 'hello', new Date().toISOString()));
 * db.close();
 * ```
 */
import path from 'node:path';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { WpipeError, checkOptions, invalidOption } from '../errors.js';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.js';

type Database = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement;
type DatabaseCtor = new (filename: string, options?: BetterSqlite3.Options) => Database;

/** Options of {@link openDb}. */
export interface OpenDbOptions {
  /** SQLite's own busy wait for a lock, in ms, before the application-level retry starts (default 1000). */
  busyTimeoutMs?: number;
  /** Total time `BEGIN IMMEDIATE` keeps retrying on `SQLITE_BUSY` before giving up, in ms (default 60000). */
  busyDeadlineMs?: number;
  /** Fail instead of creating the file when it does not exist (default false). */
  fileMustExist?: boolean;
  /**
   * WAL pages after which a commit checkpoints the WAL into the database (default: 16 MiB worth of
   * pages, i.e. 16384 pages of 1 KiB).
   */
  walAutocheckpoint?: number;
  /**
   * Page size of a database this call creates (ignored for an existing file, whose page size is
   * fixed): a power of two from 512 to 65536, default {@link DEFAULT_PAGE_SIZE}.
   */
  pageSize?: number;
}

const OPEN_OPTIONS = ['busyTimeoutMs', 'busyDeadlineMs', 'fileMustExist', 'walAutocheckpoint', 'pageSize'] as const;

/**
 * Page size of new databases. A step boundary rewrites one small row, so a commit is usually one
 * leaf page (plus a few on a b-tree split): each WAL frame is a whole page, and every WAL byte is
 * written to disk again by the checkpoint's fsync. 1 KiB pages write about 2.6× fewer WAL bytes per
 * boundary than 4 KiB pages (2.8 KB vs 7.3 KB), which halves the checkpoint cost on a disk
 * (bench/storage.ts measures it); on tmpfs the two are within noise.
 */
export const DEFAULT_PAGE_SIZE = 1024;
/** Default WAL size that triggers a checkpoint, in bytes (converted to pages of the file's size). */
const WAL_AUTOCHECKPOINT_BYTES = 16 * 1024 * 1024;

/** Counters for tests and benchmarks: how often the busy retry had to step in. */
export interface StorageStats {
  transactions: number;
  busyRetries: number;
}

// better-sqlite3 is CommonJS and loads a native addon: require it on first open, never at import.
let DatabaseClass: DatabaseCtor | undefined;
function loadDriver(): DatabaseCtor {
  if (!DatabaseClass) DatabaseClass = createRequire(import.meta.url)('better-sqlite3') as DatabaseCtor;
  return DatabaseClass;
}

const cache = new Map<string, StorageDb>();
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread for `ms` (the driver is synchronous, so a retry wait must be too). */
function sleepSync(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

/** True for `SQLITE_BUSY` and its extended codes (`SQLITE_BUSY_RECOVERY`, `SQLITE_BUSY_SNAPSHOT` …). */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/**
 * Wraps a driver error as `WPIPE_ERR_STORAGE`, keeping SQLite's code. A WpipeError passes through.
 *
 * @example
 * ```ts
 * try { stmt.run(); } catch (e) { throw storageError(e, 'insert run', db.path); }
 * ```
 */
export function storageError(error: unknown, operation: string, file: string): WpipeError {
  if (error instanceof WpipeError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const sqliteCode = typeof code === 'string' ? code : undefined;
  const message = error instanceof Error ? error.message : String(error);
  return new WpipeError('WPIPE_ERR_STORAGE', `${operation} failed on ${file}: ${message}${sqliteCode ? ` (${sqliteCode})` : ''}`, {
    cause: error,
    details: { sqliteCode, file, operation },
  });
}

/**
 * One shared connection to one database file, with its prepared statements cached by SQL text.
 * Obtain it with {@link openDb}; call {@link StorageDb.close} once per `openDb`.
 *
 * @example
 * ```ts
 * const db = openDb('runs.db');
 * const row = db.prepare('SELECT count(*) AS n FROM pipelines').get() as { n: number };
 * db.close();
 * ```
 */
export class StorageDb {
  /** The resolved file path (or `:memory:`). */
  readonly path: string;
  /** The better-sqlite3 connection, for what this class does not cover. */
  readonly raw: Database;
  readonly stats: StorageStats = { transactions: 0, busyRetries: 0 };
  private readonly statements = new Map<string, Statement>();
  private readonly begin: Statement;
  private readonly commit: Statement;
  private readonly rollback: Statement;
  private readonly busyDeadlineMs: number;
  private refs = 1;
  private readonly owned: boolean;
  private closed = false;
  /**
   * Set when a transaction failed with a plain `SQLITE_ERROR`, which is what a statement gets when
   * another connection changed the schema under it (a trigger, a dropped table, a migration): the
   * statement is recompiled against this connection's cached schema, and if that fails it keeps
   * failing, even once the schema is mended, until something makes the connection reload it. The
   * next transaction does that first (a read of `sqlite_schema` checks the schema's version).
   */
  private schemaSuspect = false;

  /** @internal Use {@link openDb} or {@link StorageDb.wrap}. */
  constructor(file: string, raw: Database, busyDeadlineMs: number, owned: boolean) {
    this.path = file;
    this.raw = raw;
    this.busyDeadlineMs = busyDeadlineMs;
    this.owned = owned;
    this.begin = raw.prepare('BEGIN IMMEDIATE');
    this.commit = raw.prepare('COMMIT');
    this.rollback = raw.prepare('ROLLBACK');
  }

  /**
   * Adopts a better-sqlite3 connection the caller already has (STYLE 13: accept an existing
   * database). Applies the pragmas and migrations; {@link close} leaves the connection open.
   *
   * @example
   * ```ts
   * const db = StorageDb.wrap(new Database('runs.db'));
   * ```
   */
  static wrap(raw: Database, options: Pick<OpenDbOptions, 'busyDeadlineMs' | 'walAutocheckpoint' | 'pageSize'> = {}): StorageDb {
    const db = new StorageDb(raw.name, raw, options.busyDeadlineMs ?? 60_000, false);
    db.setup(options.walAutocheckpoint, options.pageSize ?? DEFAULT_PAGE_SIZE);
    return db;
  }

  private readonly pendingSources = new Set<() => void>();

  /**
   * @internal Writers holding writes that are durable but not in SQLite yet (a tracker's step
   * journal) register a fold here; readers of this connection call {@link syncPending} first, so a
   * thread always reads what it wrote. Returns the function that unregisters it.
   */
  addPendingSource(fold: () => void): () => void {
    this.pendingSources.add(fold);
    return () => this.pendingSources.delete(fold);
  }

  /** Folds every registered writer's pending writes into the database (see {@link addPendingSource}). */
  syncPending(): void {
    for (const fold of this.pendingSources) fold();
  }

  /** Whether the connection is still usable. */
  get isOpen(): boolean {
    return !this.closed && this.raw.open;
  }

  /** A prepared statement for `sql`, compiled once per connection. */
  prepare(sql: string): Statement {
    let stmt = this.statements.get(sql);
    if (stmt === undefined) {
      try {
        stmt = this.raw.prepare(sql);
      } catch (error) {
        throw storageError(error, 'prepare', this.path);
      }
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  /**
   * Runs `fn` inside `BEGIN IMMEDIATE … COMMIT` (rolled back if `fn` throws). Nested calls join the
   * outer transaction. `SQLITE_BUSY` on `BEGIN` is retried with jittered backoff up to the deadline.
   *
   * @example
   * ```ts
   * db.transaction(() => { a.run(); b.run(); }); // one commit
   * ```
   */
  transaction<T>(fn: () => T): T {
    const raw = this.raw;
    if (raw.inTransaction) return fn();
    this.beginImmediate();
    let result: T;
    try {
      if (this.schemaSuspect) {
        this.prepare('SELECT 1 FROM sqlite_schema LIMIT 0').get();
        this.schemaSuspect = false;
      }
      result = fn();
    } catch (error) {
      if (raw.inTransaction) this.rollback.run();
      const wrapped = storageError(error, 'transaction', this.path);
      if (wrapped.details.sqliteCode === 'SQLITE_ERROR') this.schemaSuspect = true;
      throw wrapped;
    }
    try {
      this.commit.run();
    } catch (error) {
      if (raw.inTransaction) this.rollback.run();
      throw storageError(error, 'commit', this.path);
    }
    this.stats.transactions++;
    return result;
  }

  private beginImmediate(): void {
    let deadline = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        this.begin.run();
        return;
      } catch (error) {
        if (!isBusy(error)) throw storageError(error, 'BEGIN IMMEDIATE', this.path);
        const now = Date.now();
        if (deadline === 0) deadline = now + this.busyDeadlineMs;
        if (now >= deadline) {
          throw storageError(error, `BEGIN IMMEDIATE (still busy after ${now - deadline + this.busyDeadlineMs} ms of retries)`, this.path);
        }
        this.stats.busyRetries++;
        // Full jitter: writers that collided do not retry in lockstep.
        const cap = Math.min(100, 2 ** Math.min(attempt, 7));
        sleepSync(Math.max(0.2, Math.random() * cap));
      }
    }
  }

  /** Runs a statement outside any explicit transaction, retrying if the database is busy. */
  runWithRetry(fn: () => void, operation: string): void {
    let deadline = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        fn();
        return;
      } catch (error) {
        if (!isBusy(error)) throw storageError(error, operation, this.path);
        const now = Date.now();
        if (deadline === 0) deadline = now + this.busyDeadlineMs;
        if (now >= deadline) throw storageError(error, operation, this.path);
        this.stats.busyRetries++;
        sleepSync(Math.max(0.2, Math.random() * Math.min(100, 2 ** Math.min(attempt, 7))));
      }
    }
  }

  /** @internal Pragmas and migrations, once per connection. */
  setup(walAutocheckpoint: number | undefined, pageSize: number = DEFAULT_PAGE_SIZE): void {
    const raw = this.raw;
    // An empty file takes the page size before its first table (and before WAL is on); a file
    // with content keeps its own (SQLite ignores the pragma then). A racing creator is harmless:
    // whoever writes the first page decides, and every size works.
    if ((raw.pragma('page_count', { simple: true }) as number) === 0) raw.pragma(`page_size = ${pageSize}`);
    // journal_mode needs a moment of exclusive access the first time: another process may hold it.
    this.runWithRetry(() => {
      if (this.path !== ':memory:' && this.path !== '') raw.pragma('journal_mode = WAL');
    }, 'PRAGMA journal_mode=WAL');
    raw.pragma('synchronous = NORMAL');
    const filePageSize = raw.pragma('page_size', { simple: true }) as number;
    const autocheckpoint = walAutocheckpoint ?? Math.ceil(WAL_AUTOCHECKPOINT_BYTES / filePageSize);
    raw.pragma(`wal_autocheckpoint = ${Math.trunc(autocheckpoint)}`);
    // Keep an oversized WAL from staying on disk after a burst (64 MiB).
    raw.pragma('journal_size_limit = 67108864');
    raw.pragma('temp_store = MEMORY');
    migrate(this);
  }

  /** Gives back one reference; the connection closes when the last user has closed it. */
  close(): void {
    if (this.closed) return;
    if (--this.refs > 0) return;
    this.closed = true;
    if (cache.get(this.path) === this) cache.delete(this.path);
    if (this.owned && this.raw.open) {
      try {
        // A last passive checkpoint keeps the WAL short for the next opener; failure is harmless.
        this.raw.pragma('wal_checkpoint(PASSIVE)');
      } catch {
        /* another process may hold the checkpoint lock */
      }
      this.raw.close();
    }
  }

  /** @internal */
  acquire(): this {
    this.refs++;
    return this;
  }
}

/** Applies pending migrations in one `BEGIN IMMEDIATE` transaction (safe when processes race). */
function migrate(db: StorageDb): void {
  const raw = db.raw;
  const current = raw.pragma('user_version', { simple: true }) as number;
  if (current === SCHEMA_VERSION) return;
  if (current > SCHEMA_VERSION) {
    throw new WpipeError(
      'WPIPE_ERR_STORAGE',
      `${db.path} has schema version ${current}, newer than the ${SCHEMA_VERSION} this wpipe understands: upgrade wpipe`,
      { details: { file: db.path, schemaVersion: current, supported: SCHEMA_VERSION } },
    );
  }
  db.transaction(() => {
    raw.exec(`CREATE TABLE IF NOT EXISTS wpipe_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
    // Re-read under the write lock: another process may have migrated while we waited.
    const version = raw.pragma('user_version', { simple: true }) as number;
    for (const m of MIGRATIONS) {
      if (m.version <= version) continue;
      raw.exec(m.sql);
      raw.prepare('INSERT OR REPLACE INTO wpipe_migrations(version, name, applied_at) VALUES (?, ?, ?)')
        .run(m.version, m.name, new Date().toISOString());
      raw.pragma(`user_version = ${m.version}`);
    }
  });
}

/**
 * Opens (or reuses) this thread's connection to `file`, creating and migrating the schema as needed.
 * Every call must be matched by one {@link StorageDb.close}.
 *
 * @example
 * ```ts
 * const db = openDb('runs.db', { busyTimeoutMs: 2000 });
 * try { console.log(db.raw.pragma('integrity_check', { simple: true })); } finally { db.close(); }
 * ```
 */
export function openDb(file: string, options: OpenDbOptions = {}): StorageDb {
  checkOptions('openDb', options, OPEN_OPTIONS);
  if (typeof file !== 'string' || file.length === 0) {
    throw invalidOption(`openDb: the database path must be a non-empty string, got ${typeof file}`);
  }
  const busyTimeoutMs = positive('busyTimeoutMs', options.busyTimeoutMs, 1000);
  const busyDeadlineMs = positive('busyDeadlineMs', options.busyDeadlineMs, 60_000);
  const walAutocheckpoint = options.walAutocheckpoint === undefined ? undefined : positive('walAutocheckpoint', options.walAutocheckpoint, 0);
  const pageSize = positive('pageSize', options.pageSize, DEFAULT_PAGE_SIZE);
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
    throw invalidOption(`openDb: pageSize must be a power of two from 512 to 65536, got ${pageSize}`, 'RangeError');
  }
  const memory = file === ':memory:';
  const key = memory ? file : path.resolve(file);
  if (!memory) {
    const hit = cache.get(key);
    if (hit && hit.isOpen) return hit.acquire();
  }
  const Driver = loadDriver();
  let raw: Database;
  try {
    raw = new Driver(key, { timeout: busyTimeoutMs, fileMustExist: options.fileMustExist === true });
  } catch (error) {
    throw storageError(error, 'open', key);
  }
  const db = new StorageDb(key, raw, busyDeadlineMs, true);
  try {
    db.setup(walAutocheckpoint, pageSize);
  } catch (error) {
    raw.close();
    throw storageError(error, 'open', key);
  }
  if (!memory) cache.set(key, db);
  return db;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value)) throw invalidOption(`openDb: ${name} must be a number, got ${typeof value}`);
  if (value < 0 || !Number.isFinite(value)) throw invalidOption(`openDb: ${name} must be a finite number ≥ 0, got ${value}`, 'RangeError');
  return value;
}

/** Number of connections this thread holds open (for tests: everything closed means 0). */
export function openConnectionCount(): number {
  return cache.size;
}
