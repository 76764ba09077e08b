/**
 * The Backend contract: one interface, three implementations (js.ts, wasm.ts, native.ts); only
 * load.ts decides which one serves a call.
 */
import type { Program } from '../expr/bytecode.js';

export type BackendName = 'js' | 'wasm' | 'native';
export type BackendChoice = BackendName | 'auto';

/** What a program needs from a backend to evaluate one context. */
export interface ScalarEvaluator {
  /** Evaluates against a context; returns the value in the js evaluator's representation. */
  evaluate(ctx: Record<string, unknown>): unknown;
}

/** A column of a batch program, as the VMs take it. */
export type VmColumn = Float64Array | Uint8Array;

/** Column kinds of a batch program (the static type of NAME k). */
export const ColumnKind = { NUMBER: 0, BOOL: 1 } as const;
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
   * Returns -1 on success, or the first failing row, with `fault` (six int32, see bytecode.ts) set.
   */
  run(columns: readonly VmColumn[], rows: number, out: Uint8Array): number;
  readonly fault: Int32Array;
}

/** An expression VM in wasm or native: executes the shared bytecode. */
export interface ExprVm {
  readonly name: BackendName;
  /**
   * Prepares a program for scalar evaluation. `evaluate` returns the result, or throws
   * `VmFault` (carrying the six-int fault) — the caller turns it into an ExpressionError.
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
