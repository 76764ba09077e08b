// `wpipe dashboard` as a child process (bin/wpipe.js, which lazily imports startDashboard): it serves
// a history made by real runs on a free port, honours --token, refuses a non-loopback --host without
// one (saying how to fix it), and stops on SIGTERM with exit code 0.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeHistory } from './fixtures/dashboard/history.js';
import { tempDir } from './fixtures/storage/tmp.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(root, 'bin', 'wpipe.js');
const t = tempDir('wpipe-dashboard-cli-');
const file = t.file('history.db');
const hasCli = fs.existsSync(BIN) && fs.existsSync(path.join(root, 'src', 'cli.ts'));
const skip = hasCli ? false : 'the wpipe command (bin/wpipe.js, src/cli.ts) is not in this checkout';

before(async () => {
  if (!skip) await makeHistory(file);
});
after(() => t.cleanup());

interface Started { child: ChildProcess; url: string; exited: Promise<number | null>; stderr: () => string }

/** Starts `wpipe dashboard …` and resolves once it printed its url. */
function startCli(args: string[]): Promise<Started> {
  const child = spawn(process.execPath, [BIN, 'dashboard', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WPIPE_DASHBOARD_TOKEN: '', WPIPE_DB: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`no url within 60 s; stderr: ${stderr}`)); }, 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /(http:\/\/127\.0\.0\.1:\d+)\n/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, exited, stderr: () => stderr });
      }
    });
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`exited ${String(code)} before serving: ${stderr}`)); });
  });
}

test('wpipe dashboard --port 0 serves the API and stops on SIGTERM', { skip, timeout: 120_000 }, async () => {
  const s = await startCli(['--db', file, '--port', '0']);
  try {
    const health = await fetch(`${s.url}/api/health`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { status: string }).status, 'healthy');
    const list = (await (await fetch(`${s.url}/api/pipelines`)).json()) as { runs: { runId: string }[] };
    assert.ok(list.runs.some((r) => r.runId === 'd-1'), 'the runs made by real pipelines');
    const page = await fetch(`${s.url}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<script type="module" src="\/app.js">/, 'the page, from the package');
  } finally {
    s.child.kill('SIGTERM');
  }
  assert.equal(await s.exited, 0, s.stderr());
});

test('wpipe dashboard --token: the API needs it', { skip, timeout: 120_000 }, async () => {
  const s = await startCli(['--db', file, '--port', '0', '--token', 'cli-secret']);
  try {
    assert.equal((await fetch(`${s.url}/api/stats`)).status, 401);
    assert.equal((await fetch(`${s.url}/api/stats`, { headers: { Authorization: 'Bearer cli-secret' } })).status, 200);
  } finally {
    s.child.kill('SIGTERM');
  }
  assert.equal(await s.exited, 0, s.stderr());
});

test('wpipe dashboard --host 0.0.0.0 without a token refuses to start and says how to fix it', { skip, timeout: 120_000 }, async () => {
  const child = spawn(process.execPath, [BIN, 'dashboard', '--db', file, '--host', '0.0.0.0', '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WPIPE_DASHBOARD_TOKEN: '', WPIPE_DB: '' },
  });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  assert.notEqual(code, 0);
  assert.equal(stdout, '', 'no url printed: nothing listens');
  assert.match(stderr, /WPIPE_ERR_DASHBOARD_TOKEN_REQUIRED|Pass a token/);
  assert.match(stderr, /--token/);
});
