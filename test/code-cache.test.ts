// The library's code cache (scripts/wpipe-load.cjs, scripts/build.mjs bundleLibrary): the package
// entry dist/wpipe.js loads the bundle dist/wpipe.cjs compiled from V8's cache dist/wpipe.cache.
// The cache must never be a source of truth: every way it can be wrong (missing; damaged, also where
// V8 alone would run it; made from an older bundle, also one of the same length, which V8 alone would
// take; made for another Node or other V8 flags; turned off) loads the same library, compiled from
// source. And what the move
// from an ESM bundle to a compiled CommonJS one could break is run for real from the cache: a step
// module imported at run time (import() inside the bundle), the paths found from import.meta.url
// (the .wasm), the expression VM, the named exports. Each case is a fresh `node` on a copy of the
// package's dist/ files, so the real build is never touched.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
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
  // The copy gets a cache of its own, so its bundle is the file the cache names (the untouched path).
  const w = spawnSync(process.execPath, [dist('wpipe-load.cjs'), '--write-cache'], { encoding: 'utf8', env: freshEnv() });
  assert.equal(w.status, 0, w.stderr);
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

/** The environment of every process these tests start: this one's, without what would change how wpipe loads. */
function freshEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '', ...extra };
  if (!('WPIPE_CODE_CACHE' in extra)) delete env.WPIPE_CODE_CACHE;
  return env;
}

/** Runs the probe in a fresh node (no flags unless given: V8's cache check includes them); returns what it printed. */
function probe(env: Record<string, string> = {}, flags: string[] = [], script = join(pkg, 'probe.mjs')): { cache: string; out: unknown; names: number; expr: unknown; wasm: boolean; isError: boolean } {
  const r = spawnSync(process.execPath, [...flags, script], { cwd: pkg, encoding: 'utf8', env: freshEnv(env) });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** Runs `node [flags] wpipe-load.cjs --write-cache` in `folder`. */
function writeCache(folder: string, flags: string[] = []): string {
  const r = spawnSync(process.execPath, [...flags, join(folder, 'wpipe-load.cjs'), '--write-cache'], { encoding: 'utf8', env: freshEnv() });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** Runs `body` with the copy's `file` as it is now restored afterwards. */
function keeping(file: string, body: () => void): void {
  const saved = readFileSync(dist(file));
  try {
    body();
  } finally {
    writeFileSync(dist(file), saved);
  }
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
  assertSameLibrary(probe(), 'accepted');
  // The real dist/ too, not only the copy: a fresh plain node accepts the cache the build wrote.
  const entry = JSON.stringify(pathToFileURL(join(root, 'dist', 'wpipe.js')).href);
  const real = spawnSync(process.execPath, ['--input-type=module', '-e', `
    await import(${entry});
    const { createRequire } = await import('node:module');
    console.log(createRequire(${entry})('./wpipe-load.cjs').cache);`],
  { encoding: 'utf8', env: freshEnv() });
  assert.equal(real.status, 0, real.stderr);
  assert.equal(real.stdout.trim(), 'accepted');
});

test('a copy of the package (another inode, as after an extraction) uses the cache it carries: same bytes', { skip }, () => {
  const other = mkdtempSync(join(tmpdir(), 'wpipe-code-cache-copy-'));
  try {
    for (const f of ['package.json', 'steps.mjs', 'p.yaml', 'probe.mjs']) copyFileSync(join(pkg, f), join(other, f));
    mkdirSync(join(other, 'dist'));
    for (const f of FILES) copyFileSync(dist(f), join(other, 'dist', f));
    for (const d of ['node_modules', 'wasm', 'build']) if (existsSync(join(root, d))) symlinkSync(join(root, d), join(other, d));
    // The probe and the steps name the first copy's files: point them at this one.
    for (const f of ['probe.mjs', 'steps.mjs']) writeFileSync(join(other, f), readFileSync(join(other, f), 'utf8').replaceAll(pkg, other));
    assertSameLibrary(probe({}, [], join(other, 'probe.mjs')), 'accepted');
  } finally {
    rmSync(other, { recursive: true, force: true });
  }
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
  keeping('wpipe.cache', () => {
    rmSync(dist('wpipe.cache'));
    assertSameLibrary(probe(), 'missing');
  });
});

test('damaged V8 data is never handed to V8 (which would run it, or crash): compiled from source', { skip }, () => {
  const saved = readFileSync(dist('wpipe.cache'));
  const start = saved.indexOf(10) + 1;
  keeping('wpipe.cache', () => {
    // One byte flipped deep in the data: V8 in a release build takes it as it is.
    for (const at of [100, 50_000, Math.floor((saved.length - start) / 2)]) {
      const bad = Buffer.from(saved);
      bad[start + at] = bad[start + at]! ^ 0x01;
      writeFileSync(dist('wpipe.cache'), bad);
      assertSameLibrary(probe(), 'stale');
    }
    // The top bit of two words of one lane flipped (a plain multiply-xor digest let these cancel, and V8 crashed).
    for (const p of [start + 3 + 16 * 100, start + 3 + 16 * 2000]) {
      const bad = Buffer.from(saved);
      bad[p] = bad[p]! ^ 0x80;
      bad[p + 16] = bad[p + 16]! ^ 0x80;
      writeFileSync(dist('wpipe.cache'), bad);
      assertSameLibrary(probe(), 'stale');
    }
    // A name inside the data changed (V8 alone: the export disappears).
    const name = Buffer.from('getBackendInfo');
    const at = saved.indexOf(name, start);
    assert.ok(at > 0, 'the data names getBackendInfo');
    const renamed = Buffer.from(saved);
    renamed[at + name.length - 1] = 'X'.charCodeAt(0);
    writeFileSync(dist('wpipe.cache'), renamed);
    assertSameLibrary(probe(), 'stale');
  });
});

test('a damaged first line, no first line, or one written for another Node: compiled from source', { skip }, () => {
  const saved = readFileSync(dist('wpipe.cache'));
  keeping('wpipe.cache', () => {
    const header = Buffer.from(saved);
    header[5] = header[5]! ^ 0x01;
    writeFileSync(dist('wpipe.cache'), header);
    assertSameLibrary(probe(), 'stale');
    writeFileSync(dist('wpipe.cache'), Buffer.from('not a cache at all'));
    assertSameLibrary(probe(), 'stale');
    const version = Buffer.from(saved.toString('latin1').replace(`node=${process.version} `, 'node=v0.0.1 '), 'latin1');
    assert.notDeepEqual(version, saved);
    writeFileSync(dist('wpipe.cache'), version);
    assertSameLibrary(probe(), 'stale');
  });
});

test('other V8 flags: V8 refuses the cache; one written with those flags is accepted with them', { skip }, () => {
  keeping('wpipe.cache', () => {
    assertSameLibrary(probe({}, ['--expose-gc']), 'rejected');
    writeCache(join(pkg, 'dist'), ['--expose-gc']);
    assertSameLibrary(probe({}, ['--expose-gc']), 'accepted');
    assertSameLibrary(probe(), 'rejected');
  });
});

/** Rewrites the copy's bundle in place with a statement that marks it, `keepLength` by shortening its first comment. */
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
  test(`the bundle changed in place after its cache was made, ${what}: the new code runs`, { skip }, () => {
    const entry = JSON.stringify(pathToFileURL(dist('wpipe.js')).href);
    writeFileSync(join(pkg, 'rebuilt.mjs'), `await import(${entry});
const { createRequire } = await import('node:module');
console.log(JSON.stringify([globalThis.__wpipeRebuilt === true, createRequire(${entry})('./wpipe-load.cjs').cache]));
`);
    const bundle = readFileSync(dist('wpipe.cjs'), 'utf8');
    const ino = statSync(dist('wpipe.cjs')).ino;
    keeping('wpipe.cjs', () => {
      writeFileSync(dist('wpipe.cjs'), rebuiltBundle(bundle, keepLength));
      assert.equal(statSync(dist('wpipe.cjs')).ino, ino, 'the same file, changed in place (the cache names this inode)');
      const r = spawnSync(process.execPath, [join(pkg, 'rebuilt.mjs')], { encoding: 'utf8', env: freshEnv() });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout.trim()), [true, 'stale'], 'the statement added to the bundle ran, the cache was not used');
      assertSameLibrary(probe(), 'stale');
    });
    assert.equal(probe().cache, 'accepted', 'the original bytes take their cache again (their digest)');
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
  assert.match(writeCache(join(pkg, 'dist')), /code cache written/);
  assert.deepEqual(readdirSync(join(pkg, 'dist')).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
  assertSameLibrary(probe(), 'accepted');
  const usage = spawnSync(process.execPath, [dist('wpipe-load.cjs')], { encoding: 'utf8', env: freshEnv() });
  assert.equal(usage.status, 2);
  // No bundle to write it for: the command fails, the cache it had stays, nothing half-written.
  keeping('wpipe.cjs', () => {
    const before = readFileSync(dist('wpipe.cache'));
    rmSync(dist('wpipe.cjs'));
    const failed = spawnSync(process.execPath, [dist('wpipe-load.cjs'), '--write-cache'], { encoding: 'utf8', env: freshEnv() });
    assert.notEqual(failed.status, 0);
    assert.match(failed.stderr, /ENOENT/);
    assert.deepEqual(readFileSync(dist('wpipe.cache')), before);
    assert.deepEqual(readdirSync(join(pkg, 'dist')).filter((f) => f.endsWith('.tmp')), []);
  });
});

test('the bundle never calls import() itself (V8 drops its callback from cached code): every one goes through importModule', { skip }, () => {
  const bundle = readFileSync(join(root, 'dist', 'wpipe.cjs'), 'utf8');
  const calls = [...bundle.matchAll(/(?<![\w$.])import\(/g)].map((m) => bundle.slice(Math.max(0, m.index! - 60), m.index! + 40));
  assert.deepEqual(calls, [], 'import( in dist/wpipe.cjs: call importModule from src/dynamic-import.ts instead');
  assert.ok(bundle.includes('__wpipe_import(specifier)'), 'importHere is the entry\'s import() inside the bundle');
});

test('importModule refuses a relative specifier (it would resolve from wpipe\'s files, not the caller\'s)', async () => {
  const { importModule } = await import('../src/dynamic-import.js');
  for (const rel of ['./steps.js', '../steps.js', '.', '..\\steps.js']) {
    await assert.rejects(importModule(rel), (e: Error) => e instanceof TypeError && /relative specifier/.test(e.message), rel);
  }
  assert.equal(typeof (await importModule<{ join: unknown }>('node:path')).join, 'function');
});

test('the digest that ties a cache to its data and bundle: WebAssembly and JavaScript agree, and changes show (one byte, or two top bits that cancel in a plain multiply-xor lane)', () => {
  const { digests } = createRequire(import.meta.url)('../scripts/wpipe-load.cjs') as { digests: { digest: (b: Buffer) => string; digestInJs: (b: Buffer) => string } };
  for (const n of [0, 1, 3, 4, 15, 16, 17, 63, 64, 65, 4096, 65_520, 65_536, 200_003]) {
    const bytes = randomBytes(n);
    const d = digests.digest(bytes);
    assert.match(d, /^[0-9a-f]{32}$/);
    assert.equal(d, digests.digestInJs(bytes), `${n} bytes`);
    assert.equal(digests.digest(bytes.subarray(1)), digests.digestInJs(bytes.subarray(1)), `${n - 1} bytes at an odd offset`);
    for (const at of n > 0 ? [0, n >> 1, n - 1] : []) {
      const changed = Buffer.from(bytes);
      changed[at] = changed[at]! ^ 0x80;
      assert.notEqual(digests.digest(changed), d, `byte ${at} of ${n} changed`);
    }
    // Two changes that cancel in a lane without a rotation: the top bit of words 16 bytes apart, or far apart.
    for (const [p, q] of n >= 64 ? [[3, 19], [3, n - 13 - ((n - 16) % 16)], [7, 39]] : []) {
      const changed = Buffer.from(bytes);
      changed[p!] = changed[p!]! ^ 0x80;
      changed[q!] = changed[q!]! ^ 0x80;
      assert.notEqual(digests.digest(changed), d, `bytes ${p} and ${q} of ${n} changed`);
    }
  }
});
