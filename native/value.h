// Values of the expression language in C++, the per-evaluation arena, and the value tape
// (src/expr/bytecode.ts, "Value tape").
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "opcodes.h"

namespace wpipe {

/** An error of the expression being evaluated (not of the addon): becomes the fault words (FaultWord). */
struct VmError {
  int32_t kind;
  int32_t reason;
  int32_t tagA;
  int32_t tagB;
};

[[noreturn]] inline void fail(int32_t kind, int32_t reason, int32_t a = -1, int32_t b = -1) {
  throw VmError{kind, reason, a, b};
}

/** A bump allocator; reset() keeps the first block so steady-state evaluation does not call malloc. */
class Arena {
 public:
  explicit Arena(size_t first = 64 * 1024) : first_(first) {}
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  void* alloc(size_t bytes, size_t align = 8) {
    size_t p = (used_ + align - 1) & ~(align - 1);
    if (blocks_.empty() || p + bytes > cap_) {
      grow(bytes + align);
      p = (used_ + align - 1) & ~(align - 1);
    }
    used_ = p + bytes;
    return blocks_.back().get() + p;
  }
  template <typename T>
  T* make(size_t n) {
    return static_cast<T*>(alloc(sizeof(T) * (n ? n : 1), alignof(T)));
  }
  void reset() {
    if (blocks_.size() > 1) {
      blocks_.resize(1);
      cap_ = firstCap_;
    }
    used_ = 0;
  }

 private:
  void grow(size_t need) {
    size_t size = blocks_.empty() ? first_ : cap_ * 2;
    if (size < need) size = need;
    blocks_.emplace_back(new char[size]);
    if (blocks_.size() == 1) firstCap_ = size;
    cap_ = size;
    used_ = 0;
  }
  size_t first_;
  size_t firstCap_ = 0;
  size_t cap_ = 0;
  size_t used_ = 0;
  std::vector<std::unique_ptr<char[]>> blocks_;
};

/** A string: UTF-16 code units, with its length in code points (a surrogate pair counts once). */
struct Str {
  uint32_t len;  // code units
  uint32_t cps;  // code points; == len when the string has no surrogate pair
  const char16_t* u;
};

struct DictEntry;

struct Value {
  uint8_t tag;
  uint32_t n;  // STR: -, LIST/TUPLE: item count, DICT: entry count
  union {
    double num;
    const Str* s;  // STR, OPAQUE (type name)
    const Value* items;
    const DictEntry* entries;
  };
};

struct DictEntry {
  const Str* key;
  Value val;
};

inline Value mkNone() { Value v; v.tag = Tag::NONE; v.n = 0; v.num = 0; return v; }
inline Value mkBool(bool b) { Value v; v.tag = b ? Tag::TRUE : Tag::FALSE; v.n = 0; v.num = b ? 1 : 0; return v; }
inline Value mkFloat(double x) { Value v; v.tag = Tag::FLOAT; v.n = 0; v.num = x; return v; }
/** An int result: range-checked, and never -0 (Python ints have no sign of zero). */
inline Value mkInt(double x) {
  if (!(x <= Limits::MAX_INT && x >= -Limits::MAX_INT)) fail(ErrorKind::OverflowError, Reason::INT_RANGE);
  Value v; v.tag = Tag::INT; v.n = 0; v.num = x + 0.0; return v;
}
inline Value mkStr(const Str* s) { Value v; v.tag = Tag::STR; v.n = 0; v.s = s; return v; }
inline Value mkSeq(int32_t tag, const Value* items, uint32_t n) { Value v; v.tag = (uint8_t)tag; v.n = n; v.items = items; return v; }

inline bool isNum(int t) { return t >= Tag::FALSE && t <= Tag::FLOAT; }
inline bool isIntLike(int t) { return t >= Tag::FALSE && t <= Tag::INT; }
/** Numeric value of a number (bool as 0/1: its num field holds that). */
inline double numOf(const Value& v) { return v.num; }

uint32_t countCodePoints(const char16_t* u, uint32_t len);
/** Allocates a string in the arena after checking the value-size limit. */
char16_t* allocStrUnits(Arena& a, uint32_t len);
const Str* finishStr(Arena& a, const char16_t* u, uint32_t len);
const Str* makeStr(Arena& a, const char16_t* u, uint32_t len);  // copies
const Str* makeAsciiStr(Arena& a, const char* s);
inline void checkSize(double n) {
  if (n > (double)Limits::MAX_VALUE_SIZE) fail(ErrorKind::LimitError, Reason::VALUE_TOO_LARGE);
}

/** Reading a tape that JS wrote; a malformed tape is an addon error (std::runtime_error). */
class TapeIn {
 public:
  TapeIn(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  bool done() const { return p_ >= end_; }
  Value value(Arena& a, int depth = 0);
  const Str* str(Arena& a);

 private:
  void need(size_t n) const {
    if ((size_t)(end_ - p_) < n) throw std::runtime_error("corrupt value tape (truncated)");
  }
  uint32_t u32() { need(4); uint32_t x; std::memcpy(&x, p_, 4); p_ += 4; return x; }
  double f64() { need(8); double x; std::memcpy(&x, p_, 8); p_ += 8; return x; }
  const uint8_t* p_;
  const uint8_t* end_;
};

/**
 * Writes a result tape (src/vm/contract.ts, "The result tape"; read by src/vm/tape.ts readResult):
 * the value tape, with each repeat of a non-empty list, tuple or dict, or of a string of at least
 * SHARED_REF_MIN_STRING code units, written as TapeTag::SHARED_REF and its u32 number in encoding
 * order, so a value that shares parts (`[l] * 999999`) stays as small as it is in memory and decodes
 * with the same sharing. Context values are written in full (this VM writes no CONTEXT_REF). A tape
 * that would pass Limits::MAX_TAPE_BYTES is a LimitError (VmError, Reason::TAPE_TOO_LARGE), as in
 * the wasm VM.
 */
void encodeResult(std::vector<uint8_t>& out, const Value& v);

}  // namespace wpipe
