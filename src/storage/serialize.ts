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
 * {@link MAX_DEPTH} — makes the strict mode (checkpoints) throw a `WpipeError` with code
 * `WPIPE_ERR_CHECKPOINT_SERIALIZE` whose message names the key path (`orders[3].when`). The lenient
 * mode (run history, Wsqlite) writes a readable placeholder such as `"[Function load]"` instead, so
 * that recording history never fails a run.
 *
 * Known, deliberate limits: shared references are written once per occurrence (they come back as
 * separate copies); array holes come back as `undefined`; symbol-keyed and non-enumerable
 * properties are ignored; typed-array bytes are stored little-endian (the byte order of every
 * platform Node supports).
 *
 * @example
 * ```ts
 * const text = serialize({ when: new Date(0), seen: new Set([1n]) });
 * deserialize(text); // → { when: Date(1970-01-01), seen: Set { 1n } }
 * serialize({ cb: () => 1 }); // throws WPIPE_ERR_CHECKPOINT_SERIALIZE: "cb is a function …"
 * ```
 */
import { WpipeError, deserializeError, serializeError, type SerializedError } from '../errors.js';

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
}

const TAG = '$t';
const SUPPORTED =
  'plain objects, arrays, strings, numbers, booleans, null, undefined, BigInt, Date, Map, Set, RegExp, Error, typed arrays, DataView and ArrayBuffer';

type TypedArray =
  | Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array | Int32Array | Uint32Array
  | Float32Array | Float64Array | BigInt64Array | BigUint64Array;
type TypedArrayCtor = new (buffer: ArrayBuffer) => TypedArray;

const TYPED_ARRAYS: Record<string, TypedArrayCtor> = {
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array,
};

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

class Encoder {
  readonly lenient: boolean;
  readonly rootName: string;
  private readonly active = new Set<object>();

  constructor(options: SerializeOptions) {
    this.lenient = options.mode === 'lenient';
    this.rootName = options.rootName ?? 'context';
  }

  private fail(path: PathNode | null, what: string, placeholder: string): string {
    if (this.lenient) return placeholder;
    const where = formatPath(path, this.rootName);
    throw new WpipeError(
      'WPIPE_ERR_CHECKPOINT_SERIALIZE',
      `cannot save ${where} in a checkpoint: ${what}; supported are ${SUPPORTED}`,
      { details: { path: where, problem: what } },
    );
  }

  /** Returns `value` itself when JSON carries it as is, or its tagged replacement. */
  encode(value: unknown, path: PathNode | null, depth: number): unknown {
    switch (typeof value) {
      case 'string':
      case 'boolean':
        return value;
      case 'number':
        if (Number.isFinite(value)) return value === 0 && 1 / value < 0 ? { $t: 'num', v: '-0' } : value;
        return { $t: 'num', v: String(value) };
      case 'undefined':
        return { $t: 'undef' };
      case 'bigint':
        return { $t: 'bigint', v: value.toString() };
      case 'function':
        return this.fail(path, `it is a function${value.name ? ` (${value.name})` : ''}`,
          `[Function${value.name ? ` ${value.name}` : ''}]`);
      case 'symbol':
        return this.fail(path, `it is a symbol (${value.toString()})`, `[${value.toString()}]`);
      default:
        break;
    }
    if (value === null) return null;
    const obj = value as object;
    if (depth >= MAX_DEPTH) return this.fail(path, `it is nested deeper than ${MAX_DEPTH} levels`, '[Too deep]');
    if (this.active.has(obj)) return this.fail(path, 'it refers back to itself (a cycle)', '[Circular]');

    const isArray = Array.isArray(obj);
    const proto = isArray ? null : (Object.getPrototypeOf(obj) as object | null);
    if (!isArray && proto !== Object.prototype && proto !== null) return this.encodeSpecial(obj, path, depth);
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
      // Fast path: strings, booleans and ordinary numbers need no path node and no work.
      const enc = isPlainPrimitive(item) ? item : this.encode(item, { parent: path, key: i, kind: 'index' }, depth + 1);
      if (out === undefined && enc !== item) out = arr.slice(0, i);
      if (out !== undefined) out.push(enc);
    }
    return out ?? arr;
  }

  private encodeObject(obj: Record<string, unknown>, path: PathNode | null, depth: number): unknown {
    const keys = Object.keys(obj);
    if (!this.lenient) {
      const symbols = Object.getOwnPropertySymbols(obj);
      if (symbols.length > 0) this.fail(path, `it has a symbol-keyed property (${symbols[0]!.toString()})`, '');
    }
    let out: Record<string, unknown> | undefined;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const item = obj[k];
      const enc = isPlainPrimitive(item) ? item : this.encode(item, { parent: path, key: k, kind: 'prop' }, depth + 1);
      if (enc !== item) {
        if (out === undefined) {
          // Clone once with Object.assign (fast, keeps a fast-mode shape), then overwrite changed keys.
          // Object.assign would *set* an own "__proto__" key, i.e. change the clone's prototype.
          if (Object.prototype.hasOwnProperty.call(obj, '__proto__')) {
            out = {};
            for (const key of keys) defineKey(out, key, obj[key]);
          } else {
            out = Object.assign({}, obj);
          }
        }
        defineKey(out, k, enc);
      }
    }
    const result = out ?? obj;
    // A user object owning `$t` would be read back as a tag: wrap it so decoding stays exact.
    return Object.prototype.hasOwnProperty.call(obj, TAG) ? { $t: 'Object', v: result } : result;
  }

  private encodeSpecial(obj: object, path: PathNode | null, depth: number): unknown {
    if (obj instanceof Date) {
      const t = obj.getTime();
      return { $t: 'Date', v: Number.isNaN(t) ? null : isoString(t) };
    }
    if (obj instanceof Map) {
      return this.withActive(obj, () => {
        const entries: unknown[] = [];
        let i = 0;
        for (const [k, v] of obj) {
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
        let i = 0;
        for (const v of obj) {
          items.push(isPlainPrimitive(v) ? v : this.encode(v, { parent: path, key: i, kind: 'setItem' }, depth + 1));
          i++;
        }
        return { $t: 'Set', v: items };
      });
    }
    if (ArrayBuffer.isView(obj)) {
      const view = obj as ArrayBufferView;
      if (view.buffer instanceof ArrayBuffer) {
        const b64 = Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString('base64');
        if (Buffer.isBuffer(view)) return { $t: 'Buffer', v: b64 };
        if (view instanceof DataView) return { $t: 'DataView', v: b64 };
        const name = (Object.getPrototypeOf(view) as { constructor: { name: string } }).constructor.name;
        if (TYPED_ARRAYS[name]) return { $t: name, v: b64 };
      }
    }
    if (obj instanceof ArrayBuffer) return { $t: 'ArrayBuffer', v: Buffer.from(obj).toString('base64') };
    if (obj instanceof RegExp) return { $t: 'RegExp', v: [obj.source, obj.flags] };
    if (obj instanceof Error) {
      // The run's own failures (continueOnError) live in the context: they must survive a checkpoint.
      const data = serializeError(obj);
      return { $t: 'Error', v: this.withActive(obj, () => this.encode(data, { parent: path, key: null, kind: 'error' }, depth + 1)) };
    }
    const name = (Object.getPrototypeOf(obj) as { constructor?: { name?: string } } | null)?.constructor?.name ?? 'object';
    return this.fail(path, `it is an instance of ${name} (class instances cannot be restored)`, `[${name}]`);
  }
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
  const tree = new Encoder(options).encode(value, null, 0);
  return JSON.stringify(tree);
}

/**
 * Like {@link serialize}, but also tells whether the text restores the value exactly: it tries the
 * strict mode first and falls back to lenient placeholders. Used for run inputs and outputs, which
 * must always be recorded but are only replayed when exact.
 *
 * @example
 * ```ts
 * serializeBestEffort({ a: 1 });        // { text: '{"a":1}', exact: true }
 * serializeBestEffort({ a: () => 1 });  // { text: '{"a":"[Function a]"}', exact: false }
 * ```
 */
export function serializeBestEffort(value: unknown): { text: string; exact: boolean } {
  try {
    return { text: serialize(value), exact: true };
  } catch (error) {
    if (error instanceof WpipeError && error.code === 'WPIPE_ERR_CHECKPOINT_SERIALIZE') {
      return { text: serialize(value, { mode: 'lenient' }), exact: false };
    }
    throw error;
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
