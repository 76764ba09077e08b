// The numbers of src/expr/bytecode.ts (the contract), mirrored by hand for the AssemblyScript VM.
// test/expr-bytecode.test.ts checks that this copy agrees with bytecode.ts.

export namespace Op {
  export const RETURN: i32 = 0;
  export const CONST: i32 = 1;
  export const NAME: i32 = 2;
  export const ATTR: i32 = 3;
  export const INDEX: i32 = 4;
  export const SLICE: i32 = 5;
  export const LIST: i32 = 6;
  export const TUPLE: i32 = 7;
  export const NEG: i32 = 8;
  export const POS: i32 = 9;
  export const NOT: i32 = 10;
  export const BINOP: i32 = 11;
  export const COMPARE: i32 = 12;
  export const JUMP_IF_FALSE_OR_POP: i32 = 13;
  export const JUMP_IF_TRUE_OR_POP: i32 = 14;
  export const POP_JUMP_IF_FALSE: i32 = 15;
  export const JUMP: i32 = 16;
  export const COMPARE_CHAIN: i32 = 17;
  export const CALL: i32 = 18;
  export const METHOD: i32 = 19;
}

export namespace BinOp {
  export const ADD: i32 = 0;
  export const SUB: i32 = 1;
  export const MUL: i32 = 2;
  export const TRUEDIV: i32 = 3;
  export const FLOORDIV: i32 = 4;
  export const MOD: i32 = 5;
  export const POW: i32 = 6;
}

export namespace CmpOp {
  export const LT: i32 = 0;
  export const LE: i32 = 1;
  export const GT: i32 = 2;
  export const GE: i32 = 3;
  export const EQ: i32 = 4;
  export const NE: i32 = 5;
  export const IN: i32 = 6;
  export const NOT_IN: i32 = 7;
  export const IS: i32 = 8;
  export const IS_NOT: i32 = 9;
}

export namespace Fn {
  export const len: i32 = 0;
  export const abs: i32 = 1;
  export const min: i32 = 2;
  export const max: i32 = 3;
  export const round: i32 = 4;
  export const int: i32 = 5;
  export const float: i32 = 6;
  export const str: i32 = 7;
  export const bool: i32 = 8;
  export const sum: i32 = 9;
  export const any: i32 = 10;
  export const all: i32 = 11;
}

export namespace Method {
  export const lower: i32 = 0;
  export const upper: i32 = 1;
  export const strip: i32 = 2;
  export const startswith: i32 = 3;
  export const endswith: i32 = 4;
  export const replace: i32 = 5;
  export const split: i32 = 6;
  export const get: i32 = 7;
}

export namespace Tag {
  export const NONE: i32 = 0;
  export const FALSE: i32 = 1;
  export const TRUE: i32 = 2;
  export const INT: i32 = 3;
  export const FLOAT: i32 = 4;
  export const STR: i32 = 5;
  export const LIST: i32 = 6;
  export const TUPLE: i32 = 7;
  export const DICT: i32 = 8;
  export const OPAQUE: i32 = 9;
  export const MISSING: i32 = 10;
}

export namespace ErrorKind {
  export const OK: i32 = 0;
  export const NameError: i32 = 1;
  export const TypeError: i32 = 2;
  export const ZeroDivisionError: i32 = 3;
  export const KeyError: i32 = 4;
  export const IndexError: i32 = 5;
  export const AttributeError: i32 = 6;
  export const ValueError: i32 = 7;
  export const OverflowError: i32 = 8;
  export const LimitError: i32 = 9;
}

export namespace Reason {
  export const GENERIC: i32 = 0;
  export const EMPTY_SEQUENCE: i32 = 1;
  export const SLICE_STEP_ZERO: i32 = 2;
  export const INVALID_INT_LITERAL: i32 = 3;
  export const INVALID_FLOAT_LITERAL: i32 = 4;
  export const EMPTY_SEPARATOR: i32 = 5;
  export const COMPLEX_RESULT: i32 = 6;
  export const NAN_TO_INT: i32 = 7;
  export const INF_TO_INT: i32 = 8;
  export const INT_RANGE: i32 = 9;
  export const FLOAT_RANGE: i32 = 10;
  export const DIV_ZERO: i32 = 11;
  export const POW_ZERO_NEG: i32 = 12;
  export const VALUE_TOO_LARGE: i32 = 13;
  export const ARG_COUNT: i32 = 14;
  export const NOT_ITERABLE: i32 = 15;
  export const UNHASHABLE: i32 = 16;
  export const SUM_STRINGS: i32 = 17;
  export const BAD_OPERANDS: i32 = 18;
  export const BAD_INDEX_TYPE: i32 = 19;
  export const NOT_SUBSCRIPTABLE: i32 = 20;
  export const BAD_ARGUMENT: i32 = 21;
  export const NO_ATTRIBUTE: i32 = 22;
  export const INDEX_RANGE: i32 = 23;
  export const KEY_MISSING: i32 = 24;
  export const NAME_MISSING: i32 = 25;
  export const DEPTH: i32 = 26;
  export const WORK: i32 = 27;
}

export namespace Limits {
  export const MAX_DEPTH: i32 = 100;
  export const MAX_VALUE_SIZE: i32 = 1000000;
  export const MAX_INT: f64 = 9007199254740991.0;
  export const MAX_WORK: f64 = 5000000.0;
}

/** Operands per opcode, indexed by opcode. */
export const OPERAND_COUNT: usize = memory.data<u8>([0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2]);
