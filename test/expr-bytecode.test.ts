// The VM contract (src/vm/contract.ts) reaches the AssemblyScript VM (assembly/opcodes.ts) and the
// C++ VM (native/opcodes.h) only through scripts/gen-vm-contract.mjs. These tests fail when a
// checked-in copy is not what the script makes (a number edited in a copy, an extra member, a
// contract change without `npm run gen:vm`), and check that the script itself refuses a contract
// it cannot mirror faithfully; and that the one result-tape reader (src/vm/tape.ts readResult)
// decodes every tag of the dialect the two VMs write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Limits, OPERAND_COUNT, Op, SHARED_REF_MIN_STRING, Tag, TapeTag } from '../src/vm/contract.js';
import { TapeWriter, readResult } from '../src/vm/tape.js';
import { PyFloat, PyTuple } from '../src/vm/values.js';
import { compileExpression, getBackendInfo } from '../src/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Runs the generator against a copy of the repository parts it reads and writes. */
function generator(args: string[], change?: (dir: string) => void): { status: number | null; out: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'wpipe-gen-'));
  for (const f of ['scripts/gen-vm-contract.mjs', 'src/vm/contract.ts', 'assembly/opcodes.ts', 'native/opcodes.h']) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    cpSync(join(root, f), join(dir, f));
  }
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  change?.(dir);
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(dir, 'scripts', 'gen-vm-contract.mjs'), ...args], { cwd: dir, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}`, dir };
}

function edit(dir: string, file: string, from: string | RegExp, to: string): void {
  const path = join(dir, file);
  const text = readFileSync(path, 'utf8');
  const next = text.replace(from, to);
  assert.notEqual(next, text, `the edit of ${file} applies`);
  writeFileSync(path, next);
}

test('the checked-in assembly/opcodes.ts and native/opcodes.h are what src/vm/contract.ts generates', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'gen-vm-contract.mjs'), '--check'], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});

test('a copy edited by hand fails the check: a limit, an operand count, an extra opcode', () => {
  const cases: Array<[string, string | RegExp, string]> = [
    ['assembly/opcodes.ts', `export const MAX_DEPTH: i32 = ${Limits.MAX_DEPTH};`, 'export const MAX_DEPTH: i32 = 99;'],
    ['native/opcodes.h', /OPERAND_COUNT\[kOpCount\] = \{0, 1/, 'OPERAND_COUNT[kOpCount] = {0, 2'],
    ['native/opcodes.h', `constexpr int32_t METHOD = ${Op.METHOD};`, `constexpr int32_t METHOD = ${Op.METHOD};\nconstexpr int32_t EXTRA = ${Op.METHOD + 1};`],
  ];
  for (const [file, from, to] of cases) {
    const r = generator(['--check'], (dir) => edit(dir, file, from, to));
    try {
      assert.equal(r.status, 1, r.out);
      assert.match(r.out, new RegExp(`${file.replace('.', '\\.')} is not what src/vm/contract.ts generates`));
    } finally {
      rmSync(r.dir, { recursive: true, force: true });
    }
  }
});

test('a contract change reaches both copies: a new opcode moves the counts and the operand table', () => {
  const r = generator([], (dir) => {
    edit(dir, 'src/vm/contract.ts', /METHOD: 19,([^\n]*)\n/, 'METHOD: 19,$1\n  NOP: 20,\n');
    edit(dir, 'src/vm/contract.ts', /OPERAND_COUNT: readonly number\[\] = \[([^\]]*)\]/, 'OPERAND_COUNT: readonly number[] = [$1, 0]');
  });
  try {
    assert.equal(r.status, 0, r.out);
    const h = readFileSync(join(r.dir, 'native/opcodes.h'), 'utf8');
    const a = readFileSync(join(r.dir, 'assembly/opcodes.ts'), 'utf8');
    assert.match(h, /constexpr int32_t NOP = 20;/);
    assert.match(h, new RegExp(`constexpr int32_t kOpCount = ${OPERAND_COUNT.length + 1};`));
    assert.match(h, new RegExp(`OPERAND_COUNT\\[kOpCount\\] = \\{${[...OPERAND_COUNT, 0].join(', ')}\\}`));
    assert.match(a, /export const NOP: i32 = 20;/);
    assert.match(a, new RegExp(`export const OP_COUNT: i32 = ${OPERAND_COUNT.length + 1};`));
  } finally {
    rmSync(r.dir, { recursive: true, force: true });
  }
});

test('the generator refuses a contract it cannot mirror: gaps in a numbering, a missing operand count, a tag clash', () => {
  const cases: Array<[string | RegExp, string, RegExp]> = [
    ['BinOp = { ADD: 0, SUB: 1,', 'BinOp = { ADD: 0, SUB: 2,', /BinOp\.SUB is 2: members must be numbered 0, 1, 2 … in order/],
    [/METHOD: 19,([^\n]*)\n/, 'METHOD: 19,$1\n  NOP: 20,\n', /OPERAND_COUNT must give 0, 1 or 2 operands for each of the 21 opcodes/],
    ['CONTEXT_REF: 0xfe', 'CONTEXT_REF: 9', /TapeTag\.CONTEXT_REF \(9\) collides with a value tag/],
  ];
  for (const [from, to, message] of cases) {
    const r = generator([], (dir) => edit(dir, 'src/vm/contract.ts', from, to));
    try {
      assert.equal(r.status, 2, r.out);
      assert.match(r.out, message);
    } finally {
      rmSync(r.dir, { recursive: true, force: true });
    }
  }
});

test('one result tape, one reader: every tag, CONTEXT_REF and SHARED_REF in the same tape', () => {
  const date = new Date(0);
  const l = [1, 2];
  const ctx = { l, d: { a: 1, t: new PyTuple([3]) }, o: date };
  const w = new TapeWriter();
  w.context(ctx, ['l', 'd', 'o']); // origins: 1 l, 2 d, 3 the tuple in d, 4 o (opaque id 0)
  const long = 'x'.repeat(SHARED_REF_MIN_STRING);
  const t = new TapeWriter();
  t.tag(Tag.NONE); // a byte before the result: the reader starts where it is told
  t.tag(Tag.LIST); t.u32(9); // numbered 0
  t.tag(TapeTag.CONTEXT_REF); t.u32(1);
  t.tag(TapeTag.CONTEXT_REF); t.u32(4);
  t.tag(Tag.TUPLE); t.u32(3); // numbered 1
  t.tag(Tag.FLOAT); t.f64(1); t.tag(Tag.STR); t.str(long); /* numbered 2 */ t.tag(Tag.INT); t.f64(-0);
  t.tag(TapeTag.SHARED_REF); t.u32(1);
  t.tag(TapeTag.SHARED_REF); t.u32(2);
  t.tag(Tag.DICT); t.u32(1); t.str('k'); t.tag(Tag.FLOAT); t.f64(2); // numbered 3; a plain number inside
  t.tag(Tag.OPAQUE); t.str('Date#0');
  t.tag(Tag.STR); t.str('x'.repeat(SHARED_REF_MIN_STRING - 1)); // too short to be numbered
  t.tag(TapeTag.SHARED_REF); t.u32(3);
  const bytes = t.bytes.slice(0, t.length);
  const r = readResult(bytes, new DataView(bytes.buffer), 1, w) as unknown[];
  assert.equal(r.length, 9);
  assert.equal(r[0], l);
  assert.equal(r[1], date);
  assert.ok(r[2] instanceof PyTuple);
  assert.deepEqual((r[2] as PyTuple).items, [new PyFloat(1), long, -0]);
  assert.equal(r[3], r[2]);
  assert.equal(r[4], long);
  assert.deepEqual(r[5], { k: 2 });
  assert.equal(typeof (r[5] as { k: unknown }).k, 'number');
  assert.equal(r[6], date);
  assert.equal(r[8], r[5]);
  // Scalars, and a tag outside the dialect.
  const s = new TapeWriter();
  s.tag(Tag.FLOAT); s.f64(3); s.tag(Tag.INT); s.f64(3); s.tag(0xfd);
  const sb = s.bytes.slice(0, s.length);
  const sv = new DataView(sb.buffer);
  assert.deepEqual(readResult(sb, sv, 0, w), new PyFloat(3));
  assert.equal(readResult(sb, sv, 9, w), 3);
  assert.throws(() => readResult(sb, sv, 18, w), /corrupt result tape: tag 253/);
});

test('both VMs\' results through the one reader: a value repeated in a result comes back shared, as in js', () => {
  const info = getBackendInfo();
  const backends = (['js', 'wasm', 'native'] as const).filter((b) => info.backends[b].available);
  const ctx = { l: [1, 2.5], d: { a: [1] }, s: 'y'.repeat(40) };
  for (const backend of backends) {
    const ev = (text: string): unknown[] => compileExpression(text, { backend }).evaluate(ctx) as unknown[];
    const rep = ev('[l] * 3');
    assert.deepEqual(rep, [[1, 2.5], [1, 2.5], [1, 2.5]], backend);
    assert.ok(rep[0] === rep[1] && rep[1] === rep[2], `${backend}: [l] * 3 shares its item`);
    const dd = ev('[d, d, d.a]');
    assert.deepEqual(dd, [{ a: [1] }, { a: [1] }, [1]], backend);
    assert.ok(dd[0] === dd[1], `${backend}: [d, d] shares the dict`);
    assert.ok((dd[0] as { a: unknown }).a === dd[2], `${backend}: d.a is the dict's own list`);
    const built = ev("[[1.0, s + 'z']] * 2 + [(s + 'z', 2.0)]");
    assert.deepEqual(built, [[1, `${ctx.s}z`], [1, `${ctx.s}z`], [`${ctx.s}z`, 2]], backend);
    assert.ok(built[0] === built[1], `${backend}: a built list repeated by * is shared`);
    const long = ev("[s + 'z'] * 2 + [s + 'z']");
    assert.deepEqual(long, [`${ctx.s}z`, `${ctx.s}z`, `${ctx.s}z`], backend);
    // Many shared values at once (the wasm host's table grows), each kept apart from the others.
    const many = ev(Array.from({ length: 100 }, (_, i) => `[[${i}] * 2] * 2`).join(' + ')) as number[][];
    assert.deepEqual(many, Array.from({ length: 200 }, (_, i) => [i >> 1, i >> 1]), backend);
    for (let i = 0; i < 200; i += 2) assert.ok(many[i] === many[i + 1] && many[i] !== many[i + 2], `${backend}: item ${i}`);
    // Shared, a value that big crosses as small as it is in memory (written in full it is a LimitError).
    const huge = ev('[[0] * 999999] * 999999') as unknown[][];
    assert.equal(huge.length, 999999, backend);
    assert.ok(huge[0] === huge[999998] && huge[0]!.length === 999999, backend);
  }
});
