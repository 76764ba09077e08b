/**
 * Storage benchmarks: what run history and checkpoints cost, against raw better-sqlite3 doing the
 * same writes (the limit: same SQL, same commits, no tracker).
 *
 * - tracked 10-step runs, durability 'step' (default): 11 durable boundaries per run (run start +
 *   step 1; each boundary "step N done + step N+1 running"; step 10 done + run end). Target ≥ 5,000
 *   runs/s. Side by side: raw better-sqlite3 committing the same rows at every boundary (the limit
 *   of a SQLite commit per boundary), the tracker doing so (`journal: false`), the tracker with its
 *   step journal (the default: one journal append per boundary, folds into SQLite), and whole
 *   Pipelines with `trackingDb` (runSync and run) against the same Pipeline untracked. Every
 *   measured batch ends with `flush()`, so the folds are inside the time measured.
 * - tracked 10-step runs, durability 'run' (opt-in): one durable write per run.
 * - checkpoint save: a step boundary that saves a checkpoint (strict serialize of a 20-key context
 *   with a Date, a Map and a BigInt, made durable with the boundary) against the same boundary
 *   without one. Target ≤ 30 µs median for the whole boundary.
 * - load the latest checkpoint of a run with 1,000 steps (each with a checkpoint save).
 *
 * Databases live in a temp folder under os.tmpdir(), or under WPIPE_BENCH_TMPDIR (e.g. /dev/shm to
 * take the disk out of the measure). The file system matters: on this project's machines /tmp is
 * ext4, where a commit costs about 2× what it costs on tmpfs, and much more while other processes
 * write to the same disk.
 *
 * `node --import tsx bench/storage.ts [--json] [--quick]`
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RunTracker, type RunTrackerOptions } from '../src/storage/tracker.js';
import { Pipeline, type Context } from '../src/engine/index.js';
import '../src/storage/observer.js';
import { openDb, type StorageDb } from '../src/storage/db.js';
import { serialize } from '../src/storage/serialize.js';
import { getBackendInfo, resetBackends } from '../src/backend/load.js';
import { consume, measure, report, withRatio, jsonMode, quick, type Row } from './lib.js';

const rows: Row[] = [];
const row = (name: string, nsPerOp: number, baselineNsPerOp?: number, note?: string, backend = 'js'): void => {
  rows.push(withRatio({ suite: 'storage', case: name, backend, nsPerOp, baselineNsPerOp, note }));
};
const perSecond = (ns: number): string => `${Math.round(1e9 / ns).toLocaleString('en-US')}/s`;

const tmpRoot = process.env.WPIPE_BENCH_TMPDIR || os.tmpdir();
const dir = fs.mkdtempSync(path.join(tmpRoot, 'wpipe-bench-storage-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const freshFile = (): string => path.join(dir, `b${fileNo++}.db`);

const STEPS = 10;
const R = 100; // runs per measured call
/**
 * Runs per measured call where a fold thread works beside the pipeline: the call's closing flush()
 * waits for everything to be in SQLite, so small batches measure the fold's latency, not the rate a
 * busy service sustains. Measured over a few seconds.
 */
const SUSTAINED = quick ? 500 : 2_000;
const SUSTAINED_MS = quick ? 1_000 : 3_000;
/** How the step journal appends: write(2) (js) and, with the addon, into a mapped window (native). */
const journalBackends = (getBackendInfo().backends.native.available ? ['js', 'native'] : ['js']) as ('js' | 'native')[];

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

function rawRuns(db: StorageDb, mode: 'step' | 'run'): (prefix: string) => void {
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
    for (let r = 0; r < R; r++) {
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

function trackedRuns(tracker: RunTracker, runs = R): (prefix: string) => void {
  let n = 0;
  return (prefix) => {
    for (let r = 0; r < runs; r++) {
      const runId = `${prefix}-${n++}`;
      tracker.startRun({ runId, pipelineName: 'bench', input: { orderId: r }, structureHash: 'h' });
      for (let s = 0; s < STEPS; s++) {
        const id = tracker.startStep({ runId, name: `s${s}`, version: 'v1', position: s });
        tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0.01, output: { s } });
      }
      tracker.finishRun({ runId, status: 'completed', output: { orderId: r, done: true } });
    }
    tracker.flush(); // the folds of this batch are part of its time
  };
}

for (const durability of ['step', 'run'] as const) {
  const rawDb = openDb(freshFile());
  const rawFn = rawRuns(rawDb, durability);
  const base = await measure(() => rawFn('raw'), R);
  const commits = durability === 'step' ? STEPS + 1 : 1;
  row(`10-step run, durability '${durability}': raw better-sqlite3, ${commits} commit${commits > 1 ? 's' : ''} per run`, base, undefined, perSecond(base));
  const variants: [string, RunTrackerOptions, string][] = [
    [`RunTracker, journal: false (${commits} commit${commits > 1 ? 's' : ''} per run)`, { durability, journal: false }, 'js'],
    ...journalBackends.map((backend): [string, RunTrackerOptions, string] =>
      [`RunTracker, step journal (default: ${commits} append${commits > 1 ? 's' : ''} per run, folded)`, { durability, backend }, backend]),
  ];
  for (const [label, options, backend] of variants) {
    const tracker = new RunTracker(freshFile(), options);
    const runs = options.journal === false ? R : SUSTAINED;
    const fn = trackedRuns(tracker, runs);
    const ns = await measure(() => fn('t'), runs, options.journal === false ? undefined : SUSTAINED_MS, 5);
    row(`10-step run, durability '${durability}': ${label}`, ns, base,
      `${perSecond(ns)}${durability === 'step' && options.journal !== false ? '; target ≥ 5,000/s' : ''}`, backend);
    tracker.close();
  }
  rawDb.close();
}

// ---------------------------------------------------------------- whole pipelines with trackingDb
{
  const steps = Array.from({ length: STEPS }, (_v, i) => new Function(`return (ctx) => ({ k${i}: 1 })`)() as (c: Context) => Context);
  const input = { orderId: 7, total: 120, status: 'new' };
  const plain = new Pipeline({ pipelineName: 'bench' }).setSteps(steps);
  const base = await measure(() => { for (let i = 0; i < R; i++) consume(plain.runSync(input)); }, R);
  row('10-step Pipeline.runSync, untracked', base);
  // The tracking observer comes first among a pipeline's observers (created at its first run).
  const trackerOf = (p: Pipeline): RunTracker => (p._observersForRun()![0] as unknown as { tracker: RunTracker }).tracker;
  const savedBackend = process.env.WPIPE_BACKEND;
  for (const backend of journalBackends) {
    // A Pipeline's tracker takes the backend from WPIPE_BACKEND, read when its journal opens.
    process.env.WPIPE_BACKEND = backend;
    resetBackends();
    const tracked = new Pipeline({ pipelineName: 'bench', trackingDb: freshFile() }).setSteps(steps);
    const trackedAsync = new Pipeline({ pipelineName: 'bench', trackingDb: freshFile() }).setSteps(steps);
    tracked.runSync(input);
    await trackedAsync.run(input);
    const sync = await measure(() => { for (let i = 0; i < SUSTAINED; i++) consume(tracked.runSync(input)); trackerOf(tracked).flush(); }, SUSTAINED, SUSTAINED_MS, 5);
    const async_ = await measure(async () => {
      for (let i = 0; i < SUSTAINED; i++) consume(await trackedAsync.run(input));
      trackerOf(trackedAsync).flush();
    }, SUSTAINED, SUSTAINED_MS, 5);
    row('10-step Pipeline.runSync with trackingDb (default durability)', sync, base, `${perSecond(sync)}; target ≥ 5,000/s`, backend);
    row('10-step Pipeline.run with trackingDb (default durability)', async_, base, `${perSecond(async_)}; target ≥ 5,000/s`, backend);
    await tracked.close();
    await trackedAsync.close();
    // Four pipelines of one service recording into one database, runs taken in turn: one fold
    // thread folds the four journals, one commit per pass.
    const sharedDb = freshFile();
    const four = [0, 1, 2, 3].map((i) => new Pipeline({ pipelineName: `bench-${i}`, trackingDb: sharedDb }).setSteps(steps));
    for (const p of four) p.runSync(input);
    const fourRuns = await measure(() => {
      for (let i = 0; i < SUSTAINED; i++) consume(four[i & 3]!.runSync(input));
      for (const p of four) trackerOf(p).flush();
    }, SUSTAINED, SUSTAINED_MS, 5);
    row('10-step Pipeline.runSync, 4 pipelines sharing one trackingDb (runs in turn)', fourRuns, sync, perSecond(fourRuns), backend);
    for (const p of four) await p.close();
  }
  if (savedBackend === undefined) delete process.env.WPIPE_BACKEND;
  else process.env.WPIPE_BACKEND = savedBackend;
  resetBackends();
}

// ---------------------------------------------------------------- commit size (journal: false)
// Every WAL frame is one whole page, and the checkpoint's fsync writes each WAL byte to the disk:
// with a commit per boundary, the bytes a commit appends are what it costs. Checkpoints off.
const commitSize: Record<string, string> = {};
for (const pageSize of [1024, 4096]) {
  const file = freshFile();
  const tracker = new RunTracker(file, { pageSize, walAutocheckpoint: 0, journal: false });
  trackedRuns(tracker)('warm');
  tracker.db.raw.pragma('wal_checkpoint(TRUNCATE)');
  const before = tracker.db.stats.transactions;
  const fn = trackedRuns(tracker);
  for (let i = 0; i < 5; i++) fn('size');
  const commits = tracker.db.stats.transactions - before;
  const bytes = fs.statSync(`${file}-wal`).size - 32;
  const frames = bytes / (pageSize + 24);
  commitSize[pageSize] = `${(frames / commits).toFixed(2)} pages = ${Math.round(bytes / commits).toLocaleString('en-US')} WAL bytes per commit`;
  tracker.close();
}
for (const [pageSize, text] of Object.entries(commitSize)) {
  rows.push({ suite: 'storage', case: `commit size, journal: false, page_size ${pageSize}${Number(pageSize) === 1024 ? ' (default)' : ''}`, backend: 'js', nsPerOp: 0, note: text });
}

// ---------------------------------------------------------------- checkpoint save latency
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

  // A boundary = finish step N (+ checkpoint) and start step N+1, durable before returning. Two
  // measures: with a flush() closing every batch of N boundaries (the fold's cost inside the time),
  // and the latency the pipeline's thread sees while a fold thread folds beside it (the boundary is
  // durable once its journal line is written; the fold's cost shows in the runs/s rows above).
  const boundaryVariants: [RunTrackerOptions, string, boolean][] = [
    ...journalBackends.map((backend): [RunTrackerOptions, string, boolean] => [{ backend }, backend, true]),
    ...journalBackends.map((backend): [RunTrackerOptions, string, boolean] => [{ backend, foldThreadAfter: 0 }, backend, false]),
    [{ journal: false }, 'js', true]];
  for (const [options, backend, flushEach] of boundaryVariants) {
    const journal = options.journal !== false;
    const tracker = new RunTracker(freshFile(), options);
    let r = 0;
    const boundaries = (withCheckpoint: boolean) => () => {
      const runId = `cp-${r++}`;
      tracker.startRun({ runId, pipelineName: 'bench', structureHash: 'h' });
      let id = tracker.startStep({ runId, name: 's', position: 0 });
      for (let i = 0; i < N; i++) {
        tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0.01 });
        if (withCheckpoint) tracker.saveCheckpoint({ runId, name: 'c', position: i + 1, context });
        id = tracker.startStep({ runId, name: 's', position: i + 1 });
      }
      tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0.01 });
      tracker.finishRun({ runId, status: 'error' });
      if (flushEach) tracker.flush();
    };
    // Each case starts with the fold caught up (and the fold thread started): a case must not
    // inherit the backlog of the one before it.
    const settle = (): void => {
      for (let i = 0; i < 20; i++) boundaries(false)();
      tracker.flush();
    };
    settle();
    const plainBoundary = await measure(boundaries(false), N);
    settle();
    const cpBoundary = await measure(boundaries(true), N);
    const how = !journal ? 'journal: false' : flushEach ? 'step journal (default), its fold included' : 'step journal (default), pipeline-thread latency, fold thread beside';
    row(`step boundary, ${how}`, plainBoundary, undefined, undefined, backend);
    row(`step boundary with a checkpoint save, ${how}`, cpBoundary, base, journal ? 'target ≤ 30 µs median' : undefined, backend);
    if (journal && !flushEach) {
      // The same boundary timed one by one: its median and its tail, as a step sees them.
      settle();
      const runId = `cp-${r++}`;
      tracker.startRun({ runId, pipelineName: 'bench', structureHash: 'h' });
      let id = tracker.startStep({ runId, name: 's', position: 0 });
      const samples = new Float64Array(quick ? 5_000 : 40_000);
      for (let i = 0; i < samples.length; i++) {
        const t0 = process.hrtime.bigint();
        tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0.01 });
        tracker.saveCheckpoint({ runId, name: 'c', position: i + 1, context });
        id = tracker.startStep({ runId, name: 's', position: i + 1 });
        samples[i] = Number(process.hrtime.bigint() - t0);
      }
      tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0.01 });
      tracker.finishRun({ runId, status: 'error' });
      samples.sort();
      const at = (q: number): number => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
      row(`step boundary with a checkpoint save, each timed (${samples.length.toLocaleString('en-US')} in a row), fold thread beside`, at(0.5), base,
        `p50; p90 ${(at(0.9) / 1e3).toFixed(1)} µs, p99 ${(at(0.99) / 1e3).toFixed(1)} µs; target ≤ 30 µs median`, backend);
    }
    tracker.close();
  }
  const serializeOnly = await measure(() => { for (let i = 0; i < N; i++) consume(serialize(context)); }, N);
  row('checkpoint serialize only (20 keys, Date, Map, BigInt)', serializeOnly);
}

// ---------------------------------------------------------------- latest checkpoint of a 1,000-step run
{
  const tracker = new RunTracker(freshFile());
  tracker.startRun({ runId: 'long', pipelineName: 'bench', structureHash: 'h' });
  const ctx: Record<string, unknown> = { ...context };
  for (let s = 0; s < 1000; s++) {
    const id = tracker.startStep({ runId: 'long', name: `s${s}`, position: s });
    ctx[`r${s % 50}`] = s;
    tracker.finishStep({ stepId: id, status: 'completed', attempts: 1, durationMs: 0.01 });
    tracker.saveCheckpoint({ runId: 'long', name: 'every', position: s + 1, context: ctx });
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

if (!jsonMode) console.log(`databases in ${dir}`);
report(rows);
