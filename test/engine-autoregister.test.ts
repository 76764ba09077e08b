// AutoRegister: step exports of a module in export order, with module references, tags, the ways a
// module can be named, and the errors (a module that throws at import, one with no steps).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AutoRegister, Pipeline, PipelineAsync, step, isStep, WpipeError, type Step } from '../src/index.js';
import { scanExportNames } from '../src/engine/export-order.js';
import * as stepsModule from './fixtures/autoregister/steps.js';

const fixture = (name: string): URL => new URL(`./fixtures/autoregister/${name}`, import.meta.url);
const stepsUrl = fixture('steps.ts');

const codeIs = (code: string, message?: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof WpipeError, `expected a WpipeError, got ${String(e)}`);
  assert.equal(e.code, code);
  if (message) assert.match(e.message, message);
  return true;
};

test('fromModule returns the step() exports in export order, not alphabetical, each with a module reference', async () => {
  assert.deepEqual(Object.keys(stepsModule), ['CONSTANT', 'alreadyAddressed', 'bSave', 'helper', 'transform', 'zLoad'],
    'a module namespace lists its names alphabetically: the reason for the source scan');
  const steps = await AutoRegister.fromModule(stepsUrl);
  assert.deepEqual(steps.map((s) => s.meta.name), ['load', 'transform', 'save', 'pinned']);
  assert.ok(steps.every((s) => isStep(s)));
  assert.deepEqual(steps.slice(0, 3).map((s) => s.meta.module), [
    { moduleUrl: stepsUrl.href, exportName: 'zLoad' },
    { moduleUrl: stepsUrl.href, exportName: 'transform' },
    { moduleUrl: stepsUrl.href, exportName: 'bSave' },
  ]);
  // The helper function and the constant are not steps; a step with its own reference keeps it.
  assert.equal(steps[3], stepsModule.alreadyAddressed);
  assert.deepEqual(steps[3]!.meta.module, { moduleUrl: 'file:///elsewhere/pinned.js', exportName: 'pinned' });
});

test("fromModule never changes the module's exports: a new step with the same settings plus the reference", async () => {
  const [, transform] = await AutoRegister.fromModule(stepsUrl);
  assert.notEqual(transform, stepsModule.transform);
  assert.equal(stepsModule.transform.meta.module, undefined, 'the export itself has no reference');
  const { module: _m, ...copied } = transform!.meta;
  const { module: _o, ...original } = stepsModule.transform.meta;
  assert.deepEqual(copied, original, 'name, version, retries, tags, executor, fn: all kept');
  assert.equal(transform!.meta.fn, stepsModule.transform.meta.fn);
  assert.deepEqual(transform!({ n: 4 }, {} as never), stepsModule.transform({ n: 4 }, {} as never), 'still callable as the function');
  // Asked again, the same references (the module is imported once by Node's module cache).
  const again = await AutoRegister.fromModule(stepsUrl);
  assert.deepEqual(again.map((s) => s.meta.module), (await AutoRegister.fromModule(stepsUrl)).map((s) => s.meta.module));
});

test('a module may be named by file URL (string or URL), absolute path, path relative to process.cwd(), or package name', async () => {
  const abs = fileURLToPath(stepsUrl);
  const rel = relative(process.cwd(), abs);
  const forms: Array<string | URL> = [stepsUrl, stepsUrl.href, abs, rel, `./${rel}`];
  for (const form of forms) {
    const steps = await AutoRegister.fromModule(form);
    assert.equal(steps[0]!.meta.module!.moduleUrl, pathToFileURL(abs).href, String(form));
  }
  // A bare package name resolves too: 'yaml' (a dependency) imports, and has no steps.
  await assert.rejects(AutoRegister.fromModule('yaml'), codeIs('WPIPE_ERR_MODULE_NO_STEPS', /module 'yaml' exports no step\(\) functions/));
  await assert.rejects(AutoRegister.fromModule('wpipe-no-such-package'),
    codeIs('WPIPE_ERR_MODULE_IMPORT', /cannot import module 'wpipe-no-such-package'.*Cannot find package 'wpipe-no-such-package'/));
});

test('tags keep the steps tagged with any of them, in export order; a filter that keeps none says which tags exist', async () => {
  assert.deepEqual((await AutoRegister.fromModule(stepsUrl, { tags: ['db'] })).map((s) => s.meta.name), ['save']);
  assert.deepEqual((await AutoRegister.fromModule(stepsUrl, { tags: ['db', 'cpu'] })).map((s) => s.meta.name), ['transform', 'save']);
  assert.deepEqual((await AutoRegister.fromModule(stepsUrl, { tags: ['io'] })).map((s) => s.meta.name), ['load', 'save']);
  await assert.rejects(AutoRegister.fromModule(stepsUrl, { tags: ['gpu', 'net'] }),
    codeIs('WPIPE_ERR_MODULE_NO_STEPS', /has 4 step exports but none tagged 'gpu' or 'net' \(tags present: 'io', 'cpu', 'db'\)/));
});

test('bad arguments reject with TypeError / RangeError in the option style', async () => {
  const invalid = (kind: typeof TypeError | typeof RangeError, message: RegExp) => (e: unknown): boolean => {
    assert.ok(e instanceof kind, String(e));
    assert.equal((e as { code?: string }).code, 'WPIPE_ERR_INVALID_OPTION');
    assert.match((e as Error).message, message);
    return true;
  };
  await assert.rejects(AutoRegister.fromModule(stepsUrl, { tag: ['io'] } as never), invalid(TypeError, /unknown option 'tag' \(did you mean tags\?\)/));
  await assert.rejects(AutoRegister.fromModule(stepsUrl, { tags: 'io' } as never), invalid(TypeError, /tags must be an array of strings, got string/));
  await assert.rejects(AutoRegister.fromModule(stepsUrl, { tags: [] }), invalid(RangeError, /tags must not be empty/));
  await assert.rejects(AutoRegister.fromModule(42 as never), invalid(TypeError, /must be a file URL, a path or a package name, got number/));
  await assert.rejects(AutoRegister.fromModule(''), invalid(RangeError, /must not be empty/));
  await assert.rejects(AutoRegister.fromModule(new URL('https://example.com/steps.js')), invalid(TypeError, /must be a file: URL/));
  await assert.rejects(AutoRegister.fromModule('node:fs'), invalid(TypeError, /'node:fs' is not a file URL, a path or a package name/));
  await assert.rejects(AutoRegister.registerAll({} as never, stepsUrl), invalid(TypeError, /registerAll: pipeline must be a Pipeline or PipelineAsync, got object/));
});

test('a module that throws at import rejects with WPIPE_ERR_MODULE_IMPORT naming the path and the cause', async () => {
  const url = fixture('throws.ts');
  const err = await AutoRegister.fromModule(url).then(() => assert.fail('must reject'), (e: unknown) => e as WpipeError);
  assert.ok(err instanceof WpipeError);
  assert.equal(err.code, 'WPIPE_ERR_MODULE_IMPORT');
  assert.equal(err.errorCode, 500);
  assert.equal(err.message, `AutoRegister.fromModule: cannot import module '${url.href}': RangeError: fixture refused to load: DATABASE_URL is not set`);
  assert.ok(err.cause instanceof RangeError);
  assert.deepEqual(err.details, { module: url.href, moduleUrl: url.href });
  // A path that does not exist: the same code, the path given and the URL tried.
  const missing = './test/fixtures/autoregister/missing.ts';
  await assert.rejects(AutoRegister.fromModule(missing), codeIs('WPIPE_ERR_MODULE_IMPORT',
    new RegExp(`cannot import module '\\./test/fixtures/autoregister/missing\\.ts' \\(${pathToFileURL(`${process.cwd()}/test/fixtures/autoregister/missing.ts`).href.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\): .*Cannot find module`)));
});

test('a module without step exports rejects with WPIPE_ERR_MODULE_NO_STEPS (plain functions are not steps)', async () => {
  await assert.rejects(AutoRegister.fromModule(fixture('no-steps.ts')), codeIs('WPIPE_ERR_MODULE_NO_STEPS',
    /no-steps\.ts' exports no step\(\) functions \(plain functions are not taken: wrap them with step\(\{ … \}\)\(fn\) and export the result\)/));
});

test('names the export scan cannot see come after the ones it sees, in alphabetical order', async () => {
  const steps = await AutoRegister.fromModule(fixture('multi.ts'));
  assert.deepEqual(steps.map((s) => s.meta.module!.exportName), ['zeta', 'omega', 'alpha']);
});

test('registerAll appends after the steps a pipeline has, validated, and resolves to the pipeline', async () => {
  const first = step({ name: 'first' })(() => ({ n: 3 }));
  const pipe = new Pipeline({ pipelineName: 'auto' }).setSteps([first]);
  const same = await AutoRegister.registerAll(pipe, stepsUrl, { tags: ['cpu', 'io'] });
  assert.equal(same, pipe);
  assert.deepEqual(pipe.steps.map((s) => [s.name, s.path]), [
    ['first', 'steps[0]'], ['load', 'steps[1]'], ['transform', 'steps[2]'], ['save', 'steps[3]'],
  ]);
  assert.deepEqual(await pipe.run({}), { n: 3, loaded: true, doubled: 6, note: 'export const fake = `nested`', saved: true });
  // A failed registration appends nothing.
  await assert.rejects(AutoRegister.registerAll(pipe, fixture('no-steps.ts')), codeIs('WPIPE_ERR_MODULE_NO_STEPS'));
  assert.equal(pipe.steps.length, 4);
  // PipelineAsync too; the resolved type is the pipeline's own.
  const asyncPipe: PipelineAsync = await AutoRegister.registerAll(new PipelineAsync(), fixture('multi.ts'));
  assert.deepEqual(await asyncPipe.runMany([{}]), [{ z: 1, o: 1, a: 1 }]);
});

test('steps from fromModule are ordinary step items: inside blocks, and as items of setSteps', async () => {
  const steps: Step[] = await AutoRegister.fromModule(stepsUrl, { tags: ['io'] });
  const pipe = new Pipeline().setSteps([...steps]);
  assert.deepEqual(await pipe.run({}), { loaded: true, saved: true });
});

test('the export scanner: declarations, lists, defaults; comments, strings, templates, regexes and nested blocks are skipped', () => {
  const src = [
    '#!/usr/bin/env node',
    '// export const inLineComment = 1;',
    '/* export function inBlockComment() {} */',
    "const s = 'export const inString = 1'; const d = \"export { inDouble }\";",
    'const t = `export const inTemplate = ${"x" + `export const nested = ${1}`} done`;',
    'const re = /export const inRegex = [/]/g; const half = 4 / 2 / 1;',
    'export async function* gen() {}',
    'export const c = 1;',
    'export let l = 2;',
    'export var v = 3;',
    'export function f() { return { export: 1 }; }',
    'namespace N { export const inNamespace = 1; }',
    'function g() { const o = { a: `${1}` }; return o; }',
    'export class K {}',
    'export abstract class A {}',
    'export enum E { X }',
    'export const enum CE { Y }',
    'export type T = { a: 1 };',
    'export interface I { b: 2 }',
    'export declare const declared: number;',
    'export { x as y, z, type TT, type as typeAlias, q as default, "odd-name" as odd };',
    "export { r } from './other.js';",
    "export * from './star.js';",
    "export * as ns from './ns.js';",
    'obj.export = 1;',
    'export default 42;',
  ].join('\n');
  assert.deepEqual(scanExportNames(src), [
    'gen', 'c', 'l', 'v', 'f', 'K', 'A', 'E', 'y', 'z', 'typeAlias', 'default', 'odd', 'r', 'ns',
  ]);
  assert.deepEqual(scanExportNames(''), []);
  assert.deepEqual(scanExportNames('export const a = `unterminated'), ['a']);
});
