// The error catalog: every code, its family, the classes, and crossing a boundary (structured clone).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import {
  Codes, ERROR_CATALOG, WpipeError, TaskError, ProcessError, ApiError, ExpressionError,
  serializeError, deserializeError, checkOptions, closestName,
} from '../src/errors.js';

test('Codes keeps the families of the original', () => {
  assert.deepEqual({ ...Codes }, {
    INTERNAL: 500, API_ERROR: 501, TASK_FAILED: 502, UPDATE_PROCESS_OK: 503, UPDATE_PROCESS_ERROR: 504, UPDATE_TASK: 505,
  });
});

test('every catalog code is WPIPE_ERR_<AREA>_<THING> with a known family and a meaning', () => {
  const families = new Set<number>(Object.values(Codes));
  for (const [code, entry] of Object.entries(ERROR_CATALOG)) {
    assert.match(code, /^WPIPE_ERR_[A-Z]+(_[A-Z0-9]+)*$/, code);
    assert.ok(families.has(entry.errorCode), code);
    assert.ok(entry.meaning.length > 10, code);
    const e = new WpipeError(code as keyof typeof ERROR_CATALOG, 'm');
    assert.equal(e.code, code);
    assert.equal(e.errorCode, entry.errorCode);
  }
});

test('run ownership codes: in progress and id conflict are run-state errors (504)', () => {
  for (const code of ['WPIPE_ERR_RUN_IN_PROGRESS', 'WPIPE_ERR_RUN_ID_CONFLICT'] as const) {
    assert.equal(ERROR_CATALOG[code].errorCode, Codes.UPDATE_PROCESS_ERROR, code);
    const e = deserializeError(structuredClone(serializeError(new WpipeError(code, 'run r-1'))));
    assert.ok(e instanceof WpipeError);
    assert.equal(e.code, code);
    assert.equal(e.errorCode, 504);
  }
});

test('AutoRegister codes: a module that cannot be imported, a module without steps (500)', () => {
  for (const code of ['WPIPE_ERR_MODULE_IMPORT', 'WPIPE_ERR_MODULE_NO_STEPS'] as const) {
    assert.equal(ERROR_CATALOG[code].errorCode, Codes.INTERNAL, code);
    const e = deserializeError(structuredClone(serializeError(new WpipeError(code, "module './steps.ts'", { details: { module: './steps.ts' } }))));
    assert.ok(e instanceof WpipeError);
    assert.equal(e.code, code);
    assert.equal(e.errorCode, 500);
    assert.deepEqual(e.details, { module: './steps.ts' });
  }
});

test('worker codes: over the memory cap, a worker that died, a value that cannot cross are step failures (502)', () => {
  for (const code of ['WPIPE_ERR_MEMORY_LIMIT', 'WPIPE_ERR_WORKER_EXITED', 'WPIPE_ERR_WORKER_CLONE'] as const) {
    assert.equal(ERROR_CATALOG[code].errorCode, Codes.TASK_FAILED, code);
    const e = deserializeError(structuredClone(serializeError(new TaskError('over', { code }))));
    assert.ok(e instanceof TaskError, code);
    assert.equal(e.code, code);
    assert.equal(e.errorCode, 502);
  }
  assert.equal('WPIPE_ERR_TASK_MEMORY_LIMIT' in ERROR_CATALOG, false, 'one code for the memory cap');
});

test('memoryLimit codes: the watchdog firing is a step failure (502), no mechanism available an internal error (500)', () => {
  for (const [code, family] of [['WPIPE_ERR_MEMORY_LIMIT', 502], ['WPIPE_ERR_MEMORY_LIMIT_UNAVAILABLE', 500]] as const) {
    assert.equal(ERROR_CATALOG[code].errorCode, family, code);
    const e = deserializeError(structuredClone(serializeError(new WpipeError(code, 'cap 512 MiB', { details: { limitBytes: 536870912 } }))));
    assert.ok(e instanceof WpipeError);
    assert.equal(e.code, code);
    assert.equal(e.errorCode, family);
    assert.deepEqual(e.details, { limitBytes: 536870912 });
  }
});

test('the classes share the base class and carry their default codes', () => {
  const table: Array<[WpipeError, string, number, string]> = [
    [new TaskError('t'), 'WPIPE_ERR_TASK_FAILED', 502, 'TaskError'],
    [new TaskError('t', { code: 'WPIPE_ERR_TASK_TIMEOUT' }), 'WPIPE_ERR_TASK_TIMEOUT', 502, 'TaskError'],
    [new ProcessError('p'), 'WPIPE_ERR_PROCESS_FAILED', 502, 'ProcessError'],
    [new ApiError('a'), 'WPIPE_ERR_API', 501, 'ApiError'],
    [new ExpressionError('syntax', 'SyntaxError', 'bad', 'x +', 3), 'WPIPE_ERR_EXPRESSION_SYNTAX', 500, 'ExpressionError'],
    [new ExpressionError('eval', 'NameError', 'no x', 'x', 0), 'WPIPE_ERR_EXPRESSION_EVAL', 500, 'ExpressionError'],
  ];
  for (const [e, code, family, name] of table) {
    assert.ok(e instanceof WpipeError && e instanceof Error);
    assert.equal(e.code, code);
    assert.equal(e.errorCode, family);
    assert.equal(e.name, name);
  }
});

test('cause chains survive serialization through structured clone', () => {
  const original = new RangeError('disk on fire');
  const task = new TaskError("step 'load' failed after 3 attempts", { cause: original, details: { stepName: 'load' } });
  const run = new ProcessError('run failed', { cause: task });
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(serializeError(run));
  const cloned = receiveMessageOnPort(port2)!.message;
  port1.close();
  const rebuilt = deserializeError(cloned) as ProcessError;
  assert.ok(rebuilt instanceof ProcessError);
  assert.equal(rebuilt.errorCode, 502);
  const cause = rebuilt.cause as TaskError;
  assert.ok(cause instanceof TaskError);
  assert.equal(cause.stepName, 'load');
  const root = cause.cause as Error;
  assert.ok(root instanceof RangeError, 'a standard error class comes back as itself');
  assert.equal(root.name, 'RangeError');
  assert.equal(root.message, 'disk on fire');
});

test('standard error classes come back as themselves, with their cause; another class as an Error with its name and code', () => {
  const round = (e: Error): Error => deserializeError(structuredClone(serializeError(e)));
  const r = round(new TypeError('outer', { cause: new SyntaxError('inner') }));
  assert.ok(r instanceof TypeError);
  assert.ok(r.cause instanceof SyntaxError);
  assert.equal((r.cause as Error).message, 'inner');
  class DbError extends Error {
    code = 'EDB';
    constructor(m: string) { super(m); this.name = 'DbError'; }
  }
  const d = round(new DbError('gone')) as Error & { code?: string };
  assert.equal(Object.getPrototypeOf(d), Error.prototype);
  assert.deepEqual([d.name, d.message, d.code], ['DbError', 'gone', 'EDB']);
  // A name that is not a standard class's, even one Object.prototype carries, is never called.
  assert.equal(Object.getPrototypeOf(round(Object.assign(new Error('x'), { name: 'constructor' }))), Error.prototype);
});

test('ExpressionError round-trips with its position and type', () => {
  const e = new ExpressionError('eval', 'TypeError', 'bad operands', "x < 'a'", 2);
  const back = deserializeError(structuredClone(serializeError(e))) as ExpressionError;
  assert.ok(back instanceof ExpressionError);
  assert.equal(back.pythonType, 'TypeError');
  assert.equal(back.position, 2);
  assert.equal(back.expression, "x < 'a'");
  assert.equal(back.message, e.message);
});

test('option checks: unknown options get a hint, wrong shapes a TypeError', () => {
  assert.throws(() => checkOptions('Pipeline', { trackingDB: 'x' }, ['trackingDb', 'verbose']), (e: unknown) =>
    e instanceof TypeError && /did you mean trackingDb\?/.test(e.message) && (e as { code?: string }).code === 'WPIPE_ERR_INVALID_OPTION');
  assert.throws(() => checkOptions('Pipeline', 5, ['verbose']), TypeError);
  assert.doesNotThrow(() => checkOptions('Pipeline', undefined, ['verbose']));
  assert.equal(closestName('maxRetires', ['maxRetries', 'retryDelay']), 'maxRetries');
  assert.equal(closestName('zzzzzz', ['maxRetries']), undefined);
});

test('serializeError never throws: a revoked Proxy thrown, or as the cause of an error', () => {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  assert.match(serializeError(proxy).message, /^\[Unreadable error: /);
  const e = new Error('outer', { cause: proxy });
  const out = serializeError(e);
  assert.equal(out.message, 'outer');
  assert.match(out.cause!.message, /^\[Unreadable error: /);
  const hostile = new Error('getter');
  Object.defineProperty(hostile, 'code', { get() { throw new Error('no'); } });
  assert.match(serializeError(hostile).message, /Unreadable error: no/);
});
