// The columnar (batch) VM: runs a batch program (bytecode.ts "Batch programs") over columns in
// chunks, each stack slot a vector of values with per-row tags, and per-row activity masks standing
// for short-circuit control flow.
#pragma once
#include <memory>

#include "vm.h"

namespace wpipe {

struct BatchPlan {
  std::vector<int32_t> kinds;  // ColumnKind of each column
  std::vector<int32_t> targetOf;  // per pc: index of the jump target starting there, or -1
  int32_t nTargets = 0;
  // Whether chunks first run optimistically (batch.cpp Runner::opt): no jumps, ternaries, None
  // constants, or operations only the scalar semantics evaluate.
  bool optimistic = true;
};

std::unique_ptr<BatchPlan> makeBatchPlan(const Program& p, const uint8_t* kinds, size_t nKinds);

/** Applies one instruction's semantics to scalar operands, exactly as the scalar VM (vm.cpp). */
bool applyScalarOp(const Program& p, EnvState& env, int32_t op, int32_t arg, int32_t argc, const Value* operands,
                   Value& out, VmError& err);

}  // namespace wpipe
