// The dashboard's JSON API over a history made by real runs, without a browser: every path, 404s,
// keyset paging, 400 (never 500) on bad input, the acknowledge that persists, tokens, Host and Origin
// checks, security headers, the live stream, and option errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startDashboard, WpipeError, type DashboardHandle } from '../src/index.js';
import { ERROR_CATALOG } from '../src/errors.js';
import { makeHistory, quickRuns, request, XSS } from './fixtures/dashboard/history.js';
import { rows, tempDir } from './fixtures/storage/tmp.js';

const t = tempDir('wpipe-dashboard-api-');
const file = t.file('history.db');
let ids: Awaited<ReturnType<typeof makeHistory>>;
let dash: DashboardHandle;

before(async () => {
  ids = await makeHistory(file);
  dash = await startDashboard({ db: file, port: 0, pollMs: 50 });
});
after(async () => {
  await dash?.close();
  t.cleanup();
});

async function getJson(path: string, init?: RequestInit): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(dash.url + path, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

test('health, stats, run list and run detail over real runs', async () => {
  assert.match(dash.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const health = await getJson('/api/health');
  assert.equal(health.status, 200);
  assert.equal(health.body.status, 'healthy');

  const stats = (await getJson('/api/stats')).body;
  assert.equal(stats.totalRuns, 3);
  assert.equal(stats.completed, 1);
  assert.equal(stats.errors, 2);
  assert.equal(stats.alertsFired, 2);
  assert.ok(stats.totalSteps >= 20, JSON.stringify(stats));

  const list = (await getJson('/api/pipelines')).body;
  assert.deepEqual(new Set(list.runs.map((r: any) => r.runId)), new Set([ids.ok, ids.failed, ids.hostile]));
  assert.equal(list.nextCursor, null);
  const failedOnly = (await getJson('/api/pipelines?status=error&name=demo')).body;
  assert.deepEqual(failedOnly.runs.map((r: any) => r.runId), [ids.failed]);
  const search = (await getJson('/api/pipelines?q=disk%20full')).body;
  assert.deepEqual(search.runs.map((r: any) => r.runId), [ids.failed], 'search reaches the error message');
  const likeChars = (await getJson('/api/pipelines?q=%25')).body;
  assert.deepEqual(likeChars.runs, [], '% is searched for literally, not as a wildcard');

  const detail = (await getJson(`/api/pipelines/${ids.ok}`)).body;
  assert.equal(detail.status, 'completed');
  const names = detail.steps.map((s: any) => s.name);
  for (const n of ['load', 'Condition', 'bigBranch', 'For', 'loopBody', 'Parallel', 'fanA', 'fanB', 'flaky', 'save']) assert.ok(names.includes(n), n);
  assert.ok(!names.includes('smallBranch'));
  const flaky = detail.steps.find((s: any) => s.name === 'flaky');
  assert.equal(flaky.attempts, 2);
  assert.ok(Array.isArray(detail.attempts));
  assert.equal(detail.alerts.length, 1);
  const failed = (await getJson(`/api/pipelines/${ids.failed}`)).body;
  assert.match(failed.steps.find((s: any) => s.name === 'save').errorMessage, /save failed: disk full/);

  const byName = (await getJson('/api/pipelines/by-name/demo')).body;
  assert.deepEqual(byName.runs.map((r: any) => r.runId).sort(), [ids.ok, ids.failed].sort());
  const hostileName = (await getJson(`/api/pipelines/by-name/${encodeURIComponent(`hostile ${XSS[0]}`)}`)).body;
  assert.deepEqual(hostileName.runs.map((r: any) => r.runId), [ids.hostile], 'any name, percent-encoded');
  const hostile = (await getJson(`/api/pipelines/${encodeURIComponent(ids.hostile)}`)).body;
  assert.equal(hostile.steps[0].name, XSS[0], 'stored values come back exactly as stored (escaping is the page\'s job)');
});

test('graph: Condition branch taken, For iterations, Parallel fan-out, top-level sequence', async () => {
  const g = (await getJson(`/api/pipelines/${ids.ok}/graph`)).body;
  const byName = (n: string): any[] => g.nodes.filter((x: any) => x.name === n);
  const edge = (from: any, to: any): any => g.edges.find((e: any) => e.from === from.id && e.to === to.id);
  const [cond] = byName('Condition');
  const [forNode] = byName('For');
  const [par] = byName('Parallel');
  assert.equal(edge(cond, byName('bigBranch')[0]).label, 'taken');
  const iters = byName('loopBody').map((n) => edge(forNode, n));
  assert.deepEqual(iters.map((e) => [e.label, e.iteration]), [['iteration', 1], ['iteration', 2], ['iteration', 3]]);
  assert.deepEqual(['fanA', 'fanB'].map((n) => edge(par, byName(n)[0]).label), ['parallel', 'parallel']);
  assert.equal(edge(byName('load')[0], cond).label, 'next');
  assert.equal(edge(cond, forNode).label, 'next');
});

test('unknown runs are 404 with a JSON error, not null', async () => {
  for (const path of ['/api/pipelines/nope', '/api/pipelines/nope/graph', '/api/nothing-here']) {
    const r = await getJson(path);
    assert.equal(r.status, 404, path);
    assert.equal(r.body.error.code, 'WPIPE_ERR_DASHBOARD_NOT_FOUND', path);
    assert.ok(r.body.error.message.length > 5);
  }
});

test('keyset paging walks every run once, in order; a forged cursor is a 400', async () => {
  const t2 = tempDir('wpipe-dashboard-page-');
  const f2 = t2.file('paging.db');
  await quickRuns(f2, 'many', 'm', 23);
  const d2 = await startDashboard({ db: f2, port: 0 });
  try {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: Response = await fetch(`${d2.url}/api/pipelines?limit=5${cursor ? `&cursor=${cursor}` : ''}`);
      const page: any = await res.json();
      assert.ok(page.runs.length <= 5);
      seen.push(...page.runs.map((r: any) => r.runId));
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 20);
    assert.equal(pages, 5);
    assert.equal(seen.length, 23);
    assert.equal(new Set(seen).size, 23);
    const all = rows(f2, 'SELECT id FROM pipelines ORDER BY started_at DESC, id DESC').map((r) => r.id);
    assert.deepEqual(seen, all);
    for (const bad of ['zzz', 'eyJhIjoxfQ', '%00', Buffer.from('["a"]').toString('base64url')]) {
      const r = await fetch(`${d2.url}/api/pipelines?cursor=${bad}`);
      assert.equal(r.status, 400, bad);
      assert.match(((await r.json()) as any).error.message, /cursor/);
    }
  } finally {
    await d2.close();
    t2.cleanup();
  }
});

test('bad query parameters and unknown tables are 400 with a message, never a 500', async () => {
  const cases: [string, RegExp][] = [
    ['/api/pipelines?limit=0', /limit must be an integer from 1 to 500/],
    ['/api/pipelines?limit=abc', /limit must be an integer/],
    ['/api/pipelines?limit=1e3', /limit must be an integer/],
    ['/api/pipelines?limit=99999999999', /limit must be an integer/],
    ['/api/pipelines?status=exploded', /status must be one of running, completed, error, cancelled, interrupted/],
    ['/api/pipelines?staus=error', /unknown query parameter "staus"; this path takes status, name, q, limit, cursor/],
    ['/api/pipelines?limit=5&limit=6', /given 2 times/],
    ['/api/pipelines?name=', /name must not be empty/],
    ['/api/trends?days=0', /days must be an integer from 1 to 366/],
    ['/api/trends?days=-1', /days must be an integer/],
    ['/api/alerts?severity=loud', /severity must be one of/],
    ['/api/alerts?unacknowledged=maybe', /unacknowledged must be true or false/],
    ['/api/health?x=1', /this path takes none/],
    ['/api/data/nope', /unknown table "nope"; the tables are pipelines, steps/],
    ['/api/data/sqlite_master', /unknown table/],
    ['/api/data/pipelines%3B%20DROP%20TABLE%20steps', /unknown table/],
    ['/api/data/__proto__', /unknown table/],
    ['/api/data/constructor', /unknown table/],
    ['/api/data/steps?pageSize=1000', /pageSize must be an integer from 1 to 200/],
    ['/api/data/events?status=x', /table events has no status column/],
    ['/api/pipelines/%E0%A4%A', /not valid percent-encoding/],
    ['/api/slow-steps?limit=-5', /limit must be an integer/],
  ];
  for (const [path, message] of cases) {
    const r = await getJson(path);
    assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, 'WPIPE_ERR_DASHBOARD_BAD_REQUEST', path);
    assert.match(r.body.error.message, message, path);
  }
  assert.equal((await getJson('/api/pipelines', { method: 'DELETE' })).status, 405);
  assert.equal((await getJson('/api/alerts/1/acknowledge')).status, 405, 'acknowledge is POST only');
  assert.ok(ERROR_CATALOG.WPIPE_ERR_DASHBOARD_BAD_REQUEST);
});

test('the table browser pages known tables and cuts long cells', async () => {
  const p1 = (await getJson('/api/data/steps?page=1&pageSize=4')).body;
  assert.equal(p1.rows.length, 4);
  assert.equal(p1.hasMore, true);
  const p2 = (await getJson('/api/data/steps?page=2&pageSize=4')).body;
  assert.notDeepEqual(p1.rows[0], p2.rows[0]);
  const errs = (await getJson('/api/data/pipelines?status=error')).body;
  assert.equal(errs.rows.length, 2);
  const byRun = (await getJson(`/api/data/steps?runId=${ids.failed}&pageSize=200`)).body;
  assert.ok(byRun.rows.every((r: any) => r.pipeline_id === ids.failed));
  for (const table of ['pipelines', 'steps', 'attempts', 'events', 'alerts_fired', 'alerts_config', 'system_metrics', 'checkpoints']) {
    assert.equal((await getJson(`/api/data/${table}`)).status, 200, table);
  }
});

test('alerts, alert config, events, trends, slow steps, analyses', async () => {
  const alerts = (await getJson('/api/alerts')).body;
  assert.equal(alerts.length, 2);
  assert.ok(alerts.every((a: any) => a.severity === 'critical'));
  assert.equal((await getJson('/api/alerts?severity=warning')).body.length, 0);
  const config = (await getJson('/api/alerts/config')).body;
  assert.deepEqual(config.map((c: any) => c.name), ['any run']);
  assert.ok(Array.isArray((await getJson('/api/events')).body));
  const trends = (await getJson('/api/trends?days=7')).body;
  assert.equal(trends.points.reduce((x: number, p: any) => x + p.runs, 0), 3);
  const slow = (await getJson('/api/slow-steps?limit=3')).body;
  assert.equal(slow.length, 3);
  assert.ok(slow[0].meanMs >= slow[1].meanMs);
  const states = (await getJson('/api/analysis/states')).body;
  assert.ok(states.mostUsed.find((s: any) => s.name === 'loopBody').executions >= 6);
  const pipes = (await getJson('/api/analysis/pipelines')).body;
  assert.equal(pipes.totalRuns, 3);
  assert.equal(pipes.pipelines.find((p: any) => p.name === 'demo').errors, 1);
});

test('acknowledge really persists, on its own connection; unknown id 404, bad id 400, cross-origin 403', async () => {
  const [first] = (await getJson('/api/alerts')).body;
  assert.equal(first.acknowledged, false);
  const cross = await request(`${dash.url}/api/alerts/${first.id}/acknowledge`, { method: 'POST', headers: { Origin: 'http://evil.example' } });
  assert.equal(cross.status, 403);
  assert.equal(JSON.parse(cross.body).error.code, 'WPIPE_ERR_DASHBOARD_FORBIDDEN');
  const site = await request(`${dash.url}/api/alerts/${first.id}/acknowledge`, { method: 'POST', headers: { 'Sec-Fetch-Site': 'cross-site' } });
  assert.equal(site.status, 403);
  assert.equal(rows(file, 'SELECT acknowledged FROM alerts_fired WHERE id = ?', first.id)[0]!.acknowledged, 0, 'refused requests changed nothing');

  const ok = await getJson(`/api/alerts/${first.id}/acknowledge`, { method: 'POST', headers: { Origin: dash.url } });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.body, { status: 'acknowledged', id: first.id });
  assert.equal(rows(file, 'SELECT acknowledged FROM alerts_fired WHERE id = ?', first.id)[0]!.acknowledged, 1, 'in SQLite, seen by another connection');
  assert.equal((await getJson('/api/alerts')).body.find((a: any) => a.id === first.id).acknowledged, true);
  assert.equal((await getJson('/api/stats')).body.unacknowledgedAlerts, 1);

  assert.equal((await getJson('/api/alerts/999999/acknowledge', { method: 'POST' })).status, 404);
  for (const badId of ['abc', '0', '-1', '1.5']) {
    const r = await getJson(`/api/alerts/${badId}/acknowledge`, { method: 'POST' });
    assert.equal(r.status, 400, badId);
  }
});

test('security headers on the page and the API; no directory traversal', async () => {
  for (const path of ['/', '/api/health', '/api/pipelines/nope', '/app.js']) {
    const r = await fetch(dash.url + path);
    const csp = r.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/, path);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, path);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
    assert.equal(r.headers.get('x-frame-options'), 'DENY', path);
    await r.arrayBuffer();
  }
  assert.equal((await fetch(`${dash.url}/app.js`)).headers.get('content-type'), 'text/javascript; charset=utf-8');
  for (const path of ['/../package.json', '/%2e%2e/package.json', '/vendor/../../package.json', '/server.ts']) {
    const r = await request(dash.url + path);
    assert.equal(r.status, 404, path);
  }
  const vendor = await fetch(`${dash.url}/vendor/uPlot.iife.min.js`);
  assert.equal(vendor.status, 200, 'uPlot comes from node_modules, not a CDN');
  await vendor.arrayBuffer();
});

test('without a token only loopback Host names are answered (DNS rebinding)', async () => {
  const port = new URL(dash.url).port;
  const evil = await request(`${dash.url}/api/stats`, { headers: { Host: `attacker.example:${port}` } });
  assert.equal(evil.status, 403);
  assert.match(JSON.parse(evil.body).error.message, /loopback names only/);
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) {
    assert.equal((await request(`${dash.url}/api/health`, { headers: { Host: host } })).status, 200, host);
  }
});

test('off loopback without a token is refused with a stable code and the fix; bad options name the option', async () => {
  for (const host of ['0.0.0.0', '::', '192.168.1.10', 'example.com']) {
    await assert.rejects(startDashboard({ db: file, host, port: 0 }), (e: unknown) => {
      assert.ok(e instanceof WpipeError);
      assert.equal(e.code, 'WPIPE_ERR_DASHBOARD_TOKEN_REQUIRED');
      assert.match(e.message, /Pass a token/);
      assert.match(e.message, /--token/);
      assert.match(e.message, /127\.0\.0\.1/);
      return true;
    }, host);
  }
  await assert.rejects(startDashboard({ db: file, port: -1 }), RangeError);
  await assert.rejects(startDashboard({ db: file, port: 1.5 }), TypeError);
  await assert.rejects(startDashboard({ db: file, token: '' }), /token must be a non-empty string/);
  await assert.rejects(startDashboard({ db: file, prot: 0 } as never), /did you mean port\?/);
  await assert.rejects(startDashboard({ db: 42 } as never), /db must be the path/);
  await assert.rejects(startDashboard({ db: t.file('missing.db'), port: 0 }), (e: unknown) =>
    e instanceof WpipeError && e.code === 'WPIPE_ERR_STORAGE' && /no run history at .*missing\.db/.test(e.message));
  // Somebody else's SQLite file, and an empty file: refused, and left as they were.
  const fs = await import('node:fs');
  const other = t.file('other.sqlite');
  const Database = (await import('node:module')).createRequire(import.meta.url)('better-sqlite3');
  const o = new Database(other);
  o.exec('CREATE TABLE mine (x)');
  o.close();
  const empty = t.file('empty.db');
  fs.writeFileSync(empty, '');
  for (const f of [other, empty]) {
    await assert.rejects(startDashboard({ db: f, port: 0 }), (e: unknown) =>
      e instanceof WpipeError && e.code === 'WPIPE_ERR_STORAGE' && /is not a wpipe run history/.test(e.message), f);
  }
  assert.deepEqual(rows(other, "SELECT name FROM sqlite_schema WHERE type = 'table'").map((r) => r.name), ['mine']);
  assert.equal(fs.statSync(empty).size, 0);
});

test('a taken port is WPIPE_ERR_DASHBOARD_LISTEN with the fix', async () => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as net.AddressInfo).port;
  try {
    await assert.rejects(startDashboard({ db: file, port }), (e: unknown) =>
      e instanceof WpipeError && e.code === 'WPIPE_ERR_DASHBOARD_LISTEN' && /port is taken/.test(e.message));
  } finally {
    await new Promise<void>((r) => blocker.close(() => r()));
  }
});

test('with a token: 401 without it or with a wrong one; Bearer works; /?token= trades it for a cookie', async () => {
  const token = 's3cret-token-value';
  const d = await startDashboard({ db: file, port: 0, token });
  try {
    const none = await request(`${d.url}/api/stats`);
    assert.equal(none.status, 401);
    assert.equal(JSON.parse(none.body).error.code, 'WPIPE_ERR_DASHBOARD_UNAUTHORIZED');
    assert.equal((await request(`${d.url}/api/stats`, { headers: { Authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await request(`${d.url}/api/stats`, { headers: { Authorization: `Bearer ${token}x` } })).status, 401);
    assert.equal((await request(`${d.url}/api/stats`, { headers: { Authorization: `Bearer ${token}` } })).status, 200);
    assert.equal((await request(`${d.url}/api/stream`)).status, 401, 'the live stream too');
    const [alert] = JSON.parse((await request(`${d.url}/api/alerts`, { headers: { Authorization: `Bearer ${token}` } })).body);
    assert.equal((await request(`${d.url}/api/alerts/${alert.id}/acknowledge`, { method: 'POST' })).status, 401, 'state changes need the token');

    const wrong = await request(`${d.url}/?token=nope`);
    assert.equal(wrong.status, 401);
    const trade = await request(`${d.url}/?token=${token}`);
    assert.equal(trade.status, 303);
    assert.equal(trade.headers.location, '/');
    const cookie = String(trade.headers['set-cookie']);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    const withCookie = await request(`${d.url}/api/stats`, { headers: { Cookie: cookie.split(';')[0]! } });
    assert.equal(withCookie.status, 200);
    assert.equal((await request(`${d.url}/api/stats`, { headers: { Cookie: 'wpipe_dashboard_token=%E0%A4%A' } })).status, 401, 'a mangled cookie is a 401, not a 500');
    // A token makes other Host names acceptable (it is what protects the API then).
    assert.equal((await request(`${d.url}/api/health`, { headers: { Host: 'dash.internal', Authorization: `Bearer ${token}` } })).status, 200);
  } finally {
    await d.close();
  }
});

test('the live stream pushes a run that finishes while the page listens', { timeout: 60_000 }, async () => {
  const events: any[] = [];
  let resolveSeen: () => void;
  const seen = new Promise<void>((r) => { resolveSeen = r; });
  const req = http.get(`${dash.url}/api/stream`, (res) => {
    assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
    let buffer = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      let i: number;
      while ((i = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        const type = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (type === 'runs' && data) {
          events.push(...JSON.parse(data).runs);
          if (events.some((r) => r.runId === 'live-0' && r.status === 'completed')) resolveSeen();
        }
        if (type === 'hello') void quickRuns(file, 'live', 'live', 1);
      }
    });
  });
  try {
    await seen;
    assert.ok(!events.some((r) => r.runId === ids.ok), 'runs that were there before are not news');
  } finally {
    req.destroy();
  }
});

test('close() ends open streams and frees the port; a second close is harmless', async () => {
  const d = await startDashboard({ db: file, port: 0 });
  const ended = new Promise<void>((resolve) => {
    http.get(`${d.url}/api/stream`, (res) => { res.on('data', () => undefined); res.on('end', resolve); res.on('close', resolve); });
  });
  await new Promise((r) => setTimeout(r, 50));
  await d.close();
  await ended;
  await d.close();
  await assert.rejects(fetch(`${d.url}/api/health`));
});

test('the page sets data as text: no HTML sinks in its scripts, no inline script or style in its HTML', async () => {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const dir = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'src', 'dashboard', 'public');
  for (const name of fs.readdirSync(dir)) {
    const src = fs.readFileSync(path.join(dir, name), 'utf8');
    if (name.endsWith('.js')) {
      const code = src.split('\n').filter((l) => !l.trim().startsWith('//')).join('\n');
      assert.doesNotMatch(code, /\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|\.href\s*=|setAttribute\(\s*['"](href|src|style|on)/, name);
    }
    if (name.endsWith('.html')) {
      assert.doesNotMatch(src, /<script(?![^>]*\bsrc=)[^>]*>/, `${name}: every script has a src`);
      assert.doesNotMatch(src, /\sstyle=|\son[a-z]+=/i, `${name}: no inline style or handlers`);
    }
  }
});

test('stats: step totals kept below a watermark stay exact through new runs, resumes and prunes', async () => {
  const { buildHistory } = await import('../bench/dashboard.js');
  const { DashboardStore } = await import('../src/dashboard/store.js');
  const Database = (await import('node:module')).createRequire(import.meta.url)('better-sqlite3');
  const t3 = tempDir('wpipe-dashboard-stats-');
  const f3 = t3.file('stats.db');
  buildHistory(f3, 300); // 300 runs over 30 days, 10 steps each, 5% failed part-way
  const store = DashboardStore.open(f3);
  const truth = (): { totalSteps: number; stepErrors: number; totalRuns: number } => {
    const [r] = rows(f3, "SELECT (SELECT count(*) FROM steps) AS totalSteps, (SELECT count(*) FROM steps WHERE status = 'error') AS stepErrors, (SELECT count(*) FROM pipelines) AS totalRuns");
    return r as { totalSteps: number; stepErrors: number; totalRuns: number };
  };
  const pick = (s: Record<string, unknown>): unknown => ({ totalSteps: s.totalSteps, stepErrors: s.stepErrors, totalRuns: s.totalRuns });
  // Per step name, as the analysis endpoints report it, against a plain GROUP BY.
  const byName = (): unknown => Object.fromEntries([...store.nameAggregates()].map(([k, a]) => [k, [a.n, a.errors, a.ok, Math.round(a.okTotal * 1000)]]).sort());
  const byNameTruth = (): unknown => Object.fromEntries(rows(f3, `SELECT step_name AS k, count(*) AS n, sum(status = 'error') AS e,
    sum(status = 'completed' AND duration_ms IS NOT NULL) AS ok, coalesce(sum(CASE WHEN status = 'completed' THEN duration_ms END), 0) AS t
    FROM steps GROUP BY step_name`).map((r) => [r.k, [r.n, r.e, r.ok, Math.round(Number(r.t) * 1000)]]).sort());
  const w = new Database(f3);
  try {
    assert.deepEqual(pick(store.stats()), truth());
    assert.equal(store.stepScans, 1);
    assert.equal(store.statsComputed, 1);
    assert.deepEqual(pick(store.stats()), truth());
    assert.equal(store.statsComputed, 1, 'nothing committed since: the last answer holds');
    w.prepare("INSERT INTO events (event_type, event_name, created_at) VALUES ('note', 'n', ?)").run(new Date().toISOString());
    assert.deepEqual(pick(store.stats()), truth());
    assert.equal(store.statsComputed, 2, 'a commit elsewhere: counted again');
    assert.equal(store.stepScans, 1, 'the second count counts only recent steps');
    assert.deepEqual(byName(), byNameTruth());
    assert.deepEqual(byName(), byNameTruth());
    assert.equal(store.stepScans, 2, 'per-name totals: one full grouping, then recent runs only');
    // A new run with steps: counted through the recent part.
    const now = new Date().toISOString();
    w.prepare("INSERT INTO pipelines (id, name, status, started_at, resumes, updated_at) VALUES ('new-1', 'n', 'completed', ?, 0, ?)").run(now, now);
    w.prepare("INSERT INTO steps (pipeline_id, step_order, step_name, status, started_at) VALUES ('new-1', 1, 'a', 'error', ?)").run(now);
    assert.deepEqual(pick(store.stats()), truth());
    assert.deepEqual(byName(), byNameTruth());
    assert.equal(store.stepScans, 2);
    // An old run resumed (its resumes and steps change): noticed, counted again.
    w.prepare("UPDATE pipelines SET resumes = resumes + 1, status = 'completed' WHERE id = 'run-0000003'").run();
    w.prepare("UPDATE steps SET status = 'error' WHERE pipeline_id = 'run-0000003' AND step_order = 1").run();
    assert.deepEqual(pick(store.stats()), truth());
    assert.deepEqual(byName(), byNameTruth());
    assert.equal(store.stepScans, 4);
    // An old run pruned: noticed, counted again.
    w.prepare("DELETE FROM steps WHERE pipeline_id = 'run-0000010'").run();
    w.prepare("DELETE FROM pipelines WHERE id = 'run-0000010'").run();
    assert.deepEqual(pick(store.stats()), truth());
    assert.deepEqual(byName(), byNameTruth());
    assert.equal(store.stepScans, 6);
    assert.deepEqual(pick(store.stats()), truth());
    assert.deepEqual(byName(), byNameTruth());
    assert.equal(store.stepScans, 6);
  } finally {
    w.close();
    store.close();
    t3.cleanup();
  }
});

test('fuzz: random paths, parameters and encodings get 200, 400, 404 or 405 — never a 500', async () => {
  let seed = 1234567;
  const rnd = (n: number): number => { seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648; return seed % n; };
  const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)]!;
  const paths = ['/api/pipelines', '/api/pipelines/d-1', '/api/pipelines/d-1/graph', '/api/pipelines/by-name/demo', '/api/trends', '/api/alerts',
    '/api/alerts/config', '/api/events', '/api/slow-steps', '/api/analysis/states', '/api/analysis/pipelines', '/api/data/steps', '/api/data/x',
    '/api/stats', '/api/health', '/api/pipelines/%ZZ', '/api/pipelines/%00', '/api/data/%2e%2e', '/api/pipelines//graph', '/api//pipelines'];
  const keys = ['limit', 'cursor', 'status', 'name', 'q', 'days', 'page', 'pageSize', 'page_size', 'severity', 'runId', 'type', 'unacknowledged', 'x', '__proto__', ''];
  const values = ['', '0', '1', '-1', '50', '1e9', 'NaN', 'null', '%00', '%ZZ', "'; DROP TABLE pipelines; --", '<script>', 'error', 'completed',
    'a'.repeat(3000), '١٢', '9007199254740993', 'true', 'critical', 'eyJ4Ijp9', '%E2%80%AE'];
  const statuses = new Map<number, number>();
  for (let i = 0; i < 400; i++) {
    const n = rnd(4);
    const qs = Array.from({ length: n }, () => `${pick(keys)}=${pick(values)}`).join('&');
    const path = `${pick(paths)}${qs ? `?${qs}` : ''}`;
    const r = await request(dash.url + path);
    statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    assert.ok([200, 400, 404, 405].includes(r.status), `${path} → ${r.status} ${r.body.slice(0, 200)}`);
    if (r.status !== 200) assert.match(JSON.parse(r.body).error.code, /^WPIPE_ERR_DASHBOARD_/, path);
  }
  assert.ok((statuses.get(200) ?? 0) > 10 && (statuses.get(400) ?? 0) > 10, JSON.stringify([...statuses]));
  assert.equal((await request(`${dash.url}/api/health`)).status, 200);
});

test('a run stopped after a checkpoint shows the checkpoint and its event', async () => {
  const { Pipeline } = await import('../src/index.js');
  const t4 = tempDir('wpipe-dashboard-cp-');
  const f4 = t4.file('cp.db');
  const p = new Pipeline({ pipelineName: 'cp', trackingDb: f4 }).setSteps([
    [() => ({ rows: 3 }), 'load'],
    [() => { throw new Error('stopped here'); }, 'boom'],
  ]);
  p.addCheckpoint('loaded', 'rows > 0');
  await p.run({}, { runId: 'cp-1' }).catch(() => undefined);
  await p.close();
  const d = await startDashboard({ db: f4, port: 0 });
  try {
    const run = (await (await fetch(`${d.url}/api/pipelines/cp-1`)).json()) as any;
    assert.equal(run.status, 'error');
    assert.deepEqual({ name: run.checkpoint.name, position: run.checkpoint.position, saves: run.checkpoint.saves }, { name: 'loaded', position: 1, saves: 1 });
    assert.deepEqual(run.events.map((e: any) => [e.type, e.name]), [['checkpoint', 'loaded']]);
    const events = (await (await fetch(`${d.url}/api/events?runId=cp-1&type=checkpoint`)).json()) as any[];
    assert.equal(events.length, 1);
  } finally {
    await d.close();
    t4.cleanup();
  }
});
