/**
 * Test helpers for the expression suites: which backends to test, how to capture and compare the
 * outcome of an evaluation, and a child-process harness that turns a hang, a crash or a memory
 * blow-up into a failing test that names the input.
 *
 * Backend selection:
 * - `WPIPE_BACKEND=js|wasm|native` (how CI runs the suite): single-backend tests use exactly that one
 *   (a forced backend that cannot load must fail the suite, never be skipped); comparison tests
 *   compare it with js.
 * - unset or `auto`: every backend getBackendInfo() reports as available.
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compileExpression, ExpressionError, getBackendInfo } from '../../src/index.js';

export type BackendName = 'js' | 'wasm' | 'native';
export const ALL_BACKENDS: readonly BackendName[] = ['js', 'wasm', 'native'];

/** The backend forced by WPIPE_BACKEND, if any ('auto' forces nothing). */
export function forcedBackend(): BackendName | undefined {
  const v = process.env.WPIPE_BACKEND;
  return v === 'js' || v === 'wasm' || v === 'native' ? v : undefined;
}

let availableCache: BackendName[] | undefined;

/** Backends getBackendInfo() reports as available (js first). */
export function availableBackends(): BackendName[] {
  if (availableCache) return availableCache;
  const info = getBackendInfo() as unknown as { backends?: Record<string, { available?: boolean }> };
  const out: BackendName[] = [];
  for (const name of ALL_BACKENDS) {
    const status = info.backends?.[name];
    if (status ? status.available === true : probe(name)) out.push(name);
  }
  if (!out.includes('js')) out.unshift('js');
  availableCache = out;
  return out;
}

function probe(name: BackendName): boolean {
  try {
    return compileExpression('1 + 1', { backend: name }).evaluate({}) === 2;
  } catch {
    return false;
  }
}

/** Backends the single-backend suites run on. */
export function backendsUnderTest(): BackendName[] {
  const forced = forcedBackend();
  return forced ? [forced] : availableBackends();
}

/** Backends compared with js by the parity suites (js itself is the reference, not in this list). */
export function parityBackends(): BackendName[] {
  const forced = forcedBackend();
  if (forced) return forced === 'js' ? [] : [forced];
  return availableBackends().filter((b) => b !== 'js');
}

export function backendSummary(): string {
  const forced = forcedBackend();
  return `WPIPE_BACKEND=${process.env.WPIPE_BACKEND ?? '(unset)'}; available: ${availableBackends().join(', ')}` +
    `; under test: ${backendsUnderTest().join(', ')}${forced ? ' (forced)' : ''}`;
}

// ------------------------------------------------------------------------------------------------
// Outcomes

export type Outcome =
  | { kind: 'value'; value: unknown }
  | { kind: 'error'; phase: 'compile' | 'run'; pythonType: string; code: string; message: string; error: ExpressionError }
  | { kind: 'host'; phase: 'compile' | 'run'; name: string; message: string; error: unknown };

function caught(phase: 'compile' | 'run', e: unknown): Outcome {
  if (e instanceof ExpressionError) {
    return { kind: 'error', phase, pythonType: e.pythonType, code: e.code, message: e.message, error: e };
  }
  const err = e as { name?: unknown; message?: unknown };
  return {
    kind: 'host', phase, error: e,
    name: typeof err?.name === 'string' ? err.name : typeof e,
    message: typeof err?.message === 'string' ? err.message : String(e),
  };
}

/** Compiles and runs one expression on one backend; never throws. */
export function outcome(
  text: string,
  ctx: Record<string, unknown>,
  backend: BackendName,
  mode: 'evaluate' | 'test' = 'evaluate',
): Outcome {
  let compiled;
  try {
    compiled = compileExpression(text, { backend });
  } catch (e) {
    return caught('compile', e);
  }
  try {
    return { kind: 'value', value: mode === 'evaluate' ? compiled.evaluate(ctx) : compiled.test(ctx) };
  } catch (e) {
    return caught('run', e);
  }
}

/** Exact equality of evaluation results: NaN equals NaN, -0 differs from 0, arrays and dicts deeply. */
export function sameValue(a: unknown, b: unknown, depth = 0): boolean {
  if (depth > 200) return false;
  if (typeof a === 'number' || typeof b === 'number') return Object.is(a, b);
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i], depth + 1)) return false;
    return true;
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    if (ka.length !== kb.length) return false;
    for (const k of ka) {
      if (!Object.hasOwn(b, k)) return false;
      if (!sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], depth + 1)) return false;
    }
    return true;
  }
  return false;
}

const f64 = new Float64Array(1);
const u64 = new BigInt64Array(f64.buffer);
function bits(x: number): bigint {
  f64[0] = x;
  return u64[0]!;
}

/** Two finite doubles of one sign at most one unit in the last place apart. */
export function withinOneUlp(x: number, y: number): boolean {
  if (!Number.isFinite(x) || !Number.isFinite(y) || Math.sign(x) !== Math.sign(y)) return false;
  const d = bits(x) - bits(y);
  return d >= -1n && d <= 1n;
}

/**
 * Float `**` may differ between backends by one unit in the last place (docs/expression-semantics.md:
 * glibc's pow is not always correctly rounded; the js backend's is). For texts with `**`, a number or
 * a numeric string result is accepted within one ulp.
 */
function samePowValue(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return withinOneUlp(a, b);
  if (typeof a === 'string' && typeof b === 'string' && a !== '' && b !== '') return withinOneUlp(Number(a), Number(b));
  return false;
}

/** Same value, or same error class and code; host errors never agree with anything. */
export function sameOutcome(a: Outcome, b: Outcome, text = ''): boolean {
  if (a.kind === 'host' || b.kind === 'host') return false;
  if (a.kind === 'value' && b.kind === 'value') return sameValue(a.value, b.value) || (text.includes('**') && samePowValue(a.value, b.value));
  if (a.kind === 'error' && b.kind === 'error') return a.pythonType === b.pythonType && a.code === b.code;
  return false;
}

/** A short, JSON-ish rendering of a value (NaN, ±Infinity, -0 visible; long strings cut). */
export function show(v: unknown, max = 160): string {
  const seen = new Set<unknown>();
  const render = (x: unknown, depth: number): string => {
    if (typeof x === 'number') return Object.is(x, -0) ? '-0' : String(x);
    if (typeof x === 'string') return JSON.stringify(x.length > max ? `${x.slice(0, max)}…(${x.length})` : x);
    if (x === null || x === undefined || typeof x === 'boolean') return String(x);
    if (typeof x === 'function') return '[function]';
    if (typeof x !== 'object') return String(x);
    if (seen.has(x) || depth > 6) return '…';
    seen.add(x);
    if (Array.isArray(x)) {
      const items = x.slice(0, 20).map((i) => render(i, depth + 1));
      return `[${items.join(', ')}${x.length > 20 ? `, …(${x.length})` : ''}]`;
    }
    if (ArrayBuffer.isView(x)) return `${x.constructor.name}(${(x as unknown as ArrayLike<unknown>).length})`;
    const proto = Object.getPrototypeOf(x);
    if (proto !== Object.prototype && proto !== null) return `[${(proto?.constructor?.name as string) ?? 'object'}]`;
    const keys = Object.keys(x);
    return `{${keys.slice(0, 20).map((k) => `${JSON.stringify(k)}: ${render((x as Record<string, unknown>)[k], depth + 1)}`).join(', ')}}`;
  };
  const s = render(v, 0);
  return s.length > max * 2 ? `${s.slice(0, max * 2)}…` : s;
}

export function showOutcome(o: Outcome): string {
  if (o.kind === 'value') return `value ${show(o.value)}`;
  if (o.kind === 'error') return `${o.pythonType} (${o.code === 'WPIPE_ERR_EXPRESSION_SYNTAX' ? 'syntax' : 'eval'}, at ${o.phase}): ${o.message.split('\n')[0]}`;
  return `HOST ${o.name} at ${o.phase}: ${o.message.split('\n')[0]}`;
}

// ------------------------------------------------------------------------------------------------
// Seeded randomness (mulberry32)

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function seedFromEnv(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`${name} must be an integer, got ${v}`);
  return n >>> 0;
}

// ------------------------------------------------------------------------------------------------
// Hang and crash guard: run work in a child process that reports progress before each item
//
// A timer in the same thread cannot interrupt a synchronous loop, and a worker thread shares the
// process's memory (a native allocation spree would take the test runner down with it). So the work
// runs in a forked child (with tsx), which sends a progress message before each item; the parent
// kills it when it stops making progress (a hang) or when its resident memory passes a cap (a memory
// blow-up), and reports the item it was working on.

const GUARD_ENV = 'WPIPE_TEST_GUARDED_CHILD';

/** Progress reporting inside a guarded child. */
export class Progress {
  /** Called by the child before each unit of work. */
  mark(item: number, label: string): void {
    process.send!({ __progress: [item, label.length > 4000 ? `${label.slice(0, 4000)}…` : label] });
  }
}

export interface GuardedResult<T, P = unknown> {
  /** The child's final result, unless it stalled or crashed. */
  result?: T;
  /** Everything the child sent with `postPartial` before it finished (or stalled, or crashed). */
  partials: P[];
  /** Set when the child made no progress for `stallMs`: the item and label it was working on. */
  stalled?: { item: number; label: string; ms: number };
  /** Set when the child used more than `maxRssMb` of memory. */
  memory?: { item: number; label: string; rssMb: number };
  /** Set when the child died (uncaught error, signal, non-zero exit) without a result. */
  crashed?: string;
  /** The item the child was working on when it stopped (or -1). */
  lastItem: number;
}

function rssMb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs `moduleUrl` (a test file that calls `guardedWorkerMain` when `isGuardedWorker()`) in a child
 * process, passing `data`. Resolves with its result, or with where it stalled, blew up or crashed.
 */
export function runGuarded<T, P = unknown>(
  moduleUrl: string,
  data: unknown,
  stallMs: number,
  maxRssMb = 3072,
): Promise<GuardedResult<T, P>> {
  const env: NodeJS.ProcessEnv = { ...process.env, [GUARD_ENV]: '1' };
  delete env.NODE_TEST_CONTEXT; // the child is not a test file of the runner
  const child = fork(fileURLToPath(moduleUrl), [], {
    execArgv: ['--import', 'tsx'],
    env,
    serialization: 'advanced',
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  const keep = (b: Buffer) => {
    output = (output + b.toString('utf8')).slice(-4000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return new Promise((resolve) => {
    let done = false;
    let lastItem = -1;
    let lastLabel = '(starting)';
    let lastChange = Date.now();
    const partials: P[] = [];
    const finish = (r: Omit<GuardedResult<T, P>, 'partials' | 'lastItem'>) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      resolve({ ...r, partials, lastItem });
    };
    const timer = setInterval(() => {
      const rss = child.pid ? rssMb(child.pid) : undefined;
      if (rss !== undefined && rss > maxRssMb) {
        finish({ memory: { item: lastItem, label: lastLabel, rssMb: Math.round(rss) } });
      } else if (Date.now() - lastChange > stallMs) {
        finish({ stalled: { item: lastItem, label: lastLabel, ms: Date.now() - lastChange } });
      }
    }, 50);
    child.on('message', (m: { __progress?: [number, string]; __partial?: P; __result?: T; __ready?: boolean }) => {
      lastChange = Date.now();
      if (m.__ready) child.send({ __data: data });
      else if (m.__progress) [lastItem, lastLabel] = m.__progress;
      else if ('__partial' in m) partials.push(m.__partial as P);
      else if ('__result' in m) finish({ result: m.__result });
    });
    child.on('error', (e) => finish({ crashed: String((e as Error)?.stack ?? e) }));
    child.on('exit', (code, signal) =>
      finish({ crashed: `child exited (${signal ?? `code ${code}`}) at item ${lastItem}: ${lastLabel}${output ? `\n--- its output:\n${output}` : ''}` }));
  });
}

/** True inside a child started by runGuarded. */
export function isGuardedWorker(): boolean {
  return process.env[GUARD_ENV] === '1' && typeof process.send === 'function';
}

/** In the child: sends one partial result (kept by the parent even if the child later dies). */
export function postPartial(p: unknown): void {
  process.send!({ __partial: p });
}

/** In the child: receives the data, runs `work` with a progress reporter, sends the result, exits. */
export async function guardedWorkerMain<D, T>(work: (data: D, progress: Progress) => T | Promise<T>): Promise<void> {
  const data = await new Promise<D>((resolve) => {
    process.once('message', (m: { __data: D }) => resolve(m.__data));
    process.send!({ __ready: true });
  });
  const result = await work(data, new Progress());
  process.send!({ __result: result }, () => process.exit(0));
}
