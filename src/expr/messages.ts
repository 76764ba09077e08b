/**
 * Error messages of the expression language, built from fault words so every backend shows the same
 * text for the same fault (see bytecode.ts, "Errors").
 */
import {
  BINOP_SYMBOL, BinOp, CMPOP_SYMBOL, CmpOp, ERROR_KINDS, FN_NAMES, Limits, Method, METHOD_NAMES, Op, Reason, Tag, TAG_TYPE_NAME,
} from './bytecode.js';
import type { PythonErrorType } from '../errors.js';

/** The instruction a fault happened at. */
export interface FaultSite {
  readonly op: number;
  readonly arg: number;
}

export interface FaultText {
  readonly pythonType: PythonErrorType;
  readonly reason: string;
}

function typeName(tag: number): string {
  return tag >= 0 && tag < TAG_TYPE_NAME.length ? TAG_TYPE_NAME[tag]! : 'object';
}

function isFloatTag(tag: number): boolean {
  return tag === Tag.FLOAT;
}

/** Builds the Python exception type and message of a fault. */
export function describeFault(
  kind: number, reason: number, tagA: number, tagB: number, detail: string,
  site: FaultSite, names: readonly string[], strings: readonly string[],
): FaultText {
  const pythonType = (ERROR_KINDS[kind] ?? 'ValueError') as PythonErrorType;
  const A = typeName(tagA);
  const B = typeName(tagB);
  const { op, arg } = site;
  const fnName = op === Op.CALL ? `${FN_NAMES[arg] ?? '?'}()` : op === Op.METHOD ? `${arg === Method.get ? 'dict' : 'str'}.${METHOD_NAMES[arg] ?? '?'}()` : 'operation';
  const sym = op === Op.BINOP ? BINOP_SYMBOL[arg] : op === Op.COMPARE || op === Op.COMPARE_CHAIN ? CMPOP_SYMBOL[arg] : '';
  let text: string;
  switch (reason) {
    case Reason.NAME_MISSING: text = `name '${names[arg] ?? detail}' is not defined`; break;
    case Reason.BAD_OPERANDS:
      if (op === Op.BINOP) text = `unsupported operand type(s) for ${sym}: '${A}' and '${B}'`;
      else if ((op === Op.COMPARE || op === Op.COMPARE_CHAIN) && (arg === CmpOp.IN || arg === CmpOp.NOT_IN)) {
        text = `'in <string>' requires string as left operand, not ${A}`;
      } else if (op === Op.COMPARE || op === Op.COMPARE_CHAIN) text = `'${sym}' not supported between instances of '${A}' and '${B}'`;
      else if (op === Op.NEG || op === Op.POS) text = `bad operand type for unary ${op === Op.NEG ? '-' : '+'}: '${A}'`;
      else if (op === Op.CALL && (FN_NAMES[arg] === 'min' || FN_NAMES[arg] === 'max')) {
        text = `'<' not supported between instances of '${A}' and '${B}'`;
      } else if (op === Op.CALL && FN_NAMES[arg] === 'sum') text = `unsupported operand type(s) for +: '${A}' and '${B}'`;
      else text = `unsupported operand type(s): '${A}' and '${B}'`;
      break;
    case Reason.NOT_ITERABLE:
      text = op === Op.COMPARE || op === Op.COMPARE_CHAIN ? `argument of type '${B}' is not iterable` : `'${A}' object is not iterable`;
      break;
    case Reason.UNHASHABLE: text = `unhashable type: '${A}'`; break;
    case Reason.BAD_INDEX_TYPE: text = `${A} indices must be integers or slices, not ${B}`; break;
    case Reason.NOT_SUBSCRIPTABLE: text = `'${A}' object is not subscriptable`; break;
    case Reason.BAD_ARGUMENT:
      text = op === Op.METHOD ? `bad argument type for ${fnName}: '${B}'` : `bad argument type for ${fnName}: '${A}'`;
      break;
    case Reason.ARG_COUNT: text = `${fnName} got the wrong number of arguments`; break;
    case Reason.NO_ATTRIBUTE: {
      const attr = detail || (op === Op.ATTR ? strings[arg] : op === Op.METHOD ? METHOD_NAMES[arg] : '') || '?';
      text = `'${A}' object has no attribute '${attr}'`;
      break;
    }
    case Reason.INDEX_RANGE: text = `${A === 'str' ? 'string' : A} index out of range`; break;
    case Reason.KEY_MISSING: text = detail ? `key ${JSON.stringify(detail)} not found` : 'key not found'; break;
    case Reason.DIV_ZERO: {
      const floaty = isFloatTag(tagA) || isFloatTag(tagB);
      if (op === Op.BINOP && arg === BinOp.TRUEDIV) text = floaty ? 'float division by zero' : 'division by zero';
      else if (op === Op.BINOP && arg === BinOp.FLOORDIV) text = floaty ? 'float floor division by zero' : 'integer division or modulo by zero';
      else if (op === Op.BINOP && arg === BinOp.MOD) text = floaty ? 'float modulo' : 'integer modulo by zero';
      else text = 'division by zero';
      break;
    }
    case Reason.POW_ZERO_NEG: text = '0.0 cannot be raised to a negative power'; break;
    case Reason.COMPLEX_RESULT: text = 'a negative number raised to a fractional power has a complex result, which is not supported'; break;
    case Reason.INT_RANGE: text = `integer result out of range (ints are exact up to ±${Limits.MAX_INT})`; break;
    case Reason.FLOAT_RANGE: text = 'float result out of range'; break;
    case Reason.INF_TO_INT: text = 'cannot convert float infinity to integer'; break;
    case Reason.NAN_TO_INT: text = 'cannot convert float NaN to integer'; break;
    case Reason.INVALID_INT_LITERAL: text = 'invalid literal for int() with base 10'; break;
    case Reason.INVALID_FLOAT_LITERAL: text = 'could not convert string to float'; break;
    case Reason.EMPTY_SEQUENCE: text = `${fnName} arg is an empty sequence`; break;
    case Reason.SLICE_STEP_ZERO: text = 'slice step cannot be zero'; break;
    case Reason.EMPTY_SEPARATOR: text = 'empty separator'; break;
    case Reason.VALUE_TOO_LARGE: text = `value too large (limit: ${Limits.MAX_VALUE_SIZE} items or characters)`; break;
    case Reason.DEPTH: text = `value nested too deeply (limit: ${Limits.MAX_DEPTH} levels)`; break;
    case Reason.TAPE_TOO_LARGE: text = `value too large to pass between JavaScript and the VM (limit: ${Limits.MAX_TAPE_BYTES / 2 ** 20} MiB encoded)`; break;
    case Reason.WORK: text = `expression too expensive (more than ${Limits.MAX_WORK} element steps)`; break;
    case Reason.SUM_STRINGS: text = "sum() can't sum strings [use ''.join(seq) instead]"; break;
    default: text = pythonType;
  }
  return { pythonType, reason: text };
}
