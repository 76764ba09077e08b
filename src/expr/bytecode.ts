/**
 * The one bytecode of the expression language, shared by the js evaluator's compiler, the
 * AssemblyScript VM (assembly/) and the C++ VM (native/). This file is the contract: the VMs mirror
 * these numbers by hand (assembly/opcodes.ts, native/opcodes.h), and test/expr-bytecode.test.ts checks
 * that the three copies agree.
 *
 * ## Program
 * `code` is an Int32Array. Each instruction is an opcode followed by its operands (OPERAND_COUNT).
 * Jump targets are absolute indices into `code`. Execution starts at 0 and ends at RETURN, which pops
 * the result. The stack never holds more than `maxStack` values (computed by the compiler).
 *
 * ## Values (Python's, restricted)
 * None, bool, int, float, str, list, tuple, dict, and `opaque` (a host value the language cannot look
 * into: it is truthy, `is None` is False for it, and every other operation on it is a TypeError).
 * ints are exact in the range ±(2^53 − 1); an int result outside it is an OverflowError (a documented
 * difference from Python's unbounded ints). A JS number read from the context is an int when
 * `Number.isSafeInteger` holds, else a float.
 *
 * ## Value tape (how scalar values cross into wasm and native)
 * A little-endian byte stream. Each value is a tag byte followed by its payload:
 *   TAG.NONE, TAG.FALSE, TAG.TRUE: no payload
 *   TAG.INT, TAG.FLOAT: f64 (8 bytes, unaligned)
 *   TAG.STR: u32 length in UTF-16 code units, then that many u16 code units
 *   TAG.LIST, TAG.TUPLE: u32 count, then count values
 *   TAG.DICT: u32 count, then count × (key: u32 length + u16 units, value)
 *   TAG.OPAQUE: u32 length + u16 units of a type name (e.g. 'Date'), for messages
 *   TAG.MISSING: only in a context tape: the name is not in the context (NameError when loaded)
 * The constant pool is one tape of `consts.length` values; the string table (`strings`: context names,
 * attribute names) is a tape of STR values. The context tape of a scalar evaluation holds one value per
 * entry of `names`, in order.
 *
 * ## Errors
 * A VM reports an error as a fault of six int32: (ErrorKind, pc of the failing instruction, Reason,
 * tag of operand a, tag of operand b, row). Tags are Tag values of the operands involved (or -1);
 * row is the batch row (or -1). From these, src/expr/messages.ts builds the message every backend
 * shows; the JS evaluator throws through the same builder.
 *
 * ## Batch (columnar) programs
 * testBatch compiles a separate program over column slots: NAME k then loads column k (a Float64Array
 * of numbers, or a bool column of 0/1 bytes); CONST holds only numbers, bools and None. The batch
 * compiler (src/expr/batch.ts) only emits programs in the typed subset: number/bool columns, numeric
 * constants, NEG POS NOT BINOP COMPARE(LT..NE) COMPARE_CHAIN the four jumps, CALL abs/min/max/bool/
 * int/float/round (1 argument) and RETURN. Predicates over string columns are computed by JS into bool
 * columns first. Each row is evaluated exactly as the scalar VM would evaluate it on that row's values,
 * including errors; a row that errors makes testBatch throw for the first such row.
 */

export const Op = {
  RETURN: 0, //          pop result, stop
  CONST: 1, //           k: push consts[k]
  NAME: 2, //            k: push context value names[k] (NameError if missing)
  ATTR: 3, //            s: pop obj, push obj.<strings[s]> (dict key; AttributeError otherwise)
  INDEX: 4, //           pop index, pop obj, push obj[index]
  SLICE: 5, //           flags (1 lower, 2 upper, 4 step): pop step?, upper?, lower? (reverse order), obj
  LIST: 6, //            n: pop n values, push list of them (first pushed = first item)
  TUPLE: 7, //           n: same, a tuple
  NEG: 8, //             unary minus
  POS: 9, //             unary plus
  NOT: 10, //            push not truthy(pop)
  BINOP: 11, //          op (BinOp): pop b, pop a, push a op b
  COMPARE: 12, //        op (CmpOp): pop b, pop a, push a op b (a bool)
  JUMP_IF_FALSE_OR_POP: 13, // target: if not truthy(top) jump (keep top) else pop
  JUMP_IF_TRUE_OR_POP: 14, //  target: if truthy(top) jump (keep top) else pop
  POP_JUMP_IF_FALSE: 15, //    target: pop; if not truthy jump
  JUMP: 16, //                 target
  COMPARE_CHAIN: 17, //  op target: pop b, pop a; if not (a op b): push False, jump target; else push b
  CALL: 18, //           fn argc: pop argc args, push fn(args)
  METHOD: 19, //         method argc: pop argc args, pop receiver, push receiver.method(args)
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

/** Operands per opcode, indexed by opcode. */
export const OPERAND_COUNT: readonly number[] = [0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2];

export const BinOp = { ADD: 0, SUB: 1, MUL: 2, TRUEDIV: 3, FLOORDIV: 4, MOD: 5, POW: 6 } as const;
export const BINOP_SYMBOL = ['+', '-', '*', '/', '//', '%', '**'] as const;

export const CmpOp = { LT: 0, LE: 1, GT: 2, GE: 3, EQ: 4, NE: 5, IN: 6, NOT_IN: 7, IS: 8, IS_NOT: 9 } as const;
export const CMPOP_SYMBOL = ['<', '<=', '>', '>=', '==', '!=', 'in', 'not in', 'is', 'is not'] as const;

/** The fixed function set, by id. */
export const Fn = { len: 0, abs: 1, min: 2, max: 3, round: 4, int: 5, float: 6, str: 7, bool: 8, sum: 9, any: 10, all: 11 } as const;
export const FN_NAMES = ['len', 'abs', 'min', 'max', 'round', 'int', 'float', 'str', 'bool', 'sum', 'any', 'all'] as const;

/** The fixed string-method set, by id. */
export const Method = { lower: 0, upper: 1, strip: 2, startswith: 3, endswith: 4, replace: 5, split: 6, get: 7 } as const;
export const METHOD_NAMES = ['lower', 'upper', 'strip', 'startswith', 'endswith', 'replace', 'split', 'get'] as const;

/** Type tags of the value tape; also the "type" details of error reports. */
export const Tag = {
  NONE: 0, FALSE: 1, TRUE: 2, INT: 3, FLOAT: 4, STR: 5, LIST: 6, TUPLE: 7, DICT: 8, OPAQUE: 9, MISSING: 10,
} as const;
export type TagValue = (typeof Tag)[keyof typeof Tag];
/** Python type names by tag (FALSE and TRUE are both 'bool'). */
export const TAG_TYPE_NAME = ['NoneType', 'bool', 'bool', 'int', 'float', 'str', 'list', 'tuple', 'dict', 'object', 'undefined'] as const;

/** Error kinds reported by every backend; index = kind number. 0 means no error. */
export const ERROR_KINDS = [
  'OK', 'NameError', 'TypeError', 'ZeroDivisionError', 'KeyError', 'IndexError',
  'AttributeError', 'ValueError', 'OverflowError', 'LimitError',
] as const;
export const ErrorKind = {
  OK: 0, NameError: 1, TypeError: 2, ZeroDivisionError: 3, KeyError: 4, IndexError: 5,
  AttributeError: 6, ValueError: 7, OverflowError: 8, LimitError: 9,
} as const;

/** Why an error happened, beyond its kind (fault word 2). */
export const Reason = {
  GENERIC: 0,
  EMPTY_SEQUENCE: 1, //    ValueError: min()/max() of an empty sequence
  SLICE_STEP_ZERO: 2, //   ValueError
  INVALID_INT_LITERAL: 3, // ValueError: int('x')
  INVALID_FLOAT_LITERAL: 4, // ValueError: float('x')
  EMPTY_SEPARATOR: 5, //   ValueError: split('')
  COMPLEX_RESULT: 6, //    ValueError: (-8) ** 0.5 (Python would give a complex number)
  NAN_TO_INT: 7, //        ValueError: int(nan), round(nan)
  INF_TO_INT: 8, //        OverflowError: int(inf), round(inf)
  INT_RANGE: 9, //         OverflowError: int result beyond ±(2^53 − 1)
  FLOAT_RANGE: 10, //      OverflowError: float ** overflowed
  DIV_ZERO: 11, //         ZeroDivisionError (message depends on the operator and int/float)
  POW_ZERO_NEG: 12, //     ZeroDivisionError: 0 ** -1
  VALUE_TOO_LARGE: 13, //  LimitError: a produced value over Limits.MAX_VALUE_SIZE
  ARG_COUNT: 14, //        TypeError: wrong number of arguments
  NOT_ITERABLE: 15, //     TypeError
  UNHASHABLE: 16, //       TypeError: list/dict as a dict key or `in dict`
  SUM_STRINGS: 17, //      TypeError: sum() of strings
  BAD_OPERANDS: 18, //     TypeError: operator not defined for these types (tags a, b)
  BAD_INDEX_TYPE: 19, //   TypeError: list indices must be integers (tag b)
  NOT_SUBSCRIPTABLE: 20, // TypeError (tag a)
  BAD_ARGUMENT: 21, //     TypeError: a function or method got an argument of the wrong type (tags a, b)
  NO_ATTRIBUTE: 22, //     AttributeError (tag a; the name is the ATTR/METHOD operand)
  INDEX_RANGE: 23, //      IndexError (tag a)
  KEY_MISSING: 24, //      KeyError
  NAME_MISSING: 25, //     NameError
  DEPTH: 26, //            LimitError: a value nested deeper than Limits.MAX_DEPTH levels
  WORK: 27, //             LimitError: the evaluation did more than Limits.MAX_WORK steps
} as const;

/** Limits shared by every backend. */
export const Limits = {
  /** Longest expression text accepted. */
  MAX_TEXT_LENGTH: 10_000,
  /** Deepest nesting of sub-expressions. */
  MAX_DEPTH: 100,
  /** Largest string (UTF-16 code units) or list/tuple (items) an expression may produce. */
  MAX_VALUE_SIZE: 1_000_000,
  /** Largest exact int. */
  MAX_INT: Number.MAX_SAFE_INTEGER,
  /**
   * Most element steps one evaluation may take (items compared, copied or visited; characters
   * scanned or produced by string functions and repr). Bounds `[[0] * 999999] * 999999 == …`.
   */
  MAX_WORK: 5_000_000,
} as const;

/** A compiled program, ready for any backend. */
export interface Program {
  /** The expression text (for messages). */
  readonly text: string;
  readonly code: Int32Array;
  /** Source offset of the instruction starting at each code index (-1 inside operands). */
  readonly positions: Int32Array;
  /** Constants, as JS values of the js evaluator's representation. */
  readonly consts: readonly unknown[];
  /** Context names read by NAME, in first-use order. */
  readonly names: readonly string[];
  /** Attribute names read by ATTR. */
  readonly strings: readonly string[];
  readonly maxStack: number;
}
