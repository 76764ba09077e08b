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
