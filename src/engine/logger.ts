/**
 * The small logger interface the engine writes through. It is pino-compatible (`info(obj, msg)` or
 * `info(msg)`), so a pino logger from `newLogger()` plugs in as is; the default writes lines to
 * stderr. The engine calls `debug`/`info` only when the pipeline is `verbose`, and `warn`/`error`
 * only for problems nobody else will hear about (a failed Background step, a failed observer).
 *
 * @example
 * ```ts
 * const pipe = new Pipeline({ verbose: true, logger: { debug() {}, info: (o, m) => lines.push(String(m ?? o)), warn() {}, error() {} } });
 * ```
 */

/**
 * One log method: `(message)` or `(fields, message)`.
 *
 * @example
 * ```ts
 * const info: LogMethod = (o, m) => console.error(m ?? o);
 * ```
 */
export type LogMethod = (objOrMessage: object | string, message?: string) => void;

/**
 * What the engine needs from a logger (a subset of pino's).
 *
 * @example
 * ```ts
 * const logger: Logger = pino();   // or createStreamLogger(process.stderr)
 * ```
 */
export interface Logger {
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
}

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/**
 * Whether `value` has the four log methods.
 *
 * @example
 * ```ts
 * isLogger(console); // true
 * ```
 */
export function isLogger(value: unknown): value is Logger {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return LEVELS.every((l) => typeof v[l] === 'function');
}

/**
 * The default logger: one line per message on a writable stream (stderr by default, so a program's
 * stdout stays its own), fields appended as JSON.
 *
 * @example
 * ```ts
 * const log = createStreamLogger(process.stderr);
 * log.warn({ step: 'load' }, '[RETRY] load failed');
 * ```
 */
export function createStreamLogger(stream: { write(chunk: string): unknown } = process.stderr): Logger {
  const emit = (level: string) => (objOrMessage: object | string, message?: string): void => {
    let line: string;
    if (typeof objOrMessage === 'string') line = objOrMessage;
    else {
      let fields = '';
      try { fields = JSON.stringify(objOrMessage); } catch { fields = '[unserializable fields]'; }
      line = message === undefined ? fields : `${message} ${fields}`;
    }
    stream.write(level === 'info' ? `${line}\n` : `[${level.toUpperCase()}] ${line}\n`);
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

let defaultLogger: Logger | undefined;

/**
 * The process-wide default logger, created on first use (no import-time side effects).
 *
 * @example
 * ```ts
 * getDefaultLogger().warn('something nobody else will report');
 * ```
 */
export function getDefaultLogger(): Logger {
  return (defaultLogger ??= createStreamLogger());
}
