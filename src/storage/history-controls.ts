/**
 * What run history keeps of a run's data: keys redacted (secrets never reach the file), a size cap
 * per stored value (a 50,000-row context is not written whole for every run), and retention
 * ({@link pruneHistory}: runs older than some days, or all but the newest N).
 *
 * Redaction and the cap apply to what the history *records* — a run's input and output, each step's
 * output, event data. Checkpoints are the exception: they store the context exactly, because a
 * resume needs it (a redacted password cannot be resumed with); keep secrets out of checkpointed
 * contexts, or add no checkpoint to a pipeline that carries them.
 *
 * @example
 * ```ts
 * new Pipeline({ trackingDb: 'runs.db', trackingRedact: ['password', /token|secret/i], trackingMaxValueBytes: 64 * 1024 });
 * pruneHistory(db, { olderThanDays: 30, keepLast: 1000 });
 * ```
 */
import { invalidOption, describeType } from '../errors.js';
import type { StorageDb } from './db.js';

/** A key name, a pattern over key names, or a function deciding per key (return true to redact). */
export type RedactRule = string | RegExp;
export type RedactOption = readonly RedactRule[] | ((key: string, value: unknown, path: string) => boolean);

/** What a redacted value is recorded as. */
export const REDACTED = '[REDACTED]';

/** Default cap of one stored value (input, output, a step's output), in bytes of JSON text. */
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024;

/**
 * Checks a `trackingRedact` option and returns a key test (undefined: nothing is redacted).
 *
 * @example
 * ```ts
 * const test = redactTest('Pipeline', ['password']); test?.('password', 'x', 'password'); // true
 * ```
 */
export function redactTest(where: string, option: unknown): ((key: string, value: unknown, path: string) => boolean) | undefined {
  if (option === undefined) return undefined;
  if (typeof option === 'function') return option as (key: string, value: unknown, path: string) => boolean;
  if (!Array.isArray(option)) throw invalidOption(`${where}: trackingRedact must be an array of key names and RegExps, or a function, got ${describeType(option)}`);
  const names = new Set<string>();
  const patterns: RegExp[] = [];
  for (const rule of option) {
    if (typeof rule === 'string') names.add(rule);
    else if (rule instanceof RegExp) patterns.push(rule);
    else throw invalidOption(`${where}: trackingRedact entries must be strings or RegExps, got ${describeType(rule)}`);
  }
  if (names.size === 0 && patterns.length === 0) return undefined;
  return (key) => names.has(key) || patterns.some((p) => {
    p.lastIndex = 0;
    return p.test(key);
  });
}

/**
 * A copy of `value` with every key the test matches replaced by {@link REDACTED}, at any depth in
 * plain objects, arrays and Maps (string keys). Other values are shared, not copied.
 *
 * @example
 * ```ts
 * redact({ user: 'a', password: 'p' }, (k) => k === 'password'); // { user: 'a', password: '[REDACTED]' }
 * ```
 */
export function redact(value: unknown, test: (key: string, value: unknown, path: string) => boolean, path = '', seen = new Set<object>()): unknown {
  if (value === null || typeof value !== 'object' || seen.has(value)) return value;
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((v, i) => redact(v, test, `${path}[${i}]`, seen));
    if (value instanceof Map) {
      const out = new Map();
      for (const [k, v] of value) {
        const p = `${path}.${String(k)}`;
        out.set(k, typeof k === 'string' && test(k, v, p) ? REDACTED : redact(v, test, p, seen));
      }
      return out;
    }
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) return value;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const p = path ? `${path}.${k}` : k;
      out[k] = test(k, v, p) ? REDACTED : redact(v, test, p, seen);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

/**
 * The stored text of a value, cut to `maxBytes`: longer text becomes a marker that says so
 * (`{"$truncated":true,"bytes":N,"preview":"…first 200 characters…"}`), and `exact` is false.
 *
 * @example
 * ```ts
 * capText('{"rows":[…]}', 1024); // { text: '{"$truncated":true,…}', exact: false }
 * ```
 */
export function capText(text: string, maxBytes: number): { text: string; exact: boolean } {
  // One UTF-16 unit is at most 3 UTF-8 bytes: most texts are decided without measuring.
  if (text.length * 3 <= maxBytes) return { text, exact: true };
  const bytes = Buffer.byteLength(text);
  if (bytes <= maxBytes) return { text, exact: true };
  return { text: JSON.stringify({ $truncated: true, bytes, preview: text.slice(0, 200) }), exact: false };
}

/** Options of {@link pruneHistory}. */
export interface PruneOptions {
  /** Remove runs that started more than this many days ago. */
  olderThanDays?: number;
  /** Keep at least the newest N runs (of each pipeline name when `perPipeline`), whatever their age. */
  keepLast?: number;
  /** Apply `keepLast` per pipeline name (default true). */
  perPipeline?: boolean;
}

/**
 * Deletes old runs with everything recorded about them (steps, attempts, events, alerts, system
 * metrics, checkpoints) in one transaction; runs still `running` are never deleted. Returns how many
 * runs went.
 *
 * @example
 * ```ts
 * pruneHistory(openDb('runs.db'), { olderThanDays: 30 });
 * ```
 */
export function pruneHistory(db: StorageDb, options: PruneOptions): number {
  const where = 'prune';
  if (options === null || typeof options !== 'object') throw invalidOption(`${where}: options must be an object`);
  const { olderThanDays, keepLast } = options;
  if (olderThanDays === undefined && keepLast === undefined) throw invalidOption(`${where}: give olderThanDays, keepLast or both`);
  if (olderThanDays !== undefined && (typeof olderThanDays !== 'number' || !(olderThanDays >= 0))) {
    throw invalidOption(`${where}: olderThanDays must be a number ≥ 0, got ${String(olderThanDays)}`, 'RangeError');
  }
  if (keepLast !== undefined && (!Number.isInteger(keepLast) || keepLast < 0)) {
    throw invalidOption(`${where}: keepLast must be an integer ≥ 0, got ${String(keepLast)}`, 'RangeError');
  }
  const perPipeline = options.perPipeline ?? true;
  const conditions = ["status <> 'running'"];
  const params: unknown[] = [];
  if (olderThanDays !== undefined) {
    conditions.push('started_at < ?');
    params.push(new Date(Date.now() - olderThanDays * 86_400_000).toISOString());
  }
  if (keepLast !== undefined) {
    // Newer: started later, or at the same instant with a larger id (ties must not keep both).
    const newer = '(newer.started_at > pipelines.started_at OR (newer.started_at = pipelines.started_at AND newer.id > pipelines.id))';
    conditions.push(perPipeline
      ? `(SELECT count(*) FROM pipelines AS newer WHERE newer.name = pipelines.name AND ${newer}) >= ?`
      : `(SELECT count(*) FROM pipelines AS newer WHERE ${newer}) >= ?`);
    params.push(keepLast);
  }
  return db.transaction(() => {
    db.raw.exec('CREATE TEMP TABLE IF NOT EXISTS wpipe_prune (id TEXT PRIMARY KEY)');
    db.raw.exec('DELETE FROM wpipe_prune');
    const n = db.raw.prepare(`INSERT INTO wpipe_prune SELECT id FROM pipelines WHERE ${conditions.join(' AND ')}`).run(...params).changes;
    if (n > 0) {
      for (const table of ['steps', 'attempts', 'events', 'alerts_fired', 'system_metrics', 'checkpoints']) {
        db.raw.exec(`DELETE FROM ${table} WHERE pipeline_id IN (SELECT id FROM wpipe_prune)`);
      }
      db.raw.exec('DELETE FROM pipelines WHERE id IN (SELECT id FROM wpipe_prune)');
    }
    db.raw.exec('DELETE FROM wpipe_prune');
    return n;
  });
}
