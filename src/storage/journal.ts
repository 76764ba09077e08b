/**
 * The step journal: how a step boundary becomes durable without a SQLite commit, and who owns a run.
 *
 * A tracked step boundary must survive `kill -9` before the next step's code runs. A SQLite commit
 * gives that but costs 10–30 µs here even for one row (locks on the `-shm` file, a WAL frame per
 * page), so a 10-step run made of 11 commits tops out near 3,000 runs a second. Instead each tracker
 * appends the boundary's writes as ONE line to a journal file of its own — one `write(2)`: the kernel
 * holds the bytes the moment it returns, exactly as it holds a WAL frame written with
 * `synchronous=NORMAL` — and folds the journaled writes into SQLite in one transaction every few
 * milliseconds (src/storage/tracker.ts says when). With durability `'fsync'` the line is also on
 * stable storage before user code runs: boundaries of concurrent runs share one `fdatasync`.
 *
 * - Files: `<db>.wpipe-journal/<owner>.lock`, a tiny SQLite file its owner holds an exclusive lock on
 *   for as long as it lives (the kernel drops the lock when the owner dies, however it dies, so any
 *   process can tell a live owner from a dead one), and `<owner>.<gen>.log`, the lines, created at the
 *   first append. `<owner>` is `<pid>-<random>`; a run row's `owner` column names it.
 * - Line: `<crc32 as 8 hex digits> <JSON array of writes>\n`. A line that fails its checksum is
 *   skipped and counted and the lines after it still apply; an unfinished last line (no newline: the
 *   owner is writing it, or died writing it) ends the read.
 * - Exactly once: every fold stores, in `wpipe_journal` and in the same transaction, the byte offset
 *   a log is applied up to. Whoever folds a log — its owner, or another tracker or process catching
 *   up ({@link foldJournals}) — applies only what lies past that offset.
 * - Dead owners: {@link foldJournals} replays their logs, marks their runs still `running` as
 *   `interrupted` (resumable) and removes the files; a log with skipped lines is kept as
 *   `<name>.corrupt` and reported.
 *
 * @example
 * ```ts
 * const journal = new Journal('/data/runs.db');
 * journal.append([[Code.InsertEvent, 'run-1', null, 'note', 'hello', null, null, null, '2026-01-01T00:00:00.000Z']]);
 * journal.close(); // after a fold applied everything
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { WpipeError } from '../errors.js';
import type { StorageDb } from './db.js';
import { JOURNAL_SQL, applyOps, expandOp, isConstraint, prepareWrites, runIdsOf, type JournalOp, type WriteStatements } from './ops.js';
import { nodeCrypto } from '../lazy-builtins.js';

/**
 * zlib's crc32, loaded at the first journal line: importing wpipe should not load node:zlib (part of
 * the ~9 ms that deferring zlib, child_process, http and stream saves an import, measured in fresh
 * processes).
 */
let crc32Fn: ((data: Uint8Array) => number) | undefined;
function crc32(data: Uint8Array): number {
  crc32Fn ??= (createRequire(import.meta.url)('node:zlib') as typeof import('node:zlib')).crc32;
  return crc32Fn(data);
}

export type { JournalOp } from './ops.js';

type Database = BetterSqlite3.Database;

const HEADER_PREFIX = 'wpipe-journal 1 ';
/** A log is started afresh (the old one removed once folded) past this size. */
export const ROTATE_BYTES = 64 * 1024 * 1024;

/** Size of the chunks a log of durability 'fsync' is written ahead with (see Journal.preallocate). */
const PREALLOCATE_BYTES = 1024 * 1024;
let ZEROS: Buffer | undefined;

/** Where a line is put together before its write(2) (appends on one thread never overlap). */
const LINE_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** Encodes one line into `into` (room for `10 + 3 * json.length` bytes); returns its length. */
function encodeLine(into: Buffer, json: string): number {
  const n = into.write(json, 9, 'utf8');
  let crc = crc32(into.subarray(9, 9 + n)) >>> 0;
  for (let i = 7; i >= 0; i--) {
    const d = crc & 15;
    into[i] = d < 10 ? 48 + d : 87 + d;
    crc >>>= 4;
  }
  into[8] = 32;
  into[9 + n] = 10;
  return n + 10;
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

/** Journal owners alive in this thread (never probed: a second lock on our own file would succeed). */
const liveOwners = new Set<string>();

let DatabaseClass: (new (file: string, options?: BetterSqlite3.Options) => Database) | undefined;
function driver(): new (file: string, options?: BetterSqlite3.Options) => Database {
  DatabaseClass ??= createRequire(import.meta.url)('better-sqlite3');
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
 * Returns undefined when another live connection holds it, and `'gone'` when `mustExist` and the
 * file (or its folder) is not there: its owner closed meanwhile.
 */
function tryLock(lockFile: string, mustExist = false): Database | undefined | 'gone' {
  let db: Database | undefined;
  try {
    db = new (driver())(lockFile, { timeout: 0, fileMustExist: mustExist });
    db.pragma('journal_mode = MEMORY'); // no -journal file beside the lock
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE; COMMIT');
    return db;
  } catch (error) {
    db?.close();
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('SQLITE_BUSY')) return undefined;
    if (mustExist && (code === 'SQLITE_CANTOPEN' || !fs.existsSync(lockFile))) return 'gone';
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

/**
 * Whether the journal owner `owner` of the database at `dbFile` is alive: in this thread, or a
 * process holding its lock. An owner without a lock file closed (or never was): not alive.
 */
export function ownerAlive(dbFile: string, owner: string | null): boolean {
  if (owner === null) return false;
  if (liveOwners.has(owner)) return true;
  const lock = tryLock(path.join(journalDir(dbFile), `${owner}.lock`), true);
  if (lock === undefined) return true;
  if (lock !== 'gone') lock.close();
  return false;
}

/**
 * Whether the database has journals of other threads or processes (a cheap look before a catch-up,
 * which needs the write lock): one readdir. This thread's own journals are folded by their trackers
 * (StorageDb.syncPending).
 */
export function hasOtherJournals(dbFile: string): boolean {
  let names: string[];
  try {
    names = fs.readdirSync(journalDir(dbFile));
  } catch {
    return false;
  }
  for (const name of names) {
    const owner = name.endsWith('.lock') ? name.slice(0, -5) : LOG_NAME.exec(name)?.[1];
    if (owner !== undefined && !liveOwners.has(owner)) return true;
  }
  return false;
}

/** `fdatasync` of a file by path (a WAL before the journal lines it holds are let go). No file: nothing to do. */
export function syncFile(file: string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r+');
  } catch {
    return;
  }
  try {
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

interface SyncWaiter {
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * A journal a tracker owns: its owner lock (from construction on), its log (from the first append),
 * the byte offset of the log, rotation and removal, and the group commit of durability `'fsync'`.
 */
export class Journal {
  readonly dir: string;
  readonly owner: string;
  private gen = 0;
  private fd = -1;
  /**
   * Durability 'fsync': the log is written ahead with zeros in {@link PREALLOCATE_BYTES} chunks and
   * lines overwrite them, so an fdatasync flushes the line alone, not the file's growing size too
   * (ext4 here: 98 µs against 130 µs for write + fdatasync, p50). Readers stop at the zeros.
   */
  private readonly preallocate: boolean;
  /** Bytes of the log written ahead (zeros past `offset`). */
  private allocated = 0;
  private readonly lock: Database;
  /** Bytes written to the current log (the offset a fold records as applied); 0 before the first append. */
  offset = 0;
  /** Set once a write failed: the log may end in a torn line, so nothing more is appended to it. */
  broken: WpipeError | undefined;
  private closed = false;
  private readonly rotateBytes: number;
  /** Group commit: waiters of the fdatasync in flight are settled by it; later ones wait for the next. */
  private syncing = false;
  private syncWaiters: SyncWaiter[] = [];
  /** Appends since the last fdatasync started (nothing to sync when 0). */
  private unsynced = 0;
  /** fdatasync calls made (group commit: fewer than the boundaries they covered). */
  syncs = 0;

  /** `rotateBytes`: size past which the log is replaced once folded (default {@link ROTATE_BYTES}). */
  constructor(dbFile: string, options: { rotateBytes?: number; preallocate?: boolean } = {}) {
    this.dir = journalDir(dbFile);
    this.rotateBytes = options.rotateBytes ?? ROTATE_BYTES;
    this.preallocate = options.preallocate === true;
    this.owner = `${process.pid}-${nodeCrypto().randomBytes(6).toString('hex')}`;
    const lockFile = path.join(this.dir, `${this.owner}.lock`);
    let lock: Database | undefined;
    for (let attempt = 1; lock === undefined; attempt++) {
      try {
        fs.mkdirSync(this.dir, { recursive: true });
        // Locked under a name no prober looks at, then renamed into place: a process catching up that
        // saw the file before it was locked would take it for a dead owner's (the lock stays with the inode).
        const got = tryLock(`${lockFile}.new`);
        if (got === undefined || got === 'gone') throw new Error('a fresh owner lock is held by someone else');
        try {
          fs.renameSync(`${lockFile}.new`, lockFile);
        } catch (error) {
          got.close();
          throw error;
        }
        lock = got;
      } catch (error) {
        // The folder is removed by whoever closes the last journal in it: make it again.
        const gone = (error as { code?: unknown }).code === 'ENOENT' || /directory does not exist|unable to open/.test(String((error as Error).message));
        if (!gone || attempt >= 5) throw journalError(error, 'opening the step journal', this.dir);
      }
    }
    this.lock = lock;
    liveOwners.add(this.owner);
  }

  /** The `wpipe_journal` key of the current log. */
  get name(): string {
    return `${this.owner}.${this.gen}.log`;
  }

  /** Whether a log file exists (something was appended since the last rotation). */
  get started(): boolean {
    return this.fd >= 0;
  }

  private openLog(): void {
    // Positional writes (not O_APPEND): a preallocated log is longer than its lines.
    this.fd = fs.openSync(path.join(this.dir, this.name), 'w');
    this.allocated = 0;
    this.offset = fs.writeSync(this.fd, `${HEADER_PREFIX}${this.owner}\n`, 0);
  }

  /** Writes zeros ahead so that the next `need` bytes overwrite written blocks. */
  private allocate(need: number): void {
    const end = this.offset + need;
    if (end <= this.allocated) return;
    const from = Math.max(this.allocated, this.offset);
    const length = Math.max(PREALLOCATE_BYTES, end - from);
    ZEROS ??= Buffer.alloc(PREALLOCATE_BYTES);
    for (let at = 0; at < length; at += ZEROS.length) fs.writeSync(this.fd, ZEROS, 0, Math.min(ZEROS.length, length - at), from + at);
    this.allocated = from + length;
  }

  /**
   * Appends one boundary's writes as one line. Throws `WPIPE_ERR_STORAGE` when the write fails;
   * from then on the journal is `broken` (the tracker commits to SQLite directly until it rotates).
   */
  append(ops: readonly JournalOp[]): void {
    if (this.broken) throw this.broken;
    const json = JSON.stringify(ops);
    try {
      if (this.fd < 0) this.openLog();
      // A line too long for the shared buffer (a large checkpoint) gets one of its own.
      const into = 10 + json.length * 3 <= LINE_BUFFER.length ? LINE_BUFFER : Buffer.allocUnsafe(10 + Buffer.byteLength(json));
      const expected = encodeLine(into, json);
      if (this.preallocate) this.allocate(expected);
      const written = fs.writeSync(this.fd, into, 0, expected, this.offset);
      if (written !== expected) throw new Error(`short write: ${written} of ${expected} bytes`);
      this.offset += written;
      this.unsynced++;
    } catch (error) {
      this.broken = journalError(error, 'appending to the step journal', path.join(this.dir, this.name));
      throw this.broken;
    }
  }

  /** Puts every line appended so far on stable storage now (a synchronous run; no grouping). */
  syncNow(): void {
    if (this.unsynced === 0 || this.fd < 0) return;
    try {
      this.unsynced = 0;
      this.syncs++;
      fs.fdatasyncSync(this.fd);
    } catch (error) {
      this.broken = journalError(error, 'syncing the step journal', path.join(this.dir, this.name));
      throw this.broken;
    }
  }

  /**
   * Settles once every line appended so far is on stable storage. Group commit: at most one
   * fdatasync is in flight; boundaries reached meanwhile (other runs) share the next one.
   */
  synced(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.syncWaiters.push({ resolve, reject });
      if (!this.syncing) this.startSync();
    });
  }

  private startSync(): void {
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    if (this.unsynced === 0 || this.fd < 0 || this.closed) {
      for (const w of waiters) w.resolve();
      return;
    }
    this.unsynced = 0;
    this.syncing = true;
    this.syncs++;
    fs.fdatasync(this.fd, (error) => {
      if (error) this.broken ??= journalError(error, 'syncing the step journal', path.join(this.dir, this.name));
      for (const w of waiters) {
        if (error) w.reject(this.broken);
        else w.resolve();
      }
      // The next sync starts once the runs just released have reached their next boundary: started
      // at once, it would cover only the runs that arrived while this one was in flight, and two
      // groups would alternate, each boundary waiting for two syncs. Runs that yield between steps
      // (PipelineAsync) arrive over a few turns of the event loop: wait while they keep arriving.
      this.gather(waiters.length, 0);
    });
  }

  /**
   * Starts the next sync once the boundaries released by the last one stop arriving: checked once a
   * turn of the event loop, for at most 4 turns, and at once when all of them are back.
   */
  private gather(released: number, turns: number, seen = 0): void {
    setImmediate(() => {
      const now = this.syncWaiters.length;
      if (now < released && turns < 4 && (now === 0 || now > seen)) {
        this.gather(released, turns + 1, now);
        return;
      }
      this.syncing = false;
      if (now > 0) this.startSync();
    });
  }

  /** Whether the log should be replaced (grown past its rotation size, or broken) and can be now. */
  get wantsRotation(): boolean {
    return !this.closed && !this.syncing && (this.offset >= this.rotateBytes || this.broken !== undefined);
  }

  /**
   * Retires the current log (only after a fold committed everything in it): the next append starts
   * a new one. Returns the name of the log it removed.
   */
  rotate(): string {
    const old = this.name;
    this.closeFd();
    fs.rmSync(path.join(this.dir, old), { force: true });
    this.gen++;
    this.offset = 0;
    this.broken = undefined;
    return old;
  }

  /** Removes the journal (after the last fold committed it): log, lock and, if empty, the folder. */
  close(): void {
    if (this.closed) return;
    this.closeLog();
    fs.rmSync(path.join(this.dir, this.name), { force: true });
    this.lock.close(); // only now may another process take it for a dead owner
    fs.rmSync(path.join(this.dir, `${this.owner}.lock`), { force: true });
    try {
      fs.rmdirSync(this.dir);
    } catch {
      // other journals still live there
    }
  }

  /**
   * Lets go of the journal but leaves its log, for when what it holds could not be folded: its
   * owner is then dead, and the next tracker (or reader) to catch up replays it.
   */
  release(): void {
    if (this.closed) return;
    this.closeLog();
    this.lock.close();
  }

  private closeFd(): void {
    if (this.fd < 0) return;
    try {
      fs.closeSync(this.fd);
    } catch {
      // the descriptor may be what broke
    }
    this.fd = -1;
  }

  private closeLog(): void {
    this.closed = true;
    liveOwners.delete(this.owner);
    this.closeFd();
    for (const w of this.syncWaiters.splice(0)) w.reject(new WpipeError('WPIPE_ERR_STORAGE', 'the step journal was closed before its sync'));
  }
}

/** A line {@link readJournal} skipped. */
export interface SkippedLine {
  /** Byte offset of the line in its log. */
  at: number;
  bytes: number;
  reason: string;
}

/** What {@link readJournal} found in a log file. */
export interface JournalContents {
  /** The writes of every intact line from `from` on, in order. */
  ops: JournalOp[];
  /** Byte offset just past the last complete line (an unfinished last line is not included). */
  end: number;
  /** Complete lines that failed their checksum (or did not parse): not applied. */
  skipped: SkippedLine[];
  /** Run ids the skipped lines name, as far as they can still be read. */
  skippedRuns: string[];
  /** Whether the file ends in an unfinished line (being written, or cut by a crash). */
  torn: boolean;
}

/**
 * Reads a log from byte offset `from` (0: the start, header included) to its end. A complete line
 * (newline-terminated) that fails its checksum is skipped and reported; the lines after it still
 * count. An unfinished last line ends the read. Throws when the file is not a journal.
 */
export function readJournal(file: string, from: number): JournalContents {
  let bytes = fs.readFileSync(file);
  const base = Math.min(from, bytes.length);
  bytes = bytes.subarray(base);
  const out: JournalContents = { ops: [], end: base, skipped: [], skippedRuns: [], torn: false };
  let pos = 0;
  if (base === 0) {
    const headerEnd = bytes.indexOf(10);
    if (headerEnd < 0) {
      out.torn = bytes.length > 0;
      return out;
    }
    if (!bytes.subarray(0, headerEnd).toString('utf8').startsWith(HEADER_PREFIX)) {
      throw new WpipeError('WPIPE_ERR_STORAGE', `${file} is not a wpipe step journal (version 1)`, { details: { file } });
    }
    pos = headerEnd + 1;
  }
  while (pos < bytes.length) {
    const nl = bytes.indexOf(10, pos);
    if (nl < 0) {
      out.torn = true;
      break;
    }
    const crc = hex32(bytes, pos);
    let batch: unknown;
    let reason: string | undefined;
    if (crc < 0 || nl - pos < 11 || bytes[pos + 8] !== 32 || (crc32(bytes.subarray(pos + 9, nl)) >>> 0) !== crc) {
      reason = 'checksum mismatch';
    } else {
      try {
        batch = JSON.parse(bytes.toString('utf8', pos + 9, nl));
        if (!Array.isArray(batch)) reason = 'not an array of writes';
      } catch (error) {
        reason = `not JSON: ${(error as Error).message}`;
      }
    }
    if (reason === undefined) {
      for (const op of batch as JournalOp[]) expandOp(op, out.ops);
    } else {
      out.skipped.push({ at: base + pos, bytes: nl + 1 - pos, reason });
      for (const id of readableRunIds(bytes.toString('utf8', Math.min(pos + 9, nl), nl))) if (!out.skippedRuns.includes(id)) out.skippedRuns.push(id);
    }
    pos = nl + 1;
  }
  out.end = base + pos;
  return out;
}

/** Run ids of a damaged line, when its JSON still parses (a flipped bit in the checksum, say). */
function readableRunIds(text: string): string[] {
  try {
    const batch = JSON.parse(text) as unknown;
    if (!Array.isArray(batch)) return [];
    const ids: string[] = [];
    for (const op of batch) if (Array.isArray(op)) for (const id of runIdsOf(op)) ids.push(id);
    return ids;
  } catch {
    return [];
  }
}

/** What {@link foldJournals} did with one log. */
export interface FoldedJournal {
  name: string;
  /** Whether its owner was dead (the log was replayed and removed, or quarantined). */
  dead: boolean;
  /** Writes applied from it. */
  writes: number;
  /** Lines skipped (bad checksum): their writes are lost; the runs they name are in `affectedRuns`. */
  skipped: SkippedLine[];
  /** Runs a skipped line names, or — when that cannot be read — the runs of a dead owner it left interrupted. */
  affectedRuns: string[];
  /** Where the log was kept, when lines were skipped from a dead owner's log. */
  quarantined?: string;
  /** Writes that broke a constraint and were skipped (only a damaged journal can cause that). */
  dropped: number;
  /** Why the log could not be applied at all (left in place for a later version; nothing of it applied). */
  error?: string;
}

/** What {@link foldJournals} reports, and what its caller does once the transaction committed. */
export interface FoldReport {
  journals: FoldedJournal[];
  /** Runs of dead owners marked `interrupted`. */
  interrupted: string[];
  /** Removes (or quarantines) the logs and locks of dead owners. Call after the commit, once. */
  afterCommit(): void;
  /** Lets go of dead owners' locks without removing anything (the transaction failed). */
  abandon(): void;
}

const LOG_NAME = /^(.+)\.(\d+)\.log$/;

/**
 * Catches the database up with every step journal beside it, inside the caller's transaction:
 * each log's lines past its applied offset are applied and the offset recorded. Logs of live owners
 * (this thread's other trackers, other processes) are folded and left to them; logs of dead owners
 * are folded completely, their runs still `running` become `interrupted`, and after the commit
 * ({@link FoldReport.afterCommit}) their files go — a log with skipped lines is kept as
 * `<name>.corrupt`. `skipOwner`: a journal its caller folds itself.
 */
export function foldJournals(db: StorageDb, writes: WriteStatements, skipOwner?: string): FoldReport {
  const dir = journalDir(db.path);
  const report: FoldReport = { journals: [], interrupted: [], afterCommit: () => {}, abandon: () => {} };
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return report;
  }
  const owners = new Map<string, string[]>();
  for (const name of names) {
    const owner = name.endsWith('.lock') ? name.slice(0, -5) : LOG_NAME.exec(name)?.[1];
    if (owner === undefined || owner === skipOwner) continue;
    const logs = owners.get(owner) ?? [];
    if (!name.endsWith('.lock')) logs.push(name);
    owners.set(owner, logs);
  }
  const dead: { owner: string; lock: Database | undefined; logs: FoldedJournal[]; failed: boolean }[] = [];
  const getApplied = db.prepare(JOURNAL_SQL.getJournalApplied);
  const setApplied = db.prepare(JOURNAL_SQL.setJournalApplied);
  const now = new Date().toISOString();
  try {
    for (const [owner, logs] of owners) {
      let lock: Database | undefined;
      let isDead = false;
      if (!liveOwners.has(owner)) {
        const got = tryLock(path.join(dir, `${owner}.lock`), true);
        // 'gone': the owner closed meanwhile (its logs were folded and removed), or a log outlived its lock.
        if (got === 'gone') {
          if (logs.length === 0) continue;
          isDead = true;
        } else {
          lock = got;
          isDead = lock !== undefined;
        }
      }
      const entry = { owner, lock, logs: [] as FoldedJournal[], failed: false };
      if (isDead) dead.push(entry);
      logs.sort((a, b) => Number(LOG_NAME.exec(a)![2]) - Number(LOG_NAME.exec(b)![2]));
      for (const name of logs) {
        const file = path.join(dir, name);
        const from = (getApplied.get(name) as { applied: number } | undefined)?.applied ?? 0;
        let contents: JournalContents;
        try {
          contents = readJournal(file, from);
        } catch (error) {
          if ((error as { code?: unknown }).code === 'ENOENT') continue; // retired by its live owner meanwhile
          throw error;
        }
        if (contents.end <= from && contents.skipped.length === 0) {
          if (isDead) entry.logs.push({ name, dead: true, writes: 0, skipped: [], affectedRuns: [], dropped: 0 });
          continue;
        }
        let dropped: number;
        try {
          dropped = applyEach(db, writes, contents.ops);
        } catch (error) {
          if (!(error instanceof WpipeError)) throw error; // SQLite itself failed: the whole catch-up fails
          // A log this version cannot apply (a write of a newer wpipe): left in place, reported, and
          // its owner's runs are not touched; the others are caught up.
          const folded: FoldedJournal = { name, dead: isDead, writes: 0, skipped: [], affectedRuns: [], dropped: 0, error: error.message };
          report.journals.push(folded);
          entry.failed = true;
          continue;
        }
        setApplied.run(name, contents.end, now);
        const folded: FoldedJournal = { name, dead: isDead, writes: contents.ops.length - dropped, skipped: contents.skipped, affectedRuns: contents.skippedRuns, dropped };
        if (isDead) entry.logs.push(folded);
        if (contents.skipped.length > 0 || dropped > 0) report.journals.push(folded);
      }
      if (isDead && entry.failed) {
        entry.lock?.close();
        dead.splice(dead.indexOf(entry), 1);
      } else if (isDead) {
        const runs = db.prepare("SELECT id FROM pipelines WHERE owner = ? AND status = 'running'").all(owner) as { id: string }[];
        if (runs.length > 0) {
          db.prepare(`UPDATE steps SET status = 'interrupted', completed_at = ?,
              error_message = coalesce(error_message, 'interrupted: the process stopped while this step ran')
            WHERE status = 'running' AND pipeline_id IN (SELECT id FROM pipelines WHERE owner = ? AND status = 'running')`).run(now, owner);
          db.prepare("UPDATE pipelines SET status = 'interrupted', updated_at = ? WHERE owner = ? AND status = 'running'").run(now, owner);
          for (const r of runs) report.interrupted.push(r.id);
        }
        for (const j of entry.logs) {
          if (j.skipped.length > 0 && j.affectedRuns.length === 0) j.affectedRuns = runs.map((r) => r.id);
        }
      }
    }
  } catch (error) {
    for (const d of dead) d.lock?.close();
    throw error;
  }
  report.abandon = () => {
    for (const d of dead) d.lock?.close();
  };
  report.afterCommit = () => {
    for (const d of dead) {
      for (const j of d.logs) {
        const file = path.join(dir, j.name);
        try {
          if (j.skipped.length > 0) {
            j.quarantined = `${file}.corrupt`;
            fs.renameSync(file, j.quarantined);
          } else {
            fs.rmSync(file, { force: true });
          }
        } catch {
          // gone already
        }
      }
      d.lock?.close();
      fs.rmSync(path.join(dir, `${d.owner}.lock`), { force: true });
      fs.rmSync(path.join(dir, `${d.owner}.lock-journal`), { force: true }); // left by wpipe before journal_mode=MEMORY
    }
    // Offsets of removed logs are kept: names are never reused, and a crash between the commit and
    // the removal must not replay a log from its start.
    try {
      fs.rmdirSync(dir);
    } catch {
      // live journals remain
    }
  };
  return report;
}

/**
 * Applies `ops` inside the caller's transaction; if one breaks a constraint (only a damaged
 * journal can make that happen: run ids are claimed before their first write), applies them one
 * savepoint each and returns how many were skipped.
 */
export function applyEach(db: StorageDb, writes: WriteStatements, ops: readonly JournalOp[]): number {
  const raw = db.raw;
  raw.exec('SAVEPOINT wpipe_fold');
  try {
    applyOps(writes, ops);
    raw.exec('RELEASE wpipe_fold');
    return 0;
  } catch (error) {
    raw.exec('ROLLBACK TO wpipe_fold');
    raw.exec('RELEASE wpipe_fold');
    if (!isConstraint(error)) throw error;
  }
  let dropped = 0;
  for (const op of ops) {
    raw.exec('SAVEPOINT wpipe_write');
    try {
      applyOps(writes, [op]);
    } catch (error) {
      raw.exec('ROLLBACK TO wpipe_write');
      if (!isConstraint(error)) {
        raw.exec('RELEASE wpipe_write');
        throw error;
      }
      dropped++;
    }
    raw.exec('RELEASE wpipe_write');
  }
  return dropped;
}

const readerWrites = new WeakMap<StorageDb, WriteStatements>();
const warnedReadOnly = new Set<string>();

/**
 * What a reader of run history (the query layer, the exporter) calls before reading: this thread's
 * trackers fold what they hold, then every journal beside the database is caught up
 * ({@link foldJournals}), so runs that finished in any process are seen, and runs of dead processes
 * show as `interrupted`. A reader that cannot write (a read-only file) reads what SQLite has and is
 * warned once that journals are waiting.
 *
 * @example
 * ```ts
 * syncForReading(db);
 * db.prepare('SELECT status FROM pipelines WHERE id = ?').get('order-7');
 * ```
 */
export function syncForReading(db: StorageDb): void {
  db.syncPending();
  if (!isFileDb(db.path) || !hasOtherJournals(db.path)) return;
  let report: FoldReport | undefined;
  try {
    let writes = readerWrites.get(db);
    if (writes === undefined) {
      writes = prepareWrites(db);
      readerWrites.set(db, writes);
    }
    const w = writes;
    db.transaction(() => {
      report = foldJournals(db, w);
    });
  } catch (error) {
    report?.abandon();
    if (!warnedReadOnly.has(db.path)) {
      warnedReadOnly.add(db.path);
      process.emitWarning(`step journals beside ${db.path} could not be folded in, so the newest runs may be missing or still shown running: ${(error as Error).message}`,
        { code: 'WPIPE_ERR_STORAGE' });
    }
    return;
  }
  report?.afterCommit();
  for (const j of report?.journals ?? []) {
    process.emitWarning(`step journal ${j.name} of ${db.path}: ${j.skipped.length} line(s) skipped (bad checksum), ${j.dropped} write(s) dropped; runs affected: ${j.affectedRuns.join(', ') || 'unknown'}`,
      { code: 'WPIPE_ERR_JOURNAL_CORRUPT' });
  }
}
