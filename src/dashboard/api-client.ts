/**
 * ApiClient: the Python original's HTTP client for its external "worker service" (reference §9.7,
 * §2.20), for users who run that service: bearer-token JSON requests to `<baseUrl><endpoint>` with a
 * timeout, and the worker endpoints by their original paths.
 *
 * One deliberate change: the original logged a failed request and returned `None`, which callers
 * could not tell from an empty answer. Here a failure rejects with an ApiError whose `errorCode`
 * keeps the original's families: 501 (`WPIPE_ERR_API`, any failed request), 504
 * (`WPIPE_ERR_API_PROCESS`, registering or ending a process), 505 (`WPIPE_ERR_API_TASK`, updating a
 * task) and 503 (`WPIPE_ERR_API_PROCESS_END`, `/endprocess` answered with nothing). `details` carry
 * the URL, the HTTP status and the body's start.
 *
 * @example
 * ```ts
 * const api = new ApiClient({ baseUrl: 'http://localhost:8418', token: 'secret' });
 * const { id } = await api.registerWorker({ name: 'etl', version: 'v1', tasks: [] }) as { id: string };
 * const { father } = await api.registerProcess({ id }) as { father: string };
 * await api.endProcess({ id: father });
 * ```
 */
import { ApiError, checkOptions, describeType, invalidOption, type WpipeErrorCode } from '../errors.js';

/** Options of {@link ApiClient}. */
export interface ApiClientOptions {
  /** The service's address, e.g. `http://localhost:8418`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <token>` (the original sent the literal `Bearer None` without one; here no header). */
  token?: string;
  /** Per request, in ms (default 10000, the original's 10 s). */
  timeoutMs?: number;
}

const OPTIONS = ['baseUrl', 'token', 'timeoutMs'] as const;

export class ApiClient {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  /** The headers of every request. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(options: ApiClientOptions) {
    checkOptions('ApiClient', options, OPTIONS);
    if (options === undefined || options === null) throw invalidOption('ApiClient: options { baseUrl } are required');
    if (typeof options.baseUrl !== 'string' || options.baseUrl.length === 0) {
      throw invalidOption(`ApiClient: baseUrl must be the service's address, got ${describeType(options.baseUrl)}`);
    }
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw invalidOption(`ApiClient: baseUrl is not a URL: ${JSON.stringify(options.baseUrl)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidOption(`ApiClient: baseUrl must be http(s), got ${url.protocol}`);
    if (options.token !== undefined && typeof options.token !== 'string') throw invalidOption(`ApiClient: token must be a string, got ${describeType(options.token)}`);
    const timeoutMs = options.timeoutMs ?? 10_000;
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw invalidOption(`ApiClient: timeoutMs must be a positive number of ms, got ${String(timeoutMs)}`, 'RangeError');
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = timeoutMs;
    this.headers = Object.freeze({
      'Content-Type': 'application/json',
      ...(options.token ? { Authorization: `Bearer ${options.token}` } : {}),
    });
  }

  private async request(method: 'GET' | 'POST', endpoint: string, data: unknown, code: WpipeErrorCode, what: string): Promise<unknown> {
    if (typeof endpoint !== 'string' || !endpoint.startsWith('/')) throw invalidOption(`ApiClient: endpoint must start with '/', got ${describeType(endpoint)}`);
    const url = `${this.baseUrl}${endpoint}`;
    let body: string | undefined;
    if (method === 'POST') {
      try {
        body = JSON.stringify(data ?? null);
      } catch (error) {
        throw new ApiError(`${what}: the data cannot be sent as JSON: ${(error as Error).message}`, { code, cause: error, details: { url } });
      }
    }
    let res: Response;
    try {
      res = await fetch(url, { method, headers: this.headers, body, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (error) {
      const e = error as Error;
      const why = e.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : `${e.message}${(e.cause as Error | undefined)?.message ? ` (${(e.cause as Error).message})` : ''}`;
      throw new ApiError(`${what}: ${method} ${url} failed: ${why}`, { code, cause: error, details: { url } });
    }
    const text = await res.text().catch(() => '');
    if (!res.ok) {
      throw new ApiError(`${what}: ${method} ${url} answered HTTP ${res.status}`, { code, details: { url, status: res.status, body: text.slice(0, 500) } });
    }
    if (text.trim() === '') return null;
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new ApiError(`${what}: ${method} ${url} answered something that is not JSON`, { code, cause: error, details: { url, status: res.status, body: text.slice(0, 500) } });
    }
  }

  /** POST `data` as JSON to `endpoint`; resolves with the parsed answer (null for an empty body). */
  sendPost(endpoint: string, data: unknown): Promise<unknown> {
    return this.request('POST', endpoint, data, 'WPIPE_ERR_API', 'sendPost');
  }

  /** GET `endpoint`; resolves with the parsed answer. */
  sendGet(endpoint: string): Promise<unknown> {
    return this.request('GET', endpoint, undefined, 'WPIPE_ERR_API', 'sendGet');
  }

  /** POST /matricula: registers a worker (`{ name, version, tasks }`); the answer carries its `id`. */
  registerWorker(data: unknown): Promise<unknown> {
    return this.request('POST', '/matricula', data, 'WPIPE_ERR_API', 'registerWorker');
  }

  /** POST /healthchecker. */
  healthcheckWorker(data: unknown): Promise<unknown> {
    return this.request('POST', '/healthchecker', data, 'WPIPE_ERR_API', 'healthcheckWorker');
  }

  /** POST /newprocess (`{ id: workerId }`): answers `{ father, sons: [{ id }] }`. Failure: 504. */
  registerProcess(data: unknown): Promise<unknown> {
    return this.request('POST', '/newprocess', data, 'WPIPE_ERR_API_PROCESS', 'registerProcess');
  }

  /** POST /endprocess. Failure: 504; an empty or falsy answer: 503, as the original. */
  async endProcess(data: unknown): Promise<unknown> {
    const answer = await this.request('POST', '/endprocess', data, 'WPIPE_ERR_API_PROCESS', 'endProcess');
    if (!answer) throw new ApiError('API problem ending process', { code: 'WPIPE_ERR_API_PROCESS_END', details: { url: `${this.baseUrl}/endprocess`, answer } });
    return answer;
  }

  /** POST /actualizar_task. Failure: 505. */
  updateTask(data: unknown): Promise<unknown> {
    return this.request('POST', '/actualizar_task', data, 'WPIPE_ERR_API_TASK', 'updateTask');
  }

  /** GET /dashboard_workers. */
  getDashboardWorkers(): Promise<unknown> {
    return this.request('GET', '/dashboard_workers', undefined, 'WPIPE_ERR_API', 'getDashboardWorkers');
  }
}
