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

// ---------------------------------------------------------------------------------------------
// Values that throw when read: serializeBestEffort and lenient mode write "[Unreadable: …]" and
// never throw; strict mode fails with WPIPE_ERR_CHECKPOINT_SERIALIZE naming the key path, its
// cause the error that was thrown.

const boom = new Error('no');

function revokedProxy(target: object = {}): object {
  const { proxy, revoke } = Proxy.revocable(target, {});
  revoke();
  return proxy;
}

/** A value that throws when read; `rel` is the key path inside it that throws ([] = the value itself). */
interface UnreadableCase {
  name: string;
  make: () => unknown;
  rel: string[];
  message: RegExp;
  isCause: (cause: unknown) => boolean;
}

const isBoom = (cause: unknown): boolean => cause === boom;
const UNREADABLE: UnreadableCase[] = [
  { name: 'a getter throwing 3 levels down', make: () => ({ a: { b: { get c(): never { throw boom; } } } }), rel: ['a', 'b', 'c'], message: /^no$/, isCause: isBoom },
  { name: 'a Proxy whose get trap throws', make: () => new Proxy({ x: 1 }, { get: () => { throw boom; } }), rel: ['x'], message: /^no$/, isCause: isBoom },
  { name: 'a Proxy whose ownKeys trap throws', make: () => new Proxy({ x: 1 }, { ownKeys: () => { throw boom; } }), rel: [], message: /^no$/, isCause: isBoom },
  {
    name: 'a Proxy whose getOwnPropertyDescriptor trap throws',
    make: () => new Proxy({ x: 1 }, { getOwnPropertyDescriptor: () => { throw boom; } }), rel: [], message: /^no$/, isCause: isBoom,
  },
  { name: 'a Proxy whose getPrototypeOf trap throws', make: () => new Proxy({ x: 1 }, { getPrototypeOf: () => { throw boom; } }), rel: [], message: /^no$/, isCause: isBoom },
  { name: 'a revoked Proxy', make: () => revokedProxy(), rel: [], message: /revoked/, isCause: (c) => c instanceof TypeError },
  { name: 'a revoked Proxy of an array', make: () => revokedProxy([1]), rel: [], message: /revoked/, isCause: (c) => c instanceof TypeError },
  {
    name: 'an array whose element getter throws',
    make: () => Object.defineProperty([1, 2], 1, { get: () => { throw boom; }, enumerable: true }), rel: ['1'], message: /^no$/, isCause: isBoom,
  },
];

/** Where the unreadable value sits in what is serialized, the path strict mode names for it, and how to find it again. */
interface Position {
  name: string;
  wrap: (v: unknown) => unknown;
  path: string;
  pick: (decoded: unknown) => unknown;
}

const POSITIONS: Position[] = [
  { name: 'at top level', wrap: (v) => v, path: 'context', pick: (d) => d },
  { name: 'in a plain object', wrap: (v) => ({ out: v, ok: 1 }), path: 'out', pick: (d) => (d as { out: unknown }).out },
  { name: 'in an array', wrap: (v) => [0, v, 2], path: 'context[1]', pick: (d) => (d as unknown[])[1] },
  { name: 'as a Map value', wrap: (v) => new Map([['k', v]]), path: 'context.get("k")', pick: (d) => (d as Map<unknown, unknown>).get('k') },
  { name: 'as a Map key', wrap: (v) => new Map([[v, 1]]), path: 'context<Map key #0>', pick: (d) => [...(d as Map<unknown, unknown>).keys()][0] },
  { name: 'in a Set', wrap: (v) => new Set([0, v]), path: 'context<Set item 1>', pick: (d) => [...(d as Set<unknown>)][1] },
];

function fullPath(position: Position, rel: string[]): string {
  if (rel.length === 0) return position.path;
  const tail = rel.map((k) => (/^\d+$/.test(k) ? `[${k}]` : `.${k}`)).join('');
  return position.path === 'context' && tail.startsWith('.') ? tail.slice(1) : position.path + tail;
}

for (const c of UNREADABLE) {
  test(`${c.name}: best effort and lenient write a placeholder, strict names the path`, () => {
    for (const position of POSITIONS) {
      const label = `${c.name} ${position.name}`;
      const best = serializeBestEffort(position.wrap(c.make()));
      assert.equal(best.exact, false, label);
      const decoded = deserialize(best.text);
      const placeholder = c.rel.reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], position.pick(decoded));
      assert.equal(typeof placeholder, 'string', `${label}: ${best.text}`);
      const m = /^\[Unreadable: (.*)\]$/.exec(placeholder as string);
      assert.ok(m && c.message.test(m[1]!), `${label}: ${String(placeholder)}`);
      assert.equal(serialize(position.wrap(c.make()), { mode: 'lenient' }), best.text, label);

      const path = fullPath(position, c.rel);
      assert.throws(() => serialize(position.wrap(c.make())), (e: unknown) => {
        assert.ok(e instanceof WpipeError, `${label}: ${String(e)}`);
        assert.equal(e.code, 'WPIPE_ERR_CHECKPOINT_SERIALIZE', label);
        assert.equal(e.details.path, path, label);
        assert.ok(e.message.includes(`cannot save ${path} in a checkpoint: it cannot be read (`), `${label}: ${e.message}`);
        assert.match(String(e.details.problem), /cannot be read/, label);
        assert.ok(c.isCause(e.cause), `${label}: cause ${String(e.cause)}`);
        return true;
      }, label);
    }
  });
}

test('the rest of a value with an unreadable part is written as usual', () => {
  const v = { when: new Date(0), list: [1, { get bad(): never { throw boom; }, good: 2n }], tail: 'x' };
  const best = serializeBestEffort(v);
  assert.equal(best.exact, false);
  assert.deepEqual(deserialize(best.text), { when: new Date(0), list: [1, { bad: '[Unreadable: no]', good: 2n }], tail: 'x' });
  expectSerializeError(v, 'list[1].bad', /cannot be read \(no\)/);
});

test('a Proxy with well-behaved traps is written like the object behind it', () => {
  const v = { p: new Proxy({ a: 1, d: new Date(5), n: [NaN] }, {}), q: new Proxy([1, undefined], {}) };
  assert.deepEqual(serializeBestEffort(v), { text: serialize({ p: { a: 1, d: new Date(5), n: [NaN] }, q: [1, undefined] }), exact: true });
  assert.deepEqual(roundTrip(v), { p: { a: 1, d: new Date(5), n: [NaN] }, q: [1, undefined] });
});

test('toJSON is never called: not an own non-enumerable one, an array one, nor one a Proxy answers with', () => {
  let calls = 0;
  const toJSON = (): never => {
    calls++;
    throw boom;
  };
  const hidden = Object.defineProperty({ a: 1 }, 'toJSON', { value: toJSON });
  const arr = Object.assign([1, 2], { toJSON });
  const trap = new Proxy({ a: 1 }, { get: (t, k) => (k === 'toJSON' ? toJSON : Reflect.get(t, k)) });
  const throwingTrap = new Proxy({ a: 1 }, { get: (t, k) => { if (k === 'toJSON') throw boom; return Reflect.get(t, k); } });
  for (const v of [hidden, arr, trap, throwingTrap, { nested: [hidden, { arr }], m: new Map([[1, trap]]) }]) {
    const best = serializeBestEffort(v);
    assert.equal(best.exact, true, best.text);
    assert.equal(serialize(v, { mode: 'lenient' }), best.text);
    assert.equal(serialize(v), best.text);
  }
  assert.equal(calls, 0);
  assert.deepEqual(roundTrip(hidden), { a: 1 });
  assert.deepEqual(roundTrip(arr), [1, 2]);
  assert.deepEqual(roundTrip({ nested: [hidden, { arr }], m: new Map([[1, trap]]) }), { nested: [{ a: 1 }, { arr: [1, 2] }], m: new Map([[1, { a: 1 }]]) });
  // A toJSON that would give no text at all (undefined) is not called either.
  assert.equal(serialize(Object.defineProperty({ a: 1 }, 'toJSON', { value: () => undefined })), '{"a":1}');
});

test('an enumerable or inherited toJSON that throws is a function or a class instance like any other', () => {
  class Money {
    toJSON(): never {
      throw boom;
    }
  }
  function toJSON(): never {
    throw boom;
  }
  const v = { own: { toJSON }, cls: new Money(), list: [new Money()] };
  const best = serializeBestEffort(v);
  assert.equal(best.exact, false);
  assert.deepEqual(deserialize(best.text), { own: { toJSON: '[Function toJSON]' }, cls: '[Money]', list: ['[Money]'] });
  expectSerializeError(v, 'own.toJSON', /function/);
});

test('thrown values that are not Errors, or whose message cannot be read, still give a placeholder', () => {
  const unreadableMessage = Object.defineProperty(new Error('x'), 'message', { get: () => { throw boom; } });
  const v = {
    str: { get v(): never { throw 'plain string'; } },
    undef: { get v(): never { throw undefined; } },
    revoked: { get v(): never { throw revokedProxy(); } },
    message: { get v(): never { throw unreadableMessage; } },
    empty: { get v(): never { throw new RangeError(''); } },
    long: { get v(): never { throw new Error('x'.repeat(10_000)); } },
  };
  const best = serializeBestEffort(v);
  assert.equal(best.exact, false);
  const back = deserialize(best.text) as Record<string, { v: string }>;
  assert.equal(back.str!.v, '[Unreadable: plain string]');
  assert.equal(back.undef!.v, '[Unreadable: undefined]');
  assert.match(back.revoked!.v, /^\[Unreadable: .+\]$/);
  assert.match(back.message!.v, /^\[Unreadable: .+\]$/);
  assert.equal(back.empty!.v, '[Unreadable: RangeError]');
  assert.ok(back.long!.v.length < 300, back.long!.v);
  // Strict mode: a thrown undefined is still a WpipeError naming the path, never the raw value.
  assert.throws(() => serialize({ a: v.undef }), (e: unknown) => {
    assert.ok(e instanceof WpipeError);
    assert.equal(e.details.path, 'a.v');
    assert.equal(e.cause, undefined);
    return true;
  });
  assert.throws(() => serialize(v.revoked), (e: unknown) => e instanceof WpipeError && e.details.path === 'v');
});

test('functions whose name cannot be read are written as "[Function]"', () => {
  class Loud {
    static get name(): string {
      throw boom;
    }
  }
  const v = { revoked: revokedProxy(function load() {}), loud: Loud };
  const best = serializeBestEffort(v);
  assert.deepEqual(deserialize(best.text), { revoked: '[Function]', loud: '[Function]' });
  expectSerializeError(v, 'revoked', /function/);
});

test('built-in types given a fake, or with overridden methods, never throw through', () => {
  class LoudMap<K, V> extends Map<K, V> {
    override *[Symbol.iterator](): MapIterator<[K, V]> {
      throw boom;
    }
  }
  class LoudDate extends Date {
    override getTime(): number {
      throw boom;
    }
  }
  const fakes = {
    map: Object.create(Map.prototype) as object, set: Object.create(Set.prototype) as object,
    date: Object.create(Date.prototype) as object, re: Object.create(RegExp.prototype) as object,
    proxiedMap: new Proxy(new Map([[1, 2]]), {}), loudMap: new LoudMap([[1, 2]]), loudDate: new LoudDate(0),
    error: Object.defineProperty(new Error('x'), 'message', { get: () => { throw boom; } }),
  };
  const best = serializeBestEffort(fakes);
  assert.equal(best.exact, false);
  for (const [k, placeholder] of Object.entries(deserialize(best.text) as Record<string, unknown>)) {
    assert.match(String(placeholder), /^\[Unreadable: .+\]$/, k);
  }
  expectSerializeError(fakes, 'map', /cannot be read/);
  expectSerializeError({ list: [fakes.loudMap] }, 'list[0]', /cannot be read \(no\)/);
});

test('Maps and Sets read through a Proxy that forwards to them, and never past their size', () => {
  const forward = <T extends object>(target: T): T => new Proxy(target, {
    get: (t, k) => {
      const v = Reflect.get(t, k, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
  assert.deepEqual(roundTrip({ m: forward(new Map([[1, 'a']])), s: forward(new Set([2])) }), { m: new Map([[1, 'a']]), s: new Set([2]) });
  class EndlessSet<T> extends Set<T> {
    override *[Symbol.iterator](): SetIterator<T> {
      for (;;) yield 1 as T;
    }
  }
  assert.deepEqual(roundTrip(new EndlessSet([1, 2])), new Set([1]));
});

test('a RegExp is written from its own source and flags, whatever shadows them', () => {
  const re = Object.defineProperty(/a+/gi, 'flags', { value: 'zz' });
  Object.defineProperty(re, 'source', { get: () => { throw boom; } });
  assert.equal(String(roundTrip({ re }).re), '/a+/gi');
});

test('a typed array subclass named like an Object.prototype method is a class instance, and the text decodes', () => {
  const named = { toString: class extends Uint8Array {} }.toString;
  assert.equal(named.name, 'toString');
  const best = serializeBestEffort({ t: new named([1]) });
  assert.deepEqual(deserialize(best.text), { t: '[toString]' });
  assert.throws(() => deserialize('{"x":{"$t":"toString","v":""}}'), /unknown tag/);
});

test('getters with side effects: never a throw, never an endless loop, text always decodes', () => {
  let count = 0;
  const counter = { get n(): number { return ++count; } };
  assert.equal(typeof (deserialize(serializeBestEffort(counter).text) as { n: unknown }).n, 'number');

  // Works once, then throws: the fast pass reads it fine, JSON.stringify's second read throws.
  let reads = 0;
  const flaky = { a: { get b(): number { if (++reads > 1) throw boom; return 1; } } };
  const best = serializeBestEffort(flaky);
  assert.deepEqual(deserialize(best.text), { a: { b: '[Unreadable: no]' } });
  assert.equal(best.exact, false);
  reads = 0;
  expectSerializeError(flaky, 'a.b', /cannot be read \(no\)/);

  // Adds a BigInt key to its own object on every read (JSON.stringify alone would throw on it).
  let i = 0;
  const growing: Record<string, unknown> = { get g(): number { growing[`k${i++}`] = 10n; return 1; } };
  const grown = serializeBestEffort(growing);
  assert.equal((deserialize(grown.text) as Record<string, unknown>).g, 1);

  // Adds entries to the Map being written: the Map is written with the entries it had.
  const m = new Map<number, unknown>();
  const adder = { get x(): number { m.set(m.size, adder); return 1; } };
  m.set(0, adder);
  assert.deepEqual(deserialize(serializeBestEffort(m).text), new Map([[0, { x: 1 }]]));
  const s = new Set<unknown>();
  const setAdder = { get x(): number { s.add({ ...setAdder }); return 1; } };
  s.add(setAdder);
  assert.equal((deserialize(serializeBestEffort(s).text) as Set<unknown>).size, 1);

  // Returns a fresh Date on each read: written as the Date the encoder saw, still a Date.
  const dated = { get when(): Date { return new Date(Date.now()); }, n: 1 };
  assert.ok((deserialize(serializeBestEffort(dated).text) as { when: unknown }).when instanceof Date);
});

test('cycles and symbol keys next to an unreadable value', () => {
  const a: Record<string, unknown> = { get bad(): never { throw boom; } };
  a.self = a;
  a.list = [a];
  const best = serializeBestEffort(a);
  assert.equal(best.exact, false);
  assert.deepEqual(deserialize(best.text), { bad: '[Unreadable: no]', self: '[Circular]', list: ['[Circular]'] });

  const sym = Symbol('s');
  const withSymbol = { a: 1, get [sym](): never { throw boom; } };
  assert.deepEqual(serializeBestEffort(withSymbol), { text: '{"a":1}', exact: false });
  assert.equal(serialize(withSymbol, { mode: 'lenient' }), '{"a":1}');
  expectSerializeError(withSymbol, 'context', /symbol-keyed/);
  // In the careful pass too (forced by a throwing getter beside it).
  const both = { get bad(): never { throw boom; }, inner: { a: 1, [sym]: 2 } };
  assert.deepEqual(serializeBestEffort(both), { text: '{"bad":"[Unreadable: no]","inner":{"a":1}}', exact: false });
  expectSerializeError(both, 'bad', /cannot be read/);
});

test('very deep nesting beside an unreadable value is cut at MAX_DEPTH, not a stack overflow', () => {
  for (const wrap of [(d: unknown) => [d], (d: unknown) => ({ d }), (d: unknown) => new Map([['k', d]]), (d: unknown) => new Proxy({ d }, {})]) {
    let deep: unknown = 1;
    for (let i = 0; i < MAX_DEPTH * 20; i++) deep = wrap(deep);
    const v = { get bad(): never { throw boom; }, deep };
    const best = serializeBestEffort(v);
    assert.equal(best.exact, false);
    assert.ok(best.text.startsWith('{"bad":"[Unreadable: no]","deep":'), best.text.slice(0, 80));
    assert.ok(best.text.includes('"[Too deep]"'));
    deserialize(best.text);
    assert.equal(serialize(v, { mode: 'lenient' }), best.text);
    expectSerializeError(v, 'bad', /cannot be read/);
    assert.throws(() => serialize({ deep }), (e: unknown) => e instanceof WpipeError && /deeper than/.test(e.message));
  }
});

test('everything at once: best effort and lenient never throw and the text decodes', () => {
  const everything: Record<string, unknown> = {
    ...Object.fromEntries(UNREADABLE.map((c) => [c.name, c.make()])),
    revokedFn: revokedProxy(() => 1),
    fakeMap: Object.create(Map.prototype),
    nested: POSITIONS.map((p) => p.wrap(revokedProxy())),
  };
  everything.self = everything;
  for (const v of [everything, revokedProxy(), [revokedProxy()], new Set([revokedProxy()])]) {
    const best = serializeBestEffort(v);
    assert.equal(best.exact, false);
    deserialize(best.text);
    assert.equal(serialize(v, { mode: 'lenient' }), best.text);
    assert.throws(() => serialize(v), (e: unknown) => e instanceof WpipeError && e.code === 'WPIPE_ERR_CHECKPOINT_SERIALIZE');
  }
  assert.deepEqual(serializeBestEffort(revokedProxy()), { text: JSON.stringify("[Unreadable: Cannot perform 'IsArray' on a proxy that has been revoked]"), exact: false });
});
