// What the history keeps: redacted keys, a size cap per value, retention.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Pipeline, type Context } from '../src/index.js';
import { rows, tempDir } from './fixtures/storage/tmp.js';

test('trackingRedact: secrets never reach the history (inputs, outputs, step outputs, events); checkpoints still resume', async () => {
  const t = tempDir();
  try {
    const file = t.file('redact.db');
    let fail = true;
    const pipe = new Pipeline({ pipelineName: 'secrets', trackingDb: file, trackingRedact: ['password', /token/i] }).setSteps([
      [(c: Context, info) => { info.recordEvent({ type: 'note', name: 'login', data: { user: c.user, password: c.password } }); return { apiToken: 'tok-123', nested: { list: [{ password: 'p2' }] } }; }, 'login'],
      [() => { if (fail) throw new Error('later'); return { done: true }; }, 'use'],
    ]);
    pipe.addCheckpoint('after-login', 'apiToken');
    await assert.rejects(pipe.run({ user: 'ann', password: 'hunter2' }, { runId: 's-1' }));
    fail = false;
    const out = await pipe.run({ user: 'ann', password: 'hunter2' }, { runId: 's-1' });
    assert.equal(out.password, 'hunter2', 'the resumed run got the real value from its checkpoint');
    assert.equal(out.apiToken, 'tok-123');
    await pipe.close();
    const dump = rows(file, "SELECT input_data, output_data FROM pipelines WHERE id = 's-1'")[0]!;
    const steps = rows(file, "SELECT output_data FROM steps WHERE pipeline_id = 's-1'").map((r) => r.output_data).join(' ');
    const events = rows(file, "SELECT data FROM events WHERE pipeline_id = 's-1' AND event_name = 'login'").map((r) => r.data).join(' ');
    for (const text of [dump.input_data, dump.output_data, steps, events]) {
      assert.doesNotMatch(String(text), /hunter2|tok-123|p2/);
    }
    assert.match(String(dump.output_data), /\[REDACTED\]/);
    assert.equal(rows(file, "SELECT output_exact FROM pipelines WHERE id = 's-1'")[0]!.output_exact, 0);
    assert.throws(() => new Pipeline({ trackingDb: file, trackingRedact: 'password' as never }), TypeError);
  } finally {
    t.cleanup();
  }
});

test('trackingMaxValueBytes: a 10 MB context is stored as a truncation marker; the run still completes and replays without running', async () => {
  const t = tempDir();
  try {
    const file = t.file('cap.db');
    let runs = 0;
    const pipe = new Pipeline({ pipelineName: 'big', trackingDb: file, trackingMaxValueBytes: 64 * 1024 }).setSteps([
      [() => { runs++; return { rows: Array.from({ length: 100_000 }, (_, i) => ({ i, text: 'x'.repeat(80) })) }; }, 'load'],
    ]);
    await pipe.run({}, { runId: 'b-1' });
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }): void => { if (w.code === 'WPIPE_WARN_REPLAY_INEXACT') warnings.push(w.message); };
    process.on('warning', onWarning);
    try {
      await pipe.run({}, { runId: 'b-1' });
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    assert.equal(runs, 1, 'a completed run id never runs again');
    assert.equal(warnings.length, 1);
    await pipe.close();
    const row = rows(file, "SELECT length(output_data) AS n, output_data, output_exact FROM pipelines WHERE id = 'b-1'")[0]!;
    assert.ok((row.n as number) < 1024, `stored ${String(row.n)} bytes`);
    assert.match(String(row.output_data), /"\$truncated":true/);
    assert.equal(row.output_exact, 0);
    assert.ok(fs.statSync(file).size < 2 * 1024 * 1024, 'the history did not store the 10 MB');
  } finally {
    t.cleanup();
  }
});

test('retention: prune by age and keepLast (per pipeline), everything of a pruned run goes, running runs stay; trackingRetention prunes at open and close', async () => {
  const t = tempDir();
  try {
    const file = t.file('prune.db');
    const pipe = new Pipeline({ pipelineName: 'old', trackingDb: file }).setSteps([[(_c: Context, info) => { info.recordEvent({ type: 'n', name: 'e' }); return {}; }, 's']]);
    for (let i = 0; i < 6; i++) await pipe.run({}, { runId: `o-${i}` });
    await pipe.close();
    // Age the first four runs by 40 days.
    const Database = (await import('better-sqlite3')).default;
    const raw = new Database(file);
    raw.prepare("UPDATE pipelines SET started_at = '2020-01-01T00:00:00.000Z' WHERE id IN ('o-0', 'o-1', 'o-2', 'o-3')").run();
    raw.close();
    const pruner = new Pipeline({ pipelineName: 'old', trackingDb: file }).setSteps([[() => ({}), 's']]);
    assert.equal(pruner.pruneHistory({ olderThanDays: 30, keepLast: 5 }), 1, 'only o-0 is both old and beyond the newest 5');
    assert.equal(pruner.pruneHistory({ olderThanDays: 30 }), 3);
    assert.deepEqual(rows(file, 'SELECT id FROM pipelines ORDER BY id').map((r) => r.id), ['o-4', 'o-5']);
    for (const table of ['steps', 'events']) {
      assert.equal(rows(file, `SELECT count(*) AS n FROM ${table} WHERE pipeline_id NOT IN ('o-4', 'o-5')`)[0]!.n, 0, table);
    }
    assert.throws(() => pruner.pruneHistory({}), /give olderThanDays, keepLast or both/);
    await pruner.close();
    const kept = new Pipeline({ pipelineName: 'old', trackingDb: file, trackingRetention: { keepLast: 1 } }).setSteps([[() => ({}), 's']]);
    await kept.run({}, { runId: 'o-6' });
    await kept.close();
    assert.deepEqual(rows(file, 'SELECT id FROM pipelines').map((r) => r.id), ['o-6']);
    assert.throws(() => new Pipeline({ trackingDb: file, trackingRetention: { keepLas: 1 } as never }), /did you mean keepLast\?/);
    assert.throws(() => new Pipeline({ trackingRetention: {} }), /needs olderThanDays, keepLast or both/);
  } finally {
    t.cleanup();
  }
});
