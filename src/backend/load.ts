/**
 * The one place that decides which backend serves a call.
 *
 * Selection order: an explicit `backend` option, then the environment variable WPIPE_BACKEND
 * (`auto` | `js` | `wasm` | `native`), then `auto`. A forced backend that cannot load throws an
 * error listing what was tried and how to fix it; `auto` falls back (native → wasm → js) and records
 * why. The addon and the .wasm are loaded lazily, on the first call that needs them.
 */
import type { BackendChoice, BackendName, BackendStatus, ExprVm } from './types.js';
import { backendUnavailable, environmentChoice, resetChoice } from './choice.js';
import { WORKER_REASON } from './host.js';
import { loadWasmVm, wasmStatus } from './wasm.js';
import { loadNativeVm } from './native.js';
import { nativeStatus } from './addon.js';

/**
 * `auto` evaluates single expressions in JS: against a JS object, the closure evaluator needs no
 * marshalling, while wasm and native must first encode the context into a tape (bench/expr.ts,
 * "scalar": js is several times faster than both for every expression in the suite).
 */
export const AUTO_SCALAR_BACKEND: BackendName = 'js';

/**
 * Below these row counts `auto` evaluates a batch in JS; at or above, in the VM. The crossover is
 * where the VM's fixed cost (flat columns, one boundary crossing) is repaid by its faster column
 * loops — measured by the size sweep in bench/expr.ts ("batch sweep", ns per row for
 * `x > 5 and y < 3 or x * y > 400`, Node 20, 2 cores): native already beats js at 16 rows (305 vs
 * 366 ns/row; at 1,024 rows 7.4 vs 39), so it takes every batch of at least 16; wasm loses to js at
 * 64 rows (129 vs 115) and wins at 256 (35 vs 55).
 */
export const AUTO_BATCH_MIN_ROWS_NATIVE = 16;
export const AUTO_BATCH_MIN_ROWS_WASM = 256;

interface LoadAttempt {
  vm?: ExprVm;
  error?: Error;
}

const attempts = new Map<'wasm' | 'native', LoadAttempt>();

/** Forgets cached load attempts and the environment choice (tests use this). */
export function resetBackends(): void {
  attempts.clear();
  resetChoice();
}

function tryLoad(name: 'wasm' | 'native'): LoadAttempt {
  let attempt = attempts.get(name);
  if (!attempt) {
    try {
      attempt = { vm: name === 'wasm' ? loadWasmVm() : loadNativeVm() };
    } catch (error) {
      attempt = { error: error instanceof Error ? error : new Error(String(error)) };
    }
    attempts.set(name, attempt);
  }
  return attempt;
}

/** The VM of a forced backend, or an error saying what was tried and how to fix it. */
export function requireVm(name: 'wasm' | 'native'): ExprVm {
  const attempt = tryLoad(name);
  if (attempt.vm) return attempt.vm;
  throw backendUnavailable(name, attempt.error);
}

/** The VM that serves a scalar evaluation, or undefined for js. */
export function scalarVm(choice: BackendChoice): ExprVm | undefined {
  if (choice === 'js') return undefined;
  if (choice === 'auto') return AUTO_SCALAR_BACKEND === 'js' ? undefined : tryLoad(AUTO_SCALAR_BACKEND).vm;
  return requireVm(choice);
}

/** The VM that serves a batch of `rows` rows, or undefined for js. */
export function batchVm(choice: BackendChoice, rows: number): ExprVm | undefined {
  if (choice === 'js') return undefined;
  if (choice !== 'auto') return requireVm(choice);
  if (rows >= AUTO_BATCH_MIN_ROWS_NATIVE) {
    const native = tryLoad('native').vm;
    if (native) return native;
  }
  if (rows >= AUTO_BATCH_MIN_ROWS_WASM) return tryLoad('wasm').vm;
  return undefined;
}

export interface CapabilityInfo {
  /** The backend that serves it under the current choice (for batch: at large sizes). */
  readonly backend: BackendName;
  readonly reason: string;
}

export interface BackendInfo {
  /** What was asked for, and where that came from. */
  readonly requested: BackendChoice;
  readonly source: 'env' | 'default';
  readonly backends: Record<BackendName, BackendStatus>;
  readonly capabilities: Record<string, CapabilityInfo>;
}

/**
 * Which backend serves each capability, and why. Loads the addon and the .wasm to find out.
 *
 * @example
 * ```ts
 * import { getBackendInfo } from 'wpipe';
 * console.log(getBackendInfo().capabilities['expr.batch']);
 * // { backend: 'native', reason: 'auto: batches of ≥ 16 rows run in native …' }
 * ```
 */
export function getBackendInfo(): BackendInfo {
  const { choice, source } = environmentChoice();
  const wasm = tryLoad('wasm');
  const native = tryLoad('native');
  const statusOf = (name: 'wasm' | 'native', a: LoadAttempt): BackendStatus =>
    a.vm ? (name === 'wasm' ? wasmStatus() : nativeStatus()) : { name, available: false, detail: a.error?.message ?? 'not loaded', features: [] };
  const backends: Record<BackendName, BackendStatus> = {
    js: { name: 'js', available: true, detail: 'pure JavaScript (always available)', features: [] },
    wasm: statusOf('wasm', wasm),
    native: statusOf('native', native),
  };
  const capabilities: Record<string, CapabilityInfo> = {};
  if (choice === 'auto') {
    capabilities['expr.scalar'] = {
      backend: AUTO_SCALAR_BACKEND,
      reason: 'auto: a single evaluation against a JS object is cheapest in JS (no marshalling)',
    };
    const big: BackendName = native.vm ? 'native' : wasm.vm ? 'wasm' : 'js';
    const why = native.vm
      ? `auto: batches of ≥ ${AUTO_BATCH_MIN_ROWS_NATIVE} rows run in native, smaller ones in js`
      : wasm.vm
        ? `auto: native unavailable (${native.error?.message ?? '?'}); batches of ≥ ${AUTO_BATCH_MIN_ROWS_WASM} rows run in wasm, smaller ones in js`
        : `auto: native and wasm unavailable (${native.error?.message ?? '?'}; ${wasm.error?.message ?? '?'}); js serves every batch`;
    capabilities['expr.batch'] = { backend: big, reason: why };
    capabilities['host.sampler'] = native.vm
      ? { backend: 'native', reason: 'auto: the addon\'s sampler thread (one per process; samples while the event loop is blocked)' }
      : { backend: 'js', reason: `auto: native unavailable; ${WORKER_REASON}` };
    capabilities['host.rlimit'] = native.vm
      ? { backend: 'native', reason: 'auto: setrlimit(RLIMIT_DATA) through the addon' }
      : { backend: 'js', reason: 'auto: native unavailable: no setrlimit; memoryLimit uses cgroups or the RSS watchdog' };
  } else {
    const available = backends[choice].available;
    const reason = available ? `forced by ${source === 'env' ? 'WPIPE_BACKEND' : 'option'}` : `forced but unavailable: ${backends[choice].detail}`;
    capabilities['expr.scalar'] = { backend: choice, reason };
    capabilities['expr.batch'] = { backend: choice, reason: `${reason}; expressions outside the column subset run row by row in the same backend` };
    capabilities['host.sampler'] = choice === 'native'
      ? { backend: 'native', reason: `${reason}: the addon's sampler thread` }
      : { backend: 'js', reason: `forced ${choice}: ${choice === 'wasm' ? 'WebAssembly has no thread of its own; ' : ''}${WORKER_REASON}` };
    capabilities['host.rlimit'] = choice === 'native'
      ? { backend: 'native', reason: `${reason}: setrlimit(RLIMIT_DATA) through the addon` }
      : { backend: 'js', reason: `forced ${choice}: no setrlimit; memoryLimit uses cgroups or the RSS watchdog` };
  }
  return { requested: choice, source, backends, capabilities };
}
