// The observer interface (run history and checkpoints plug in here), addCheckpoint, progress.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Pipeline, PipelineAsync, Condition, Background, step, setTrackingObserverFactory, ProgressBar, createStreamLogger,
  type RunObserver, type StepEndEvent, type BoundaryEvent, type RunEndEvent, type Context,
} from '../src/engine/index.js';
import { ExpressionError, ProcessError, TaskError, WpipeError } from '../src/errors.js';

/** What run() rejects with for a WpipeError of a finer kind: a ProcessError with its code, the original as cause. */
function wrapping(original: WpipeError): (x: unknown) => boolean {
  return (x) => x instanceof ProcessError && x.code === original.code && x.cause === original;
}

function recorder(): RunObserver & { log: string[]; ends: StepEndEvent[]; bounds: BoundaryEvent[]; runEnd?: RunEndEvent } {
  const r: RunObserver & { log: string[]; ends: StepEndEvent[]; bounds: BoundaryEvent[]; runEnd?: RunEndEvent } = {
    log: [], ends: [], bounds: [],
    onRunStart: (e) => { r.log.push(`run:${e.pipelineName}:${e.runId}`); },
    onStepStart: (e) => { r.log.push(`start:${e.name}#${e.id}<${e.parentId}@${e.position}`); },
    onStepEnd: (e) => { r.ends.push(e); r.log.push(`end:${e.name}:${e.status}:${e.attempts}`); },
    onBoundary: (e) => { r.bounds.push(e); r.log.push(`boundary:${e.position}:${e.checkpoints.join('|')}`); },
    onRunEnd: (e) => { r.runEnd = e; r.log.push(`runEnd:${e.status}`); },
  };
  return r;
}

test('observers see run, step and boundary events in order, nested steps with their parent', async () => {
  const r = recorder();
  const flaky = step({ name: 'flaky', retryCount: 1, retryDelay: 0 })((_c: Context, i) => { if (i.attempt === 1) throw new Error('once'); return { rows: 2 }; });
  const p = new Pipeline({ pipelineName: 'obs' }).setSteps([
    flaky,
    new Condition({ name: 'gate', expression: 'rows > 1', branchTrue: [step({ name: 'inner' })(() => undefined)] }),
  ]);
  p.observe(r);
  await p.run({}, { runId: 'R1' });
  assert.deepEqual(r.log, [
    'run:obs:R1',
    'boundary:-1:',
    'start:flaky#0<-1@0',
    'end:flaky:completed:2',
    'boundary:0:',
    'start:gate#1<-1@1',
    'start:inner#2<1@1',
    'end:inner:completed:1',
    'end:gate:completed:1',
    'boundary:1:',
    'runEnd:completed',
  ]);
  assert.equal(r.bounds[1]!.step, r.ends[0]);
  assert.equal(r.ends[0]!.kind, 'task');
  assert.equal(r.ends[0]!.executor, 'inline');
  assert.equal(r.ends[2]!.name, 'gate');
  assert.equal(r.ends[2]!.executor, undefined);
  assert.equal(r.ends[0]!.version, 'v1.0');
  assert.ok(r.ends[0]!.durationMs >= 0);
  assert.equal(r.runEnd!.replayed, false);
  assert.deepEqual(r.runEnd!.context, { rows: 2 });
  // Same events from runSync.
  const first = r.log.slice();
  const r2 = recorder();
  p.observe(r2);
  p.runSync({}, { runId: 'R1' });
  assert.deepEqual(r2.log, first);
});

test('a failed run reports the failing step and the error; observe() returns an unsubscribe', async () => {
  const r = recorder();
  const p = new Pipeline().setSteps([() => ({ a: 1 }), step({ name: 'boom' })(() => { throw new Error('x'); })]);
  const stop = p.observe(r);
  const e = await p.run().catch((x: unknown) => x);
  assert.equal(r.runEnd!.status, 'error');
  assert.equal(r.runEnd!.error, e);
  assert.equal(r.runEnd!.errorStep, 'boom');
  assert.equal(r.ends[1]!.status, 'failed');
  assert.ok(r.ends[1]!.error instanceof TaskError);
  assert.deepEqual(r.runEnd!.context, { a: 1 });
  stop();
  r.log.length = 0;
  await p.run().catch(() => undefined);
  assert.deepEqual(r.log, []);
});

test('a cancelled run is reported as cancelled', async () => {
  const r = recorder();
  const ac = new AbortController();
  const p = new Pipeline({ observers: [r] }).setSteps([async () => { ac.abort(); await new Promise(() => {}); }]);
  await p.run({}, { signal: ac.signal }).catch(() => undefined);
  assert.equal(r.runEnd!.status, 'cancelled');
  assert.equal(r.ends[0]!.status, 'cancelled');
});

test('checkpoints: compiled at addCheckpoint, evaluated before the first and after every top-level step', async () => {
  const r = recorder();
  const seenN: number[] = [];
  r.onBoundary = (b) => { r.bounds.push(b); seenN.push(b.context.n); };
  const p = new Pipeline({ observers: [r] }).setSteps([(c: Context) => ({ n: c.n + 1 }), (c: Context) => ({ n: c.n + 1 }), (c: Context) => ({ n: c.n + 1 })]);
  p.addCheckpoint('start', 'True').addCheckpoint('at2', 'n >= 2').addCheckpoint('rows', 'rows > 0');
  assert.throws(() => p.addCheckpoint('bad', 'n >'), (e: unknown) => e instanceof ExpressionError && e.code === 'WPIPE_ERR_EXPRESSION_SYNTAX');
  assert.throws(() => p.addCheckpoint('start', 'True'), /already exists/);
  assert.throws(() => p.addCheckpoint('', 'True'), TypeError);
  assert.deepEqual(p.checkpoints.map((c) => c.name), ['start', 'at2', 'rows']);
  await p.run({ n: 0 });
  assert.deepEqual(r.bounds.map((b) => [b.position, b.checkpoints]), [
    [-1, ['start']], [0, ['start']], [1, ['start', 'at2']], [2, ['start', 'at2']],
  ]);
  assert.deepEqual(seenN, [0, 1, 2, 3], 'the context as it is at each boundary');
});

test('onRunStart can resume after a saved position, or replay a completed run', async () => {
  const calls: string[] = [];
  const steps = ['a', 'b', 'c'].map((name) => step({ name })(() => { calls.push(name); return { [name]: true }; }));
  const resume: RunObserver = { onRunStart: () => ({ resume: { resumeAt: 1, context: { a: 'saved', ok: true } } }) };
  const out = await new Pipeline({ observers: [resume] }).setSteps(steps).run({ ok: false });
  assert.deepEqual(calls, ['b', 'c']);
  assert.deepEqual(out, { a: 'saved', ok: true, b: true, c: true });
  calls.length = 0;
  const r = recorder();
  const replay: RunObserver = { onRunStart: () => ({ completed: { result: { done: 1 } } }) };
  const again = new Pipeline({ observers: [replay, r] }).setSteps(steps).runSync({}, { runId: 'done-run' });
  assert.deepEqual(again, { done: 1 });
  assert.deepEqual(calls, []);
  assert.equal(r.runEnd!.replayed, true);
  // The shape before resumeAt ({ resume: { position } }, the last step done) is refused, not misread.
  calls.length = 0;
  const old: RunObserver = { onRunStart: () => ({ resume: { position: 0, context: {} } }) as never };
  await assert.rejects(new Pipeline({ observers: [old] }).setSteps(steps).run({}),
    (e: unknown) => (e as WpipeError).code === 'WPIPE_ERR_OBSERVER_FAILED' && /resumeAt/.test((e as Error).message));
  assert.deepEqual(calls, []);
});

test('the run signature changes when the step list changes', () => {
  const sigs: string[] = [];
  const o: RunObserver = { onRunStart: (e) => { sigs.push(e.signature); } };
  const p = new Pipeline({ observers: [o] });
  p.setSteps([step({ name: 'a' })(() => undefined)]).runSync();
  p.setSteps([step({ name: 'a' })(() => undefined)]).runSync();
  p.setSteps([step({ name: 'a', version: 'v2' })(() => undefined)]).runSync();
  assert.equal(sigs[0], sigs[1]);
  assert.notEqual(sigs[1], sigs[2]);
});

test('an observer that throws fails the run, even under continueOnError', async () => {
  const bad: RunObserver = { onStepEnd: () => { throw new Error('disk full'); } };
  const p = new Pipeline({ continueOnError: true, observers: [bad] }).setSteps([() => ({ a: 1 }), () => assert.fail('ran')]);
  const e = await p.run().catch((x: unknown) => x) as ProcessError;
  assert.ok(e instanceof ProcessError);
  assert.equal(e.code, 'WPIPE_ERR_OBSERVER_FAILED');
  assert.equal(e.errorCode, 504);
  assert.equal((e.cause as Error).message, 'disk full');
  // A WpipeError from onRunStart (e.g. a resume mismatch) becomes a ProcessError with its code, the original as cause.
  const mismatch = new WpipeError('WPIPE_ERR_RESUME_MISMATCH', 'steps changed since the checkpoint');
  const q = new Pipeline({ observers: [{ onRunStart: () => { throw mismatch; } }] }).setSteps([() => assert.fail('ran')]);
  await assert.rejects(q.run(), wrapping(mismatch));
  assert.throws(() => q.runSync(), wrapping(mismatch));
});

test('trackingDb gets its observer from the installed factory, lazily; close() closes it', async () => {
  const made: string[] = [];
  let closed = 0;
  const r = recorder();
  setTrackingObserverFactory((o) => { made.push(`${o.trackingDb}:${o.pipelineName}:${o.collectSystemMetrics}`); return Object.assign(r, { close: () => { closed++; } }); });
  try {
    const p = new Pipeline({ pipelineName: 'tracked', trackingDb: 'runs.db', collectSystemMetrics: true }).setSteps([() => ({ a: 1 })]);
    assert.deepEqual(made, [], 'nothing is created at construction');
    await p.run();
    await p.run();
    assert.deepEqual(made, ['runs.db:tracked:true']);
    assert.equal(r.log.filter((l) => l.startsWith('runEnd')).length, 2);
    await p.close();
    assert.equal(closed, 1);
    // Without trackingDb no observer is made.
    await new Pipeline().setSteps([() => undefined]).run();
    assert.equal(made.length, 1);
  } finally {
    setTrackingObserverFactory(undefined);
  }
});

test('Background steps are reported through onBackgroundEnd, not as run steps', async () => {
  const r = recorder();
  const got: string[] = [];
  r.onBackgroundEnd = (b) => { got.push(`${b.name}:${b.status}`); };
  const p = new PipelineAsync({ observers: [r] }).setSteps([new Background(step({ name: 'bg' })(() => ({ x: 1 })))]);
  await p.run();
  await p.close();
  assert.deepEqual(got, ['bg:completed']);
  assert.deepEqual(r.ends.map((e) => e.kind), ['background']);
});

test('ProgressBar draws on a TTY and stays away otherwise', async () => {
  const chunks: string[] = [];
  const tty = { isTTY: true, columns: 80, write: (s: string) => { chunks.push(s); return true; } };
  const bar = ProgressBar.maybe(true, 'orders', 2, tty)!;
  bar.tick();
  bar.tick();
  bar.finish();
  const text = chunks.join('');
  assert.match(text, /orders .* 100% 2\/2 0:00/);
  assert.ok(text.endsWith('\n'));
  assert.equal(ProgressBar.maybe(true, 'x', 1, { isTTY: false, write: () => assert.fail('wrote') }), undefined);
  assert.equal(ProgressBar.maybe(false, 'x', 1, tty), undefined);
  // showProgress with a non-TTY stderr writes nothing.
  const write = process.stderr.write;
  let wrote = 0;
  process.stderr.write = ((() => { wrote++; return true; }) as unknown) as typeof process.stderr.write;
  const wasTTY = process.stderr.isTTY;
  try {
    Object.defineProperty(process.stderr, 'isTTY', { value: false, configurable: true });
    await new Pipeline({ showProgress: true }).setSteps([() => undefined]).run();
    assert.equal(wrote, 0);
    Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true });
    await new Pipeline({ showProgress: true }).setSteps([() => undefined, () => undefined]).run();
    assert.ok(wrote >= 2);
  } finally {
    process.stderr.write = write;
    Object.defineProperty(process.stderr, 'isTTY', { value: wasTTY, configurable: true });
  }
});

test('the default stream logger writes one line per message', () => {
  const lines: string[] = [];
  const log = createStreamLogger({ write: (s: string) => lines.push(s) });
  log.info('plain');
  log.warn({ step: 'x' }, 'with fields');
  log.error({ a: 1 });
  assert.deepEqual(lines, ['plain\n', '[WARN] with fields {"step":"x"}\n', '[ERROR] {"a":1}\n']);
});
