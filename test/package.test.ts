// The package as users import it: the built ESM entry (dist/, made by `npm install` / `npm run
// build`), its exports map and types, the public names of DESIGN.md, and what importing costs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

test('package.json: name, ESM, exports map with types, Node 20+', () => {
  assert.equal(pkg.name, 'wpipe');
  assert.equal(pkg.type, 'module');
  assert.equal(pkg.exports['.'].types, './dist/index.d.ts');
  assert.equal(pkg.exports['.'].import, './dist/wpipe.js');
  assert.match(pkg.engines.node, />=\s*20/);
});

test('the built entry exists (run `npm run build` if not)', () => {
  assert.ok(existsSync(`${root}dist/wpipe.js`), 'dist/wpipe.js is missing: run npm run build');
  assert.ok(existsSync(`${root}dist/index.d.ts`), 'dist/index.d.ts is missing: run npm run build');
});

/** Runs a snippet in a fresh node; returns its stdout. */
function node(code: string): string {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test("import('wpipe') resolves through the exports map and has the expression API", () => {
  const out = node(`
    const w = await import('wpipe');
    const e = w.compileExpression("x > 5 and kind == 'a'");
    console.log(JSON.stringify([typeof w.getBackendInfo, e.evaluate({ x: 7, kind: 'a' }), typeof w.ExpressionError, w.Codes.TASK_FAILED]));
  `);
  assert.deepEqual(JSON.parse(out), ['function', true, 'function', 502]);
});

test("import('wpipe') adds at most 80 ms to a bare node start, and loads no addon, .wasm or SQLite", () => {
  const probe = `
    const t0 = performance.now();
    await import('wpipe');
    const ms = performance.now() - t0;
    const { createRequire } = await import('node:module');
    const loaded = Object.keys(createRequire(import.meta.url).cache).filter((p) => /\\.node$|better-sqlite3|piscina|pino/.test(p));
    console.log(JSON.stringify({ ms, loaded }));
  `;
  const runs = Array.from({ length: 5 }, () => JSON.parse(node(probe)) as { ms: number; loaded: string[] });
  const best = Math.min(...runs.map((r) => r.ms));
  assert.ok(best <= 80, `import took ${best.toFixed(1)} ms`);
  assert.deepEqual(runs[0]!.loaded, []);
});
