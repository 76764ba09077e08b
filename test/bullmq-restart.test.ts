// Redis restarted under load (appendonly yes): runs enqueued as whole-run jobs while two worker
// processes take them; Redis is stopped (SIGTERM: it writes its AOF) and started again on the same
// port and directory mid-way. Every run completes, and no step of any run executes twice: a job
// whose completion was lost with the connection is retried by the stalled check, and the run id's
// claim in the shared trackingDb replays the recorded result instead of running it again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Pipeline } from '../src/engine/index.js';
import { useBullmq } from '../src/queue/executor.js';
import { redisSuite } from './helpers/redis.js';

const T = { timeout: 240_000 };
const here = fileURLToPath(new URL('.', import.meta.url));
const pipelinesModule = join(here, 'fixtures', 'bullmq', 'pipelines.ts');
const tmp = mkdtempSync(join(tmpdir(), 'wpipe-bullmq-restart-'));

const suite = redisSuite({ appendonly: true });
suite.cleanup(() => rmSync(tmp, { recursive: true, force: true }));

test('Redis restarted under load: every run completes, no step runs twice', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const db = join(tmp, 'restart.db');
  const log = join(tmp, 'restart.log');
  const N = 60;
  for (let i = 0; i < 2; i++) await suite.workers!.start({ queue: 'restart', pipelines: pipelinesModule, lockDurationMs: 2000, concurrency: 4 }, { WPIPE_TEST_DB: db });
  useBullmq({ connection: suite.redis!.url, name: 'restart' });
  const pipe = new Pipeline({ pipelineName: 'orders' });
  for (let i = 0; i < N / 2; i++) await pipe.enqueue({ n: i, log, ms: 150 }, { runId: `run-${i}` });
  // Restart once some runs are done and others are still queued or running.
  const end = Date.now() + 60_000;
  while (!existsSync(log) || readFileSync(log, 'utf8').split('\n').length < 10) {
    if (Date.now() > end) throw new Error('no run started');
    await new Promise((r) => setTimeout(r, 10));
  }
  const before = await new Queue('restart-runs', { connection: suite.redis!.connection });
  const atRestart = await before.getJobCounts('completed', 'active', 'wait');
  await before.close();
  await suite.redis!.kill();
  await suite.redis!.restart();
  console.log(`restarted Redis with ${JSON.stringify(atRestart)}`);
  for (let i = N / 2; i < N; i++) await pipe.enqueue({ n: i, log, ms: 150 }, { runId: `run-${i}` });
  const q = new Queue('restart-runs', { connection: suite.redis!.connection });
  try {
    const deadline = Date.now() + 180_000;
    for (;;) {
      const counts = await q.getJobCounts('completed', 'failed', 'active', 'wait', 'delayed');
      assert.equal(counts.failed, 0, 'no run failed');
      if (counts.completed === N) break;
      if (Date.now() > deadline) throw new Error(`not all runs completed: ${JSON.stringify(counts)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (let i = 0; i < N; i++) {
      const job = await q.getJob(`run-${i}`);
      assert.equal((job!.returnvalue as { n: number }).n, i * 2, `run-${i}`);
    }
  } finally {
    await q.close();
  }
  const executed = readFileSync(log, 'utf8').trim().split('\n');
  const perStep = new Map<string, number>();
  for (const line of executed) perStep.set(line.split(' ')[0]!, (perStep.get(line.split(' ')[0]!) ?? 0) + 1);
  assert.deepEqual(Object.fromEntries(perStep), { first: N, middle: N, last: N }, 'each step of each run executed once');
});
