/**
 * How the js evaluator represents the language's values in JavaScript.
 *
 * - None: null (undefined read from a context also counts as None)
 * - bool: boolean; int: a safe-integer number; float: any other number, or a PyFloat box for a float
 *   whose value is integral (so `7.0 // 2` stays the float 3.0 and `str()` says '3.0')
 * - str: string; list: Array; tuple: PyTuple; dict: a plain object (prototype Object.prototype or null)
 * - opaque: anything else (class instances, Map, Date, functions, typed arrays …)
 * Values leave the evaluator through `toHost`, which unboxes PyFloat and turns tuples into arrays.
 */
import { Tag, type TagValue, TAG_TYPE_NAME } from './contract.js';
import { describeType } from '../errors.js';

/** A float whose value is integral (including -0.0). Non-integral floats are plain numbers. */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** A Python tuple. */
export class PyTuple {
  constructor(readonly items: readonly unknown[]) {}
}

/** Wraps a float result: integral values are boxed so they stay floats. */
export function makeFloat(x: number): number | PyFloat {
  return Number.isInteger(x) || Object.is(x, -0) ? new PyFloat(x) : x;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

const MISSING_VALUE: unique symbol = Symbol('missing');
export const MISSING = MISSING_VALUE;

/**
 * A dict's item: an own, enumerable data property. Accessors (getters) are never run: they count as
 * absent, so an expression cannot make a context object execute code.
 */
export function dictGet(obj: Record<string, unknown>, key: string): unknown {
  const d = Object.getOwnPropertyDescriptor(obj, key);
  return d !== undefined && d.enumerable === true && 'value' in d ? d.value : MISSING_VALUE;
}

/** A dict's keys: its own enumerable data properties, in property order. */
export function dictKeys(obj: Record<string, unknown>): string[] {
  const keys = Object.keys(obj);
  const descriptors = Object.getOwnPropertyDescriptors(obj);
  return keys.filter((k) => 'value' in descriptors[k]!);
}

export function tagOf(v: unknown): TagValue {
  switch (typeof v) {
    case 'number': return Number.isSafeInteger(v) ? Tag.INT : Tag.FLOAT;
    case 'string': return Tag.STR;
    case 'boolean': return v ? Tag.TRUE : Tag.FALSE;
    case 'undefined': return Tag.NONE;
    case 'object':
      if (v === null) return Tag.NONE;
      if (Array.isArray(v)) return Tag.LIST;
      if (v instanceof PyFloat) return Tag.FLOAT;
      if (v instanceof PyTuple) return Tag.TUPLE;
      return isPlainObject(v) ? Tag.DICT : Tag.OPAQUE;
    default: return Tag.OPAQUE;
  }
}

/** Python type name of a value, for messages. Opaque values are named by their JS class. */
export function typeName(v: unknown): string {
  const tag = tagOf(v);
  return tag === Tag.OPAQUE ? describeType(v) : TAG_TYPE_NAME[tag];
}

/**
 * Converts an evaluator value to what the caller of `evaluate` receives: PyFloat unboxed, tuples as
 * arrays, lists and dicts copied (dicts with their data items only), shared parts converted once.
 * Returns MISSING when the value is nested deeper than `limit` levels.
 */
export function toHost(v: unknown, limit = 100, memo?: Map<object, unknown>): unknown {
  if (typeof v !== 'object' || v === null) return v === undefined ? null : v;
  if (v instanceof PyFloat) return v.value;
  const isList = Array.isArray(v) || v instanceof PyTuple;
  if (!isList && !isPlainObject(v)) return v;
  if (limit <= 0) return MISSING_VALUE;
  memo ??= new Map();
  const seen = memo.get(v);
  if (seen !== undefined) return seen;
  if (isList) {
    const items = Array.isArray(v) ? v : v.items;
    const out = new Array<unknown>(items.length);
    memo.set(v, out);
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (typeof item === 'object' && item !== null) {
        const h = toHost(item, limit - 1, memo);
        if (h === MISSING_VALUE) return MISSING_VALUE;
        out[i] = h;
      } else {
        out[i] = item === undefined ? null : item;
      }
    }
    return out;
  }
  const dict = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  memo.set(v, out);
  for (const k of dictKeys(dict)) {
    const h = toHost(dictGet(dict, k), limit - 1, memo);
    if (h === MISSING_VALUE) return MISSING_VALUE;
    Object.defineProperty(out, k, { value: h, enumerable: true, writable: true, configurable: true });
  }
  return out;
}
