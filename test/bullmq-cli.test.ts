// `wpipe worker` as a child process against a real Redis: it takes Parallel branches from the queue
// (the branch runs in its pid) and stops on SIGTERM with exit code 0; bad arguments exit 2 with the
// fix, an unreachable Redis exits 1 with WPIPE_ERR_QUEUE_UNAVAILABLE. `wpipe run --redis --queue`
// and `wpipe validate --redis --queue` give a YAML file's `executor: bullmq` its queue.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pipeline, Parallel } from '../src/engine/index.js';
import { useBullmq } from '../src/queue/executor.js';
import { freePort, redisSuite } from './helpers/redis.js';
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
    const cli = wpipe(args);
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

test('wpipe run --redis URL --queue NAME: a YAML file\'s executor: bullmq branches run on a wpipe worker; without --redis the file is refused (exit 2)', T, async (t) => {
  if (suite.skip) return t.skip(suite.skip);
  const dir = mkdtempSync(join(tmpdir(), 'wpipe-bullmq-run-'));
  suite.cleanup(() => rmSync(dir, { recursive: true, force: true }));
  const yaml = join(dir, 'p.yaml');
  writeFileSync(yaml, 'pipelineName: cli-queue\nmodule: ./steps.ts\nsteps:\n  - parallel:\n      executor: bullmq\n      steps:\n        - { export: add }\n        - { export: where }\n');
  const fixtures = join(here, 'fixtures', 'bullmq');
  const env = { ...process.env };
  delete env.WPIPE_REDIS;

  const refused = wpipe(['run', yaml, '--steps-dir', fixtures], env);
  assert.equal(await refused.exited, 2, refused.stderr());
  assert.match(refused.stderr(), /p\.yaml:5:17: .*'executor: bullmq' on a parallel block needs a BullMQ queue/);
  assert.match(refused.stderr(), /give the file's executor: bullmq its queue with --redis URL \[--queue NAME\]/);
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
