/**
 * The one bytecode of the expression language, shared by the js evaluator's compiler, the
 * AssemblyScript VM (assembly/) and the C++ VM (native/). The numbers are in src/vm/contract.ts,
 * from which scripts/gen-vm-contract.mjs generates the VMs' copies (assembly/opcodes.ts,
 * native/opcodes.h); test/expr-bytecode.test.ts fails when a copy is not what the script makes.
 * This file documents the program and the tapes and re-exports the numbers.
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
 * ## Result tape (how a non-scalar result crosses back)
 * The value tape plus two reference tags (CONTEXT_REF: a value of the context, SHARED_REF: a value
 * repeated in the result), one dialect for both VMs, read by one reader (src/vm/tape.ts readResult);
 * specified in src/vm/contract.ts next to TapeTag.
 *
 * ## Errors
 * A VM reports an error as fault words (FAULT_WORD_COUNT int32, each at its FaultWord index: build
 * them with faultWords, read them by FaultWord, never by position): the ErrorKind, the pc of the
 * failing instruction, the Reason, the tags of operands a and b, and the row. Tags are Tag values of
 * the operands involved (or -1); row is the batch row (or -1). From these, src/expr/messages.ts builds the message every backend
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

export * from '../vm/contract.js';
