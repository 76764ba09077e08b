/**
 * Pipelines written in YAML: `loadPipeline(path)` reads a file in the format of
 * src/engine/yaml-format.ts (README "Pipelines in YAML") and returns a real {@link Pipeline};
 * `validatePipelineFile(path)` lists every problem instead of throwing. `wpipe run` and
 * `wpipe validate` are built on these two.
 *
 * What a file from an untrusted source can do: call the steps it names, nothing else.
 * - Modules resolve against the steps folder: the YAML file's folder, or `stepsDir`. A path that
 *   leaves it (`../x.js`, an absolute path elsewhere, a symlink pointing out) is refused
 *   (WPIPE_ERR_PIPELINE_MODULE_REFUSED), as are URLs (`node:`, `file:`, `data:` …) and bare package
 *   names, unless `allowPackages` is set.
 * - Only exports made by `step(...)` (what AutoRegister takes) can be named; a plain function, a
 *   class or a value is refused (WPIPE_ERR_PIPELINE_EXPORT). Importing a module runs its top level:
 *   the steps folder is trusted code, the YAML file is not.
 * - `${VAR}` / `${VAR:-default}` are substituted by readYaml in values only: a variable can never
 *   add a key or a step.
 * - `executor: bullmq` (a step or a parallel block) sends work to a Redis, which the file cannot
 *   name: only the queue the loader was given (`bullmq: { connection, name }`, the operator's
 *   choice) is used, by this pipeline alone; without one it is refused
 *   (WPIPE_ERR_EXECUTOR_UNAVAILABLE at the `executor` value). A useBullmq() of the process does not
 *   count: loading a file never reaches a queue the loader did not name.
 *
 * @example
 * ```ts
 * const pipe = await loadPipeline('pipelines/orders.yaml', { pipelineOptions: { trackingDb: 'runs.db' } });
 * const result = await pipe.run({ orderId: 7 });
 * await pipe.close();
 *
 * const report = await validatePipelineFile('pipelines/orders.yaml');
 * for (const e of report.errors) console.error(e.text); // orders.yaml:12:7: unknown key 'retrycount' (did you mean retryCount?)
 * ```
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as YamlModule from 'yaml';
import { ExpressionError, WpipeError, checkOptions, closestName, describeType, invalidOption, type WpipeErrorCode } from '../errors.js';
import { compileExpression } from '../expr/index.js';
import { readYaml } from '../system/yaml.js';
import { Background, Condition, For, Parallel } from './blocks.js';
import type { StepItem } from './compile.js';
import { Pipeline, type PipelineOptions } from './pipeline.js';
import { isStep, step, type Step, type StepOptions } from './step.js';
import { BLOCK_KEYS, PIPELINE_FORMAT, type BlockKey, type FieldSpec, type MappingKind } from './yaml-format.js';
import { resolveQueue, type QueueOptions, type ResolvedQueue } from '../queue/config.js';
import { createBullmqExecutor } from '../queue/executor.js';
import { importModule } from '../dynamic-import.js';

/**
 * Options of {@link loadPipeline} and {@link validatePipelineFile}.
 *
 * @example
 * ```ts
 * const o: LoadPipelineOptions = { stepsDir: './steps', pipelineOptions: { trackingDb: 'runs.db' } };
 * ```
 */
export interface LoadPipelineOptions {
  /** The folder modules resolve against and may not leave (default: the YAML file's folder). */
  stepsDir?: string;
  /** Allow bare package names (`my-steps`) and `node:` builtins as modules, resolved from the steps folder (default false). */
  allowPackages?: boolean;
  /** Where `${VAR}` values come from (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Pipeline options that win over the file's (e.g. `trackingDb` from `wpipe run --db`, a `logger`, `showProgress`). */
  pipelineOptions?: PipelineOptions;
  /**
   * The BullMQ queue (`{ connection, name?, prefix? }`, as useBullmq takes) that the file's
   * `executor: bullmq` steps and parallel blocks use, and `pipe.enqueue`'s default. Without it such
   * a file is refused (WPIPE_ERR_EXECUTOR_UNAVAILABLE): a file never chooses where to connect.
   * Nothing connects until a step runs on it; `pipe.close()` closes the connections.
   */
  bullmq?: QueueOptions;
}

/**
 * One problem of a pipeline file: where (file, 1-based line and column, the key path) and what.
 *
 * @example
 * ```ts
 * const e: PipelineFileError = report.errors[0];
 * `${e.file}:${e.line}:${e.column}: ${e.message}` === e.text;
 * ```
 */
export interface PipelineFileError {
  /** WPIPE_ERR_PIPELINE_INVALID (the format), WPIPE_ERR_PIPELINE_MODULE_REFUSED, WPIPE_ERR_PIPELINE_EXPORT, WPIPE_ERR_MODULE_IMPORT, WPIPE_ERR_EXPRESSION_SYNTAX, WPIPE_ERR_EXECUTOR_UNAVAILABLE (`executor: bullmq` without the loader's queue) or WPIPE_ERR_YAML. */
  readonly code: WpipeErrorCode;
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Where in the document, e.g. `steps[2].condition.then[0].export` ('' for the document). */
  readonly path: string;
  readonly message: string;
  /** `file:line:column: message`. */
  readonly text: string;
}

/**
 * What {@link validatePipelineFile} found.
 *
 * @example
 * ```ts
 * const { valid, errors, steps } = await validatePipelineFile('orders.yaml');
 * ```
 */
export interface PipelineFileReport {
  readonly file: string;
  readonly valid: boolean;
  readonly errors: readonly PipelineFileError[];
  /** The pipeline's name (when the file could be read). */
  readonly pipelineName?: string;
  /** Steps and blocks counted at every depth (when valid). */
  readonly steps?: number;
}

const OPTIONS = ['stepsDir', 'allowPackages', 'env', 'pipelineOptions', 'bullmq'] as const;

/** The `yaml` package, loaded on first use (importing wpipe stays cheap). */
let yamlModule: typeof YamlModule | undefined;
function yamlLib(): typeof YamlModule {
  yamlModule ??= createRequire(import.meta.url)('yaml') as typeof YamlModule;
  return yamlModule;
}

type Key = string | number;
interface Where {
  line: number;
  column: number;
  /** The value is a quoted scalar (its text starts one column later). */
  quoted: boolean;
  /** The value is a scalar on one line (a column inside it can be computed). */
  singleLine: boolean;
}

/** Positions of every key and value of the document, by key path. */
class Positions {
  private readonly values = new Map<string, Where>();
  private readonly keys = new Map<string, Where>();

  constructor(text: string) {
    const { LineCounter, parseDocument, isMap, isSeq, isScalar } = yamlLib();
    const lc = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lc, keepSourceTokens: false });
    const at = (node: { range?: [number, number, number] | null; type?: unknown } | null | undefined, source: string): Where => {
      const start = node?.range?.[0] ?? 0;
      const end = node?.range?.[1] ?? start;
      const pos = lc.linePos(start);
      const type = node?.type;
      return {
        line: pos.line, column: pos.col,
        quoted: type === 'QUOTE_DOUBLE' || type === 'QUOTE_SINGLE',
        singleLine: isScalar(node) && !source.slice(start, end).includes('\n') && type !== 'BLOCK_LITERAL' && type !== 'BLOCK_FOLDED',
      };
    };
    const walk = (node: unknown, path: Key[]): void => {
      this.values.set(pathKey(path), at(node as never, text));
      if (isMap(node)) {
        for (const pair of node.items) {
          const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
          const p = [...path, k];
          this.keys.set(pathKey(p), at(pair.key as never, text));
          if (pair.value === null) this.values.set(pathKey(p), at(pair.key as never, text));
          else walk(pair.value, p);
        }
      } else if (isSeq(node)) {
        node.items.forEach((item, i) => walk(item, [...path, i]));
      }
    };
    walk(doc.contents, []);
  }

  /** The value at `path`, else its nearest ancestor. */
  value(path: readonly Key[]): Where {
    for (let n = path.length; n >= 0; n--) {
      const w = this.values.get(pathKey(path.slice(0, n)));
      if (w !== undefined) return w;
    }
    return { line: 1, column: 1, quoted: false, singleLine: false };
  }

  /** The key at `path` (for unknown keys), else the value. */
  key(path: readonly Key[]): Where {
    return this.keys.get(pathKey(path)) ?? this.value(path);
  }
}

function pathKey(path: readonly Key[]): string {
  return path.join('\u0000');
}

/**
 * A key path as the errors show it.
 *
 * @example
 * ```ts
 * formatPath(['steps', 2, 'condition', 'then', 0]); // 'steps[2].condition.then[0]'
 * ```
 */
export function formatPath(path: readonly Key[]): string {
  let out = '';
  for (const k of path) out += typeof k === 'number' ? `[${k}]` : out === '' ? k : `.${k}`;
  return out;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A step as the file describes it, once its module is resolved. */
interface StepRef {
  path: Key[];
  module: string;
  exportName: string;
  overrides: StepOptions;
}

/** Collects problems with their positions. */
class Report {
  readonly errors: PipelineFileError[] = [];
  private positionsCache: Positions | undefined;
  /** @param text the file's text: parsed again for positions only when there is a problem to place (a valid file is parsed once). */
  constructor(private readonly file: string, private readonly text: string | undefined) {}

  private get positions(): Positions | undefined {
    if (this.text === undefined) return undefined;
    return (this.positionsCache ??= new Positions(this.text));
  }

  add(code: WpipeErrorCode, path: readonly Key[], message: string, at: 'key' | 'value' = 'value', columnOffset?: number): void {
    const w = this.positions === undefined ? { line: 1, column: 1, quoted: false, singleLine: false } : at === 'key' ? this.positions.key(path) : this.positions.value(path);
    let column = w.column;
    if (columnOffset !== undefined && w.singleLine) column += columnOffset + (w.quoted ? 1 : 0);
    const shownPath = formatPath(path);
    const full = shownPath === '' ? message : `${shownPath}: ${message}`;
    this.errors.push({ code, file: this.file, line: w.line, column, path: shownPath, message: full, text: `${this.file}:${w.line}:${column}: ${full}` });
  }
}

/** Checks one mapping against its table; returns false when it is not a mapping at all. */
function checkMapping(report: Report, kind: MappingKind, value: unknown, path: Key[], what: string): value is Obj {
  if (!isObj(value)) {
    report.add('WPIPE_ERR_PIPELINE_INVALID', path, `expected ${what} (a mapping), got ${describeValue(value)}`);
    return false;
  }
  const fields = PIPELINE_FORMAT[kind];
  const known = Object.keys(fields);
  // `key:` with no value (or a `${VAR:-}` that came out empty) is as if the key were absent.
  for (const [key, spec] of Object.entries(fields)) if (value[key] === null && !spec.required) delete value[key];
  const hinted = new Set<string>();
  for (const key of Object.keys(value)) {
    if (Object.hasOwn(fields, key)) continue; // own keys only: 'toString' or 'constructor' is no key of the format
    const hint = closestName(key, known);
    if (hint !== undefined) hinted.add(hint);
    report.add('WPIPE_ERR_PIPELINE_INVALID', [...path, key], `unknown key '${key}' in ${what}${hint ? ` (did you mean ${hint}?)` : ''}; expected one of: ${known.join(', ')}`, 'key');
  }
  for (const [key, spec] of Object.entries(fields)) {
    // A misspelt required key is reported once, as the misspelling.
    if (spec.required && value[key] === undefined && !hinted.has(key)) {
      report.add('WPIPE_ERR_PIPELINE_INVALID', path, `${what} is missing '${key}' (${spec.description})`);
    }
  }
  for (const [key, spec] of Object.entries(fields)) {
    if (value[key] === undefined) continue;
    checkScalar(report, spec, value[key], [...path, key], key);
  }
  return true;
}

function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing (null)';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  return describeType(v) === 'array' ? 'a list' : describeType(v) === 'object' ? 'a mapping' : describeType(v);
}

/** Type and range of scalar fields (the structural ones are walked by the caller). */
function checkScalar(report: Report, spec: FieldSpec, v: unknown, path: Key[], key: string): void {
  const bad = (expected: string): void => report.add('WPIPE_ERR_PIPELINE_INVALID', path, `'${key}' must be ${expected}, got ${describeValue(v)}`);
  switch (spec.type) {
    case 'string':
      if (typeof v !== 'string' || v.length === 0) bad('a non-empty string');
      return;
    case 'expression':
      if (typeof v !== 'string' || v.trim().length === 0) { bad('an expression (a non-empty string)'); return; }
      try {
        compileExpression(v);
      } catch (e) {
        if (e instanceof ExpressionError) {
          report.add('WPIPE_ERR_EXPRESSION_SYNTAX', path, `'${key}' is not a valid expression: ${e.message}`, 'value', e.position);
        } else {
          report.add('WPIPE_ERR_PIPELINE_INVALID', path, `'${key}': ${(e as Error).message}`);
        }
      }
      return;
    case 'boolean':
      if (typeof v !== 'boolean') bad('true or false');
      return;
    case 'number':
    case 'integer': {
      const range = spec.min === undefined ? '' : ` ${spec.exclusiveMin ? '>' : '≥'} ${spec.min}`;
      const expected = `${spec.type === 'integer' ? 'an integer' : 'a number'}${range}`;
      if (typeof v !== 'number' || !Number.isFinite(v)) { bad(expected); return; }
      if (spec.type === 'integer' && !Number.isInteger(v)) { bad(expected); return; }
      if (spec.min !== undefined && (spec.exclusiveMin ? v <= spec.min : v < spec.min)) bad(expected);
      return;
    }
    case 'strings':
      if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) bad('a list of strings');
      return;
    case 'enum': {
      const values = spec.values ?? [];
      if (typeof v !== 'string' || !values.includes(v)) {
        const hint = typeof v === 'string' ? closestName(v, values) : undefined;
        bad(`one of ${values.map((x) => `'${x}'`).join(', ')}${hint ? ` (did you mean '${hint}'?)` : ''}`);
      }
      return;
    }
    case 'steps':
      if (!Array.isArray(v)) bad('a list of steps and blocks');
      else if (v.length === 0 && spec.required) bad('a non-empty list of steps and blocks');
      return;
    case 'item':
    case 'checkpoints':
      return;
  }
}

/** Why `executor: bullmq` (the file's key, or a named step's own) is refused without the loader's queue. */
const NEEDS_QUEUE = "needs a BullMQ queue from whoever loads the file (loadPipeline's option bullmq: { connection, name }); " +
  'a pipeline file cannot name a Redis itself, and none was given';

/** The file's structure, checked; steps gathered for the module pass. */
class Checker {
  readonly refs: StepRef[] = [];
  count = 0;
  constructor(readonly report: Report, readonly defaultModule: string | undefined, readonly queue: ResolvedQueue | undefined) {}

  /** `executor: bullmq` needs the loader's queue: a file cannot choose a Redis (see the module comment). */
  executor(value: Obj, path: Key[], what: string): void {
    if (value.executor !== 'bullmq' || this.queue !== undefined) return;
    this.report.add('WPIPE_ERR_EXECUTOR_UNAVAILABLE', [...path, 'executor'],
      `'executor: bullmq' on ${what} ${NEEDS_QUEUE}`);
  }

  steps(value: unknown, path: Key[]): void {
    if (!Array.isArray(value)) return; // reported by checkScalar
    value.forEach((item, i) => this.item(item, [...path, i]));
  }

  item(value: unknown, path: Key[]): void {
    this.count++;
    if (!isObj(value)) {
      this.report.add('WPIPE_ERR_PIPELINE_INVALID', path,
        `expected a step (a mapping with module/export) or a block (condition, for, parallel, background), got ${describeValue(value)}`);
      return;
    }
    const keys = Object.keys(value);
    const blockKeys = keys.filter((k): k is BlockKey => Object.hasOwn(BLOCK_KEYS, k));
    if (blockKeys.length === 0) {
      if (!Object.hasOwn(value, 'export') && !Object.hasOwn(value, 'module')) {
        const hint = keys.map((k) => closestName(k, [...Object.keys(BLOCK_KEYS), 'export', 'module'])).find((h) => h !== undefined);
        this.report.add('WPIPE_ERR_PIPELINE_INVALID', path,
          `expected a step (module/export) or a block (condition, for, parallel, background), got a mapping with ${keys.length === 0 ? 'no keys' : `keys ${keys.map((k) => `'${k}'`).join(', ')}`}${hint ? ` (did you mean ${hint}?)` : ''}`);
        return;
      }
      this.step(value, path);
      return;
    }
    if (keys.length > 1) {
      for (const k of keys) {
        if (k === blockKeys[0]) continue;
        this.report.add('WPIPE_ERR_PIPELINE_INVALID', [...path, k],
          `a '${blockKeys[0]}' block is a mapping with the one key '${blockKeys[0]}'; '${k}' belongs ${Object.hasOwn(BLOCK_KEYS, k) ? 'in a list item of its own' : `under '${blockKeys[0]}:' (indent it)`}`, 'key');
      }
    }
    const key = blockKeys[0]!;
    const inner = value[key];
    const p = [...path, key];
    switch (key) {
      case 'condition':
        if (checkMapping(this.report, 'condition', inner, p, 'a condition block')) {
          this.steps(inner.then, [...p, 'then']);
          if (inner.else !== undefined) this.steps(inner.else, [...p, 'else']);
        }
        return;
      case 'for':
        if (checkMapping(this.report, 'for', inner, p, 'a for block')) {
          if (inner.iterations === undefined && inner.while === undefined) {
            this.report.add('WPIPE_ERR_PIPELINE_INVALID', p, "a for block needs 'iterations', 'while' or both");
          }
          this.steps(inner.steps, [...p, 'steps']);
        }
        return;
      case 'parallel':
        if (checkMapping(this.report, 'parallel', inner, p, 'a parallel block')) {
          this.executor(inner, p, 'a parallel block');
          this.steps(inner.steps, [...p, 'steps']);
        }
        return;
      case 'background':
        this.count--; // the inner item counts itself
        this.item(inner, p);
        return;
    }
  }

  step(value: Obj, path: Key[]): void {
    const before = this.report.errors.length;
    if (!checkMapping(this.report, 'step', value, path, 'a step')) return;
    this.executor(value, path, 'a step');
    if (this.report.errors.length > before) return;
    const module = typeof value.module === 'string' ? value.module : this.defaultModule;
    if (value.module === undefined && module === undefined) {
      this.report.add('WPIPE_ERR_PIPELINE_INVALID', path, "a step is missing 'module' (or give a default 'module' at the top of the file)");
      return;
    }
    if (typeof module !== 'string' || typeof value.export !== 'string' || value.export.length === 0) return;
    const overrides: Record<string, unknown> = {};
    for (const k of ['name', 'version', 'retryCount', 'retryDelay', 'retryBackoff', 'timeout', 'description', 'tags', 'executor', 'memoryLimitMb']) {
      if (value[k] !== undefined) overrides[k] = value[k];
    }
    this.refs.push({ path, module, exportName: value.export, overrides: overrides as StepOptions });
  }
}

type Resolved = { url: string; shown: string } | { code: WpipeErrorCode; message: string };

function inside(base: string, target: string): boolean {
  const rel = relative(base, target);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/** Where a module named by the file is, or why it is refused (see the module comment). */
function resolveStepModule(spec: string, base: string, allowPackages: boolean): Resolved {
  const refused = (message: string): Resolved => ({ code: 'WPIPE_ERR_PIPELINE_MODULE_REFUSED', message });
  const isBuiltin = spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]!);
  const pathLike = spec.startsWith('./') || spec.startsWith('../') || spec === '.' || spec === '..' || isAbsolute(spec) || /^[A-Za-z]:[\\/]/.test(spec) || spec.startsWith('.\\') || spec.startsWith('..\\');
  if (!pathLike && !isBuiltin && /^[a-z][a-z0-9+.-]+:/i.test(spec)) {
    return refused(`module '${spec}' is a URL; name a file relative to the steps folder (${base}), e.g. './steps.js'`);
  }
  if (!pathLike) {
    if (!allowPackages) {
      return refused(`module '${spec}' is ${isBuiltin ? 'a Node.js builtin' : 'a package name'}; modules must be files in the steps folder (${base}), named './…' ` +
        `(packages and builtins need loadPipeline's allowPackages option, or wpipe run --allow-packages)`);
    }
    if (isBuiltin) return { url: spec.startsWith('node:') ? spec : `node:${spec}`, shown: spec };
    try {
      return { url: pathToFileURL(createRequire(join(base, 'noop.js')).resolve(spec)).href, shown: spec };
    } catch (e) {
      return { code: 'WPIPE_ERR_MODULE_IMPORT', message: `module '${spec}' cannot be resolved from ${base}: ${(e as Error).message.split('\n')[0]}` };
    }
  }
  const target = resolve(base, spec);
  if (!inside(base, target)) {
    return refused(`module '${spec}' is outside the steps folder ${base}; a pipeline file may only name modules inside it (use stepsDir / --steps-dir to choose another folder)`);
  }
  if (!existsSync(target)) return { code: 'WPIPE_ERR_MODULE_IMPORT', message: `module '${spec}' does not exist (looked for ${target})` };
  let real: string;
  try {
    real = realpathSync(target);
  } catch (e) {
    return { code: 'WPIPE_ERR_MODULE_IMPORT', message: `module '${spec}' cannot be read: ${(e as Error).message}` };
  }
  if (!inside(base, real)) {
    return refused(`module '${spec}' is a symbolic link to ${real}, outside the steps folder ${base}`);
  }
  if (!statSync(real).isFile()) return { code: 'WPIPE_ERR_MODULE_IMPORT', message: `module '${spec}' is not a file (${real})` };
  return { url: pathToFileURL(real).href, shown: spec };
}

/** The file's pieces, checked; what `loadPipeline` builds from. */
interface Parsed {
  file: string;
  queue: ResolvedQueue | undefined;
  report: Report;
  doc: Obj | undefined;
  checker: Checker | undefined;
  steps: Map<StepRef, Step>;
}

async function parse(where: string, filePath: unknown, options: LoadPipelineOptions | undefined): Promise<Parsed> {
  if (typeof filePath !== 'string' || filePath.length === 0) throw invalidOption(`${where}: path must be a non-empty string, got ${describeType(filePath)}`);
  checkOptions(where, options, OPTIONS);
  const o = options ?? {};
  if (o.stepsDir !== undefined && (typeof o.stepsDir !== 'string' || o.stepsDir.length === 0)) throw invalidOption(`${where}: stepsDir must be a non-empty string`);
  if (o.allowPackages !== undefined && typeof o.allowPackages !== 'boolean') throw invalidOption(`${where}: allowPackages must be a boolean, got ${describeType(o.allowPackages)}`);
  if (o.pipelineOptions !== undefined && !isObj(o.pipelineOptions)) throw invalidOption(`${where}: pipelineOptions must be an object, got ${describeType(o.pipelineOptions)}`);
  const queue = o.bullmq === undefined ? undefined : resolveQueue(`${where}: bullmq`, o.bullmq);
  let base = resolve(o.stepsDir ?? dirname(resolve(filePath)));
  try {
    base = realpathSync(base);
  } catch {
    if (o.stepsDir !== undefined) throw invalidOption(`${where}: stepsDir ${base} does not exist`);
  }
  if (o.stepsDir !== undefined && !statSync(base).isDirectory()) throw invalidOption(`${where}: stepsDir ${base} is not a folder`);

  let value: unknown;
  try {
    value = readYaml(filePath, o.env === undefined ? {} : { env: o.env });
  } catch (e) {
    const d = (e as WpipeError).details ?? {};
    if (e instanceof WpipeError && (d.kind === 'parse' || d.kind === 'variable')) {
      const report = new Report(filePath, undefined);
      const message = e.message.replace(/^readYaml: [^\n]*?:\d+:\d+: /, '');
      report.errors.push({ code: 'WPIPE_ERR_YAML', file: filePath, line: Number(d.line), column: Number(d.column), path: '', message, text: `${filePath}:${String(d.line)}:${String(d.column)}: ${message}` });
      return { file: filePath, queue, report, doc: undefined, checker: undefined, steps: new Map() };
    }
    throw e; // not found, unreadable: nothing to point at
  }
  const report = new Report(filePath, readFileSync(filePath, 'utf8'));
  const parsed: Parsed = { file: filePath, queue, report, doc: undefined, checker: undefined, steps: new Map() };
  if (!checkMapping(report, 'pipeline', value, [], 'a pipeline')) return parsed;
  parsed.doc = value;
  const checker = new Checker(report, typeof value.module === 'string' ? value.module : undefined, queue);
  parsed.checker = checker;
  checker.steps(value.steps, ['steps']);
  if (value.checkpoints !== undefined) {
    if (!Array.isArray(value.checkpoints)) {
      report.add('WPIPE_ERR_PIPELINE_INVALID', ['checkpoints'], `'checkpoints' must be a list of { name, expression }, got ${describeValue(value.checkpoints)}`);
    } else {
      const names = new Set<unknown>();
      value.checkpoints.forEach((c, i) => {
        if (!checkMapping(report, 'checkpoint', c, ['checkpoints', i], 'a checkpoint')) return;
        if (names.has(c.name)) report.add('WPIPE_ERR_PIPELINE_INVALID', ['checkpoints', i, 'name'], `a checkpoint named '${String(c.name)}' is already defined`);
        names.add(c.name);
      });
    }
  }

  // Modules and exports: each module resolved and imported once, in file order.
  const modules = new Map<string, Promise<{ ns?: Record<string, unknown>; url?: string; error?: { code: WpipeErrorCode; message: string } }>>();
  const load = (spec: string) => {
    let p = modules.get(spec);
    if (p === undefined) {
      p = (async () => {
        const r = resolveStepModule(spec, base, o.allowPackages === true);
        if ('code' in r) return { error: r };
        try {
          return { ns: await importModule(r.url), url: r.url };
        } catch (e) {
          const why = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message.split('\n')[0]}` : String(e);
          const hint = /\.[cm]?tsx?$/.test(spec) && /Unknown file extension/.test(why) ? ' (a .ts module needs a TypeScript loader: run with node --import tsx, or compile it to .js)' : '';
          return { error: { code: 'WPIPE_ERR_MODULE_IMPORT' as const, message: `module '${spec}' failed to import: ${why}${hint}` } };
        }
      })();
      modules.set(spec, p);
    }
    return p;
  };
  const reportedModules = new Set<string>();
  for (const ref of checker.refs) {
    const m = await load(ref.module);
    const modulePath = (ref.path.length > 0 && Object.hasOwn(valueAt(value, ref.path) as Obj, 'module')) ? [...ref.path, 'module'] : ref.path;
    if (m.error !== undefined) {
      if (!reportedModules.has(ref.module)) report.add(m.error.code, modulePath, m.error.message);
      reportedModules.add(ref.module);
      continue;
    }
    const ns = m.ns!;
    const steps = Object.keys(ns).filter((k) => isStepSafe(ns, k));
    const exportPath = [...ref.path, 'export'];
    if (!Object.prototype.hasOwnProperty.call(ns, ref.exportName)) {
      const hint = closestName(ref.exportName, steps);
      report.add('WPIPE_ERR_PIPELINE_EXPORT', exportPath,
        `module '${ref.module}' has no export '${ref.exportName}'${hint ? ` (did you mean ${hint}?)` : ''}; its step exports: ${steps.length === 0 ? 'none' : steps.join(', ')}`);
      continue;
    }
    if (!isStepSafe(ns, ref.exportName)) {
      const v = readExport(ns, ref.exportName);
      report.add('WPIPE_ERR_PIPELINE_EXPORT', exportPath,
        `export '${ref.exportName}' of '${ref.module}' is ${typeof v === 'function' ? 'a plain function' : describeValue(v)}, not a step: only step(...) exports can be named in a pipeline file ` +
          `(export const ${/^[A-Za-z_$][\w$]*$/.test(ref.exportName) ? ref.exportName : 'x'} = step({ name: '${ref.exportName}' })(fn))`);
      continue;
    }
    const exported = readExport(ns, ref.exportName) as Step;
    const { fn: _fn, ...meta } = exported.meta;
    if (queue === undefined && (ref.overrides.executor ?? meta.executor) === 'bullmq') {
      // The module's own step({ executor: 'bullmq' }) counts as much as the file's key: a queue the
      // process registered with useBullmq() is not the loader's, so nothing may reach it from here.
      report.add('WPIPE_ERR_EXECUTOR_UNAVAILABLE', exportPath,
        `export '${ref.exportName}' of '${ref.module}' is a step with executor 'bullmq', which ${NEEDS_QUEUE}`);
      continue;
    }
    try {
      parsed.steps.set(ref, step({ ...meta, ...ref.overrides, module: meta.module ?? { moduleUrl: m.url!, exportName: ref.exportName } })(exported));
    } catch (e) {
      report.add('WPIPE_ERR_PIPELINE_INVALID', ref.path, (e as Error).message.replace(/^step\(\): /, ''));
    }
  }
  return parsed;
}

function readExport(ns: Record<string, unknown>, name: string): unknown {
  try {
    return ns[name];
  } catch {
    return undefined; // an export in its temporal dead zone
  }
}

function isStepSafe(ns: Record<string, unknown>, name: string): boolean {
  return isStep(readExport(ns, name));
}

function valueAt(root: unknown, path: readonly Key[]): unknown {
  let v: unknown = root;
  for (const k of path) v = (v as Record<Key, unknown> | undefined)?.[k];
  return v;
}

/** Builds the engine's objects; construction errors are reported at the block they come from. */
function build(parsed: Parsed, options: LoadPipelineOptions): Pipeline | undefined {
  const { report, doc, checker } = parsed;
  if (doc === undefined || checker === undefined || report.errors.length > 0) return undefined;
  const byPath = new Map<string, Step>();
  for (const [ref, s] of parsed.steps) byPath.set(pathKey(ref.path), s);
  const guard = <T>(path: Key[], make: () => T): T | undefined => {
    try {
      return make();
    } catch (e) {
      report.add(e instanceof ExpressionError ? 'WPIPE_ERR_EXPRESSION_SYNTAX' : 'WPIPE_ERR_PIPELINE_INVALID', path, (e as Error).message);
      return undefined;
    }
  };
  const items = (list: unknown, path: Key[]): StepItem[] => (list as unknown[]).map((v, i) => item(v, [...path, i])).filter((x): x is StepItem => x !== undefined);
  const item = (v: unknown, path: Key[]): StepItem | undefined => {
    const o = v as Obj;
    if (Object.hasOwn(o, 'condition')) {
      const c = o.condition as Obj;
      const p = [...path, 'condition'];
      const branchTrue = items(c.then, [...p, 'then']);
      const branchFalse = c.else === undefined ? undefined : items(c.else, [...p, 'else']);
      return guard(p, () => new Condition({ expression: c.expression as string, branchTrue, ...(branchFalse ? { branchFalse } : {}), ...(c.name ? { name: c.name as string } : {}) }));
    }
    if (Object.hasOwn(o, 'for')) {
      const f = o.for as Obj;
      const p = [...path, 'for'];
      const steps = items(f.steps, [...p, 'steps']);
      return guard(p, () => new For({
        steps,
        ...(f.iterations !== undefined ? { iterations: f.iterations as number } : {}),
        ...(f.while !== undefined ? { validationExpression: f.while as string } : {}),
        ...(f.maxIterations !== undefined ? { maxIterations: f.maxIterations as number } : {}),
        ...(f.name ? { name: f.name as string } : {}),
      }));
    }
    if (Object.hasOwn(o, 'parallel')) {
      const b = o.parallel as Obj;
      const p = [...path, 'parallel'];
      const steps = items(b.steps, [...p, 'steps']);
      const opts: Record<string, unknown> = { steps };
      for (const k of ['maxWorkers', 'executor', 'useProcesses', 'memoryLimitMb', 'name']) if (b[k] !== undefined) opts[k] = b[k];
      return guard(p, () => new Parallel(opts as never));
    }
    if (Object.hasOwn(o, 'background')) {
      const p = [...path, 'background'];
      const inner = item(o.background, p);
      return inner === undefined ? undefined : guard(p, () => new Background(inner));
    }
    return byPath.get(pathKey(path));
  };
  const fileOptions: Record<string, unknown> = {};
  for (const k of Object.keys(PIPELINE_FORMAT.pipeline)) {
    if (k === 'steps' || k === 'checkpoints' || k === 'module' || k === 'description') continue;
    if (doc[k] !== undefined) fileOptions[k] = doc[k];
  }
  const pipe = guard([], () => new Pipeline({ ...fileOptions, ...options.pipelineOptions } as PipelineOptions));
  if (pipe === undefined) return undefined;
  const queue = parsed.queue;
  if (queue !== undefined) {
    // This pipeline's own: other pipelines of the process (and useBullmq's queue) are not touched.
    pipe._provideExecutor('bullmq', () => createBullmqExecutor(queue));
    pipe._queue = queue;
  }
  const steps = items(doc.steps, ['steps']);
  if (report.errors.length > 0) return undefined;
  guard(['steps'], () => pipe.setSteps(steps));
  ((doc.checkpoints ?? []) as Obj[]).forEach((c, i) => guard(['checkpoints', i], () => pipe.addCheckpoint(c.name as string, c.expression as string)));
  return report.errors.length > 0 ? undefined : pipe;
}

function sortErrors(errors: PipelineFileError[]): PipelineFileError[] {
  return errors.sort((a, b) => a.line - b.line || a.column - b.column);
}

/**
 * Reads a pipeline file and returns a real {@link Pipeline} (see the module comment for the format
 * and what is refused). Rejects with a WpipeError `WPIPE_ERR_PIPELINE_INVALID` whose message lists
 * every problem as `file:line:column: what` and whose `details.errors` holds them as
 * {@link PipelineFileError}s (each with its own code: MODULE_REFUSED, EXPORT, EXPRESSION_SYNTAX …);
 * with `WPIPE_ERR_YAML` when the file does not exist or cannot be read; a TypeError for bad options.
 *
 * @example
 * ```ts
 * const pipe = await loadPipeline('orders.yaml', { stepsDir: 'steps', pipelineOptions: { trackingDb: 'runs.db' } });
 * await pipe.run({ orderId: 7 }, { runId: 'order-7' });
 * ```
 */
export async function loadPipeline(path: string, options?: LoadPipelineOptions): Promise<Pipeline> {
  const parsed = await parse('loadPipeline', path, options);
  const pipe = build(parsed, options ?? {});
  if (pipe !== undefined) {
    pipe._yamlPath = resolve(path); // recorded with each run of the history (pipelines.yaml_path)
    return pipe;
  }
  const errors = sortErrors(parsed.report.errors);
  const shown = errors.slice(0, 50).map((e) => e.text.replace(/\n/g, '\n  ')).join('\n');
  const more = errors.length > 50 ? `\n… and ${errors.length - 50} more` : '';
  throw new WpipeError('WPIPE_ERR_PIPELINE_INVALID',
    `loadPipeline: ${path} is not a valid pipeline (${errors.length} problem${errors.length === 1 ? '' : 's'}):\n${shown}${more}`,
    { details: { file: path, errors } });
}

/**
 * Checks a pipeline file as {@link loadPipeline} would (the format, expressions, modules and
 * exports: the step modules are imported) and resolves to every problem instead of rejecting.
 * Rejects only for a file that does not exist or cannot be read, and for bad options.
 *
 * @example
 * ```ts
 * const report = await validatePipelineFile('orders.yaml');
 * if (!report.valid) for (const e of report.errors) console.error(e.text);
 * ```
 */
export async function validatePipelineFile(path: string, options?: LoadPipelineOptions): Promise<PipelineFileReport> {
  const parsed = await parse('validatePipelineFile', path, options);
  const pipe = build(parsed, options ?? {});
  const errors = sortErrors(parsed.report.errors);
  const name = parsed.doc?.pipelineName;
  return {
    file: path, valid: pipe !== undefined && errors.length === 0, errors,
    ...(typeof name === 'string' ? { pipelineName: name } : parsed.doc !== undefined ? { pipelineName: 'Pipeline' } : {}),
    ...(pipe !== undefined ? { steps: parsed.checker!.count } : {}),
  };
}
