#!/usr/bin/env node
// `npm test`: runs the suites with node:test (through tsx, no build step needed for src/).
// With WPIPE_BACKEND set, every suite runs once under that backend (CI does js, wasm and native),
// except that a forced wasm or native pass leaves out the backend-independent files (listed below).
// Without it, backend-dependent suites (test/expr-*.test.ts, test/backend-*.test.ts, less the two
// listed below that drive every backend themselves) run once per backend and the rest once under
// auto. `npm test -- test/x.test.ts` runs chosen files.
//
// Files run two at a time (node:test's --test-concurrency; its default on 2 cores is one): most of
// a file's time is a child process, a browser or a Redis server starting, so a lone file leaves a core
// idle. The suites' deadlines were checked for it: all of them passed with two files at a time while
// a busy loop took one of the two cores (2026-12-07: 544 tests, 137 s against 108 s unloaded and
// 162 s one file at a time). backend-monitor, which times a sampler against a blocked event loop,
// runs alone.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const chosen = process.argv.slice(2);
const all = readdirSync(join(root, 'test'))
  .filter((f) => f.endsWith('.test.ts'))
  .sort()
  .map((f) => join('test', f));
const files = chosen.length > 0 ? chosen : all;
// Suites whose result does not depend on WPIPE_BACKEND: those that drive every backend themselves
// (the VM contract and its generator, the backend loader), those that read the sources (layout) or
// never reach an expression VM, the sampler or the addon (building and packing, the dashboard's page
// and command, the run tracker and journal driven directly, child-process branches, the BullMQ
// queue, the YAML helpers), and
// those that choose their backend themselves whatever the setting (native-vm and wasm-vm drive one
// VM; system-memory names each sampler; the command's suite and the run-ownership suite clear
// WPIPE_BACKEND for themselves and every process they start, and the command's suite forces
// backends with --backend). Running them under wasm and native again tests nothing new, so a forced
// wasm or native pass skips them and says so. They run in the js pass (CI) and, without
// WPIPE_BACKEND, under auto. Suites whose checkpoints or conditions run on the pass's backend
// (storage-pipeline, package, the engine suites) are not in the list.
const backendIndependent = (f) =>
  /(^|\/)(build|cli|code-cache|layout|expr-bytecode|backend-loader|package-install|native-vm|wasm-vm|dashboard-(browser|cli|api-client)|observe-logger|parallel-processes|system-(yaml|memory)|storage-(serialize|db|wsqlite|tracker|journal|concurrency|crash|ownership)|bullmq-[a-z-]+|yaml-bullmq)\.test\.ts$/.test(f);
// The expression and backend suites run once per backend, but for those that drive every backend
// themselves (expr-bytecode checks each VM's results; backend-loader starts processes with the
// backend each case names).
const perBackend = (f) => /(^|\/)(expr|backend)-[^/]*\.test\.ts$/.test(f) && !backendIndependent(f);

/** Files that time something against the whole machine and run with no other file beside them. */
const alone = (f) => /(^|\/)backend-monitor\.test\.ts$/.test(f);

/** Runs `list` (two files at a time, those that must be alone after them); returns the exit status. */
function run(label, list, env) {
  if (list.length === 0) return 0;
  console.log(`\n# wpipe tests: ${label} (${list.length} files)`);
  let status = 0;
  for (const [part, concurrency] of [[list.filter((f) => !alone(f)), 2], [list.filter(alone), 1]]) {
    if (part.length === 0) continue;
    const r = spawnSync(process.execPath, testArgs(part, concurrency), { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
    status = Math.max(status, r.status ?? 1);
  }
  return status;
}

function testArgs(list, concurrency) {
  // --test-force-exit: a file whose test failed before releasing a handle (a worker, a timer) ends
  // when its tests are done instead of hanging the whole run (it happened once in CI).
  return ['--import', 'tsx', '--test', '--test-force-exit', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...list];
}

/**
 * The expression suites of the three backends side by side, as many passes at once as there are
 * cores (one pass leaves a core idle; their time limits, 2-3 s a case, stay far away). Each pass's
 * output is kept and printed whole once all have ended, in js, wasm, native order. Returns each
 * pass's status.
 */
async function runBackendsAtOnce(backends, list) {
  if (list.length === 0) return backends.map(() => 0);
  const lanes = Math.max(1, Math.min(backends.length, availableParallelism()));
  const pass = (backend) => new Promise((resolve) => {
    console.log(`# wpipe tests: expression suites under WPIPE_BACKEND=${backend} started (output when the passes end)`);
    const out = [];
    const child = spawn(process.execPath, testArgs(list, 1), { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WPIPE_BACKEND: backend } });
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => out.push(c));
    child.on('error', (error) => resolve({ status: 1, out: [Buffer.from(String(error))] }));
    child.on('close', (code) => resolve({ status: code ?? 1, out }));
  });
  const done = [];
  let next = 0;
  const lane = async () => {
    while (next < backends.length) {
      const i = next++;
      done[i] = await pass(backends[i]);
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));
  return done.map(({ status, out }, i) => {
    console.log(`\n# wpipe tests: expression suites, WPIPE_BACKEND=${backends[i]} (${list.length} files; ${lanes} backends at a time)`);
    process.stdout.write(Buffer.concat(out));
    return status;
  });
}

let failed = 0;
const results = [];
if (process.env.WPIPE_BACKEND) {
  const forced = process.env.WPIPE_BACKEND;
  const once = chosen.length === 0 && (forced === 'wasm' || forced === 'native') ? files.filter(backendIndependent) : [];
  if (once.length > 0) console.log(`\n# wpipe tests: ${once.length} backend-independent files run in the js pass, not under ${forced}: ${once.map((f) => f.replace(/^test\//, '')).join(', ')}`);
  const status = run(`WPIPE_BACKEND=${forced}`, files.filter((f) => !once.includes(f)), {});
  results.push([process.env.WPIPE_BACKEND, status]);
  failed += status === 0 ? 0 : 1;
} else {
  const backends = ['js', 'wasm', 'native'];
  // The expression suites of the three backends side by side; the others that depend on the backend
  // (backend-monitor times a sampler against a blocked event loop) one backend after another.
  const computeOnly = (f) => /(^|\/)expr-[^/]*\.test\.ts$/.test(f);
  const atOnce = await runBackendsAtOnce(backends, files.filter((f) => perBackend(f) && computeOnly(f)));
  for (let i = 0; i < backends.length; i++) {
    const status = Math.max(atOnce[i], run(`backend-dependent suites, WPIPE_BACKEND=${backends[i]}`, files.filter((f) => perBackend(f) && !computeOnly(f)), { WPIPE_BACKEND: backends[i] }));
    results.push([backends[i], status]);
    failed += status === 0 ? 0 : 1;
  }
  const status = run('other suites (auto)', files.filter((f) => !perBackend(f)), {});
  results.push(['auto', status]);
  failed += status === 0 ? 0 : 1;
}
console.log(`\n# wpipe tests: ${results.map(([b, s]) => `${b} ${s === 0 ? 'ok' : 'FAILED'}`).join(', ')}`);
process.exit(failed === 0 ? 0 : 1);
