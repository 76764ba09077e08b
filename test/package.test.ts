// The package as users import it: the built ESM entry (dist/, made by `npm install` / `npm run
// build`), its exports map and types, the public names of docs/architecture.md (each exported, each
// export documented), and what importing loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/** The names docs/architecture.md "Public API" promises (the design's import block), as code outside the project uses them. */
const CONTRACT_NAMES = [
  'Pipeline', 'PipelineAsync', 'Condition', 'For', 'Parallel', 'Background', 'step', 'AutoRegister',
  'TaskError', 'ProcessError', 'ApiError', 'Codes',
  'Wsqlite', 'SQLite', 'ResourceMonitor', 'PipelineExporter',
  'readYaml', 'writeYaml', 'leerYaml', 'escribirYaml', 'newLogger', 'memoryLimit',
  'compileExpression', 'ExpressionError', 'getBackendInfo',
];

test('every name of the public contract is exported by the built package; every export is documented in the README', () => {
  const exported = JSON.parse(node(`const w = await import('wpipe'); console.log(JSON.stringify(Object.keys(w)));`)) as string[];
  const missing = CONTRACT_NAMES.filter((n) => !exported.includes(n));
  assert.deepEqual(missing, [], 'names of the contract the package does not export');
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const undocumented = exported.filter((n) => !new RegExp(`\\b${n}\\b`).test(readme));
  assert.deepEqual(undocumented, [], 'exports the README never mentions: document them or stop exporting them');
});

test('the published types: no internal members, and a consumer type-checks against them with skipLibCheck off', () => {
  const dts = readFileSync(`${root}dist/engine/pipeline.d.ts`, 'utf8');
  assert.doesNotMatch(dts, /\b_(plan|executor|observersForRun|logger|verbose)\b/, 'members marked @internal are stripped');
  const dir = mkdtempSync(join(tmpdir(), 'wpipe-types-'));
  try {
    writeFileSync(join(dir, 'consumer.ts'), [
      "import { Pipeline, step, compileExpression, getBackendInfo, type CompiledExpression, type StepInfo } from 'wpipe';",
      "const load = step({ name: 'load', retryCount: 1 })((ctx: { n?: number }, info: StepInfo) => ({ n: (ctx.n ?? 0) + info.attempt }));",
      "const pipe = new Pipeline({ pipelineName: 'typed' }).setSteps([load]);",
      "const e: CompiledExpression = compileExpression('n > 0');",
      'void pipe.run({}).then((r) => e.evaluate(r)); void getBackendInfo().backends.native.available;',
    ].join('\n'));
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', noEmit: true, skipLibCheck: false,
        types: ['node'], typeRoots: [join(root, 'node_modules', '@types')],
      },
      files: ['consumer.ts'],
    }));
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(root, join(dir, 'node_modules', 'wpipe'));
    const r = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("import('wpipe') loads no addon, .wasm, SQLite, piscina or pino, nor node:zlib, child_process or http (they load when first used)", () => {
  // What importing costs in time is a bench figure (bench/cli.ts: a script that imports wpipe and
  // runs a one-step pipeline), not a test bound: a timing here failed under load at 81.7 ms.
  // Deferring the four builtins took an import from 67 to 52 ms (median of 21 fresh processes).
  const out = node(`
    const before = new Set(process.moduleLoadList);
    await import('wpipe');
    const { createRequire } = await import('node:module');
    const packages = Object.keys(createRequire(import.meta.url).cache).filter((p) => /\\.node$|better-sqlite3|piscina|pino/.test(p));
    const builtins = process.moduleLoadList.filter((m) => !before.has(m) && /^NativeModule (zlib|child_process|http|net)$/.test(m));
    console.log(JSON.stringify({ packages, builtins }));
  `);
  assert.deepEqual(JSON.parse(out), { packages: [], builtins: [] });
});
