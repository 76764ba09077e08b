/**
 * The memory caps a worker process accepts (no side effects: the engine validates caps at
 * setSteps through this module without registering the processes executor).
 *
 * @example
 * ```ts
 * checkMemoryLimitMb('new Parallel()', 256);
 * ```
 */
import { TaskError, invalidOption } from '../errors.js';
import { workerEntry } from './worker-entry.js';

/**
 * The smallest memory cap a child is started with, in MiB. Measured on Node 20.20 (x86-64, Debian
 * 12) with the smallest RLIMIT_DATA at which a child starts and runs a trivial step, three times
 * each: 84 MiB from dist/ (80 fails with "Committing semi space failed"; with a step module that
 * imports the whole wpipe bundle 88 MiB was enough), about 120 MiB from the .ts sources under tsx
 * (tsx's module hooks run on a thread of their own; 112 fails, 116 sometimes). Node hangs instead of
 * failing at 40 MiB or less, so small caps are refused, never tried. The minimum is the measured
 * floor plus about 50 % for the step's own modules and data.
 */
export const MIN_MEMORY_LIMIT_MB = 128;
/** The same minimum when wpipe runs from its .ts sources under tsx (tests, benchmarks). */
export const MIN_MEMORY_LIMIT_MB_TSX = 192;

/**
 * The smallest `memoryLimitMb` this process accepts (see {@link MIN_MEMORY_LIMIT_MB}).
 *
 * @example
 * ```ts
 * minMemoryLimitMb(); // 128 (192 under tsx)
 * ```
 */
export function minMemoryLimitMb(): number {
  return workerEntry('process-worker').execArgv.length > 0 ? MIN_MEMORY_LIMIT_MB_TSX : MIN_MEMORY_LIMIT_MB;
}

/**
 * Checks a memory cap, for option validation (setSteps) and at each call: a RangeError with code
 * WPIPE_ERR_INVALID_OPTION below the safe minimum.
 *
 * @example
 * ```ts
 * checkMemoryLimitMb('new Parallel()', 256);
 * ```
 */
export function checkMemoryLimitMb(where: string, mb: number): void {
  const min = minMemoryLimitMb();
  if (!(typeof mb === 'number' && Number.isFinite(mb) && mb >= min)) {
    throw invalidOption(
      `${where}: memoryLimitMb must be at least ${min} (a worker process needs about ${min === MIN_MEMORY_LIMIT_MB ? 84 : 120} MiB ` +
        `just to start and run a step on Node 20, and hangs instead of failing under about 40 MiB), got ${String(mb)}`,
      'RangeError',
    );
  }
}


/**
 * The failure of a step that outgrew its worker's memory cap, wherever it ran: WPIPE_ERR_MEMORY_LIMIT
 * (a TaskError, so the run's error chain has errorCode 502 as for any step failure).
 *
 * @example
 * ```ts
 * memoryLimitError('crunch', 256, 'processes', 'the RSS watchdog killed it at 262 MB', undefined);
 * ```
 */
export function memoryLimitError(stepName: string, cap: number, executor: 'threads' | 'processes', how: string, cause: unknown): TaskError {
  const what = executor === 'threads' ? 'its worker thread\'s heap' : 'its worker process';
  return new TaskError(`step '${stepName}' exceeded the memory cap of ${what} (${cap} MB): ${how}`, {
    code: 'WPIPE_ERR_MEMORY_LIMIT', cause, details: { stepName, memoryLimitMb: cap, executor },
  });
}
