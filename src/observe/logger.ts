/**
 * `newLogger(options)`: a pino logger for pipelines — JSON lines to a file rotated by size and by
 * day with a bounded number of old files kept (pino-roll), human-readable lines on stderr only when
 * stderr is a terminal, child loggers that carry `runId` and `step`.
 *
 * Nothing happens at import: pino and pino-roll are loaded, folders and files made, only when
 * `newLogger` is called (the Python original configured a global logger, and made `/logs`, when its
 * package was imported). Given to a pipeline (`new Pipeline({ logger })`), the engine hands each step
 * `info.logger = logger.child({ runId, step })`, so a step's lines say which run and step wrote them.
 *
 * Destinations: with `file`, every line at `level` or above goes to the file (rotated), and warnings
 * and errors also to stderr; without `file`, lines go to stderr (or `stream`). On a terminal stderr
 * gets `HH:MM:SS.mmm LEVEL msg key=value…`; elsewhere it gets the JSON lines. `close()` flushes and
 * closes the files.
 *
 * @example
 * ```ts
 * const logger = await newLogger({ name: 'orders', file: 'logs/orders.log', rotation: { size: '10m', frequency: 'daily', keep: 14 } });
 * const pipe = new Pipeline({ pipelineName: 'orders', logger });
 * // … steps log with info.logger.info({ rows }, 'loaded') → {"runId":"…","step":"load","rows":3,"msg":"loaded",…}
 * await logger.close();
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';
import type { Logger as PinoLogger, LevelWithSilent, DestinationStream, StreamEntry } from 'pino';
import { WpipeError, checkOptions, invalidOption } from '../errors.js';
import { importModule } from '../dynamic-import.js';

/** Rotation of the log file (pino-roll). */
export interface LogRotation {
  /** Start a new file past this size: a number of MB, or '500k', '10m', '1g' (default '10m'). */
  size?: string | number;
  /** Start a new file every day or hour, or every N milliseconds (default 'daily'). */
  frequency?: 'daily' | 'hourly' | number;
  /** Old files kept besides the current one (default 10); older ones are removed. */
  keep?: number;
}

/** Options of {@link newLogger}. */
export interface NewLoggerOptions {
  /** `name` in every line (default 'wpipe'). */
  name?: string;
  /** Lowest level written (default 'info'). */
  level?: LevelWithSilent;
  /** JSON lines go to this file (numbered as it rotates: `orders.1.log`, `orders.2.log` …). */
  file?: string;
  /** How `file` rotates; see {@link LogRotation}. */
  rotation?: LogRotation;
  /** Create the folder of `file` if it is missing (default true). */
  mkdir?: boolean;
  /** Human-readable lines instead of JSON on stderr (default: stderr is a terminal). */
  pretty?: boolean;
  /** Write here instead of stderr (tests, an existing stream). */
  stream?: NodeJS.WritableStream;
  /** Fields added to every line. */
  bindings?: Record<string, unknown>;
}

/** A pino logger that also closes its files. */
export type WpipeLogger = PinoLogger & {
  /** Flushes every destination and closes the log file. */
  close(): Promise<void>;
};

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** A stream that turns pino's JSON lines into `HH:MM:SS.mmm LEVEL msg key=value` for a terminal. */
function prettyStream(out: NodeJS.WritableStream): Writable {
  // node:stream through require, at first use: importing wpipe does not load it.
  const { Writable: WritableStream } = createRequire(import.meta.url)('node:stream') as typeof import('node:stream');
  return new WritableStream({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        try {
          const { time, level, msg, pid: _pid, hostname: _host, name, ...rest } = JSON.parse(line) as Record<string, unknown>;
          const when = new Date(Number(time)).toISOString().slice(11, 23);
          const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
          out.write(`${when} ${(LEVEL_NAMES[Number(level)] ?? String(level)).padEnd(5)} ${name ? `[${String(name)}] ` : ''}${String(msg ?? '')}${fields ? ` ${fields}` : ''}\n`);
        } catch {
          out.write(`${line}\n`);
        }
      }
      done();
    },
  });
}

/**
 * Creates a logger (see the module comment). Rejects with `WPIPE_ERR_INVALID_OPTION` for bad
 * options and `WPIPE_ERR_LOG_DESTINATION` when the log file cannot be opened (an unwritable folder).
 *
 * @example
 * ```ts
 * const log = await newLogger({ level: 'debug' });
 * log.child({ runId: 'r1' }).info('started');
 * ```
 */
export async function newLogger(options: NewLoggerOptions = {}): Promise<WpipeLogger> {
  checkOptions('newLogger', options, ['name', 'level', 'file', 'rotation', 'mkdir', 'pretty', 'stream', 'bindings']);
  const level = options.level ?? 'info';
  if (!LEVELS.includes(level)) throw invalidOption(`newLogger: level must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(level)}`, 'RangeError');
  if (options.name !== undefined && typeof options.name !== 'string') throw invalidOption('newLogger: name must be a string');
  if (options.file !== undefined && (typeof options.file !== 'string' || options.file.length === 0)) throw invalidOption('newLogger: file must be a non-empty string');
  const rotation = options.rotation ?? {};
  if (typeof rotation !== 'object' || rotation === null) throw invalidOption('newLogger: rotation must be an object');
  checkOptions('newLogger rotation', rotation, ['size', 'frequency', 'keep']);
  const keep = rotation.keep ?? 10;
  if (!Number.isInteger(keep) || keep < 0) throw invalidOption(`newLogger: rotation.keep must be an integer ≥ 0, got ${String(keep)}`, 'RangeError');
  const frequency = rotation.frequency ?? 'daily';
  if (frequency !== 'daily' && frequency !== 'hourly' && !(typeof frequency === 'number' && frequency > 0)) {
    throw invalidOption(`newLogger: rotation.frequency must be 'daily', 'hourly' or a number of ms > 0, got ${JSON.stringify(frequency)}`, 'RangeError');
  }
  const size = rotation.size ?? '10m';
  if (!(typeof size === 'number' && size > 0) && !(typeof size === 'string' && /^\d+(\.\d+)?[kmg]?$/i.test(size))) {
    throw invalidOption(`newLogger: rotation.size must be a number of MB or a string like '500k', '10m', '1g', got ${JSON.stringify(size)}`, 'RangeError');
  }

  const { default: pino } = await importModule<typeof import('pino')>('pino');
  const terminal = options.stream ?? process.stderr;
  const pretty = options.pretty ?? (options.stream === undefined && process.stderr.isTTY === true);
  const toTerminal: DestinationStream = pretty ? prettyStream(terminal) : (terminal as unknown as DestinationStream);
  const streams: StreamEntry[] = [];
  const closers: (() => Promise<void>)[] = [];
  if (options.file !== undefined) {
    const file = path.resolve(options.file);
    const { default: roll } = await importModule<typeof import('pino-roll')>('pino-roll');
    let fileStream: DestinationStream & { end(): void; once(event: string, cb: () => void): void };
    try {
      if (options.mkdir !== false) fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.accessSync(path.dirname(file), fs.constants.W_OK);
      const ext = path.extname(file);
      fileStream = await roll({
        file: ext ? file.slice(0, -ext.length) : file, extension: ext || '.log', size, frequency, limit: { count: keep }, mkdir: false,
      }) as typeof fileStream;
    } catch (error) {
      throw new WpipeError('WPIPE_ERR_LOG_DESTINATION', `newLogger: cannot write log files to ${path.dirname(file)}: ${(error as Error).message}`,
        { cause: error, details: { file } });
    }
    streams.push({ level: level === 'silent' ? 'fatal' : level, stream: fileStream });
    streams.push({ level: 'warn', stream: toTerminal });
    closers.push(() => new Promise<void>((resolve) => {
      fileStream.once('close', resolve);
      fileStream.end();
    }));
  } else {
    streams.push({ level: level === 'silent' ? 'fatal' : level, stream: toTerminal });
  }
  const logger = pino(
    { name: options.name ?? 'wpipe', level, base: { ...(options.bindings ?? {}) } },
    pino.multistream(streams, { dedupe: false }),
  ) as WpipeLogger;
  let closed: Promise<void> | undefined;
  logger.close = () => {
    closed ??= (async () => {
      logger.flush();
      for (const close of closers) await close();
    })();
    return closed;
  };
  return logger;
}
