/**
 * The dashboard's view of the run history: every query the HTTP API answers, on a READ-ONLY
 * better-sqlite3 connection of its own, plus the writes the API allows (acknowledging an alert,
 * reports from other hosts) on a second writable connection, opened at the first write.
 *
 * Why not HistoryQuery (src/storage/query.ts) as it is: its reads first fold the step journals of
 * other processes into SQLite (a write), and its list pages by OFFSET. The dashboard must never take
 * the write lock for a read (it would fight the pipelines it watches), and pages 100,000 runs by key.
 * So it reads what SQLite has — a wpipe writer folds its journal every few milliseconds and at each
 * run end, so finished runs are there — and the row shapes are HistoryQuery's own types (RunSummary,
 * StepView, AttemptView, EventView, AlertView), so the JSON is the same wherever it comes from.
 *
 * Every query below is written for the schema's indexes (see src/storage/schema.ts): run lists walk
 * `pipelines_started_at` backwards and stop at the page; a run's rows are primary-key ranges;
 * events, alerts and metrics of a run use their `(pipeline_id, …)` indexes.
 *
 * @example
 * ```ts
 * const store = DashboardStore.open('runs.db');
 * const page = store.listRuns({ limit: 50 }); // { runs, nextCursor }
 * store.close();
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { WpipeError } from '../errors.js';
import { openDb, storageError } from '../storage/db.js';
import { SCHEMA_VERSION } from '../storage/schema.js';
import { jsonColumn, stepView, type AlertView, type AttemptView, type EventView, type RunSummary, type StepView, type TrendPoint } from '../storage/query.js';
import type { RunStatus, StepStatus } from '../storage/records.js';

type Database = BetterSqlite3.Database;
type Row = Record<string, unknown>;

/** Run statuses a filter may name. */
export const RUN_STATUSES: readonly RunStatus[] = ['running', 'completed', 'error', 'cancelled', 'interrupted'];

/**
 * Tables `/api/data/:table` may browse, with the column they are ordered by (newest first) and the
 * columns a `status` / `pipelineId` filter applies to. Nothing else can be named: the table name is
 * checked against this list before any SQL is built.
 */
export const DATA_TABLES: Readonly<Record<string, { order: string; status: boolean; runColumn: string | null }>> = Object.freeze({
  pipelines: { order: 'started_at DESC, id DESC', status: true, runColumn: 'id' },
  steps: { order: 'pipeline_id DESC, step_order DESC', status: true, runColumn: 'pipeline_id' },
  attempts: { order: 'pipeline_id DESC, step_order DESC, attempt DESC', status: true, runColumn: 'pipeline_id' },
  events: { order: 'id DESC', status: false, runColumn: 'pipeline_id' },
  alerts_fired: { order: 'id DESC', status: false, runColumn: 'pipeline_id' },
  alerts_config: { order: 'id DESC', status: false, runColumn: null },
  system_metrics: { order: 'id DESC', status: false, runColumn: 'pipeline_id' },
  checkpoints: { order: 'created_at DESC', status: false, runColumn: 'pipeline_id' },
});

/** Runs started since the step-count watermark past which stats() counts every step again. */
export const RECOUNT_AFTER = 20_000;
/** How far before the newest start the watermark stays (journal folds can land a little late). */
const LATE_MS = 60_000;

/** Longest text a table-browser cell carries (a context or an output can be a megabyte). */
const CELL_MAX = 2000;

/** Totals of one step name (see DashboardStore.nameAggregates). */
export interface NameAggregate {
  n: number;
  errors: number;
  total: number;
  okTotal: number;
  ok: number;
  okMax: number | null;
}

/** A run's state, as another host's ApiReporter sends it (the whole row each time). */
export interface IngestRunReport {
  type: 'run';
  runId: string;
  pipelineName: string;
  status: 'running' | 'completed' | 'error' | 'cancelled';
  startedAt: string;
  completedAt?: string | null;
  durationMs?: number | null;
  errorMessage?: string | null;
  errorCode?: string | null;
  errorStep?: string | null;
  parentRunId?: string | null;
}

/** A finished step, as another host's ApiReporter sends it. */
export interface IngestStepReport {
  type: 'step';
  runId: string;
  order: number;
  name: string;
  kind?: string;
  version?: string | null;
  status: 'running' | 'completed' | 'error' | 'skipped' | 'cancelled' | 'interrupted';
  attempts?: number;
  parentOrder?: number | null;
  executor?: string | null;
  startedAt: string;
  durationMs?: number | null;
  errorMessage?: string | null;
  errorCode?: string | null;
}

export type IngestReport = IngestRunReport | IngestStepReport;

/** A page of runs; `nextCursor` is null on the last page. */
export interface RunPage {
  runs: RunSummary[];
  nextCursor: string | null;
}

/** A step as the dashboard shows it: HistoryQuery's StepView. */
export type DashboardStep = StepView;

/** A node of a run's graph (one step row). */
export interface GraphNode {
  id: string;
  order: number;
  name: string;
  kind: string;
  status: string;
  durationMs: number | null;
  attempts: number;
  executor: string | null;
  parentStepId: number | null;
  parallelGroup: string | null;
  error: string | null;
}

/** An edge of a run's graph: `next` (top-level sequence), `taken` (the Condition branch that ran), `iteration` (a For body step), `parallel` (fan-out), `child` (any other nesting). */
export interface GraphEdge {
  from: string;
  to: string;
  label: 'next' | 'taken' | 'iteration' | 'parallel' | 'background' | 'child';
}

function str(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}
function num(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}
const json = jsonColumn;
const round2 = (x: number): number => Math.round(x * 100) / 100;

const SUMMARY_COLUMNS = `id, name, status, started_at, completed_at, total_duration_ms, error_message, error_code, error_step,
  parent_pipeline_id, parent_step_id, resumes, worker_id, worker_name, updated_at`;

/** A run summary plus `updatedAt` (what the live feed compares). */
export type DashboardRun = RunSummary & { updatedAt: string | null };

function toSummary(r: Row): DashboardRun {
  return {
    runId: String(r.id),
    pipelineName: String(r.name),
    status: r.status as RunStatus,
    startedAt: String(r.started_at),
    completedAt: str(r.completed_at),
    durationMs: num(r.total_duration_ms),
    errorMessage: str(r.error_message),
    errorCode: str(r.error_code),
    errorStep: str(r.error_step),
    parentRunId: str(r.parent_pipeline_id),
    parentStepId: num(r.parent_step_id),
    resumes: Number(r.resumes ?? 0),
    workerId: str(r.worker_id),
    workerName: str(r.worker_name),
    updatedAt: str(r.updated_at),
  };
}


function toEvent(e: Row): EventView {
  return {
    id: Number(e.id),
    runId: str(e.pipeline_id),
    stepId: num(e.step_id),
    type: String(e.event_type),
    name: String(e.event_name),
    message: str(e.message),
    data: json(e.data),
    tags: (json(e.tags) as string[] | null) ?? null,
    createdAt: String(e.created_at),
  };
}

function toAlert(a: Row): AlertView {
  return {
    id: Number(a.id),
    configId: num(a.alert_config_id),
    runId: str(a.pipeline_id),
    stepId: num(a.step_id),
    metric: String(a.metric),
    value: num(a.metric_value),
    threshold: num(a.threshold_value),
    severity: String(a.severity),
    message: str(a.message),
    acknowledged: a.acknowledged === 1,
    firedAt: String(a.fired_at),
  };
}

/** Encodes a keyset cursor (the last row's start time and id). */
export function encodeCursor(startedAt: string, id: string): string {
  return Buffer.from(JSON.stringify([startedAt, id]), 'utf8').toString('base64url');
}

/** Decodes a cursor; undefined when it is not one this server made. */
export function decodeCursor(cursor: string): [string, string] | undefined {
  if (!/^[A-Za-z0-9_-]{1,2000}$/.test(cursor)) return undefined;
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    /* not ours */
  }
  return undefined;
}

/** Filters of {@link DashboardStore.listRuns}. */
export interface ListRunsFilter {
  status?: RunStatus;
  name?: string;
  /** Substring of the run id, the pipeline name or the error message (case-insensitive). */
  q?: string;
  limit: number;
  cursor?: [string, string];
}

/**
 * Read-only queries for the dashboard (see the module comment).
 *
 * @example
 * ```ts
 * const store = DashboardStore.open('runs.db');
 * store.getRun('order-7')?.steps.length;
 * store.close();
 * ```
 */
export class DashboardStore {
  readonly file: string;
  private readonly db: Database;
  private readonly statements = new Map<string, BetterSqlite3.Statement>();
  private writer: Database | undefined;
  private readonly Driver: new (f: string, o?: BetterSqlite3.Options) => Database;

  private constructor(file: string, db: Database, Driver: new (f: string, o?: BetterSqlite3.Options) => Database) {
    this.file = file;
    this.db = db;
    this.Driver = Driver;
  }

  /**
   * Opens `file` read-only. The file must exist (a dashboard over a typo'd path would show an empty
   * history and create a stray file); a database of an older schema is migrated once, through the
   * storage layer's own opener, before the read-only connection is made.
   */
  static open(file: string): DashboardStore {
    const resolved = path.resolve(file);
    if (!fs.existsSync(resolved)) {
      throw new WpipeError('WPIPE_ERR_STORAGE', `dashboard: no run history at ${resolved}: pass the trackingDb file your pipelines write (it is created by their first tracked run)`,
        { details: { file: resolved, operation: 'open' } });
    }
    const Driver = createRequire(import.meta.url)('better-sqlite3') as new (f: string, o?: BetterSqlite3.Options) => Database;
    let db: Database;
    try {
      db = new Driver(resolved, { readonly: true, fileMustExist: true, timeout: 1000 });
    } catch (error) {
      throw storageError(error, 'open (read-only)', resolved);
    }
    let version: number;
    try {
      version = db.pragma('user_version', { simple: true }) as number;
    } catch (error) {
      db.close();
      throw storageError(error, 'read schema version', resolved);
    }
    if (version > SCHEMA_VERSION) {
      db.close();
      throw new WpipeError('WPIPE_ERR_STORAGE', `${resolved} has schema version ${version}, newer than the ${SCHEMA_VERSION} this wpipe understands: upgrade wpipe`,
        { details: { file: resolved, schemaVersion: version, supported: SCHEMA_VERSION } });
    }
    if (version === 0) {
      // Not made by wpipe (or empty): never add our tables to somebody else's database.
      db.close();
      throw new WpipeError('WPIPE_ERR_STORAGE', `dashboard: ${resolved} is not a wpipe run history (it has no wpipe schema): pass the trackingDb file your pipelines write`,
        { details: { file: resolved, operation: 'open', schemaVersion: 0 } });
    }
    if (version < SCHEMA_VERSION) {
      // One writable open migrates (the storage layer's BEGIN IMMEDIATE, safe against racing writers).
      db.close();
      openDb(resolved, { fileMustExist: true }).close();
      try {
        db = new Driver(resolved, { readonly: true, fileMustExist: true, timeout: 1000 });
      } catch (error) {
        throw storageError(error, 'open (read-only)', resolved);
      }
    }
    // Reads go through a memory map and a larger page cache: a scan of 100,000 run rows takes ~30 ms
    // mapped against ~110 ms through read() into SQLite's default 2 MiB cache (sqlite3 shell, this
    // machine). The map is address space, not memory: the pages are the OS's file cache.
    db.pragma('mmap_size = 1073741824');
    db.pragma('cache_size = -65536');
    return new DashboardStore(resolved, db, Driver);
  }

  private stmt(sql: string): BetterSqlite3.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      try {
        s = this.db.prepare(sql);
      } catch (error) {
        throw storageError(error, 'prepare', this.file);
      }
      this.statements.set(sql, s);
    }
    return s;
  }

  private all(sql: string, params: unknown[] = []): Row[] {
    try {
      return this.stmt(sql).all(...params) as Row[];
    } catch (error) {
      throw storageError(error, 'query', this.file);
    }
  }

  private get(sql: string, params: unknown[] = []): Row | undefined {
    try {
      return this.stmt(sql).get(...params) as Row | undefined;
    } catch (error) {
      throw storageError(error, 'query', this.file);
    }
  }

  /** SQLite's `PRAGMA data_version`: changes whenever ANOTHER connection commits (a cheap change probe). */
  dataVersion(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  /**
   * Step totals of the runs started before `w` (all finished when counted), and the fingerprint of
   * those runs (count, resumes, newest update) that says whether they are still as counted.
   */
  private stepCache: { w: string; fingerprint: string; total: number; completed: number; errors: number } | undefined;
  /** Full step scans (for tests and the bench: the cache's worth). */
  stepScans = 0;

  private stepTotals(sql: string, params: unknown[]): { total: number; completed: number; errors: number } {
    const r = this.get(sql, params)!;
    return { total: Number(r.total ?? 0), completed: Number(r.completed ?? 0), errors: Number(r.errors ?? 0) };
  }

  /**
   * Counts and rates over the whole history.
   *
   * Run counts are one scan of `pipelines` (~30 ms at 100,000 runs here). Step counts would be a scan
   * of every step row (~200 ms at a million), so they are split at a watermark W: the steps of runs
   * started before W — all finished when counted — are counted once and kept; each call counts only
   * the steps of runs started since W (the started_at index, then each run's primary-key range) and
   * checks, in the same `pipelines` scan, that the runs before W are unchanged (their count, resumes
   * and newest update: a prune, a resume or a late fold changes one of them). When they changed, or
   * the part since W grew past {@link RECOUNT_AFTER} runs, everything is counted again with a new W.
   */
  stats(): Record<string, number | null> {
    // Nothing committed since the last call (PRAGMA data_version moves with every commit of another
    // connection, the dashboard's own writer included): the last answer still holds.
    const version = this.dataVersion();
    if (this.statsCache?.version === version) return { ...this.statsCache.value };
    const value = this.computeStats();
    this.statsComputed++;
    this.statsCache = { version, value };
    return { ...value };
  }

  private statsCache: { version: number; value: Record<string, number | null> } | undefined;
  /** Times stats() really counted (for tests and the bench). */
  statsComputed = 0;

  private computeStats(): Record<string, number | null> {
    const cache = this.stepCache;
    const w = cache?.w ?? '';
    const c = this.get(`SELECT count(*) AS total, sum(status = 'completed') AS completed, sum(status = 'error') AS errors,
      sum(status = 'cancelled') AS cancelled, sum(status = 'running') AS running, sum(status = 'interrupted') AS interrupted,
      avg(CASE WHEN status = 'completed' THEN total_duration_ms END) AS mean,
      sum(started_at < @w) AS old_n, sum(CASE WHEN started_at < @w THEN resumes END) AS old_resumes,
      max(CASE WHEN started_at < @w THEN coalesce(updated_at, completed_at, started_at) END) AS old_updated FROM pipelines`, [{ w }])!;
    const fingerprint = `${String(c.old_n)}|${String(c.old_resumes)}|${String(c.old_updated)}`;
    const recentSql = `SELECT count(*) AS total, sum(s.status = 'completed') AS completed, sum(s.status = 'error') AS errors
      FROM pipelines p INDEXED BY pipelines_started_at JOIN steps s ON s.pipeline_id = p.id WHERE p.started_at >= ?`;
    let steps: { total: number; completed: number; errors: number };
    const recentRuns = cache ? Number(c.total ?? 0) - Number(c.old_n ?? 0) : Infinity;
    if (cache && cache.fingerprint === fingerprint && recentRuns <= RECOUNT_AFTER) {
      const recent = this.stepTotals(recentSql, [cache.w]);
      steps = { total: cache.total + recent.total, completed: cache.completed + recent.completed, errors: cache.errors + recent.errors };
    } else {
      // Count everything; keep what lies before a new watermark: the earliest running run's start, and
      // no later than LATE_MS before the newest start (rows folded late land after it).
      this.stepScans++;
      const nw = this.newWatermark();
      steps = this.stepTotals("SELECT count(*) AS total, sum(status = 'completed') AS completed, sum(status = 'error') AS errors FROM steps", []);
      const recent = this.stepTotals(recentSql, [nw]);
      this.stepCache = {
        w: nw, fingerprint: this.fingerprintBefore(nw),
        total: steps.total - recent.total, completed: steps.completed - recent.completed, errors: steps.errors - recent.errors,
      };
    }
    const st = steps;
    const a = this.get('SELECT count(*) AS n, sum(acknowledged = 0) AS open FROM alerts_fired')!;
    const total = Number(c.total ?? 0);
    const completed = Number(c.completed ?? 0);
    const errors = Number(c.errors ?? 0);
    const cancelled = Number(c.cancelled ?? 0);
    const finished = completed + errors + cancelled;
    const stepsDone = st.completed + st.errors;
    return {
      totalRuns: total,
      completed,
      errors,
      cancelled,
      running: Number(c.running ?? 0),
      interrupted: Number(c.interrupted ?? 0),
      successRate: finished ? round2((completed / finished) * 100) : 0,
      meanDurationMs: c.mean === null || c.mean === undefined ? null : round2(Number(c.mean)),
      totalSteps: st.total,
      stepErrors: st.errors,
      stepSuccessRate: stepsDone ? round2((st.completed / stepsDone) * 100) : 0,
      alertsFired: Number(a.n ?? 0),
      unacknowledgedAlerts: Number(a.open ?? 0),
    };
  }

  /**
   * Runs, newest first, by key: `(started_at, id) < cursor` walks the started_at index backwards from
   * where the last page stopped, so page 2,000 costs what page 1 costs (OFFSET would skip rows one by one).
   */
  listRuns(filter: ListRunsFilter): RunPage {
    const parts: string[] = [];
    const params: unknown[] = [];
    if (filter.status !== undefined) { parts.push('status = ?'); params.push(filter.status); }
    if (filter.name !== undefined) { parts.push('name = ?'); params.push(filter.name); }
    if (filter.q !== undefined) {
      const like = `%${filter.q.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;
      parts.push("(id LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' OR error_message LIKE ? ESCAPE '\\')");
      params.push(like, like, like);
    }
    if (filter.cursor !== undefined) {
      // `started_at <= ?` alone bounds the index range (an OR of two ranges would make SQLite walk the
      // index from the top: page 400 took 9 ms); the second term drops the rows of the boundary instant
      // already shown.
      parts.push('started_at <= ? AND (started_at < ? OR id < ?)');
      params.push(filter.cursor[0], filter.cursor[0], filter.cursor[1]);
    }
    const where = parts.length ? `WHERE ${parts.join(' AND ')}` : '';
    const rows = this.all(`SELECT ${SUMMARY_COLUMNS} FROM pipelines INDEXED BY pipelines_started_at ${where}
      ORDER BY started_at DESC, id DESC LIMIT ?`, [...params, filter.limit + 1]);
    const more = rows.length > filter.limit;
    const runs = rows.slice(0, filter.limit).map(toSummary);
    const last = runs[runs.length - 1];
    return { runs, nextCursor: more && last ? encodeCursor(last.startedAt, last.runId) : null };
  }

  /** Executions of one pipeline name, newest first (keyset paged as {@link listRuns}). */
  runsByName(name: string, limit: number, cursor?: [string, string]): RunPage {
    return this.listRuns({ name, limit, cursor });
  }

  /** Runs whose start is at or after `since`, newest first, at most `limit` (the live feed's window). */
  runsSince(since: string, limit: number): DashboardRun[] {
    return this.all(`SELECT ${SUMMARY_COLUMNS} FROM pipelines WHERE started_at >= ? ORDER BY started_at DESC, id DESC LIMIT ?`, [since, limit]).map(toSummary);
  }

  /** Summaries of these run ids (primary-key lookups). */
  runsById(ids: readonly string[]): DashboardRun[] {
    const out: DashboardRun[] = [];
    for (const id of ids) {
      const r = this.get(`SELECT ${SUMMARY_COLUMNS} FROM pipelines WHERE id = ?`, [id]);
      if (r) out.push(toSummary(r));
    }
    return out;
  }

  /** The newest run's start time, or null on an empty history. */
  newestStart(): string | null {
    return str(this.get('SELECT max(started_at) AS m FROM pipelines')?.m);
  }

  /** One run with everything recorded about it, or undefined. */
  getRun(runId: string): Record<string, unknown> | undefined {
    const r = this.get('SELECT * FROM pipelines WHERE id = ?', [runId]);
    if (!r) return undefined;
    const steps = this.all('SELECT * FROM steps WHERE pipeline_id = ? ORDER BY step_order', [runId]).map(stepView);
    const attempts = this.all('SELECT * FROM attempts WHERE pipeline_id = ? ORDER BY step_order, attempt', [runId]).map((a): AttemptView => ({
      stepOrder: Number(a.step_order),
      attempt: Number(a.attempt),
      status: String(a.status),
      startedAt: str(a.started_at),
      durationMs: num(a.duration_ms),
      errorMessage: str(a.error_message),
      errorCode: str(a.error_code),
    }));
    const events = this.all('SELECT * FROM events WHERE pipeline_id = ? ORDER BY id LIMIT 1000', [runId]).map(toEvent);
    const alerts = this.all('SELECT * FROM alerts_fired WHERE pipeline_id = ? ORDER BY id DESC LIMIT 1000', [runId]).map(toAlert);
    const cp = this.get('SELECT name, position, step_order, saves, created_at FROM checkpoints WHERE pipeline_id = ?', [runId]);
    const children = this.all(`SELECT ${SUMMARY_COLUMNS} FROM pipelines WHERE parent_pipeline_id = ? ORDER BY started_at LIMIT 1000`, [runId]).map(toSummary);
    const metrics = this.all(`SELECT id, scope, step_order, cpu_percent, memory_percent, rss_mb, peak_rss_mb, peak_cpu_percent,
        samples, duration_ms, sampler, recorded_at FROM system_metrics WHERE pipeline_id = ? ORDER BY recorded_at, id LIMIT 5000`, [runId])
      .map((m) => ({
        id: Number(m.id), scope: str(m.scope), stepOrder: num(m.step_order), cpuPercent: num(m.cpu_percent),
        memoryPercent: num(m.memory_percent), rssMb: num(m.rss_mb), peakRssMb: num(m.peak_rss_mb),
        peakCpuPercent: num(m.peak_cpu_percent), samples: num(m.samples), durationMs: num(m.duration_ms),
        sampler: str(m.sampler), recordedAt: String(m.recorded_at),
      }));
    return {
      ...toSummary(r),
      input: json(r.input_data),
      output: json(r.output_data),
      outputExact: r.output_exact === 1,
      errorData: json(r.error_data),
      structureHash: str(r.structure_hash),
      yamlPath: str(r.yaml_path),
      pid: num(r.pid),
      steps,
      attempts,
      events,
      alerts,
      checkpoint: cp
        ? { name: String(cp.name), position: Number(cp.position), stepOrder: num(cp.step_order), saves: Number(cp.saves), createdAt: String(cp.created_at) }
        : null,
      children,
      metrics,
    };
  }

  /**
   * The run as a graph: a node per step row; `next` edges chain the top-level steps, and each nested
   * row hangs from its parent with what the parent is: the Condition branch that ran (`taken`: the
   * history records the branch that executed, not the one skipped), a For body step (`iteration`,
   * numbered), a Parallel branch (`parallel`).
   */
  graph(runId: string): Record<string, unknown> | undefined {
    const r = this.get('SELECT id, name, status, total_duration_ms FROM pipelines WHERE id = ?', [runId]);
    if (!r) return undefined;
    const rows = this.all(`SELECT step_order, step_name, step_type, status, duration_ms, attempts, executor, parent_step_id,
      parallel_group, error_message FROM steps WHERE pipeline_id = ? ORDER BY step_order`, [runId]);
    const nodes: GraphNode[] = rows.map((s) => ({
      id: `step_${String(s.step_order)}`,
      order: Number(s.step_order),
      name: String(s.step_name),
      kind: String(s.step_type),
      status: String(s.status),
      durationMs: num(s.duration_ms),
      attempts: Number(s.attempts),
      executor: str(s.executor),
      parentStepId: num(s.parent_step_id),
      parallelGroup: str(s.parallel_group),
      error: str(s.error_message),
    }));
    const byOrder = new Map(nodes.map((n) => [n.order, n]));
    const edges: (GraphEdge & { iteration?: number })[] = [];
    let previousTop: GraphNode | undefined;
    const childCount = new Map<number, number>();
    for (const n of nodes) {
      const parent = n.parentStepId === null ? undefined : byOrder.get(n.parentStepId);
      if (!parent) {
        if (previousTop) edges.push({ from: previousTop.id, to: n.id, label: 'next' });
        previousTop = n;
        continue;
      }
      const k = (childCount.get(parent.order) ?? 0) + 1;
      childCount.set(parent.order, k);
      const label: GraphEdge['label'] = parent.kind === 'condition' ? 'taken' : parent.kind === 'for' ? 'iteration'
        : parent.kind === 'parallel' ? 'parallel' : parent.kind === 'background' ? 'background' : 'child';
      edges.push(label === 'iteration' ? { from: parent.id, to: n.id, label, iteration: k } : { from: parent.id, to: n.id, label });
    }
    return { runId: String(r.id), pipelineName: String(r.name), status: String(r.status), durationMs: num(r.total_duration_ms), nodes, edges };
  }

  /** Runs per UTC day over the last `days` days (index range on started_at), oldest first. */
  trends(days: number, now = Date.now()): TrendPoint[] {
    const since = new Date(now - days * 86_400_000).toISOString().slice(0, 10);
    return this.all(`SELECT substr(started_at, 1, 10) AS b, count(*) AS runs, sum(status = 'completed') AS completed,
        sum(status = 'error') AS errors, sum(status = 'cancelled') AS cancelled,
        avg(CASE WHEN status != 'running' THEN total_duration_ms END) AS mean
      FROM pipelines WHERE started_at >= ? GROUP BY b ORDER BY b`, [since]).map((r) => ({
      bucket: `${String(r.b)}T00:00:00.000Z`,
      runs: Number(r.runs),
      completed: Number(r.completed ?? 0),
      errors: Number(r.errors ?? 0),
      cancelled: Number(r.cancelled ?? 0),
      meanDurationMs: r.mean === null ? null : round2(Number(r.mean)),
    }));
  }

  /** Fired alerts, newest first. */
  alerts(options: { severity?: string; limit: number; unacknowledged?: boolean }): AlertView[] {
    const parts: string[] = [];
    const params: unknown[] = [];
    if (options.severity !== undefined) { parts.push('severity = ?'); params.push(options.severity); }
    if (options.unacknowledged) parts.push('acknowledged = 0');
    return this.all(`SELECT * FROM alerts_fired ${parts.length ? `WHERE ${parts.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`, [...params, options.limit]).map(toAlert);
  }

  /** Alert configurations (what pipelines registered with addAlert). */
  alertsConfig(): Record<string, unknown>[] {
    return this.all('SELECT * FROM alerts_config ORDER BY name').map((c) => ({
      id: Number(c.id), name: String(c.name), metric: String(c.metric), condition: String(c.condition), value: num(c.value),
      severity: String(c.severity), message: str(c.message), enabled: c.enabled === 1,
    }));
  }

  /** Events, newest first. */
  events(options: { runId?: string; type?: string; limit: number }): EventView[] {
    const parts: string[] = [];
    const params: unknown[] = [];
    if (options.runId !== undefined) { parts.push('pipeline_id = ?'); params.push(options.runId); }
    if (options.type !== undefined) { parts.push('event_type = ?'); params.push(options.type); }
    return this.all(`SELECT * FROM events ${parts.length ? `WHERE ${parts.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`, [...params, options.limit]).map(toEvent);
  }

  private nameCache: { w: string; fingerprint: string; value: Map<string, NameAggregate> } | undefined;

  /** The watermark for a new count: the earliest running run's start, at most LATE_MS before the newest start. */
  private newWatermark(): string {
    const newest = str(this.get('SELECT max(started_at) AS m FROM pipelines')?.m);
    const running = str(this.get("SELECT min(started_at) AS m FROM pipelines WHERE status = 'running'")?.m);
    let w = newest ? new Date(Date.parse(newest) - LATE_MS).toISOString() : '';
    if (running && running < w) w = running;
    return w;
  }

  /** Count, resumes and newest update of the runs started before `w` (one scan of pipelines). */
  private fingerprintBefore(w: string): string {
    const f = this.get(`SELECT count(*) AS n, sum(resumes) AS resumes, max(coalesce(updated_at, completed_at, started_at)) AS updated
      FROM pipelines WHERE started_at < ?`, [w])!;
    return `${String(f.n)}|${String(f.resumes)}|${String(f.updated)}`;
  }

  private nameRows(where: 'all' | 'recent', w: string): Map<string, NameAggregate> {
    const cols = `count(*) AS n, sum(s.status = 'error') AS errors, sum(s.duration_ms) AS total,
      sum(CASE WHEN s.status = 'completed' THEN s.duration_ms END) AS ok_total,
      sum(s.status = 'completed' AND s.duration_ms IS NOT NULL) AS ok, max(CASE WHEN s.status = 'completed' THEN s.duration_ms END) AS ok_max`;
    const rows = where === 'all'
      ? this.all(`SELECT s.step_name AS name, ${cols} FROM steps s GROUP BY s.step_name`)
      : this.all(`SELECT s.step_name AS name, ${cols} FROM pipelines p INDEXED BY pipelines_started_at JOIN steps s ON s.pipeline_id = p.id
          WHERE p.started_at >= ? GROUP BY s.step_name`, [w]);
    return new Map(rows.map((r) => [String(r.name), {
      n: Number(r.n), errors: Number(r.errors ?? 0), total: Number(r.total ?? 0), okTotal: Number(r.ok_total ?? 0), ok: Number(r.ok ?? 0),
      okMax: r.ok_max === null || r.ok_max === undefined ? null : Number(r.ok_max),
    }]));
  }

  /**
   * Per step name: executions, errors, durations. Grouping every step row costs ~1.2 s at a million
   * rows, so, as for stats(), the part before a watermark is grouped once and kept (checked by the
   * fingerprint of the older runs), and each call groups the steps of recent runs only. `okMax` of the
   * kept part is the maximum over all rows when it was counted (a maximum cannot be subtracted).
   */
  nameAggregates(): Map<string, NameAggregate> {
    const cache = this.nameCache;
    if (cache && this.fingerprintBefore(cache.w) === cache.fingerprint) {
      const recent = this.nameRows('recent', cache.w);
      if ([...recent.values()].reduce((x, r) => x + r.n, 0) <= RECOUNT_AFTER * 10) {
        const out = new Map<string, NameAggregate>();
        for (const [k, v] of cache.value) out.set(k, { ...v });
        for (const [k, r] of recent) {
          const o = out.get(k);
          if (!o) { out.set(k, r); continue; }
          o.n += r.n; o.errors += r.errors; o.total += r.total; o.okTotal += r.okTotal; o.ok += r.ok;
          o.okMax = o.okMax === null ? r.okMax : r.okMax === null ? o.okMax : Math.max(o.okMax, r.okMax);
        }
        return out;
      }
    }
    this.stepScans++;
    const w = this.newWatermark();
    const all = this.nameRows('all', '');
    const recent = this.nameRows('recent', w);
    const old = new Map<string, NameAggregate>();
    for (const [k, a] of all) {
      const r = recent.get(k);
      const v = r ? { n: a.n - r.n, errors: a.errors - r.errors, total: a.total - r.total, okTotal: a.okTotal - r.okTotal, ok: a.ok - r.ok, okMax: a.okMax } : { ...a };
      if (v.n > 0) old.set(k, v);
    }
    this.nameCache = { w, fingerprint: this.fingerprintBefore(w), value: old };
    return all;
  }

  /** Step names by mean duration of their completed executions, slowest first. */
  slowSteps(limit: number): Record<string, unknown>[] {
    return [...this.nameAggregates()].filter(([, a]) => a.ok > 0)
      .map(([name, a]) => ({ stepName: name, count: a.ok, totalMs: round2(a.okTotal), maxMs: a.okMax === null ? null : round2(a.okMax), meanMs: round2(a.okTotal / a.ok) }))
      .sort((x, y) => y.meanMs - x.meanMs || x.stepName.localeCompare(y.stepName)).slice(0, limit);
  }

  /** Per step name: executions, errors, time (the original's "states" analysis). */
  statesAnalysis(): Record<string, unknown> {
    const rows = [...this.nameAggregates()].map(([name, a]) => ({
      name, executions: a.n, errors: a.errors, totalMs: round2(a.total),
      meanMs: a.n ? round2(a.total / a.n) : 0,
      meanCompletedMs: a.ok ? round2(a.okTotal / a.ok) : null,
      errorRate: a.n ? round2((a.errors / a.n) * 100) : 0,
    }));
    return {
      totalStates: rows.length,
      totalExecutions: rows.reduce((x, r) => x + r.executions, 0),
      totalErrors: rows.reduce((x, r) => x + r.errors, 0),
      mostUsed: [...rows].sort((a, b) => b.executions - a.executions || a.name.localeCompare(b.name)).slice(0, 20),
      slowest: rows.filter((r) => r.meanCompletedMs !== null).sort((a, b) => (b.meanCompletedMs ?? 0) - (a.meanCompletedMs ?? 0)).slice(0, 15),
      mostErrors: rows.filter((r) => r.errors > 0).sort((a, b) => b.errorRate - a.errorRate || b.errors - a.errors).slice(0, 15),
    };
  }

  /** Per pipeline name: runs, errors, time; and the newest runs. */
  pipelinesAnalysis(): Record<string, unknown> {
    const rows = this.all(`SELECT name, count(*) AS n, sum(status = 'error') AS errors, sum(total_duration_ms) AS total,
      avg(total_duration_ms) AS mean, max(started_at) AS last FROM pipelines GROUP BY name`).map((r) => ({
      name: String(r.name), runs: Number(r.n), errors: Number(r.errors ?? 0), totalMs: round2(Number(r.total ?? 0)),
      meanMs: r.mean === null ? null : round2(Number(r.mean)), errorRate: Number(r.n) ? round2((Number(r.errors ?? 0) / Number(r.n)) * 100) : 0,
      lastStartedAt: String(r.last),
    }));
    return {
      totalPipelines: rows.length,
      totalRuns: rows.reduce((x, r) => x + r.runs, 0),
      totalErrors: rows.reduce((x, r) => x + r.errors, 0),
      pipelines: [...rows].sort((a, b) => a.name.localeCompare(b.name)),
      slowest: rows.filter((r) => r.meanMs !== null).sort((a, b) => (b.meanMs ?? 0) - (a.meanMs ?? 0)).slice(0, 10),
      mostErrors: rows.filter((r) => r.errors > 0).sort((a, b) => b.errorRate - a.errorRate).slice(0, 10),
      recent: this.listRuns({ limit: 10 }).runs,
    };
  }

  /** A page of a known table's raw rows (long text cut to {@link CELL_MAX} characters). */
  tableData(table: string, options: { page: number; pageSize: number; status?: string; runId?: string }): Record<string, unknown> {
    const spec = DATA_TABLES[table];
    if (!spec || !Object.prototype.hasOwnProperty.call(DATA_TABLES, table)) throw new Error(`unknown table ${table}`);
    const parts: string[] = [];
    const params: unknown[] = [];
    if (options.status !== undefined && spec.status) { parts.push('status = ?'); params.push(options.status); }
    if (options.runId !== undefined && spec.runColumn) { parts.push(`${spec.runColumn} = ?`); params.push(options.runId); }
    const where = parts.length ? `WHERE ${parts.join(' AND ')}` : '';
    const rows = this.all(`SELECT * FROM ${table} ${where} ORDER BY ${spec.order} LIMIT ? OFFSET ?`,
      [...params, options.pageSize + 1, (options.page - 1) * options.pageSize]);
    const more = rows.length > options.pageSize;
    const cut = rows.slice(0, options.pageSize).map((row) => {
      const out: Row = {};
      for (const [k, v] of Object.entries(row)) {
        out[k] = typeof v === 'string' && v.length > CELL_MAX ? `${v.slice(0, CELL_MAX)}… (${v.length} characters)` : Buffer.isBuffer(v) ? `<${v.length} bytes>` : v;
      }
      return out;
    });
    return { table, page: options.page, pageSize: options.pageSize, hasMore: more, rows: cut };
  }

  /**
   * Marks a fired alert acknowledged. Like {@link ingest}, on a separate writable
   * connection (the reader stays read-only), in a short `BEGIN IMMEDIATE` transaction with a busy
   * timeout, so it queues behind a pipeline's commit instead of failing or holding it up.
   * Returns false when no alert has that id.
   */
  acknowledgeAlert(id: number): boolean {
    try {
      this.writer ??= new this.Driver(this.file, { fileMustExist: true, timeout: 5000 });
      const w = this.writer;
      return w.transaction(() => w.prepare('UPDATE alerts_fired SET acknowledged = 1 WHERE id = ?').run(id).changes === 1).immediate();
    } catch (error) {
      throw storageError(error, 'acknowledge alert', this.file);
    }
  }

  /**
   * Applies reports sent by other hosts' ApiReporter (POST /api/ingest) in one short `BEGIN IMMEDIATE`
   * transaction on the writer connection. A run row belongs to the host that first reported it
   * (`worker_id`); a report about a run id recorded by another host or by a local pipeline is not
   * applied and is counted in `conflicts`, so a remote host can never rewrite local history.
   */
  ingest(source: { host: string; worker: string | null }, reports: readonly IngestReport[]): { applied: number; conflicts: number } {
    const now = new Date().toISOString();
    try {
      this.writer ??= new this.Driver(this.file, { fileMustExist: true, timeout: 5000 });
      const w = this.writer;
      const owner = w.prepare('SELECT worker_id, owner FROM pipelines WHERE id = ?');
      const upsertRun = w.prepare(`INSERT INTO pipelines (id, name, worker_id, worker_name, status, started_at, completed_at, total_duration_ms,
          error_message, error_code, error_step, parent_pipeline_id, resumes, updated_at)
        VALUES (@runId, @pipelineName, @host, @worker, @status, @startedAt, @completedAt, @durationMs, @errorMessage, @errorCode, @errorStep, @parentRunId, 0, @now)
        ON CONFLICT (id) DO UPDATE SET name = excluded.name, worker_name = excluded.worker_name, status = excluded.status,
          completed_at = excluded.completed_at, total_duration_ms = excluded.total_duration_ms, error_message = excluded.error_message,
          error_code = excluded.error_code, error_step = excluded.error_step, updated_at = excluded.updated_at`);
      const upsertStep = w.prepare(`INSERT INTO steps (pipeline_id, step_order, step_name, step_version, step_type, status, attempts, parent_step_id,
          executor, started_at, completed_at, duration_ms, error_message, error_code)
        VALUES (@runId, @order, @name, @version, @kind, @status, @attempts, @parentOrder, @executor, @startedAt, @completedAt, @durationMs, @errorMessage, @errorCode)
        ON CONFLICT (pipeline_id, step_order) DO UPDATE SET step_name = excluded.step_name, step_version = excluded.step_version,
          step_type = excluded.step_type, status = excluded.status, attempts = excluded.attempts, parent_step_id = excluded.parent_step_id,
          executor = excluded.executor, completed_at = excluded.completed_at, duration_ms = excluded.duration_ms,
          error_message = excluded.error_message, error_code = excluded.error_code`);
      return w.transaction(() => {
        let applied = 0;
        let conflicts = 0;
        const mine = new Map<string, boolean>();
        const ownedHere = (runId: string): boolean | undefined => {
          if (mine.has(runId)) return mine.get(runId);
          const row = owner.get(runId) as { worker_id: string | null; owner: string | null } | undefined;
          const v = row === undefined ? undefined : row.worker_id === source.host && row.owner === null;
          if (v !== undefined) mine.set(runId, v);
          return v;
        };
        for (const r of reports) {
          const ok = ownedHere(r.runId);
          if (r.type === 'run') {
            if (ok === false) { conflicts++; continue; }
            upsertRun.run({
              runId: r.runId, pipelineName: r.pipelineName, host: source.host, worker: source.worker, status: r.status, startedAt: r.startedAt,
              completedAt: r.completedAt ?? null, durationMs: r.durationMs ?? null, errorMessage: r.errorMessage ?? null, errorCode: r.errorCode ?? null,
              errorStep: r.errorStep ?? null, parentRunId: r.parentRunId ?? null, now,
            });
            mine.set(r.runId, true);
          } else {
            if (ok !== true) { conflicts++; continue; }
            upsertStep.run({
              runId: r.runId, order: r.order, name: r.name, version: r.version ?? null, kind: r.kind ?? 'task', status: r.status,
              attempts: r.attempts ?? 1, parentOrder: r.parentOrder ?? null, executor: r.executor ?? null, startedAt: r.startedAt,
              completedAt: r.durationMs === undefined || r.durationMs === null ? null : new Date(Date.parse(r.startedAt) + r.durationMs).toISOString(),
              durationMs: r.durationMs ?? null, errorMessage: r.errorMessage ?? null, errorCode: r.errorCode ?? null,
            });
          }
          applied++;
        }
        return { applied, conflicts };
      }).immediate();
    } catch (error) {
      throw storageError(error, 'ingest reports', this.file);
    }
  }

  close(): void {
    this.statements.clear();
    if (this.writer?.open) this.writer.close();
    this.writer = undefined;
    if (this.db.open) this.db.close();
  }
}
