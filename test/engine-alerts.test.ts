// Alerts (run and step scope, in the expression language), custom events and error capture: what
// fires, what is recorded in the run history, and that nothing can recurse or fail a run by itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pipeline, type Context, type FiredAlert, type StepErrorDetails, type RunEvent } from '../src/index.js';
import { HistoryQuery } from '../src/storage/query.js';
import { MAX_FIRED_PER_RUN } from '../src/engine/alerts.js';
import { For } from '../src/engine/index.js';
import { rows, tempDir } from './fixtures/storage/tmp.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('run and step alerts fire when their expression holds, are recorded with their configuration, and can be acknowledged', async () => {
  const t = tempDir();
  try {
    const file = t.file('alerts.db');
    const fired: FiredAlert[] = [];
    const pipe = new Pipeline({ pipelineName: 'alerting', trackingDb: file }).setSteps([
      [async () => { await sleep(25); return { a: 1 }; }, 'slow'],
      [() => ({ b: 1 }), 'fast'],
    ]);
    pipe.addAlert('slow run', 'duration_ms > 10', { severity: 'critical', onFire: (a) => fired.push(a) });
    pipe.addAlert('slow step', 'duration_ms >= 20 and step != "fast"', { scope: 'step', onFire: (a) => fired.push(a) });
    pipe.addAlert('never', 'duration_ms > 10000000');
    await pipe.run({}, { runId: 'a-1' });
    assert.deepEqual(fired.map((a) => [a.name, a.scope, a.stepName, a.severity]),
      [['slow run', 'run', undefined, 'critical'], ['slow step', 'step', 'slow', 'warning']]);
    assert.equal(fired[0]!.threshold?.metric, 'duration_ms');
    assert.ok((fired[0]!.values.duration_ms as number) > 10);
    await pipe.close();
    const q = new HistoryQuery(file);
    const recorded = q.alerts({ runId: 'a-1' });
    assert.deepEqual(recorded.map((a) => [a.severity, a.metric, a.threshold, a.acknowledged]).sort(),
      [['critical', 'duration_ms', 10, false], ['warning', 'step_duration_ms', null, false]].sort());
    assert.deepEqual(rows(file, 'SELECT name, metric, condition, value, severity FROM alerts_config ORDER BY name'), [
      { name: 'slow run', metric: 'duration_ms', condition: '>', value: 10, severity: 'critical' },
      { name: 'slow step', metric: 'step:duration_ms >= 20 and step != "fast"', condition: 'duration_ms >= 20 and step != "fast"', value: 0, severity: 'warning' },
    ]);
    const id = recorded[0]!.id;
    assert.equal(q.acknowledgeAlert(id), true);
    assert.equal(q.alerts({ runId: 'a-1' }).find((a) => a.id === id)?.acknowledged, true, 'really acknowledged');
    assert.equal(q.acknowledgeAlert(999_999), false);
    assert.throws(() => q.acknowledgeAlert(-1), TypeError);
    q.close();
  } finally {
    t.cleanup();
  }
});

test('alert expressions are checked when added: unknown names with a hint, bad scope and severity, duplicates, syntax', () => {
  const pipe = new Pipeline();
  assert.throws(() => pipe.addAlert('x', 'duraton_ms > 5'), (e: unknown) => e instanceof RangeError && /did you mean duration_ms\?/.test(e.message));
  assert.throws(() => pipe.addAlert('x', 'attempts > 1'), /a run-scope alert does not have/);
  assert.throws(() => pipe.addAlert('x', 'error_rate > 0.5', { scope: 'step' }), /a step-scope alert does not have/);
  assert.throws(() => pipe.addAlert('x', 'duration_ms >', {}), /WPIPE_ERR_EXPRESSION_SYNTAX|invalid syntax|expected/i);
  assert.throws(() => pipe.addAlert('x', 'failed', { severity: 'loud' as never }), RangeError);
  assert.throws(() => pipe.addAlert('x', 'failed', { scopes: 'run' } as never), /did you mean scope\?/);
  pipe.addAlert('x', 'failed');
  assert.throws(() => pipe.addAlert('x', 'failed'), /already added/);
  assert.deepEqual(pipe.alerts, [{ name: 'x', expression: 'failed', scope: 'run', severity: 'warning' }]);
});

test('error_rate over the last runs; an alert that cannot be evaluated warns once and never fails the run; onFire errors are logged', async () => {
  const logged: string[] = [];
  const logger = { debug: () => {}, info: () => {}, warn: (m: unknown) => logged.push(`warn ${String(m)}`), error: (m: unknown) => logged.push(`error ${String(m)}`) };
  const pipe = new Pipeline({ pipelineName: 'rates', logger }).setSteps([[(c: Context) => { if (c.fail) throw new Error('no'); return {}; }, 's']]);
  const rates: number[] = [];
  pipe.addAlert('rate', 'error_rate >= 0', { onFire: (a) => rates.push(a.values.error_rate as number) });
  pipe.addAlert('broken', "status > 3");
  pipe.addAlert('throws', 'True', { onFire: () => { throw new Error('pager down'); } });
  await pipe.run({});
  await assert.rejects(pipe.run({ fail: true }));
  await pipe.run({});
  await pipe.run({});
  assert.deepEqual(rates, [0, 0.5, 1 / 3, 0.25]);
  assert.equal(logged.filter((l) => l.includes("alert 'broken'")).length, 1, 'warned once');
  assert.equal(logged.filter((l) => l.includes('pager down')).length, 4, 'once per run');
});

test('a step-scope alert fires at most MAX_FIRED_PER_RUN times per run, then once more with the count', async () => {
  const fired: FiredAlert[] = [];
  const pipe = new Pipeline({ pipelineName: 'loop' }).setSteps([new For({ iterations: MAX_FIRED_PER_RUN + 50, steps: [[() => ({}), 'tick']] })]);
  pipe.addAlert('every tick', "step == 'tick'", { scope: 'step', onFire: (a) => fired.push(a) });
  await pipe.run({});
  assert.equal(fired.length, MAX_FIRED_PER_RUN + 1);
  assert.match(fired.at(-1)!.message, /fired for 150 steps .* 50 of them are not recorded one by one/);
});

test('error capture: every failed attempt reaches the handlers; a throwing or rejecting handler is logged and never re-enters', async () => {
  const logged: string[] = [];
  const logger = { debug: () => {}, info: () => {}, warn: () => {}, error: (m: unknown) => logged.push(String(m)) };
  const seen: StepErrorDetails[] = [];
  let calls = 0;
  const flaky = new Pipeline({ pipelineName: 'capture', logger, maxRetries: 2, retryDelay: 0 });
  flaky.setSteps([[(_c: Context, info) => { if (info.attempt < 3) throw new Error(`try ${info.attempt}`); return { ok: true }; }, 'flaky']]);
  const stop = flaky.onError((d) => seen.push(d));
  flaky.onError(() => { calls++; throw new Error('handler broke'); });
  flaky.onError(async () => { throw new Error('async handler broke'); });
  assert.deepEqual(await flaky.run({}, { runId: 'c-1' }), { ok: true });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen.map((d) => [d.stepName, d.attempt, d.willRetry, (d.error as Error).message, d.runId]),
    [['flaky', 1, true, 'try 1', 'c-1'], ['flaky', 2, true, 'try 2', 'c-1']]);
  assert.equal(calls, 2, 'the throwing handler ran once per failure, not recursively');
  assert.equal(logged.filter((l) => l.includes('handler broke')).length, 4);
  stop();
  assert.deepEqual(await flaky.run({}, { runId: 'c-2' }), { ok: true }, 'two more failed attempts');
  assert.equal(seen.length, 2, 'a removed handler hears nothing more');
  assert.equal(calls, 4, 'the others still do');
  assert.throws(() => flaky.onError('nope' as never), TypeError);
});

test('custom events recorded by steps reach observers and the run history', async () => {
  const t = tempDir();
  try {
    const file = t.file('events.db');
    const events: RunEvent[] = [];
    const pipe = new Pipeline({ pipelineName: 'ev', trackingDb: file }).setSteps([
      [(_c: Context, info) => { info.recordEvent({ type: 'business', name: 'order-paid', message: 'paid', data: { amount: 12 }, tags: ['money'] }); return {}; }, 'pay'],
    ]);
    pipe.observe({ onEvent: (e) => events.push(e) });
    await pipe.run({}, { runId: 'e-1' });
    await pipe.close();
    assert.deepEqual(events.map((e) => [e.runId, e.stepName, e.type, e.name]), [['e-1', 'pay', 'business', 'order-paid']]);
    const row = rows(file, "SELECT event_type, event_name, message, data, tags FROM events WHERE pipeline_id = 'e-1' AND event_type = 'business'")[0]!;
    assert.deepEqual({ ...row, data: JSON.parse(row.data as string), tags: JSON.parse(row.tags as string) },
      { event_type: 'business', event_name: 'order-paid', message: 'paid', data: { step: 'pay', data: { amount: 12 } }, tags: ['money'] });
    const bad = new Pipeline().setSteps([[(_c: Context, info) => { info.recordEvent({ name: 'x' } as never); return {}; }, 'bad']]);
    await assert.rejects(bad.run({}), /must be an object with string type and name/);
  } finally {
    t.cleanup();
  }
});
