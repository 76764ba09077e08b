/**
 * Fuzzing of compileExpression and evaluation: random character soup, random token soup
 * and mutated corpus expressions. Invariants, for every input and backend:
 * - compileExpression returns or throws ExpressionError (nothing else);
 * - evaluate()/test() return or throw ExpressionError (nothing else), promptly;
 * - the backends agree (with js) on whether it compiles, on the value and on the error class.
 *
 * Runs in a child process so that a hang, a crash or a memory blow-up is caught and named. WPIPE_FUZZ_SEED replays a run (the
 * seed is printed, and repeated in every failure); WPIPE_FUZZ_CASES sets how many inputs (default 25,000:
 * 8–20 s on this 2-core VM, quiet to loaded). Bounded by a count, not a clock, so what a run covers does not depend
 * on how fast or loaded the machine is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  backendSummary, guardedWorkerMain, isGuardedWorker, outcome, parityBackends, postPartial, rng,
  runGuarded, sameOutcome, seedFromEnv, show, showOutcome, type BackendName, type Outcome, type Progress,
} from './helpers/backends.js';

const CASES = Number(process.env.WPIPE_FUZZ_CASES ?? 25_000);
const STALL_MS = 15_000;
const SLOW_MS = 2_000;
const MAX_RSS_MB = 3_072;

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: Rand, n: number) => Math.floor(r() * n);

const CHARS = [
  ...'abcxyzXYZ_0123456789', ...' \t\n', ...'+-*/%<>=!()[]{}.,:;\'"\\#@$`~^&|?', 'é', 'ß', 'İ', 'Σ', '😀', '\ud800', '\udc00',
  '\u0000', '\u2028', '\u00a0', '\ufeff', 'Ｆ', '１', '\u202e',
];

const TOKENS = [
  'x', 'y', 's', 'l', 'd', 'n', 'q', 'f', 'd.a', 'd.b', 'l[0]', 's[1:]', 'True', 'False', 'None', 'and', 'or', 'not', 'in',
  'not in', 'is', 'is not', 'if', 'else', 'lambda', 'for', 'while', 'import', 'del', 'yield', '0', '1', '-1', '2', '7', '10',
  '0.5', '1e308', '1e-5', '9007199254740991', '9007199254740992', '10**9', "'a'", "''", "'abc'", '"x"', "'😀'", "'\\n'",
  "'\\x41'", "'\\u00e9'", '+', '-', '*', '/', '//', '%', '**', '<', '<=', '>', '>=', '==', '!=', '=', ':=', '(', ')', '[',
  ']', '{', '}', ',', ':', '.', ';', 'len', 'abs', 'min', 'max', 'round', 'int', 'float', 'str', 'bool', 'sum', 'any',
  'all', '.lower()', '.upper()', '.strip()', ".split(',')", ".replace('a', 'b')", ".startswith('a')", '.endswith(s)',
  'constructor', '__proto__', '__class__', 'prototype', 'toString', 'eval', 'this', '()', '[]', '(1,)', ' ', ' ',
];

interface CorpusFile { cases: { expr: string }[] }

function corpusExpressions(): string[] {
  const c = JSON.parse(readFileSync(new URL('./fixtures/expr-corpus.json', import.meta.url), 'utf8')) as CorpusFile;
  return c.cases.map((x) => x.expr);
}

function charSoup(r: Rand): string {
  let s = '';
  for (let n = int(r, 40); n > 0; n--) s += pick(r, CHARS);
  return s;
}

function tokenSoup(r: Rand): string {
  const parts: string[] = [];
  for (let n = 1 + int(r, 14); n > 0; n--) parts.push(pick(r, TOKENS));
  return parts.join(r() < 0.7 ? ' ' : '');
}

function mutate(r: Rand, src: string, others: string[]): string {
  let s = src;
  for (let k = 1 + int(r, 3); k > 0; k--) {
    const i = int(r, s.length + 1);
    const j = Math.min(s.length, i + int(r, 6));
    switch (int(r, 10)) {
      case 0: s = s.slice(0, i) + s.slice(j); break; // delete
      case 1: s = s.slice(0, i) + pick(r, TOKENS) + s.slice(i); break; // insert a token
      case 2: s = s.slice(0, i) + pick(r, CHARS) + s.slice(i); break; // insert a character
      case 3: s = s.slice(0, i) + s.slice(i, j) + s.slice(i); break; // duplicate
      case 4: s = s.replace(/\d+/, () => pick(r, ['0', '-1', '9007199254740991', '9007199254740992', '10**9', '1e309', '0.0'])); break;
      case 5: s = `${pick(r, ['not ', '-', '(', 'len(', 'str(', '[', 'abs(', '- -'])}${s}${pick(r, ['', ')', ']', ' + 1', ' * 10**9'])}`; break;
      case 6: s = `(${s}) ${pick(r, ['+', '*', 'and', 'or', '<', '==', 'in', 'if x else', '**', '%', '//'])} (${pick(r, others)})`; break;
      case 7: s = s.slice(0, i) + s.slice(i, j).split('').reverse().join('') + s.slice(j); break;
      case 8: s = s.replace(/[a-z_]+/, () => pick(r, ['x', 'q', 'constructor', '__proto__', 'toString', 'd.b', 'len', 'this'])); break;
      default: s = s.slice(0, i) + pick(r, ['(', ')', '[', ']', "'", '"', ',', ':', '.', '\\']) + s.slice(i); break;
    }
  }
  return s.length > 12_000 ? s.slice(0, 12_000) : s;
}

function context(r: Rand): Record<string, unknown> {
  const v = () => pick(r, [0, 1, -7, 2.5, NaN, -0, 1e308, Number.MAX_SAFE_INTEGER, '', 'abc', 'a,b', '😀', true, false, null, [], [1, 'a'], { a: 1 }]);
  return {
    x: v(), y: v(), s: pick(r, ['', 'abc', 'Hello, World', 'ß😀']), l: [1, 2, 3], d: { a: 1, b: { c: 'x' }, name: 'n' },
    n: null, f: () => 'called', t: true,
  };
}

interface FuzzFailure { seed: number; iteration: number; kind: string; text: string; detail: string }
interface FuzzStats { iterations: number; compiled: number; values: number; errors: number; ms: number }

/** A coarse class of an outcome, to group repeated discrepancies. */
function signatureOf(o: Outcome): string {
  if (o.kind === 'value') {
    const v = o.value;
    return `value:${v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v}`;
  }
  if (o.kind === 'error') return `${o.pythonType}@${o.phase}`;
  return `host:${o.name}`;
}

function workerMain(data: { seed: number; cases: number; backends: BackendName[] }, progress: Progress): FuzzStats {
  const r = rng(data.seed);
  const corpus = corpusExpressions();
  const stats: FuzzStats = { iterations: 0, compiled: 0, values: 0, errors: 0, ms: 0 };
  const t0 = performance.now();
  let failures = 0;
  const seen = new Map<string, number>();
  for (let it = 0; it < data.cases && failures < 30; it++) {
    const k = r();
    const text = k < 0.2 ? charSoup(r) : k < 0.45 ? tokenSoup(r) : mutate(r, pick(r, corpus), corpus);
    const ctx = context(r);
    progress.mark(it, text.length > 2000 ? text.slice(0, 2000) : text);
    stats.iterations++;
    const fail = (kind: string, detail: string, signature = detail) => {
      // The same kind of discrepancy is reported a few times, not thirty: keep looking for others.
      const n = (seen.get(`${kind}|${signature}`) ?? 0) + 1;
      seen.set(`${kind}|${signature}`, n);
      if (n > 3) return;
      failures++;
      postPartial({ seed: data.seed, iteration: it, kind, text, detail } satisfies FuzzFailure);
    };
    const s0 = performance.now();
    const ref = outcome(text, ctx, 'js');
    if (ref.kind === 'host') {
      fail('host-error', `js: ${showOutcome(ref)}`, `js ${ref.name} ${ref.message.slice(0, 40)}`);
      continue;
    }
    if (!(ref.kind === 'error' && ref.phase === 'compile')) stats.compiled++;
    if (ref.kind === 'value') stats.values++;
    else stats.errors++;
    if (ref.kind === 'error' && ref.phase === 'compile' && ref.code !== 'WPIPE_ERR_EXPRESSION_SYNTAX') {
      fail('compile-code', `js compile error with code ${ref.code}: ${showOutcome(ref)}`);
    }
    if (ref.kind === 'error' && ref.phase === 'run' && ref.code !== 'WPIPE_ERR_EXPRESSION_EVAL') {
      fail('eval-code', `js evaluation error with code ${ref.code}: ${showOutcome(ref)}`);
    }
    const refTest = outcome(text, ctx, 'js', 'test');
    if (refTest.kind === 'host') fail('host-error', `js test(): ${showOutcome(refTest)}`);
    for (const b of data.backends) {
      const got = outcome(text, ctx, b);
      if (got.kind === 'host') fail('host-error', `${b}: ${showOutcome(got)}`, `${b} ${got.name} ${got.message.slice(0, 40)}`);
      else if (!sameOutcome(ref, got, text)) {
        fail('disagree', `ctx ${show(ctx, 200)}\n      js   ${showOutcome(ref)}\n      ${b} ${showOutcome(got)}`, `${b} ${signatureOf(ref)} ${signatureOf(got)}`);
      }
      const gotTest = outcome(text, ctx, b, 'test');
      if (gotTest.kind === 'host') fail('host-error', `${b} test(): ${showOutcome(gotTest)}`, `${b} test ${gotTest.name} ${gotTest.message.slice(0, 40)}`);
      else if (refTest.kind !== 'host' && !sameOutcome(refTest, gotTest, text)) {
        fail('disagree', `test(): ctx ${show(ctx, 200)}\n      js   ${showOutcome(refTest)}\n      ${b} ${showOutcome(gotTest)}`, `${b} test ${signatureOf(refTest)} ${signatureOf(gotTest)}`);
      }
    }
    const ms = performance.now() - s0;
    if (ms > SLOW_MS) fail('slow', `took ${ms.toFixed(0)} ms`, 'slow');
  }
  stats.ms = performance.now() - t0;
  return stats;
}

if (isGuardedWorker()) {
  await guardedWorkerMain(workerMain);
} else {
  // A fixed seed by default, so that `npm test` (and CI) cannot fail by chance on a case nobody
  // has seen; WPIPE_FUZZ_SEED=random explores new sequences (the seed is printed with any failure).
  const seed = process.env.WPIPE_FUZZ_SEED === 'random'
    ? (Date.now() ^ (process.pid << 8)) >>> 0
    : seedFromEnv('WPIPE_FUZZ_SEED', 0x20261127);
  test(`fuzz: ${CASES} inputs of character soup, token soup and mutated corpus (seed ${seed})`, async () => {
    const backends = parityBackends();
    console.log(`# fuzz seed ${seed} (replay: WPIPE_FUZZ_SEED=${seed}); ${backendSummary()}; compared with js: ${backends.join(', ') || '(none)'}`);
    const r = await runGuarded<FuzzStats, FuzzFailure>(import.meta.url, { seed, cases: CASES, backends }, STALL_MS, MAX_RSS_MB);
    const lines = r.partials.map((f) => `  [${f.kind}] iteration ${f.iteration}: ${JSON.stringify(f.text.length > 300 ? `${f.text.slice(0, 300)}…` : f.text)}\n      ${f.detail}`);
    if (r.stalled) lines.push(`  [hang] no progress for ${r.stalled.ms} ms at iteration ${r.stalled.item}: ${JSON.stringify(r.stalled.label)}`);
    if (r.memory) lines.push(`  [memory] over ${MAX_RSS_MB} MB (${r.memory.rssMb} MB) at iteration ${r.memory.item}: ${JSON.stringify(r.memory.label)}`);
    if (r.crashed) lines.push(`  [crash] ${r.crashed}`);
    if (r.result) {
      const s = r.result;
      console.log(`# fuzz: ${s.iterations} inputs in ${s.ms.toFixed(0)} ms; ${s.compiled} compiled; ${s.values} values, ${s.errors} errors`);
    }
    if (lines.length) assert.fail(`fuzz failures (seed ${seed}, replay with WPIPE_FUZZ_SEED=${seed}):\n${lines.join('\n')}`);
  });
}
