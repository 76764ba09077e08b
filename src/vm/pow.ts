/**
 * C99 `pow` for the js evaluator, as CPython computes float powers (glibc's pow, correctly rounded in
 * practice). V8's Math.pow is not: `10 ** -5` gives 9.999999999999999e-06 and `2 ** 0.5` is off by
 * one unit in the last place (Node 20). Here the result is exp(y·log|x|) evaluated in double-double
 * arithmetic (about 100 bits) and rounded once, with C99's special cases first.
 */

// ---------------------------------------------------------------- double-double primitives

const SPLITTER = 134217729; // 2^27 + 1

/** Exact product a·b as hi + lo (Dekker). */
function twoProd(a: number, b: number, out: Float64Array): void {
  const p = a * b;
  let t = SPLITTER * a;
  const ah = t - (t - a);
  const al = a - ah;
  t = SPLITTER * b;
  const bh = t - (t - b);
  const bl = b - bh;
  out[0] = p;
  out[1] = ah * bh - p + ah * bl + al * bh + al * bl;
}

const tp = new Float64Array(2);

/** (ah + al) · (bh + bl) as a normalised double-double in out. */
function ddMul(ah: number, al: number, bh: number, bl: number, out: Float64Array): void {
  twoProd(ah, bh, tp);
  const hi = tp[0]!;
  const lo = tp[1]! + (ah * bl + al * bh);
  const s = hi + lo;
  out[0] = s;
  out[1] = lo - (s - hi);
}

/** (ah + al) + (bh + bl) as a normalised double-double in out. */
function ddAdd(ah: number, al: number, bh: number, bl: number, out: Float64Array): void {
  const s = ah + bh;
  const bb = s - ah;
  const e = ah - (s - bb) + (bh - bb) + al + bl;
  const r = s + e;
  out[0] = r;
  out[1] = e - (r - s);
}

/** (ah + al) / n for a small integer n, as a double-double in out. */
function ddDivSmall(ah: number, al: number, n: number, out: Float64Array): void {
  const q = ah / n;
  twoProd(q, n, tp);
  const rem = ah - tp[0]! - tp[1]! + al;
  const ql = rem / n;
  const s = q + ql;
  out[0] = s;
  out[1] = ql - (s - q);
}

const LN2_HI = 0.6931471805599453;
const LN2_LO = 2.3190468138462996e-17;

const acc = new Float64Array(2);
const term = new Float64Array(2);

/** exp(ah + al) as a double-double in out; |ah| < 710. */
function ddExp(ah: number, al: number, out: Float64Array): void {
  const k = Math.round(ah / LN2_HI);
  // r = a - k·ln2, exactly enough: k·LN2_HI is exact for |k| < 2^20 after the two-product split.
  twoProd(k, LN2_HI, tp);
  ddAdd(ah, al, -tp[0]!, -tp[1]!, acc);
  ddAdd(acc[0]!, acc[1]!, -k * LN2_LO, 0, acc);
  // r / 256, then Taylor to degree 9, then square 8 times.
  const rh = acc[0]! / 256;
  const rl = acc[1]! / 256;
  let sh = 1;
  let sl = 0;
  term[0] = 1;
  term[1] = 0;
  for (let n = 1; n <= 9; n++) {
    ddMul(term[0]!, term[1]!, rh, rl, term);
    ddDivSmall(term[0]!, term[1]!, n, term);
    ddAdd(sh, sl, term[0]!, term[1]!, acc);
    sh = acc[0]!;
    sl = acc[1]!;
  }
  for (let i = 0; i < 8; i++) {
    ddMul(sh, sl, sh, sl, acc);
    sh = acc[0]!;
    sl = acc[1]!;
  }
  // Scale by 2^k in two steps so neither factor overflows or underflows on its own.
  const k1 = Math.trunc(k / 2);
  const f1 = 2 ** k1;
  const f2 = 2 ** (k - k1);
  out[0] = sh * f1 * f2;
  out[1] = sl * f1 * f2;
}

const lg = new Float64Array(2);
const ex = new Float64Array(2);
const q = new Float64Array(2);
const s2 = new Float64Array(2);
const pw = new Float64Array(2);

/**
 * log(x) as a double-double in out, for finite x > 0: x = m·2^e with m in [√½, √2), and
 * log(m) = 2·atanh(s), s = (m − 1)/(m + 1), summed in double-double (m − 1 is exact), so the result is
 * accurate relative to log(m) itself — which matters near x = 1, where log(x) is tiny.
 */
function ddLog(x: number, out: Float64Array): void {
  let e = Math.floor(Math.log2(x));
  let m = x / 2 ** e;
  if (!Number.isFinite(m) || m === 0) {
    // subnormal x: 2 ** e underflows to 0; scale in two steps
    m = (x * 2 ** 64) / 2 ** (e + 64);
  }
  if (m < Math.SQRT1_2) {
    m *= 2;
    e -= 1;
  } else if (m >= Math.SQRT2) {
    m /= 2;
    e += 1;
  }
  const u = m - 1; // exact (Sterbenz)
  // d = 2 + u as a double-double, then s = u / d
  const dh = 2 + u;
  const dl = u - (dh - 2);
  const s1 = u / dh;
  twoProd(s1, dh, tp);
  const rem = u - tp[0]! - tp[1]! - s1 * dl;
  const sl1 = rem / dh;
  const sh = s1 + sl1;
  const sl = sl1 - (sh - s1);
  // atanh(s) = s + s^3/3 + s^5/5 + …, |s| < 0.172
  ddMul(sh, sl, sh, sl, s2);
  let th = sh;
  let tl = sl;
  pw[0] = sh;
  pw[1] = sl;
  for (let k = 3; k <= 45; k += 2) {
    ddMul(pw[0]!, pw[1]!, s2[0]!, s2[1]!, pw);
    if (Math.abs(pw[0]!) < 1e-40 * Math.abs(th)) break;
    ddDivSmall(pw[0]!, pw[1]!, k, q);
    ddAdd(th, tl, q[0]!, q[1]!, acc);
    th = acc[0]!;
    tl = acc[1]!;
  }
  // log(x) = e·ln2 + 2·atanh(s)
  twoProd(e, LN2_HI, tp);
  ddAdd(tp[0]!, tp[1]! + e * LN2_LO, 2 * th, 2 * tl, out);
}

function isOddInteger(y: number): boolean {
  return Number.isInteger(y) && Math.abs(y) < 2 ** 53 && Math.abs(y % 2) === 1;
}

/** C99 / glibc pow(x, y), correctly rounded. */
export function cpow(x: number, y: number): number {
  if (y === 0) return 1;
  if (x === 1) return 1;
  if (Number.isNaN(x) || Number.isNaN(y)) return NaN;
  if (y === Infinity || y === -Infinity) {
    const ax = Math.abs(x);
    if (ax === 1) return 1;
    return (ax > 1) === (y > 0) ? Infinity : 0;
  }
  if (x === 0) {
    const odd = isOddInteger(y);
    if (y < 0) return odd ? 1 / x : Infinity;
    return odd ? x : 0;
  }
  if (x === Infinity) return y > 0 ? Infinity : 0;
  if (x === -Infinity) {
    const odd = isOddInteger(y);
    if (y > 0) return odd ? -Infinity : Infinity;
    return odd ? -0 : 0;
  }
  // Exponents whose results IEEE arithmetic rounds correctly by itself (and where the hard cases of
  // correct rounding live: 1/x can sit within 2^-106 of a midpoint, beyond double-double's reach).
  if (y === 1) return x;
  if (y === -1) return 1 / x;
  if (y === 2) return x * x;
  if (y === 0.5 && x > 0) return Math.sqrt(x);
  let negate = false;
  if (x < 0) {
    if (!Number.isInteger(y)) return NaN;
    negate = isOddInteger(y);
    x = -x;
  }
  if (x === 1) return negate ? -1 : 1; // (-1) ** (even or odd integer)
  ddLog(x, lg);
  // Decide overflow and underflow on the plain product first: the double-double product would
  // overflow in its splitting step for |y| near the top of the double range.
  const rough = lg[0]! * y;
  let r: number;
  if (rough > 710) r = Infinity;
  else if (rough < -746) r = 0;
  else if (Math.abs(y) > 1e300) {
    // only reachable when log(x) is tiny; the splitting step of ddMul would overflow
    ddExp(rough, lg[1]! * y, ex);
    r = ex[0]! + ex[1]!;
  } else {
    ddMul(lg[0]!, lg[1]!, y, 0, lg);
    const h = lg[0]!;
    if (h > 709.8) r = Infinity;
    else if (h < -745.2) r = 0;
    else {
      ddExp(h, lg[1]!, ex);
      r = ex[0]! + ex[1]!;
    }
  }
  return negate ? -r : r;
}
