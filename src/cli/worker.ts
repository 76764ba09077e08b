/**
 * `wpipe worker --redis URL --queue NAME --steps ./steps.js`: a BullMQ worker for wpipe's jobs
 * (src/queue/worker.ts startWorker) until Ctrl-C or SIGTERM, which let the jobs in hand finish.
 *
 * - Step attempts (Parallel branches and steps with `executor: 'bullmq'`) from queue NAME, importing
 *   only the `--steps` modules (repeatable) and modules under `--steps-dir`.
 * - Whole runs (`pipe.enqueue`) from NAME-runs with `--pipelines ./pipelines.js` (a module exporting
 *   Pipelines; each records into its own trackingDb).
 * - Prints `wpipe worker <host:pid> ready on <redis>/<queue>` on stdout once it takes jobs.
 * - Exit codes: 0 stopped by a signal, 1 Redis unreachable or a module that cannot be imported, 2 bad arguments.
 *
 * @example
 * ```sh
 * wpipe worker --redis redis://10.0.0.5:6379 --queue etl --steps ./steps.js --concurrency 2
 * ```
 */
import type { StartWorkerOptions, WpipeWorker } from '../queue/worker.js';
import { EXIT, formatError, intOption, isUsage, untilStopSignal, usageError, type CliIo } from './common.js';

/** Flags of `wpipe worker`. */
export interface WorkerFlags {
  redis?: string;
  queue?: string;
  steps?: string[];
  stepsDir?: string;
  pipelines?: string;
  concurrency?: string;
  lockMs?: string;
}

type StartWorker = (o: StartWorkerOptions) => Promise<WpipeWorker>;

/**
 * Runs a worker until SIGINT or SIGTERM; resolves to the exit code.
 *
 * @example
 * ```ts
 * await workerCommand({ redis: 'redis://127.0.0.1:6379', queue: 'q', steps: ['./steps.js'] }, processIo());
 * ```
 */
export async function workerCommand(flags: WorkerFlags, io: CliIo): Promise<number> {
  let worker: WpipeWorker;
  const redis = flags.redis ?? process.env.WPIPE_REDIS;
  try {
    if (redis === undefined || redis === '') throw usageError('--redis URL is required (redis://host:port[/db], or $WPIPE_REDIS)');
    const steps = flags.steps ?? [];
    if (steps.length === 0 && flags.stepsDir === undefined && flags.pipelines === undefined) {
      throw usageError('give --steps MODULE (repeatable), --steps-dir DIR or --pipelines MODULE: a worker imports only what it is given');
    }
    const concurrency = intOption('--concurrency', flags.concurrency, 1, 1000);
    const lockDurationMs = intOption('--lock-ms', flags.lockMs, 100, 3_600_000);
    const lib = (await import('../index.js')) as unknown as { startWorker?: StartWorker };
    if (typeof lib.startWorker !== 'function') throw new Error('the BullMQ worker is not part of this build of wpipe');
    worker = await lib.startWorker({
      connection: redis,
      ...(flags.queue === undefined ? {} : { queue: flags.queue }),
      ...(steps.length === 0 ? {} : { steps }),
      ...(flags.stepsDir === undefined ? {} : { stepsDir: flags.stepsDir }),
      ...(flags.pipelines === undefined ? {} : { pipelines: flags.pipelines }),
      ...(concurrency === undefined ? {} : { concurrency }),
      ...(lockDurationMs === undefined ? {} : { lockDurationMs }),
    });
  } catch (e) {
    io.stderr.write(formatError(e));
    return isUsage(e) ? EXIT.USAGE : EXIT.FAILED;
  }
  io.stdout.write(`wpipe worker ${worker.id} ready on ${redis.replace(/\/\/[^@/]*@/, '//')}/${flags.queue ?? 'wpipe'}\n`);
  io.stderr.write('wpipe: worker running (Ctrl-C to stop after the jobs in hand)\n');
  await untilStopSignal();
  // Closing waits for the jobs in hand, and BullMQ waits for Redis to answer: with Redis gone it can
  // wait for good. Past the first signal no handler is left, so a second one ends the process at once.
  io.stderr.write('wpipe: stopping after the jobs in hand (Ctrl-C again to stop at once)\n');
  await worker.close();
  return EXIT.OK;
}
