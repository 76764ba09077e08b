/**
 * Starts the dashboard once startDashboard (index.ts) has checked its options: opens the store, listens,
 * and warms the statistics. Loaded on demand, so importing wpipe does not load node:http, the store or
 * the server.
 */
import { DashboardServer } from './server.js';
import { DashboardStore } from './store.js';

/** Options as startDashboard resolved them (defaults applied). */
export interface LaunchOptions {
  readonly db: string;
  readonly host: string;
  readonly port: number;
  readonly token: string | undefined;
  readonly pollMs: number;
}

/** A running dashboard (what startDashboard resolves with). */
export interface DashboardHandle {
  /** Where the page is, e.g. `http://127.0.0.1:8035`. */
  url: string;
  /** Stops listening, ends the live streams and closes the database connections. */
  close(): Promise<void>;
}

/**
 * Opens the history read-only and serves it.
 *
 * @example
 * ```ts
 * const handle = await launchDashboard({ db: 'runs.db', host: '127.0.0.1', port: 0, token: undefined, pollMs: 250 });
 * ```
 */
export async function launchDashboard({ db, host, port, token, pollMs }: LaunchOptions): Promise<DashboardHandle> {
  const store = DashboardStore.open(db);
  let server: DashboardServer;
  let url: string;
  try {
    server = new DashboardServer({ store, host, port, token, pollMs });
    url = await server.listen(port);
  } catch (error) {
    store.close();
    throw error;
  }
  // The first statistics count every step row (~1 s at a million steps, and SQLite reads block the
  // event loop); do it now, before anyone opens the page, so later calls only count what is new.
  // The same for the per-step-name totals of the analysis views, a moment later, so that requests
  // arriving in between are answered first.
  let warm = setTimeout(() => {
    try {
      store.stats();
    } catch {
      /* the page's own request will report it */
    }
    warm = setTimeout(() => {
      try {
        store.nameAggregates();
      } catch {
        /* idem */
      }
    }, 200);
    warm.unref();
  }, 20);
  warm.unref();
  let closing: Promise<void> | undefined;
  return {
    url,
    close: () => {
      clearTimeout(warm);
      closing ??= server.close().finally(() => store.close());
      return closing;
    },
  };
}
