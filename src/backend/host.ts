/**
 * The host services the addon gives and JS cannot: sampling RSS/CPU on a thread without a V8
 * isolate (it keeps sampling while the event loop is blocked), and setrlimit. Without the addon
 * (or with js or wasm forced) the sampler is the worker-thread substitute and there is no setrlimit.
 * Loads the addon (addon.ts), never an expression VM: the run history and the memory cap use this.
 *
 * @example
 * ```ts
 * const { sampler, backend, reason } = hostSampler(); // 'native' when the addon loads
 * ```
 */
import { backendUnavailable, requestedBackend } from './choice.js';
import { loadBinding, loadNativeRlimits, loadNativeSampler, type NativeRlimits } from './addon.js';
import { workerSampler } from './js-sampler.js';
import type { HostSampler } from './types.js';

/** Whether the addon loads here: its binding, or why not. */
function addon(): { loaded: true } | { loaded: false; error: Error } {
  try {
    loadBinding();
    return { loaded: true };
  } catch (error) {
    return { loaded: false, error: error instanceof Error ? error : new Error(String(error)) };
  }
}

/** The addon, or WPIPE_ERR_BACKEND_UNAVAILABLE (native was forced). */
function requireAddon(): void {
  const a = addon();
  if (!a.loaded) throw backendUnavailable('native', a.error);
}

/** A sampler and why it was chosen. `backend` is 'native' for the addon's thread, 'js' for the worker. */
export interface SamplerChoice {
  readonly sampler: HostSampler;
  readonly backend: 'native' | 'js';
  readonly reason: string;
}

export const WORKER_REASON = 'a worker thread samples into a SharedArrayBuffer (it keeps sampling while the event loop is blocked; 6–10 MiB of RSS, ~100 ms to boot)';

/**
 * The sampler for a ResourceMonitor or the memory watchdog: native (the addon's one thread per
 * process) under auto when the addon loads, else the worker-thread substitute. Forced native without
 * the addon throws; forced wasm or js use the worker (wasm has no thread of its own).
 */
export function hostSampler(explicit?: unknown): SamplerChoice {
  const choice = requestedBackend(explicit);
  if (choice === 'native') {
    requireAddon();
    return { sampler: loadNativeSampler(), backend: 'native', reason: 'forced native: the addon\'s sampler thread' };
  }
  if (choice === 'auto') {
    const native = addon();
    if (native.loaded) return { sampler: loadNativeSampler(), backend: 'native', reason: 'auto: the addon\'s sampler thread (one per process, no V8 calls)' };
    return { sampler: workerSampler(), backend: 'js', reason: `auto: native unavailable (${native.error.message.split('\n')[0]}); ${WORKER_REASON}` };
  }
  const why = choice === 'wasm' ? 'forced wasm: WebAssembly has no thread of its own; ' : 'forced js: ';
  return { sampler: workerSampler(), backend: 'js', reason: why + WORKER_REASON };
}

/** getrlimit/setrlimit when the addon serves the host (native or auto with the addon), else why not. */
export function hostRlimits(explicit?: unknown): { rlimits: NativeRlimits } | { unavailable: string } {
  const choice = requestedBackend(explicit);
  if (choice === 'js' || choice === 'wasm') return { unavailable: `backend ${choice}: setrlimit needs the native addon (Node has no setrlimit)` };
  if (choice === 'native') requireAddon();
  const native = addon();
  if (!native.loaded) return { unavailable: `the native addon is not available (${native.error.message.split('\n')[0]}); Node has no setrlimit` };
  return { rlimits: loadNativeRlimits() };
}

