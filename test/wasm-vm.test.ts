/**
 * The AssemblyScript VM (wasm/wpipe.wasm) driven directly through src/backend/wasm.ts:
 * hand-assembled programs, batch programs against row-by-row evaluation (boundary sizes, errors,
 * short-circuits), memory reuse, and loading inside a worker thread with a module compiled by the
 * main thread. (Agreement with the js backend on whole expressions is test/expr-parity.test.ts's and
 * test/expr-differential.test.ts's, under WPIPE_BACKEND=wasm: compileExpression's wasm backend runs
 * every scalar program on this VM, with no fallback to js.)
 *
 * Run: node --import tsx --test test/wasm-vm.test.ts   (after `npm run build:wasm`)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { BinOp, CmpOp, ErrorKind, FaultWord, Fn, Op, Reason, Tag, faultWords, type Program } from '../src/expr/bytecode.js';
import { PyFloat, PyTuple } from '../src/vm/values.js';
import { truthy } from '../src/vm/pyops.js';
import { ColumnKind, VmFault, type BatchProgram, type ColumnKindValue } from '../src/backend/types.js';
import { getWasmModule, loadWasmVm, planBatchProgram, wasmStatus } from '../src/backend/wasm.js';

// ------------------------------------------------------------------------------ worker side

if (!isMainThread) {
  const { useWasmModule } = await import('../src/backend/wasm.js');
  const module = (workerData as { wpipeWasmModule?: WebAssembly.Module }).wpipeWasmModule;
  if ((workerData as { adopt?: boolean }).adopt && module) useWasmModule(module);
  const vm = loadWasmVm();
  const v = vm.prepareScalar(prog([Op.NAME, 0, Op.CONST, 0, Op.BINOP, BinOp.MUL, Op.RETURN], [6], ['x'])).evaluate({ x: 7 });
  const out = new Uint8Array(3);
  const bad = vm.prepareBatch(batchProg([Op.NAME, 0, Op.CONST, 0, Op.COMPARE, CmpOp.GT, Op.RETURN], [1], [ColumnKind.NUMBER]))
    .run([Float64Array.of(0, 2, 3)], 3, out);
  parentPort!.postMessage({ v, out: Array.from(out), bad });
}

// ------------------------------------------------------------------------------ helpers

function prog(code: number[], consts: unknown[] = [], names: string[] = [], strings: string[] = [], maxStack = 8): Program {
  return {
    text: `<hand-assembled ${code.join(' ')}>`,
    code: Int32Array.from(code),
    positions: new Int32Array(code.length),
    consts,
    names,
    strings,
    maxStack,
  };
}

function batchProg(code: number[], consts: unknown[], kinds: ColumnKindValue[]): BatchProgram {
  return { ...prog(code, consts, kinds.map((_, i) => `c${i}`)), kinds };
}

function faultOf(fn: () => unknown): Int32Array {
  try {
    fn();
  } catch (e) {
    if (e instanceof VmFault) return e.fault;
    throw e;
  }
  assert.fail('expected a VmFault');
}

/** Equality that tells int from float (PyFloat boxes), NaN from NaN, -0 from 0 and tuples from lists. */
function same(a: unknown, b: unknown): boolean {
  if (a instanceof PyFloat || b instanceof PyFloat) {
    return a instanceof PyFloat && b instanceof PyFloat && Object.is(a.value, b.value);
  }
  if (typeof a === 'number' || typeof b === 'number') return Object.is(a, b);
  if (a instanceof PyTuple || b instanceof PyTuple) {
    return a instanceof PyTuple && b instanceof PyTuple && same(a.items, b.items);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => same(x, b[i]));
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    if (ka.length !== kb.length) return false;
    return ka.every((k) => Object.hasOwn(b, k) && same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return a === b;
}

let seed = 12345;
function rnd(): number {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 4294967296;
}
function pick<T>(xs: readonly T[]): T {
  return xs[Math.floor(rnd() * xs.length)]!;
}

// ------------------------------------------------------------------------------ tests

if (isMainThread) {
  const vm = loadWasmVm();

  test('loads once, reports its status, compiles the module once', () => {
    assert.equal(loadWasmVm(), vm);
    assert.equal(getWasmModule(), getWasmModule());
    const status = wasmStatus();
    assert.equal(status.name, 'wasm');
    assert.equal(status.available, true);
    assert.ok(status.features.includes('simd128'));
    assert.match(status.detail, /wpipe\.wasm/);
  });

  test('hand-assembled programs: constants, names, arithmetic, jumps, calls, methods', () => {
    assert.equal(vm.prepareScalar(prog([Op.CONST, 0, Op.CONST, 1, Op.BINOP, BinOp.ADD, Op.RETURN], [2, 3])).evaluate({}), 5);
    const div = vm.prepareScalar(prog([Op.CONST, 0, Op.CONST, 1, Op.BINOP, BinOp.FLOORDIV, Op.RETURN], [new PyFloat(7), 2]));
    assert.ok(same(div.evaluate({}), new PyFloat(3)));
    // x > 5 and kind == 'a'
    const p = prog([Op.NAME, 0, Op.CONST, 0, Op.COMPARE, CmpOp.GT, Op.JUMP_IF_FALSE_OR_POP, 14, Op.NAME, 1, Op.CONST, 1,
      Op.COMPARE, CmpOp.EQ, Op.RETURN], [5, 'a'], ['x', 'kind']);
    const ev = vm.prepareScalar(p);
    assert.equal(ev.evaluate({ x: 7, kind: 'a' }), true);
    assert.equal(ev.evaluate({ x: 7, kind: 'b' }), false);
    assert.equal(ev.evaluate({ x: 1 }), false); // short-circuit: kind is never read
    const f = faultOf(() => ev.evaluate({ x: 9 }));
    assert.deepEqual(f, faultWords(ErrorKind.NameError, Reason.NAME_MISSING, 8));
    // 'Straße'.upper().split('S')
    const up = prog([Op.CONST, 0, Op.METHOD, 1, 0, Op.CONST, 1, Op.METHOD, 6, 1, Op.RETURN], ['Straße', 'S']);
    assert.deepEqual(vm.prepareScalar(up).evaluate({}), ['', 'TRA', '', 'E']);
    // str(round(x, 2)) and len of a code-point string
    const r = prog([Op.NAME, 0, Op.CONST, 0, Op.CALL, Fn.round, 2, Op.CALL, Fn.str, 1, Op.RETURN], [2], ['x']);
    assert.equal(vm.prepareScalar(r).evaluate({ x: 2.675 }), '2.67');
    const len = prog([Op.NAME, 0, Op.CALL, Fn.len, 1, Op.RETURN], [], ['s']);
    assert.equal(vm.prepareScalar(len).evaluate({ s: 'a😀b' }), 3);
    // d.k[-1] (ATTR and INDEX)
    const attr = prog([Op.NAME, 0, Op.ATTR, 0, Op.CONST, 0, Op.INDEX, Op.RETURN], [-1], ['d'], ['k']);
    assert.equal(vm.prepareScalar(attr).evaluate({ d: { k: [1, 'z'] } }), 'z');
    assert.equal(faultOf(() => vm.prepareScalar(attr).evaluate({ d: {} }))[FaultWord.KIND], ErrorKind.AttributeError);
    // a ternary: 'big' if x > 10 else 'small'
    const t = prog([Op.NAME, 0, Op.CONST, 0, Op.COMPARE, CmpOp.GT, Op.POP_JUMP_IF_FALSE, 12, Op.CONST, 1, Op.JUMP, 14,
      Op.CONST, 2, Op.RETURN], [10, 'big', 'small'], ['x']);
    assert.equal(vm.prepareScalar(t).evaluate({ x: 11 }), 'big');
    assert.equal(vm.prepareScalar(t).evaluate({ x: 1 }), 'small');
    // a chain: 0 <= x < 3
    const c = prog([Op.CONST, 0, Op.NAME, 0, Op.COMPARE_CHAIN, CmpOp.LE, 11, Op.CONST, 1, Op.COMPARE, CmpOp.LT, Op.RETURN], [0, 3], ['x']);
    assert.deepEqual([-1, 0, 2, 3].map((x) => vm.prepareScalar(c).evaluate({ x })), [false, true, true, false]);
  });

  test('values cross both ways: floats stay floats, tuples stay tuples, context values come back as themselves', () => {
    const id = prog([Op.NAME, 0, Op.RETURN], [], ['x']);
    const ev = vm.prepareScalar(id);
    const d = { a: 1e300, b: [1, 2.5], c: null };
    assert.equal(ev.evaluate({ x: d }), d);
    const date = new Date(0);
    assert.equal(ev.evaluate({ x: date }), date);
    assert.ok(Object.is(ev.evaluate({ x: -0 }), -0));
    assert.ok(same(vm.prepareScalar(prog([Op.CONST, 0, Op.CONST, 1, Op.TUPLE, 2, Op.RETURN], [1, new PyFloat(2)])).evaluate({}),
      new PyTuple([1, new PyFloat(2)])));
    // x == x on an opaque value is identity, as in the js evaluator
    const eq = prog([Op.NAME, 0, Op.NAME, 1, Op.COMPARE, CmpOp.EQ, Op.RETURN], [], ['x', 'y']);
    const m = new Map();
    assert.equal(vm.prepareScalar(eq).evaluate({ x: m, y: m }), true);
    assert.equal(vm.prepareScalar(eq).evaluate({ x: m, y: new Map() }), false);
  });

  test('memory growth in the middle of a call: the views follow', () => {
    const p = prog([Op.NAME, 0, Op.CONST, 0, Op.BINOP, BinOp.MUL, Op.NAME, 0, Op.CALL, Fn.len, 1, Op.TUPLE, 2, Op.RETURN], [3], ['s']);
    const ev = vm.prepareScalar(p);
    for (const n of [10, 300_000, 333_333, 10, 333_333]) {
      const s = 'x'.repeat(n - 1) + 'é';
      const r = ev.evaluate({ s }) as PyTuple;
      assert.equal((r.items[0] as string).length, 3 * n);
      assert.ok((r.items[0] as string).endsWith('xé'));
      assert.equal(r.items[1], n);
    }
    const big = 'y'.repeat(3_000_000);
    assert.equal(vm.prepareScalar(prog([Op.NAME, 0, Op.CALL, Fn.len, 1, Op.RETURN], [], ['s'])).evaluate({ s: big }), 3_000_000);
  });

  test('a context too deep for the tape is a LimitError fault at pc 0', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 150; i++) deep = [deep];
    const f = faultOf(() => vm.prepareScalar(prog([Op.NAME, 0, Op.RETURN], [], ['x'])).evaluate({ x: deep }));
    assert.deepEqual(f, faultWords(ErrorKind.LimitError, Reason.DEPTH, 0));
  });

  test('the arena is reset per evaluation: memory does not grow over many evaluations', () => {
    const p = prog([Op.NAME, 0, Op.CONST, 0, Op.BINOP, BinOp.MUL, Op.METHOD, 1, 0, Op.RETURN], [1000], ['s']);
    const ev = vm.prepareScalar(p);
    const mem = (vm as unknown as { ex: { memory: WebAssembly.Memory } }).ex.memory;
    for (let i = 0; i < 1000; i++) ev.evaluate({ s: 'ab' });
    const before = mem.buffer.byteLength;
    for (let i = 0; i < 50_000; i++) ev.evaluate({ s: 'ab' });
    assert.equal(mem.buffer.byteLength, before);
    // a fault in the middle of an evaluation leaves nothing behind either
    const bad = vm.prepareScalar(prog([Op.NAME, 0, Op.CONST, 0, Op.BINOP, BinOp.MUL, Op.RETURN], [10_000_000], ['s']));
    for (let i = 0; i < 1000; i++) assert.equal(faultOf(() => bad.evaluate({ s: 'ab' }))[FaultWord.KIND], ErrorKind.LimitError);
    assert.equal(ev.evaluate({ s: 'x' }), 'X'.repeat(1000));
    assert.equal(mem.buffer.byteLength, before);
  });

  // ---------------------------------------------------------------------------- batch

  /** `x > 5 and y < 3 or x * y > 400` */
  const BENCH_CODE = [Op.NAME, 0, Op.CONST, 0, Op.COMPARE, CmpOp.GT, Op.JUMP_IF_FALSE_OR_POP, 14, Op.NAME, 1, Op.CONST, 1,
    Op.COMPARE, CmpOp.LT, Op.JUMP_IF_TRUE_OR_POP, 26, Op.NAME, 0, Op.NAME, 1, Op.BINOP, BinOp.MUL, Op.CONST, 2,
    Op.COMPARE, CmpOp.GT, Op.RETURN];

  function columns(n: number, special: boolean): [Float64Array, Float64Array] {
    const x = new Float64Array(n);
    const y = new Float64Array(n);
    const odd = [NaN, Infinity, -Infinity, -0, 0, 2 ** 53, 1e300, 0.5];
    for (let i = 0; i < n; i++) {
      x[i] = special && rnd() < 0.05 ? pick(odd) : Math.floor(rnd() * 40);
      y[i] = special && rnd() < 0.05 ? pick(odd) : Math.floor(rnd() * 40) - 5;
    }
    return [x, y];
  }

  test('batch: matches a hand-written loop at chunk and block boundaries', () => {
    const ev = vm.prepareBatch(batchProg(BENCH_CODE, [5, 3, 400], [ColumnKind.NUMBER, ColumnKind.NUMBER]));
    for (const n of [0, 1, 7, 1023, 1024, 1025, 16383, 16384, 16385, 40000]) {
      const [x, y] = columns(n, true);
      const out = new Uint8Array(n);
      assert.equal(ev.run([x, y], n, out), -1, `n=${n}`);
      for (let i = 0; i < n; i++) {
        const a = x[i]!;
        const b = y[i]!;
        const want = (a > 5 && b < 3) || a * b > 400 ? 1 : 0;
        if (out[i] !== want) assert.fail(`n=${n} row ${i}: x=${a} y=${b} got ${out[i]}`);
      }
    }
  });

  test('batch: rows equal scalar evaluation, errors at the first failing row only where scalar fails', async () => {
    const { compileProgram } = await import('../src/expr/compile.js');
    const { parse } = await import('../src/expr/parse.js');
    const { planBatch, inspectColumns, planColumns } = await import('../src/expr/batch.js');
    const texts = [
      'x // y > 1', 'y != 0 and x // y > 1', 'y == 0 or x % y == 1', 'x ** y > 10', 'x * y > 9007199254740990',
      'int(x) > 3', 'round(x) == 2', 'abs(x - y) < 3', 'min(x, y) > 0 or max(x, y, 3) < 5', 'float(x) / y > 0.5',
      'x if b else y', '(x if b else y) * 2 > 3', 'not b and x > 1', '-x < y < x', '0 < x < 10 < y', 'bool(x) and y',
      'x + y + 1 > 4', 'b + b > 1', '(x > 1) + (y > 1) == 1', 'x / y > 2', '2 ** x > y', '(b or x) * 9007199254740991 > 0',
    ];
    const n = 3000;
    for (const text of texts) {
      for (let trial = 0; trial < 3; trial++) {
        const [x, y] = columns(n, trial > 0);
        if (trial === 2) for (let i = 0; i < n; i += 97) x[i] = 9007199254740991;
        const b = new Uint8Array(n).map(() => (rnd() < 0.5 ? 1 : 0));
        const { infos } = inspectColumns({ x, y, b }, ['x', 'y', 'b']);
        const plan = planBatch(parse(text), text, infos);
        assert.ok(plan, `${text} is in the batch subset`);
        const cols = planColumns(plan, infos, n);
        const out = new Uint8Array(n);
        const ev = vm.prepareBatch(plan.program);
        const failed = ev.run(cols, n, out);
        const scalar = vm.prepareScalar(compileProgram(parse(text), text));
        let firstBad = -1;
        let fault: Int32Array | undefined;
        for (let i = 0; i < n; i++) {
          const ctx = { x: x[i], y: y[i], b: b[i] === 1 };
          let v: unknown;
          try {
            v = scalar.evaluate(ctx);
          } catch (e) {
            if (!(e instanceof VmFault)) throw e;
            firstBad = i;
            fault = e.fault;
            break;
          }
          const want = truthy(v) ? 1 : 0;
          if (out[i] !== want && failed < 0) assert.fail(`${text} row ${i} (x=${x[i]} y=${y[i]} b=${b[i]}): batch ${out[i]}, scalar ${String(v)}`);
        }
        assert.equal(failed, firstBad, `${text}: first failing row`);
        if (fault) {
          // The scalar fault of the first failing row, with the row the batch names.
          const want = fault.slice();
          want[FaultWord.ROW] = firstBad;
          assert.deepEqual(ev.fault, want, `${text}: fault`);
        }
      }
    }
  });

  test('batch: plans reject programs outside the subset', () => {
    assert.throws(() => planBatchProgram(batchProg([Op.NAME, 0, Op.ATTR, 0, Op.RETURN], [], [ColumnKind.NUMBER])), /outside the batch subset/);
    assert.throws(() => vm.prepareBatch(batchProg([Op.CONST, 0, Op.RETURN], ['a'], [])), /constants/);
    const p = planBatchProgram(batchProg(BENCH_CODE, [5, 3, 400], [ColumnKind.NUMBER, ColumnKind.NUMBER]));
    assert.ok(p.regs <= 6);
    assert.equal(p.sites, 2);
  });

  test('batch: bool columns, constants and a ternary with a merge', () => {
    // x if b else 0.5  (b: bool column)
    const code = [Op.NAME, 1, Op.POP_JUMP_IF_FALSE, 8, Op.NAME, 0, Op.JUMP, 10, Op.CONST, 0, Op.RETURN];
    const ev = vm.prepareBatch(batchProg(code, [0.5], [ColumnKind.NUMBER, ColumnKind.BOOL]));
    const x = Float64Array.of(0, 0, 3, NaN, 0);
    const b = Uint8Array.of(1, 0, 1, 1, 0);
    const out = new Uint8Array(5);
    assert.equal(ev.run([x, b], 5, out), -1);
    assert.deepEqual(Array.from(out), [0, 1, 1, 1, 1]);
  });

  test('loads in a worker thread, from a module compiled here or by itself', async () => {
    for (const adopt of [true, false]) {
      // tsx registers in the worker through its API (execArgv --import does not reach eval workers).
      const api = import.meta.resolve('tsx/esm/api');
      const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`;
      const w = new Worker(code, { eval: true, workerData: adopt ? { wpipeWasmModule: getWasmModule(), adopt } : {} });
      const msg = await new Promise<{ v: unknown; out: number[]; bad: number }>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
      await w.terminate();
      assert.deepEqual(msg, { v: 42, out: [0, 1, 1], bad: -1 });
    }
  });

  test('tags: the fault words carry the operand types', () => {
    const f = faultOf(() => vm.prepareScalar(prog([Op.CONST, 0, Op.CONST, 1, Op.BINOP, BinOp.ADD, Op.RETURN], [1, 'a'])).evaluate({}));
    assert.deepEqual(f, faultWords(ErrorKind.TypeError, Reason.BAD_OPERANDS, 4, Tag.INT, Tag.STR));
  });
}
