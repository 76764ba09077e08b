// The scalar and batch expression VMs of the C++ addon (see src/vm/contract.ts for the contract,
// src/expr/bytecode.ts for the program layout and docs/expression-semantics.md for the semantics;
// src/vm/pyops.ts is the reference implementation).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "value.h"

namespace wpipe {

struct BatchPlan;

/** A prepared program: code validated, constants and strings decoded once. Immutable after prepare. */
struct Program {
  std::vector<int32_t> code;
  std::unique_ptr<Arena> constArena;
  std::vector<Value> consts;
  std::vector<const Str*> strings;
  uint32_t stackSize = 0;
  uint32_t nameCount = 0;  // 1 + the largest NAME operand
  std::vector<int32_t> depthAt;  // stack depth before each instruction (-1 for operand slots)
  std::unique_ptr<BatchPlan> batch;  // set for batch programs
  ~Program();
};

/** Per-environment (per thread / worker) scratch state: the evaluation arena and buffers. */
struct EnvState {
  Arena arena{256 * 1024};
  std::vector<Value> stack;
  std::vector<Value> ctx;
  std::vector<uint8_t> out;  // the result tape of the last evaluation
  std::u16string sb;  // string builder scratch
  std::vector<uint32_t> cps;  // code point scratch
  std::vector<uint8_t> batchScratch;
  bool hasResult = false;
};

/**
 * Validates and decodes a program. `kinds` non-null makes it a batch program over columns of those
 * kinds. Throws std::runtime_error on a malformed program.
 */
std::unique_ptr<Program> prepareProgram(const int32_t* code, size_t codeLen, const uint8_t* consts, size_t constsLen,
                                        const uint8_t* strings, size_t stringsLen, const uint8_t* kinds, size_t nKinds);

/**
 * Runs a scalar program over a context tape. Returns true with the result tape in env.out, or false
 * with the fault words (FaultWord, row -1) filled.
 */
bool evaluateScalar(const Program& p, EnvState& env, const uint8_t* ctx, size_t ctxLen, int32_t fault[kFaultWordCount]);

/** A column of a batch: f64 numbers or u8 bools. */
struct Column {
  const void* data;
  size_t length;
  bool isBool;
};

/** Runs a batch program; returns -1, or the first failing row with `fault` filled. */
int64_t runBatch(const Program& p, EnvState& env, const Column* cols, size_t nCols, size_t rows, uint8_t* out,
                 int32_t fault[kFaultWordCount]);

/** Features of this CPU the batch VM uses (detected once per process). */
std::vector<std::string> cpuFeatures();

}  // namespace wpipe
