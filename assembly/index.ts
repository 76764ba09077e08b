// The wpipe expression VM, compiled to wasm/wpipe.wasm. The host (src/backend/wasm.ts) drives it
// through pointer-taking functions: it writes tapes and columns into linear memory, calls, and reads
// the RESULT descriptor or the fault words at faultPtr() (their layout: src/vm/contract.ts, "The wasm
// host ABI", generated into ./opcodes).

import { WasmAbi, WasmResult } from './opcodes';
import { FAULT, RESULT, initArena, resetAll, resetToProgram, markProgram, alloc, clearFault, grew, clearGrew } from './mem';
import { loadScalarProgram, run } from './vm';
export { batchLoad, batchInput, batchRun, batchOutput, batchBlockRows } from './batch';

/** Address of the fault words (FAULT_WORD_COUNT i32) followed by the result descriptor (WasmAbi). */
export function faultPtr(): usize {
  initArena();
  return FAULT;
}

/** Forgets the loaded program and reserves `bytes` for a new one (code and tapes); returns where. */
export function programBuffer(bytes: i32): usize {
  resetAll();
  clearFault();
  return alloc(<usize>bytes);
}

/** Decodes a scalar program written at programBuffer(); its memory is kept until the next program. */
export function loadScalar(codePtr: usize, codeLen: i32, constTape: usize, nConsts: i32, strTape: usize, nStrings: i32, nNames: i32, maxStack: i32): void {
  clearFault();
  loadScalarProgram(codePtr, codeLen, constTape, nConsts, strTape, nStrings, nNames, maxStack);
  markProgram();
}

/**
 * Starts an evaluation: frees the previous one and reserves `bytes` for the context tape. Returns its
 * (16-aligned) address, plus WasmAbi.CONTEXT_GREW if memory grew (the host renews its views only then).
 */
export function contextBuffer(bytes: i32): usize {
  resetToProgram();
  clearFault();
  clearGrew();
  return alloc(<usize>bytes) | (grew != 0 ? <usize>WasmAbi.CONTEXT_GREW : 0);
}

/** Evaluates the loaded program on the context tape at ctx; returns the result tag, plus WasmAbi.EVALUATE_GREW if memory grew. */
export function evaluate(ctx: usize): i32 {
  clearGrew();
  run(ctx);
  return load<i32>(RESULT + <usize>WasmResult.TAG) | (grew != 0 ? WasmAbi.EVALUATE_GREW : 0);
}
