// Replays are visible: runDetailed says replayed / resumedFrom; a different input for a replayed or
// resumed run id is warned about, never silently ignored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pipeline, type Context } from '../src/index.js';
import { tempDir } from './fixtures/storage/tmp.js';

async function warningsDuring(fn: () => Promise<unknown>): Promise<string[]> {
  const seen: string[] = [];
  const on = (w: Error & { code?: string }): void => { if (w.code === 'WPIPE_WARN_INPUT_IGNORED') seen.push(w.message); };
  process.on('warning', on);
  try {
    await fn();
    await new Promise((r) => setImmediate(r));
  } finally {
    process.off('warning', on);
  }
  return seen;
}

test('runDetailed tells a fresh run, a replay and a resume apart; a changed input is warned about', async () => {
  const t = tempDir();
  try {
    const file = t.file('replay.db');
    let failB = true;
    const pipe = new Pipeline({ pipelineName: 'r', trackingDb: file }).setSteps([
      [(c: Context) => ({ a: (c.n as number) + 1 }), 'a'],
      [() => { if (failB) throw new Error('b'); return { b: true }; }, 'b'],
    ]);
    pipe.addCheckpoint('after-a', 'a');
    const fresh = await pipe.runDetailed({ n: 1 }, { runId: 'ok' }).catch(() => undefined);
    assert.equal(fresh, undefined, 'first run fails at b');
    failB = false;
    const resumed = await pipe.runDetailed({ n: 1 }, { runId: 'ok' });
    assert.deepEqual({ replayed: resumed.replayed, resumedFrom: resumed.resumedFrom, runId: resumed.runId }, { replayed: false, resumedFrom: { position: 1, checkpoint: 'after-a' }, runId: 'ok' });
    const replayed = await pipe.runDetailed({ n: 1 }, { runId: 'ok' });
    assert.equal(replayed.replayed, true);
    assert.deepEqual(replayed.result, { n: 1, a: 2, b: true });
    const generated = await pipe.runDetailed({ n: 5 });
    assert.equal(generated.replayed, false);
    assert.equal(generated.resumedFrom, undefined);
    assert.match(generated.runId, /^RUN-/);
    const same = await warningsDuring(() => pipe.run({ n: 1 }, { runId: 'ok' }));
    assert.deepEqual(same, [], 'the same input: no warning');
    const changed = await warningsDuring(() => pipe.run({ n: 99 }, { runId: 'ok' }));
    assert.equal(changed.length, 1);
    assert.match(changed[0]!, /run 'ok' of 'r' is completed: its recorded result is returned, and the input given now differs/);
    await pipe.close();
  } finally {
    t.cleanup();
  }
});
