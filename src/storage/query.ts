/**
 * The read side of run history, for the dashboard, the exporter and the CLI: runs with filters and
 * paging, one run with its steps, attempts, events and alerts, statistics, trends.
 *
 * JSON columns (inputs, outputs, event data) are parsed but NOT revived: a Date stays in its tagged
 * form `{"$t":"Date","v":"…"}`, so every result can be sent as JSON as it is. (The tracker's
 * `getRun` revives them, for the engine.)
 *
 * Reads never block writers (WAL): a query sees the last commit made before it started.
 *
 * @example
 * ```ts
 * const q = new HistoryQuery('runs.db');
 * const { total, runs } = q.listRuns({ status: 'error', since: new Date(Date.now() - 86_400_000), limit: 20 });
 * const detail = q.getRunDetail(runs[0].runId);
 * const stats = q.stats({ pipelineName: 'orders' }); // { totalRuns, successRate, p95DurationMs, … }
 * q.close();
 * ```
 */
import { checkOptions, invalidOption } from '../errors.js';
import { openDb, StorageDb, storageError } from './db.js';
import { syncForReading } from './journal.js';
import type { RunStatus, StepRecord, StepStatus } from './records.js';

/** A point in time: a Date, an ISO-8601 string or epoch milliseconds. */
export type TimeInput = Date | string | number;

/** Filters of {@link HistoryQuery.listRuns}. */
export interface RunFilter {
  status?: RunStatus | readonly RunStatus[];
  pipelineName?: string;
  /** Runs started at or after this time. */
  since?: TimeInput;
  /** Runs started before this time. */
  until?: TimeInput;
  /** Only runs nested under this run (`null`: only top-level runs). */
  parentRunId?: string | null;
  /** Only this run (pipelines.id). */
  runId?: string;
  /** Page size, 1–1000 (default 50). */
  limit?: number;
  offset?: number;
}

const RUN_FILTER = ['status', 'pipelineName', 'since', 'until', 'parentRunId', 'runId', 'limit', 'offset'] as const;
const STATS_FILTER = ['pipelineName', 'since', 'until', 'runId'] as const;
const TREND_OPTIONS = ['bucket', 'pipelineName', 'since', 'until'] as const;

/** A run in a list (without its input and output, which can be large). */
export interface RunSummary {
  runId: string;
  pipelineName: string;
  status: RunStatus;
  startedAt: string;
  completedAt: string | null;
  durationMs: number | null;
  errorMessage: string | null;
  errorCode: string | null;
  errorStep: string | null;
  parentRunId: string | null;
  parentStepId: number | null;
  resumes: number;
  workerId: string | null;
  workerName: string | null;
}

/** A run with everything recorded about it. */
export interface RunDetail extends RunSummary {
  input: unknown;
  output: unknown;
  outputExact: boolean;
  errorData: unknown;
  structureHash: string | null;
  yamlPath: string | null;
  steps: StepView[];
  attempts: AttemptView[];
  events: EventView[];
  alerts: AlertView[];
  /** The checkpoint a resume would start from (without its context). */
  checkpoint: { name: string; position: number; stepOrder: number | null; saves: number; createdAt: string } | null;
  /** Runs of nested pipelines started by this run. */
  children: RunSummary[];
}

/**
 * A step row as the dashboard shows it (`order` is its step_order).
 *
 * @example
 * ```ts
 * q.getRunDetail('r1')!.steps[0].status; // 'completed'
 * ```
 */
export type StepView = Omit<StepRecord, 'runId' | 'error'> & {
  errorMessage: string | null;
  errorCode: string | null;
  errorTraceback: string | null;
};

/**
 * One recorded attempt of a step.
 *
 * @example
 * ```ts
 * q.getRunDetail('r1')!.attempts.filter((a) => a.status === 'timeout');
 * ```
 */
export interface AttemptView {
  stepOrder: number;
  attempt: number;
  status: string;
  startedAt: string | null;
  durationMs: number | null;
  errorMessage: string | null;
  errorCode: string | null;
}

/**
 * A recorded event.
 *
 * @example
 * ```ts
 * q.events({ type: 'checkpoint' })[0].name;
 * ```
 */
export interface EventView {
  id: number;
  runId: string | null;
  stepId: number | null;
  type: string;
  name: string;
  message: string | null;
  data: unknown;
  tags: string[] | null;
  createdAt: string;
}

/**
 * A fired alert.
 *
 * @example
 * ```ts
 * q.alerts({ severity: 'critical' }).length;
 * ```
 */
export interface AlertView {
  id: number;
  configId: number | null;
  runId: string | null;
  stepId: number | null;
  metric: string;
  value: number | null;
  threshold: number | null;
  severity: string;
  message: string | null;
  acknowledged: boolean;
  firedAt: string;
}

/**
 * A system metrics sample.
 *
 * @example
 * ```ts
 * q.systemMetrics({ runId: 'r1' }).map((m) => m.cpuPercent);
 * ```
 */
export interface MetricsView {
  id: number;
  runId: string | null;
  cpuPercent: number | null;
  memoryPercent: number | null;
  memoryUsedMb: number | null;
  memoryAvailableMb: number | null;
  diskIoReadMb: number | null;
  diskIoWriteMb: number | null;
  rssMb: number | null;
  recordedAt: string;
}

/** Result of {@link HistoryQuery.stats}. Durations are over finished runs, in ms. */
export interface HistoryStats {
  totalRuns: number;
  completed: number;
  errors: number;
  cancelled: number;
  running: number;
  /** Completed runs as a percentage of finished runs (0 when none finished), 2 decimals. */
  successRate: number;
  meanDurationMs: number | null;
  p50DurationMs: number | null;
  p95DurationMs: number | null;
  totalSteps: number;
  stepErrors: number;
  /** Completed steps as a percentage of finished steps, 2 decimals. */
  stepSuccessRate: number;
  alertsFired: number;
}

/** One bucket of {@link HistoryQuery.trends}. */
export interface TrendPoint {
  /** Start of the bucket, ISO-8601 UTC. */
  bucket: string;
  runs: number;
  completed: number;
  errors: number;
  cancelled: number;
  meanDurationMs: number | null;
}

/**
 * A `steps` row as the query API returns it (the dashboard's store uses it too).
 *
 * @example
 * ```ts
 * db.prepare('SELECT * FROM steps WHERE pipeline_id = ?').all(id).map(stepView);
 * ```
 */
export function stepView(s: Record<string, unknown>): StepView {
  return {
    order: Number(s.step_order),
    name: String(s.step_name),
    version: (s.step_version as string | null) ?? null,
    kind: String(s.step_type),
    position: (s.position as number | null) ?? null,
    status: s.status as StepStatus,
    attempts: Number(s.attempts),
    parentStepId: (s.parent_step_id as number | null) ?? null,
    parallelGroup: (s.parallel_group as string | null) ?? null,
    executor: (s.executor as string | null) ?? null,
    worker: (s.worker as string | null) ?? null,
    startedAt: String(s.started_at),
    completedAt: (s.completed_at as string | null) ?? null,
    durationMs: (s.duration_ms as number | null) ?? null,
    input: jsonColumn(s.input_data),
    output: jsonColumn(s.output_data),
    errorMessage: (s.error_message as string | null) ?? null,
    errorCode: (s.error_code as string | null) ?? null,
    errorTraceback: (s.error_traceback as string | null) ?? null,
  };
}

/** Parses a JSON column without reviving tags; unreadable text is returned as it is. */
export function jsonColumn(text: unknown): unknown {
  if (typeof text !== 'string') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function iso(value: TimeInput, name: string): string {
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) throw invalidOption(`HistoryQuery: ${name} is not a valid time: ${String(value)}`, 'RangeError');
  return d.toISOString();
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  // Nearest rank: the smallest value with at least p% of the values at or below it.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

const SUMMARY_COLUMNS = `id, name, status, started_at, completed_at, total_duration_ms, error_message, error_code, error_step,
  parent_pipeline_id, parent_step_id, resumes, worker_id, worker_name`;

function toSummary(r: Record<string, unknown>): RunSummary {
  return {
    runId: String(r.id),
    pipelineName: String(r.name),
    status: r.status as RunStatus,
    startedAt: String(r.started_at),
    completedAt: (r.completed_at as string | null) ?? null,
    durationMs: (r.total_duration_ms as number | null) ?? null,
    errorMessage: (r.error_message as string | null) ?? null,
    errorCode: (r.error_code as string | null) ?? null,
    errorStep: (r.error_step as string | null) ?? null,
    parentRunId: (r.parent_pipeline_id as string | null) ?? null,
    parentStepId: (r.parent_step_id as number | null) ?? null,
    resumes: Number(r.resumes ?? 0),
    workerId: (r.worker_id as string | null) ?? null,
    workerName: (r.worker_name as string | null) ?? null,
  };
}

/**
 * Read-only queries over a tracking database.
 *
 * @example
 * ```ts
 * const q = new HistoryQuery('runs.db');
 * q.trends({ bucket: 'hour', since: Date.now() - 86_400_000 }).forEach((p) => console.log(p.bucket, p.runs));
 * q.close();
 * ```
 */
export class HistoryQuery {
  private readonly target: string | StorageDb;
  private conn: StorageDb | undefined;
  private readonly owns: boolean;

  /** @param db a file path (opened on first query; it must exist) or an open {@link StorageDb}. */
  constructor(db: string | StorageDb) {
    if (typeof db !== 'string' && !(db instanceof StorageDb)) throw invalidOption('HistoryQuery: db must be a file path or a StorageDb');
    this.target = db;
    this.owns = typeof db === 'string';
  }

  /** The connection (opened on first use). */
  get db(): StorageDb {
    if (!this.conn) this.conn = typeof this.target === 'string' ? openDb(this.target, { fileMustExist: true }) : this.target;
    return this.conn;
  }

  private all(sql: string, params: unknown[] = []): Record<string, unknown>[] {
    syncForReading(this.db);
    try {
      return this.db.prepare(sql).all(...params) as Record<string, unknown>[];
    } catch (error) {
      throw storageError(error, 'query', this.db.path);
    }
  }

  private get(sql: string, params: unknown[] = []): Record<string, unknown> | undefined {
    syncForReading(this.db);
    try {
      return this.db.prepare(sql).get(...params) as Record<string, unknown> | undefined;
    } catch (error) {
      throw storageError(error, 'query', this.db.path);
    }
  }

  /** WHERE clause for run filters. */
  private where(filter: Omit<RunFilter, 'limit' | 'offset'>): { sql: string; params: unknown[] } {
    const parts: string[] = [];
    const params: unknown[] = [];
    if (filter.status !== undefined) {
      const list = (Array.isArray(filter.status) ? filter.status : [filter.status]) as string[];
      for (const s of list) {
        if (!['running', 'completed', 'error', 'cancelled'].includes(s)) {
          throw invalidOption(`HistoryQuery: status must be running, completed, error or cancelled, got ${JSON.stringify(s)}`, 'RangeError');
        }
      }
      parts.push(`status IN (${list.map(() => '?').join(', ')})`);
      params.push(...list);
    }
    if (filter.runId !== undefined) {
      parts.push('id = ?');
      params.push(filter.runId);
    }
    if (filter.pipelineName !== undefined) {
      parts.push('name = ?');
      params.push(filter.pipelineName);
    }
    if (filter.since !== undefined) {
      parts.push('started_at >= ?');
      params.push(iso(filter.since, 'since'));
    }
    if (filter.until !== undefined) {
      parts.push('started_at < ?');
      params.push(iso(filter.until, 'until'));
    }
    if (filter.parentRunId === null) parts.push('parent_pipeline_id IS NULL');
    else if (filter.parentRunId !== undefined) {
      parts.push('parent_pipeline_id = ?');
      params.push(filter.parentRunId);
    }
    return { sql: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params };
  }

  /**
   * Runs matching `filter`, newest first, one page at a time, with the total count.
   *
   * @example
   * ```ts
   * q.listRuns({ pipelineName: 'orders', status: ['error', 'cancelled'], limit: 20, offset: 40 });
   * ```
   */
  listRuns(filter: RunFilter = {}): { total: number; runs: RunSummary[] } {
    checkOptions('HistoryQuery.listRuns', filter, RUN_FILTER);
    const limit = filter.limit ?? 50;
    const offset = filter.offset ?? 0;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw invalidOption(`HistoryQuery.listRuns: limit must be an integer 1–1000, got ${String(limit)}`, 'RangeError');
    if (!Number.isInteger(offset) || offset < 0) throw invalidOption(`HistoryQuery.listRuns: offset must be an integer ≥ 0, got ${String(offset)}`, 'RangeError');
    const w = this.where(filter);
    const total = Number(this.get(`SELECT count(*) AS n FROM pipelines ${w.sql}`, w.params)!.n);
    const rows = this.all(`SELECT ${SUMMARY_COLUMNS} FROM pipelines ${w.sql} ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?`, [...w.params, limit, offset]);
    return { total, runs: rows.map(toSummary) };
  }

  /**
   * One run with its steps (in step_order), attempts, events, alerts, checkpoint and nested runs.
   *
   * @example
   * ```ts
   * q.getRunDetail('order-7')?.steps.filter((s) => s.status === 'error');
   * ```
   */
  getRunDetail(runId: string): RunDetail | undefined {
    const r = this.get('SELECT * FROM pipelines WHERE id = ?', [runId]);
    if (!r) return undefined;
    const steps = this.all('SELECT * FROM steps WHERE pipeline_id = ? ORDER BY step_order', [runId]).map(stepView);
    const attempts = this.all('SELECT * FROM attempts WHERE pipeline_id = ? ORDER BY step_order, attempt', [runId]).map((a): AttemptView => ({
      stepOrder: Number(a.step_order),
      attempt: Number(a.attempt),
      status: String(a.status),
      startedAt: (a.started_at as string | null) ?? null,
      durationMs: (a.duration_ms as number | null) ?? null,
      errorMessage: (a.error_message as string | null) ?? null,
      errorCode: (a.error_code as string | null) ?? null,
    }));
    const events = this.events({ runId, limit: 1000 }).reverse();
    const alerts = this.alerts({ runId, limit: 1000 });
    const cp = this.get('SELECT name, position, step_order, saves, created_at FROM checkpoints WHERE pipeline_id = ?', [runId]);
    const children = this.all(`SELECT ${SUMMARY_COLUMNS} FROM pipelines WHERE parent_pipeline_id = ? ORDER BY started_at`, [runId]).map(toSummary);
    return {
      ...toSummary(r),
      input: jsonColumn(r.input_data),
      output: jsonColumn(r.output_data),
      outputExact: r.output_exact === 1,
      errorData: jsonColumn(r.error_data),
      structureHash: (r.structure_hash as string | null) ?? null,
      yamlPath: (r.yaml_path as string | null) ?? null,
      steps,
      attempts,
      events,
      alerts,
      checkpoint: cp
        ? { name: String(cp.name), position: Number(cp.position), stepOrder: (cp.step_order as number | null) ?? null, saves: Number(cp.saves), createdAt: String(cp.created_at) }
        : null,
      children,
    };
  }

  /**
   * Counts, success rate and mean/p50/p95 durations of the runs matching `filter`.
   *
   * @example
   * ```ts
   * const { successRate, p95DurationMs } = q.stats({ since: '2025-01-01' });
   * ```
   */
  stats(filter: Pick<RunFilter, 'pipelineName' | 'since' | 'until' | 'runId'> = {}): HistoryStats {
    checkOptions('HistoryQuery.stats', filter, STATS_FILTER);
    const w = this.where(filter);
    const c = this.get(
      `SELECT count(*) AS total, sum(status = 'completed') AS completed, sum(status = 'error') AS errors,
         sum(status = 'cancelled') AS cancelled, sum(status = 'running') AS running FROM pipelines ${w.sql}`,
      w.params,
    )!;
    const durations = this.all(
      `SELECT total_duration_ms AS d FROM pipelines ${w.sql ? `${w.sql} AND` : 'WHERE'} status != 'running' AND total_duration_ms IS NOT NULL ORDER BY d`,
      w.params,
    ).map((r) => Number(r.d));
    const stepScope = w.sql ? `WHERE pipeline_id IN (SELECT id FROM pipelines ${w.sql})` : '';
    const s = this.get(
      `SELECT count(*) AS total, sum(status = 'completed') AS completed, sum(status = 'error') AS errors,
         sum(status IN ('completed', 'error', 'interrupted', 'cancelled')) AS finished FROM steps ${stepScope}`,
      w.params,
    )!;
    const alertScope = w.sql ? `WHERE pipeline_id IN (SELECT id FROM pipelines ${w.sql})` : '';
    const a = this.get(`SELECT count(*) AS n FROM alerts_fired ${alertScope}`, w.params)!;
    const completed = Number(c.completed ?? 0);
    const errors = Number(c.errors ?? 0);
    const cancelled = Number(c.cancelled ?? 0);
    const finished = completed + errors + cancelled;
    const stepFinished = Number(s.finished ?? 0);
    const mean = durations.length ? durations.reduce((x, y) => x + y, 0) / durations.length : null;
    return {
      totalRuns: Number(c.total ?? 0),
      completed,
      errors,
      cancelled,
      running: Number(c.running ?? 0),
      successRate: finished ? round2((completed / finished) * 100) : 0,
      meanDurationMs: mean === null ? null : round2(mean),
      p50DurationMs: percentile(durations, 50),
      p95DurationMs: percentile(durations, 95),
      totalSteps: Number(s.total ?? 0),
      stepErrors: Number(s.errors ?? 0),
      stepSuccessRate: stepFinished ? round2((Number(s.completed ?? 0) / stepFinished) * 100) : 0,
      alertsFired: Number(a.n ?? 0),
    };
  }

  /**
   * Runs per hour or per day (UTC), oldest bucket first; buckets without runs are omitted.
   *
   * @example
   * ```ts
   * q.trends({ bucket: 'day', since: Date.now() - 7 * 86_400_000, pipelineName: 'orders' });
   * ```
   */
  trends(options: { bucket?: 'hour' | 'day'; pipelineName?: string; since?: TimeInput; until?: TimeInput } = {}): TrendPoint[] {
    checkOptions('HistoryQuery.trends', options, TREND_OPTIONS);
    const bucket = options.bucket ?? 'day';
    if (bucket !== 'hour' && bucket !== 'day') throw invalidOption(`HistoryQuery.trends: bucket must be 'hour' or 'day', got ${JSON.stringify(bucket)}`, 'RangeError');
    const { bucket: _b, ...filter } = options;
    const w = this.where(filter);
    const len = bucket === 'hour' ? 13 : 10;
    const rows = this.all(
      `SELECT substr(started_at, 1, ${len}) AS b, count(*) AS runs, sum(status = 'completed') AS completed,
         sum(status = 'error') AS errors, sum(status = 'cancelled') AS cancelled,
         avg(CASE WHEN status != 'running' THEN total_duration_ms END) AS mean
       FROM pipelines ${w.sql} GROUP BY b ORDER BY b`,
      w.params,
    );
    return rows.map((r) => ({
      bucket: bucket === 'hour' ? `${String(r.b)}:00:00.000Z` : `${String(r.b)}T00:00:00.000Z`,
      runs: Number(r.runs),
      completed: Number(r.completed ?? 0),
      errors: Number(r.errors ?? 0),
      cancelled: Number(r.cancelled ?? 0),
      meanDurationMs: r.mean === null ? null : round2(Number(r.mean)),
    }));
  }

  /**
   * Events, newest first.
   *
   * @example
   * ```ts
   * q.events({ type: 'checkpoint', limit: 10 });
   * ```
   */
  events(options: { runId?: string; type?: string; limit?: number } = {}): EventView[] {
    const parts: string[] = [];
    const params: unknown[] = [];
    if (options.runId !== undefined) { parts.push('pipeline_id = ?'); params.push(options.runId); }
    if (options.type !== undefined) { parts.push('event_type = ?'); params.push(options.type); }
    const rows = this.all(`SELECT * FROM events ${parts.length ? `WHERE ${parts.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`, [...params, options.limit ?? 50]);
    return rows.map((e) => ({
      id: Number(e.id),
      runId: (e.pipeline_id as string | null) ?? null,
      stepId: (e.step_id as number | null) ?? null,
      type: String(e.event_type),
      name: String(e.event_name),
      message: (e.message as string | null) ?? null,
      data: jsonColumn(e.data),
      tags: (jsonColumn(e.tags) as string[] | null) ?? null,
      createdAt: String(e.created_at),
    }));
  }

  /**
   * Fired alerts, newest first.
   *
   * @example
   * ```ts
   * q.alerts({ severity: 'critical' });
   * ```
   */
  /**
   * Marks a fired alert as acknowledged (really: the Python original's acknowledge changed nothing).
   * Returns false when there is no alert with that id.
   *
   * @example
   * ```ts
   * q.acknowledgeAlert(12); // true
   * ```
   */
  acknowledgeAlert(id: number): boolean {
    if (!Number.isInteger(id) || id < 1) throw invalidOption(`acknowledgeAlert: id must be a positive integer, got ${String(id)}`);
    syncForReading(this.db);
    const db = this.db;
    try {
      return db.transaction(() => db.prepare('UPDATE alerts_fired SET acknowledged = 1 WHERE id = ?').run(id).changes === 1);
    } catch (error) {
      throw storageError(error, 'acknowledgeAlert', db.path);
    }
  }

  alerts(options: { runId?: string; severity?: string; limit?: number } = {}): AlertView[] {
    const parts: string[] = [];
    const params: unknown[] = [];
    if (options.runId !== undefined) { parts.push('pipeline_id = ?'); params.push(options.runId); }
    if (options.severity !== undefined) { parts.push('severity = ?'); params.push(options.severity); }
    const rows = this.all(`SELECT * FROM alerts_fired ${parts.length ? `WHERE ${parts.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`, [...params, options.limit ?? 50]);
    return rows.map((a) => ({
      id: Number(a.id),
      configId: (a.alert_config_id as number | null) ?? null,
      runId: (a.pipeline_id as string | null) ?? null,
      stepId: (a.step_id as number | null) ?? null,
      metric: String(a.metric),
      value: (a.metric_value as number | null) ?? null,
      threshold: (a.threshold_value as number | null) ?? null,
      severity: String(a.severity),
      message: (a.message as string | null) ?? null,
      acknowledged: a.acknowledged === 1,
      firedAt: String(a.fired_at),
    }));
  }

  /**
   * System metrics samples, newest first.
   *
   * @example
   * ```ts
   * q.systemMetrics({ runId: 'order-7' });
   * ```
   */
  systemMetrics(options: { runId?: string; limit?: number } = {}): MetricsView[] {
    const rows = options.runId === undefined
      ? this.all('SELECT * FROM system_metrics ORDER BY recorded_at DESC, id DESC LIMIT ?', [options.limit ?? 1000])
      : this.all('SELECT * FROM system_metrics WHERE pipeline_id = ? ORDER BY recorded_at DESC, id DESC LIMIT ?', [options.runId, options.limit ?? 1000]);
    return rows.map((m) => ({
      id: Number(m.id),
      runId: (m.pipeline_id as string | null) ?? null,
      cpuPercent: (m.cpu_percent as number | null) ?? null,
      memoryPercent: (m.memory_percent as number | null) ?? null,
      memoryUsedMb: (m.memory_used_mb as number | null) ?? null,
      memoryAvailableMb: (m.memory_available_mb as number | null) ?? null,
      diskIoReadMb: (m.disk_io_read_mb as number | null) ?? null,
      diskIoWriteMb: (m.disk_io_write_mb as number | null) ?? null,
      rssMb: (m.rss_mb as number | null) ?? null,
      recordedAt: String(m.recorded_at),
    }));
  }

  /**
   * Pipeline names with their run counts and latest start.
   *
   * @example
   * ```ts
   * q.pipelineNames(); // [{ name: 'orders', runs: 120, lastStartedAt: '…' }]
   * ```
   */
  pipelineNames(): { name: string; runs: number; lastStartedAt: string }[] {
    return this.all('SELECT name, count(*) AS runs, max(started_at) AS last FROM pipelines GROUP BY name ORDER BY name').map((r) => ({
      name: String(r.name),
      runs: Number(r.runs),
      lastStartedAt: String(r.last),
    }));
  }

  /** Releases the connection (when this object opened it). */
  close(): void {
    if (this.conn && this.owns) this.conn.close();
    this.conn = undefined;
  }
}
