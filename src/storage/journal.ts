/**
 * The step journal: how a step boundary becomes durable without a SQLite commit.
 *
 * A tracked step boundary must survive `kill -9` before the next step's code runs. A SQLite commit
 * gives that but costs 10–15 µs on these machines even for one row (six `fcntl` locks on the
 * `-shm` file, two `pwrite`s a page, and the statements), so a 10-step run made of 11 commits tops
 * out near 2,000 runs a second. Instead, each tracker appends the boundary's writes as ONE line to
 * a journal file of its own — a single `write(2)`, or with the native addon a copy into a window of
 * the file mapped into memory; either way the kernel holds the bytes the moment the append returns,
 * exactly as it holds a WAL frame written with `synchronous=NORMAL` — and folds the journaled writes
 * into SQLite in one transaction every few milliseconds (and before any read of its own, at
 * `close()` and at process exit).
 *
 * - Files: `<db>.wpipe-journal/<owner>.<gen>.log` (the lines) and `<owner>.lock`, a tiny SQLite file
 *   its owner holds an exclusive lock on for as long as it lives. The kernel drops that lock when the
 *   owner dies, however it dies, so any process can tell a live journal from an orphan — across pid
 *   namespaces too, since the lock is on the file (the same POSIX locks SQLite itself relies on).
 * - Line: `<crc32 as 8 hex digits> <JSON array of writes>\n`. A line that is cut short (power loss)
 *   or does not match its checksum ends the journal: nothing after it is applied.
 * - Exactly once: the fold transaction also stores, in `wpipe_journal`, the byte offset the journal
 *   is applied up to. A crash between the fold's commit and anything after it replays from there.
 * - Recovery: opening a tracker on a database first replays the orphan journals of that database
 *   (their owners are dead): one transaction per journal, then the files go.
 *
 * What a crash can lose is unchanged: the step in flight. What changes is when other connections
 * see a boundary: within the fold interval (10 ms by default), not at the boundary itself.
 *
 * @example
 * ```ts
 * const journal = openJournal('/data/runs.db');
 * journal.append([[Code.InsertEvent, 'run-1', null, 'note', 'hello', null, null, null, '2026-01-01T00:00:00.000Z']]);
 * // … later, inside the fold transaction: journal.offset is what wpipe_journal records.
 * journal.close();
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';
import { WpipeError } from '../errors.js';
import type { OpenDbOptions, StorageDb } from './db.js';
import type { AddJournal, FoldWorkerData } from './fold-worker.js';
import { packageRoot } from '../paths.js';
import { journalMapper } from '../backend/load.js';
import type { JournalMapper } from '../backend/native.js';
import type { BackendChoice } from '../backend/types.js';
import { JOURNAL_SQL, applyOps, applyOpsEach, expandOp, isConstraint, type WriteStatements } from './ops.js';

type Database = BetterSqlite3.Database;

/** One write as the journal and the fold carry it: an opcode (see tracker.ts) and its parameters. */
export type JournalOp = unknown[];

const HEADER_PREFIX = 'wpipe-journal 1 ';
/** A journal is started afresh (the old one removed once folded) past this size. */
export const ROTATE_BYTES = 64 * 1024 * 1024;

/** Where a line is put together before its write(2) (appends on one thread never overlap). */
const LINE_BUFFER = Buffer.allocUnsafe(64 * 1024);

/**
 * Encodes one journal line into `into` at `at` (room for `10 + 3 * json.length` bytes) and returns
 * its length. The body goes first, then its checksum and newline: a process killed half-way through
 * a copy into the mapped window leaves a line that fails its checksum (or starts with zeros), which
 * readers treat as the end.
 */
function encodeLine(into: Buffer, at: number, json: string): number {
  const n = into.write(json, at + 9, 'utf8');
  let crc = zlib.crc32(into.subarray(at + 9, at + 9 + n)) >>> 0;
  for (let i = at + 7; i >= at; i--) {
    const d = crc & 15;
    into[i] = d < 10 ? 48 + d : 87 + d;
    crc >>>= 4;
  }
  into[at + 8] = 32;
  into[at + 9 + n] = 10;
  return n + 10;
}

/** Journal owner ids alive in this thread, never probed as orphans. */
const liveOwners = new Set<string>();

let DatabaseClass: (new (file: string, options?: BetterSqlite3.Options) => Database) | undefined;
function driver(): new (file: string, options?: BetterSqlite3.Options) => Database {
  if (!DatabaseClass) DatabaseClass = createRequire(import.meta.url)('better-sqlite3');
  return DatabaseClass!;
}

/** The folder of a database's journals. */
export function journalDir(dbFile: string): string {
  return `${dbFile}.wpipe-journal`;
}

/** True for databases that live in a file (a journal makes no sense for `:memory:` or a temp db). */
export function isFileDb(dbFile: string): boolean {
  return dbFile !== '' && dbFile !== ':memory:' && !dbFile.startsWith('file::memory:');
}

/**
 * Takes the owner lock of `lockFile`: an exclusive SQLite lock held until the connection closes.
 * Returns undefined when another live connection holds it.
 */
function tryLock(lockFile: string): Database | undefined {
  const Ctor = driver();
  let db: Database | undefined;
  try {
    db = new Ctor(lockFile, { timeout: 0 });
    db.pragma('journal_mode = MEMORY'); // no -journal file beside the lock
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE; COMMIT');
    return db;
  } catch (error) {
    db?.close();
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('SQLITE_BUSY')) return undefined;
    throw error;
  }
}

function journalError(error: unknown, operation: string, file: string): WpipeError {
  const message = error instanceof Error ? error.message : String(error);
  return new WpipeError('WPIPE_ERR_STORAGE', `${operation} failed on ${file}: ${message}`, {
    cause: error,
    details: { file, operation, errno: (error as { code?: unknown } | null)?.code },
  });
}

/** How long stopping a fold thread waits for it to leave SQLite (a fold in progress, or its busy wait). */
const STOP_WAIT_MS = 10_000;

/** Size of a mapped journal window (reserved on disk when it is mapped). */
const WINDOW_BYTES = 4 * 1024 * 1024;
/** Windows start at multiples of this (a multiple of every page size Linux uses). */
const WINDOW_ALIGN = 64 * 1024;

/**
 * A journal this tracker owns: appends lines, knows its byte offset, rotates, and removes itself.
 *
 * Lines go into the file one of two ways, equally durable against a killed process (both leave the
 * bytes in the kernel's page cache before `append` returns): with the native addon, copied into a
 * window of the file mapped into memory (no system call per line; see native/journal.cpp), else one
 * `write(2)` each. A mapped file is longer than its lines (the rest of the window is zeros), so
 * readers stop at the first zero byte, and the fold thread reads only up to the published offset.
 */
export class Journal {
  readonly dir: string;
  readonly owner: string;
  private gen = 0;
  private fd: number;
  private lock: Database;
  /** Bytes written to the current log file (the offset a fold records as applied). */
  offset = 0;
  /** Set once a write failed: the log may end in a torn line, so nothing more is appended to it. */
  broken: WpipeError | undefined;
  private closed = false;
  private readonly mapper: JournalMapper | undefined;
  /** The mapped window (a view of `windowBuffer`) and the file offset it starts at. */
  private window: Buffer | undefined;
  private windowBuffer: ArrayBuffer | undefined;
  private windowStart = 0;

  private readonly rotateBytes: number;

  /**
   * `backend` chooses how lines are appended (see journalMapper in src/backend/load.ts);
   * `rotateBytes` is the size past which the log is replaced once folded (default {@link ROTATE_BYTES}).
   */
  constructor(dbFile: string, options: { backend?: BackendChoice; rotateBytes?: number } = {}) {
    this.dir = journalDir(dbFile);
    this.rotateBytes = options.rotateBytes ?? ROTATE_BYTES;
    this.owner = `${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
    this.mapper = journalMapper(options.backend).mapper;
    try {
      fs.mkdirSync(this.dir, { recursive: true });
      const lock = tryLock(path.join(this.dir, `${this.owner}.lock`));
      if (!lock) throw new Error('a fresh owner lock is held by someone else');
      this.lock = lock;
      this.fd = this.openLog();
    } catch (error) {
      throw journalError(error, 'opening the step journal', this.dir);
    }
    liveOwners.add(this.owner);
  }

  /** Generation of the current log file (bumped by {@link rotate}). */
  get generation(): number {
    return this.gen;
  }

  /** The `wpipe_journal` key of the current log file. */
  get name(): string {
    return `${this.owner}.${this.gen}.log`;
  }

  /** Whether lines are copied into a mapped window (else appended with write(2)). */
  get mapped(): boolean {
    return this.window !== undefined;
  }

  private openLog(): number {
    // mmap needs the descriptor open for reading too.
    const fd = fs.openSync(path.join(this.dir, this.name), this.mapper ? 'a+' : 'a');
    const header = `${HEADER_PREFIX}${this.owner}\n`;
    this.offset = fs.writeSync(fd, header);
    if (this.mapper) this.mapWindow(fd, 0);
    return fd;
  }

  /**
   * Maps the window that holds the next `need` bytes. On failure (no space to reserve, no mmap
   * here) the file is cut back to its lines and appends continue with write(2).
   */
  private mapWindow(fd: number, need: number): void {
    this.unmapWindow();
    const start = Math.floor(this.offset / WINDOW_ALIGN) * WINDOW_ALIGN;
    const length = Math.max(WINDOW_BYTES, Math.ceil((this.offset - start + need) / WINDOW_ALIGN) * WINDOW_ALIGN);
    try {
      const buffer = this.mapper!.map(fd, start, length);
      this.windowBuffer = buffer;
      this.window = Buffer.from(buffer);
      this.windowStart = start;
    } catch {
      fs.ftruncateSync(fd, this.offset); // O_APPEND writes go to the end of the file
    }
  }

  private unmapWindow(): void {
    if (this.windowBuffer) this.mapper!.unmap(this.windowBuffer);
    this.window = undefined;
    this.windowBuffer = undefined;
  }

  /**
   * Appends one boundary's writes as one line. Throws `WPIPE_ERR_STORAGE` when the write fails;
   * from then on the journal is `broken` and the tracker commits to SQLite directly.
   */
  append(ops: readonly JournalOp[]): void {
    if (this.broken) throw this.broken;
    const json = JSON.stringify(ops);
    try {
      if (this.window !== undefined && this.appendMapped(json)) return;
      // A line too long for the shared buffer (a large checkpoint) gets one of its own, not kept.
      const into = 10 + json.length * 3 <= LINE_BUFFER.length ? LINE_BUFFER : Buffer.allocUnsafe(10 + Buffer.byteLength(json));
      const expected = encodeLine(into, 0, json);
      const written = fs.writeSync(this.fd, into, 0, expected);
      if (written !== expected) throw new Error(`short write: ${written} of ${expected} bytes`);
      this.offset += written;
    } catch (error) {
      this.broken = journalError(error, 'appending to the step journal', path.join(this.dir, this.name));
      throw this.broken;
    }
  }

  /** Copies the line into the mapped window. Returns false when it needs a window that cannot be mapped. */
  private appendMapped(json: string): boolean {
    let at = this.offset - this.windowStart;
    if (at + 10 + json.length * 3 > this.window!.length) {
      const bytes = Buffer.byteLength(json);
      if (at + 10 + bytes > this.window!.length) {
        this.mapWindow(this.fd, bytes + 10);
        if (this.window === undefined) return false; // could not map: write(2) from now on
        at = this.offset - this.windowStart;
      }
    }
    this.offset += encodeLine(this.window!, at, json);
    return true;
  }

  /** Whether the log file should be replaced (grown past its rotation size, or broken). */
  get wantsRotation(): boolean {
    return !this.closed && (this.offset >= this.rotateBytes || this.broken !== undefined);
  }

  /**
   * Starts a new log file and removes the old one. Only after a fold committed everything in it.
   * Returns the name of the file it retired.
   */
  rotate(): string {
    const old = this.name;
    this.unmapWindow();
    try {
      fs.closeSync(this.fd);
    } catch {
      // the descriptor may be what broke
    }
    fs.rmSync(path.join(this.dir, old), { force: true });
    this.gen++;
    this.broken = undefined;
    this.fd = this.openLog();
    return old;
  }

  /** Removes the journal (call after the last fold committed it): log, lock and, if empty, the folder. */
  close(): void {
    if (this.closed) return;
    this.closeLog();
    fs.rmSync(path.join(this.dir, this.name), { force: true });
    this.lock.close(); // only now may another process take it for an orphan
    fs.rmSync(path.join(this.dir, `${this.owner}.lock`), { force: true });
    try {
      fs.rmdirSync(this.dir);
    } catch {
      // other journals still live there
    }
  }

  /**
   * Lets go of the journal but leaves its log, for when what it holds could not be folded: the log
   * is then an orphan, which the next tracker to open the database replays.
   */
  release(): void {
    if (this.closed) return;
    this.closeLog();
    this.lock.close();
  }

  private closeLog(): void {
    this.closed = true;
    liveOwners.delete(this.owner);
    this.unmapWindow();
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}

/** What {@link readJournal} found in a log file. */
export interface JournalContents {
  /** The writes of every complete, intact line from `from` on, in order. */
  ops: JournalOp[];
  /** Byte offset just past the last intact line. */
  end: number;
  /** Why reading stopped before the end of the file, if it did (a torn or corrupt line). */
  stoppedAt: string | undefined;
}

/**
 * Reads the intact lines of a log file from byte offset `from` (0 = the start, header included) to
 * its end, or to `to`. A line still being written, torn or corrupt ends the read (`end` stays before
 * it); so does a zero byte where a line would start (the unused rest of a mapped window).
 */
export function readJournal(file: string, from: number, to = Infinity): JournalContents {
  let bytes: Buffer;
  let base = 0;
  const fd = fs.openSync(file, 'r');
  try {
    const size = Math.min(to, fs.fstatSync(fd).size);
    base = from > 0 ? Math.min(from, size) : 0;
    bytes = Buffer.allocUnsafe(size - base);
    let got = 0;
    while (got < bytes.length) {
      const n = fs.readSync(fd, bytes, got, bytes.length - got, base + got);
      if (n === 0) break;
      got += n;
    }
    bytes = bytes.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
  const ops: JournalOp[] = [];
  let pos = 0;
  if (base === 0) {
    const headerEnd = bytes.indexOf(10);
    if (headerEnd < 0 || !bytes.subarray(0, headerEnd).toString('utf8').startsWith(HEADER_PREFIX)) {
      return { ops, end: 0, stoppedAt: headerEnd < 0 ? 'no header line' : 'not a wpipe journal (version 1)' };
    }
    pos = headerEnd + 1;
  }
  // Check every line's checksum first; then parse all intact lines with ONE JSON.parse, by turning
  // the buffer in place into a JSON array (each 9-byte checksum prefix becomes spaces, each newline
  // a comma): per-line decoding and parsing was most of a fold thread's reading time.
  const first = pos;
  const starts: number[] = [];
  let stoppedAt: string | undefined;
  while (pos < bytes.length) {
    if (bytes[pos] === 0) break; // the unused rest of a mapped window: the lines end here
    const nl = bytes.indexOf(10, pos);
    if (nl < 0) {
      stoppedAt = `line at byte ${base + pos} is cut short`;
      break;
    }
    const crc = hex32(bytes, pos);
    if (crc < 0 || bytes[pos + 8] !== 32 || nl - pos < 11 || (zlib.crc32(bytes.subarray(pos + 9, nl)) >>> 0) !== crc) {
      stoppedAt = `line at byte ${base + pos}: checksum mismatch`;
      break;
    }
    starts.push(pos);
    pos = nl + 1;
  }
  const end = base + pos;
  if (starts.length === 0) return { ops, end, stoppedAt };
  let batches: unknown[] | undefined;
  for (const at of starts) bytes.fill(32, at, at + 9);
  for (let i = 1; i < starts.length; i++) bytes[starts[i]! - 1] = 44;
  bytes[first] = 91; // '['
  bytes[pos - 1] = 93; // ']'
  try {
    batches = JSON.parse(bytes.toString('utf8', first, pos)) as unknown[];
  } catch {
    // Only a writer's bug makes a checksummed line invalid JSON: find it, keep the lines before it.
    batches = [];
    for (let i = 0; i < starts.length; i++) {
      const from = starts[i]! + 9;
      const to = i + 1 < starts.length ? starts[i + 1]! - 1 : pos - 1;
      try {
        batches.push(JSON.parse(bytes.toString('utf8', from, to)));
      } catch (error) {
        return { ops, end: base + starts[i]!, stoppedAt: `line at byte ${base + starts[i]!}: ${(error as Error).message}` };
      }
    }
  }
  for (let i = 0; i < batches.length; i++) {
    const batch = batches[i];
    if (!Array.isArray(batch)) {
      return { ops, end: base + starts[i]!, stoppedAt: `line at byte ${base + starts[i]!}: not an array` };
    }
    for (const op of batch) expandOp(op as JournalOp, ops);
  }
  return { ops, end, stoppedAt };
}

/** The 8 lowercase hex digits at `at` as a number, or -1. */
function hex32(bytes: Buffer, at: number): number {
  let v = 0;
  for (let i = at; i < at + 8; i++) {
    const c = bytes[i]!;
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/** One orphan journal that {@link recoverJournals} replayed. */
export interface RecoveredJournal {
  name: string;
  writes: number;
  /** Set when the log ended in a torn or corrupt line (its remainder was not applied). */
  stoppedAt: string | undefined;
  /** Writes that broke a constraint (e.g. a run id another process recorded meanwhile), skipped. */
  dropped: number;
  /** Why the journal could not be replayed (it is left in place, and tried again at the next open). */
  error?: string;
}

/**
 * Replays the journals of `db` whose owners are dead, and removes them: one transaction per journal,
 * which also records the applied offset (so a replay is never applied twice). A write that breaks a
 * constraint is skipped and counted; a journal that cannot be replayed at all is reported in its
 * entry and left for the next open — neither stops the others or the open itself. Live journals
 * (their owner holds its lock) are left alone.
 */
export function recoverJournals(db: StorageDb, writes: WriteStatements): RecoveredJournal[] {
  const dir = journalDir(db.path);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const owners = new Map<string, string[]>();
  for (const name of names) {
    const m = /^(.+)\.(\d+)\.log$/.exec(name);
    if (!m || liveOwners.has(m[1]!)) continue;
    const list = owners.get(m[1]!) ?? [];
    list.push(name);
    owners.set(m[1]!, list);
  }
  const recovered: RecoveredJournal[] = [];
  const getApplied = db.prepare(JOURNAL_SQL.getJournalApplied);
  const setApplied = db.prepare(JOURNAL_SQL.setJournalApplied);
  const dropRow = db.prepare(JOURNAL_SQL.dropJournal);
  for (const [owner, logs] of owners) {
    const lockFile = path.join(dir, `${owner}.lock`);
    const lock = tryLock(lockFile);
    if (!lock) continue; // its owner is alive
    try {
      logs.sort((a, b) => Number(/\.(\d+)\.log$/.exec(a)![1]) - Number(/\.(\d+)\.log$/.exec(b)![1]));
      for (const name of logs) {
        const file = path.join(dir, name);
        try {
          const from = (getApplied.get(name) as { applied: number } | undefined)?.applied ?? 0;
          const contents = readJournal(file, from);
          const record = (): void => {
            setApplied.run(name, Math.max(from, contents.end), new Date().toISOString());
          };
          let dropped = 0;
          try {
            db.transaction(() => {
              applyOps(writes, contents.ops);
              record();
            });
          } catch (error) {
            if (!isConstraint(error)) throw error;
            dropped = applyOpsEach(db, writes, contents.ops, record);
          }
          fs.rmSync(file, { force: true });
          db.runWithRetry(() => dropRow.run(name), 'dropping a replayed journal');
          recovered.push({ name, writes: contents.ops.length, stoppedAt: contents.stoppedAt, dropped });
        } catch (error) {
          recovered.push({ name, writes: 0, stoppedAt: undefined, dropped: 0, error: error instanceof Error ? error.message : String(error) });
        }
      }
    } finally {
      lock.close();
      fs.rmSync(lockFile, { force: true });
      fs.rmSync(`${lockFile}-journal`, { force: true }); // left by wpipe before journal_mode=MEMORY
    }
  }
  try {
    fs.rmdirSync(dir);
  } catch {
    // live journals remain
  }
  return recovered;
}

/**
 * The fold thread's script: the compiled dist/storage/fold-worker.js, or — when this module runs
 * from its .ts source (tests, benchmarks under tsx) — a bootstrap that registers tsx in the thread
 * and imports the .ts source.
 */
function foldWorkerScript(): { script: string; eval: boolean } {
  const here = fileURLToPath(import.meta.url);
  if (!here.endsWith('.ts')) return { script: path.join(packageRoot(), 'dist', 'storage', 'fold-worker.js'), eval: false };
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const source = pathToFileURL(path.join(path.dirname(here), 'fold-worker.ts')).href;
  return { script: `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(source)}); })`, eval: true };
}

/** One fold-worker.ts thread: its own cells and whether it has exited. */
interface FoldWorker {
  cells: BigInt64Array;
  worker: Worker;
  exited: boolean;
}

/** What a thread reports (src/storage/fold-worker.ts `report`): about one journal when `owner` is set. */
interface WorkerReport {
  message: string;
  code?: string;
  sqliteCode?: string;
  owner?: string;
}

/**
 * The threads of one database file in this thread: its fold thread, the channel journals reach it
 * by, its checkpoint thread (unless the first busy tracker manages checkpoints itself), and the
 * {@link FoldThread}s using them by journal owner, with where their errors go.
 */
interface DbThreads {
  fold: FoldWorker;
  port: MessagePort;
  checkpoint: FoldWorker | undefined;
  users: Map<string, (error: WpipeError) => void>;
  /** The fold thread raised an error (it is exiting). */
  failed: boolean;
}

/** By database path. The first busy tracker of a database sets its threads' interval and options. */
const dbThreads = new Map<string, DbThreads>();

function threadsFor(dbPath: string, intervalMs: number, openOptions: OpenDbOptions, checkpointMs: number | undefined,
  onError: (error: WpipeError) => void): DbThreads {
  const asError = (m: WorkerReport, who: string): WpipeError =>
    new WpipeError('WPIPE_ERR_STORAGE', `${who} of ${dbPath}: ${m.message}`, { details: { file: dbPath, sqliteCode: m.sqliteCode, code: m.code } });
  const base = { dbPath, openOptions, checkpointer: checkpointMs !== undefined };
  let t = dbThreads.get(dbPath);
  if (t === undefined || t.failed || t.fold.exited) {
    const { port1, port2 } = new MessageChannel();
    port1.unref();
    const users = new Map<string, (error: WpipeError) => void>();
    const toUsers = (error: WpipeError, owner?: string): void => {
      const one = owner === undefined ? undefined : users.get(owner);
      if (one) one(error);
      else for (const report of users.values()) report(error);
    };
    const created: DbThreads = {
      fold: spawnFoldWorker({ ...base, role: 'fold', intervalMs, port: port2 }, [port2], (m) => toUsers(asError(m, 'fold thread'), m.owner), (error) => {
        created.failed = true;
        toUsers(journalError(error, 'the fold thread', dbPath));
      }),
      port: port1,
      checkpoint: undefined,
      users,
      failed: false,
    };
    t = created;
    dbThreads.set(dbPath, t);
  }
  if (checkpointMs !== undefined && (t.checkpoint === undefined || t.checkpoint.exited)) {
    // Its errors go to one user. Its failure only costs speed: the fold's connection still
    // checkpoints, at a larger size (a backstop).
    const users = t.users;
    const toOne = (error: WpipeError): void => (users.values().next().value ?? onError)(error);
    try {
      t.checkpoint = spawnFoldWorker({ ...base, role: 'checkpoint', intervalMs: checkpointMs }, [], (m) => toOne(asError(m, 'checkpoint thread')),
        (error) => toOne(journalError(error, 'the checkpoint thread', dbPath)));
    } catch (error) {
      // The fold thread runs and must stay owned (stopped with its last user).
      onError(journalError(error, 'starting the checkpoint thread', dbPath));
    }
  }
  return t;
}

/** @internal This thread's database threads (tests). */
export function databaseThreads(): { file: string; users: number; fold: Worker; checkpoint: Worker | undefined }[] {
  return [...dbThreads].map(([file, t]) => ({ file, users: t.users.size, fold: t.fold.worker, checkpoint: t.checkpoint?.worker }));
}

/** Sets a thread's stop flag and wakes it. */
function stopWorker(w: FoldWorker): void {
  Atomics.store(w.cells, 2, 1n);
  Atomics.notify(w.cells, 2);
}

/**
 * One tracker's use of its database's fold thread (src/storage/fold-worker.ts): the journal's cells,
 * through which the tracker publishes its lines and learns what is folded. The fold thread, and the
 * checkpoint thread beside it unless the caller manages WAL checkpoints itself, are shared by every
 * busy tracker of the database in this thread: started by the first, stopped with the last. They
 * never keep the process alive; if the fold thread dies, each tracker folds on its own thread again.
 */
export class FoldThread {
  private readonly cells: BigInt64Array;
  private readonly threads: DbThreads;
  private readonly dbPath: string;
  private readonly owner: string;
  private stopped = false;

  /** `checkpointMs`: interval of the checkpoint thread (undefined: none, the caller manages checkpoints). */
  constructor(journal: Journal, dbPath: string, intervalMs: number, openOptions: OpenDbOptions, onError: (error: WpipeError) => void,
    checkpointMs?: number) {
    this.dbPath = dbPath;
    this.owner = journal.owner;
    const shared = new SharedArrayBuffer(5 * 8);
    this.cells = new BigInt64Array(shared);
    this.cells[0] = BigInt(journal.generation);
    this.threads = threadsFor(dbPath, intervalMs, openOptions, checkpointMs, onError);
    this.threads.users.set(this.owner, onError);
    this.threads.port.postMessage({ dir: journal.dir, owner: journal.owner, shared } satisfies AddJournal);
    Atomics.notify(this.threads.fold.cells, 2);
  }

  /** Whether the fold thread folds this journal (false once stopped, or when the thread died). */
  get alive(): boolean {
    return !this.stopped && !this.threads.failed && !this.threads.fold.exited;
  }

  /** @internal The database's fold thread (tests). */
  get worker(): Worker {
    return this.threads.fold.worker;
  }

  /** Tells the thread the journal moved to a new file. */
  setGeneration(gen: number): void {
    Atomics.store(this.cells, 0, BigInt(gen));
  }

  /** Tells the thread how far the journal's lines go (a mapped file is longer than its lines). */
  publish(gen: number, offset: number): void {
    Atomics.store(this.cells, 3, (BigInt(gen) << 32n) | BigInt(offset));
  }

  /**
   * Blocks until the thread has folded the journal of generation `gen` up to `offset`, or for at
   * most `timeoutMs`; returns whether it got there.
   */
  waitFolded(gen: number, offset: number, timeoutMs: number): boolean {
    const deadline = performance.now() + timeoutMs;
    Atomics.notify(this.threads.fold.cells, 2); // wake the thread if it sleeps between folds
    for (;;) {
      const v = Atomics.load(this.cells, 1);
      if (Number(v >> 32n) === gen && Number(v & 0xffffffffn) >= offset) return true;
      const left = deadline - performance.now();
      if (left <= 0 || !this.alive) return false;
      Atomics.wait(this.cells, 1, v, Math.min(left, 50));
    }
  }

  /** Offset the thread has folded the journal of generation `gen` up to (0 when unknown). */
  foldedOffset(gen: number): number {
    const v = Atomics.load(this.cells, 1);
    return Number(v >> 32n) === gen ? Number(v & 0xffffffffn) : 0;
  }

  /**
   * Takes the journal back from the fold thread, waiting (at most `waitMs`) until the thread is done
   * with it: the tracker may then fold the rest and remove it. The last user stops the database's
   * threads and waits until they are out of SQLite for good: a thread terminated inside a SQLite
   * call — which is what process exit does to a worker — aborts the process (better-sqlite3 cannot
   * throw into a terminating isolate). A thread that has not started is not waited for: it sees
   * the flags before it opens the database.
   */
  stop(waitMs = STOP_WAIT_MS): void {
    if (this.stopped) return;
    this.stopped = true;
    Atomics.store(this.cells, 2, 1n);
    const t = this.threads;
    t.users.delete(this.owner);
    const deadline = performance.now() + waitMs;
    const waitWhile = (cells: BigInt64Array, index: number, value: bigint, also: () => boolean = () => true): void => {
      for (;;) {
        const left = deadline - performance.now();
        if (left <= 0 || Atomics.load(cells, index) !== value || !also()) return;
        Atomics.wait(cells, index, value, Math.min(left, 50));
      }
    };
    const fold = t.fold;
    if (t.users.size === 0) {
      if (dbThreads.get(this.dbPath) === t) dbThreads.delete(this.dbPath);
      const workers = t.checkpoint ? [fold, t.checkpoint] : [fold];
      for (const w of workers) stopWorker(w);
      for (const w of workers) if (!w.exited) waitWhile(w.cells, 4, 1n);
      return;
    }
    // Others still use the thread: wait until it has let go of this journal (it does between folds),
    // unless it is not running (not started: it will let go at once; done: it holds nothing).
    Atomics.notify(fold.cells, 2);
    if (!fold.exited) waitWhile(this.cells, 4, 0n, () => Atomics.load(fold.cells, 4) === 1n);
  }
}

/** Starts one fold-worker.ts thread with its own cells (see that module). */
function spawnFoldWorker(data: Omit<FoldWorkerData, 'shared'>, transfer: MessagePort[], onMessage: (m: WorkerReport) => void,
  onError: (error: Error) => void): FoldWorker {
  const shared = new SharedArrayBuffer(5 * 8);
  const script = foldWorkerScript();
  const worker = new Worker(script.script, {
    eval: script.eval, workerData: { ...data, shared } satisfies FoldWorkerData, transferList: transfer, execArgv: [], stdout: false, stderr: false,
  });
  const handle: FoldWorker = { cells: new BigInt64Array(shared), worker, exited: false };
  worker.on('message', onMessage);
  worker.on('error', onError);
  worker.on('exit', () => {
    handle.exited = true;
  });
  // After the listeners: attaching a 'message' listener refs the worker's port again.
  worker.unref();
  return handle;
}
