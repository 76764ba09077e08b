// memoryLimit: the cgroup paths against fake cgroup and /proc roots in a temporary directory (nothing
// under /sys/fs/cgroup is ever written), and the RLIMIT_DATA and watchdog paths in real child
// processes, each under a wall-clock timeout (a limited node must fail or die, never hang). No limit
// is ever applied to this test process: in-process calls are dry runs or stop at a fake cgroup.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { memoryLimit, type MemoryLimitOptions } from '../src/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'wpipe-memlimit-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
let seq = 0;

/** A fake /proc: self/cgroup, self/status (this process's real VmData), meminfo, and <pid>/stat. */
function fakeProc(cgroupLines: string, memTotalBytes = 8 * GiB): string {
  const p = join(tmp, `proc-${++seq}`);
  mkdirSync(join(p, 'self'), { recursive: true });
  writeFileSync(join(p, 'self', 'cgroup'), cgroupLines);
  writeFileSync(join(p, 'self', 'status'), readFileSync('/proc/self/status', 'utf8'));
  writeFileSync(join(p, 'meminfo'), `MemTotal:       ${memTotalBytes / 1024} kB\nMemFree:        1000 kB\n`);
  return p;
}

/** Writes files under `base` from a { 'a/b/file': 'content' } map. */
function lay(base: string, files: Record<string, string>): string {
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(base, rel, '..'), { recursive: true });
    writeFileSync(join(base, rel), content);
  }
  return base;
}

function fakeV2(leaf: string, files: Record<string, string> = {}): string {
  return lay(join(tmp, `cg2-${++seq}`), {
    'cgroup.controllers': 'cpu memory pids\n',
    [`${leaf}/memory.max`]: 'max\n',
    [`${leaf}/memory.high`]: 'max\n',
    [`${leaf}/cgroup.procs`]: `${process.pid}\n`,
    ...files,
  });
}

function fakeV1(leaf: string, files: Record<string, string> = {}): string {
  return lay(join(tmp, `cg1-${++seq}`), {
    [`memory/${leaf}/memory.limit_in_bytes`]: '9223372036854771712\n',
    [`memory/${leaf}/memory.stat`]: 'cache 0\nrss 0\nhierarchical_memory_limit 9223372036854771712\n',
    [`memory/${leaf}/cgroup.procs`]: `${process.pid}\n`,
    ...files,
  });
}

/** Only the cgroup mechanisms: this process must never get an rlimit or a watchdog from a test. */
const CGROUPS_ONLY: MemoryLimitOptions['mechanisms'] = ['cgroup2', 'cgroup1'];

test('options: exactly one of maxMb and percentage, a fraction, known names, one message style', async () => {
  const cases: Array<[unknown, RegExp, string]> = [
    [undefined, /give \{ maxMb \} or \{ percentage \}/, 'TypeError'],
    [{}, /exactly one of maxMb and percentage, got neither/, 'TypeError'],
    [{ maxMb: 512, percentage: 0.5 }, /exactly one of maxMb and percentage, got both/, 'TypeError'],
    [{ percentage: 80 }, /percentage is a fraction .*0\.8 is 80 %.*got 80/, 'RangeError'],
    [{ maxMb: -1 }, /maxMb must be a finite number > 0, got -1/, 'RangeError'],
    [{ maxMb: '512' }, /maxMb must be a number, got string/, 'TypeError'],
    [{ maxMB: 512 }, /unknown option 'maxMB' \(did you mean maxMb\?\)/, 'TypeError'],
    [{ maxMb: 512, dryRun: 'yes' }, /dryRun must be a boolean/, 'TypeError'],
    [{ maxMb: 512, mechanisms: ['cgroup3'] }, /unknown mechanism "cgroup3"/, 'RangeError'],
    [{ maxMb: 512, mechanisms: [] }, /mechanisms must be a non-empty array/, 'TypeError'],
  ];
  for (const [options, message, name] of cases) {
    await assert.rejects(memoryLimit(options as MemoryLimitOptions), (e: Error & { code?: string }) => {
      assert.equal(e.name, name, String(message));
      assert.equal(e.code, 'WPIPE_ERR_INVALID_OPTION');
      assert.match(e.message, message);
      return true;
    });
  }
});

test('a cap below the safe minimum (data segment or RSS now + 64 MiB) is refused before anything is touched', async () => {
  const cg = fakeV2('job');
  const proc = fakeProc('0::/job\n');
  await assert.rejects(memoryLimit({ maxMb: 60, cgroupRoot: cg, procRoot: proc }), (e: Error & { code?: string }) => {
    assert.equal(e.name, 'RangeError');
    assert.match(e.message, /a cap of 60\.0 MiB is below the safe minimum of \d+ MiB here .*at 40 MiB or less it hangs/);
    return true;
  });
  assert.equal(readFileSync(join(cg, 'job', 'memory.max'), 'utf8'), 'max\n');
});

test('cgroup v2: memory.max and memory.high (90 %) of the process\'s own cgroup; percentage of the effective limit', async () => {
  const cg = fakeV2('user.slice/job', { 'user.slice/memory.max': `${4 * GiB}\n` });
  const proc = fakeProc('0::/user.slice/job\n', 8 * GiB);
  const r = await memoryLimit({ percentage: 0.5, cgroupRoot: cg, procRoot: proc, mechanisms: CGROUPS_ONLY });
  assert.equal(r.mechanism, 'cgroup2');
  assert.equal(r.effectiveLimitBytes, 4 * GiB, 'the parent cgroup limit is lower than physical memory');
  assert.equal(r.limitBytes, 2 * GiB);
  assert.equal(r.dryRun, false);
  assert.deepEqual(r.reasons, {});
  assert.equal(r.target, join(cg, 'user.slice/job/memory.max'));
  assert.equal(readFileSync(join(cg, 'user.slice/job/memory.max'), 'utf8'), `${2 * GiB}\n`);
  assert.equal(readFileSync(join(cg, 'user.slice/job/memory.high'), 'utf8'), `${Math.floor((2 * GiB * 0.9) / 4096) * 4096}\n`);
  // maxMb, rounded down to a page; physical memory is the effective limit when no cgroup limit is lower.
  const cg2 = fakeV2('job');
  const r2 = await memoryLimit({ maxMb: 300.001, cgroupRoot: cg2, procRoot: fakeProc('0::/job\n', 16 * GiB), mechanisms: CGROUPS_ONLY });
  assert.equal(r2.limitBytes, 300 * MiB);
  assert.equal(r2.effectiveLimitBytes, 16 * GiB);
});

test('dryRun says what would apply and writes nothing', async () => {
  const cg = fakeV2('job');
  const r = await memoryLimit({ maxMb: 512, dryRun: true, cgroupRoot: cg, procRoot: fakeProc('0::/job\n') });
  assert.equal(r.mechanism, 'cgroup2');
  assert.equal(r.dryRun, true);
  assert.equal(readFileSync(join(cg, 'job', 'memory.max'), 'utf8'), 'max\n');
  assert.equal(readFileSync(join(cg, 'job', 'memory.high'), 'utf8'), 'max\n');
});

test('cgroup v1: memory.limit_in_bytes; the hierarchical limit counts in the effective limit', async () => {
  const cg = fakeV1('jobs/7', { 'memory/jobs/7/memory.stat': `rss 1\nhierarchical_memory_limit ${3 * GiB}\n` });
  const proc = fakeProc('4:memory:/jobs/7\n3:cpu:/\n');
  const r = await memoryLimit({ percentage: 0.25, cgroupRoot: cg, procRoot: proc, mechanisms: CGROUPS_ONLY });
  assert.equal(r.mechanism, 'cgroup1');
  assert.equal(r.effectiveLimitBytes, 3 * GiB);
  assert.equal(r.limitBytes, 0.75 * GiB);
  assert.match(r.reasons.cgroup2!, /no 0:: line/);
  assert.equal(readFileSync(join(cg, 'memory/jobs/7/memory.limit_in_bytes'), 'utf8'), `${0.75 * GiB}\n`);
});

test('hybrid layout: cgroup v2 at unified/ without the memory controller, cgroup v1 memory applies', async () => {
  const cg = fakeV1('job', { 'unified/cgroup.controllers': 'pids\n', 'unified/job/cgroup.procs': `${process.pid}\n` });
  const r = await memoryLimit({ maxMb: 512, cgroupRoot: cg, procRoot: fakeProc('4:memory:/job\n0::/job\n'), mechanisms: CGROUPS_ONLY });
  assert.equal(r.mechanism, 'cgroup1');
  assert.match(r.reasons.cgroup2!, /has no memory\.max .*memory controller is not enabled/);
});

test('a cgroup shared with other processes is never capped for them', async () => {
  const cg = fakeV2('session', { 'session/cgroup.procs': `1\n${process.pid}\n` });
  const v1 = fakeV1('session', { 'memory/session/cgroup.procs': `${process.pid}\n999999\n` });
  // Both hierarchies in one fake root.
  lay(cg, { 'memory/session/memory.limit_in_bytes': readFileSync(join(v1, 'memory/session/memory.limit_in_bytes'), 'utf8'), 'memory/session/cgroup.procs': `${process.pid}\n999999\n` });
  await assert.rejects(
    memoryLimit({ maxMb: 512, cgroupRoot: cg, procRoot: fakeProc('4:memory:/session\n0::/session\n'), mechanisms: CGROUPS_ONLY }),
    (e: Error & { code?: string; details?: { reasons?: Record<string, string> } }) => {
      assert.equal(e.code, 'WPIPE_ERR_MEMORY_LIMIT_UNAVAILABLE');
      assert.match(e.details!.reasons!.cgroup2!, /also holds 1 other process \(e\.g\. pid 1\).*capping it would cap them too/);
      assert.match(e.details!.reasons!.cgroup1!, /also holds 1 other process \(e\.g\. pid 999999\)/);
      assert.match(e.message, /none of the mechanisms asked for \(cgroup2, cgroup1\)/);
      return true;
    },
  );
  assert.equal(readFileSync(join(cg, 'session', 'memory.max'), 'utf8'), 'max\n');
});

test('a child process of this one in the cgroup is fine (descendants are ours)', async () => {
  const child = 4_000_000; // a pid that cannot exist: its fake stat says its parent is this process
  const cg = fakeV2('job', { 'job/cgroup.procs': `${process.pid}\n${child}\n` });
  const proc = fakeProc('0::/job\n');
  lay(proc, { [`${child}/stat`]: `${child} (node worker) S ${process.pid} ${child} 0 0\n` });
  const r = await memoryLimit({ maxMb: 512, cgroupRoot: cg, procRoot: proc, mechanisms: CGROUPS_ONLY });
  assert.equal(r.mechanism, 'cgroup2');
});

test('a cgroup file that rejects the write: the next mechanism applies and memory.high is restored', async () => {
  const cg = fakeV2('job');
  rmSync(join(cg, 'job', 'memory.max'));
  mkdirSync(join(cg, 'job', 'memory.max')); // writing it fails with EISDIR, as a read-only cgroupfs file would fail
  lay(cg, { 'memory/job/memory.limit_in_bytes': 'max\n', 'memory/job/cgroup.procs': `${process.pid}\n` });
  const r = await memoryLimit({ maxMb: 512, cgroupRoot: cg, procRoot: fakeProc('4:memory:/job\n0::/job\n'), mechanisms: CGROUPS_ONLY });
  assert.equal(r.mechanism, 'cgroup1');
  assert.match(r.reasons.cgroup2!, /writing .*job\/memory\.max failed: EISDIR/);
  assert.equal(readFileSync(join(cg, 'job', 'memory.high'), 'utf8'), 'max\n', 'memory.high put back');
  assert.equal(readFileSync(join(cg, 'memory/job/memory.limit_in_bytes'), 'utf8'), `${512 * MiB}\n`);
});

test('the root v1 memory cgroup belongs to the machine', async () => {
  const cg = fakeV1('', { 'memory/memory.limit_in_bytes': 'max\n', 'memory/cgroup.procs': `${process.pid}\n` });
  await assert.rejects(memoryLimit({ maxMb: 512, cgroupRoot: cg, procRoot: fakeProc('4:memory:/\n'), mechanisms: ['cgroup1'] }),
    (e: Error & { details?: { reasons?: Record<string, string> } }) => /root memory cgroup, which belongs to the machine/.test(e.details!.reasons!.cgroup1!));
});

test('an unreadable /proc file: the cgroup mechanisms say why, and the rest still works (dry run)', async () => {
  const proc = fakeProc('');
  rmSync(join(proc, 'self', 'cgroup'));
  mkdirSync(join(proc, 'self', 'cgroup')); // reading it fails with EISDIR
  rmSync(join(proc, 'meminfo'));
  const cg = fakeV2('job');
  const r = await memoryLimit({ maxMb: 512, dryRun: true, cgroupRoot: cg, procRoot: proc, backend: 'native' });
  assert.equal(r.mechanism, 'rlimit');
  assert.match(r.reasons.cgroup2!, /cannot read .*self\/cgroup: EISDIR/);
  assert.match(r.reasons.cgroup1!, /cannot read .*self\/cgroup: EISDIR/);
  assert.equal(r.effectiveLimitBytes, totalmem(), 'no meminfo: os.totalmem()');
  // A cgroup path cannot climb out of the mount.
  const r2 = await memoryLimit({ maxMb: 512, dryRun: true, cgroupRoot: cg, procRoot: fakeProc('0::/../../job\n'), mechanisms: CGROUPS_ONLY });
  assert.equal(r2.target, join(cg, 'job', 'memory.max'));
});

test('WPIPE_CGROUP_ROOT points the code at a cgroup root when the option is not given', async () => {
  const cg = fakeV2('job');
  const saved = process.env.WPIPE_CGROUP_ROOT;
  process.env.WPIPE_CGROUP_ROOT = cg;
  try {
    const r = await memoryLimit({ maxMb: 512, dryRun: true, procRoot: fakeProc('0::/job\n') });
    assert.equal(r.target, join(cg, 'job', 'memory.max'));
  } finally {
    if (saved === undefined) delete process.env.WPIPE_CGROUP_ROOT;
    else process.env.WPIPE_CGROUP_ROOT = saved;
  }
});

test('on this machine (dry run, real /proc and /sys/fs/cgroup read only): a mechanism and the reasons before it', async () => {
  const r = await memoryLimit({ maxMb: 1024, dryRun: true });
  assert.equal(r.dryRun, true);
  const order = ['cgroup2', 'cgroup1', 'rlimit', 'watchdog'];
  assert.ok(order.includes(r.mechanism));
  for (const m of order.slice(0, order.indexOf(r.mechanism))) assert.ok(typeof r.reasons[m as 'cgroup2'] === 'string', m);
  assert.ok(r.effectiveLimitBytes > 0 && r.effectiveLimitBytes <= totalmem());
});

// ---------------------------------------------------------------------------------------------
// Real limits, in child processes only.

const emptyCgroupRoot = join(tmp, 'no-cgroups');
mkdirSync(emptyCgroupRoot);

interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  lines: Array<Record<string, unknown>>;
  stderr: string;
  ms: number;
}

/** Runs `body` in a fresh node (tsx, src/) with no cgroup to find, under a wall-clock timeout. */
function child(body: string, env: Record<string, string> = {}, timeoutMs = 60_000): ChildResult {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `
    const w = await import(${JSON.stringify(`${root}src/index.ts`)});
    const native = await import(${JSON.stringify(`${root}src/backend/addon.ts`)});
    const out = (o) => console.log(JSON.stringify(o));
    ${body}
  `], { cwd: root, encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...process.env, WPIPE_BACKEND: '', WPIPE_CGROUP_ROOT: emptyCgroupRoot, ...env } });
  const ms = Date.now() - t0;
  assert.ok(!(r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT'), `the child hung for ${ms} ms: ${r.stderr.slice(0, 500)}`);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  return { status: r.status, signal: r.signal, lines, stderr: r.stderr, ms };
}

test('RLIMIT_DATA (child): soft limit only; a Buffer over it is a catchable RangeError; the limit can be raised again', () => {
  const r = child(`
    const res = await w.memoryLimit({ maxMb: 320 });
    const rl = native.loadNativeRlimits();
    out({ mechanism: res.mechanism, limit: res.limitBytes, reasons: res.reasons, after: rl.get('data') });
    try { Buffer.alloc(400 * 1024 * 1024, 1); out({ allocated: true }); } catch (e) { out({ caught: e.name, message: e.message }); }
    out({ small: Buffer.alloc(10 * 1024 * 1024, 1).length });
    try { new WebAssembly.Memory({ initial: 1, maximum: 65536 }).grow(8000); out({ grew: true }); } catch (e) { out({ wasm: e.name }); }
    const { hard } = rl.get('data');
    rl.set('data', hard, hard);
    out({ raised: rl.get('data'), big: Buffer.alloc(400 * 1024 * 1024, 1).length });
  `);
  assert.equal(r.status, 0, r.stderr);
  const [applied, alloc, small, wasm, raised] = r.lines;
  assert.equal(applied!.mechanism, 'rlimit');
  assert.equal(applied!.limit, 320 * MiB);
  assert.match((applied!.reasons as Record<string, string>).cgroup2!, /no cgroup v2 hierarchy/);
  assert.deepEqual(applied!.after, { soft: 320 * MiB, hard: null }, 'soft lowered, hard kept (Infinity → null in JSON)');
  assert.deepEqual(alloc, { caught: 'RangeError', message: 'Array buffer allocation failed' });
  assert.deepEqual(small, { small: 10 * MiB });
  assert.deepEqual(wasm, { wasm: 'RangeError' });
  assert.deepEqual(raised, { raised: { soft: null, hard: null }, big: 400 * MiB });
});

test('RLIMIT_DATA (child): JS heap growth over the cap kills the process (SIGABRT), it never hangs', () => {
  const r = child(`
    const res = await w.memoryLimit({ maxMb: 320 });
    out({ mechanism: res.mechanism });
    const keep = []; for (;;) keep.push(new Array(1e5).fill(Math.random()));
  `);
  assert.equal(r.lines[0]!.mechanism, 'rlimit');
  assert.ok(r.signal === 'SIGABRT' || r.status === 134, `status ${r.status} signal ${r.signal}`);
  assert.match(r.stderr, /heap out of memory|bad_alloc|Allocation failed/);
  assert.ok(r.ms < 60_000);
});

test('RLIMIT_DATA (child): a cap under the safe minimum is refused and the limit stays as it was', () => {
  const r = child(`
    try { await w.memoryLimit({ maxMb: 40 }); out({ applied: true }); } catch (e) { out({ name: e.name, message: e.message }); }
    out({ after: native.loadNativeRlimits().get('data') });
  `);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.lines[0]!.name, 'RangeError');
  assert.match(String(r.lines[0]!.message), /below the safe minimum/);
  assert.deepEqual(r.lines[1], { after: { soft: null, hard: null } });
});

for (const backend of ['native', 'js'] as const) {
  test(`watchdog (child, ${backend} sampler): RSS over the cap fails every pipeline's run in progress with WPIPE_ERR_MEMORY_LIMIT (no guard to attach)`, () => {
    const r = child(`
      const rss = process.memoryUsage.rss();
      const cap = Math.ceil(rss / 1048576) + 150;
      const res = await w.memoryLimit({ maxMb: cap, mechanisms: ['watchdog'], backend: '${backend}' });
      out({ mechanism: res.mechanism, target: res.target, reasons: res.reasons });
      const signal = w.memoryLimitSignal();
      const heard = [];
      w.onMemoryLimitExceeded((e) => heard.push(e.code));
      let held;
      const pipe = new w.PipelineAsync({ pipelineName: 'grow' });
      pipe.setSteps([
        w.step({ name: 'grow' })(async () => { held = Buffer.alloc(300 * 1024 * 1024, 1); await new Promise((r) => setTimeout(r, 400)); }),
        w.step({ name: 'after' })(() => ({ reached: true })),
      ]);
      try { await pipe.run({}); out({ completed: true }); }
      catch (e) { out({ code: e.code, errorCode: e.errorCode, message: e.message, signal: signal.aborted, reason: signal.reason?.code, heard }); }
      held = undefined;
      // A run that starts after the firing is not failed for it.
      const later = await pipe.run({});
      out({ later: later.reached === true, fresh: w.memoryLimitSignal().aborted });
    `);
    assert.equal(r.status, 0, r.stderr);
    const [applied, failed, later] = r.lines;
    assert.equal(applied!.mechanism, 'watchdog');
    assert.match(String(applied!.target), backend === 'native' ? /sampler thread/ : /worker thread/);
    assert.equal(failed!.code, 'WPIPE_ERR_MEMORY_LIMIT', JSON.stringify(failed));
    assert.equal(failed!.errorCode, 502);
    assert.match(String(failed!.message), /exceeded the memory limit of \d+\.\d MiB \(memoryLimit watchdog/);
    assert.equal(failed!.signal, true);
    assert.equal(failed!.reason, 'WPIPE_ERR_MEMORY_LIMIT');
    assert.deepEqual(failed!.heard, ['WPIPE_ERR_MEMORY_LIMIT']);
    assert.deepEqual(later, { later: true, fresh: false });
  });
}

test('an armed watchdog never keeps a process alive (child, both samplers)', () => {
  for (const backend of ['native', 'js']) {
    const r = child(`
      await w.memoryLimit({ maxMb: 100000, mechanisms: ['watchdog'], backend: '${backend}' });
      setTimeout(() => out({ done: true }), 100);
    `, {}, 30_000);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.lines, [{ done: true }]);
  }
});
