/**
 * The C++ addon (native/, built to build/Release/wpipe.node) as a host: loading it, its status, its
 * resource sampler thread and its rlimit calls. The expression VM it also holds is served by
 * native.ts; this module does not load the VM's host code (the tape, the contract's VM tables), so
 * the run history and the memory cap can use the sampler without it.
 *
 * This module is the only place that loads the .node file, lazily (never at import time), through
 * `createRequire(import.meta.url)`. `NativeBinding` types every export of the addon. Values cross as
 * flat buffers only: Int32Array code, Uint8Array value tapes, Float64Array / Uint8Array columns and
 * an Int32Array of fault words — the addon never walks a JS object graph.
 *
 * @example
 * ```ts
 * import { loadNativeSampler } from './addon.js';
 * const slot = loadNativeSampler().start(10); // throws, saying what was tried and how to fix it, without the addon
 * ```
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { addonCandidates } from '../paths.js';
import {
  ADDON_ABI, SAMPLER_HEADER_FIELDS, SAMPLER_INFO_FIELDS, SamplerHeaderField, SamplerInfoField,
} from '../vm/contract.js';
import {
  SAMPLE_FIELDS,
  type HostSampler,
  type RlimitPair,
  type SamplerInfo,
  type SlotReading,
  type BackendStatus,
  type VmColumn,
} from './types.js';

/** An opaque handle to a program prepared by the addon (an external object owned by this thread). */
export interface NativeProgram {
  readonly __wpipeNativeProgram: never;
}

/** Every export of build/Release/wpipe.node (native/addon.cpp). */
export interface NativeBinding {
  /** Build facts: the Node-API version it was built for and the CPU features the batch VM uses. */
  info(): { napiVersion: number; features: string[]; abi: number };
  /**
   * Validates and decodes a program once. `kinds` (one ColumnKind byte per column) makes it a batch
   * program; null a scalar one. Throws an Error with code WPIPE_ERR_INTERNAL on a malformed program.
   */
  prepare(code: Int32Array, consts: Uint8Array, strings: Uint8Array, kinds: Uint8Array | null): NativeProgram;
  /**
   * Evaluates a scalar program over a context tape. Returns the result tape's length (copied into
   * `out` when it fits, else fetched with takeResult), or -1 with the fault words (FaultWord) in `fault`.
   */
  evaluate(program: NativeProgram, ctx: Uint8Array, out: Uint8Array, fault: Int32Array): number;
  /** Copies the last result tape of this thread into `out`; returns its length. */
  takeResult(out: Uint8Array): number;
  /** Runs a batch program; writes 0/1 per row into `out`; returns -1 or the first failing row. */
  runBatch(program: NativeProgram, columns: readonly VmColumn[], rows: number, out: Uint8Array, fault: Int32Array): number;
  /** [monotonic ms, RSS bytes (NaN when /proc/self/statm is unreadable), process CPU s] into out[0..2]. */
  samplerNow(out: Float64Array): void;
  /** Opens a slot of the process-wide sampler thread (native/sampler.h); returns its id. */
  samplerStart(intervalMs: number): number;
  /**
   * Fills header[SamplerHeaderField.*] (samples, peak RSS, peak CPU %, first seq still in the ring, start
   * seq, end seq, thread interval ms, sum of CPU %, last sample's RSS and time); false for an unknown slot.
   */
  samplerRead(slot: number, header: Float64Array): boolean;
  /** Copies the slot's samples with seq ≥ fromSeq still in the ring (4 doubles each); returns how many. */
  samplerCopy(slot: number, fromSeq: number, out: Float64Array): number;
  samplerStop(slot: number): boolean;
  /**
   * Fills out[SamplerInfoField.*]: running, interval ms, slots, samples taken, ring capacity, watchdog
   * limit, watchdog fired, environments, CPU seconds the sampler thread has used.
   */
  samplerInfo(out: Float64Array): void;
  /** Arms (limitBytes > 0 and a callback) or disarms the process's RSS watchdog. */
  samplerWatchdog(limitBytes: number, intervalMs: number, callback: ((rssBytes: number) => void) | null): void;
  /** 0 with [soft, hard] in out (Infinity for unlimited), or an errno. */
  getrlimit(resource: 'data' | 'as' | 'stack', out: Float64Array): number;
  /** 0 or an errno. */
  setrlimit(resource: 'data' | 'as' | 'stack', soft: number, hard: number): number;
}

const EXPORTS = [
  'info', 'prepare', 'evaluate', 'takeResult', 'runBatch',
  'samplerNow', 'samplerStart', 'samplerRead', 'samplerCopy', 'samplerStop', 'samplerInfo', 'samplerWatchdog',
  'getrlimit', 'setrlimit',
] as const;

let binding: NativeBinding | undefined;
let bindingPath = '';
let loadError: Error | undefined;

function loadFrom(path: string): NativeBinding {
  const b = createRequire(import.meta.url)(path) as NativeBinding;
  for (const fn of EXPORTS) {
    if (typeof b[fn] !== 'function') throw new Error(`the addon has no ${fn}() export (a stale build?)`);
  }
  // The version native/addon.cpp was built with (src/vm/contract.ts ADDON_ABI, generated into native/opcodes.h).
  const abi = b.info().abi;
  if (abi !== ADDON_ABI) throw new Error(`the addon has ABI ${abi}, this code needs ${ADDON_ABI} (a stale build?)`);
  return b;
}

/**
 * Loads the first addon that exists and loads (src/paths.ts addonCandidates: WPIPE_NATIVE_PATH, the
 * local build, the prebuild for this platform). A file that exists but does not load (built for
 * another libc, a stale ABI) is named in the error when nothing else loads either.
 */
export function loadBinding(): NativeBinding {
  if (binding) return binding;
  if (loadError) throw loadError;
  const tried: string[] = [];
  let lastCause: Error | undefined;
  for (const path of addonCandidates()) {
    if (!existsSync(path)) {
      tried.push(`${path} (missing)`);
      continue;
    }
    try {
      binding = loadFrom(path);
      bindingPath = path;
      return binding;
    } catch (error) {
      lastCause = error instanceof Error ? error : new Error(String(error));
      tried.push(`${path} (${lastCause.message.split('\n')[0]})`);
    }
  }
  loadError = new Error(
    `could not load the native addon: tried ${tried.join('; ')}. ` +
      `Build it with \`npm run build:native\` (cmake, a C++17 compiler; the addon targets Node-API 8, ` +
      `this is Node ${process.versions.node} with Node-API ${process.versions.napi ?? '?'}, ` +
      `${process.platform}-${process.arch}).`,
    lastCause ? { cause: lastCause } : undefined,
  );
  throw loadError;
}

/**
 * Whether the addon loads here, from where (or why not), and the CPU features its batch VM uses
 * (detected at run time: 'avx2' means the AVX2 clones of the column kernels run).
 *
 * @example
 * ```ts
 * nativeStatus(); // { name: 'native', available: true, detail: '/…/build/Release/wpipe.node (Node-API 8)', features: ['sse2', 'avx2', …] }
 * ```
 */
export function nativeStatus(): BackendStatus {
  try {
    const b = loadBinding();
    const info = b.info();
    return { name: 'native', available: true, detail: `${bindingPath} (${/[\\/]prebuilds[\\/]/.test(bindingPath) ? 'prebuilt, ' : ''}Node-API ${info.napiVersion})`, features: info.features };
  } catch (error) {
    return { name: 'native', available: false, detail: (error as Error).message, features: [] };
  }
}

// ---------------------------------------------------------------------------------------------
// The host: the sampler thread and rlimits.

class NativeSampler implements HostSampler {
  readonly kind = 'native' as const;
  private readonly header = new Float64Array(SAMPLER_HEADER_FIELDS);

  constructor(private readonly b: NativeBinding) {}

  now(out: Float64Array): void {
    this.b.samplerNow(out);
  }

  start(intervalMs: number): number {
    return this.b.samplerStart(intervalMs);
  }

  read(slot: number, withSamples: boolean): SlotReading {
    const h = this.header;
    if (!this.b.samplerRead(slot, h)) {
      return { count: 0, peakRssBytes: 0, peakCpuPercent: 0, sumCpuPercent: 0, samples: new Float64Array(0), intervalMs: 0 };
    }
    const H = SamplerHeaderField;
    let samples = new Float64Array(0);
    if (withSamples) {
      const available = h[H.END_SEQ]! - h[H.FIRST_SEQ]!;
      // A few spare rows: the thread may add samples between the two calls.
      samples = new Float64Array((available + 4) * SAMPLE_FIELDS);
      const n = this.b.samplerCopy(slot, h[H.FIRST_SEQ]!, samples);
      samples = samples.subarray(0, n * SAMPLE_FIELDS);
    }
    return {
      count: h[H.SAMPLES]!, peakRssBytes: h[H.PEAK_RSS]!, peakCpuPercent: h[H.PEAK_CPU]!, sumCpuPercent: h[H.SUM_CPU]!, samples,
      intervalMs: h[H.INTERVAL_MS]!,
    };
  }

  stop(slot: number): void {
    this.b.samplerStop(slot);
  }

  watchdog(limitBytes: number, intervalMs: number, onExceeded: ((rssBytes: number) => void) | null): void {
    this.b.samplerWatchdog(onExceeded === null ? 0 : limitBytes, intervalMs, onExceeded);
  }

  info(): SamplerInfo {
    const o = new Float64Array(SAMPLER_INFO_FIELDS);
    const I = SamplerInfoField;
    this.b.samplerInfo(o);
    return {
      running: o[I.RUNNING] === 1, intervalMs: o[I.INTERVAL_MS]!, slots: o[I.SLOTS]!, samplesTaken: o[I.SAMPLES_TAKEN]!,
      ringCapacity: o[I.RING_CAPACITY]!, watchdogLimitBytes: o[I.WATCHDOG_LIMIT]!, watchdogFired: o[I.WATCHDOG_FIRED]!,
      threadCpuSeconds: o[I.THREAD_CPU]!,
    };
  }
}

/** The rlimit calls of the addon: Linux getrlimit/setrlimit, bytes in, bytes out. */
export interface NativeRlimits {
  /** The current limits, or throws an Error with the errno's name as `code`. */
  get(resource: 'data' | 'as' | 'stack'): RlimitPair;
  /** Sets both limits; throws an Error with the errno's name as `code` (EPERM: raising a hard limit). */
  set(resource: 'data' | 'as' | 'stack', soft: number, hard: number): void;
}

function errnoError(call: string, errno: number): Error {
  const name = osErrnoName(errno);
  return Object.assign(new Error(`${call} failed: ${name}`), { code: name, errno });
}

function osErrnoName(errno: number): string {
  for (const [name, value] of Object.entries(osConstants.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

let sampler: NativeSampler | undefined;

/**
 * The addon's sampler thread (one per process, shared by every thread and worker; see
 * native/sampler.h). Throws like {@link loadBinding} when the addon cannot load.
 *
 * @example
 * ```ts
 * const s = loadNativeSampler();
 * const slot = s.start(10);       // the thread samples every 10 ms, also while this thread is blocked
 * busyWork();
 * const r = s.read(slot, true);    // r.count, r.peakRssBytes, r.samples (4 doubles per sample)
 * s.stop(slot);
 * ```
 */
export function loadNativeSampler(): HostSampler {
  sampler ??= new NativeSampler(loadBinding());
  return sampler;
}

/**
 * getrlimit/setrlimit through the addon (Node has no setrlimit). Throws like {@link loadBinding}
 * when the addon cannot load.
 *
 * @example
 * ```ts
 * const rl = loadNativeRlimits();
 * const { hard } = rl.get('data');
 * rl.set('data', 512 * 2 ** 20, hard); // lower only the soft limit: it can be raised again up to `hard`
 * ```
 */
export function loadNativeRlimits(): NativeRlimits {
  const b = loadBinding();
  const out = new Float64Array(2);
  return {
    get(resource) {
      const e = b.getrlimit(resource, out);
      if (e !== 0) throw errnoError(`getrlimit(${resource})`, e);
      return { soft: out[0]!, hard: out[1]! };
    },
    set(resource, soft, hard) {
      const e = b.setrlimit(resource, soft, hard);
      if (e !== 0) throw errnoError(`setrlimit(${resource}, ${soft}, ${hard})`, e);
    },
  };
}
