/**
 * Compiles an AST to the shared bytecode (bytecode.ts). The wasm and native VMs execute exactly this
 * program; the js evaluator compiles the same AST to closures (closures.ts), and the differential and
 * parity suites hold the two to the same results.
 */
import { Op, OPERAND_COUNT, SliceFlag, type Program } from './bytecode.js';
import type { Node } from './parse.js';
import { PyFloat } from '../vm/values.js';

export interface CompileEnv {
  /** Maps a context name to its NAME operand; defaults to first-use order. */
  name(id: string): number;
}

export class ProgramBuilder {
  private readonly code: number[] = [];
  private readonly positions: number[] = [];
  readonly consts: unknown[] = [];
  readonly names: string[] = [];
  readonly strings: string[] = [];
  private depth = 0;
  private maxDepth = 0;

  constructor(private readonly text: string) {}

  get pc(): number {
    return this.code.length;
  }

  emit(op: number, pos: number, ...operands: number[]): number {
    const at = this.code.length;
    if (operands.length !== OPERAND_COUNT[op]) throw new Error(`opcode ${op} takes ${OPERAND_COUNT[op]} operands`);
    this.code.push(op, ...operands);
    this.positions.push(pos, ...operands.map(() => -1));
    return at;
  }

  /** Records the stack effect of the instruction just emitted. */
  stack(delta: number): void {
    this.depth += delta;
    if (this.depth > this.maxDepth) this.maxDepth = this.depth;
  }

  setDepth(depth: number): void {
    this.depth = depth;
  }

  get currentDepth(): number {
    return this.depth;
  }

  patch(at: number, operandIndex: number, value: number): void {
    this.code[at + 1 + operandIndex] = value;
  }

  constIndex(value: unknown): number {
    const i = this.consts.findIndex((c) => sameConst(c, value));
    if (i >= 0) return i;
    this.consts.push(value);
    return this.consts.length - 1;
  }

  nameIndex(id: string): number {
    const i = this.names.indexOf(id);
    if (i >= 0) return i;
    this.names.push(id);
    return this.names.length - 1;
  }

  stringIndex(s: string): number {
    const i = this.strings.indexOf(s);
    if (i >= 0) return i;
    this.strings.push(s);
    return this.strings.length - 1;
  }

  build(): Program {
    return {
      text: this.text,
      code: Int32Array.from(this.code),
      positions: Int32Array.from(this.positions),
      consts: this.consts,
      names: this.names,
      strings: this.strings,
      maxStack: Math.max(1, this.maxDepth),
    };
  }
}

function sameConst(a: unknown, b: unknown): boolean {
  if (a instanceof PyFloat && b instanceof PyFloat) return Object.is(a.value, b.value);
  return typeof a === typeof b && Object.is(a, b);
}

const UNARY_OP = { neg: Op.NEG, pos: Op.POS, not: Op.NOT } as const;

/**
 * Emits code for a node. `env.name` lets the batch compiler map names to columns; the scalar compiler
 * uses the builder's name table.
 */
export function emitNode(b: ProgramBuilder, node: Node, env?: CompileEnv): void {
  switch (node.type) {
    case 'const':
      b.emit(Op.CONST, node.pos, b.constIndex(node.value));
      b.stack(1);
      return;
    case 'name':
      b.emit(Op.NAME, node.pos, env ? env.name(node.id) : b.nameIndex(node.id));
      b.stack(1);
      return;
    case 'attr':
      emitNode(b, node.obj, env);
      b.emit(Op.ATTR, node.pos, b.stringIndex(node.name));
      return;
    case 'index':
      emitNode(b, node.obj, env);
      emitNode(b, node.index, env);
      b.emit(Op.INDEX, node.pos);
      b.stack(-1);
      return;
    case 'slice': {
      emitNode(b, node.obj, env);
      let flags = 0;
      let n = 0;
      if (node.lower) { emitNode(b, node.lower, env); flags |= SliceFlag.LOWER; n++; }
      if (node.upper) { emitNode(b, node.upper, env); flags |= SliceFlag.UPPER; n++; }
      if (node.step) { emitNode(b, node.step, env); flags |= SliceFlag.STEP; n++; }
      b.emit(Op.SLICE, node.pos, flags);
      b.stack(-n);
      return;
    }
    case 'list':
    case 'tuple':
      for (const item of node.items) emitNode(b, item, env);
      b.emit(node.type === 'list' ? Op.LIST : Op.TUPLE, node.pos, node.items.length);
      b.stack(1 - node.items.length);
      return;
    case 'unary':
      emitNode(b, node.operand, env);
      b.emit(UNARY_OP[node.op], node.pos);
      return;
    case 'binop':
      emitNode(b, node.left, env);
      emitNode(b, node.right, env);
      b.emit(Op.BINOP, node.pos, node.op);
      b.stack(-1);
      return;
    case 'compare': {
      const n = node.ops.length;
      emitNode(b, node.operands[0]!, env);
      const jumps: number[] = [];
      for (let i = 0; i < n; i++) {
        emitNode(b, node.operands[i + 1]!, env);
        if (i < n - 1) {
          jumps.push(b.emit(Op.COMPARE_CHAIN, node.positions[i]!, node.ops[i]!, -1));
          b.stack(-1);
        } else {
          b.emit(Op.COMPARE, node.positions[i]!, node.ops[i]!);
          b.stack(-1);
        }
      }
      for (const at of jumps) b.patch(at, 1, b.pc);
      return;
    }
    case 'boolop': {
      const op = node.op === 'and' ? Op.JUMP_IF_FALSE_OR_POP : Op.JUMP_IF_TRUE_OR_POP;
      const jumps: number[] = [];
      node.values.forEach((value, i) => {
        emitNode(b, value, env);
        if (i < node.values.length - 1) {
          jumps.push(b.emit(op, node.pos, -1));
          b.stack(-1);
        }
      });
      for (const at of jumps) b.patch(at, 0, b.pc);
      return;
    }
    case 'ifexp': {
      emitNode(b, node.test, env);
      const toElse = b.emit(Op.POP_JUMP_IF_FALSE, node.pos, -1);
      b.stack(-1);
      const base = b.currentDepth;
      emitNode(b, node.body, env);
      const toEnd = b.emit(Op.JUMP, node.pos, -1);
      b.patch(toElse, 0, b.pc);
      b.setDepth(base);
      emitNode(b, node.orelse, env);
      b.patch(toEnd, 0, b.pc);
      return;
    }
    case 'call':
      for (const arg of node.args) emitNode(b, arg, env);
      b.emit(Op.CALL, node.pos, node.fn, node.args.length);
      b.stack(1 - node.args.length);
      return;
    case 'method':
      emitNode(b, node.receiver, env);
      for (const arg of node.args) emitNode(b, arg, env);
      b.emit(Op.METHOD, node.pos, node.method, node.args.length);
      b.stack(-node.args.length);
      return;
    default: {
      const never: never = node;
      throw new Error(`unknown node ${JSON.stringify(never)}`);
    }
  }
}

/** Compiles an AST to a scalar program. */
export function compileProgram(node: Node, text: string): Program {
  const b = new ProgramBuilder(text);
  emitNode(b, node);
  b.emit(Op.RETURN, node.pos);
  return b.build();
}

/** A readable listing of a program, for debugging and tests. */
export function disassemble(p: Program): string {
  const names = Object.fromEntries(Object.entries(Op).map(([k, v]) => [v, k]));
  const lines: string[] = [];
  for (let pc = 0; pc < p.code.length; ) {
    const op = p.code[pc]!;
    const n = OPERAND_COUNT[op]!;
    lines.push(`${String(pc).padStart(4)} ${names[op]} ${Array.from(p.code.subarray(pc + 1, pc + 1 + n)).join(' ')}`.trimEnd());
    pc += 1 + n;
  }
  return lines.join('\n');
}
