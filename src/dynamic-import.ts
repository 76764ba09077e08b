/**
 * `import()` of a module named at run time: a step module, an optional package (bullmq, ioredis,
 * pino). The library calls this one function for every such import, never `import()` itself, so
 * that its bundle can be compiled from V8's code cache: functions V8 reads back from a cache lose
 * the callback `import()` needs ("A dynamic import callback was not specified"), so the bundle
 * (dist/wpipe.cjs) gets a copy of this module that calls the package entry's own `import()` instead
 * (scripts/build.mjs bundleLibrary; test/code-cache.test.ts). Bare names and relative specifiers
 * resolve from the package entry, dist/wpipe.js, as they did when the bundle was that file.
 *
 * @example
 * ```ts
 * const { Queue } = await importModule<typeof import('bullmq')>('bullmq');
 * const ns = await importModule(pathToFileURL('/app/steps.js').href);
 * ```
 */
export function importModule<T = Record<string, unknown>>(specifier: string): Promise<T> {
  return import(specifier) as Promise<T>;
}
