/**
 * Where the worker entries are and how to start them. From the compiled package (dist/, or the
 * dist/wpipe.js bundle) they are dist/parallel/*.js. From the .ts sources (tests and benchmarks
 * under tsx) a thread or child process needs tsx registered before it can import a .ts file: it is
 * started with `--import <tsx's loader>` (resolved from here, so it works whatever the current
 * directory). Node 20 runs `--import` modules in worker threads too; piscina cannot start a thread
 * from an eval'd bootstrap (it always runs its own worker.js, which requires or imports `filename`),
 * so the flag is the way in for both executors.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../paths.js';

/** The script of a worker and the node flags it needs. */
export interface WorkerEntry {
  readonly file: string;
  readonly execArgv: readonly string[];
}

/**
 * The entry of the thread worker or the child-process worker.
 *
 * @example
 * ```ts
 * const { file, execArgv } = workerEntry('thread-worker');
 * new Piscina({ filename: file, execArgv: [...execArgv] });
 * ```
 */
export function workerEntry(name: 'thread-worker' | 'process-worker'): WorkerEntry {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    return { file: join(here, '..', `${name}.ts`), execArgv: ['--import', import.meta.resolve('tsx')] };
  }
  return { file: join(packageRoot(), 'dist', 'parallel', `${name}.js`), execArgv: [] };
}
