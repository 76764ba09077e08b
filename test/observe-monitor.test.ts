// ResourceMonitor's API (options, summary, `using`, dbPath) and the samplers' sharing: one native
// thread per process however many monitors and threads use it, released by a worker that dies.
// The per-backend counter-test (a blocked loop) is test/backend-monitor.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { ResourceMonitor } from '../src/index.js';
import { loadNativeSampler } from '../src/backend/addon.js';
import { workerSampler, IDLE_MS } from '../src/backend/js-sampler.js';

const dir = mkdtempSync(join(tmpdir(), 'wpipe-monitor-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('options are validated with one message style', () => {
  const cases: Array<[() => unknown, RegExp, string]> = [
    [() => new (ResourceMonitor as unknown as new () => unknown)(), /taskName must be a non-empty string/, 'TypeError'],
    [() => new ResourceMonitor(''), /taskName must be a non-empty string, got ''/, 'TypeError'],
    [() => new ResourceMonitor('t', { intervalMs: 0 }), /intervalMs must be >= 1, got 0/, 'RangeError'],
    [() => new ResourceMonitor('t', { intervalMs: '10' as unknown as number }), /intervalMs must be a number, got string/, 'TypeError'],
    [() => new ResourceMonitor('t', { interval: 10 } as never), /unknown option 'interval' \(did you mean intervalMs\?\)/, 'TypeError'],
    [() => new ResourceMonitor('t', { dbPath: '' }), /dbPath must be a non-empty string/, 'TypeError'],
    [() => new ResourceMonitor('t', { backend: 'gpu' as never }), /backend must be one of auto, js, wasm, native; got "gpu"/, 'RangeError'],
    [() => new ResourceMonitor('t').getSummary(), /was never started \(call start\(\) first\)/, 'TypeError'],
    [() => new ResourceMonitor('t').stop(), /was never started/, 'TypeError'],
  ];
  for (const [fn, message, name] of cases) {
    assert.throws(fn, (e: Error & { code?: string }) => {
      assert.equal(e.name, name, String(message));
      assert.equal(e.code, 'WPIPE_ERR_INVALID_OPTION');
      assert.match(e.message, message);
      return true;
    });
  }
});

test('the summary has exactly the contract fields; stop() is idempotent; start() while running is a no-op', async () => {
  const mon = new ResourceMonitor('fields', { intervalMs: 5 });
  assert.equal(mon.isRunning, false);
  assert.equal(mon.elapsedSeconds, 0);
  assert.equal(mon.start(), mon);
  assert.equal(mon.start(), mon);
  await sleep(60);
  // The worker sampler (js and wasm backends) takes its first sample only once its thread has
  // started (~100 ms here, more on a loaded machine): wait for a few, within a bound.
  for (let i = 0; i < 150 && mon.getSummary().samples < 3; i++) await sleep(20);
  const live = mon.getSummary();
  assert.equal(live.endTime, null);
  assert.ok(mon.isRunning);
  const s = mon.stop();
  assert.deepEqual(Object.keys(s).sort(), [
    'avgCpuPercent', 'backend', 'elapsedSeconds', 'endRamMb', 'endTime', 'peakCpuPercent', 'peakRamMb', 'ramIncreaseMb',
    'samples', 'startRamMb', 'startTime', 'taskName',
  ]);
  assert.equal(s.taskName, 'fields');
  assert.ok(s.elapsedSeconds >= 0.05 && s.elapsedSeconds < 5, String(s.elapsedSeconds));
  assert.ok(s.samples >= 3, `samples ${s.samples}`);
  assert.ok(s.peakRamMb >= s.startRamMb && s.peakRamMb >= s.endRamMb);
  assert.equal(s.ramIncreaseMb, Math.round((s.endRamMb - s.startRamMb) * 100) / 100);
  assert.ok(!Number.isNaN(Date.parse(s.startTime)) && !Number.isNaN(Date.parse(s.endTime!)));
  assert.deepEqual(mon.stop(), s);
  assert.deepEqual(mon.getSummary(), s);
  assert.equal(mon.isRunning, false);
  // A stopped monitor starts a new window.
  mon.start();
  const again = mon.stop();
  assert.ok(Date.parse(again.startTime) >= Date.parse(s.endTime!));
});

test('`using` stops the monitor at the end of the scope', () => {
  let mon: ResourceMonitor;
  {
    using m = new ResourceMonitor('scoped', { intervalMs: 10 }).start();
    mon = m;
    assert.ok(m.isRunning);
  }
  assert.equal(mon.isRunning, false);
  assert.notEqual(mon.getSummary().endTime, null);
});

test('dbPath: stop() writes the summary as a row of resourcemetricsmodel', () => {
  const db = join(dir, 'metrics.db');
  const a = new ResourceMonitor('first', { dbPath: db, intervalMs: 10 }).start().stop();
  const b = new ResourceMonitor('second', { dbPath: db, intervalMs: 10 }).start().stop();
  const conn = new Database(db, { readonly: true });
  const rows = conn.prepare('SELECT * FROM resourcemetricsmodel ORDER BY id').all() as Array<Record<string, unknown>>;
  conn.close();
  assert.equal(rows.length, 2);
  assert.equal(rows[0]!.task_name, 'first');
  assert.equal(rows[0]!.peak_ram_mb, a.peakRamMb);
  assert.equal(rows[0]!.avg_cpu_percent, a.avgCpuPercent);
  assert.equal(rows[0]!.elapsed_seconds, a.elapsedSeconds);
  assert.equal(rows[0]!.samples, a.samples);
  assert.equal(rows[0]!.backend, a.backend);
  assert.equal(rows[1]!.task_name, 'second');
  assert.equal(rows[1]!.end_time, b.endTime);
});

test('dbPath that cannot be opened: stop() throws WPIPE_ERR_STORAGE after stopping', () => {
  const notAFile = join(dir, 'a-directory');
  mkdirSync(notAFile);
  const mon = new ResourceMonitor('bad-db', { dbPath: notAFile }).start();
  assert.throws(() => mon.stop(), (e: Error & { code?: string }) => e.code === 'WPIPE_ERR_STORAGE' && /a-directory/.test(e.message));
  assert.equal(mon.isRunning, false);
});

test('native: one sampler thread for every monitor, at the smallest interval asked for, stopped with its last user', async () => {
  const s = loadNativeSampler();
  const before = s.info();
  assert.equal(before.slots, 0, 'no monitor left over from another test');
  const slow = new ResourceMonitor('slow', { intervalMs: 100, backend: 'native' }).start();
  const fast = new ResourceMonitor('fast', { intervalMs: 10, backend: 'native' });
  try {
    assert.equal(s.info().intervalMs, 100);
    fast.start();
    let i = s.info();
    assert.equal(i.running, true);
    assert.equal(i.slots, 2);
    assert.equal(i.intervalMs, 10);
    // The thread's own CPU time is non-zero once it has been scheduled at all; on a loaded host that
    // can take a moment after start(), so wait for it (bounded) rather than assume it.
    for (let k = 0; k < 200 && !(s.info().threadCpuSeconds! > 0); k++) await new Promise((r) => setTimeout(r, 10));
    fast.stop();
    i = s.info();
    assert.ok(i.threadCpuSeconds! > 0, 'the thread reports its own CPU time (bench/host.ts)');
    assert.equal(i.slots, 1);
    assert.equal(i.intervalMs, 100);
    slow.stop();
    i = s.info();
    assert.equal(i.slots, 0);
    assert.equal(i.running, false);
  } finally {
    if (fast.isRunning) fast.stop();
    if (slow.isRunning) slow.stop();
  }
});

test('native: monitors in worker threads share the process thread; a worker that dies releases its slots', async () => {
  const s = loadNativeSampler();
  // tsx's loader is registered inside the worker (an --import in execArgv is not applied to eval code).
  const code = `
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register();
      return import(${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)}); }).then(({ ResourceMonitor }) => {
      const a = new ResourceMonitor('in-worker-a', { intervalMs: 10, backend: 'native' }).start();
      const b = new ResourceMonitor('in-worker-b', { intervalMs: 10, backend: 'native' }).start();
      parentPort.postMessage('started');
      setInterval(() => {}, 1000); // stays alive until terminated, monitors never stopped
    }).catch((e) => parentPort.postMessage(String(e)));`;
  const main = new ResourceMonitor('main', { intervalMs: 50, backend: 'native' }).start();
  const w = new Worker(code, { eval: true });
  try {
    await new Promise<void>((resolve, reject) => {
      w.once('message', (m) => (m === 'started' ? resolve() : reject(new Error(String(m)))));
      w.once('error', reject);
    });
    let i = s.info();
    assert.equal(i.slots, 3, 'one thread serves the main thread and the worker');
    assert.equal(i.intervalMs, 10);
    await w.terminate();
    i = s.info();
    assert.equal(i.slots, 1, "the worker's environment cleanup released its two slots");
    assert.equal(i.intervalMs, 50);
    assert.ok(main.stop().samples > 0);
  } finally {
    await w.terminate(); // a failed assertion must not leave a worker keeping this file alive
    if (main.isRunning) main.stop();
  }
  assert.equal(s.info().running, false);
});

test('js: the worker sampler idles without users and retires after IDLE_MS', async () => {
  const s = workerSampler();
  const mon = new ResourceMonitor('js-worker', { intervalMs: 10, backend: 'js' }).start();
  // The worker boots first (about 100 ms, more on a loaded machine): wait for its samples.
  for (let i = 0; i < 500 && mon.getSummary().samples < 3; i++) await sleep(10);
  assert.equal(s.info().running, true);
  const summary = mon.stop();
  assert.equal(summary.backend, 'js');
  assert.ok(summary.samples >= 3, `samples ${summary.samples}`);
  assert.equal(s.info().running, false);
  assert.equal(s.info().slots, 0);
  // A monitor started within IDLE_MS reuses the worker: samples at once, no boot.
  const again = new ResourceMonitor('js-again', { intervalMs: 10, backend: 'js' }).start();
  await sleep(80);
  assert.ok(again.stop().samples >= 2, 'no boot: samples within 80 ms at 10 ms');
  await sleep(IDLE_MS + 200);
  assert.equal(s.info().running, false);
});

test('a process with monitors still running exits on its own (the samplers never hold it)', () => {
  for (const backend of ['native', 'js']) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `
      const w = await import(${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)});
      new w.ResourceMonitor('left-running', { intervalMs: 10, backend: '${backend}' }).start();
      setTimeout(() => console.log('done'), 100);
    `], { encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
    assert.equal(r.error, undefined, `${backend}: the process did not exit (${r.stderr.slice(0, 300)})`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'done');
  }
});
