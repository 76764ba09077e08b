// Durability 'fsync' (power loss): every boundary is fdatasync'ed before the step after it runs;
// concurrent runs share one sync (group commit). A power cut cannot be simulated here, so these
// tests check the contract that makes it hold: when syncs happen, and that they are shared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Pipeline, PipelineAsync, type Context } from '../src/index.js';
import { RunTracker } from '../src/storage/tracker.js';
import { readJournal } from '../src/storage/journal.js';
import { rows, tempDir } from './fixtures/storage/tmp.js';

const trackerOf = (p: Pipeline): RunTracker => (p._observersForRun()![0] as unknown as { tracker: RunTracker }).tracker;

test("durability 'fsync': each boundary is synced before the next step's code runs (run and runSync)", async () => {
  const t = tempDir();
  try {
    const file = t.file('fsync.db');
    let tracker: RunTracker | undefined;
    const seen: number[] = [];
    // Each step reads how many syncs happened before it started: at least one per boundary so far.
    const steps = [0, 1, 2].map((i) => [(_c: Context) => { seen.push(tracker?.stats.syncs ?? 0); return { [`s${i}`]: true }; }, `s${i}`] as [(c: Context) => Context, string]);
    const p = new Pipeline({ pipelineName: 'fsync', trackingDb: file, trackingDurability: 'fsync' }).setSteps(steps);
    await p.run({}, { runId: 'warm' });
    tracker = trackerOf(p);
    seen.length = 0;
    const before = tracker.stats.syncs;
    await p.run({});
    assert.deepEqual(seen.map((n) => n - before), [1, 2, 3], 'the boundary before each step was synced before it ran');
    assert.equal(tracker.stats.syncs - before, 4, 'and the run end before run() resolved');
    seen.length = 0;
    const beforeSync = tracker.stats.syncs;
    p.runSync({});
    assert.deepEqual(seen.map((n) => n - beforeSync), [1, 2, 3], 'runSync syncs inline');
    await p.close();
    assert.equal(rows(file, "SELECT count(*) AS n FROM pipelines WHERE status = 'completed'")[0]!.n, 3);
  } finally {
    t.cleanup();
  }
});

test("durability 'fsync': concurrent runs share fdatasync calls (group commit), nothing is lost", async () => {
  const t = tempDir();
  try {
    const file = t.file('group.db');
    const steps = Array.from({ length: 5 }, (_, i) => [async (c: Context) => ({ n: (c.n as number) + i }), `s${i}`] as [(c: Context) => Promise<Context>, string]);
    const p = new PipelineAsync({ pipelineName: 'group', trackingDb: file, trackingDurability: 'fsync' }).setSteps(steps);
    await p.run({ n: 0 });
    const tracker = trackerOf(p);
    const before = tracker.stats.syncs;
    const appendsBefore = tracker.stats.journalAppends;
    const out = await p.runMany(Array.from({ length: 64 }, (_, i) => ({ n: i })), { concurrency: 8 });
    assert.equal(out.length, 64);
    const syncs = tracker.stats.syncs - before;
    const appends = tracker.stats.journalAppends - appendsBefore;
    assert.equal(appends, 64 * 6, 'one journal line per boundary');
    assert.ok(syncs < appends / 2, `${syncs} syncs for ${appends} boundaries: shared`);
    await p.close();
    assert.equal(rows(file, "SELECT count(*) AS n FROM pipelines WHERE status = 'completed'")[0]!.n, 65);
    assert.equal(rows(file, 'SELECT count(*) AS n FROM steps')[0]!.n, 65 * 5);
  } finally {
    t.cleanup();
  }
});

test("durability 'fsync' needs the journal; a misspelt level is a RangeError", () => {
  const t = tempDir();
  try {
    assert.throws(() => new RunTracker(t.file('x.db'), { durability: 'fsync', journal: false }), /needs the step journal/);
    assert.throws(() => new RunTracker(t.file('x.db'), { durability: 'power' as never }), RangeError);
    assert.throws(() => new Pipeline({ trackingDb: t.file('x.db'), trackingDurability: 'sync' as never }), RangeError);
    assert.equal(fs.existsSync(t.file('x.db')), false, 'nothing opened');
  } finally {
    t.cleanup();
  }
});

test("durability 'fsync': a log written ahead with zeros is read up to its last line, and a dead owner's is replayed", () => {
  const t = tempDir();
  try {
    const file = t.file('prealloc.db');
    const a = new RunTracker(file, { durability: 'fsync', autoFlushMs: 600_000 });
    a.startRun({ runId: 'p1', pipelineName: 'p', fresh: true, sync: true });
    for (let i = 0; i < 3; i++) a.finishStep({ stepId: a.startStep({ runId: 'p1', name: `s${i}` }), status: 'completed' });
    a.finishRun({ runId: 'p1', status: 'completed', output: { ok: true } });
    const dir = `${file}.wpipe-journal`;
    const log = fs.readdirSync(dir).find((n) => n.endsWith('.log'))!;
    assert.ok(fs.statSync(`${dir}/${log}`).size >= 1024 * 1024, 'written ahead');
    const read = readJournal(`${dir}/${log}`, 0);
    assert.deepEqual(read.skipped, [], 'the zeros are no damaged line');
    assert.ok(read.ops.length > 0 && read.end < 4096);
    // The owner dies without folding (its lock goes with it): the next tracker replays the log.
    (a as unknown as { c: { journalHandle: { release(): void } } }).c.journalHandle.release();
    const b = new RunTracker(file);
    assert.equal(b.getRun('p1')?.status, 'completed');
    assert.deepEqual(b.getSteps('p1').map((s) => s.status), ['completed', 'completed', 'completed']);
    b.close();
    a.close();
    assert.equal(rows(file, 'SELECT count(*) AS n FROM steps')[0]!.n, 3, 'nothing applied twice');
  } finally {
    t.cleanup();
  }
});
