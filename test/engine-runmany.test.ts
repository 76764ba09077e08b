// runMany({ settled: true }) and runEach: one bad input never loses the others' results; results as
// they finish, with back-pressure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PipelineAsync, ProcessError, type Context } from '../src/index.js';
import { tempDir } from './fixtures/storage/tmp.js';
import { HistoryQuery } from '../src/storage/query.js';

const pipeOf = (): PipelineAsync => new PipelineAsync({ pipelineName: 'many' }).setSteps([
  [async (c: Context) => { if (c.bad) throw new Error(`bad ${String(c.i)}`); await new Promise((r) => setTimeout(r, (c.i as number) % 3)); return { out: (c.i as number) * 2 }; }, 'work'],
]);

test('runMany settled: one outcome per input in input order, failures included, each with its run id', async () => {
  const t = tempDir();
  try {
    const file = t.file('settled.db');
    const pipe = new PipelineAsync({ pipelineName: 'many', trackingDb: file }).setSteps([
      [(c: Context) => { if (c.bad) throw new Error(`bad ${String(c.i)}`); return { out: (c.i as number) * 2 }; }, 'work'],
    ]);
    const inputs = Array.from({ length: 200 }, (_, i) => ({ i, bad: i === 37 || i === 150 }));
    const out = await pipe.runMany(inputs, { concurrency: 8, settled: true });
    assert.equal(out.length, 200);
    assert.deepEqual(out.filter((r) => r.status === 'rejected').map((r) => r.index), [37, 150]);
    const ok = out[5]!;
    assert.ok(ok.status === 'fulfilled' && ok.value.out === 10 && ok.index === 5);
    const bad = out[37]!;
    assert.ok(bad.status === 'rejected' && bad.reason instanceof ProcessError && /bad 37/.test(bad.reason.message));
    assert.equal(new Set(out.map((r) => r.runId)).size, 200, 'a distinct run id each');
    await pipe.close();
    const q = new HistoryQuery(file);
    assert.equal(q.getRunDetail(bad.runId)?.status, 'error', 'the id names the recorded run');
    assert.equal(q.getRunDetail(ok.runId)?.status, 'completed');
    q.close();
    // Without settled, the first failure still rejects the call.
    await assert.rejects(pipeOf().runMany([{ i: 1 }, { i: 2, bad: true }]), /bad 2/);
    await assert.rejects(pipeOf().runMany([], { settled: 'yes' as never }), TypeError);
    await assert.rejects(pipeOf().runMany([], { setled: true } as never), /did you mean settled\?/);
  } finally {
    t.cleanup();
  }
});

test('runEach yields outcomes as runs finish, reads inputs lazily (back-pressure), and stops cleanly on break', async () => {
  const pipe = pipeOf();
  let read = 0;
  async function* source(): AsyncGenerator<Context> {
    for (let i = 0; i < 1000; i++) {
      read++;
      yield { i, bad: i === 3 };
    }
  }
  const seen: number[] = [];
  for await (const r of pipe.runEach(source(), { concurrency: 4 })) {
    seen.push(r.index);
    assert.ok(read - seen.length <= 4, `at most 4 read ahead of what was taken (read ${read}, taken ${seen.length})`);
    if (r.index === 3) assert.equal(r.status, 'rejected');
    if (seen.length === 20) break;
  }
  assert.equal(seen.length, 20);
  assert.ok(read <= 24, `the source was not read past what could run: ${read}`);
  const all: number[] = [];
  for await (const r of pipe.runEach([{ i: 1 }, { i: 2 }, { i: 3 }])) all.push(r.status === 'fulfilled' ? (r.value.out as number) : -1);
  assert.deepEqual(all.sort(), [2, 4, 6]);
  await assert.rejects(async () => { for await (const _ of pipe.runEach(42 as never)) { /* nothing */ } }, TypeError);
});

test('runEach with a signal: no new run starts once it aborts; runs in flight end as cancelled', async () => {
  const pipe = new PipelineAsync({ pipelineName: 'slow' }).setSteps([[async (_c: Context, info) => {
    await new Promise((resolve, reject) => {
      const t = setTimeout(resolve, 50);
      info.signal.addEventListener('abort', () => { clearTimeout(t); reject(info.signal.reason); }, { once: true });
    });
    return {};
  }, 'wait']]);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 20);
  const out = [];
  for await (const r of pipe.runEach(Array.from({ length: 100 }, (_, i) => ({ i })), { concurrency: 4, signal: ac.signal })) out.push(r);
  assert.equal(out.length, 4, 'only the first four started');
  assert.ok(out.every((r) => r.status === 'rejected' && (r.reason as ProcessError).code === 'WPIPE_ERR_PROCESS_CANCELLED'));
});
