/**
 * Where the BullMQ queues are: the Redis connection and the queue name every part of the BullMQ
 * layer agrees on (the 'bullmq' executor, `pipe.enqueue`, `startWorker`, `wpipe worker`), and the
 * shape of the jobs that cross it.
 *
 * Two BullMQ queues per name: `<name>` carries one attempt of one step (a Parallel branch or a step
 * with `executor: 'bullmq'`); `<name>-runs` carries whole runs (`pipe.enqueue`). They differ in who
 * retries: a step job is run once (BullMQ `attempts: 1`, workers with `maxStalledCount: 0`: a job
 * whose worker died fails rather than runs again behind the engine's back; the engine's retries
 * and deadlines decide), a run job is BullMQ's to retry (its stalled-job check re-queues the run of
 * a worker that died; the run id claim and checkpoints make the retry resume, not repeat).
 */
import { WpipeError, describeType, invalidOption } from '../errors.js';

/** ioredis connection options as BullMQ takes them (host, port, password, db, tls, …). */
export interface RedisConnectionOptions {
  readonly host?: string;
  readonly port?: number;
  readonly username?: string;
  readonly password?: string;
  readonly db?: number;
  readonly [key: string]: unknown;
}

/** A Redis URL (`redis://[user:pass@]host:port[/db]`, `rediss://` for TLS) or ioredis options. */
export type QueueConnection = string | RedisConnectionOptions;

/** Where a pipeline's jobs go. */
export interface QueueOptions {
  /** The Redis server. */
  readonly connection: QueueConnection;
  /** The queue name (default 'wpipe'); whole runs use `<name>-runs`. Letters, digits, `_`, `-`, `.`. */
  readonly name?: string;
  /** BullMQ's key prefix (default 'bull'). */
  readonly prefix?: string;
}

/** A checked QueueOptions. */
export interface ResolvedQueue {
  readonly connection: Record<string, unknown>;
  readonly name: string;
  readonly runsName: string;
  readonly prefix: string;
  /** The Redis pub/sub channel the engine tells workers on to abort an attempt. */
  readonly abortChannel: string;
  /** For messages: host:port/name. */
  readonly label: string;
}

const NAME = /^[A-Za-z0-9_.-]{1,200}$/;

/**
 * Checks queue options and turns a URL into ioredis options (with `maxRetriesPerRequest: null`,
 * which BullMQ's workers require).
 *
 * @example
 * ```ts
 * resolveQueue('useBullmq()', { connection: 'redis://127.0.0.1:6379', name: 'orders' });
 * ```
 */
export function resolveQueue(where: string, options: unknown): ResolvedQueue {
  if (typeof options !== 'object' || options === null) throw invalidOption(`${where}: expected { connection, name? }, got ${describeType(options)}`);
  const o = options as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['connection', 'name', 'prefix'].includes(k)) throw invalidOption(`${where}: unknown option '${k}' (known: connection, name, prefix)`);
  }
  const name = o.name === undefined ? 'wpipe' : o.name;
  if (typeof name !== 'string' || !NAME.test(name)) throw invalidOption(`${where}: name must be 1-200 letters, digits, '_', '-' or '.', got ${typeof name === 'string' ? `'${name}'` : describeType(name)}`);
  const prefix = o.prefix === undefined ? 'bull' : o.prefix;
  if (typeof prefix !== 'string' || !NAME.test(prefix)) throw invalidOption(`${where}: prefix must be 1-200 letters, digits, '_', '-' or '.', got ${typeof prefix === 'string' ? `'${prefix}'` : describeType(prefix)}`);
  const connection = connectionOptions(where, o.connection);
  const label = `${String(connection.host ?? '127.0.0.1')}:${String(connection.port ?? 6379)}/${name}`;
  return { connection, name, runsName: `${name}-runs`, prefix, abortChannel: `${prefix}:${name}:wpipe-abort`, label };
}

/** A connection URL as messages show it: the user and password part replaced by `***`. */
function maskUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/?#]*@/i, '$1***@');
}

function connectionOptions(where: string, c: unknown): Record<string, unknown> {
  if (typeof c === 'string') {
    let u: URL;
    try {
      u = new URL(c);
    } catch {
      throw invalidOption(`${where}: connection '${maskUrl(c)}' is not a URL (redis://host:port[/db])`);
    }
    if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw invalidOption(`${where}: connection must be a redis:// or rediss:// URL, got '${u.protocol}'`);
    const out: Record<string, unknown> = { host: u.hostname || '127.0.0.1', port: u.port === '' ? 6379 : Number(u.port), maxRetriesPerRequest: null };
    if (u.username !== '') out.username = decodeURIComponent(u.username);
    if (u.password !== '') out.password = decodeURIComponent(u.password);
    const db = u.pathname.replace(/^\//, '');
    if (db !== '') {
      if (!/^\d+$/.test(db)) throw invalidOption(`${where}: the database in '${maskUrl(c)}' must be a number`);
      out.db = Number(db);
    }
    if (u.protocol === 'rediss:') out.tls = {};
    return out;
  }
  if (typeof c === 'object' && c !== null && !Array.isArray(c)) return { ...(c as Record<string, unknown>), maxRetriesPerRequest: null };
  throw invalidOption(`${where}: connection must be a redis:// URL or ioredis options { host, port, … }, got ${describeType(c)}`);
}

/**
 * The error for a Redis that cannot be reached (or refused a command) while adding or watching a job.
 *
 * @example
 * ```ts
 * throw queueUnavailable(q, 'add a job', e);
 * ```
 */
export function queueUnavailable(q: ResolvedQueue, doing: string, cause: unknown): WpipeError {
  return new WpipeError('WPIPE_ERR_QUEUE_UNAVAILABLE', `the BullMQ queue ${q.label} could not ${doing}: ${cause instanceof Error ? cause.message : String(cause)}`, {
    cause, details: { queue: q.name, host: q.connection.host, port: q.connection.port },
  });
}

/** Job data of a step attempt: readable fields for dashboards, and the request as v8 serialization (base64). */
export interface StepJobData {
  readonly v: 1;
  readonly runId: string;
  readonly stepName: string;
  readonly attempt: number;
  readonly moduleUrl: string;
  readonly exportName: string;
  /** v8.serialize(AttemptRequest), base64: structured clone's types (Map, Date, typed arrays …) survive. */
  readonly request: string;
}

/** Job data of a whole run. */
export interface RunJobData {
  readonly v: 1;
  /** The pipeline's pipelineName: the worker finds the pipeline by it. */
  readonly pipeline: string;
  readonly runId: string;
  /** v8.serialize(initial context), base64. */
  readonly data: string;
}
