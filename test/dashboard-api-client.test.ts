// ApiClient against a stand-in for the original's worker service (node:http on a free loopback
// port): headers, paths and bodies of every endpoint, and each failure with its ApiError family
// (501 request, 504 process, 505 task, 503 empty /endprocess answer).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { ApiClient, ApiError, Codes } from '../src/index.js';

interface Seen { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }
const seen: Seen[] = [];
/** What the service answers per path: [status, body]. */
const answers = new Map<string, [number, string]>();
let hang = false;
const sockets = new Set<net.Socket>();
const service = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
    if (hang) return;
    const [status, body] = answers.get(req.url ?? '') ?? [200, '{"ok":true}'];
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(body);
  });
});
service.on('connection', (s) => sockets.add(s));
let base = '';

before(async () => {
  await new Promise<void>((r) => service.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(service.address() as net.AddressInfo).port}`;
});
after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => service.close(() => r()));
});

test('every endpoint: path, method, bearer header and JSON body, as the original', async () => {
  const api = new ApiClient({ baseUrl: `${base}/`, token: 'tok' });
  assert.deepEqual(api.headers, { 'Content-Type': 'application/json', Authorization: 'Bearer tok' });
  answers.set('/matricula', [200, '{"id":"worker-123456"}']);
  answers.set('/newprocess', [200, '{"father":"p-1","sons":[{"id":"t-1"}]}']);
  seen.length = 0;
  assert.deepEqual(await api.registerWorker({ name: 'etl', version: 'v1', tasks: [] }), { id: 'worker-123456' });
  assert.deepEqual(await api.healthcheckWorker({ id: 'worker-123456' }), { ok: true });
  assert.deepEqual(await api.registerProcess({ id: 'worker-123456' }), { father: 'p-1', sons: [{ id: 't-1' }] });
  assert.deepEqual(await api.updateTask({ id: 't-1', status: 'done' }), { ok: true });
  assert.deepEqual(await api.endProcess({ id: 'p-1' }), { ok: true });
  assert.deepEqual(await api.getDashboardWorkers(), { ok: true });
  assert.deepEqual(await api.sendPost('/custom', [1, 2]), { ok: true });
  assert.deepEqual(await api.sendGet('/custom'), { ok: true });
  assert.deepEqual(seen.map((s) => [s.method, s.url]), [
    ['POST', '/matricula'], ['POST', '/healthchecker'], ['POST', '/newprocess'], ['POST', '/actualizar_task'],
    ['POST', '/endprocess'], ['GET', '/dashboard_workers'], ['POST', '/custom'], ['GET', '/custom'],
  ]);
  assert.ok(seen.every((s) => s.headers.authorization === 'Bearer tok' && s.headers['content-type'] === 'application/json'));
  assert.deepEqual(JSON.parse(seen[0]!.body), { name: 'etl', version: 'v1', tasks: [] });
  assert.deepEqual(JSON.parse(seen[3]!.body), { id: 't-1', status: 'done' });
  const anonymous = new ApiClient({ baseUrl: base });
  assert.equal(anonymous.headers.Authorization, undefined, 'no "Bearer None"');
});

test('failures reject with ApiError in the original\'s families', async () => {
  const api = new ApiClient({ baseUrl: base, token: 'tok' });
  const expect = async (p: Promise<unknown>, code: string, errorCode: number, message: RegExp): Promise<void> => {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof ApiError, String(e));
      assert.equal(e.code, code);
      assert.equal(e.errorCode, errorCode);
      assert.match(e.message, message);
      return true;
    });
  };
  answers.set('/custom-500', [500, '{"error":"boom"}']);
  await expect(api.sendPost('/custom-500', {}), 'WPIPE_ERR_API', Codes.API_ERROR, /HTTP 500/);
  answers.set('/newprocess', [503, 'down']);
  await expect(api.registerProcess({ id: 'w' }), 'WPIPE_ERR_API_PROCESS', Codes.UPDATE_PROCESS_ERROR, /registerProcess: POST .*\/newprocess answered HTTP 503/);
  answers.set('/actualizar_task', [400, '{}']);
  await expect(api.updateTask({}), 'WPIPE_ERR_API_TASK', Codes.UPDATE_TASK, /updateTask/);
  answers.set('/endprocess', [200, '']);
  await expect(api.endProcess({ id: 'p' }), 'WPIPE_ERR_API_PROCESS_END', Codes.UPDATE_PROCESS_OK, /API problem ending process/);
  answers.set('/endprocess', [200, 'false']);
  await expect(api.endProcess({ id: 'p' }), 'WPIPE_ERR_API_PROCESS_END', 503, /API problem ending process/);
  answers.set('/matricula', [200, '<html>not json']);
  await expect(api.registerWorker({}), 'WPIPE_ERR_API', 501, /not JSON/);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  await expect(api.sendPost('/x', cyclic), 'WPIPE_ERR_API', 501, /cannot be sent as JSON/);

  const dead = net.createServer();
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
  const port = (dead.address() as net.AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  await expect(new ApiClient({ baseUrl: `http://127.0.0.1:${port}` }).sendGet('/x'), 'WPIPE_ERR_API', 501, /failed: fetch failed/);

  hang = true;
  try {
    await expect(new ApiClient({ baseUrl: base, timeoutMs: 150 }).updateTask({}), 'WPIPE_ERR_API_TASK', 505, /no answer within 150 ms/);
  } finally {
    hang = false;
  }
});

test('options and endpoints are checked', async () => {
  assert.throws(() => new ApiClient({ baseUrl: '' }), /baseUrl must be the service's address/);
  assert.throws(() => new ApiClient({ baseUrl: 'nope' }), /not a URL/);
  assert.throws(() => new ApiClient({ baseUrl: 'http://x', timeoutMs: 0 }), RangeError);
  assert.throws(() => new ApiClient({ baseUrl: 'http://x', tokn: 'a' } as never), /did you mean token\?/);
  await assert.rejects(new ApiClient({ baseUrl: 'http://x' }).sendGet('relative'), /endpoint must start with '\/'/);
});
