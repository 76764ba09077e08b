/**
 * The live feed behind `/api/stream` (Server-Sent Events): one poller per dashboard, running only
 * while a page listens. Every `pollMs` it asks SQLite for `PRAGMA data_version` — a counter the
 * read-only connection sees move whenever another connection commits, answered from the connection's
 * own state without reading a page — and only when it moved does it look for runs that are new or
 * changed:
 * - runs started at or after the newest start seen, minus {@link LATE_WINDOW_MS} (a writer folds its
 *   journal every few ms, so a row can reach SQLite a little after runs that started later), walked
 *   on the started_at index and capped at {@link MAX_PUSH};
 * - runs last seen `running` (primary-key lookups), so a long run's end is pushed even when many runs
 *   started after it.
 * A run is pushed when its (status, completed_at, updated_at) differs from what was pushed before.
 *
 * @example
 * ```ts
 * const feed = new LiveFeed(store, 250);
 * const stop = feed.subscribe((runs) => send(runs));
 * ```
 */
import type { DashboardRun, DashboardStore } from './store.js';

/** How far before the newest start the feed looks again for rows that arrived late. */
export const LATE_WINDOW_MS = 10_000;
/** Most runs one poll pushes (a burst of thousands is a page reload's job, not a push's). */
export const MAX_PUSH = 500;
/** Running runs the feed follows by id at most. */
const MAX_WATCHED = 2000;

type Listener = (runs: DashboardRun[]) => void;

const fingerprint = (r: DashboardRun): string => `${r.status}|${r.completedAt ?? ''}|${r.updatedAt ?? ''}|${r.durationMs ?? ''}`;

export class LiveFeed {
  private readonly listeners = new Set<Listener>();
  private timer: NodeJS.Timeout | undefined;
  private version = -1;
  private newest: string | null = null;
  private readonly seen = new Map<string, string>();
  private readonly running = new Set<string>();
  /** Polls that found a change (for tests and the bench). */
  changes = 0;

  constructor(private readonly store: DashboardStore, private readonly pollMs: number) {}

  /** Adds a listener; the poller starts with the first and stops with the last. */
  subscribe(fn: Listener): () => void {
    if (this.listeners.size === 0) this.start();
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
      if (this.listeners.size === 0) this.stop();
    };
  }

  private start(): void {
    // The baseline: what is there now is not news.
    this.version = this.store.dataVersion();
    this.newest = this.store.newestStart();
    this.seen.clear();
    this.running.clear();
    if (this.newest) for (const r of this.store.runsSince(this.windowStart(this.newest), MAX_PUSH)) this.remember(r);
    this.timer = setInterval(() => this.poll(), this.pollMs);
    this.timer.unref();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private windowStart(newest: string): string {
    return new Date(Date.parse(newest) - LATE_WINDOW_MS).toISOString();
  }

  private remember(r: DashboardRun): void {
    this.seen.set(r.runId, fingerprint(r));
    if (r.status === 'running') {
      if (this.running.size < MAX_WATCHED) this.running.add(r.runId);
    } else this.running.delete(r.runId);
  }

  /** One poll (public for tests). Returns the runs pushed. */
  poll(): DashboardRun[] {
    let version: number;
    try {
      version = this.store.dataVersion();
    } catch {
      return []; // closed under us
    }
    if (version === this.version) return [];
    this.version = version;
    this.changes++;
    const candidates = new Map<string, DashboardRun>();
    const since = this.newest ? this.windowStart(this.newest) : '';
    for (const r of this.store.runsSince(since, MAX_PUSH)) candidates.set(r.runId, r);
    const watched = [...this.running].filter((id) => !candidates.has(id));
    for (const r of this.store.runsById(watched)) candidates.set(r.runId, r);
    const pushed: DashboardRun[] = [];
    for (const r of candidates.values()) {
      if (this.seen.get(r.runId) === fingerprint(r)) continue;
      this.remember(r);
      pushed.push(r);
      if (this.newest === null || r.startedAt > this.newest) this.newest = r.startedAt;
    }
    // Keep the memory bounded: forget finished runs that fell out of the window.
    if (this.seen.size > 4 * MAX_PUSH && this.newest) {
      const floor = this.windowStart(this.newest);
      const keep = new Set(this.store.runsSince(floor, MAX_PUSH).map((r) => r.runId));
      for (const id of this.seen.keys()) if (!keep.has(id) && !this.running.has(id)) this.seen.delete(id);
    }
    if (pushed.length) for (const fn of this.listeners) fn(pushed);
    return pushed;
  }

  close(): void {
    this.stop();
    this.listeners.clear();
  }
}
