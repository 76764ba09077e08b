import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { tempDir } from './fixtures/storage/tmp.js';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3') as typeof import('better-sqlite3');
const FIXTURES = {
  RunTracker: fileURLToPath(new URL('./fixtures/storage/crash-runner.ts', import.meta.url)),
  Pipeline: fileURLToPath(new URL('./fixtures/storage/crash-pipeline.ts', import.meta.url)),
};

const STEPS = 100;
const STEP_MS = 3;
/** Kill rounds per fixture: enough kills at random points, within the suite's time bound. */
const KILL_ROUNDS: Record<string, number> = { RunTracker: 6, Pipeline: 8 };

/** Runs the child; kills it with SIGKILL `killAfterMs` after it reports ready, unless it exits first. */
function round(runner: string, args: string[], killAfterMs: number): Promise<{ killed: boolean; code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', runner, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killed = false;
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (timer === undefined && stdout.includes('ready\n')) timer = setTimeout(() => { killed = child.kill('SIGKILL'); }, killAfterMs);
    });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ killed: killed && signal === 'SIGKILL', code, stdout: stdout.replace('ready\n', ''), stderr });
    });
  });
}

for (const [via, runner] of Object.entries(FIXTURES)) {
test(`kill -9 at random moments, resume by runId (${via}): every step ran, at most the step in flight ran twice per kill`, { timeout: 60_000 }, async () => {
  const t = tempDir();
  try {
    const db = t.file('crash.db');
    const log = t.file('steps.log');
    fs.writeFileSync(log, '');
    const args = [db, log, 'job-1', String(STEPS), String(STEP_MS)];
    // Seeded pseudo-random kill times, so a failure can be replayed.
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let kills = 0;
    let finished: string | undefined;
    // KILL_ROUNDS[via] rounds killed after 0–60 ms of steps (about a fifth of the run each), then one to finish.
    for (let i = 0; i <= KILL_ROUNDS[via]! && finished === undefined; i++) {
      const r = await round(runner, args, i < KILL_ROUNDS[via]! ? Math.floor(random() * 60) : 30_000);
      if (r.killed) { kills++; continue; }
      assert.equal(r.code, 0, r.stderr);
      finished = r.stdout.trim();
    }
    assert.equal(finished, `completed ${STEPS}`, 'the run finished and its context survived every resume');
    assert.ok(kills >= KILL_ROUNDS[via]! - 2, `the test killed the child mid-run (${kills} kills)`);

    const executed = fs.readFileSync(log, 'utf8').trim().split('\n').map(Number);
    const counts = new Map<number, number>();
    for (const p of executed) counts.set(p, (counts.get(p) ?? 0) + 1);
    for (let p = 0; p < STEPS; p++) assert.ok(counts.has(p), `step ${p} never ran`);
    const reruns = executed.length - STEPS;
    assert.ok(reruns <= kills, `${reruns} re-executions for ${kills} kills: more than the step in flight was lost`);

    // A completed run id replays the recorded result without executing anything.
    const before = executed.length;
    const again = await round(runner, args, 30_000);
    assert.equal(again.stdout.trim(), via === 'Pipeline' ? `completed ${STEPS}` : `replayed ${STEPS}`);
    assert.equal(fs.readFileSync(log, 'utf8').trim().split('\n').length, before);

    const raw = new Database(db, { readonly: true });
    try {
      assert.equal(raw.pragma('integrity_check', { simple: true }), 'ok');
      const run = raw.prepare("SELECT status, resumes FROM pipelines WHERE id = 'job-1'").get() as { status: string; resumes: number };
      assert.equal(run.status, 'completed');
      assert.ok(run.resumes >= 1 && run.resumes <= kills, `resumes=${run.resumes} kills=${kills}`);
      const statuses = raw.prepare("SELECT status, count(*) AS n FROM steps WHERE pipeline_id = 'job-1' GROUP BY status").all() as { status: string; n: number }[];
      const byStatus = Object.fromEntries(statuses.map((s) => [s.status, s.n]));
      assert.equal(byStatus.completed, STEPS, 'one completed row per step');
      assert.ok((byStatus.interrupted ?? 0) <= kills, 'interrupted rows: at most one per kill');
      assert.equal(byStatus.running, undefined, 'nothing left running');
    } finally {
      raw.close();
    }
    process.stdout.write(`# crash (${via}): ${kills} kills, ${reruns} re-executed steps\n`);
  } finally {
    t.cleanup();
  }
});
}
