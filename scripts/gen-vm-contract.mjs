#!/usr/bin/env node
// Generates the VMs' copies of the contract in src/vm/contract.ts: assembly/opcodes.ts (the
// AssemblyScript VM) and native/opcodes.h (the C++ VM). Run it after changing the contract:
//
//   npm run gen:vm            (node --import tsx scripts/gen-vm-contract.mjs)
//   ... --check               exits 1, naming the file, when a checked-in copy is not what this makes
//
// test/expr-bytecode.test.ts runs the check, so a copy edited by hand (a number, an extra member) or
// a contract change without a regeneration fails `npm test`. SliceFlag (the SLICE operand's bits) goes
// to both copies with its mask (kSliceFlagMask, SLICE_FLAG_MASK). Every enumeration must number its
// members 0, 1, 2 … in order: the VMs size tables and bound their verifiers by the member count
// (kOpCount, kBinOpCount … in C++, OP_COUNT … in AssemblyScript), which this script emits.
//
// Besides the VM contract, two host ABIs of src/vm/contract.ts go to one copy each: the wasm host ABI
// (WasmResult, WasmAbi, PlanOp, PLAN_RECORD, PLAN_SELECT_SOURCE) to assembly/opcodes.ts, the addon
// host ABI (ADDON_ABI, SamplerHeaderField, SamplerInfoField) to native/opcodes.h. The script checks
// what the code on both sides of each relies on (alignment, flag bits, record numbering) and stops
// with exit code 2 when the contract breaks it.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const contract = await import(pathToFileURL(join(root, 'src', 'vm', 'contract.ts')).href);
const check = process.argv.includes('--check');

/** The enumerations of the VM contract, in output order (both copies). */
const ENUMS = ['Op', 'BinOp', 'CmpOp', 'Fn', 'Method', 'Tag', 'ErrorKind', 'Reason', 'FaultWord', 'ColumnKind'];
/** Enumerations of the addon host ABI (native/opcodes.h only). */
const CPP_ABI_ENUMS = ['SamplerHeaderField', 'SamplerInfoField'];
/** Member names that are keywords in C++ (the contract's `int`, `float`, `bool` functions). */
const CPP_KEYWORDS = new Set(['int', 'float', 'bool']);
/** Each limit's type in each language (a new limit must be added here, or the script stops). */
const LIMIT_TYPES = {
  MAX_TEXT_LENGTH: { cpp: 'int32_t', as: 'i32' },
  MAX_DEPTH: { cpp: 'int32_t', as: 'i32' },
  MAX_VALUE_SIZE: { cpp: 'uint32_t', as: 'i32' },
  MAX_INT: { cpp: 'double', as: 'f64' },
  MAX_WORK: { cpp: 'int64_t', as: 'f64' },
  MAX_TAPE_BYTES: { cpp: 'uint32_t', as: 'usize' },
};
/** The bits of SliceFlag the VMs read by name (each must be there, as a distinct power of two). */
const SLICE_FLAGS = ['LOWER', 'UPPER', 'STEP'];

function fail(message) {
  console.error(`gen-vm-contract: ${message}`);
  process.exit(2);
}

function table(name) {
  const t = contract[name];
  if (t === null || typeof t !== 'object') fail(`src/vm/contract.ts has no ${name}`);
  return t;
}

/** The members of a table that must number them first, first + 1 … in order. */
function numbered(label, t, first = 0) {
  const entries = Object.entries(t);
  entries.forEach(([key, value], i) => {
    const want = first + i;
    if (value !== want) {
      fail(`${label}.${key} is ${value}: members must be numbered ${first}, ${first + 1}, ${first + 2} … in order (expected ${want})`);
    }
  });
  return entries;
}

function members(name) {
  return numbered(name, table(name));
}

/** Entries of a table of non-negative integers (offsets, flags). */
function integers(name) {
  const entries = Object.entries(table(name));
  for (const [key, v] of entries) if (!Number.isInteger(v) || v < 0) fail(`${name}.${key} must be a non-negative integer`);
  return entries;
}

const countName = (name) => ({ cpp: `k${name}Count`, as: `${name.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}_COUNT` });
const f64 = (v) => (Number.isInteger(v) ? `${v}.0` : String(v));

const ops = members('Op');
const operands = contract.OPERAND_COUNT;
if (!Array.isArray(operands) || operands.length !== ops.length || operands.some((n) => !Number.isInteger(n) || n < 0 || n > 2)) {
  fail(`OPERAND_COUNT must give 0, 1 or 2 operands for each of the ${ops.length} opcodes`);
}
const limits = Object.entries(contract.Limits);
for (const [key] of limits) if (!(key in LIMIT_TYPES)) fail(`Limits.${key} has no C++ / AssemblyScript type in LIMIT_TYPES`);
{
  // Tape lengths are u32 on the tapes, and the wasm result descriptor's LEN is an i32.
  const t = contract.Limits.MAX_TAPE_BYTES;
  if (!Number.isInteger(t) || t < 1 || t >= 2 ** 31) fail('Limits.MAX_TAPE_BYTES must be a positive integer below 2^31');
}
const sliceFlags = integers('SliceFlag');
{
  let mask = 0;
  for (const [key, v] of sliceFlags) {
    if (v === 0 || (v & (v - 1)) !== 0 || v >= 2 ** 30) fail(`SliceFlag.${key} (${v}) must be a power of two (one bit)`);
    if (mask & v) fail(`SliceFlag.${key} (${v}) is the bit of another flag`);
    mask |= v;
  }
  for (const key of SLICE_FLAGS) if (!(key in contract.SliceFlag)) fail(`SliceFlag has no ${key}`);
  if (sliceFlags.length !== SLICE_FLAGS.length) fail(`SliceFlag must have exactly ${SLICE_FLAGS.join(', ')}: the VMs read no other bound`);
}
const sliceFlagMask = sliceFlags.reduce((m, [, v]) => m | v, 0);
const tapeTags = Object.entries(contract.TapeTag);
for (const [key, v] of tapeTags) {
  if (!Number.isInteger(v) || v < 0 || v > 255) fail(`TapeTag.${key} must be a byte`);
  if (Object.values(contract.Tag).includes(v)) fail(`TapeTag.${key} (${v}) collides with a value tag`);
}
const sharedMin = contract.SHARED_REF_MIN_STRING;
if (!Number.isInteger(sharedMin) || sharedMin < 1) fail('SHARED_REF_MIN_STRING must be a positive integer');

// The wasm host ABI (assembly/opcodes.ts only).
const faultWordCount = members('FaultWord').length;
const wasmResult = integers('WasmResult');
const wasmAbi = integers('WasmAbi');
{
  const r = contract.WasmResult;
  const a = contract.WasmAbi;
  for (const key of ['TAG', 'LEN', 'PTR', 'NUM']) if (!(key in r)) fail(`WasmResult has no ${key}`);
  for (const key of ['RESULT_AT', 'BLOCK_BYTES', 'CONTEXT_GREW', 'EVALUATE_GREW']) if (!(key in a)) fail(`WasmAbi has no ${key}`);
  // Fields: i32 TAG, i32 LEN, u32 PTR, f64 NUM, each aligned to its size, none overlapping another.
  const spans = [['TAG', 4], ['LEN', 4], ['PTR', 4], ['NUM', 8]].map(([k, size]) => [k, r[k], r[k] + size]);
  for (const [k, start, end] of spans) {
    if (start % (end - start) !== 0) fail(`WasmResult.${k} (${start}) must be aligned to its size (${end - start} bytes)`);
    for (const [k2, s2, e2] of spans) if (k !== k2 && start < e2 && s2 < end) fail(`WasmResult.${k} overlaps WasmResult.${k2}`);
  }
  const resultBytes = Math.max(...spans.map(([, , end]) => end));
  if (a.RESULT_AT < faultWordCount * 4 || a.RESULT_AT % 8 !== 0) {
    fail(`WasmAbi.RESULT_AT (${a.RESULT_AT}) must be 8-aligned and after the ${faultWordCount} fault words (${faultWordCount * 4} bytes)`);
  }
  if (a.BLOCK_BYTES % 16 !== 0 || a.BLOCK_BYTES < a.RESULT_AT + resultBytes) {
    fail(`WasmAbi.BLOCK_BYTES (${a.BLOCK_BYTES}) must be a multiple of 16 and hold the result descriptor ` +
      `(${a.RESULT_AT + resultBytes} bytes)`);
  }
  // contextBuffer() returns a 16-aligned address: the flag must be a low bit.
  if (![1, 2, 4, 8].includes(a.CONTEXT_GREW)) fail('WasmAbi.CONTEXT_GREW must be 1, 2, 4 or 8 (a bit below the 16-byte alignment)');
  const maxTag = Math.max(...Object.values(contract.Tag));
  if ((a.EVALUATE_GREW & (a.EVALUATE_GREW - 1)) !== 0 || a.EVALUATE_GREW <= maxTag) {
    fail(`WasmAbi.EVALUATE_GREW must be a power of two above every Tag (${maxTag})`);
  }
}
const planOps = members('PlanOp');
const planRecord = table('PLAN_RECORD');
{
  const keys = Object.keys(planRecord);
  if (keys.join() !== planOps.map(([k]) => k).join()) fail('PLAN_RECORD must have a record for each PlanOp member, in the same order');
}
const planRecords = planOps.map(([key]) => {
  const fields = numbered(`PLAN_RECORD.${key}`, planRecord[key], 1);
  if (fields.some(([f]) => f === 'WORDS')) fail(`PLAN_RECORD.${key}: WORDS is the record length the script adds, not a field`);
  return [`Plan${key[0]}${key.slice(1).toLowerCase()}`, key, fields];
});
const selectSource = numbered('PLAN_SELECT_SOURCE', table('PLAN_SELECT_SOURCE'));
if (selectSource.some(([f]) => f === 'WORDS')) fail('PLAN_SELECT_SOURCE: WORDS is the length the script adds, not a field');

// The addon host ABI (native/opcodes.h only).
const addonAbi = contract.ADDON_ABI;
if (!Number.isInteger(addonAbi) || addonAbi < 1) fail('ADDON_ABI must be a positive integer');

const HEADER = 'GENERATED by scripts/gen-vm-contract.mjs from src/vm/contract.ts: do not edit; change the contract and run `npm run gen:vm`.';

function cpp() {
  const out = [`// ${HEADER}`, '// test/expr-bytecode.test.ts fails when this file is not what the script makes.', '#pragma once', '#include <cstdint>', '', 'namespace wpipe {', ''];
  for (const name of ENUMS) {
    const list = members(name);
    out.push(`namespace ${name} {`);
    for (const [key, v] of list) out.push(`constexpr int32_t ${CPP_KEYWORDS.has(key) ? `${key}_` : key} = ${v};`);
    out.push(`}  // namespace ${name}`);
    out.push(`/** Members of ${name}: every valid value is in [0, ${countName(name).cpp}). */`);
    out.push(`constexpr int32_t ${countName(name).cpp} = ${list.length};`);
    if (name === 'Op') {
      out.push('/** Operands per opcode, indexed by opcode. */');
      out.push(`constexpr int32_t OPERAND_COUNT[kOpCount] = {${operands.join(', ')}};`);
      out.push('', '/** The operand of SLICE: a bit per bound present (contract.ts SliceFlag). */', 'namespace SliceFlag {');
      for (const [key, v] of sliceFlags) out.push(`constexpr int32_t ${key} = ${v};`);
      out.push('}  // namespace SliceFlag', '/** Every bit of SliceFlag: any other bit in a SLICE operand is an invalid program. */');
      out.push(`constexpr int32_t kSliceFlagMask = ${sliceFlagMask};`);
    }
    out.push('');
  }
  out.push('namespace Limits {');
  for (const [key, v] of limits) {
    const t = LIMIT_TYPES[key].cpp;
    out.push(`constexpr ${t} ${key} = ${t === 'double' ? f64(v) : v};`);
  }
  out.push('}  // namespace Limits', '');
  out.push('/** Result-tape tags beside the value tags (contract.ts TapeTag). */', 'namespace TapeTag {');
  for (const [key, v] of tapeTags) out.push(`constexpr uint8_t ${key} = 0x${v.toString(16).toUpperCase()};`);
  out.push('}  // namespace TapeTag');
  out.push('/** Shortest STR (code units) a result tape numbers for SHARED_REF (contract.ts). */');
  out.push(`constexpr uint32_t SHARED_REF_MIN_STRING = ${sharedMin};`, '');
  out.push('// The addon host ABI (contract.ts): src/backend/addon.ts and native/addon.cpp, native/sampler.cpp.', '');
  out.push('/** The ABI version info().abi reports (contract.ts ADDON_ABI). */');
  out.push(`constexpr int32_t ADDON_ABI = ${addonAbi};`, '');
  for (const name of CPP_ABI_ENUMS) {
    const list = members(name);
    out.push(`namespace ${name} {`);
    for (const [key, v] of list) out.push(`constexpr int32_t ${key} = ${v};`);
    out.push(`}  // namespace ${name}`);
    out.push(`/** Members of ${name}: every valid value is in [0, ${countName(name).cpp}). */`);
    out.push(`constexpr int32_t ${countName(name).cpp} = ${list.length};`, '');
  }
  out.push('}  // namespace wpipe', '');
  return out.join('\n');
}

function as() {
  const out = [`// ${HEADER}`, '// test/expr-bytecode.test.ts fails when this file is not what the script makes.', ''];
  for (const name of ENUMS) {
    const list = members(name);
    out.push(`export namespace ${name} {`);
    for (const [key, v] of list) out.push(`  export const ${key}: i32 = ${v};`);
    out.push('}');
    out.push(`/** Members of ${name}: every valid value is in [0, ${countName(name).as}). */`);
    out.push(`export const ${countName(name).as}: i32 = ${list.length};`, '');
    if (name === 'Op') {
      out.push('/** The operand of SLICE: a bit per bound present (contract.ts SliceFlag). */', 'export namespace SliceFlag {');
      for (const [key, v] of sliceFlags) out.push(`  export const ${key}: i32 = ${v};`);
      out.push('}', '/** Every bit of SliceFlag: any other bit in a SLICE operand is an invalid program. */');
      out.push(`export const SLICE_FLAG_MASK: i32 = ${sliceFlagMask};`, '');
    }
  }
  out.push('export namespace Limits {');
  for (const [key, v] of limits) {
    const t = LIMIT_TYPES[key].as;
    out.push(`  export const ${key}: ${t} = ${t === 'f64' ? f64(v) : v};`);
  }
  out.push('}', '');
  out.push('/** Result-tape tags beside the value tags (contract.ts TapeTag). */', 'export namespace TapeTag {');
  for (const [key, v] of tapeTags) out.push(`  export const ${key}: i32 = 0x${v.toString(16)};`);
  out.push('}');
  out.push('/** Shortest STR (code units) a result tape numbers for SHARED_REF (contract.ts). */');
  out.push(`export const SHARED_REF_MIN_STRING: i32 = ${sharedMin};`, '');
  out.push('/** Operands per opcode, indexed by opcode. */');
  out.push(`export const OPERAND_COUNT: usize = memory.data<u8>([${operands.join(', ')}]);`, '');
  out.push('// The wasm host ABI (contract.ts): src/backend/wasm.ts and this VM, in linear memory.', '');
  out.push('/** The result descriptor: byte offsets from faultPtr() + WasmAbi.RESULT_AT (contract.ts WasmResult). */');
  out.push('export namespace WasmResult {');
  for (const [key, v] of wasmResult) out.push(`  export const ${key}: i32 = ${v};`);
  out.push('}', '');
  out.push('/** The block at faultPtr() and the "memory grew" flags (contract.ts WasmAbi). */', 'export namespace WasmAbi {');
  for (const [key, v] of wasmAbi) out.push(`  export const ${key}: i32 = ${v};`);
  out.push('}', '');
  out.push('export namespace PlanOp {');
  for (const [key, v] of planOps) out.push(`  export const ${key}: i32 = ${v};`);
  out.push('}');
  out.push(`/** Members of PlanOp: every valid value is in [0, ${countName('PlanOp').as}). */`);
  out.push(`export const ${countName('PlanOp').as}: i32 = ${planOps.length};`, '');
  for (const [ns, key, fields] of planRecords) {
    out.push(`/** The record of PlanOp.${key}: the word index of each field; WORDS, its length (contract.ts PLAN_RECORD). */`);
    out.push(`export namespace ${ns} {`);
    for (const [f, v] of fields) out.push(`  export const ${f}: i32 = ${v};`);
    out.push(`  export const WORDS: i32 = ${fields.length + 1};`, '}');
  }
  out.push('/** One source of a SELECT: the word of each field; WORDS, its length (contract.ts PLAN_SELECT_SOURCE). */');
  out.push('export namespace PlanSelectSource {');
  for (const [f, v] of selectSource) out.push(`  export const ${f}: i32 = ${v};`);
  out.push(`  export const WORDS: i32 = ${selectSource.length};`, '}', '');
  return out.join('\n');
}

let stale = 0;
for (const [file, text] of [['native/opcodes.h', cpp()], ['assembly/opcodes.ts', as()]]) {
  const path = join(root, file);
  let current = '';
  try {
    current = readFileSync(path, 'utf8');
  } catch {
    // missing: written below, or stale in --check
  }
  if (current === text) continue;
  if (check) {
    console.error(`gen-vm-contract: ${file} is not what src/vm/contract.ts generates (edited by hand, or the contract changed): run npm run gen:vm`);
    stale++;
  } else {
    writeFileSync(path, text);
    console.log(`gen-vm-contract: wrote ${file}`);
  }
}
process.exit(stale === 0 ? 0 : 1);
