// The backend loader: selection order, forced backends that cannot load, and what getBackendInfo()
// says when the addon or the .wasm is missing (hidden with WPIPE_NATIVE_PATH / WPIPE_WASM_PATH,
// which point the loader at another file), in fresh processes so nothing is cached. Every process
// is given its WPIPE_BACKEND (or none), so the file runs once, not once per backend (scripts/test.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Runs a snippet against src/index.ts in a fresh node with the given environment; returns JSON. */
function probe(code: string, env: Record<string, string | undefined>): { status: number | null; out: unknown; stderr: string } {
  const full = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete full[k];
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `
    const w = await import(${JSON.stringify(`${root}src/index.ts`)});
    const result = await (async () => { ${code} })();
    console.log(JSON.stringify(result));
  `], { cwd: root, encoding: 'utf8', env: full });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return { status: r.status, out: line ? JSON.parse(line) : undefined, stderr: r.stderr };
}

const infoCode = `const i = w.getBackendInfo(); return { native: i.backends.native.available, wasm: i.backends.wasm.available,
  nativeDetail: i.backends.native.detail, batch: i.capabilities['expr.batch'], scalar: i.capabilities['expr.scalar'], requested: i.requested };`;

test('with both accelerated backends built, auto batches go to native and scalars to js', () => {
  const { out } = probe(infoCode, { WPIPE_BACKEND: undefined });
  const info = out as { native: boolean; wasm: boolean; batch: { backend: string }; scalar: { backend: string }; requested: string };
  assert.equal(info.requested, 'auto');
  assert.equal(info.native, true, 'the addon should be built (npm run build:native)');
  assert.equal(info.wasm, true, 'the .wasm should be built (npm run build:wasm)');
  assert.equal(info.batch.backend, 'native');
  assert.equal(info.scalar.backend, 'js');
});

test('getBackendInfo tells the truth when the addon is missing, and auto falls back to wasm', () => {
  const { out } = probe(`${infoCode.replace('return {', 'const e = w.compileExpression("x > 1"); const r = Array.from(e.testBatch({ x: new Float64Array(5000).fill(2) }).slice(0, 2)); return { r, explain: e.explainBatch({ x: new Float64Array(5000) }),')}`,
    { WPIPE_BACKEND: undefined, WPIPE_NATIVE_PATH: '/nonexistent/wpipe.node' });
  const info = out as { native: boolean; wasm: boolean; nativeDetail: string; batch: { backend: string; reason: string }; r: number[]; explain: { backend: string } };
  assert.equal(info.native, false);
  assert.match(info.nativeDetail, /nonexistent\/wpipe\.node/);
  assert.equal(info.batch.backend, 'wasm');
  assert.match(info.batch.reason, /native unavailable/);
  assert.deepEqual(info.r, [1, 1]);
  assert.equal(info.explain.backend, 'wasm');
});

test('with neither the addon nor the .wasm, auto serves everything from js', () => {
  const { out } = probe(infoCode, { WPIPE_BACKEND: undefined, WPIPE_NATIVE_PATH: '/nonexistent/a.node', WPIPE_WASM_PATH: '/nonexistent/b.wasm' });
  const info = out as { native: boolean; wasm: boolean; batch: { backend: string } };
  assert.equal(info.native, false);
  assert.equal(info.wasm, false);
  assert.equal(info.batch.backend, 'js');
});

test('a forced backend that cannot load throws, listing what was tried and how to fix it', () => {
  for (const [backend, env] of [['native', 'WPIPE_NATIVE_PATH'], ['wasm', 'WPIPE_WASM_PATH']] as const) {
    const { out } = probe(`try { w.compileExpression('x > 1'); return 'no error'; } catch (e) { return { name: e.name, code: e.code, message: e.message }; }`,
      { WPIPE_BACKEND: backend, [env]: `/nonexistent/hidden.${backend}` });
    const err = out as { code: string; message: string };
    assert.equal(err.code, 'WPIPE_ERR_BACKEND_UNAVAILABLE', backend);
    assert.match(err.message, new RegExp(`the ${backend} backend was requested`));
    assert.match(err.message, /tried: .*nonexistent\/hidden/);
    assert.match(err.message, /possible solutions: run `npm run build:/);
  }
});

test('an explicit backend option wins over WPIPE_BACKEND; a bad value is a RangeError', () => {
  const { out } = probe(`return [w.compileExpression('x', { backend: 'js' }).backend, w.compileExpression('x').backend];`, { WPIPE_BACKEND: 'wasm' });
  assert.deepEqual(out, ['js', 'wasm']);
  const bad = probe(`try { w.compileExpression('x'); return 'no error'; } catch (e) { return [e.name, e.code]; }`, { WPIPE_BACKEND: 'gpu' });
  assert.deepEqual(bad.out, ['RangeError', 'WPIPE_ERR_INVALID_OPTION']);
  const badOption = probe(`try { w.compileExpression('x', { backend: 'fast' }); return 'no error'; } catch (e) { return [e.name, e.code]; }`, { WPIPE_BACKEND: undefined });
  assert.deepEqual(badOption.out, ['RangeError', 'WPIPE_ERR_INVALID_OPTION']);
  const typo = probe(`try { w.compileExpression('x', { backedn: 'js' }); return 'no error'; } catch (e) { return [e.name, e.message]; }`, { WPIPE_BACKEND: undefined });
  assert.deepEqual(typo.out, ['TypeError', "compileExpression: unknown option 'backedn' (did you mean backend?)"]);
});

test('the addon and the .wasm load inside worker threads', async () => {
  const { Worker } = await import('node:worker_threads');
  // tsx's loader is registered inside the worker (an --import in execArgv is not applied to a .ts entry).
  const code =
    `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); ` +
    `return import(${JSON.stringify(new URL('./fixtures/backend-worker.ts', import.meta.url).href)}); })` +
    `.catch((e) => require('node:worker_threads').parentPort.postMessage(String(e)));`;
  const worker = new Worker(code, { eval: true });
  const msg = await new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await worker.terminate();
  assert.deepEqual(msg, [['wasm', true, 1], ['native', true, 1]]);
});
