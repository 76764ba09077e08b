/**
 * The declared serializer for checkpoint contexts and run history values.
 *
 * The output is plain JSON. Values JSON cannot carry are written as tagged objects
 * `{"$t": "<Type>", "v": …}`: `Date`, `Map`, `Set`, `BigInt`, every typed array, `DataView`,
 * `ArrayBuffer`, Node `Buffer`, `RegExp`, `Error` (class, code and cause chain kept), `undefined`,
 * `NaN`, `±Infinity` and `-0`, nested in any combination. A plain object that happens to own a `$t`
 * key is wrapped as `{"$t":"Object","v":{…}}`, so decoding is never ambiguous.
 *
 * Anything else — functions, symbols, class instances, boxed primitives, cycles, nesting deeper than
 * {@link MAX_DEPTH}, and values that throw when read (a getter or Proxy trap that throws, a revoked
 * Proxy) — makes the strict mode (checkpoints) throw a `WpipeError` with code
 * `WPIPE_ERR_CHECKPOINT_SERIALIZE` whose message and `details.path` name the key path
 * (`orders[3].when`); for a value that threw, its `cause` is the thrown error. The lenient mode
 * (run history, Wsqlite) writes a readable placeholder such as `"[Function load]"` or
 * `"[Unreadable: <message>]"` instead and never throws, so that recording history never fails a run.
 *
 * Reading a value runs its getters and Proxy traps. The fast path hands unchanged plain objects to
 * `JSON.stringify`, which reads them a second time; if anything throws on the way (or the second
 * read cannot be written), the value is encoded once more reading every property exactly once into
 * fresh containers, so that no user code runs while the text is written. `toJSON` is never honoured.
 *
 * Known, deliberate limits: shared references are written once per occurrence (they come back as
 * separate copies); array holes come back as `undefined`; symbol-keyed and non-enumerable
 * properties are ignored; typed-array bytes are stored little-endian (the byte order of every
 * platform Node supports); a getter that returns something else on each read may be recorded with
 * the value of its second read.
 *
 * @example
 * ```ts
 * const text = serialize({ when: new Date(0), seen: new Set([1n]) });
 * deserialize(text); // → { when: Date(1970-01-01), seen: Set { 1n } }
 * serialize({ cb: () => 1 }); // throws WPIPE_ERR_CHECKPOINT_SERIALIZE: "cb is a function …"
 * ```
 */
import { WpipeError, deserializeError, readError, type SerializedError } from '../errors.js';

/** Nesting deeper than this is refused (strict) or cut (lenient) instead of overflowing the stack. */
export const MAX_DEPTH = 1000;

/** Options of {@link serialize}. */
export interface SerializeOptions {
  /**
   * `'strict'` (default) throws on values it cannot restore exactly; `'lenient'` replaces them with
   * a readable placeholder string and never throws.
   */
  mode?: 'strict' | 'lenient';
  /** Name used for the root in error messages when the root itself is unsupported (default `context`). */
  rootName?: string;
  /**
   * Lenient mode: stop as soon as the text is sure to be longer than this many bytes and return a
   * truncation marker instead (`{"$truncated":true,"atLeast":N}`), without walking the rest.
   */
  maxBytes?: number;
}

/** Thrown by an encoder past its byte budget (caught by the callers that set one). */
const TOO_BIG: unique symbol = Symbol('wpipe.serialize.tooBig');

/** The text recorded for a value past a byte budget. */
export function truncationMarker(atLeast: number): string {
  return JSON.stringify({ $truncated: true, atLeast });
}

const TAG = '$t';
const SUPPORTED =
  'plain objects, arrays, strings, numbers, booleans, null, undefined, BigInt, Date, Map, Set, RegExp, Error, typed arrays, DataView and ArrayBuffer';

type TypedArray =
  | Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array | Int32Array | Uint32Array
  | Float32Array | Float64Array | BigInt64Array | BigUint64Array;
type TypedArrayCtor = new (buffer: ArrayBuffer) => TypedArray;

/** Null prototype: a tag such as `toString` or `constructor` finds nothing here. */
const TYPED_ARRAYS: Record<string, TypedArrayCtor> = Object.assign(Object.create(null) as Record<string, TypedArrayCtor>, {
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array,
});

/** The tag of each typed array by its exact prototype (a subclass is a class instance). */
const TYPED_ARRAY_TAGS = new Map<object, string>(Object.entries(TYPED_ARRAYS).map(([tag, ctor]) => [ctor.prototype as object, tag]));

/** A key path, built only when an error or placeholder needs it (no string work on the fast path). */
interface PathNode {
  parent: PathNode | null;
  /** Property name, array index, or the Map key / Set position. */
  key: unknown;
  kind: 'prop' | 'index' | 'mapKey' | 'mapValue' | 'setItem' | 'error';
  /** Position of a Map entry (for keys that are not strings or numbers). */
  at?: number;
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function mapKeyText(node: PathNode): string {
  const k = node.key;
  return typeof k === 'string' || typeof k === 'number' ? JSON.stringify(k) : `#${node.at ?? 0}`;
}

function formatPath(node: PathNode | null, rootName: string): string {
  const parts: string[] = [];
  for (let n = node; n; n = n.parent) {
    switch (n.kind) {
      case 'index': parts.push(`[${String(n.key)}]`); break;
      case 'mapKey': parts.push(`<Map key ${mapKeyText(n)}>`); break;
      case 'mapValue': parts.push(`.get(${mapKeyText(n)})`); break;
      case 'setItem': parts.push(`<Set item ${String(n.key)}>`); break;
      case 'error': parts.push('<Error>'); break;
      default: {
        const k = String(n.key);
        parts.push(IDENT.test(k) ? (n.parent === null ? k : `.${k}`) : `[${JSON.stringify(k)}]`);
      }
    }
  }
  if (parts.length === 0) return rootName;
  parts.reverse();
  // A first segment that is not a plain name (`[3]`, `["a b"]`, `.get(…)`) reads better after the root name.
  return /^[A-Za-z_$]/.test(parts[0]!) ? parts.join('') : rootName + parts.join('');
}

/**
 * `strict` throws on what it cannot restore exactly, `lenient` writes a placeholder instead, and
 * `bestEffort` writes placeholders too but also tells (in `exact`) whether strict would have thrown.
 */
type Mode = 'strict' | 'lenient' | 'bestEffort';

class Encoder {
  readonly lenient: boolean;
  /** Symbol-keyed properties are looked for unless the mode is plainly lenient (they make the text inexact). */
  private readonly checkSymbols: boolean;
  /** The careful pass (see {@link encodeCopy}): every read guarded, every object and array a fresh copy. */
  private readonly copy: boolean;
  /** False once a placeholder was written. */
  exact = true;
  /** The error this encoder threw, told apart from whatever user code (a getter, a Proxy trap) threw. */
  private failure: WpipeError | typeof TOO_BIG | undefined;
  /**
   * A lower bound of the text's bytes still allowed (Infinity: no limit): each string and key costs
   * its length, every other entry a few bytes, so running out proves the text is longer.
   */
  budget = Infinity;

  private overBudget(): never {
    this.failure = TOO_BIG;
    throw TOO_BIG;
  }
  private readonly active = new Set<object>();

  constructor(mode: Mode, readonly rootName: string, copy: boolean) {
    this.lenient = mode !== 'strict';
    this.checkSymbols = mode !== 'lenient';
    this.copy = copy;
  }

  /** Whether `error` is the one this encoder threw (a strict failure), not one user code threw. */
  isOwn(error: unknown): boolean {
    return this.failure !== undefined && error === this.failure;
  }

  private fail(path: PathNode | null, what: string, placeholder: string): string {
    return this.refuse(path, what, true, placeholder, undefined);
  }

  /** A value whose reading threw `error`: a getter, a Proxy trap, a revoked Proxy, a built-in given a fake. */
  unreadable(path: PathNode | null, error: unknown): string {
    const message = describeThrown(error);
    return this.refuse(path, `it cannot be read (${message})`, false, `[Unreadable: ${message}]`, error);
  }

  private refuse(path: PathNode | null, what: string, listSupported: boolean, placeholder: string, cause: unknown): string {
    if (this.lenient) {
      this.exact = false;
      return placeholder;
    }
    const where = formatPath(path, this.rootName);
    this.failure = new WpipeError(
      'WPIPE_ERR_CHECKPOINT_SERIALIZE',
      `cannot save ${where} in a checkpoint: ${what}${listSupported ? `; supported are ${SUPPORTED}` : ''}`,
      { details: { path: where, problem: what }, cause },
    );
    throw this.failure;
  }

  /** Returns `value` itself when JSON carries it as is, or its tagged replacement. */
  encode(value: unknown, path: PathNode | null, depth: number): unknown {
    switch (typeof value) {
      case 'string':
        if ((this.budget -= value.length) < 0) this.overBudget();
        return value;
      case 'boolean':
        return value;
      case 'number':
        if (Number.isFinite(value)) return value === 0 && 1 / value < 0 ? { $t: 'num', v: '-0' } : value;
        return { $t: 'num', v: String(value) };
      case 'undefined':
        return { $t: 'undef' };
      case 'bigint':
        return { $t: 'bigint', v: value.toString() };
      case 'function': {
        const name = functionName(value);
        return this.fail(path, `it is a function${name ? ` (${name})` : ''}`, `[Function${name ? ` ${name}` : ''}]`);
      }
      case 'symbol':
        return this.fail(path, `it is a symbol (${String(value)})`, `[${String(value)}]`);
      default:
        break;
    }
    if (value === null) return null;
    const obj = value as object;
    if (depth >= MAX_DEPTH) return this.fail(path, `it is nested deeper than ${MAX_DEPTH} levels`, '[Too deep]');
    if (this.active.has(obj)) return this.fail(path, 'it refers back to itself (a cycle)', '[Circular]');
    if (this.copy) return this.encodeCopy(obj, path, depth);

    // The fast pass reads without guards: whatever user code throws here ends it, and serialize() starts the careful pass.
    const isArray = Array.isArray(obj);
    const proto = isArray ? null : (Object.getPrototypeOf(obj) as object | null);
    if (!isArray && proto !== Object.prototype && proto !== null) return this.encodeSpecial(obj, proto, path, depth);
    // Inline add/delete (no closure): a frame less per level keeps deep values off the stack limit.
    this.active.add(obj);
    try {
      return isArray ? this.encodeArray(obj as unknown[], path, depth) : this.encodeObject(obj as Record<string, unknown>, path, depth);
    } finally {
      this.active.delete(obj);
    }
  }

  private withActive<T>(obj: object, fn: () => T): T {
    this.active.add(obj);
    try {
      return fn();
    } finally {
      this.active.delete(obj);
    }
  }

  private encodeArray(arr: unknown[], path: PathNode | null, depth: number): unknown {
    let out: unknown[] | undefined;
    const n = arr.length;
    for (let i = 0; i < n; i++) {
      const item = arr[i];
      if ((this.budget -= typeof item === 'string' ? item.length + 3 : 2) < 0) this.overBudget();
      // Fast path: strings, booleans and ordinary numbers need no path node and no work.
      const enc = isPlainPrimitive(item) ? item : this.encode(item, { parent: path, key: i, kind: 'index' }, depth + 1);
      if (out === undefined && enc !== item) out = arr.slice(0, i);
      if (out !== undefined) out.push(enc);
    }
    // JSON.stringify would call an array's own toJSON: hand it a copy without one.
    if (out === undefined && typeof (arr as { toJSON?: unknown }).toJSON === 'function') out = arr.slice();
    return out ?? arr;
  }

  private encodeObject(obj: Record<string, unknown>, path: PathNode | null, depth: number): unknown {
    const keys = Object.keys(obj);
    if (this.checkSymbols) {
      const symbols = Object.getOwnPropertySymbols(obj);
      if (symbols.length > 0) this.fail(path, `it has a symbol-keyed property (${String(symbols[0])})`, '');
    }
    let out: Record<string, unknown> | undefined;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const item = obj[k];
      if ((this.budget -= k.length + (typeof item === 'string' ? item.length + 6 : 4)) < 0) this.overBudget();
      const enc = isPlainPrimitive(item) ? item : this.encode(item, { parent: path, key: k, kind: 'prop' }, depth + 1);
      if (enc !== item) {
        // Clone once, then overwrite changed keys.
        if (out === undefined) out = shallowCopy(obj, keys);
        defineKey(out, k, enc);
      }
    }
    // JSON.stringify would call a toJSON it finds (own non-enumerable, or a Proxy's): hand it a copy without one.
    if (out === undefined && typeof obj.toJSON === 'function') out = shallowCopy(obj, keys);
    const result = out ?? obj;
    // A user object owning `$t` would be read back as a tag: wrap it so decoding stays exact.
    return Object.prototype.hasOwnProperty.call(obj, TAG) ? { $t: 'Object', v: result } : result;
  }

  private encodeSpecial(obj: object, proto: object, path: PathNode | null, depth: number): unknown {
    if (obj instanceof Date) {
      const t = obj.getTime();
      return { $t: 'Date', v: Number.isNaN(t) ? null : isoString(t) };
    }
    // Maps and Sets: no more entries than the size before the first is encoded (a getter run meanwhile
    // may add some, an overridden iterator may never end).
    if (obj instanceof Map) {
      return this.withActive(obj, () => {
        const entries: unknown[] = [];
        const size = obj.size;
        let i = 0;
        for (const [k, v] of obj) {
          if (!(i < size)) break;
          entries.push([
            isPlainPrimitive(k) ? k : this.encode(k, { parent: path, key: k, kind: 'mapKey', at: i }, depth + 1),
            isPlainPrimitive(v) ? v : this.encode(v, { parent: path, key: k, kind: 'mapValue', at: i }, depth + 1),
          ]);
          i++;
        }
        return { $t: 'Map', v: entries };
      });
    }
    if (obj instanceof Set) {
      return this.withActive(obj, () => {
        const items: unknown[] = [];
        const size = obj.size;
        let i = 0;
        for (const v of obj) {
          if (!(i < size)) break;
          items.push(isPlainPrimitive(v) ? v : this.encode(v, { parent: path, key: i, kind: 'setItem' }, depth + 1));
          i++;
        }
        return { $t: 'Set', v: items };
      });
    }
    if (ArrayBuffer.isView(obj)) {
      const view = obj as ArrayBufferView;
      const tag = Buffer.isBuffer(view) ? 'Buffer' : view instanceof DataView ? 'DataView' : TYPED_ARRAY_TAGS.get(proto);
      if (tag !== undefined && view.buffer instanceof ArrayBuffer) {
        return { $t: tag, v: Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString('base64') };
      }
    }
    if (obj instanceof ArrayBuffer) return { $t: 'ArrayBuffer', v: Buffer.from(obj).toString('base64') };
    if (obj instanceof RegExp) {
      // A fresh copy: built from the internal source and flags (own properties that shadow them are
      // ignored), and proof that they decode.
      const re = new RegExp(obj);
      return { $t: 'RegExp', v: [re.source, re.flags] };
    }
    if (obj instanceof Error) {
      // The run's own failures (continueOnError) live in the context: they must survive a checkpoint.
      const data = readError(obj);
      return { $t: 'Error', v: this.withActive(obj, () => this.encode(data, { parent: path, key: null, kind: 'error' }, depth + 1)) };
    }
    const name = className(proto);
    return this.fail(path, `it is an instance of ${name} (class instances cannot be restored)`, `[${name}]`);
  }

  /**
   * The careful pass, after the fast one met a throw from user code: each read that can run user
   * code is guarded, so that a throw becomes {@link unreadable} at its own key path, and every object
   * and array is a fresh copy, so that JSON.stringify then runs no user code at all.
   */
  private encodeCopy(obj: object, path: PathNode | null, depth: number): unknown {
    let isArray = false;
    let proto: object | null = null;
    try {
      isArray = Array.isArray(obj); // throws for a revoked Proxy
      if (!isArray) proto = Object.getPrototypeOf(obj) as object | null;
    } catch (error) {
      return this.unreadable(path, error);
    }
    if (!isArray && proto !== Object.prototype && proto !== null) {
      try {
        return this.encodeSpecial(obj, proto, path, depth);
      } catch (error) {
        // Nested values guard their own reads: what lands here is this object's (a fake Map's size, an Error's getter).
        if (this.isOwn(error)) throw error;
        return this.unreadable(path, error);
      }
    }
    this.active.add(obj);
    try {
      return isArray ? this.copyArray(obj as unknown[], path, depth) : this.copyObject(obj as Record<string, unknown>, path, depth);
    } finally {
      this.active.delete(obj);
    }
  }

  private copyArray(arr: unknown[], path: PathNode | null, depth: number): unknown {
    let n: unknown;
    try {
      n = arr.length;
    } catch (error) {
      return this.unreadable(path, error);
    }
    // A Proxy's get trap may answer anything for the length.
    if (typeof n !== 'number' || !(n >= 0 && n <= 0xffff_ffff) || n % 1 !== 0) {
      return this.unreadable(path, new RangeError('its length is not a valid array length'));
    }
    const out: unknown[] = [];
    for (let i = 0; i < n; i++) {
      let item: unknown;
      try {
        item = arr[i];
      } catch (error) {
        out.push(this.unreadable({ parent: path, key: i, kind: 'index' }, error));
        continue;
      }
      out.push(isPlainPrimitive(item) ? item : this.encode(item, { parent: path, key: i, kind: 'index' }, depth + 1));
    }
    return out;
  }

  private copyObject(obj: Record<string, unknown>, path: PathNode | null, depth: number): unknown {
    let keys: string[];
    let symbol: symbol | undefined;
    try {
      keys = Object.keys(obj); // a Proxy's ownKeys and getOwnPropertyDescriptor traps
      if (this.checkSymbols) symbol = Object.getOwnPropertySymbols(obj)[0];
    } catch (error) {
      return this.unreadable(path, error);
    }
    if (symbol !== undefined) this.fail(path, `it has a symbol-keyed property (${String(symbol)})`, '');
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      let item: unknown;
      try {
        item = obj[k];
      } catch (error) {
        defineKey(out, k, this.unreadable({ parent: path, key: k, kind: 'prop' }, error));
        continue;
      }
      defineKey(out, k, isPlainPrimitive(item) ? item : this.encode(item, { parent: path, key: k, kind: 'prop' }, depth + 1));
    }
    return keys.includes(TAG) ? { $t: 'Object', v: out } : out;
  }
}

/** A function's name, or '' when it has none or reading it throws (a revoked Proxy, a throwing static getter). */
function functionName(fn: object): string {
  try {
    const name = (fn as { name?: unknown }).name;
    return typeof name === 'string' ? name : '';
  } catch {
    return '';
  }
}

/** The class name shown for an instance, read without ever throwing. */
function className(proto: object): string {
  try {
    const name = (proto as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof name === 'string' && name !== '' ? name : 'object';
  } catch {
    return 'object';
  }
}

/** The message of a thrown value, for a placeholder or an error message; never throws itself. */
function describeThrown(error: unknown): string {
  let text: string;
  try {
    const message = error instanceof Error ? (error.message as unknown) : error;
    text = typeof message === 'string' && message !== '' ? message : String(message === '' ? error : message);
  } catch {
    text = 'an error that cannot be read either';
  }
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

/** A shallow copy of `obj`'s enumerable own string keys (`keys`), with the same values. */
function shallowCopy(obj: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  // Object.assign is fast and keeps a fast-mode shape, but would *set* an own "__proto__" key, i.e.
  // change the copy's prototype.
  if (!Object.prototype.hasOwnProperty.call(obj, '__proto__')) return Object.assign({}, obj);
  const out: Record<string, unknown> = {};
  for (const key of keys) defineKey(out, key, obj[key]);
  return out;
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : `${n}`);

/**
 * `new Date(ms).toISOString()`, computed here for 1970 to 9999 (V8's own takes ~1 µs a call, most
 * of a checkpoint's cost for a context full of dates); other instants go to V8's.
 */
function isoString(ms: number): string {
  if (!(ms >= 0 && ms < 253_402_300_800_000)) return new Date(ms).toISOString();
  const days = Math.floor(ms / 86_400_000);
  let rest = ms - days * 86_400_000;
  // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm; eras of 400 years from 0000-03-01).
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const sec = Math.floor(rest / 1000);
  const milli = rest - sec * 1000;
  return `${year}-${pad2(month)}-${pad2(day)}T${pad2(h)}:${pad2(m)}:${pad2(sec)}.${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}

/** A value JSON carries exactly as it is: a string, a boolean or a finite number other than -0. */
function isPlainPrimitive(v: unknown): boolean {
  const t = typeof v;
  return t === 'string' || t === 'boolean' || (t === 'number' && Number.isFinite(v) && (v !== 0 || 1 / (v as number) > 0));
}

/** Sets a key without ever touching a prototype (`__proto__` as a data key stays data). */
function defineKey(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/**
 * Encodes `value` as JSON text, tagging what JSON cannot carry (see the module comment).
 *
 * @example
 * ```ts
 * serialize({ n: NaN, big: 10n ** 20n }); // '{"n":{"$t":"num","v":"NaN"},"big":{"$t":"bigint","v":"100000000000000000000"}}'
 * serialize({ f() {} }, { mode: 'lenient' }); // '{"f":"[Function f]"}'
 * ```
 */
export function serialize(value: unknown, options: SerializeOptions = {}): string {
  const mode = options.mode === 'lenient' ? 'lenient' : 'strict';
  const rootName = options.rootName ?? 'context';
  if (options.maxBytes !== undefined && mode === 'lenient') {
    try {
      return fastText(budgeted(new Encoder(mode, rootName, false), options.maxBytes), value)
        ?? carefulText(budgeted(new Encoder(mode, rootName, true), options.maxBytes), value);
    } catch (error) {
      if (error === TOO_BIG) return truncationMarker(options.maxBytes);
      throw error;
    }
  }
  return fastText(new Encoder(mode, rootName, false), value) ?? carefulText(new Encoder(mode, rootName, true), value);
}

function budgeted(encoder: Encoder, maxBytes: number): Encoder {
  encoder.budget = maxBytes;
  return encoder;
}

/**
 * The fast pass: the tree shares every unchanged plain object and array with `value`, and
 * JSON.stringify reads those again. Undefined when user code threw (a getter, a Proxy trap, a
 * built-in given a fake) or gave no text; a strict failure of the encoder itself is thrown.
 */
function fastText(encoder: Encoder, value: unknown): string | undefined {
  try {
    const text = JSON.stringify(encoder.encode(value, null, 0)) as string | undefined;
    return typeof text === 'string' ? text : undefined;
  } catch (error) {
    if (encoder.isOwn(error)) throw error;
    return undefined;
  }
}

/** The careful pass (`encoder` in copy mode): reads each value once, guarded, and runs no user code while writing. */
function carefulText(encoder: Encoder, value: unknown): string {
  try {
    return JSON.stringify(encoder.encode(value, null, 0));
  } catch (error) {
    if (encoder.isOwn(error)) throw error;
    // No user code runs here any more: the text would be longer than a string can be, or the stack ran out.
    return JSON.stringify(encoder.unreadable(null, error));
  }
}

/**
 * Like {@link serialize}, but also tells whether the text restores the value exactly: it writes
 * lenient placeholders and is exact when the strict mode would have written the same text. Never
 * throws, whatever the value (throwing getters and Proxy traps, revoked Proxies, cycles, any depth).
 * Used for run inputs and outputs, which must always be recorded but are only replayed when exact.
 *
 * @example
 * ```ts
 * serializeBestEffort({ a: 1 });        // { text: '{"a":1}', exact: true }
 * serializeBestEffort({ a: () => 1 });  // { text: '{"a":"[Function a]"}', exact: false }
 * ```
 */
export function serializeBestEffort(value: unknown, options: { maxBytes?: number } = {}): { text: string; exact: boolean } {
  const maxBytes = options.maxBytes ?? Infinity;
  try {
    // One lenient pass that notes whether strict would have refused (not a strict pass, then a lenient one).
    const fast = budgeted(new Encoder('bestEffort', 'context', false), maxBytes);
    const text = fastText(fast, value);
    if (text !== undefined) return { text, exact: fast.exact };
    const careful = budgeted(new Encoder('bestEffort', 'context', true), maxBytes);
    return { text: carefulText(careful, value), exact: careful.exact };
  } catch (error) {
    if (error === TOO_BIG) return { text: truncationMarker(maxBytes), exact: false };
    // Not reached (the lenient passes do not throw): the last guard that a run's end gets recorded.
    return { text: JSON.stringify(`[Unreadable: ${describeThrown(error)}]`), exact: false };
  }
}

/**
 * Decodes text written by {@link serialize}, rebuilding every tagged value.
 *
 * @example
 * ```ts
 * deserialize('{"d":{"$t":"Date","v":"1970-01-01T00:00:00.000Z"}}').d instanceof Date; // true
 * ```
 */
export function deserialize(text: string): unknown {
  const tree = JSON.parse(text) as unknown;
  // Fast path: text without a tag needs no walk at all.
  if (!text.includes('"$t"')) return tree;
  return revive(tree);
}

/** Rebuilds tagged values in a parsed tree (mutates the freshly parsed containers in place). */
export function revive(node: unknown): unknown {
  if (node === null || typeof node !== 'object') return node;
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) node[i] = revive(node[i]);
    return node;
  }
  const obj = node as Record<string, unknown>;
  if (typeof obj[TAG] === 'string' && Object.prototype.hasOwnProperty.call(obj, TAG)) return reviveTagged(obj[TAG] as string, obj.v);
  for (const k of Object.keys(obj)) obj[k] = revive(obj[k]);
  return obj;
}

function reviveTagged(tag: string, v: unknown): unknown {
  switch (tag) {
    case 'undef':
      return undefined;
    case 'num':
      return v === '-0' ? -0 : Number(v);
    case 'bigint':
      return BigInt(v as string);
    case 'Date':
      return new Date(v === null ? Number.NaN : (v as string));
    case 'Map':
      return new Map((v as [unknown, unknown][]).map(([k, val]) => [revive(k), revive(val)]));
    case 'Set':
      return new Set((v as unknown[]).map(revive));
    case 'Object': {
      // The wrapped object owns a `$t` key of its own: revive its values, never the object itself.
      const obj = v as Record<string, unknown>;
      for (const k of Object.keys(obj)) obj[k] = revive(obj[k]);
      return obj;
    }
    case 'RegExp': {
      const [source, flags] = v as [string, string];
      return new RegExp(source, flags);
    }
    case 'Error':
      return deserializeError(revive(v) as SerializedError);
    case 'ArrayBuffer':
      return bytesOf(v as string).buffer;
    case 'Buffer':
      return Buffer.from(v as string, 'base64');
    case 'DataView':
      return new DataView(bytesOf(v as string).buffer);
    default: {
      const ctor = TYPED_ARRAYS[tag];
      if (ctor) return new ctor(bytesOf(v as string).buffer);
      throw new WpipeError('WPIPE_ERR_CHECKPOINT_SERIALIZE', `cannot read a checkpoint value tagged '${tag}': unknown tag (written by a newer wpipe?)`, {
        details: { tag },
      });
    }
  }
}

/** Decodes base64 into a fresh, exactly sized, aligned ArrayBuffer (pooled Buffers are neither). */
function bytesOf(b64: string): { buffer: ArrayBuffer } {
  const src = Buffer.from(b64, 'base64');
  const buffer = new ArrayBuffer(src.length);
  new Uint8Array(buffer).set(src);
  return { buffer };
}
