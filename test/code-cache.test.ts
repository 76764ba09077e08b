// The library's code cache (scripts/wpipe-load.cjs, scripts/build.mjs bundleLibrary): the package
// entry dist/wpipe.js loads the bundle dist/wpipe.cjs compiled from V8's cache dist/wpipe.cache.
// The cache must never be a source of truth: every way it can be wrong (missing, damaged, made from
// an older bundle — also one of the same length, which V8 alone would take —, turned off) loads the
// same library, compiled from source. And what the move
// from an ESM bundle to a compiled CommonJS one could break is run for real from the cache: a step
// module imported at run time (import() inside the bundle), the paths found from import.meta.url
// (the .wasm), the expression VM, the named exports. Each case is a fresh `node` on a copy of the
// package's dist/ files, so the real build is never touched.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const FILES = ['wpipe.js', 'wpipe.cjs', 'wpipe-load.cjs', 'wpipe.cache'];
const skip = FILES.every((f) => existsSync(join(root, 'dist', f))) ? false : 'dist/ has no code-cached bundle: run npm run build';

let pkg = '';
const dist = (f: string): string => join(pkg, 'dist', f);

before(() => {
  if (skip) return;
  pkg = mkdtempSync(join(tmpdir(), 'wpipe-code-cache-'));
  mkdirSync(join(pkg, 'dist'));
  for (const f of FILES) copyFileSync(join(root, 'dist', f), dist(f));
  copyFileSync(join(root, 'package.json'), join(pkg, 'package.json'));
  for (const d of ['node_modules', 'wasm', 'build']) if (existsSync(join(root, d))) symlinkSync(join(root, d), join(pkg, d));
  // A YAML pipeline whose steps module is imported while the pipeline loads (importModule in the bundle).
  const entry = pathToFileURL(dist('wpipe.js')).href;
  writeFileSync(join(pkg, 'steps.mjs'), `import { step } from ${JSON.stringify(entry)};
export const double = step({ name: 'double' })((ctx) => ({ n: ctx.n * 2 }));
`);
  writeFileSync(join(pkg, 'p.yaml'), 'pipelineName: cached\nsteps:\n  - { module: ./steps.mjs, export: double }\n  - condition: { expression: n > 5, then: [{ module: ./steps.mjs, export: double }] }\n');
  writeFileSync(join(pkg, 'probe.mjs'), `const w = await import(${JSON.stringify(entry)});
const { createRequire } = await import('node:module');
const loader = createRequire(${JSON.stringify(entry)})('./wpipe-load.cjs');
const pipe = await w.loadPipeline(${JSON.stringify(join(pkg, 'p.yaml'))});
const out = await pipe.run({ n: 3 });
const info = w.getBackendInfo();
console.log(JSON.stringify({
  cache: loader.cache, out, names: Object.keys(w).length,
  expr: w.compileExpression('n * 2 + 1', { backend: 'wasm' }).evaluate({ n: 4 }), wasm: info.backends.wasm.available,
  isError: new w.WpipeError('WPIPE_ERR_STORAGE', 'x') instanceof Error,
}));
`);
});

after(() => {
  if (pkg) rmSync(pkg, { recursive: true, force: true });
});

/** Runs the probe in a fresh node (no flags: V8's cache check includes them); returns what it printed. */
function probe(env: Record<string, string> = {}): { cache: string; out: unknown; names: number; expr: unknown; wasm: boolean; isError: boolean } {
  const r = spawnSync(process.execPath, [join(pkg, 'probe.mjs')], { cwd: pkg, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '', ...env } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** What every load must give, whatever became of the cache. */
function assertSameLibrary(got: ReturnType<typeof probe>, cache: string): void {
  assert.equal(got.cache, cache);
  assert.deepEqual(got.out, { n: 12 }, 'the YAML pipeline ran both steps (its module imported at run time)');
  assert.equal(got.expr, 9);
  assert.equal(got.wasm, true, 'wasm/wpipe.wasm found from the entry\'s import.meta.url');
  assert.equal(got.isError, true);
}

test('the build writes a cache this Node accepts, and the library runs from it', { skip }, () => {
  const got = probe();
  assertSameLibrary(got, 'accepted');
  // The real dist/ too, not only the copy: a fresh plain node accepts the cache the build wrote.
  const real = spawnSync(process.execPath, ['--input-type=module', '-e', `
    await import(${JSON.stringify(pathToFileURL(join(root, 'dist', 'wpipe.js')).href)});
    const { createRequire } = await import('node:module');
    console.log(createRequire(${JSON.stringify(pathToFileURL(join(root, 'dist', 'wpipe.js')).href)})('./wpipe-load.cjs').cache);`],
  { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  assert.equal(real.status, 0, real.stderr);
  assert.equal(real.stdout.trim(), 'accepted');
});

test('dist/wpipe.js exports exactly what dist/index.js does', { skip }, async () => {
  const entry = Object.keys(await import(pathToFileURL(join(root, 'dist', 'wpipe.js')).href)).sort();
  const modules = Object.keys(await import(pathToFileURL(join(root, 'dist', 'index.js')).href)).sort();
  assert.deepEqual(entry, modules);
  assert.equal(probe().names, modules.length);
});

test('WPIPE_CODE_CACHE=0 loads the bundle without the cache', { skip }, () => {
  assertSameLibrary(probe({ WPIPE_CODE_CACHE: '0' }), 'off');
});

test('no cache file: the bundle compiles from source', { skip }, () => {
  const saved = readFileSync(dist('wpipe.cache'));
  rmSync(dist('wpipe.cache'));
  try {
    assertSameLibrary(probe(), 'missing');
  } finally {
    writeFileSync(dist('wpipe.cache'), saved);
  }
});

test('a damaged cache is not used: the bundle compiles from source', { skip }, () => {
  const saved = readFileSync(dist('wpipe.cache'));
  try {
    // V8's data damaged (bytes flipped all through it), the first line intact: V8 refuses it.
    const data = Buffer.from(saved);
    for (let i = data.indexOf(10) + 1; i < data.length; i += 97) data[i] = data[i]! ^ 0xff;
    writeFileSync(dist('wpipe.cache'), data);
    assertSameLibrary(probe(), 'rejected');
    // The first line damaged, or no first line at all: not taken for this bundle's cache.
    const header = Buffer.from(saved);
    header[25] = header[25]! ^ 0x01;
    writeFileSync(dist('wpipe.cache'), header);
    assertSameLibrary(probe(), 'stale');
    writeFileSync(dist('wpipe.cache'), Buffer.from('not a cache at all'));
    assertSameLibrary(probe(), 'stale');
  } finally {
    writeFileSync(dist('wpipe.cache'), saved);
  }
});

/** Rewrites the copy's bundle with a statement that marks it, `keepLength` by shortening its first comment. */
function rebuiltBundle(original: string, keepLength: boolean): string {
  const marker = '"use strict";\n';
  const mark = 'globalThis.__wpipeRebuilt = true;\n';
  assert.ok(original.includes(marker));
  let text = original.replace(marker, `${marker}${mark}`);
  if (keepLength) {
    const comment = '// wpipe, every module in one file (scripts/build.mjs bundleLibrary);';
    assert.ok(text.startsWith(comment));
    text = comment.slice(0, comment.length - mark.length) + text.slice(comment.length);
    assert.equal(Buffer.byteLength(text), Buffer.byteLength(original));
  }
  return text;
}

for (const keepLength of [false, true]) {
  const what = keepLength ? 'of the same length (which V8 alone would take: it checks only the length of the source)' : 'of another length';
  test(`a cache made from an older bundle is not used for a new one ${what}: the new code runs`, { skip }, () => {
    const bundle = readFileSync(dist('wpipe.cjs'), 'utf8');
    const entry = JSON.stringify(pathToFileURL(dist('wpipe.js')).href);
    writeFileSync(join(pkg, 'rebuilt.mjs'), `await import(${entry});
const { createRequire } = await import('node:module');
console.log(JSON.stringify([globalThis.__wpipeRebuilt === true, createRequire(${entry})('./wpipe-load.cjs').cache]));
`);
    try {
      writeFileSync(dist('wpipe.cjs'), rebuiltBundle(bundle, keepLength));
      const r = spawnSync(process.execPath, [join(pkg, 'rebuilt.mjs')], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout.trim()), [true, 'stale'], 'the statement added to the bundle ran, the cache was not used');
      assertSameLibrary(probe(), 'stale');
    } finally {
      writeFileSync(dist('wpipe.cjs'), bundle);
    }
    assert.equal(probe().cache, 'accepted', 'the original bytes take their cache again (a new file: by SHA-1)');
  });
}

test('a bundle touched but not changed (new change time, same bytes) keeps its cache', { skip }, () => {
  const now = new Date();
  utimesSync(dist('wpipe.cjs'), now, now);
  assertSameLibrary(probe(), 'accepted');
});

test('node dist/wpipe-load.cjs --write-cache writes a cache this Node accepts, atomically', { skip }, () => {
  writeFileSync(dist('wpipe.cache'), Buffer.from('stale'));
  assert.equal(probe().cache, 'stale');
  const w = spawnSync(process.execPath, [dist('wpipe-load.cjs'), '--write-cache'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  assert.equal(w.status, 0, w.stderr);
  assert.match(w.stdout, /code cache written/);
  assert.deepEqual(readdirSync(join(pkg, 'dist')).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
  assertSameLibrary(probe(), 'accepted');
  const usage = spawnSync(process.execPath, [dist('wpipe-load.cjs')], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
});

test('the bundle never calls import() itself (V8 drops its callback from cached code): every one goes through importModule', { skip }, () => {
  const bundle = readFileSync(join(root, 'dist', 'wpipe.cjs'), 'utf8');
  const calls = [...bundle.matchAll(/(?<![\w$.])import\(/g)].map((m) => bundle.slice(Math.max(0, m.index! - 60), m.index! + 40));
  assert.deepEqual(calls, [], 'import( in dist/wpipe.cjs: call importModule from src/dynamic-import.ts instead');
  assert.ok(bundle.includes('__wpipe_import(specifier)'), 'importModule is the entry\'s import() inside the bundle');
});
