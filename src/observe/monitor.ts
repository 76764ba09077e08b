/**
 * ResourceMonitor: RSS and CPU of this process over a window (reference §7.1, with its faults
 * fixed), sampled off the JS thread so a long synchronous step does not hide its peak.
 *
 * Where the samples come from (src/backend/host.ts `hostSampler` chooses; `backend` in the summary
 * says which ran):
 * - native (auto with the addon, or forced): the addon's sampler thread, one per process however
 *   many monitors and threads use it, reading /proc/self/statm (kept open) and the process CPU clock
 *   into a ring buffer without V8 calls, at the smallest interval any active monitor asked for.
 * - js (forced js or wasm, or no addon): a worker thread doing the same into a SharedArrayBuffer
 *   (src/backend/js-sampler.ts says why a worker and not a timer, and what it still misses).
 * Each monitor is a slot of that sampler: the sampler keeps the slot's count and peaks exactly (also
 * when the ring of 8,192 samples has wrapped), and the monitor reads the ring into a Float64Array
 * at `stop()` / `getSummary()` / `getSamples()`.
 *
 * Fixed from the original: stop() does not wait for a sampler to wake (the original's 0.5 s sleep);
 * samples are taken while the event loop is blocked; the CPU figure is measured from the process
 * CPU clock, not guessed; `peakCpuPercent` and `samples` are added; a `dbPath` row is committed at
 * once (the original's stayed uncommitted until process exit).
 *
 * With `dbPath`, stop() writes the summary as one row of the `resourcemetricsmodel` table (the
 * original's table and columns, plus peak_cpu_percent, ram_increase_mb, samples, backend,
 * start_time, end_time), created on first use with CREATE TABLE IF NOT EXISTS in that SQLite file
 * (which may also hold run history: the table is separate from the versioned history schema).
 *
 * @example
 * ```ts
 * import { ResourceMonitor } from 'wpipe';
 * {
 *   using mon = new ResourceMonitor('import', { intervalMs: 10 }).start();
 *   importEverything();                       // may block the event loop: the sampler still sees it
 *   console.log(mon.getSummary().peakRamMb);
 * }                                           // stopped here
 * ```
 */
import { checkOptions, invalidOption } from '../errors.js';
import { hostSampler } from '../backend/host.js';
import { SAMPLE_FIELDS, type BackendChoice, type HostSampler } from '../backend/types.js';
import { optNumber } from '../engine/validate.js';
import { openDb, storageError, type StorageDb } from '../storage/db.js';

/** Options of {@link ResourceMonitor}. */
export interface ResourceMonitorOptions {
  /** Sampling interval in ms (default 100; from 1). The sampler runs at the smallest interval of the active monitors. */
  intervalMs?: number;
  /** Write the summary to this SQLite file at stop() (table `resourcemetricsmodel`). */
  dbPath?: string;
  /** Which sampler: 'native' (the addon's thread), 'js'/'wasm' (a worker thread), 'auto' (default: WPIPE_BACKEND, else native when built). */
  backend?: BackendChoice;
}

/** What a monitor saw. Memory in MiB, CPU in % of one core (over 100 on several cores), rounded to 2 decimals. */
export interface ResourceSummary {
  readonly taskName: string;
  readonly elapsedSeconds: number;
  readonly startRamMb: number;
  /** The highest RSS seen: the start, every sample, and the end. */
  readonly peakRamMb: number;
  /** RSS at stop() (or now, while running). */
  readonly endRamMb: number;
  readonly ramIncreaseMb: number;
  /** Process CPU time over wall time of the window. */
  readonly avgCpuPercent: number;
  /** The highest CPU % between two consecutive samples. */
  readonly peakCpuPercent: number;
  /** Samples the sampler took during the window. */
  readonly samples: number;
  /** ISO 8601. */
  readonly startTime: string;
  /** ISO 8601, or null while running. */
  readonly endTime: string | null;
  /** 'native': the addon's sampler thread; 'js': the worker-thread substitute. */
  readonly backend: 'native' | 'js';
}

/** The samples of a window, column by column (the ring's most recent 8,192 at most). */
export interface ResourceSamples {
  /** Time of each sample since start(), in ms. */
  readonly elapsedMs: Float64Array;
  readonly rssMb: Float64Array;
  /** CPU % of one core since the previous sample. */
  readonly cpuPercent: Float64Array;
}

const OPTIONS = ['intervalMs', 'dbPath', 'backend'] as const;
const DEFAULT_INTERVAL_MS = 100;
const MIB = 1024 * 1024;

const round2 = (x: number): number => Math.round(x * 100) / 100;

interface Window {
  readonly sampler: HostSampler;
  readonly backend: 'native' | 'js';
  readonly slot: number;
  /** [time ms, rss bytes, cpu s] at start. */
  readonly start: Float64Array;
  readonly startDate: Date;
  end: Float64Array | undefined;
  endDate: Date | undefined;
  /** The slot's final reading, kept after stop. */
  final: { count: number; peak: number; peakCpu: number; samples: Float64Array } | undefined;
}

/**
 * Measures RSS and CPU of this process between start() and stop(). Also a disposable:
 * `using mon = new ResourceMonitor('x').start()` stops it at the end of the scope.
 *
 * @example
 * ```ts
 * const mon = new ResourceMonitor('resize', { intervalMs: 10, dbPath: 'metrics.db' });
 * mon.start();
 * resizeAll();
 * const s = mon.stop(); // { taskName: 'resize', peakRamMb: 412.5, avgCpuPercent: 97.1, samples: 180, backend: 'native', … }
 * ```
 */
export class ResourceMonitor {
  readonly taskName: string;
  readonly intervalMs: number;
  readonly dbPath: string | undefined;
  private readonly backendOption: BackendChoice | undefined;
  private w: Window | undefined;

  constructor(taskName: string, options: ResourceMonitorOptions = {}) {
    if (typeof taskName !== 'string' || taskName.length === 0) {
      throw invalidOption(`new ResourceMonitor(): taskName must be a non-empty string, got ${taskName === '' ? "''" : typeof taskName}`);
    }
    checkOptions('new ResourceMonitor()', options, OPTIONS);
    this.taskName = taskName;
    this.intervalMs = optNumber('new ResourceMonitor()', 'intervalMs', options.intervalMs, { min: 1, max: 3_600_000 }) ?? DEFAULT_INTERVAL_MS;
    if (options.dbPath !== undefined && (typeof options.dbPath !== 'string' || options.dbPath.length === 0)) {
      throw invalidOption('new ResourceMonitor(): dbPath must be a non-empty string (a SQLite file path)');
    }
    this.dbPath = options.dbPath;
    this.backendOption = options.backend;
    // Validate the backend now (a misspelt one is an option error at construction, not at start()).
    if (options.backend !== undefined) hostSamplerChoiceCheck(options.backend);
  }

  /** Whether start() was called and stop() not yet. */
  get isRunning(): boolean {
    return this.w !== undefined && this.w.end === undefined;
  }

  /** Seconds since start() (up to stop() once stopped); 0 before start(). */
  get elapsedSeconds(): number {
    const w = this.w;
    if (w === undefined) return 0;
    const end = w.end ?? nowSample(w.sampler);
    return (end[0]! - w.start[0]!) / 1000;
  }

  /**
   * Starts a new window (a monitor that was stopped starts over); no-op while running. Returns
   * `this`, for `using mon = new ResourceMonitor('x').start()`.
   */
  start(): this {
    if (this.isRunning) return this;
    const { sampler, backend } = hostSampler(this.backendOption);
    const slot = sampler.start(this.intervalMs);
    const start = nowSample(sampler);
    this.w = { sampler, backend, slot, start, startDate: new Date(), end: undefined, endDate: undefined, final: undefined };
    return this;
  }

  /**
   * Ends the window and returns its summary; writes it to `dbPath` when given. Idempotent: a second
   * call returns the same summary. Throws when start() was never called.
   */
  stop(): ResourceSummary {
    const w = this.window('stop');
    if (w.end !== undefined) return this.summarize(w);
    w.end = nowSample(w.sampler);
    w.endDate = new Date();
    const r = w.sampler.read(w.slot, true);
    w.sampler.stop(w.slot);
    w.final = { count: r.count, peak: r.peakRssBytes, peakCpu: r.peakCpuPercent, samples: r.samples };
    const summary = this.summarize(w);
    if (this.dbPath !== undefined) writeSummary(this.dbPath, summary);
    return summary;
  }

  /** The summary so far (while running: up to now, `endTime` null), or of the finished window. */
  getSummary(): ResourceSummary {
    return this.summarize(this.window('getSummary'));
  }

  /** The window's samples (the most recent 8,192 at most), as columns. */
  getSamples(): ResourceSamples {
    const w = this.window('getSamples');
    const raw = w.final?.samples ?? w.sampler.read(w.slot, true).samples;
    const n = raw.length / SAMPLE_FIELDS;
    const elapsedMs = new Float64Array(n);
    const rssMb = new Float64Array(n);
    const cpuPercent = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      elapsedMs[i] = raw[i * SAMPLE_FIELDS]! - w.start[0]!;
      rssMb[i] = raw[i * SAMPLE_FIELDS + 1]! / MIB;
      cpuPercent[i] = raw[i * SAMPLE_FIELDS + 3]!;
    }
    return { elapsedMs, rssMb, cpuPercent };
  }

  [Symbol.dispose](): void {
    if (this.isRunning) this.stop();
  }

  private window(method: string): Window {
    if (this.w === undefined) throw invalidOption(`ResourceMonitor('${this.taskName}').${method}(): the monitor was never started (call start() first)`);
    return this.w;
  }

  private summarize(w: Window): ResourceSummary {
    const end = w.end ?? nowSample(w.sampler);
    const r = w.final ?? (() => {
      const x = w.sampler.read(w.slot, false);
      return { count: x.count, peak: x.peakRssBytes, peakCpu: x.peakCpuPercent };
    })();
    const startRss = w.start[1]!;
    const endRss = end[1]!;
    const peak = Math.max(startRss, endRss, r.peak);
    const wallMs = end[0]! - w.start[0]!;
    const avgCpu = wallMs > 0 ? ((end[2]! - w.start[2]!) * 1000 / wallMs) * 100 : 0;
    return {
      taskName: this.taskName,
      elapsedSeconds: round2(wallMs / 1000),
      startRamMb: round2(startRss / MIB),
      peakRamMb: round2(peak / MIB),
      endRamMb: round2(endRss / MIB),
      ramIncreaseMb: round2(round2(endRss / MIB) - round2(startRss / MIB)),
      avgCpuPercent: round2(Math.max(0, avgCpu)),
      peakCpuPercent: round2(r.count > 0 ? r.peakCpu : Math.max(0, avgCpu)),
      samples: r.count,
      startTime: w.startDate.toISOString(),
      endTime: w.endDate?.toISOString() ?? null,
      backend: w.backend,
    };
  }
}

function hostSamplerChoiceCheck(backend: unknown): void {
  if (!['auto', 'js', 'wasm', 'native'].includes(backend as string)) {
    throw invalidOption(`new ResourceMonitor(): backend must be one of auto, js, wasm, native; got ${JSON.stringify(backend)}`, 'RangeError');
  }
}

function nowSample(sampler: HostSampler): Float64Array {
  const out = new Float64Array(3);
  sampler.now(out);
  // /proc/self/statm unreadable (a sandbox): Node's own RSS reading still works.
  if (Number.isNaN(out[1])) out[1] = process.memoryUsage.rss();
  return out;
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS resourcemetricsmodel (
  id               INTEGER PRIMARY KEY,
  task_name        TEXT NOT NULL,
  start_ram_mb     REAL,
  peak_ram_mb      REAL,
  end_ram_mb       REAL,
  avg_cpu_percent  REAL,
  elapsed_seconds  REAL,
  created_at       TEXT NOT NULL,
  peak_cpu_percent REAL,
  ram_increase_mb  REAL,
  samples          INTEGER,
  backend          TEXT,
  start_time       TEXT,
  end_time         TEXT
)`;

function writeSummary(dbPath: string, s: ResourceSummary): void {
  let db: StorageDb;
  try {
    db = openDb(dbPath);
  } catch (error) {
    throw storageError(error, `ResourceMonitor('${s.taskName}'): open`, dbPath);
  }
  try {
    db.raw.exec(CREATE_TABLE);
    db.transaction(() => {
      db.prepare(`INSERT INTO resourcemetricsmodel (task_name, start_ram_mb, peak_ram_mb, end_ram_mb, avg_cpu_percent,
        elapsed_seconds, created_at, peak_cpu_percent, ram_increase_mb, samples, backend, start_time, end_time)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
        s.taskName, s.startRamMb, s.peakRamMb, s.endRamMb, s.avgCpuPercent, s.elapsedSeconds, new Date().toISOString(),
        s.peakCpuPercent, s.ramIncreaseMb, s.samples, s.backend, s.startTime, s.endTime,
      );
    });
  } catch (error) {
    throw storageError(error, `ResourceMonitor('${s.taskName}'): writing its summary`, dbPath);
  } finally {
    db.close();
  }
}
