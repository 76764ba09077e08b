// `wpipe worker` as a child process against a real Redis: it takes Parallel branches from the queue
// (the branch runs in its pid) and stops on SIGTERM with exit code 0; bad arguments exit 2 with the
// fix, an unreachable Redis exits 1 with WPIPE_ERR_QUEUE_UNAVAILABLE. `wpipe run --redis --queue`
// and `wpipe validate --redis --queue` give a YAML file's `executor: bullmq` its queue (only the
// flag counts: these tests run them without $WPIPE_REDIS); their refusals and the validation need no
// Redis and run everywhere. Last, the suite helper itself (test/helpers/redis.ts): its after-hook
// runs every cleanup when one throws, and a server that fails to start leaves no directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Pipeline, Parallel } from '../src/engine/index.js';
import { useBullmq } from '../src/queue/executor.js';
import { freePort, redisSuite, startRedis } from './helpers/redis.js';
import * as S from './fixtures/bullmq/steps.js';

const T = { timeout: 120_000 };
const here = fileURLToPath(new URL('.', import.meta.url));
const cliMain = join(here, 'fixtures', 'bullmq', 'cli-main.ts');
const stepsModule = join(here, 'fixtures', 'bullmq', 'steps.ts');

const children = new Set<ChildProcess>();
const suite = redisSuite();
suite.cleanup(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await gone;
    }
  }
});

interface Cli { child: ChildProcess; exited: Promise<number | null>; stdout: () => string; stderr: () => string }

function wpipe(args: string[], env: NodeJS.ProcessEnv = process.env, stdin?: string): Cli {
  const child = spawn(process.execPath, ['--import', 'tsx', cliMain, ...args], { stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env });
  if (stdin !== undefined) child.stdin!.end(stdin);
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, stdout: () => out, stderr: () => err };
}

async function until(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('wpipe worker runs Parallel branches from its queue and stops on SIGTERM with 0', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const cli = wpipe(['worker', '--redis', suite.redis!.url, '--queue', 'cli', '--steps', stepsModule, '--concurrency', '2']);
  await until(() => /ready on redis:\/\/127\.0\.0\.1:\d+\/cli/.test(cli.stdout()), 60_000, () => `no ready line: ${cli.stdout()} ${cli.stderr()}`);
  useBullmq({ connection: suite.redis!.url, name: 'cli' });
  const pipe = new Pipeline().setSteps([new Parallel({ steps: [S.add, S.where], executor: 'bullmq' })]);
  try {
    const out = await pipe.run({ a: 1, b: 2, tag: 'C' });
    assert.equal(out.sum, 3);
    assert.equal((out.atC as { pid: number }).pid, cli.child.pid);
  } finally {
    await pipe.close();
  }
  cli.child.kill('SIGTERM');
  assert.equal(await cli.exited, 0, cli.stderr());
});

test('wpipe worker: bad arguments exit 2 and say what to give', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const env = { ...process.env };
  delete env.WPIPE_REDIS;
  const cases: [string[], RegExp][] = [
    [['worker', '--steps', stepsModule], /--redis URL is required/],
    [['worker', '--redis', suite.redis!.url], /give --steps MODULE/],
    [['worker', '--redis', suite.redis!.url, '--steps', stepsModule, '--concurrency', '0'], /--concurrency must be an integer from 1 to 1000/],
    [['worker', '--redis', 'http://x', '--steps', stepsModule], /redis:\/\/ or rediss:\/\/ URL/],
  ];
  for (const [args, message] of cases) {
    const cli = wpipe(args, env);
    assert.equal(await cli.exited, 2, `${args.join(' ')}: ${cli.stderr()}`);
    assert.match(cli.stderr(), message);
  }
});

test('wpipe worker: an unreachable Redis exits 1 with WPIPE_ERR_QUEUE_UNAVAILABLE', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const port = await freePort();
  const cli = wpipe(['worker', '--redis', `redis://127.0.0.1:${port}`, '--steps', stepsModule]);
  assert.equal(await cli.exited, 1, cli.stderr());
  assert.match(cli.stderr(), /ECONNREFUSED.*\[WPIPE_ERR_QUEUE_UNAVAILABLE\]|\[WPIPE_ERR_QUEUE_UNAVAILABLE\]/);
});

test('wpipe worker whose Redis went away: Ctrl-C says it waits for the jobs in hand, a second Ctrl-C stops it at once', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  // A server of its own: the suite's stays up for the other tests.
  const own = await startRedis();
  if (typeof own === 'string') return t.skip(own);
  try {
    const cli = wpipe(['worker', '--redis', own.url, '--queue', 'gone', '--steps', stepsModule]);
    await until(() => /ready on/.test(cli.stdout()), 60_000, () => `no ready line: ${cli.stdout()} ${cli.stderr()}`);
    await own.kill(true);
    await new Promise((r) => setTimeout(r, 1_500)); // the worker is reconnecting now
    cli.child.kill('SIGINT');
    await until(() => /stopping after the jobs in hand \(Ctrl-C again to stop at once\)/.test(cli.stderr()), 10_000, () => cli.stderr());
    const first = await Promise.race([cli.exited.then(() => 'exited'), new Promise((r) => setTimeout(() => r('waiting'), 1_000))]);
    if (first === 'waiting') cli.child.kill('SIGINT');
    const ended = await Promise.race([cli.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]);
    assert.ok(ended, `the worker did not stop after a second Ctrl-C: ${cli.stderr()}`);
  } finally {
    await own.stop();
  }
});

/** The environment without $WPIPE_REDIS: run and validate take their queue from --redis only. */
function envWithoutRedis(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.WPIPE_REDIS;
  return env;
}

const fixtures = join(here, 'fixtures', 'bullmq');

/** A YAML file whose parallel block (line 5, column 17) is `executor: bullmq`, in a directory removed after the tests. */
function queueYaml(): string {
  const dir = mkdtempSync(join(tmpdir(), 'wpipe-bullmq-run-'));
  suite.cleanup(() => rmSync(dir, { recursive: true, force: true }));
  const yaml = join(dir, 'p.yaml');
  writeFileSync(yaml, 'pipelineName: cli-queue\nmodule: ./steps.ts\nsteps:\n  - parallel:\n      executor: bullmq\n      steps:\n        - { export: add }\n        - { export: where }\n');
  return yaml;
}

test('wpipe run without --redis refuses a file with executor: bullmq (exit 2), --queue alone is a usage error; wpipe validate checks it against --redis without connecting (no Redis needed)', T, async () => {
  const yaml = queueYaml();
  const env = envWithoutRedis();
  const refused = wpipe(['run', yaml, '--steps-dir', fixtures], env);
  assert.equal(await refused.exited, 2, refused.stderr());
  assert.match(refused.stderr(), /p\.yaml:5:17: .*'executor: bullmq' on a parallel block needs a BullMQ queue/);
  assert.match(refused.stderr(), /give the file's executor: bullmq its queue with --redis URL \[--queue NAME\]/);
  // $WPIPE_REDIS (wpipe worker's) is not the operator's consent for a file: still refused.
  const fromEnv = wpipe(['run', yaml, '--steps-dir', fixtures], { ...env, WPIPE_REDIS: `redis://127.0.0.1:${await freePort()}` });
  assert.equal(await fromEnv.exited, 2, fromEnv.stderr());
  assert.match(fromEnv.stderr(), /needs a BullMQ queue/);
  const queueAlone = wpipe(['run', yaml, '--steps-dir', fixtures, '--queue', 'x'], env);
  assert.equal(await queueAlone.exited, 2, queueAlone.stderr());
  assert.match(queueAlone.stderr(), /--queue needs --redis URL/);
  // validate takes the same flags, and checks the file without connecting (nothing listens there).
  const invalid = wpipe(['validate', yaml, '--steps-dir', fixtures], env);
  assert.equal(await invalid.exited, 1, invalid.stderr());
  assert.match(invalid.stderr(), /p\.yaml:5:17: .*\[WPIPE_ERR_EXECUTOR_UNAVAILABLE\]/);
  const valid = wpipe(['validate', yaml, '--steps-dir', fixtures, '--redis', `redis://127.0.0.1:${await freePort()}`, '--queue', 'cli-run'], env);
  assert.equal(await valid.exited, 0, valid.stderr());
  assert.match(valid.stdout(), /valid pipeline 'cli-queue'/);
});

test('wpipe run --redis URL --queue NAME: a YAML file\'s executor: bullmq branches run on a wpipe worker', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const yaml = queueYaml();
  const env = envWithoutRedis();
  const worker = wpipe(['worker', '--redis', suite.redis!.url, '--queue', 'cli-run', '--steps', stepsModule]);
  await until(() => /ready on/.test(worker.stdout()), 60_000, () => `no ready line: ${worker.stdout()} ${worker.stderr()}`);
  const run = wpipe(['run', yaml, '--steps-dir', fixtures, '--redis', suite.redis!.url, '--queue', 'cli-run', '--input', '-', '--json'], env, '{"a": 4, "b": 5, "tag": "R"}');
  assert.equal(await run.exited, 0, run.stderr());
  const doc = JSON.parse(run.stdout()) as { status: string; result: { sum: number; atR: { pid: number } } };
  assert.equal(doc.status, 'completed');
  assert.equal(doc.result.sum, 9);
  assert.equal(doc.result.atR.pid, worker.child.pid, 'the branch ran in the worker process');
  worker.child.kill('SIGTERM');
  assert.equal(await worker.exited, 0, worker.stderr());
});

// ── the suite helper (test/helpers/redis.ts) ─────────────────────────────────────────────────
const helper = pathToFileURL(join(here, 'helpers', 'redis.ts')).href;
const repoRoot = join(here, '..');

/** A child process's environment: without $WPIPE_REDIS, and not a subtest of this runner (NODE_TEST_CONTEXT). */
function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...envWithoutRedis(), ...extra };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

test('redisSuite: when a cleanup throws, the later cleanups still run and the server stops; the hook then fails with the first error', T, () => {
  const dir = mkdtempSync(join(tmpdir(), 'wpipe-redis-suite-'));
  try {
    const mark = join(dir, 'mark.json');
    const file = join(dir, 'suite.test.ts');
    writeFileSync(file, `import { test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { redisSuite } from ${JSON.stringify(helper)};
const suite = redisSuite();
suite.cleanup(() => { throw new Error('first cleanup failed'); });
suite.cleanup(() => { writeFileSync(${JSON.stringify(mark)}, JSON.stringify({ dir: suite.redis?.dir ?? null, pid: suite.redis?.pid ?? null })); });
suite.cleanup(async () => { throw new Error('third cleanup failed'); });
test('nothing', () => {});
`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter', 'tap', file], { cwd: repoRoot, encoding: 'utf8', env: childEnv(), timeout: 90_000 });
    const output = `${r.stdout}${r.stderr}`;
    assert.notEqual(r.status, 0, `the after-hook must fail the file: ${output}`);
    assert.match(output, /first cleanup failed/);
    assert.ok(existsSync(mark), `the cleanup after the one that threw did not run: ${output}`);
    const seen = JSON.parse(readFileSync(mark, 'utf8')) as { dir: string | null; pid: number | null };
    if (seen.dir !== null) {
      assert.equal(existsSync(seen.dir), false, 'the server\'s directory is removed');
      assert.throws(() => process.kill(seen.pid!, 0), /ESRCH/, 'the server is stopped');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('startRedis: a server that fails to start leaves no temporary directory behind', T, () => {
  const dir = mkdtempSync(join(tmpdir(), 'wpipe-redis-fake-'));
  try {
    // A redis-server that answers --version and exits 1 at start, recording the --dir it was given.
    const binDir = join(dir, 'bin');
    mkdirSync(binDir);
    const record = join(dir, 'dir.txt');
    const fake = join(binDir, 'redis-server');
    writeFileSync(fake, '#!/bin/sh\nif [ "$1" = "--version" ]; then echo "Redis server v=0.0.0"; exit 0; fi\nwhile [ $# -gt 0 ]; do if [ "$1" = "--dir" ]; then printf %s "$2" > "$FAKE_REDIS_RECORD"; fi; shift; done\necho "fake redis refuses to start" >&2\nexit 1\n');
    chmodSync(fake, 0o755);
    const script = `import { startRedis } from ${JSON.stringify(helper)};
try { await startRedis(); console.log('STARTED'); } catch (error) { console.log('FAILED ' + error.message); }`;
    const env = childEnv({ PATH: `${binDir}${delimiter}${process.env.PATH ?? ''}`, FAKE_REDIS_RECORD: record });
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8', env, timeout: 90_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /FAILED redis-server exited at start/);
    const serverDir = readFileSync(record, 'utf8');
    assert.match(serverDir, /wpipe-redis-/);
    assert.equal(existsSync(serverDir), false, `${serverDir} is left behind`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
