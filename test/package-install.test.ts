// The package as a consumer gets it: `npm pack` ships a prebuilt addon for this platform, and
// installing the tarball into a new project needs no compiler — cmake is not even called, and
// getBackendInfo() reports native, loaded from prebuilds/. Where no prebuild matches (another
// platform, here simulated by deleting it) the install compiles; when that fails too it warns, exits
// 0, and the .wasm shipped in the package is still there (cmake-js wipes its build/ folder on a
// failed build, which is why the .wasm lives in wasm/).
//
// Slow (a from-source pack: tsc, asc and the addon, then an npm install from the registry cache) and
// backend-independent, so it runs once: in the js pass of CI, or when WPIPE_BACKEND is unset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const backend = process.env.WPIPE_BACKEND;
const skip =
  backend && backend !== 'js' ? `backend-independent: runs in the js pass (this is ${backend})`
  : process.platform === 'win32' ? 'uses a POSIX shell script as a stand-in cmake'
  : spawnSync('git', ['-C', root, 'rev-parse'], { stdio: 'ignore' }).status !== 0 ? 'needs a git checkout to copy from'
  : false;

/** The environment of a user's shell: none of this test run's WPIPE_* settings. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WPIPE_') && !k.startsWith('npm_')) env[k] = v;
  return { ...env, ...extra };
}

function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = userEnv()): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 240_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Compares dotted versions given as number arrays: negative, 0 or positive. */
function cmpVersion(a: number[], b: number[]): number {
  for (let k = 0; k < Math.max(a.length, b.length); k++) if ((a[k] ?? 0) !== (b[k] ?? 0)) return (a[k] ?? 0) - (b[k] ?? 0);
  return 0;
}

/** getBackendInfo() and one native-capable evaluation, run by the consumer project. */
function consumerProbe(app: string): { native: { available: boolean; detail: string }; wasm: boolean; batch: string; evaluated: number[]; cache: string } {
  const loader = join(app, 'node_modules', 'wpipe', 'dist', 'wpipe-load.cjs');
  const code = `
    const w = await import('wpipe');
    const { createRequire } = await import('node:module');
    const cache = createRequire(${JSON.stringify(loader)})(${JSON.stringify(loader)}).cache;
    const i = w.getBackendInfo();
    const e = w.compileExpression("x > 1 and kind == 'a'");
    const mask = e.testBatch({ x: Float64Array.from({ length: 64 }, (_, k) => k % 4), kind: Array.from({ length: 64 }, () => 'a') });
    console.log(JSON.stringify({ native: i.backends.native, wasm: i.backends.wasm.available, batch: i.capabilities['expr.batch'].backend, evaluated: Array.from(mask.slice(0, 4)), cache }));
  `;
  const r = sh(process.execPath, ['--input-type=module', '-e', code], app);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

test('npm pack ships a prebuilt addon; installing the tarball without cmake gets native from it', { skip, timeout: 600_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'wpipe-pack-'));
  try {
    // The package's sources as a publisher's clone has them (tracked and new, not ignored files);
    // node_modules linked so the build tools are there.
    const src = join(dir, 'src');
    const files = sh('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], root).stdout.split('\0').filter(Boolean);
    for (const f of files) {
      if (!existsSync(join(root, f))) continue; // deleted in the work tree
      mkdirSync(dirname(join(src, f)), { recursive: true });
      cpSync(join(root, f), join(src, f));
    }
    symlinkSync(join(root, 'node_modules'), join(src, 'node_modules'));

    // A real `npm pack`: prepack builds the addon and copies it to prebuilds/, prepare builds dist/ and the .wasm.
    const packed = sh('npm', ['pack', '--pack-destination', dir, '--loglevel', 'warn'], src, userEnv());
    const tarball = join(dir, packed.stdout.trim().split('\n').pop()!);
    const listing = sh('tar', ['tzf', tarball], dir).stdout.split('\n');
    const prebuilt = listing.filter((l) => /^package\/prebuilds\/[^/]+\/wpipe\.napi(\.(glibc|musl))?\.node$/.test(l));
    assert.equal(prebuilt.length, 1, `one prebuilt addon in the tarball:\n${listing.join('\n')}`);
    assert.ok(prebuilt[0]!.includes(`/${process.platform}-${process.arch}/`), prebuilt[0]);
    assert.ok(listing.includes('package/wasm/wpipe.wasm'), 'the .wasm ships too');
    // The README promises the prebuild loads on glibc >= 2.34 with a libstdc++ from GCC >= 11: the
    // newest symbol versions it imports say whether that still holds (when binutils is here).
    const prebuildFile = join(src, prebuilt[0]!.slice('package/'.length));
    const symbols = spawnSync('objdump', ['-T', prebuildFile], { encoding: 'utf8' });
    if (symbols.status === 0 && process.platform === 'linux') {
      const newest = (prefix: string) => [...symbols.stdout.matchAll(new RegExp(`\\(${prefix}_([0-9.]+)\\)`, 'g'))]
        .map((m) => m[1]!.split('.').map(Number))
        .reduce((a, b) => (cmpVersion(a, b) >= 0 ? a : b), [0]);
      assert.ok(cmpVersion(newest('GLIBC'), [2, 34]) <= 0, `the prebuild needs GLIBC_${newest('GLIBC').join('.')}`);
      assert.ok(cmpVersion(newest('GLIBCXX'), [3, 4, 29]) <= 0, `the prebuild needs GLIBCXX_${newest('GLIBCXX').join('.')}`);
    }
    assert.ok(!listing.some((l) => l.startsWith('package/build/')), 'no local build output ships');

    // The consumer: a new project installs the tarball (dependencies from the registry or npm's
    // cache, without their install scripts: better-sqlite3 would compile SQLite for a minute and is
    // not what this test is about), then npm runs wpipe's own install script with a cmake on PATH
    // that only records that it was called.
    const app = join(dir, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    sh('npm', ['install', tarball, '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel', 'error'], app);
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const calls = join(dir, 'cmake-calls');
    writeFileSync(join(bin, 'cmake'), `#!/bin/sh\necho "$@" >> '${calls}'\nexit 127\n`);
    chmodSync(join(bin, 'cmake'), 0o755);
    const noCmake = userEnv({ PATH: `${bin}:${process.env.PATH}` });
    const installed = sh('npm', ['rebuild', 'wpipe', '--foreground-scripts'], app, noCmake);
    assert.match(installed.stdout, /using the prebuilt addon prebuilds\/.*\(no compiler needed\)/);
    assert.match(installed.stdout, /code cache written/, 'the install script writes the code cache for the installing Node');
    assert.ok(!existsSync(calls), 'cmake was not called');
    const pkgDir = join(app, 'node_modules', 'wpipe');
    assert.ok(!existsSync(join(pkgDir, 'build', 'Release')), 'nothing was compiled');

    const withPrebuild = consumerProbe(app);
    assert.equal(withPrebuild.native.available, true, withPrebuild.native.detail);
    assert.match(withPrebuild.native.detail, /prebuilds\/.*wpipe\.napi.*\.node \(prebuilt, Node-API \d+\)/);
    assert.equal(withPrebuild.batch, 'native');
    assert.deepEqual(withPrebuild.evaluated, [0, 0, 1, 1]);
    assert.equal(withPrebuild.cache, 'accepted', 'the installed package loads through its code cache');

    // Another platform, simulated: no prebuild matches, so the install compiles — and here the
    // compiler is broken too. One warning, exit 0, the .wasm intact, auto on wasm.
    rmSync(join(pkgDir, 'prebuilds'), { recursive: true });
    const fallback = sh('npm', ['rebuild', 'wpipe', '--foreground-scripts'], app, userEnv({ CXX: '/bin/false', CC: '/bin/false' }));
    assert.match(fallback.stdout, /no usable prebuilt addon \(none for this platform\); compiling from source/);
    assert.match(fallback.stderr, /WARNING: the native build failed/);
    assert.ok(existsSync(join(pkgDir, 'wasm', 'wpipe.wasm')), `the .wasm survives a failed native build: ${readdirSync(pkgDir).join(', ')}`);
    const without = consumerProbe(app);
    assert.equal(without.native.available, false);
    assert.match(without.native.detail, /could not load the native addon: tried .*build\/Release\/wpipe\.node \(missing\); .*prebuilds\/.* \(missing\)/);
    assert.equal(without.wasm, true);
    assert.equal(without.batch, 'wasm');
    assert.deepEqual(without.evaluated, [0, 0, 1, 1]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
