/**
 * Security: known expression-sandbox escapes and resource attacks must end in ExpressionError with
 * the right code — never a crash, a hang, a host error class, a call into host code, a change to
 * the context, or a change to global state (prototypes, globalThis).
 *
 * Families: n8n CVE-2025-68613 (constructor chains, `this`, `__proto__`), expr-eval CVE-2025-12735
 * (calling functions found in the context, member calls other than the fixed string methods),
 * Python sandbox escapes (`().__class__.__mro__`, `__import__`, lambda, comprehensions, walrus,
 * f-strings), prototype reads through dict access, opaque host values (getters, class instances,
 * Proxy, Map, Date), and limits (huge products, huge texts, deep nesting, cyclic and huge contexts).
 *
 * Every case runs in a child process that reports progress before each case: a case that makes no
 * progress for HANG_MS is a hang, one that takes the process over MAX_RSS_MB is a memory blow-up,
 * one that kills the process is a crash (the child is killed, the case named, the rest resumed).
 * Each case must also finish within its `ms` bound (a timer used only as a hang guard).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileExpression, ExpressionError } from '../src/index.js';
import {
  backendsUnderTest, backendSummary, guardedWorkerMain, isGuardedWorker, postPartial, runGuarded, show,
  type BackendName, type Progress,
} from './helpers/backends.js';

// No progress for this long is a hang. The slowest legitimate case takes about 3 s alone; under CI
// beside other jobs on 2 cores one went 6 s without reporting, so the guard leaves room for that.
const HANG_MS = 20_000;
const PROMPT_MS = 3_000;
const HEAVY_MS = 5_000;
/** Resident memory cap of the process that evaluates the cases (a blow-up is a failure, not an OOM kill). */
const MAX_RSS_MB = 3_072;

/**
 * syntax: compileExpression throws WPIPE_ERR_EXPRESSION_SYNTAX.
 * eval: compiles; evaluate() and test() throw WPIPE_ERR_EXPRESSION_EVAL.
 * error: an ExpressionError of either code (at compile or at evaluation).
 * value-or-eval: compiles; evaluation returns or throws WPIPE_ERR_EXPRESSION_EVAL.
 * any: a value, or an ExpressionError of either code.
 */
type Expect = 'syntax' | 'eval' | 'error' | 'value-or-eval' | 'any';

interface SecCase {
  family: string;
  text: string;
  expect: Expect;
  /** Allowed Python classes of the error (any if absent). */
  types?: string[];
  ctx?: () => Record<string, unknown>;
  /** The context holds host functions/getters that must never be called. */
  noCall?: boolean;
  /** Bound on the case's duration (ms). */
  ms?: number;
  /** Skip the before/after comparison of the context (huge or cyclic ones are compared by identity). */
  label?: string;
}

// Host code in contexts sets this; a case with noCall fails if it changes.
let hostCalls = 0;
const touch = () => {
  hostCalls++;
  return 'pwned';
};

function plain(): Record<string, unknown> {
  return { x: 1, s: 'abc', l: [1, 2, 3], d: { a: 1, b: { c: 2 } }, n: null, e: {} };
}

function withFunctions(): Record<string, unknown> {
  const f = function f() { return touch(); };
  f.toString = touch;
  f.valueOf = touch;
  (f as unknown as Record<symbol, unknown>)[Symbol.toPrimitive] = touch;
  const fn = () => touch();
  return {
    ...plain(),
    f,
    obj: { fn, x: 1, toString: fn, valueOf: fn },
    arr: [fn, 1],
  };
}

class Tricky {
  x = 1;
  get g(): number { return Number(touch()); }
  method(): string { return touch(); }
  valueOf(): number { touch(); return 1; }
  toString(): string { return touch(); }
  [Symbol.toPrimitive](): number { touch(); return 1; }
  toJSON(): string { return touch(); }
}

function withObjects(): Record<string, unknown> {
  const getterDict: Record<string, unknown> = { a: 1 };
  Object.defineProperty(getterDict, 'g', { get: () => touch(), enumerable: true, configurable: true });
  const hiddenGetter: Record<string, unknown> = { a: 1 };
  Object.defineProperty(hiddenGetter, 'h', { get: () => touch(), enumerable: false, configurable: true });
  return {
    ...plain(),
    v: new Tricky(),
    gd: getterDict,
    hg: hiddenGetter,
    m: new Map([['a', 1]]),
    st: new Set([1]),
    dt: new Date(0),
    re: /a/g,
    buf: Buffer.from('abc'),
    ta: new Uint8Array([1, 2, 3]),
    big: 10n,
    sym: Symbol('s'),
    np: Object.assign(Object.create(null) as Record<string, unknown>, { a: 1 }),
    jp: JSON.parse('{"__proto__": {"polluted": 1}, "a": 1}') as Record<string, unknown>,
    err: new Error('e'),
    prom: Promise.resolve(1),
  };
}

function withProxy(): Record<string, unknown> {
  const target = { a: 1 };
  const handler: ProxyHandler<object> = {
    get: (t, k) => (k === 'a' ? 1 : undefined),
    getPrototypeOf: () => Object.prototype,
  };
  return { ...plain(), p: new Proxy(target, handler) };
}

function deepList(depth: number): unknown[] {
  let v: unknown[] = [];
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

function deepDict(depth: number): Record<string, unknown> {
  let v: Record<string, unknown> = { a: 1 };
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

function withDeep(): Record<string, unknown> {
  const cyc: unknown[] = [1];
  cyc.push(cyc);
  const cd: Record<string, unknown> = { a: 1 };
  cd.self = cd;
  return { ...plain(), deep: deepList(100_000), dd: deepDict(100_000), cyc, cd };
}

let hugeCache: Record<string, unknown> | undefined;
function withHuge(): Record<string, unknown> {
  hugeCache ??= {
    ...plain(),
    bs: 'ab'.repeat(600_000),
    bl: Array.from({ length: 1_100_000 }, (_, i) => i % 7),
  };
  return hugeCache;
}

const rep = (s: string, n: number) => s.repeat(n);

function cases(): SecCase[] {
  const out: SecCase[] = [];
  const add = (family: string, expect: Expect, texts: string[], more: Partial<SecCase> = {}) => {
    for (const text of texts) out.push({ family, text, expect, ...more });
  };

  // ---- n8n CVE-2025-68613 family: constructor chains and prototype access
  add('n8n', 'syntax', [
    "constructor.constructor('return process')()", 'this.constructor', "this.constructor.constructor('return process')()",
    "[].constructor.constructor('return process')()", "''.constructor.constructor('return this')()", '(1).constructor',
    'x.constructor', 's.constructor', 'l.constructor', 'd.constructor', 'd.b.constructor', 'x.prototype', 'd.prototype',
    'x.__proto__', 'd.__proto__', 'd.__proto__.polluted', 'l.__proto__', 's.__proto__.constructor',
    '{{ constructor.constructor("return this")() }}', '{{ $json.x }}', '$env', '${x}', '`${x}`', 'x.constructor.name',
    "d['a'].constructor", 'len.constructor', 's.upper.constructor', 'd.__defineGetter__', 'd.__lookupGetter__',
    "d.__proto__['polluted']", 'd.b.__proto__', "(d or x).constructor", "[d][0].constructor",
  ]);
  add('n8n', 'error', ['constructor', '__proto__', '__proto__.polluted', '__defineGetter__', '__lookupGetter__',
    'prototype', 'len', 'len.call', 'max.apply', 'str', 'eval', '__builtins__', "__builtins__['eval']"]);
  add('n8n', 'eval', ['this', 'process', 'globalThis', 'window', 'require', 'module', 'exports', 'Function',
    'Object', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString',
    'Symbol', 'Reflect', 'Buffer', 'Proxy'], { types: ['NameError'] });
  add('n8n', 'eval', ['str.lower(s)', 'len.upper()', 'eval.lower()'], { types: ['NameError'] });
  add('dict-proto', 'eval', [
    "d['__proto__']", "d['__proto__']['polluted']", "d['constructor']", "d['constructor']['constructor']",
    "d['hasOwnProperty']", "d['toString']", "d['valueOf']", "d['__defineGetter__']", "d['prototype']",
    "e['__proto__']", "e['toString']", "d['b']['__proto__']", "d['isPrototypeOf']", "d['__lookupGetter__']",
  ], { types: ['KeyError'] });
  add('dict-proto', 'eval', ['d.hasOwnProperty', 'd.toString', 'd.valueOf', 'd.isPrototypeOf', 'e.toString',
    'd.b.toString', 'l.length', 's.length', 'l.map', 'l.push', 'l.pop', 's.charAt', 'x.toFixed', 'n.foo'],
  { types: ['AttributeError'] });
  add('dict-proto', 'eval', ["l['constructor']", "l['length']", "s['length']", "s['constructor']", "x['constructor']",
    "n['__proto__']", "l['__proto__']"], { types: ['TypeError'] });
  add('dict-proto', 'eval', ["'__proto__' in d", "'constructor' in d", "'toString' in e", "'hasOwnProperty' in d"].map((t) => `(${t}) + []`),
    { types: ['TypeError'] });
  add('dict-proto', 'value-or-eval', ["d.get('__proto__')", "d.get('constructor', 1)", "e.get('toString')", "'__proto__' in d", "'constructor' in e", 'len(e)', 'str(e)', 'e == e', 'min(d)']);

  // ---- expr-eval CVE-2025-12735: calling functions from the context, member calls
  add('expr-eval', 'syntax', [
    'f()', 'f(1)', "f('x')", 'obj.fn()', "obj['fn']()", '(f)()', '[f][0]()', 'arr[0]()', '(f if x else f)()',
    'f.call(None)', 'f.apply(None, l)', 'f.bind(None)()', 'obj.toString()', 'obj.valueOf()', 's.toUpperCase()',
    's.charCodeAt(0)', 's.lower.call(1)', 'l.map(len)', 'l.push(1)', 'l.pop()', 'l.index(1)', 'd.update(x)', 'd.setdefault("a")',
    'd.keys()', 's.format(x)', "'{0.__class__}'.format(1)", 's.join(l)', "', '.join(l)", 's.encode()', 's.count("a")',
    's.find("a")', 's.title()', 's.isdigit()', 's.zfill(5)', "s.lstrip('a')", "s.rsplit(',')", 's.splitlines()',
    's.casefold()', 'x.bit_length()', 'x.to_bytes(8)', 'f.constructor', "f.constructor('return process')()",
    'max.apply(None, l)', 'len.call(None, s)', 'x.__str__()', 's.__len__()', 'd.b.fn()',
    'obj.fn.call()', 'min(l).constructor', 'process.exit(1)', "process.mainModule.require('child_process')",
    "require('child_process').execSync('id')", 'setTimeout(f, 0)', 'queueMicrotask(f)',
  ], { ctx: withFunctions, noCall: true });
  add('expr-eval', 'value-or-eval', ['f', 'obj.fn', 'obj', 'arr', 'f if x else 1', 'f is None', 'not f', 'f == f', 'f != obj.fn',
    'str(f)', 'str(obj)', 'str(arr)', '[f]', '(f,)', 'min([f])', 'any([f])', 'bool(f)', 'f in l', 'f in arr',
    'obj.toString', 'obj.valueOf', 'obj == obj', 'f == 1',
    // dict.get returns a function as a value, never calls it
    "obj.get('fn')", "obj.get('toString')", "obj.get('missing', f)", "arr.get(0)"],
  { ctx: withFunctions, noCall: true });
  add('expr-eval', 'eval', ['f + 1', '1 + f', "'a' + f", 'f < 1', 'f * 2', '-f', 'len(f)', 'int(f)', 'float(f)', 'abs(f)',
    'round(f)', 'sum([f])', 'max(f, f)', 'f[0]', "f['call']", 'f.call', 'f.bind', 'f.name', 'f.length',
    "s.replace('a', f)", 's.split(f)', 's.startswith(f)', "'a' in f", 'f in s', 'l[f]', 's[f]', 'obj.fn + 1',
    'obj.fn.call', 'obj.toString + 1', 'arr[0] + 1', 'f < f', 'sum([1, f])', 'max([1, f])', 'obj.fn.name'],
  { ctx: withFunctions, noCall: true });

  // ---- opaque host values: class instances, getters, Map, Date, typed arrays, Proxy
  add('opaque', 'eval', ['v + 1', '1 + v', 'v < 1', 'v * 2', '-v', "'a' + v", 'len(v)', 'int(v)', 'float(v)', 'abs(v)',
    'round(v)', 'sum([v])', 'max(v, v)', 'v.x', 'v.g', "v['x']", "v['g']", 'v in s', "'a' in v", "s.replace(v, 'x')",
    'l[v]', 's[v]', 'v[0]', 'v[1:]', "m['a']", 'm.a', 'm.size', 'len(m)', 'st.size', 'len(st)', 'dt + 1', 'dt < dt',
    'dt.getTime', 're.source', 'len(re)', 'buf[0]', 'len(buf)', 'ta[0]', 'len(ta)', 'ta + ta', 'big + 1', 'sym + 1',
    'err.message', 'err.stack', 'prom.then', "hg['h']", 'hg.h', 'np.toString', "np['toString']",
    // dict.get on a host object that is not a plain dict: AttributeError, never Map.prototype.get
    "m.get('a')", "v.get('x')", "dt.get('x')"],
  { ctx: withObjects, noCall: true });
  add('opaque', 'syntax', ['v.method()', 'v.constructor', 'dt.getTime()', "re.exec('a')", 'buf.toString()',
    'ta.fill(0)', 'prom.then(f)', 'err.constructor', 'v.toJSON()', 'v.valueOf()', "m.set('a', 2)", 'st.add(2)'],
  { ctx: withObjects, noCall: true });
  add('opaque', 'value-or-eval', ['v', 'v == v', 'v is None', 'not v', 'bool(v)', 'str(v)', 'str([v])', '[v] * 2', 'v == 1',
    'str(m)', 'str(dt)', 'str(buf)', 'str(ta)', 'str(big)', 'str(sym)', 'gd.a', 'gd.g', "gd['g']", 'str(gd)', 'gd',
    'len(gd)', "'g' in gd", 'gd == gd', 'hg.a', 'hg', 'np.a', 'np', 'str(np)', "jp['__proto__']", "jp['__proto__']['polluted']",
    'jp.a', 'jp', 'str(jp)', "d[v]", 'err', 'prom', 'sym', 'big', 'v if v else 1', '[m, st, dt, re, buf, ta]'],
  { ctx: withObjects, noCall: true });
  add('proxy', 'any', ['p', 'p.a', "p['a']", 'p.b', 'str(p)', 'len(p)', 'p == p', "'a' in p"], { ctx: withProxy });

  // ---- Python sandbox escapes
  add('python', 'syntax', [
    '().__class__.__mro__[1].__subclasses__()', '().__class__', "''.__class__.__mro__[-1].__subclasses__()",
    '[].__class__.__base__.__subclasses__()', "__import__('os')", "__import__('os').system('id')", 'globals()', 'locals()',
    'vars()', 'dir()', "getattr(x, 'y')", "setattr(d, 'a', 2)", "delattr(d, 'a')", "hasattr(d, 'a')", "eval('1')",
    "exec('1')", "compile('1', '', 'eval')", "open('/etc/passwd')", 'type(x)', 'type(x).__subclasses__(x)', 'print(1)',
    'input()', 'help()', 'breakpoint()', 'id(x)', 'hash(s)', 'iter(l)', 'next(l)', 'range(10)', 'list(s)', 'dict()',
    'sorted(l)', 'reversed(l)', 'map(len, l)', 'filter(None, l)', 'zip(l, l)', 'enumerate(l)', 'chr(65)', 'ord(s)',
    'repr(s)', 'format(1)', 'isinstance(x, int)', 'callable(f)', 'super()', 'memoryview(s)', 'object()',
    'lambda: 1', '(lambda: 1)()', 'lambda x: x', 'l.sort(key=lambda x: x)', '[x for x in l]', '[x for x in range(10**9)]',
    '{x for x in l}', '{x: 1 for x in l}', '(x for x in l)', 'any(x for x in l)', 'sum(i for i in l)', '(n := 1)', 'n := 1',
    '[y := 1, y]', "f'{x}'", "f'{x.__class__}'", "F'{1}'", "rf'{x}'", "f'{__import__(\"os\")}'", "b'x'",
    "x.__class__.__init__.__globals__", 'x.__dict__', "x.__getattribute__('y')", "s.__class__.__bases__", 'l.__len__',
    'import os', "import('fs')", 'yield 1', 'await x', 'async', 'del x', 'x = 1', 'x += 1', 'assert x', 'raise', 'pass',
    'x; y', 'x\ny', "{'a': 1}", '{}', '{1, 2}', '...', 'x @ x', 'x | x', 'x & x', 'x ^ x', '~x', 'x << 1', 'x >> 1',
    '*l', '[*l]', 'len(*l)', 'max(l, key=len)', 'max(*l)', 'min(**d)', 'x is 1', 'x is x', 'x is not 1', 'x is []',
    'not x is 1', 'x is "a"', 'if x: 1', 'for x in l: 1', 'while 1: pass', 'def f(): 1', 'class A: pass',
    'try: 1\nexcept: 1', 'with x: 1', 'global x', 'global', 'nonlocal x', 'nonlocal', 'return 1', 'l[0] = 1', 'd.a = 1', 'x if x', 'x else y',
    '1 if x else', 'not', 'x not y', 'x or', 'and', 'x[1:2:3:4]', 'x..y', 'x.1', '1x', '0x', '1e', "'\\N{NOPE}'",
  ], { ctx: withFunctions, noCall: true });
  add('python', 'eval', ["'%s' % x", "'%d' % (1,)", "s % 1"], { types: ['TypeError'] });

  // ---- limits: produced values, huge ints, texts, nesting
  add('limits', 'eval', ["'a' * 10**9", '[1] * 10**9', "'a' * 999999 + 'a' * 999999", "'ab' * 500001", '(1, 2) * 500001',
    "'a' * 9007199254740991", '[1] * 9007199254740991', "str([0] * 999999)", "'x'.replace('', 'y' * 999999)",
    "('a' * 1000000).replace('a', 'aa')", 'sum([[0] * 999999] * 2, [])', "('a' * 1000000).split('a')",
    "'😀' * 500001", "('a' * 1000000).upper() + 'b'", "str([[[0] * 1000] * 1000] * 1000)",
    'str([[0] * 999999] * 999999)', 'len(str([[[0] * 100] * 100] * 100))', "[0] * 999999 + [0] * 999999",
    "'a' * 999999 * 2", "'ab' * 10**6", "('a' * 600000).replace('a', 'bc')", "('ab' * 500000).replace('', '-')",
    'sum([[0] * 999999] * 999999, [])', 'str(l) * 10**6', 'l * 10**6', 'str(d) * 10**6',
  ], { types: ['LimitError'] });
  add('limits', 'eval', ['10**10**10', '9007199254740991 ** 9007199254740991', '2 ** 9007199254740991',
    '2.0 ** 9007199254740991', '(-2) ** 9007199254740991', '10 ** 400', '2 ** 53', '9007199254740991 + 1',
    '9007199254740991 * 9007199254740991', "int('9' * 5000)" , 'x * 10**15 * 10**15', '-9007199254740991 - 1',
    'abs(-9007199254740991 - 1)', 'sum([9007199254740991, 1])', 'round(1e300)', 'int(1e300)'],
  { types: ['OverflowError', 'ValueError'] });
  add('limits', 'value-or-eval', ["'a' * -9007199254740991", '[1] * -9007199254740991', '(-1) ** 9007199254740991',
    '1 ** 9007199254740991', '0 ** 9007199254740991', '0.5 ** 9007199254740991', '10 ** -9007199254740991',
    'round(1.5, 9007199254740991)', 'round(1.5, -9007199254740991)', 'round(15, -9007199254740991)',
    'round(15, 9007199254740991)', 'round(-15, -308)', 'round(15, -400)', "float('1' * 1000000)",
    "len('1' * 1000000 + '')", "'1' * 1000000 == '1' * 1000000", "'a' * 1000000 < 'a' * 1000000", "len(('a ' * 500000).split())",
    "len(('a' * 1000000).replace('', ''))", "len(('😀' * 500000)[::-1])", 'len([[0] * 999999] * 999999)',
    '[[0] * 999999] * 999999', '[[[0] * 1000] * 1000] * 1000', 'len([[[0] * 1000] * 1000] * 1000)',
    'max([[0] * 999999] * 999999)', '[[0] * 999999] * 999999 == [[0] * 999999] * 999999',
    '[[0] * 999999] * 999999 < [[0] * 999999] * 999999', '[[0] * 999999] in [[[0] * 999999] * 999999]',
    '[[0] * 999999] * 999999 == [[0] * 999999] * 999998 + [[1]]', "min(('ab' * 500000))", "max('a' * 1000000)",
    'all([[0] * 999999] * 999999)', "len(('a' * 1000000)[::-1])", "sum([1] * 1000000)", "len(('x,' * 499999).split(','))",
    "('a' * 1000000).startswith('a' * 1000000)", "('a' * 1000000).strip('a')", "('a' * 999999 + 'b').split('a')[-1]",
    "('a' * 1000000).replace('a', '')", "str(('a',) * 1000) * 1", "[(1, 2)] * 999999 == [(1, 2)] * 999999",
    '[] * 9007199254740991', '() * 9007199254740991', "'' * 9007199254740991", 'el * 9007199254740991',
    "e * 9007199254740991", '9007199254740991 * []', '[] * 10**9 + [] * 10**9', "('' * 10**9).split()",
    "''.replace('', '') * 9007199254740991", 'sum([[]] * 999999, [])', "sum([[]] * 999999, []) * 9007199254740991",
  ], { ms: HEAVY_MS, ctx: () => ({ ...plain(), el: [], e: '' }) });

  // texts: long, deep, odd characters
  const deep = (open: string, mid: string, close: string, n: number) => rep(open, n) + mid + rep(close, n);
  add('text', 'syntax', [
    rep('1 + ', 25_000) + '1', rep('x', 100_000), `'${rep('a', 99_998)}'`, rep(' ', 100_000) + '1', `x${rep(' ', 20_000)}`,
    deep('(', '1', ')', 10_000), rep('not ', 10_000) + 'x', rep('not ', 2_499) + 'x',
    rep('-', 10_000) + '1', rep('-', 9_999) + '1', rep('+-', 4_999) + '1', deep('[', '', ']', 4_999), deep('[', '1', ']', 10_000),
    'x' + rep('[0]', 3_000), 'x' + rep('.a', 4_000), deep('len(', 's', ')', 1_600), deep('abs(', '1', ')', 2_000),
    deep('(', '1,', ')', 3_000), rep('1', 5_000), '1' + rep('0', 5_000), '-' + rep('9', 9_000), rep('1_', 4_000) + '1',
    "'\\N{" + rep('A', 5_000) + "}'", 'x\u0000', '\u0000', "'a\u0000", rep('(', 9_999), rep(')', 9_999), rep('[', 9_999),
    rep("'", 9_999), rep('"', 9_999), rep('\\', 9_999), rep('x.', 4_999) + 'x', deep('-(', '1', ')', 3_000),
    deep('x[', '0', ']', 3_000), deep('str(', '1', ')', 2_000), deep('[', '1', ']', 1_000),
    deep('x if x else (', 'x', ')', 500),
  ], { ctx: plain });
  add('text', 'any', [
    rep('1 + ', 2_400) + '1', rep('2 ** ', 2_000) + '1', rep('x if x else ', 900) + 'x', rep('x and ', 2_000) + 'x',
    rep('x or ', 2_000) + 'x', rep('1 < ', 2_000) + '2', `[${rep('1, ', 3_300)}1]`, `(${rep('1, ', 3_300)}1)`, rep('x * ', 2_400) + 'x',
    rep('s + ', 2_400) + 's', rep('l + ', 2_400) + 'l', `len(s)${rep(' + len(s)', 1_000)}`, `'${rep('\\x41', 2_400)}'`,
    `'${rep('\\U0001F600', 900)}'`, '1' + rep('0', 400) + '.0', '0.' + rep('0', 9_000) + '1', '1e' + rep('9', 9_000),
    rep('0', 9_999), 'ñ', 'x\u200b', '\ufeffx', 'x\u2028 + 1', "'\ud800'", '\ud800', 'ｘ', '１', "'\u202e'", "x\u00a0+ 1",
    `max(${rep('1, ', 3_300)}1)`, `[${rep('[', 99)}${rep(']', 99)}]`, deep('(', '1', ')', 99), rep('not ', 99) + 'x',
    rep('-', 99) + '1', `s${rep('.upper()', 99)}`, `s${rep('.upper()', 2_000)}`, `l${rep('[::-1]', 1_500)}`,
    `${rep('s.replace(s, ', 400)}s${rep(')', 400)}`, deep('(x if x else ', 'x', ')', 99), deep('(', '1', ')', 4_999),
    deep('(', '1', ')', 101), rep('not ', 101) + 'x', rep('-', 101) + '1', deep('[', '1', ']', 101),
  ], { ctx: plain, ms: HEAVY_MS });

  // ---- contexts: deep, cyclic, huge
  add('context', 'any', ['deep', 'len(deep)', 'str(deep)', 'deep == deep', 'deep < deep', 'deep in [deep]', '[deep]',
    'deep[0][0][0]', 'bool(deep)', 'max(deep, deep)', 'dd', 'dd.a.a.a', 'str(dd)', 'dd == dd', "'a' in dd", 'len(dd)',
    'cyc', 'len(cyc)', 'str(cyc)', 'cyc == cyc', 'cyc < cyc', 'cyc in cyc', '[cyc] == [cyc]', 'cyc[1][1][1][0]', 'max(cyc, cyc)',
    'any(cyc)', 'sum(cyc, [])', 'cyc + cyc', 'cyc * 2', 'cyc[::-1]', 'cd', 'cd.self.self.a', 'str(cd)', 'cd == cd',
    "'self' in cd", 'len(cd)', '[cd, cyc]', 'cyc == deep', 'cd.self == cd'],
  { ctx: withDeep, ms: HEAVY_MS });
  add('context', 'any', ['len(bs)', "bs + 'x'", 'bs.upper()', 'bs[::-1]', 'bs[:10]', 'bs == bs', 'bs < bs', "'x' in bs",
    "bs.replace('a', 'b')", 'str([bs])', 'len(bs.split())', 'max(bs)', 'bs.strip()', "bs.startswith('ab')", 'bs',
    'len(bl)', 'bl + []', 'bl[::-1]', 'bl[:3]', 'sum(bl)', 'max(bl)', 'str(bl)', 'bl == bl', '7 in bl', 'bl', 'any(bl)',
    'len(bl * 1)', "len(bs * 1)", "bs.split('a')[:1]", 'bl[1099999]'],
  { ctx: withHuge, ms: HEAVY_MS });

  return out;
}

// ------------------------------------------------------------------------------------------------
// Global state

function snapshot(): Map<string, unknown> {
  const snap = new Map<string, unknown>();
  const protos: [string, object][] = [
    ['Object', Object.prototype], ['Array', Array.prototype], ['Function', Function.prototype], ['String', String.prototype],
    ['Number', Number.prototype], ['Boolean', Boolean.prototype], ['Symbol', Symbol.prototype], ['Error', Error.prototype],
    ['RegExp', RegExp.prototype], ['Promise', Promise.prototype], ['Map', Map.prototype], ['Set', Set.prototype],
    ['Date', Date.prototype], ['BigInt', BigInt.prototype], ['Uint8Array', Uint8Array.prototype],
    ['TypedArray', Object.getPrototypeOf(Uint8Array.prototype) as object],
  ];
  for (const [name, proto] of protos) {
    for (const key of Reflect.ownKeys(proto)) {
      const d = Object.getOwnPropertyDescriptor(proto, key)!;
      snap.set(`${name}.prototype.${String(key)}`, d.get ?? d.set ?? d.value);
    }
    snap.set(`${name}.prototype:proto`, Object.getPrototypeOf(proto));
    snap.set(`${name}.prototype:extensible`, Object.isExtensible(proto));
  }
  for (const key of Reflect.ownKeys(globalThis)) {
    const d = Object.getOwnPropertyDescriptor(globalThis, key)!;
    snap.set(`globalThis.${String(key)}`, d.get ?? d.value);
  }
  snap.set('({}).polluted', ({} as Record<string, unknown>).polluted);
  snap.set('[].polluted', ([] as unknown as Record<string, unknown>).polluted);
  return snap;
}

function diff(a: Map<string, unknown>, b: Map<string, unknown>): string[] {
  const out: string[] = [];
  for (const [k, v] of b) if (!a.has(k)) out.push(`+${k}`);
  for (const [k, v] of a) if (!b.has(k)) out.push(`-${k}`);
  for (const [k, v] of a) if (b.has(k) && !Object.is(v, b.get(k))) out.push(`~${k}`);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Running one case (in the child process)

interface CaseResult {
  index: number;
  backend: BackendName;
  family: string;
  text: string;
  ms: number;
  problems: string[];
  got: string;
}

function describeThrown(e: unknown): string {
  if (e instanceof ExpressionError) {
    return `${e.pythonType} (${e.code === 'WPIPE_ERR_EXPRESSION_SYNTAX' ? 'syntax' : 'eval'})`;
  }
  const err = e as Error;
  return `HOST ${err?.constructor?.name ?? typeof e} ${err?.name ?? ''}: ${String(err?.message ?? e).slice(0, 200)}`;
}

/** error.expression is the text (an over-long text may be kept as a prefix). */
function sameExpression(kept: string, text: string): boolean {
  return kept === text || (text.length > 10_000 && kept.length > 0 && text.startsWith(kept.replace(/…$/, '')));
}

function runCase(c: SecCase, backend: BackendName, ctx: Record<string, unknown>): { problems: string[]; got: string } {
  const problems: string[] = [];
  let compiled;
  try {
    compiled = compileExpression(c.text, { backend });
  } catch (e) {
    const got = `compile threw ${describeThrown(e)}`;
    if (!(e instanceof ExpressionError)) return { problems: [`host error at compile: ${describeThrown(e)}`], got };
    if (c.expect === 'eval' || c.expect === 'value-or-eval') problems.push(`expected to compile, got ${describeThrown(e)}`);
    if (e.code !== 'WPIPE_ERR_EXPRESSION_SYNTAX') problems.push(`a compile error with code ${e.code}`);
    if (c.types && c.expect !== 'syntax' && c.expect !== 'error' && !c.types.includes(e.pythonType)) problems.push(`wrong class ${e.pythonType}`);
    if (!sameExpression(e.expression, c.text)) problems.push('error.expression is not the text');
    return { problems, got };
  }
  if (c.expect === 'syntax') problems.push('expected a syntax error at compile time, but it compiled');
  const results: string[] = [];
  // test() is checked too, except on the heavy families (evaluate() already shows their behaviour,
  // and running each million-item case twice would double the suite's time).
  const modes = c.family === 'limits' || c.family === 'context' ? (['evaluate'] as const) : (['evaluate', 'test'] as const);
  for (const mode of modes) {
    try {
      const v = mode === 'evaluate' ? compiled.evaluate(ctx) : compiled.test(ctx);
      results.push(`${mode} → ${show(v, 60)}`);
      if (c.expect === 'eval' || c.expect === 'error' || c.expect === 'syntax') problems.push(`${mode} returned ${show(v, 60)} instead of an error`);
    } catch (e) {
      results.push(`${mode} threw ${describeThrown(e)}`);
      if (!(e instanceof ExpressionError)) {
        problems.push(`host error at ${mode}: ${describeThrown(e)}`);
        continue;
      }
      if (e.code !== 'WPIPE_ERR_EXPRESSION_EVAL') problems.push(`${mode}: an evaluation error with code ${e.code}`);
      if (c.types && !c.types.includes(e.pythonType)) problems.push(`${mode}: class ${e.pythonType}, expected ${c.types.join(' or ')}`);
      if (!sameExpression(e.expression, c.text)) problems.push(`${mode}: error.expression is not the text`);
    }
  }
  return { problems, got: results.join('; ') };
}

async function workerMain(data: { backends: BackendName[]; start: number }, progress: Progress): Promise<number> {
  const all = cases();
  const items: [BackendName, number][] = [];
  for (const b of data.backends) for (let i = 0; i < all.length; i++) items.push([b, i]);
  for (let k = data.start; k < items.length; k++) {
    const [backend, i] = items[k]!;
    const c = all[i]!;
    progress.mark(k, `${backend}: ${c.text.length > 300 ? `${c.text.slice(0, 300)}…(${c.text.length} chars)` : c.text}`);
    const ctx = (c.ctx ?? plain)();
    const ctxBefore = show(ctx, 2_000);
    const before = snapshot();
    hostCalls = 0;
    const t0 = performance.now();
    const { problems, got } = runCase(c, backend, ctx);
    const ms = performance.now() - t0;
    if (c.noCall && hostCalls > 0) problems.push(`host code in the context was called ${hostCalls} time(s)`);
    const changed = diff(before, snapshot());
    if (changed.length) problems.push(`global state changed: ${changed.slice(0, 10).join(', ')}`);
    if (show(ctx, 2_000) !== ctxBefore) problems.push('the context was modified');
    const bound = c.ms ?? PROMPT_MS;
    if (ms > bound) problems.push(`took ${ms.toFixed(0)} ms (bound ${bound} ms)`);
    postPartial({ index: k, backend, family: c.family, text: c.text, ms, problems, got } satisfies CaseResult);
  }
  return items.length;
}

// ------------------------------------------------------------------------------------------------
// Parent: run the child (restarting it after a hang or crash) and report per family

if (isGuardedWorker()) {
  await guardedWorkerMain(workerMain);
} else {
  const backends = backendsUnderTest();
  const all = cases();
  const total = all.length * backends.length;
  const results: CaseResult[] = [];
  const hangs: string[] = [];
  const crashes: string[] = [];
  let start = 0;
  const t0 = Date.now();
  while (start < total) {
    const r = await runGuarded<number, CaseResult>(import.meta.url, { backends, start }, HANG_MS, MAX_RSS_MB);
    results.push(...r.partials);
    if (r.result !== undefined) break;
    if (r.lastItem < start) {
      crashes.push(`the case runner failed before its first case: ${r.crashed ?? JSON.stringify(r)}`);
      break;
    }
    if (r.stalled) hangs.push(`HANG (no progress for ${r.stalled.ms} ms) at ${r.stalled.label}`);
    else if (r.memory) crashes.push(`MEMORY: over ${MAX_RSS_MB} MB (${r.memory.rssMb} MB resident) at ${r.memory.label}`);
    else crashes.push(`CRASH: ${r.crashed ?? '?'}`);
    start = r.lastItem + 1;
  }
  const elapsed = Date.now() - t0;

  test(`security: ${all.length} hostile expressions × [${backends.join(', ')}] (${backendSummary()})`, () => {
    const slowest = results.slice().sort((a, b) => b.ms - a.ms).slice(0, 5);
    console.log(`# security: ${results.length} runs in ${elapsed} ms; slowest: ${slowest.map((r) => `${r.backend} ${JSON.stringify(r.text.slice(0, 40))} ${r.ms.toFixed(0)} ms`).join(' | ')}`);
    assert.deepEqual(hangs, [], 'no hostile expression may hang the evaluator');
    assert.deepEqual(crashes, [], 'no hostile expression may crash the process or blow up its memory');
    assert.equal(results.length, total - hangs.length - crashes.length);
  });

  const families = [...new Set(all.map((c) => c.family))];
  for (const family of families) {
    test(`security: ${family}`, () => {
      const bad = results.filter((r) => r.family === family && r.problems.length);
      if (bad.length) {
        assert.fail(`${bad.length} case(s) failed:\n${bad.map((r) => {
          const text = r.text.length > 120 ? `${JSON.stringify(r.text.slice(0, 120))}…(${r.text.length} chars)` : JSON.stringify(r.text);
          return `  [${r.backend}] ${text}\n      ${r.problems.join('\n      ')}\n      got: ${r.got}`;
        }).join('\n')}`);
      }
    });
  }
}
