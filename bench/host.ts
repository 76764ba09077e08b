/**
 * Host benchmarks: what the resource samplers cost and what they see, each case in a fresh process.
 *
 * Samplers compared in the same run: the addon's C++ thread ('native', what ResourceMonitor uses
 * with the addon), the worker thread over a SharedArrayBuffer ('worker', the js/wasm substitute),
 * and a setInterval timer on the main thread ('timer', the substitute not taken: written here only
 * to show why), against no sampler at all ('none').
 *
 * - overhead: CPU of the whole process while an idle event loop is sampled every 10 ms for a few
 *   seconds, minus the same process without a sampler; ns/op is CPU ns per sample, the note gives %
 *   of one core (target < 1 %);
 * - RSS: what starting the sampler adds to the process's RSS (after a GC; the note), ns/op is the
 *   time from start() to the first sample;
 * - blocked loop: samples taken during a 500 ms synchronous loop started right after start() (the
 *   case ResourceMonitor exists for), ns/op the median gap between them.
 *
 * `node --import tsx bench/host.ts [--json] [--quick]`
 */
import { spawnSync } from 'node:child_process';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { fileURLToPath } from 'node:url';
import { loadNativeSampler } from '../src/backend/addon.js';
import { workerSampler } from '../src/backend/js-sampler.js';
import type { HostSampler } from '../src/backend/types.js';
import { quick, report, withRatio, type Row } from './lib.js';

type Kind = 'none' | 'native' | 'worker' | 'timer';
type Mode = 'overhead' | 'rss' | 'blocked';

const INTERVAL_MS = 10;
const OVERHEAD_S = quick ? 1.5 : 4;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The substitute not taken: a timer on the main thread, reading RSS and CPU every interval. */
function timerSampler(): { start(): void; stop(): void; times: number[] } {
  const times: number[] = [];
  let t: NodeJS.Timeout | undefined;
  return {
    times,
    start() {
      t = setInterval(() => {
        process.memoryUsage.rss();
        process.cpuUsage();
        times.push(performance.timeOrigin + performance.now());
      }, INTERVAL_MS);
    },
    stop() {
      clearInterval(t);
    },
  };
}

interface Probe {
  /** Starts sampling; returns a function giving the sample times (ms, epoch-based for worker/timer, monotonic for native) and a clock. */
  start(): { times(): number[]; now(): number; stop(): void };
}

function probe(kind: Kind): Probe {
  if (kind === 'none') return { start: () => ({ times: () => [], now: () => performance.now(), stop: () => {} }) };
  if (kind === 'timer') {
    return {
      start() {
        const s = timerSampler();
        s.start();
        return { times: () => s.times, now: () => performance.timeOrigin + performance.now(), stop: () => s.stop() };
      },
    };
  }
  const sampler: HostSampler = kind === 'native' ? loadNativeSampler() : workerSampler();
  return {
    start() {
      const slot = sampler.start(INTERVAL_MS);
      const clock = new Float64Array(3);
      return {
        times() {
          const r = sampler.read(slot, true).samples;
          const out: number[] = [];
          for (let i = 0; i < r.length; i += 4) out.push(r[i]!);
          return out;
        },
        now() {
          sampler.now(clock);
          return clock[0]!;
        },
        stop: () => sampler.stop(slot),
      };
    },
  };
}

/** One measurement, in this (fresh) process: prints one JSON line. */
async function runCase(kind: Kind, mode: Mode): Promise<void> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const p = probe(kind);
  if (mode === 'overhead') {
    const s = p.start();
    await sleep(300); // a worker is up, a timer has fired
    const threadCpu = () => (kind === 'native' ? loadNativeSampler().info().threadCpuSeconds ?? NaN : NaN);
    const own0 = threadCpu();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const n0 = s.times().length;
    await sleep(OVERHEAD_S * 1000);
    const c1 = process.cpuUsage(c0);
    const wallMs = performance.now() - t0;
    const samples = s.times().length - n0;
    const ownMs = (threadCpu() - own0) * 1000;
    s.stop();
    console.log(JSON.stringify({ cpuMs: (c1.user + c1.system) / 1000, wallMs, samples, ownMs }));
  } else if (mode === 'rss') {
    await sleep(200);
    gc();
    gc();
    await sleep(100);
    const before = process.memoryUsage.rss();
    const s = p.start();
    const t0 = s.now();
    let first = NaN;
    for (let i = 0; i < 200 && Number.isNaN(first); i++) {
      await sleep(2);
      const times = s.times();
      if (times.length > 0) first = times[0]! - t0;
    }
    await sleep(1000);
    gc();
    gc();
    await sleep(100);
    const after = process.memoryUsage.rss();
    s.stop();
    console.log(JSON.stringify({ rssMiB: (after - before) / 2 ** 20, firstSampleMs: first }));
  } else {
    const s = p.start();
    const a = s.now();
    const t0 = performance.now();
    while (performance.now() - t0 < 500) {
      // blocked: no event loop turn
    }
    const b = s.now();
    const inside = s.times().filter((t) => t >= a && t <= b);
    s.stop();
    const gaps = inside.slice(1).map((t, i) => t - inside[i]!).sort((x, y) => x - y);
    console.log(JSON.stringify({ samples: inside.length, medianGapMs: gaps.length > 0 ? gaps[gaps.length >> 1] : NaN }));
  }
  process.exit(0);
}

function spawnCase(kind: Kind, mode: Mode): Record<string, number> {
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--case', kind, mode, ...(quick ? ['--quick'] : [])], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.status !== 0) throw new Error(`bench/host.ts --case ${kind} ${mode} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
}

const caseArg = process.argv.indexOf('--case');
if (caseArg >= 0) {
  await runCase(process.argv[caseArg + 1] as Kind, process.argv[caseArg + 2] as Mode);
} else {
  const rows: Row[] = [];
  const row = (name: string, backend: string, nsPerOp: number, baselineNsPerOp: number | undefined, note: string): void => {
    rows.push(withRatio({ suite: 'host', case: name, backend, nsPerOp, baselineNsPerOp, note }));
  };
  const kinds: Kind[] = ['native', 'worker', 'timer'];
  const backendOf = (k: Kind) => (k === 'native' ? 'native' : 'js');

  // Overhead: median of 3 fresh processes per kind, 'none' subtracted.
  const median = (xs: number[]) => xs.sort((x, y) => x - y)[xs.length >> 1]!;
  const reps = quick ? 1 : 3;
  const over = (k: Kind) => {
    const runs = Array.from({ length: reps }, () => spawnCase(k, 'overhead'));
    return {
      cpuMs: median(runs.map((r) => r.cpuMs!)), wallMs: median(runs.map((r) => r.wallMs!)), samples: median(runs.map((r) => r.samples!)),
      ownMs: median(runs.map((r) => r.ownMs ?? NaN)),
    };
  };
  const none = over('none');
  const overhead = new Map<Kind, { pct: number; nsPerSample: number; samples: number; ownPct: number; ownNs: number }>();
  for (const k of kinds) {
    const o = over(k);
    const extraCpuMs = Math.max(0, o.cpuMs - none.cpuMs * (o.wallMs / none.wallMs));
    overhead.set(k, {
      pct: (extraCpuMs / o.wallMs) * 100, nsPerSample: o.samples > 0 ? (extraCpuMs * 1e6) / o.samples : NaN, samples: o.samples,
      ownPct: (o.ownMs / o.wallMs) * 100, ownNs: (o.ownMs * 1e6) / o.samples,
    });
  }
  const nativeOver = overhead.get('native')!;
  for (const k of kinds) {
    const o = overhead.get(k)!;
    const own = Number.isFinite(o.ownPct) ? `; the sampler thread's own CPU clock: ${o.ownPct.toFixed(3)} % (${(o.ownNs / 1000).toFixed(1)} µs per sample)` : '';
    row(`sampler overhead at ${INTERVAL_MS} ms, idle loop (${OVERHEAD_S} s): process CPU ns per sample`, `${backendOf(k)} (${k})`, o.nsPerSample,
      k === 'native' ? undefined : nativeOver.nsPerSample,
      `${o.pct.toFixed(3)} % of one core (target < 1 %), ${o.samples} samples${own}; process without a sampler: ${((none.cpuMs / none.wallMs) * 100).toFixed(3)} %`);
  }

  // RSS added, and the time to the first sample.
  const rssNone = spawnCase('none', 'rss');
  for (const k of kinds) {
    const r = spawnCase(k, 'rss');
    row('sampler start: time to the first sample (RSS added in the note)', `${backendOf(k)} (${k})`, r.firstSampleMs! * 1e6, undefined,
      `RSS +${(r.rssMiB! - rssNone.rssMiB!).toFixed(1)} MiB over a process without a sampler (${rssNone.rssMiB!.toFixed(1)} MiB drift there)`);
  }

  // Samples taken during a 500 ms blocked loop started right after start().
  for (const k of kinds) {
    const b = spawnCase(k, 'blocked');
    row('500 ms blocked loop at 10 ms, started right after start(): median gap between samples', `${backendOf(k)} (${k})`,
      Number.isFinite(b.medianGapMs) ? b.medianGapMs! * 1e6 : 500e6, undefined,
      `${b.samples} samples inside the loop${k === 'timer' ? ' (a timer cannot fire while the loop is blocked)' : ''}`);
  }
  report(rows);
}
