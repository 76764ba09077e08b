// Remote reporting: ApiReporter (a run observer) sends runs and steps to a dashboard's
// POST /api/ingest, so one dashboard shows several hosts. A dead, slow or refusing remote never
// slows or fails a run unless `required: true`; reports are batched, retried with a bound, and what
// is dropped is counted. The ingest endpoint needs the token, checks every field (400, 413, 415) and
// never lets one host rewrite another host's (or a local pipeline's) runs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { ApiReporter, Condition, Parallel, Pipeline, ProcessError, startDashboard, type DashboardHandle } from '../src/index.js';
import { quickRuns, request } from './fixtures/dashboard/history.js';
import { rows, tempDir } from './fixtures/storage/tmp.js';

const TOKEN = 'ingest-token';
const t = tempDir('wpipe-dashboard-reporter-');
const file = t.file('central.db');
let dash: DashboardHandle;

before(async () => {
  await quickRuns(file, 'local', 'local', 1); // a local run, which no remote may rewrite
  dash = await startDashboard({ db: file, port: 0, token: TOKEN, pollMs: 50 });
});
after(async () => {
  await dash?.close();
  t.cleanup();
});

const auth = { Authorization: `Bearer ${TOKEN}` };
async function api(path: string): Promise<any> {
  const res = await fetch(dash.url + path, { headers: auth });
  assert.equal(res.status, 200, path);
  return res.json();
}

function demo(name: string, reporter: ApiReporter): Pipeline {
  return new Pipeline({ pipelineName: name, observers: [reporter] }).setSteps([
    [() => ({ n: 2 }), 'load'],
    new Condition({ expression: 'n > 1', branchTrue: [[() => ({ big: true }), 'big']], branchFalse: [[() => ({}), 'small']] }),
    new Parallel({ steps: [[() => ({ a: 1 }), 'fanA'], [() => ({ b: 1 }), 'fanB']] }),
    [(c: Record<string, unknown>) => { if (c.fail) throw new Error('remote boom'); return { done: true }; }, 'save'],
  ]);
}

test("Pipeline({ api }) reports its runs to the dashboard; close() sends what is queued; a bad api option is refused", async () => {
  const pipe = new Pipeline({ pipelineName: 'via-option', api: { baseUrl: dash.url, token: TOKEN, host: 'host-opt' } })
    .setSteps([[() => ({ n: 1 }), 'one'], [() => ({ m: 2 }), 'two']]);
  await pipe.run({}, { runId: 'opt-1' });
  await pipe.close();
  const run = await api('/api/pipelines/opt-1');
  assert.equal(run.status, 'completed');
  assert.equal(run.workerId, 'host-opt');
  assert.deepEqual(run.steps.map((s: any) => [s.name, s.status]), [['one', 'completed'], ['two', 'completed']]);
  assert.throws(() => new Pipeline({ api: 'http://x' as never }), /api must be an object \{ baseUrl, token, … \}, got string/);
  assert.throws(() => new Pipeline({ api: { baseUrl: dash.url, token: TOKEN, timeout: 5 } as never }), /unknown option 'timeout'/);
  assert.throws(() => new Pipeline({ apy: {} } as never), /did you mean api\?/);
});

test('two hosts report to one dashboard: runs, steps, host and worker, failures', async () => {
  const a = new ApiReporter({ baseUrl: dash.url, token: TOKEN, host: 'host-a', worker: 'w-1' });
  const b = new ApiReporter({ baseUrl: `${dash.url}/`, token: TOKEN, host: 'host-b' });
  await demo('remote-orders', a).run({}, { runId: 'ra-1' });
  await demo('remote-orders', a).run({ fail: true }, { runId: 'ra-2' }).catch(() => undefined);
  await demo('remote-billing', b).run({}, { runId: 'rb-1' });
  await Promise.all([a.close(), b.close()]);
  assert.equal(a.stats.dropped, 0, String(a.stats.lastError));
  assert.equal(b.stats.dropped, 0, String(b.stats.lastError));
  assert.ok(a.stats.sent >= 2 * 8, JSON.stringify(a.stats));

  const ra1 = await api('/api/pipelines/ra-1');
  assert.equal(ra1.status, 'completed');
  assert.equal(ra1.workerId, 'host-a');
  assert.equal(ra1.workerName, 'w-1');
  assert.ok(ra1.durationMs > 0);
  assert.deepEqual(ra1.steps.map((s: any) => [s.order, s.name, s.kind, s.status, s.parentStepId]), [
    [1, 'load', 'task', 'completed', null],
    [2, 'Condition', 'condition', 'completed', null],
    [3, 'big', 'task', 'completed', 2],
    [4, 'Parallel', 'parallel', 'completed', null],
    [5, 'fanA', 'task', 'completed', 4],
    [6, 'fanB', 'task', 'completed', 4],
    [7, 'save', 'task', 'completed', null],
  ]);
  const graph = await api('/api/pipelines/ra-1/graph');
  assert.deepEqual(graph.edges.filter((e: any) => e.label !== 'next').map((e: any) => e.label), ['taken', 'parallel', 'parallel']);
  const ra2 = await api('/api/pipelines/ra-2');
  assert.equal(ra2.status, 'error');
  assert.equal(ra2.errorStep, 'save');
  assert.match(ra2.errorMessage, /remote boom/);
  assert.match(ra2.steps.find((s: any) => s.name === 'save').errorMessage, /remote boom/);
  const rb1 = await api('/api/pipelines/rb-1');
  assert.equal(rb1.workerId, 'host-b');
  assert.match(rb1.workerName, /^pid \d+$/);
  const list = await api('/api/pipelines?q=remote');
  assert.deepEqual(new Set(list.runs.map((r: any) => r.workerId)), new Set(['host-a', 'host-b']));
});

test('a host cannot rewrite another host\'s runs, nor local ones', async () => {
  const body = (host: string, runId: string): string => JSON.stringify({
    source: { host },
    reports: [
      { type: 'run', runId, pipelineName: 'evil', status: 'error', startedAt: new Date().toISOString(), errorMessage: 'overwritten' },
      { type: 'step', runId, order: 1, name: 'x', status: 'error', startedAt: new Date().toISOString() },
    ],
  });
  const before1 = rows(file, "SELECT status, name FROM pipelines WHERE id = 'local-0'")[0];
  const r1 = await request(`${dash.url}/api/ingest`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: body('host-x', 'local-0') });
  assert.equal(r1.status, 200);
  assert.deepEqual(JSON.parse(r1.body), { status: 'ok', received: 2, applied: 0, conflicts: 2 });
  assert.deepEqual(rows(file, "SELECT status, name FROM pipelines WHERE id = 'local-0'")[0], before1);
  const r2 = await request(`${dash.url}/api/ingest`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: body('host-x', 'ra-1') });
  assert.deepEqual(JSON.parse(r2.body).conflicts, 2);
  assert.equal(rows(file, "SELECT status FROM pipelines WHERE id = 'ra-1'")[0]!.status, 'completed');
});

test('ingest: token required, and every field checked (400, 413, 415), never a 500', async () => {
  const post = (body: string, headers: Record<string, string> = {}): ReturnType<typeof request> =>
    request(`${dash.url}/api/ingest`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json', ...headers }, body });
  assert.equal((await request(`${dash.url}/api/ingest`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })).status, 401);
  assert.equal((await post('{}', { Authorization: 'Bearer nope' })).status, 401);
  assert.equal((await request(`${dash.url}/api/ingest`, { headers: auth })).status, 405);
  assert.equal((await post('{}', { 'Content-Type': 'text/plain' })).status, 415);
  const ok = { host: 'h' };
  const now = new Date().toISOString();
  const cases: [unknown, RegExp][] = [
    [[], /the body must be an object/],
    [{ reports: [] }, /source must be an object/],
    [{ source: {}, reports: [] }, /source.host is required/],
    [{ source: ok, reports: {} }, /reports must be an array/],
    [{ source: ok, reports: [{ type: 'nope', runId: 'x' }] }, /reports\[0\].type must be 'run' or 'step'/],
    [{ source: ok, reports: [{ type: 'run', runId: 'x', pipelineName: 'p', status: 'exploded', startedAt: now }] }, /reports\[0\].status must be one of/],
    [{ source: ok, reports: [{ type: 'run', runId: 'x', pipelineName: 'p', status: 'running', startedAt: 'yesterday' }] }, /startedAt must be an ISO-8601 time/],
    [{ source: ok, reports: [{ type: 'run', runId: 'x', pipelineName: 'p', status: 'running', startedAt: now, durationMs: -1 }] }, /durationMs must be a number ≥ 0/],
    [{ source: ok, reports: [{ type: 'step', runId: 'x', order: 0, name: 's', status: 'completed', startedAt: now }] }, /order must be an integer ≥ 1/],
    [{ source: ok, reports: [{ type: 'step', runId: 'x', name: 's', status: 'completed', startedAt: now }] }, /order is required/],
    [{ source: ok, reports: [{ type: 'run', runId: '', pipelineName: 'p', status: 'running', startedAt: now }] }, /runId must be a string of 1–500/],
    [{ source: ok, reports: Array.from({ length: 5001 }, () => ({})) }, /at most 5000 reports/],
  ];
  for (const [payload, message] of cases) {
    const r = await post(JSON.stringify(payload));
    assert.equal(r.status, 400, `${JSON.stringify(payload).slice(0, 80)}: ${r.body}`);
    assert.match(JSON.parse(r.body).error.message, message);
  }
  const notJson = await post('{"source":');
  assert.equal(notJson.status, 400);
  assert.match(JSON.parse(notJson.body).error.message, /not JSON/);
  const huge = await post(JSON.stringify({ source: ok, reports: [], pad: 'x'.repeat(5 * 1024 * 1024) }));
  assert.equal(huge.status, 413);
  assert.equal((await api('/api/health')).status, 'healthy', 'still serving');
});

test('a dashboard without a token takes no reports (403, not retried, counted as dropped)', async () => {
  const open = await startDashboard({ db: file, port: 0 });
  try {
    const r = await request(`${open.url}/api/ingest`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    assert.equal(r.status, 403);
    assert.match(JSON.parse(r.body).error.message, /only with a token/);
    const reporter = new ApiReporter({ baseUrl: open.url, token: 'whatever', retries: 5 });
    await demo('refused', reporter).run({}, { runId: 'refused-1' });
    await reporter.close();
    assert.equal(reporter.stats.sent, 0);
    assert.ok(reporter.stats.dropped >= 2);
    assert.equal(reporter.stats.retries, 0, 'a 4xx is not retried');
    assert.match(String(reporter.stats.lastError), /HTTP 403/);
  } finally {
    await open.close();
  }
});

/** A port nothing listens on. */
async function deadPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

test('a dead remote: runs succeed, reports are retried a bounded number of times, then dropped and counted', async () => {
  const reporter = new ApiReporter({ baseUrl: `http://127.0.0.1:${await deadPort()}`, token: TOKEN, retries: 2, flushMs: 0 });
  const pipe = demo('dead', reporter);
  const out = await pipe.run({}, { runId: 'dead-1' });
  assert.equal(out.done, true, 'the run is not failed by its reporter');
  await reporter.close();
  assert.equal(reporter.stats.sent, 0);
  assert.equal(reporter.stats.dropped, 9, 'run start, 7 steps, run end');
  assert.ok(reporter.stats.retries >= 2);
  assert.match(String(reporter.stats.lastError), /fetch failed|ECONNREFUSED/);
});

test('a remote that never answers does not hold a run up; its requests time out and are counted', async () => {
  const sockets = new Set<net.Socket>();
  const hang = http.createServer(() => { /* never answers */ });
  hang.on('connection', (s) => sockets.add(s));
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
  try {
    const reporter = new ApiReporter({ baseUrl: `http://127.0.0.1:${(hang.address() as net.AddressInfo).port}`, token: TOKEN, timeoutMs: 200, retries: 1, flushMs: 0 });
    let settled = false;
    const run = demo('slow', reporter).run({}, { runId: 'slow-1' }).then((r) => { settled = true; return r; });
    const out = await run;
    assert.equal(out.done, true);
    assert.equal(settled, true);
    assert.ok(reporter.stats.sent === 0 && reporter.stats.dropped === 0, 'run() resolved while the first request was still waiting');
    await reporter.close();
    assert.equal(reporter.stats.dropped, 9);
    assert.match(String(reporter.stats.lastError), /no answer within 200 ms/);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => hang.close(() => r()));
  }
});

test('required: true waits for delivery, and fails the run when its reports cannot be delivered', async () => {
  const good = new ApiReporter({ baseUrl: dash.url, token: TOKEN, required: true, flushMs: 10_000 });
  await demo('required', good).run({}, { runId: 'req-1' });
  assert.equal(rows(file, "SELECT status FROM pipelines WHERE id = 'req-1'")[0]?.status, 'completed', 'delivered before run() resolved');
  await good.close();

  const bad = new ApiReporter({ baseUrl: `http://127.0.0.1:${await deadPort()}`, token: TOKEN, required: true, retries: 0 });
  await assert.rejects(demo('required', bad).run({}, { runId: 'req-2' }), (e: unknown) => {
    assert.ok(e instanceof ProcessError, String(e));
    assert.match(String((e as Error).message) + String(((e as Error).cause as Error | undefined)?.message), /could not be delivered/);
    return true;
  });
  await bad.close();
});

test('the queue is bounded: past maxQueue the oldest reports are dropped and counted', async () => {
  const reporter = new ApiReporter({ baseUrl: `http://127.0.0.1:${await deadPort()}`, token: TOKEN, maxQueue: 3, retries: 0, flushMs: 60_000, batchSize: 1000 });
  await demo('bounded', reporter).run({}, { runId: 'bounded-1' });
  assert.equal(reporter.stats.queued, 3);
  assert.equal(reporter.stats.dropped, 6);
  assert.match(String(reporter.stats.lastError), /queue full/);
  await reporter.close();
  assert.equal(reporter.stats.dropped, 9);
});

test('options are checked with the option named', () => {
  assert.throws(() => new ApiReporter({ baseUrl: 'not a url', token: 't' }), /baseUrl is not a URL/);
  assert.throws(() => new ApiReporter({ baseUrl: 'ftp://x', token: 't' }), /must be http\(s\)/);
  assert.throws(() => new ApiReporter({ baseUrl: 'http://x', token: '' }), /token must be the dashboard's token/);
  assert.throws(() => new ApiReporter({ baseUrl: 'http://x', token: 't', timeoutMs: -1 }), RangeError);
  assert.throws(() => new ApiReporter({ baseUrl: 'http://x', token: 't', timeoutMs: 0 }), /timeoutMs must be 1–600000/);
  assert.throws(() => new ApiReporter({ baseUrl: 'http://x', token: 't', batchSize: 1.5 }), /batchSize must be an integer/);
  assert.throws(() => new ApiReporter({ baseUrl: 'http://x', token: 't', retires: 3 } as never), /did you mean retries\?/);
  assert.throws(() => new ApiReporter({ baseUrl: 'http://x', token: 't', required: 'yes' } as never), /required must be a boolean/);
});
