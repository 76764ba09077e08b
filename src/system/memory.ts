/**
 * memoryLimit: caps this process's memory on Linux, with the first mechanism that applies, and says
 * which one did and why the others did not (reference §7.3, fixed: the original capped the address
 * space with RLIMIT_AS, which breaks V8 and WebAssembly — docs/architecture.md "Memory limits on Linux").
 *
 * Mechanisms, in order:
 * 1. `cgroup2`: `memory.max` of the cgroup v2 the process is in (from /proc/self/cgroup), with
 *    `memory.high` at {@link HIGH_FRACTION} of it so the kernel reclaims and throttles before it
 *    OOM-kills. Only where this process may change it: the file exists (the memory controller is on
 *    for that cgroup), is writable, and the cgroup holds no process but this one and its
 *    descendants (a cgroup shared with others — a login session, a whole container — is never
 *    capped for them). The usual way to get one: a container whose main process is node, or a
 *    delegated subtree prepared for the process (systemd `Delegate=yes`).
 * 2. `cgroup1`: `memory.limit_in_bytes` of its cgroup v1 memory controller, same conditions (never
 *    the root cgroup).
 * 3. `rlimit`: RLIMIT_DATA through the addon (Node has no setrlimit). Only the SOFT limit is lowered,
 *    so it can be raised again (the hard limit is kept). Over it, Buffer/ArrayBuffer, WebAssembly
 *    and SQLite allocations fail with catchable errors; growth of the JS heap aborts the process
 *    (SIGABRT): combine it with --max-old-space-size so the JS heap fails first.
 * 4. `watchdog`: the RSS watchdog of the host sampler (the addon's thread, or the worker-thread
 *    substitute) checks RSS every {@link WATCHDOG_INTERVAL_MS}. It cannot stop a synchronous step
 *    (nothing can interrupt the JS thread without V8 APIs Node-API does not have): when RSS goes over
 *    the cap, on the next turn of the event loop it builds a `WPIPE_ERR_MEMORY_LIMIT` error, aborts
 *    {@link memoryLimitSignal} with it, calls the {@link onMemoryLimitExceeded} listeners, and makes
 *    every run in progress that is guarded by {@link memoryLimitGuard} fail with it at its next step
 *    start or boundary. With no listener it emits a process warning with that code. It fires once
 *    per crossing (again after RSS fell back under the cap).
 *
 * Limits below a safe minimum are refused with a RangeError, whatever the mechanism: the data
 * segment and RSS of the process now plus {@link HEADROOM_MB} MiB. Measured on Node 20.20 (x86-64):
 * RLIMIT_DATA set on a running node at less than about 50 MiB above its current data segment makes
 * the next young-generation growth fail ("Committing semi space failed", std::bad_alloc: SIGABRT, or
 * a SIGSEGV) under a light workload; 52 MiB above passed three runs out of three. Node hangs at
 * start under about 40 MiB (docs/architecture.md "Memory limits on Linux"), which the minimum always exceeds.
 *
 * `cgroupRoot` (or WPIPE_CGROUP_ROOT) and `procRoot` point the code at another cgroup mount and
 * /proc: the tests lay out fake ones in a temporary directory (nothing under /sys/fs/cgroup is ever
 * written by the tests).
 *
 * @example
 * ```ts
 * import { memoryLimit } from 'wpipe';
 * const r = await memoryLimit({ maxMb: 2048 });
 * console.log(r.mechanism, r.limitBytes, r.reasons);
 * // 'rlimit' 2147483648 { cgroup2: 'the cgroup … has no memory.max …', cgroup1: 'the cgroup … also holds 14 other processes …' }
 * await memoryLimit({ percentage: 0.5, dryRun: true }); // what would apply, changing nothing
 * ```
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WpipeError, checkOptions, invalidOption } from '../errors.js';
import { hostRlimits, hostSampler } from '../backend/host.js';
import type { BackendChoice } from '../backend/types.js';
import { addProcessObserver, type RunObserver } from '../engine/hooks.js';

/** The mechanisms, in the order they are tried. */
export const MEMORY_LIMIT_MECHANISMS = ['cgroup2', 'cgroup1', 'rlimit', 'watchdog'] as const;
export type MemoryLimitMechanism = (typeof MEMORY_LIMIT_MECHANISMS)[number];

/** `memory.high` is set to this fraction of `memory.max` (cgroup v2): reclaim and throttling start there. */
export const HIGH_FRACTION = 0.9;
/** The watchdog's RSS check interval (the sampler runs at least this often while it is armed). */
export const WATCHDOG_INTERVAL_MS = 50;
/** Room above the current data segment / RSS that a cap must leave (see the module comment). */
export const HEADROOM_MB = 64;

const MIB = 1024 * 1024;
const PAGE = 4096;
/** cgroup v1 writes "no limit" as a number near 2^63; anything this large is no limit. */
const UNLIMITED_FROM = 2 ** 62;

/** Options of {@link memoryLimit}. Give exactly one of `maxMb` and `percentage`. */
export interface MemoryLimitOptions {
  /** The cap in MiB. */
  maxMb?: number;
  /** The cap as a fraction (0 < p ≤ 1) of the effective limit: 0.8 is 80 %. */
  percentage?: number;
  /** Say what would apply, change nothing. */
  dryRun?: boolean;
  /** The cgroup mount (default WPIPE_CGROUP_ROOT, else /sys/fs/cgroup); v2 at the root or at `unified/`, v1 memory at `memory/`. */
  cgroupRoot?: string;
  /** Where /proc is (default /proc): `self/cgroup`, `self/status`, `meminfo`, `<pid>/stat` are read there. */
  procRoot?: string;
  /** 'native' forces the addon (RLIMIT_DATA, native watchdog); 'js'/'wasm' go without it (no RLIMIT, worker watchdog). */
  backend?: BackendChoice;
  /**
   * The mechanisms that may be used, tried in the usual order (default: all four). Without
   * 'watchdog', a call where none of them applies throws WPIPE_ERR_MEMORY_LIMIT_UNAVAILABLE.
   */
  mechanisms?: readonly MemoryLimitMechanism[];
}

/** What {@link memoryLimit} did (or, with `dryRun`, would do). */
export interface MemoryLimitResult {
  readonly mechanism: MemoryLimitMechanism;
  /** The cap, in bytes (rounded down to a page). */
  readonly limitBytes: number;
  /** The lower of physical memory and every cgroup limit above this process, before this call. */
  readonly effectiveLimitBytes: number;
  /** For each mechanism tried before the one that applied: why it did not. */
  readonly reasons: Partial<Record<MemoryLimitMechanism, string>>;
  readonly dryRun: boolean;
  /** What was (or would be) changed: a file, 'RLIMIT_DATA (soft)', or 'RSS watchdog'. */
  readonly target: string;
}

const OPTIONS = ['maxMb', 'percentage', 'dryRun', 'cgroupRoot', 'procRoot', 'backend', 'mechanisms'] as const;

// ---------------------------------------------------------------------------------------------
// The watchdog's side: what happens in this process when it fires.

let controller = new AbortController();
/** How many times the watchdog fired in this thread, and its last error. */
let fired = 0;
let lastError: WpipeError | undefined;
const listeners = new Set<(error: WpipeError) => void>();

/**
 * Aborts, with the `WPIPE_ERR_MEMORY_LIMIT` error as its reason, the next time the memory watchdog
 * fires. Pass it to runs (`pipe.run(data, { signal: memoryLimitSignal() })`) to cancel them then.
 * Each firing aborts the current signal and makes a new one for later runs.
 *
 * @example
 * ```ts
 * await memoryLimit({ maxMb: 1024 });
 * await pipe.run(input, { signal: memoryLimitSignal() });
 * ```
 */
export function memoryLimitSignal(): AbortSignal {
  return controller.signal;
}

/**
 * Calls `listener` with the `WPIPE_ERR_MEMORY_LIMIT` error each time the watchdog fires (on the
 * event loop of the thread that called memoryLimit). Returns the unsubscribe function.
 *
 * @example
 * ```ts
 * const off = onMemoryLimitExceeded((e) => logger.error(e.message));
 * ```
 */
export function onMemoryLimitExceeded(listener: (error: WpipeError) => void): () => void {
  if (typeof listener !== 'function') throw invalidOption('onMemoryLimitExceeded(): the listener must be a function');
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/**
 * A run observer that fails every run in progress when the watchdog fires: at its next step start or
 * step boundary the run rejects with the watchdog's `WPIPE_ERR_MEMORY_LIMIT` error (the engine
 * rethrows an observer's WpipeError as is). Runs started after the firing are not affected. Attach
 * it with `pipe.observe(memoryLimitGuard())`.
 *
 * @example
 * ```ts
 * pipe.observe(memoryLimitGuard());
 * await memoryLimit({ maxMb: 1024 });            // watchdog, where nothing stronger applies
 * await pipe.run(input);                          // rejects with code WPIPE_ERR_MEMORY_LIMIT once RSS passes 1 GiB
 * ```
 */
export function memoryLimitGuard(): RunObserver {
  const startedAt = new Map<string, number>();
  const check = (e: { runId: string }): void => {
    const at = startedAt.get(e.runId);
    if (at !== undefined && fired > at && lastError !== undefined) throw lastError;
  };
  return {
    onRunStart: (e) => {
      startedAt.set(e.runId, fired);
    },
    onStepStart: check,
    onBoundary: check,
    onRunEnd: (e) => {
      startedAt.delete(e.runId);
    },
  };
}

function fire(limitBytes: number, rssBytes: number, via: string): void {
  const error = new WpipeError(
    'WPIPE_ERR_MEMORY_LIMIT',
    `the process's RSS (${(rssBytes / MIB).toFixed(1)} MiB) exceeded the memory limit of ${(limitBytes / MIB).toFixed(1)} MiB ` +
      `(memoryLimit watchdog, ${via} sampler)`,
    { details: { rssBytes, limitBytes, mechanism: 'watchdog' } },
  );
  fired++;
  lastError = error;
  const c = controller;
  controller = new AbortController();
  c.abort(error);
  if (listeners.size === 0) process.emitWarning(error.message, { code: 'WPIPE_ERR_MEMORY_LIMIT' });
  for (const l of listeners) {
    try {
      l(error);
    } catch (e) {
      process.emitWarning(`wpipe: an onMemoryLimitExceeded listener threw: ${(e as Error)?.message ?? String(e)}`, { code: 'WPIPE_ERR_INTERNAL' });
    }
  }
}

let armedWith: ReturnType<typeof hostSampler>['sampler'] | undefined;

/** Disarms the watchdog of this thread (tests, and a later memoryLimit that applies another mechanism). */
export function disarmMemoryWatchdog(): void {
  armedWith?.watchdog(0, WATCHDOG_INTERVAL_MS, null);
  armedWith = undefined;
  removeGlobalGuard?.();
  removeGlobalGuard = undefined;
}

/** Removes the guard the armed watchdog added to every pipeline's runs. */
let removeGlobalGuard: (() => void) | undefined;

// ---------------------------------------------------------------------------------------------
// Reading the host.

interface Host {
  readonly cgroupRoot: string;
  readonly procRoot: string;
}

function readText(file: string): { text: string } | { error: string } {
  try {
    return { text: fs.readFileSync(file, 'utf8') };
  } catch (e) {
    return { error: `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
}

interface Membership {
  /** The cgroup v2 path (the `0::` line), if any. */
  v2?: string;
  /** The cgroup v1 memory path and the controller list of its hierarchy. */
  v1?: { path: string; controllers: string };
}

function membership(h: Host): Membership | { error: string } {
  const r = readText(path.join(h.procRoot, 'self', 'cgroup'));
  if ('error' in r) return r;
  const m: Membership = {};
  for (const line of r.text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    const p = line.slice(second + 1).trim();
    if (line.slice(0, first) === '0' && controllers === '') m.v2 = p;
    else if (controllers.split(',').includes('memory')) m.v1 = { path: p, controllers };
  }
  return m;
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function exists(p: string): boolean {
  try {
    fs.statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** A limit file's value in bytes; Infinity for 'max' or v1's near-2^63; undefined when unreadable. */
function readLimit(file: string): number | undefined {
  const r = readText(file);
  if ('error' in r) return undefined;
  const t = r.text.trim();
  if (t === 'max') return Infinity;
  const n = Number(t);
  if (!Number.isFinite(n) || n < 0) return undefined;
  return n >= UNLIMITED_FROM ? Infinity : n;
}

function v2Mount(h: Host): string | undefined {
  if (exists(path.join(h.cgroupRoot, 'cgroup.controllers'))) return h.cgroupRoot;
  const unified = path.join(h.cgroupRoot, 'unified');
  if (exists(path.join(unified, 'cgroup.controllers'))) return unified;
  return undefined;
}

function v1Mount(h: Host, controllers: string): string | undefined {
  for (const name of [controllers, 'memory']) {
    const dir = path.join(h.cgroupRoot, name);
    if (isDir(dir)) return dir;
  }
  return undefined;
}

/** Joins a cgroup path below a mount without letting '..' climb out of it. */
function cgroupDir(mount: string, cgPath: string): string {
  const parts = cgPath.split('/').filter((s) => s !== '' && s !== '.' && s !== '..');
  return path.join(mount, ...parts);
}

function physicalBytes(h: Host): number {
  const r = readText(path.join(h.procRoot, 'meminfo'));
  if ('text' in r) {
    const m = /^MemTotal:\s+(\d+)\s*kB/m.exec(r.text);
    if (m) return Number(m[1]) * 1024;
  }
  return os.totalmem();
}

/** The lowest cgroup limit above this process (v2: every level's memory.max; v1: the hierarchical limit). */
function cgroupLimit(h: Host, m: Membership): number {
  let limit = Infinity;
  const v2 = m.v2 !== undefined ? v2Mount(h) : undefined;
  if (v2 !== undefined && m.v2 !== undefined) {
    const parts = m.v2.split('/').filter((s) => s !== '' && s !== '.' && s !== '..');
    for (let i = 1; i <= parts.length; i++) {
      const v = readLimit(path.join(v2, ...parts.slice(0, i), 'memory.max'));
      if (v !== undefined) limit = Math.min(limit, v);
    }
  }
  if (m.v1 !== undefined) {
    const mount = v1Mount(h, m.v1.controllers);
    if (mount !== undefined) {
      const dir = cgroupDir(mount, m.v1.path);
      const own = readLimit(path.join(dir, 'memory.limit_in_bytes'));
      if (own !== undefined) limit = Math.min(limit, own);
      const stat = readText(path.join(dir, 'memory.stat'));
      if ('text' in stat) {
        const hm = /^hierarchical_memory_limit\s+(\d+)/m.exec(stat.text);
        if (hm) {
          const v = Number(hm[1]);
          if (v < UNLIMITED_FROM) limit = Math.min(limit, v);
        }
      }
    }
  }
  return limit;
}

/** This process's data segment (VmData), in bytes, or undefined when /proc says nothing. */
function dataSegmentBytes(h: Host): number | undefined {
  const r = readText(path.join(h.procRoot, 'self', 'status'));
  if ('error' in r) return undefined;
  const m = /^VmData:\s+(\d+)\s*kB/m.exec(r.text);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** The parent pid from /proc/<pid>/stat (the field after the parenthesised name). */
function parentPid(h: Host, pid: number): number | undefined {
  const r = readText(path.join(h.procRoot, String(pid), 'stat'));
  if ('error' in r) return undefined;
  const close = r.text.lastIndexOf(')');
  const fields = r.text.slice(close + 2).split(' ');
  const ppid = Number(fields[1]);
  return Number.isInteger(ppid) ? ppid : undefined;
}

/** Processes of a cgroup that are neither this one nor its descendants. */
function strangers(h: Host, dir: string): { pids: number[] } | { error: string } {
  const r = readText(path.join(dir, 'cgroup.procs'));
  if ('error' in r) return r;
  const pids = r.text.split('\n').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n > 0);
  const out: number[] = [];
  for (const pid of pids) {
    let p: number | undefined = pid;
    let ours = false;
    for (let depth = 0; depth < 64 && p !== undefined && p > 1; depth++) {
      if (p === process.pid) {
        ours = true;
        break;
      }
      p = parentPid(h, p);
    }
    if (!ours) out.push(pid);
  }
  return { pids: out };
}

/** Why this process may not change `file` of the cgroup at `dir`, or undefined when it may. */
function mayNotWrite(h: Host, dir: string, file: string, cgPath: string): string | undefined {
  if (!exists(file)) return `the cgroup ${cgPath} has no ${path.basename(file)} (${file}): its memory controller is not enabled there`;
  try {
    fs.accessSync(file, fs.constants.W_OK);
  } catch (e) {
    return `${file} is not writable by this process (${(e as NodeJS.ErrnoException).code ?? 'denied'}): the cgroup is not delegated to it`;
  }
  const s = strangers(h, dir);
  if ('error' in s) return `cannot tell which processes share the cgroup ${cgPath}: ${s.error}`;
  if (s.pids.length > 0) {
    return `the cgroup ${cgPath} also holds ${s.pids.length} other process${s.pids.length === 1 ? '' : 'es'} (e.g. pid ${s.pids[0]}) ` +
      `that are not this process or its children: capping it would cap them too`;
  }
  return undefined;
}

/** Writes a cgroup interface file as `echo value > file` does (never creates one). */
function writeCgroupFile(file: string, value: string): void {
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_TRUNC);
  try {
    fs.writeSync(fd, value);
  } finally {
    fs.closeSync(fd);
  }
}

function errText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err?.code ? `${err.code}${err.message ? ` (${err.message})` : ''}` : String((e as Error)?.message ?? e);
}

// ---------------------------------------------------------------------------------------------

/**
 * Caps this process's memory with the first mechanism that applies (cgroup v2, cgroup v1,
 * RLIMIT_DATA, RSS watchdog) and reports which one did and why the others did not. See the module
 * comment for each mechanism and what happens over the cap.
 *
 * @example
 * ```ts
 * const r = await memoryLimit({ percentage: 0.8 });
 * if (r.mechanism === 'watchdog') console.warn('only a watchdog here:', r.reasons);
 * ```
 */
export async function memoryLimit(options: MemoryLimitOptions): Promise<MemoryLimitResult> {
  return memoryLimitSync(options);
}

/** {@link memoryLimit}, synchronously (everything it does is synchronous). */
export function memoryLimitSync(options: MemoryLimitOptions): MemoryLimitResult {
  const where = 'memoryLimit()';
  if (options === undefined || options === null || typeof options !== 'object') {
    throw invalidOption(`${where}: give { maxMb } or { percentage }`);
  }
  checkOptions(where, options, OPTIONS);
  const { maxMb, percentage } = options;
  if ((maxMb === undefined) === (percentage === undefined)) {
    throw invalidOption(`${where}: give exactly one of maxMb and percentage, got ${maxMb === undefined ? 'neither' : 'both'}`);
  }
  if (maxMb !== undefined) {
    if (typeof maxMb !== 'number' || Number.isNaN(maxMb)) throw invalidOption(`${where}: maxMb must be a number, got ${typeof maxMb}`);
    if (!(maxMb > 0) || !Number.isFinite(maxMb)) throw invalidOption(`${where}: maxMb must be a finite number > 0, got ${maxMb}`, 'RangeError');
  }
  if (percentage !== undefined) {
    if (typeof percentage !== 'number' || Number.isNaN(percentage)) throw invalidOption(`${where}: percentage must be a number, got ${typeof percentage}`);
    if (!(percentage > 0 && percentage <= 1)) {
      throw invalidOption(`${where}: percentage is a fraction of the effective limit, 0 < percentage <= 1 (0.8 is 80 %), got ${percentage}`, 'RangeError');
    }
  }
  if (options.dryRun !== undefined && typeof options.dryRun !== 'boolean') throw invalidOption(`${where}: dryRun must be a boolean`);
  for (const k of ['cgroupRoot', 'procRoot'] as const) {
    const v = options[k];
    if (v !== undefined && (typeof v !== 'string' || v.length === 0)) throw invalidOption(`${where}: ${k} must be a non-empty path`);
  }
  let allowed: ReadonlySet<MemoryLimitMechanism> = new Set(MEMORY_LIMIT_MECHANISMS);
  if (options.mechanisms !== undefined) {
    if (!Array.isArray(options.mechanisms) || options.mechanisms.length === 0) {
      throw invalidOption(`${where}: mechanisms must be a non-empty array of ${MEMORY_LIMIT_MECHANISMS.join(', ')}`);
    }
    for (const x of options.mechanisms) {
      if (!(MEMORY_LIMIT_MECHANISMS as readonly unknown[]).includes(x)) {
        throw invalidOption(`${where}: unknown mechanism ${JSON.stringify(x)}; the mechanisms are ${MEMORY_LIMIT_MECHANISMS.join(', ')}`, 'RangeError');
      }
    }
    allowed = new Set(options.mechanisms);
  }
  const dryRun = options.dryRun === true;
  const h: Host = {
    cgroupRoot: options.cgroupRoot ?? (process.env.WPIPE_CGROUP_ROOT || '/sys/fs/cgroup'),
    procRoot: options.procRoot ?? '/proc',
  };

  const linux = process.platform === 'linux';
  const m = linux ? membership(h) : { error: `not Linux (${process.platform})` };
  const effectiveLimitBytes = Math.min(physicalBytes(h), 'error' in m ? Infinity : cgroupLimit(h, m));
  const raw = maxMb !== undefined ? maxMb * MIB : percentage! * effectiveLimitBytes;
  const limitBytes = Math.floor(raw / PAGE) * PAGE;

  // The safe minimum: what the process holds now plus room for V8 to grow its young generation.
  const data = dataSegmentBytes(h) ?? 0;
  const rss = process.memoryUsage.rss();
  const minimum = Math.max(data, rss) + HEADROOM_MB * MIB;
  if (limitBytes < minimum) {
    throw invalidOption(
      `${where}: a cap of ${(limitBytes / MIB).toFixed(1)} MiB is below the safe minimum of ${Math.ceil(minimum / MIB)} MiB here ` +
        `(this process holds ${(Math.max(data, rss) / MIB).toFixed(1)} MiB of data/RSS now, and V8 needs about ${HEADROOM_MB} MiB more to ` +
        `grow its heap; under that node aborts or crashes, and at 40 MiB or less it hangs)`,
      'RangeError',
    );
  }

  const reasons: Partial<Record<MemoryLimitMechanism, string>> = {};
  const done = (mechanism: MemoryLimitMechanism, target: string): MemoryLimitResult => {
    if (!dryRun && mechanism !== 'watchdog') disarmMemoryWatchdog();
    return { mechanism, limitBytes, effectiveLimitBytes, reasons, dryRun, target };
  };

  const NOT_ASKED = 'not in the mechanisms asked for';
  // 1. cgroup v2.
  if (!allowed.has('cgroup2')) reasons.cgroup2 = NOT_ASKED;
  else if ('error' in m) reasons.cgroup2 = m.error;
  else if (m.v2 === undefined) reasons.cgroup2 = 'the process is in no cgroup v2 (no 0:: line in /proc/self/cgroup)';
  else {
    const mount = v2Mount(h);
    if (mount === undefined) reasons.cgroup2 = `no cgroup v2 hierarchy at ${h.cgroupRoot} (nor at ${path.join(h.cgroupRoot, 'unified')})`;
    else {
      const dir = cgroupDir(mount, m.v2);
      const maxFile = path.join(dir, 'memory.max');
      const why = mayNotWrite(h, dir, maxFile, m.v2);
      if (why !== undefined) reasons.cgroup2 = why;
      else if (dryRun) return done('cgroup2', maxFile);
      else {
        const highFile = path.join(dir, 'memory.high');
        const high = Math.floor((limitBytes * HIGH_FRACTION) / PAGE) * PAGE;
        const oldHigh = readText(highFile);
        try {
          if (exists(highFile)) writeCgroupFile(highFile, `${high}\n`);
          writeCgroupFile(maxFile, `${limitBytes}\n`);
          return done('cgroup2', maxFile);
        } catch (e) {
          if ('text' in oldHigh) {
            try {
              writeCgroupFile(highFile, oldHigh.text);
            } catch {
              // it was written a moment ago; if it cannot be restored, the reason below still says what failed
            }
          }
          reasons.cgroup2 = `writing ${maxFile} failed: ${errText(e)}`;
        }
      }
    }
  }

  // 2. cgroup v1.
  if (!allowed.has('cgroup1')) reasons.cgroup1 = NOT_ASKED;
  else if ('error' in m) reasons.cgroup1 = m.error;
  else if (m.v1 === undefined) reasons.cgroup1 = 'the process is in no cgroup v1 memory hierarchy';
  else {
    const mount = v1Mount(h, m.v1.controllers);
    if (mount === undefined) reasons.cgroup1 = `no cgroup v1 memory hierarchy at ${path.join(h.cgroupRoot, 'memory')}`;
    else if (m.v1.path === '/' || m.v1.path === '') reasons.cgroup1 = 'the process is in the root memory cgroup, which belongs to the machine';
    else {
      const dir = cgroupDir(mount, m.v1.path);
      const file = path.join(dir, 'memory.limit_in_bytes');
      const why = mayNotWrite(h, dir, file, m.v1.path);
      if (why !== undefined) reasons.cgroup1 = why;
      else if (dryRun) return done('cgroup1', file);
      else {
        try {
          writeCgroupFile(file, `${limitBytes}\n`);
          return done('cgroup1', file);
        } catch (e) {
          reasons.cgroup1 = `writing ${file} failed: ${errText(e)}`;
        }
      }
    }
  }

  // 3. RLIMIT_DATA (soft).
  if (!allowed.has('rlimit')) reasons.rlimit = NOT_ASKED;
  else if (!linux) reasons.rlimit = `not Linux (${process.platform})`;
  else {
    const host = hostRlimits(options.backend);
    if ('unavailable' in host) reasons.rlimit = host.unavailable;
    else {
      try {
        const { hard } = host.rlimits.get('data');
        if (limitBytes > hard) {
          reasons.rlimit = `the hard RLIMIT_DATA is ${(hard / MIB).toFixed(1)} MiB, below the cap: only a privileged process can raise it`;
        } else if (dryRun) {
          return done('rlimit', 'RLIMIT_DATA (soft)');
        } else {
          host.rlimits.set('data', limitBytes, hard);
          return done('rlimit', 'RLIMIT_DATA (soft)');
        }
      } catch (e) {
        reasons.rlimit = `setrlimit(RLIMIT_DATA) failed: ${errText(e)}`;
      }
    }
  }

  // 4. The RSS watchdog.
  if (!allowed.has('watchdog')) {
    reasons.watchdog = NOT_ASKED;
    throw new WpipeError(
      'WPIPE_ERR_MEMORY_LIMIT_UNAVAILABLE',
      `${where}: none of the mechanisms asked for (${[...allowed].join(', ')}) can cap this process's memory here:\n` +
        Object.entries(reasons).filter(([k]) => allowed.has(k as MemoryLimitMechanism)).map(([k, v]) => `  ${k}: ${v}`).join('\n'),
      { details: { reasons, limitBytes, effectiveLimitBytes } },
    );
  }
  const { sampler, backend } = hostSampler(options.backend);
  if (!dryRun) {
    disarmMemoryWatchdog();
    armedWith = sampler;
    sampler.watchdog(limitBytes, WATCHDOG_INTERVAL_MS, (rssBytes) => fire(limitBytes, rssBytes, backend === 'native' ? 'native thread' : 'worker-thread'));
    // Every pipeline's runs in progress fail when it fires, not only those that observe a guard.
    removeGlobalGuard ??= addProcessObserver(memoryLimitGuard());
  }
  return done('watchdog', `RSS watchdog (${backend === 'native' ? 'the addon\'s sampler thread' : 'a worker thread'}, every ${WATCHDOG_INTERVAL_MS} ms)`);
}
