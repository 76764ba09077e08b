// The VM contract (src/vm/contract.ts) reaches the AssemblyScript VM (assembly/opcodes.ts) and the
// C++ VM (native/opcodes.h) only through scripts/gen-vm-contract.mjs. These tests fail when a
// checked-in copy is not what the script makes (a number edited in a copy, an extra member, a
// contract change without `npm run gen:vm`), and check that the script itself refuses a contract
// it cannot mirror faithfully.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Limits, OPERAND_COUNT, Op } from '../src/vm/contract.js';

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
