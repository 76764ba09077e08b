/**
 * The versioned schema. `PRAGMA user_version` holds the applied version and `wpipe_migrations`
 * records when each migration ran; db.ts applies the missing ones in one `BEGIN IMMEDIATE`
 * transaction. Migrations are append-only: never edit a published one, add the next version.
 *
 * Table and column names follow the Python original's tracker (reference §2.16) where they fit:
 * `pipelines` (one row per run), `steps`, `events`, `alerts_config`, `alerts_fired`,
 * `system_metrics`; new here: `attempts`, `checkpoints`; `wsqlitemodel` and `recordmodel` keep the
 * names of the original's Wsqlite/SQLite helpers.
 *
 * Layout choices, for the cost of a commit (each dirty page is one WAL frame):
 * - `steps` is a WITHOUT ROWID table keyed by (pipeline_id, step_order): a step boundary (finish
 *   step N, start step N+1) dirties one leaf page, where a rowid table plus an index dirties two.
 * - `pipelines` is keyed by the run id with a single secondary index (started_at), which serves
 *   paging, since/until filters and trends.
 * - `wpipe_journal` holds, per step journal (src/storage/journal.ts), the byte offset folded into
 *   this database so far: the fold and the offset commit together, so a replay never applies twice.
 * - A step is identified by (pipeline_id, step_order); `parent_step_id` holds the parent's
 *   step_order in the same run (Parallel/Condition/For children), and a nested pipeline's run row
 *   points at its parent run and step with `parent_pipeline_id` / `parent_step_id`.
 *
 * @example
 * ```ts
 * import { SCHEMA_VERSION } from './schema.js';
 * db.pragma('user_version', { simple: true }) === SCHEMA_VERSION; // after openDb()
 * ```
 */

/** One schema migration. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Every migration, in order. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'run history, checkpoints, alerts, system metrics',
    sql: `
CREATE TABLE pipelines (
  id                 TEXT PRIMARY KEY,
  name               TEXT NOT NULL,
  worker_id          TEXT,
  worker_name        TEXT,
  status             TEXT NOT NULL CHECK (status IN ('running', 'completed', 'error', 'cancelled')),
  started_at         TEXT NOT NULL,
  completed_at       TEXT,
  total_duration_ms  REAL,
  input_data         TEXT,
  output_data        TEXT,
  output_exact       INTEGER,
  error_message      TEXT,
  error_step         TEXT,
  error_code         TEXT,
  error_data         TEXT,
  parent_pipeline_id TEXT,
  parent_step_id     INTEGER,
  yaml_path          TEXT,
  structure_hash     TEXT,
  resumes            INTEGER NOT NULL DEFAULT 0,
  pid                INTEGER,
  updated_at         TEXT
) WITHOUT ROWID;
CREATE INDEX pipelines_started_at ON pipelines (started_at);
CREATE INDEX pipelines_parent ON pipelines (parent_pipeline_id) WHERE parent_pipeline_id IS NOT NULL;

CREATE TABLE steps (
  pipeline_id     TEXT NOT NULL,
  step_order      INTEGER NOT NULL,
  step_name       TEXT NOT NULL,
  step_version    TEXT,
  step_type       TEXT NOT NULL DEFAULT 'task',
  position        INTEGER,
  status          TEXT NOT NULL CHECK (status IN ('running', 'completed', 'error', 'skipped', 'cancelled', 'interrupted')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  parent_step_id  INTEGER,
  parallel_group  TEXT,
  executor        TEXT,
  started_at      TEXT NOT NULL,
  completed_at    TEXT,
  duration_ms     REAL,
  input_data      TEXT,
  output_data     TEXT,
  error_message   TEXT,
  error_code      TEXT,
  error_traceback TEXT,
  PRIMARY KEY (pipeline_id, step_order)
) WITHOUT ROWID;

CREATE TABLE attempts (
  pipeline_id   TEXT NOT NULL,
  step_order    INTEGER NOT NULL,
  attempt       INTEGER NOT NULL,
  status        TEXT NOT NULL,
  started_at    TEXT,
  duration_ms   REAL,
  error_message TEXT,
  error_code    TEXT,
  PRIMARY KEY (pipeline_id, step_order, attempt)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
  pipeline_id    TEXT PRIMARY KEY,
  name           TEXT NOT NULL,
  position       INTEGER NOT NULL,
  step_order     INTEGER,
  structure_hash TEXT,
  context        TEXT NOT NULL,
  saves          INTEGER NOT NULL DEFAULT 1,
  created_at     TEXT NOT NULL
);

CREATE TABLE events (
  id          INTEGER PRIMARY KEY,
  pipeline_id TEXT,
  step_id     INTEGER,
  event_type  TEXT NOT NULL,
  event_name  TEXT NOT NULL,
  message     TEXT,
  data        TEXT,
  tags        TEXT,
  created_at  TEXT NOT NULL
);
CREATE INDEX events_pipeline ON events (pipeline_id, id);

CREATE TABLE alerts_config (
  id       INTEGER PRIMARY KEY,
  name     TEXT NOT NULL UNIQUE,
  metric   TEXT NOT NULL,
  condition TEXT NOT NULL,
  value    REAL NOT NULL,
  severity TEXT NOT NULL DEFAULT 'warning',
  message  TEXT,
  enabled  INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE alerts_fired (
  id              INTEGER PRIMARY KEY,
  alert_config_id INTEGER,
  pipeline_id     TEXT,
  step_id         INTEGER,
  metric          TEXT NOT NULL,
  metric_value    REAL,
  threshold_value REAL,
  severity        TEXT NOT NULL,
  message         TEXT,
  acknowledged    INTEGER NOT NULL DEFAULT 0,
  fired_at        TEXT NOT NULL
);
CREATE INDEX alerts_fired_pipeline ON alerts_fired (pipeline_id);

CREATE TABLE system_metrics (
  id                  INTEGER PRIMARY KEY,
  pipeline_id         TEXT,
  cpu_percent         REAL,
  memory_percent      REAL,
  memory_used_mb      REAL,
  memory_available_mb REAL,
  disk_io_read_mb     REAL,
  disk_io_write_mb    REAL,
  rss_mb              REAL,
  recorded_at         TEXT NOT NULL
);
CREATE INDEX system_metrics_pipeline ON system_metrics (pipeline_id, recorded_at);
`,
  },
  {
    version: 2,
    name: 'Wsqlite and SQLite record tables',
    sql: `
CREATE TABLE IF NOT EXISTS wsqlitemodel (
  id       INTEGER PRIMARY KEY,
  input    TEXT,
  output   TEXT,
  details  TEXT,
  error    TEXT,
  datetime TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS recordmodel (
  id       INTEGER PRIMARY KEY,
  input    TEXT,
  output   TEXT,
  details  TEXT,
  datetime TEXT NOT NULL
);
`,
  },
  {
    version: 3,
    name: 'step journal offsets',
    sql: `
CREATE TABLE IF NOT EXISTS wpipe_journal (
  name       TEXT PRIMARY KEY,
  applied    INTEGER NOT NULL,
  updated_at TEXT NOT NULL
) WITHOUT ROWID;
`,
  },
  {
    // The status CHECKs of version 1 were `status IN (...)` lists, which SQLite evaluates through an
    // ephemeral table built for every row written: ~2 µs a row, a fifth of the cost of folding a
    // 10-step run into `steps`. The same constraint spelt as ORs costs nothing measurable. A CHECK
    // cannot be altered in place, so both tables are rebuilt (same columns, order and keys) in the
    // migration's transaction, as SQLite's documentation describes for schema changes. One-time
    // cost on an existing database: ~5 s per million step rows here, holding the write lock (other
    // processes opening it meanwhile wait, within their busy deadline), and the file keeps the old
    // tables' pages as free space, reused by later rows (VACUUM returns them).
    version: 4,
    name: 'status checks without IN lists',
    sql: `
CREATE TABLE pipelines_v4 (
  id                 TEXT PRIMARY KEY,
  name               TEXT NOT NULL,
  worker_id          TEXT,
  worker_name        TEXT,
  status             TEXT NOT NULL CHECK (status = 'running' OR status = 'completed' OR status = 'error' OR status = 'cancelled'),
  started_at         TEXT NOT NULL,
  completed_at       TEXT,
  total_duration_ms  REAL,
  input_data         TEXT,
  output_data        TEXT,
  output_exact       INTEGER,
  error_message      TEXT,
  error_step         TEXT,
  error_code         TEXT,
  error_data         TEXT,
  parent_pipeline_id TEXT,
  parent_step_id     INTEGER,
  yaml_path          TEXT,
  structure_hash     TEXT,
  resumes            INTEGER NOT NULL DEFAULT 0,
  pid                INTEGER,
  updated_at         TEXT
) WITHOUT ROWID;
INSERT INTO pipelines_v4 SELECT * FROM pipelines;
DROP TABLE pipelines;
ALTER TABLE pipelines_v4 RENAME TO pipelines;
CREATE INDEX pipelines_started_at ON pipelines (started_at);
CREATE INDEX pipelines_parent ON pipelines (parent_pipeline_id) WHERE parent_pipeline_id IS NOT NULL;

CREATE TABLE steps_v4 (
  pipeline_id     TEXT NOT NULL,
  step_order      INTEGER NOT NULL,
  step_name       TEXT NOT NULL,
  step_version    TEXT,
  step_type       TEXT NOT NULL DEFAULT 'task',
  position        INTEGER,
  status          TEXT NOT NULL CHECK (status = 'running' OR status = 'completed' OR status = 'error' OR status = 'skipped'
                    OR status = 'cancelled' OR status = 'interrupted'),
  attempts        INTEGER NOT NULL DEFAULT 0,
  parent_step_id  INTEGER,
  parallel_group  TEXT,
  executor        TEXT,
  started_at      TEXT NOT NULL,
  completed_at    TEXT,
  duration_ms     REAL,
  input_data      TEXT,
  output_data     TEXT,
  error_message   TEXT,
  error_code      TEXT,
  error_traceback TEXT,
  PRIMARY KEY (pipeline_id, step_order)
) WITHOUT ROWID;
INSERT INTO steps_v4 SELECT * FROM steps;
DROP TABLE steps;
ALTER TABLE steps_v4 RENAME TO steps;
`,
  },
  {
    // One owner per run id (docs/architecture.md "Durable state"): a run row names the journal owner that runs it
    // (`owner`, the `<pid>-<random>` whose lock file in `<db>.wpipe-journal/` says whether it lives), so
    // another process can tell a live run from one whose process died; runs of dead owners become
    // `interrupted` (resumable). The status CHECK changes, so the table is rebuilt as in version 4.
    version: 5,
    name: 'run owners and interrupted runs',
    sql: `
CREATE TABLE pipelines_v5 (
  id                 TEXT PRIMARY KEY,
  name               TEXT NOT NULL,
  worker_id          TEXT,
  worker_name        TEXT,
  status             TEXT NOT NULL CHECK (status = 'running' OR status = 'completed' OR status = 'error' OR status = 'cancelled'
                       OR status = 'interrupted'),
  started_at         TEXT NOT NULL,
  completed_at       TEXT,
  total_duration_ms  REAL,
  input_data         TEXT,
  output_data        TEXT,
  output_exact       INTEGER,
  error_message      TEXT,
  error_step         TEXT,
  error_code         TEXT,
  error_data         TEXT,
  parent_pipeline_id TEXT,
  parent_step_id     INTEGER,
  yaml_path          TEXT,
  structure_hash     TEXT,
  resumes            INTEGER NOT NULL DEFAULT 0,
  pid                INTEGER,
  updated_at         TEXT,
  owner              TEXT
) WITHOUT ROWID;
INSERT INTO pipelines_v5 SELECT *, NULL FROM pipelines;
DROP TABLE pipelines;
ALTER TABLE pipelines_v5 RENAME TO pipelines;
CREATE INDEX pipelines_started_at ON pipelines (started_at);
CREATE INDEX pipelines_parent ON pipelines (parent_pipeline_id) WHERE parent_pipeline_id IS NOT NULL;
CREATE INDEX pipelines_running_owner ON pipelines (owner) WHERE status = 'running';
`,
  },
  {
    // collectSystemMetrics: a row per run and per top-level step, with its peaks from the host
    // sampler (src/observe/monitor.ts). New columns only, so no rebuild.
    version: 6,
    name: 'system metrics per run and step',
    sql: `
ALTER TABLE system_metrics ADD COLUMN scope TEXT;
ALTER TABLE system_metrics ADD COLUMN step_order INTEGER;
ALTER TABLE system_metrics ADD COLUMN peak_rss_mb REAL;
ALTER TABLE system_metrics ADD COLUMN peak_cpu_percent REAL;
ALTER TABLE system_metrics ADD COLUMN samples INTEGER;
ALTER TABLE system_metrics ADD COLUMN duration_ms REAL;
ALTER TABLE system_metrics ADD COLUMN sampler TEXT;
`,
  },
  {
    // Which worker ran a step in a thread or process: 'thread <threadId>' or 'pid <pid>' (the
    // executor column says which kind); NULL in-process. New column only, so no rebuild.
    version: 7,
    name: 'the worker of a step',
    sql: `
ALTER TABLE steps ADD COLUMN worker TEXT;
`,
  },
];

/** The version a database has once every migration ran. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
