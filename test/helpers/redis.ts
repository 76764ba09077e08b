/**
 * A private Debian `redis-server` for the BullMQ tests and bench: started on a free 127.0.0.1 port
 * with its own temporary directory (no RDB snapshots; AOF on request), ready once it answers PING,
 * stopped by its pid (SIGTERM, then SIGKILL) and its directory removed. Without a redis-server on
 * PATH, `startRedis` resolves to a reason string the caller prints when it skips. `redisSuite()` is
 * the before/after of a test file built on it (the server, worker processes, cleanup).
 *
 * @example
 * ```ts
 * const redis = await startRedis();
 * if (typeof redis === 'string') { test('bullmq', { skip: redis }, () => {}); }
 * else { ...; after(() => redis.stop()); }
 * ```
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { useBullmq } from '../../src/queue/executor.js';
import { WorkerProcesses } from './bullmq-workers.js';

export interface RedisServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  readonly pid: number;
  /** Connection options for BullMQ / ioredis (maxRetriesPerRequest: null, as BullMQ workers require). */
  readonly connection: { host: string; port: number; maxRetriesPerRequest: null };
  /** Stops this server (SIGKILL with `hard`), keeping its directory (the AOF) for `restart`. */
  kill(hard?: boolean): Promise<void>;
  /** Starts it again on the same port and directory (the AOF is replayed when appendonly is on). */
  restart(): Promise<void>;
  /** Stops it and removes its directory. */
  stop(): Promise<void>;
}

export interface StartRedisOptions {
  /** appendonly yes (fsync every second), so a restart keeps the queue. */
  readonly appendonly?: boolean;
}

/** Whether redis-server can be run here (a reason string if not). */
export function redisUnavailable(): string | undefined {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) {
    return `redis-server is not installed (apt-get install -y redis-server; .ci/run does): ${r.error?.message ?? `exit ${r.status}`}`;
  }
  return undefined;
}

/** A port nobody listens on right now (the kernel's choice on 127.0.0.1). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** One PING over a raw socket: true on +PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean): void => { s.destroy(); resolve(ok); };
    s.setTimeout(2000, () => done(false));
    s.once('error', () => done(false));
    s.on('data', (d) => { buf += d.toString('latin1'); if (buf.includes('\r\n')) done(buf.startsWith('+PONG')); });
    s.once('connect', () => s.write('PING\r\n'));
  });
}

function waitExit(proc: ChildProcess, ms: number): Promise<boolean> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    proc.once('exit', () => { clearTimeout(t); resolve(true); });
  });
}

/**
 * Starts a private redis-server and waits (up to 30 s) until it answers PING.
 *
 * @example
 * ```ts
 * const redis = await startRedis({ appendonly: true });
 * ```
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer | string> {
  const missing = redisUnavailable();
  if (missing !== undefined) return missing;
  const dir = mkdtempSync(join(tmpdir(), 'wpipe-redis-'));
  let port = 0;
  let proc: ChildProcess | undefined;
  let log = '';
  const launch = async (): Promise<void> => {
    log = '';
    proc = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
      '--appendonly', options.appendonly === true ? 'yes' : 'no', '--protected-mode', 'yes', '--daemonize', 'no',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (d: Buffer) => { if (log.length < 8000) log += d.toString(); });
    proc.stderr!.on('data', (d: Buffer) => { if (log.length < 8000) log += d.toString(); });
    const started = proc;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (started.exitCode !== null || started.signalCode !== null) throw new Error(`redis-server exited at start: ${log}`);
      if (await ping(port)) break;
      if (Date.now() > deadline) {
        started.kill('SIGKILL');
        await waitExit(started, 10_000);
        throw new Error(`redis-server did not answer PING on 127.0.0.1:${port} within 30 s: ${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    // Its pipes must not keep the test process alive.
    started.stdout!.destroy();
    started.stderr!.destroy();
    started.unref();
  };
  try {
    port = await freePort();
    await launch();
  } catch (error) {
    // It never started: nobody will call stop(), so its directory goes now.
    if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await waitExit(proc, 10_000);
    }
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const kill = async (hard = false): Promise<void> => {
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(hard ? 'SIGKILL' : 'SIGTERM');
    if (!(await waitExit(proc, 10_000))) {
      proc.kill('SIGKILL');
      await waitExit(proc, 10_000);
    }
  };
  return {
    host: '127.0.0.1', port, dir, url: `redis://127.0.0.1:${port}`,
    get pid() { return proc!.pid!; },
    connection: { host: '127.0.0.1', port, maxRetriesPerRequest: null },
    kill,
    restart: launch,
    async stop() {
      try {
        await kill();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** What {@link redisSuite} gives a test file. */
export interface RedisSuite {
  /** The server (set once the file's `before` ran; undefined when the file skips). */
  readonly redis: RedisServer | undefined;
  /** Why the file's tests skip (redis-server cannot be had), else false. */
  readonly skip: string | false;
  /** Worker processes on this server (stopped after the tests). */
  readonly workers: WorkerProcesses | undefined;
  /** Runs `fn` after the tests, before the workers and the server stop (close pipelines, queues, children). */
  cleanup(fn: () => unknown): void;
}

/**
 * The before/after of every BullMQ test file: a private redis-server started before the tests (or
 * the reason it cannot be, printed as `# bullmq tests skip: …`: each test then calls
 * `t.skip(suite.skip)`), WorkerProcesses on it; after the tests, the `cleanup` functions in order,
 * `useBullmq(null)`, the workers stopped, the server stopped and its directory removed: each of
 * these runs even when one before it threw; the hook then throws the first error (an AggregateError
 * when several threw).
 *
 * @example
 * ```ts
 * const suite = redisSuite();
 * suite.cleanup(() => pipe.close());
 * test('x', async (t) => {
 *   if (suite.skip) return t.skip(suite.skip);
 *   await suite.workers!.start({ queue: 'x', steps: [stepsModule] });
 *   useBullmq({ connection: suite.redis!.url, name: 'x' });
 * });
 * ```
 */
export function redisSuite(options: StartRedisOptions = {}): RedisSuite {
  let redis: RedisServer | undefined;
  let skip: string | false = false;
  let workers: WorkerProcesses | undefined;
  const cleanups: (() => unknown)[] = [];
  before(async () => {
    const r = await startRedis(options);
    if (typeof r === 'string') {
      skip = r;
      console.log(`# bullmq tests skip: ${r}`);
    } else {
      redis = r;
      workers = new WorkerProcesses(r.url);
    }
  });
  after(async () => {
    // Every cleanup runs, and the workers and the server stop, whatever threw before them; the
    // first error is rethrown then (an AggregateError when several threw).
    const errors: unknown[] = [];
    const attempt = async (fn: () => unknown): Promise<void> => {
      try {
        await fn();
      } catch (error) {
        errors.push(error);
      }
    };
    for (const fn of cleanups) await attempt(fn);
    await attempt(() => useBullmq(null));
    await attempt(() => workers?.stopAll());
    await attempt(() => redis?.stop());
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `redisSuite: ${errors.length} cleanups failed; the first: ${String((errors[0] as Error)?.message ?? errors[0])}`);
  });
  return {
    get redis() { return redis; },
    get skip() { return skip; },
    get workers() { return workers; },
    cleanup(fn) { cleanups.push(fn); },
  };
}
