// The `wpipe` command, driven as users drive it: a child process of bin/wpipe.js (which loads the
// built bundle dist/wpipe-cli.js), checked by exit code, stdout and stderr. Covers run (input from a
// file and stdin, --json, failures, invalid files, --db / --run-id resume and replay, Ctrl-C), runs
// list|show, export, validate, backends, help and version, a run on a pseudo-terminal (util-linux
// `script`), and what the command does not load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// The command's suite runs once (scripts/test.mjs: the js pass): every command it starts runs under
// auto whatever WPIPE_BACKEND the pass has, and the backends test uses --backend to force one.
delete process.env.WPIPE_BACKEND;
const root = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(root, 'bin', 'wpipe.js');
const LIB = pathToFileURL(join(root, 'dist', 'wpipe.js')).href;

test('the command is built (dist/wpipe-cli.js) and package.json points "bin" at the launcher', () => {
  assert.ok(existsSync(join(root, 'dist', 'wpipe-cli.js')), 'dist/wpipe-cli.js is missing: run node scripts/build.mjs ts');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] };
  assert.equal(pkg.bin.wpipe, './bin/wpipe.js');
  assert.ok(pkg.files.includes('bin') && pkg.files.includes('dist'));
  assert.match(readFileSync(BIN, 'utf8'), /^#!\/usr\/bin\/env node\n/);
});

/** Steps for the fixtures; they import the built library, as a user's steps import 'wpipe'. */
const STEPS = `
import { appendFileSync, existsSync } from 'node:fs';
import { step } from ${JSON.stringify(LIB)};
const log = (what) => { if (process.env.WPIPE_TEST_LOG) appendFileSync(process.env.WPIPE_TEST_LOG, what + '\\n'); };
export const hello = step({ name: 'hello' })((ctx) => { log('hello'); return { greeting: 'hello ' + (ctx.name ?? 'world'), done_hello: true }; });
export const second = step({ name: 'second' })((ctx) => {
  log('second');
  if (process.env.WPIPE_TEST_FAIL && existsSync(process.env.WPIPE_TEST_FAIL)) throw new Error('second failed on purpose');
  return { second: true };
});
export const wait = step({ name: 'wait' })((ctx, info) => {
  if (process.env.WPIPE_TEST_WAIT !== '1') return { waited: false };
  process.stderr.write('waiting for a signal\\n');
  return new Promise((_resolve, reject) => info.signal.addEventListener('abort', () => reject(info.signal.reason), { once: true }));
});
export const slowly = step({ name: 'slowly' })(async () => { await new Promise((r) => setTimeout(r, 30)); return { slow: true }; });
export const big = step({ name: 'big' })(() => ({ size: 'big' }));
export const small = step({ name: 'small' })(() => ({ size: 'small' }));
export function helper() {}
`;

const PIPELINE = `
pipelineName: cli-test
module: ./steps.mjs
checkpoints:
  - { name: greeted, expression: done_hello }
steps:
  - export: hello
  - export: wait
  - export: second
  - condition:
      expression: len(greeting) > 12
      then: [{ export: big }]
      else: [{ export: small }]
`;

function folder(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'wpipe-cli-'));
  writeFileSync(join(dir, 'steps.mjs'), STEPS);
  writeFileSync(join(dir, 'p.yaml'), PIPELINE);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

function wpipe(args: string[], options: { cwd?: string; input?: string; env?: Record<string, string> } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? root, encoding: 'utf8', input: options.input ?? '', timeout: 60_000,
    env: { ...process.env, WPIPE_DB: '', WPIPE_BACKEND: '', ...options.env },
  });
  assert.equal(r.error, undefined, String(r.error));
  return r;
}

/** Resolves once the child has written `text` to stderr; rejects if it exits first. */
function stderrSays(child: ReturnType<typeof spawn>, text: string): { ready: Promise<void>; stderr: () => string } {
  let stderr = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes(text)) resolve();
    });
    child.on('exit', (code, signal) => reject(new Error(`exited (${code ?? signal}) before '${text}': ${stderr}`)));
  });
  return { ready, stderr: () => stderr };
}

const json = (text: string): Record<string, unknown> => JSON.parse(text) as Record<string, unknown>;

test('--version prints the package version; --help of the command and of every subcommand exits 0', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const v = wpipe(['--version']);
  assert.equal(v.status, 0);
  assert.equal(v.stdout.trim(), pkg.version);
  const help = wpipe(['--help']);
  assert.equal(help.status, 0);
  for (const sub of ['run', 'runs', 'export', 'validate', 'backends', 'dashboard']) assert.match(help.stdout, new RegExp(`\\n  ${sub}\\b`), sub);
  assert.match(help.stdout, /Exit codes: 0 success, 1 run failed, 2 usage error, 130 cancelled/);
  for (const sub of [['run'], ['runs', 'list'], ['runs', 'show'], ['export'], ['validate'], ['backends'], ['dashboard'], ['schema']]) {
    const r = wpipe([...sub, '--help']);
    assert.equal(r.status, 0, sub.join(' '));
    assert.match(r.stdout, new RegExp(`^Usage: wpipe ${sub.join(' ')}`), sub.join(' '));
  }
  assert.match(wpipe(['run', '--help']).stdout, /--input <file>.*\n[\s\S]*--db <file>[\s\S]*--run-id <id>[\s\S]*--backend <name>[\s\S]*--json/);
});

test('usage errors exit 2 with a message on stderr: unknown command or option, a missing argument, a bad choice', () => {
  for (const [args, message] of [
    [['bogus'], /unknown command 'bogus'/],
    [['run'], /missing required argument 'pipeline'/],
    [['run', 'p.yaml', '--bogus'], /unknown option '--bogus'/],
    [['run', 'p.yaml', '--backend', 'gpu'], /argument 'gpu' is invalid. Allowed choices are auto, js, wasm, native/],
    [['export', '--format', 'csv'], /required option '--db <file>' not specified/],
    [['export', '--db', 'x.db', '--format', 'xml'], /Allowed choices are json, csv/],
    [['runs', 'list', '--db', join(root, 'package.json'), '--limit', 'abc'], /--limit must be an integer from 1 to 1000, got 'abc'/],
    [['runs', 'list', '--db', join(root, 'package.json'), '--status', 'done'], /--status must be one of running, completed, error, cancelled, interrupted/],
    [['runs', 'list', '--db', join(tmpdir(), 'wpipe-no-such.db')], /--db: .* does not exist/],
    [['dashboard'], /--db FILE is required/],
  ] as const) {
    const r = wpipe([...args]);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
});

test('run: the final context on stdout (JSON), a summary on stderr, exit 0; the example pipeline runs', () => {
  const dir = folder();
  const r = wpipe(['run', join(dir, 'p.yaml')]);
  assert.equal(r.status, 0, r.stderr);
  const out = json(r.stdout);
  assert.equal(out.greeting, 'hello world');
  assert.equal(out.size, 'small');
  assert.match(r.stderr, /^wpipe: run [0-9a-f-]{36} completed in \d+ ms\n$/);
  const example = wpipe(['run', 'examples/orders.yaml'], { env: { WPIPE_DB: '' } });
  assert.equal(example.status, 0, example.stderr);
  assert.equal(json(example.stdout).decision, 'manual review');
});

test('run --input: a JSON file, stdin (-); a bad input is a usage error (2)', () => {
  const dir = folder({ 'in.json': '{"name": "Ada Lovelace"}', 'bad.json': '{name', 'list.json': '[1, 2]' });
  const fromFile = wpipe(['run', join(dir, 'p.yaml'), '--input', join(dir, 'in.json')]);
  assert.equal(fromFile.status, 0, fromFile.stderr);
  assert.deepEqual([json(fromFile.stdout).greeting, json(fromFile.stdout).size], ['hello Ada Lovelace', 'big']);
  const fromStdin = wpipe(['run', join(dir, 'p.yaml'), '--input', '-'], { input: '{"name": "stdin"}' });
  assert.equal(fromStdin.status, 0, fromStdin.stderr);
  assert.equal(json(fromStdin.stdout).greeting, 'hello stdin');
  for (const [file, message] of [
    ['bad.json', /--input: .*bad\.json is not JSON/],
    ['list.json', /must hold a JSON object \(the run's initial context\), got an array/],
    ['missing.json', /--input: cannot read .*missing\.json/],
  ] as const) {
    const r = wpipe(['run', join(dir, 'p.yaml'), '--input', join(dir, file)]);
    assert.equal(r.status, 2, file);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /\[WPIPE_ERR_CLI_USAGE\]/);
  }
});

test('run: an invalid pipeline file exits 2 and lists every problem as file:line:column', () => {
  const dir = folder({ 'bad.yaml': 'pipelineNmae: x\nsteps:\n  - { module: ./steps.mjs, export: helper }\n  - { module: ../x.mjs, export: a }\n' });
  const r = wpipe(['run', join(dir, 'bad.yaml')]);
  assert.equal(r.status, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /\[WPIPE_ERR_PIPELINE_INVALID\]/);
  assert.match(r.stderr, /bad\.yaml:1:1: pipelineNmae: unknown key 'pipelineNmae' in a pipeline \(did you mean pipelineName\?\)/);
  assert.match(r.stderr, /bad\.yaml:3:36: steps\[0\]\.export: export 'helper' of '.\/steps.mjs' is a plain function, not a step/);
  assert.match(r.stderr, /bad\.yaml:4:15: steps\[1\]\.module: module '..\/x.mjs' is outside the steps folder/);
  const missing = wpipe(['run', join(dir, 'nope.yaml')]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /nope\.yaml does not exist \[WPIPE_ERR_YAML\]/);
});

test('run: a failed run exits 1, names the step and how to resume; --json carries the failure on stdout', () => {
  const dir = folder();
  const flag = join(dir, 'fail');
  writeFileSync(flag, '');
  const r = wpipe(['run', join(dir, 'p.yaml'), '--db', join(dir, 'runs.db'), '--run-id', 'f-1'], { env: { WPIPE_TEST_FAIL: flag } });
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /second failed on purpose/);
  assert.match(r.stderr, /\[WPIPE_ERR_PROCESS_FAILED\]/);
  assert.match(r.stderr, /wpipe: run f-1 failed; resume it with: wpipe run .*p\.yaml --db .*runs\.db --run-id f-1/);
  const j = wpipe(['run', join(dir, 'p.yaml'), '--json'], { env: { WPIPE_TEST_FAIL: flag } });
  assert.equal(j.status, 1);
  const doc = json(j.stdout);
  assert.equal(doc.status, 'error');
  assert.equal(doc.pipelineName, 'cli-test');
  assert.deepEqual({ ...(doc.error as object), message: undefined }, { code: 'WPIPE_ERR_PROCESS_FAILED', message: undefined, step: 'second', stepCode: 'WPIPE_ERR_TASK_FAILED' });
});

test('run --db --run-id: a failed run resumes from its checkpoint, a completed one prints its recorded result', () => {
  const dir = folder();
  const flag = join(dir, 'fail');
  const log = join(dir, 'log');
  writeFileSync(flag, '');
  const args = ['run', join(dir, 'p.yaml'), '--db', join(dir, 'runs.db'), '--run-id', 'order-1', '--json'];
  const env = { WPIPE_TEST_FAIL: flag, WPIPE_TEST_LOG: log };
  const first = wpipe(args, { env });
  assert.equal(first.status, 1);
  const resumed = wpipe(args, { env: { ...env, WPIPE_TEST_FAIL: join(dir, 'no-such-flag') } });
  assert.equal(resumed.status, 0, resumed.stderr);
  const doc = json(resumed.stdout);
  assert.equal(doc.replayed, false);
  // done_hello still holds after 'wait': the checkpoint was saved again there.
  assert.deepEqual(doc.resumedFrom, { position: 2, checkpoint: 'greeted' });
  assert.equal((doc.result as Record<string, unknown>).second, true);
  assert.match(resumed.stderr, /run order-1 resumed and completed/);
  assert.deepEqual(readFileSync(log, 'utf8').split('\n').filter(Boolean), ['hello', 'second', 'second'], 'hello ran once');
  const replay = wpipe(args, { env });
  assert.equal(replay.status, 0);
  assert.equal(json(replay.stdout).replayed, true);
  assert.deepEqual(json(replay.stdout).result, doc.result);
  assert.match(replay.stderr, /completed earlier: printed its recorded result \(nothing ran\)/);
  assert.equal(readFileSync(log, 'utf8').split('\n').filter(Boolean).length, 3, 'nothing ran again');
});

test('Ctrl-C (SIGINT) cancels the run through its signal: exit 130, recorded as cancelled, resumable', async () => {
  const dir = folder();
  const db = join(dir, 'runs.db');
  const child = spawn(process.execPath, [BIN, 'run', join(dir, 'p.yaml'), '--db', db, '--run-id', 'c-1'], {
    env: { ...process.env, WPIPE_TEST_WAIT: '1', WPIPE_DB: '' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const started = stderrSays(child, 'waiting for a signal');
  await started.ready;
  child.kill('SIGINT');
  assert.equal(await exited, 130, started.stderr());
  const stderr = started.stderr();
  assert.equal(stdout, '');
  assert.match(stderr, /wpipe: SIGINT: cancelling run c-1/);
  assert.match(stderr, /\[WPIPE_ERR_PROCESS_CANCELLED\]/);
  assert.match(stderr, /run c-1 cancelled; resume it with: wpipe run .* --run-id c-1/);
  const shown = wpipe(['runs', 'show', 'c-1', '--db', db, '--json']);
  assert.equal(shown.status, 0, shown.stderr);
  assert.equal(json(shown.stdout).status, 'cancelled');
  const resumed = wpipe(['run', join(dir, 'p.yaml'), '--db', db, '--run-id', 'c-1', '--json']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.deepEqual(json(resumed.stdout).resumedFrom, { position: 1, checkpoint: 'greeted' }, 'cancelled in wait: from the checkpoint after hello');
  assert.equal(json(wpipe(['runs', 'show', 'c-1', '--db', db, '--json']).stdout).status, 'completed');
});

test('a command killed mid-run (SIGKILL) leaves a run that --run-id resumes from its checkpoint', async () => {
  const dir = folder();
  const db = join(dir, 'runs.db');
  const log = join(dir, 'log');
  const child = spawn(process.execPath, [BIN, 'run', join(dir, 'p.yaml'), '--db', db, '--run-id', 'k-1'], {
    env: { ...process.env, WPIPE_TEST_WAIT: '1', WPIPE_TEST_LOG: log, WPIPE_DB: '' }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  const started = stderrSays(child, 'waiting for a signal');
  await started.ready;
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  const resumed = wpipe(['run', join(dir, 'p.yaml'), '--db', db, '--run-id', 'k-1', '--json'], { env: { WPIPE_TEST_LOG: log } });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.deepEqual(json(resumed.stdout).resumedFrom, { position: 1, checkpoint: 'greeted' });
  assert.deepEqual(readFileSync(log, 'utf8').split('\n').filter(Boolean), ['hello', 'second'], 'hello ran once, before the kill');
  const shown = json(wpipe(['runs', 'show', 'k-1', '--db', db, '--json']).stdout) as { status: string; resumes: number };
  assert.equal(shown.status, 'completed');
  assert.equal(shown.resumes, 1);
});

test('runs list and runs show: a table, JSON with --json, filters; an unknown run exits 1', () => {
  const dir = folder();
  const db = join(dir, 'runs.db');
  const flag = join(dir, 'fail');
  assert.equal(wpipe(['run', join(dir, 'p.yaml'), '--db', db, '--run-id', 'ok-1']).status, 0);
  writeFileSync(flag, '');
  assert.equal(wpipe(['run', join(dir, 'p.yaml'), '--db', db, '--run-id', 'bad-1'], { env: { WPIPE_TEST_FAIL: flag } }).status, 1);

  const list = wpipe(['runs', 'list', '--db', db]);
  assert.equal(list.status, 0, list.stderr);
  const lines = list.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^RUN ID +PIPELINE +STATUS +STARTED +DURATION +ERROR$/);
  assert.equal(lines.length, 3);
  assert.match(list.stdout, /\nbad-1 +cli-test +error +\S+ +\d+ ms +second: .*second failed on purpose/);
  assert.match(list.stdout, /\nok-1 +cli-test +completed /);

  const errors = json(wpipe(['runs', 'list', '--db', db, '--status', 'error', '--json']).stdout) as { total: number; runs: { runId: string }[] };
  assert.deepEqual([errors.total, errors.runs.map((r) => r.runId)], [1, ['bad-1']]);
  const limited = wpipe(['runs', 'list', '--db', db, '--limit', '1']);
  assert.match(limited.stdout, /\(1 of 2; --limit N for more\)/);
  const viaEnv = wpipe(['runs', 'list', '--json'], { env: { WPIPE_DB: db } });
  assert.equal((json(viaEnv.stdout) as { total: number }).total, 2);

  const show = wpipe(['runs', 'show', 'bad-1', '--db', db]);
  assert.equal(show.status, 0, show.stderr);
  assert.match(show.stdout, /^run +bad-1\npipeline +cli-test\nstatus +error\n/);
  assert.match(show.stdout, /error +second: .*second failed on purpose \[WPIPE_ERR_PROCESS_FAILED\]/);
  assert.match(show.stdout, /checkpoint greeted \(position 2/);
  assert.match(show.stdout, /\n# +STEP +KIND +STATUS +ATTEMPTS +DURATION +ERROR\n1 +hello +task +completed +1 /);
  const detail = json(wpipe(['runs', 'show', 'ok-1', '--db', db, '--json']).stdout) as { status: string; steps: { name: string }[] };
  assert.equal(detail.status, 'completed');
  assert.deepEqual(detail.steps.map((s) => s.name).slice(0, 3), ['hello', 'wait', 'second']);
  const unknown = wpipe(['runs', 'show', 'nope', '--db', db]);
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /no run 'nope' in /);
});

test('export: JSON or CSV to stdout, or --out FILE; runs, metrics or statistics', () => {
  const dir = folder();
  const db = join(dir, 'runs.db');
  assert.equal(wpipe(['run', join(dir, 'p.yaml'), '--db', db, '--run-id', 'e-1']).status, 0);
  const asJson = wpipe(['export', '--db', db, '--format', 'json']);
  assert.equal(asJson.status, 0, asJson.stderr);
  const rows = JSON.parse(asJson.stdout) as { id: string; status: string }[];
  assert.deepEqual(rows.map((r) => [r.id, r.status]), [['e-1', 'completed']]);
  const csv = wpipe(['export', '--db', db, '--format', 'csv']);
  assert.match(csv.stdout, /^id,name,/);
  assert.match(csv.stdout, /\r\ne-1,cli-test,/);
  const out = join(dir, 'stats.json');
  const toFile = wpipe(['export', '--db', db, '--format', 'json', '--data', 'statistics', '--out', out]);
  assert.equal(toFile.status, 0, toFile.stderr);
  assert.equal(toFile.stdout, '');
  assert.match(toFile.stderr, /wpipe: wrote .*stats\.json/);
  assert.equal((JSON.parse(readFileSync(out, 'utf8')) as { total_executions?: number }).total_executions, 1);
  const missing = wpipe(['export', '--db', join(dir, 'none.db')]);
  assert.equal(missing.status, 2);
});

test('validate: exit 0 for a valid file, 1 with every problem for an invalid one, 2 for a missing file', () => {
  const dir = folder({ 'bad.yaml': 'steps:\n  - { module: ./steps.mjs, export: helo }\n  - condition: { expression: "a ==", then: [{ export: big, module: ./steps.mjs }] }\n' });
  const ok = wpipe(['validate', join(dir, 'p.yaml')]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /p\.yaml: valid pipeline 'cli-test' \(6 steps and blocks\)/);
  const bad = wpipe(['validate', join(dir, 'bad.yaml')]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /bad\.yaml:2:36: steps\[0\]\.export: module '.\/steps.mjs' has no export 'helo' \(did you mean hello\?\).*\[WPIPE_ERR_PIPELINE_EXPORT\]/);
  assert.match(bad.stderr, /bad\.yaml:3:35: steps\[1\]\.condition\.expression: .*SyntaxError[\s\S]*\[WPIPE_ERR_EXPRESSION_SYNTAX\]/);
  assert.match(bad.stderr, /bad\.yaml: 2 problems\n$/);
  const asJson = json(wpipe(['validate', join(dir, 'bad.yaml'), '--json']).stdout) as { valid: boolean; errors: { code: string; line: number }[] };
  assert.deepEqual(asJson.errors.map((e) => [e.line, e.code]), [[2, 'WPIPE_ERR_PIPELINE_EXPORT'], [3, 'WPIPE_ERR_EXPRESSION_SYNTAX']]);
  assert.equal(wpipe(['validate', join(dir, 'none.yaml')]).status, 2);
});

test('--steps-dir and --allow-packages reach loadPipeline', () => {
  const dir = folder({ 'pkg.yaml': 'steps:\n  - { module: "node:fs", export: readFileSync }\n' });
  const refused = wpipe(['validate', join(dir, 'pkg.yaml')]);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /is a Node.js builtin.*\[WPIPE_ERR_PIPELINE_MODULE_REFUSED\]/);
  const allowed = wpipe(['validate', join(dir, 'pkg.yaml'), '--allow-packages']);
  assert.equal(allowed.status, 1);
  assert.match(allowed.stderr, /is a plain function, not a step.*\[WPIPE_ERR_PIPELINE_EXPORT\]/);
  const other = folder();
  const inOther = wpipe(['run', join(dir, 'p.yaml'), '--steps-dir', other]);
  assert.equal(inOther.status, 0, inOther.stderr);
  const escape = wpipe(['run', join(dir, 'p.yaml'), '--steps-dir', join(other, 'nope')]);
  assert.equal(escape.status, 2);
  assert.match(escape.stderr, /stepsDir .* does not exist/);
});

test('backends: what getBackendInfo says; --backend js forces the expression backend of a run', () => {
  const r = wpipe(['backends']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^requested: auto \(default\)\n {2}js +available +pure JavaScript/);
  const j = json(wpipe(['backends', '--json']).stdout) as { requested: string; backends: Record<string, { available: boolean }> };
  assert.equal(j.requested, 'auto');
  assert.equal(j.backends.js!.available, true);
  const forced = json(wpipe(['backends', '--json'], { env: { WPIPE_BACKEND: 'js' } }).stdout) as { requested: string };
  assert.equal(forced.requested, 'js');
  const dir = folder();
  const run = wpipe(['run', join(dir, 'p.yaml'), '--backend', 'js']);
  assert.equal(run.status, 0, run.stderr);
  // A forced backend that does not load is a usage error (2) before anything runs.
  const log = join(dir, 'log');
  const missing = wpipe(['run', join(dir, 'p.yaml'), '--backend', 'native'], { env: { WPIPE_NATIVE_PATH: join(dir, 'no-such-addon.node'), WPIPE_TEST_LOG: log } });
  assert.equal(missing.status, 2, missing.stderr);
  assert.match(missing.stderr, /the native backend was requested but could not be loaded[\s\S]*\[WPIPE_ERR_BACKEND_UNAVAILABLE\]/);
  assert.equal(existsSync(log), false, 'no step ran');
});

test('a run on a terminal (a pseudo-terminal through util-linux script) draws a progress bar on stderr', (t) => {
  if (spawnSync('script', ['--version'], { encoding: 'utf8' }).status !== 0) {
    t.skip('util-linux script is not installed: checked by hand (README)');
    return;
  }
  const dir = folder();
  const command = `${process.execPath} ${BIN} run ${join(dir, 'p.yaml')} 2>${join(dir, 'err.txt')}`;
  const r = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, WPIPE_DB: '' } });
  assert.equal(r.status, 0, r.stderr);
  const err = readFileSync(join(dir, 'err.txt'), 'utf8');
  // stderr is the terminal only when not redirected: run again with both on the pty.
  assert.doesNotMatch(err, /━/, 'stderr redirected to a file: no bar');
  const both = spawnSync('script', ['-qec', `${process.execPath} ${BIN} run ${join(dir, 'p.yaml')}`, '/dev/null'], {
    encoding: 'utf8', timeout: 60_000, env: { ...process.env, WPIPE_DB: '' },
  });
  assert.equal(both.status, 0);
  assert.match(both.stdout, /\rcli-test [━ ]+ +100% 4\/4 \d+:\d\d/, 'the bar, finished');
  assert.match(both.stdout, /"greeting": "hello world"/);
});

test('the command loads only what a subcommand uses: --help never loads the library, run without --db never opens SQLite', () => {
  // A loader hook (module.register, Node ≥ 20.6) that writes every resolved URL to a file.
  const dir = folder();
  const trace = join(dir, 'trace.txt');
  writeFileSync(join(dir, 'hooks.mjs'), `
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(${JSON.stringify(trace)}, r.url + '\\n');
  return r;
}`);
  // And every require() (better-sqlite3 and yaml are loaded through createRequire, which the ESM
  // hooks of Node 20 do not see).
  writeFileSync(join(dir, 'register.mjs'), `import Module, { register } from 'node:module';
import { appendFileSync } from 'node:fs';
register(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});
const load = Module._load;
Module._load = function (request, ...rest) {
  appendFileSync(${JSON.stringify(trace)}, 'require:' + request + '\\n');
  return load.call(this, request, ...rest);
};`);
  const traced = (args: string[]): string[] => {
    writeFileSync(trace, '');
    const r = spawnSync(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, BIN, ...args], {
      encoding: 'utf8', timeout: 60_000, env: { ...process.env, WPIPE_DB: '' },
    });
    assert.equal(r.status, 0, r.stderr);
    return readFileSync(trace, 'utf8').split('\n').filter(Boolean);
  };
  const help = traced(['--help']);
  assert.ok(help.some((u) => u.endsWith('/dist/wpipe-cli.js')), help.join('\n'));
  assert.ok(!help.some((u) => u.endsWith('/dist/wpipe.js')), 'the library is not loaded for --help');
  assert.ok(!help.some((u) => /^require:(yaml|better-sqlite3)/.test(u)), 'neither yaml nor SQLite for --help');
  const run = traced(['run', join(dir, 'p.yaml')]);
  assert.ok(run.some((u) => u.endsWith('/dist/wpipe.js')));
  assert.ok(run.some((u) => u.endsWith('/dist/yaml-bundle.cjs')), 'yaml from its one-file bundle');
  assert.ok(!run.some((u) => u === 'require:./compose/composer.js'), 'not from the package\'s own files');
  // (which the check would see: the bundle off, the package's files are required)
  writeFileSync(trace, '');
  const off = spawnSync(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, BIN, 'run', join(dir, 'p.yaml')], {
    encoding: 'utf8', timeout: 60_000, env: { ...process.env, WPIPE_DB: '', WPIPE_YAML_BUNDLE: '0' },
  });
  assert.equal(off.status, 0, off.stderr);
  assert.ok(readFileSync(trace, 'utf8').split('\n').includes('require:./compose/composer.js'));
  assert.ok(!run.some((u) => /better-sqlite3|\/dist\/(index|engine|storage)\/|node_modules\/yaml\//.test(u)), run.join('\n'));
  // The check can fail: with --db the same command does load SQLite.
  const tracked = traced(['run', join(dir, 'p.yaml'), '--db', join(dir, 'runs.db')]);
  assert.ok(tracked.some((u) => /^require:better-sqlite3$/.test(u)), tracked.join('\n'));
});

test('dashboard: serves the run history until SIGINT, printing its url', async (t) => {
  const lib = (await import(LIB)) as { startDashboard?: unknown };
  if (typeof lib.startDashboard !== 'function') {
    t.skip('the dashboard (src/dashboard) is not in this build yet');
    return;
  }
  const dir = folder();
  const db = join(dir, 'runs.db');
  assert.equal(wpipe(['run', join(dir, 'p.yaml'), '--db', db, '--run-id', 'd-1']).status, 0);
  const child = spawn(process.execPath, [BIN, 'dashboard', '--db', db, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no url: ${stderr}`)), 60_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /^(http:\/\/127\.0\.0\.1:\d+)\S*\n/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
  });
  const health = await fetch(`${url}/api/health`);
  assert.equal(health.status, 200);
  child.kill('SIGINT');
  assert.equal(await exited, 0, stderr);
  const missing = wpipe(['dashboard', '--db', join(dir, 'none.db')]);
  assert.equal(missing.status, 2);
});

test('installed as a dependency (the packed files, beside their dependencies): node_modules/.bin/wpipe runs a pipeline whose steps import wpipe', (t) => {
  const project = mkdtempSync(join(tmpdir(), 'wpipe-cli-installed-'));
  const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', project], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  if (pack.status !== 0) {
    t.skip(`npm pack failed here: ${pack.stderr.slice(0, 200)}`);
    return;
  }
  const [{ filename, files }] = JSON.parse(pack.stdout) as [{ filename: string; files: { path: string }[] }];
  const paths = new Set(files.map((f) => f.path));
  for (const f of ['bin/wpipe.js', 'dist/wpipe-cli.js', 'dist/wpipe.js', 'dist/wpipe.cjs', 'dist/wpipe-load.cjs', 'dist/wpipe.cache', 'dist/yaml-bundle.cjs', 'schema/pipeline.schema.json']) assert.ok(paths.has(f), `${f} is published`);
  const pkgDir = join(project, 'node_modules', 'wpipe');
  mkdirSync(pkgDir, { recursive: true });
  assert.equal(spawnSync('tar', ['xzf', join(project, filename), '-C', pkgDir, '--strip-components=1']).status, 0);
  // The dependencies, where npm would hoist them: beside the package.
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const dep of Object.keys(pkg.dependencies)) symlinkSync(join(root, 'node_modules', dep), join(project, 'node_modules', dep));
  mkdirSync(join(project, 'node_modules', '.bin'));
  symlinkSync('../wpipe/bin/wpipe.js', join(project, 'node_modules', '.bin', 'wpipe'));
  writeFileSync(join(project, 'steps.mjs'), "import { step } from 'wpipe';\nexport const hi = step({ name: 'hi' })(() => ({ hi: 'from an installed wpipe' }));\n");
  writeFileSync(join(project, 'p.yaml'), 'steps:\n  - { module: ./steps.mjs, export: hi }\n');
  const r = spawnSync(join(project, 'node_modules', '.bin', 'wpipe'), ['run', 'p.yaml'], { cwd: project, encoding: 'utf8', timeout: 60_000, env: { ...process.env, WPIPE_DB: '' } });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(json(r.stdout), { hi: 'from an installed wpipe' });
  const version = spawnSync(join(project, 'node_modules', '.bin', 'wpipe'), ['--version'], { cwd: project, encoding: 'utf8' });
  assert.equal(version.stdout.trim(), JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
});

test('in a checkout without dist/, the launcher runs the TypeScript source through tsx', () => {
  const checkout = mkdtempSync(join(tmpdir(), 'wpipe-cli-nodist-'));
  for (const entry of ['bin', 'src', 'package.json']) cpSync(join(root, entry), join(checkout, entry), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(checkout, 'node_modules'));
  const version = spawnSync(process.execPath, [join(checkout, 'bin', 'wpipe.js'), '--version'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(version.status, 0, version.stderr);
  assert.equal(version.stdout.trim(), (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version);
  const schema = spawnSync(process.execPath, [join(checkout, 'bin', 'wpipe.js'), 'schema'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(schema.status, 0, schema.stderr);
  assert.deepEqual(JSON.parse(schema.stdout), JSON.parse(readFileSync(join(root, 'schema', 'pipeline.schema.json'), 'utf8')));
});
