/**
 * ApiReporter: a run observer that reports runs and steps to a remote wpipe dashboard
 * (`POST <baseUrl>/api/ingest`, with the dashboard's token), so one dashboard shows several hosts.
 * Each run carries its host and worker (`worker_id` / `worker_name` of the run row).
 *
 * A slow or failing remote never slows or fails a run unless asked (`required: true`):
 * - hooks only queue a report and return; a timer (or a full batch) sends the queue in batches of
 *   `batchSize`, one request at a time, so reports arrive in order;
 * - a failed request (network error, timeout of `timeoutMs`, HTTP 5xx or 429) is retried up to
 *   `retries` times with exponential backoff; then the batch is dropped and counted;
 * - the queue holds at most `maxQueue` reports: past that the oldest are dropped and counted;
 * - a 4xx answer other than 429 (a wrong token, a report the server refuses) is not retried:
 *   the batch is dropped, counted, and `stats.lastError` says why.
 * With `required: true`, `onRunEnd` waits until this run's reports are delivered and fails the run
 * (ProcessError, WPIPE_ERR_OBSERVER_FAILED, cause an ApiError) when they cannot be.
 *
 * Timers are unref'd: a reporter never keeps a process alive; `close()` sends what is queued (within
 * `timeoutMs` per request) and stops.
 *
 * @example
 * ```ts
 * const reporter = new ApiReporter({ baseUrl: 'http://dash.internal:8035', token: process.env.WPIPE_DASHBOARD_TOKEN! });
 * const pipe = new Pipeline({ pipelineName: 'orders', observers: [reporter] });
 * await pipe.run(order);
 * await reporter.close();
 * console.log(reporter.stats); // { sent, dropped, retries, queued, lastError }
 * ```
 */
import os from 'node:os';
import { ApiError, checkOptions, describeType, invalidOption } from '../errors.js';
import type { RunEndEvent, RunObserver, RunStartDecision, RunStartEvent, StepEndEvent } from '../engine/hooks.js';
import type { IngestReport } from './store.js';

/** Options of {@link ApiReporter}. */
export interface ApiReporterOptions {
  /** The dashboard's address, e.g. `http://dash.internal:8035`. */
  baseUrl: string;
  /** The dashboard's token (it accepts reports only with one). */
  token: string;
  /** Per request, in ms (default 5000). */
  timeoutMs?: number;
  /** Fail a run whose reports cannot be delivered (default false: count them as dropped). */
  required?: boolean;
  /** Reports per request (default 200). */
  batchSize?: number;
  /** How long a report may wait for a batch to fill, in ms (default 250). */
  flushMs?: number;
  /** Reports kept waiting at most; the oldest are dropped past it (default 10,000). */
  maxQueue?: number;
  /** Extra attempts of a failed request (default 3). */
  retries?: number;
  /** This host's name in the dashboard (default os.hostname()). */
  host?: string;
  /** This worker's name (default `pid <pid>`). */
  worker?: string;
}

/** Counters of an {@link ApiReporter}. */
export interface ApiReporterStats {
  /** Reports the dashboard accepted. */
  sent: number;
  /** Reports given up on (queue overflow, retries exhausted, refused). */
  dropped: number;
  /** Requests retried. */
  retries: number;
  /** Reports waiting now. */
  queued: number;
  /** The last delivery failure, if any. */
  lastError: string | null;
}

const OPTIONS = ['baseUrl', 'token', 'timeoutMs', 'required', 'batchSize', 'flushMs', 'maxQueue', 'retries', 'host', 'worker'] as const;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

function intOption(name: string, v: unknown, fallback: number, min: number, max: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw invalidOption(`ApiReporter: ${name} must be an integer, got ${describeType(v)}`);
  if (v < min || v > max) throw invalidOption(`ApiReporter: ${name} must be ${min}–${max}, got ${v}`, 'RangeError');
  return v;
}

interface Pending { report: IngestReport; seq: number }

export class ApiReporter implements RunObserver {
  readonly stats: ApiReporterStats = { sent: 0, dropped: 0, retries: 0, queued: 0, lastError: null };
  private readonly url: string;
  private readonly token: string;
  private readonly timeoutMs: number;
  private readonly required: boolean;
  private readonly batchSize: number;
  private readonly flushMs: number;
  private readonly maxQueue: number;
  private readonly retries: number;
  private readonly source: { host: string; worker: string };
  private queue: Pending[] = [];
  private seq = 0;
  /** Highest seq delivered or given up on (batches settle in order). */
  private settledUpTo = 0;
  private readonly waiters: { seq: number; resolve: () => void }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> | undefined;
  private readonly runStarts = new Map<string, { pipelineName: string; startedAt: string }>();
  /** Runs with a report given up on, kept until a `required` run end asks (bounded). */
  private readonly failedRuns = new Set<string>();

  constructor(options: ApiReporterOptions) {
    checkOptions('ApiReporter', options, OPTIONS);
    if (options === undefined || options === null) throw invalidOption('ApiReporter: options { baseUrl, token } are required');
    if (typeof options.baseUrl !== 'string') throw invalidOption(`ApiReporter: baseUrl must be a string, got ${describeType(options.baseUrl)}`);
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch {
      throw invalidOption(`ApiReporter: baseUrl is not a URL: ${JSON.stringify(options.baseUrl)}`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw invalidOption(`ApiReporter: baseUrl must be http(s), got ${base.protocol}`);
    if (typeof options.token !== 'string' || options.token.length === 0) {
      throw invalidOption('ApiReporter: token must be the dashboard\'s token (a dashboard accepts reports only with one)');
    }
    if (options.required !== undefined && typeof options.required !== 'boolean') throw invalidOption(`ApiReporter: required must be a boolean, got ${describeType(options.required)}`);
    for (const k of ['host', 'worker'] as const) {
      const v = options[k];
      if (v !== undefined && (typeof v !== 'string' || v.length === 0 || v.length > 200)) throw invalidOption(`ApiReporter: ${k} must be a string of 1–200 characters`);
    }
    this.url = new URL('api/ingest', base.href.endsWith('/') ? base.href : `${base.href}/`).href;
    this.token = options.token;
    this.timeoutMs = intOption('timeoutMs', options.timeoutMs, 5000, 1, 600_000);
    this.required = options.required ?? false;
    this.batchSize = intOption('batchSize', options.batchSize, 200, 1, 5000);
    this.flushMs = intOption('flushMs', options.flushMs, 250, 0, 60_000);
    this.maxQueue = intOption('maxQueue', options.maxQueue, 10_000, 1, 10_000_000);
    this.retries = intOption('retries', options.retries, 3, 0, 100);
    this.source = { host: options.host ?? os.hostname(), worker: options.worker ?? `pid ${process.pid}` };
  }

  // ---- observer hooks: queue and return ----

  onRunStart(e: RunStartEvent): RunStartDecision | void {
    // Called again after a `wait` answered by another observer: report the start once.
    if (this.runStarts.has(e.runId)) return;
    const startedAt = new Date(e.startedAt).toISOString();
    this.runStarts.set(e.runId, { pipelineName: e.pipelineName, startedAt });
    this.push({ type: 'run', runId: e.runId, pipelineName: e.pipelineName, status: 'running', startedAt });
  }

  onStepEnd(e: StepEndEvent): void {
    this.push({
      type: 'step', runId: e.runId, order: e.id + 1, name: e.name, kind: e.kind, version: e.version,
      status: e.status === 'failed' ? 'error' : e.status, attempts: e.attempts, parentOrder: e.parentId >= 0 ? e.parentId + 1 : null,
      executor: e.executor === 'inline' || e.executor === undefined ? null : e.executor,
      startedAt: new Date(e.startedAt).toISOString(), durationMs: e.durationMs,
      errorMessage: e.error?.message ?? null, errorCode: (e.error as { code?: string } | undefined)?.code ?? null,
    });
  }

  onRunEnd(e: RunEndEvent): void | Promise<void> {
    const start = this.runStarts.get(e.runId);
    this.runStarts.delete(e.runId);
    const startedAt = new Date(e.startedAt).toISOString();
    const seq = this.push({
      type: 'run', runId: e.runId, pipelineName: start?.pipelineName ?? e.pipelineName, status: e.status, startedAt: start?.startedAt ?? startedAt,
      completedAt: new Date(e.startedAt + e.durationMs).toISOString(), durationMs: e.durationMs,
      errorMessage: e.error?.message ?? null, errorCode: (e.error as { code?: string } | undefined)?.code ?? null,
      errorStep: e.errorStep ?? null,
    });
    if (!this.required) return;
    this.kick(true);
    return this.delivered(seq, e.runId).then((ok) => {
      if (!ok) {
        throw new ApiError(`ApiReporter: the reports of run ${e.runId} could not be delivered to ${this.url}: ${this.stats.lastError ?? 'unknown error'} (required: true)`,
          { details: { url: this.url, runId: e.runId } });
      }
    });
  }

  // ---- queue ----

  private push(report: IngestReport): number {
    const seq = ++this.seq;
    this.queue.push({ report, seq });
    if (this.queue.length > this.maxQueue) {
      const over = this.queue.splice(0, this.queue.length - this.maxQueue);
      this.giveUp(over, `queue full (${this.maxQueue} reports): the oldest were dropped`);
    }
    this.stats.queued = this.queue.length;
    this.kick(this.queue.length >= this.batchSize);
    return seq;
  }

  private kick(now: boolean): void {
    if (this.sending) return;
    if (now || this.flushMs === 0) {
      if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
      this.sending = this.drain().finally(() => {
        this.sending = undefined;
        if (this.queue.length) this.kick(this.queue.length >= this.batchSize);
      });
      return;
    }
    if (!this.timer) {
      this.timer = setTimeout(() => { this.timer = undefined; this.kick(true); }, this.flushMs);
      this.timer.unref();
    }
  }

  private giveUp(items: Pending[], why: string): void {
    this.stats.dropped += items.length;
    this.stats.lastError = why;
    if (this.required) {
      for (const p of items) this.failedRuns.add(p.report.runId);
      // Runs nobody waits for any more must not pile up.
      while (this.failedRuns.size > 10_000) this.failedRuns.delete(this.failedRuns.values().next().value as string);
    }
    this.settle(items);
  }

  private settle(items: Pending[]): void {
    for (const p of items) if (p.seq > this.settledUpTo) this.settledUpTo = p.seq;
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      if (this.waiters[i]!.seq <= this.settledUpTo) this.waiters.splice(i, 1)[0]!.resolve();
    }
  }

  /**
   * Resolves once report `seq` and every report before it were delivered or given up on; with a run
   * id, true when none of that run's reports was given up on.
   */
  private async delivered(seq: number, runId?: string): Promise<boolean> {
    if (seq > this.settledUpTo) await new Promise<void>((resolve) => this.waiters.push({ seq, resolve }));
    if (runId === undefined) return true;
    const failed = this.failedRuns.has(runId);
    this.failedRuns.delete(runId);
    return !failed;
  }

  private async drain(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue.splice(0, this.batchSize);
      this.stats.queued = this.queue.length;
      await this.send(batch);
    }
  }

  private async send(batch: Pending[]): Promise<void> {
    const body = JSON.stringify({ source: this.source, reports: batch.map((p) => p.report) });
    for (let attempt = 0; ; attempt++) {
      let retryable = true;
      let why: string;
      try {
        const res = await fetch(this.url, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${this.token}` },
          body,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        const text = await res.text();
        if (res.ok) {
          this.stats.sent += batch.length;
          this.settle(batch);
          return;
        }
        let message = text.slice(0, 300);
        try {
          message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
        } catch {
          /* not JSON */
        }
        why = `HTTP ${res.status}: ${message}`;
        retryable = res.status >= 500 || res.status === 429;
      } catch (error) {
        const e = error as Error;
        why = e.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : `${e.message}${(e.cause as Error | undefined)?.message ? ` (${(e.cause as Error).message})` : ''}`;
      }
      if (!retryable || attempt >= this.retries) {
        this.giveUp(batch, why);
        return;
      }
      this.stats.retries++;
      this.stats.lastError = why;
      await sleep(Math.min(5000, 100 * 2 ** attempt));
    }
  }

  /** Sends everything queued now; resolves when it was delivered or given up on. */
  async flush(): Promise<void> {
    const last = this.seq;
    this.kick(true);
    await this.delivered(last);
  }

  /** Flushes and stops the timer. The reporter can still be used afterwards (it restarts on demand). */
  async close(): Promise<void> {
    await this.flush();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
