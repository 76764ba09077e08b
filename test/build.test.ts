// Installing on a machine where the C++ addon cannot be built still succeeds: the native stage of
// scripts/build.mjs prints one warning, keeps a log, and exits 0 (auto then serves from wasm and js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

test('a failed native build is one warning, a log, and exit code 0', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wpipe-build-'));
  try {
    for (const f of ['package.json', 'CMakeLists.txt', 'native', 'scripts']) cpSync(join(root, f), join(dir, f), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
    // A PATH with node but without cmake or a compiler: the build cannot run.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    const r = spawnSync(process.execPath, [join(dir, 'scripts', 'build.mjs'), 'native'], {
      cwd: dir, encoding: 'utf8', env: { ...process.env, PATH: bin },
    });
    assert.equal(r.status, 0, r.stderr);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('WARNING'));
    assert.equal(warnings.length, 1, r.stderr);
    assert.match(warnings[0]!, /the native build failed .*wpipe still works without it \(auto uses wasm and js\).*npm run build:native/);
    assert.ok(existsSync(join(dir, 'build', 'native-build.log')));
    assert.ok(readFileSync(join(dir, 'build', 'native-build.log'), 'utf8').length > 0);
    assert.ok(!existsSync(join(dir, 'build', 'Release', 'wpipe.node')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the command's bundle loads child_process lazily for commander only, even in a checkout under a folder named commander", () => {
  const dir = mkdtempSync(join(tmpdir(), 'wpipe-build-'));
  try {
    const checkout = join(dir, 'commander', 'wpipe');
    for (const f of ['package.json', 'scripts', 'dist']) cpSync(join(root, f), join(checkout, f), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(checkout, 'node_modules'));
    const r = spawnSync(process.execPath, [join(checkout, 'scripts', 'build.mjs'), 'cli'], { cwd: checkout, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const bundle = readFileSync(join(checkout, 'dist', 'wpipe-cli.js'), 'utf8');
    // commander's own require goes through the lazy proxy; wpipe's import() (the dashboard's --open) stays real.
    // (assert.ok, not assert.match: a failure must not print the 230 KB bundle)
    assert.ok(/var childProcess = require_lazy_child_process\(\)/.test(bundle), "commander's require('node:child_process') is not the lazy proxy");
    assert.ok(/import\("node:child_process"\)/.test(bundle), "wpipe's own import('node:child_process') was rewritten");
    assert.ok(!/(?<![\w$])require\("node:child_process"\)/.test(bundle), 'child_process is required at load');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('build cli --out refuses what would overwrite the command or write a bundle that cannot load (exit 1, nothing built)', () => {
  const cases: [string[], RegExp][] = [
    [['cli', '--out'], /--out needs a file name/],
    [['cli', '--commander-package', '--out', '--x'], /--out needs a file name/],
    [['cli', '--out', join(tmpdir(), 'wpipe-cli-variant.js')], /must be written into .*dist/],
    [['cli', '--out', join(root, 'dist', 'sub', 'x.js')], /not a subfolder/],
    [['ts', '--out', join(root, 'dist', 'x.js')], /--out applies to the cli stage only/],
    [['cli', '--commander-package'], /give it --out dist\/NAME\.js/],
    [['cli', '--commander-package', '--out', join(root, 'dist', 'wpipe-cli.js')], /must not be dist\/wpipe-cli\.js/],
  ];
  for (const [args, message] of cases) {
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs'), ...args], { cwd: root, encoding: 'utf8' });
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.doesNotMatch(r.stdout, /bundle ok/, args.join(' '));
  }
});
