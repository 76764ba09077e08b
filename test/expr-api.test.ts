// The expression API under the backend chosen by WPIPE_BACKEND (npm test runs this file once per
// backend): compileExpression, evaluate/test/testBatch/names, errors with positions, caching.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { compileExpression, ExpressionError } from '../src/index.js';

const backend = (process.env.WPIPE_BACKEND ?? 'auto') as 'auto' | 'js' | 'wasm' | 'native';
const compile = (text: string) => compileExpression(text, { backend });

describe(`expressions (${backend})`, () => {
  test('the README example', () => {
    const e = compile("x > 5 and kind == 'a'");
    assert.equal(e.evaluate({ x: 7, kind: 'a' }), true);
    assert.equal(e.test({ x: 7, kind: 'a' }), true);
    assert.deepEqual([...e.testBatch({ x: new Float64Array([1, 9]), kind: ['a', 'a'] })], [0, 1]);
    assert.deepEqual(e.names, ['x', 'kind']);
  });

  test('operand-returning and/or, conditional, chains', () => {
    assert.equal(compile("x or 'default'").evaluate({ x: '' }), 'default');
    assert.equal(compile('x and y').evaluate({ x: 3, y: 0 }), 0);
    assert.equal(compile("'a' if x else 'b'").evaluate({ x: [] }), 'b');
    assert.equal(compile('0 <= t <= 30').evaluate({ t: 30 }), true);
    assert.equal(compile('0 <= t <= 30').evaluate({ t: 31 }), false);
    assert.equal(compile('1 < 2 < 3 > 2').evaluate({}), true);
  });

  test("optional keys: 'k' in d and d.get(k, default), in conditions and over batches", () => {
    const ctx = { data: { k: 1, get: 'shadow', nested: { n: 2 } } };
    assert.equal(compile("'k' in data").evaluate(ctx), true);
    assert.equal(compile("'z' in data").evaluate(ctx), false);
    assert.equal(compile("data.get('k', 3)").evaluate(ctx), 1);
    assert.equal(compile("data.get('z', 3)").evaluate(ctx), 3);
    assert.equal(compile("data.get('z')").evaluate(ctx), null);
    assert.equal(compile("data.get('nested').get('n') + data.get('z', 0)").evaluate(ctx), 2);
    // A key named `get`: the call is the method, the bare attribute the key.
    assert.equal(compile("data.get('get')").evaluate(ctx), 'shadow');
    assert.equal(compile('data.get').evaluate(ctx), 'shadow');
    assert.equal(compile("data.get('k') == 1").test(ctx), true);
    const fault = (text: string, c: object, message: RegExp) =>
      assert.throws(() => compile(text).evaluate(c), (e: unknown) => {
        assert.ok(e instanceof ExpressionError);
        assert.match((e as Error).message, message);
        return true;
      });
    fault("s.get('a')", { s: 'abc' }, /AttributeError: 'str' object has no attribute 'get'/);
    fault("m.get('a')", { m: new Map([['a', 1]]) }, /AttributeError/);
    fault('data.get()', ctx, /TypeError/);
    fault("data.get('k', 1, 2)", ctx, /TypeError/);
    fault('data.get([1])', ctx, /TypeError: unhashable type: 'list'/);
    // Over a batch: a column of dicts, row by row.
    const rows = compile("d.get('x', 0) > 1").testBatch({ d: [{ x: 2 }, {}, { x: 1 }, { y: 5, x: 5 }] });
    assert.deepEqual([...rows], [1, 0, 0, 1]);
  });

  test('Python arithmetic', () => {
    assert.equal(compile('-7 // 2').evaluate({}), -4);
    assert.equal(compile('-7 % 3').evaluate({}), 2);
    assert.equal(compile('7 % -3').evaluate({}), -2);
    assert.equal(compile('str(7.0 // 2)').evaluate({}), '3.0');
    assert.equal(compile('7 / 2').evaluate({}), 3.5);
    assert.equal(compile('str(4 / 2)').evaluate({}), '2.0');
    assert.equal(compile('2 ** -1').evaluate({}), 0.5);
    assert.equal(compile('round(2.5) + round(3.5)').evaluate({}), 6);
    assert.equal(compile('round(2.675, 2)').evaluate({}), 2.67);
    assert.equal(compile('True + True').evaluate({}), 2);
  });

  test('in on strings, lists and dicts; attribute and subscription on plain objects', () => {
    assert.equal(compile("'err' in message.lower()").evaluate({ message: 'An ERROR' }), true);
    assert.equal(compile("role in ['admin', 'moderator']").evaluate({ role: 'admin' }), true);
    assert.equal(compile("'key' in data and data['key'] > 0").evaluate({ data: { key: 2 } }), true);
    assert.equal(compile('data.inner.value').evaluate({ data: { inner: { value: 5 } } }), 5);
    assert.equal(compile('items[-1]').evaluate({ items: [1, 2, 3] }), 3);
    assert.deepEqual(compile('items[::-1]').evaluate({ items: [1, 2, 3] }), [3, 2, 1]);
    assert.deepEqual(compile('(1, 2)').evaluate({}), [1, 2]);
  });

  test('comparing a number with a string is an error, not false', () => {
    assert.throws(() => compile("x < 'a'").evaluate({ x: 1 }), (e: unknown) =>
      e instanceof ExpressionError && e.code === 'WPIPE_ERR_EXPRESSION_EVAL' && e.pythonType === 'TypeError');
    assert.equal(compile("x == 'a'").evaluate({ x: 1 }), false);
  });

  test('a missing name is a NameError with the text and a caret at its position', () => {
    const e = compile('x > 1 and missing == 2');
    assert.throws(() => e.evaluate({ x: 5 }), (err: unknown) => {
      assert.ok(err instanceof ExpressionError);
      assert.equal(err.code, 'WPIPE_ERR_EXPRESSION_EVAL');
      assert.equal(err.errorCode, 500);
      assert.equal(err.pythonType, 'NameError');
      assert.equal(err.position, 10);
      assert.match(err.message, /name 'missing' is not defined/);
      assert.match(err.message, /\n {2}x > 1 and missing == 2\n {12}\^/);
      return true;
    });
  });

  test('syntax errors surface at compile time with a position', () => {
    assert.throws(() => compile('x > > 1'), (err: unknown) =>
      err instanceof ExpressionError && err.code === 'WPIPE_ERR_EXPRESSION_SYNTAX' && err.position === 4);
    assert.throws(() => compile(''), /empty expression/);
    assert.throws(() => compile('x = 1'), /did you mean '=='/);
  });

  test('limits: produced values and integers', () => {
    for (const text of ["'a' * 10**9", '[1] * 10**9', '10**10**10']) {
      assert.throws(() => compile(text).evaluate({}), (e: unknown) => e instanceof ExpressionError && e.code === 'WPIPE_ERR_EXPRESSION_EVAL', text);
    }
  });

  test('testBatch over typed arrays, number arrays, booleans and strings', () => {
    const e = compile("x > 5 and y < 3 or flag and kind == 'b'");
    const x = new Float64Array([1, 9, 9, 0, 6]);
    const y = [0, 0, 5, 0, 4];
    const flag = [false, false, false, true, true];
    const kind = ['a', 'a', 'a', 'b', 'a'];
    assert.deepEqual([...e.testBatch({ x, y, flag, kind })], [0, 1, 0, 1, 0]);
    assert.deepEqual([...e.testBatch({ x: new Int32Array([6]), y: [1], flag: [true], kind: ['c'] })], [1]);
    assert.equal(e.testBatch({ x: [], y: [], flag: [], kind: [] }).length, 0);
  });

  test('testBatch matches row-by-row test at boundary sizes', () => {
    const e = compile('a * b > 400 or a // 3 == 2 and not b % 2');
    for (const n of [1, 7, 1023, 1024, 1025, 4097]) {
      const a = new Float64Array(n);
      const b = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        a[i] = (i * 7919) % 41 - 10;
        b[i] = (i * 104729) % 37 - 5;
      }
      const got = e.testBatch({ a, b });
      for (let i = 0; i < n; i++) assert.equal(got[i], e.test({ a: a[i], b: b[i] }) ? 1 : 0, `n=${n} row ${i}`);
    }
  });

  test('testBatch reports the first failing row', () => {
    const e = compile('10 / x > 1');
    assert.throws(() => e.testBatch({ x: new Float64Array([1, 2, 0, 0]) }), (err: unknown) =>
      err instanceof ExpressionError && err.pythonType === 'ZeroDivisionError' && /row 2/.test(err.message));
    const guarded = compile('x != 0 and 10 / x > 1');
    assert.deepEqual([...guarded.testBatch({ x: new Float64Array([1, 2, 0, 20]) })], [1, 1, 0, 0]);
  });

  test('testBatch validates its columns', () => {
    const e = compile('x > y');
    assert.throws(() => e.testBatch({ x: [1, 2], y: [1] }), RangeError);
    assert.throws(() => e.testBatch(null as never), TypeError);
    assert.throws(() => e.testBatch({ x: [1] } as never), (err: unknown) => err instanceof ExpressionError && err.pythonType === 'NameError');
  });

  test('compiled expressions are cached by text', () => {
    assert.equal(compile('cached_x + 1'), compile('cached_x + 1'));
  });

  test('a context must be a plain object', () => {
    assert.throws(() => compile('1').evaluate(null as never), TypeError);
    assert.throws(() => compile('1').evaluate(new Map() as never), TypeError);
  });

  test('prototype properties are not context names', () => {
    for (const name of ['toString', 'hasOwnProperty', 'valueOf']) {
      assert.throws(() => compile(name).evaluate({}), (e: unknown) => e instanceof ExpressionError && e.pythonType === 'NameError');
      assert.equal(compile(name).evaluate({ [name]: 1 }), 1);
    }
  });
});
