/**
 * PipelineExporter: run history, system metrics and statistics of a tracking database as JSON or
 * RFC 4180 CSV (reference §8, with its faults fixed: values are quoted, never comma-mangled; both
 * `format` and the original's `exportFormat` spelling are accepted; statistics export to CSV too).
 *
 * @example
 * ```ts
 * const exporter = new PipelineExporter('runs.db');
 * const csv = exporter.exportPipelineLogs({ format: 'csv' });            // the text
 * exporter.exportStatistics({ format: 'json', outputPath: 'stats.json' }); // → 'stats.json'
 * exporter.close();
 * ```
 */
import { WpipeError, checkOptions, invalidOption } from '../errors.js';
import { HistoryQuery } from '../storage/query.js';
import { openDb, storageError, type StorageDb } from '../storage/db.js';
import { syncForReading } from '../storage/journal.js';

/** The formats the exporter writes. */
export const EXPORT_FORMATS = ['json', 'csv'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** Options of every export method. */
export interface ExportOptions {
  /** `'json'` (default) or `'csv'`. */
  format?: ExportFormat;
  /** The Python original's name for `format`; accepted too. */
  exportFormat?: ExportFormat;
  /** Only this run (a `pipelines.id`, i.e. the run id). */
  pipelineId?: string;
  /** Write the export to this file (atomically: a temp file, then rename) and return the path. */
  outputPath?: string;
}

const EXPORT_OPTIONS = ['format', 'exportFormat', 'pipelineId', 'outputPath'] as const;

/** Columns of a pipeline log row, in the reference's order followed by the ones wpipe adds. */
const LOG_COLUMNS = [
  'id', 'name', 'worker_id', 'worker_name', 'status', 'started_at', 'completed_at', 'total_duration_ms', 'input_data',
  'output_data', 'error_message', 'error_step', 'parent_pipeline_id', 'yaml_path', 'error_code', 'parent_step_id', 'resumes',
  'structure_hash',
] as const;
const JSON_COLUMNS = new Set(['input_data', 'output_data']);

const METRIC_COLUMNS = [
  'id', 'pipeline_id', 'scope', 'step_order', 'cpu_percent', 'peak_cpu_percent', 'rss_mb', 'peak_rss_mb', 'samples', 'duration_ms',
  'sampler', 'memory_percent', 'memory_used_mb', 'memory_available_mb', 'disk_io_read_mb', 'disk_io_write_mb', 'recorded_at',
] as const;

const STAT_COLUMNS = [
  'total_executions', 'successful_executions', 'failed_executions', 'cancelled_executions', 'running_executions',
  'success_rate_percent', 'average_execution_time_seconds', 'mean_duration_ms', 'p50_duration_ms', 'p95_duration_ms',
  'total_steps', 'step_success_rate_percent', 'alerts_fired', 'pipeline_id', 'exported_at',
] as const;

/**
 * One CSV field per RFC 4180: quoted when it holds a comma, a quote, CR or LF, with embedded
 * quotes doubled. `null`/`undefined` → empty; objects → their JSON text.
 *
 * @example
 * ```ts
 * csvField('say "hi", bye'); // '"say ""hi"", bye"'
 * ```
 */
export function csvField(value: unknown): string {
  let text: string;
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') text = String(value);
  else text = JSON.stringify(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * RFC 4180 CSV text: a header line, then one line per row, every line ended by CRLF.
 *
 * @example
 * ```ts
 * toCsv(['a', 'b'], [{ a: 1, b: 'x,y' }]); // 'a,b\r\n1,"x,y"\r\n'
 * ```
 */
export function toCsv(columns: readonly string[], rows: readonly Record<string, unknown>[]): string {
  let out = `${columns.map(csvField).join(',')}\r\n`;
  for (const row of rows) out += `${columns.map((c) => csvField(row[c])).join(',')}\r\n`;
  return out;
}

export { writeFileAtomic } from '../system/files.js';
import { writeFileAtomic } from '../system/files.js';

/**
 * Exports a tracking database's run history.
 *
 * @example
 * ```ts
 * const exporter = new PipelineExporter('runs.db');
 * exporter.exportMetrics({ format: 'csv', pipelineId: 'order-7', outputPath: 'metrics.csv' });
 * ```
 */
export class PipelineExporter {
  readonly dbPath: string;
  private conn: StorageDb | undefined;
  private query: HistoryQuery | undefined;

  /** @param dbPath the tracking database; it must exist (opened on the first export). */
  constructor(dbPath: string) {
    if (typeof dbPath !== 'string' || dbPath.length === 0) throw invalidOption('PipelineExporter: dbPath must be a non-empty string');
    this.dbPath = dbPath;
  }

  /**
   * The `pipelines` rows (all runs, or the one `pipelineId`), newest first. JSON keeps the
   * input/output columns as nested JSON; CSV carries them as JSON text in one quoted field.
   *
   * @example
   * ```ts
   * exporter.exportPipelineLogs({ format: 'json' }); // '[\n  {\n    "id": "order-7", …'
   * ```
   */
  exportPipelineLogs(options: ExportOptions = {}): string {
    const { format, pipelineId, outputPath } = this.resolve('exportPipelineLogs', options);
    const rows = this.rows(
      `SELECT ${LOG_COLUMNS.join(', ')} FROM pipelines ${pipelineId === undefined ? '' : 'WHERE id = ?'} ORDER BY started_at DESC, id DESC`,
      pipelineId,
    );
    let text: string;
    if (format === 'csv') text = toCsv(LOG_COLUMNS, rows);
    else {
      const parsed = rows.map((r) => {
        const out: Record<string, unknown> = {};
        for (const c of LOG_COLUMNS) out[c] = JSON_COLUMNS.has(c) ? parseJson(r[c]) : r[c];
        return out;
      });
      text = JSON.stringify(parsed, null, 2);
    }
    return this.finish(text, outputPath);
  }

  /**
   * The `system_metrics` samples (all, or of `pipelineId`), newest first.
   *
   * @example
   * ```ts
   * exporter.exportMetrics({ format: 'csv' });
   * ```
   */
  exportMetrics(options: ExportOptions = {}): string {
    const { format, pipelineId, outputPath } = this.resolve('exportMetrics', options);
    const rows = this.rows(
      `SELECT ${METRIC_COLUMNS.join(', ')} FROM system_metrics ${pipelineId === undefined ? '' : 'WHERE pipeline_id = ?'} ORDER BY recorded_at DESC, id DESC`,
      pipelineId,
    );
    const text = format === 'csv' ? toCsv(METRIC_COLUMNS, rows) : JSON.stringify(rows, null, 2);
    return this.finish(text, outputPath);
  }

  /**
   * Counts, success rate and durations (mean, p50, p95) over all runs or the one `pipelineId`.
   * Keeps the original's keys (`total_executions`, `successful_executions`, `success_rate_percent`,
   * `average_execution_time_seconds`, `exported_at`) and adds the rest.
   *
   * @example
   * ```ts
   * JSON.parse(exporter.exportStatistics()).success_rate_percent; // 50
   * ```
   */
  exportStatistics(options: ExportOptions = {}): string {
    const { format, pipelineId, outputPath } = this.resolve('exportStatistics', options);
    this.db();
    const s = this.query!.stats(pipelineId === undefined ? {} : { runId: pipelineId });
    const stats: Record<string, unknown> = {
      total_executions: s.totalRuns,
      successful_executions: s.completed,
      failed_executions: s.errors,
      cancelled_executions: s.cancelled,
      running_executions: s.running,
      success_rate_percent: s.successRate,
      average_execution_time_seconds: s.meanDurationMs === null ? 0 : Math.round(s.meanDurationMs / 10) / 100,
      mean_duration_ms: s.meanDurationMs,
      p50_duration_ms: s.p50DurationMs,
      p95_duration_ms: s.p95DurationMs,
      total_steps: s.totalSteps,
      step_success_rate_percent: s.stepSuccessRate,
      alerts_fired: s.alertsFired,
      pipeline_id: pipelineId ?? null,
      exported_at: new Date().toISOString(),
    };
    const text = format === 'csv' ? toCsv(STAT_COLUMNS, [stats]) : JSON.stringify(stats, null, 2);
    return this.finish(text, outputPath);
  }

  /** Releases the connection. */
  close(): void {
    this.query?.close();
    this.query = undefined;
    this.conn?.close();
    this.conn = undefined;
  }

  private resolve(where: string, options: ExportOptions): { format: ExportFormat; pipelineId?: string; outputPath?: string } {
    checkOptions(`PipelineExporter.${where}`, options, EXPORT_OPTIONS);
    if (options.format !== undefined && options.exportFormat !== undefined && options.format !== options.exportFormat) {
      throw invalidOption(`PipelineExporter.${where}: format '${String(options.format)}' and exportFormat '${String(options.exportFormat)}' disagree; give one`);
    }
    const format = (options.format ?? options.exportFormat ?? 'json') as string;
    if (!(EXPORT_FORMATS as readonly string[]).includes(format)) {
      throw new WpipeError('WPIPE_ERR_EXPORT_FORMAT', `PipelineExporter.${where}: unknown format ${JSON.stringify(format)}; valid formats are ${EXPORT_FORMATS.map((f) => `'${f}'`).join(', ')}`, {
        details: { format, valid: [...EXPORT_FORMATS] },
      });
    }
    if (options.pipelineId !== undefined && typeof options.pipelineId !== 'string') {
      throw invalidOption(`PipelineExporter.${where}: pipelineId must be a string, got ${typeof options.pipelineId}`);
    }
    if (options.outputPath !== undefined && (typeof options.outputPath !== 'string' || options.outputPath.length === 0)) {
      throw invalidOption(`PipelineExporter.${where}: outputPath must be a non-empty string`);
    }
    const out: { format: ExportFormat; pipelineId?: string; outputPath?: string } = { format: format as ExportFormat };
    if (options.pipelineId !== undefined) out.pipelineId = options.pipelineId;
    if (options.outputPath !== undefined) out.outputPath = options.outputPath;
    return out;
  }

  private db(): StorageDb {
    if (!this.conn) {
      this.conn = openDb(this.dbPath, { fileMustExist: true });
      this.query = new HistoryQuery(this.conn);
    }
    return this.conn;
  }

  private rows(sql: string, param: string | undefined): Record<string, unknown>[] {
    const db = this.db();
    syncForReading(db);
    try {
      const stmt = db.prepare(sql);
      return (param === undefined ? stmt.all() : stmt.all(param)) as Record<string, unknown>[];
    } catch (error) {
      throw storageError(error, 'export', db.path);
    }
  }

  private finish(text: string, outputPath: string | undefined): string {
    if (outputPath === undefined) return text;
    writeFileAtomic(outputPath, text);
    return outputPath;
  }
}

function parseJson(text: unknown): unknown {
  if (typeof text !== 'string') return text ?? null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
