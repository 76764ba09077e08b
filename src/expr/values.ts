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
import { Tag, type TagValue, TAG_TYPE_NAME } from './bytecode.js';
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

/** Converts an evaluator value to what the caller of `evaluate` receives. */
export function toHost(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return v === undefined ? null : v;
  if (v instanceof PyFloat) return v.value;
  if (v instanceof PyTuple) return v.items.map(toHost);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const item = v[i];
      if (typeof item === 'object' && item !== null) return v.map(toHost);
    }
    return v;
  }
  return v;
}
