/**
 * The wasm backend: the AssemblyScript expression VM (assembly/, built to wasm/wpipe.wasm).
 *
 * The module is compiled once per thread, lazily (never at import), and can be handed to worker
 * threads: pass `getWasmModule()` in `workerData` as `wpipeWasmModule` (or call `useWasmModule()` in
 * the worker) and the worker instantiates it without reading or compiling the file again.
 * Values cross as the value tape of src/expr/bytecode.ts; batches as flat columns copied into linear
 * memory in blocks, one call per block.
 *
 * @example
 * ```ts
 * import { loadWasmVm } from './backend/wasm.js';
 * const vm = loadWasmVm();
 * const ev = vm.prepareScalar(program);
 * ev.evaluate({ x: 7, kind: 'a' }); // → true
 * ```
 */
import { readFileSync } from 'node:fs';
import { wasmPath } from '../paths.js';
import type { Program } from '../vm/contract.js';
import {
  BINOP_SYMBOL, CmpOp, ErrorKind, FAULT_WORD_COUNT, FaultWord, Fn, Op, OPERAND_COUNT, PLAN_RECORD, PLAN_SELECT_SOURCE, PlanOp, Tag,
  WasmAbi, WasmResult, faultWords,
} from '../vm/contract.js';
import { TapeLimit, TapeWriter, encodeTape, readResult } from '../vm/tape.js';
import { PyFloat, makeFloat } from '../vm/values.js';
import { floatRepr, roundDecimal } from '../vm/pyops.js';
import { cpow } from '../vm/pow.js';
import {
  VmFault, ColumnKind, type BackendStatus, type BatchEvaluator, type BatchProgram, type ExprVm, type ScalarEvaluator,
  type VmColumn,
} from './types.js';
import { workerThreads } from '../lazy-builtins.js';

/** Where the module is: src/backend/wasm.ts (tsx) and dist/backend/wasm.js both sit two levels down. */
/** wasm/wpipe.wasm (or WPIPE_WASM_PATH, which points the loader at another build, or hides it in tests). */
export { wasmPath };

/** The exports of wpipe.wasm (assembly/index.ts). */
interface WasmExports {
  readonly memory: WebAssembly.Memory;
  faultPtr(): number;
  programBuffer(bytes: number): number;
  loadScalar(code: number, codeLen: number, consts: number, nConsts: number, strs: number, nStrs: number, nNames: number, maxStack: number): void;
  contextBuffer(bytes: number): number;
  evaluate(ctx: number): number;
  batchLoad(plan: number, planLen: number, consts: number, nConsts: number, kinds: number, nCols: number, nRegs: number, nSites: number): number;
  batchInput(col: number): number;
  batchRun(rows: number, rowBase: number): number;
  batchOutput(): number;
  batchBlockRows(): number;
}

let moduleCache: WebAssembly.Module | undefined;
let moduleError: Error | undefined;
let vmCache: WasmVm | undefined;

/**
 * Lets a worker use a module compiled elsewhere (a WebAssembly.Module is cloneable through
 * postMessage and workerData).
 */
export function useWasmModule(module: WebAssembly.Module): void {
  if (!(module instanceof WebAssembly.Module)) throw new TypeError('useWasmModule: expected a WebAssembly.Module');
  if (!moduleCache) moduleCache = module;
}

/**
 * The compiled module (compiled on first use, once per thread; a module passed to this worker in
 * `workerData.wpipeWasmModule` is used as is). Throws an Error saying what failed.
 */
export function getWasmModule(): WebAssembly.Module {
  if (moduleCache) return moduleCache;
  if (moduleError) throw moduleError;
  const passed = (workerThreads().workerData as { wpipeWasmModule?: unknown } | null | undefined)?.wpipeWasmModule;
  if (passed instanceof WebAssembly.Module) {
    moduleCache = passed;
    return passed;
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(wasmPath());
  } catch (e) {
    moduleError = new Error(
      `wasm backend: cannot read ${wasmPath()} (${(e as NodeJS.ErrnoException).code ?? String(e)}); build it with \`npm run build:wasm\``,
      { cause: e },
    );
    throw moduleError;
  }
  try {
    moduleCache = new WebAssembly.Module(bytes);
  } catch (e) {
    moduleError = new Error(
      `wasm backend: ${wasmPath()} is not a valid WebAssembly module for this Node (${(e as Error).message}); ` +
        'rebuild it with `npm run build:wasm` (SIMD128 support is required: Node >= 16.4)',
      { cause: e },
    );
    throw moduleError;
  }
  return moduleCache;
}

const EXPECTED_EXPORTS = [
  'memory', 'faultPtr', 'programBuffer', 'loadScalar', 'contextBuffer', 'evaluate', 'batchLoad', 'batchInput',
  'batchRun', 'batchOutput', 'batchBlockRows',
] as const;

// ---------------------------------------------------------------------------------- batch plans

/** The fields of the plan record of micro-op K (src/vm/contract.ts PLAN_RECORD; assembly/batch.ts reads them). */
type PlanFields<K extends keyof typeof PlanOp> = { readonly [F in keyof (typeof PLAN_RECORD)[K]]: number };

/** Writes `fields` at their words of `layout` (field name → word index), from out[at]. */
function putWords(out: number[], at: number, layout: Readonly<Record<string, number>>, fields: Readonly<Record<string, number>>): void {
  for (const name in layout) out[at + layout[name]!] = fields[name]!;
}

/** Appends the record of micro-op `op`; returns the index of its first word (field F is at + PLAN_RECORD[op].F). */
function emit<K extends keyof typeof PlanOp>(out: number[], op: K, fields: PlanFields<K>): number {
  const at = out.length;
  out.push(PlanOp[op]);
  putWords(out, at, PLAN_RECORD[op], fields);
  return at;
}

const BATCH_FNS = new Set<number>([Fn.abs, Fn.min, Fn.max, Fn.bool, Fn.int, Fn.float, Fn.round]);

/** A batch program as the wasm batch VM runs it. */
export interface BatchPlan {
  readonly plan: Int32Array;
  readonly regs: number;
  readonly sites: number;
}

interface PlanValue {
  readonly reg: number;
  /** Value id, for the "are this value's int/float tags ever read" analysis. */
  readonly vid: number;
}

/**
 * Compiles a batch program to a register plan: each produced value gets a register (a chunk of rows),
 * jumps become row masks (one pending mask per jump site), and at a jump target a SELECT merges, row
 * by row, the values of the paths that meet there. Also proves which results need exact int/float
 * tags (those read by arithmetic or a function), so the VM can skip computing the others.
 * Throws if the program is outside the batch subset.
 */
export function planBatchProgram(program: BatchProgram): BatchPlan {
  const code = program.code;
  const out: number[] = [];
  const refs: number[] = [];
  const free: number[] = [];
  let regs = 0;
  let sites = 0;
  const need: boolean[] = [];
  const needAt: number[] = [];
  /** Is the value only ever tested for truth (jumps, `not`, bool(), the result)? Then bits will do. */
  const truthOnly: boolean[] = [];
  const bitsAt: number[] = [];
  const sources: (number[] | undefined)[] = [];
  const incoming = new Map<number, Array<{ site: number; stack: PlanValue[] }>>();
  let stack: PlanValue[] = [];
  let reachable = true;

  const fail = (pc: number, why: string): never => {
    throw new Error(`wasm backend: batch program ${JSON.stringify(program.text)}: ${why} at pc ${pc}`);
  };
  const allocReg = (): number => {
    let r: number;
    if (free.length > 0) {
      let best = 0;
      for (let i = 1; i < free.length; i++) if (free[i]! < free[best]!) best = i;
      r = free[best]!;
      free.splice(best, 1);
    } else {
      r = regs++;
    }
    refs[r] = 0;
    return r;
  };
  const ref = (v: PlanValue): void => { refs[v.reg]!++; };
  const unref = (v: PlanValue): void => {
    if (--refs[v.reg]! === 0) free.push(v.reg);
  };
  const value = (reg: number, needField: number, bitsField = -1): PlanValue => {
    const vid = need.length;
    need.push(false);
    needAt.push(needField);
    truthOnly.push(true);
    bitsAt.push(bitsField);
    sources.push(undefined);
    return { reg, vid };
  };
  /** The value is read as a value (not only for its truth). */
  const used = (v: PlanValue): void => { truthOnly[v.vid] = false; };
  const push = (v: PlanValue): void => {
    ref(v);
    stack.push(v);
  };
  const pop = (pc: number): PlanValue => stack.pop() ?? fail(pc, 'stack underflow');
  const branchTo = (target: number, pc: number, pathStack: PlanValue[]): number => {
    if (target <= pc || target >= code.length) fail(pc, `bad jump target ${target}`);
    const site = sites++;
    for (const v of pathStack) ref(v);
    let list = incoming.get(target);
    if (!list) incoming.set(target, (list = []));
    list.push({ site, stack: pathStack });
    return site;
  };

  for (let pc = 0; pc < code.length; ) {
    const op = code[pc]!;
    const width = 1 + (OPERAND_COUNT[op] ?? fail(pc, `unknown opcode ${op}`));
    const a1 = code[pc + 1]!;
    const a2 = code[pc + 2]!;
    const arrivals = incoming.get(pc);
    if (arrivals) {
      const paths = reachable ? [{ site: -1, stack }, ...arrivals] : arrivals;
      const depth = paths[0]!.stack.length;
      for (const p of paths) if (p.stack.length !== depth) fail(pc, 'paths meet with different stack depths');
      const merged: PlanValue[] = [];
      for (let i = 0; i < depth; i++) {
        const first = paths[0]!.stack[i]!;
        if (paths.every((p) => p.stack[i]!.reg === first.reg)) {
          ref(first);
          merged.push(first);
          continue;
        }
        const dst = allocReg();
        const at = emit(out, 'SELECT', { DST: dst, N: paths.length, BITS: 0 });
        const v = value(dst, -1, at + PLAN_RECORD.SELECT.BITS);
        sources[v.vid] = paths.map((p) => p.stack[i]!.vid);
        for (const p of paths) putWords(out, out.length, PLAN_SELECT_SOURCE, { SITE: p.site, REG: p.stack[i]!.reg });
        ref(v);
        merged.push(v);
      }
      for (const p of paths) for (const v of p.stack) unref(v);
      for (const a of arrivals) emit(out, 'ACTIVATE', { SITE: a.site });
      stack = merged;
      reachable = true;
      incoming.delete(pc);
    }
    if (!reachable) {
      pc += width;
      continue;
    }
    switch (op) {
      case Op.CONST: {
        if (a1 < 0 || a1 >= program.consts.length) fail(pc, 'bad constant');
        const dst = allocReg();
        emit(out, 'CONST', { DST: dst, CONST: a1 });
        push(value(dst, -1));
        break;
      }
      case Op.NAME: {
        if (a1 < 0 || a1 >= program.kinds.length) fail(pc, 'bad column');
        const dst = allocReg();
        emit(out, 'COL', { DST: dst, COL: a1 });
        push(value(dst, -1));
        break;
      }
      case Op.NEG: case Op.POS: case Op.NOT: {
        const a = stack[stack.length - 1] ?? fail(pc, 'stack underflow');
        const dst = allocReg();
        const at = emit(out, 'UNARY', { OP: op, DST: dst, A: a.reg, NEED: 0, PC: pc, BITS: 0 });
        const v = value(dst, at + PLAN_RECORD.UNARY.NEED, op === Op.NOT ? at + PLAN_RECORD.UNARY.BITS : -1);
        if (op !== Op.NOT) {
          need[a.vid] = true;
          used(a);
        }
        unref(pop(pc));
        push(v);
        break;
      }
      case Op.BINOP: case Op.COMPARE: {
        if (op === Op.COMPARE && !(a1 >= CmpOp.LT && a1 <= CmpOp.NE)) fail(pc, `comparison ${a1} is outside the batch subset`);
        if (op === Op.BINOP && !(a1 >= 0 && a1 < BINOP_SYMBOL.length)) fail(pc, `bad operator ${a1}`);
        const b = stack[stack.length - 1];
        const a = stack[stack.length - 2];
        if (!a || !b) fail(pc, 'stack underflow');
        const dst = allocReg();
        let v: PlanValue;
        if (op === Op.BINOP) {
          const at = emit(out, 'BINOP', { OP: a1, DST: dst, A: a!.reg, B: b!.reg, NEED: 0, PC: pc });
          v = value(dst, at + PLAN_RECORD.BINOP.NEED);
          need[a!.vid] = true;
          need[b!.vid] = true;
        } else {
          const at = emit(out, 'COMPARE', { OP: a1, DST: dst, A: a!.reg, B: b!.reg, PC: pc, BITS: 0 });
          v = value(dst, -1, at + PLAN_RECORD.COMPARE.BITS);
        }
        used(a!);
        used(b!);
        unref(pop(pc));
        unref(pop(pc));
        push(v);
        break;
      }
      case Op.COMPARE_CHAIN: {
        if (!(a1 >= CmpOp.LT && a1 <= CmpOp.NE)) fail(pc, `comparison ${a1} is outside the batch subset`);
        const b = pop(pc);
        const a = pop(pc);
        used(a);
        used(b);
        const dst = allocReg();
        const site = branchTo(a2, pc, []);
        const at = emit(out, 'CHAIN', { OP: a1, DST: dst, A: a.reg, B: b.reg, SITE: site, PC: pc, BITS: 0 });
        const v = value(dst, -1, at + PLAN_RECORD.CHAIN.BITS);
        const path = incoming.get(a2)!.at(-1)!;
        path.stack = [...stack, v];
        for (const x of path.stack) ref(x);
        unref(a);
        stack.push(b); // keeps its reference
        break;
      }
      case Op.JUMP_IF_FALSE_OR_POP: case Op.JUMP_IF_TRUE_OR_POP: {
        const top = stack[stack.length - 1] ?? fail(pc, 'stack underflow');
        const site = branchTo(a1, pc, [...stack]);
        emit(out, 'BRANCH', { IF_TRUE: op === Op.JUMP_IF_TRUE_OR_POP ? 1 : 0, REG: top.reg, SITE: site });
        unref(pop(pc));
        break;
      }
      case Op.POP_JUMP_IF_FALSE: {
        const top = pop(pc);
        const site = branchTo(a1, pc, [...stack]);
        emit(out, 'BRANCH', { IF_TRUE: 0, REG: top.reg, SITE: site });
        unref(top);
        break;
      }
      case Op.JUMP: {
        const site = branchTo(a1, pc, [...stack]);
        emit(out, 'JUMP', { SITE: site });
        for (const v of stack) unref(v);
        stack = [];
        reachable = false;
        break;
      }
      case Op.CALL: {
        if (!BATCH_FNS.has(a1)) fail(pc, `function ${a1} is outside the batch subset`);
        if (a2 < 0 || a2 > stack.length) fail(pc, 'stack underflow');
        const args = stack.slice(stack.length - a2);
        const dst = allocReg();
        const at = emit(out, 'CALL', { FN: a1, DST: dst, ARGC: a2, NEED: 0, PC: pc, BITS: 0 });
        out.push(...args.map((v) => v.reg)); // the argument registers, one word each
        const v = value(dst, at + PLAN_RECORD.CALL.NEED, a1 === Fn.bool ? at + PLAN_RECORD.CALL.BITS : -1);
        if (a1 !== Fn.bool) {
          for (const x of args) {
            need[x.vid] = true;
            used(x);
          }
        }
        for (let i = 0; i < a2; i++) unref(pop(pc));
        push(v);
        break;
      }
      case Op.RETURN: {
        const v = pop(pc);
        emit(out, 'RETURN', { REG: v.reg });
        unref(v);
        for (const x of stack) unref(x);
        stack = [];
        reachable = false;
        break;
      }
      default:
        fail(pc, `opcode ${op} is outside the batch subset`);
    }
    pc += width;
  }
  if (incoming.size > 0) fail(code.length, 'a jump target was never reached');
  emit(out, 'END', {});
  // A SELECT whose tags are needed needs them from every source (sources come before the SELECT).
  // Likewise a SELECT that is read as a value reads its sources as values.
  for (let vid = need.length - 1; vid >= 0; vid--) {
    const src = sources[vid];
    if (src && need[vid]) for (const s of src) need[s] = true;
    if (src && !truthOnly[vid]) for (const s of src) truthOnly[s] = false;
  }
  for (let vid = 0; vid < need.length; vid++) {
    if (needAt[vid]! >= 0 && need[vid]) out[needAt[vid]!] = 1;
    if (bitsAt[vid]! >= 0 && truthOnly[vid]) out[bitsAt[vid]!] = 1;
  }
  return { plan: Int32Array.from(out), regs: Math.max(regs, 1), sites };
}

/** The shared-value table packs a value's Tag in the low bits of its entry, below the number: enough bits for every Tag. */
const SHARED_TAG_BITS = 32 - Math.clz32(Math.max(...Object.values(Tag)));
const SHARED_TAG_MASK = (1 << SHARED_TAG_BITS) - 1;

/** One instance per thread: its memory, views on it (renewed after growth) and the loaded program. */
class WasmVm implements ExprVm {
  readonly name = 'wasm' as const;
  private readonly ex: WasmExports;
  private u8: Uint8Array;
  private i32: Int32Array;
  private f64: Float64Array;
  /** Index in i32 of the fault words (at faultPtr()). */
  private readonly faultAt: number;
  /** Indexes of the result descriptor's fields (WasmResult) in i32 (PTR) and f64 (NUM). */
  private readonly resultPtrAt: number;
  private readonly resultNumAt: number;
  /** The program whose code is in linear memory (scalar or batch), to skip reloading it. */
  private loaded: object | undefined;
  /** The writer of the evaluation in progress: its context objects are what origins refer to. */
  private writer: TapeWriter | undefined;
  /**
   * The values of the result being written that got a SHARED_REF number (the sharedRef import): an
   * open-addressing table of (ptr, len) → number << SHARED_TAG_BITS | tag, whose entries count only when stamped
   * with the current generation, so starting a result empties it without writing it.
   */
  private shPtr = new Int32Array(64);
  private shLen = new Int32Array(64);
  private shVal = new Int32Array(64);
  private shGen = new Int32Array(64);
  private shShift = 32 - 6;
  private shCount = 0;
  private sharedNext = 0;
  private gen = 1;

  constructor(module: WebAssembly.Module) {
    let self: WasmVm | undefined;
    const imports = {
      env: {
        abort: (_msg: number, _file: number, line: number, col: number): never => {
          throw new Error(`wasm backend: internal abort at ${line}:${col}`);
        },
        formatFloat: (x: number, buf: number): number => self!.writeAscii(floatRepr(x), buf),
        parseFloat: (buf: number, len: number): number => Number(self!.readAscii(buf, len)),
        roundDecimal: (x: number, n: number): number => roundDecimal(x, n),
        pow: cpow,
        sameObject: (a: number, b: number): number => {
          const w = self!.writer!;
          return w.contextObject(a) === w.contextObject(b) ? 1 : 0;
        },
        sharedRef: (ptr: number, len: number, tag: number): number => self!.sharedRef(ptr, len, tag),
      },
    };
    const instance = new WebAssembly.Instance(module, imports);
    const ex = instance.exports as unknown as WasmExports;
    for (const name of EXPECTED_EXPORTS) {
      if (!(name in ex)) throw new Error(`wasm backend: ${wasmPath()} does not export '${name}' (stale build? run \`npm run build:wasm\`)`);
    }
    this.ex = ex;
    self = this;
    const block = ex.faultPtr();
    this.faultAt = block >>> 2;
    this.resultPtrAt = (block + WasmAbi.RESULT_AT + WasmResult.PTR) >>> 2;
    this.resultNumAt = (block + WasmAbi.RESULT_AT + WasmResult.NUM) >>> 3;
    this.u8 = new Uint8Array(ex.memory.buffer);
    this.i32 = new Int32Array(ex.memory.buffer);
    this.f64 = new Float64Array(ex.memory.buffer);
  }

  /**
   * Renews the views after memory.grow (which detaches the old buffer). Reading `memory.buffer` costs
   * more than a whole small evaluation, so the hot path relies on the exports saying when memory grew
   * and calls `renew()`; the rare paths call this.
   */
  private views(): void {
    if (this.u8.buffer !== this.ex.memory.buffer) this.renew();
  }

  private renew(): void {
    const buf = this.ex.memory.buffer;
    this.u8 = new Uint8Array(buf);
    this.i32 = new Int32Array(buf);
    this.f64 = new Float64Array(buf);
  }

  /** The sharedRef import (assembly/vm.ts hostSharedRef): a number already given, or -1 and a new one. */
  private sharedRef(ptr: number, len: number, tag: number): number {
    const mask = this.shPtr.length - 1;
    let h = Math.imul(ptr ^ Math.imul(len, 0x85ebca6b), 0x9e3779b1) >>> this.shShift;
    for (;;) {
      if (this.shGen[h] !== this.gen) {
        this.shGen[h] = this.gen;
        this.shPtr[h] = ptr;
        this.shLen[h] = len;
        this.shVal[h] = (this.sharedNext++ << SHARED_TAG_BITS) | tag;
        if (++this.shCount * 2 > mask) this.growShared();
        return -1;
      }
      if (this.shPtr[h] === ptr && this.shLen[h] === len) {
        const v = this.shVal[h]!;
        if ((v & SHARED_TAG_MASK) === tag) return v >>> SHARED_TAG_BITS;
        // The same buffer seen as another type: numbered (the reader numbers it), not recorded.
        this.sharedNext++;
        return -1;
      }
      h = (h + 1) & mask;
    }
  }

  private growShared(): void {
    const { shPtr, shLen, shVal, shGen, gen } = this;
    const size = shPtr.length * 2;
    this.shPtr = new Int32Array(size);
    this.shLen = new Int32Array(size);
    this.shVal = new Int32Array(size);
    this.shGen = new Int32Array(size);
    this.shShift--;
    const mask = size - 1;
    for (let i = 0; i < shPtr.length; i++) {
      if (shGen[i] !== gen) continue;
      let h = Math.imul(shPtr[i]! ^ Math.imul(shLen[i]!, 0x85ebca6b), 0x9e3779b1) >>> this.shShift;
      while (this.shGen[h] === gen) h = (h + 1) & mask;
      this.shGen[h] = gen;
      this.shPtr[h] = shPtr[i]!;
      this.shLen[h] = shLen[i]!;
      this.shVal[h] = shVal[i]!;
    }
  }

  /** Empties the SHARED_REF table for the next result. */
  private resetShared(): void {
    this.shCount = 0;
    this.sharedNext = 0;
    if (++this.gen === 0x7fffffff) {
      this.shGen.fill(0);
      this.gen = 1;
    }
  }

  private writeAscii(s: string, at: number): number {
    this.views();
    const u8 = this.u8;
    for (let i = 0; i < s.length; i++) u8[at + i] = s.charCodeAt(i);
    return s.length;
  }

  private readAscii(at: number, len: number): string {
    this.views();
    let s = '';
    for (let i = 0; i < len; i++) s += String.fromCharCode(this.u8[at + i]!);
    return s;
  }

  /** The fault words after a trap, as a VmFault; other traps (bugs) are rethrown. */
  private faultOrRethrow(e: unknown): never {
    this.views();
    const at = this.faultAt;
    if (this.i32[at + FaultWord.KIND] !== ErrorKind.OK) throw new VmFault(this.i32.slice(at, at + FAULT_WORD_COUNT));
    this.loaded = undefined;
    throw e instanceof Error ? new Error(`wasm backend: internal error: ${e.message}`, { cause: e }) : e;
  }

  // ------------------------------------------------------------------ scalar

  prepareScalar(program: Program): ScalarEvaluator {
    return new WasmScalar(this, program, encodeTape(program.consts), encodeTape(program.strings));
  }

  /** Writes a program's code and tapes into linear memory; returns their addresses. */
  private writeProgram(code: Int32Array, a: Uint8Array, b: Uint8Array): [number, number, number] {
    const codeBytes = code.length * 4;
    const aAt = codeBytes;
    const bAt = aAt + a.length;
    const base = this.ex.programBuffer(bAt + b.length + 16);
    this.views();
    this.i32.set(code, base >>> 2);
    this.u8.set(a, base + aAt);
    this.u8.set(b, base + bAt);
    return [base, base + aAt, base + bAt];
  }

  private loadScalar(s: WasmScalar): void {
    this.loaded = undefined;
    try {
      const p = s.program;
      const [code, consts, strs] = this.writeProgram(p.code, s.constTape, s.stringTape);
      this.ex.loadScalar(code, p.code.length, consts, p.consts.length, strs, p.strings.length, p.names.length, p.maxStack);
    } catch (e) {
      this.faultOrRethrow(e);
    }
    this.loaded = s;
  }

  runScalar(s: WasmScalar, tape: Uint8Array, writer: TapeWriter): unknown {
    if (this.loaded !== s) this.loadScalar(s);
    const ex = this.ex;
    let tag: number;
    this.writer = writer;
    if (this.sharedNext !== 0) this.resetShared();
    try {
      let at = ex.contextBuffer(tape.length);
      if (at & WasmAbi.CONTEXT_GREW) {
        at -= WasmAbi.CONTEXT_GREW;
        this.renew();
      }
      const u8 = this.u8;
      // TypedArray#set costs more than a loop for the short tapes of typical contexts.
      if (tape.length <= 64) for (let i = 0; i < tape.length; i++) u8[at + i] = tape[i]!;
      else u8.set(tape, at);
      tag = ex.evaluate(at);
    } catch (e) {
      this.writer = undefined;
      writer.release();
      this.faultOrRethrow(e);
    }
    if (tag & WasmAbi.EVALUATE_GREW) {
      tag -= WasmAbi.EVALUATE_GREW;
      this.renew();
    }
    let v: unknown;
    switch (tag) {
      case Tag.NONE: v = null; break;
      case Tag.FALSE: v = false; break;
      case Tag.TRUE: v = true; break;
      case Tag.INT: v = this.f64[this.resultNumAt]!; break;
      case Tag.FLOAT: v = makeFloat(this.f64[this.resultNumAt]!); break;
      default: v = readResult(this.u8, this.dataView(), this.i32[this.resultPtrAt]! >>> 0, writer);
    }
    this.writer = undefined;
    writer.release();
    return v;
  }

  /** A DataView on memory, for the result reader (the views are current: runScalar renewed them). */
  private dataView(): DataView {
    if (this.dv?.buffer !== this.u8.buffer) this.dv = new DataView(this.u8.buffer);
    return this.dv;
  }
  private dv: DataView | undefined;

  // ------------------------------------------------------------------ batch

  prepareBatch(program: BatchProgram): BatchEvaluator {
    for (const c of program.consts) {
      if (!(typeof c === 'number' || typeof c === 'boolean' || c === null || c instanceof PyFloat)) {
        throw new Error('wasm backend: batch constants must be numbers, bools or None');
      }
    }
    const plan = planBatchProgram(program);
    return new WasmBatch(this, program, plan, encodeTape(program.consts), Uint8Array.from(program.kinds));
  }

  private loadBatch(b: WasmBatch): void {
    this.loaded = undefined;
    let status: number;
    try {
      const p = b.program;
      const [plan, consts, kinds] = this.writeProgram(b.plan.plan, b.constTape, b.kinds);
      status = this.ex.batchLoad(plan, b.plan.plan.length, consts, p.consts.length, kinds, p.kinds.length, b.plan.regs, b.plan.sites);
    } catch (e) {
      this.faultOrRethrow(e);
    }
    if (status !== 0) throw new Error(`wasm backend: the batch program was rejected (code ${status}): ${b.program.text}`);
    this.loaded = b;
  }

  runBatch(b: WasmBatch, columns: readonly VmColumn[], rows: number, out: Uint8Array): number {
    const p = b.program;
    if (columns.length !== p.kinds.length) throw new RangeError(`wasm backend: expected ${p.kinds.length} columns, got ${columns.length}`);
    for (let k = 0; k < columns.length; k++) {
      const col = columns[k]!;
      const want = p.kinds[k] === ColumnKind.NUMBER ? Float64Array : Uint8Array;
      if (!(col instanceof want)) throw new TypeError(`wasm backend: column ${k} must be a ${want.name}`);
      if (col.length < rows) throw new RangeError(`wasm backend: column ${k} has ${col.length} rows, expected ${rows}`);
    }
    if (out.length < rows) throw new RangeError(`wasm backend: output has ${out.length} rows, expected ${rows}`);
    if (this.loaded !== b) this.loadBatch(b);
    const ex = this.ex;
    const block = ex.batchBlockRows();
    // A loaded batch program has all its memory: nothing below grows it, the views stay valid.
    this.views();
    try {
      for (let base = 0; base < rows; base += block) {
        const n = Math.min(block, rows - base);
        for (let k = 0; k < columns.length; k++) {
          const col = columns[k]!;
          const at = ex.batchInput(k);
          if (col instanceof Float64Array) this.f64.set(col.subarray(base, base + n), at >>> 3);
          else this.u8.set(col.subarray(base, base + n), at);
        }
        const failed = ex.batchRun(n, base);
        if (failed >= 0) {
          const at = this.faultAt;
          b.fault.set(this.i32.subarray(at, at + FAULT_WORD_COUNT));
          return failed;
        }
        const o = ex.batchOutput();
        out.set(this.u8.subarray(o, o + n), base);
      }
    } catch (e) {
      this.faultOrRethrow(e);
    }
    return -1;
  }
}

class WasmScalar implements ScalarEvaluator {
  private readonly writer = new TapeWriter(256);

  constructor(
    private readonly vm: WasmVm,
    readonly program: Program,
    readonly constTape: Uint8Array,
    readonly stringTape: Uint8Array,
  ) {}

  evaluate(ctx: Record<string, unknown>): unknown {
    let tape: Uint8Array;
    try {
      tape = this.writer.context(ctx, this.program.names);
    } catch (e) {
      if (e instanceof TapeLimit) throw new VmFault(faultWords(e.kind, e.reason));
      throw e;
    }
    return this.vm.runScalar(this, tape, this.writer);
  }
}

class WasmBatch implements BatchEvaluator {
  readonly fault = new Int32Array(FAULT_WORD_COUNT);

  constructor(
    private readonly vm: WasmVm,
    readonly program: BatchProgram,
    readonly plan: BatchPlan,
    readonly constTape: Uint8Array,
    readonly kinds: Uint8Array,
  ) {}

  run(columns: readonly VmColumn[], rows: number, out: Uint8Array): number {
    this.fault.fill(0);
    return this.vm.runBatch(this, columns, rows, out);
  }
}

/**
 * The wasm ExprVm of this thread (instantiated on first call). Throws an Error explaining what
 * failed when wasm/wpipe.wasm is missing, invalid or stale.
 */
export function loadWasmVm(): ExprVm {
  if (!vmCache) vmCache = new WasmVm(getWasmModule());
  return vmCache;
}

/** Facts about the wasm backend, for getBackendInfo(). */
export function wasmStatus(): BackendStatus {
  try {
    loadWasmVm();
    return { name: 'wasm', available: true, detail: `loaded ${wasmPath()}`, features: ['simd128'] };
  } catch (e) {
    return { name: 'wasm', available: false, detail: (e as Error).message, features: [] };
  }
}
