// The scalar VM: executes one program of src/expr/bytecode.ts against one context, with the
// semantics of docs/expression-semantics.md as implemented by src/vm/pyops.ts (the reference).

import {
  Op, BinOp, CmpOp, Fn, Method, Tag, ErrorKind, Reason, Limits, TapeTag, SHARED_REF_MIN_STRING, SLICE_FLAG_MASK, SliceFlag, WasmResult,
} from './opcodes';
import {
  alloc, fail, setPc, top, reserveTo, hostFormatFloat, hostRoundDecimal, RESULT, ensureMemory,
} from './mem';
import {
  SLOT, vtag, vlen, vnum, vptr, setNone, setBool, setFloat, setInt, setIntRaw, setPtr, copySlot, isNum, isIntLike,
  truthy, checkSize,
} from './value';
import {
  unit, isHigh, isLow, cpWidth, cpAt, hasSurrogates, cpCount, putCp, cpUnits, strEq, strCmp,
  findPrepare, findNext, isSpace, caseMap, caseLen, sbOpen, sbPtr, sbLength, sbUnit, sbAscii, sbBytes,
  sbUnits, sbClose,
} from './str';
import {
  intFloorDiv, intMod, floatFloorDiv, floatMod, intPow, floatPow, powErrKind, powErrReason, roundEven, roundIntDigits,
  parseIntStr, parseFloatStr, parsedValue,
} from './num';

const MAX_INT = Limits.MAX_INT;

// ---------------------------------------------------------------- program state

export let code: usize = 0;
export let codeLen: i32 = 0;
export let consts: usize = 0;
export let nConsts: i32 = 0;
let strs: usize = 0;
let nStrs: i32 = 0;
export let nNames: i32 = 0;
export let maxStack: i32 = 0;
let ctx: usize = 0;

// ---------------------------------------------------------------- tapes

let rp: usize = 0;
/**
 * Context lists, tuples, dicts and opaque values get an origin (1, 2, … in tape order, kept in the
 * slot's spare word at +12; 0 for values the program builds). A result that is a context value is
 * returned by reference (the host maps the origin back to its own object, as the js evaluator returns
 * it), and opaque values compare by the identity of their host objects.
 */
let origins: i32 = 0;
@inline function origin(v: usize): i32 { return load<i32>(v, 12); }

/** Are the host objects of two origins the same object? (src/backend/wasm.ts) */
@external('env', 'sameObject')
declare function hostSameObject(a: i32, b: i32): i32;

function readValue(dst: usize): void {
  const t = <i32>load<u8>(rp);
  rp++;
  switch (t) {
    case Tag.NONE: setNone(dst); break;
    case Tag.FALSE: setBool(dst, false); break;
    case Tag.TRUE: setBool(dst, true); break;
    case Tag.INT: {
      const x = load<f64>(rp);
      rp += 8;
      // Kept as is, -0 included: the js evaluator returns context values untouched.
      store<i32>(dst, Tag.INT); store<i32>(dst, 0, 4); store<f64>(dst, x, 8);
      break;
    }
    case Tag.FLOAT: {
      const x = load<f64>(rp);
      rp += 8;
      setFloat(dst, x);
      break;
    }
    case Tag.STR: {
      const n = <i32>load<u32>(rp);
      rp += 4;
      setPtr(dst, t, rp, n);
      rp += <usize>n << 1;
      break;
    }
    case Tag.OPAQUE: {
      const origin = ++origins;
      const n = <i32>load<u32>(rp);
      rp += 4;
      setPtr(dst, t, rp, n);
      store<i32>(dst, origin, 12);
      rp += <usize>n << 1;
      break;
    }
    case Tag.LIST: case Tag.TUPLE: {
      const origin = ++origins;
      const n = <i32>load<u32>(rp);
      rp += 4;
      const items = alloc(<usize>n << 4);
      for (let i = 0; i < n; i++) readValue(items + (<usize>i << 4));
      setPtr(dst, t, items, n);
      store<i32>(dst, origin, 12);
      break;
    }
    case Tag.DICT: {
      const origin = ++origins;
      const n = <i32>load<u32>(rp);
      rp += 4;
      const entries = alloc(<usize>n << 5);
      for (let i = 0; i < n; i++) {
        const e = entries + (<usize>i << 5);
        const k = <i32>load<u32>(rp);
        rp += 4;
        setPtr(e, Tag.STR, rp, k);
        rp += <usize>k << 1;
        readValue(e + 16);
      }
      setPtr(dst, Tag.DICT, entries, n);
      store<i32>(dst, origin, 12);
      break;
    }
    case Tag.MISSING:
      store<i32>(dst, Tag.MISSING); store<i32>(dst, 0, 4); store<f64>(dst, 0, 8);
      break;
    default:
      unreachable();
  }
}

/** Decodes n values of a tape at p into a new slot array. */
export function decodeTape(p: usize, n: i32): usize {
  const slots = alloc(<usize>max(n, 1) << 4);
  rp = p;
  origins = 0;
  for (let i = 0; i < n; i++) readValue(slots + (<usize>i << 4));
  return slots;
}

let wp: usize = 0;
let wEnd: usize = 0;

/**
 * The result tape (src/vm/contract.ts, "The result tape"; read by src/vm/tape.ts readResult): a
 * context list, tuple, dict or opaque value is written as TapeTag.CONTEXT_REF and its u32 origin; a
 * value the program built that the result holds again (`[[1, 2]] * 3`: one items buffer, three slots)
 * as TapeTag.SHARED_REF and its number; everything else in full.
 */
const TAG_REF: i32 = TapeTag.CONTEXT_REF;

/**
 * Numbers a value about to be written in full for SHARED_REF (src/backend/wasm.ts keeps the table of
 * this result): returns the number it already has when the same buffer (ptr, len, tag) was written
 * before, else gives it the next number and returns -1.
 */
@external('env', 'sharedRef')
declare function hostSharedRef(ptr: usize, len: i32, tag: i32): i32;

/** Writes SHARED_REF when v was written before (see hostSharedRef); else numbers it. */
function writeShared(v: usize, t: i32): bool {
  const i = hostSharedRef(vptr(v), vlen(v), t);
  if (i < 0) return false;
  wByte(TapeTag.SHARED_REF);
  wU32(i);
  return true;
}

function wRoom(n: usize): void {
  if (wp + n > wEnd) fail(ErrorKind.LimitError, Reason.TAPE_TOO_LARGE, -1, -1);
  reserveTo(wp + n);
}
@inline function wByte(b: i32): void { wRoom(1); store<u8>(wp, <u8>b); wp++; }
@inline function wU32(x: i32): void { wRoom(4); store<u32>(wp, <u32>x); wp += 4; }
@inline function wF64(x: f64): void { wRoom(8); store<f64>(wp, x); wp += 8; }
function wUnits(p: usize, n: i32): void {
  wU32(n);
  wRoom(<usize>n << 1);
  memory.copy(wp, p, <usize>n << 1);
  wp += <usize>n << 1;
}

function writeValue(v: usize): void {
  const t = vtag(v);
  if (t >= Tag.LIST && origin(v) != 0) { wByte(TAG_REF); wU32(origin(v)); return; }
  switch (t) {
    case Tag.NONE: case Tag.FALSE: case Tag.TRUE: wByte(t); break;
    case Tag.INT: case Tag.FLOAT: wByte(t); wF64(vnum(v)); break;
    case Tag.STR:
      // Short strings are cheaper to repeat than to number.
      if (vlen(v) >= SHARED_REF_MIN_STRING && writeShared(v, t)) break;
      wByte(t); wUnits(vptr(v), vlen(v)); break;
    case Tag.OPAQUE: wByte(t); wUnits(vptr(v), vlen(v)); break;
    case Tag.LIST: case Tag.TUPLE: {
      const n = vlen(v);
      if (n > 0 && writeShared(v, t)) break;
      wByte(t);
      wU32(n);
      const items = vptr(v);
      for (let i = 0; i < n; i++) writeValue(items + (<usize>i << 4));
      break;
    }
    case Tag.DICT: {
      const n = vlen(v);
      if (n > 0 && writeShared(v, t)) break;
      wByte(t);
      wU32(n);
      const e = vptr(v);
      for (let i = 0; i < n; i++) {
        const k = e + (<usize>i << 5);
        wUnits(vptr(k), vlen(k));
        writeValue(k + 16);
      }
      break;
    }
    default: unreachable();
  }
}

/** Puts the result in the RESULT descriptor (WasmResult): scalars inline, anything else as a tape. */
function emitResult(v: usize): void {
  const t = vtag(v);
  store<i32>(RESULT + <usize>WasmResult.TAG, t);
  store<f64>(RESULT + <usize>WasmResult.NUM, vnum(v));
  if (t >= Tag.STR) {
    const start = (top + 15) & ~(<usize>15);
    reserveTo(start);
    wp = start;
    wEnd = start + Limits.MAX_TAPE_BYTES; // beyond: LimitError TAPE_TOO_LARGE at RETURN (wRoom), as in native/value.cpp
    writeValue(v);
    store<u32>(RESULT + <usize>WasmResult.PTR, <u32>start);
    store<i32>(RESULT + <usize>WasmResult.LEN, <i32>(wp - start));
  } else {
    store<u32>(RESULT + <usize>WasmResult.PTR, 0);
    store<i32>(RESULT + <usize>WasmResult.LEN, 0);
  }
}

// ---------------------------------------------------------------- work and depth budgets

/**
 * Element steps left in this evaluation (Limits.MAX_WORK), spent where pyops.ts spends them, so both
 * backends stop the same expressions with the same LimitError.
 */
let work: f64 = 0;
@inline function spend(n: f64): void {
  work -= n;
  if (work < 0) fail(ErrorKind.LimitError, Reason.WORK, -1, -1);
}
@inline function tooDeep(depth: i32): void {
  if (depth > Limits.MAX_DEPTH) fail(ErrorKind.LimitError, Reason.DEPTH, -1, -1);
}

/** The js evaluator's `a === b` for two containers (or opaque values) of the same tag. */
function identical(a: usize, b: usize): bool {
  if (vptr(a) == vptr(b) && vlen(a) == vlen(b) && vtag(a) != Tag.OPAQUE) return true;
  const x = origin(a), y = origin(b);
  if (x == 0 || y == 0) return false;
  return x == y || hostSameObject(x, y) != 0;
}

// ---------------------------------------------------------------- dicts

/** The value slot of key (p, n) in a dict, or 0. */
function dictFind(d: usize, p: usize, n: i32): usize {
  const count = vlen(d);
  const e = vptr(d);
  for (let i = 0; i < count; i++) {
    const k = e + (<usize>i << 5);
    if (vlen(k) == n && strEq(vptr(k), n, p, n)) return k + 16;
  }
  return 0;
}

// ---------------------------------------------------------------- equality and order

export function eq(a: usize, b: usize, depth: i32): bool {
  const ta = vtag(a), tb = vtag(b);
  if (isNum(ta)) return isNum(tb) && vnum(a) == vnum(b);
  if (ta == Tag.STR || tb == Tag.STR) return ta == tb && strEq(vptr(a), vlen(a), vptr(b), vlen(b));
  if (ta == Tag.NONE) return tb == Tag.NONE;
  if (ta == Tag.OPAQUE) return tb == Tag.OPAQUE && identical(a, b);
  if (ta == Tag.LIST || ta == Tag.TUPLE) {
    if (ta != tb) return false;
    if (identical(a, b)) return true;
    const n = vlen(a);
    if (n != vlen(b)) return false;
    tooDeep(depth);
    spend(<f64>n);
    const x = vptr(a), y = vptr(b);
    for (let i = 0; i < n; i++) if (!eq(x + (<usize>i << 4), y + (<usize>i << 4), depth + 1)) return false;
    return true;
  }
  if (ta == Tag.DICT && tb == Tag.DICT) {
    if (identical(a, b)) return true;
    const n = vlen(a);
    if (n != vlen(b)) return false;
    tooDeep(depth);
    spend(<f64>n);
    const e = vptr(a);
    for (let i = 0; i < n; i++) {
      const k = e + (<usize>i << 5);
      const w = dictFind(b, vptr(k), vlen(k));
      if (w == 0 || !eq(k + 16, w, depth + 1)) return false;
    }
    return true;
  }
  return false;
}

@inline function orderResult(op: i32, c: i32): bool {
  if (op == CmpOp.LT) return c < 0;
  if (op == CmpOp.LE) return c <= 0;
  if (op == CmpOp.GT) return c > 0;
  return c >= 0;
}

/** `<`, `<=`, `>`, `>=`. */
export function order(op: i32, a: usize, b: usize, depth: i32): bool {
  const ta = vtag(a), tb = vtag(b);
  if (isNum(ta) && isNum(tb)) {
    const x = vnum(a), y = vnum(b);
    if (op == CmpOp.LT) return x < y;
    if (op == CmpOp.LE) return x <= y;
    if (op == CmpOp.GT) return x > y;
    return x >= y;
  }
  if (ta == Tag.STR && tb == Tag.STR) return orderResult(op, strCmp(vptr(a), vlen(a), vptr(b), vlen(b)));
  if ((ta == Tag.LIST && tb == Tag.LIST) || (ta == Tag.TUPLE && tb == Tag.TUPLE)) {
    const na = vlen(a), nb = vlen(b);
    const n = min(na, nb);
    const x = vptr(a), y = vptr(b);
    tooDeep(depth);
    for (let i = 0; i < n; i++) {
      spend(1);
      const p = x + (<usize>i << 4), q = y + (<usize>i << 4);
      if (!eq(p, q, depth + 1)) return order(op, p, q, depth + 1);
    }
    return orderResult(op, na - nb);
  }
  fail(ErrorKind.TypeError, Reason.BAD_OPERANDS, ta, tb);
  return false;
}

function contains(c: usize, x: usize): bool {
  const tc = vtag(c), tx = vtag(x);
  if (tc == Tag.STR) {
    if (tx != Tag.STR) fail(ErrorKind.TypeError, Reason.BAD_OPERANDS, tx, tc);
    spend(<f64>vlen(c));
    findPrepare(vptr(x), vlen(x));
    return findNext(vptr(c), vlen(c), 0) >= 0;
  }
  if (tc == Tag.LIST || tc == Tag.TUPLE) {
    const n = vlen(c), items = vptr(c);
    for (let i = 0; i < n; i++) {
      spend(1);
      if (eq(items + (<usize>i << 4), x, 0)) return true;
    }
    return false;
  }
  if (tc == Tag.DICT) {
    if (tx == Tag.STR) return dictFind(c, vptr(x), vlen(x)) != 0;
    if (tx == Tag.LIST || tx == Tag.DICT) fail(ErrorKind.TypeError, Reason.UNHASHABLE, tx, -1);
    return false;
  }
  fail(ErrorKind.TypeError, Reason.NOT_ITERABLE, tx, tc);
  return false;
}

function compareOp(op: i32, a: usize, b: usize): bool {
  switch (op) {
    case CmpOp.EQ: return eq(a, b, 0);
    case CmpOp.NE: return !eq(a, b, 0);
    case CmpOp.IN: return contains(b, a);
    case CmpOp.NOT_IN: return !contains(b, a);
    case CmpOp.IS: case CmpOp.IS_NOT: {
      const ta = vtag(a), tb = vtag(b);
      let same = ta == tb && ta <= Tag.TRUE;
      if (!same && ta == tb && ta == Tag.INT) same = vnum(a) == vnum(b);
      return op == CmpOp.IS ? same : !same;
    }
    default: return order(op, a, b, 0);
  }
}

// ---------------------------------------------------------------- arithmetic

function numBinop(op: i32, ta: i32, tb: i32, x: f64, y: f64, out: usize): void {
  const ints = isIntLike(ta) && isIntLike(tb);
  switch (op) {
    case BinOp.ADD: if (ints) setInt(out, x + y); else setFloat(out, x + y); return;
    case BinOp.SUB: if (ints) setInt(out, x - y); else setFloat(out, x - y); return;
    case BinOp.MUL: if (ints) setInt(out, x * y); else setFloat(out, x * y); return;
    case BinOp.TRUEDIV:
      if (y == 0) fail(ErrorKind.ZeroDivisionError, Reason.DIV_ZERO, ta, tb);
      setFloat(out, x / y);
      return;
    case BinOp.FLOORDIV:
      if (y == 0) fail(ErrorKind.ZeroDivisionError, Reason.DIV_ZERO, ta, tb);
      if (ints) setInt(out, intFloorDiv(x, y)); else setFloat(out, floatFloorDiv(x, y));
      return;
    case BinOp.MOD:
      if (y == 0) fail(ErrorKind.ZeroDivisionError, Reason.DIV_ZERO, ta, tb);
      if (ints) setInt(out, intMod(x, y)); else setFloat(out, floatMod(x, y));
      return;
    case BinOp.POW: {
      const r = ints && y >= 0 ? intPow(x, y) : floatPow(x, y);
      if (powErrKind != ErrorKind.OK) {
        if (powErrReason == Reason.POW_ZERO_NEG) fail(powErrKind, powErrReason, Tag.FLOAT, Tag.FLOAT);
        fail(powErrKind, powErrReason, -1, -1);
      }
      if (ints && y >= 0) setInt(out, r); else setFloat(out, r);
      return;
    }
    default: unreachable();
  }
}

function repeatSeq(seq: usize, nv: f64, out: usize): void {
  const ts = vtag(seq);
  const count: f64 = nv <= 0 ? 0 : nv;
  const len = vlen(seq);
  checkSize(<f64>len * count);
  const total = <i32>(<f64>len * count);
  const c = <i32>count;
  if (ts == Tag.STR) {
    if (total == 0) { setPtr(out, Tag.STR, 0, 0); return; }
    if (c == 1) { copySlot(out, seq); return; }
    const src = vptr(seq);
    const bytes = <usize>len << 1;
    const p = alloc(<usize>total << 1);
    for (let i = 0; i < c; i++) memory.copy(p + <usize>i * bytes, src, bytes);
    setPtr(out, Tag.STR, p, total);
    return;
  }
  spend(<f64>len * count);
  if (total == 0) { setPtr(out, ts, 0, 0); return; }
  const src = vptr(seq);
  const bytes = <usize>len << 4;
  const p = alloc(<usize>total << 4);
  for (let i = 0; i < c; i++) memory.copy(p + <usize>i * bytes, src, bytes);
  setPtr(out, ts, p, total);
}

/** a op b into out (out may be a). */
export function binop(op: i32, a: usize, b: usize, out: usize): void {
  const ta = vtag(a), tb = vtag(b);
  if (isNum(ta) && isNum(tb)) { numBinop(op, ta, tb, vnum(a), vnum(b), out); return; }
  if (op == BinOp.ADD) {
    if ((ta == Tag.STR && tb == Tag.STR) || (ta == tb && (ta == Tag.LIST || ta == Tag.TUPLE))) {
      const la = vlen(a), lb = vlen(b);
      checkSize(<f64>la + <f64>lb);
      if (ta != Tag.STR) spend(<f64>la + <f64>lb);
      const shift: usize = ta == Tag.STR ? 1 : 4;
      const pa = vptr(a), pb = vptr(b);
      const n = la + lb;
      const p = alloc(<usize>n << shift);
      memory.copy(p, pa, <usize>la << shift);
      memory.copy(p + (<usize>la << shift), pb, <usize>lb << shift);
      setPtr(out, ta, p, n);
      return;
    }
  } else if (op == BinOp.MUL) {
    let seq = a, n = b;
    if (isIntLike(ta) && !isIntLike(tb)) { seq = b; n = a; }
    const ts = vtag(seq);
    if (isIntLike(vtag(n)) && (ts == Tag.STR || ts == Tag.LIST || ts == Tag.TUPLE)) {
      repeatSeq(seq, vnum(n), out);
      return;
    }
  }
  fail(ErrorKind.TypeError, Reason.BAD_OPERANDS, ta, tb);
}

// ---------------------------------------------------------------- subscription and slices

/** Unit offset of code point j counted from the start, or -1 when j >= count. */
function cpForward(p: usize, n: i32, j: f64): i32 {
  let i = 0;
  let k: f64 = 0;
  while (i < n) {
    if (k == j) return i;
    i += cpWidth(p, n, i);
    k++;
  }
  return -1;
}

/** Unit offset of the code point j places from the end (j >= 1), or -1 when out of range. */
function cpBackward(p: usize, n: i32, j: f64): i32 {
  let i = n;
  let k: f64 = 0;
  while (i > 0) {
    i--;
    if (isLow(unit(p, i)) && i > 0 && isHigh(unit(p, i - 1))) i--;
    k++;
    if (k == j) return i;
  }
  return -1;
}

function getItem(obj: usize, key: usize, out: usize): void {
  const to = vtag(obj), tk = vtag(key);
  if (to == Tag.STR || to == Tag.LIST || to == Tag.TUPLE) {
    if (!isIntLike(tk)) fail(ErrorKind.TypeError, Reason.BAD_INDEX_TYPE, to, tk);
    const i = vnum(key);
    if (to == Tag.STR) {
      const p = vptr(obj), n = vlen(obj);
      const at = i >= 0 ? cpForward(p, n, i) : cpBackward(p, n, -i);
      if (at < 0) fail(ErrorKind.IndexError, Reason.INDEX_RANGE, to, -1);
      setPtr(out, Tag.STR, p + (<usize>at << 1), cpWidth(p, n, at));
      return;
    }
    const n = vlen(obj);
    const j = i < 0 ? i + <f64>n : i;
    if (j < 0 || j >= <f64>n) fail(ErrorKind.IndexError, Reason.INDEX_RANGE, to, -1);
    copySlot(out, vptr(obj) + (<usize>(<i32>j) << 4));
    return;
  }
  if (to == Tag.DICT) {
    if (tk == Tag.STR) {
      const w = dictFind(obj, vptr(key), vlen(key));
      if (w == 0) fail(ErrorKind.KeyError, Reason.KEY_MISSING, Tag.DICT, Tag.STR);
      copySlot(out, w);
      return;
    }
    if (tk == Tag.LIST || tk == Tag.DICT) fail(ErrorKind.TypeError, Reason.UNHASHABLE, tk, -1);
    fail(ErrorKind.KeyError, Reason.KEY_MISSING, Tag.DICT, tk);
  }
  fail(ErrorKind.TypeError, Reason.NOT_SUBSCRIPTABLE, to, -1);
}

// slice.indices() results
let slStart: i32 = 0;
let slStep: i32 = 0;
let slLen: i32 = 0;

/** Python's slice.indices over n items; bounds as doubles (absent = NaN). */
function sliceIndices(n: i32, lo: f64, hi: f64, st: f64): void {
  const step: f64 = isNaN(st) ? 1 : st;
  if (step == 0) fail(ErrorKind.ValueError, Reason.SLICE_STEP_ZERO, -1, -1);
  const fn = <f64>n;
  let start: f64, stop: f64;
  if (step > 0) {
    start = isNaN(lo) ? 0 : lo < 0 ? Math.max(0, lo + fn) : Math.min(lo, fn);
    stop = isNaN(hi) ? fn : hi < 0 ? Math.max(0, hi + fn) : Math.min(hi, fn);
  } else {
    start = isNaN(lo) ? fn - 1 : lo < 0 ? Math.max(-1, lo + fn) : Math.min(lo, fn - 1);
    stop = isNaN(hi) ? -1 : hi < 0 ? Math.max(-1, hi + fn) : Math.min(hi, fn - 1);
  }
  let length: f64 = 0;
  if (step > 0 && start < stop) length = Math.floor((stop - start - 1) / step) + 1;
  else if (step < 0 && stop < start) length = Math.floor((start - stop - 1) / -step) + 1;
  slStart = <i32>start;
  // A step beyond ±n behaves like ±n (at most one item is taken); keeps the stride in i32.
  slStep = <i32>(step > fn + 1 ? fn + 1 : step < -fn - 1 ? -fn - 1 : step);
  if (slStep == 0) slStep = step > 0 ? 1 : -1;
  slLen = <i32>length;
}

function sliceBound(v: usize, to: i32): f64 {
  const t = vtag(v);
  if (t == Tag.NONE) return NaN;
  if (!isIntLike(t)) fail(ErrorKind.TypeError, Reason.BAD_INDEX_TYPE, to, t);
  return vnum(v);
}

/** obj[lo:hi:st] where absent bounds are 0 pointers; result into out (out may be obj). */
function getSlice(obj: usize, lo: usize, hi: usize, st: usize, out: usize): void {
  const to = vtag(obj);
  if (to == Tag.STR || to == Tag.LIST || to == Tag.TUPLE) spend(<f64>vlen(obj));
  if (to != Tag.STR && to != Tag.LIST && to != Tag.TUPLE) fail(ErrorKind.TypeError, Reason.NOT_SUBSCRIPTABLE, to, -1);
  const a = lo ? sliceBound(lo, to) : NaN;
  const b = hi ? sliceBound(hi, to) : NaN;
  const c = st ? sliceBound(st, to) : NaN;
  const p = vptr(obj), n = vlen(obj);
  if (to == Tag.STR) {
    if (!hasSurrogates(p, n)) {
      sliceIndices(n, a, b, c);
      if (slStep == 1) { setPtr(out, Tag.STR, p + (<usize>slStart << 1), slLen); return; }
      const q = alloc(<usize>slLen << 1);
      for (let k = 0, i = slStart; k < slLen; k++, i += slStep) store<u16>(q + (<usize>k << 1), load<u16>(p + (<usize>i << 1)));
      setPtr(out, Tag.STR, q, slLen);
      return;
    }
    // Code point offsets, then the selected code points.
    const count = cpCount(p, n);
    const offs = alloc(<usize>(count + 1) << 2);
    let u = 0;
    for (let k = 0; k < count; k++) { store<i32>(offs + (<usize>k << 2), u); u += cpWidth(p, n, u); }
    store<i32>(offs + (<usize>count << 2), n);
    sliceIndices(count, a, b, c);
    if (slStep == 1) {
      const s = load<i32>(offs + (<usize>slStart << 2));
      const e = slLen > 0 ? load<i32>(offs + (<usize>(slStart + slLen) << 2)) : s;
      setPtr(out, Tag.STR, p + (<usize>s << 1), e - s);
      return;
    }
    let units = 0;
    for (let k = 0, i = slStart; k < slLen; k++, i += slStep) {
      units += load<i32>(offs + (<usize>(i + 1) << 2)) - load<i32>(offs + (<usize>i << 2));
    }
    const q = alloc(<usize>units << 1);
    let o = 0;
    for (let k = 0, i = slStart; k < slLen; k++, i += slStep) {
      const s = load<i32>(offs + (<usize>i << 2));
      const w = load<i32>(offs + (<usize>(i + 1) << 2)) - s;
      memory.copy(q + (<usize>o << 1), p + (<usize>s << 1), <usize>w << 1);
      o += w;
    }
    setPtr(out, Tag.STR, q, units);
    return;
  }
  sliceIndices(n, a, b, c);
  const q = alloc(<usize>max(slLen, 1) << 4);
  for (let k = 0, i = slStart; k < slLen; k++, i += slStep) copySlot(q + (<usize>k << 4), p + (<usize>i << 4));
  setPtr(out, to, q, slLen);
}

// ---------------------------------------------------------------- str() and repr()

const FMT: usize = memory.data(64, 16);

function reprFloat(x: f64): void {
  const n = hostFormatFloat(x, FMT);
  sbBytes(FMT, n);
}

function reprInt(x: f64): void {
  let v = <i64>x;
  if (v < 0) { sbUnit(45); v = -v; }
  let nd = 0;
  let t = v;
  do { nd++; t /= 10; } while (t > 0);
  let q = FMT + <usize>nd;
  t = v;
  do { q--; store<u8>(q, <u8>(48 + <i32>(t % 10))); t /= 10; } while (t > 0);
  sbBytes(FMT, nd);
}

const HEX = '0123456789abcdef';

function reprStr(p: usize, n: i32): void {
  spend(<f64>n);
  let hasSingle = false, hasDouble = false;
  for (let i = 0; i < n; i++) {
    const c = unit(p, i);
    if (c == 39) hasSingle = true; else if (c == 34) hasDouble = true;
  }
  const quote = hasSingle && !hasDouble ? 34 : 39;
  sbUnit(quote);
  for (let i = 0; i < n; i++) {
    const c = unit(p, i);
    if (c == 92) { sbUnit(92); sbUnit(92); }
    else if (c == quote) { sbUnit(92); sbUnit(quote); }
    else if (c == 10) { sbUnit(92); sbUnit(110); }
    else if (c == 13) { sbUnit(92); sbUnit(114); }
    else if (c == 9) { sbUnit(92); sbUnit(116); }
    else if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad) {
      sbUnit(92); sbUnit(120); sbUnit(HEX.charCodeAt(c >> 4)); sbUnit(HEX.charCodeAt(c & 15));
    } else sbUnit(c);
  }
  sbUnit(quote);
}

/** Appends Python str(v) (repr when `quoted` and v is a str) to the open builder. */
function strInto(v: usize, depth: i32, quoted: bool): void {
  const t = vtag(v);
  if (t == Tag.STR && quoted) { reprStr(vptr(v), vlen(v)); return; } // pyops repr(): no depth check
  tooDeep(depth);
  switch (t) {
    case Tag.NONE: sbAscii('None'); return;
    case Tag.FALSE: sbAscii('False'); return;
    case Tag.TRUE: sbAscii('True'); return;
    case Tag.INT: reprInt(vnum(v)); return;
    case Tag.FLOAT: reprFloat(vnum(v)); return;
    case Tag.STR: if (quoted) reprStr(vptr(v), vlen(v)); else sbUnits(vptr(v), vlen(v)); return;
    case Tag.LIST: case Tag.TUPLE: {
      const n = vlen(v), items = vptr(v);
      if (!(t == Tag.TUPLE && n == 1)) spend(<f64>n);
      sbUnit(t == Tag.LIST ? 91 : 40);
      for (let i = 0; i < n; i++) {
        if (i > 0) { sbUnit(44); sbUnit(32); }
        strInto(items + (<usize>i << 4), depth + 1, true);
      }
      if (t == Tag.TUPLE && n == 1) sbUnit(44);
      sbUnit(t == Tag.LIST ? 93 : 41);
      return;
    }
    case Tag.DICT: {
      const n = vlen(v), e = vptr(v);
      spend(<f64>n);
      sbUnit(123);
      for (let i = 0; i < n; i++) {
        if (i > 0) { sbUnit(44); sbUnit(32); }
        const k = e + (<usize>i << 5);
        reprStr(vptr(k), vlen(k));
        sbUnit(58); sbUnit(32);
        strInto(k + 16, depth + 1, true);
      }
      sbUnit(125);
      return;
    }
    default:
      fail(ErrorKind.TypeError, Reason.BAD_ARGUMENT, t, -1);
  }
}

function toStr(v: usize, out: usize): void {
  const t = vtag(v);
  if (t == Tag.STR) { copySlot(out, v); return; }
  sbOpen();
  strInto(v, 0, false);
  sbClose();
  setPtr(out, Tag.STR, sbPtr(), sbLength());
}

// ---------------------------------------------------------------- iteration

// An iterable as (base, count, stride); strings are iterated by code point separately.
let itBase: usize = 0;
let itCount: i32 = 0;
let itStride: usize = 16;
let itStr = false;

function iterate(v: usize): void {
  const t = vtag(v);
  itStr = false;
  if (t == Tag.LIST || t == Tag.TUPLE) { spend(<f64>vlen(v)); itBase = vptr(v); itCount = vlen(v); itStride = 16; return; }
  if (t == Tag.DICT) { itBase = vptr(v); itCount = vlen(v); itStride = 32; return; }
  if (t == Tag.STR) { spend(<f64>vlen(v)); itBase = vptr(v); itCount = vlen(v); itStride = 2; itStr = true; return; }
  fail(ErrorKind.TypeError, Reason.NOT_ITERABLE, t, -1);
}

@inline function argCount(argc: i32, lo: i32, hi: i32): void {
  if (argc < lo || argc > hi) fail(ErrorKind.TypeError, Reason.ARG_COUNT, -1, -1);
}

function minMax(args: usize, argc: i32, isMax: bool, out: usize): void {
  if (argc == 0) fail(ErrorKind.TypeError, Reason.ARG_COUNT, -1, -1);
  const op = isMax ? CmpOp.GT : CmpOp.LT;
  if (argc == 1) {
    iterate(args);
    if (itCount == 0) fail(ErrorKind.ValueError, Reason.EMPTY_SEQUENCE, -1, -1);
    if (itStr) {
      const p = itBase, n = itCount;
      let best = 0;
      let bc = cpAt(p, n, 0);
      for (let i = cpUnits(bc); i < n; ) {
        const c = cpAt(p, n, i);
        if (isMax ? c > bc : c < bc) { bc = c; best = i; }
        i += cpUnits(c);
      }
      setPtr(out, Tag.STR, p + (<usize>best << 1), cpUnits(bc) == 2 ? 2 : 1);
      return;
    }
    let best = itBase;
    for (let i = 1; i < itCount; i++) {
      const v = itBase + <usize>i * itStride;
      if (order(op, v, best, 0)) best = v;
    }
    copySlot(out, best);
    return;
  }
  let best = args;
  for (let i = 1; i < argc; i++) {
    const v = args + (<usize>i << 4);
    if (order(op, v, best, 0)) best = v;
  }
  copySlot(out, best);
}

const TMP: usize = memory.data(64, 16);

function callFunction(fn: i32, args: usize, argc: i32, out: usize): void {
  switch (fn) {
    case Fn.len: {
      argCount(argc, 1, 1);
      const t = vtag(args);
      if (t == Tag.STR) { spend(<f64>vlen(args)); setInt(out, <f64>cpCount(vptr(args), vlen(args))); return; }
      if (t == Tag.LIST || t == Tag.TUPLE || t == Tag.DICT) { setInt(out, <f64>vlen(args)); return; }
      fail(ErrorKind.TypeError, Reason.BAD_ARGUMENT, t, -1);
      return;
    }
    case Fn.abs: {
      argCount(argc, 1, 1);
      const t = vtag(args);
      if (!isNum(t)) fail(ErrorKind.TypeError, Reason.BAD_ARGUMENT, t, -1);
      if (t == Tag.FLOAT) setFloat(out, Math.abs(vnum(args))); else setInt(out, Math.abs(vnum(args)));
      return;
    }
    case Fn.min: minMax(args, argc, false, out); return;
    case Fn.max: minMax(args, argc, true, out); return;
    case Fn.round: {
      argCount(argc, 1, 2);
      const t = vtag(args);
      if (!isNum(t)) fail(ErrorKind.TypeError, Reason.BAD_ARGUMENT, t, -1);
      const x = vnum(args);
      const nd = args + 16;
      if (argc == 1 || vtag(nd) == Tag.NONE) {
        if (t != Tag.FLOAT) { setIntRaw(out, x); return; }
        if (isNaN(x)) fail(ErrorKind.ValueError, Reason.NAN_TO_INT, -1, -1);
        if (!isFinite(x)) fail(ErrorKind.OverflowError, Reason.INF_TO_INT, -1, -1);
        setInt(out, roundEven(x));
        return;
      }
      const tn = vtag(nd);
      if (!isIntLike(tn)) fail(ErrorKind.TypeError, Reason.BAD_ARGUMENT, t, tn);
      const n = vnum(nd);
      if (t != Tag.FLOAT) { if (n >= 0) setIntRaw(out, x); else setInt(out, roundIntDigits(x, n)); return; }
      if (!isFinite(x) || x == 0) { setFloat(out, x); return; }
      setFloat(out, hostRoundDecimal(x, n));
      return;
    }
    case Fn.int: {
      argCount(argc, 0, 1);
      if (argc == 0) { setInt(out, 0); return; }
      const t = vtag(args);
      if (t == Tag.STR) {
        if (!parseIntStr(vptr(args), vlen(args))) fail(ErrorKind.ValueError, Reason.INVALID_INT_LITERAL, -1, -1);
        setInt(out, parsedValue);
        return;
      }
      if (!isNum(t)) fail(ErrorKind.TypeError, Reason.BAD_ARGUMENT, t, -1);
      const x = vnum(args);
      if (t != Tag.FLOAT) { setIntRaw(out, x); return; }
      if (isNaN(x)) fail(ErrorKind.ValueError, Reason.NAN_TO_INT, -1, -1);
      if (!isFinite(x)) fail(ErrorKind.OverflowError, Reason.INF_TO_INT, -1, -1);
      setInt(out, Math.trunc(x));
      return;
    }
    case Fn.float: {
      argCount(argc, 0, 1);
      if (argc == 0) { setFloat(out, 0); return; }
      const t = vtag(args);
      if (t == Tag.STR) {
        if (!parseFloatStr(vptr(args), vlen(args))) fail(ErrorKind.ValueError, Reason.INVALID_FLOAT_LITERAL, -1, -1);
        setFloat(out, parsedValue);
        return;
      }
      if (!isNum(t)) fail(ErrorKind.TypeError, Reason.BAD_ARGUMENT, t, -1);
      setFloat(out, vnum(args));
      return;
    }
    case Fn.str: {
      argCount(argc, 0, 1);
      if (argc == 0) { setPtr(out, Tag.STR, 0, 0); return; }
      toStr(args, out);
      return;
    }
    case Fn.bool: {
      argCount(argc, 0, 1);
      setBool(out, argc == 0 ? false : truthy(args));
      return;
    }
    case Fn.sum: {
      argCount(argc, 1, 2);
      const acc = TMP;
      if (argc == 2) copySlot(acc, args + 16); else setInt(acc, 0);
      if (vtag(acc) == Tag.STR) fail(ErrorKind.TypeError, Reason.SUM_STRINGS, -1, -1);
      iterate(args);
      if (itStr) {
        if (itCount > 0) {
          const item = TMP + 16;
          setPtr(item, Tag.STR, itBase, cpWidth(itBase, itCount, 0));
          binop(BinOp.ADD, acc, item, acc); // always a TypeError: nothing adds a str to a non-str
        }
      } else {
        for (let i = 0; i < itCount; i++) binop(BinOp.ADD, acc, itBase + <usize>i * itStride, acc);
      }
      copySlot(out, acc);
      return;
    }
    case Fn.any: case Fn.all: {
      argCount(argc, 1, 1);
      iterate(args);
      const isAny = fn == Fn.any;
      if (itStr) { setBool(out, isAny ? itCount > 0 : true); return; }
      for (let i = 0; i < itCount; i++) {
        const t = truthy(itBase + <usize>i * itStride);
        if (isAny && t) { setBool(out, true); return; }
        if (!isAny && !t) { setBool(out, false); return; }
      }
      setBool(out, !isAny);
      return;
    }
    default: unreachable();
  }
}

// ---------------------------------------------------------------- string methods

function strArg(v: usize): void {
  const t = vtag(v);
  if (t != Tag.STR) fail(ErrorKind.TypeError, Reason.BAD_ARGUMENT, Tag.STR, t);
}

function intArg(v: usize): f64 {
  const t = vtag(v);
  if (!isIntLike(t)) fail(ErrorKind.TypeError, Reason.BAD_ARGUMENT, Tag.STR, t);
  return vnum(v);
}

function stripSpace(p: usize, n: i32, out: usize): void {
  let i = 0, j = n;
  while (i < j && isSpace(unit(p, i))) i++;
  while (j > i && isSpace(unit(p, j - 1))) j--;
  setPtr(out, Tag.STR, p + (<usize>i << 1), j - i);
}

function stripChars(p: usize, n: i32, cp: usize, cn: i32, out: usize): void {
  // A bitmap of the strip set: 8 KiB for the BMP, 136 KiB when astral code points are in it.
  let astral = false;
  for (let i = 0; i < cn; i++) if (isHigh(unit(cp, i))) { astral = true; break; }
  const bits: usize = astral ? 0x110000 >> 3 : 0x10000 >> 3;
  const set = alloc(bits);
  memory.fill(set, 0, bits);
  for (let i = 0; i < cn; ) {
    const c = cpAt(cp, cn, i);
    i += cpUnits(c);
    store<u8>(set + (<usize>c >> 3), <u8>(<i32>load<u8>(set + (<usize>c >> 3)) | (1 << (c & 7))));
  }
  const limit = astral ? 0x110000 : 0x10000;
  let i = 0, j = n;
  while (i < j) {
    const c = cpAt(p, n, i);
    if (c >= limit || !(load<u8>(set + (<usize>c >> 3)) & (1 << (c & 7)))) break;
    i += cpUnits(c);
  }
  while (j > i) {
    let s = j - 1;
    if (isLow(unit(p, s)) && s > i && isHigh(unit(p, s - 1))) s--;
    const c = cpAt(p, n, s);
    if (c >= limit || !(load<u8>(set + (<usize>c >> 3)) & (1 << (c & 7)))) break;
    j = s;
  }
  setPtr(out, Tag.STR, p + (<usize>i << 1), j - i);
}

function affix(p: usize, n: i32, q: usize, m: i32, start: bool): bool {
  if (m > n) return false;
  return strEq(start ? p : p + (<usize>(n - m) << 1), m, q, m);
}

function affixTest(s: usize, arg: usize, start: bool): bool {
  const p = vptr(s), n = vlen(s);
  const t = vtag(arg);
  if (t == Tag.TUPLE) {
    const k = vlen(arg), items = vptr(arg);
    for (let i = 0; i < k; i++) {
      const it = items + (<usize>i << 4);
      strArg(it);
      if (affix(p, n, vptr(it), vlen(it), start)) return true;
    }
    return false;
  }
  strArg(arg);
  return affix(p, n, vptr(arg), vlen(arg), start);
}

function replace(s: usize, old: usize, rep: usize, countArg: f64, out: usize): void {
  const p = vptr(s), n = vlen(s);
  const op = vptr(old), on = vlen(old);
  const rp2 = vptr(rep), rn = vlen(rep);
  const count: f64 = countArg < 0 ? Infinity : countArg;
  if (on == 0) {
    const cps = cpCount(p, n);
    const slots: f64 = Math.min(count, <f64>cps + 1);
    checkSize(<f64>n + slots * <f64>rn);
    const total = n + <i32>slots * rn;
    const q = alloc(<usize>total << 1);
    let o: usize = q;
    let k = 0;
    for (let i = 0; ; ) {
      if (<f64>k < slots) { memory.copy(o, rp2, <usize>rn << 1); o += <usize>rn << 1; }
      k++;
      if (i >= n) break;
      const w = cpWidth(p, n, i);
      memory.copy(o, p + (<usize>i << 1), <usize>w << 1);
      o += <usize>w << 1;
      i += w;
    }
    setPtr(out, Tag.STR, q, total);
    return;
  }
  findPrepare(op, on);
  let hits: f64 = 0;
  let at = 0;
  while (hits < count) {
    const f = findNext(p, n, at);
    if (f < 0) break;
    hits++;
    at = f + on;
  }
  if (hits == 0) { copySlot(out, s); return; }
  const totalF = <f64>n + hits * (<f64>rn - <f64>on);
  checkSize(totalF);
  const total = <i32>totalF;
  const q = alloc(<usize>total << 1);
  let o: usize = q;
  let from = 0;
  for (let h: f64 = 0; h < hits; h++) {
    const f = findNext(p, n, from);
    memory.copy(o, p + (<usize>from << 1), <usize>(f - from) << 1);
    o += <usize>(f - from) << 1;
    memory.copy(o, rp2, <usize>rn << 1);
    o += <usize>rn << 1;
    from = f + on;
  }
  memory.copy(o, p + (<usize>from << 1), <usize>(n - from) << 1);
  setPtr(out, Tag.STR, q, total);
}

function splitWhitespace(p: usize, n: i32, maxsplit: f64, out: usize): void {
  // Pass 1 counts the pieces, pass 2 fills them (substrings share the source units).
  let items: usize = 0;
  let count = 0;
  for (let pass = 0; pass < 2; pass++) {
    if (pass == 1) { checkSize(<f64>count); items = alloc(<usize>max(count, 1) << 4); }
    let k = 0;
    let i = 0;
    while (true) {
      while (i < n && isSpace(unit(p, i))) i++;
      if (i >= n) break;
      if (maxsplit >= 0 && <f64>k >= maxsplit) {
        let j = n;
        while (j > i && isSpace(unit(p, j - 1))) j--;
        if (pass == 1) setPtr(items + (<usize>k << 4), Tag.STR, p + (<usize>i << 1), j - i);
        k++;
        break;
      }
      let j = i;
      while (j < n && !isSpace(unit(p, j))) j++;
      if (pass == 1) setPtr(items + (<usize>k << 4), Tag.STR, p + (<usize>i << 1), j - i);
      k++;
      i = j;
    }
    count = k;
  }
  setPtr(out, Tag.LIST, items, count);
}

function splitSep(p: usize, n: i32, sp: usize, sn: i32, maxsplit: f64, out: usize): void {
  findPrepare(sp, sn);
  let items: usize = 0;
  let count = 0;
  for (let pass = 0; pass < 2; pass++) {
    if (pass == 1) { checkSize(<f64>count); items = alloc(<usize>count << 4); }
    let k = 0;
    let from = 0;
    while (maxsplit < 0 || <f64>k < maxsplit) {
      const at = findNext(p, n, from);
      if (at < 0) break;
      if (pass == 1) setPtr(items + (<usize>k << 4), Tag.STR, p + (<usize>from << 1), at - from);
      k++;
      from = at + sn;
    }
    if (pass == 1) setPtr(items + (<usize>k << 4), Tag.STR, p + (<usize>from << 1), n - from);
    k++;
    count = k;
  }
  setPtr(out, Tag.LIST, items, count);
}

/** dict.get(key[, default]): like `key in d` for which keys are allowed, the default (None) when missing. */
function dictGet(d: usize, argc: i32, out: usize): void {
  const td = vtag(d);
  if (td != Tag.DICT) fail(ErrorKind.AttributeError, Reason.NO_ATTRIBUTE, td, -1);
  argCount(argc, 1, 2);
  spend(1);
  const key = d + 16;
  const tk = vtag(key);
  if (tk == Tag.STR) {
    const w = dictFind(d, vptr(key), vlen(key));
    if (w != 0) { copySlot(out, w); return; }
  } else if (tk == Tag.LIST || tk == Tag.DICT) {
    fail(ErrorKind.TypeError, Reason.UNHASHABLE, tk, -1);
  }
  if (argc == 2) copySlot(out, d + 32);
  else setNone(out);
}

function callMethod(m: i32, recv: usize, argc: i32, out: usize): void {
  if (m == Method.get) { dictGet(recv, argc, out); return; }
  const tr = vtag(recv);
  if (tr != Tag.STR) fail(ErrorKind.AttributeError, Reason.NO_ATTRIBUTE, tr, -1);
  const p = vptr(recv), n = vlen(recv);
  spend(<f64>n);
  const a0 = recv + 16, a1 = recv + 32, a2 = recv + 48;
  switch (m) {
    case Method.lower: case Method.upper: {
      argCount(argc, 0, 0);
      const q = caseMap(p, n, m == Method.upper);
      setPtr(out, Tag.STR, q, caseLen);
      return;
    }
    case Method.strip: {
      argCount(argc, 0, 1);
      if (argc == 0 || vtag(a0) == Tag.NONE) { stripSpace(p, n, out); return; }
      strArg(a0);
      stripChars(p, n, vptr(a0), vlen(a0), out);
      return;
    }
    case Method.startswith: case Method.endswith: {
      argCount(argc, 1, 1);
      setBool(out, affixTest(recv, a0, m == Method.startswith));
      return;
    }
    case Method.replace: {
      argCount(argc, 2, 3);
      strArg(a0);
      strArg(a1);
      const c = argc == 3 ? intArg(a2) : -1;
      replace(recv, a0, a1, c, out);
      return;
    }
    case Method.split: {
      argCount(argc, 0, 2);
      const ms = argc == 2 ? intArg(a1) : -1;
      if (argc == 0 || vtag(a0) == Tag.NONE) { splitWhitespace(p, n, ms, out); return; }
      strArg(a0);
      if (vlen(a0) == 0) fail(ErrorKind.ValueError, Reason.EMPTY_SEPARATOR, -1, -1);
      splitSep(p, n, vptr(a0), vlen(a0), ms, out);
      return;
    }
    default: unreachable();
  }
}

// ---------------------------------------------------------------- the interpreter

export function loadScalarProgram(codePtr: usize, len: i32, constTape: usize, nc: i32, strTape: usize, ns: i32, names: i32, stack: i32): void {
  code = codePtr;
  codeLen = len;
  nConsts = nc;
  consts = decodeTape(constTape, nc);
  nStrs = ns;
  strs = decodeTape(strTape, ns);
  nNames = names;
  maxStack = stack;
}

/** Runs the loaded program on the context tape at ctxTape; the result goes to RESULT. */
export function run(ctxTape: usize): void {
  work = Limits.MAX_WORK;
  ctx = decodeTape(ctxTape, nNames);
  const stack = alloc(<usize>(maxStack + 2) << 4);
  const limit = stack + (<usize>(maxStack + 1) << 4);
  let sp = stack; // next free slot
  let pc = 0;
  const c = code;
  while (true) {
    const op = load<i32>(c + (<usize>pc << 2));
    setPc(pc);
    switch (op) {
      case Op.RETURN: {
        emitResult(sp - SLOT);
        return;
      }
      case Op.CONST: {
        copySlot(sp, consts + (<usize>load<i32>(c + (<usize>pc << 2), 4) << 4));
        sp += SLOT;
        pc += 2;
        break;
      }
      case Op.NAME: {
        const v = ctx + (<usize>load<i32>(c + (<usize>pc << 2), 4) << 4);
        if (vtag(v) == Tag.MISSING) fail(ErrorKind.NameError, Reason.NAME_MISSING, -1, -1);
        copySlot(sp, v);
        sp += SLOT;
        pc += 2;
        break;
      }
      case Op.ATTR: {
        const obj = sp - SLOT;
        const s = strs + (<usize>load<i32>(c + (<usize>pc << 2), 4) << 4);
        const t = vtag(obj);
        if (t == Tag.DICT) {
          const w = dictFind(obj, vptr(s), vlen(s));
          if (w != 0) { copySlot(obj, w); pc += 2; break; }
        }
        fail(ErrorKind.AttributeError, Reason.NO_ATTRIBUTE, t, -1);
        break;
      }
      case Op.INDEX: {
        getItem(sp - 2 * SLOT, sp - SLOT, sp - 2 * SLOT);
        sp -= SLOT;
        pc += 1;
        break;
      }
      case Op.SLICE: {
        const flags = load<i32>(c + (<usize>pc << 2), 4);
        const k = popcnt<i32>(flags & SLICE_FLAG_MASK);
        const obj = sp - <usize>(k + 1) * SLOT;
        let q = obj + SLOT;
        let lo: usize = 0, hi: usize = 0, st: usize = 0;
        if (flags & SliceFlag.LOWER) { lo = q; q += SLOT; }
        if (flags & SliceFlag.UPPER) { hi = q; q += SLOT; }
        if (flags & SliceFlag.STEP) { st = q; }
        getSlice(obj, lo, hi, st, obj);
        sp = obj + SLOT;
        pc += 2;
        break;
      }
      case Op.LIST: case Op.TUPLE: {
        const n = load<i32>(c + (<usize>pc << 2), 4);
        const first = sp - <usize>n * SLOT;
        const items = alloc(<usize>max(n, 1) << 4);
        memory.copy(items, first, <usize>n << 4);
        setPtr(first, op == Op.LIST ? Tag.LIST : Tag.TUPLE, items, n);
        sp = first + SLOT;
        pc += 2;
        break;
      }
      case Op.NEG: {
        const a = sp - SLOT;
        const t = vtag(a);
        if (!isNum(t)) fail(ErrorKind.TypeError, Reason.BAD_OPERANDS, t, -1);
        if (t == Tag.FLOAT) setFloat(a, -vnum(a)); else setInt(a, -vnum(a));
        pc += 1;
        break;
      }
      case Op.POS: {
        const a = sp - SLOT;
        const t = vtag(a);
        if (!isNum(t)) fail(ErrorKind.TypeError, Reason.BAD_OPERANDS, t, -1);
        if (t != Tag.FLOAT) setIntRaw(a, vnum(a));
        pc += 1;
        break;
      }
      case Op.NOT: {
        const a = sp - SLOT;
        setBool(a, !truthy(a));
        pc += 1;
        break;
      }
      case Op.BINOP: {
        const a = sp - 2 * SLOT;
        binop(load<i32>(c + (<usize>pc << 2), 4), a, sp - SLOT, a);
        sp -= SLOT;
        pc += 2;
        break;
      }
      case Op.COMPARE: {
        const a = sp - 2 * SLOT;
        setBool(a, compareOp(load<i32>(c + (<usize>pc << 2), 4), a, sp - SLOT));
        sp -= SLOT;
        pc += 2;
        break;
      }
      case Op.JUMP_IF_FALSE_OR_POP: {
        if (!truthy(sp - SLOT)) pc = load<i32>(c + (<usize>pc << 2), 4);
        else { sp -= SLOT; pc += 2; }
        break;
      }
      case Op.JUMP_IF_TRUE_OR_POP: {
        if (truthy(sp - SLOT)) pc = load<i32>(c + (<usize>pc << 2), 4);
        else { sp -= SLOT; pc += 2; }
        break;
      }
      case Op.POP_JUMP_IF_FALSE: {
        sp -= SLOT;
        if (!truthy(sp)) pc = load<i32>(c + (<usize>pc << 2), 4);
        else pc += 2;
        break;
      }
      case Op.JUMP: {
        pc = load<i32>(c + (<usize>pc << 2), 4);
        break;
      }
      case Op.COMPARE_CHAIN: {
        const a = sp - 2 * SLOT, b = sp - SLOT;
        const ok = compareOp(load<i32>(c + (<usize>pc << 2), 4), a, b);
        sp -= SLOT;
        if (!ok) { setBool(a, false); pc = load<i32>(c + (<usize>pc << 2), 8); }
        else { copySlot(a, b); pc += 3; }
        break;
      }
      case Op.CALL: {
        const fn = load<i32>(c + (<usize>pc << 2), 4);
        const argc = load<i32>(c + (<usize>pc << 2), 8);
        const args = sp - <usize>argc * SLOT;
        // The result goes in the first argument's slot; with no arguments, it is pushed.
        callFunction(fn, args, argc, TMP + 32);
        copySlot(args, TMP + 32);
        sp = args + SLOT;
        pc += 3;
        break;
      }
      case Op.METHOD: {
        const m = load<i32>(c + (<usize>pc << 2), 4);
        const argc = load<i32>(c + (<usize>pc << 2), 8);
        const recv = sp - <usize>(argc + 1) * SLOT;
        callMethod(m, recv, argc, TMP + 32);
        copySlot(recv, TMP + 32);
        sp = recv + SLOT;
        pc += 3;
        break;
      }
      default:
        unreachable();
    }
    if (sp > limit) unreachable();
  }
}
