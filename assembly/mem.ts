// The memory of the VM: one bump arena in linear memory, no garbage collector (the module is built
// with --runtime stub and never calls the AssemblyScript allocator). The arena is split by marks:
//   [__heap_base, progMark)  the loaded program (code, constant tape, string tape, decoded constants)
//   [progMark, top)          one evaluation: the context, every value it produces, the result tape
// Every evaluation starts by resetting top to progMark, so nothing leaks across calls.
// Faults abort the evaluation with a trap (`unreachable`) after writing the fault words (FaultWord); the
// host catches the trap and reads them. The arena is reset by the next evaluation, so a trap loses nothing.

import { ErrorKind, FaultWord, Reason, WasmAbi } from './opcodes';

/** The block at faultPtr(): the fault words (FaultWord, i32 each), then the result descriptor. */
export const FAULT: usize = memory.data(WasmAbi.BLOCK_BYTES, 16);
/** The result descriptor (its fields: WasmResult, byte offsets from here). */
export const RESULT: usize = FAULT + <usize>WasmAbi.RESULT_AT;

let arenaBase: usize = 0;
export let progMark: usize = 0;
export let top: usize = 0;

/** The pc of the instruction being executed, for faults. */
export let curPc: i32 = 0;
export function setPc(pc: i32): void { curPc = pc; }

@inline export function align16(x: usize): usize { return (x + 15) & ~(<usize>15); }

export function initArena(): void {
  if (arenaBase == 0) {
    arenaBase = align16(__heap_base);
    progMark = arenaBase;
    top = arenaBase;
  }
}

/** Makes linear memory at least `end` bytes long; false if the engine refuses to grow. */
/** Set when memory grew (the host must renew its views); cleared by the exports that report it. */
export let grew: i32 = 0;
export function clearGrew(): void { grew = 0; }

export function ensureMemory(end: usize): bool {
  const have = (<usize>memory.size()) << 16;
  if (end <= have) return true;
  const needPages = <i32>((end - have + 0xffff) >> 16);
  const cur = memory.size();
  grew = 1;
  // Grow by at least a quarter of the current size, so a long series of small growths stays cheap.
  let want = max(needPages, cur >> 2);
  if (memory.grow(want) >= 0) return true;
  return memory.grow(needPages) >= 0;
}

/** Allocates n bytes (16-aligned) from the arena; a LimitError fault if memory cannot grow. */
export function alloc(n: usize): usize {
  const p = top;
  const end = align16(p + n);
  if (end > <usize>0xfff00000 || !ensureMemory(end)) fail(ErrorKind.LimitError, Reason.VALUE_TOO_LARGE, -1, -1);
  top = end;
  return p;
}

/** Gives back the tail of the last allocation (when a string was built in a larger buffer). */
export function shrinkLast(p: usize, n: usize): void {
  const end = align16(p + n);
  if (end <= top) top = end;
}

export function resetToProgram(): void { top = progMark; }
export function resetAll(): void { initArena(); top = arenaBase; progMark = arenaBase; }
export function markProgram(): void { progMark = top; }

/** Writes fault word `w` (FaultWord.*). */
@inline export function setFault(w: i32, v: i32): void { store<i32>(FAULT + (<usize>w << 2), v); }

export function clearFault(): void {
  setFault(FaultWord.KIND, ErrorKind.OK);
  setFault(FaultWord.PC, 0);
  setFault(FaultWord.REASON, Reason.GENERIC);
  setFault(FaultWord.TAG_A, -1);
  setFault(FaultWord.TAG_B, -1);
  setFault(FaultWord.ROW, -1);
}

/** Records a fault and aborts the evaluation (the host catches the trap). */
export function fail(kind: i32, reason: i32, tagA: i32, tagB: i32): void {
  setFault(FaultWord.KIND, kind);
  setFault(FaultWord.PC, curPc);
  setFault(FaultWord.REASON, reason);
  setFault(FaultWord.TAG_A, tagA);
  setFault(FaultWord.TAG_B, tagB);
  setFault(FaultWord.ROW, -1);
  unreachable();
}

// Host imports (src/backend/wasm.ts): float formatting and parsing are delegated to the JS engine,
// whose Number#toString is the shortest round-trip form and whose Number() parsing is correctly
// rounded (AssemblyScript's dtoa is Grisu2, which is not always shortest).

/** Writes Python's repr of x as ASCII bytes at buf (at least 32 bytes); returns the length. */
@external('env', 'formatFloat')
export declare function hostFormatFloat(x: f64, buf: usize): i32;

/** Parses the ASCII bytes at buf (a validated, underscore-free decimal literal) as a double. */
@external('env', 'parseFloat')
export declare function hostParseFloat(buf: usize, len: i32): f64;

/** Extends the arena so that [top, end) is usable, contiguous with what is below (tape writers). */
export function reserveTo(end: usize): void {
  if (end > top) {
    if (end > <usize>0xfff00000 || !ensureMemory(end)) fail(ErrorKind.LimitError, Reason.VALUE_TOO_LARGE, -1, -1);
    top = end;
  }
}

/** Rounds x at n decimal digits exactly as CPython (pyops.ts roundDecimal, shared with the host). */
@external('env', 'roundDecimal')
export declare function hostRoundDecimal(x: f64, n: f64): f64;

/** C99 pow, correctly rounded (src/vm/pow.ts cpow); called only for finite, nonzero, positive x != 1. */
@external('env', 'pow')
export declare function hostPow(x: f64, y: f64): f64;
