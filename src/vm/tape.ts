/**
 * The value tape (see bytecode.ts): how scalar values cross into the wasm and native VMs, and the
 * result tape (contract.ts TapeTag) they cross back in — written here by TapeWriter, read back by
 * readResult, the one reader of both VMs' results. One TapeWriter is reused per prepared program, so
 * encoding a context allocates nothing in the steady state.
 */
import { Tag, Limits, ErrorKind, Reason, TapeTag, SHARED_REF_MIN_STRING } from './contract.js';
import { PyFloat, PyTuple, dictGet, dictKeys, isPlainObject, tagOf } from './values.js';
import { describeType } from '../errors.js';

/** Raised when a value cannot be put on a tape (too deep, too big); carries an error kind and reason. */
export class TapeLimit extends Error {
  constructor(readonly kind: number, readonly reason: number, message: string) {
    super(message);
  }
}

const MAX_TAPE_DEPTH = Limits.MAX_DEPTH;
/** A context tape over Limits.MAX_TAPE_BYTES is a LimitError, as a result tape over it is in both VMs. */
const MAX_TAPE_BYTES = Limits.MAX_TAPE_BYTES;

export class TapeWriter {
  bytes: Uint8Array;
  view: DataView;
  length = 0;
  /**
   * The opaque values of the last context, by id: an OPAQUE payload is `TypeName#id`, so a VM can
   * compare two opaque values by identity (same id) and hand one back for the caller to restore.
   */
  readonly opaques: unknown[] = [];
  private readonly opaqueIds = new Map<unknown, number>();
  /** The context and names of the last context(), until release(): what CONTEXT_REF resolves in. */
  private ctx: Record<string, unknown> | undefined;
  private names: readonly string[] = [];
  private objects: unknown[] | undefined;

  constructor(initial = 1024) {
    this.bytes = new Uint8Array(initial);
    this.view = new DataView(this.bytes.buffer);
  }

  reset(): void {
    this.length = 0;
    if (this.opaques.length > 0) {
      this.opaques.length = 0;
      this.opaqueIds.clear();
    }
  }

  private ensure(extra: number): void {
    const need = this.length + extra;
    if (need <= this.bytes.length) return;
    if (need > MAX_TAPE_BYTES) {
      throw new TapeLimit(ErrorKind.LimitError, Reason.TAPE_TOO_LARGE, 'context value too large to evaluate');
    }
    let size = this.bytes.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }

  tag(t: number): void {
    this.ensure(1);
    this.bytes[this.length++] = t;
  }

  f64(x: number): void {
    this.ensure(8);
    this.view.setFloat64(this.length, x, true);
    this.length += 8;
  }

  u32(x: number): void {
    this.ensure(4);
    this.view.setUint32(this.length, x, true);
    this.length += 4;
  }

  /** u32 length then UTF-16 code units. */
  str(s: string): void {
    const n = s.length;
    this.u32(n);
    this.ensure(n * 2);
    const b = this.bytes;
    let p = this.length;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      b[p++] = c & 0xff;
      b[p++] = c >>> 8;
    }
    this.length = p;
  }

  value(v: unknown, depth = 0): void {
    if (depth > MAX_TAPE_DEPTH) {
      throw new TapeLimit(ErrorKind.LimitError, Reason.DEPTH, 'context value nested too deeply');
    }
    const tag = tagOf(v);
    switch (tag) {
      case Tag.NONE: case Tag.TRUE: case Tag.FALSE:
        this.tag(tag);
        return;
      case Tag.INT:
        this.tag(tag);
        this.f64(v as number);
        return;
      case Tag.FLOAT:
        this.tag(tag);
        this.f64(v instanceof PyFloat ? v.value : (v as number));
        return;
      case Tag.STR:
        this.tag(tag);
        this.str(v as string);
        return;
      case Tag.LIST: case Tag.TUPLE: {
        const items = tag === Tag.LIST ? (v as unknown[]) : (v as PyTuple).items;
        this.tag(tag);
        this.u32(items.length);
        for (let i = 0; i < items.length; i++) this.value(items[i], depth + 1);
        return;
      }
      case Tag.DICT: {
        const obj = v as Record<string, unknown>;
        const keys = dictKeys(obj);
        this.tag(tag);
        this.u32(keys.length);
        for (const k of keys) {
          this.str(k);
          this.value(dictGet(obj, k), depth + 1);
        }
        return;
      }
      default: {
        let id = this.opaqueIds.get(v);
        if (id === undefined) {
          id = this.opaques.length;
          this.opaques.push(v);
          this.opaqueIds.set(v, id);
        }
        this.tag(Tag.OPAQUE);
        this.str(`${describeType(v)}#${id}`);
      }
    }
  }

  /** The context tape of a scalar evaluation: one value per name, MISSING for absent names. */
  context(ctx: Record<string, unknown>, names: readonly string[]): Uint8Array {
    this.reset();
    this.objects = undefined;
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      if (Object.hasOwn(ctx, name)) this.value(ctx[name]);
      else this.tag(Tag.MISSING);
    }
    this.ctx = ctx;
    this.names = names;
    return this.bytes.subarray(0, this.length);
  }

  /**
   * The list, tuple, dict or opaque value number `origin` (from 1, in tape order at every depth) of
   * the last context(): what a CONTEXT_REF in its result refers to. Walks the context once, on first
   * use, exactly as value() encoded it (a dict's data properties only: getters never run).
   */
  contextObject(origin: number): unknown {
    return (this.objects ??= this.walkContext())[origin - 1];
  }

  /** Drops the last context (a host keeps no caller's object past its evaluation). */
  release(): void {
    this.ctx = undefined;
    this.objects = undefined;
  }

  private walkContext(): unknown[] {
    const out: unknown[] = [];
    const visit = (v: unknown): void => {
      switch (tagOf(v)) {
        case Tag.LIST: {
          out.push(v);
          const items = v as unknown[];
          for (let i = 0; i < items.length; i++) visit(items[i]);
          return;
        }
        case Tag.TUPLE:
          out.push(v);
          for (const x of (v as PyTuple).items) visit(x);
          return;
        case Tag.DICT: {
          out.push(v);
          const obj = v as Record<string, unknown>;
          for (const k of dictKeys(obj)) visit(dictGet(obj, k));
          return;
        }
        case Tag.OPAQUE:
          out.push(v);
          return;
        default:
      }
    };
    const ctx = this.ctx ?? {};
    for (const name of this.names) if (Object.hasOwn(ctx, name)) visit(ctx[name]);
    return out;
  }
}

/**
 * Reads a result tape (contract.ts, "The result tape") at byte `at` of `bytes` / `view` into the js
 * evaluator's representation: integral floats boxed as PyFloat (plain numbers inside a dict), tuples
 * as PyTuple, CONTEXT_REF and OPAQUE as the objects of the context `writer` encoded last, SHARED_REF
 * as the value it names. The one reader of the wasm and the native VM's results.
 *
 * @example
 * ```ts
 * const tape = writer.context(ctx, program.names);
 * const n = addon.evaluate(handle, tape, out, fault);
 * const result = readResult(out, new DataView(out.buffer), 0, writer);
 * ```
 */
export function readResult(bytes: Uint8Array, view: DataView, at: number, writer: TapeWriter): unknown {
  const tag = bytes[at];
  switch (tag) {
    case Tag.NONE: return null;
    case Tag.FALSE: return false;
    case Tag.TRUE: return true;
    case Tag.INT: return view.getFloat64(at + 1, true);
    case Tag.FLOAT: {
      const x = view.getFloat64(at + 1, true);
      return Number.isInteger(x) || Object.is(x, -0) ? new PyFloat(x) : x;
    }
    default: return new ResultReader(bytes, view, at, writer).value(false);
  }
}

class ResultReader {
  /** The values numbered for SHARED_REF, in encoding order. */
  private readonly shared: unknown[] = [];

  constructor(
    private readonly bytes: Uint8Array,
    private readonly view: DataView,
    private pos: number,
    private readonly writer: TapeWriter,
  ) {}

  private u32(): number {
    const x = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return x;
  }

  private str(): string {
    const n = this.u32();
    const start = this.pos;
    this.pos += n * 2;
    return readUtf16(this.view, start, n);
  }

  value(inDict: boolean): unknown {
    const tag = this.bytes[this.pos++];
    switch (tag) {
      case Tag.NONE: return null;
      case Tag.FALSE: return false;
      case Tag.TRUE: return true;
      case Tag.INT: case Tag.FLOAT: {
        const x = this.view.getFloat64(this.pos, true);
        this.pos += 8;
        return tag === Tag.FLOAT && !inDict && (Number.isInteger(x) || Object.is(x, -0)) ? new PyFloat(x) : x;
      }
      case Tag.STR: {
        const s = this.str();
        if (s.length >= SHARED_REF_MIN_STRING) this.shared.push(s);
        return s;
      }
      case Tag.LIST: case Tag.TUPLE: {
        const n = this.u32();
        const items = new Array<unknown>(n);
        const v = tag === Tag.LIST ? items : new PyTuple(items);
        if (n > 0) this.shared.push(v);
        for (let i = 0; i < n; i++) items[i] = this.value(inDict);
        return v;
      }
      case Tag.DICT: {
        const n = this.u32();
        const obj: Record<string, unknown> = {};
        if (n > 0) this.shared.push(obj);
        for (let i = 0; i < n; i++) {
          const k = this.str();
          Object.defineProperty(obj, k, { value: this.value(true), enumerable: true, writable: true, configurable: true });
        }
        return obj;
      }
      case Tag.OPAQUE:
        return restoreOpaque(this.str(), this.writer.opaques);
      case TapeTag.CONTEXT_REF:
        return this.writer.contextObject(this.u32());
      case TapeTag.SHARED_REF:
        return this.shared[this.u32()];
      default:
        throw new Error(`corrupt result tape: tag ${String(tag)} at ${this.pos - 1}`);
    }
  }
}

/** The opaque value an OPAQUE payload (`TypeName#id`) refers to, or a placeholder. */
export function restoreOpaque(payload: string, opaques: readonly unknown[]): unknown {
  const hash = payload.lastIndexOf('#');
  const id = hash >= 0 ? Number(payload.slice(hash + 1)) : NaN;
  return Number.isInteger(id) && id >= 0 && id < opaques.length ? opaques[id] : { __opaque__: payload };
}

/** Encodes a list of values (the constant pool, the string table) as one tape. */
export function encodeTape(values: readonly unknown[]): Uint8Array {
  const w = new TapeWriter(256);
  for (const v of values) w.value(v);
  return w.bytes.slice(0, w.length);
}

/** n UTF-16 code units at byte offset start of a tape (in chunks, to bound fromCharCode's arguments). */
export function readUtf16(view: DataView, start: number, n: number): string {
  let out = '';
  for (let i = 0; i < n; i += 8192) {
    const end = Math.min(n, i + 8192);
    const units = new Array<number>(end - i);
    for (let j = i; j < end; j++) units[j - i] = view.getUint16(start + j * 2, true);
    out += String.fromCharCode(...units);
  }
  return out;
}

export { isPlainObject };
