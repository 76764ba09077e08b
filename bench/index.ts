/**
 * `npm run bench`: runs every suite in a fresh process and prints one table (or, with --json, one JSON
 * document with the machine, Node version and date). `npm run bench -- --suite expr` runs one suite;
 * `--quick` shortens each measurement.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Row } from './lib.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const json = args.includes('--json');
const suiteArg = args.indexOf('--suite');
const only = suiteArg >= 0 ? args[suiteArg + 1] : undefined;
const passThrough = args.filter((a) => a === '--quick');
const suites = ['expr', 'engine', 'storage', 'parallel', 'host', 'dashboard', 'cli', 'bullmq'].filter((s) => (!only || s === only) && existsSync(join(here, `${s}.ts`)));

const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  date: new Date().toISOString().slice(0, 10),
};

const rows: Row[] = [];
for (const suite of suites) {
  if (!json) console.error(`running bench/${suite}.ts …`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, `${suite}.ts`), '--json', ...passThrough], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) {
    console.error(`bench/${suite}.ts failed (exit ${r.status})`);
    process.exitCode = 1;
    continue;
  }
  const line = r.stdout.trim().split('\n').pop() ?? '[]';
  rows.push(...(JSON.parse(line) as Row[]));
}

const out = { machine, rows };
mkdirSync(join(here, '..', '.bench-out'), { recursive: true });
writeFileSync(join(here, '..', '.bench-out', 'results.json'), `${JSON.stringify(out, null, 2)}\n`);
if (json) {
  process.stdout.write(`${JSON.stringify(out)}\n`);
} else {
  console.log(`${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.date}`);
  console.table(rows.map((r) => ({ suite: r.suite, case: r.case, backend: r.backend, 'ns/op': r.nsPerOp, 'baseline ns/op': r.baselineNsPerOp ?? '', 'x baseline': r.ratio ?? '', note: r.note ?? '' })));
}
