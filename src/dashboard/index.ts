/**
 * `startDashboard`: a web page and a JSON API over a run history (a `trackingDb` file), with live
 * updates. Reads on a read-only SQLite connection; it writes only to acknowledge an alert and, with a
 * token, to record reports from other hosts (ApiReporter → POST /api/ingest).
 *
 * Nothing is loaded or opened at import: the server, the database and the page's files come with the
 * first call (the `wpipe dashboard` command imports this module lazily).
 *
 * @example
 * ```ts
 * import { startDashboard } from 'wpipe';
 * const dash = await startDashboard({ db: 'runs.db' });            // http://127.0.0.1:8035
 * console.log(dash.url);
 * await dash.close();
 * const shared = await startDashboard({ db: 'runs.db', host: '0.0.0.0', token: process.env.WPIPE_DASHBOARD_TOKEN });
 * ```
 */
import { WpipeError, checkOptions, describeType, invalidOption } from '../errors.js';
import { isLoopback } from './hosts.js';
import type { DashboardHandle } from './start.js';

/** Options of {@link startDashboard}. */
export interface DashboardOptions {
  /** The run history: the SQLite file your pipelines' `trackingDb` names. It must exist. */
  db: string;
  /** Address to listen on (default '127.0.0.1'). Anything but loopback requires `token`. */
  host?: string;
  /** Port (default 8035; 0 picks a free one, see the handle's `url`). */
  port?: number;
  /**
   * Secret every API request must carry (`Authorization: Bearer …`, or open the page as
   * `/?token=…`, which sets a cookie). Required off loopback; optional on it.
   */
  token?: string;
  /** How often the live feed checks the database for changes, in ms (default 250). */
  pollMs?: number;
}

/** What {@link startDashboard} resolves to. */
export type { DashboardHandle };

const OPTIONS = ['db', 'host', 'port', 'token', 'pollMs'] as const;

/**
 * Starts the dashboard. Rejects with `WPIPE_ERR_DASHBOARD_TOKEN_REQUIRED` for a non-loopback host
 * without a token, `WPIPE_ERR_DASHBOARD_LISTEN` when the port cannot be had, `WPIPE_ERR_STORAGE` when
 * the database is missing or unreadable, and a TypeError/RangeError (`WPIPE_ERR_INVALID_OPTION`) for
 * a bad option.
 *
 * @example
 * ```ts
 * const { url, close } = await startDashboard({ db: 'runs.db', port: 0 });
 * const health = await (await fetch(`${url}/api/health`)).json(); // { status: 'healthy', … }
 * await close();
 * ```
 */
export async function startDashboard(options: DashboardOptions): Promise<DashboardHandle> {
  checkOptions('startDashboard', options, OPTIONS);
  if (options === undefined || options === null) throw invalidOption('startDashboard: options { db } are required');
  const { db, host = '127.0.0.1', port = 8035, token, pollMs = 250 } = options;
  if (typeof db !== 'string' || db.length === 0) throw invalidOption(`startDashboard: db must be the path of a run history file, got ${describeType(db)}`);
  if (typeof host !== 'string' || host.length === 0) throw invalidOption(`startDashboard: host must be a non-empty string, got ${describeType(host)}`);
  if (typeof port !== 'number' || !Number.isInteger(port)) throw invalidOption(`startDashboard: port must be an integer, got ${describeType(port)}`);
  if (port < 0 || port > 65535) throw invalidOption(`startDashboard: port must be 0–65535, got ${port}`, 'RangeError');
  if (token !== undefined && (typeof token !== 'string' || token.length === 0)) throw invalidOption(`startDashboard: token must be a non-empty string, got ${describeType(token)}`);
  if (typeof pollMs !== 'number' || !Number.isFinite(pollMs) || pollMs < 10 || pollMs > 60_000) {
    throw invalidOption(`startDashboard: pollMs must be a number of ms from 10 to 60000, got ${String(pollMs)}`, 'RangeError');
  }
  if (!isLoopback(host) && token === undefined) {
    throw new WpipeError('WPIPE_ERR_DASHBOARD_TOKEN_REQUIRED',
      `startDashboard: listening on ${host} would show the run history (inputs, outputs, errors) to other machines without any check. `
      + 'Pass a token (startDashboard({ …, token }) or `wpipe dashboard --token T`; open the page as /?token=T), or listen on 127.0.0.1',
      { details: { host } });
  }
  // The server, its store and node:http load here, at the first start, not when wpipe is imported.
  const { launchDashboard } = await import('./start.js');
  return launchDashboard({ db, host, port, token, pollMs });
}

export { ApiReporter, type ApiReporterOptions, type ApiReporterStats } from './reporter.js';
export { ApiClient, type ApiClientOptions } from './api-client.js';
