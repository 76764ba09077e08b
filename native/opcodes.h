// The bytecode contract of src/expr/bytecode.ts, mirrored by hand (test/expr-bytecode.test.ts checks
// that the copies agree). Change both together.
#pragma once
#include <cstdint>

namespace wpipe {

namespace Op {
constexpr int32_t RETURN = 0;
constexpr int32_t CONST = 1;
constexpr int32_t NAME = 2;
constexpr int32_t ATTR = 3;
constexpr int32_t INDEX = 4;
constexpr int32_t SLICE = 5;
constexpr int32_t LIST = 6;
constexpr int32_t TUPLE = 7;
constexpr int32_t NEG = 8;
constexpr int32_t POS = 9;
constexpr int32_t NOT = 10;
constexpr int32_t BINOP = 11;
constexpr int32_t COMPARE = 12;
constexpr int32_t JUMP_IF_FALSE_OR_POP = 13;
constexpr int32_t JUMP_IF_TRUE_OR_POP = 14;
constexpr int32_t POP_JUMP_IF_FALSE = 15;
constexpr int32_t JUMP = 16;
constexpr int32_t COMPARE_CHAIN = 17;
constexpr int32_t CALL = 18;
constexpr int32_t METHOD = 19;
}  // namespace Op
constexpr int32_t kOpCount = 20;
/** Operands per opcode, indexed by opcode. */
constexpr int32_t OPERAND_COUNT[kOpCount] = {0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2};

namespace BinOp {
constexpr int32_t ADD = 0;
constexpr int32_t SUB = 1;
constexpr int32_t MUL = 2;
constexpr int32_t TRUEDIV = 3;
constexpr int32_t FLOORDIV = 4;
constexpr int32_t MOD = 5;
constexpr int32_t POW = 6;
}  // namespace BinOp

namespace CmpOp {
constexpr int32_t LT = 0;
constexpr int32_t LE = 1;
constexpr int32_t GT = 2;
constexpr int32_t GE = 3;
constexpr int32_t EQ = 4;
constexpr int32_t NE = 5;
constexpr int32_t IN = 6;
constexpr int32_t NOT_IN = 7;
constexpr int32_t IS = 8;
constexpr int32_t IS_NOT = 9;
}  // namespace CmpOp

namespace Fn {
constexpr int32_t len = 0;
constexpr int32_t abs = 1;
constexpr int32_t min = 2;
constexpr int32_t max = 3;
constexpr int32_t round = 4;
constexpr int32_t int_ = 5;  // `int` in bytecode.ts (a C++ keyword)
constexpr int32_t float_ = 6;  // `float` in bytecode.ts
constexpr int32_t str = 7;
constexpr int32_t bool_ = 8;  // `bool` in bytecode.ts
constexpr int32_t sum = 9;
constexpr int32_t any = 10;
constexpr int32_t all = 11;
}  // namespace Fn

namespace Method {
constexpr int32_t lower = 0;
constexpr int32_t upper = 1;
constexpr int32_t strip = 2;
constexpr int32_t startswith = 3;
constexpr int32_t endswith = 4;
constexpr int32_t replace = 5;
constexpr int32_t split = 6;
constexpr int32_t get = 7;  // dict.get(key[, default])
}  // namespace Method

namespace Tag {
constexpr int32_t NONE = 0;
constexpr int32_t FALSE = 1;
constexpr int32_t TRUE = 2;
constexpr int32_t INT = 3;
constexpr int32_t FLOAT = 4;
constexpr int32_t STR = 5;
constexpr int32_t LIST = 6;
constexpr int32_t TUPLE = 7;
constexpr int32_t DICT = 8;
constexpr int32_t OPAQUE = 9;
constexpr int32_t MISSING = 10;
}  // namespace Tag

namespace ErrorKind {
constexpr int32_t OK = 0;
constexpr int32_t NameError = 1;
constexpr int32_t TypeError = 2;
constexpr int32_t ZeroDivisionError = 3;
constexpr int32_t KeyError = 4;
constexpr int32_t IndexError = 5;
constexpr int32_t AttributeError = 6;
constexpr int32_t ValueError = 7;
constexpr int32_t OverflowError = 8;
constexpr int32_t LimitError = 9;
}  // namespace ErrorKind

namespace Reason {
constexpr int32_t GENERIC = 0;
constexpr int32_t EMPTY_SEQUENCE = 1;
constexpr int32_t SLICE_STEP_ZERO = 2;
constexpr int32_t INVALID_INT_LITERAL = 3;
constexpr int32_t INVALID_FLOAT_LITERAL = 4;
constexpr int32_t EMPTY_SEPARATOR = 5;
constexpr int32_t COMPLEX_RESULT = 6;
constexpr int32_t NAN_TO_INT = 7;
constexpr int32_t INF_TO_INT = 8;
constexpr int32_t INT_RANGE = 9;
constexpr int32_t FLOAT_RANGE = 10;
constexpr int32_t DIV_ZERO = 11;
constexpr int32_t POW_ZERO_NEG = 12;
constexpr int32_t VALUE_TOO_LARGE = 13;
constexpr int32_t ARG_COUNT = 14;
constexpr int32_t NOT_ITERABLE = 15;
constexpr int32_t UNHASHABLE = 16;
constexpr int32_t SUM_STRINGS = 17;
constexpr int32_t BAD_OPERANDS = 18;
constexpr int32_t BAD_INDEX_TYPE = 19;
constexpr int32_t NOT_SUBSCRIPTABLE = 20;
constexpr int32_t BAD_ARGUMENT = 21;
constexpr int32_t NO_ATTRIBUTE = 22;
constexpr int32_t INDEX_RANGE = 23;
constexpr int32_t KEY_MISSING = 24;
constexpr int32_t NAME_MISSING = 25;
constexpr int32_t DEPTH = 26;
constexpr int32_t WORK = 27;
}  // namespace Reason

namespace Limits {
constexpr int32_t MAX_TEXT_LENGTH = 10000;
constexpr int32_t MAX_DEPTH = 100;
constexpr uint32_t MAX_VALUE_SIZE = 1000000;
constexpr double MAX_INT = 9007199254740991.0;
constexpr int64_t MAX_WORK = 5000000;
}  // namespace Limits

/** Column kinds of a batch program (src/backend/types.ts ColumnKind). */
namespace ColumnKind {
constexpr int32_t NUMBER = 0;
constexpr int32_t BOOL = 1;
}  // namespace ColumnKind

}  // namespace wpipe
