/**
 * The C++ addon's expression VM (native/), through its host src/backend/native.ts (the addon is loaded by addon.ts):
 * hand-assembled scalar and batch programs, the fault words, the boundary checks of the addon, and
 * loading inside worker threads and piscina. (Agreement with the js backend on whole expressions is
 * test/expr-parity.test.ts's and test/expr-differential.test.ts's, under WPIPE_BACKEND=native.)
 *
 * Run: node --import tsx --test test/native-vm.test.ts (build first: npm run build:native). Without
 * the addon the suite is skipped, unless WPIPE_BACKEND=native, which makes a missing addon a failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker, isMainThread } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import {
  BinOp, CmpOp, ErrorKind, FaultWord, Fn, Limits, Method, Op, Reason, SliceFlag, Tag, faultWords, type Program,
} from '../src/expr/bytecode.js';
import { PyFloat, PyTuple } from '../src/vm/values.js';
import { loadNativeVm } from '../src/backend/native.js';
import { nativeStatus } from '../src/backend/addon.js';
import { ColumnKind, VmFault, type BatchProgram, type ExprVm, type VmColumn } from '../src/backend/types.js';

// ------------------------------------------------------------------------------------------------
// Piscina task (this file is also the worker module of the piscina test)

/** Evaluates `x > 5 and kind == 'a'` and a small batch inside whatever thread imports this. */
export default function piscinaTask(input: { x: number; kind: string }): { scalar: unknown; batch: number[]; threadOk: boolean } {
  const vm = loadNativeVm();
  const scalar = vm.prepareScalar(X_GT_5_AND_KIND_A).evaluate(input);
  const out = new Uint8Array(4);
  const failed = vm.prepareBatch(BATCH_OR).run([Float64Array.of(1, 9, 2, 30), Float64Array.of(1, 1, 9, 20)], 4, out);
  return { scalar, batch: [failed, ...out], threadOk: !isMainThread };
}

// ------------------------------------------------------------------------------------------------
// Hand assembly

interface Asm {
  code: number[];
  consts?: unknown[];
  names?: string[];
  strings?: string[];
}

function program({ code, consts = [], names = [], strings = [] }: Asm, text = '<hand-assembled>'): Program {
  return {
    text,
    code: Int32Array.from(code),
    positions: new Int32Array(code.length).fill(-1),
    consts,
    names,
    strings,
    maxStack: 8,
  };
}

function batchProgram(asm: Asm, kinds: number[]): BatchProgram {
  return { ...program(asm), kinds: kinds as BatchProgram['kinds'] };
}

// x > 5 and kind == 'a'
//  0 NAME 0; 2 CONST 0; 4 COMPARE GT; 6 JUMP_IF_FALSE_OR_POP 14; 8 NAME 1; 10 CONST 1; 12 COMPARE EQ; 14 RETURN
const X_GT_5_AND_KIND_A = program({
  code: [Op.NAME, 0, Op.CONST, 0, Op.COMPARE, CmpOp.GT, Op.JUMP_IF_FALSE_OR_POP, 14, Op.NAME, 1, Op.CONST, 1, Op.COMPARE, CmpOp.EQ, Op.RETURN],
  consts: [5, 'a'],
  names: ['x', 'kind'],
});

// x > 5 and y < 3 or x * y > 400, over columns x (0) and y (1)
//  0 NAME 0; 2 CONST 0; 4 COMPARE GT; 6 JIF_OR_POP 14; 8 NAME 1; 10 CONST 1; 12 COMPARE LT;
// 14 JIT_OR_POP 26; 16 NAME 0; 18 NAME 1; 20 BINOP MUL; 22 CONST 2; 24 COMPARE GT; 26 RETURN
const BATCH_OR = batchProgram({
  code: [
    Op.NAME, 0, Op.CONST, 0, Op.COMPARE, CmpOp.GT, Op.JUMP_IF_FALSE_OR_POP, 14, Op.NAME, 1, Op.CONST, 1, Op.COMPARE, CmpOp.LT,
    Op.JUMP_IF_TRUE_OR_POP, 26, Op.NAME, 0, Op.NAME, 1, Op.BINOP, BinOp.MUL, Op.CONST, 2, Op.COMPARE, CmpOp.GT, Op.RETURN,
  ],
  consts: [5, 3, 400],
}, [ColumnKind.NUMBER, ColumnKind.NUMBER]);

const batchOrJs = (x: number, y: number): number => ((x > 5 && y < 3) || x * y > 400 ? 1 : 0);

// ------------------------------------------------------------------------------------------------

const status = isMainThread ? nativeStatus() : undefined;
const required = process.env.WPIPE_BACKEND === 'native';
const skip = isMainThread && !status!.available && !required ? `native addon not built (${status!.detail})` : false;

function vm(): ExprVm {
  return loadNativeVm();
}

/**
 * Evaluates a program; returns the value or the fault words (compared with faultWords(...), word by
 * FaultWord, never by position: the contract may reorder or add words).
 */
function run(p: Program, ctx: Record<string, unknown> = {}): { value?: unknown; fault?: Int32Array } {
  try {
    return { value: vm().prepareScalar(p).evaluate(ctx) };
  } catch (e) {
    if (e instanceof VmFault) return { fault: e.fault };
    throw e;
  }
}

if (isMainThread) {
  test('the addon loads, reports its Node-API version and CPU features', { skip }, () => {
    assert.equal(status!.available, true, status!.detail);
    assert.equal(status!.name, 'native');
    assert.match(status!.detail, /wpipe\.node \(Node-API 8\)$/);
    assert.ok(status!.features.includes('sse2') || process.arch !== 'x64', String(status!.features));
    assert.equal(vm().name, 'native');
    assert.equal(loadNativeVm(), vm(), 'the VM object is created once');
  });

  test('hand-assembled: x > 5 and kind == \'a\'', { skip }, () => {
    assert.deepEqual(run(X_GT_5_AND_KIND_A, { x: 7, kind: 'a' }), { value: true });
    assert.deepEqual(run(X_GT_5_AND_KIND_A, { x: 7, kind: 'b' }), { value: false });
    assert.deepEqual(run(X_GT_5_AND_KIND_A, { x: 3, kind: 'a' }), { value: false });
    // `and` returns its operand: kind is never read when x > 5 is false
    assert.deepEqual(run(X_GT_5_AND_KIND_A, { x: 3 }), { value: false });
    // kind missing where it is read: NameError at the NAME instruction (pc 8)
    assert.deepEqual(run(X_GT_5_AND_KIND_A, { x: 7 }), { fault: faultWords(ErrorKind.NameError, Reason.NAME_MISSING, 8) });
    // a str against an int: TypeError at COMPARE (pc 4) with both tags
    assert.deepEqual(run(X_GT_5_AND_KIND_A, { x: 'q', kind: 'a' }), {
      fault: faultWords(ErrorKind.TypeError, Reason.BAD_OPERANDS, 4, Tag.STR, Tag.INT),
    });
  });

  test('hand-assembled: arithmetic follows Python (floor division, modulo, int range, pow)', { skip }, () => {
    const bin = (op: number, a: unknown, b: unknown) =>
      run(program({ code: [Op.CONST, 0, Op.CONST, 1, Op.BINOP, op, Op.RETURN], consts: [a, b] }));
    assert.deepEqual(bin(BinOp.FLOORDIV, -7, 2), { value: -4 });
    assert.deepEqual(bin(BinOp.MOD, 7, -3), { value: -2 });
    assert.deepEqual(bin(BinOp.FLOORDIV, new PyFloat(7), 2), { value: new PyFloat(3) });
    assert.deepEqual(bin(BinOp.MOD, -7.5, 2), { value: 0.5 });
    assert.deepEqual(bin(BinOp.MUL, 0, -5), { value: 0 });
    assert.ok(Object.is(bin(BinOp.MUL, 0, -5).value, 0), 'int results are never -0');
    assert.deepEqual(bin(BinOp.POW, 3, 33), { value: 5559060566555523 });
    assert.deepEqual(bin(BinOp.POW, 2, 53), { fault: faultWords(ErrorKind.OverflowError, Reason.INT_RANGE, 4) });
    assert.deepEqual(bin(BinOp.ADD, Limits.MAX_INT, 1), { fault: faultWords(ErrorKind.OverflowError, Reason.INT_RANGE, 4) });
    assert.deepEqual(bin(BinOp.POW, 2, -1), { value: 0.5 });
    assert.deepEqual(bin(BinOp.POW, -8, 1 / 3), { fault: faultWords(ErrorKind.ValueError, Reason.COMPLEX_RESULT, 4) });
    assert.deepEqual(bin(BinOp.POW, 0, -1), { fault: faultWords(ErrorKind.ZeroDivisionError, Reason.POW_ZERO_NEG, 4, Tag.FLOAT, Tag.FLOAT) });
    assert.deepEqual(bin(BinOp.TRUEDIV, 1, 0), { fault: faultWords(ErrorKind.ZeroDivisionError, Reason.DIV_ZERO, 4, Tag.INT, Tag.INT) });
    assert.deepEqual(bin(BinOp.TRUEDIV, 1.5, false), { fault: faultWords(ErrorKind.ZeroDivisionError, Reason.DIV_ZERO, 4, Tag.FLOAT, Tag.FALSE) });
    assert.deepEqual(bin(BinOp.POW, 1e300, 2), { fault: faultWords(ErrorKind.OverflowError, Reason.FLOAT_RANGE, 4) });
    assert.deepEqual(bin(BinOp.ADD, 'ab', 'cd'), { value: 'abcd' });
    assert.deepEqual(bin(BinOp.MUL, 3, [1]), { value: [1, 1, 1] });
    assert.deepEqual(bin(BinOp.MUL, 'x', new PyFloat(2)), { fault: faultWords(ErrorKind.TypeError, Reason.BAD_OPERANDS, 4, Tag.STR, Tag.FLOAT) });
  });

  test('hand-assembled: values are produced within the size limit, checked before allocating', { skip }, () => {
    const big = run(program({ code: [Op.CONST, 0, Op.CONST, 1, Op.BINOP, BinOp.MUL, Op.RETURN], consts: ['ab', 2 ** 40] }));
    assert.deepEqual(big, { fault: faultWords(ErrorKind.LimitError, Reason.VALUE_TOO_LARGE, 4) });
    // a result bigger than the reused output buffer comes back whole (takeResult path)
    const long = run(program({ code: [Op.CONST, 0, Op.CONST, 1, Op.BINOP, BinOp.MUL, Op.RETURN], consts: ['ab', 500_000] }));
    assert.equal((long.value as string).length, 1_000_000);
    assert.equal((long.value as string).slice(-4), 'abab');
  });

  test('hand-assembled: strings are code points, case mapping is Python 3.11', { skip }, () => {
    const method = (m: number, recv: string, ...args: unknown[]) =>
      run(program({
        code: [Op.CONST, 0, ...args.flatMap((_, i) => [Op.CONST, i + 1]), Op.METHOD, m, args.length, Op.RETURN],
        consts: [recv, ...args],
      })).value;
    assert.equal(method(Method.upper, 'straße ﬁ'), 'STRASSE FI');
    assert.equal(method(Method.lower, 'İ'), 'i̇');
    assert.equal(method(Method.lower, 'ΟΔΟΣ ΟΔΟΣ.'), 'οδος οδος.');
    assert.equal(method(Method.lower, 'Σ'), 'σ');
    assert.equal(method(Method.strip, '\u00a0\u3000 x\u2028'), 'x');
    assert.deepEqual(method(Method.split, '  a b  ', null, 1), ['a', 'b  ']);
    assert.deepEqual(method(Method.split, 'a,b,,c', ','), ['a', 'b', '', 'c']);
    assert.equal(method(Method.replace, 'a😀b', '', '-'), '-a-😀-b-');
    assert.equal(method(Method.startswith, 'hello', new PyTuple(['x', 'he'])), true);
    const len = run(program({ code: [Op.NAME, 0, Op.CALL, Fn.len, 1, Op.RETURN], names: ['s'] }), { s: 'a😀b' });
    assert.deepEqual(len, { value: 3 });
    const rev = run(program({ code: [Op.NAME, 0, Op.CONST, 0, Op.SLICE, SliceFlag.STEP, Op.RETURN], names: ['s'], consts: [-1] }), { s: 'a😀b' });
    assert.deepEqual(rev, { value: 'b😀a' });
    const nonStr = run(program({ code: [Op.CONST, 0, Op.METHOD, Method.upper, 0, Op.RETURN], consts: [5] }));
    assert.deepEqual(nonStr, { fault: faultWords(ErrorKind.AttributeError, Reason.NO_ATTRIBUTE, 2, Tag.INT) });
  });

  test('hand-assembled: str(), int(), float() and round() follow Python', { skip }, () => {
    const call = (fn: number, ...args: unknown[]) =>
      run(program({ code: [...args.flatMap((_, i) => [Op.CONST, i]), Op.CALL, fn, args.length, Op.RETURN], consts: args }));
    const cases: Array<[unknown, string]> = [
      [new PyFloat(1e16), '1e+16'], [1e-5, '1e-05'], [0.1, '0.1'], [new PyFloat(123), '123.0'], [1.5e300, '1.5e+300'],
      [new PyFloat(-0), '-0.0'], [NaN, 'nan'], [-Infinity, '-inf'], [new PyFloat(1e15), '1000000000000000.0'], [0.0001, '0.0001'],
      [[1, "it's", new PyTuple([2]), null, true], `[1, "it's", (2,), None, True]`], [{ k: 'a\nb\x7f' }, "{'k': 'a\\nb\\x7f'}"],
    ];
    for (const [v, want] of cases) assert.deepEqual(call(Fn.str, v), { value: want }, `str(${String(v)})`);
    assert.deepEqual(call(Fn.int, ' -1_000 '), { value: -1000 });
    assert.deepEqual(call(Fn.int, '1__0'), { fault: faultWords(ErrorKind.ValueError, Reason.INVALID_INT_LITERAL, 2) });
    assert.deepEqual(call(Fn.int, '99999999999999999'), { fault: faultWords(ErrorKind.OverflowError, Reason.INT_RANGE, 2) });
    assert.deepEqual(call(Fn.int, -2.7), { value: -2 });
    assert.deepEqual(call(Fn.float, ' 1_0.5e1 '), { value: new PyFloat(105) });
    assert.deepEqual(call(Fn.float, '-Infinity'), { value: -Infinity });
    assert.deepEqual(call(Fn.float, '1e999'), { value: Infinity });
    assert.deepEqual(call(Fn.float, '1e'), { fault: faultWords(ErrorKind.ValueError, Reason.INVALID_FLOAT_LITERAL, 2) });
    assert.deepEqual(call(Fn.round, 2.5), { value: 2 });
    assert.deepEqual(call(Fn.round, -0.5), { value: 0 });
    assert.deepEqual(call(Fn.round, 15, -1), { value: 20 });
    assert.deepEqual(call(Fn.round, 25, -1), { value: 20 });
    assert.deepEqual(call(Fn.round, -0.4, 0), { value: new PyFloat(-0) });
    assert.deepEqual(call(Fn.round, 1.5, 400), { value: 1.5 });
    assert.deepEqual(call(Fn.round, Infinity), { fault: faultWords(ErrorKind.OverflowError, Reason.INF_TO_INT, 2) });
    assert.deepEqual(call(Fn.min, [3, 1, 2]), { value: 1 });
    assert.deepEqual(call(Fn.max, 'hello'), { value: 'o' });
    assert.deepEqual(call(Fn.min), { fault: faultWords(ErrorKind.TypeError, Reason.ARG_COUNT, 0) });
    assert.deepEqual(call(Fn.sum, [1, 2.5]), { value: 3.5 });
    assert.deepEqual(call(Fn.sum, [1], 'a'), { fault: faultWords(ErrorKind.TypeError, Reason.SUM_STRINGS, 4) });
  });

  test('a context that cannot be put on a tape becomes a LimitError fault at pc 0', { skip }, () => {
    let deep: unknown = 1;
    for (let i = 0; i < Limits.MAX_DEPTH + 5; i++) deep = [deep];
    const p = program({ code: [Op.NAME, 0, Op.RETURN], names: ['x'] });
    assert.deepEqual(run(p, { x: deep }), { fault: faultWords(ErrorKind.LimitError, Reason.DEPTH, 0) });
    // dicts keep their values as the context had them (no float boxes inside)
    assert.deepEqual(run(p, { x: { a: 1e308, b: [2 ** 53] } }), { value: { a: 1e308, b: [2 ** 53] } });
  });

  test('a malformed program is refused when prepared, with code WPIPE_ERR_INTERNAL', { skip }, () => {
    const bad: Array<[string, number[]]> = [
      ['bad opcode', [99, Op.RETURN]],
      ['stack underflow', [Op.RETURN]],
      ['backward jump', [Op.CONST, 0, Op.JUMP, 0, Op.RETURN]],
      ['constant index', [Op.CONST, 7, Op.RETURN]],
      ['falls off the end', [Op.CONST, 0]],
      ['truncated', [Op.CONST]],
    ];
    for (const [what, code] of bad) {
      assert.throws(() => vm().prepareScalar(program({ code, consts: [1] })), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'WPIPE_ERR_INTERNAL', what);
        assert.match(e.message, /invalid program/, what);
        return true;
      });
    }
    // batch programs are limited to the typed subset
    assert.throws(() => vm().prepareBatch(batchProgram({ code: [Op.CONST, 0, Op.RETURN], consts: ['s'] }, [])), /batch/);
    assert.throws(() => vm().prepareBatch(batchProgram({ code: [Op.NAME, 0, Op.ATTR, 0, Op.RETURN], strings: ['a'] }, [0])), /batch/);
  });

  test('batch: x > 5 and y < 3 or x * y > 400 equals a JS loop at chunk boundaries', { skip }, () => {
    const ev = vm().prepareBatch(BATCH_OR);
    for (const rows of [0, 1, 7, 1023, 1024, 1025, 4097, 100_003]) {
      const x = new Float64Array(rows);
      const y = new Float64Array(rows);
      for (let i = 0; i < rows; i++) {
        x[i] = ((i * 7919) % 100) + (i % 3 === 0 ? 0.5 : 0);
        y[i] = ((i * 104729) % 50) / 3 - 2;
      }
      if (rows > 10) { x[3] = NaN; y[5] = Infinity; x[6] = -0; }
      const out = new Uint8Array(rows).fill(7);
      assert.equal(ev.run([x, y], rows, out), -1);
      for (let i = 0; i < rows; i++) assert.equal(out[i], batchOrJs(x[i]!, y[i]!), `row ${i} of ${rows}`);
    }
  });

  test('batch: the first failing row is reported with its fault, as the scalar VM would fail', { skip }, () => {
    // x / (y - 2) > 1
    const p = batchProgram({
      code: [Op.NAME, 0, Op.NAME, 1, Op.CONST, 0, Op.BINOP, BinOp.SUB, Op.BINOP, BinOp.TRUEDIV, Op.CONST, 1, Op.COMPARE, CmpOp.GT, Op.RETURN],
      consts: [2, 1],
    }, [ColumnKind.NUMBER, ColumnKind.NUMBER]);
    const rows = 5000;
    const x = new Float64Array(rows).fill(3);
    const y = new Float64Array(rows).fill(5);
    y[4000] = 2;
    y[2500] = 2;
    const ev = vm().prepareBatch(p);
    const out = new Uint8Array(rows);
    assert.equal(ev.run([x, y], rows, out), 2500);
    assert.deepEqual(ev.fault, faultWords(ErrorKind.ZeroDivisionError, Reason.DIV_ZERO, 8, Tag.INT, Tag.INT, 2500));
    x[2500] = 0.5;
    assert.equal(ev.run([x, y], rows, out), 2500);
    assert.deepEqual(ev.fault, faultWords(ErrorKind.ZeroDivisionError, Reason.DIV_ZERO, 8, Tag.FLOAT, Tag.INT, 2500));
    // short-circuit: a row where `and` stops before the division does not fail
    // x > 100 and x / (y - 2) > 1
    const guarded = batchProgram({
      code: [
        Op.NAME, 0, Op.CONST, 2, Op.COMPARE, CmpOp.GT, Op.JUMP_IF_FALSE_OR_POP, 22,
        Op.NAME, 0, Op.NAME, 1, Op.CONST, 0, Op.BINOP, BinOp.SUB, Op.BINOP, BinOp.TRUEDIV, Op.CONST, 1, Op.COMPARE, CmpOp.GT, Op.RETURN,
      ],
      consts: [2, 1, 100],
    }, [ColumnKind.NUMBER, ColumnKind.NUMBER]);
    x.fill(3);
    x[4000] = 1000;
    const g = vm().prepareBatch(guarded);
    assert.equal(g.run([x, y], rows, out), 4000);
    assert.equal(g.fault[FaultWord.ROW], 4000);
    x[4000] = 3;
    assert.equal(g.run([x, y], rows, out), -1);
    assert.ok(out.every((v) => v === 0));
  });

  test('batch: int overflow, bool columns, ternaries, chains and calls', { skip }, () => {
    // (x if b else y) * 2 > 3 and not b
    const tern = batchProgram({
      code: [
        Op.NAME, 2, Op.POP_JUMP_IF_FALSE, 8, Op.NAME, 0, Op.JUMP, 10, Op.NAME, 1,
        Op.CONST, 0, Op.BINOP, BinOp.MUL, Op.CONST, 1, Op.COMPARE, CmpOp.GT, Op.JUMP_IF_FALSE_OR_POP, 23, Op.NAME, 2, Op.NOT, Op.RETURN,
      ],
      consts: [2, 3],
    }, [ColumnKind.NUMBER, ColumnKind.NUMBER, ColumnKind.BOOL]);
    const rows = 3000;
    const x = new Float64Array(rows);
    const y = new Float64Array(rows);
    const b = new Uint8Array(rows);
    for (let i = 0; i < rows; i++) { x[i] = i % 7; y[i] = (i % 5) - 1; b[i] = i % 3 === 0 ? 1 : 0; }
    const out = new Uint8Array(rows);
    assert.equal(vm().prepareBatch(tern).run([x, y, b], rows, out), -1);
    for (let i = 0; i < rows; i++) {
      const want = ((b[i] ? x[i]! : y[i]!) * 2 > 3 && !b[i]) ? 1 : 0;
      assert.equal(out[i], want, `row ${i}`);
    }
    // 0 < x < 5: a chain
    const chain = batchProgram({
      code: [Op.CONST, 0, Op.NAME, 0, Op.COMPARE_CHAIN, CmpOp.LT, 11, Op.CONST, 1, Op.COMPARE, CmpOp.LT, Op.RETURN],
      consts: [0, 5],
    }, [ColumnKind.NUMBER]);
    assert.equal(vm().prepareBatch(chain).run([x], rows, out), -1);
    for (let i = 0; i < rows; i++) assert.equal(out[i], x[i]! > 0 && x[i]! < 5 ? 1 : 0);
    // x * 2 > 0 where x = 2**52: an int result beyond MAX_INT fails; as a float it does not
    const ovf = batchProgram({ code: [Op.NAME, 0, Op.CONST, 0, Op.BINOP, BinOp.MUL, Op.CONST, 1, Op.COMPARE, CmpOp.GT, Op.RETURN], consts: [2, 0] }, [0]);
    const big = Float64Array.of(1, 2, 2 ** 52, 2 ** 60);
    const ev = vm().prepareBatch(ovf);
    assert.equal(ev.run([big], 4, out), 2);
    assert.deepEqual(ev.fault, faultWords(ErrorKind.OverflowError, Reason.INT_RANGE, 4, -1, -1, 2));
    assert.equal(ev.run([Float64Array.of(1, 2, 2 ** 60)], 3, out), -1, '2**60 is not a safe integer: a float');
    // round(x) > 2, int(x) and min(x, y)
    const calls = batchProgram({
      code: [Op.NAME, 0, Op.CALL, Fn.round, 1, Op.NAME, 1, Op.CALL, Fn.min, 2, Op.CONST, 0, Op.COMPARE, CmpOp.GT, Op.RETURN],
      consts: [2],
    }, [0, 0]);
    const cx = Float64Array.of(2.5, 3.5, 10, NaN);
    const cy = Float64Array.of(9, 9, 1, 9);
    const ce = vm().prepareBatch(calls);
    assert.equal(ce.run([cx, cy], 3, out), -1);
    assert.deepEqual(Array.from(out.subarray(0, 3)), [0, 1, 0]);
    assert.equal(ce.run([cx, cy], 4, out), 3);
    assert.deepEqual(ce.fault, faultWords(ErrorKind.ValueError, Reason.NAN_TO_INT, 2, -1, -1, 3));
  });

  test('batch: wrong columns are refused with a clear error', { skip }, () => {
    const ev = vm().prepareBatch(BATCH_OR);
    const out = new Uint8Array(4);
    assert.throws(() => ev.run([new Float64Array(4)], 4, out), /fewer columns/);
    assert.throws(() => ev.run([new Float64Array(4), new Uint8Array(4)], 4, out), /wrong type/);
    assert.throws(() => ev.run([new Float64Array(2), new Float64Array(4)], 4, out), /shorter than rows/);
    assert.throws(() => ev.run([new Float64Array(4), new Float64Array(4)], 4, new Uint8Array(2)), TypeError);
    assert.throws(() => ev.run([[1, 2] as unknown as VmColumn, new Float64Array(4)], 2, out), TypeError);
  });

  test('the addon loads and works inside worker threads (several at once, and after they exit)', { skip }, async () => {
    const api = import.meta.resolve('tsx/esm/api');
    const self = import.meta.url;
    const code =
      `const { parentPort, workerData } = require('node:worker_threads');` +
      `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(self)}); })` +
      `.then((mod) => parentPort.postMessage(mod.default(workerData)))` +
      `.catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));`;
    const once = (input: { x: number; kind: string }) =>
      new Promise<unknown>((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: input });
        w.once('message', (m) => { resolve(m); void w.terminate(); });
        w.once('error', reject);
      });
    const results = await Promise.all([once({ x: 7, kind: 'a' }), once({ x: 1, kind: 'a' }), once({ x: 9, kind: 'b' })]);
    assert.deepEqual(results, [
      { scalar: true, batch: [-1, 0, 1, 0, 1], threadOk: true },
      { scalar: false, batch: [-1, 0, 1, 0, 1], threadOk: true },
      { scalar: false, batch: [-1, 0, 1, 0, 1], threadOk: true },
    ]);
    // the main thread's instance is unaffected by the workers' environments being torn down
    assert.deepEqual(piscinaTask({ x: 6, kind: 'a' }), { scalar: true, batch: [-1, 0, 1, 0, 1], threadOk: false });
  });

  test('the addon loads inside piscina workers', { skip }, async () => {
    const { Piscina } = await import('piscina');
    const pool = new Piscina({ filename: fileURLToPath(import.meta.url), execArgv: ['--import', 'tsx'], maxThreads: 2, minThreads: 1 });
    try {
      const results = await Promise.all([1, 6, 8, 2].map((x) => pool.run({ x, kind: 'a' })));
      assert.deepEqual(results.map((r: { scalar: unknown }) => r.scalar), [false, true, true, false]);
      for (const r of results as Array<{ batch: number[]; threadOk: boolean }>) {
        assert.deepEqual(r.batch, [-1, 0, 1, 0, 1]);
        assert.equal(r.threadOk, true);
      }
    } finally {
      await pool.destroy();
    }
  });
}
