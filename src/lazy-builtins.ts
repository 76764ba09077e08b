/**
 * Node builtins that only some paths need, loaded at their first use instead of at `import 'wpipe'`:
 * crypto (run ids, structure hashes, journal owners, temp names), worker_threads (the JS sampler
 * thread, a .wasm module handed to a worker) and v8 (BullMQ payloads). crypto and worker_threads
 * each cost a few milliseconds to load (worker_threads brings streams with it), which every program
 * importing wpipe paid before (README "Import cost").
 *
 * @example
 * ```ts
 * const id = nodeCrypto().randomUUID();
 * ```
 */
import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);
let crypto: typeof import('node:crypto') | undefined;
let workerThreadsModule: typeof import('node:worker_threads') | undefined;
let v8: typeof import('node:v8') | undefined;

/** node:crypto, loaded on the first call. */
export function nodeCrypto(): typeof import('node:crypto') {
  return (crypto ??= load('node:crypto') as typeof import('node:crypto'));
}

/** node:worker_threads, loaded on the first call. */
export function workerThreads(): typeof import('node:worker_threads') {
  return (workerThreadsModule ??= load('node:worker_threads') as typeof import('node:worker_threads'));
}

/** node:v8, loaded on the first call. */
export function nodeV8(): typeof import('node:v8') {
  return (v8 ??= load('node:v8') as typeof import('node:v8'));
}
