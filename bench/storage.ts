/**
 * Storage benchmarks: what run history and checkpoints cost, against raw better-sqlite3 doing the
 * same writes (the limit: same SQL, same commits, no tracker). Every tracked row reads its database
 * back afterwards and fails the suite unless every run it timed is in SQLite, completed.
 *
 * 1. 10-step runs, durability 'step' (default): 11 durable boundaries per run (run start + step 1;
 *    each boundary "step N done + step N+1 running"; step 10 done + run end). Baseline: raw
 *    better-sqlite3 committing the same rows at every boundary (11 commits per run). Against it:
 *    RunTracker with its step journal (the default: one journal append per boundary, folded into
 *    SQLite on the tracker's own thread) with generated run ids (`fresh: true`, no claim; target
 *    ≥ 1.8× the raw rate), the same with run ids the caller chose (claimed in SQLite at the run's
 *    start: one more transaction per run), and `journal: false` (every boundary its own commit).
 *    Journal rows run sustained batches of several thousand runs, each ending with `flush()`, so
 *    every fold is inside the time measured.
 * 2. 10-step runs, durability 'run' (opt-in): one durable write per run; baseline one raw commit per run.
 * 3. Whole Pipelines: 10-step `runSync` untracked (baseline); `runSync` and `run` with `trackingDb`
 *    (default durability, generated ids); four pipelines sharing one `trackingDb`.
 * 4. Durability 'fsync' (survives power loss): one run in flight (sequential `await pipe.run()`;
 *    target ≥ 700 runs/s), `PipelineAsync.runMany` with concurrency 8 (group commit; target ≥ 4,000
 *    runs/s), against raw better-sqlite3 with `synchronous=FULL` committing every boundary, one run
 *    at a time. Each row says how many fdatasync calls a run cost (RunTracker `stats.syncs`).
 * 5. Short-lived processes: a fresh child process (bench/fixtures/short-lived.ts) runs 1, 200 or
 *    2,000 tracked runs and closes its pipeline; runs + close() per run against the runs alone
 *    (target: 200 runs + close within 1.5× of the runs alone). Median of 3 children.
 * 6. Step boundary latency (finish step N, start N+1, durable), with and without a checkpoint save
 *    (strict serialize of a 20-key context with a Date, a Map and a BigInt): step journal (its
 *    fold included) and `journal: false`. Target ≤ 30 µs median for the checkpoint boundary.
 * 7. Load the latest checkpoint of a run with 1,000 steps (each with a checkpoint save).
 *
 * Databases live in a temp folder under os.tmpdir(), or under WPIPE_BENCH_TMPDIR (e.g. /dev/shm to
 * take the disk out of the measure). The file system matters: a commit on ext4 costs about 2× what
 * it costs on tmpfs, more while other processes write to the same disk; and on tmpfs fdatasync does
 * nothing, so the 'fsync' rows only mean something on a real disk (they say so when they are not).
 *
 * `node --import tsx bench/storage.ts [--json] [--quick]`
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RunTracker, type RunTrackerOptions } from '../src/storage/tracker.js';
import { Pipeline, PipelineAsync, type Context } from '../src/engine/index.js';
import { openDb, type StorageDb } from '../src/storage/db.js';
import { serialize } from '../src/storage/serialize.js';
import { Journal } from '../src/storage/journal.js';
import { consume, measure, report, withRatio, jsonMode, quick, type Row } from './lib.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const rows: Row[] = [];
const row = (name: string, nsPerOp: number, baselineNsPerOp?: number, note?: string): void => {
  rows.push(withRatio({ suite: 'storage', case: name, backend: 'js', nsPerOp, baselineNsPerOp, note }));
};
const perSecond = (ns: number): string => `${Math.round(1e9 / ns).toLocaleString('en-US')} runs/s`;
const fixed = (n: number, digits = 2): string => n.toFixed(digits);
const verdict = (ok: boolean): string => (ok ? 'met' : 'NOT met');
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const tmpRoot = process.env.WPIPE_BENCH_TMPDIR || os.tmpdir();
const dir = fs.mkdtempSync(path.join(tmpRoot, 'wpipe-bench-storage-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const freshFile = (): string => path.join(dir, `b${fileNo++}.db`);

/** The file system a path is on: the longest mount point of /proc/self/mounts above it (Linux), else statfs. */
function fileSystemOf(p: string): { type: string; source: string } {
  const real = fs.realpathSync(p);
  let best = { type: 'unknown', source: 'unknown', mount: '' };
  try {
    for (const line of fs.readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
      const [source, mountRaw, type] = line.split(' ');
      if (!source || !mountRaw || !type) continue;
      const mount = mountRaw.replace(/\\040/g, ' ');
      const under = real === mount || real.startsWith(mount.endsWith('/') ? mount : `${mount}/`);
      if (under && mount.length >= best.mount.length) best = { type, source, mount };
    }
  } catch {
    // not Linux: statfs below
  }
  if (best.type === 'unknown' && fs.statfsSync(p).type === 0x01021994) best.type = 'tmpfs';
  return best;
}
const tmpFs = fileSystemOf(dir);
const onTmpfs = tmpFs.type === 'tmpfs' || tmpFs.type === 'ramfs' || fs.statfsSync(dir).type === 0x01021994;
const machine = `Node ${process.version}, ${os.availableParallelism()} cores (nproc), databases in ${dir} on ${tmpFs.type} (${tmpFs.source})`;
/** Added to every 'fsync' row when the databases are on tmpfs, where fdatasync returns at once. */
const tmpfsWarning = onTmpfs
  ? `; ON TMPFS (${process.env.WPIPE_BENCH_TMPDIR ? `WPIPE_BENCH_TMPDIR=${process.env.WPIPE_BENCH_TMPDIR}` : 'os.tmpdir()'}): fdatasync does nothing there, this measures nothing about power loss`
  : '';

const STEPS = 10;
const R = 100; // runs per measured call
/**
 * Runs per measured call of the journal rows: the call's closing flush() folds everything still in
 * the journal, so small batches would measure the fold's fixed cost, not the rate a busy service
 * sustains. Measured over a few seconds.
 */
const SUSTAINED = quick ? 1_000 : 4_000;
const SUSTAINED_MS = quick ? 1_000 : 3_000;

const steps = Array.from({ length: STEPS }, (_v, i) => new Function(`return (ctx) => ({ k${i}: 1 })`)() as (c: Context) => Context);
const input = { orderId: 7, total: 120, status: 'new' };
/** The tracking observer comes first among a pipeline's observers (created at its first run). */
const trackerOf = (p: Pipeline): RunTracker => (p._observersForRun()![0] as unknown as { tracker: RunTracker }).tracker;

/** Completed runs (and their completed steps) in a database: what a row claims to have written must be there. */
function checkWritten(db: StorageDb, runs: number, what: string): void {
  const n = (db.raw.prepare(`SELECT count(*) AS n FROM pipelines WHERE status = 'completed'`).get() as { n: number }).n;
  const s = (db.raw.prepare(`SELECT count(*) AS n FROM steps WHERE status = 'completed'`).get() as { n: number }).n;
  if (n !== runs || s !== runs * STEPS) {
    throw new Error(`${what}: ${n} completed runs and ${s} completed steps in SQLite, expected ${runs} and ${runs * STEPS}`);
  }
}

// ---------------------------------------------------------------- raw better-sqlite3: the same writes
let isoMs = -1;
let isoText = '';
/** The tracker's timestamp: ISO text, formatted once per millisecond. */
function isoNow(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

function rawRuns(db: StorageDb, mode: 'step' | 'run', runs = R): (prefix: string) => void {
  const raw = db.raw;
  const begin = raw.prepare('BEGIN IMMEDIATE');
  const commit = raw.prepare('COMMIT');
  const insRun = raw.prepare(`INSERT INTO pipelines (id, name, worker_id, worker_name, status, started_at, completed_at, total_duration_ms,
      input_data, output_data, output_exact, error_message, error_step, error_code, error_data, parent_pipeline_id,
      parent_step_id, yaml_path, structure_hash, pid, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const finRun = raw.prepare(`UPDATE pipelines SET status = ?, completed_at = ?, total_duration_ms = ?, output_data = ?, output_exact = ?,
      error_message = ?, error_step = ?, error_code = ?, error_data = ?, updated_at = ? WHERE id = ?`);
  // The minimal writes of a durable step boundary, as the tracker issues them in the common case (no
  // parent, group, executor, input or error): bind only what is known.
  const insStart = raw.prepare(`INSERT INTO steps (pipeline_id, step_order, step_name, step_version, step_type, position, status,
      started_at) VALUES (?, ?, ?, ?, ?, ?, 'running', ?)`);
  const insFull = raw.prepare(`INSERT INTO steps (pipeline_id, step_order, step_name, step_version, step_type, position, status, attempts,
      parent_step_id, parallel_group, executor, started_at, completed_at, duration_ms, input_data, output_data,
      error_message, error_code, error_traceback) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const finStep = raw.prepare(`UPDATE steps SET status = ?, attempts = ?, completed_at = ?, duration_ms = ?, output_data = ?
      WHERE pipeline_id = ? AND step_order = ?`);
  const dropCp = raw.prepare('DELETE FROM checkpoints WHERE pipeline_id = ?');
  const exists = raw.prepare('SELECT status FROM pipelines WHERE id = ?');
  let n = 0;
  return (prefix) => {
    for (let r = 0; r < runs; r++) {
      const id = `${prefix}-${n++}`;
      const t0 = Date.now();
      const start = isoNow();
      exists.get(id);
      const input = JSON.stringify({ orderId: r });
      if (mode === 'step') {
        begin.run();
        insRun.run(id, 'bench', null, null, 'running', start, null, null, input, null, null, null, null, null, null, null, null, null, 'h', process.pid, start);
        insStart.run(id, 1, 's0', 'v1', 'task', 0, isoNow());
        commit.run();
        for (let s = 0; s < STEPS; s++) {
          const now = isoNow();
          begin.run();
          finStep.run('completed', 1, now, 0.01, JSON.stringify({ s }), id, s + 1);
          if (s + 1 < STEPS) insStart.run(id, s + 2, `s${s + 1}`, 'v1', 'task', s + 1, isoNow());
          else {
            finRun.run('completed', now, Date.now() - t0, JSON.stringify({ orderId: r, done: true }), 1, null, null, null, null, now, id);
            dropCp.run(id);
          }
          commit.run();
        }
      } else {
        begin.run();
        const now = isoNow();
        for (let s = 0; s < STEPS; s++) {
          insFull.run(id, s + 1, `s${s}`, 'v1', 'task', s, 'completed', 1, null, null, null, now, now, 0.01, null, JSON.stringify({ s }), null, null, null);
        }
        insRun.run(id, 'bench', null, null, 'completed', start, now, Date.now() - t0, input, JSON.stringify({ orderId: r, done: true }), 1, null, null, null,
          null, null, null, null, 'h', process.pid, now);
        dropCp.run(id);
        commit.run();
      }
    }
  };
}

/**
 * `runs` 10-step runs through a tracker per call, then flush() (the folds of the batch are part of
 * its time). `fresh`: generated ids (no claim); otherwise chosen ids, each claimed at its start.
 */
function trackedRuns(tracker: RunTracker, runs: number, fresh: boolean): { fn: (prefix: string) => void; done: () => number } {
  let n = 0;
  let done = 0;
  const fn = (prefix: string): void => {
    for (let r = 0; r < runs; r++) {
      const runId = `${prefix}-${n++}`;
      tracker.startRun({ runId, pipelineName: 'bench', input: { orderId: r }, structureHash: 'h', ...(fresh ? { fresh: true } : {}) });
      for (let s = 0; s < STEPS; s++) {
        const id = tracker.startStep({ runId, name: `s${s}`, version: 'v1', position: s });
        tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0.01, output: { s } });
      }
      tracker.finishRun({ runId, status: 'completed', output: { orderId: r, done: true } });
      done++;
    }
    tracker.flush();
  };
  return { fn, done: () => done };
}

// ---------------------------------------------------------------- 1, 2: RunTracker, durability 'step' and 'run'
for (const durability of ['step', 'run'] as const) {
  const rawDb = openDb(freshFile());
  const rawFn = rawRuns(rawDb, durability);
  const base = await measure(() => rawFn('raw'), R);
  const commits = durability === 'step' ? STEPS + 1 : 1;
  const plural = (n: number, word: string): string => `${n} ${word}${n > 1 ? 's' : ''}`;
  row(`10-step run, durability '${durability}': raw better-sqlite3, ${plural(commits, 'commit')} per run (baseline)`, base, undefined, perSecond(base));
  rawDb.close();
  const variants: { label: string; options: RunTrackerOptions; fresh: boolean; target?: number }[] = [
    { label: `RunTracker, step journal (default), generated ids (fresh: true): ${plural(commits, 'append')} per run, folded`, options: { durability }, fresh: true,
      ...(durability === 'step' ? { target: 1.8 } : {}) },
    ...(durability === 'step'
      ? [{ label: 'RunTracker, step journal (default), chosen ids: each claimed in SQLite at its start', options: { durability }, fresh: false }]
      : []),
    { label: `RunTracker, journal: false (${plural(commits, 'commit')} per run), generated ids`, options: { durability, journal: false }, fresh: true },
  ];
  for (const { label, options, fresh, target } of variants) {
    const tracker = new RunTracker(freshFile(), options);
    const journal = options.journal !== false;
    const runs = journal ? SUSTAINED : R;
    const t = trackedRuns(tracker, runs, fresh);
    const ns = await measure(() => t.fn('t'), runs, journal ? SUSTAINED_MS : undefined, journal ? 5 : undefined);
    const done = t.done();
    checkWritten(tracker.db, done, label);
    const st = tracker.stats;
    const perRun = `per run: ${fixed(st.journalAppends / done, 1)} journal appends, ${fixed(st.claims / done, 1)} claim transactions, ${fixed(st.folds / done, 3)} commits of writes (folds)`;
    const speedUp = base / ns;
    const targetText = target === undefined ? '' : `; target ≥ ${target}× raw: ${verdict(speedUp >= target)}`;
    row(`10-step run, durability '${durability}': ${label}`, ns, base, `${perSecond(ns)}; speed-up ${fixed(speedUp)}× raw${targetText}; ${perRun}`);
    tracker.close();
  }
}

// ---------------------------------------------------------------- 3: whole pipelines with trackingDb
{
  const plain = new Pipeline({ pipelineName: 'bench' }).setSteps(steps);
  const base = await measure(() => { for (let i = 0; i < R; i++) consume(plain.runSync(input)); }, R);
  row('10-step Pipeline.runSync, untracked (baseline)', base, undefined, perSecond(base));
  const tracked = new Pipeline({ pipelineName: 'bench', trackingDb: freshFile() }).setSteps(steps);
  const trackedAsync = new Pipeline({ pipelineName: 'bench', trackingDb: freshFile() }).setSteps(steps);
  tracked.runSync(input);
  await trackedAsync.run(input);
  let syncRuns = 1;
  let asyncRuns = 1;
  const sync = await measure(() => {
    for (let i = 0; i < SUSTAINED; i++) consume(tracked.runSync(input));
    trackerOf(tracked).flush();
    syncRuns += SUSTAINED;
  }, SUSTAINED, SUSTAINED_MS, 5);
  const async_ = await measure(async () => {
    for (let i = 0; i < SUSTAINED; i++) consume(await trackedAsync.run(input));
    trackerOf(trackedAsync).flush();
    asyncRuns += SUSTAINED;
  }, SUSTAINED, SUSTAINED_MS, 5);
  checkWritten(trackerOf(tracked).db, syncRuns, 'Pipeline.runSync with trackingDb');
  checkWritten(trackerOf(trackedAsync).db, asyncRuns, 'Pipeline.run with trackingDb');
  row('10-step Pipeline.runSync with trackingDb (default durability, generated ids)', sync, base, perSecond(sync));
  row('10-step Pipeline.run with trackingDb (default durability, generated ids)', async_, base, perSecond(async_));
  await tracked.close();
  await trackedAsync.close();
  // Four pipelines of one service recording into one database, runs taken in turn: four trackers,
  // four journals, each folded by its own tracker.
  const sharedDb = freshFile();
  const four = [0, 1, 2, 3].map((i) => new Pipeline({ pipelineName: `bench-${i}`, trackingDb: sharedDb }).setSteps(steps));
  for (const p of four) p.runSync(input);
  let fourRunsDone = 4;
  const fourRuns = await measure(() => {
    for (let i = 0; i < SUSTAINED; i++) consume(four[i & 3]!.runSync(input));
    for (const p of four) trackerOf(p).flush();
    fourRunsDone += SUSTAINED;
  }, SUSTAINED, SUSTAINED_MS, 5);
  checkWritten(trackerOf(four[0]!).db, fourRunsDone, '4 pipelines sharing one trackingDb');
  row('10-step Pipeline.runSync, 4 pipelines sharing one trackingDb (runs in turn)', fourRuns, sync,
    `${perSecond(fourRuns)}; baseline: one tracked Pipeline.runSync (row above)`);
  for (const p of four) await p.close();
}

// ---------------------------------------------------------------- 4: durability 'fsync' (power loss)
{
  const note = `on ${tmpFs.type} (${tmpFs.source})${tmpfsWarning}`;
  const FSYNC_MS = quick ? 1_500 : 4_000;
  // (c) the baseline: raw better-sqlite3, synchronous=FULL (WAL fsynced at every commit), 11 commits per run.
  const RAW_RUNS = quick ? 3 : 10;
  const rawDb = openDb(freshFile());
  rawDb.raw.pragma('synchronous = FULL');
  const rawFn = rawRuns(rawDb, 'step', RAW_RUNS);
  const base = await measure(() => rawFn('raw-full'), RAW_RUNS, FSYNC_MS, 3);
  rawDb.close();
  row("10-step run, durability 'fsync': raw better-sqlite3, synchronous=FULL, 11 commits per run, one run at a time (baseline)", base, undefined,
    `${perSecond(base)}; 11 WAL fsyncs per run (one per commit, not counted; + checkpoints) ${note}`);

  // The journal's write-ahead of zeros (Journal preallocate), on and off in the same run: one line
  // appended and fdatasync'ed, as a boundary of durability 'fsync' does.
  const LINES = quick ? 300 : 2_000;
  const perLine: Record<string, number> = {};
  for (const preallocate of [false, true]) {
    const journal = new Journal(freshFile(), { preallocate });
    const op = [[8 /* Code.InsertEvent */, 'run', null, 'note', 'a boundary of about this size', null, null, null, '2026-01-01T00:00:00.000Z']];
    perLine[String(preallocate)] = await measure(() => {
      for (let i = 0; i < LINES; i++) {
        journal.append(op);
        journal.syncNow();
      }
    }, LINES, FSYNC_MS, 3);
    journal.close();
  }
  row("journal line + fdatasync, log grown by each append (no write-ahead)", perLine.false!, undefined, note);
  row("journal line + fdatasync, log written ahead with zeros (durability 'fsync' default)", perLine.true!, perLine.false, note);

  // (a) one run in flight: every boundary waits for its own fdatasync.
  const SEQ = quick ? 10 : 50;
  const seq = new Pipeline({ pipelineName: 'bench-fsync', trackingDb: freshFile(), trackingDurability: 'fsync' }).setSteps(steps);
  await seq.run(input);
  const seqTracker = trackerOf(seq);
  let seqRuns = 1;
  const seqSyncs0 = seqTracker.stats.syncs;
  const seqNs = await measure(async () => {
    for (let i = 0; i < SEQ; i++) consume(await seq.run(input));
    seqTracker.flush();
    seqRuns += SEQ;
  }, SEQ, FSYNC_MS, 3);
  const seqSyncs = (seqTracker.stats.syncs - seqSyncs0) / (seqRuns - 1);
  checkWritten(seqTracker.db, seqRuns, "Pipeline.run, durability 'fsync'");
  await seq.close();
  row("10-step run, durability 'fsync': Pipeline.run, one run in flight (sequential await)", seqNs, base,
    `${perSecond(seqNs)}; target ≥ 700 runs/s: ${verdict(1e9 / seqNs >= 700)}; ${fixed(seqSyncs)} fdatasync per run ${note}`);

  // (b) concurrent runs: boundaries of the runs in flight share one fdatasync (group commit).
  const MANY = quick ? 64 : 400;
  const inputs = Array.from({ length: MANY }, (_v, i) => ({ ...input, orderId: i }));
  // The ceiling this row can reach on this machine today: the same runMany at the default level (no
  // sync at all), so the row reads as a ratio even on a day the CPU is slow.
  const ceilingPipe = new PipelineAsync({ pipelineName: 'bench-step-many', trackingDb: freshFile() }).setSteps(steps);
  await ceilingPipe.runMany(inputs.slice(0, 8), { concurrency: 8 });
  const ceiling = await measure(async () => {
    consume(await ceilingPipe.runMany(inputs, { concurrency: 8 }));
    trackerOf(ceilingPipe).flush();
  }, MANY, FSYNC_MS, 3);
  await ceilingPipe.close();
  row("10-step run, durability 'step' (no sync): PipelineAsync.runMany, concurrency 8 — the ceiling of the row below", ceiling, undefined, perSecond(ceiling));
  const many = new PipelineAsync({ pipelineName: 'bench-fsync-many', trackingDb: freshFile(), trackingDurability: 'fsync' }).setSteps(steps);
  await many.runMany(inputs.slice(0, 8), { concurrency: 8 });
  const manyTracker = trackerOf(many);
  let manyRuns = 8;
  const manySyncs0 = manyTracker.stats.syncs;
  const manyNs = await measure(async () => {
    consume(await many.runMany(inputs, { concurrency: 8 }));
    manyTracker.flush();
    manyRuns += MANY;
  }, MANY, FSYNC_MS, 3);
  const manySyncs = (manyTracker.stats.syncs - manySyncs0) / (manyRuns - 8);
  checkWritten(manyTracker.db, manyRuns, "PipelineAsync.runMany, durability 'fsync'");
  await many.close();
  row("10-step run, durability 'fsync': PipelineAsync.runMany, concurrency 8 (group commit)", manyNs, base,
    `${perSecond(manyNs)}; target ≥ 4,000 runs/s: ${verdict(1e9 / manyNs >= 4000)}; ${(ceiling / manyNs * 100).toFixed(0)}% of the no-sync ceiling above; ` +
      `${fixed(manySyncs)} fdatasync per run ${note}`);
}

// ---------------------------------------------------------------- a run whose context holds 10 MB
// What the history costs when the context is large: the default cap (1 MiB) stores a truncation
// marker instead of the value, but the value is still serialized once to learn its size.
{
  const big = Array.from({ length: 100_000 }, (_v, i) => ({ i, text: 'x'.repeat(80) })); // ~10 MB as JSON
  const load = (): Context => ({ rows: big });
  const N = quick ? 3 : 10;
  const untracked = new Pipeline({ pipelineName: 'bench-big' }).setSteps([[load, 'load']]);
  const base = await measure(async () => { for (let i = 0; i < N; i++) consume(await untracked.run({})); }, N, undefined, 3);
  row('1-step run returning a 10 MB context, untracked', base);
  for (const [label, options] of [
    ['tracked, default cap (1 MiB: stored as a truncation marker)', {}],
    ['tracked, trackingMaxValueBytes 64 KiB', { trackingMaxValueBytes: 64 * 1024 }],
  ] as const) {
    const tracked = new Pipeline({ pipelineName: 'bench-big', trackingDb: freshFile(), ...options }).setSteps([[load, 'load']]);
    await tracked.run({});
    const ns = await measure(async () => { for (let i = 0; i < N; i++) consume(await tracked.run({})); }, N, undefined, 3);
    const file = trackerOf(tracked).db.path;
    await tracked.close();
    row(`1-step run returning a 10 MB context, ${label}`, ns, base, `database ${(fs.statSync(file).size / 2 ** 20).toFixed(1)} MiB after ${N + 1} runs`);
  }
}

// ---------------------------------------------------------------- 5: short-lived processes
{
  const fixture = path.join(here, 'fixtures', 'short-lived.ts');
  interface Child { runs: number; runsMs: number; closeMs: number; unfoldedAtClose: number; journalAppends: number; folds: number }
  const child = (runs: number): Child => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', fixture, String(runs), freshFile()], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000,
    });
    if (r.status !== 0) throw new Error(`bench/fixtures/short-lived.ts ${runs} failed (exit ${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Child;
  };
  for (const runs of [1, 200, 2_000]) {
    const children = [child(runs), child(runs), child(runs)];
    const runsMs = median(children.map((c) => c.runsMs));
    const closeMs = median(children.map((c) => c.closeMs));
    const unfolded = median(children.map((c) => c.unfoldedAtClose));
    const ratio = (runsMs + closeMs) / runsMs;
    const target = runs === 200 ? `; target: runs + close within 1.5× of the runs alone: ${verdict(ratio <= 1.5)}` : '';
    row(`short-lived process: ${runs.toLocaleString('en-US')} runSync run${runs > 1 ? 's' : ''} + close() (per run; baseline: the runs alone)`,
      ((runsMs + closeMs) * 1e6) / runs, (runsMs * 1e6) / runs,
      `close() ${fixed(closeMs, 1)} ms, runs ${fixed(runsMs, 1)} ms, ${unfolded.toLocaleString('en-US')} writes left to fold at close${target}; median of 3 children`);
  }
}

// ---------------------------------------------------------------- 6: step boundary latency, checkpoint save
const context: Record<string, unknown> = { orderId: 7, customer: 'ACME, Inc.', total: 1234.5, status: 'new', createdAt: new Date(0), lines: [1, 2, 3],
  seen: new Map([['a', 1], ['b', 2]]), big: 2n ** 70n };
for (let i = 0; i < 12; i++) context[`k${i}`] = i % 2 ? `value-${i}` : i;
{
  const rawDb = openDb(freshFile());
  const upsert = rawDb.raw.prepare(`INSERT INTO checkpoints (pipeline_id, name, position, step_order, structure_hash, context, saves, created_at)
    VALUES (?, ?, ?, ?, ?, ?, 1, ?) ON CONFLICT (pipeline_id) DO UPDATE SET name = excluded.name, position = excluded.position,
    step_order = excluded.step_order, structure_hash = excluded.structure_hash, context = excluded.context, saves = saves + 1, created_at = excluded.created_at`);
  const plain = { ...context, createdAt: context.createdAt!.toString(), seen: [...(context.seen as Map<string, number>)], big: String(context.big) };
  const N = 200;
  let p = 0;
  const base = await measure(() => {
    for (let i = 0; i < N; i++) upsert.run('cp-run', 'c', p++, p, 'h', JSON.stringify(plain), new Date().toISOString());
  }, N);
  row('checkpoint save, own commit: raw upsert of JSON.stringify (no Date/Map/BigInt)', base);
  rawDb.close();

  // A boundary = finish step N (+ checkpoint) and start step N+1, durable before returning. Each
  // measured call is one run of N boundaries ending with flush(): the fold is inside the time.
  for (const options of [{}, { journal: false }] as RunTrackerOptions[]) {
    const journal = options.journal !== false;
    const tracker = new RunTracker(freshFile(), options);
    let r = 0;
    const boundaries = (withCheckpoint: boolean) => () => {
      const runId = `cp-${r++}`;
      tracker.startRun({ runId, pipelineName: 'bench', structureHash: 'h', fresh: true });
      let id = tracker.startStep({ runId, name: 's', position: 0 });
      for (let i = 0; i < N; i++) {
        tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0.01 });
        if (withCheckpoint) tracker.saveCheckpoint({ runId, name: 'c', resumeAt: i + 1, context });
        id = tracker.startStep({ runId, name: 's', position: i + 1 });
      }
      tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0.01 });
      tracker.finishRun({ runId, status: 'error' });
      tracker.flush();
    };
    const plainBoundary = await measure(boundaries(false), N);
    const cpBoundary = await measure(boundaries(true), N);
    const how = journal ? 'step journal (default), its fold included' : 'journal: false (a commit per boundary)';
    row(`step boundary, ${how}`, plainBoundary);
    row(`step boundary with a checkpoint save, ${how}`, cpBoundary, base,
      journal ? `target ≤ 30 µs median: ${verdict(cpBoundary <= 30_000)}` : undefined);
    if (journal) {
      // The same boundary timed one by one, as a step sees it: no flush, so the folds happen where
      // the tracker does them in a loop that never yields (every 10,000 journaled writes, inline).
      const runId = `cp-${r++}`;
      tracker.startRun({ runId, pipelineName: 'bench', structureHash: 'h', fresh: true });
      let id = tracker.startStep({ runId, name: 's', position: 0 });
      const samples = new Float64Array(quick ? 5_000 : 40_000);
      const folds0 = tracker.stats.folds;
      for (let i = 0; i < samples.length; i++) {
        const t0 = process.hrtime.bigint();
        tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0.01 });
        tracker.saveCheckpoint({ runId, name: 'c', resumeAt: i + 1, context });
        id = tracker.startStep({ runId, name: 's', position: i + 1 });
        samples[i] = Number(process.hrtime.bigint() - t0);
      }
      const folds = tracker.stats.folds - folds0;
      tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0.01 });
      tracker.finishRun({ runId, status: 'error' });
      tracker.flush();
      samples.sort();
      const at = (q: number): number => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
      row(`step boundary with a checkpoint save, each timed (${samples.length.toLocaleString('en-US')} in a row, folds inline), p50`, at(0.5), base,
        `p90 ${fixed(at(0.9) / 1e3, 1)} µs, p99 ${fixed(at(0.99) / 1e3, 1)} µs, max ${fixed(samples[samples.length - 1]! / 1e3, 1)} µs (${folds} inline folds); ` +
          `target ≤ 30 µs median: ${verdict(at(0.5) <= 30_000)}`);
    }
    tracker.close();
  }
  const serializeOnly = await measure(() => { for (let i = 0; i < N; i++) consume(serialize(context)); }, N);
  row('checkpoint serialize only (20 keys, Date, Map, BigInt)', serializeOnly);
}

// ---------------------------------------------------------------- 7: latest checkpoint of a 1,000-step run
{
  const tracker = new RunTracker(freshFile());
  tracker.startRun({ runId: 'long', pipelineName: 'bench', structureHash: 'h' });
  const ctx: Record<string, unknown> = { ...context };
  for (let s = 0; s < 1000; s++) {
    const id = tracker.startStep({ runId: 'long', name: `s${s}`, position: s });
    ctx[`r${s % 50}`] = s;
    tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0.01 });
    tracker.saveCheckpoint({ runId: 'long', name: 'every', resumeAt: s + 1, context: ctx });
  }
  tracker.flush();
  const N = 200;
  const load = await measure(() => { for (let i = 0; i < N; i++) consume(tracker.loadLatestCheckpoint('long')); }, N);
  const rawSelect = tracker.db.raw.prepare('SELECT context FROM checkpoints WHERE pipeline_id = ?');
  const base = await measure(() => { for (let i = 0; i < N; i++) consume(JSON.parse((rawSelect.get('long') as { context: string }).context)); }, N);
  row('load latest checkpoint of a 1,000-step run: raw SELECT + JSON.parse', base);
  row('load latest checkpoint of a 1,000-step run: RunTracker.loadLatestCheckpoint', load, base);
  tracker.close();
}

if (!jsonMode) console.log(machine);
report(rows);
