/**
 * The js evaluator: compiles an AST to a tree of closures (no code generation from the text). Common
 * shapes (`name op constant`, numeric arithmetic, and/or of booleans) get specialised closures with a
 * fast path for plain numbers and strings; everything else goes through pyops.ts.
 */
import { BinOp, CmpOp, Op, ErrorKind, Reason, METHOD_NAMES } from './bytecode.js';
import type { Node } from './parse.js';
import {
  EvalFault, binop, callFunction, callMethod, compare, getAttr, getItem, getSlice, negate, plus, truthy,
} from '../vm/pyops.js';
import { describeFault, type FaultSite } from './messages.js';
import { ExpressionError } from '../errors.js';
import { PyTuple, tagOf } from '../vm/values.js';

export type Evaluator = (ctx: Record<string, unknown>) => unknown;

interface Site extends FaultSite {
  readonly pos: number;
}

/** Turns a fault into an ExpressionError at a site; ExpressionErrors pass through. */
function locate(e: unknown, site: Site, unit: Unit): unknown {
  if (!(e instanceof EvalFault)) return e;
  const { pythonType, reason } = describeFault(e.kind, e.reason, e.tagA, e.tagB, e.detail, site, unit.names, [e.detail]);
  return new ExpressionError('eval', pythonType, reason, unit.text, site.pos);
}

interface Unit {
  readonly text: string;
  readonly names: string[];
}

/** Names that exist on Object.prototype: reading them needs an own-property check first. */
const PROTO_NAMES = new Set(Object.getOwnPropertyNames(Object.prototype));

const hasOwn = Object.hasOwn;

function nameMissing(unit: Unit, id: string, pos: number): ExpressionError {
  const site = { op: Op.NAME, arg: unit.names.indexOf(id), pos };
  return locate(new EvalFault(ErrorKind.NameError, Reason.NAME_MISSING, -1, -1, id), site, unit) as ExpressionError;
}

function nameReader(unit: Unit, id: string, pos: number): Evaluator {
  if (!unit.names.includes(id)) unit.names.push(id);
  if (PROTO_NAMES.has(id)) {
    return (c) => {
      if (hasOwn(c, id)) return c[id];
      throw nameMissing(unit, id, pos);
    };
  }
  return (c) => {
    const v = c[id];
    if (v !== undefined || hasOwn(c, id)) return v;
    throw nameMissing(unit, id, pos);
  };
}

/** Compiles an AST to an evaluator. `names` receives the context names read, in first-use order. */
export function compileClosure(root: Node, text: string): { evaluate: Evaluator; names: string[] } {
  const unit: Unit = { text, names: [] };
  const evaluate = build(root, unit);
  return { evaluate, names: unit.names };
}

function build(node: Node, unit: Unit): Evaluator {
  switch (node.type) {
    case 'const': {
      const value = node.value;
      return () => value;
    }
    case 'name':
      return nameReader(unit, node.id, node.pos);
    case 'attr': {
      const obj = build(node.obj, unit);
      const name = node.name;
      const site: Site = { op: Op.ATTR, arg: 0, pos: node.pos };
      return (c) => {
        const o = obj(c);
        try {
          return getAttr(o, name);
        } catch (e) {
          throw locate(e, site, unit);
        }
      };
    }
    case 'index': {
      const obj = build(node.obj, unit);
      const index = build(node.index, unit);
      const site: Site = { op: Op.INDEX, arg: 0, pos: node.pos };
      return (c) => {
        const o = obj(c);
        const i = index(c);
        try {
          return getItem(o, i);
        } catch (e) {
          throw locate(e, site, unit);
        }
      };
    }
    case 'slice': {
      const obj = build(node.obj, unit);
      const lower = node.lower ? build(node.lower, unit) : null;
      const upper = node.upper ? build(node.upper, unit) : null;
      const step = node.step ? build(node.step, unit) : null;
      const site: Site = { op: Op.SLICE, arg: 0, pos: node.pos };
      return (c) => {
        const o = obj(c);
        const a = lower ? lower(c) : null;
        const b = upper ? upper(c) : null;
        const s = step ? step(c) : null;
        try {
          return getSlice(o, a, b, s);
        } catch (e) {
          throw locate(e, site, unit);
        }
      };
    }
    case 'list':
    case 'tuple': {
      const items = node.items.map((n) => build(n, unit));
      const tuple = node.type === 'tuple';
      return (c) => {
        const out = new Array<unknown>(items.length);
        for (let i = 0; i < items.length; i++) out[i] = items[i]!(c);
        return tuple ? new PyTuple(out) : out;
      };
    }
    case 'unary': {
      const operand = build(node.operand, unit);
      if (node.op === 'not') {
        return (c) => {
          const v = operand(c);
          return v === true ? false : v === false ? true : !truthy(v);
        };
      }
      const site: Site = { op: node.op === 'neg' ? Op.NEG : Op.POS, arg: 0, pos: node.pos };
      const neg = node.op === 'neg';
      return (c) => {
        const v = operand(c);
        if (neg && typeof v === 'number' && v !== 0) return -v;
        try {
          return neg ? negate(v) : plus(v);
        } catch (e) {
          throw locate(e, site, unit);
        }
      };
    }
    case 'binop':
      return buildBinop(node.op, build(node.left, unit), build(node.right, unit), { op: Op.BINOP, arg: node.op, pos: node.pos }, unit);
    case 'compare':
      return buildCompare(node, unit);
    case 'boolop': {
      const parts = node.values.map((n) => build(n, unit));
      if (parts.length === 2 && node.values.every(isBoolean)) {
        // Both sides are comparisons or `not`: their values are booleans, so no truthiness tests.
        const [a, b] = parts as [Evaluator, Evaluator];
        return node.op === 'and' ? (c) => (a(c) as boolean) && (b(c) as boolean) : (c) => (a(c) as boolean) || (b(c) as boolean);
      }
      if (node.op === 'and') {
        if (parts.length === 2) {
          const [a, b] = parts as [Evaluator, Evaluator];
          return (c) => {
            const v = a(c);
            return v === true ? b(c) : v === false ? v : truthy(v) ? b(c) : v;
          };
        }
        return (c) => {
          let v: unknown;
          for (let i = 0; i < parts.length; i++) {
            v = parts[i]!(c);
            if (v === false || (v !== true && !truthy(v))) return v;
          }
          return v;
        };
      }
      if (parts.length === 2) {
        const [a, b] = parts as [Evaluator, Evaluator];
        return (c) => {
          const v = a(c);
          return v === true ? v : v === false ? b(c) : truthy(v) ? v : b(c);
        };
      }
      return (c) => {
        let v: unknown;
        for (let i = 0; i < parts.length; i++) {
          v = parts[i]!(c);
          if (v === true || (v !== false && truthy(v))) return v;
        }
        return v;
      };
    }
    case 'ifexp': {
      const test = build(node.test, unit);
      const body = build(node.body, unit);
      const orelse = build(node.orelse, unit);
      return (c) => {
        const t = test(c);
        return t === true || (t !== false && truthy(t)) ? body(c) : orelse(c);
      };
    }
    case 'call': {
      const args = node.args.map((n) => build(n, unit));
      const fn = node.fn;
      const site: Site = { op: Op.CALL, arg: fn, pos: node.pos };
      return (c) => {
        const values = new Array<unknown>(args.length);
        for (let i = 0; i < args.length; i++) values[i] = args[i]!(c);
        try {
          return callFunction(fn, values);
        } catch (e) {
          throw locate(e, site, unit);
        }
      };
    }
    case 'method': {
      const receiver = build(node.receiver, unit);
      const args = node.args.map((n) => build(n, unit));
      const method = node.method;
      const site: Site = { op: Op.METHOD, arg: method, pos: node.pos };
      const name = METHOD_NAMES[method]!;
      return (c) => {
        const r = receiver(c);
        const values = new Array<unknown>(args.length);
        for (let i = 0; i < args.length; i++) values[i] = args[i]!(c);
        try {
          return callMethod(method, name, r, values);
        } catch (e) {
          throw locate(e, site, unit);
        }
      };
    }
    default: {
      const never: never = node;
      throw new Error(`unknown node ${JSON.stringify(never)}`);
    }
  }
}

/** Does this node always produce a bool? */
function isBoolean(node: Node): boolean {
  switch (node.type) {
    case 'compare': return true;
    case 'unary': return node.op === 'not';
    case 'const': return typeof node.value === 'boolean';
    case 'boolop': return node.values.every(isBoolean);
    case 'call': return node.fn === 8 /* bool */ || node.fn === 10 /* any */ || node.fn === 11 /* all */;
    default: return false;
  }
}

function slowBinop(op: number, a: unknown, b: unknown, site: Site, unit: Unit): unknown {
  try {
    return binop(op, a, b);
  } catch (e) {
    throw locate(e, site, unit);
  }
}

function buildBinop(op: number, left: Evaluator, right: Evaluator, site: Site, unit: Unit): Evaluator {
  const isSafe = Number.isSafeInteger;
  switch (op) {
    case BinOp.ADD:
      return (c) => {
        const a = left(c);
        const b = right(c);
        if (typeof a === 'number' && typeof b === 'number') {
          const r = a + b;
          if (isSafe(r) && isSafe(a) && isSafe(b)) return r + 0;
          if (!Number.isInteger(r)) return r; // a float result that is not integral needs no box
        }
        return slowBinop(op, a, b, site, unit);
      };
    case BinOp.SUB:
      return (c) => {
        const a = left(c);
        const b = right(c);
        if (typeof a === 'number' && typeof b === 'number') {
          const r = a - b;
          if (isSafe(r) && isSafe(a) && isSafe(b)) return r + 0;
          if (!Number.isInteger(r)) return r;
        }
        return slowBinop(op, a, b, site, unit);
      };
    case BinOp.MUL:
      return (c) => {
        const a = left(c);
        const b = right(c);
        if (typeof a === 'number' && typeof b === 'number') {
          const r = a * b;
          if (isSafe(r) && isSafe(a) && isSafe(b)) return r + 0;
          if (!Number.isInteger(r)) return r;
        }
        return slowBinop(op, a, b, site, unit);
      };
    default:
      return (c) => slowBinop(op, left(c), right(c), site, unit);
  }
}

function slowCompare(op: number, a: unknown, b: unknown, site: Site, unit: Unit): boolean {
  try {
    return compare(op, a, b);
  } catch (e) {
    throw locate(e, site, unit);
  }
}

/** A two-operand comparison with fast paths for numbers and strings. */
function compare2(op: number, left: Evaluator, right: Evaluator, site: Site, unit: Unit, rightConst: unknown, hasConst: boolean): Evaluator {
  if (hasConst && typeof rightConst === 'number') {
    const k = rightConst;
    switch (op) {
      case CmpOp.LT: return (c) => { const a = left(c); return typeof a === 'number' ? a < k : slowCompare(op, a, k, site, unit); };
      case CmpOp.LE: return (c) => { const a = left(c); return typeof a === 'number' ? a <= k : slowCompare(op, a, k, site, unit); };
      case CmpOp.GT: return (c) => { const a = left(c); return typeof a === 'number' ? a > k : slowCompare(op, a, k, site, unit); };
      case CmpOp.GE: return (c) => { const a = left(c); return typeof a === 'number' ? a >= k : slowCompare(op, a, k, site, unit); };
      case CmpOp.EQ: return (c) => { const a = left(c); return typeof a === 'number' ? a === k : slowCompare(op, a, k, site, unit); };
      case CmpOp.NE: return (c) => { const a = left(c); return typeof a === 'number' ? a !== k : slowCompare(op, a, k, site, unit); };
      default:
    }
  }
  if (hasConst && typeof rightConst === 'string') {
    const k = rightConst;
    if (op === CmpOp.EQ) return (c) => { const a = left(c); return typeof a === 'string' ? a === k : slowCompare(op, a, k, site, unit); };
    if (op === CmpOp.NE) return (c) => { const a = left(c); return typeof a === 'string' ? a !== k : slowCompare(op, a, k, site, unit); };
  }
  if (hasConst && (rightConst === null || typeof rightConst === 'boolean') && (op === CmpOp.IS || op === CmpOp.IS_NOT)) {
    const k = rightConst;
    const negate = op === CmpOp.IS_NOT;
    return (c) => {
      let a = left(c);
      if (a === undefined) a = null;
      return (a === k) !== negate;
    };
  }
  switch (op) {
    case CmpOp.LT: return (c) => { const a = left(c); const b = right(c); return typeof a === 'number' && typeof b === 'number' ? a < b : slowCompare(op, a, b, site, unit); };
    case CmpOp.LE: return (c) => { const a = left(c); const b = right(c); return typeof a === 'number' && typeof b === 'number' ? a <= b : slowCompare(op, a, b, site, unit); };
    case CmpOp.GT: return (c) => { const a = left(c); const b = right(c); return typeof a === 'number' && typeof b === 'number' ? a > b : slowCompare(op, a, b, site, unit); };
    case CmpOp.GE: return (c) => { const a = left(c); const b = right(c); return typeof a === 'number' && typeof b === 'number' ? a >= b : slowCompare(op, a, b, site, unit); };
    default: return (c) => slowCompare(op, left(c), right(c), site, unit);
  }
}

/** The constant items of a list/tuple literal of only strings or only ints, as a Set; else undefined. */
function constantSet(node: Node): Set<unknown> | undefined {
  if (node.type !== 'list' && node.type !== 'tuple') return undefined;
  const values = node.items.map((n) => (n.type === 'const' ? n.value : undefined));
  if (values.every((v) => typeof v === 'string') || values.every((v) => typeof v === 'number' && Number.isSafeInteger(v))) {
    return new Set(values);
  }
  return undefined;
}

function numericOrder(op: number, a: number, b: number): boolean {
  switch (op) {
    case CmpOp.LT: return a < b;
    case CmpOp.LE: return a <= b;
    case CmpOp.GT: return a > b;
    case CmpOp.GE: return a >= b;
    case CmpOp.EQ: return a === b;
    default: return a !== b;
  }
}

function buildCompare(node: Extract<Node, { type: 'compare' }>, unit: Unit): Evaluator {
  const operands = node.operands.map((n) => build(n, unit));
  if (node.ops.length === 1) {
    const op = node.ops[0]!;
    const site: Site = { op: Op.COMPARE, arg: op, pos: node.positions[0]! };
    const right = node.operands[1]!;
    const set = op === CmpOp.IN || op === CmpOp.NOT_IN ? constantSet(right) : undefined;
    if (set) {
      // `x in ['a', 'b']`: a Set lookup for the same kind of value; anything else the general way.
      const left = operands[0]!;
      const rightValue = operands[1]!;
      const kind = typeof set.values().next().value;
      const want = op === CmpOp.IN;
      return (c) => {
        const a = left(c);
        if (typeof a === kind && (kind === 'string' || Number.isSafeInteger(a))) return set.has(a) === want;
        return slowCompare(op, a, rightValue(c), site, unit);
      };
    }
    const left = node.operands[0]!;
    if (left.type === 'name' && right.type === 'const' && typeof right.value === 'number' && op <= CmpOp.NE) {
      return fusedNameNumber(unit, left.id, left.pos, op, right.value, site);
    }
    if (left.type === 'name' && right.type === 'const' && typeof right.value === 'string' && (op === CmpOp.EQ || op === CmpOp.NE)) {
      return fusedNameString(unit, left.id, left.pos, op === CmpOp.EQ, right.value, site);
    }
    const hasConst = right.type === 'const';
    return compare2(op, operands[0]!, operands[1]!, site, unit, hasConst ? right.value : undefined, hasConst);
  }
  const ops = node.ops;
  const sites: Site[] = ops.map((op, i) => ({ op: i < ops.length - 1 ? Op.COMPARE_CHAIN : Op.COMPARE, arg: op, pos: node.positions[i]! }));
  const numericOps = ops.every((op) => op <= CmpOp.NE);
  return (c) => {
    let a = operands[0]!(c);
    for (let i = 0; i < ops.length; i++) {
      const b = operands[i + 1]!(c);
      const ok = numericOps && typeof a === 'number' && typeof b === 'number' ? numericOrder(ops[i]!, a, b) : slowCompare(ops[i]!, a, b, sites[i]!, unit);
      if (!ok) return false;
      a = b;
    }
    return true;
  };
}

/** `name op number`: one closure, no calls on the fast path. */
function fusedNameNumber(unit: Unit, id: string, pos: number, op: number, k: number, site: Site): Evaluator {
  const read = nameReader(unit, id, pos);
  if (PROTO_NAMES.has(id)) return compare2(op, read, () => k, site, unit, k, true);
  const slow = (c: Record<string, unknown>, a: unknown): boolean => {
    if (a === undefined && !hasOwn(c, id)) throw nameMissing(unit, id, pos);
    return slowCompare(op, a, k, site, unit);
  };
  switch (op) {
    case CmpOp.LT: return (c) => { const a = c[id]; return typeof a === 'number' ? a < k : slow(c, a); };
    case CmpOp.LE: return (c) => { const a = c[id]; return typeof a === 'number' ? a <= k : slow(c, a); };
    case CmpOp.GT: return (c) => { const a = c[id]; return typeof a === 'number' ? a > k : slow(c, a); };
    case CmpOp.GE: return (c) => { const a = c[id]; return typeof a === 'number' ? a >= k : slow(c, a); };
    case CmpOp.EQ: return (c) => { const a = c[id]; return typeof a === 'number' ? a === k : slow(c, a); };
    default: return (c) => { const a = c[id]; return typeof a === 'number' ? a !== k : slow(c, a); };
  }
}

/** `name == 'text'` / `name != 'text'`. */
function fusedNameString(unit: Unit, id: string, pos: number, eq: boolean, k: string, site: Site): Evaluator {
  const read = nameReader(unit, id, pos);
  if (PROTO_NAMES.has(id)) return compare2(eq ? CmpOp.EQ : CmpOp.NE, read, () => k, site, unit, k, true);
  const op = eq ? CmpOp.EQ : CmpOp.NE;
  const slow = (c: Record<string, unknown>, a: unknown): boolean => {
    if (a === undefined && !hasOwn(c, id)) throw nameMissing(unit, id, pos);
    return slowCompare(op, a, k, site, unit);
  };
  return eq
    ? (c) => { const a = c[id]; return typeof a === 'string' ? a === k : slow(c, a); }
    : (c) => { const a = c[id]; return typeof a === 'string' ? a !== k : slow(c, a); };
}

export { tagOf };
