/**
 * The 'processes' executor: step attempts in child processes (process-worker.ts), for isolation
 * and a per-process memory cap.
 *
 * Why not piscina: piscina 5 runs worker threads only (no child-process mode in its API or its
 * source), and a thread cannot have its own RLIMIT_DATA or be SIGKILLed. So this is a small pool of
 * `child_process.spawn`ed Node processes with an IPC channel in 'advanced' serialization (structured
 * clone, like a thread's postMessage; no transfer: a process always copies).
 *
 * - A child says `ready` once it can take calls (started within {@link START_TIMEOUT_MS}); it runs
 *   one attempt at a time and is reused across calls and pipelines. A child that dies is dropped;
 *   the next call starts another.
 * - One pool per memory cap (a child's limits are fixed at start, so children with different caps
 *   cannot be shared), each up to `max(os.availableParallelism(), largest maxWorkers asked)`
 *   children; all shared process-wide and reference-counted by the executors using them, killed when
 *   the last one closes. Idle children and their channels are unref'd: they never keep the parent
 *   alive on their own, and a child leaves when its parent goes away.
 * - Hard timeouts: when `call.signal` aborts (the step's deadline or the run's cancellation), the call
 *   rejects at once and the child's `info.signal` aborts; a child whose step has not settled
 *   {@link ABORT_GRACE_MS} later is SIGKILLed (a synchronous loop included).
 * - Memory caps (`call.memoryLimitMb`, at least {@link minMemoryLimitMb}): the child starts under
 *   RLIMIT_DATA of the cap (`prlimit` from util-linux, else `sh -c 'ulimit -d'`; RLIMIT_AS would
 *   break V8: docs/architecture.md "Memory limits on Linux") with `--max-old-space-size` below it, and a watchdog here reads its RSS
 *   from /proc/<pid>/statm every {@link WATCHDOG_MS} while it runs a step and SIGKILLs it over the
 *   cap (it catches what RLIMIT_DATA does not count, such as shared and file-backed mappings;
 *   `WPIPE_PROCESS_RLIMIT=0` leaves RLIMIT_DATA off and the watchdog alone). However the child fails — a Buffer allocation refused, V8's heap exhausted (SIGABRT or
 *   SIGTRAP), the watchdog's SIGKILL — the attempt fails with WPIPE_ERR_MEMORY_LIMIT, the child is
 *   replaced, and this process and the other branches go on.
 *
 * @example
 * ```ts
 * import './processes.js';                     // registers 'processes'
 * const ex = createExecutor('processes', { maxWorkers: 2 });
 * await ex.call({ ...stepCall, memoryLimitMb: 256 });
 * await ex.close();
 * ```
 */
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { createRequire } from 'node:module';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { delimiter, join } from 'node:path';
import { TaskError, WpipeError, invalidOption } from '../errors.js';
import { InFlight, type Executor, type ExecutorFactoryOptions, type StepCall } from './executor.js';
import type { FromChild, ToChild } from './process-worker.js';
import {
  LOG_TAG, applyReply, cloneError, encodeRequest, findUncloneable, isLogMessage, writeLog, type AttemptReply,
} from './protocol.js';
import { workerEntry } from './worker-entry.js';

/** child_process.spawn, loaded at the first child: importing wpipe does not load node:child_process. */
let spawnFn: typeof import('node:child_process').spawn | undefined;
function spawn(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  spawnFn ??= (createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process')).spawn;
  return spawnFn(command, args, options);
}

/** How long a child may take to say `ready` (tsx on a loaded 2-core CI machine needs about a second). */
export const START_TIMEOUT_MS = 30_000;
/** How long an aborted step gets to settle (it sees `info.signal` abort) before its child is SIGKILLed (100 ms was too short on a loaded 2-core machine: a step that honoured the signal lost its child). */
export const ABORT_GRACE_MS = 500;
/** RSS poll interval of the memory watchdog, while a capped child runs a step. */
export const WATCHDOG_MS = 50;

export { MIN_MEMORY_LIMIT_MB, MIN_MEMORY_LIMIT_MB_TSX, minMemoryLimitMb, checkMemoryLimitMb } from './limits.js';
import { memoryLimitError, minMemoryLimitMb, checkMemoryLimitMb } from './limits.js';

/** Room below the cap left for what is not V8's old space (code, new space, buffers, stacks). */
const HEAP_RESERVE_MB = 64;

// ---------------------------------------------------------------------------------------------
// Children.

interface ActiveCall {
  readonly id: number;
  readonly call: StepCall;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
  /** The call was settled by its abort; the child only has to answer (or be killed) to be free. */
  aborted: boolean;
}

class Child {
  readonly proc: ChildProcess;
  readonly ready: Promise<void>;
  active: ActiveCall | undefined;
  isReady = false;
  exited = false;
  /** Why this side killed it, if it did. */
  killedFor: 'memory' | 'abort' | 'close' | 'retire' | undefined;
  rssAtKill = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private statm = -1;
  private graceTimer: NodeJS.Timeout | undefined;

  constructor(readonly pool: ChildPool) {
    this.proc = spawnChild(pool.cap);
    let started: () => void;
    let failed: (e: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => { started = resolve; failed = reject; });
    this.ready.catch(() => {}); // observed by whoever waits on it
    const timer = setTimeout(() => {
      failed(new Error(`it did not say ready within ${START_TIMEOUT_MS / 1000} s`));
      this.kill('close');
    }, START_TIMEOUT_MS);
    this.ready.then(() => { this.isReady = true; }, () => {});
    this.proc.on('message', (m: FromChild | unknown) => {
      if (isLogMessage(m)) {
        const a = this.active;
        if (a !== undefined && a.id === m[LOG_TAG] && !a.aborted) writeLog(a.call.info.logger, m);
        return;
      }
      const msg = m as FromChild;
      if (msg.t === 'ready') {
        clearTimeout(timer);
        started();
      } else if (msg.t === 'reply') this.onReply(msg.reply);
    });
    this.proc.on('error', (e) => {
      // spawn failed (no such file …); 'exit' may not follow
      clearTimeout(timer);
      failed(e);
      this.onExit(null, null, e);
    });
    this.proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      failed(new Error(`it exited with ${signal ?? `code ${code}`} before it was ready`));
      this.onExit(code, signal, undefined);
    });
    // Ref'd while it starts (a call waits for it); idle() unrefs it once it has nothing to do.
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Unref'd: an idle child never keeps this process alive. */
  idle(): void {
    this.proc.unref();
    (this.proc.channel as { unref?(): void } | undefined)?.unref?.();
  }

  busy(): void {
    this.proc.ref();
    (this.proc.channel as { ref?(): void } | undefined)?.ref?.();
  }

  run(id: number, call: StepCall): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const onAbort = (): void => this.abortActive(active);
      const unlisten = (): void => call.signal.removeEventListener('abort', onAbort);
      const active: ActiveCall = {
        id, call, aborted: false,
        resolve: (v) => { unlisten(); resolve(v); },
        reject: (e) => { unlisten(); reject(e); },
      };
      this.active = active;
      this.busy();
      call.signal.addEventListener('abort', onAbort, { once: true });
      const req = encodeRequest(call, id);
      try {
        this.proc.send({ t: 'call', req } satisfies ToChild);
      } catch (e) {
        this.active = undefined;
        active.reject(cloneError('process', call.info.stepName, 'to', findUncloneable(call.context, 'ctx') ?? 'a value', e));
        this.pool.release(this);
        return;
      }
      if (this.pool.cap !== undefined) this.startWatchdog();
      if (call.signal.aborted) onAbort();
      // The child is up and idle: it starts the attempt now, so its deadline starts now.
      else call.onStarted?.(`pid ${this.proc.pid}`);
    });
  }

  private abortActive(active: ActiveCall): void {
    if (this.active !== active || active.aborted) return;
    active.aborted = true;
    active.reject(active.call.signal.reason);
    const reason = active.call.signal.reason instanceof Error ? active.call.signal.reason.message : 'the attempt was aborted';
    try {
      this.proc.send({ t: 'abort', id: active.id, reason } satisfies ToChild);
    } catch {
      // the channel is gone: the exit handler frees the child
    }
    this.graceTimer = setTimeout(() => {
      if (this.active === active) this.kill('abort');
    }, ABORT_GRACE_MS);
  }

  private onReply(reply: AttemptReply): void {
    const active = this.active;
    if (active === undefined || active.id !== reply.id) return;
    this.finishActive();
    if (active.aborted) {
      // It settled within the grace: the child is fine and can take the next call.
      this.pool.release(this);
      return;
    }
    let value: unknown;
    try {
      value = applyReply(active.call, reply);
    } catch (e) {
      if (this.pool.cap !== undefined && isAllocationFailure(e)) {
        // The child refused an allocation at its cap: fail the attempt as over the cap, and start
        // the next call in a fresh child rather than one whose heap may be full of garbage.
        active.reject(memoryError(active.call, this.pool.cap, 'an allocation failed at the RLIMIT_DATA cap', e));
        this.kill('retire');
        return;
      }
      active.reject(e);
      this.pool.release(this);
      return;
    }
    active.resolve(value);
    this.pool.release(this);
  }

  private finishActive(): void {
    this.active = undefined;
    if (this.graceTimer !== undefined) clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    this.stopWatchdog();
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null, error: Error | undefined): void {
    if (this.exited) return;
    this.exited = true;
    const active = this.active;
    this.finishActive();
    this.pool.dropped(this);
    if (active === undefined || active.aborted) return;
    const cap = this.pool.cap;
    const stepName = active.call.info.stepName;
    if (cap !== undefined && (this.killedFor === 'memory' || isMemoryDeath(code, signal))) {
      const how = this.killedFor === 'memory'
        ? `its RSS reached ${this.rssAtKill} MiB and the watchdog killed it`
        : `it died with ${signal ?? `exit code ${code}`} (V8 aborts so when its heap or RLIMIT_DATA is exhausted)`;
      active.reject(memoryError(active.call, cap, how, undefined));
      return;
    }
    const how = error !== undefined ? `could not run: ${error.message}` : `exited with ${signal ?? `code ${code}`} before the step settled`;
    const hint = code !== null && signal === null ? ' (a step that calls process.exit() ends its worker process)' : '';
    active.reject(new WpipeError('WPIPE_ERR_WORKER_EXITED', `the worker process running step '${stepName}' ${how}${hint}; the pool starts another process`, {
      cause: error, details: { stepName, executor: 'processes', exitCode: code, signal, pid: this.pid },
    }));
  }

  kill(why: 'memory' | 'abort' | 'close' | 'retire'): void {
    if (this.exited) return;
    this.killedFor ??= why;
    this.proc.kill('SIGKILL');
  }

  private startWatchdog(): void {
    const cap = this.pool.cap!;
    const pid = this.pid;
    if (pid === undefined || this.watchdog !== undefined) return;
    const page = pageSize();
    this.watchdog = setInterval(() => {
      const pages = this.readStatmResident(pid);
      if (pages < 0) return;
      const mb = Math.round((pages * page) / 2 ** 20);
      if (mb > cap) {
        this.rssAtKill = mb;
        this.kill('memory');
      }
    }, WATCHDOG_MS);
    this.watchdog.unref();
  }

  private stopWatchdog(): void {
    if (this.watchdog !== undefined) clearInterval(this.watchdog);
    this.watchdog = undefined;
    if (this.statm >= 0) {
      try { closeSync(this.statm); } catch { /* already closed */ }
      this.statm = -1;
    }
  }

  /** Resident pages of the child, from a kept-open /proc/<pid>/statm (about 2 µs a read). */
  private readStatmResident(pid: number): number {
    try {
      if (this.statm < 0) this.statm = openSync(`/proc/${pid}/statm`, 'r');
      const buf = Buffer.allocUnsafe(128);
      const n = readSync(this.statm, buf, 0, buf.length, 0);
      return Number(buf.toString('latin1', 0, n).split(' ')[1]);
    } catch {
      return -1; // no /proc (not Linux) or the child is gone: RLIMIT_DATA still holds
    }
  }
}

function isMemoryDeath(code: number | null, signal: NodeJS.Signals | null): boolean {
  // V8's fatal OOM aborts (SIGABRT; SIGTRAP for some heap failures on x64), a refused malloc in C++
  // throws std::bad_alloc and aborts too; a SIGKILL we did not send is the kernel's OOM killer.
  return signal === 'SIGABRT' || signal === 'SIGTRAP' || signal === 'SIGKILL' || signal === 'SIGSEGV' || code === 134 || code === 133;
}

function isAllocationFailure(e: unknown): boolean {
  return e instanceof Error && /allocation failed|Unable to grow|out of memory/i.test(e.message) && (e.name === 'RangeError' || e.name === 'Error');
}

function memoryError(call: StepCall, cap: number, how: string, cause: unknown): TaskError {
  return memoryLimitError(call.info.stepName, cap, 'processes', how, cause);
}

let pageBytes: number | undefined;
/** The page size, from this process's own statm against its RSS (Node has no sysconf). */
function pageSize(): number {
  if (pageBytes !== undefined) return pageBytes;
  pageBytes = 4096;
  try {
    const pages = Number(readFileSync('/proc/self/statm', 'latin1').split(' ')[1]);
    const ratio = process.memoryUsage.rss() / pages;
    for (const size of [4096, 16384, 65536]) if (Math.abs(ratio / size - 1) < 0.2) pageBytes = size;
  } catch {
    // keep 4 KiB
  }
  return pageBytes;
}

let prlimitPath: string | null | undefined;
function findPrlimit(): string | null {
  if (prlimitPath !== undefined) return prlimitPath;
  prlimitPath = null;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'prlimit'))) { prlimitPath = join(dir, 'prlimit'); break; }
  }
  return prlimitPath;
}

function spawnChild(cap: number | undefined): ChildProcess {
  const entry = workerEntry('process-worker');
  const node = process.execPath;
  const nodeArgs = [
    ...(cap === undefined ? [] : [`--max-old-space-size=${Math.max(32, cap - HEAP_RESERVE_MB)}`]),
    ...entry.execArgv, entry.file,
  ];
  const options = { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] as const, serialization: 'advanced' as const, env: process.env };
  // WPIPE_PROCESS_RLIMIT=0 leaves RLIMIT_DATA off (the watchdog alone enforces the cap): for hosts
  // where neither prlimit nor sh can set it, and for the test of the watchdog.
  if (cap === undefined || process.env.WPIPE_PROCESS_RLIMIT === '0') return spawn(node, nodeArgs, { ...options, stdio: [...options.stdio] });
  const prlimit = findPrlimit();
  if (prlimit !== null) return spawn(prlimit, [`--data=${cap * 2 ** 20}`, '--', node, ...nodeArgs], { ...options, stdio: [...options.stdio] });
  // dash and bash: ulimit -d takes KiB. `exec` keeps the pid, so the watchdog watches node itself.
  return spawn('/bin/sh', ['-c', 'ulimit -d "$0" && exec "$@"', String(cap * 1024), node, ...nodeArgs], { ...options, stdio: [...options.stdio] });
}

// ---------------------------------------------------------------------------------------------
// Pools.

interface Waiter {
  readonly resolve: (c: Child) => void;
  readonly reject: (e: unknown) => void;
}

class ChildPool {
  readonly children = new Set<Child>();
  private readonly free: Child[] = [];
  private readonly waiters: Waiter[] = [];
  private destroyed = false;

  constructor(readonly cap: number | undefined) {}

  private get max(): number {
    return Math.max(availableParallelism(), shared.wanted);
  }

  /** A ready child for one call: an idle one, a new one, or the next one freed. */
  acquire(signal: AbortSignal): Promise<Child> {
    const c = this.free.pop();
    if (c !== undefined) return Promise.resolve(c);
    return new Promise<Child>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal.reason);
      };
      const waiter: Waiter = {
        resolve: (child) => { signal.removeEventListener('abort', onAbort); resolve(child); },
        reject: (e) => { signal.removeEventListener('abort', onAbort); reject(e); },
      };
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
      this.grow();
    });
  }

  /** Starts children for waiting calls, up to the pool's size. */
  private grow(): void {
    let starting = 0;
    for (const c of this.children) if (!c.isReady && !c.exited) starting++;
    while (this.waiters.length > starting && this.children.size < this.max) {
      const child = new Child(this);
      this.children.add(child);
      starting++;
      child.ready.then(
        () => this.release(child),
        (e: unknown) => {
          // A child that cannot start fails the call that waited for it (not all of them: the
          // next may start fine), with the reason.
          const w = this.waiters.shift();
          w?.reject(new WpipeError('WPIPE_ERR_WORKER_EXITED', `a worker process could not start: ${e instanceof Error ? e.message : String(e)}`, {
            cause: e, details: { executor: 'processes', memoryLimitMb: this.cap },
          }));
          child.kill('close');
        },
      );
    }
  }

  /** A child is free again: the next waiter gets it, else it idles. */
  release(child: Child): void {
    if (child.exited) return;
    const w = this.waiters.shift();
    if (w !== undefined) {
      w.resolve(child);
      return;
    }
    child.idle();
    this.free.push(child);
  }

  /** A child exited: forget it, and start another if calls are waiting. */
  dropped(child: Child): void {
    this.children.delete(child);
    const i = this.free.indexOf(child);
    if (i >= 0) this.free.splice(i, 1);
    if (this.waiters.length > 0 && !this.destroyed) this.grow();
  }

  /** Kills every child and waits for them to exit. */
  async destroy(): Promise<void> {
    this.destroyed = true;
    for (const w of this.waiters.splice(0)) w.reject(new WpipeError('WPIPE_ERR_WORKER_EXITED', 'the process pool was closed'));
    const exits = [...this.children].map((c) => new Promise<void>((resolve) => {
      if (c.exited) { resolve(); return; }
      c.proc.once('exit', () => resolve());
      c.proc.once('error', () => resolve());
      c.busy(); // an unref'd child's exit would not keep this process waiting for it
      c.kill('close');
    }));
    this.free.length = 0;
    await Promise.all(exits);
  }
}

const shared = {
  users: 0,
  wanted: 1,
  pools: new Map<number | undefined, ChildPool>(),
  nextId: 1,
};

function poolFor(cap: number | undefined): ChildPool {
  let p = shared.pools.get(cap);
  if (p === undefined) {
    p = new ChildPool(cap);
    shared.pools.set(cap, p);
  }
  return p;
}

async function releasePools(): Promise<void> {
  shared.users--;
  if (shared.users > 0) return;
  const pools = [...shared.pools.values()];
  shared.pools.clear();
  shared.wanted = 1;
  await Promise.all(pools.map((p) => p.destroy()));
}

/**
 * A 'processes' executor on the shared pools.
 *
 * @example
 * ```ts
 * const ex = createProcessExecutor({ maxWorkers: 2 });
 * ```
 */
export function createProcessExecutor(options: ExecutorFactoryOptions): Executor {
  shared.users++;
  shared.wanted = Math.max(shared.wanted, options.maxWorkers);
  const inflight = new InFlight();
  let closed = false;
  const attempt = async (call: StepCall): Promise<unknown> => {
    if (closed) throw new WpipeError('WPIPE_ERR_WORKER_EXITED', `step '${call.info.stepName}': the processes executor is closed`);
    const cap = call.memoryLimitMb;
    if (cap !== undefined) checkMemoryLimitMb(`step '${call.info.stepName}'`, cap);
    const bad = findUncloneable(call.context, 'ctx');
    if (bad !== undefined) throw cloneError('process', call.info.stepName, 'to', bad);
    const pool = poolFor(cap === undefined ? undefined : Math.floor(cap));
    const child = await pool.acquire(call.signal);
    return child.run(shared.nextId++, call);
  };
  return {
    kind: 'processes',
    reportsStart: true,
    call(call: StepCall): Promise<unknown> {
      const done = attempt(call);
      return inflight.track(done);
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await inflight.settled();
      await releasePools();
    },
  };
}

/**
 * The pools' state, for tests and diagnostics: executors open and live children by cap.
 *
 * @example
 * ```ts
 * processPoolStats(); // { users: 1, children: [{ cap: undefined, pids: [4242] }] }
 * ```
 */
export function processPoolStats(): { users: number; children: { cap: number | undefined; pids: number[] }[] } {
  return {
    users: shared.users,
    children: [...shared.pools.values()].map((p) => ({ cap: p.cap, pids: [...p.children].map((c) => c.pid ?? -1) })),
  };
}

