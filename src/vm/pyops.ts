/**
 * Python semantics of every operation, on the js evaluator's value representation (values.ts).
 * This is the reference implementation: assembly/ and native/ mirror it, and
 * docs/expression-semantics.md states it in words. Operations throw `EvalFault` (cheap: no stack
 * trace); the evaluator turns a fault into an ExpressionError with the position of its node.
 */
import { BinOp, CmpOp, ErrorKind, Reason, Tag, Limits, Fn, Method } from './contract.js';
import { MISSING, PyFloat, PyTuple, dictGet, dictKeys, isPlainObject, makeFloat, tagOf } from './values.js';
import { cpow } from './pow.js';
import { CASE_EXCEPTIONS } from './case-exceptions.js';

/** An evaluation error before it has a position. Not an Error subclass: throwing it is cheap. */
export class EvalFault {
  constructor(
    readonly kind: number,
    readonly reason: number,
    readonly tagA = -1,
    readonly tagB = -1,
    /** A short text for the message (a key, an operator), when there is one. */
    readonly detail = '',
  ) {}
}

const MAX_INT = Limits.MAX_INT;
const MAX_SIZE = Limits.MAX_VALUE_SIZE;
const MAX_DEPTH = Limits.MAX_DEPTH;

/** Element steps left in the current evaluation (see Limits.MAX_WORK). */
let work: number = Limits.MAX_WORK;

/** Called at the start of every evaluation. */
export function resetWork(): void {
  work = Limits.MAX_WORK;
}

/** Accounts for n element steps; a LimitError when the evaluation has done too many. */
function spend(n: number): void {
  work -= n;
  if (work < 0) throw new EvalFault(ErrorKind.LimitError, Reason.WORK);
}

function tooDeep(depth: number): void {
  if (depth > MAX_DEPTH) throw new EvalFault(ErrorKind.LimitError, Reason.DEPTH);
}

export function fault(kind: number, reason: number, a?: unknown, b?: unknown, detail = ''): EvalFault {
  return new EvalFault(kind, reason, arguments.length > 2 ? tagOf(a) : -1, arguments.length > 3 ? tagOf(b) : -1, detail);
}

function typeFault(reason: number, a?: unknown, b?: unknown): EvalFault {
  return arguments.length > 2 ? fault(ErrorKind.TypeError, reason, a, b) : fault(ErrorKind.TypeError, reason, a);
}

// ---------------------------------------------------------------- numbers

/** Is v a number of the language (int, float or bool)? */
export function isNumeric(v: unknown): boolean {
  return typeof v === 'number' || typeof v === 'boolean' || v instanceof PyFloat;
}

/** Numeric value of a number (bool → 0/1, PyFloat unboxed). Caller checked isNumeric. */
function num(v: unknown): number {
  return typeof v === 'number' ? v : typeof v === 'boolean' ? (v ? 1 : 0) : (v as PyFloat).value;
}

/** Is this numeric value an int (bool counts)? */
function isInt(v: unknown): boolean {
  return typeof v === 'boolean' || (typeof v === 'number' && Number.isSafeInteger(v));
}

function checkInt(r: number): number {
  if (r > MAX_INT || r < -MAX_INT || Number.isNaN(r)) throw fault(ErrorKind.OverflowError, Reason.INT_RANGE);
  return r + 0; // never -0 for ints
}


/** Python's float floor division and modulo (floatobject.c float_divmod). b != 0. */
export function floatDivmod(a: number, b: number): [number, number] {
  let mod = a % b; // fmod
  let div = (a - mod) / b;
  if (mod !== 0) {
    if (b < 0 !== mod < 0) {
      mod += b;
      div -= 1.0;
    }
  } else {
    mod = b < 0 ? -0 : 0;
  }
  let floordiv: number;
  if (div !== 0) {
    floordiv = Math.floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = a / b < 0 || Object.is(a / b, -0) ? -0 : 0;
  }
  return [floordiv, mod];
}

/** Exact floor division of safe ints. b != 0. */
export function intFloorDiv(a: number, b: number): number {
  let q = Math.floor(a / b);
  const r = a - q * b;
  if (r !== 0 && r < 0 !== b < 0) q -= 1;
  else if (Math.abs(r) >= Math.abs(b) && r < 0 === b < 0 && r !== 0) q += 1;
  return q + 0;
}

export function intMod(a: number, b: number): number {
  let r = a % b;
  if (r !== 0 && r < 0 !== b < 0) r += b;
  return r + 0;
}

/** Exact int power by squaring; b >= 0. */
export function intPow(a: number, b: number): number {
  let result = 1;
  let base = a;
  let e = b;
  while (e > 0) {
    if (e % 2 === 1) result = checkInt(result * base);
    e = Math.floor(e / 2);
    if (e > 0) base = checkInt(base * base);
  }
  return result;
}

function floatPow(a: number, b: number): number | PyFloat {
  if (a === 0 && b < 0 && b !== -Infinity) throw new EvalFault(ErrorKind.ZeroDivisionError, Reason.POW_ZERO_NEG, Tag.FLOAT, Tag.FLOAT);
  if (a < 0 && Number.isFinite(a) && Number.isFinite(b) && !Number.isInteger(b)) {
    throw new EvalFault(ErrorKind.ValueError, Reason.COMPLEX_RESULT);
  }
  const r = cpow(a, b);
  if (!Number.isFinite(r) && Number.isFinite(a) && Number.isFinite(b)) {
    throw new EvalFault(ErrorKind.OverflowError, Reason.FLOAT_RANGE);
  }
  return makeFloat(r);
}

/** Arithmetic on two numbers (both isNumeric). */
export function numericBinop(op: number, a: unknown, b: unknown): unknown {
  const x = num(a);
  const y = num(b);
  const ints = isInt(a) && isInt(b);
  switch (op) {
    case BinOp.ADD: return ints ? checkInt(x + y) : makeFloat(x + y);
    case BinOp.SUB: return ints ? checkInt(x - y) : makeFloat(x - y);
    case BinOp.MUL: return ints ? checkInt(x * y) : makeFloat(x * y);
    case BinOp.TRUEDIV:
      if (y === 0) throw fault(ErrorKind.ZeroDivisionError, Reason.DIV_ZERO, a, b);
      return makeFloat(x / y);
    case BinOp.FLOORDIV:
      if (y === 0) throw fault(ErrorKind.ZeroDivisionError, Reason.DIV_ZERO, a, b);
      return ints ? checkInt(intFloorDiv(x, y)) : makeFloat(floatDivmod(x, y)[0]);
    case BinOp.MOD:
      if (y === 0) throw fault(ErrorKind.ZeroDivisionError, Reason.DIV_ZERO, a, b);
      return ints ? checkInt(intMod(x, y)) : makeFloat(floatDivmod(x, y)[1]);
    case BinOp.POW:
      if (ints) {
        if (y >= 0) return intPow(x, y);
        return floatPow(x, y);
      }
      return floatPow(x, y);
    default:
      throw new Error(`unknown binop ${op}`);
  }
}

function sizeCheck(n: number): void {
  if (n > MAX_SIZE) throw fault(ErrorKind.LimitError, Reason.VALUE_TOO_LARGE);
}

function repeatCount(n: unknown): number {
  return num(n) <= 0 ? 0 : num(n);
}

/** Generic binary operator. */
export function binop(op: number, a: unknown, b: unknown): unknown {
  if (isNumeric(a) && isNumeric(b)) return numericBinop(op, a, b);
  if (op === BinOp.ADD) {
    if (typeof a === 'string' && typeof b === 'string') {
      sizeCheck(a.length + b.length);
      return a + b;
    }
    if (Array.isArray(a) && Array.isArray(b)) {
      sizeCheck(a.length + b.length);
      spend(a.length + b.length);
      return a.concat(b);
    }
    if (a instanceof PyTuple && b instanceof PyTuple) {
      sizeCheck(a.items.length + b.items.length);
      spend(a.items.length + b.items.length);
      return new PyTuple(a.items.concat(b.items));
    }
  } else if (op === BinOp.MUL) {
    let seq = a;
    let n = b;
    if (isInt(a) && !isInt(b)) {
      seq = b;
      n = a;
    }
    if (isInt(n)) {
      const count = repeatCount(n);
      if (typeof seq === 'string') {
        sizeCheck(seq.length * count);
        return count === 0 ? '' : seq.repeat(count);
      }
      if (Array.isArray(seq) || seq instanceof PyTuple) {
        const items = Array.isArray(seq) ? seq : seq.items;
        if (items.length === 0) return Array.isArray(seq) ? [] : new PyTuple([]);
        sizeCheck(items.length * count);
        spend(items.length * count);
        const out: unknown[] = [];
        for (let i = 0; i < count; i++) for (let j = 0; j < items.length; j++) out.push(items[j]);
        return Array.isArray(seq) ? out : new PyTuple(out);
      }
    }
  }
  throw typeFault(Reason.BAD_OPERANDS, a, b);
}

export function negate(a: unknown): unknown {
  if (!isNumeric(a)) throw typeFault(Reason.BAD_OPERANDS, a);
  return isInt(a) ? checkInt(-num(a)) : makeFloat(-num(a));
}

export function plus(a: unknown): unknown {
  if (!isNumeric(a)) throw typeFault(Reason.BAD_OPERANDS, a);
  return typeof a === 'boolean' ? (a ? 1 : 0) : a;
}

// ---------------------------------------------------------------- truthiness, equality, order

export function truthy(v: unknown): boolean {
  switch (typeof v) {
    case 'boolean': return v;
    case 'number': return v !== 0;
    case 'string': return v.length > 0;
    case 'undefined': return false;
    case 'object':
      if (v === null) return false;
      if (Array.isArray(v)) return v.length > 0;
      if (v instanceof PyFloat) return v.value !== 0;
      if (v instanceof PyTuple) return v.items.length > 0;
      if (isPlainObject(v)) return dictKeys(v).length > 0;
      return true;
    default:
      return true;
  }
}

function items(v: unknown): readonly unknown[] | undefined {
  return Array.isArray(v) ? v : v instanceof PyTuple ? v.items : undefined;
}

export function equals(a: unknown, b: unknown, depth = 0): boolean {
  if (a === b) return typeof a !== 'number' || !Number.isNaN(a);
  if (isNumeric(a)) return isNumeric(b) && num(a) === num(b);
  if (typeof a === 'string' || typeof b === 'string') return false;
  if ((a === null || a === undefined) && (b === null || b === undefined)) return true;
  if (Array.isArray(a) || a instanceof PyTuple) {
    if (Array.isArray(a) !== Array.isArray(b) || (a instanceof PyTuple) !== (b instanceof PyTuple)) return false;
    const x = items(a)!;
    const y = items(b)!;
    if (x.length !== y.length) return false;
    tooDeep(depth);
    spend(x.length);
    for (let i = 0; i < x.length; i++) if (!equals(x[i], y[i], depth + 1)) return false;
    return true;
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = dictKeys(a);
    if (ka.length !== dictKeys(b).length) return false;
    tooDeep(depth);
    spend(ka.length);
    for (const k of ka) {
      const bv = dictGet(b, k);
      if (bv === MISSING || !equals(dictGet(a, k), bv, depth + 1)) return false;
    }
    return true;
  }
  return false;
}

/** The code point at UTF-16 index i (a whole surrogate pair when i is either half of one). */
function codePointAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
    const d = s.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return (c - 0xd800) * 0x400 + (d - 0xdc00) + 0x10000;
  } else if (c >= 0xdc00 && c <= 0xdfff && i > 0) {
    const h = s.charCodeAt(i - 1);
    if (h >= 0xd800 && h <= 0xdbff) return (h - 0xd800) * 0x400 + (c - 0xdc00) + 0x10000;
  }
  return c;
}

/** Code point order of two strings (lone surrogates are code points of their own, as in Python). */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  spend(n >>> 4); // character comparisons count against the work budget (16 per step)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return x < 0xd800 && y < 0xd800 ? x - y : codePointAt(a, i) - codePointAt(b, i);
  }
  return a.length - b.length;
}

function orderResult(op: number, c: number): boolean {
  switch (op) {
    case CmpOp.LT: return c < 0;
    case CmpOp.LE: return c <= 0;
    case CmpOp.GT: return c > 0;
    default: return c >= 0;
  }
}

/** `<`, `<=`, `>`, `>=` with Python rules. */
export function order(op: number, a: unknown, b: unknown, depth = 0): boolean {
  if (isNumeric(a) && isNumeric(b)) {
    const x = num(a);
    const y = num(b);
    switch (op) {
      case CmpOp.LT: return x < y;
      case CmpOp.LE: return x <= y;
      case CmpOp.GT: return x > y;
      default: return x >= y;
    }
  }
  if (typeof a === 'string' && typeof b === 'string') return orderResult(op, compareStrings(a, b));
  if ((Array.isArray(a) && Array.isArray(b)) || (a instanceof PyTuple && b instanceof PyTuple)) {
    const x = items(a)!;
    const y = items(b)!;
    const n = Math.min(x.length, y.length);
    tooDeep(depth);
    for (let i = 0; i < n; i++) {
      spend(1);
      if (!equals(x[i], y[i], depth + 1)) return order(op, x[i], y[i], depth + 1);
    }
    return orderResult(op, x.length - y.length);
  }
  throw typeFault(Reason.BAD_OPERANDS, a, b);
}

export function contains(container: unknown, x: unknown): boolean {
  if (typeof container === 'string') {
    if (typeof x !== 'string') throw typeFault(Reason.BAD_OPERANDS, x, container);
    spend(container.length);
    return container.includes(x);
  }
  const list = items(container);
  if (list) {
    for (let i = 0; i < list.length; i++) {
      spend(1);
      if (equals(list[i], x)) return true;
    }
    return false;
  }
  if (isPlainObject(container)) {
    if (typeof x === 'string') return dictGet(container, x) !== MISSING;
    if (Array.isArray(x) || isPlainObject(x)) throw typeFault(Reason.UNHASHABLE, x);
    return false;
  }
  throw typeFault(Reason.NOT_ITERABLE, x, container);
}

/** Any comparison operator. */
export function compare(op: number, a: unknown, b: unknown): boolean {
  switch (op) {
    case CmpOp.EQ: return equals(a, b);
    case CmpOp.NE: return !equals(a, b);
    case CmpOp.IN: return contains(b, a);
    case CmpOp.NOT_IN: return !contains(b, a);
    case CmpOp.IS: return isSame(a, b);
    case CmpOp.IS_NOT: return !isSame(a, b);
    default: return order(op, a, b);
  }
}

function isSame(a: unknown, b: unknown): boolean {
  if (a === undefined) a = null;
  if (b === undefined) b = null;
  return a === b;
}

// ---------------------------------------------------------------- strings as code points

const SURROGATE = /[\uD800-\uDFFF]/;

/** The code points of a string (one string each); only called when the string has surrogates. */
function codePoints(s: string): string[] {
  return Array.from(s);
}

export function strLength(s: string): number {
  spend(s.length);
  if (!SURROGATE.test(s)) return s.length;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

// ---------------------------------------------------------------- subscription

function indexValue(i: unknown): number | undefined {
  if (typeof i === 'boolean') return i ? 1 : 0;
  if (typeof i === 'number' && Number.isSafeInteger(i)) return i;
  return undefined;
}

export function getItem(obj: unknown, key: unknown): unknown {
  if (typeof obj === 'string' || Array.isArray(obj) || obj instanceof PyTuple) {
    const i = indexValue(key);
    if (i === undefined) throw typeFault(Reason.BAD_INDEX_TYPE, obj, key);
    if (typeof obj === 'string') {
      const chars = SURROGATE.test(obj) ? codePoints(obj) : undefined;
      const n = chars ? chars.length : obj.length;
      const j = i < 0 ? i + n : i;
      if (j < 0 || j >= n) throw fault(ErrorKind.IndexError, Reason.INDEX_RANGE, obj);
      return chars ? chars[j] : obj[j];
    }
    const list = items(obj)!;
    const j = i < 0 ? i + list.length : i;
    if (j < 0 || j >= list.length) throw fault(ErrorKind.IndexError, Reason.INDEX_RANGE, obj);
    return list[j];
  }
  if (isPlainObject(obj)) {
    if (typeof key === 'string') {
      const value = dictGet(obj, key);
      if (value !== MISSING) return value;
      throw new EvalFault(ErrorKind.KeyError, Reason.KEY_MISSING, Tag.DICT, Tag.STR, key);
    }
    if (Array.isArray(key) || isPlainObject(key)) throw typeFault(Reason.UNHASHABLE, key);
    throw new EvalFault(ErrorKind.KeyError, Reason.KEY_MISSING, Tag.DICT, tagOf(key));
  }
  throw typeFault(Reason.NOT_SUBSCRIPTABLE, obj);
}

function sliceBound(v: unknown, obj: unknown): number | undefined {
  if (v === null || v === undefined) return undefined;
  const i = indexValue(v);
  if (i === undefined) throw typeFault(Reason.BAD_INDEX_TYPE, obj, v);
  return i;
}

/** Python's slice.indices(): the start, stop, step and length of a slice over n items. */
export function sliceIndices(n: number, lo: number | undefined, hi: number | undefined, st: number | undefined): [number, number, number, number] {
  const step = st ?? 1;
  if (step === 0) throw fault(ErrorKind.ValueError, Reason.SLICE_STEP_ZERO);
  let start: number;
  let stop: number;
  if (step > 0) {
    start = lo === undefined ? 0 : lo < 0 ? Math.max(0, lo + n) : Math.min(lo, n);
    stop = hi === undefined ? n : hi < 0 ? Math.max(0, hi + n) : Math.min(hi, n);
  } else {
    start = lo === undefined ? n - 1 : lo < 0 ? Math.max(-1, lo + n) : Math.min(lo, n - 1);
    stop = hi === undefined ? -1 : hi < 0 ? Math.max(-1, hi + n) : Math.min(hi, n - 1);
  }
  let length = 0;
  if (step > 0 && start < stop) length = Math.floor((stop - start - 1) / step) + 1;
  else if (step < 0 && stop < start) length = Math.floor((start - stop - 1) / -step) + 1;
  return [start, stop, step, length];
}

export function getSlice(obj: unknown, lo: unknown, hi: unknown, st: unknown): unknown {
  spend(typeof obj === 'string' ? obj.length : (items(obj)?.length ?? 0));
  const isStr = typeof obj === 'string';
  if (!isStr && !Array.isArray(obj) && !(obj instanceof PyTuple)) throw typeFault(Reason.NOT_SUBSCRIPTABLE, obj);
  const a = sliceBound(lo, obj);
  const b = sliceBound(hi, obj);
  const c = sliceBound(st, obj);
  if (isStr) {
    const s = obj as string;
    if (!SURROGATE.test(s) && (c === undefined || c === 1)) {
      const [start, , , length] = sliceIndices(s.length, a, b, c);
      return s.substr(start, length);
    }
    const chars = SURROGATE.test(s) ? codePoints(s) : s.split('');
    const [start, , step, length] = sliceIndices(chars.length, a, b, c);
    let out = '';
    for (let k = 0, i = start; k < length; k++, i += step) out += chars[i];
    return out;
  }
  const list = items(obj)!;
  const [start, , step, length] = sliceIndices(list.length, a, b, c);
  const out = new Array<unknown>(length);
  for (let k = 0, i = start; k < length; k++, i += step) out[k] = list[i];
  return Array.isArray(obj) ? out : new PyTuple(out);
}

/** `obj.name` (a dict key). */
export function getAttr(obj: unknown, name: string): unknown {
  if (isPlainObject(obj)) {
    const value = dictGet(obj, name);
    if (value !== MISSING) return value;
  }
  throw new EvalFault(ErrorKind.AttributeError, Reason.NO_ATTRIBUTE, tagOf(obj), -1, name);
}

// ---------------------------------------------------------------- iteration (functions)

function iterate(v: unknown): readonly unknown[] {
  const list = items(v);
  if (list) {
    spend(list.length);
    return list;
  }
  if (typeof v === 'string') {
    spend(v.length);
    return SURROGATE.test(v) ? codePoints(v) : v.split('');
  }
  if (isPlainObject(v)) return dictKeys(v);
  throw typeFault(Reason.NOT_ITERABLE, v);
}

function argCount(args: readonly unknown[], min: number, max: number): void {
  if (args.length < min || args.length > max) throw fault(ErrorKind.TypeError, Reason.ARG_COUNT);
}

// ---------------------------------------------------------------- repr / str

const PY_SPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680,
  0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a,
  0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

export function floatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mant, expText] = x.toExponential().split('e') as [string, string];
  const negative = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  const exp = Number(expText);
  let body: string;
  if (exp >= -4 && exp < 16) {
    if (exp < 0) body = `0.${'0'.repeat(-exp - 1)}${digits}`;
    else if (digits.length <= exp + 1) body = `${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
    else body = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  } else {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp);
    body = `${m}e${exp < 0 ? '-' : '+'}${e < 10 ? '0' : ''}${e}`;
  }
  return negative ? `-${body}` : body;
}

function strRepr(s: string): string {
  spend(s.length);
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    const c = s.charCodeAt(i);
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c === 0xad) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + quote;
}

function repr(v: unknown, depth: number): string {
  if (typeof v === 'string') return strRepr(v);
  return toStr(v, depth);
}

function joined(parts: readonly unknown[], depth: number): string {
  let out = '';
  spend(parts.length);
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) out += ', ';
    out += repr(parts[i], depth + 1);
    sizeCheck(out.length);
  }
  return out;
}

/** Python `str(v)`. */
export function toStr(v: unknown, depth = 0): string {
  tooDeep(depth);
  switch (typeof v) {
    case 'string': return v;
    case 'boolean': return v ? 'True' : 'False';
    case 'number': return Number.isSafeInteger(v) ? String(v) : floatRepr(v);
    case 'undefined': return 'None';
    default:
  }
  if (v === null) return 'None';
  if (v instanceof PyFloat) return floatRepr(v.value);
  if (Array.isArray(v)) return `[${joined(v, depth)}]`;
  if (v instanceof PyTuple) return v.items.length === 1 ? `(${repr(v.items[0], depth + 1)},)` : `(${joined(v.items, depth)})`;
  if (isPlainObject(v)) {
    let out = '{';
    let first = true;
    const keys = dictKeys(v);
    spend(keys.length);
    for (const k of keys) {
      out += `${first ? '' : ', '}${strRepr(k)}: ${repr(dictGet(v, k), depth + 1)}`;
      first = false;
      sizeCheck(out.length);
    }
    return `${out}}`;
  }
  throw typeFault(Reason.BAD_ARGUMENT, v);
}

// ---------------------------------------------------------------- int() and float() of strings

const INT_LITERAL = /^[+-]?\d(?:_?\d)*$/;
// Unambiguous patterns (each digit can be matched one way only), so a failing match is linear:
// an ambiguous `(\d+(_\d+)*)?\.?\d+` backtracks quadratically on '1' * 30000 + 'x'.
const DIGITS = '\\d(?:_?\\d)*';
const FLOAT_LITERAL = new RegExp(
  `^[+-]?(?:(?:${DIGITS}(?:\\.(?:${DIGITS})?)?|\\.${DIGITS})(?:[eE][+-]?${DIGITS})?|inf|infinity|nan)$`, 'i');

function stripSpace(s: string): string {
  let i = 0;
  let j = s.length;
  while (i < j && PY_SPACE.has(s.charCodeAt(i))) i++;
  while (j > i && PY_SPACE.has(s.charCodeAt(j - 1))) j--;
  return s.slice(i, j);
}

function parseIntText(s: string): number {
  spend(s.length);
  const t = stripSpace(s);
  if (!INT_LITERAL.test(t)) throw fault(ErrorKind.ValueError, Reason.INVALID_INT_LITERAL);
  const digits = t.replace(/_/g, '');
  const body = digits.replace(/^[+-]/, '').replace(/^0+(?=\d)/, '');
  if (body.length > 16) throw fault(ErrorKind.OverflowError, Reason.INT_RANGE);
  return checkInt(Number(digits));
}

function parseFloatText(s: string): number | PyFloat {
  spend(s.length);
  const t = stripSpace(s);
  if (!FLOAT_LITERAL.test(t)) throw fault(ErrorKind.ValueError, Reason.INVALID_FLOAT_LITERAL);
  const lower = t.toLowerCase().replace(/_/g, '');
  const sign = lower.startsWith('-') ? -1 : 1;
  const bare = lower.replace(/^[+-]/, '');
  if (bare === 'inf' || bare === 'infinity') return sign * Infinity;
  if (bare === 'nan') return NaN;
  return makeFloat(Number(lower));
}

// ---------------------------------------------------------------- round

export function roundHalfEven(y: number): number {
  const f = Math.floor(y);
  const d = y - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function round(args: readonly unknown[]): unknown {
  argCount(args, 1, 2);
  const x = args[0];
  if (!isNumeric(x)) throw typeFault(Reason.BAD_ARGUMENT, x);
  const nd = args.length === 2 ? args[1] : null;
  const value = num(x);
  if (nd === null || nd === undefined) {
    if (isInt(x)) return value;
    if (Number.isNaN(value)) throw fault(ErrorKind.ValueError, Reason.NAN_TO_INT);
    if (!Number.isFinite(value)) throw fault(ErrorKind.OverflowError, Reason.INF_TO_INT);
    return checkInt(roundHalfEven(value));
  }
  const n = indexValue(nd);
  if (n === undefined) throw typeFault(Reason.BAD_ARGUMENT, x, nd);
  if (isInt(x)) {
    if (n >= 0) return value;
    const p = Math.pow(10, -n);
    if (p > MAX_INT) {
      // |value| < p/2 rounds to 0; above, to ±p, which is out of the int range (ties go to the even 0).
      if (2 * Math.abs(value) > p) throw fault(ErrorKind.OverflowError, Reason.INT_RANGE);
      return 0;
    }
    const r = intMod(value, p);
    const base = value - r;
    const twice = 2 * r;
    if (twice > p || (twice === p && intMod(intFloorDiv(base, p), 2) === 1)) return checkInt(base + p);
    return checkInt(base);
  }
  if (!Number.isFinite(value) || value === 0) return makeFloat(value);
  return makeFloat(roundDecimal(value, n));
}

const F64 = new Float64Array(1);
const U64 = new BigUint64Array(F64.buffer);

/**
 * CPython's float round(x, n): the exact binary value of x rounded half-to-even at n decimal digits,
 * then converted to the nearest double. x = m·2^e exactly, so x = D / 10^k with D = m·5^k (k = -e)
 * or D = m·2^e (k = 0): an exact decimal, rounded with BigInt arithmetic.
 */
export function roundDecimal(x: number, n: number): number {
  if (n > 1100) return x; // every double is exact at 1,075 decimal places
  if (n < -400) return x < 0 ? -0 : 0; // every finite double is below 10^309
  F64[0] = x;
  const bits = U64[0]!;
  const negative = bits >> 63n === 1n;
  const biased = Number((bits >> 52n) & 0x7ffn);
  let m = bits & 0xfffffffffffffn;
  let e: number;
  if (biased === 0) e = -1074;
  else {
    m |= 1n << 52n;
    e = biased - 1075;
  }
  let D: bigint;
  let k: number;
  if (e >= 0) {
    D = m << BigInt(e);
    k = 0;
  } else {
    D = m * 5n ** BigInt(-e);
    k = -e;
  }
  if (n >= k) return x; // already exact at n digits
  const div = 10n ** BigInt(k - n);
  let q = D / div;
  const r2 = (D % div) * 2n;
  if (r2 > div || (r2 === div && (q & 1n) === 1n)) q += 1n;
  const magnitude = Number(`${q}e${-n}`);
  return negative ? -magnitude : magnitude;
}

// ---------------------------------------------------------------- functions

function minMax(args: readonly unknown[], isMax: boolean): unknown {
  if (args.length === 0) throw fault(ErrorKind.TypeError, Reason.ARG_COUNT);
  const seq = args.length === 1 ? iterate(args[0]) : args;
  if (seq.length === 0) throw fault(ErrorKind.ValueError, Reason.EMPTY_SEQUENCE);
  let best = seq[0];
  for (let i = 1; i < seq.length; i++) {
    const v = seq[i];
    if (isMax ? order(CmpOp.GT, v, best) : order(CmpOp.LT, v, best)) best = v;
  }
  return best;
}

/** Calls a function of the fixed set. */
export function callFunction(fn: number, args: readonly unknown[]): unknown {
  switch (fn) {
    case Fn.len: {
      argCount(args, 1, 1);
      const v = args[0];
      if (typeof v === 'string') return strLength(v);
      const list = items(v);
      if (list) return list.length;
      if (isPlainObject(v)) return dictKeys(v).length;
      throw typeFault(Reason.BAD_ARGUMENT, v);
    }
    case Fn.abs: {
      argCount(args, 1, 1);
      const v = args[0];
      if (!isNumeric(v)) throw typeFault(Reason.BAD_ARGUMENT, v);
      return isInt(v) ? Math.abs(num(v)) : makeFloat(Math.abs(num(v)));
    }
    case Fn.min: return minMax(args, false);
    case Fn.max: return minMax(args, true);
    case Fn.round: return round(args);
    case Fn.int: {
      argCount(args, 0, 1);
      if (args.length === 0) return 0;
      const v = args[0];
      if (typeof v === 'string') return parseIntText(v);
      if (!isNumeric(v)) throw typeFault(Reason.BAD_ARGUMENT, v);
      if (isInt(v)) return num(v);
      const x = num(v);
      if (Number.isNaN(x)) throw fault(ErrorKind.ValueError, Reason.NAN_TO_INT);
      if (!Number.isFinite(x)) throw fault(ErrorKind.OverflowError, Reason.INF_TO_INT);
      return checkInt(Math.trunc(x));
    }
    case Fn.float: {
      argCount(args, 0, 1);
      if (args.length === 0) return new PyFloat(0);
      const v = args[0];
      if (typeof v === 'string') return parseFloatText(v);
      if (!isNumeric(v)) throw typeFault(Reason.BAD_ARGUMENT, v);
      return makeFloat(num(v));
    }
    case Fn.str: {
      argCount(args, 0, 1);
      return args.length === 0 ? '' : toStr(args[0]);
    }
    case Fn.bool: {
      argCount(args, 0, 1);
      return args.length === 0 ? false : truthy(args[0]);
    }
    case Fn.sum: {
      argCount(args, 1, 2);
      let acc = args.length === 2 ? args[1] : 0;
      if (typeof acc === 'string') throw fault(ErrorKind.TypeError, Reason.SUM_STRINGS);
      const seq = iterate(args[0]);
      for (let i = 0; i < seq.length; i++) acc = binop(BinOp.ADD, acc, seq[i]);
      return acc;
    }
    case Fn.any: {
      argCount(args, 1, 1);
      const seq = iterate(args[0]);
      for (let i = 0; i < seq.length; i++) if (truthy(seq[i])) return true;
      return false;
    }
    case Fn.all: {
      argCount(args, 1, 1);
      const seq = iterate(args[0]);
      for (let i = 0; i < seq.length; i++) if (!truthy(seq[i])) return false;
      return true;
    }
    default:
      throw new Error(`unknown function ${fn}`);
  }
}

// ---------------------------------------------------------------- string methods

function stripChars(s: string, chars: string | undefined): string {
  if (chars === undefined) return stripSpace(s);
  const set = new Set(Array.from(chars));
  const cps = SURROGATE.test(s) ? codePoints(s) : s.split('');
  let i = 0;
  let j = cps.length;
  while (i < j && set.has(cps[i]!)) i++;
  while (j > i && set.has(cps[j - 1]!)) j--;
  return cps.slice(i, j).join('');
}

function affixTest(s: string, arg: unknown, start: boolean): boolean {
  const test = (p: unknown): boolean => {
    if (typeof p !== 'string') throw typeFault(Reason.BAD_ARGUMENT, s, p);
    return start ? s.startsWith(p) : s.endsWith(p);
  };
  if (arg instanceof PyTuple) {
    for (const p of arg.items) if (test(p)) return true;
    for (const p of arg.items) if (typeof p !== 'string') throw typeFault(Reason.BAD_ARGUMENT, s, p);
    return false;
  }
  return test(arg);
}

function replace(s: string, old: string, repl: string, count: number): string {
  if (count < 0) count = Infinity;
  if (old === '') {
    const cps = SURROGATE.test(s) ? codePoints(s) : s.split('');
    const slots = Math.min(count, cps.length + 1);
    sizeCheck(s.length + slots * repl.length);
    let out = '';
    for (let i = 0; i <= cps.length; i++) {
      if (i < slots) out += repl;
      if (i < cps.length) out += cps[i];
    }
    return out;
  }
  let out = '';
  let from = 0;
  let done = 0;
  while (done < count) {
    const at = s.indexOf(old, from);
    if (at < 0) break;
    out += s.slice(from, at) + repl;
    sizeCheck(out.length);
    from = at + old.length;
    done++;
  }
  out += s.slice(from);
  sizeCheck(out.length);
  return out;
}

function splitWhitespace(s: string, maxsplit: number): string[] {
  const out: string[] = [];
  let i = 0;
  const n = s.length;
  while (true) {
    while (i < n && PY_SPACE.has(s.charCodeAt(i))) i++;
    if (i >= n) break;
    if (maxsplit >= 0 && out.length >= maxsplit) {
      out.push(s.slice(i)); // the remainder keeps its trailing whitespace, as in CPython
      break;
    }
    let j = i;
    while (j < n && !PY_SPACE.has(s.charCodeAt(j))) j++;
    out.push(s.slice(i, j));
    i = j;
  }
  return out;
}

function split(s: string, sep: unknown, maxsplit: number): string[] {
  if (sep === null || sep === undefined) return checkItems(splitWhitespace(s, maxsplit));
  if (typeof sep !== 'string') throw typeFault(Reason.BAD_ARGUMENT, s, sep);
  if (sep === '') throw fault(ErrorKind.ValueError, Reason.EMPTY_SEPARATOR);
  const out: string[] = [];
  let from = 0;
  while (maxsplit < 0 || out.length < maxsplit) {
    const at = s.indexOf(sep, from);
    if (at < 0) break;
    out.push(s.slice(from, at));
    from = at + sep.length;
    if (out.length >= MAX_SIZE) sizeCheck(out.length + 1);
  }
  out.push(s.slice(from));
  return out;
}

function checkItems(list: string[]): string[] {
  sizeCheck(list.length);
  return list;
}

function intArg(s: string, v: unknown): number {
  const i = indexValue(v);
  if (i === undefined) throw typeFault(Reason.BAD_ARGUMENT, s, v);
  return i;
}

function strArg(s: string, v: unknown): string {
  if (typeof v !== 'string') throw typeFault(Reason.BAD_ARGUMENT, s, v);
  return v;
}

/** dict.get(key[, default]): like `key in d` for which keys are allowed, the default (None) when missing. */
function methodGet(name: string, d: unknown, args: readonly unknown[]): unknown {
  if (!isPlainObject(d)) throw new EvalFault(ErrorKind.AttributeError, Reason.NO_ATTRIBUTE, tagOf(d), -1, name);
  argCount(args, 1, 2);
  spend(1);
  const key = args[0];
  if (typeof key === 'string') {
    const value = dictGet(d, key);
    if (value !== MISSING) return value;
  } else if (Array.isArray(key) || isPlainObject(key)) {
    throw typeFault(Reason.UNHASHABLE, key);
  }
  return args.length === 2 ? args[1] : null;
}

/** Calls a method of the fixed set: str methods, and dict.get. */
export function callMethod(method: number, name: string, receiver: unknown, args: readonly unknown[]): unknown {
  if (method === Method.get) return methodGet(name, receiver, args);
  if (typeof receiver !== 'string') {
    throw new EvalFault(ErrorKind.AttributeError, Reason.NO_ATTRIBUTE, tagOf(receiver), -1, name);
  }
  const s = receiver;
  spend(s.length);
  switch (method) {
    case Method.lower: argCount(args, 0, 0); return checkSize(changeCase(s, false));
    case Method.upper: argCount(args, 0, 0); return checkSize(changeCase(s, true));
    case Method.strip: {
      argCount(args, 0, 1);
      const chars = args[0];
      if (chars === undefined || chars === null) return stripSpace(s);
      return stripChars(s, strArg(s, chars));
    }
    case Method.startswith: argCount(args, 1, 1); return affixTest(s, args[0], true);
    case Method.endswith: argCount(args, 1, 1); return affixTest(s, args[0], false);
    case Method.replace: {
      argCount(args, 2, 3);
      return replace(s, strArg(s, args[0]), strArg(s, args[1]), args.length === 3 ? intArg(s, args[2]) : -1);
    }
    case Method.split: {
      argCount(args, 0, 2);
      return split(s, args[0], args.length === 2 ? intArg(s, args[1]) : -1);
    }
    default:
      throw new Error(`unknown method ${method}`);
  }
}

/** Code points whose Python 3.11 mapping differs from the runtime's (see case-exceptions.ts). */
const CASE_MAP = new Map(CASE_EXCEPTIONS.map(([cp, lower, upper]) => [String.fromCodePoint(cp), [lower, upper] as const]));
const CASE_RE = new RegExp(`[${CASE_EXCEPTIONS.map(([cp]) => `\\u{${cp.toString(16)}}`).join('')}]`, 'u');
const CASE_SPLIT = new RegExp(`(${CASE_RE.source})`, 'u');

/** Python's str.lower()/upper(): the runtime's mapping, except where Unicode versions disagree. */
function changeCase(s: string, upper: boolean): string {
  if (!CASE_RE.test(s)) return upper ? s.toUpperCase() : s.toLowerCase();
  // Runs between exception characters keep their context (final sigma); exceptions map alone.
  return s.split(CASE_SPLIT).map((part) => {
    const m = CASE_MAP.get(part);
    if (m) return upper ? m[1] : m[0];
    return upper ? part.toUpperCase() : part.toLowerCase();
  }).join('');
}

function checkSize(s: string): string {
  sizeCheck(s.length);
  return s;
}
