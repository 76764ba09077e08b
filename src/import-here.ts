/**
 * The one `import()` of the library's code (src/dynamic-import.ts says why there is one). The
 * library bundle gets another copy of this module, whose `importHere` is the package entry's own
 * `import()` (scripts/build.mjs bundleLibrary).
 *
 * @example
 * ```ts
 * const ns = await importHere('bullmq');
 * ```
 */
export function importHere(specifier: string): Promise<unknown> {
  return import(specifier);
}
