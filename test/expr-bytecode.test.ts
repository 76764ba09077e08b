// The VM contract (src/vm/contract.ts) reaches the AssemblyScript VM (assembly/opcodes.ts) and the
// C++ VM (native/opcodes.h) only through scripts/gen-vm-contract.mjs. These tests fail when a
// checked-in copy is not what the script makes (a number edited in a copy, an extra member, a
// contract change without `npm run gen:vm`), and check that the script itself refuses a contract
// it cannot mirror faithfully; that no VM source or backend writes a contract number by hand
// instead of taking it from the generated copies or the contract (a scan of their text); and that
// the one result-tape reader (src/vm/tape.ts readResult) decodes every tag of the dialect the two
// VMs write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ErrorKind, FaultWord, Limits, OPERAND_COUNT, Op, PLAN_RECORD, PLAN_SELECT_SOURCE, PlanOp, Reason, SHARED_REF_MIN_STRING, SliceFlag, Tag,
  TapeTag, WasmAbi, WasmResult, faultWords,
} from '../src/vm/contract.js';
import { loadWasmVm, planBatchProgram } from '../src/backend/wasm.js';
import { loadNativeVm } from '../src/backend/native.js';
import { ColumnKind, VmFault, type ExprVm } from '../src/backend/types.js';
import { compileProgram } from '../src/expr/compile.js';
import { parse } from '../src/expr/parse.js';
import { describeFault } from '../src/expr/messages.js';
import { TapeLimit, TapeWriter, readResult } from '../src/vm/tape.js';
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

/** Each case edits a copy of src/vm/contract.ts (`from` → `to`); the generator must refuse it (exit 2) saying `message`. */
function expectRefused(cases: ReadonlyArray<[string | RegExp, string, RegExp]>): void {
  for (const [from, to, message] of cases) {
    const r = generator([], (dir) => edit(dir, 'src/vm/contract.ts', from, to));
    try {
      assert.equal(r.status, 2, r.out);
      assert.match(r.out, message);
    } finally {
      rmSync(r.dir, { recursive: true, force: true });
    }
  }
}

test('the generator refuses a contract it cannot mirror: gaps in a numbering, a missing operand count, a tag clash', () => {
  const cases: Array<[string | RegExp, string, RegExp]> = [
    ['BinOp = { ADD: 0, SUB: 1,', 'BinOp = { ADD: 0, SUB: 2,', /BinOp\.SUB is 2: members must be numbered 0, 1, 2 … in order/],
    [/METHOD: 19,([^\n]*)\n/, 'METHOD: 19,$1\n  NOP: 20,\n', /OPERAND_COUNT must give 0, 1 or 2 operands for each of the 21 opcodes/],
    ['CONTEXT_REF: 0xfe', 'CONTEXT_REF: 9', /TapeTag\.CONTEXT_REF \(9\) collides with a value tag/],
    ['{ LOWER: 1, UPPER: 2, STEP: 4 }', '{ LOWER: 1, UPPER: 3, STEP: 4 }', /SliceFlag\.UPPER \(3\) must be a power of two/],
    ['{ LOWER: 1, UPPER: 2, STEP: 4 }', '{ LOWER: 1, UPPER: 2, STEP: 2 }', /SliceFlag\.STEP \(2\) is the bit of another flag/],
    ['{ LOWER: 1, UPPER: 2, STEP: 4 }', '{ LOWER: 1, UPPER: 2 }', /SliceFlag has no STEP/],
    ['{ LOWER: 1, UPPER: 2, STEP: 4 }', '{ LOWER: 1, UPPER: 2, STEP: 4, STOP: 8 }', /SliceFlag must have exactly LOWER, UPPER, STEP/],
    ['MAX_TAPE_BYTES: 256 * 1024 * 1024,', 'MAX_TAPE_BYTES: 2 ** 31,', /Limits\.MAX_TAPE_BYTES must be a positive integer below 2\^31/],
  ];
  expectRefused(cases);
});

test('SliceFlag and its mask, and the tape cap, are in both copies', () => {
  const h = readFileSync(join(root, 'native/opcodes.h'), 'utf8');
  const a = readFileSync(join(root, 'assembly/opcodes.ts'), 'utf8');
  const mask = Object.values(SliceFlag).reduce((m, v) => m | v, 0);
  assert.ok(h.includes(`namespace SliceFlag {\n${Object.entries(SliceFlag).map(([k, v]) => `constexpr int32_t ${k} = ${v};`).join('\n')}\n}`), h);
  assert.ok(a.includes(`namespace SliceFlag {\n${Object.entries(SliceFlag).map(([k, v]) => `  export const ${k}: i32 = ${v};`).join('\n')}\n}`), a);
  assert.match(h, new RegExp(`constexpr int32_t kSliceFlagMask = ${mask};`));
  assert.match(a, new RegExp(`export const SLICE_FLAG_MASK: i32 = ${mask};`));
  assert.match(h, new RegExp(`constexpr uint32_t MAX_TAPE_BYTES = ${Limits.MAX_TAPE_BYTES};`));
  assert.match(a, new RegExp(`export const MAX_TAPE_BYTES: usize = ${Limits.MAX_TAPE_BYTES};`));
});

test('a FaultWord reordered or grown reaches both copies, and the wasm block follows the word count', () => {
  const declaration = /export const FaultWord = \{[^}]*\}/;
  const words = Object.keys(FaultWord);
  const table = (keys: string[]): string => `export const FaultWord = { ${keys.map((k, i) => `${k}: ${i}`).join(', ')} }`;
  const align16 = (n: number): number => Math.ceil(n / 16) * 16;
  // Reversed: every word moves (KIND is no longer word 0).
  const reversed = [...words].reverse();
  const r1 = generator([], (dir) => edit(dir, 'src/vm/contract.ts', declaration, table(reversed)));
  try {
    assert.equal(r1.status, 0, r1.out);
    const h = readFileSync(join(r1.dir, 'native/opcodes.h'), 'utf8');
    const a = readFileSync(join(r1.dir, 'assembly/opcodes.ts'), 'utf8');
    assert.ok(h.includes(`namespace FaultWord {\n${reversed.map((k, i) => `constexpr int32_t ${k} = ${i};`).join('\n')}\n}`), h);
    assert.ok(a.includes(`namespace FaultWord {\n${reversed.map((k, i) => `  export const ${k}: i32 = ${i};`).join('\n')}\n}`), a);
    assert.match(a, new RegExp(`export const RESULT_AT: i32 = ${WasmAbi.RESULT_AT};`));
  } finally {
    rmSync(r1.dir, { recursive: true, force: true });
  }
  // Three more words: the counts follow, and so do the result descriptor and the block after them.
  const grown = [...words, 'X1', 'X2', 'X3'];
  const resultAt = align16(grown.length * 4);
  const r2 = generator([], (dir) => edit(dir, 'src/vm/contract.ts', declaration, table(grown)));
  try {
    assert.equal(r2.status, 0, r2.out);
    const h = readFileSync(join(r2.dir, 'native/opcodes.h'), 'utf8');
    const a = readFileSync(join(r2.dir, 'assembly/opcodes.ts'), 'utf8');
    assert.match(h, new RegExp(`constexpr int32_t kFaultWordCount = ${grown.length};`));
    assert.match(a, new RegExp(`export const FAULT_WORD_COUNT: i32 = ${grown.length};`));
    assert.match(a, new RegExp(`export const RESULT_AT: i32 = ${resultAt};`));
    assert.match(a, new RegExp(`export const BLOCK_BYTES: i32 = ${align16(resultAt + WasmResult.NUM + 8)};`));
  } finally {
    rmSync(r2.dir, { recursive: true, force: true });
  }
});

test('each host ABI goes to its one copy: the wasm ABI to assembly/opcodes.ts, the addon ABI to native/opcodes.h', () => {
  const h = readFileSync(join(root, 'native/opcodes.h'), 'utf8');
  const a = readFileSync(join(root, 'assembly/opcodes.ts'), 'utf8');
  for (const name of ['WasmAbi', 'WasmResult', 'PlanOp', 'PlanUnary', 'PlanSelectSource']) {
    assert.match(a, new RegExp(`export namespace ${name} \\{`), name);
    assert.doesNotMatch(h, new RegExp(`\\b${name}\\b`), name);
  }
  for (const name of ['ADDON_ABI', 'SamplerHeaderField', 'SamplerInfoField']) {
    assert.match(h, new RegExp(`\\b${name}\\b`), name);
    assert.doesNotMatch(a, new RegExp(`\\b${name}\\b`), name);
  }
});

test('the generator refuses a host ABI the two sides cannot share: a plan record gap, a micro-op without a record, clashing flags', () => {
  const cases: Array<[string | RegExp, string, RegExp]> = [
    ['UNARY: { OP: 1, DST: 2, A: 3, NEED: 4, PC: 5, BITS: 6 }', 'UNARY: { OP: 1, DST: 2, A: 3, NEED: 4, PC: 5, BITS: 7 }',
      /PLAN_RECORD\.UNARY\.BITS is 7: members must be numbered 1, 2, 3 … in order/],
    ['CALL: 11, RETURN: 12,', 'CALL: 11, RETURN: 12, NOP: 13,', /PLAN_RECORD must have a record for each PlanOp member/],
    ['EVALUATE_GREW: 256', 'EVALUATE_GREW: 8', /WasmAbi\.EVALUATE_GREW must be a power of two above every Tag/],
    ['CONTEXT_GREW: 1,', 'CONTEXT_GREW: 16,', /WasmAbi\.CONTEXT_GREW must be 1, 2, 4 or 8/],
    ['{ TAG: 0, LEN: 4, PTR: 8, NUM: 16 }', '{ TAG: 0, LEN: 4, PTR: 8, NUM: 12 }', /WasmResult\.NUM \(12\) must be aligned to its size/],
  ];
  expectRefused(cases);
});

test('the wasm batch planner writes the records of PLAN_RECORD: a plan walks record by record to its END', () => {
  const text = 'not (0 < x < 10) and (-x if b else abs(x)) * 2 > 1 or b and not x';
  const program = { ...compileProgram(parse(text), text), kinds: [ColumnKind.NUMBER, ColumnKind.BOOL] as const };
  assert.deepEqual(program.names, ['x', 'b']);
  const { plan } = planBatchProgram(program);
  const ops = Object.keys(PlanOp) as Array<keyof typeof PlanOp>; // numbered 0, 1 … in order (the generator checks)
  const seen = new Set<string>();
  for (let at = 0; ; ) {
    const op = ops[plan[at]!];
    assert.ok(op, `a micro-op at word ${at}: ${plan[at]}`);
    seen.add(op);
    if (op === 'END') {
      assert.equal(at + 1, plan.length, 'END is the last word');
      break;
    }
    let words = 1 + Object.keys(PLAN_RECORD[op]).length;
    if (op === 'SELECT') words += plan[at + PLAN_RECORD.SELECT.N]! * Object.keys(PLAN_SELECT_SOURCE).length;
    if (op === 'CALL') words += plan[at + PLAN_RECORD.CALL.ARGC]!;
    at += words;
    assert.ok(at < plan.length, `the ${op} record ends inside the plan`);
  }
  assert.deepEqual([...seen].sort(), [...ops].sort(), 'the expression uses every micro-op');
});

/**
 * Hand-written copies of contract numbers: each rule names what to use instead, the files it scans,
 * and examples it must catch (checked below, so a rule that stops matching fails too).
 */
const SCANNED = [
  ...readdirSync(join(root, 'assembly'))
    .filter((f) => f.endsWith('.ts') && f !== 'opcodes.ts' && f !== 'unicode-tables.ts')
    .map((f) => `assembly/${f}`),
  ...readdirSync(join(root, 'native'))
    .filter((f) => /\.(cpp|h)$/.test(f) && f !== 'opcodes.h' && f !== 'unicode_tables.h')
    .map((f) => `native/${f}`),
  'src/backend/wasm.ts',
  'src/backend/native.ts',
  'src/backend/addon.ts',
  'src/backend/types.ts',
  'src/vm/tape.ts',
];
const HAND_COPY_RULES: Array<{ files: RegExp; re: RegExp; use: string; bad: string[] }> = [
  {
    files: /./,
    re: /(?<!\d)9007199254740991(?!\d)|\b2\s*(?:\*\*|\^)\s*53\s*-\s*1\b/,
    use: 'Limits.MAX_INT (Limits::MAX_INT)',
    bad: ['p > (__int128)9007199254740991LL', 'MAX_INT = 9007199254740991;', '|x| <= 2^53 - 1'],
  },
  {
    // A contract value (opcode, operator, function, method, tag, error kind, reason, column kind)
    // compared with a number; `x < 0` / `x >= 0` range checks stay allowed.
    files: /./,
    re: /\b(?:op|aop|cop|opcode|kind|fn|method|reason|tag|\w+Kind|\w+Reason|\w+Tag)\s*(?:===?\s*-?\d|!==?\s*-?\d|[<>]=?\s*[1-9])/,
    use: 'the generated names (Op.NOT, ColumnKind.NUMBER, ErrorKind.OK …)',
    bad: ['if (op == 10) {', 'kind == 0 ? a : b', 'if (tag > 255) {', 'rowErrKind != 0'],
  },
  {
    files: /./,
    re: /\b(?:kind|tag|reason|\w+Kind|\w+Reason|\w+Tag)\s*(?::\s*\w+\s*)?=\s*-?\d+\b/,
    use: 'the generated names (ErrorKind.OK, Reason.GENERIC, Tag.NONE …)',
    bad: ['powErrKind = 0;', 'let rowErrReason: i32 = 0;'],
  },
  { files: /./, re: /\bcase\s+-?\d+\s*:/, use: 'case Op.X: / case Tag.X: …', bad: ['case 10: {'] },
  {
    // The block at faultPtr(): fault words by FaultWord, the result descriptor by WasmAbi / WasmResult.
    files: /^assembly\//,
    re: /\b(?:load|store)<\w+>\(\s*(?:FAULT|RESULT)\s*[,)]|\b(?:FAULT|RESULT)\s*\+\s*\d/,
    use: 'setFault(FaultWord.X, …) and RESULT + WasmResult.X',
    bad: ['store<i32>(FAULT, fPc, 4);', 'store<i32>(FAULT, fKind);', 'load<i32>(FAULT, 32)', 'FAULT + 32'],
  },
  {
    files: /^assembly\/index\.ts$/,
    re: /\bgrew\s*<<|<usize>grew\b/,
    use: 'WasmAbi.CONTEXT_GREW / WasmAbi.EVALUATE_GREW',
    bad: ['| (grew << 8)', 'alloc(<usize>bytes) | <usize>grew'],
  },
  {
    files: /^assembly\/batch\.ts$/,
    re: /\bP_[A-Z]+\b|\bload<i32>\(\s*(?:p|srcs?\b[^,]*),\s*\d+\s*\)|\bp\s*\+=\s*\d[^,)]*;/,
    use: 'PlanOp.X and the Plan* records (fld(p, PlanUnary.DST), recBytes(PlanUnary.WORDS))',
    bad: ['case P_UNARY: {', 'load<i32>(p, 8)', 'p += 28;', 'load<i32>(srcs + (<usize>k << 3), 4)'],
  },
  {
    files: /^src\/backend\/wasm\.ts$/,
    re: new RegExp([
      /\b(?:at|faultAt|r|tag)\s*(?:\+|-=?|&=?)\s*\d/, // fault words, result descriptor, "memory grew" flags
      /\bout\.push\(\s*(?:P\.|\d)|\bout\.length\s*-\s*\d|\b(?:END|UNARY|SELECT)\s*:\s*\d/, // plan records by position
      /\ba[12]\s*<=?\s*[1-9]/, // operand bounds
    ].map((r) => r.source).join('|')),
    use: "FaultWord, FAULT_WORD_COUNT, WasmAbi, WasmResult, emit(out, 'X', {...}) and PLAN_RECORD, BINOP_SYMBOL.length",
    bad: [
      'this.i32.slice(at, at + 6)', 'const r = this.faultAt + 8;', 'tag &= 255;', 'if (at & 1) {', 'out.push(P.UNARY, op, dst)',
      'value(dst, out.length - 3)', 'const P = { END: 0, COL: 1 }', 'a1 <= 6',
    ],
  },
  {
    files: /^src\/backend\/(?:native|addon)\.ts$/,
    re: /\b(?:FAULT_WORDS|HEADER_FIELDS|ADDON_ABI)\s*=\s*\d|\b[ho]\[\d+\]|Float64Array\(9\)/,
    use: 'FAULT_WORD_COUNT, ADDON_ABI, SamplerHeaderField, SamplerInfoField from src/vm/contract.ts',
    bad: ['const FAULT_WORDS = 6;', 'const ADDON_ABI = 4;', 'h[5]! - h[3]!', 'running: o[0] === 1'],
  },
  {
    files: /^native\/(?:addon\.cpp|sampler\.(?:cpp|h))$/,
    re: /"abi",\s*Napi::Number::New\(env,\s*\d|\bk(?:Header|Info)Fields\s*=\s*\d|\bh\[\d+\]|at least \d/,
    use: 'ADDON_ABI, kSamplerHeaderFieldCount, SamplerHeaderField::X, SamplerInfoField::X',
    bad: ['o.Set("abi", Napi::Number::New(env, 4));', 'constexpr size_t kHeaderFields = 10;', 'h[8] = last[1];', '"a Float64Array of at least 10"'],
  },
  {
    // The tape cap: the host's TapeWriter (context tapes) and both VMs' result-tape writers.
    files: /./,
    re: /\b256\s*(?:<<\s*20|\*\s*1024\s*\*\s*1024)\b|(?<!\d)268435456(?!\d)|\b1\s*<<\s*28\b|\b0x10000000\b/,
    use: 'Limits.MAX_TAPE_BYTES (Limits::MAX_TAPE_BYTES)',
    bad: ['const MAX_RESULT_TAPE: usize = 256 << 20;', 'const MAX_TAPE_BYTES = 256 * 1024 * 1024;', 'if (n > 268435456u)', 'cap = 1 << 28;'],
  },
  {
    files: /./,
    re: /src\/expr\/(?:pyops|pow)\.ts|\bsix\b/,
    use: 'src/vm/pyops.ts, src/vm/pow.ts; "the fault words" (their count is FAULT_WORD_COUNT)',
    bad: ['as implemented by src/expr/pyops.ts', 'after writing the six fault words'],
  },
];

test('the hand-copy rules catch what they are for', () => {
  for (const rule of HAND_COPY_RULES) for (const bad of rule.bad) assert.match(bad, rule.re, `rule for ${rule.use}`);
});

test('no VM source or backend writes a contract number by hand: they take it from the generated copies or the contract', () => {
  assert.ok(SCANNED.includes('assembly/batch.ts') && SCANNED.includes('native/vm.cpp'), SCANNED.join());
  // A host module that uses a layout of the contract is scanned, wherever the code moves to.
  const layoutUsers = readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && f !== join('vm', 'contract.ts'))
    .map((f) => `src/${f.split(sep).join('/')}`)
    .filter((f) => /\b(?:FaultWord|FAULT_WORD_COUNT|SamplerHeaderField|SamplerInfoField|ADDON_ABI|WasmAbi|WasmResult|PLAN_RECORD)\b/.test(readFileSync(join(root, f), 'utf8')));
  assert.deepEqual(layoutUsers.filter((f) => !SCANNED.includes(f) && f.startsWith('src/backend/')), [], 'backend modules using a contract layout must be in SCANNED');
  const found: string[] = [];
  for (const file of SCANNED) {
    const lines = readFileSync(join(root, file), 'utf8').split('\n');
    lines.forEach((line, i) => {
      for (const rule of HAND_COPY_RULES) {
        if (rule.files.test(file) && rule.re.test(line)) found.push(`${file}:${i + 1}: ${line.trim()}\n    (use ${rule.use})`);
      }
    });
  }
  assert.deepEqual(found, [], `hand-written copies of contract numbers (src/vm/contract.ts):\n${found.join('\n')}`);
});

/**
 * SLICE's operand is SliceFlag bits. A SLICE site is a `case Op.SLICE:` / `case Op::SLICE:` (a VM's run
 * loop or verifier) or a `case 'slice':` (the compiler), up to the next case of its switch; in one, a
 * bit operation or bound with a literal 1..7 is a hand-written flag (`flags & 4`, `flags |= 2`,
 * `(flags >> 1) & 1`, `a > 7`). Anywhere, `Op.SLICE, 4` (an operand written after the opcode) is one.
 * Bit literals outside SLICE sites (`e & 1` in num.ts) are not slice flags and are left alone.
 */
const SLICE_SITE = /\bcase\s+(?:Op(?:\.|::)SLICE|'slice')\s*:/;
const SLICE_FLAG_LITERAL = /(?<![&|])[&|]=?\s*[1-7]\b|[<>]=?\s*7\b|>>\s*[12]\b/;
const SLICE_OPERAND_LITERAL = /\bOp(?:\.|::)SLICE\s*,\s*(?:[\w.]+\s*,\s*)?[1-7]\b/;

/** The SLICE sites of a source text and the lines (from 1) that spell a slice flag by number. */
function sliceFlagLiterals(text: string): { sites: number; found: number[] } {
  const lines = text.split('\n');
  const indent = (line: string): number => line.length - line.trimStart().length;
  let sites = 0;
  const found = new Set<number>();
  lines.forEach((line, i) => {
    if (SLICE_OPERAND_LITERAL.test(line)) found.add(i + 1);
    if (!SLICE_SITE.test(line)) return;
    sites++;
    for (let j = i; j < lines.length; j++) {
      const l = lines[j]!;
      if (j > i && (/^\s*(?:case\b|default\s*:)/.test(l) || (l.trim() !== '' && indent(l) < indent(line)))) break;
      if (SLICE_FLAG_LITERAL.test(l)) found.add(j + 1);
    }
  });
  return { sites, found: [...found].sort((a, b) => a - b) };
}

test('the slice-flag scan catches numbers at SLICE sites, and bit literals elsewhere are not slice flags', () => {
  const bad = [
    'const k = (flags & 1) + ((flags >> 1) & 1) + ((flags >> 2) & 1);', 'if (flags & 4) { st = q; }', 'flags |= 2; n++;',
    'int k = __builtin_popcount((unsigned)flags & 7);', 'const Value* lo = (flags & 1) ? b++ : nullptr;',
    'if (a < 0 || a > 7) bad("slice flags", pc);',
  ];
  for (const line of bad) assert.match(line, SLICE_FLAG_LITERAL);
  const good = [
    'if (flags & SliceFlag.STEP) { st = q; }', 'const k = popcnt<i32>(flags & SLICE_FLAG_MASK);', 'flags |= SliceFlag.LOWER; n++;',
    'if ((a & ~kSliceFlagMask) != 0) bad("slice flags", pc);', 'pc += 2;', 'const obj = sp - <usize>(k + 1) * SLOT;',
    'Value r = getSlice(stack[sp - k - 1], lo, hi, st);', 'if (a < 0 || b < 0) bad("call", pc);', 'if (a && b) { sp -= k; }',
  ];
  for (const line of good) assert.doesNotMatch(line, SLICE_FLAG_LITERAL);
  assert.match('b.emit(Op.SLICE, node.pos, 4);', SLICE_OPERAND_LITERAL);
  assert.match('code: [Op.NAME, 0, Op.CONST, 0, Op.SLICE, 4, Op.RETURN]', SLICE_OPERAND_LITERAL);
  assert.doesNotMatch('b.emit(Op.SLICE, node.pos, flags);', SLICE_OPERAND_LITERAL);
  assert.doesNotMatch('const site: Site = { op: Op.SLICE, arg: 0, pos: node.pos };', SLICE_OPERAND_LITERAL);
  // Only the SLICE case is scanned: the cases before and after it, and the code after the switch, are not.
  const sample = [
    'switch (op) {', //                                        1
    '  case Op.NOT: { x = y & 1; break; }', //               2
    '  case Op.SLICE: {', //                                  3
    '    const k = (flags & 1) + ((flags >> 1) & 1);', //     4
    '    if (flags & SliceFlag.STEP) { st = q; }', //         5
    '    pc += 2;', //                                        6
    '    break;', //                                          7
    '  }', //                                                 8
    '  case Op.LIST: { n = m & 4; break; }', //              9
    '}', //                                                   10
    'switch (op) {', //                                       11
    '  case Op.SLICE: r = f(a, b); break;', //               12
    '}', //                                                   13
    'if (a & 1) odd();', //                                   14
    'b.emit(Op.SLICE, node.pos, 4);', //                      15
  ].join('\n');
  assert.deepEqual(sliceFlagLiterals(sample), { sites: 2, found: [4, 15] });
});

test('no SLICE site spells a slice flag by number: the compiler and both VMs use SliceFlag', () => {
  const files = [...new Set([
    ...SCANNED,
    ...readdirSync(join(root, 'src/expr')).filter((f) => f.endsWith('.ts')).map((f) => `src/expr/${f}`),
    ...readdirSync(join(root, 'src/vm')).filter((f) => f.endsWith('.ts') && f !== 'contract.ts').map((f) => `src/vm/${f}`),
  ])];
  const sites: Record<string, number> = {};
  const found: string[] = [];
  for (const file of files) {
    const text = readFileSync(join(root, file), 'utf8');
    const r = sliceFlagLiterals(text);
    if (r.sites > 0) sites[file] = r.sites;
    const lines = text.split('\n');
    for (const n of r.found) found.push(`${file}:${n}: ${lines[n - 1]!.trim()}`);
  }
  // The sites that read or write the flags: the compiler, the wasm VM, the C++ VM (run loop and verifier).
  assert.equal(sites['src/expr/compile.ts'], 1, JSON.stringify(sites));
  assert.equal(sites['assembly/vm.ts'], 1, JSON.stringify(sites));
  assert.equal(sites['native/vm.cpp'], 2, JSON.stringify(sites));
  assert.deepEqual(found, [], `slice flags written as numbers (use SliceFlag.LOWER / UPPER / STEP, SLICE_FLAG_MASK, kSliceFlagMask):\n${found.join('\n')}`);
});

test('one tape cap: the host writes a tape of Limits.MAX_TAPE_BYTES bytes, not one more (LimitError, TAPE_TOO_LARGE)', () => {
  const w = new TapeWriter();
  w.length = Limits.MAX_TAPE_BYTES - 1;
  w.tag(Tag.NONE); // the last byte the cap allows
  assert.equal(w.length, Limits.MAX_TAPE_BYTES);
  assert.throws(() => w.tag(Tag.NONE), (e: unknown) => {
    assert.ok(e instanceof TapeLimit);
    assert.deepEqual([e.kind, e.reason], [ErrorKind.LimitError, Reason.TAPE_TOO_LARGE]);
    return true;
  });
  // Users read the tape's byte cap, not the item limit of VALUE_TOO_LARGE.
  const text = describeFault(ErrorKind.LimitError, Reason.TAPE_TOO_LARGE, -1, -1, '', { op: Op.RETURN, arg: 0 }, [], []);
  assert.equal(text.reason, `value too large to pass between JavaScript and the VM (limit: ${Limits.MAX_TAPE_BYTES / 2 ** 20} MiB encoded)`);
});

{
  const info = getBackendInfo();
  const vms: Array<[string, () => ExprVm]> = [];
  if (info.backends.wasm.available) vms.push(['wasm', loadWasmVm]);
  if (info.backends.native.available) vms.push(['native', loadNativeVm]);
  const skip = vms.length === 0 ? 'no VM backend available' : false;
  test('a result tape one byte over Limits.MAX_TAPE_BYTES fails the same way in both VMs: LimitError TAPE_TOO_LARGE at RETURN', { skip }, () => {
    // Unshared, so written in full by both VMs: lists of strings too short for SHARED_REF (the
    // strings of `[s] * n` are one string, the lists separate buffers), then None items (1 byte each)
    // to land on the cap + 1. About 4M items: ~0.4 s and ~400 MB per VM. (At the cap exactly the
    // result crosses, in both VMs; decoding it costs ~2.5 s and ~1 GB, too much for a unit test.)
    const len = SHARED_REF_MIN_STRING - 1;
    const item = 1 + 4 + 2 * len; // STR tag, u32 length, UTF-16 units
    const header = 1 + 4; // LIST tag, u32 count
    const lists: string[] = [];
    let bytes = header;
    let items = 0;
    const s = `'${'x'.repeat(len)}'`;
    for (const full = header + Limits.MAX_VALUE_SIZE * item; bytes + full <= Limits.MAX_TAPE_BYTES; bytes += full, items += Limits.MAX_VALUE_SIZE) {
      lists.push(`[${s}] * ${Limits.MAX_VALUE_SIZE}`);
    }
    const rest = Limits.MAX_TAPE_BYTES + 1 - bytes - header;
    const strings = Math.floor(rest / item);
    const nones = rest - strings * item;
    lists.push(`[${s}] * ${strings} + [None] * ${nones}`);
    items += strings + nones;
    assert.ok(items < Limits.MAX_WORK, `the result's ${items} items must be built within Limits.MAX_WORK: rewrite this test`);
    const text = `[${lists.join(', ')}]`;
    assert.ok(text.length <= Limits.MAX_TEXT_LENGTH);
    const program = compileProgram(parse(text), text);
    const returnAt = program.code.length - 1;
    assert.equal(program.code[returnAt], Op.RETURN);
    const want = faultWords(ErrorKind.LimitError, Reason.TAPE_TOO_LARGE, returnAt);
    for (const [name, load] of vms) {
      let fault: Int32Array | undefined;
      try {
        load().prepareScalar(program).evaluate({});
      } catch (e) {
        if (!(e instanceof VmFault)) throw e;
        fault = e.fault;
      }
      assert.deepEqual(fault, want, `${name}: the fault of a result over the tape cap`);
    }
  });
}

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
