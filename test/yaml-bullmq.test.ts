// `executor: bullmq` in a YAML pipeline: refused (WPIPE_ERR_EXECUTOR_UNAVAILABLE at the value's
// file:line:column) unless the loader is given a queue — a file never names a Redis, and a
// process-wide useBullmq() does not count; with the loader's `bullmq` option, a real run whose
// parallel branches (and a step) go through a private Redis to a worker process, on the pipeline's
// own queue (nothing registered process-wide, also when nested in another pipeline), and
// `pipe.enqueue` defaulting to it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Parallel, Pipeline, WpipeError, loadPipeline, validatePipelineFile, type PipelineFileError } from '../src/index.js';
import { useBullmq } from '../src/queue/executor.js';
import { isExecutorAvailable } from '../src/parallel/registry.js';
import { freePort, redisSuite } from './helpers/redis.js';
import { find } from './helpers/errors.js';
import * as S from './fixtures/bullmq/steps.js';

const T = { timeout: 120_000 };
const fixtures = join(fileURLToPath(new URL('.', import.meta.url)), 'fixtures', 'bullmq');
const stepsModule = join(fixtures, 'steps.ts');
const tmp = mkdtempSync(join(tmpdir(), 'wpipe-yaml-bullmq-'));

const suite = redisSuite();
const pipes: Pipeline[] = [];
const queues: Queue[] = [];
suite.cleanup(async () => {
  for (const p of pipes) await p.close();
  for (const q of queues) await q.close();
  rmSync(tmp, { recursive: true, force: true });
});

const PARALLEL = `pipelineName: yaml-bullmq
module: ./steps.ts
steps:
  - parallel:
      executor: bullmq
      steps:
        - { export: slowFirst }
        - { export: fastSecond }
        - { export: add }
        - { export: where }
`;

const STEP = `module: ./steps.ts
steps:
  - export: add
    executor: bullmq
`;

let n = 0;
/** Writes `yaml` to a file of its own; the steps folder is test/fixtures/bullmq. */
function file(yaml: string): string {
  const f = join(tmp, `p${n++}.yaml`);
  writeFileSync(f, yaml);
  return f;
}

async function refusal(f: string, options: Record<string, unknown>, line: number, column: number): Promise<void> {
  const report = await validatePipelineFile(f, { stepsDir: fixtures, ...options });
  assert.equal(report.valid, false);
  assert.equal(report.errors.length, 1, report.errors.map((e) => e.text).join('\n'));
  const e = report.errors[0]!;
  assert.equal(e.code, 'WPIPE_ERR_EXECUTOR_UNAVAILABLE', e.text);
  assert.deepEqual([e.line, e.column], [line, column], e.text);
  assert.ok(e.text.startsWith(`${f}:${line}:${column}: `), e.text);
  assert.match(e.message, /executor: bullmq/);
  assert.match(e.message, /loadPipeline's option bullmq: \{ connection, name \}/);
  await assert.rejects(loadPipeline(f, { stepsDir: fixtures, ...options }), (err: unknown) => {
    assert.ok(err instanceof WpipeError);
    assert.equal(err.code, 'WPIPE_ERR_PIPELINE_INVALID');
    assert.ok(err.message.includes(`${f}:${line}:${column}: `), err.message);
    assert.equal((err.details.errors as PipelineFileError[])[0]!.code, 'WPIPE_ERR_EXECUTOR_UNAVAILABLE');
    return true;
  });
}

test('executor: bullmq without the loader\'s queue is refused at its file:line:column (no Redis needed)', async () => {
  await refusal(file(PARALLEL), {}, 5, 17);
  await refusal(file(STEP), {}, 4, 15);
  // A process-wide useBullmq() is not the loader's consent: the file is still refused.
  useBullmq({ connection: `redis://127.0.0.1:${await freePort()}`, name: 'elsewhere' });
  try {
    await refusal(file(PARALLEL), {}, 5, 17);
  } finally {
    useBullmq(null);
  }
  // A misspelling gets the hint; the schema's enum has the value.
  const typo = await validatePipelineFile(file(STEP.replace('executor: bullmq', 'executor: bulmq')), { stepsDir: fixtures });
  assert.equal(typo.errors.length, 1);
  assert.match(typo.errors[0]!.message, /did you mean 'bullmq'/);
});

test('a module\'s own step({ executor: \'bullmq\' }) needs the loader\'s queue as much as the file\'s key does', async () => {
  const src = new URL('../src/index.ts', import.meta.url).href;
  writeFileSync(join(tmp, 'remote.mjs'), `import { step } from ${JSON.stringify(src)};\nexport const remote = step({ name: 'remote', executor: 'bullmq' })((ctx) => ({ n: (ctx.n ?? 0) + 1 }));\n`);
  const f = join(tmp, 'remote.yaml');
  writeFileSync(f, 'module: ./remote.mjs\nsteps:\n  - export: remote\n');
  const refused = async (options: Record<string, unknown>) => {
    const report = await validatePipelineFile(f, options);
    assert.equal(report.valid, false);
    assert.equal(report.errors.length, 1, report.errors.map((e) => e.text).join('\n'));
    const e = report.errors[0]!;
    assert.equal(e.code, 'WPIPE_ERR_EXECUTOR_UNAVAILABLE', e.text);
    assert.deepEqual([e.line, e.column], [3, 13], e.text);
    assert.match(e.message, /step with executor 'bullmq'/);
  };
  await refused({});
  useBullmq({ connection: `redis://127.0.0.1:${await freePort()}`, name: 'process-wide' });
  try {
    await refused({});
    await assert.rejects(loadPipeline(f), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_PIPELINE_INVALID');
  } finally {
    useBullmq(null);
  }
  // The file may keep the step in this process instead, or the loader may give the queue.
  writeFileSync(join(tmp, 'local.yaml'), 'module: ./remote.mjs\nsteps:\n  - { export: remote, executor: inline }\n');
  const local = await loadPipeline(join(tmp, 'local.yaml'));
  pipes.push(local);
  assert.deepEqual(await local.run({ n: 1 }), { n: 2 });
  const report = await validatePipelineFile(f, { bullmq: { connection: `redis://127.0.0.1:${await freePort()}`, name: 'given' } });
  assert.equal(report.valid, true, report.errors.map((e) => e.text).join('\n'));
});

test('the loader\'s queue: validated without connecting; bad queue options are TypeErrors', async () => {
  // Nothing listens on this port: loading (and validating) never connects.
  const nowhere = { connection: `redis://127.0.0.1:${await freePort()}`, name: 'nowhere' };
  const report = await validatePipelineFile(file(PARALLEL), { stepsDir: fixtures, bullmq: nowhere });
  assert.equal(report.valid, true, report.errors.map((e) => e.text).join('\n'));
  const pipe = await loadPipeline(file(STEP), { stepsDir: fixtures, bullmq: nowhere });
  assert.equal(isExecutorAvailable('bullmq'), false, 'the queue is the pipeline\'s own: nothing registered process-wide');
  // The step goes to that queue, which is not there: a clear failure at run time, not a hang.
  await assert.rejects(pipe.run({ a: 1, b: 2 }), (e: unknown) => {
    assert.ok(find(e, 'WPIPE_ERR_QUEUE_UNAVAILABLE'), String(e));
    return true;
  });
  await pipe.close();
  await assert.rejects(loadPipeline(file(STEP), { stepsDir: fixtures, bullmq: { connection: 'http://x' } }), (e: unknown) => e instanceof TypeError && /bullmq.*redis:\/\//.test(e.message));
  // A password in a bad URL never reaches the message.
  for (const connection of ['redis://u:s3cret@127.0.0.1:99999', 'redis://:s3cret@127.0.0.1/x']) {
    await assert.rejects(loadPipeline(file(STEP), { stepsDir: fixtures, bullmq: { connection } }), (e: unknown) => {
      assert.ok(e instanceof TypeError, String(e));
      assert.doesNotMatch(e.message, /s3cret/);
      assert.match(e.message, /redis:\/\/\*\*\*@127\.0\.0\.1/);
      return true;
    });
  }
  await assert.rejects(loadPipeline(file(STEP), { stepsDir: fixtures, bullmq: { connection: 'redis://127.0.0.1:1', nmae: 'x' } as never }), /unknown option 'nmae'/);
});

test('a YAML pipeline whose parallel branches go through bullmq runs on a worker process, merged in declared order', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const url = suite.redis!.url;
  const w = await suite.workers!.start({ queue: 'yaml', steps: [stepsModule], concurrency: 4 });
  const pipe = await loadPipeline(file(PARALLEL), { stepsDir: fixtures, bullmq: { connection: url, name: 'yaml' } });
  pipes.push(pipe);
  assert.equal(isExecutorAvailable('bullmq'), false, 'loading registered nothing process-wide');
  // The same branches in-process, for the expected result.
  const inline = new Pipeline().setSteps([new Parallel({ steps: [S.slowFirst, S.fastSecond, S.add, S.where], executor: 'inline' })]);
  pipes.push(inline);
  const input = { a: 2, b: 3, tag: 'Y' };
  const expected = await inline.run(input);
  const out = await pipe.run(input, { runId: 'yaml-1' });
  assert.equal(out.v, expected.v, 'the later declared branch wins, whatever finished first');
  assert.equal(out.v, 'second');
  assert.equal(out.sum, 5);
  assert.equal(out.first, true);
  assert.equal(out.second, true);
  const at = out.atY as { pid: number; runId: string };
  assert.equal(at.pid, w.pid, 'the branch ran in the worker process');
  assert.notEqual(at.pid, process.pid);
  assert.equal(at.runId, 'yaml-1');

  // Nested in a pipeline built in code (no useBullmq anywhere), its branches still use its own queue.
  const outer = new Pipeline({ pipelineName: 'outer' }).setSteps([pipe]);
  pipes.push(outer);
  const nested = await outer.run({ ...input, tag: 'N' });
  assert.equal(nested.sum, 5);
  assert.equal((nested.atN as { pid: number }).pid, w.pid, 'the nested pipeline\'s branch ran in the worker process');

  // A step with executor: bullmq, outside any block, goes to the same queue.
  const single = await loadPipeline(file(STEP), { stepsDir: fixtures, bullmq: { connection: url, name: 'yaml' } });
  pipes.push(single);
  assert.deepEqual(await single.run({ a: 4, b: 5 }), { a: 4, b: 5, sum: 9 });

  // pipe.enqueue defaults to the loader's queue (NAME-runs).
  const r = await pipe.enqueue({ a: 1 }, { runId: 'yaml-run-1' });
  assert.equal(r.queue, 'yaml-runs');
  assert.equal(r.added, true);
  const q = new Queue('yaml-runs', { connection: suite.redis!.connection });
  queues.push(q);
  const job = await q.getJob('yaml-run-1');
  assert.equal(job?.data.pipeline, 'yaml-bullmq');
});
