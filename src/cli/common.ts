/**
 * What the subcommands of `wpipe` share: exit codes, usage errors, printing errors, tables and JSON.
 *
 * @example
 * ```ts
 * throw usageError('--limit must be an integer from 1 to 1000, got abc');
 * ```
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { WpipeError } from '../errors.js';

/**
 * Loads the `yaml` package from its one-file bundle (dist/yaml-bundle.cjs, made by
 * scripts/build.mjs) and registers it under the package's own path in the require cache, so that
 * readYaml's `require('yaml')` finds it loaded. The package is 23 files: requiring them cost
 * 120–210 ms on this 2-core machine under load against 22–42 ms for the bundle, the largest part of
 * `wpipe run`'s start-up (bench/cli.ts). Does nothing outside the bundled command (no bundle file
 * beside this module), when yaml is loaded already, or with WPIPE_YAML_BUNDLE=0 (the bench's off switch).
 */
export function preloadYaml(): void {
  if (process.env.WPIPE_YAML_BUNDLE === '0') return;
  const bundle = fileURLToPath(new URL('./yaml-bundle.cjs', import.meta.url));
  if (!existsSync(bundle)) return;
  const require = createRequire(import.meta.url);
  let target: string;
  try {
    target = require.resolve('yaml');
  } catch {
    return;
  }
  if (require.cache[target] !== undefined) return;
  require(bundle);
  require.cache[target] = require.cache[bundle];
}

/**
 * The queue of a pipeline file's `executor: bullmq` (loadPipeline's and validatePipelineFile's
 * `bullmq` option) from `--redis URL [--queue NAME]`; none without them (such a file is then
 * refused). Only the flag counts, not $WPIPE_REDIS: a shell set up for `wpipe worker` must not
 * send an unknown file's steps to its queue unasked. `--queue` alone is a usage error.
 */
export function queueOption(flags: { redis?: string; queue?: string }): { bullmq?: { connection: string; name?: string } } {
  const redis = flags.redis;
  if (redis === undefined) {
    if (flags.queue !== undefined) throw usageError('--queue needs --redis URL: the Redis the queue lives on');
    return {};
  }
  return { bullmq: { connection: redis, ...(flags.queue === undefined ? {} : { name: flags.queue }) } };
}

/** Exit codes of the command (README "The wpipe command"). */
export const EXIT = Object.freeze({
  /** The run completed (or the command did what it was asked). */
  OK: 0,
  /** The run failed; `validate`: the file is invalid; `runs show`: no such run. */
  FAILED: 1,
  /** Bad arguments, an unreadable input, a pipeline file that cannot be loaded. */
  USAGE: 2,
  /** The run was cancelled by Ctrl-C (SIGINT) or SIGTERM: recorded as cancelled, resumable with --run-id. */
  INTERRUPTED: 130,
});

/** What a subcommand writes to (process streams, or fakes in tests). */
export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stdin: NodeJS.ReadableStream;
}

/** The process's own streams. */
export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };
}

/**
 * A usage error: bad arguments or input (exit code 2).
 *
 * @example
 * ```ts
 * throw usageError('--input: data.json is not JSON');
 * ```
 */
export function usageError(message: string, cause?: unknown): WpipeError {
  return new WpipeError('WPIPE_ERR_CLI_USAGE', message, cause === undefined ? {} : { cause });
}

/** `wpipe: message [CODE]`, with the causes a reader needs (a step's own error under a ProcessError). */
export function formatError(error: unknown): string {
  const lines: string[] = [];
  let e: unknown = error;
  for (let depth = 0; e !== undefined && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    const message = e instanceof Error ? e.message : String(e);
    const tag = typeof code === 'string' ? ` [${code}]` : '';
    lines.push(`${depth === 0 ? 'wpipe: ' : '  caused by: '}${message.replace(/\n/g, '\n  ')}${tag}`);
    e = e instanceof Error ? e.cause : undefined;
  }
  return `${lines.join('\n')}\n`;
}

/** Whether `error` is one of ours that means "the command was misused" (exit 2). */
export function isUsage(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'WPIPE_ERR_CLI_USAGE' || code === 'WPIPE_ERR_INVALID_OPTION' || code === 'WPIPE_ERR_PIPELINE_INVALID' ||
    code === 'WPIPE_ERR_YAML' || code === 'WPIPE_ERR_BACKEND_UNAVAILABLE';
}

/** JSON that also carries what a context may hold (BigInt, Map, Set, undefined in arrays as null). */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'bigint') return v.toString();
    if (v instanceof Map) return Object.fromEntries(v);
    if (v instanceof Set) return [...v];
    if (v instanceof Error) return { name: v.name, message: v.message, ...((v as { code?: unknown }).code ? { code: (v as { code?: unknown }).code } : {}) };
    return v;
  }, indent);
}

/**
 * A plain text table: a header row, then rows; cells cut to `maxCell` characters (…).
 *
 * @example
 * ```ts
 * table(['ID', 'STATUS'], [['r1', 'completed']]); // 'ID  STATUS\nr1  completed\n'
 * ```
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[], maxCell = 48): string {
  const cut = (s: string): string => {
    const flat = s.replace(/[\r\n\t]+/g, ' ');
    return flat.length > maxCell ? `${flat.slice(0, maxCell - 1)}…` : flat;
  };
  const cells = [header.map(cut), ...rows.map((r) => r.map(cut))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return `${cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n')}\n`;
}

/** `1.2 s`, `35 ms`, or '' for nothing. */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '';
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms >= 10_000 ? 0 : 1)} s` : `${Math.round(ms)} ms`;
}

/** Parses an integer option (commander hands strings). */
export function intOption(name: string, raw: string | undefined, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isInteger(n) || n < min || n > max) throw usageError(`${name} must be an integer from ${min} to ${max}, got '${raw}'`);
  return n;
}

/**
 * Resolves at the first SIGINT or SIGTERM (and stops listening): how the long-running commands
 * (`dashboard`, `worker`) wait before they close what they serve.
 *
 * @example
 * ```ts
 * await untilStopSignal();
 * await handle.close();
 * ```
 */
export function untilStopSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
