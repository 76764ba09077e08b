/**
 * What crosses between the parent and a worker (a piscina thread or a child process) for one step
 * attempt, and the code on both ends that builds and reads it. Both executors (threads.ts,
 * processes.ts) and both worker entries (thread-worker.ts, process-worker.ts) use this module, so a
 * step behaves the same wherever it runs.
 *
 * Out: the module URL and export name of the step, the context (by structured clone; with
 * `StepCall.transfer` its ArrayBuffers are moved, threads only), and the plain fields of `info`.
 * Back: the step's return value, the context as the step left it (in-place changes come back as they
 * do in-process: the parent writes changed keys into `call.context` and deletes keys the step
 * deleted; a key whose value is structurally unchanged keeps the parent's own object, so a Parallel
 * sibling's write to it is not overwritten by a stale copy), or the error, serialized with class,
 * code, errorCode, message, stack and cause chain (src/errors.ts), or a non-Error thrown value as is.
 * Lines the step writes through `info.logger` travel as {@link LogMessage}s and are written to the
 * pipeline's logger; a reply counts them, so the parent can hand them all over before it settles the
 * call even when they travel on another channel (piscina's task port and the thread's parentPort are
 * two channels).
 *
 * @example
 * ```ts
 * // parent
 * const req = encodeRequest(call, 7);
 * const reply = await send(req);              // an AttemptReply from the worker
 * const value = applyReply(call, reply);      // writes the context back; throws the step's error
 * // worker
 * const reply = await runAttempt(req, (line) => post(line), signal);
 * ```
 */
import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { types } from 'node:util';
import {
  TaskError, WpipeError, describeType, deserializeError, serializeError, type SerializedError,
} from '../errors.js';
import type { StepCall, StepCallLogger } from './executor.js';
import { importModule } from '../dynamic-import.js';

/** One attempt of one step, as sent to a worker. */
export interface AttemptRequest {
  /** Call id, unique in the parent process; log lines and the reply carry it. */
  readonly id: number;
  readonly moduleUrl: string;
  readonly exportName: string;
  readonly context: Record<string, unknown>;
  readonly attempt: number;
  readonly runId: string;
  readonly stepName: string;
  readonly stepVersion: string;
  /** Move the reply's ArrayBuffers back instead of copying them (threads). */
  readonly transfer: boolean;
}

/** The step's return value as it crosses back. */
export type EncodedReturn =
  /** undefined, null, a plain object or a primitive: structured clone keeps what the engine checks. */
  | { readonly kind: 'value'; readonly value: unknown }
  /** The step returned the context it was given (the engine merges nothing then). */
  | { readonly kind: 'context' }
  /**
   * Something structured clone would turn into another type (a class instance becomes a plain
   * object) or cannot carry (a function): only its type name crosses, so the engine still refuses
   * it with WPIPE_ERR_TASK_RETURN naming that type, as it does in-process.
   */
  | { readonly kind: 'other'; readonly typeName: string };

/** A failure as it crosses back. */
export type EncodedFailure =
  | { readonly kind: 'error'; readonly error: SerializedError }
  /** A non-Error value was thrown and structured clone can carry it: it is rethrown as is. */
  | { readonly kind: 'thrown'; readonly value: unknown };

/** What a worker answers for one attempt (a thread adds its id: the reply can overtake its "started" message). */
export type AttemptReply = (
  | {
    readonly id: number; readonly ok: true; readonly result: EncodedReturn;
    readonly context: Record<string, unknown>; readonly logs: number;
  }
  | {
    readonly id: number; readonly ok: false; readonly failure: EncodedFailure;
    /** The context as the failed attempt left it (a retry sees its in-place changes, as in-process); absent if it cannot cross. */
    readonly context: Record<string, unknown> | undefined; readonly logs: number;
  }
) & { readonly worker?: string };

/** The property that marks a log line (and holds its call id). */
export const LOG_TAG = '__wpipeLog';

/** The property that marks a thread worker's "started" message (and holds its call id). */
export const STARTED_TAG = '__wpipeStarted';

/** A thread worker has begun an attempt (see StepCall.onStarted). */
export interface StartedMessage {
  readonly [STARTED_TAG]: number;
  /** 'thread <threadId>'. */
  readonly worker: string;
}

/** Whether a message from a thread is a {@link StartedMessage}. */
export function isStartedMessage(m: unknown): m is StartedMessage {
  return typeof m === 'object' && m !== null && typeof (m as Record<string, unknown>)[STARTED_TAG] === 'number';
}

/** One line written through `info.logger` in a worker. */
export interface LogMessage {
  readonly [LOG_TAG]: number;
  readonly level: LogLevel;
  readonly obj: object | string;
  readonly msg: string | undefined;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/**
 * Whether a message is a log line from a worker.
 *
 * @example
 * ```ts
 * pool.on('message', (m) => { if (isLogMessage(m)) route(m); });
 * ```
 */
export function isLogMessage(m: unknown): m is LogMessage {
  return typeof m === 'object' && m !== null && typeof (m as Record<string, unknown>)[LOG_TAG] === 'number';
}

// ---------------------------------------------------------------------------------------------
// Parent side.

/**
 * The request for one attempt (the context is sent as is: the transport clones it).
 *
 * @example
 * ```ts
 * pool.run(encodeRequest(call, nextId++), { signal: call.signal });
 * ```
 */
export function encodeRequest(call: StepCall, id: number): AttemptRequest {
  const ref = call.moduleRef;
  if (ref === undefined) {
    throw new WpipeError('WPIPE_ERR_TASK_NOT_ADDRESSABLE', `step '${call.info.stepName}' has no module reference and cannot run in a worker`, {
      details: { stepName: call.info.stepName },
    });
  }
  return {
    id, moduleUrl: ref.moduleUrl, exportName: ref.exportName, context: call.context,
    attempt: call.info.attempt, runId: call.info.runId, stepName: call.info.stepName,
    stepVersion: call.info.stepVersion ?? '', transfer: call.transfer === true,
  };
}

/**
 * Applies a worker's reply to the call: writes the context back (changed keys, deleted keys) and
 * returns the step's value for the engine to merge, or throws the step's error rebuilt.
 *
 * @example
 * ```ts
 * return applyReply(call, reply);
 * ```
 */
export function applyReply(call: StepCall, reply: AttemptReply): unknown {
  if (reply.context !== undefined) writeBack(call.context, reply.context);
  if (reply.ok) return decodeReturn(reply.result, call.context);
  throw decodeFailure(reply.failure);
}

/** Rebuilds a failure: an Error with its class, code and cause chain, or the thrown value itself. */
export function decodeFailure(f: EncodedFailure): unknown {
  return f.kind === 'thrown' ? f.value : deserializeError(f.error);
}

function decodeReturn(r: EncodedReturn, context: Record<string, unknown>): unknown {
  if (r.kind === 'value') return r.value;
  if (r.kind === 'context') return context;
  return placeholderOf(r.typeName);
}

/** A value whose `describeType` is `typeName`, for the engine's "returned X" error. */
function placeholderOf(typeName: string): unknown {
  if (typeName === 'array') return [];
  if (typeName === 'function') return function returned(): void {};
  if (typeName === 'symbol') return Symbol('returned');
  const name = /^[A-Za-z_$][\w$]*$/.test(typeName) ? typeName : 'Object';
  const Named = { [name]: class {} }[name]!;
  return new Named();
}

/**
 * Writes `after` (the context as the worker left it) into `target`: keys the step deleted are
 * deleted, keys whose value changed get the new value, keys structurally equal keep the parent's
 * object (its identity is how the engine's Parallel merge tells a branch's changes apart).
 */
function writeBack(target: Record<string, unknown>, after: Record<string, unknown>): void {
  for (const k of Object.keys(target)) if (!Object.prototype.hasOwnProperty.call(after, k)) delete target[k];
  for (const k of Object.keys(after)) {
    const v = after[k];
    if (!Object.prototype.hasOwnProperty.call(target, k) || !sameValue(target[k], v, null)) target[k] = v;
  }
}

/**
 * Structural equality of two values as structured clone sees them (own enumerable data, Map and
 * Set entries, typed array bytes, Date time, RegExp source). A detached buffer differs from any
 * other, so moved buffers always come back. Cycles count as equal where they meet again.
 */
export function sameValue(a: unknown, b: unknown, seen: Map<object, object> | null): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (seen !== null && seen.get(a) === b) return true;
  (seen ??= new Map()).set(a, b);
  if (ArrayBuffer.isView(a)) {
    const v = b as ArrayBufferView;
    if (types.isDataView(a) !== types.isDataView(v) || a.byteLength !== v.byteLength) return false;
    return bytesEqual(a.buffer, a.byteOffset, v.buffer, v.byteOffset, a.byteLength) && (types.isDataView(a) || (a as Uint8Array).length === (v as Uint8Array).length);
  }
  if (types.isAnyArrayBuffer(a)) {
    const bb = b as ArrayBuffer;
    return a.byteLength === bb.byteLength && bytesEqual(a, 0, bb, 0, a.byteLength);
  }
  if (a instanceof Date) return a.getTime() === (b as Date).getTime();
  if (a instanceof RegExp) return String(a) === String(b);
  if (a instanceof Map) {
    const m = b as Map<unknown, unknown>;
    if (a.size !== m.size) return false;
    const ea = [...a.entries()];
    const eb = [...m.entries()];
    for (let i = 0; i < ea.length; i++) {
      if (!sameValue(ea[i]![0], eb[i]![0], seen) || !sameValue(ea[i]![1], eb[i]![1], seen)) return false;
    }
    return true;
  }
  if (a instanceof Set) {
    const s = b as Set<unknown>;
    if (a.size !== s.size) return false;
    const ea = [...a];
    const eb = [...s];
    for (let i = 0; i < ea.length; i++) if (!sameValue(ea[i], eb[i], seen)) return false;
    return true;
  }
  if (types.isBoxedPrimitive(a)) return Object.is(a.valueOf(), (b as { valueOf(): unknown }).valueOf());
  if (a instanceof Error) {
    const e = b as Error;
    if (a.name !== e.name || a.message !== e.message) return false;
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], seen)) return false;
  }
  return true;
}

function bytesEqual(a: ArrayBufferLike, ao: number, b: ArrayBufferLike, bo: number, n: number): boolean {
  // Buffer#equals is a memcmp: about 30 µs for 1 MiB, against milliseconds for a JS loop.
  return Buffer.from(a, ao, n).equals(Buffer.from(b, bo, n));
}

/**
 * The ArrayBuffers a context holds (directly, or in typed arrays, DataViews and nested plain objects,
 * arrays, Maps and Sets), each once, for a transfer list. SharedArrayBuffers are shared, never moved.
 *
 * @example
 * ```ts
 * pool.run(req, { transferList: collectTransferables(ctx) });
 * ```
 */
export function collectTransferables(value: unknown): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const seen = new Set<object>();
  const walk = (v: unknown, depth: number): void => {
    if (typeof v !== 'object' || v === null || depth > 64 || seen.has(v)) return;
    seen.add(v);
    if (ArrayBuffer.isView(v)) {
      if (!types.isSharedArrayBuffer(v.buffer)) out.add(v.buffer as ArrayBuffer);
      return;
    }
    if (types.isArrayBuffer(v)) {
      out.add(v);
      return;
    }
    if (v instanceof Map) {
      for (const [k, x] of v) { walk(k, depth + 1); walk(x, depth + 1); }
      return;
    }
    if (v instanceof Set) {
      for (const x of v) walk(x, depth + 1);
      return;
    }
    for (const k of Object.keys(v)) walk((v as Record<string, unknown>)[k], depth + 1);
  };
  walk(value, 0);
  return [...out];
}

// ---------------------------------------------------------------------------------------------
// Both sides: what structured clone refuses.

/**
 * The path of the first value structured clone would refuse (a function, a symbol, a Promise, a
 * WeakMap, a Proxy …), e.g. `ctx.db.query`, or undefined when the whole value can cross. Checked
 * before a thread's task or reply is posted: piscina posts them itself, where a DataCloneError
 * would kill the thread (reply) or escape as an uncaught exception (a queued task).
 *
 * @example
 * ```ts
 * findUncloneable({ a: 1, f() {} }, 'ctx'); // 'ctx.f (function)'
 * ```
 */
export function findUncloneable(value: unknown, root: string): string | undefined {
  let seen: Set<object> | undefined;
  const walk = (v: unknown, path: string, depth: number): string | undefined => {
    if (typeof v === 'function') return `${path} (function)`;
    if (typeof v === 'symbol') return `${path} (symbol)`;
    if (typeof v !== 'object' || v === null) return undefined;
    if (types.isProxy(v)) return `${path} (Proxy)`;
    if (ArrayBuffer.isView(v) || types.isAnyArrayBuffer(v) || v instanceof Date || v instanceof RegExp || types.isBoxedPrimitive(v)) {
      return undefined;
    }
    if (types.isPromise(v) || v instanceof WeakMap || v instanceof WeakSet || v instanceof WeakRef || types.isGeneratorObject(v)) {
      return `${path} (${describeType(v)})`;
    }
    if (depth > 1000) return undefined; // the transport reports what lies deeper
    seen ??= new Set();
    if (seen.has(v)) return undefined;
    seen.add(v);
    if (v instanceof Map) {
      for (const [k, x] of v) {
        const bad = walk(k, `${path}.<key>`, depth + 1) ?? walk(x, `${path}.get(${typeof k === 'string' ? JSON.stringify(k) : '…'})`, depth + 1);
        if (bad !== undefined) return bad;
      }
      return undefined;
    }
    if (v instanceof Set) {
      for (const x of v) {
        const bad = walk(x, `${path}.<item>`, depth + 1);
        if (bad !== undefined) return bad;
      }
      return undefined;
    }
    const isArray = Array.isArray(v);
    for (const k of Object.keys(v)) {
      const bad = walk((v as Record<string, unknown>)[k], isArray ? `${path}[${k}]` : `${path}.${k}`, depth + 1);
      if (bad !== undefined) return bad;
    }
    return undefined;
  };
  return walk(value, root, 0);
}

/**
 * The error for a value that cannot cross to or from a worker.
 *
 * @example
 * ```ts
 * throw cloneError('thread', 'load', 'to', 'ctx.db (function)');
 * ```
 */
export function cloneError(where: 'thread' | 'process', stepName: string, direction: 'to' | 'from', path: string, cause?: unknown): WpipeError {
  const what = direction === 'to' ? `the context of step '${stepName}' cannot be sent to a worker ${where}` : `step '${stepName}' left a value that cannot come back from its worker ${where}`;
  return new WpipeError(
    'WPIPE_ERR_WORKER_CLONE',
    `${what}: ${path} cannot be copied by structured clone; keep such values out of the context of steps that run in workers, or run the step inline`,
    { cause, details: { stepName, path, executor: where === 'thread' ? 'threads' : 'processes' } },
  );
}

// ---------------------------------------------------------------------------------------------
// Worker side.

type Loaded = Record<string, unknown>;
const modules = new Map<string, Promise<Loaded>>();

/** The module a request names, imported once per worker and cached (a failed import is retried next time). */
function loadModule(moduleUrl: string): Promise<Loaded> {
  let p = modules.get(moduleUrl);
  if (p === undefined) {
    const url = isAbsolute(moduleUrl) ? pathToFileURL(moduleUrl).href : moduleUrl;
    p = importModule<Loaded>(url);
    modules.set(moduleUrl, p);
    p.catch(() => modules.delete(moduleUrl));
  }
  return p;
}

type StepFnLike = (ctx: Record<string, unknown>, info: unknown) => unknown;

/** Steps already resolved, by module URL and export: the common call takes no await to find its function. */
const resolved = new Map<string, StepFnLike>();

async function resolveStep(req: AttemptRequest): Promise<StepFnLike> {
  let mod: Loaded;
  try {
    mod = await loadModule(req.moduleUrl);
  } catch (e) {
    throw new WpipeError('WPIPE_ERR_TASK_NOT_ADDRESSABLE', `step '${req.stepName}': the worker could not import ${req.moduleUrl}: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e, details: { stepName: req.stepName, moduleUrl: req.moduleUrl, exportName: req.exportName },
    });
  }
  const exported = mod[req.exportName];
  if (typeof exported !== 'function') {
    throw new WpipeError(
      'WPIPE_ERR_TASK_NOT_ADDRESSABLE',
      `step '${req.stepName}': ${req.moduleUrl} has no function export '${req.exportName}' (found ${describeType(exported)})`,
      { details: { stepName: req.stepName, moduleUrl: req.moduleUrl, exportName: req.exportName } },
    );
  }
  // A step(...) wrapper: call the function it wraps (one frame less); calling the wrapper works too.
  const inner = (exported as { meta?: { fn?: unknown } }).meta?.fn;
  const fn = (typeof inner === 'function' ? inner : exported) as StepFnLike;
  resolved.set(`${req.moduleUrl}#${req.exportName}`, fn);
  return fn;
}

const NEVER = new AbortController().signal;

/**
 * The `info` a step receives in a worker: the plain fields of the parent's, and a logger (made on
 * first use: most steps never log) whose lines go to the parent, counted for the reply.
 */
class WorkerInfo {
  readonly attempt: number;
  readonly runId: string;
  readonly stepName: string;
  readonly stepVersion: string;
  readonly #id: number;
  readonly #post: (line: LogMessage) => void;
  #logger: Record<LogLevel, (obj: object | string, msg?: string) => void> | undefined;
  #sent = 0;

  constructor(req: AttemptRequest, post: (line: LogMessage) => void, readonly signal: AbortSignal) {
    this.attempt = req.attempt;
    this.runId = req.runId;
    this.stepName = req.stepName;
    this.stepVersion = req.stepVersion;
    this.#id = req.id;
    this.#post = post;
  }

  get logger(): Record<LogLevel, (obj: object | string, msg?: string) => void> {
    return (this.#logger ??= { debug: this.#emit('debug'), info: this.#emit('info'), warn: this.#emit('warn'), error: this.#emit('error') });
  }

  linesSent(): number {
    return this.#sent;
  }

  #emit(level: LogLevel): (obj: object | string, msg?: string) => void {
    return (obj, msg) => {
      try {
        this.#post({ [LOG_TAG]: this.#id, level, obj, msg });
      } catch {
        // Fields structured clone refuses: send them as text rather than lose the line.
        let text: string;
        try { text = JSON.stringify(obj); } catch { text = '[unserializable fields]'; }
        try {
          this.#post({ [LOG_TAG]: this.#id, level, obj: msg === undefined ? text : `${msg} ${text}`, msg: undefined });
        } catch {
          return; // the channel is gone (the parent is going away): nothing to count
        }
      }
      this.#sent++;
    };
  }
}

/**
 * Runs one attempt in a worker and builds the reply; never throws. `post` sends a log line to the
 * parent; `signal` is what the step sees as `info.signal` (a process aborts it before it is killed;
 * a thread is terminated without warning, so it passes none).
 *
 * @example
 * ```ts
 * export default (req: AttemptRequest) => runAttempt(req, (m) => parentPort!.postMessage(m));
 * ```
 */
export async function runAttempt(
  req: AttemptRequest, post: (line: LogMessage) => void, signal: AbortSignal = NEVER,
): Promise<AttemptReply> {
  const ctx = req.context;
  const info = new WorkerInfo(req, post, signal);
  let value: unknown;
  try {
    const fn = resolved.get(`${req.moduleUrl}#${req.exportName}`) ?? await resolveStep(req);
    value = fn(ctx, info);
    if (value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<unknown>).then === 'function') {
      value = await value;
    }
  } catch (e) {
    const bad = findUncloneable(ctx, 'ctx');
    return { id: req.id, ok: false, failure: encodeFailure(e), context: bad === undefined ? ctx : undefined, logs: info.linesSent() };
  }
  const result = encodeReturn(value, ctx);
  const bad = findUncloneable(ctx, 'ctx') ?? (result.kind === 'value' ? findUncloneable(result.value, 'return value') : undefined);
  if (bad !== undefined) {
    return { id: req.id, ok: false, failure: { kind: 'error', error: serializeError(cloneError(whereAmI(), req.stepName, 'from', bad)) }, context: undefined, logs: info.linesSent() };
  }
  return { id: req.id, ok: true, result, context: ctx, logs: info.linesSent() };
}

function whereAmI(): 'thread' | 'process' {
  return typeof process.send === 'function' ? 'process' : 'thread';
}

function encodeReturn(value: unknown, ctx: Record<string, unknown>): EncodedReturn {
  if (value === ctx) return { kind: 'context' };
  if (value === undefined || value === null) return { kind: 'value', value };
  const t = typeof value;
  if (t === 'string' || t === 'number' || t === 'boolean' || t === 'bigint') return { kind: 'value', value };
  if (t === 'object') {
    const proto = Object.getPrototypeOf(value);
    if (proto === Object.prototype || proto === null) return { kind: 'value', value };
  }
  return { kind: 'other', typeName: describeType(value) };
}

function encodeFailure(e: unknown): EncodedFailure {
  if (e instanceof Error) return { kind: 'error', error: crossable(serializeError(e)) };
  if (findUncloneable(e, 'thrown value') === undefined) return { kind: 'thrown', value: e };
  return { kind: 'error', error: serializeError(new TaskError(`a step threw a ${describeType(e)} that cannot cross from a worker`)) };
}

/** A serialized error whose `details` (anything an error carried) structured clone can copy: JSON text of them otherwise. */
function crossable(s: SerializedError): SerializedError {
  const out: SerializedError = { ...s };
  if (out.details !== undefined && findUncloneable(out.details, 'details') !== undefined) {
    let text: string;
    try { text = JSON.stringify(out.details) ?? 'undefined'; } catch { text = '[unserializable details]'; }
    out.details = { unserializable: text };
  }
  if (out.cause !== undefined) out.cause = crossable(out.cause);
  return out;
}

/**
 * Writes a worker's log line to the pipeline's logger, as the step wrote it.
 *
 * @example
 * ```ts
 * writeLog(call.info.logger, line);
 * ```
 */
export function writeLog(logger: StepCallLogger | undefined, line: LogMessage): void {
  if (logger === undefined || !LEVELS.includes(line.level)) return;
  try {
    if (line.msg === undefined) logger[line.level](line.obj);
    else logger[line.level](line.obj, line.msg);
  } catch {
    // a logger that throws must not fail the step that logged
  }
}
