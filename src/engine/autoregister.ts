/**
 * AutoRegister: the steps a module exports, made addressable by worker threads and processes.
 *
 * A worker can only run a step it can import, so every step AutoRegister returns carries a module
 * reference `{ moduleUrl, exportName }`: the file URL the module was imported from and the name it
 * was exported under. A `step()` export without one gets a new step with the same settings plus the
 * reference (your export itself is never changed); one that already has a reference keeps it.
 *
 * @example
 * ```ts
 * // steps.ts
 * export const load = step({ name: 'load', tags: ['io'] })(async (ctx) => ({ rows: await fetchRows() }));
 * export const crunch = step({ name: 'crunch', executor: 'processes', memoryLimitMb: 512, timeout: 60 })(crunchFn);
 *
 * // main.ts
 * const pipe = await AutoRegister.registerAll(new Pipeline({ pipelineName: 'job' }), './steps.ts');
 * const ioSteps = await AutoRegister.fromModule(new URL('./steps.js', import.meta.url), { tags: ['io'] });
 * ```
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WpipeError, checkOptions, describeType, invalidOption } from '../errors.js';
import { scanExportNames } from './export-order.js';
import { Pipeline } from './pipeline.js';
import { isStep, withModuleRef, type Step } from './step.js';
import { importModule } from '../dynamic-import.js';

/**
 * Options of {@link AutoRegister.fromModule} and {@link AutoRegister.registerAll}.
 *
 * @example
 * ```ts
 * const o: AutoRegisterOptions = { tags: ['io', 'db'] };
 * ```
 */
export interface AutoRegisterOptions {
  /** Keep only steps whose `step({ tags })` includes at least one of these (omit to keep all). */
  tags?: readonly string[];
}

/**
 * What a module may be given as:
 * - a `file:` URL (a string or a `URL`), e.g. `new URL('./steps.js', import.meta.url)`;
 * - an absolute path;
 * - a relative path, resolved against `process.cwd()` (not against the calling module: use a URL
 *   built from `import.meta.url` for that). A string that starts with `./` or `../`, or that names an
 *   existing file under the working directory, is a path;
 * - otherwise a bare package name (`'my-steps'`, `'@acme/steps/etl'`), resolved as `import()` from
 *   wpipe's own location would resolve it (so a package installed next to wpipe), else with
 *   `require.resolve` from `process.cwd()`.
 *
 * @example
 * ```ts
 * const where: ModuleSpecifier = new URL('./steps.js', import.meta.url);
 * ```
 */
export type ModuleSpecifier = string | URL;

const OPTIONS = ['tags'] as const;

async function collect(where: string, specifier: ModuleSpecifier, options: AutoRegisterOptions | undefined): Promise<Step[]> {
  checkOptions(where, options, OPTIONS);
  const tags = checkFilterTags(where, options?.tags);
  const moduleUrl = resolveModule(where, specifier);
  let ns: Record<string, unknown>;
  try {
    ns = await importModule(moduleUrl);
  } catch (cause) {
    throw importError(where, specifier, moduleUrl, cause);
  }
  const shown = typeof specifier === 'string' ? specifier : specifier.href;
  const all: Step[] = [];
  const seen = new Set<unknown>();
  for (const exportName of exportOrder(ns, moduleUrl)) {
    let value: unknown;
    try {
      value = ns[exportName];
    } catch {
      continue; // an export still in its temporal dead zone (an import cycle) is not a step we can take
    }
    // Plain functions (not made by step()) are not steps here: a module of steps may export helpers.
    if (!isStep(value) || seen.has(value)) continue; // one step exported under two names: once, first name
    seen.add(value);
    all.push(value.meta.module === undefined ? withModuleRef(value, { moduleUrl, exportName }) : value);
  }
  if (all.length === 0) {
    throw new WpipeError(
      'WPIPE_ERR_MODULE_NO_STEPS',
      `${where}: module '${shown}' exports no step() functions (plain functions are not taken: wrap them with step({ … })(fn) and export the result)`,
      { details: { module: shown, moduleUrl } },
    );
  }
  if (tags === undefined) return all;
  const picked = all.filter((s) => s.meta.tags.some((t) => tags.includes(t)));
  if (picked.length === 0) {
    const present = [...new Set(all.flatMap((s) => s.meta.tags))];
    throw new WpipeError(
      'WPIPE_ERR_MODULE_NO_STEPS',
      `${where}: module '${shown}' has ${all.length} step export${all.length === 1 ? '' : 's'} but none tagged ${tags.map((t) => `'${t}'`).join(' or ')}` +
        ` (tags present: ${present.length === 0 ? 'none' : present.map((t) => `'${t}'`).join(', ')})`,
      { details: { module: shown, moduleUrl, tags: [...tags] } },
    );
  }
  return picked;
}

/**
 * Imports modules of steps and hands their `step()` exports to pipelines. See the module example.
 *
 * @example
 * ```ts
 * const steps = await AutoRegister.fromModule('./steps.ts');           // relative to process.cwd()
 * pipe.setSteps([...steps, new Parallel({ steps: await AutoRegister.fromModule('./enrich.ts', { tags: ['cpu'] }) })]);
 * ```
 */
export const AutoRegister = Object.freeze({
  /**
   * Imports a module and resolves to its exported `step(…)` functions in export order (the order of
   * the module's source text; see below), each with a module reference `{ moduleUrl, exportName }`.
   * Plain functions and other exports are skipped (only `step()` results are steps here). With
   * `tags`, only steps tagged with at least one of them are kept.
   *
   * Export order: a module namespace lists its names alphabetically, so the order comes from
   * scanning the module's source text for `export` declarations and `export { … }` lists. Names
   * the scan cannot see (a second declarator `export const a = 1, b = 2`, destructuring, `export *
   * from`, a CommonJS module) come after the ones it sees, in alphabetical order.
   *
   * Rejects with WpipeError WPIPE_ERR_MODULE_IMPORT (the path, the URL tried and the cause) when the
   * module cannot be resolved or its evaluation throws; WPIPE_ERR_MODULE_NO_STEPS when it exports
   * no step (or none with the tags asked for); a TypeError / RangeError for bad arguments.
   *
   * @param moduleUrlOrPath a file URL, an absolute path, a path relative to `process.cwd()`, or a
   *   package name (see {@link ModuleSpecifier})
   *
   * @example
   * ```ts
   * const [load, save] = await AutoRegister.fromModule(new URL('./steps.js', import.meta.url));
   * load.meta.module; // { moduleUrl: 'file:///app/steps.js', exportName: 'load' }
   * ```
   */
  fromModule(moduleUrlOrPath: ModuleSpecifier, options?: AutoRegisterOptions): Promise<Step[]> {
    return collect('AutoRegister.fromModule', moduleUrlOrPath, options);
  },

  /**
   * {@link AutoRegister.fromModule}, then appends the steps to `pipeline` (after the steps it
   * already has, checked as `setSteps` checks them) and resolves to the pipeline. Nothing is
   * appended when it rejects.
   *
   * @example
   * ```ts
   * const pipe = await AutoRegister.registerAll(new Pipeline({ pipelineName: 'etl' }), './etl-steps.ts', { tags: ['etl'] });
   * await pipe.run({});
   * ```
   */
  async registerAll<P extends Pipeline>(pipeline: P, moduleUrlOrPath: ModuleSpecifier, options?: AutoRegisterOptions): Promise<P> {
    const where = 'AutoRegister.registerAll';
    if (!(pipeline instanceof Pipeline)) {
      throw invalidOption(`${where}: pipeline must be a Pipeline or PipelineAsync, got ${describeType(pipeline)}`);
    }
    const steps = await collect(where, moduleUrlOrPath, options);
    pipeline.addSteps(steps);
    return pipeline;
  },
});

function checkFilterTags(where: string, tags: unknown): readonly string[] | undefined {
  if (tags === undefined) return undefined;
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) {
    throw invalidOption(`${where}: tags must be an array of strings, got ${describeType(tags)}`);
  }
  if (tags.length === 0) throw invalidOption(`${where}: tags must not be empty (omit it to take every step)`, 'RangeError');
  return tags as string[];
}

/** The file URL to import (see ModuleSpecifier). Throws WPIPE_ERR_MODULE_IMPORT when a package name does not resolve. */
function resolveModule(where: string, specifier: unknown): string {
  if (specifier instanceof URL) {
    if (specifier.protocol !== 'file:') {
      throw invalidOption(`${where}: a module URL must be a file: URL (workers import steps from files), got '${specifier.href}'`);
    }
    return specifier.href;
  }
  if (typeof specifier !== 'string') {
    throw invalidOption(`${where}: moduleUrlOrPath must be a file URL, a path or a package name, got ${describeType(specifier)}`);
  }
  if (specifier.length === 0) throw invalidOption(`${where}: moduleUrlOrPath must not be empty`, 'RangeError');
  if (specifier.startsWith('file:')) {
    try {
      return new URL(specifier).href;
    } catch (cause) {
      throw invalidOption(`${where}: '${specifier}' is not a valid file URL (${cause instanceof Error ? cause.message : String(cause)})`);
    }
  }
  if (isAbsolute(specifier)) return pathToFileURL(specifier).href;
  // A scheme other than file: (node:, data:, http:) is not a module a worker can import steps from.
  if (/^[a-z][a-z0-9+.-]+:/i.test(specifier)) {
    throw invalidOption(`${where}: '${specifier}' is not a file URL, a path or a package name (only file: modules can be imported by workers)`);
  }
  const local = resolve(process.cwd(), specifier);
  if (/^\.\.?([/\\]|$)/.test(specifier) || isFile(local)) return pathToFileURL(local).href;
  // A bare package name: first as import() from here would see it (ESM "import" conditions), then
  // as the application would require it from its working directory.
  try {
    return import.meta.resolve(specifier);
  } catch (first) {
    try {
      return pathToFileURL(createRequire(join(process.cwd(), 'noop.js')).resolve(specifier)).href;
    } catch {
      throw importError(where, specifier, undefined, first);
    }
  }
}

function isFile(path: string): boolean {
  try {
    return existsSync(path) && statSync(path).isFile();
  } catch {
    return false;
  }
}

function importError(where: string, specifier: ModuleSpecifier, moduleUrl: string | undefined, cause: unknown): WpipeError {
  const shown = typeof specifier === 'string' ? specifier : specifier.href;
  const why = cause instanceof Error ? `${cause.name === 'Error' ? '' : `${cause.name}: `}${cause.message}` : String(cause);
  const tried = moduleUrl === undefined || moduleUrl === shown ? '' : ` (${moduleUrl})`;
  return new WpipeError('WPIPE_ERR_MODULE_IMPORT', `${where}: cannot import module '${shown}'${tried}: ${why}`, {
    cause,
    details: { module: shown, moduleUrl },
  });
}

/** The namespace's names in source order where the source can be read and scanned; the rest after, alphabetically. */
function exportOrder(ns: Record<string, unknown>, moduleUrl: string): string[] {
  const names = Object.keys(ns); // alphabetical (module namespace objects sort their keys)
  let scanned: string[] = [];
  try {
    scanned = scanExportNames(readFileSync(fileURLToPath(moduleUrl), 'utf8'));
  } catch {
    // Not a readable file (e.g. resolved through a loader): namespace order.
  }
  const present = new Set(names);
  const ordered = scanned.filter((n) => present.has(n));
  const placed = new Set(ordered);
  for (const n of names) if (!placed.has(n)) ordered.push(n);
  return ordered;
}
