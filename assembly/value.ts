// Values: a 16-byte tagged slot in linear memory.
//   +0 i32 tag (Tag.*)   +4 i32 len (str: UTF-16 units; list/tuple: items; dict: entries; opaque: name units)
//   +8 f64 number (ints, floats, and 0/1 for bools, 0 for None) or u32 pointer (str units, item slots,
//      dict entries: 32 bytes each = key slot (a STR) + value slot, opaque name units)
// Values are immutable once built, so slots can share payloads freely.

import { Tag, ErrorKind, Reason, Limits } from './opcodes';
import { fail } from './mem';

export const SLOT: usize = 16;

@inline export function vtag(v: usize): i32 { return load<i32>(v); }
@inline export function vlen(v: usize): i32 { return load<i32>(v, 4); }
@inline export function vnum(v: usize): f64 { return load<f64>(v, 8); }
@inline export function vptr(v: usize): usize { return <usize>load<u32>(v, 8); }

@inline export function setNone(v: usize): void { store<i32>(v, Tag.NONE); store<i32>(v, 0, 4); store<f64>(v, 0, 8); }
@inline export function setBool(v: usize, b: bool): void {
  store<i32>(v, b ? Tag.TRUE : Tag.FALSE); store<i32>(v, 0, 4); store<f64>(v, b ? 1.0 : 0.0, 8);
}
@inline export function setFloat(v: usize, x: f64): void { store<i32>(v, Tag.FLOAT); store<i32>(v, 0, 4); store<f64>(v, x, 8); }
/** An int result: OverflowError beyond ±MAX_INT. */
@inline export function setInt(v: usize, x: f64): void {
  if (!(Math.abs(x) <= Limits.MAX_INT)) fail(ErrorKind.OverflowError, Reason.INT_RANGE, -1, -1);
  store<i32>(v, Tag.INT); store<i32>(v, 0, 4); store<f64>(v, x + 0.0, 8);
}
/** An int passed through unchanged (-0 from a context stays -0, as in the js evaluator). */
@inline export function setIntRaw(v: usize, x: f64): void {
  if (!(Math.abs(x) <= Limits.MAX_INT)) fail(ErrorKind.OverflowError, Reason.INT_RANGE, -1, -1);
  store<i32>(v, Tag.INT); store<i32>(v, 0, 4); store<f64>(v, x, 8);
}
@inline export function setPtr(v: usize, tag: i32, ptr: usize, len: i32): void {
  store<i32>(v, tag); store<i32>(v, len, 4); store<u64>(v, <u64>ptr, 8);
}
@inline export function copySlot(dst: usize, src: usize): void {
  store<u64>(dst, load<u64>(src)); store<u64>(dst, load<u64>(src, 8), 8);
}

/** bool, int or float (bools count as ints). */
@inline export function isNum(t: i32): bool { return t >= Tag.FALSE && t <= Tag.FLOAT; }
/** bool or int. */
@inline export function isIntLike(t: i32): bool { return t >= Tag.FALSE && t <= Tag.INT; }

export function truthy(v: usize): bool {
  const t = vtag(v);
  if (t <= Tag.FLOAT) return vnum(v) != 0; // None and False hold 0; NaN is true
  if (t == Tag.OPAQUE) return true;
  return vlen(v) != 0;
}

/** The produced-value size limit, checked before allocating. */
@inline export function checkSize(n: f64): void {
  if (n > <f64>Limits.MAX_VALUE_SIZE) fail(ErrorKind.LimitError, Reason.VALUE_TOO_LARGE, -1, -1);
}
