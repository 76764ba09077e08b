/**
 * The error catalog: one base class, the classes of the public contract, and every stable code.
 *
 * Numeric `errorCode` keeps the 500–505 families of the Python original (`Codes`); the string `code`
 * (`WPIPE_ERR_<AREA>_<THING>`) names the finer case. test/errors.test.ts checks this table.
 *
 * @example
 * ```ts
 * try { await pipe.run(data); } catch (e) {
 *   if (e instanceof ProcessError && e.cause instanceof TaskError) console.log(e.cause.stepName);
 * }
 * ```
 */

/** Numeric error families of the original library. */
export const Codes = Object.freeze({
  INTERNAL: 500,
  API_ERROR: 501,
  TASK_FAILED: 502,
  UPDATE_PROCESS_OK: 503,
  UPDATE_PROCESS_ERROR: 504,
  UPDATE_TASK: 505,
} as const);

export type ErrorFamily = (typeof Codes)[keyof typeof Codes];

/** Every stable string code, with its numeric family and a one-line meaning. */
export const ERROR_CATALOG = Object.freeze({
  WPIPE_ERR_INTERNAL: { errorCode: Codes.INTERNAL, meaning: 'an internal invariant failed' },
  WPIPE_ERR_INVALID_OPTION: { errorCode: Codes.INTERNAL, meaning: 'an unknown, misspelt or invalid option' },
  WPIPE_ERR_INVALID_STEP: { errorCode: Codes.INTERNAL, meaning: 'something that is not a step or block was given as a step' },
  WPIPE_ERR_BACKEND_UNAVAILABLE: { errorCode: Codes.INTERNAL, meaning: 'a forced backend could not be loaded' },
  WPIPE_ERR_EXPRESSION_SYNTAX: { errorCode: Codes.INTERNAL, meaning: 'an expression could not be parsed' },
  WPIPE_ERR_EXPRESSION_EVAL: { errorCode: Codes.INTERNAL, meaning: 'an expression failed while being evaluated' },
  WPIPE_ERR_TASK_FAILED: { errorCode: Codes.TASK_FAILED, meaning: 'a step failed after all its attempts' },
  WPIPE_ERR_TASK_TIMEOUT: { errorCode: Codes.TASK_FAILED, meaning: 'a step attempt passed its deadline' },
  WPIPE_ERR_TASK_RETURN: { errorCode: Codes.TASK_FAILED, meaning: 'a step returned something other than a plain object, undefined or null' },
  WPIPE_ERR_MEMORY_LIMIT: { errorCode: Codes.TASK_FAILED, meaning: 'a step exceeded the memory cap of its worker process, or the process passed the cap of memoryLimit\'s RSS watchdog' },
  WPIPE_ERR_MEMORY_LIMIT_UNAVAILABLE: { errorCode: Codes.INTERNAL, meaning: 'memoryLimit: none of the mechanisms allowed (cgroup v2, cgroup v1, RLIMIT_DATA) can cap the memory here' },
  WPIPE_ERR_LOOP_LIMIT: { errorCode: Codes.TASK_FAILED, meaning: 'a For loop would run past its maxIterations' },
  WPIPE_ERR_TASK_NOT_ADDRESSABLE: { errorCode: Codes.TASK_FAILED, meaning: 'a closure was asked to run in a worker' },
  WPIPE_ERR_PROCESS_FAILED: { errorCode: Codes.TASK_FAILED, meaning: 'a pipeline run failed' },
  WPIPE_ERR_PROCESS_CANCELLED: { errorCode: Codes.UPDATE_PROCESS_ERROR, meaning: 'a pipeline run was cancelled' },
  WPIPE_ERR_RESUME_MISMATCH: { errorCode: Codes.UPDATE_PROCESS_ERROR, meaning: 'the pipeline changed since the checkpoint it would resume from' },
  WPIPE_ERR_CHECKPOINT_SERIALIZE: { errorCode: Codes.UPDATE_PROCESS_ERROR, meaning: 'a context value cannot be saved in a checkpoint' },
  WPIPE_ERR_STORAGE: { errorCode: Codes.UPDATE_PROCESS_ERROR, meaning: 'the SQLite store failed' },
  WPIPE_ERR_API: { errorCode: Codes.API_ERROR, meaning: 'an external API call failed' },
  WPIPE_ERR_YAML: { errorCode: Codes.INTERNAL, meaning: 'a YAML file is malformed or invalid' },
  WPIPE_ERR_LOG_DESTINATION: { errorCode: Codes.INTERNAL, meaning: 'a log file or its folder cannot be written' },
  WPIPE_ERR_EXPORT_FORMAT: { errorCode: Codes.INTERNAL, meaning: 'an unknown export format' },
  WPIPE_ERR_MODULE_IMPORT: { errorCode: Codes.INTERNAL, meaning: 'a module of steps (AutoRegister) could not be resolved or imported' },
  WPIPE_ERR_MODULE_NO_STEPS: { errorCode: Codes.INTERNAL, meaning: 'a module given to AutoRegister exports no step() functions (or none with the tags asked for)' },
  WPIPE_ERR_EXECUTOR_UNAVAILABLE: { errorCode: Codes.INTERNAL, meaning: 'a Parallel block asked for an executor (threads, processes) that is not available' },
  WPIPE_ERR_RUN_SYNC_UNSUPPORTED: { errorCode: Codes.INTERNAL, meaning: 'runSync met a step that needs the event loop (a promise, a worker)' },
  WPIPE_ERR_OBSERVER_FAILED: { errorCode: Codes.UPDATE_PROCESS_ERROR, meaning: 'a run observer (run history, checkpoints) threw' },
  WPIPE_ERR_RUN_IN_PROGRESS: { errorCode: Codes.UPDATE_PROCESS_ERROR, meaning: 'the run id is being executed elsewhere and the run could not wait for it' },
  WPIPE_ERR_RUN_ID_CONFLICT: { errorCode: Codes.UPDATE_PROCESS_ERROR, meaning: 'the run id is already recorded for another pipeline' },
  WPIPE_ERR_JOURNAL_CORRUPT: { errorCode: Codes.UPDATE_PROCESS_ERROR, meaning: 'lines of a step journal failed their checksum and were skipped (the rest applied)' },
  WPIPE_ERR_WORKER_EXITED: { errorCode: Codes.TASK_FAILED, meaning: 'the worker thread or process running a step exited or died before the step settled' },
  WPIPE_ERR_WORKER_CLONE: { errorCode: Codes.TASK_FAILED, meaning: 'a context or return value cannot be copied to or from a worker (structured clone)' },
  WPIPE_ERR_QUEUE_UNAVAILABLE: { errorCode: Codes.TASK_FAILED, meaning: 'the Redis of a BullMQ queue could not be reached to add, watch or take a job' },
  WPIPE_ERR_QUEUE_JOB_FAILED: { errorCode: Codes.TASK_FAILED, meaning: 'a BullMQ job of a step attempt failed as a job (its worker died and the stalled check failed it, or its request could not be read)' },
  WPIPE_ERR_QUEUE_MODULE_REFUSED: { errorCode: Codes.TASK_FAILED, meaning: 'a BullMQ worker was asked for a step module (or a pipeline) it was not given (--steps, --steps-dir, pipelines)' },
  WPIPE_ERR_DASHBOARD_TOKEN_REQUIRED: { errorCode: Codes.INTERNAL, meaning: 'the dashboard was asked to listen beyond loopback without a token' },
  WPIPE_ERR_DASHBOARD_LISTEN: { errorCode: Codes.INTERNAL, meaning: 'the dashboard could not listen on its host and port (in use, not permitted, no such address)' },
  WPIPE_ERR_DASHBOARD_BAD_REQUEST: { errorCode: Codes.INTERNAL, meaning: 'a dashboard API request had an unknown table, a bad query parameter or a method the path does not take (HTTP 400, 405)' },
  WPIPE_ERR_DASHBOARD_UNAUTHORIZED: { errorCode: Codes.INTERNAL, meaning: 'a dashboard API request without the dashboard\'s token, or with a wrong one (HTTP 401)' },
  WPIPE_ERR_DASHBOARD_FORBIDDEN: { errorCode: Codes.INTERNAL, meaning: 'a dashboard request from a non-loopback Host without a token, or a cross-origin state change (HTTP 403)' },
  WPIPE_ERR_DASHBOARD_NOT_FOUND: { errorCode: Codes.INTERNAL, meaning: 'a dashboard request for a run, alert, file or API path that does not exist (HTTP 404)' },
  WPIPE_ERR_API_PROCESS_END: { errorCode: Codes.UPDATE_PROCESS_OK, meaning: 'the worker service answered /endprocess with nothing (the original\'s "API problem ending process")' },
  WPIPE_ERR_API_PROCESS: { errorCode: Codes.UPDATE_PROCESS_ERROR, meaning: 'registering or ending a process with the worker service failed (/newprocess, /endprocess)' },
  WPIPE_ERR_API_TASK: { errorCode: Codes.UPDATE_TASK, meaning: 'updating a task with the worker service failed (/actualizar_task)' },
  WPIPE_ERR_PIPELINE_INVALID: { errorCode: Codes.INTERNAL, meaning: 'a pipeline file (loadPipeline, wpipe run) does not follow the format; details.errors lists every problem with its file, line and column' },
  WPIPE_ERR_PIPELINE_MODULE_REFUSED: { errorCode: Codes.INTERNAL, meaning: 'a pipeline file named a module outside its steps folder, a node: builtin or a package the options do not allow' },
  WPIPE_ERR_PIPELINE_EXPORT: { errorCode: Codes.INTERNAL, meaning: 'a pipeline file named an export its module does not have, or one that is not a step() function' },
  WPIPE_ERR_CLI_USAGE: { errorCode: Codes.INTERNAL, meaning: 'the wpipe command was given bad arguments or an unreadable input (exit code 2)' },
} as const);

export type WpipeErrorCode = keyof typeof ERROR_CATALOG;

export interface WpipeErrorOptions {
  cause?: unknown;
  details?: Record<string, unknown>;
}

/** Base class of every error wpipe throws. */
export class WpipeError extends Error {
  readonly code: WpipeErrorCode;
  readonly errorCode: ErrorFamily;
  readonly details: Record<string, unknown>;

  constructor(code: WpipeErrorCode, message: string, options: WpipeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.errorCode = ERROR_CATALOG[code].errorCode;
    this.details = options.details ?? {};
  }

  override get name(): string {
    return this.constructor.name;
  }

  /** A plain, structured-clone-safe form, for crossing worker and process boundaries. */
  toJSON(): SerializedError {
    return serializeError(this);
  }
}

/** A step failed (its own error is the `cause`). */
export class TaskError extends WpipeError {
  constructor(message: string, options: WpipeErrorOptions & { code?: WpipeErrorCode } = {}) {
    super(options.code ?? 'WPIPE_ERR_TASK_FAILED', message, options);
  }
  /** The step that failed. */
  get stepName(): string | undefined {
    return this.details.stepName as string | undefined;
  }
  /** Its version (`step({ version })`, 'v1.0' by default). */
  get stepVersion(): string | undefined {
    return (this.details.stepVersion ?? this.details.version) as string | undefined;
  }
  /** Attempts made before it failed (retries included). */
  get attempts(): number | undefined {
    return this.details.attempts as number | undefined;
  }
}

/** A pipeline run failed; `cause` is the TaskError of the failing step. */
export class ProcessError extends WpipeError {
  constructor(message: string, options: WpipeErrorOptions & { code?: WpipeErrorCode } = {}) {
    super(options.code ?? 'WPIPE_ERR_PROCESS_FAILED', message, options);
  }
}

/** An external API call failed. */
export class ApiError extends WpipeError {
  constructor(message: string, options: WpipeErrorOptions & { code?: WpipeErrorCode } = {}) {
    super(options.code ?? 'WPIPE_ERR_API', message, options);
  }
}

/** Python exception class names an evaluation error can carry (the same in every backend). */
export type PythonErrorType =
  | 'SyntaxError' | 'NameError' | 'TypeError' | 'ZeroDivisionError' | 'KeyError' | 'IndexError'
  | 'AttributeError' | 'ValueError' | 'OverflowError' | 'LimitError';

/**
 * An expression failed to compile (`WPIPE_ERR_EXPRESSION_SYNTAX`) or to evaluate
 * (`WPIPE_ERR_EXPRESSION_EVAL`). The message ends with the text and a caret under the position.
 */
export class ExpressionError extends WpipeError {
  readonly expression: string;
  readonly position: number;
  readonly pythonType: PythonErrorType;
  readonly reason: string;

  constructor(
    kind: 'syntax' | 'eval',
    pythonType: PythonErrorType,
    reason: string,
    expression: string,
    position: number,
    options: WpipeErrorOptions = {},
  ) {
    super(
      kind === 'syntax' ? 'WPIPE_ERR_EXPRESSION_SYNTAX' : 'WPIPE_ERR_EXPRESSION_EVAL',
      `${pythonType}: ${reason}\n${caretLine(expression, position)}`,
      { ...options, details: { ...options.details, pythonType, position, expression } },
    );
    this.expression = expression;
    this.position = position;
    this.pythonType = pythonType;
    this.reason = reason;
  }
}

/** Shows a window of the expression (at most 80 columns) with a caret under `position`. */
function caretLine(text: string, position: number): string {
  const flat = text.replace(/[\r\n\t]/g, ' ');
  const start = Math.max(0, Math.min(position - 40, flat.length - 80));
  const window = flat.slice(start, start + 80);
  const prefix = start > 0 ? '…' : '';
  const suffix = start + 80 < flat.length ? '…' : '';
  return `  ${prefix}${window}${suffix}\n  ${' '.repeat(prefix.length + Math.max(0, position - start))}^`;
}

export interface SerializedError {
  name: string;
  code?: string;
  errorCode?: number;
  message: string;
  stack?: string;
  details?: Record<string, unknown>;
  cause?: SerializedError;
}

/** Turns any thrown value into a plain object that keeps class name, code, message and cause chain. */
export function serializeError(error: unknown): SerializedError {
  // What a step throws can be anything, a revoked Proxy or an object with throwing getters included:
  // reporting it must never throw instead.
  try {
    return readError(error, 0);
  } catch (unreadable) {
    let why = 'unknown reason';
    try {
      why = unreadable instanceof Error ? unreadable.message : String(unreadable);
    } catch {
      // keep the generic reason
    }
    return { name: 'Error', message: `[Unreadable error: ${why}]` };
  }
}

/**
 * {@link serializeError} that throws what reading the error throws (src/storage/serialize.ts turns
 * that into a placeholder, or a strict failure naming the key path). Cause chains up to 8 deep.
 */
export function readError(error: unknown, depth = 0): SerializedError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const out: SerializedError = { name: error.name, message: error.message, stack: error.stack };
  const coded = error as Error & { code?: unknown; errorCode?: unknown; details?: unknown };
  if (typeof coded.code === 'string') out.code = coded.code;
  if (typeof coded.errorCode === 'number') out.errorCode = coded.errorCode;
  if (coded.details && typeof coded.details === 'object') out.details = coded.details as Record<string, unknown>;
  if (error.cause !== undefined && depth < 8) {
    try {
      out.cause = readError(error.cause, depth + 1);
    } catch (unreadable) {
      // An unreadable cause does not make the error itself unreadable.
      out.cause = { name: 'Error', message: `[Unreadable error: ${unreadable instanceof Error ? unreadable.message : 'unknown reason'}]` };
    }
  }
  return out;
}

const REBUILDERS: Record<string, (m: string, code: WpipeErrorCode, o: WpipeErrorOptions) => WpipeError> = {
  TaskError: (m, code, o) => new TaskError(m, { ...o, code }),
  ProcessError: (m, code, o) => new ProcessError(m, { ...o, code }),
  ApiError: (m, code, o) => new ApiError(m, { ...o, code }),
};

/** Rebuilds an error serialized by `serializeError`, with its class, code, message and cause chain. */
export function deserializeError(data: SerializedError): Error {
  const cause = data.cause ? deserializeError(data.cause) : undefined;
  const options: WpipeErrorOptions = { cause, details: data.details };
  let error: Error;
  const code = data.code as WpipeErrorCode | undefined;
  if (code && code in ERROR_CATALOG && REBUILDERS[data.name]) {
    error = REBUILDERS[data.name]!(data.message, code, options);
  } else if (code && code in ERROR_CATALOG && data.name === 'ExpressionError') {
    const d = data.details ?? {};
    const firstLine = data.message.split('\n')[0] ?? '';
    const pythonType = (d.pythonType as PythonErrorType) ?? 'ValueError';
    const reason = firstLine.startsWith(`${pythonType}: `) ? firstLine.slice(pythonType.length + 2) : firstLine;
    error = new ExpressionError(
      code === 'WPIPE_ERR_EXPRESSION_SYNTAX' ? 'syntax' : 'eval',
      pythonType, reason, String(d.expression ?? ''), Number(d.position ?? 0), options,
    );
  } else if (code && code in ERROR_CATALOG) {
    error = new WpipeError(code, data.message, options);
  } else {
    // JavaScript's own error classes come back as themselves (`instanceof RangeError` holds after a
    // worker); any other class as an Error carrying its name.
    const Builtin = Object.hasOwn(BUILTIN_ERRORS, data.name) ? BUILTIN_ERRORS[data.name]! : Error;
    error = new Builtin(data.message, cause === undefined ? undefined : { cause });
    if (data.name && data.name !== error.name) {
      Object.defineProperty(error, 'name', { value: data.name, configurable: true, writable: true });
    }
    if (data.code) (error as Error & { code?: string }).code = data.code;
  }
  if (data.stack) error.stack = data.stack;
  return error;
}

/** The standard error classes rebuilt by name (AggregateError's list of errors is not carried). */
const BUILTIN_ERRORS: Readonly<Record<string, new (message?: string, options?: ErrorOptions) => Error>> = {
  Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError,
};

/**
 * Invalid options at a public boundary: a real TypeError (wrong type, unknown option) or RangeError
 * (out of range) that also carries `code` WPIPE_ERR_INVALID_OPTION and `errorCode` 500.
 */
export function invalidOption(message: string, kind: 'TypeError' | 'RangeError' = 'TypeError'): TypeError | RangeError {
  const error = kind === 'RangeError' ? new RangeError(message) : new TypeError(message);
  return Object.assign(error, { code: 'WPIPE_ERR_INVALID_OPTION' as const, errorCode: Codes.INTERNAL });
}

/** Closest known name to a misspelt one (Levenshtein distance ≤ 3), for "did you mean …?" hints. */
export function closestName(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 4;
  for (const candidate of known) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) { best = candidate; bestDistance = d; }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** Rejects keys of `options` that are not in `known`, with a hint; a TypeError if options is not an object. */
export function checkOptions(where: string, options: unknown, known: readonly string[]): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalidOption(`${where}: options must be an object, got ${describeType(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      const alias = OPTION_ALIASES[key]?.find((a) => known.includes(a.option));
      const hint = alias !== undefined ? `${alias.option}${alias.note ? `, ${alias.note}` : ''}` : closestName(key, known);
      throw invalidOption(`${where}: unknown option '${key}'${hint ? ` (did you mean ${hint}?)` : ''}`);
    }
  }
}

/**
 * Names users bring from other libraries, with the option they mean here (when the options being
 * checked have it): a spelling distance cannot find `retryCount` from `retries`.
 */
const OPTION_ALIASES: Record<string, readonly { option: string; note?: string }[]> = {
  retries: [{ option: 'retryCount' }, { option: 'maxRetries' }],
  maxRetries: [{ option: 'retryCount' }],
  retryCount: [{ option: 'maxRetries' }],
  retry: [{ option: 'retryCount' }, { option: 'maxRetries' }],
  attempts: [{ option: 'retryCount', note: 'the number of retries after the first attempt' }],
  timeoutMs: [{ option: 'timeout', note: 'in seconds' }],
  timeoutSeconds: [{ option: 'timeout' }],
  delay: [{ option: 'retryDelay', note: 'in seconds' }],
  retryDelayMs: [{ option: 'retryDelay', note: 'in seconds' }],
  backoff: [{ option: 'retryBackoff' }],
  db: [{ option: 'trackingDb' }],
  database: [{ option: 'trackingDb' }],
  name: [{ option: 'pipelineName' }],
};

/** A short type description for messages: 'null', 'array', 'Date', 'number' … */
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null;
    const name = proto?.constructor?.name;
    return name && name !== 'Object' ? name : 'object';
  }
  return typeof value;
}
