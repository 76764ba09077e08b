/**
 * Option checks in the one message style of docs/architecture.md "Public API": wrong type → TypeError, out of range →
 * RangeError, both carrying code WPIPE_ERR_INVALID_OPTION.
 */
import { describeType, invalidOption } from '../errors.js';

/**
 * An optional string option.
 *
 * @example
 * ```ts
 * optString('new Pipeline()', 'pipelineName', options.pipelineName) ?? 'Pipeline';
 * ```
 */
export function optString(where: string, name: string, v: unknown, allowEmpty = false): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalidOption(`${where}: ${name} must be a string, got ${describeType(v)}`);
  if (!allowEmpty && v.length === 0) throw invalidOption(`${where}: ${name} must not be empty`, 'RangeError');
  return v;
}

/**
 * An optional boolean option.
 *
 * @example
 * ```ts
 * optBool('new Pipeline()', 'verbose', options.verbose) ?? false;
 * ```
 */
export function optBool(where: string, name: string, v: unknown): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw invalidOption(`${where}: ${name} must be a boolean, got ${describeType(v)}`);
  return v;
}

/**
 * An optional number option with a range.
 *
 * @example
 * ```ts
 * optNumber('step()', 'retryCount', options.retryCount, { min: 0, integer: true });
 * ```
 */
export function optNumber(
  where: string, name: string, v: unknown,
  range: { min?: number; minExclusive?: boolean; max?: number; integer?: boolean } = {},
): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || Number.isNaN(v)) throw invalidOption(`${where}: ${name} must be a number, got ${describeType(v)}`);
  if (range.integer && !Number.isInteger(v)) throw invalidOption(`${where}: ${name} must be an integer, got ${v}`, 'RangeError');
  if (!Number.isFinite(v)) throw invalidOption(`${where}: ${name} must be finite, got ${v}`, 'RangeError');
  if (range.min !== undefined && (range.minExclusive ? v <= range.min : v < range.min)) {
    throw invalidOption(`${where}: ${name} must be ${range.minExclusive ? '>' : '>='} ${range.min}, got ${v}`, 'RangeError');
  }
  if (range.max !== undefined && v > range.max) {
    throw invalidOption(`${where}: ${name} must be <= ${range.max}, got ${v}`, 'RangeError');
  }
  return v;
}

/**
 * An optional function option.
 *
 * @example
 * ```ts
 * optFunction<RetryPredicate>('step()', 'retryOn', options.retryOn);
 * ```
 */
export function optFunction<T extends (...args: never[]) => unknown>(where: string, name: string, v: unknown): T | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'function') throw invalidOption(`${where}: ${name} must be a function, got ${describeType(v)}`);
  return v as T;
}

const warnedSeconds = new Set<string>();

/**
 * Durations here are seconds (the contract, kept from the Python original), but Node users write
 * milliseconds: a value of 1,000 s or more warns once per option name and value with the likely
 * mistake (`timeout: 5000` is 83 minutes).
 *
 * @example
 * ```ts
 * warnIfMilliseconds('step()', 'timeout', 5000); // process warning WPIPE_WARN_SECONDS, once
 * ```
 */
export function warnIfMilliseconds(where: string, name: string, seconds: number | undefined): void {
  if (seconds === undefined || seconds < 1000) return;
  const key = `${where}:${name}:${seconds}`;
  if (warnedSeconds.has(key)) return;
  warnedSeconds.add(key);
  const minutes = Math.round(seconds / 60);
  process.emitWarning(`${where}: ${name} is in seconds: ${seconds} is ${minutes.toLocaleString('en-US')} minutes. ` +
    `If you meant ${seconds} ms, write ${name}: ${seconds / 1000}.`, { code: 'WPIPE_WARN_SECONDS' });
}
