// Numbers with Python semantics: floor division, modulo, power, rounding, int()/float() parsing.

import { ErrorKind, Reason, Limits } from './opcodes';
import { hostParseFloat, hostPow } from './mem';
import { unit, isSpace } from './str';

const MAX_INT = Limits.MAX_INT;

@inline export function isSafeInt(x: f64): bool { return x == Math.trunc(x) && Math.abs(x) <= MAX_INT; }

/** int // int (exact, i64). b != 0 checked by the caller. */
export function intFloorDiv(a: f64, b: f64): f64 {
  const x = <i64>a, y = <i64>b;
  let q = x / y;
  const r = x - q * y;
  if (r != 0 && ((r ^ y) < 0)) q--;
  return <f64>q;
}

/** int % int (exact, sign of the divisor). */
export function intMod(a: f64, b: f64): f64 {
  const x = <i64>a, y = <i64>b;
  let r = x % y;
  if (r != 0 && ((r ^ y) < 0)) r += y;
  return <f64>r;
}

/** CPython float_divmod: the floor quotient. */
export function floatFloorDiv(a: f64, b: f64): f64 {
  let mod = a % b;
  let div = (a - mod) / b;
  if (mod != 0) {
    if ((b < 0) != (mod < 0)) { mod += b; div -= 1.0; }
  }
  let fd: f64;
  if (div != 0) {
    fd = Math.floor(div);
    if (div - fd > 0.5) fd += 1.0;
  } else {
    fd = copysign<f64>(0.0, a / b);
  }
  return fd;
}

/** CPython float_divmod: the modulo. */
export function floatMod(a: f64, b: f64): f64 {
  let mod = a % b;
  if (mod != 0) {
    if ((b < 0) != (mod < 0)) mod += b;
  } else {
    mod = copysign<f64>(0.0, b);
  }
  return mod;
}

/** Error of the last intPow/floatPow (ErrorKind.OK: none); they never trap, so the batch VM can use them. */
export let powErrKind: i32 = ErrorKind.OK;
export let powErrReason: i32 = Reason.GENERIC;
@inline function powError(kind: i32, reason: i32): f64 { powErrKind = kind; powErrReason = reason; return 0; }

/** int ** int with b >= 0: exact by repeated squaring, OverflowError past MAX_INT. */
export function intPow(a: f64, b: f64): f64 {
  powErrKind = ErrorKind.OK;
  let result: f64 = 1.0;
  let base = a;
  let e = <i64>b;
  while (e > 0) {
    if (e & 1) {
      result *= base;
      if (Math.abs(result) > MAX_INT) return powError(ErrorKind.OverflowError, Reason.INT_RANGE);
    }
    e >>= 1;
    if (e > 0) {
      base *= base;
      if (Math.abs(base) > MAX_INT) return powError(ErrorKind.OverflowError, Reason.INT_RANGE);
    }
  }
  return result;
}

@inline function isOddInteger(x: f64): bool {
  // |x| < 2^53 integral and odd
  return Math.abs(x) < 9007199254740992.0 && x == Math.trunc(x) && (<i64>x & 1) != 0;
}

/** CPython float_pow (both operands as doubles). */
export function floatPow(iv: f64, iw: f64): f64 {
  powErrKind = ErrorKind.OK;
  // CPython's order of special cases: 0.0 ** -inf is inf, not a ZeroDivisionError.
  if (iw == 0) return 1.0;
  if (isNaN(iv)) return iv;
  if (isNaN(iw)) return iv == 1.0 ? 1.0 : iw;
  if (!isFinite(iw)) {
    const av = Math.abs(iv);
    if (av == 1.0) return 1.0;
    if ((iw > 0.0) == (av > 1.0)) return Math.abs(iw);
    return 0.0;
  }
  if (!isFinite(iv)) {
    const odd = isOddInteger(iw);
    if (iw > 0.0) return odd ? iv : Math.abs(iv);
    return odd ? copysign<f64>(0.0, iv) : 0.0;
  }
  if (iv == 0.0) {
    const odd = isOddInteger(iw);
    if (iw < 0.0) return powError(ErrorKind.ZeroDivisionError, Reason.POW_ZERO_NEG);
    return odd ? iv : 0.0;
  }
  let negate = false;
  if (iv < 0.0) {
    if (iw != Math.floor(iw)) return powError(ErrorKind.ValueError, Reason.COMPLEX_RESULT);
    iv = -iv;
    negate = isOddInteger(iw);
  }
  if (iv == 1.0) return negate ? -1.0 : 1.0;
  // The js backend's correctly rounded pow (src/vm/pow.ts), so both backends agree to the bit:
  // AssemblyScript's Math.pow is off by one unit in the last place for some arguments.
  let ix = hostPow(iv, iw);
  if (!isFinite(ix)) return powError(ErrorKind.OverflowError, Reason.FLOAT_RANGE);
  return negate ? -ix : ix;
}

/** Round half to even. */
@inline export function roundEven(x: f64): f64 { return nearest<f64>(x); }

const POW10: usize = memory.data<f64>([
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
  1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
]);
export function pow10(n: i32): f64 {
  if (n >= 0 && n <= 22) return load<f64>(POW10 + (<usize>n << 3));
  return Math.pow(10.0, <f64>n);
}

/** round(int, n) for n < 0: to a multiple of 10^-n, ties to even. */
export function roundIntDigits(x: f64, n: f64): f64 {
  if (n >= 0) return x;
  // Exact (CPython): the caller range-checks the result. 10^19 > 2 * MAX_INT: beyond, all round to 0.
  if (n < -18) return 0.0;
  let p: i64 = 1;
  for (let i = 0; i < <i32>(-n); i++) p *= 10;
  const v = <i64>x;
  let q = v / p;
  let r = v - q * p;
  if (r < 0) { q--; r += p; } // floor division
  const twice = r * 2;
  if (twice > p || (twice == p && (q & 1) != 0)) q++;
  return <f64>q * <f64>p;
}

// --- int(str) and float(str) ---

/** Shared scan state: after a successful parse, the number. */
export let parsedValue: f64 = 0;

/**
 * Python int(s) in base 10: whitespace, sign, digits with single underscores between digits,
 * whitespace. false when invalid; parsedValue may be beyond MAX_INT (the caller checks).
 */
export function parseIntStr(p: usize, n: i32): bool {
  let i = 0, e = n;
  while (i < e && isSpace(unit(p, i))) i++;
  while (e > i && isSpace(unit(p, e - 1))) e--;
  if (i >= e) return false;
  let neg = false;
  const s = unit(p, i);
  if (s == 43 || s == 45) { neg = s == 45; i++; }
  if (i >= e) return false;
  let v: f64 = 0;
  let prevDigit = false;
  for (; i < e; i++) {
    const c = unit(p, i);
    if (c >= 48 && c <= 57) {
      v = v * 10 + <f64>(c - 48);
      prevDigit = true;
    } else if (c == 95 && prevDigit && i + 1 < e && unit(p, i + 1) >= 48 && unit(p, i + 1) <= 57) {
      prevDigit = false;
    } else {
      return false;
    }
  }
  parsedValue = neg ? -v : v;
  return true;
}

const FBUF: usize = memory.data(1024, 16);

@inline function lowerAscii(c: i32): i32 { return c >= 65 && c <= 90 ? c + 32 : c; }

function matchWord(p: usize, i: i32, e: i32, w: string): bool {
  if (e - i != w.length) return false;
  for (let k = 0; k < w.length; k++) if (lowerAscii(unit(p, i + k)) != w.charCodeAt(k)) return false;
  return true;
}

/** Python float(s). false when invalid. */
export function parseFloatStr(p: usize, n: i32): bool {
  let i = 0, e = n;
  while (i < e && isSpace(unit(p, i))) i++;
  while (e > i && isSpace(unit(p, e - 1))) e--;
  if (i >= e) return false;
  let neg = false;
  const s = unit(p, i);
  if (s == 43 || s == 45) { neg = s == 45; i++; }
  if (i >= e) return false;
  if (matchWord(p, i, e, 'inf') || matchWord(p, i, e, 'infinity')) { parsedValue = neg ? -Infinity : Infinity; return true; }
  if (matchWord(p, i, e, 'nan')) { parsedValue = NaN; return true; }
  // digits [. digits] [e [sign] digits], underscores only between two digits. Only significant
  // digits are copied (at most 800; past them a nonzero digit is kept as a sticky 1, which keeps the
  // rounding direction), so the buffer stays bounded: value = S * 10^(exp + intDropped - fracShift).
  let o: usize = FBUF;
  if (neg) { store<u8>(o, 45); o++; }
  const digits0 = o;
  let mant = 0;
  let kept = 0;
  let intDropped: i64 = 0;
  let fracShift: i64 = 0;
  let sticky = false;
  let sawPoint = false;
  let prev = 0; // 0 start, 1 digit, 2 underscore, 3 point
  for (; i < e; i++) {
    const c = unit(p, i);
    if (c >= 48 && c <= 57) {
      if (kept == 0 && c == 48) {
        if (sawPoint) fracShift++;
      } else if (kept < 800) {
        store<u8>(o, <u8>c); o++; kept++;
        if (sawPoint) fracShift++;
      } else {
        if (c != 48) sticky = true;
        if (!sawPoint) intDropped++;
      }
      mant++;
      prev = 1;
    } else if (c == 95) {
      if (prev != 1 || i + 1 >= e) return false;
      const d = unit(p, i + 1);
      if (d < 48 || d > 57) return false;
      prev = 2;
    } else if (c == 46) {
      if (sawPoint || prev == 2) return false;
      sawPoint = true;
      prev = 3;
    } else {
      break;
    }
  }
  if (mant == 0) return false;
  let exp: i64 = intDropped - fracShift;
  if (sticky) { store<u8>(o, 49); o++; exp--; }
  if (o == digits0) { store<u8>(o, 48); o++; exp = 0; }
  if (i < e) {
    const c = unit(p, i);
    if (c != 101 && c != 69) return false;
    if (prev == 2) return false;
    i++;
    let eneg = false;
    if (i < e && (unit(p, i) == 43 || unit(p, i) == 45)) { eneg = unit(p, i) == 45; i++; }
    if (i >= e) return false;
    let ev: i64 = 0;
    let ep = 0;
    for (; i < e; i++) {
      const d = unit(p, i);
      if (d >= 48 && d <= 57) {
        if (ev < 100000000) ev = ev * 10 + <i64>(d - 48);
        ep = 1;
      } else if (d == 95) {
        if (ep != 1 || i + 1 >= e) return false;
        const d2 = unit(p, i + 1);
        if (d2 < 48 || d2 > 57) return false;
        ep = 2;
      } else {
        return false;
      }
    }
    if (ep != 1) return false;
    exp += eneg ? -ev : ev;
  }
  if (exp != 0) {
    store<u8>(o, 101); o++;
    if (exp < 0) { store<u8>(o, 45); o++; exp = -exp; }
    if (exp > 999999999) exp = 999999999;
    let tmp = exp;
    let nd = 0;
    do { nd++; tmp /= 10; } while (tmp > 0);
    let q = o + <usize>nd;
    o = q;
    tmp = exp;
    do { q--; store<u8>(q, <u8>(48 + <i32>(tmp % 10))); tmp /= 10; } while (tmp > 0);
  }
  parsedValue = hostParseFloat(FBUF, <i32>(o - FBUF));
  return true;
}
