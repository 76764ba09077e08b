// The bytecode contract (src/expr/bytecode.ts) is mirrored by hand in assembly/opcodes.ts and
// native/opcodes.h: every namespace and number there must equal the TypeScript one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BinOp, CmpOp, ErrorKind, Fn, Limits, Method, Op, OPERAND_COUNT, Reason, Tag } from '../src/expr/bytecode.js';
import { ColumnKind } from '../src/backend/types.js';

const contract: Record<string, Record<string, number>> = { Op, BinOp, CmpOp, Fn, Method, Tag, ErrorKind, Reason, ColumnKind };

/** namespace NAME { … const KEY: type = VALUE … } blocks of a C++ or AssemblyScript file. */
function namespaces(path: string): Record<string, Record<string, number>> {
  const text = readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');
  const out: Record<string, Record<string, number>> = {};
  for (const block of text.matchAll(/namespace\s+(\w+)\s*\{([^{}]*)\}/g)) {
    const entries: Record<string, number> = {};
    for (const m of block[2]!.matchAll(/const(?:expr)?\s+(?:\w+\s+)?(\w+)\s*(?::\s*\w+\s*)?=\s*(-?[\d_]+(?:\.\d+)?)\s*;/g)) {
      // C++ keywords get a trailing underscore there (int_ for Fn.int).
      entries[m[1]!.replace(/_$/, '')] = Number(m[2]!.replace(/_/g, ''));
    }
    out[block[1]!] = entries;
  }
  return out;
}

for (const path of ['assembly/opcodes.ts', 'native/opcodes.h']) {
  test(`${path} mirrors bytecode.ts`, () => {
    const mirror = namespaces(path);
    for (const [name, values] of Object.entries(contract)) {
      if (name === 'ColumnKind' && !mirror[name]) continue; // the wasm VM takes column kinds as bytes
      assert.ok(mirror[name], `${path} has no namespace ${name}`);
      for (const [key, value] of Object.entries(values)) {
        assert.equal(mirror[name]![key], value, `${path}: ${name}.${key}`);
      }
    }
  });
}

test('native/opcodes.h has the operand counts and limits of bytecode.ts', () => {
  const text = readFileSync(new URL('../native/opcodes.h', import.meta.url), 'utf8');
  const counts = /OPERAND_COUNT\[kOpCount\]\s*=\s*\{([^}]*)\}/.exec(text)![1]!.split(',').map((x) => Number(x.trim()));
  assert.deepEqual(counts, [...OPERAND_COUNT]);
  const limits = namespaces('native/opcodes.h').Limits!;
  for (const key of ['MAX_DEPTH', 'MAX_VALUE_SIZE', 'MAX_WORK'] as const) assert.equal(limits[key], Limits[key], key);
});
