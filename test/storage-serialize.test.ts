import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serialize, deserialize, serializeBestEffort, MAX_DEPTH } from '../src/storage/serialize.js';
import { TaskError, WpipeError } from '../src/errors.js';

const roundTrip = <T>(value: T): T => deserialize(serialize(value)) as T;

test('plain JSON values round-trip and stay plain JSON', () => {
  const v = { a: 1, b: 'x', c: [true, false, null], d: { e: { f: [1.5, -2] } }, '': 'empty key', 'a b': 1 };
  assert.equal(serialize(v), JSON.stringify(v));
  assert.deepEqual(roundTrip(v), v);
});

test('Date (valid and invalid) round-trips', () => {
  const d = new Date('2024-02-29T12:34:56.789Z');
  const back = roundTrip({ d, bad: new Date(Number.NaN) });
  assert.ok(back.d instanceof Date);
  assert.equal(back.d.toISOString(), d.toISOString());
  assert.ok(back.bad instanceof Date && Number.isNaN(back.bad.getTime()));
});

test('Map with non-string keys and nested values round-trips', () => {
  const m = new Map<unknown, unknown>([[1, 'one'], ['k', new Set([1, 2])], [{ o: 1 }, new Date(0)], [10n, undefined]]);
  const back = roundTrip({ m }).m as Map<unknown, unknown>;
  assert.ok(back instanceof Map);
  assert.equal(back.size, 4);
  assert.equal(back.get(1), 'one');
  assert.deepEqual(back.get('k'), new Set([1, 2]));
  const entries = [...back.entries()];
  assert.deepEqual(entries[2]![0], { o: 1 });
  assert.ok(entries[2]![1] instanceof Date);
  assert.equal(entries[3]![0], 10n);
  assert.ok(back.has(10n) && back.get(10n) === undefined);
});

test('Set round-trips, with order', () => {
  const s = new Set(['b', 'a', 3, null]);
  assert.deepEqual([...roundTrip(s)], ['b', 'a', 3, null]);
});

test('BigInt round-trips, including huge and negative', () => {
  const v = { big: 2n ** 100n, neg: -5n, zero: 0n };
  assert.deepEqual(roundTrip(v), v);
});

test('every typed array, DataView, ArrayBuffer and Buffer round-trip with their bytes', () => {
  const v = {
    i8: new Int8Array([-1, 2]), u8: new Uint8Array([255, 0]), u8c: new Uint8ClampedArray([7]),
    i16: new Int16Array([-300]), u16: new Uint16Array([65535]), i32: new Int32Array([-1e9]), u32: new Uint32Array([4e9]),
    f32: new Float32Array([1.5, Number.NaN]), f64: new Float64Array([Math.PI, -0, Infinity]),
    b64: new BigInt64Array([-(2n ** 63n)]), bu64: new BigUint64Array([2n ** 64n - 1n]),
    ab: new Uint8Array([1, 2, 3]).buffer, dv: new DataView(new Uint8Array([9, 8]).buffer), buf: Buffer.from('héllo'),
  };
  const back = roundTrip(v);
  for (const [k, val] of Object.entries(v)) {
    const b = (back as Record<string, unknown>)[k];
    assert.equal(Object.getPrototypeOf(b), Object.getPrototypeOf(val), k);
    if (ArrayBuffer.isView(val)) {
      assert.deepEqual(Buffer.from((b as ArrayBufferView).buffer, (b as ArrayBufferView).byteOffset, (b as ArrayBufferView).byteLength),
        Buffer.from(val.buffer, val.byteOffset, val.byteLength), k);
    } else {
      assert.deepEqual(Buffer.from(b as ArrayBuffer), Buffer.from(val as ArrayBuffer), k);
    }
  }
  assert.ok(Object.is(back.f64[1], -0));
  assert.ok(Number.isNaN(back.f32[1]));
  // A view on part of a larger buffer stores only its own bytes.
  const big = new Uint8Array([0, 1, 2, 3, 4, 5]);
  assert.deepEqual([...roundTrip(big.subarray(2, 4))], [2, 3]);
});

test('undefined, NaN, ±Infinity and -0 survive in objects and arrays', () => {
  const back = roundTrip({ u: undefined, n: Number.NaN, p: Infinity, m: -Infinity, z: -0, arr: [undefined, Number.NaN, -0] });
  assert.ok('u' in back && back.u === undefined);
  assert.ok(Number.isNaN(back.n));
  assert.equal(back.p, Infinity);
  assert.equal(back.m, -Infinity);
  assert.ok(Object.is(back.z, -0));
  assert.equal(back.arr.length, 3);
  assert.ok(back.arr[0] === undefined && Number.isNaN(back.arr[1]) && Object.is(back.arr[2], -0));
  assert.equal(roundTrip(undefined), undefined);
});

test('RegExp and Error (class, code, cause) round-trip', () => {
  const cause = new Error('root');
  const err = new TaskError('step load failed', { cause, details: { stepName: 'load' } });
  const back = roundTrip({ re: /a+b/gi, err, plain: new RangeError('r') });
  assert.ok(back.re instanceof RegExp && back.re.source === 'a+b' && back.re.flags === 'gi');
  assert.ok(back.err instanceof TaskError);
  assert.equal(back.err.code, 'WPIPE_ERR_TASK_FAILED');
  assert.equal(back.err.stepName, 'load');
  assert.equal((back.err.cause as Error).message, 'root');
  assert.equal(back.plain.name, 'RangeError');
});

test('deep nesting of every kind round-trips', () => {
  const v = { orders: [{ when: new Date(1), tags: new Set([new Map([['k', [1n, undefined]]])]), data: new Float64Array([1]) }] };
  const back = roundTrip(v);
  const inner = [...back.orders[0]!.tags][0]!;
  assert.deepEqual(inner.get('k'), [1n, undefined]);
  assert.ok(back.orders[0]!.when instanceof Date);
});

test('a plain object owning a "$t" key is not mistaken for a tag', () => {
  const v = { x: { $t: 'Date', v: 'not a date' }, y: { $t: 1, inner: new Date(5) } };
  const back = roundTrip(v);
  assert.deepEqual(back.x, { $t: 'Date', v: 'not a date' });
  assert.equal(back.y.$t, 1);
  assert.ok(back.y.inner instanceof Date);
});

test('__proto__ as a data key stays data and does not change prototypes', () => {
  const v = JSON.parse('{"__proto__": {"polluted": true}, "d": 1}') as Record<string, unknown>;
  v.when = new Date(0); // forces a copy of the object
  const back = roundTrip(v) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(back), Object.prototype);
  assert.deepEqual(Object.getOwnPropertyDescriptor(back, '__proto__')?.value, { polluted: true });
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('null-prototype objects are accepted as plain objects', () => {
  const o = Object.assign(Object.create(null) as object, { a: 1 });
  assert.deepEqual({ ...(roundTrip({ o }).o as object) }, { a: 1 });
});

function expectSerializeError(value: unknown, path: string, problem: RegExp): void {
  assert.throws(() => serialize(value), (e: unknown) => {
    assert.ok(e instanceof WpipeError);
    assert.equal(e.code, 'WPIPE_ERR_CHECKPOINT_SERIALIZE');
    assert.equal(e.details.path, path);
    assert.match(e.message, problem);
    assert.ok(e.message.includes(path), e.message);
    return true;
  });
}

class Order { constructor(public id: number) {} }

test('unsupported values fail naming the key path', () => {
  expectSerializeError({ orders: [0, 1, 2, { when: () => 1 }] }, 'orders[3].when', /function/);
  expectSerializeError({ a: { b: Symbol('s') } }, 'a.b', /symbol/);
  expectSerializeError({ list: [new Order(1)] }, 'list[0]', /instance of Order/);
  expectSerializeError({ 'odd key': { x: new WeakMap() } }, 'context["odd key"].x', /WeakMap/);
  expectSerializeError({ m: new Map([['k', { f() {} }]]) }, 'm.get("k").f', /function/);
  expectSerializeError({ s: new Set([1, Promise.resolve()]) }, 's<Set item 1>', /Promise/);
  expectSerializeError({ boxed: new Number(1) }, 'boxed', /instance of Number/);
  expectSerializeError([1, () => 0], 'context[1]', /function/);
  expectSerializeError(() => 0, 'context', /function/);
  expectSerializeError({ [Symbol('k')]: 1 }, 'context', /symbol-keyed/);
});

test('cycles fail with the path of the back reference; shared references are fine', () => {
  const a: Record<string, unknown> = { name: 'a' };
  a.self = { again: a };
  expectSerializeError({ a }, 'a.self.again', /cycle/);
  const shared = { n: 1 };
  assert.deepEqual(roundTrip({ x: shared, y: shared }), { x: { n: 1 }, y: { n: 1 } });
});

test('nesting deeper than MAX_DEPTH is a clear error, not a stack overflow', () => {
  let deep: unknown = 1;
  for (let i = 0; i < MAX_DEPTH + 5; i++) deep = [deep];
  assert.throws(() => serialize(deep), (e: unknown) => e instanceof WpipeError && /deeper than/.test(e.message));
});

test('lenient mode writes placeholders and never throws', () => {
  const a: Record<string, unknown> = {};
  a.me = a;
  const text = serialize({ f: function load() {}, o: new Order(1), s: Symbol('x'), a, d: new Date(0) }, { mode: 'lenient' });
  const back = deserialize(text) as Record<string, unknown>;
  assert.equal(back.f, '[Function load]');
  assert.equal(back.o, '[Order]');
  assert.equal(back.s, '[Symbol(x)]');
  assert.deepEqual(back.a, { me: '[Circular]' });
  assert.ok(back.d instanceof Date);
  assert.deepEqual(serializeBestEffort({ a: 1 }), { text: '{"a":1}', exact: true });
  assert.equal(serializeBestEffort({ f() {} }).exact, false);
});

test('an unknown tag (from a newer writer) is a clear error', () => {
  assert.throws(() => deserialize('{"x":{"$t":"Float16Array","v":""}}'), /unknown tag/);
});

test('a Date is written exactly as toISOString() writes it, for every year', () => {
  const instants = [0, 1, 999, 86_399_999, 86_400_000, Date.UTC(2000, 1, 29, 23, 59, 59, 999), Date.UTC(2100, 2, 1), Date.UTC(1972, 1, 29),
    Date.UTC(9999, 11, 31, 23, 59, 59, 999), Date.UTC(10000, 0, 1), -1, Date.UTC(1969, 11, 31, 23, 59, 59, 999), Date.UTC(-1, 0, 1),
    8.64e15, -8.64e15, Date.UTC(2024, 11, 31, 12, 0, 0, 10), Date.UTC(2024, 0, 1, 0, 0, 0, 100)];
  let seed = 42;
  const random = (): number => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
  for (let i = 0; i < 20_000; i++) instants.push(Math.floor((random() * 2 - 0.2) * 253_402_300_800_000));
  for (const t of instants) {
    const d = new Date(t);
    assert.equal(serialize(d), `{"$t":"Date","v":"${d.toISOString()}"}`, `instant ${t}`);
  }
});
