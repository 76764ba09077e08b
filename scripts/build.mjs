#!/usr/bin/env node
// Builds wpipe from source, offline: the TypeScript (dist/), the AssemblyScript module
// (wasm/wpipe.wasm) and the C++ addon (build/Release/wpipe.node).
// `node scripts/build.mjs [ts] [wasm] [native] [install] [prebuild]` builds a subset:
// - native: compiles the addon (cmake-js). A failed build is a warning, not a failure: the
//   installation still succeeds and `auto` serves from wasm and js.
// - install (the package's "install" script, also when wpipe is installed as a dependency): uses the
//   prebuilt addon shipped in prebuilds/<platform>-<arch>/ when one matches this machine and loads;
//   compiles (as native) only when none does, or when asked to (--build-from-source, which npm passes
//   as npm_config_build_from_source, or WPIPE_BUILD_FROM_SOURCE=1).
// - prebuild ("prepack", so `npm pack` and `npm publish` ship it): compiles the addon and copies it to
//   prebuilds/<platform>-<arch>/wpipe.napi[.glibc|.musl].node. Node-API is ABI-stable: one file per
//   platform serves every Node version from 20 on.
// - cli: only the command's bundle, from an existing dist/. `cli --commander-package --out dist/NAME.js`
//   writes a variant that imports commander from its package (bench/cli.ts's off switch).
// In a checkout, "prepare" runs the ts and wasm stages.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

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
    // One ESM file for `import('wpipe')`: loading 40 modules costs Node 20 about 3× the time of one
    // (measured: ~110 ms against ~35 ms on a loaded 2-core machine). dist/*.d.ts keep the types.
    run('bundle', bin('esbuild'), [
      'dist/index.js', '--bundle', '--platform=node', '--format=esm', '--target=node20',
      '--packages=external', '--log-level=warning', '--outfile=dist/wpipe.js',
    ]);
    await bundleCli();
  } else if (!existsSync(join(root, 'dist', 'index.js'))) {
    console.error('wpipe build: typescript is not installed and dist/ is missing');
    process.exit(1);
  }
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
