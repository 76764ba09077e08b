/**
 * Batch evaluation over columns: inspecting the columns, planning, and compiling the typed subset to a
 * batch program (bytecode.ts, "Batch programs") for the wasm and native VMs.
 *
 * Plan: predicates over string columns that cannot fail (`kind == 'a'`, `tier in ['x', 'y']`,
 * `name < 'm'`) are computed by JS into bool columns first — a string identity test is cheap in JS
 * and costly to marshal; what remains must be numbers and bools, which the VMs take as flat
 * Float64Array / Uint8Array columns. Anything outside that subset is evaluated row by row by the js
 * evaluator, which is the reference semantics, so results never depend on the plan.
 */
import { CmpOp, Fn, Op } from './bytecode.js';
import { ProgramBuilder, emitNode } from './compile.js';
import type { Node } from './parse.js';
import { compare } from '../vm/pyops.js';
import { PyFloat } from '../vm/values.js';
import { ColumnKind, type BatchProgram, type ColumnKindValue, type VmColumn } from '../backend/types.js';
import { invalidOption, describeType } from '../errors.js';

export type ColumnShape = 'number' | 'bool' | 'string' | 'mixed';

export interface ColumnInfo {
  readonly name: string;
  readonly shape: ColumnShape;
  /** The column as given (array or typed array), for row-wise reads. */
  readonly values: ArrayLike<unknown>;
  /** Lazily built flat copy for the VMs. */
  flat?: VmColumn;
}

type NumericArray = Exclude<ArrayLike<number>, unknown[]> & ArrayBufferView;

/** Checks the columns a batch needs and classifies each; all must have the same length. */
export function inspectColumns(columns: unknown, names: readonly string[]): { rows: number; infos: Map<string, ColumnInfo> } {
  if (columns === null || typeof columns !== 'object' || Array.isArray(columns)) {
    throw invalidOption(`testBatch: columns must be an object of arrays or typed arrays, got ${describeType(columns)}`);
  }
  const record = columns as Record<string, unknown>;
  const infos = new Map<string, ColumnInfo>();
  let rows = -1;
  let firstName = '';
  // Every given column counts for the row count (an expression may read none of them).
  const given = Object.keys(record);
  for (const name of [...names.filter((n) => Object.hasOwn(record, n)), ...given.filter((n) => !names.includes(n))]) {
    const values = record[name];
    const used = names.includes(name);
    let shape: ColumnShape = 'mixed';
    if (values instanceof DataView) {
      throw invalidOption(`testBatch: column '${name}' is a DataView; use a typed array or an array`);
    } else if (!used && (Array.isArray(values) || ArrayBuffer.isView(values))) {
      shape = 'mixed';
    } else if (ArrayBuffer.isView(values) && !(values instanceof DataView)) {
      if (typeof (values as unknown as ArrayLike<unknown>)[0] === 'bigint') {
        throw invalidOption(`testBatch: column '${name}' is a BigInt array; use a Float64Array or an array of numbers`);
      }
      shape = 'number';
    } else if (Array.isArray(values)) {
      shape = classify(values);
    } else {
      throw invalidOption(`testBatch: column '${name}' must be an array or a typed array, got ${describeType(values)}`);
    }
    const length = (values as ArrayLike<unknown>).length;
    if (rows < 0) {
      rows = length;
      firstName = name;
    } else if (length !== rows) {
      throw invalidOption(`testBatch: column '${name}' has ${length} rows but '${firstName}' has ${rows}`, 'RangeError');
    }
    if (used) infos.set(name, { name, shape, values: values as ArrayLike<unknown> });
  }
  return { rows: Math.max(rows, 0), infos };
}

function classify(values: readonly unknown[]): ColumnShape {
  if (values.length === 0) return 'number';
  const first = typeof values[0];
  if (first !== 'number' && first !== 'boolean' && first !== 'string') return 'mixed';
  for (let i = 1; i < values.length; i++) if (typeof values[i] !== first) return 'mixed';
  return first === 'number' ? 'number' : first === 'boolean' ? 'bool' : 'string';
}

/** A VM-ready column list: the NUMBER/BOOL columns of the program, in NAME order. */
export function flatColumn(info: ColumnInfo): VmColumn {
  if (info.flat) return info.flat;
  const v = info.values;
  if (info.shape === 'bool') {
    const out = new Uint8Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = v[i] ? 1 : 0;
    info.flat = out;
  } else if (v instanceof Float64Array) {
    info.flat = v;
  } else {
    info.flat = Float64Array.from(v as NumericArray | number[]);
  }
  return info.flat;
}

/** A bool column computed in JS from a string column. */
interface DerivedColumn {
  readonly source: string;
  readonly compute: (values: ArrayLike<unknown>, rows: number) => Uint8Array;
}

export interface BatchPlan {
  readonly program: BatchProgram;
  /** For each column slot of the program: a user column name, or a derived column. */
  readonly slots: ReadonlyArray<{ column: string } | { derived: DerivedColumn }>;
}

const ORDERING = new Set<number>([CmpOp.LT, CmpOp.LE, CmpOp.GT, CmpOp.GE, CmpOp.EQ, CmpOp.NE]);
const BATCH_FUNCTIONS = new Set<number>([Fn.abs, Fn.bool, Fn.int, Fn.float, Fn.round, Fn.min, Fn.max]);

function constStrings(node: Node): string[] | undefined {
  if (node.type !== 'list' && node.type !== 'tuple') return undefined;
  const out: string[] = [];
  for (const item of node.items) {
    if (item.type !== 'const' || typeof item.value !== 'string') return undefined;
    out.push(item.value);
  }
  return out;
}

/** A string-column predicate that cannot fail, as a derived bool column; else undefined. */
function stringPredicate(node: Node, infos: Map<string, ColumnInfo>): DerivedColumn | undefined {
  if (node.type !== 'compare' || node.ops.length !== 1) return undefined;
  const [left, right] = node.operands as [Node, Node];
  const op = node.ops[0]!;
  if (left.type !== 'name' || infos.get(left.id)?.shape !== 'string') return undefined;
  if (ORDERING.has(op) && right.type === 'const' && typeof right.value === 'string') {
    const k = right.value;
    const source = left.id;
    if (op === CmpOp.EQ || op === CmpOp.NE) {
      const want = op === CmpOp.EQ ? 1 : 0;
      return {
        source,
        compute: (values, rows) => {
          const out = new Uint8Array(rows);
          for (let i = 0; i < rows; i++) out[i] = values[i] === k ? want : 1 - want;
          return out;
        },
      };
    }
    return {
      source,
      compute: (values, rows) => {
        const out = new Uint8Array(rows);
        for (let i = 0; i < rows; i++) out[i] = compare(op, values[i], k) ? 1 : 0;
        return out;
      },
    };
  }
  if ((op === CmpOp.IN || op === CmpOp.NOT_IN)) {
    const options = constStrings(right);
    if (!options) return undefined;
    const set = new Set(options);
    const want = op === CmpOp.IN ? 1 : 0;
    return {
      source: left.id,
      compute: (values, rows) => {
        const out = new Uint8Array(rows);
        for (let i = 0; i < rows; i++) out[i] = set.has(values[i] as string) ? want : 1 - want;
        return out;
      },
    };
  }
  return undefined;
}

/**
 * Compiles an expression for the VMs' batch subset over these columns, or returns undefined when it
 * is outside the subset (the caller then evaluates row by row in JS).
 */
export function planBatch(root: Node, text: string, infos: Map<string, ColumnInfo>): BatchPlan | undefined {
  const slots: Array<{ column: string } | { derived: DerivedColumn }> = [];
  const kinds: ColumnKindValue[] = [];
  const slotOf = new Map<string, number>();

  function columnSlot(name: string): number | undefined {
    const info = infos.get(name);
    if (!info || (info.shape !== 'number' && info.shape !== 'bool')) return undefined;
    let slot = slotOf.get(name);
    if (slot === undefined) {
      slot = slots.length;
      slots.push({ column: name });
      kinds.push(info.shape === 'number' ? ColumnKind.NUMBER : ColumnKind.BOOL);
      slotOf.set(name, slot);
    }
    return slot;
  }

  // Rewrites the tree: string predicates become synthetic names of derived columns.
  function rewrite(node: Node): Node | undefined {
    const derived = stringPredicate(node, infos);
    if (derived) {
      const id = `\u0000derived${slots.length}`;
      slotOf.set(id, slots.length);
      slots.push({ derived });
      kinds.push(ColumnKind.BOOL);
      return { type: 'name', id, pos: node.pos };
    }
    switch (node.type) {
      case 'const':
        return typeof node.value === 'number' || typeof node.value === 'boolean' || node.value instanceof PyFloat ? node : undefined;
      case 'name':
        return columnSlot(node.id) === undefined ? undefined : node;
      case 'unary': {
        const operand = rewrite(node.operand);
        return operand && { ...node, operand };
      }
      case 'binop': {
        const left = rewrite(node.left);
        const right = left && rewrite(node.right);
        return right && { ...node, left: left!, right };
      }
      case 'compare': {
        if (!node.ops.every((op) => ORDERING.has(op))) return undefined;
        const operands: Node[] = [];
        for (const o of node.operands) {
          const r = rewrite(o);
          if (!r) return undefined;
          operands.push(r);
        }
        return { ...node, operands };
      }
      case 'boolop': {
        const values: Node[] = [];
        for (const v of node.values) {
          const r = rewrite(v);
          if (!r) return undefined;
          values.push(r);
        }
        return { ...node, values };
      }
      case 'ifexp': {
        const test = rewrite(node.test);
        const body = test && rewrite(node.body);
        const orelse = body && rewrite(node.orelse);
        return orelse && { ...node, test: test!, body: body!, orelse };
      }
      case 'call': {
        if (!BATCH_FUNCTIONS.has(node.fn)) return undefined;
        const n = node.args.length;
        if ((node.fn === Fn.min || node.fn === Fn.max) ? n < 2 : n !== 1) return undefined;
        const args: Node[] = [];
        for (const a of node.args) {
          const r = rewrite(a);
          if (!r) return undefined;
          args.push(r);
        }
        return { ...node, args };
      }
      default:
        return undefined;
    }
  }

  const tree = rewrite(root);
  if (!tree) return undefined;
  const b = new ProgramBuilder(text);
  emitNode(b, tree, { name: (id) => slotOf.get(id)! });
  b.emit(Op.RETURN, root.pos);
  const base = b.build();
  const program: BatchProgram = { ...base, names: slots.map((s) => ('column' in s ? s.column : s.derived.source)), kinds };
  return { program, slots };
}

/** The VM input columns of a plan (derived columns computed now). */
export function planColumns(plan: BatchPlan, infos: Map<string, ColumnInfo>, rows: number): VmColumn[] {
  return plan.slots.map((slot) => {
    if ('column' in slot) return flatColumn(infos.get(slot.column)!);
    return slot.derived.compute(infos.get(slot.derived.source)!.values, rows);
  });
}
