/**
 * `wpipe runs list|show` and `wpipe export`: the run history, read without writing code.
 *
 * @example
 * ```sh
 * wpipe runs list --db runs.db --status error --limit 20
 * wpipe runs show order-7 --db runs.db --json
 * wpipe export --db runs.db --format csv --out runs.csv
 * ```
 */
import { existsSync } from 'node:fs';
import { EXIT, formatError, formatMs, intOption, isUsage, table, toJson, usageError, type CliIo } from './common.js';

const STATUSES = ['running', 'completed', 'error', 'cancelled', 'interrupted'];

function checkDb(db: string | undefined, required: boolean): string {
  const file = db ?? process.env.WPIPE_DB ?? (required ? undefined : 'runs.db');
  if (file === undefined || file === '') throw usageError('--db FILE is required (the run history: a pipeline\'s trackingDb)');
  if (!existsSync(file)) throw usageError(`--db: ${file} does not exist (give the trackingDb of your pipelines)`);
  return file;
}

async function query(db: string) {
  const { HistoryQuery } = await import('../storage/query.js');
  return new HistoryQuery(db);
}

/** Flags of `wpipe runs list`. */
export interface ListFlags { db?: string; status?: string; limit?: string; pipeline?: string; json?: boolean }

/**
 * `wpipe runs list`: newest first; a table, or JSON `{ total, runs }` with --json.
 *
 * @example
 * ```ts
 * await runsList({ db: 'runs.db', status: 'error' }, processIo());
 * ```
 */
export async function runsList(flags: ListFlags, io: CliIo): Promise<number> {
  try {
    const db = checkDb(flags.db, false);
    const statuses = flags.status?.split(',').map((s) => s.trim()).filter((s) => s !== '');
    for (const s of statuses ?? []) {
      if (!STATUSES.includes(s)) throw usageError(`--status must be one of ${STATUSES.join(', ')} (or a comma-separated list), got '${s}'`);
    }
    const limit = intOption('--limit', flags.limit, 1, 1000) ?? 20;
    const q = await query(db);
    try {
      const { total, runs } = q.listRuns({
        limit, ...(statuses !== undefined && statuses.length > 0 ? { status: statuses as never } : {}),
        ...(flags.pipeline !== undefined ? { pipelineName: flags.pipeline } : {}),
      });
      if (flags.json) {
        io.stdout.write(`${toJson({ total, runs })}\n`);
      } else if (runs.length === 0) {
        io.stdout.write(`no runs${statuses ? ` with status ${statuses.join(' or ')}` : ''} in ${db}\n`);
      } else {
        io.stdout.write(table(['RUN ID', 'PIPELINE', 'STATUS', 'STARTED', 'DURATION', 'ERROR'], runs.map((r) => [
          r.runId, r.pipelineName, r.status, r.startedAt, formatMs(r.durationMs),
          r.errorMessage === null ? '' : `${r.errorStep ? `${r.errorStep}: ` : ''}${r.errorMessage}`,
        ]), io.stdout.isTTY ? 48 : 200));
        if (total > runs.length) io.stdout.write(`(${runs.length} of ${total}; --limit N for more)\n`);
      }
    } finally {
      q.close();
    }
    return EXIT.OK;
  } catch (e) {
    io.stderr.write(formatError(e));
    return isUsage(e) ? EXIT.USAGE : EXIT.FAILED;
  }
}

/**
 * `wpipe runs show ID`: one run with its steps; exit 1 when the history has no such run.
 *
 * @example
 * ```ts
 * await runsShow('order-7', { db: 'runs.db', json: true }, processIo());
 * ```
 */
export async function runsShow(runId: string, flags: { db?: string; json?: boolean }, io: CliIo): Promise<number> {
  try {
    const db = checkDb(flags.db, false);
    const q = await query(db);
    try {
      const run = q.getRunDetail(runId);
      if (run === undefined) {
        io.stderr.write(`wpipe: no run '${runId}' in ${db}\n`);
        return EXIT.FAILED;
      }
      if (flags.json) {
        io.stdout.write(`${toJson(run)}\n`);
        return EXIT.OK;
      }
      const lines = [
        `run        ${run.runId}`,
        `pipeline   ${run.pipelineName}`,
        `status     ${run.status}${run.resumes > 0 ? ` (resumed ${run.resumes}×)` : ''}`,
        `started    ${run.startedAt}`,
        `completed  ${run.completedAt ?? ''}`,
        `duration   ${formatMs(run.durationMs)}`,
      ];
      if (run.errorMessage !== null) lines.push(`error      ${run.errorStep ? `${run.errorStep}: ` : ''}${run.errorMessage}${run.errorCode ? ` [${run.errorCode}]` : ''}`);
      if (run.checkpoint !== null) lines.push(`checkpoint ${run.checkpoint.name} (position ${run.checkpoint.position}, saved ${run.checkpoint.saves}×)`);
      io.stdout.write(`${lines.join('\n')}\n\n`);
      io.stdout.write(table(['#', 'STEP', 'KIND', 'STATUS', 'ATTEMPTS', 'DURATION', 'ERROR'], run.steps.map((s) => [
        String(s.order), s.name, String(s.kind), String(s.status), String(s.attempts ?? ''), formatMs(s.durationMs),
        s.errorMessage ?? '',
      ]), io.stdout.isTTY ? 48 : 200));
      return EXIT.OK;
    } finally {
      q.close();
    }
  } catch (e) {
    io.stderr.write(formatError(e));
    return isUsage(e) ? EXIT.USAGE : EXIT.FAILED;
  }
}

/** Flags of `wpipe export`. */
export interface ExportFlags { db?: string; format?: string; out?: string; data?: string; runId?: string }

const DATA = { runs: 'exportPipelineLogs', metrics: 'exportMetrics', statistics: 'exportStatistics' } as const;

/**
 * `wpipe export`: the runs (default), the system metrics or the statistics, as JSON or CSV, to
 * stdout or `--out FILE` (written atomically).
 *
 * @example
 * ```ts
 * await exportCommand({ db: 'runs.db', format: 'csv', out: 'runs.csv' }, processIo());
 * ```
 */
export async function exportCommand(flags: ExportFlags, io: CliIo): Promise<number> {
  try {
    const db = checkDb(flags.db, true);
    const format = flags.format ?? 'json';
    if (format !== 'json' && format !== 'csv') throw usageError(`--format must be json or csv, got '${format}'`);
    const data = flags.data ?? 'runs';
    if (!(data in DATA)) throw usageError(`--data must be one of ${Object.keys(DATA).join(', ')}, got '${data}'`);
    const { PipelineExporter } = await import('../index.js');
    const exporter = new PipelineExporter(db);
    try {
      const method = DATA[data as keyof typeof DATA];
      const out = exporter[method]({ format, ...(flags.runId !== undefined ? { pipelineId: flags.runId } : {}), ...(flags.out !== undefined ? { outputPath: flags.out } : {}) });
      if (flags.out !== undefined) io.stderr.write(`wpipe: wrote ${out}\n`);
      else io.stdout.write(out.endsWith('\n') ? out : `${out}\n`);
    } finally {
      exporter.close();
    }
    return EXIT.OK;
  } catch (e) {
    io.stderr.write(formatError(e));
    return isUsage(e) ? EXIT.USAGE : EXIT.FAILED;
  }
}
