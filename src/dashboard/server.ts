/**
 * The dashboard's HTTP server: plain `node:http` with a table of routes.
 *
 * Why not a framework: the server has ~20 GET routes over synchronous SQLite reads, one POST and one
 * event stream; what a framework adds (schema validation, plugins, a logger) costs a dependency
 * tree and start-up time for an embedded library, while the parts that matter here — strict
 * parameter checks that answer 400 and never 500, the security headers, the token check — are a
 * few dozen lines either way and are easier to audit in one file.
 *
 * Security (docs/architecture.md "The dashboard's security rules"):
 * - loopback by default; any other host needs a token (startDashboard refuses otherwise);
 * - with a token, every /api request must carry it (`Authorization: Bearer …`, or the HttpOnly,
 *   SameSite=Strict cookie set when the page is opened as `/?token=…`), compared in constant time;
 * - without a token, the Host header must name a loopback address (a DNS-rebinding page cannot
 *   read the API through a name of its own);
 * - POST (acknowledge) also needs a same-origin request: a browser's cross-site POST carries an
 *   Origin (and Sec-Fetch-Site) that does not match and is refused;
 * - the page is static files: a CSP with `script-src 'self'` (no inline script), nosniff, no framing;
 *   the page sets every stored value as text (public/*.js never assigns innerHTML).
 */
import type http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { WpipeError } from '../errors.js';
import { packageRoot } from '../paths.js';
import { LiveFeed } from './live.js';
import { isLoopback } from './hosts.js';

export { isLoopback };
import { DATA_TABLES, DashboardStore, RUN_STATUSES, decodeCursor, type IngestReport, type IngestRunReport, type IngestStepReport } from './store.js';
import type { RunStatus } from '../storage/records.js';

/** Headers on every response. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
});

const COOKIE = 'wpipe_dashboard_token';

class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

const bad = (message: string): HttpError => new HttpError(400, 'WPIPE_ERR_DASHBOARD_BAD_REQUEST', message);

/** Whether `host` is a loopback address or name. */
/** Constant-time comparison of two secrets of any length (hashes first, so lengths do not leak). */
export function sameSecret(a: string, b: string): boolean {
  const ha = crypto.createHash('sha256').update(a, 'utf8').digest();
  const hb = crypto.createHash('sha256').update(b, 'utf8').digest();
  return crypto.timingSafeEqual(ha, hb);
}

// ---- query parameters: every route names the ones it takes; anything else is a 400 ----

type Parser = (raw: string, name: string) => unknown;

const intIn = (min: number, max: number): Parser => (raw, name) => {
  if (!/^\d{1,9}$/.test(raw)) throw bad(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw.slice(0, 40))}`);
  const n = Number(raw);
  if (n < min || n > max) throw bad(`${name} must be an integer from ${min} to ${max}, got ${n}`);
  return n;
};
const text = (max: number): Parser => (raw, name) => {
  if (raw.length === 0) throw bad(`${name} must not be empty`);
  if (raw.length > max) throw bad(`${name} is longer than ${max} characters`);
  return raw;
};
const oneOf = (values: readonly string[]): Parser => (raw, name) => {
  if (!values.includes(raw)) throw bad(`${name} must be one of ${values.join(', ')}, got ${JSON.stringify(raw.slice(0, 40))}`);
  return raw;
};
const cursor: Parser = (raw, name) => {
  const c = decodeCursor(raw);
  if (!c) throw bad(`${name} is not a cursor this server gave out (use nextCursor of the previous page)`);
  return c;
};
const flag: Parser = (raw, name) => {
  if (raw !== 'true' && raw !== 'false' && raw !== '1' && raw !== '0') throw bad(`${name} must be true or false`);
  return raw === 'true' || raw === '1';
};

function parseQuery(url: URL, spec: Record<string, Parser>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of new Set(url.searchParams.keys())) {
    const parser = spec[key];
    if (!parser) {
      const known = Object.keys(spec);
      throw bad(`unknown query parameter ${JSON.stringify(key.slice(0, 40))}${known.length ? `; this path takes ${known.join(', ')}` : '; this path takes none'}`);
    }
    const values = url.searchParams.getAll(key);
    if (values.length > 1) throw bad(`query parameter ${key} given ${values.length} times`);
    out[key] = parser(values[0]!, key);
  }
  return out;
}

function decodeSegment(raw: string, name: string): string {
  let v: string;
  try {
    v = decodeURIComponent(raw);
  } catch {
    throw bad(`${name} is not valid percent-encoding`);
  }
  if (v.length === 0 || v.length > 500) throw bad(`${name} must be 1–500 characters`);
  return v;
}

// ---- ingest (reports from other hosts) ----

/** Largest body POST /api/ingest reads. */
export const INGEST_MAX_BYTES = 4 * 1024 * 1024;
/** Most reports in one batch. */
export const INGEST_MAX_REPORTS = 5000;

const RUN_REPORT_STATUSES = ['running', 'completed', 'error', 'cancelled'];
const STEP_REPORT_STATUSES = ['running', 'completed', 'error', 'skipped', 'cancelled', 'interrupted'];

function checkIngest(body: unknown): { source: { host: string; worker: string | null }; reports: IngestReport[] } {
  const obj = (v: unknown, where: string): Record<string, unknown> => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(`${where} must be an object`);
    return v as Record<string, unknown>;
  };
  const strIn = (o: Record<string, unknown>, k: string, where: string, max: number, optional = false): string | null => {
    const v = o[k];
    if (v === undefined || v === null) {
      if (optional) return null;
      throw bad(`${where}.${k} is required`);
    }
    if (typeof v !== 'string' || v.length === 0 || v.length > max) throw bad(`${where}.${k} must be a string of 1–${max} characters`);
    return v;
  };
  const time = (o: Record<string, unknown>, k: string, where: string, optional = false): string | null => {
    const v = strIn(o, k, where, 40, optional);
    if (v === null) return null;
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) throw bad(`${where}.${k} must be an ISO-8601 time, got ${JSON.stringify(v)}`);
    return d.toISOString();
  };
  const numIn = (o: Record<string, unknown>, k: string, where: string, integer: boolean, min: number): number | null => {
    const v = o[k];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
      throw bad(`${where}.${k} must be ${integer ? 'an integer' : 'a number'} ≥ ${min}`);
    }
    return v;
  };
  const b = obj(body, 'the body');
  const src = obj(b.source, 'source');
  const source = { host: strIn(src, 'host', 'source', 200)!, worker: strIn(src, 'worker', 'source', 200, true) };
  if (!Array.isArray(b.reports)) throw bad('reports must be an array');
  if (b.reports.length > INGEST_MAX_REPORTS) throw bad(`at most ${INGEST_MAX_REPORTS} reports per batch, got ${b.reports.length}`);
  const reports = b.reports.map((raw: unknown, i: number): IngestReport => {
    const where = `reports[${i}]`;
    const r = obj(raw, where);
    const runId = strIn(r, 'runId', where, 500)!;
    if (r.type === 'run') {
      const status = strIn(r, 'status', where, 20)!;
      if (!RUN_REPORT_STATUSES.includes(status)) throw bad(`${where}.status must be one of ${RUN_REPORT_STATUSES.join(', ')}`);
      return {
        type: 'run', runId, pipelineName: strIn(r, 'pipelineName', where, 500)!, status: status as IngestRunReport['status'],
        startedAt: time(r, 'startedAt', where)!, completedAt: time(r, 'completedAt', where, true), durationMs: numIn(r, 'durationMs', where, false, 0),
        errorMessage: strIn(r, 'errorMessage', where, 100_000, true), errorCode: strIn(r, 'errorCode', where, 200, true),
        errorStep: strIn(r, 'errorStep', where, 500, true), parentRunId: strIn(r, 'parentRunId', where, 500, true),
      };
    }
    if (r.type === 'step') {
      const status = strIn(r, 'status', where, 20)!;
      if (!STEP_REPORT_STATUSES.includes(status)) throw bad(`${where}.status must be one of ${STEP_REPORT_STATUSES.join(', ')}`);
      return {
        type: 'step', runId, order: numIn(r, 'order', where, true, 1) ?? (() => { throw bad(`${where}.order is required`); })(),
        name: strIn(r, 'name', where, 500)!, kind: strIn(r, 'kind', where, 40, true) ?? 'task', version: strIn(r, 'version', where, 100, true),
        status: status as IngestStepReport['status'], attempts: numIn(r, 'attempts', where, true, 0) ?? 1,
        parentOrder: numIn(r, 'parentOrder', where, true, 1), executor: strIn(r, 'executor', where, 40, true),
        startedAt: time(r, 'startedAt', where)!, durationMs: numIn(r, 'durationMs', where, false, 0),
        errorMessage: strIn(r, 'errorMessage', where, 100_000, true), errorCode: strIn(r, 'errorCode', where, 200, true),
      };
    }
    throw bad(`${where}.type must be 'run' or 'step'`);
  });
  return { source, reports };
}

// ---- static files ----

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

interface StaticFile { type: string; body: Buffer; etag: string }

/** The page's files, read once: everything in src/dashboard/public plus uPlot's script and styles. */
function loadStatic(): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const add = (urlPath: string, file: string): void => {
    const body = fs.readFileSync(file);
    const type = TYPES[path.extname(file)] ?? 'application/octet-stream';
    files.set(urlPath, { type, body, etag: `"${crypto.createHash('sha1').update(body).digest('base64url')}"` });
  };
  const dir = path.join(packageRoot(), 'src', 'dashboard', 'public');
  for (const name of fs.readdirSync(dir)) {
    if (!TYPES[path.extname(name)]) continue;
    add(`/${name}`, path.join(dir, name));
  }
  // uPlot ships in the package's dependencies: served from node_modules, never from a CDN.
  const require = createRequire(import.meta.url);
  const uplotMain = require.resolve('uplot');
  add('/vendor/uPlot.iife.min.js', path.join(path.dirname(uplotMain), 'uPlot.iife.min.js'));
  add('/vendor/uPlot.min.css', path.join(path.dirname(uplotMain), 'uPlot.min.css'));
  const index = files.get('/index.html');
  if (index) files.set('/', index);
  return files;
}

// ---- the server ----

/** Options of the server (see startDashboard for the public ones). */
export interface ServerOptions {
  store: DashboardStore;
  host: string;
  port: number;
  token: string | undefined;
  pollMs: number;
}

type Handler = (ctx: { url: URL; params: string[]; req: http.IncomingMessage }) => unknown;
interface Route { method: 'GET' | 'POST'; pattern: RegExp; handler: Handler }

export class DashboardServer {
  readonly server: http.Server;
  private readonly store: DashboardStore;
  private readonly token: string | undefined;
  private readonly feed: LiveFeed;
  private readonly files: Map<string, StaticFile>;
  private readonly routes: Route[];
  private readonly streams = new Set<http.ServerResponse>();
  private port = 0;
  private readonly host: string;

  constructor(options: ServerOptions) {
    this.store = options.store;
    this.token = options.token;
    this.host = options.host;
    this.feed = new LiveFeed(options.store, options.pollMs);
    this.files = loadStatic();
    this.routes = this.makeRoutes();
    // node:http through require, here: in the one-file bundle a static import would load it (and
    // net, stream …) whenever wpipe is imported, not when a dashboard starts.
    const { createServer } = createRequire(import.meta.url)('node:http') as typeof http;
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
  }

  /** Listens; resolves with the URL. */
  listen(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void => {
        reject(new WpipeError('WPIPE_ERR_DASHBOARD_LISTEN',
          `dashboard: cannot listen on ${this.host}:${port}: ${error.message}${error.code === 'EADDRINUSE' ? ' — the port is taken: pass another port (0 picks a free one)' : ''}`,
          { cause: error, details: { host: this.host, port, syscallCode: error.code } }));
      };
      this.server.once('error', onError);
      this.server.listen(port, this.host, () => {
        this.server.off('error', onError);
        this.port = (this.server.address() as AddressInfo).port;
        const h = this.host.includes(':') ? `[${this.host}]` : this.host;
        resolve(`http://${h}:${this.port}`);
      });
    });
  }

  async close(): Promise<void> {
    this.feed.close();
    for (const res of this.streams) res.end();
    this.streams.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** Sends JSON; with `t0`, a Server-Timing header says how long the query and serialization took. */
  private send(res: http.ServerResponse, status: number, body: unknown, t0?: number): void {
    const data = Buffer.from(JSON.stringify(body));
    const timing: Record<string, string> = t0 === undefined ? {} : { 'Server-Timing': `app;dur=${(performance.now() - t0).toFixed(3)}` };
    res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': data.length, ...timing });
    res.end(data);
  }

  private fail(res: http.ServerResponse, error: HttpError): void {
    this.send(res, error.status, { error: { code: error.code, message: error.message } });
  }

  /** The token a request carries: `Authorization: Bearer …`, else the page's cookie. */
  private tokenOf(req: http.IncomingMessage): string | undefined {
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) return auth.slice(7);
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const [k, ...v] = part.trim().split('=');
      if (k !== COOKIE) continue;
      try {
        return decodeURIComponent(v.join('='));
      } catch {
        return undefined;
      }
    }
    return undefined;
  }

  private authorized(req: http.IncomingMessage): boolean {
    if (this.token === undefined) return true;
    const given = this.tokenOf(req);
    return given !== undefined && sameSecret(given, this.token);
  }

  /** Without a token, only loopback names may reach the server (DNS rebinding). */
  private hostAllowed(req: http.IncomingMessage): boolean {
    if (this.token !== undefined) return true;
    const host = req.headers.host;
    if (!host) return false;
    const name = host.replace(/:\d+$/, '');
    return isLoopback(name);
  }

  private sameOrigin(req: http.IncomingMessage): boolean {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
    const origin = req.headers.origin;
    if (origin === undefined) return true; // not a browser's cross-site request (browsers send Origin on POST)
    return origin === `http://${req.headers.host ?? ''}`;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://dashboard.invalid');
    } catch {
      this.fail(res, bad('the request URL cannot be parsed'));
      return;
    }
    try {
      if (!this.hostAllowed(req)) throw new HttpError(403, 'WPIPE_ERR_DASHBOARD_FORBIDDEN', 'this dashboard answers on loopback names only (127.0.0.1, localhost, [::1]); start it with a token to serve other names');
      if (!url.pathname.startsWith('/api/')) {
        this.serveStatic(req, res, url);
        return;
      }
      if (!this.authorized(req)) throw new HttpError(401, 'WPIPE_ERR_DASHBOARD_UNAUTHORIZED', 'this dashboard needs its token: open the page as /?token=…, or send Authorization: Bearer …');
      if (url.pathname === '/api/ingest') {
        if (req.method !== 'POST') throw new HttpError(405, 'WPIPE_ERR_DASHBOARD_BAD_REQUEST', `${req.method ?? '?'} is not allowed here; use POST`);
        if (this.token === undefined) {
          throw new HttpError(403, 'WPIPE_ERR_DASHBOARD_FORBIDDEN', 'this dashboard takes reports from other hosts only with a token: start it with one (--token T) and give the same token to the reporters');
        }
        if (!this.sameOrigin(req)) throw new HttpError(403, 'WPIPE_ERR_DASHBOARD_FORBIDDEN', 'cross-origin request refused');
        parseQuery(url, {});
        this.ingest(req, res).catch((error: unknown) => {
          if (error instanceof HttpError) this.fail(res, error);
          else this.send(res, 500, { error: { code: (error as { code?: string }).code ?? 'WPIPE_ERR_INTERNAL', message: (error as Error).message } });
        });
        return;
      }
      if (url.pathname === '/api/stream') {
        if (req.method !== 'GET') throw new HttpError(405, 'WPIPE_ERR_DASHBOARD_BAD_REQUEST', 'use GET');
        parseQuery(url, {});
        this.openStream(req, res);
        return;
      }
      let allowed: string[] = [];
      for (const route of this.routes) {
        const m = route.pattern.exec(url.pathname);
        if (!m) continue;
        if (route.method !== req.method) { allowed.push(route.method); continue; }
        if (route.method === 'POST' && !this.sameOrigin(req)) {
          throw new HttpError(403, 'WPIPE_ERR_DASHBOARD_FORBIDDEN', 'cross-origin request refused: state changes must come from the dashboard page itself');
        }
        const t0 = performance.now();
        const body = route.handler({ url, params: m.slice(1), req });
        this.send(res, 200, body, t0);
        return;
      }
      allowed = [...new Set(allowed)];
      if (allowed.length) throw new HttpError(405, 'WPIPE_ERR_DASHBOARD_BAD_REQUEST', `${req.method ?? '?'} is not allowed here; use ${allowed.join(' or ')}`);
      throw new HttpError(404, 'WPIPE_ERR_DASHBOARD_NOT_FOUND', `no API path ${url.pathname.slice(0, 100)}`);
    } catch (error) {
      if (error instanceof HttpError) {
        this.fail(res, error);
        return;
      }
      const e = error as { code?: string; message?: string };
      this.send(res, 500, { error: { code: typeof e.code === 'string' ? e.code : 'WPIPE_ERR_INTERNAL', message: e.message ?? String(error) } });
    }
  }

  private serveStatic(req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'WPIPE_ERR_DASHBOARD_BAD_REQUEST', 'use GET');
    if (url.pathname === '/' && url.searchParams.has('token') && this.token !== undefined) {
      // Trade the token in the address for a cookie the page's requests (and EventSource) carry, and
      // drop it from the address bar (and from history) with a redirect.
      const given = url.searchParams.get('token') ?? '';
      if (!sameSecret(given, this.token)) throw new HttpError(401, 'WPIPE_ERR_DASHBOARD_UNAUTHORIZED', 'wrong token');
      res.writeHead(303, {
        ...SECURITY_HEADERS, Location: '/', 'Cache-Control': 'no-store',
        'Set-Cookie': `${COOKIE}=${encodeURIComponent(given)}; HttpOnly; SameSite=Strict; Path=/`,
      });
      res.end();
      return;
    }
    const file = this.files.get(url.pathname);
    if (!file) throw new HttpError(404, 'WPIPE_ERR_DASHBOARD_NOT_FOUND', `no file ${url.pathname.slice(0, 100)}`);
    if (req.headers['if-none-match'] === file.etag) {
      res.writeHead(304, { ...SECURITY_HEADERS, ETag: file.etag });
      res.end();
      return;
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': file.type, 'Content-Length': file.body.length, ETag: file.etag, 'Cache-Control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : file.body);
  }

  /** POST /api/ingest: a batch of run and step reports from another host's ApiReporter. */
  private async ingest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const type = req.headers['content-type'] ?? '';
    if (!/^application\/json\b/i.test(type)) throw new HttpError(415, 'WPIPE_ERR_DASHBOARD_BAD_REQUEST', 'send the reports as Content-Type: application/json');
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > INGEST_MAX_BYTES) throw new HttpError(413, 'WPIPE_ERR_DASHBOARD_BAD_REQUEST', `a batch of reports is at most ${INGEST_MAX_BYTES} bytes`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > INGEST_MAX_BYTES) {
        req.destroy();
        throw new HttpError(413, 'WPIPE_ERR_DASHBOARD_BAD_REQUEST', `a batch of reports is at most ${INGEST_MAX_BYTES} bytes`);
      }
      chunks.push(chunk);
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    } catch (error) {
      throw bad(`the body is not JSON: ${(error as Error).message}`);
    }
    const { source, reports } = checkIngest(body);
    const t0 = performance.now();
    const result = this.store.ingest(source, reports);
    this.send(res, 200, { status: 'ok', received: reports.length, ...result }, t0);
  }

  private openStream(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    this.streams.add(res);
    const unsubscribe = this.feed.subscribe((runs) => {
      res.write(`event: runs\ndata: ${JSON.stringify({ runs })}\n\n`);
    });
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    heartbeat.unref();
    const done = (): void => {
      clearInterval(heartbeat);
      unsubscribe();
      this.streams.delete(res);
    };
    req.on('close', done);
    res.on('close', done);
    res.write(`event: hello\ndata: ${JSON.stringify({ pollMs: 0 })}\n\n`);
  }

  private makeRoutes(): Route[] {
    const s = this.store;
    const r = (method: Route['method'], pattern: RegExp, handler: Handler): Route => ({ method, pattern, handler });
    const notFound = (what: string): HttpError => new HttpError(404, 'WPIPE_ERR_DASHBOARD_NOT_FOUND', what);
    return [
      r('GET', /^\/api\/health$/, ({ url }) => {
        parseQuery(url, {});
        return { status: 'healthy', db: path.basename(s.file), dataVersion: s.dataVersion() };
      }),
      r('GET', /^\/api\/stats$/, ({ url }) => {
        parseQuery(url, {});
        return s.stats();
      }),
      r('GET', /^\/api\/pipelines$/, ({ url }) => {
        const q = parseQuery(url, { status: oneOf(RUN_STATUSES), name: text(500), q: text(200), limit: intIn(1, 500), cursor });
        return s.listRuns({
          status: q.status as RunStatus | undefined, name: q.name as string | undefined, q: q.q as string | undefined,
          limit: (q.limit as number | undefined) ?? 50, cursor: q.cursor as [string, string] | undefined,
        });
      }),
      r('GET', /^\/api\/pipelines\/by-name\/([^/]+)$/, ({ url, params }) => {
        const name = decodeSegment(params[0]!, 'name');
        const q = parseQuery(url, { limit: intIn(1, 500), cursor });
        return s.runsByName(name, (q.limit as number | undefined) ?? 100, q.cursor as [string, string] | undefined);
      }),
      r('GET', /^\/api\/pipelines\/([^/]+)\/graph$/, ({ url, params }) => {
        parseQuery(url, {});
        const id = decodeSegment(params[0]!, 'run id');
        return s.graph(id) ?? (() => { throw notFound(`no run ${JSON.stringify(id.slice(0, 100))}`); })();
      }),
      r('GET', /^\/api\/pipelines\/([^/]+)$/, ({ url, params }) => {
        parseQuery(url, {});
        const id = decodeSegment(params[0]!, 'run id');
        return s.getRun(id) ?? (() => { throw notFound(`no run ${JSON.stringify(id.slice(0, 100))}`); })();
      }),
      r('GET', /^\/api\/trends$/, ({ url }) => {
        const q = parseQuery(url, { days: intIn(1, 366) });
        return { days: (q.days as number | undefined) ?? 7, points: s.trends((q.days as number | undefined) ?? 7) };
      }),
      r('GET', /^\/api\/alerts$/, ({ url }) => {
        const q = parseQuery(url, { severity: oneOf(['info', 'warning', 'critical']), limit: intIn(1, 1000), unacknowledged: flag });
        return s.alerts({ severity: q.severity as string | undefined, limit: (q.limit as number | undefined) ?? 50, unacknowledged: q.unacknowledged as boolean | undefined });
      }),
      r('GET', /^\/api\/alerts\/config$/, ({ url }) => {
        parseQuery(url, {});
        return s.alertsConfig();
      }),
      r('POST', /^\/api\/alerts\/([^/]+)\/acknowledge$/, ({ url, params }) => {
        parseQuery(url, {});
        const id = intIn(1, 2 ** 31 - 1)(decodeSegment(params[0]!, 'alert id'), 'alert id') as number;
        if (!s.acknowledgeAlert(id)) throw notFound(`no alert ${id}`);
        return { status: 'acknowledged', id };
      }),
      r('GET', /^\/api\/events$/, ({ url }) => {
        const q = parseQuery(url, { pipeline_id: text(500), runId: text(500), type: text(200), limit: intIn(1, 1000) });
        return s.events({ runId: (q.runId ?? q.pipeline_id) as string | undefined, type: q.type as string | undefined, limit: (q.limit as number | undefined) ?? 50 });
      }),
      r('GET', /^\/api\/slow-steps$/, ({ url }) => {
        const q = parseQuery(url, { limit: intIn(1, 100) });
        return s.slowSteps((q.limit as number | undefined) ?? 10);
      }),
      r('GET', /^\/api\/analysis\/states$/, ({ url }) => {
        parseQuery(url, {});
        return s.statesAnalysis();
      }),
      r('GET', /^\/api\/analysis\/pipelines$/, ({ url }) => {
        parseQuery(url, {});
        return s.pipelinesAnalysis();
      }),
      r('GET', /^\/api\/data\/([^/]+)$/, ({ url, params }) => {
        const table = decodeSegment(params[0]!, 'table');
        if (!Object.prototype.hasOwnProperty.call(DATA_TABLES, table)) {
          throw bad(`unknown table ${JSON.stringify(table.slice(0, 60))}; the tables are ${Object.keys(DATA_TABLES).join(', ')}`);
        }
        const q = parseQuery(url, { page: intIn(1, 100_000), page_size: intIn(1, 200), pageSize: intIn(1, 200), status: text(40), runId: text(500) });
        if (q.status !== undefined && !DATA_TABLES[table]!.status) throw bad(`table ${table} has no status column`);
        return s.tableData(table, {
          page: (q.page as number | undefined) ?? 1,
          pageSize: (q.pageSize ?? q.page_size ?? 20) as number,
          status: q.status as string | undefined,
          runId: q.runId as string | undefined,
        });
      }),
    ];
  }
}
