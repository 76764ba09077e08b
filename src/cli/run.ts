/**
 * `wpipe run PIPELINE.yaml`: loads a pipeline file, runs it once on the input, prints the result.
 *
 * - The input: `--input data.json`, `--input -` (stdin), or `{}`; it must be a JSON object.
 * - `--db FILE` keeps the run history (wins over the file's trackingDb). `--run-id ID` names the
 *   run: the id of a stopped run (failed, cancelled, killed) resumes it from its last checkpoint, the
 *   id of a completed run prints its recorded result without running a step.
 * - On a TTY, a progress bar on stderr. The result goes to stdout: the final context as JSON, or
 *   with `--json` one document `{ runId, pipelineName, status, replayed, resumedFrom, durationMs,
 *   result | error }` (also for a failed run).
 * - Ctrl-C (SIGINT) or SIGTERM cancels the run through its AbortSignal: it is recorded as cancelled
 *   and resumable; a second Ctrl-C exits at once.
 * - `--redis URL [--queue NAME]` (the flag only, not $WPIPE_REDIS) is the BullMQ queue of the
 *   file's `executor: bullmq` steps and blocks (loadPipeline's `bullmq` option): a file cannot name
 *   a Redis, so without it such a file is refused (WPIPE_ERR_EXECUTOR_UNAVAILABLE, exit 2).
 *
 * @example
 * ```sh
 * wpipe run examples/orders.yaml --input order.json --db runs.db --run-id order-7
 * ```
 */
import { readFile } from 'node:fs/promises';
import { timeOrderedUuid } from '../ids.js';
import type { Pipeline } from '../engine/pipeline.js';
import { EXIT, formatError, formatMs, isUsage, preloadYaml, queueOption, toJson, usageError, type CliIo } from './common.js';

/** Flags of `wpipe run`. */
export interface RunFlags {
  input?: string;
  db?: string;
  runId?: string;
  backend?: string;
  json?: boolean;
  stepsDir?: string;
  allowPackages?: boolean;
  redis?: string;
  queue?: string;
}

const BACKENDS = ['auto', 'js', 'wasm', 'native'];

async function readInput(source: string | undefined, io: CliIo): Promise<Record<string, unknown>> {
  if (source === undefined) return {};
  let text: string;
  const shown = source === '-' ? 'stdin' : source;
  try {
    if (source === '-') {
      const chunks: Buffer[] = [];
      for await (const chunk of io.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
      text = Buffer.concat(chunks).toString('utf8');
    } else {
      text = await readFile(source, 'utf8');
    }
  } catch (e) {
    throw usageError(`--input: cannot read ${shown}: ${(e as Error).message}`, e);
  }
  if (text.trim() === '') return {};
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw usageError(`--input: ${shown} is not JSON: ${(e as Error).message}`, e);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw usageError(`--input: ${shown} must hold a JSON object (the run's initial context), got ${Array.isArray(data) ? 'an array' : data === null ? 'null' : typeof data}`);
  }
  return data as Record<string, unknown>;
}

/**
 * Runs the command; resolves to its exit code (never rejects for a run's failure).
 *
 * @example
 * ```ts
 * process.exitCode = await runCommand('orders.yaml', { db: 'runs.db' }, processIo());
 * ```
 */
export async function runCommand(file: string, flags: RunFlags, io: CliIo): Promise<number> {
  let pipe: Pipeline | undefined;
  let input: Record<string, unknown>;
  try {
    if (flags.backend !== undefined) {
      if (!BACKENDS.includes(flags.backend)) throw usageError(`--backend must be one of ${BACKENDS.join(', ')}, got '${flags.backend}'`);
      // Read by the backend loader at its first use: set before the library loads anything.
      process.env.WPIPE_BACKEND = flags.backend;
    }
    if (flags.runId !== undefined && flags.runId.trim() === '') throw usageError('--run-id must not be empty');
    const queue = queueOption(flags);
    input = await readInput(flags.input, io);
    preloadYaml();
    const { loadPipeline, compileExpression } = await import('../index.js');
    if (flags.backend !== undefined && flags.backend !== 'auto') {
      // A forced backend that cannot load is a usage error before anything is read or runs.
      compileExpression('1', { backend: flags.backend as 'js' });
    }
    pipe = await loadPipeline(file, {
      ...(flags.stepsDir !== undefined ? { stepsDir: flags.stepsDir } : {}),
      ...(flags.allowPackages ? { allowPackages: true } : {}),
      ...queue,
      pipelineOptions: {
        ...(flags.db !== undefined ? { trackingDb: flags.db } : {}),
        showProgress: io.stderr.isTTY === true,
      },
    });
  } catch (e) {
    io.stderr.write(formatError(e));
    const problems = (e as { details?: { errors?: Array<{ code?: string }> } }).details?.errors;
    if (problems?.some((p) => p.code === 'WPIPE_ERR_EXECUTOR_UNAVAILABLE')) {
      io.stderr.write('wpipe: give the file\'s executor: bullmq its queue with --redis URL [--queue NAME]\n');
    }
    return isUsage(e) ? EXIT.USAGE : EXIT.FAILED;
  }

  if (flags.runId !== undefined && pipe.trackingDb === undefined) {
    io.stderr.write('wpipe: note: --run-id without a run history (--db or trackingDb): nothing can be resumed or replayed\n');
  }
  const runId = flags.runId ?? timeOrderedUuid();
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupts++;
    if (interrupts > 1) {
      io.stderr.write('\nwpipe: interrupted again: exiting without waiting\n');
      process.exit(EXIT.INTERRUPTED);
    }
    io.stderr.write(`\nwpipe: ${signal}: cancelling run ${runId} (Ctrl-C again to exit at once)\n`);
    controller.abort(new Error(`cancelled by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A step may wait on nothing but its signal (until Ctrl-C): without a handle the event loop would
  // empty and Node would end the command with exit code 13 (an unsettled top-level await).
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const started = performance.now();
  let code: number;
  try {
    const detail = await pipe.runDetailed(input, { runId, signal: controller.signal });
    const durationMs = performance.now() - started;
    if (flags.json) {
      io.stdout.write(`${toJson({
        runId, pipelineName: pipe.pipelineName, status: 'completed', replayed: detail.replayed ?? false,
        resumedFrom: detail.resumedFrom ?? null, durationMs: Math.round(durationMs * 10) / 10, result: detail.result,
      })}\n`);
    } else {
      io.stdout.write(`${toJson(detail.result, 2)}\n`);
    }
    const how = detail.replayed ? 'completed earlier: printed its recorded result (nothing ran)'
      : detail.resumedFrom !== undefined && detail.resumedFrom !== null ? `resumed and completed in ${formatMs(durationMs)}`
        : `completed in ${formatMs(durationMs)}`;
    io.stderr.write(`wpipe: run ${runId} ${how}\n`);
    code = EXIT.OK;
  } catch (e) {
    const cancelled = (e as { code?: unknown }).code === 'WPIPE_ERR_PROCESS_CANCELLED';
    const durationMs = performance.now() - started;
    if (flags.json) {
      io.stdout.write(`${toJson({
        runId, pipelineName: pipe.pipelineName, status: cancelled ? 'cancelled' : 'error', replayed: false, resumedFrom: null,
        durationMs: Math.round(durationMs * 10) / 10, error: errorSummary(e),
      })}\n`);
    }
    io.stderr.write(formatError(e));
    if (pipe.trackingDb !== undefined) {
      io.stderr.write(`wpipe: run ${runId} ${cancelled ? 'cancelled' : 'failed'}; resume it with: wpipe run ${file} --db ${pipe.trackingDb} --run-id ${runId}\n`);
    }
    code = cancelled ? EXIT.INTERRUPTED : isUsage(e) ? EXIT.USAGE : EXIT.FAILED;
  } finally {
    clearInterval(keepAlive);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  try {
    const failures = await pipe.close();
    for (const f of failures) io.stderr.write(`wpipe: background step ${f.name} failed: ${f.error?.message ?? 'unknown error'}\n`);
  } catch (e) {
    io.stderr.write(formatError(e));
    if (code === EXIT.OK) code = EXIT.FAILED;
  }
  return code;
}

/** The error as the --json document carries it: code, message, the failing step. */
function errorSummary(e: unknown): Record<string, unknown> {
  const err = e as { code?: unknown; message?: unknown; cause?: { details?: Record<string, unknown>; code?: unknown; message?: unknown } };
  const task = err.cause;
  return {
    code: err.code ?? null,
    message: typeof err.message === 'string' ? err.message : String(e),
    step: (task?.details?.stepName as string | undefined) ?? null,
    stepCode: task?.code ?? null,
  };
}
