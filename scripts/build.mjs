#!/usr/bin/env node
// Builds wpipe from source, offline: the TypeScript (dist/), the AssemblyScript module
// (wasm/wpipe.wasm) and the C++ addon (build/Release/wpipe.node).
// `node scripts/build.mjs [ts] [wasm] [native] [install] [prebuild]` builds a subset:
// - native: compiles the addon (cmake-js). A failed build is a warning, not a failure: the
//   installation still succeeds and `auto` serves from wasm and js.
// - install (the package's "install" script, also when wpipe is installed as a dependency): uses the
//   prebuilt addon shipped in prebuilds/<platform>-<arch>/ when one matches this machine and loads;
//   compiles (as native) only when none does, or when asked to (--build-from-source, which npm passes
//   as npm_config_build_from_source, or WPIPE_BUILD_FROM_SOURCE=1); then writes the library's code
//   cache for the installing Node (dist/wpipe.cache; V8 refuses one written by another version).
// - prebuild ("prepack", so `npm pack` and `npm publish` ship it): compiles the addon and copies it to
//   prebuilds/<platform>-<arch>/wpipe.napi[.glibc|.musl].node. Node-API is ABI-stable: one file per
//   platform serves every Node version from 20 on.
// - ts: the TypeScript (tsc), the library bundle with its code cache, the command's bundle.
// - cli: only the command's bundle, from an existing dist/. `cli --commander-package --out dist/NAME.js`
//   writes a variant that imports commander from its package (bench/cli.ts's off switch).
// In a checkout, "prepare" runs the ts and wasm stages.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const args = process.argv.slice(2);
const outAt = args.indexOf('--out');
const cliOut = outAt >= 0 ? args.splice(outAt, 2)[1] : undefined;
const wanted = new Set(args);
const all = wanted.size === 0;

/** Stops the build with `message` (exit 1). */
function refuse(message) {
  console.error(`wpipe build: ${message}`);
  process.exit(1);
}

// `cli --out FILE`: the bundle imports ./wpipe.js (and the yaml bundle) relative to itself, so it
// only loads from dist/ itself; and `--out` without a value must not fall back to (and overwrite)
// dist/wpipe-cli.js.
if (outAt >= 0) {
  if (cliOut === undefined || cliOut === '' || cliOut.startsWith('-')) {
    refuse('--out needs a file name: node scripts/build.mjs cli --commander-package --out dist/NAME.js');
  }
  const distDir = resolve(root, 'dist');
  if (dirname(resolve(cliOut)) !== distDir) {
    refuse(`--out ${cliOut}: the command's bundle imports ./wpipe.js beside it, so it must be written into ${distDir}${sep} (not a subfolder)`);
  }
  if (!wanted.has('cli')) refuse('--out applies to the cli stage only: node scripts/build.mjs cli [--commander-package] --out dist/NAME.js');
}
if (wanted.has('--commander-package')) {
  if (cliOut === undefined) refuse('--commander-package writes a variant of the command: give it --out dist/NAME.js (it must not replace dist/wpipe-cli.js)');
  if (resolve(cliOut) === resolve(root, 'dist', 'wpipe-cli.js')) refuse('--commander-package --out must not be dist/wpipe-cli.js (the command itself)');
}

/**
 * The folder of the commander package the command bundles (resolved from this package's root, as
 * the bundle's `import 'commander'` is). Its package.json is not in its "exports", so walk up from
 * its entry point to the package.json that names it.
 */
function commanderFolder() {
  let dir = dirname(realpathSync(createRequire(join(root, 'package.json')).resolve('commander')));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if (JSON.parse(readFileSync(pkg, 'utf8')).name === 'commander') return dir;
      } catch {
        // not this one: keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('wpipe build: cannot find the commander package folder');
    dir = up;
  }
}

function run(label, cmd, args, { optional = false } = {}) {
  const started = Date.now();
  const r = spawnSync(cmd, args, { cwd: root, stdio: optional ? ['ignore', 'pipe', 'pipe'] : 'inherit', env: process.env });
  const ok = r.status === 0;
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (ok) {
    console.log(`wpipe build: ${label} ok (${secs} s)`);
  } else if (optional) {
    const log = join(root, 'build', `${label}-build.log`);
    mkdirSync(dirname(log), { recursive: true });
    const text = `${r.error ? String(r.error) : ''}${r.stdout ?? ''}${r.stderr ?? ''}`;
    writeFileSync(log, text);
    console.warn(
      `wpipe build: WARNING: the ${label} build failed (exit ${r.status ?? r.signal}); wpipe still works ` +
        `without it (auto uses wasm and js). Log: ${log}. Rebuild: npm run build:${label}`,
    );
  } else {
    console.error(`wpipe build: ${label} failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
  return ok;
}

if (all || wanted.has('ts')) {
  if (existsSync(bin('tsc'))) {
    rmSync(join(root, 'dist'), { recursive: true, force: true });
    run('ts', bin('tsc'), ['-p', 'tsconfig.json']);
    await bundleLibrary();
    await bundleCli();
  } else if (!existsSync(join(root, 'dist', 'index.js'))) {
    console.error('wpipe build: typescript is not installed and dist/ is missing');
    process.exit(1);
  }
}

/**
 * The library in one file, loaded through V8's code cache (README "Import cost"):
 * - dist/wpipe.cjs: every module of dist/index.js in one CommonJS file (loading 40 modules costs
 *   Node 20 about 3× the time of one), as a factory taking what stands for its `import.meta.url`,
 *   `import.meta.resolve` and `import()` (those of dist/wpipe.js beside it, as when the bundle was
 *   that file; V8 drops import()'s callback from code read back from a cache, src/dynamic-import.ts);
 * - dist/wpipe-load.cjs (scripts/wpipe-load.cjs): compiles it with the cache, or from source when the
 *   cache does not match;
 * - dist/wpipe.js, the package entry: ESM, the same named exports as dist/index.js;
 * - dist/wpipe.cache: written by a fresh `node` (this script's own flags must not reach V8's check),
 *   its first line naming the Node, V8's data and the bundle it is for (scripts/wpipe-load.cjs).
 * dist/*.d.ts keep the types.
 */
async function bundleLibrary() {
  const esbuild = await import('esbuild');
  const helper = join(root, 'dist', 'import-here.js');
  const built = await esbuild.build({
    entryPoints: [join(root, 'dist', 'index.js')],
    bundle: true, platform: 'node', format: 'cjs', target: 'node20', packages: 'external', logLevel: 'warning', write: false,
    define: { 'import.meta.url': '__wpipe_meta_url', 'import.meta.resolve': '__wpipe_meta_resolve' },
    outfile: join(root, 'dist', 'wpipe.cjs'),
    plugins: [{
      // src/import-here.ts: inside the bundle, import() is the package entry's (src/dynamic-import.ts says why).
      name: 'wpipe-import-here',
      setup(build) {
        build.onResolve({ filter: /import-here\.js$/ }, (a) =>
          (join(a.resolveDir, a.path) === helper ? { path: 'import-here', namespace: 'wpipe-entry' } : undefined));
        build.onLoad({ filter: /.*/, namespace: 'wpipe-entry' }, () =>
          ({ contents: 'export function importHere(specifier) { return __wpipe_import(specifier); }', loader: 'js' }));
      },
    }],
  });
  // An import() left in the bundle would fail once V8 compiles it from the cache: every one goes
  // through importModule. Searched in the text (esbuild's metafile names literal specifiers only).
  const text = built.outputFiles[0].text;
  const dynamic = [...text.matchAll(/(?<![\w$.])import\(/g)].map((m) => text.slice(m.index, text.indexOf('\n', m.index)).slice(0, 80));
  if (dynamic.length > 0) refuse(`the library bundle calls import() itself (${dynamic.join('; ')}): use importModule (src/dynamic-import.ts)`);
  // ASCII only (esbuild escapes what is not in code it keeps; this escapes the rest, in comments),
  // so the loader decodes the bundle as Latin-1: a third of the time of UTF-8, and a one-byte string.
  // esbuild gives each default import of a Node builtin its own copy of the module: __toESM defines a
  // getter per property (~100 for node:fs; 1-2 ms at import for the bundle's 18). A builtin is
  // CommonJS without __esModule, so an object whose prototype and `default` are the module reads the
  // same, live (a test that patches fs.writeSync is still seen).
  const body = text
    .replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    .replace(/__toESM\(require\("(node:[\w/]+)"\), 1\)/g, '__wpipe_builtin(require("$1"))');
  if (/__toESM\(require\("node:/.test(body)) refuse('a Node builtin in the library bundle is still copied by __toESM: extend the replacement');
  // Written aside and renamed: a process loading the bundle meanwhile reads the old file or the new one.
  const temp = join(root, 'dist', 'wpipe.cjs.tmp');
  try {
    writeFileSync(temp,
      '// wpipe, every module in one file (scripts/build.mjs bundleLibrary); dist/wpipe.js loads it through dist/wpipe-load.cjs.\n'
      + 'module.exports = (function wpipe(__wpipe_meta_url, __wpipe_meta_resolve, __wpipe_import) {\n"use strict";\n'
      + 'const module = { exports: {} };\nconst exports = module.exports;\n'
      + 'const __wpipe_builtin = (m) => ({ __proto__: m, default: m });\n'
      + `${body}\nreturn module.exports;\n});\n`);
    renameSync(temp, join(root, 'dist', 'wpipe.cjs'));
  } finally {
    rmSync(temp, { force: true });
  }
  copyFileSync(join(root, 'scripts', 'wpipe-load.cjs'), join(root, 'dist', 'wpipe-load.cjs'));
  const names = Object.keys(await import(pathToFileURL(join(root, 'dist', 'index.js')).href)).sort();
  if (names.some((n) => !/^[A-Za-z_$][\w$]*$/.test(n))) refuse(`an export of dist/index.js is not a plain name: ${names.join(', ')}`);
  writeFileSync(join(root, 'dist', 'wpipe.js'),
    '// The package entry (scripts/build.mjs bundleLibrary): the library bundle, loaded with V8\'s code cache.\n'
    + "import { createRequire } from 'node:module';\n\n"
    + "const lib = createRequire(import.meta.url)('./wpipe-load.cjs').load(\n"
    + '  import.meta.url,\n  (specifier) => import.meta.resolve(specifier),\n  (specifier) => import(specifier),\n);\n\n'
    + `export const {\n${names.map((n) => `  ${n},`).join('\n')}\n} = lib;\n`);
  writeCodeCache(false);
}

/** dist/wpipe.cache for the Node running this script, from a fresh process. A failure is a warning when `optional`. */
function writeCodeCache(optional) {
  const loader = join(root, 'dist', 'wpipe-load.cjs');
  if (!existsSync(loader)) return;
  const r = spawnSync(process.execPath, [loader, '--write-cache'], { cwd: root, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  if (r.status === 0) {
    console.log(r.stdout.trim());
    return;
  }
  const why = `writing the code cache failed (exit ${r.status ?? r.signal}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`;
  if (!optional) refuse(why);
  console.warn(`wpipe build: WARNING: ${why}; wpipe still works, its import compiles the bundle each time`);
}

/**
 * The `wpipe` command in one file, dist/wpipe-cli.js (bin/wpipe.js loads it). Its imports of the
 * library (dist/index.js) become imports of the library's own bundle ./wpipe.js: the command and the
 * step modules it loads (`import { step } from 'wpipe'`) then share one copy, loaded once, and only
 * by the subcommands that use it (start-up to a run's first step: README "The wpipe command").
 */
async function bundleCli({ commanderPackage = false, outfile = join(root, 'dist', 'wpipe-cli.js') } = {}) {
  const started = Date.now();
  const esbuild = await import('esbuild');
  const library = join(root, 'dist', 'index.js');
  // commander goes into the bundle too: imported from its package, Node 20 loads its 7 CommonJS
  // files and runs them through the ESM-to-CommonJS bridge, and commander requires child_process
  // (for git-style executable subcommands, which wpipe does not have) at its top: 20-25 ms of a
  // ~110 ms command start against 5-12 ms bundled with child_process loaded at first use
  // (bench/cli.ts "commander from its package" row). The banner gives the bundled CommonJS code a `require`.
  await esbuild.build({
    entryPoints: [join(root, 'dist', 'cli.js')],
    outfile,
    bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'warning',
    banner: { js: "import { createRequire as __wpipeCreateRequire } from 'node:module'; const require = __wpipeCreateRequire(import.meta.url);" },
    plugins: [{
      name: 'wpipe-library-bundle',
      setup(build) {
        build.onResolve({ filter: /(^|\/)index\.js$/ }, (args) =>
          join(args.resolveDir, args.path) === library ? { path: './wpipe.js', external: true } : undefined);
        if (commanderPackage) return;
        build.onResolve({ filter: /^commander$/ }, (args) => ({ path: createRequire(join(args.resolveDir, 'x.js')).resolve('commander') }));
        // Only commander's own require of child_process becomes the lazy proxy: the importer must sit
        // in the resolved commander package folder (a checkout under some folder named `commander`
        // must not turn wpipe's own import('node:child_process') into it).
        const commander = commanderFolder() + sep;
        build.onResolve({ filter: /^node:child_process$/ }, (args) =>
          args.importer.startsWith(commander) ? { path: 'lazy-child-process', namespace: 'wpipe-lazy' } : undefined);
        build.onLoad({ filter: /.*/, namespace: 'wpipe-lazy' }, () => ({
          loader: 'js',
          contents: "let cp; module.exports = new Proxy({}, { get: (_t, key) => (cp ??= require('node:child_process'))[key] });",
        }));
      },
    }],
  });
  if (commanderPackage) return;
  // The yaml package in one file, which the command preloads (src/cli/common.ts preloadYaml: its
  // 23 files cost `wpipe run` 3-5x the time of one).
  await esbuild.build({
    entryPoints: [createRequire(join(root, 'package.json')).resolve('yaml')],
    outfile: join(root, 'dist', 'yaml-bundle.cjs'),
    bundle: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'warning',
  });
  console.log(`wpipe build: cli bundle ok (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

if (wanted.has('cli')) {
  await bundleCli({ commanderPackage: wanted.has('--commander-package'), ...(cliOut === undefined ? {} : { outfile: resolve(cliOut) }) });
}

if (all || wanted.has('wasm')) {
  if (existsSync(bin('asc'))) {
    mkdirSync(join(root, 'wasm'), { recursive: true });
    run('wasm', bin('asc'), ['assembly/index.ts', '--config', 'assembly/asconfig.json', '--target', 'release']);
  } else if (!existsSync(join(root, 'wasm', 'wpipe.wasm'))) {
    console.warn('wpipe build: WARNING: assemblyscript is not installed; the wasm backend is unavailable');
  }
}

/** src/paths.ts prebuildName(), for this script (which runs before dist/ exists). */
function prebuildName() {
  let libc = '';
  if (process.platform === 'linux') libc = process.report.getReport().header.glibcVersionRuntime ? '.glibc' : '.musl';
  return join('prebuilds', `${process.platform}-${process.arch}`, `wpipe.napi${libc}.node`);
}

function compileNative() {
  if (process.env.WPIPE_SKIP_NATIVE_BUILD === '1') {
    console.warn('wpipe build: native build skipped (WPIPE_SKIP_NATIVE_BUILD=1)');
    return false;
  }
  // cmake-js is a dependency: in an app it may be hoisted above this package, so resolve it.
  let cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
  try {
    cmakeJs = createRequire(join(root, 'package.json')).resolve('cmake-js/bin/cmake-js');
  } catch {
    // keep the local path; the build reports what is missing
  }
  // cmake-js builds into ./build of the current directory: always this package's root.
  return run('native', process.execPath, [cmakeJs, 'compile', '--log-level', 'warn', '--directory', root], { optional: true });
}

/** The prebuild for this machine, if there is one and it loads here (right libc, new enough glibc). */
function usablePrebuild() {
  const file = join(root, prebuildName());
  if (!existsSync(file)) return { file, ok: false, why: 'none for this platform' };
  try {
    const addon = createRequire(import.meta.url)(file);
    if (typeof addon.info !== 'function') return { file, ok: false, why: 'not a wpipe addon' };
    return { file, ok: true };
  } catch (error) {
    return { file, ok: false, why: String(error?.message ?? error).split('\n')[0] };
  }
}

if (all || wanted.has('native')) compileNative();

if (wanted.has('install')) {
  const forced = process.env.WPIPE_BUILD_FROM_SOURCE === '1' || /^(true|1)$/.test(process.env.npm_config_build_from_source ?? '');
  const prebuild = forced ? undefined : usablePrebuild();
  if (prebuild?.ok) {
    console.log(`wpipe build: native: using the prebuilt addon ${prebuildName()} (no compiler needed)`);
  } else {
    if (prebuild) console.log(`wpipe build: native: no usable prebuilt addon (${prebuild.why}); compiling from source`);
    compileNative();
  }
  // The code cache shipped in the package was written by the packer's Node; V8 refuses it under any
  // other version, so write it again for this one (in a checkout there is no dist/ yet: nothing to do).
  writeCodeCache(true);
}

if (wanted.has('prebuild')) {
  if (!compileNative()) {
    console.error('wpipe build: prebuild: the addon did not compile, so there is nothing to ship');
    process.exit(1);
  }
  const target = join(root, prebuildName());
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(join(root, 'build', 'Release', 'wpipe.node'), target);
  console.log(`wpipe build: prebuild ok (${prebuildName()})`);
}
