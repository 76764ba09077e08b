/**
 * YAML files for configuration: `readYaml` / `writeYaml` (and the Python original's names
 * `leerYaml` / `escribirYaml`), on the `yaml` package.
 *
 * Reading (synchronous, as configuration is read at start-up):
 * - `${VAR}` and `${VAR:-default}` in values are replaced from the environment (or `options.env`).
 *   The substitution happens in the parsed document, never in the text, so a variable's value can
 *   never add keys or structure. An unquoted value that is one reference alone (`port: ${PORT:-8080}`)
 *   takes the type its text has (here a number); in quotes, or mixed with other text, it stays a
 *   string. A variable that is not set and has no default is an error naming it, the file, the line
 *   and the column. `$${VAR}` writes a literal `${VAR}`. Inside a flow collection (`[…]`, `{…}`)
 *   quote the reference (`["${HOST}", b]`): there `{` is YAML syntax.
 * - A missing file, a directory, a syntax error (with line and column), duplicate keys: errors with
 *   code `WPIPE_ERR_YAML` (`details.kind`: 'not-found', 'io', 'parse', 'variable'). The original
 *   returned `{}` for all of these; a configuration that silently is empty is worse than an error.
 *   An empty file reads as `{}`.
 *
 * Writing: block style, keys in the order they have in the object, then an atomic replace — the
 * text goes to a temporary file beside the target, is flushed to disk (fsync), and is renamed over
 * it. A reader (another process included) sees the old file or the new one, never a torn one;
 * concurrent writers each replace the file whole, the last rename wins.
 *
 * @example
 * ```ts
 * // settings.yaml:  db: ${DB_PATH:-runs.db}
 * //                 workers: ${WORKERS:-4}
 * const cfg = readYaml('settings.yaml') as { db: string; workers: number };
 * writeYaml('settings.out.yaml', { ...cfg, workers: 8 });
 * ```
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type * as YamlModule from 'yaml';
import type { Document as YamlDocument, LineCounter as YamlLineCounter } from 'yaml';
import { WpipeError, checkOptions, invalidOption } from '../errors.js';
import { writeFileAtomic } from './files.js';

/** Options of {@link readYaml}. */
export interface ReadYamlOptions {
  /** Where `${VAR}` values come from (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Replace `${VAR}` and `${VAR:-default}` (default true). */
  substitute?: boolean;
}

/** Options of {@link writeYaml}. */
export interface WriteYamlOptions {
  /** Sort mapping keys (the Python original did; default false: the object's own order). */
  sortKeys?: boolean;
}

type YamlErrorKind = 'not-found' | 'io' | 'parse' | 'variable';

/** The `yaml` package, loaded on first use: importing wpipe must stay cheap (test/package.test.ts). */
let yamlModule: typeof YamlModule | undefined;
function yamlLib(): typeof YamlModule {
  yamlModule ??= createRequire(import.meta.url)('yaml') as typeof YamlModule;
  return yamlModule;
}

function yamlError(kind: YamlErrorKind, message: string, details: Record<string, unknown>, cause?: unknown): WpipeError {
  return new WpipeError('WPIPE_ERR_YAML', message, { details: { kind, ...details }, ...(cause === undefined ? {} : { cause }) });
}

function checkPath(where: string, filePath: unknown): string {
  if (typeof filePath !== 'string' || filePath.length === 0) throw invalidOption(`${where}: filePath must be a non-empty string`);
  return filePath;
}

/** `${NAME}` or `${NAME:-default}` (default up to the first `}`), or `$${…}` for a literal. */
const REFERENCE = /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Reads and parses a YAML file, substituting `${VAR}` / `${VAR:-default}` (see the module comment).
 *
 * @example
 * ```ts
 * const cfg = readYaml('pipeline.yaml', { env: { STAGE: 'prod' } });
 * ```
 */
export function readYaml(filePath: string, options: ReadYamlOptions = {}): unknown {
  checkPath('readYaml', filePath);
  checkOptions('readYaml', options, ['env', 'substitute']);
  const env = options.env ?? process.env;
  if (typeof env !== 'object' || env === null) throw invalidOption('readYaml: env must be an object of strings');
  let text: string;
  try {
    text = fs.readFileSync(filePath, 'utf8');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ENOENT') throw yamlError('not-found', `readYaml: ${filePath} does not exist`, { file: filePath }, error);
    throw yamlError('io', `readYaml: cannot read ${filePath}: ${(error as Error).message}`, { file: filePath, errno: code }, error);
  }
  const { LineCounter, parseDocument } = yamlLib();
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = lineCounter.linePos(e.pos[0]);
    throw yamlError('parse', `readYaml: ${filePath}:${pos.line}:${pos.col}: ${e.message.split('\n')[0]}`,
      { file: filePath, line: pos.line, column: pos.col, yamlCode: e.code }, e);
  }
  if (options.substitute !== false) substitute(doc, env, filePath, lineCounter);
  const value = doc.toJS({ maxAliasCount: 1000 }) as unknown;
  return value === null || value === undefined ? {} : value;
}

function substitute(doc: YamlDocument, env: Readonly<Record<string, string | undefined>>, file: string, lines: YamlLineCounter): void {
  const { Scalar, isScalar, parseDocument, visit } = yamlLib();
  visit(doc, {
    Scalar(key, node) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('${')) return undefined;
      const source = node.value;
      let whole: boolean | undefined;
      const replaced = source.replace(REFERENCE, (match, escaped: string, name: string, fallback: string | undefined, offset: number) => {
        if (escaped) return match.slice(1);
        whole = whole === undefined && offset === 0 && match.length === source.length;
        const value = env[name];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        if (value === '') return value;
        const pos = lines.linePos(node.range?.[0] ?? 0);
        throw yamlError('variable', `readYaml: ${file}:${pos.line}:${pos.col}: environment variable ${name} is not set and '${match}' has no default ` +
          `(write \${${name}:-default} to give one)`, { file, line: pos.line, column: pos.col, variable: name });
      });
      if (replaced === source) return undefined;
      // Changed in place: a node returned from a visitor would be visited again (and `$${…}` expanded).
      node.value = replaced;
      if (whole === true && node.type === Scalar.PLAIN) {
        // An unquoted value that is one reference alone takes the type its text has (8080, true, null).
        const typed = parseDocument(replaced).contents;
        if (typed === null || isScalar(typed)) node.value = (typed as { value: unknown } | null)?.value ?? null;
      }
      return undefined;
    },
  });
}

/**
 * Writes `data` as YAML to `filePath`, atomically (a temporary file, fsync, rename). Creates no
 * folders: a missing folder is an error.
 *
 * @example
 * ```ts
 * writeYaml('out/config.yaml', { pipeline: 'orders', steps: ['load', 'save'] });
 * ```
 */
export function writeYaml(filePath: string, data: unknown, options: WriteYamlOptions = {}): void {
  checkPath('writeYaml', filePath);
  checkOptions('writeYaml', options, ['sortKeys']);
  let text: string;
  try {
    const { Document } = yamlLib();
    text = new Document(data, { sortMapEntries: options.sortKeys === true }).toString({ lineWidth: 0 });
  } catch (error) {
    throw yamlError('io', `writeYaml: cannot write this value as YAML: ${(error as Error).message}`, { file: filePath }, error);
  }
  try {
    writeFileAtomic(filePath, text);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw yamlError('io', `writeYaml: cannot write ${filePath}: ${(error as Error).message}`, { file: filePath, errno: code }, error);
  }
}

/** The Python original's name of {@link readYaml}. */
export const leerYaml = readYaml;
/** The Python original's name of {@link writeYaml}. */
export const escribirYaml = writeYaml;
