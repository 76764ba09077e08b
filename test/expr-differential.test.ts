/**
 * Differential test: the CPython-generated corpus (test/fixtures/expr-corpus.json, made by
 * scripts/gen-expr-corpus.py) on every backend under test. Values must be equal (floats exactly:
 * NaN is NaN, -0.0 is not 0.0; the int/float distinction is checked by the corpus's `str(...)`
 * cases), errors must have the same Python class and the right code (syntax errors at compile time,
 * evaluation errors at evaluation time), and `test()` must give the value's Python truthiness.
 *
 * WPIPE_CORPUS_REPORT=path writes every failing case as JSON, for triage.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { compileExpression, ExpressionError } from '../src/index.js';
import { backendsUnderTest, backendSummary, show, type BackendName } from './helpers/backends.js';

type Encoded = null | boolean | number | string | Encoded[] | { $float: string } | { $tuple: Encoded[] } | { $dict: Record<string, Encoded> };

interface Case {
  id: number;
  group: string;
  expr: string;
  ctx: string | Record<string, Encoded>;
  expect: { value: Encoded } | { error: string };
  truthy?: boolean;
  differs?: string;
  note?: string;
}

interface Corpus {
  _generated: string;
  python: string;
  count: number;
  contexts: Record<string, Record<string, Encoded>>;
  cases: Case[];
}

const corpus = JSON.parse(readFileSync(new URL('./fixtures/expr-corpus.json', import.meta.url), 'utf8')) as Corpus;

function parseFloatRepr(s: string): number {
  if (s === 'inf') return Infinity;
  if (s === '-inf') return -Infinity;
  if (s === 'nan') return NaN;
  return Number(s);
}

function isTagged<K extends string>(v: Encoded, key: K): v is Extract<Encoded, Record<K, unknown>> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && key in v;
}

/** Decodes an encoded value into what a host passes in a context (floats as numbers, dicts as objects). */
function decode(v: Encoded): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(decode);
  if (isTagged(v, '$float')) return parseFloatRepr(v.$float);
  if (isTagged(v, '$tuple')) return v.$tuple.map(decode);
  if (isTagged(v, '$dict')) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v.$dict)) out[k] = decode(x);
    return out;
  }
  throw new Error(`corpus: bad encoded value ${JSON.stringify(v)}`);
}

/** Compares a result with an encoded expected value (ints with ===, floats with Object.is). */
function matches(got: unknown, exp: Encoded): boolean {
  if (exp === null) return got === null;
  if (typeof exp === 'boolean' || typeof exp === 'string') return got === exp;
  if (typeof exp === 'number') return typeof got === 'number' && got === exp;
  if (Array.isArray(exp)) return Array.isArray(got) && got.length === exp.length && exp.every((e, i) => matches(got[i], e));
  if (isTagged(exp, '$float')) return typeof got === 'number' && Object.is(got, parseFloatRepr(exp.$float));
  if (isTagged(exp, '$tuple')) {
    return Array.isArray(got) && got.length === exp.$tuple.length && exp.$tuple.every((e, i) => matches(got[i], e));
  }
  if (isTagged(exp, '$dict')) {
    if (got === null || typeof got !== 'object' || Array.isArray(got)) return false;
    const keys = Object.keys(exp.$dict);
    const gotKeys = Object.keys(got);
    return gotKeys.length === keys.length &&
      keys.every((k) => Object.hasOwn(got, k) && matches((got as Record<string, unknown>)[k], exp.$dict[k]!));
  }
  return false;
}

function showExpected(e: Case['expect']): string {
  if ('error' in e) return e.error;
  return `value ${JSON.stringify(e.value)}`;
}

const contexts = new Map<string, Record<string, unknown>>();
for (const [name, ctx] of Object.entries(corpus.contexts)) {
  contexts.set(name, Object.fromEntries(Object.entries(ctx).map(([k, v]) => [k, decode(v)])));
}
function contextOf(c: Case): Record<string, unknown> {
  if (typeof c.ctx === 'string') return contexts.get(c.ctx)!;
  return Object.fromEntries(Object.entries(c.ctx).map(([k, v]) => [k, decode(v)]));
}

interface Failure {
  backend: BackendName;
  id: number;
  group: string;
  expr: string;
  ctx: string | Record<string, Encoded>;
  expected: string;
  got: string;
  what: string;
  differs?: string;
}

function describeError(e: unknown): string {
  if (e instanceof ExpressionError) {
    return `${e.pythonType} (${e.code === 'WPIPE_ERR_EXPRESSION_SYNTAX' ? 'syntax' : 'eval'}): ${e.message.split('\n')[0]}`;
  }
  const err = e as Error;
  return `HOST ${err?.name ?? typeof e}: ${err?.message ?? String(e)}`;
}

/** Runs one case on one backend; returns what is wrong, or undefined. */
function check(c: Case, backend: BackendName): { what: string; got: string } | undefined {
  const ctx = contextOf(c);
  const wantError = 'error' in c.expect ? c.expect.error : undefined;
  let compiled;
  try {
    compiled = compileExpression(c.expr, { backend });
  } catch (e) {
    if (wantError === 'SyntaxError' && e instanceof ExpressionError && e.pythonType === 'SyntaxError' &&
        e.code === 'WPIPE_ERR_EXPRESSION_SYNTAX') {
      return checkErrorFields(e, c);
    }
    return { what: 'compile', got: describeError(e) };
  }
  if (wantError === 'SyntaxError') {
    let got: string;
    try {
      got = `compiled; evaluate → value ${show(compiled.evaluate(ctx))}`;
    } catch (e) {
      got = `compiled; evaluate → ${describeError(e)}`;
    }
    return { what: 'compile', got };
  }
  // evaluate()
  try {
    const value = compiled.evaluate(ctx);
    if (wantError) return { what: 'evaluate', got: `value ${show(value)}` };
    if (!matches(value, (c.expect as { value: Encoded }).value)) return { what: 'evaluate', got: `value ${show(value)}` };
  } catch (e) {
    if (!wantError) return { what: 'evaluate', got: describeError(e) };
    if (!(e instanceof ExpressionError) || e.pythonType !== wantError || e.code !== 'WPIPE_ERR_EXPRESSION_EVAL') {
      return { what: 'evaluate', got: describeError(e) };
    }
    const bad = checkErrorFields(e, c);
    if (bad) return bad;
  }
  // test(): the truthiness of the same value, or the same error
  try {
    const t = compiled.test(ctx);
    if (wantError) return { what: 'test', got: `returned ${String(t)}` };
    if (t !== c.truthy) return { what: 'test', got: `returned ${String(t)}, Python truthiness is ${String(c.truthy)}` };
  } catch (e) {
    if (!wantError || !(e instanceof ExpressionError) || e.pythonType !== wantError) return { what: 'test', got: describeError(e) };
  }
  return undefined;
}

function checkErrorFields(e: ExpressionError, c: Case): { what: string; got: string } | undefined {
  if (e.expression !== c.expr) return { what: 'error.expression', got: JSON.stringify(e.expression) };
  if (!Number.isInteger(e.position) || e.position < 0 || e.position > c.expr.length) {
    return { what: 'error.position', got: String(e.position) };
  }
  return undefined;
}

const allFailures: Failure[] = [];

test(`corpus header (${corpus.count} cases from CPython ${corpus.python})`, () => {
  assert.match(corpus._generated, /GENERATED by scripts\/gen-expr-corpus\.py/);
  assert.equal(corpus.cases.length, corpus.count);
  assert.ok(corpus.count >= 400, 'the corpus holds at least 400 expressions');
  console.log(`# ${backendSummary()}`);
});

for (const backend of backendsUnderTest()) {
  const groups = new Map<string, Case[]>();
  for (const c of corpus.cases) {
    const g = c.group.replace(/:str$/, '');
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g)!.push(c);
  }
  test(`differential corpus on ${backend}`, async (t) => {
    for (const [group, cases] of groups) {
      await t.test(`${group} (${cases.length})`, () => {
        const failures: Failure[] = [];
        for (const c of cases) {
          const bad = check(c, backend);
          if (bad) {
            failures.push({
              backend, id: c.id, group: c.group, expr: c.expr, ctx: c.ctx, expected: showExpected(c.expect),
              got: bad.got, what: bad.what, differs: c.differs,
            });
          }
        }
        allFailures.push(...failures);
        if (failures.length) {
          const lines = failures.slice(0, 60).map((f) =>
            `  #${f.id} [${f.what}] ${f.expr}    ctx=${typeof f.ctx === 'string' ? f.ctx : JSON.stringify(f.ctx)}\n` +
            `      expected ${f.expected}${f.differs ? ` (documented difference: ${f.differs})` : ''}\n      got      ${f.got}`);
          assert.fail(`${failures.length} of ${cases.length} '${group}' cases differ from CPython on ${backend}:\n${lines.join('\n')}` +
            (failures.length > 60 ? `\n  … and ${failures.length - 60} more (WPIPE_CORPUS_REPORT=file.json lists all)` : ''));
        }
      });
    }
  });
}

// The report is a by-product of the run, not a test (a test that cannot fail).
after(() => {
  const path = process.env.WPIPE_CORPUS_REPORT;
  if (path) writeFileSync(path, JSON.stringify(allFailures, null, 1));
});
