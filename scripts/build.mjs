#!/usr/bin/env node
// Builds wpipe from source, offline: the TypeScript (dist/), the AssemblyScript module
// (build/wasm/wpipe.wasm) and the C++ addon (build/Release/wpipe.node). `npm install` runs the
// native stage ("install" script, also when wpipe is installed as a dependency) and, in a checkout,
// the ts and wasm stages ("prepare").
// `node scripts/build.mjs [ts] [wasm] [native]` builds a subset. A failed native build is a warning,
// not a failure: installation still succeeds and `auto` serves from wasm and js.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const wanted = new Set(process.argv.slice(2));
const all = wanted.size === 0;

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
  } else if (!existsSync(join(root, 'dist', 'index.js'))) {
    console.error('wpipe build: typescript is not installed and dist/ is missing');
    process.exit(1);
  }
}

if (all || wanted.has('wasm')) {
  if (existsSync(bin('asc'))) {
    mkdirSync(join(root, 'build', 'wasm'), { recursive: true });
    run('wasm', bin('asc'), ['assembly/index.ts', '--config', 'assembly/asconfig.json', '--target', 'release']);
  } else if (!existsSync(join(root, 'build', 'wasm', 'wpipe.wasm'))) {
    console.warn('wpipe build: WARNING: assemblyscript is not installed; the wasm backend is unavailable');
  }
}

if (all || wanted.has('native')) {
  if (process.env.WPIPE_SKIP_NATIVE_BUILD === '1') {
    console.warn('wpipe build: native build skipped (WPIPE_SKIP_NATIVE_BUILD=1)');
  } else {
    // cmake-js is a dependency: in an app it may be hoisted above this package, so resolve it.
    let cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
    try {
      cmakeJs = createRequire(join(root, 'package.json')).resolve('cmake-js/bin/cmake-js');
    } catch {
      // keep the local path; the build reports what is missing
    }
    // cmake-js builds into ./build of the current directory: always this package's root.
    run('native', process.execPath, [cmakeJs, 'compile', '--log-level', 'warn', '--directory', root], { optional: true });
  }
}
