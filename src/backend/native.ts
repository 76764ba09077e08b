/**
 * The native backend: the C++ addon's expression VM (native/, built to build/Release/wpipe.node),
 * loaded through addon.ts (which also serves the addon's sampler thread and rlimit calls). Values
 * cross as flat buffers only: Int32Array code, Uint8Array value tapes (src/vm/tape.ts), Float64Array /
 * Uint8Array columns and an Int32Array of fault words — the addon never walks a JS object graph.
 *
 * @example
 * ```ts
 * import { loadNativeVm } from './native.js';
 * const vm = loadNativeVm(); // throws, saying what was tried and how to fix it, without the addon
 * const scalar = vm.prepareScalar(program);
 * scalar.evaluate({ x: 7, kind: 'a' }); // the result, or throws VmFault
 * ```
 */
import type { Program } from '../vm/contract.js';
import { FAULT_WORD_COUNT, faultWords } from '../vm/contract.js';
import { readResult, TapeLimit, TapeWriter, encodeTape } from '../vm/tape.js';
import { loadBinding, type NativeBinding, type NativeProgram } from './addon.js';
import {
  VmFault,
  type BatchEvaluator,
  type BatchProgram,
  type ExprVm,
  type ScalarEvaluator,
  type VmColumn,
} from './types.js';

const INITIAL_OUT = 256;

class NativeScalar implements ScalarEvaluator {
  private readonly writer = new TapeWriter(256);
  private readonly fault = new Int32Array(FAULT_WORD_COUNT);
  private out = new Uint8Array(INITIAL_OUT);
  private view = new DataView(this.out.buffer);

  constructor(
    private readonly b: NativeBinding,
    private readonly handle: NativeProgram,
    private readonly names: readonly string[],
  ) {}

  evaluate(ctx: Record<string, unknown>): unknown {
    let tape: Uint8Array;
    try {
      tape = this.writer.context(ctx, this.names);
    } catch (error) {
      if (error instanceof TapeLimit) throw new VmFault(faultWords(error.kind, error.reason));
      throw error;
    }
    const n = this.b.evaluate(this.handle, tape, this.out, this.fault);
    if (n < 0) {
      this.writer.release();
      throw new VmFault(this.fault.slice());
    }
    if (n > this.out.length) {
      let size = this.out.length * 2;
      while (size < n) size *= 2;
      this.out = new Uint8Array(size);
      this.view = new DataView(this.out.buffer);
      this.b.takeResult(this.out);
    }
    const v = readResult(this.out, this.view, 0, this.writer);
    this.writer.release();
    return v;
  }
}

function prepare(b: NativeBinding, program: Program, kinds: Uint8Array | null): NativeProgram {
  return b.prepare(program.code, encodeTape(program.consts), encodeTape(program.strings), kinds);
}

function makeVm(b: NativeBinding): ExprVm {
  return {
    name: 'native',
    prepareScalar(program: Program): ScalarEvaluator {
      return new NativeScalar(b, prepare(b, program, null), program.names);
    },
    prepareBatch(program: BatchProgram): BatchEvaluator {
      const handle = prepare(b, program, Uint8Array.from(program.kinds));
      const fault = new Int32Array(FAULT_WORD_COUNT);
      return {
        fault,
        run(columns: readonly VmColumn[], rows: number, out: Uint8Array): number {
          return b.runBatch(handle, columns, rows, out, fault);
        },
      };
    },
  };
}

let vm: ExprVm | undefined;

/**
 * The native VM. Loads the addon on first use; throws an Error saying which file was tried, why it
 * failed and how to fix it (`npm run build:native`) when it cannot.
 *
 * @example
 * ```ts
 * const evaluator = loadNativeVm().prepareBatch(batchProgram);
 * const failedRow = evaluator.run([xs, ys], xs.length, out); // -1, or a row with evaluator.fault set
 * ```
 */
export function loadNativeVm(): ExprVm {
  vm ??= makeVm(loadBinding());
  return vm;
}
