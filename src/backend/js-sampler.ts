/**
 * The pure-JS host sampler: a worker thread that samples this process's RSS and CPU time into a
 * SharedArrayBuffer. It serves ResourceMonitor and memoryLimit's watchdog when the addon is not
 * loaded (backend js or wasm, or no build); host.ts chooses.
 *
 * Why a worker thread and not a timer (bench/host.ts, each case in a fresh process, AMD EPYC VM with
 * 2 cores, Node 20.20, three runs on a loaded machine): a timer on the main thread takes no sample
 * at all while a synchronous step blocks the event loop — 0 samples in a 500 ms blocked loop
 * started right after start(), where the worker takes 35–43 and the addon's thread 46–51 — so it
 * misses exactly the peaks a monitor exists to see (a 300 MiB buffer made and freed inside one
 * step). The worker costs 6–10 MiB of RSS (an isolate; the addon's thread 0.1–0.4 MiB), 85–110 ms
 * before its first sample (it boots; the addon's thread: 0.15 ms), and 1.2–1.7 % of one core at a
 * 10 ms interval (the addon's thread 0.66–0.98 %, the timer 1.4–2.1 %). Seeing the blocked loop is
 * the point, so the worker it is. What this substitute still misses compared with the native
 * thread: the first ~100 ms after the first monitor of a thread starts (the worker is booting; a
 * monitor started within {@link IDLE_MS} of the last one reuses it), and one worker serves one JS
 * thread (a monitor in a worker thread starts a sampler worker of its own), where the addon's
 * thread serves the process.
 *
 * Protocol: the main side owns the slots' life (start/stop) and the interval; the worker only
 * writes samples and slot aggregates. Slot aggregates are guarded by a per-slot seqlock (an Int32
 * version, odd while the worker writes), the ring by reading only entries the worker cannot be
 * overwriting. The worker sleeps in Atomics.wait on a wake word, so changes reach it at once; it is
 * unref'd (never keeps the process alive) and terminated after {@link IDLE_MS} without users.
 *
 * @example
 * ```ts
 * const s = workerSampler();
 * const slot = s.start(10);
 * blockFor(500);                   // the worker keeps sampling
 * s.read(slot, false).count;       // ≈ 50
 * s.stop(slot);
 * ```
 */
import { SAMPLE_FIELDS, type HostSampler, type SamplerInfo, type SlotReading } from './types.js';
import { workerThreads } from '../lazy-builtins.js';

/** Samples kept in the ring (at 10 ms: 82 s), as in the native sampler. */
export const RING_SAMPLES = 8192;
/** Monitors (plus the watchdog) one JS thread can have active at once. */
export const MAX_SLOTS = 256;
/** A worker without users is terminated after this long (a monitor started soon after reuses it). */
export const IDLE_MS = 1000;

// Int32 control words.
const C_WAKE = 0;
const C_GEN = 1; // a worker runs while this equals the generation it was started with
const CTL_INTS = 16;
// Float64 header.
const H_SEQ = 0;
const H_INTERVAL = 1; // 0: idle
const H_WATCH_LIMIT = 2;
const H_WATCH_FIRED = 3;
const HEADER_DOUBLES = 8;
// Per slot: active, startSeq, count, peakRss, peakCpu, sumCpu.
const SLOT_DOUBLES = 6;
const S_ACTIVE = 0;
const S_START = 1;
const S_COUNT = 2;
const S_PEAK_RSS = 3;
const S_PEAK_CPU = 4;
const S_SUM_CPU = 5;

const CTL_BYTES = CTL_INTS * 4;
const VERSION_BYTES = MAX_SLOTS * 4;
const HEADER_OFFSET = CTL_BYTES + VERSION_BYTES;
const SLOTS_OFFSET = HEADER_OFFSET + HEADER_DOUBLES * 8;
const RING_OFFSET = SLOTS_OFFSET + MAX_SLOTS * SLOT_DOUBLES * 8;
const TOTAL_BYTES = RING_OFFSET + RING_SAMPLES * SAMPLE_FIELDS * 8;
/** Ring entries this close to being overwritten are not read (the worker may be writing them). */
const RING_MARGIN = 16;

// The worker's source: CommonJS (an eval'd worker), no imports of wpipe, no tsx.
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const { sab, gen } = workerData;
const ctl = new Int32Array(sab, 0, ${CTL_INTS});
const versions = new Int32Array(sab, ${CTL_BYTES}, ${MAX_SLOTS});
const h = new Float64Array(sab, ${HEADER_OFFSET}, ${HEADER_DOUBLES});
const slots = new Float64Array(sab, ${SLOTS_OFFSET}, ${MAX_SLOTS * SLOT_DOUBLES});
const ring = new Float64Array(sab, ${RING_OFFSET}, ${RING_SAMPLES * SAMPLE_FIELDS});
let lastT = 0, lastCpu = 0, havePrev = false, armed = true, next = 0;
const now = () => performance.timeOrigin + performance.now();
for (;;) {
  if (Atomics.load(ctl, ${C_GEN}) !== gen) break;
  const wake = Atomics.load(ctl, ${C_WAKE});
  const iv = h[${H_INTERVAL}];
  if (iv > 0) {
    const t = now();
    const rss = process.memoryUsage.rss();
    const u = process.cpuUsage();
    const cpu = (u.user + u.system) / 1e6;
    let pct = havePrev && t > lastT ? (cpu - lastCpu) * 1e3 / (t - lastT) * 100 : 0;
    if (!(pct >= 0)) pct = 0;
    lastT = t; lastCpu = cpu; havePrev = true;
    const seq = h[${H_SEQ}];
    const at = (seq % ${RING_SAMPLES}) * ${SAMPLE_FIELDS};
    ring[at] = t; ring[at + 1] = rss; ring[at + 2] = cpu; ring[at + 3] = pct;
    h[${H_SEQ}] = seq + 1;
    for (let i = 0; i < ${MAX_SLOTS}; i++) {
      const o = i * ${SLOT_DOUBLES};
      if (slots[o + ${S_ACTIVE}] !== 1) continue;
      Atomics.add(versions, i, 1);
      slots[o + ${S_COUNT}] += 1;
      if (rss > slots[o + ${S_PEAK_RSS}]) slots[o + ${S_PEAK_RSS}] = rss;
      if (pct > slots[o + ${S_PEAK_CPU}]) slots[o + ${S_PEAK_CPU}] = pct;
      slots[o + ${S_SUM_CPU}] += pct;
      Atomics.add(versions, i, 1);
    }
    const limit = h[${H_WATCH_LIMIT}];
    if (limit > 0 && rss > limit) {
      if (armed) { armed = false; h[${H_WATCH_FIRED}] += 1; parentPort.postMessage(rss); }
    } else armed = true;
    // Fixed rate, no catch-up bursts after a stall.
    next = next + iv > t ? next + iv : t + iv;
    const wait = next - now();
    if (wait > 0) Atomics.wait(ctl, ${C_WAKE}, wake, wait);
  } else {
    next = 0;
    Atomics.wait(ctl, ${C_WAKE}, wake);
  }
}
`;

class WorkerSampler implements HostSampler {
  readonly kind = 'worker' as const;
  private readonly sab = new SharedArrayBuffer(TOTAL_BYTES);
  private readonly ctl = new Int32Array(this.sab, 0, CTL_INTS);
  private readonly versions = new Int32Array(this.sab, CTL_BYTES, MAX_SLOTS);
  private readonly h = new Float64Array(this.sab, HEADER_OFFSET, HEADER_DOUBLES);
  private readonly slots = new Float64Array(this.sab, SLOTS_OFFSET, MAX_SLOTS * SLOT_DOUBLES);
  private readonly ring = new Float64Array(this.sab, RING_OFFSET, RING_SAMPLES * SAMPLE_FIELDS);
  private readonly intervals = new Map<number, number>(); // slot index → interval
  private worker: import('node:worker_threads').Worker | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private watchIntervalMs = 0;
  private onExceeded: ((rss: number) => void) | null = null;

  now(out: Float64Array): void {
    out[0] = performance.timeOrigin + performance.now();
    out[1] = process.memoryUsage.rss();
    const u = process.cpuUsage();
    out[2] = (u.user + u.system) / 1e6;
  }

  start(intervalMs: number): number {
    let index = -1;
    for (let i = 0; i < MAX_SLOTS; i++) {
      if (!this.intervals.has(i)) {
        index = i;
        break;
      }
    }
    if (index < 0) throw new RangeError(`ResourceMonitor: at most ${MAX_SLOTS} monitors can run at once in one thread`);
    const o = index * SLOT_DOUBLES;
    // Initialised while inactive: the worker skips inactive slots.
    this.slots[o + S_START] = this.h[H_SEQ]!;
    this.slots[o + S_COUNT] = 0;
    this.slots[o + S_PEAK_RSS] = 0;
    this.slots[o + S_PEAK_CPU] = 0;
    this.slots[o + S_SUM_CPU] = 0;
    Atomics.add(this.versions, index, 2);
    this.slots[o + S_ACTIVE] = 1;
    this.intervals.set(index, intervalMs);
    this.retune();
    return index + 1;
  }

  read(slot: number, withSamples: boolean): SlotReading {
    const index = slot - 1;
    if (!this.intervals.has(index)) {
      return { count: 0, peakRssBytes: 0, peakCpuPercent: 0, sumCpuPercent: 0, samples: new Float64Array(0), intervalMs: 0 };
    }
    const o = index * SLOT_DOUBLES;
    let count = 0, peak = 0, peakCpu = 0, sum = 0, start = 0;
    for (;;) {
      const v1 = Atomics.load(this.versions, index);
      if ((v1 & 1) === 0) {
        start = this.slots[o + S_START]!;
        count = this.slots[o + S_COUNT]!;
        peak = this.slots[o + S_PEAK_RSS]!;
        peakCpu = this.slots[o + S_PEAK_CPU]!;
        sum = this.slots[o + S_SUM_CPU]!;
        if (Atomics.load(this.versions, index) === v1) break;
      }
    }
    let samples = new Float64Array(0);
    if (withSamples) {
      const end = this.h[H_SEQ]!;
      const first = Math.max(start, end - RING_SAMPLES + RING_MARGIN, 0);
      const n = Math.max(0, end - first);
      samples = new Float64Array(n * SAMPLE_FIELDS);
      for (let k = 0; k < n; k++) {
        const at = ((first + k) % RING_SAMPLES) * SAMPLE_FIELDS;
        samples.set(this.ring.subarray(at, at + SAMPLE_FIELDS), k * SAMPLE_FIELDS);
      }
    }
    return { count, peakRssBytes: peak, peakCpuPercent: peakCpu, sumCpuPercent: sum, samples, intervalMs: this.h[H_INTERVAL]! };
  }

  stop(slot: number): void {
    const index = slot - 1;
    if (!this.intervals.delete(index)) return;
    this.slots[index * SLOT_DOUBLES + S_ACTIVE] = 0;
    this.retune();
  }

  watchdog(limitBytes: number, intervalMs: number, onExceeded: ((rssBytes: number) => void) | null): void {
    const armed = limitBytes > 0 && onExceeded !== null;
    this.onExceeded = armed ? onExceeded : null;
    this.watchIntervalMs = armed ? intervalMs : 0;
    this.h[H_WATCH_LIMIT] = armed ? limitBytes : 0;
    this.retune();
  }

  info(): SamplerInfo {
    return {
      running: this.worker !== undefined && this.h[H_INTERVAL]! > 0,
      intervalMs: this.h[H_INTERVAL]!,
      slots: this.intervals.size,
      samplesTaken: this.h[H_SEQ]!,
      ringCapacity: RING_SAMPLES,
      watchdogLimitBytes: this.h[H_WATCH_LIMIT]!,
      watchdogFired: this.h[H_WATCH_FIRED]!,
    };
  }

  /** Sets the worker's interval to the smallest any user asked for, starting or idling it. */
  private retune(): void {
    let iv = Infinity;
    for (const v of this.intervals.values()) iv = Math.min(iv, v);
    if (this.onExceeded !== null) iv = Math.min(iv, this.watchIntervalMs);
    const used = Number.isFinite(iv);
    this.h[H_INTERVAL] = used ? iv : 0;
    if (used) {
      if (this.idleTimer !== undefined) {
        clearTimeout(this.idleTimer);
        this.idleTimer = undefined;
      }
      this.ensureWorker();
    } else if (this.worker !== undefined && this.idleTimer === undefined) {
      this.idleTimer = setTimeout(() => this.retire(), IDLE_MS).unref();
    }
    Atomics.add(this.ctl, C_WAKE, 1);
    Atomics.notify(this.ctl, C_WAKE);
  }

  private ensureWorker(): void {
    if (this.worker !== undefined) return;
    // execArgv [] keeps loaders (tsx) out of the sampler: it needs nothing but node's own modules.
    const gen = Atomics.load(this.ctl, C_GEN);
    const w = new (workerThreads().Worker)(WORKER_SOURCE, { eval: true, workerData: { sab: this.sab, gen }, execArgv: [], stdout: false, stderr: false });
    w.on('message', (rss: number) => {
      const cb = this.onExceeded;
      if (cb !== null) cb(rss);
    });
    w.on('error', (error) => {
      process.emitWarning(`wpipe: the resource sampler worker failed: ${error.message}`, { code: 'WPIPE_ERR_INTERNAL' });
    });
    w.on('exit', () => {
      if (this.worker === w) this.worker = undefined;
    });
    // After the listeners: adding a 'message' listener refs the worker's port again (Node 20).
    w.unref();
    this.worker = w;
  }

  private retire(): void {
    this.idleTimer = undefined;
    const w = this.worker;
    if (w === undefined || this.h[H_INTERVAL]! > 0) return;
    this.worker = undefined;
    Atomics.add(this.ctl, C_GEN, 1);
    Atomics.add(this.ctl, C_WAKE, 1);
    Atomics.notify(this.ctl, C_WAKE);
    void w.terminate();
  }
}

let instance: WorkerSampler | undefined;

/**
 * This thread's worker-thread sampler (created on first use; its worker starts with the first slot).
 *
 * @example
 * ```ts
 * const slot = workerSampler().start(50);
 * ```
 */
export function workerSampler(): HostSampler {
  instance ??= new WorkerSampler();
  return instance;
}
