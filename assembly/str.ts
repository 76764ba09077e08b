// Strings: UTF-16 code units in linear memory (possibly unaligned when they point into a tape).
// The language counts code points: a valid surrogate pair is one character, a lone surrogate is one.

import { alloc, shrinkLast, top } from './mem';
import { checkSize } from './value';
import {
  LOWER_COUNT, LOWER_KEYS, LOWER_VALS, LOWER_EXP, UPPER_COUNT, UPPER_KEYS, UPPER_VALS, UPPER_EXP,
  SIGMA_RANGE_COUNT, SIGMA_RANGES,
} from './unicode-tables';

@inline export function unit(p: usize, i: i32): i32 { return <i32>load<u16>(p + (<usize>i << 1)); }
@inline export function isHigh(u: i32): bool { return (u & 0xfc00) == 0xd800; }
@inline export function isLow(u: i32): bool { return (u & 0xfc00) == 0xdc00; }

/** Units of the code point starting at unit i (1 or 2). */
@inline export function cpWidth(p: usize, n: i32, i: i32): i32 {
  return isHigh(unit(p, i)) && i + 1 < n && isLow(unit(p, i + 1)) ? 2 : 1;
}
/** The code point starting at unit i. */
export function cpAt(p: usize, n: i32, i: i32): i32 {
  const u = unit(p, i);
  if (isHigh(u) && i + 1 < n) {
    const l = unit(p, i + 1);
    if (isLow(l)) return 0x10000 + ((u - 0xd800) << 10) + (l - 0xdc00);
  }
  return u;
}

export function hasSurrogates(p: usize, n: i32): bool {
  for (let i = 0; i < n; i++) if ((unit(p, i) & 0xf800) == 0xd800) return true;
  return false;
}

/** Number of code points. */
export function cpCount(p: usize, n: i32): i32 {
  let c = n;
  for (let i = 0; i + 1 < n; i++) {
    if (isHigh(unit(p, i)) && isLow(unit(p, i + 1))) { c--; i++; }
  }
  return c;
}

/** Unit offset of code point k (0 <= k <= count); walks from the start. */
export function cpOffset(p: usize, n: i32, k: i32): i32 {
  let i = 0;
  while (k > 0 && i < n) { i += cpWidth(p, n, i); k--; }
  return i;
}

/** Writes code point c at q; returns the units written. */
@inline export function putCp(q: usize, c: i32): i32 {
  if (c < 0x10000) { store<u16>(q, <u16>c); return 1; }
  const d = c - 0x10000;
  store<u16>(q, <u16>(0xd800 + (d >> 10)));
  store<u16>(q, <u16>(0xdc00 + (d & 0x3ff)), 2);
  return 2;
}
@inline export function cpUnits(c: i32): i32 { return c < 0x10000 ? 1 : 2; }

export function strEq(a: usize, an: i32, b: usize, bn: i32): bool {
  if (an != bn) return false;
  if (a == b) return true;
  return memory.compare(a, b, <usize>an << 1) == 0;
}

/** Compares by code points: <0, 0, >0. */
export function strCmp(a: usize, an: i32, b: usize, bn: i32): i32 {
  const n = min(an, bn);
  let i = 0;
  while (i < n && unit(a, i) == unit(b, i)) i++;
  if (i == n) return an - bn;
  // Back up to the start of the code point containing unit i (the units before i are equal).
  if (i > 0 && isHigh(unit(a, i - 1)) && (isLow(unit(a, i)) || isLow(unit(b, i)))) i--;
  const ca = cpAt(a, an, i);
  const cb = cpAt(b, bn, i);
  if (ca != cb) return ca - cb;
  return an - bn; // unreachable for differing units, kept for safety
}

/** Copies a string into a new arena block. */
export function newStr(src: usize, n: i32): usize {
  const p = alloc(<usize>n << 1);
  memory.copy(p, src, <usize>n << 1);
  return p;
}

// --- substring search (KMP beyond short needles, so hostile inputs stay linear) ---

let kmpTable: usize = 0;
let kmpNeedle: usize = 0;
let kmpLen: i32 = -1;

/** Prepares find() for a needle; allocates its failure table when it is long. */
export function findPrepare(needle: usize, m: i32): void {
  kmpNeedle = needle;
  kmpLen = m;
  if (m <= 4) { kmpTable = 0; return; }
  kmpTable = alloc(<usize>m << 2);
  store<i32>(kmpTable, 0);
  let k = 0;
  for (let i = 1; i < m; i++) {
    const c = unit(needle, i);
    while (k > 0 && unit(needle, k) != c) k = load<i32>(kmpTable + (<usize>(k - 1) << 2));
    if (unit(needle, k) == c) k++;
    store<i32>(kmpTable + (<usize>i << 2), k);
  }
}

/** Unit index of the prepared needle in hay at or after `from`, or -1. */
export function findNext(hay: usize, n: i32, from: i32): i32 {
  const m = kmpLen;
  const nd = kmpNeedle;
  if (m == 0) return from <= n ? from : -1;
  if (m > n - from) return -1;
  if (kmpTable == 0) {
    const c0 = unit(nd, 0);
    const last = n - m;
    for (let i = from; i <= last; i++) {
      if (unit(hay, i) != c0) continue;
      let j = 1;
      while (j < m && unit(hay, i + j) == unit(nd, j)) j++;
      if (j == m) return i;
    }
    return -1;
  }
  let k = 0;
  for (let i = from; i < n; i++) {
    const c = unit(hay, i);
    while (k > 0 && unit(nd, k) != c) k = load<i32>(kmpTable + (<usize>(k - 1) << 2));
    if (unit(nd, k) == c) k++;
    if (k == m) return i - m + 1;
  }
  return -1;
}

// --- whitespace (str.isspace) ---

export function isSpace(c: i32): bool {
  if (c < 0x80) return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20);
  if (c == 0x85 || c == 0xa0 || c == 0x1680) return true;
  if (c >= 0x2000 && c <= 0x200a) return true;
  return c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// --- case mapping (tables generated from Python 3.11) ---

/** Binary search: the mapping value of c, or -1. */
function lookup(keys: usize, vals: usize, count: i32, c: i32): i64 {
  let lo = 0, hi = count - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const k = <i32>load<u32>(keys + (<usize>mid << 2));
    if (k == c) return <i64>load<u32>(vals + (<usize>mid << 2));
    if (k < c) lo = mid + 1; else hi = mid - 1;
  }
  return -1;
}

/** 1 = case-ignorable, 2 = cased (and not case-ignorable), 0 = neither. */
function sigmaClass(c: i32): i32 {
  let lo = 0, hi = SIGMA_RANGE_COUNT - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const r = SIGMA_RANGES + <usize>mid * 12;
    if (<i32>load<u32>(r, 4) < c) lo = mid + 1;
    else if (<i32>load<u32>(r) > c) hi = mid - 1;
    else return <i32>load<u32>(r, 8);
  }
  return 0;
}

/** Python's handle_capital_sigma: is the Σ at unit i in final position? */
function finalSigma(p: usize, n: i32, i: i32): bool {
  // Backwards over case-ignorables to a cased character.
  let j = i - 1;
  let k = 0;
  while (j >= 0) {
    let c = unit(p, j);
    if (isLow(c) && j > 0 && isHigh(unit(p, j - 1))) { c = cpAt(p, n, j - 1); j--; }
    k = sigmaClass(c);
    if (k != 1) break;
    j--;
  }
  if (j < 0 || k != 2) return false;
  j = i + 1;
  while (j < n) {
    const c = cpAt(p, n, j);
    k = sigmaClass(c);
    if (k != 1) return k != 2;
    j += cpUnits(c);
  }
  return true;
}

/** lower() (upper = false) or upper(): a new string; returns its pointer, length in *lenOut. */
export let caseLen: i32 = 0;
export function caseMap(p: usize, n: i32, upper: bool): usize {
  const keys = upper ? UPPER_KEYS : LOWER_KEYS;
  const vals = upper ? UPPER_VALS : LOWER_VALS;
  const exp = upper ? UPPER_EXP : LOWER_EXP;
  const count = upper ? UPPER_COUNT : LOWER_COUNT;
  // Pass 1: the result length (checked before allocating).
  let len: i32 = 0;
  let ascii = true;
  for (let i = 0; i < n; ) {
    const c = cpAt(p, n, i);
    const w = cpUnits(c);
    i += w;
    if (c < 0x80) { len++; continue; }
    ascii = false;
    const m = lookup(keys, vals, count, c);
    if (m < 0) { len += w; continue; }
    const mv = <u32>m;
    if (mv & 0x80000000) {
      const off = (mv & 0x7fffffff) >> 2;
      const cnt = <i32>(mv & 3);
      for (let k = 0; k < cnt; k++) len += cpUnits(<i32>load<u32>(exp + (<usize>(off + k) << 2)));
    } else {
      len += cpUnits(<i32>mv);
    }
  }
  checkSize(<f64>len);
  const q = alloc(<usize>len << 1);
  caseLen = len;
  if (ascii) {
    for (let i = 0; i < n; i++) {
      let c = unit(p, i);
      if (upper) { if (c >= 97 && c <= 122) c -= 32; } else if (c >= 65 && c <= 90) c += 32;
      store<u16>(q + (<usize>i << 1), <u16>c);
    }
    return q;
  }
  let o: usize = q;
  for (let i = 0; i < n; ) {
    const c = cpAt(p, n, i);
    const at = i;
    i += cpUnits(c);
    if (c < 0x80) {
      let d = c;
      if (upper) { if (d >= 97 && d <= 122) d -= 32; } else if (d >= 65 && d <= 90) d += 32;
      store<u16>(o, <u16>d); o += 2;
      continue;
    }
    if (!upper && c == 0x3a3) {
      store<u16>(o, finalSigma(p, n, at) ? 0x3c2 : 0x3c3); o += 2;
      continue;
    }
    const m = lookup(keys, vals, count, c);
    if (m < 0) { o += <usize>putCp(o, c) << 1; continue; }
    const mv = <u32>m;
    if (mv & 0x80000000) {
      const off = (mv & 0x7fffffff) >> 2;
      const cnt = <i32>(mv & 3);
      for (let k = 0; k < cnt; k++) o += <usize>putCp(o, <i32>load<u32>(exp + (<usize>(off + k) << 2))) << 1;
    } else {
      o += <usize>putCp(o, <i32>mv) << 1;
    }
  }
  return q;
}

// --- a string builder at the top of the arena (nothing else may allocate while it is open) ---

let sbStart: usize = 0;
let sbLen: i32 = 0;

export function sbOpen(): void { sbStart = top; sbLen = 0; }
export function sbPtr(): usize { return sbStart; }
export function sbLength(): i32 { return sbLen; }
@inline function sbReserve(k: i32): usize {
  checkSize(<f64>sbLen + <f64>k);
  const p = sbStart + (<usize>sbLen << 1);
  const end = p + (<usize>k << 1);
  if (end > top) alloc(end - top); // bumps top, contiguous with the builder
  sbLen += k;
  return p;
}
export function sbUnit(u: i32): void { store<u16>(sbReserve(1), <u16>u); }
export function sbAscii(s: string): void {
  const n = s.length;
  const p = sbReserve(n);
  for (let i = 0; i < n; i++) store<u16>(p + (<usize>i << 1), <u16>s.charCodeAt(i));
}
export function sbBytes(b: usize, n: i32): void {
  const p = sbReserve(n);
  for (let i = 0; i < n; i++) store<u16>(p + (<usize>i << 1), <u16>load<u8>(b + <usize>i));
}
export function sbUnits(src: usize, n: i32): void {
  const p = sbReserve(n);
  memory.copy(p, src, <usize>n << 1);
}
/** Closes the builder: the string is at sbPtr(), sbLength() units; top is trimmed to fit. */
export function sbClose(): void { shrinkLast(sbStart, <usize>sbLen << 1); }
