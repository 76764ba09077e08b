/**
 * `import()` of a module named at run time: a step module, an optional package (bullmq, ioredis,
 * pino). The library calls this one function for every such import, never `import()` itself, so
 * that its bundle can be compiled from V8's code cache: functions V8 reads back from a cache lose
 * the callback `import()` needs ("A dynamic import callback was not specified"), so the bundle
 * (dist/wpipe.cjs) gets a copy of src/import-here.ts that calls the package entry's own `import()`
 * instead (scripts/build.mjs bundleLibrary; test/code-cache.test.ts). Package names resolve from the
 * package entry, dist/wpipe.js, as they did when the bundle was that file; a relative specifier is
 * refused (it would resolve from wpipe's files, not the caller's).
 *
 * @example
 * ```ts
 * const { Queue } = await importModule<typeof import('bullmq')>('bullmq');
 * const ns = await importModule(pathToFileURL('/app/steps.js').href);
 * ```
 */
import { importHere } from './import-here.js';

/** `import(specifier)` for the library's code; `specifier` is a URL or a package name, never relative. */
export function importModule<T = Record<string, unknown>>(specifier: string): Promise<T> {
  // Relative to what? To the package entry inside the bundle, to this file elsewhere: to neither
  // caller. Callers pass a URL or an absolute path made into one, or a package name.
  if (/^\.\.?([/\\]|$)/.test(specifier)) {
    return Promise.reject(new TypeError(`importModule('${specifier}'): a relative specifier would resolve from wpipe's own files; pass a file URL or a package name`));
  }
  return importHere(specifier) as Promise<T>;
}
