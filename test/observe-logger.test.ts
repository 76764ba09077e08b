// newLogger: pino with rotated files, child bindings that steps see, a clear error for a folder that
// cannot be written, close() that flushes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { newLogger, Pipeline, type Context } from '../src/index.js';
import { WpipeError } from '../src/errors.js';
import { tempDir } from './fixtures/storage/tmp.js';

function collector(): { stream: Writable; lines: () => Record<string, unknown>[]; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({ write(chunk: Buffer, _e, done) { chunks.push(chunk.toString()); done(); } });
  return { stream, text: () => chunks.join(''), lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

test('JSON lines with name and bindings; steps log through child loggers carrying runId and step', async () => {
  const out = collector();
  const logger = await newLogger({ name: 'orders', stream: out.stream, bindings: { service: 'billing' } });
  logger.info({ n: 1 }, 'hello');
  const pipe = new Pipeline({ pipelineName: 'orders', logger }).setSteps([
    [(_c: Context, info) => { info.logger.info({ rows: 3 }, 'loaded'); return { rows: 3 }; }, 'load'],
  ]);
  await pipe.run({}, { runId: 'run-7' });
  await pipe.close();
  await logger.close();
  const lines = out.lines();
  assert.deepEqual({ name: lines[0]!.name, service: lines[0]!.service, n: lines[0]!.n, msg: lines[0]!.msg, level: lines[0]!.level },
    { name: 'orders', service: 'billing', n: 1, msg: 'hello', level: 30 });
  const step = lines.find((l) => l.msg === 'loaded');
  assert.ok(step, out.text());
  assert.equal(step.runId, 'run-7');
  assert.equal(step.step, 'load');
  assert.equal(step.rows, 3);
});

test('a file rotated by size keeps the newest files; warnings also reach the terminal stream; close() flushes', async () => {
  const t = tempDir('wpipe-log-');
  try {
    const out = collector();
    const logger = await newLogger({ file: t.file('logs/app.log'), rotation: { size: '1k', keep: 2 }, stream: out.stream });
    // Lines written over time, as a service writes them (pino-roll rotates between writes).
    for (let batch = 0; batch < 8; batch++) {
      for (let i = 0; i < 40; i++) logger.info({ i, pad: 'x'.repeat(40) }, 'line');
      await new Promise((r) => setTimeout(r, 25));
    }
    logger.warn('careful');
    await logger.close();
    const files = fs.readdirSync(t.file('logs')).sort();
    assert.ok(files.length >= 2 && files.length <= 3, `rotated and pruned: ${files.join(', ')}`);
    assert.ok(files.every((f) => /^app\.\d+\.log$/.test(f)), files.join(', '));
    const newest = files.map((f) => path.join(t.file('logs'), f)).sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0]!;
    assert.match(fs.readFileSync(newest, 'utf8'), /"msg":"careful"/, 'the last line is on disk after close()');
    assert.deepEqual(out.lines().map((l) => l.msg), ['careful'], 'only warnings and errors on the terminal');
  } finally {
    t.cleanup();
  }
});

test('pretty lines for a terminal; bad options; a folder that cannot be written', async () => {
  const t = tempDir('wpipe-log-');
  try {
    const out = collector();
    const logger = await newLogger({ stream: out.stream, pretty: true, level: 'debug' });
    logger.child({ runId: 'r1' }).debug({ k: 'v' }, 'detail');
    await logger.close();
    await new Promise((r) => setImmediate(r));
    assert.match(out.text(), /^\d\d:\d\d:\d\d\.\d{3} DEBUG \[wpipe\] detail .*runId=r1.* k=v\n$/);
    await assert.rejects(newLogger({ level: 'verbose' as never }), RangeError);
    await assert.rejects(newLogger({ fil: 'x' } as never), /did you mean file\?/);
    await assert.rejects(newLogger({ file: 'x.log', rotation: { size: 'big' } }), RangeError);
    fs.writeFileSync(t.file('not-a-dir'), '');
    await assert.rejects(newLogger({ file: t.file('not-a-dir/app.log') }),
      (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_LOG_DESTINATION' && /not-a-dir/.test(e.message));
  } finally {
    t.cleanup();
  }
});
