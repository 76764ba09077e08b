/**
 * The Backend contract: one interface, three implementations (the js evaluator of src/expr, wasm.ts, native.ts); only
 * load.ts decides which one serves a call.
 */
import type { Program } from '../vm/contract.js';
import { ColumnKind } from '../vm/contract.js';

export type BackendName = 'js' | 'wasm' | 'native';
export type BackendChoice = BackendName | 'auto';

/** What a program needs from a backend to evaluate one context. */
export interface ScalarEvaluator {
  /** Evaluates against a context; returns the value in the js evaluator's representation. */
  evaluate(ctx: Record<string, unknown>): unknown;
}

/** A column of a batch program, as the VMs take it. */
export type VmColumn = Float64Array | Uint8Array;

export { ColumnKind };
export type ColumnKindValue = (typeof ColumnKind)[keyof typeof ColumnKind];

/**
 * A program compiled for columns (see bytecode.ts, "Batch programs"): NAME k loads column k, whose
 * kind is kinds[k].
 */
export interface BatchProgram extends Program {
  readonly kinds: readonly ColumnKindValue[];
}

/** Evaluates a batch program over columns of `rows` rows, writing truthiness (0/1) into `out`. */
export interface BatchEvaluator {
  /**
   * Returns -1 on success, or the first failing row, with `fault` (FAULT_WORD_COUNT int32 words, FaultWord in src/vm/contract.ts) set.
   */
  run(columns: readonly VmColumn[], rows: number, out: Uint8Array): number;
  readonly fault: Int32Array;
}

/** An expression VM in wasm or native: executes the shared bytecode. */
export interface ExprVm {
  readonly name: BackendName;
  /**
   * Prepares a program for scalar evaluation. `evaluate` returns the result, or throws
   * `VmFault` (carrying the fault words) — the caller turns it into an ExpressionError.
   */
  prepareScalar(program: Program): ScalarEvaluator;
  prepareBatch(program: BatchProgram): BatchEvaluator;
}

/** Thrown by a VM-backed ScalarEvaluator: the fault words, to be turned into an ExpressionError. */
export class VmFault extends Error {
  constructor(readonly fault: Int32Array) {
    super('expression VM fault');
  }
}

/** Facts a backend module reports about itself, for getBackendInfo(). */
export interface BackendStatus {
  readonly name: BackendName;
  readonly available: boolean;
  /** Where it was loaded from, or why it could not be. */
  readonly detail: string;
  /** Features this build has (e.g. 'simd128', 'avx2'). */
  readonly features: readonly string[];
}

// ---------------------------------------------------------------------------------------------
// The host sampler: RSS and CPU time of this process, sampled off the JS thread (ResourceMonitor,
// memoryLimit's watchdog). Two implementations: the addon's C++ thread (addon.ts) and a worker
// thread writing into a SharedArrayBuffer (js-sampler.ts); host.ts chooses.

/** Doubles per sample in {@link SlotReading.samples}: time (ms), RSS (bytes), process CPU time (s), CPU % of one core since the previous sample. */
export const SAMPLE_FIELDS = 4;

/** What a sampler slot (one monitor) has seen since it started. */
export interface SlotReading {
  /** Samples taken while the slot was active (all of them, also those the ring no longer holds). */
  readonly count: number;
  /** Highest RSS of those samples, in bytes (0 when none). */
  readonly peakRssBytes: number;
  /** Highest CPU % of one core between two consecutive samples (0 when none). */
  readonly peakCpuPercent: number;
  /** Sum of the samples' CPU % (for an average over samples). */
  readonly sumCpuPercent: number;
  /** The samples the ring still holds (the most recent ones), {@link SAMPLE_FIELDS} doubles each. */
  readonly samples: Float64Array;
  /** The sampler's current interval in ms: the smallest any user asked for. */
  readonly intervalMs: number;
}

/** Facts about a sampler, for tests and getBackendInfo. */
export interface SamplerInfo {
  /** Whether its thread (or worker) is running now. */
  readonly running: boolean;
  readonly intervalMs: number;
  /** Active slots (monitors) of the whole process (native) or of this thread (worker). */
  readonly slots: number;
  /** Samples taken since the sampler was created. */
  readonly samplesTaken: number;
  /** Samples the ring holds. */
  readonly ringCapacity: number;
  /** The armed watchdog's RSS limit in bytes (0: none). */
  readonly watchdogLimitBytes: number;
  /** How many times the watchdog fired. */
  readonly watchdogFired: number;
  /** CPU seconds the sampler's own thread has used (native only: Node 20 cannot read a worker's own CPU time). */
  readonly threadCpuSeconds?: number;
}

/**
 * Samples this process's RSS and CPU time off the JS thread, so it sees what happens while the event
 * loop is blocked. One sampler serves every monitor: slots are reference-counted, the thread runs
 * while any slot or the watchdog is active, at the smallest interval any of them asked for.
 */
export interface HostSampler {
  /** 'native': the addon's C++ thread (one per process); 'worker': a worker thread (one per JS thread). */
  readonly kind: 'native' | 'worker';
  /** Fills out[0..2] with the time (ms, the samples' clock), RSS (bytes) and process CPU time (s), read now on this thread. */
  now(out: Float64Array): void;
  /** Opens a slot sampled at least every `intervalMs`; returns its id. */
  start(intervalMs: number): number;
  /** What the slot has seen so far; `withSamples` false leaves `samples` empty. */
  read(slot: number, withSamples: boolean): SlotReading;
  /** Closes a slot (idempotent). */
  stop(slot: number): void;
  /**
   * Arms the process's RSS watchdog: `onExceeded(rssBytes)` runs on this thread's event loop when a
   * sample's RSS exceeds `limitBytes` (once per crossing). `limitBytes` 0 or a null callback disarms.
   */
  watchdog(limitBytes: number, intervalMs: number, onExceeded: ((rssBytes: number) => void) | null): void;
  info(): SamplerInfo;
}

/** A resource limit as the addon reads it: bytes, Infinity for unlimited. */
export interface RlimitPair {
  readonly soft: number;
  readonly hard: number;
}
