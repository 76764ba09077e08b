// The batch (columnar) VM. src/backend/wasm.ts compiles a batch program (bytecode.ts, "Batch
// programs") into a register plan: every produced value gets a register of CHUNK rows, the stack
// becomes register numbers, and the control flow of `and`/`or`/ternaries/chains becomes row masks:
// a jump moves the rows that take it from the active mask to the pending mask of that jump site, and
// at a jump target the pending rows rejoin, SELECT picking each row's value from the path it came by.
// Rows run column-at-a-time in chunks of CHUNK rows; a row that fails leaves the active mask, so a
// row errors exactly where, and only if, the scalar VM would, and the first failing row is reported.
//
// A register holds CHUNK f64 values (bools 0/1, None 0) and a tag mode saying how to find each row's
// type: UNIFORM (one tag), DERIVED (a number column: int iff a safe integer), BOOLVAL (True iff
// nonzero), EXPLICIT (a tag byte per row) or NUMUNK (a number whose int-ness no one needs: the planner
// proved it, so arithmetic skips computing result tags).

import {
  Op, Tag, BinOp, CmpOp, Fn, ErrorKind, Reason, Limits, ColumnKind, FaultWord, PlanOp, PlanCol, PlanConst, PlanUnary,
  PlanBinop, PlanCompare, PlanChain, PlanBranch, PlanJump, PlanSelect, PlanSelectSource, PlanActivate, PlanCall, PlanReturn,
} from './opcodes';
import { alloc, markProgram, clearFault, setFault } from './mem';
import { decodeTape } from './vm';
import { vtag, vnum } from './value';
import { intFloorDiv, intMod, floatFloorDiv, floatMod, intPow, floatPow, powErrKind, powErrReason } from './num';

const CHUNK: i32 = 1024;
const WORDS: i32 = CHUNK / 64;
const BLOCK: i32 = 16384;
const MAXREG: i32 = 2048;
const MAXCOL: i32 = 1024;
const MAX_INT = Limits.MAX_INT;

// The plan: records of i32 words, PlanOp then the fields of its Plan* record (src/vm/contract.ts
// PLAN_RECORD, generated into ./opcodes; written by src/backend/wasm.ts planBatchProgram).

const M_UNIFORM = 0, M_DERIVED = 1, M_BOOLVAL = 2, M_EXPLICIT = 3, M_NUMUNK = 4;
/** Only the truth of each row is known (a bit per row in the register's bit buffer; no values). */
const M_BITS = 5;

// register metadata
const regVal: usize = memory.data(MAXREG * 4, 16);   // current values pointer
const regOwn: usize = memory.data(MAXREG * 4, 16);   // own value buffer
const regTags: usize = memory.data(MAXREG * 4, 16);  // own tag buffer
const regMode: usize = memory.data(MAXREG * 4, 16);
const regUTag: usize = memory.data(MAXREG * 4, 16);  // UNIFORM tag
const regNone: usize = memory.data(MAXREG * 4, 16);  // EXPLICIT: may hold None rows
const regConst: usize = memory.data(MAXREG * 4, 16); // 1 when all rows hold one constant
const regCVal: usize = memory.data(MAXREG * 8, 16);
const regBits: usize = memory.data(MAXREG * 4, 16);  // own truth-bit buffer (WORDS u64)

const colKind: usize = memory.data(MAXCOL * 4, 16);
const colIn: usize = memory.data(MAXCOL * 4, 16);

const active: usize = memory.data(WORDS * 8, 16);
const tmpMask: usize = memory.data(WORDS * 8, 16);
const TWO_BYTES: usize = memory.data<u16>([0x0000, 0x0001, 0x0100, 0x0101]);
/** Lane masks for 2 rows from 2 mask bits. */
const LANES: usize = memory.data<i64>([0, 0, -1, 0, 0, -1, -1, -1]);
/** 8 mask bits → 8 bytes of 0/1 (filled on first load). */
const BYTES8: usize = memory.data(256 * 8, 16);

@inline function R(base: usize, r: i32): usize { return base + (<usize>r << 2); }
@inline function gI(base: usize, r: i32): i32 { return load<i32>(R(base, r)); }
@inline function sI(base: usize, r: i32, v: i32): void { store<i32>(R(base, r), v); }
@inline function vals(r: i32): usize { return <usize>load<u32>(R(regVal, r)); }
@inline function val(r: i32, row: i32): f64 { return load<f64>(vals(r) + (<usize>row << 3)); }
/** Word `field` of the plan record at p (a Plan*.FIELD). */
@inline function fld(p: usize, field: i32): i32 { return load<i32>(p + (<usize>field << 2)); }
/** Bytes of a plan record of `words` words. */
@inline function recBytes(words: i32): usize { return <usize>words << 2; }

let plan: usize = 0;
let nRegs: i32 = 0;
let nSites: i32 = 0;
let nCols: i32 = 0;
let pending: usize = 0;
let constSlots: usize = 0;
let constBufs: usize = 0;
let outBuf: usize = 0;

// per chunk
let chunkRows: i32 = 0;
let bestRow: i32 = 0;
let fKind: i32 = ErrorKind.OK, fPc: i32 = 0, fReason: i32 = Reason.GENERIC, fA: i32 = 0, fB: i32 = 0;

@inline function pend(site: i32): usize { return pending + (<usize>site << 7); }

export function batchBlockRows(): i32 { return BLOCK; }

/** Address of the input block of column k (BLOCK f64 or u8). */
export function batchInput(k: i32): usize { return <usize>load<u32>(R(colIn, k)); }

/** Address of the output block (BLOCK bytes of 0/1). */
export function batchOutput(): usize { return outBuf; }

/** Takes a plan written at programBuffer(); returns 0, or a nonzero code if it is malformed. */
export function batchLoad(planPtr: usize, planLen: i32, constTape: usize, nConsts: i32, kinds: usize, cols: i32, regs: i32, sites: i32): i32 {
  clearFault();
  if (regs > MAXREG || cols > MAXCOL || regs < 1) return 1;
  plan = planPtr;
  nRegs = regs;
  nSites = sites;
  nCols = cols;
  constSlots = decodeTape(constTape, nConsts);
  constBufs = alloc(<usize>max(nConsts, 1) << 13);
  for (let k = 0; k < nConsts; k++) {
    const s = constSlots + (<usize>k << 4);
    const t = vtag(s);
    if (t > Tag.FLOAT) return 2;
    const b = constBufs + (<usize>k << 13);
    const v = f64x2.splat(vnum(s));
    for (let i = 0; i < CHUNK; i += 2) v128.store(b + (<usize>i << 3), v);
  }
  for (let r = 0; r < regs; r++) {
    sI(regOwn, r, <i32>alloc(<usize>CHUNK << 3));
    sI(regTags, r, <i32>alloc(<usize>CHUNK));
    sI(regBits, r, <i32>alloc(<usize>WORDS << 3));
  }
  if (load<u64>(BYTES8 + 8) == 0) {
    for (let b = 0; b < 256; b++) {
      let x: u64 = 0;
      for (let k = 0; k < 8; k++) if (b & (1 << k)) x |= <u64>1 << <u64>(k << 3);
      store<u64>(BYTES8 + (<usize>b << 3), x);
    }
  }
  for (let k = 0; k < cols; k++) {
    const kind = <i32>load<u8>(kinds + <usize>k);
    sI(colKind, k, kind);
    sI(colIn, k, <i32>alloc(kind == ColumnKind.NUMBER ? <usize>BLOCK << 3 : <usize>BLOCK));
  }
  pending = alloc(<usize>max(sites, 1) << 7);
  outBuf = alloc(<usize>BLOCK);
  markProgram();
  return 0;
}

// ---------------------------------------------------------------- masks

@inline function word(m: usize, w: i32): u64 { return load<u64>(m + (<usize>w << 3)); }
@inline function setWord(m: usize, w: i32, v: u64): void { store<u64>(m + (<usize>w << 3), v); }
@inline function bit(m: usize, row: i32): bool { return ((word(m, row >> 6) >> <u64>(row & 63)) & 1) != 0; }

function anyActive(): bool {
  let acc: u64 = 0;
  for (let w = 0; w < WORDS; w++) acc |= word(active, w);
  return acc != 0;
}

function maskEmpty(m: usize): bool {
  let acc: u64 = 0;
  for (let w = 0; w < WORDS; w++) acc |= word(m, w);
  return acc == 0;
}

/** A row fails: keep the fault if it is the first failing row so far; the row leaves the active mask. */
function rowError(row: i32, kind: i32, reason: i32, ta: i32, tb: i32, pc: i32): void {
  if (row < bestRow) {
    bestRow = row;
    fKind = kind; fReason = reason; fA = ta; fB = tb; fPc = pc;
  }
  const w = row >> 6;
  setWord(active, w, word(active, w) & ~(<u64>1 << <u64>(row & 63)));
}

// ---------------------------------------------------------------- tags

function tagAt(r: i32, row: i32): i32 {
  switch (gI(regMode, r)) {
    case M_UNIFORM: return gI(regUTag, r);
    case M_DERIVED: {
      const x = val(r, row);
      return x == Math.trunc(x) && Math.abs(x) <= MAX_INT ? Tag.INT : Tag.FLOAT;
    }
    case M_BOOLVAL: return val(r, row) != 0 ? Tag.TRUE : Tag.FALSE;
    case M_EXPLICIT: return <i32>load<u8>(<usize>gI(regTags, r) + <usize>row);
    case M_BITS: return bit(<usize>gI(regBits, r), row) ? Tag.TRUE : Tag.FALSE;
    default: return Tag.INT; // NUMUNK: a number whose int-ness is never read
  }
}

@inline function mayNone(r: i32): bool {
  const m = gI(regMode, r);
  return (m == M_UNIFORM && gI(regUTag, r) == Tag.NONE) || (m == M_EXPLICIT && gI(regNone, r) != 0);
}

@inline function isIntTag(t: i32): bool { return t >= Tag.FALSE && t <= Tag.INT; }

@inline function setMode(r: i32, mode: i32, utag: i32): void {
  sI(regMode, r, mode);
  sI(regUTag, r, utag);
  sI(regNone, r, utag == Tag.NONE ? 1 : 0);
  sI(regConst, r, 0);
}

/** The register now holds its own buffer's values. */
@inline function own(r: i32): usize {
  const p = <usize>gI(regOwn, r);
  sI(regVal, r, <i32>p);
  return p;
}

/** Writes explicit tags for every row of dst from the tags of src (dst may be src). */
function explicitTags(dst: i32, src: i32): void {
  const t = <usize>gI(regTags, dst);
  for (let i = 0; i < CHUNK; i++) store<u8>(t + <usize>i, <u8>tagAt(src, i));
}

// ---------------------------------------------------------------- kernels

// Kernels: one loop per operator and operand shape (a constant right operand is splatted), written
// out so that no per-element dispatch is left for the optimizer to remove.

function cmpVector(op: i32, a: usize, b: usize, bc: bool, bv: f64, d: usize): void {
  const one = f64x2.splat(1.0);
  const end = a + (<usize>CHUNK << 3);
  const vb = f64x2.splat(bv);
  switch (op) {
    case CmpOp.LT:
      if (bc) for (let p = a, q = d; p < end; p += 16, q += 16) v128.store(q, v128.and(f64x2.lt(v128.load(p), vb), one));
      else for (let p = a, r = b, q = d; p < end; p += 16, r += 16, q += 16) v128.store(q, v128.and(f64x2.lt(v128.load(p), v128.load(r)), one));
      break;
    case CmpOp.LE:
      if (bc) for (let p = a, q = d; p < end; p += 16, q += 16) v128.store(q, v128.and(f64x2.le(v128.load(p), vb), one));
      else for (let p = a, r = b, q = d; p < end; p += 16, r += 16, q += 16) v128.store(q, v128.and(f64x2.le(v128.load(p), v128.load(r)), one));
      break;
    case CmpOp.GT:
      if (bc) for (let p = a, q = d; p < end; p += 16, q += 16) v128.store(q, v128.and(f64x2.gt(v128.load(p), vb), one));
      else for (let p = a, r = b, q = d; p < end; p += 16, r += 16, q += 16) v128.store(q, v128.and(f64x2.gt(v128.load(p), v128.load(r)), one));
      break;
    case CmpOp.GE:
      if (bc) for (let p = a, q = d; p < end; p += 16, q += 16) v128.store(q, v128.and(f64x2.ge(v128.load(p), vb), one));
      else for (let p = a, r = b, q = d; p < end; p += 16, r += 16, q += 16) v128.store(q, v128.and(f64x2.ge(v128.load(p), v128.load(r)), one));
      break;
    case CmpOp.EQ:
      if (bc) for (let p = a, q = d; p < end; p += 16, q += 16) v128.store(q, v128.and(f64x2.eq(v128.load(p), vb), one));
      else for (let p = a, r = b, q = d; p < end; p += 16, r += 16, q += 16) v128.store(q, v128.and(f64x2.eq(v128.load(p), v128.load(r)), one));
      break;
    case CmpOp.NE:
      if (bc) for (let p = a, q = d; p < end; p += 16, q += 16) v128.store(q, v128.and(f64x2.ne(v128.load(p), vb), one));
      else for (let p = a, r = b, q = d; p < end; p += 16, r += 16, q += 16) v128.store(q, v128.and(f64x2.ne(v128.load(p), v128.load(r)), one));
      break;
  }
}

/** Truth bits of a op b, 64 rows per word. */
function cmpBits(op: i32, a: usize, b: usize, bc: bool, bv: f64, d: usize): void {
  const vb = f64x2.splat(bv);
  for (let w = 0; w < WORDS; w++) {
    const pa = a + (<usize>w << 9), pb = b + (<usize>w << 9);
    let bits: u64 = 0;
    switch (op) {
      case CmpOp.LT:
        if (bc) for (let j = 0; j < 32; j++) bits |= (<u64>i64x2.bitmask(f64x2.lt(v128.load(pa + (<usize>j << 4)), vb))) << (<u64>j << 1);
        else for (let j = 0; j < 32; j++) bits |= (<u64>i64x2.bitmask(f64x2.lt(v128.load(pa + (<usize>j << 4)), v128.load(pb + (<usize>j << 4))))) << (<u64>j << 1);
        break;
      case CmpOp.LE:
        if (bc) for (let j = 0; j < 32; j++) bits |= (<u64>i64x2.bitmask(f64x2.le(v128.load(pa + (<usize>j << 4)), vb))) << (<u64>j << 1);
        else for (let j = 0; j < 32; j++) bits |= (<u64>i64x2.bitmask(f64x2.le(v128.load(pa + (<usize>j << 4)), v128.load(pb + (<usize>j << 4))))) << (<u64>j << 1);
        break;
      case CmpOp.GT:
        if (bc) for (let j = 0; j < 32; j++) bits |= (<u64>i64x2.bitmask(f64x2.gt(v128.load(pa + (<usize>j << 4)), vb))) << (<u64>j << 1);
        else for (let j = 0; j < 32; j++) bits |= (<u64>i64x2.bitmask(f64x2.gt(v128.load(pa + (<usize>j << 4)), v128.load(pb + (<usize>j << 4))))) << (<u64>j << 1);
        break;
      case CmpOp.GE:
        if (bc) for (let j = 0; j < 32; j++) bits |= (<u64>i64x2.bitmask(f64x2.ge(v128.load(pa + (<usize>j << 4)), vb))) << (<u64>j << 1);
        else for (let j = 0; j < 32; j++) bits |= (<u64>i64x2.bitmask(f64x2.ge(v128.load(pa + (<usize>j << 4)), v128.load(pb + (<usize>j << 4))))) << (<u64>j << 1);
        break;
      case CmpOp.EQ:
        if (bc) for (let j = 0; j < 32; j++) bits |= (<u64>i64x2.bitmask(f64x2.eq(v128.load(pa + (<usize>j << 4)), vb))) << (<u64>j << 1);
        else for (let j = 0; j < 32; j++) bits |= (<u64>i64x2.bitmask(f64x2.eq(v128.load(pa + (<usize>j << 4)), v128.load(pb + (<usize>j << 4))))) << (<u64>j << 1);
        break;
      case CmpOp.NE:
        if (bc) for (let j = 0; j < 32; j++) bits |= (<u64>i64x2.bitmask(f64x2.ne(v128.load(pa + (<usize>j << 4)), vb))) << (<u64>j << 1);
        else for (let j = 0; j < 32; j++) bits |= (<u64>i64x2.bitmask(f64x2.ne(v128.load(pa + (<usize>j << 4)), v128.load(pb + (<usize>j << 4))))) << (<u64>j << 1);
        break;
    }
    store<u64>(d + (<usize>w << 3), bits);
  }
}

/** d = a op b; returns whether some |result| exceeds MAX_INT (for the int overflow check). */
function arithVector(op: i32, a: usize, b: usize, bc: bool, bv: f64, d: usize): bool {
  const lim = f64x2.splat(MAX_INT);
  const vb = f64x2.splat(bv);
  const end = a + (<usize>CHUNK << 3);
  let big = f64x2.splat(0);
  switch (op) {
    case BinOp.ADD:
      if (bc) {
        for (let p = a, q = d; p < end; p += 16, q += 16) {
          const r = f64x2.add(v128.load(p), vb);
          v128.store(q, r);
          big = v128.or(big, f64x2.gt(f64x2.abs(r), lim));
        }
      } else {
        for (let p = a, s = b, q = d; p < end; p += 16, s += 16, q += 16) {
          const r = f64x2.add(v128.load(p), v128.load(s));
          v128.store(q, r);
          big = v128.or(big, f64x2.gt(f64x2.abs(r), lim));
        }
      }
      break;
    case BinOp.SUB:
      if (bc) {
        for (let p = a, q = d; p < end; p += 16, q += 16) {
          const r = f64x2.sub(v128.load(p), vb);
          v128.store(q, r);
          big = v128.or(big, f64x2.gt(f64x2.abs(r), lim));
        }
      } else {
        for (let p = a, s = b, q = d; p < end; p += 16, s += 16, q += 16) {
          const r = f64x2.sub(v128.load(p), v128.load(s));
          v128.store(q, r);
          big = v128.or(big, f64x2.gt(f64x2.abs(r), lim));
        }
      }
      break;
    case BinOp.MUL:
      if (bc) {
        for (let p = a, q = d; p < end; p += 16, q += 16) {
          const r = f64x2.mul(v128.load(p), vb);
          v128.store(q, r);
          big = v128.or(big, f64x2.gt(f64x2.abs(r), lim));
        }
      } else {
        for (let p = a, s = b, q = d; p < end; p += 16, s += 16, q += 16) {
          const r = f64x2.mul(v128.load(p), v128.load(s));
          v128.store(q, r);
          big = v128.or(big, f64x2.gt(f64x2.abs(r), lim));
        }
      }
      break;
    case BinOp.TRUEDIV:
      if (bc) {
        for (let p = a, q = d; p < end; p += 16, q += 16) {
          const r = f64x2.div(v128.load(p), vb);
          v128.store(q, r);
          big = v128.or(big, f64x2.gt(f64x2.abs(r), lim));
        }
      } else {
        for (let p = a, s = b, q = d; p < end; p += 16, s += 16, q += 16) {
          const r = f64x2.div(v128.load(p), v128.load(s));
          v128.store(q, r);
          big = v128.or(big, f64x2.gt(f64x2.abs(r), lim));
        }
      }
      break;
  }
  return v128.any_true(big);
}

/** Bits of rows whose value is truthy (nonzero; NaN is truthy) into m. */
function truthBits(r: i32, m: usize): void {
  if (gI(regMode, r) == M_BITS) { memory.copy(m, <usize>gI(regBits, r), <usize>WORDS << 3); return; }
  const p = vals(r);
  const zero = f64x2.splat(0);
  for (let w = 0; w < WORDS; w++) {
    let bits: u64 = 0;
    const base = p + (<usize>w << 9);
    for (let j = 0; j < 32; j++) {
      const t = f64x2.ne(v128.load(base + (<usize>j << 4)), zero);
      bits |= (<u64>i64x2.bitmask(t)) << (<u64>j << 1);
    }
    setWord(m, w, bits);
  }
}

/** Copies the rows of mask m from register src into dst's own buffer. */
function blendRows(dst: usize, src: usize, m: usize): void {
  for (let w = 0; w < WORDS; w++) {
    let bits = word(m, w);
    if (bits == 0) continue;
    const off = <usize>w << 9;
    if (bits == <u64>-1) { memory.copy(dst + off, src + off, 512); continue; }
    for (let j: usize = 0; j < 32; j++) {
      const m = v128.load(LANES + (<usize>(bits & 3) << 4));
      bits >>= 2;
      const q = dst + off + (j << 4);
      v128.store(q, v128.bitselect(v128.load(src + off + (j << 4)), v128.load(q), m));
    }
  }
}

// ---------------------------------------------------------------- per-row arithmetic (slow paths)

let rowTag: i32 = Tag.NONE;
let rowErrKind: i32 = ErrorKind.OK;
let rowErrReason: i32 = Reason.GENERIC;
let rowErrA: i32 = -1;
let rowErrB: i32 = -1;

@inline function rowErr(kind: i32, reason: i32, a: i32, b: i32): f64 {
  rowErrKind = kind; rowErrReason = reason; rowErrA = a; rowErrB = b;
  return 0;
}

/** One row of a numeric binop with Python semantics (pyops.ts numericBinop). */
function rowArith(op: i32, ta: i32, tb: i32, x: f64, y: f64): f64 {
  rowErrKind = ErrorKind.OK;
  if (ta == Tag.NONE || tb == Tag.NONE) return rowErr(ErrorKind.TypeError, Reason.BAD_OPERANDS, ta, tb);
  const ints = isIntTag(ta) && isIntTag(tb);
  rowTag = ints ? Tag.INT : Tag.FLOAT;
  let r: f64 = 0;
  switch (op) {
    case BinOp.ADD: r = x + y; break;
    case BinOp.SUB: r = x - y; break;
    case BinOp.MUL: r = x * y; break;
    case BinOp.TRUEDIV:
      if (y == 0) return rowErr(ErrorKind.ZeroDivisionError, Reason.DIV_ZERO, ta, tb);
      rowTag = Tag.FLOAT;
      return x / y;
    case BinOp.FLOORDIV:
      if (y == 0) return rowErr(ErrorKind.ZeroDivisionError, Reason.DIV_ZERO, ta, tb);
      r = ints ? intFloorDiv(x, y) : floatFloorDiv(x, y);
      break;
    case BinOp.MOD:
      if (y == 0) return rowErr(ErrorKind.ZeroDivisionError, Reason.DIV_ZERO, ta, tb);
      r = ints ? intMod(x, y) : floatMod(x, y);
      break;
    default: { // POW
      const exact = ints && y >= 0;
      r = exact ? intPow(x, y) : floatPow(x, y);
      if (powErrKind != ErrorKind.OK) {
        if (powErrReason == Reason.POW_ZERO_NEG) return rowErr(powErrKind, powErrReason, Tag.FLOAT, Tag.FLOAT);
        return rowErr(powErrKind, powErrReason, -1, -1);
      }
      rowTag = exact ? Tag.INT : Tag.FLOAT;
      return rowTag == Tag.INT ? r + 0.0 : r;
    }
  }
  if (rowTag == Tag.INT) {
    if (!(Math.abs(r) <= MAX_INT)) return rowErr(ErrorKind.OverflowError, Reason.INT_RANGE, -1, -1);
    return r + 0.0;
  }
  return r;
}

// ---------------------------------------------------------------- ops

function opCompare(op: i32, d: i32, a: i32, b: i32, pc: i32, bits: bool): void {
  const dst = <usize>gI(regOwn, d);
  if (!mayNone(a) && !mayNone(b)) {
    const bc = gI(regConst, b) != 0;
    if (bits) {
      cmpBits(op, vals(a), vals(b), bc, load<f64>(regCVal + (<usize>b << 3)), <usize>gI(regBits, d));
      setMode(d, M_BITS, Tag.FALSE);
      return;
    }
    cmpVector(op, vals(a), vals(b), bc, load<f64>(regCVal + (<usize>b << 3)), dst);
  } else {
    for (let i = 0; i < chunkRows; i++) {
      if (!bit(active, i)) continue;
      const ta = tagAt(a, i), tb = tagAt(b, i);
      const x = val(a, i), y = val(b, i);
      let r = false;
      if (ta == Tag.NONE || tb == Tag.NONE) {
        if (op == CmpOp.EQ) r = ta == tb;
        else if (op == CmpOp.NE) r = ta != tb;
        else { rowError(i, ErrorKind.TypeError, Reason.BAD_OPERANDS, ta, tb, pc); continue; }
      } else {
        switch (op) {
          case CmpOp.LT: r = x < y; break;
          case CmpOp.LE: r = x <= y; break;
          case CmpOp.GT: r = x > y; break;
          case CmpOp.GE: r = x >= y; break;
          case CmpOp.EQ: r = x == y; break;
          default: r = x != y;
        }
      }
      store<f64>(dst + (<usize>i << 3), r ? 1.0 : 0.0);
    }
  }
  own(d);
  setMode(d, M_BOOLVAL, Tag.FALSE);
}

function checkNoneOperands(a: i32, b: i32, pc: i32, kind: i32, reason: i32): void {
  if (!mayNone(a) && (b < 0 || !mayNone(b))) return;
  for (let i = 0; i < chunkRows; i++) {
    if (!bit(active, i)) continue;
    const ta = tagAt(a, i);
    const tb = b >= 0 ? tagAt(b, i) : -1;
    if (ta == Tag.NONE || tb == Tag.NONE) rowError(i, kind, reason, ta, tb, pc);
  }
}

function opBinop(op: i32, d: i32, a: i32, b: i32, need: bool, pc: i32): void {
  const dst = <usize>gI(regOwn, d);
  checkNoneOperands(a, b, pc, ErrorKind.TypeError, Reason.BAD_OPERANDS);
  const ma = gI(regMode, a), mb = gI(regMode, b);
  const aFloat = ma == M_UNIFORM && gI(regUTag, a) == Tag.FLOAT;
  const bFloat = mb == M_UNIFORM && gI(regUTag, b) == Tag.FLOAT;
  if (op <= BinOp.TRUEDIV) {
    const bc = gI(regConst, b) != 0;
    const big = arithVector(op, vals(a), vals(b), bc, load<f64>(regCVal + (<usize>b << 3)), dst);
    own(d);
    if (op == BinOp.TRUEDIV) {
      // Rows dividing by zero fail.
      const pb = vals(b);
      for (let w = 0; w < WORDS; w++) {
        let bits = word(active, w);
        while (bits != 0) {
          const i = (w << 6) + <i32>ctz(bits);
          bits &= bits - 1;
          if (load<f64>(pb + (<usize>i << 3)) == 0) rowError(i, ErrorKind.ZeroDivisionError, Reason.DIV_ZERO, tagAt(a, i), tagAt(b, i), pc);
        }
      }
      setMode(d, M_UNIFORM, Tag.FLOAT);
      return;
    }
    if (big && !aFloat && !bFloat) {
      for (let i = 0; i < chunkRows; i++) {
        if (!bit(active, i)) continue;
        if (Math.abs(load<f64>(dst + (<usize>i << 3))) > MAX_INT && isIntTag(tagAt(a, i)) && isIntTag(tagAt(b, i))) {
          rowError(i, ErrorKind.OverflowError, Reason.INT_RANGE, -1, -1, pc);
        }
      }
    }
    if (aFloat || bFloat) { setMode(d, M_UNIFORM, Tag.FLOAT); return; }
    if (ma == M_UNIFORM && mb == M_UNIFORM) { setMode(d, M_UNIFORM, Tag.INT); return; }
    if ((ma == M_UNIFORM || ma == M_BOOLVAL) && (mb == M_UNIFORM || mb == M_BOOLVAL)) { setMode(d, M_UNIFORM, Tag.INT); return; }
    if (!need) { setMode(d, M_NUMUNK, Tag.INT); return; }
    const t = <usize>gI(regTags, d);
    for (let i = 0; i < CHUNK; i++) {
      const f = tagAt(a, i) == Tag.FLOAT || tagAt(b, i) == Tag.FLOAT;
      store<u8>(t + <usize>i, <u8>(f ? Tag.FLOAT : Tag.INT));
    }
    setMode(d, M_EXPLICIT, Tag.INT);
    return;
  }
  // //, %, **: row by row.
  const t = <usize>gI(regTags, d);
  let allFloat = true;
  let allInt = true;
  for (let i = 0; i < chunkRows; i++) {
    if (!bit(active, i)) continue;
    const ta = tagAt(a, i), tb = tagAt(b, i);
    const r = rowArith(op, ta, tb, val(a, i), val(b, i));
    if (rowErrKind != ErrorKind.OK) { rowError(i, rowErrKind, rowErrReason, rowErrA, rowErrB, pc); continue; }
    store<f64>(dst + (<usize>i << 3), r);
    store<u8>(t + <usize>i, <u8>rowTag);
    if (rowTag == Tag.INT) allFloat = false; else allInt = false;
  }
  own(d);
  if (allFloat) setMode(d, M_UNIFORM, Tag.FLOAT);
  else if (allInt) setMode(d, M_UNIFORM, Tag.INT);
  else setMode(d, M_EXPLICIT, Tag.INT);
}

/** d = truth of a (negated when `negate`), as bits or as 0/1 values. */
function truthOp(d: i32, a: i32, negate: bool, bits: bool): void {
  if (bits || gI(regMode, a) == M_BITS) {
    const m = <usize>gI(regBits, d);
    truthBits(a, m);
    if (negate) for (let w = 0; w < WORDS; w++) setWord(m, w, ~word(m, w));
    if (bits) { setMode(d, M_BITS, Tag.FALSE); return; }
    const dst = own(d);
    for (let i = 0; i < CHUNK; i++) store<f64>(dst + (<usize>i << 3), bit(m, i) ? 1.0 : 0.0);
    setMode(d, M_BOOLVAL, Tag.FALSE);
    return;
  }
  const src = vals(a);
  const dst = <usize>gI(regOwn, d);
  const one = f64x2.splat(1.0), zero = f64x2.splat(0);
  for (let i: usize = 0; i < <usize>CHUNK << 3; i += 16) {
    const v = v128.load(src + i);
    v128.store(dst + i, v128.and(negate ? f64x2.eq(v, zero) : f64x2.ne(v, zero), one));
  }
  own(d);
  setMode(d, M_BOOLVAL, Tag.FALSE);
}

function opUnary(op: i32, d: i32, a: i32, need: bool, pc: i32, bits: bool): void {
  if (op == Op.NOT) { truthOp(d, a, true, bits); return; }
  const src = vals(a);
  const dst = <usize>gI(regOwn, d);
  checkNoneOperands(a, -1, pc, ErrorKind.TypeError, Reason.BAD_OPERANDS);
  if (op == Op.NEG) {
    for (let i: usize = 0; i < <usize>CHUNK << 3; i += 16) v128.store(dst + i, f64x2.neg(v128.load(src + i)));
  } else { // POS
    memory.copy(dst, src, <usize>CHUNK << 3);
  }
  own(d);
  numericResultMode(d, a, need);
}

/** Mode of a result that keeps each row's int-ness but turns bools into ints (-x, +x, abs). */
function numericResultMode(d: i32, a: i32, need: bool): void {
  const m = gI(regMode, a);
  if (m == M_UNIFORM) { const t = gI(regUTag, a); setMode(d, M_UNIFORM, t == Tag.FLOAT ? Tag.FLOAT : Tag.INT); return; }
  if (m == M_BOOLVAL) { setMode(d, M_UNIFORM, Tag.INT); return; }
  if (m == M_DERIVED) { setMode(d, M_DERIVED, Tag.INT); return; }
  if (!need || m == M_NUMUNK) { setMode(d, M_NUMUNK, Tag.INT); return; }
  const t = <usize>gI(regTags, d);
  for (let i = 0; i < CHUNK; i++) store<u8>(t + <usize>i, <u8>(tagAt(a, i) == Tag.FLOAT ? Tag.FLOAT : Tag.INT));
  setMode(d, M_EXPLICIT, Tag.INT);
}

function opCall(fn: i32, d: i32, argc: i32, args: usize, need: bool, pc: i32, bits: bool): void {
  const dst = <usize>gI(regOwn, d);
  const a = argc > 0 ? load<i32>(args) : -1;
  if (fn == Fn.min || fn == Fn.max) {
    if (argc < 2) {
      for (let w = 0; w < WORDS; w++) {
        let bits = word(active, w);
        while (bits != 0) {
          const i = (w << 6) + <i32>ctz(bits);
          bits &= bits - 1;
          if (argc == 0) rowError(i, ErrorKind.TypeError, Reason.ARG_COUNT, -1, -1, pc);
          else rowError(i, ErrorKind.TypeError, Reason.NOT_ITERABLE, tagAt(a, i), -1, pc);
        }
      }
      own(d);
      setMode(d, M_NUMUNK, Tag.INT);
      return;
    }
    const op = fn == Fn.max ? CmpOp.GT : CmpOp.LT;
    let anyNone = false;
    let sameMode = true;
    const m0 = gI(regMode, a), u0 = gI(regUTag, a);
    for (let k = 0; k < argc; k++) {
      const r = load<i32>(args + (<usize>k << 2));
      if (mayNone(r)) anyNone = true;
      const mk = gI(regMode, r);
      if (mk != m0 || (mk == M_UNIFORM && gI(regUTag, r) != u0) || mk == M_EXPLICIT) sameMode = false;
    }
    if (!anyNone && (sameMode || !need)) {
      memory.copy(dst, vals(a), <usize>CHUNK << 3);
      for (let k = 1; k < argc; k++) {
        const p = vals(load<i32>(args + (<usize>k << 2)));
        for (let i: usize = 0; i < <usize>CHUNK << 3; i += 16) {
          const v = v128.load(p + i), best = v128.load(dst + i);
          const take = op == CmpOp.GT ? f64x2.gt(v, best) : f64x2.lt(v, best);
          v128.store(dst + i, v128.bitselect(v, best, take));
        }
      }
      own(d);
      if (sameMode) setMode(d, m0, u0); else setMode(d, M_NUMUNK, Tag.INT);
      return;
    }
    const t = <usize>gI(regTags, d);
    for (let i = 0; i < chunkRows; i++) {
      if (!bit(active, i)) continue;
      let best = a;
      let bt = tagAt(a, i);
      let ok = true;
      for (let k = 1; k < argc; k++) {
        const r = load<i32>(args + (<usize>k << 2));
        const tr = tagAt(r, i);
        if (tr == Tag.NONE || bt == Tag.NONE) { rowError(i, ErrorKind.TypeError, Reason.BAD_OPERANDS, tr, bt, pc); ok = false; break; }
        const x = val(r, i), y = val(best, i);
        if (op == CmpOp.GT ? x > y : x < y) { best = r; bt = tr; }
      }
      if (!ok) continue;
      store<f64>(dst + (<usize>i << 3), val(best, i));
      store<u8>(t + <usize>i, <u8>bt);
    }
    own(d);
    setMode(d, M_EXPLICIT, Tag.INT);
    sI(regNone, d, 0);
    return;
  }
  if (argc == 0) {
    // bool() / int() / float(): constants; anything else needs an argument.
    if (fn == Fn.bool || fn == Fn.int || fn == Fn.float) {
      memory.fill(dst, 0, <usize>CHUNK << 3);
      own(d);
      setMode(d, M_UNIFORM, fn == Fn.bool ? Tag.FALSE : fn == Fn.int ? Tag.INT : Tag.FLOAT);
      return;
    }
  }
  if (argc != 1) {
    for (let w = 0; w < WORDS; w++) {
      let bits = word(active, w);
      while (bits != 0) {
        const i = (w << 6) + <i32>ctz(bits);
        bits &= bits - 1;
        rowError(i, ErrorKind.TypeError, Reason.ARG_COUNT, -1, -1, pc);
      }
    }
    own(d);
    setMode(d, M_NUMUNK, Tag.INT);
    return;
  }
  if (fn == Fn.bool) { truthOp(d, a, false, bits); return; }
  const src = vals(a);
  checkNoneOperands(a, -1, pc, ErrorKind.TypeError, Reason.BAD_ARGUMENT);
  if (fn == Fn.abs) {
    for (let i: usize = 0; i < <usize>CHUNK << 3; i += 16) v128.store(dst + i, f64x2.abs(v128.load(src + i)));
    own(d);
    numericResultMode(d, a, need);
    return;
  }
  if (fn == Fn.float) {
    memory.copy(dst, src, <usize>CHUNK << 3);
    own(d);
    setMode(d, M_UNIFORM, Tag.FLOAT);
    return;
  }
  // int(x) truncates, round(x) rounds half to even; non-finite and out-of-range rows fail.
  const lim = f64x2.splat(MAX_INT);
  let bad = f64x2.splat(0);
  const isRound = fn == Fn.round;
  for (let i: usize = 0; i < <usize>CHUNK << 3; i += 16) {
    const v = v128.load(src + i);
    const r = isRound ? f64x2.nearest(v) : f64x2.trunc(v);
    v128.store(dst + i, r);
    bad = v128.or(bad, v128.not(f64x2.le(f64x2.abs(r), lim)));
  }
  if (v128.any_true(bad)) {
    for (let i = 0; i < chunkRows; i++) {
      if (!bit(active, i)) continue;
      const x = val(a, i);
      if (isNaN(x)) rowError(i, ErrorKind.ValueError, Reason.NAN_TO_INT, -1, -1, pc);
      else if (!isFinite(x)) rowError(i, ErrorKind.OverflowError, Reason.INF_TO_INT, -1, -1, pc);
      else if (Math.abs(load<f64>(dst + (<usize>i << 3))) > MAX_INT) rowError(i, ErrorKind.OverflowError, Reason.INT_RANGE, -1, -1, pc);
    }
  }
  own(d);
  setMode(d, M_UNIFORM, Tag.INT);
}

function opSelect(d: i32, n: i32, srcs: usize, bits: bool): void {
  if (bits) {
    const out = <usize>gI(regBits, d);
    memory.fill(out, 0, <usize>WORDS << 3);
    for (let k = 0; k < n; k++) {
      const src = srcs + recBytes(k * PlanSelectSource.WORDS);
      const site = fld(src, PlanSelectSource.SITE);
      const r = fld(src, PlanSelectSource.REG);
      const m = site < 0 ? active : pend(site);
      if (maskEmpty(m)) continue;
      truthBits(r, tmpMask);
      for (let w = 0; w < WORDS; w++) setWord(out, w, word(out, w) | (word(tmpMask, w) & word(m, w)));
    }
    setMode(d, M_BITS, Tag.FALSE);
    return;
  }
  const dst = <usize>gI(regOwn, d);
  // Sources with rows, and whether their modes agree.
  let first = -1;
  let same = true;
  let anyNone = false;
  let m0 = 0, u0 = 0;
  for (let k = 0; k < n; k++) {
    const src = srcs + recBytes(k * PlanSelectSource.WORDS);
    const site = fld(src, PlanSelectSource.SITE);
    const r = fld(src, PlanSelectSource.REG);
    const m = site < 0 ? active : pend(site);
    if (maskEmpty(m)) continue;
    const mk = gI(regMode, r), uk = gI(regUTag, r);
    if (mayNone(r)) anyNone = true;
    if (first < 0) { first = k; m0 = mk; u0 = uk; }
    else if (mk != m0 || (mk == M_UNIFORM && uk != u0) || mk == M_EXPLICIT) same = false;
    blendRows(dst, vals(r), m);
  }
  own(d);
  if (first < 0) { setMode(d, M_NUMUNK, Tag.INT); return; }
  if (same && m0 != M_EXPLICIT) { setMode(d, m0, u0); return; }
  const t = <usize>gI(regTags, d);
  for (let k = 0; k < n; k++) {
    const src = srcs + recBytes(k * PlanSelectSource.WORDS);
    const site = fld(src, PlanSelectSource.SITE);
    const r = fld(src, PlanSelectSource.REG);
    const m = site < 0 ? active : pend(site);
    for (let w = 0; w < WORDS; w++) {
      let bits = word(m, w);
      while (bits != 0) {
        const i = (w << 6) + <i32>ctz(bits);
        bits &= bits - 1;
        store<u8>(t + <usize>i, <u8>tagAt(r, i));
      }
    }
  }
  setMode(d, M_EXPLICIT, Tag.INT);
  sI(regNone, d, anyNone ? 1 : 0);
}

function opBranch(truthyJumps: bool, r: i32, site: i32): void {
  truthBits(r, tmpMask);
  const p = pend(site);
  for (let w = 0; w < WORDS; w++) {
    const a = word(active, w), t = word(tmpMask, w);
    const jump = truthyJumps ? a & t : a & ~t;
    setWord(p, w, jump);
    setWord(active, w, a & ~jump);
  }
}

function opChain(op: i32, d: i32, a: i32, b: i32, site: i32, pc: i32, bits: bool): void {
  opCompare(op, d, a, b, pc, bits);
  // Rows where the comparison failed leave with False (d); the others continue with b.
  opBranch(false, d, site);
}

/** Runs the plan over one chunk of rows [start, start + rows) of the input block. */
function runChunk(start: i32, rows: i32): void {
  chunkRows = rows;
  bestRow = CHUNK;
  if (rows < CHUNK) {
    // The kernels compute all CHUNK lanes; past the last row the input block still holds an earlier
    // batch's data (another program's bool bytes read as f64 are subnormals, which made x * y ~40x
    // slower: a 4-row batch took 13 µs instead of 3 after a large batch of another expression).
    // Zeros there keep the cost of a short chunk independent of what ran before.
    for (let k = 0; k < nCols; k++) {
      const base = batchInput(k);
      if (gI(colKind, k) == ColumnKind.NUMBER) memory.fill(base + (<usize>(start + rows) << 3), 0, <usize>(CHUNK - rows) << 3);
      else memory.fill(base + <usize>(start + rows), 0, <usize>(CHUNK - rows));
    }
  }
  for (let w = 0; w < WORDS; w++) {
    const lo = w << 6;
    setWord(active, w, rows >= lo + 64 ? <u64>-1 : rows <= lo ? 0 : (<u64>1 << <u64>(rows - lo)) - 1);
  }
  memory.fill(pending, 0, <usize>max(nSites, 1) << 7);
  let p = plan;
  while (true) {
    const op = load<i32>(p);
    switch (op) {
      case PlanOp.END: return;
      case PlanOp.COL: {
        const d = fld(p, PlanCol.DST), k = fld(p, PlanCol.COL);
        const base = batchInput(k);
        if (gI(colKind, k) == ColumnKind.NUMBER) {
          sI(regVal, d, <i32>(base + (<usize>start << 3)));
          setMode(d, M_DERIVED, Tag.INT);
        } else {
          const dst = own(d);
          const src = base + <usize>start;
          for (let i = 0; i < CHUNK; i += 8) {
            const x = i16x8.extend_low_i8x16_u(v128.load64_zero(src + <usize>i));
            const lo = i32x4.extend_low_i16x8_u(x), hi = i32x4.extend_high_i16x8_u(x);
            v128.store(dst + (<usize>i << 3), f64x2.convert_low_i32x4_u(lo));
            v128.store(dst + (<usize>i << 3) + 16, f64x2.convert_low_i32x4_u(i32x4.shuffle(lo, lo, 2, 3, 0, 1)));
            v128.store(dst + (<usize>i << 3) + 32, f64x2.convert_low_i32x4_u(hi));
            v128.store(dst + (<usize>i << 3) + 48, f64x2.convert_low_i32x4_u(i32x4.shuffle(hi, hi, 2, 3, 0, 1)));
          }
          // Only 0/1 bytes are bools: anything else is treated as True.
          setMode(d, M_BOOLVAL, Tag.FALSE);
        }
        p += recBytes(PlanCol.WORDS);
        break;
      }
      case PlanOp.CONST: {
        const d = fld(p, PlanConst.DST), k = fld(p, PlanConst.CONST);
        const s = constSlots + (<usize>k << 4);
        sI(regVal, d, <i32>(constBufs + (<usize>k << 13)));
        setMode(d, M_UNIFORM, vtag(s));
        sI(regConst, d, 1);
        store<f64>(regCVal + (<usize>d << 3), vnum(s));
        p += recBytes(PlanConst.WORDS);
        break;
      }
      case PlanOp.UNARY: {
        if (anyActive()) {
          opUnary(fld(p, PlanUnary.OP), fld(p, PlanUnary.DST), fld(p, PlanUnary.A), fld(p, PlanUnary.NEED) != 0, fld(p, PlanUnary.PC),
            fld(p, PlanUnary.BITS) != 0);
        } else setMode(fld(p, PlanUnary.DST), M_NUMUNK, Tag.INT);
        p += recBytes(PlanUnary.WORDS);
        break;
      }
      case PlanOp.BINOP: {
        if (anyActive()) {
          opBinop(fld(p, PlanBinop.OP), fld(p, PlanBinop.DST), fld(p, PlanBinop.A), fld(p, PlanBinop.B), fld(p, PlanBinop.NEED) != 0,
            fld(p, PlanBinop.PC));
        } else setMode(fld(p, PlanBinop.DST), M_NUMUNK, Tag.INT);
        p += recBytes(PlanBinop.WORDS);
        break;
      }
      case PlanOp.COMPARE: {
        if (anyActive()) {
          opCompare(fld(p, PlanCompare.OP), fld(p, PlanCompare.DST), fld(p, PlanCompare.A), fld(p, PlanCompare.B), fld(p, PlanCompare.PC),
            fld(p, PlanCompare.BITS) != 0);
        } else setMode(fld(p, PlanCompare.DST), M_NUMUNK, Tag.INT);
        p += recBytes(PlanCompare.WORDS);
        break;
      }
      case PlanOp.CHAIN: {
        if (anyActive()) {
          opChain(fld(p, PlanChain.OP), fld(p, PlanChain.DST), fld(p, PlanChain.A), fld(p, PlanChain.B), fld(p, PlanChain.SITE),
            fld(p, PlanChain.PC), fld(p, PlanChain.BITS) != 0);
        } else setMode(fld(p, PlanChain.DST), M_NUMUNK, Tag.INT);
        p += recBytes(PlanChain.WORDS);
        break;
      }
      case PlanOp.BRANCH: {
        opBranch(fld(p, PlanBranch.IF_TRUE) != 0, fld(p, PlanBranch.REG), fld(p, PlanBranch.SITE));
        p += recBytes(PlanBranch.WORDS);
        break;
      }
      case PlanOp.JUMP: {
        const m = pend(fld(p, PlanJump.SITE));
        memory.copy(m, active, <usize>WORDS << 3);
        memory.fill(active, 0, <usize>WORDS << 3);
        p += recBytes(PlanJump.WORDS);
        break;
      }
      case PlanOp.SELECT: {
        const n = fld(p, PlanSelect.N);
        const srcs = p + recBytes(PlanSelect.WORDS);
        opSelect(fld(p, PlanSelect.DST), n, srcs, fld(p, PlanSelect.BITS) != 0);
        p = srcs + recBytes(n * PlanSelectSource.WORDS);
        break;
      }
      case PlanOp.ACTIVATE: {
        const m = pend(fld(p, PlanActivate.SITE));
        for (let w = 0; w < WORDS; w++) setWord(active, w, word(active, w) | word(m, w));
        p += recBytes(PlanActivate.WORDS);
        break;
      }
      case PlanOp.CALL: {
        const argc = fld(p, PlanCall.ARGC);
        const args = p + recBytes(PlanCall.WORDS); // argc registers, one word each
        if (anyActive()) {
          opCall(fld(p, PlanCall.FN), fld(p, PlanCall.DST), argc, args, fld(p, PlanCall.NEED) != 0, fld(p, PlanCall.PC),
            fld(p, PlanCall.BITS) != 0);
        } else setMode(fld(p, PlanCall.DST), M_NUMUNK, Tag.INT);
        p = args + recBytes(argc);
        break;
      }
      case PlanOp.RETURN: {
        const r = fld(p, PlanReturn.REG);
        const out = outBuf + <usize>start;
        if (gI(regMode, r) == M_BITS) {
          const m = <usize>gI(regBits, r);
          for (let w = 0; w < WORDS; w++) {
            const bits = word(m, w);
            for (let k: usize = 0; k < 8; k++) {
              store<u64>(out + (<usize>w << 6) + (k << 3), load<u64>(BYTES8 + (<usize>((bits >> (<u64>k << 3)) & 0xff) << 3)));
            }
          }
          p += recBytes(PlanReturn.WORDS);
          break;
        }
        const src = vals(r);
        const zero = f64x2.splat(0);
        for (let i = 0; i < CHUNK; i += 2) {
          const m = i64x2.bitmask(f64x2.ne(v128.load(src + (<usize>i << 3)), zero));
          store<u16>(out + <usize>i, load<u16>(TWO_BYTES + (<usize>m << 1)));
        }
        p += recBytes(PlanReturn.WORDS);
        break;
      }
      default:
        unreachable();
    }
  }
}

/**
 * Runs the loaded plan over the first `rows` rows of the input blocks (rowBase: their index in the
 * whole batch). Returns -1, or the first failing row (its fault in the fault words).
 */
export function batchRun(rows: i32, rowBase: i32): i32 {
  clearFault();
  for (let start = 0; start < rows; start += CHUNK) {
    runChunk(start, min(CHUNK, rows - start));
    if (bestRow < CHUNK) {
      const row = rowBase + start + bestRow;
      setFault(FaultWord.KIND, fKind);
      setFault(FaultWord.PC, fPc);
      setFault(FaultWord.REASON, fReason);
      setFault(FaultWord.TAG_A, fA);
      setFault(FaultWord.TAG_B, fB);
      setFault(FaultWord.ROW, row);
      return row;
    }
  }
  return -1;
}
