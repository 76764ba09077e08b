// The columnar VM. Each chunk of up to kChunk rows runs the program's instructions in code order
// (jumps only go forward): every stack slot holds a vector of values with per-row tags, `active`
// marks the rows executing the current instruction, and a forward jump parks its rows (and the value
// they keep on the stack) in a merge buffer until the code reaches its target. A row errors only where
// the scalar VM would: the vector kernels flag suspect rows, which are then re-run through the scalar
// semantics (applyScalarOp) for the exact result or fault; the first failing row wins.
//
// Representation, chosen so the common filters (comparisons joined by and/or/not) move little data:
// numbers are f64 vectors (a number column is read in place), bools are byte vectors (a bool column
// is read in place), constants are one value, and tags are only materialized when an operation needs
// them (TagMode). The kernels are plain loops that GCC -O3 vectorizes; WPIPE_CLONES compiles each
// for AVX2 and for baseline x86-64 and picks at load time (no global -march).
#include "batch.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <stdexcept>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define WPIPE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define WPIPE_CLONES
#endif
#define WPIPE_INLINE inline __attribute__((always_inline))

namespace wpipe {

namespace {

/** Rows per chunk: big enough to amortize the per-instruction dispatch (measured: 256 is ~2x slower). */
constexpr int kChunk = 1024;
constexpr double kMaxInt = Limits::MAX_INT;
constexpr double kTwo52 = 4503599627370496.0;
static_assert(Tag::INT == Tag::FLOAT - 1, "kernels derive the tag from the int flag");
static_assert(Tag::TRUE == Tag::FALSE + 1, "kernels derive the tag from the bool byte");

// How a slot's values and tags are held.
enum TagMode : uint8_t {
  TM_ARRAY,    // f64 values (v, or cv), tags in ownT
  TM_NUMCOL,   // f64 values straight from a number column: INT iff a safe integer
  TM_BOOL,     // bools as bytes 0/1 (b, or cv when b is null)
  TM_UNIFORM,  // f64 values (v, or cv); every row has the tag utag
  TM_ARITH,    // f64 result of + - * whose int-ness follows from srcA/kindA and srcB/kindB
};

// Where an arithmetic operand's int-ness comes from, for TM_ARITH.
enum IntSource : uint8_t { IS_NUMCOL, IS_INT, IS_FLOAT };

struct Slot {
  uint8_t mode;
  uint8_t utag;
  bool mayNone;  // some row may be None (only constants produce None)
  const double* v;  // f64 values; null: every row is cv
  const uint8_t* b;  // TM_BOOL bytes; null: every row is cv
  double cv;
  // TM_ARITH: int iff both operands are ints; a NUMCOL operand is an int iff its (immutable) column
  // value is a safe integer.
  const double* srcA;
  const double* srcB;
  uint8_t kindA;
  uint8_t kindB;
  double* ownV;
  uint8_t* ownT;
  uint8_t* ownB;
};

struct Merge {
  double* v;  // parked values (cval == 2)
  uint8_t* t;  // parked tags (when !allBool)
  uint8_t* arrive;  // rows parked for this target
  bool any;
  bool allBool;  // every parked value is a bool
  bool mayNone;
  int8_t cval;  // -1: no value parked yet; 0/1: every parked row holds this bool; 2: values are in v
  // Optimistic mode: no row jumps; the bools that would have jumped are combined into t (AND for
  // JUMP_IF_FALSE_OR_POP and COMPARE_CHAIN, OR for JUMP_IF_TRUE_OR_POP) and meet the fall-through
  // value at the target.
  uint8_t pend;  // 0, PEND_AND or PEND_OR
};
constexpr uint8_t PEND_AND = 1, PEND_OR = 2;

// ---------------------------------------------------------------- kernels

struct VecA {
  const double* p;
  WPIPE_INLINE double operator()(int i) const { return p[i]; }
};
struct ConA {
  double c;
  WPIPE_INLINE double operator()(int) const { return c; }
};

/**
 * Column data is read in place, chunk after chunk, and the first kernel to read a chunk of a column
 * waits on memory: it asks for the same rows of the next chunk as it goes (in blocks, so the
 * kernels still vectorize), which measured ~20% faster over large columns than the hardware
 * prefetcher alone. A prefetch past the end of a column is harmless (it never faults).
 */
constexpr int kBlock = 64;
WPIPE_INLINE void prefetchNext(const double* p, int s) {
  if (!p) return;
  for (int j = 0; j < kBlock; j += 8) __builtin_prefetch(p + kChunk + s + j, 0, 2);
}

WPIPE_INLINE uint8_t safeInt(double v) {
  double t = std::fabs(v);
  // Integral iff adding and removing 2^52 is exact (below 2^52); every double in [2^52, 2^53) is integral.
  return (uint8_t)((t <= kMaxInt) & ((t >= kTwo52) | (((t + kTwo52) - kTwo52) == t)));
}

WPIPE_CLONES void kNumColTags(const double* v, uint8_t* t, int n) {
  for (int i = 0; i < n; i++) t[i] = (uint8_t)(Tag::FLOAT - safeInt(v[i]));
}

WPIPE_CLONES void kIntFlagsNumCol(const double* v, uint8_t* f, int n) {
  for (int i = 0; i < n; i++) f[i] = safeInt(v[i]);
}

WPIPE_CLONES void kIntFlagsTags(const uint8_t* t, uint8_t* f, int n) {
  for (int i = 0; i < n; i++) f[i] = t[i] != Tag::FLOAT;
}

WPIPE_CLONES void kBytesToTags(const uint8_t* b, uint8_t* t, int n) {
  for (int i = 0; i < n; i++) t[i] = (uint8_t)(Tag::FALSE + (b[i] != 0));
}

WPIPE_CLONES void kBytesToDoubles(const uint8_t* b, double* v, int n) {
  for (int i = 0; i < n; i++) v[i] = b[i] != 0 ? 1.0 : 0.0;
}

WPIPE_CLONES void kTruth(const double* v, uint8_t* t, int n) {
  for (int i = 0; i < n; i++) t[i] = v[i] != 0;  // NaN is true; None is 0
}

WPIPE_CLONES void kBoolNormalize(const uint8_t* c, uint8_t* b, int n) {
  for (int i = 0; i < n; i++) b[i] = c[i] != 0;
}

template <int OP, class A, class B>
WPIPE_INLINE void compareLoop(A a, B b, uint8_t* out, int n) {
  for (int i = 0; i < n; i++) {
    double x = a(i), y = b(i);
    bool r;
    if constexpr (OP == CmpOp::LT) r = x < y;
    else if constexpr (OP == CmpOp::LE) r = x <= y;
    else if constexpr (OP == CmpOp::GT) r = x > y;
    else if constexpr (OP == CmpOp::GE) r = x >= y;
    else if constexpr (OP == CmpOp::EQ) r = x == y;
    else r = x != y;
    out[i] = r;
  }
}

template <class A, class B>
WPIPE_INLINE void compareOp(int op, A a, B b, uint8_t* out, int n) {
  switch (op) {
    case CmpOp::LT: compareLoop<CmpOp::LT>(a, b, out, n); break;
    case CmpOp::LE: compareLoop<CmpOp::LE>(a, b, out, n); break;
    case CmpOp::GT: compareLoop<CmpOp::GT>(a, b, out, n); break;
    case CmpOp::GE: compareLoop<CmpOp::GE>(a, b, out, n); break;
    case CmpOp::EQ: compareLoop<CmpOp::EQ>(a, b, out, n); break;
    default: compareLoop<CmpOp::NE>(a, b, out, n); break;
  }
}

WPIPE_CLONES void kCompare(int op, const double* a, double ac, const double* b, double bc, uint8_t* out, int n,
                          const double* pfA, const double* pfB) {
  for (int s = 0; s < n; s += kBlock) {
    int m = std::min(kBlock, n - s);
    prefetchNext(pfA, s);
    prefetchNext(pfB, s);
    if (a && b) compareOp(op, VecA{a + s}, VecA{b + s}, out + s, m);
    else if (a) compareOp(op, VecA{a + s}, ConA{bc}, out + s, m);
    else if (b) compareOp(op, ConA{ac}, VecA{b + s}, out + s, m);
    else compareOp(op, ConA{ac}, ConA{bc}, out + s, m);
  }
}

template <int OP, class A, class B>
WPIPE_INLINE void arithLoop(A a, B b, const uint8_t* ia, const uint8_t* ib, double* out, uint8_t* outT, uint8_t* susp,
                            int n) {
  for (int i = 0; i < n; i++) {
    double x = a(i), y = b(i);
    double r;
    if constexpr (OP == BinOp::ADD) r = x + y;
    else if constexpr (OP == BinOp::SUB) r = x - y;
    else r = x * y;
    uint8_t isInt = ia[i] & ib[i];
    // The sign of a zero is not observable in a batch (only truthiness leaves it), so int results
    // are not normalized from -0 here.
    susp[i] = isInt & (uint8_t)!(std::fabs(r) <= kMaxInt);
    out[i] = r;
    outT[i] = (uint8_t)(Tag::FLOAT - isInt);
  }
}

template <int OP, class A, class B>
WPIPE_INLINE void arithFastLoop(A a, B b, double* out, uint8_t* susp, int n) {
  for (int i = 0; i < n; i++) {
    double x = a(i), y = b(i);
    double r;
    if constexpr (OP == BinOp::ADD) r = x + y;
    else if constexpr (OP == BinOp::SUB) r = x - y;
    else r = x * y;
    // Only these rows can be an int overflow; the scalar re-run decides (floats never fail here).
    susp[i] = !(std::fabs(r) <= kMaxInt);
    out[i] = r;
  }
}

template <class A, class B>
WPIPE_INLINE void trueDivLoop(A a, B b, double* out, uint8_t* susp, int n) {
  for (int i = 0; i < n; i++) {
    double y = b(i);
    susp[i] = y == 0;
    out[i] = a(i) / y;
  }
}

template <class A, class B>
WPIPE_INLINE void arithOp(int op, A a, B b, const uint8_t* ia, const uint8_t* ib, double* out, uint8_t* outT,
                          uint8_t* susp, int n) {
  switch (op) {
    case BinOp::ADD: arithLoop<BinOp::ADD>(a, b, ia, ib, out, outT, susp, n); break;
    case BinOp::SUB: arithLoop<BinOp::SUB>(a, b, ia, ib, out, outT, susp, n); break;
    default: arithLoop<BinOp::MUL>(a, b, ia, ib, out, outT, susp, n); break;
  }
}

template <class A, class B>
WPIPE_INLINE void arithFastOp(int op, A a, B b, double* out, uint8_t* susp, int n) {
  switch (op) {
    case BinOp::ADD: arithFastLoop<BinOp::ADD>(a, b, out, susp, n); break;
    case BinOp::SUB: arithFastLoop<BinOp::SUB>(a, b, out, susp, n); break;
    default: arithFastLoop<BinOp::MUL>(a, b, out, susp, n); break;
  }
}

WPIPE_CLONES void kArith(int op, const double* a, double ac, const double* b, double bc, const uint8_t* ia,
                         const uint8_t* ib, double* out, uint8_t* outT, uint8_t* susp, int n) {
  if (a && b) arithOp(op, VecA{a}, VecA{b}, ia, ib, out, outT, susp, n);
  else if (a) arithOp(op, VecA{a}, ConA{bc}, ia, ib, out, outT, susp, n);
  else if (b) arithOp(op, ConA{ac}, VecA{b}, ia, ib, out, outT, susp, n);
  else arithOp(op, ConA{ac}, ConA{bc}, ia, ib, out, outT, susp, n);
}

WPIPE_CLONES void kArithFast(int op, const double* a, double ac, const double* b, double bc, double* out, uint8_t* susp,
                             int n) {
  if (a && b) arithFastOp(op, VecA{a}, VecA{b}, out, susp, n);
  else if (a) arithFastOp(op, VecA{a}, ConA{bc}, out, susp, n);
  else if (b) arithFastOp(op, ConA{ac}, VecA{b}, out, susp, n);
  else arithFastOp(op, ConA{ac}, ConA{bc}, out, susp, n);
}

WPIPE_CLONES void kTrueDiv(const double* a, double ac, const double* b, double bc, double* out, uint8_t* susp, int n) {
  if (a && b) trueDivLoop(VecA{a}, VecA{b}, out, susp, n);
  else if (a) trueDivLoop(VecA{a}, ConA{bc}, out, susp, n);
  else if (b) trueDivLoop(ConA{ac}, VecA{b}, out, susp, n);
  else trueDivLoop(ConA{ac}, ConA{bc}, out, susp, n);
}

template <int AOP, int COP, class A, class B>
WPIPE_INLINE bool arithCmpLoop(A a, B b, double c, uint8_t* out, int n) {
  // Optimistic: the comparison of the f64 result is exact unless some row could fail (an int beyond
  // ±Limits::MAX_INT, a division by zero) — then the caller re-runs the instructions exactly.
  // A 64-bit accumulator: the vectorized OR stays in the comparison's lane width.
  int64_t bad = 0;
  for (int i = 0; i < n; i++) {
    double x = a(i), y = b(i);
    double r;
    if constexpr (AOP == BinOp::ADD) r = x + y;
    else if constexpr (AOP == BinOp::SUB) r = x - y;
    else if constexpr (AOP == BinOp::MUL) r = x * y;
    else r = x / y;
    if constexpr (AOP == BinOp::TRUEDIV) bad |= -(int64_t)(y == 0);
    else bad |= -(int64_t)!(std::fabs(r) <= kMaxInt);
    bool q;
    if constexpr (COP == CmpOp::LT) q = r < c;
    else if constexpr (COP == CmpOp::LE) q = r <= c;
    else if constexpr (COP == CmpOp::GT) q = r > c;
    else if constexpr (COP == CmpOp::GE) q = r >= c;
    else if constexpr (COP == CmpOp::EQ) q = r == c;
    else q = r != c;
    out[i] = q;
  }
  return bad != 0;
}

template <int AOP, class A, class B>
WPIPE_INLINE bool arithCmpOp(int cop, A a, B b, double c, uint8_t* out, int n) {
  switch (cop) {
    case CmpOp::LT: return arithCmpLoop<AOP, CmpOp::LT>(a, b, c, out, n);
    case CmpOp::LE: return arithCmpLoop<AOP, CmpOp::LE>(a, b, c, out, n);
    case CmpOp::GT: return arithCmpLoop<AOP, CmpOp::GT>(a, b, c, out, n);
    case CmpOp::GE: return arithCmpLoop<AOP, CmpOp::GE>(a, b, c, out, n);
    case CmpOp::EQ: return arithCmpLoop<AOP, CmpOp::EQ>(a, b, c, out, n);
    default: return arithCmpLoop<AOP, CmpOp::NE>(a, b, c, out, n);
  }
}

template <class A, class B>
WPIPE_INLINE bool arithCmpShape(int aop, int cop, A a, B b, double c, uint8_t* out, int n) {
  switch (aop) {
    case BinOp::ADD: return arithCmpOp<BinOp::ADD>(cop, a, b, c, out, n);
    case BinOp::SUB: return arithCmpOp<BinOp::SUB>(cop, a, b, c, out, n);
    case BinOp::MUL: return arithCmpOp<BinOp::MUL>(cop, a, b, c, out, n);
    default: return arithCmpOp<BinOp::TRUEDIV>(cop, a, b, c, out, n);
  }
}

/**
 * `(a aop b) cop c` in one pass, bytes into `out`; true when some row might fail or need the exact
 * path (then `out` is garbage). At least one of a, b is a vector.
 */
WPIPE_CLONES bool kArithCompare(int aop, int cop, const double* a, double ac, const double* b, double bc, double c,
                                uint8_t* out, int n, const double* pfA, const double* pfB) {
  bool bad = false;
  for (int s = 0; s < n; s += kBlock) {
    int m = std::min(kBlock, n - s);
    prefetchNext(pfA, s);
    prefetchNext(pfB, s);
    if (a && b) bad |= arithCmpShape(aop, cop, VecA{a + s}, VecA{b + s}, c, out + s, m);
    else if (a) bad |= arithCmpShape(aop, cop, VecA{a + s}, ConA{bc}, c, out + s, m);
    else bad |= arithCmpShape(aop, cop, ConA{ac}, VecA{b + s}, c, out + s, m);
  }
  return bad;
}

/** Int flags (1/0) of a TM_ARITH result. */
WPIPE_CLONES void kArithIntFlags(const double* a, uint8_t ka, const double* b, uint8_t kb, uint8_t* f, int n) {
  if (ka == IS_NUMCOL && kb == IS_NUMCOL) {
    for (int i = 0; i < n; i++) f[i] = safeInt(a[i]) & safeInt(b[i]);
  } else if (ka == IS_NUMCOL || kb == IS_NUMCOL) {
    const double* c = ka == IS_NUMCOL ? a : b;
    uint8_t other = (ka == IS_NUMCOL ? kb : ka) == IS_INT;
    for (int i = 0; i < n; i++) f[i] = safeInt(c[i]) & other;
  } else {
    std::memset(f, ka == IS_INT && kb == IS_INT, n);
  }
}

WPIPE_CLONES void kNeg(const double* v, double* out, int n) {
  for (int i = 0; i < n; i++) out[i] = -v[i];
}

WPIPE_CLONES void kBoolTagsToInt(uint8_t* t, int n) {
  for (int i = 0; i < n; i++) {
    uint8_t x = t[i];
    t[i] = (x == Tag::TRUE || x == Tag::FALSE) ? (uint8_t)Tag::INT : x;
  }
}

WPIPE_CLONES void kNotBytes(const uint8_t* t, uint8_t* out, int n) {
  for (int i = 0; i < n; i++) out[i] = t[i] ^ 1;
}

/**
 * A conditional jump over truthiness bytes: active rows whose truthiness is `want` leave `active` and
 * join `arrive`. Returns bit 0: some row jumped; bit 1: some row is still active.
 */
WPIPE_CLONES int kSplit(const uint8_t* t, uint8_t* active, uint8_t* jumpers, uint8_t want, uint8_t* arrive, int n) {
  uint8_t anyJ = 0, anyA = 0;
  for (int i = 0; i < n; i++) {
    uint8_t act = active[i];
    uint8_t j = act & (uint8_t)(t[i] == want);
    uint8_t a = act & (uint8_t)(j ^ 1);
    jumpers[i] = j;
    active[i] = a;
    arrive[i] |= j;
    anyJ |= j;
    anyA |= a;
  }
  return (anyJ ? 1 : 0) | (anyA ? 2 : 0);
}

/** Like kSplit over f64 values, also parking each jumping row's value in `mv`. */
WPIPE_CLONES int kSplitSave(const double* v, uint8_t* active, uint8_t* jumpers, uint8_t want, double* mv, uint8_t* arrive,
                            int n) {
  uint8_t anyJ = 0, anyA = 0;
  for (int i = 0; i < n; i++) {
    double x = v[i], m = mv[i];
    uint8_t act = active[i];
    uint8_t j = act & (uint8_t)((x != 0) == (want != 0));
    uint8_t a = act & (uint8_t)(j ^ 1);
    jumpers[i] = j;
    active[i] = a;
    arrive[i] |= j;
    mv[i] = j ? x : m;
    anyJ |= j;
    anyA |= a;
  }
  return (anyJ ? 1 : 0) | (anyA ? 2 : 0);
}

/** Parked bool rows (all holding `c`) rejoin a bool slot. */
WPIPE_CLONES void kArriveConstBytes(uint8_t* dst, const uint8_t* src, uint8_t c, const uint8_t* arrive, uint8_t* active,
                                    int n) {
  for (int i = 0; i < n; i++) {
    uint8_t x = src[i], a = arrive[i];
    dst[i] = a ? c : x;
    active[i] |= a;
  }
}

/** Parked rows rejoin an f64 slot. */
WPIPE_CLONES void kArrive(double* dst, const double* v, const double* mv, const uint8_t* arrive, uint8_t* active, int n) {
  for (int i = 0; i < n; i++) {
    double x = v[i], m = mv[i];
    uint8_t a = arrive[i];
    dst[i] = a ? m : x;
    active[i] |= a;
  }
}

WPIPE_CLONES void kBlendT(uint8_t* dst, const uint8_t* m, const uint8_t* mask, int n) {
  for (int i = 0; i < n; i++) {
    uint8_t mv = m[i], dv = dst[i];
    dst[i] = mask[i] ? mv : dv;
  }
}

WPIPE_CLONES void kAndInto(uint8_t* dst, const uint8_t* src, int n) {
  for (int i = 0; i < n; i++) dst[i] &= src[i];
}

WPIPE_CLONES void kAnd3(uint8_t* dst, const uint8_t* a, const uint8_t* b, int n) {
  for (int i = 0; i < n; i++) dst[i] = a[i] & b[i];
}

WPIPE_CLONES void kOr3(uint8_t* dst, const uint8_t* a, const uint8_t* b, int n) {
  for (int i = 0; i < n; i++) dst[i] = a[i] | b[i];
}

WPIPE_CLONES bool kAny(const uint8_t* a, int n) {
  uint8_t any = 0;
  for (int i = 0; i < n; i++) any |= a[i];
  return any != 0;
}

WPIPE_CLONES void kOrInto(uint8_t* dst, const uint8_t* src, int n) {
  for (int i = 0; i < n; i++) dst[i] |= src[i];
}

WPIPE_CLONES bool kAnyAnd(const uint8_t* a, const uint8_t* b, int n) {
  uint8_t any = 0;
  for (int i = 0; i < n; i++) any |= a[i] & b[i];
  return any != 0;
}

WPIPE_CLONES void kReturn(const uint8_t* t, const uint8_t* active, uint8_t* out, int n) {
  for (int i = 0; i < n; i++) {
    uint8_t x = t[i], o = out[i];
    out[i] = active[i] ? x : o;
  }
}

// ---------------------------------------------------------------- the chunk machine

struct Runner {
  const Program& P;
  const BatchPlan& B;
  EnvState& E;
  const Column* cols;
  std::vector<Slot> slots;
  std::vector<Merge> merges;
  uint8_t* active;
  uint8_t* jumpers;
  uint8_t* flagsA;
  uint8_t* flagsB;
  uint8_t* susp;
  uint8_t* truth;  // truthiness scratch
  double* spareV;  // result buffers swapped into a slot
  uint8_t* spareT;
  uint8_t* spareB;
  const double* prefetched[4];  // column chunks already prefetched ahead in this chunk
  int nPrefetched = 0;
  std::vector<const double*> valsScratch;
  std::vector<const uint8_t*> tagsScratch;
  std::vector<double> constScratch;
  std::vector<Value> argScratch;
  int64_t bestRow = -1;
  // Optimistic mode (BatchPlan::optimistic programs): every row runs every instruction, and/or over
  // bools are byte ANDs/ORs instead of jumps, with no activity masks. Valid only when no row can
  // fail: anything that might (a suspect arithmetic row, a non-bool jump value) abandons the chunk
  // (`abandoned`), which then runs again exactly. Results are identical either way.
  bool opt = false;
  bool abandoned = false;
  bool staticAbandon = false;  // abandoned for a reason every chunk would meet (a type, not a value)
  int32_t* fault;
  size_t base = 0;
  int n = 0;

  Runner(const Program& p, EnvState& e, const Column* c, int32_t* f) : P(p), B(*p.batch), E(e), cols(c), fault(f) {
    size_t nSlots = p.stackSize;
    size_t nT = (size_t)B.nTargets;
    size_t doubles = nSlots + nT + 1;
    size_t bytes = nSlots * 2 + nT * 2 + 9;
    size_t total = doubles * (kChunk * 8 + 64) + bytes * (kChunk + 64) + 64;
    std::vector<uint8_t>& buf = E.batchScratch;
    if (buf.size() < total) buf.assign(total, 0);
    uint8_t* p8 = buf.data();
    auto take = [&](size_t sz) {
      uintptr_t a = ((uintptr_t)p8 + 63) & ~(uintptr_t)63;
      p8 = (uint8_t*)(a + sz);
      return (void*)a;
    };
    slots.resize(nSlots);
    merges.resize(nT);
    for (auto& s : slots) {
      s = Slot{};
      s.ownV = (double*)take(kChunk * 8);
      s.ownT = (uint8_t*)take(kChunk);
      s.ownB = (uint8_t*)take(kChunk);
    }
    for (auto& m : merges) {
      m = Merge{};
      m.v = (double*)take(kChunk * 8);
      m.t = (uint8_t*)take(kChunk);
      m.arrive = (uint8_t*)take(kChunk);
    }
    spareV = (double*)take(kChunk * 8);
    active = (uint8_t*)take(kChunk);
    jumpers = (uint8_t*)take(kChunk);
    flagsA = (uint8_t*)take(kChunk);
    flagsB = (uint8_t*)take(kChunk);
    susp = (uint8_t*)take(kChunk);
    truth = (uint8_t*)take(kChunk);
    spareT = (uint8_t*)take(kChunk);
    spareB = (uint8_t*)take(kChunk);
    if ((size_t)(p8 - buf.data()) > buf.size()) throw std::logic_error("batch scratch overflow");
  }

  // ---- slot helpers

  /** The slot's values as a vector or a constant (bool bytes are widened into ownV). */
  void numbers(Slot& s, const double*& p, double& c) {
    if (s.mode == TM_BOOL) {
      if (s.b) {
        kBytesToDoubles(s.b, s.ownV, n);
        p = s.ownV;
      } else {
        p = nullptr;
        c = s.cv;
      }
      return;
    }
    p = s.v;
    c = s.cv;
  }

  /** The slot's values as a vector (constants filled into `scratch`). */
  const double* vec(Slot& s, double* scratch) {
    const double* p;
    double c = 0;
    numbers(s, p, c);
    if (p) return p;
    for (int i = 0; i < n; i++) scratch[i] = c;
    return scratch;
  }

  /** Truthiness bytes of every row. */
  const uint8_t* truthOf(Slot& s) {
    if (s.mode == TM_BOOL) {
      if (s.b) return s.b;
      std::memset(truth, s.cv != 0, n);
      return truth;
    }
    if (!s.v) {
      std::memset(truth, s.cv != 0, n);
      return truth;
    }
    kTruth(s.v, truth, n);
    return truth;
  }

  /** Materializes f64 values and tags (mode becomes TM_ARRAY); returns the tags. */
  uint8_t* tags(Slot& s) {
    switch (s.mode) {
      case TM_NUMCOL: kNumColTags(s.v, s.ownT, n); break;
      case TM_BOOL:
        if (s.b) {
          kBytesToTags(s.b, s.ownT, n);
          kBytesToDoubles(s.b, s.ownV, n);
          s.v = s.ownV;
        } else {
          std::memset(s.ownT, s.cv != 0 ? Tag::TRUE : Tag::FALSE, n);
          s.v = nullptr;
        }
        break;
      case TM_UNIFORM: std::memset(s.ownT, s.utag, n); break;
      case TM_ARITH:
        kArithIntFlags(s.srcA, s.kindA, s.srcB, s.kindB, s.ownT, n);
        for (int i = 0; i < n; i++) s.ownT[i] = (uint8_t)(Tag::FLOAT - s.ownT[i]);
        break;
      default: break;
    }
    s.mode = TM_ARRAY;
    return s.ownT;
  }

  const uint8_t* intFlags(Slot& s, uint8_t* f) {
    switch (s.mode) {
      case TM_NUMCOL: kIntFlagsNumCol(s.v, f, n); break;
      case TM_BOOL: std::memset(f, 1, n); break;
      case TM_UNIFORM: std::memset(f, s.utag != Tag::FLOAT, n); break;
      case TM_ARITH: kArithIntFlags(s.srcA, s.kindA, s.srcB, s.kindB, f, n); break;
      default: kIntFlagsTags(s.ownT, f, n); break;
    }
    return f;
  }

  /** Where an operand's int-ness comes from without per-row tags, or false. */
  static bool intSource(const Slot& s, const double*& src, uint8_t& kind) {
    switch (s.mode) {
      case TM_NUMCOL:
        if (s.v == s.ownV) return false;  // a recipe may only point at immutable column data
        src = s.v;
        kind = IS_NUMCOL;
        return true;
      case TM_BOOL: src = nullptr; kind = IS_INT; return true;
      case TM_UNIFORM:
        if (s.utag == Tag::NONE) return false;
        src = nullptr;
        kind = s.utag == Tag::FLOAT ? IS_FLOAT : IS_INT;
        return true;
      default: return false;
    }
  }

  void setConst(Slot& s, const Value& c) {
    s.v = nullptr;
    s.b = nullptr;
    s.cv = c.num;
    s.mayNone = c.tag == Tag::NONE;
    if (c.tag == Tag::TRUE || c.tag == Tag::FALSE) {
      s.mode = TM_BOOL;
    } else {
      s.mode = TM_UNIFORM;
      s.utag = c.tag;
    }
  }

  void setBoolResult(Slot& s) {
    s.mode = TM_BOOL;
    s.b = s.ownB;
    s.v = nullptr;
    s.mayNone = false;
  }

  void copySlot(Slot& d, const Slot& s) {
    if (&d == &s) return;
    double* ownV = d.ownV;
    uint8_t* ownT = d.ownT;
    uint8_t* ownB = d.ownB;
    d = s;
    d.ownV = ownV;
    d.ownT = ownT;
    d.ownB = ownB;
    if (s.v && s.v == s.ownV) {
      std::memcpy(ownV, s.v, sizeof(double) * n);
      d.v = ownV;
    }
    if (s.b && s.b == s.ownB) {
      std::memcpy(ownB, s.b, n);
      d.b = ownB;
    }
    if (s.mode == TM_ARRAY) std::memcpy(ownT, s.ownT, n);
  }

  void kill(int i, const VmError& e, int32_t pc) {
    active[i] = 0;
    int64_t row = (int64_t)(base + i);
    if (bestRow < 0 || row < bestRow) {
      bestRow = row;
      fault[FaultWord::KIND] = e.kind;
      fault[FaultWord::PC] = pc;
      fault[FaultWord::REASON] = e.reason;
      fault[FaultWord::TAG_A] = e.tagA;
      fault[FaultWord::TAG_B] = e.tagB;
      fault[FaultWord::ROW] = (int32_t)row;
    }
  }

  static Value rowValue(double v, uint8_t t) {
    Value x = mkNone();
    x.tag = t;
    x.num = v;
    return x;
  }

  /**
   * The scalar semantics of an instruction, row by row over the active rows, with `argc` operands in
   * the slots from `first`; the result replaces slot `first`.
   */
  void scalarRows(int32_t op, int32_t arg, int32_t argc, int first, int32_t pc) {
    if (opt) {  // rows may fail here
      abandoned = true;
      staticAbandon = true;
      return;
    }
    std::vector<const double*>& vals = valsScratch;
    std::vector<const uint8_t*>& tg = tagsScratch;
    std::vector<double>& cvs = constScratch;
    std::vector<Value>& in = argScratch;
    vals.assign(argc, nullptr);
    tg.assign(argc, nullptr);
    cvs.assign(argc, 0);
    in.resize(argc > 0 ? argc : 1);
    for (int k = 0; k < argc; k++) {
      Slot& s = slots[first + k];
      tg[k] = tags(s);
      vals[k] = s.v;  // null: the constant s.cv
      cvs[k] = s.cv;
    }
    Slot& r = slots[first];
    Value out;
    VmError err;
    for (int i = 0; i < n; i++) {
      double v = 0;
      uint8_t t = Tag::NONE;
      if (active[i]) {
        for (int k = 0; k < argc; k++) in[k] = rowValue(vals[k] ? vals[k][i] : cvs[k], tg[k][i]);
        if (applyScalarOp(P, E, op, arg, argc, in.data(), out, err)) {
          v = out.num;
          t = out.tag;
        } else {
          kill(i, err, pc);
        }
      }
      spareV[i] = v;
      spareT[i] = t;
    }
    std::swap(r.ownV, spareV);
    std::swap(r.ownT, spareT);
    r.v = r.ownV;
    r.b = nullptr;
    r.mode = TM_ARRAY;
    r.mayNone = false;
  }

  void startMerge(Merge& m) {
    std::memset(m.arrive, 0, n);
    m.any = true;
    m.allBool = true;
    m.mayNone = false;
    m.cval = -1;
  }

  /** From here on the merge keeps per-row values (and tags when not all bools). */
  void needValues(Merge& m) {
    if (m.cval == 0 || m.cval == 1) {
      double c = m.cval;
      for (int i = 0; i < n; i++) m.v[i] = c;
    }
    m.cval = 2;
  }

  /** Parks slot `s`'s values for the rows in `j` (already in m.arrive or about to be). */
  void save(Merge& m, Slot& s, const uint8_t* j) {
    if (!m.any) startMerge(m);
    needValues(m);
    if (s.mode != TM_BOOL) {
      if (m.allBool) kBytesToTags(truthOfMergeValues(m), m.t, n);
      m.allBool = false;
      kBlendT(m.t, tags(s), j, n);
    } else if (!m.allBool) {
      kBytesToTags(truthOf(s), flagsB, n);
      kBlendT(m.t, flagsB, j, n);
    }
    const double* sv = vec(s, spareV);
    for (int i = 0; i < n; i++) {
      double x = sv[i], o = m.v[i];
      m.v[i] = j[i] ? x : o;
    }
    kOrInto(m.arrive, j, n);
    m.mayNone |= s.mayNone;
  }

  /** Truthiness bytes of the bools parked so far (while allBool). */
  const uint8_t* truthOfMergeValues(Merge& m) {
    kTruth(m.v, truth, n);
    return truth;
  }

  /** The code reached a jump target: its parked rows rejoin, with their values on top of the stack. */
  void arrive(Merge& m, int depth) {
    if (opt) {
      Slot& s = slots[depth - 1];
      m.any = false;
      if (s.mode != TM_BOOL) {
        abandoned = staticAbandon = true;
        return;
      }
      if (s.b) {
        (m.pend == PEND_AND ? kAnd3 : kOr3)(s.ownB, s.b, m.t, n);
        setBoolResult(s);
      } else if ((s.cv != 0) == (m.pend == PEND_AND)) {
        std::swap(s.ownB, m.t);  // x and True, x or False: the parked bools
        setBoolResult(s);
      }  // else x and False, x or True: the constant
      return;
    }
    if (depth == 0) {
      kOrInto(active, m.arrive, n);
      m.any = false;
      return;
    }
    Slot& s = slots[depth - 1];
    if ((m.cval == 0 || m.cval == 1) && s.mode == TM_BOOL) {
      const uint8_t* src = truthOf(s);
      kArriveConstBytes(s.ownB, src, (uint8_t)m.cval, m.arrive, active, n);
      setBoolResult(s);
      m.any = false;
      return;
    }
    needValues(m);
    // f64 values with tags: the slot's own first (before its values change), then the parked ones.
    bool boolsOnly = s.mode == TM_BOOL && m.allBool;
    tags(s);
    if (!boolsOnly) {
      if (m.allBool) kBytesToTags(truthOfMergeValues(m), m.t, n);
      kBlendT(s.ownT, m.t, m.arrive, n);
    } else {
      kBytesToTags(truthOfMergeValues(m), flagsB, n);
      kBlendT(s.ownT, flagsB, m.arrive, n);
    }
    kArrive(s.ownV, vec(s, spareV), m.v, m.arrive, active, n);
    s.v = s.ownV;
    s.mode = TM_ARRAY;
    s.mayNone |= m.mayNone;
    m.any = false;
  }

  /** Optimistic mode: combines a bool slot that would jump into the merge (false: abandon). */
  bool pendBool(Slot& s, Merge& m, uint8_t pend) {
    if (s.mode != TM_BOOL) return false;
    if (!m.any) {
      m.any = true;
      m.pend = pend;
      if (s.b) std::swap(s.ownB, m.t);  // the slot is popped (or replaced) right after
      else std::memset(m.t, s.cv != 0, n);
      s.b = nullptr;
      return true;
    }
    if (m.pend != pend) return false;
    if (s.b) (pend == PEND_AND ? kAndInto : kOrInto)(m.t, s.b, n);
    else if ((s.cv != 0) != (pend == PEND_AND)) std::memset(m.t, s.cv != 0, n);
    return true;
  }

  /** A conditional jump over the slot's truthiness (JUMP_IF_*_OR_POP keep the value, and park it). */
  int jumpKeeping(Slot& s, Merge& m, uint8_t want) {
    bool fresh = !m.any;
    if (fresh) startMerge(m);
    int r;
    if (s.mode == TM_BOOL && (m.cval < 0 || m.cval == (int8_t)want)) {
      // A bool that jumps is exactly `want`: park the constant, not the values.
      r = kSplit(truthOf(s), active, jumpers, want, m.arrive, n);
      if (r & 1) m.cval = (int8_t)want;
    } else {
      needValues(m);
      bool boolSlot = s.mode == TM_BOOL;
      if (!boolSlot && m.allBool) kBytesToTags(truthOfMergeValues(m), m.t, n);  // before m.v changes
      r = kSplitSave(vec(s, spareV), active, jumpers, want, m.v, m.arrive, n);
      if (r & 1) {
        if (!boolSlot) {
          m.allBool = false;
          kBlendT(m.t, tags(s), jumpers, n);
        } else if (!m.allBool) {
          kBytesToTags(truthOf(s), flagsB, n);
          kBlendT(m.t, flagsB, jumpers, n);
        }
      }
    }
    if (r & 1) m.mayNone |= s.mayNone;
    else if (fresh) m.any = false;
    return r;
  }

  void binop(int32_t a, int sp, int32_t pc) {
    Slot& x = slots[sp - 2];
    Slot& y = slots[sp - 1];
    if (x.mayNone || y.mayNone || a > BinOp::TRUEDIV) {
      scalarRows(Op::BINOP, a, 2, sp - 2, pc);
      return;
    }
    const double *xv, *yv;
    double xc = 0, yc = 0;
    numbers(x, xv, xc);
    numbers(y, yv, yc);
    const double *srcA = nullptr, *srcB = nullptr;
    uint8_t kindA = 0, kindB = 0;
    uint8_t newMode;
    if (a == BinOp::TRUEDIV) {
      kTrueDiv(xv, xc, yv, yc, spareV, susp, n);
      newMode = TM_UNIFORM;
    } else if (intSource(x, srcA, kindA) && intSource(y, srcB, kindB)) {
      kArithFast(a, xv, xc, yv, yc, spareV, susp, n);
      newMode = TM_ARITH;
    } else {
      const uint8_t* ia = intFlags(x, flagsA);
      const uint8_t* ib = intFlags(y, flagsB);
      kArith(a, xv, xc, yv, yc, ia, ib, spareV, spareT, susp, n);
      newMode = TM_ARRAY;
    }
    if (opt ? kAny(susp, n) : kAnyAnd(susp, active, n)) {
      if (opt) {
        abandoned = true;
        return;
      }
      // Suspect rows: the exact result or fault from the scalar semantics (operands are intact).
      const uint8_t* xt = tags(x);
      const uint8_t* yt = tags(y);
      Value in[2], res;
      VmError err;
      for (int i = 0; i < n; i++) {
        if (!(susp[i] & active[i])) continue;
        in[0] = rowValue(xv ? xv[i] : xc, xt[i]);
        in[1] = rowValue(yv ? yv[i] : yc, yt[i]);
        if (applyScalarOp(P, E, Op::BINOP, a, 2, in, res, err)) {
          // A TM_ARITH row that does not fail is a float (an int beyond MAX_INT would have failed).
          spareV[i] = res.num;
          spareT[i] = res.tag;
        } else {
          kill(i, err, pc);
        }
      }
    }
    std::swap(x.ownV, spareV);
    x.v = x.ownV;
    x.b = nullptr;
    if (newMode == TM_ARRAY) std::swap(x.ownT, spareT);
    x.srcA = srcA;
    x.srcB = srcB;
    x.kindA = kindA;
    x.kindB = kindB;
    x.mode = newMode;
    x.utag = Tag::FLOAT;
    x.mayNone = false;
  }

  /** The column data a kernel should prefetch ahead for (a column chunk's first reader), or null. */
  const double* pfOf(const Slot& s) {
    if (s.mode != TM_NUMCOL || !s.v || s.v == s.ownV) return nullptr;
    for (int k = 0; k < nPrefetched; k++) {
      if (prefetched[k] == s.v) return nullptr;
    }
    if (nPrefetched < 4) prefetched[nPrefetched++] = s.v;
    return s.v;
  }

  /** Whether a slot holds one number (or bool) for every row; its value in `c`. */
  static bool scalarNumber(const Slot& s, double& c) {
    if (s.mayNone) return false;
    if ((s.mode == TM_UNIFORM && !s.v && s.utag != Tag::NONE) || (s.mode == TM_BOOL && !s.b)) {
      c = s.cv;
      return true;
    }
    return false;
  }

  /**
   * BINOP (+ - * /) whose result is only compared with a constant — `BINOP; CONST; COMPARE` or
   * `CONST ...; BINOP; COMPARE` — in one pass into bytes, skipping the f64 result and its int-ness:
   * those only matter when a row could fail, and then the fused kernel says so and the instructions
   * run exactly. Returns the pc after the COMPARE, or -1 (nothing done).
   */
  int32_t fusedArithCompare(int32_t aop, int sp, int32_t next) {
    if (aop > BinOp::TRUEDIV) return -1;
    Slot& x = slots[sp - 2];
    Slot& y = slots[sp - 1];
    if (x.mayNone || y.mayNone) return -1;
    const int32_t* code = P.code.data();
    const int32_t len = (int32_t)P.code.size();
    int32_t cop, after;
    double c;
    Slot* res;
    if (next + 4 <= len && code[next] == Op::CONST && code[next + 2] == Op::COMPARE && B.targetOf[next] < 0 &&
        B.targetOf[next + 2] < 0) {
      const Value& k = P.consts[code[next + 1]];
      if (k.tag == Tag::NONE) return -1;
      c = k.num;
      cop = code[next + 3];
      after = next + 4;
      res = &x;
    } else if (next + 2 <= len && code[next] == Op::COMPARE && B.targetOf[next] < 0 && sp >= 3 &&
               scalarNumber(slots[sp - 3], c)) {
      static constexpr int32_t kFlip[] = {CmpOp::GT, CmpOp::GE, CmpOp::LT, CmpOp::LE, CmpOp::EQ, CmpOp::NE};
      cop = code[next + 1];
      if (cop > CmpOp::NE) return -1;
      cop = kFlip[cop];
      after = next + 2;
      res = &slots[sp - 3];
    } else {
      return -1;
    }
    if (cop > CmpOp::NE) return -1;
    const double *xv, *yv;
    double xc = 0, yc = 0;
    numbers(x, xv, xc);
    numbers(y, yv, yc);
    if (!xv && !yv) return -1;
    if (kArithCompare(aop, cop, xv, xc, yv, yc, c, spareB, n, pfOf(x), pfOf(y))) return -1;
    std::swap(res->ownB, spareB);
    setBoolResult(*res);
    return after;
  }

  /** Runs the program over rows [b, b + rows). */
  void chunk(size_t b, int rows, uint8_t* out) {
    base = b;
    n = rows;
    std::memset(active, 1, n);
    nPrefetched = 0;
    abandoned = false;
    for (auto& m : merges) m.any = false;
    const int32_t* code = P.code.data();
    const int32_t len = (int32_t)P.code.size();
    bool live = true;
    for (int32_t pc = 0; pc < len;) {
      int32_t op = code[pc];
      int32_t t = B.targetOf[pc];
      if (t >= 0 && merges[t].any) {
        arrive(merges[t], P.depthAt[pc]);
        if (abandoned) return;
        live = true;
      }
      int32_t next = pc + 1 + OPERAND_COUNT[op];
      if (!live) {  // every row is parked at a later target (or done)
        pc = next;
        continue;
      }
      int sp = P.depthAt[pc];
      int32_t a = next > pc + 1 ? code[pc + 1] : 0;
      switch (op) {
        case Op::RETURN:
          if (opt) std::memcpy(out + base, truthOf(slots[sp - 1]), n);
          else kReturn(truthOf(slots[sp - 1]), active, out + base, n);
          std::memset(active, 0, n);
          live = false;
          break;
        case Op::CONST: setConst(slots[sp], P.consts[a]); break;
        case Op::NAME: {
          Slot& s = slots[sp];
          const Column& c = cols[a];
          s.mayNone = false;
          if (c.isBool) {
            kBoolNormalize((const uint8_t*)c.data + base, s.ownB, n);
            setBoolResult(s);
          } else {
            s.v = (const double*)c.data + base;
            s.b = nullptr;
            s.mode = TM_NUMCOL;
          }
          break;
        }
        case Op::NOT: {
          Slot& s = slots[sp - 1];
          kNotBytes(truthOf(s), s.ownB, n);
          setBoolResult(s);
          break;
        }
        case Op::COMPARE: case Op::COMPARE_CHAIN: {
          Slot& x = slots[sp - 2];
          Slot& y = slots[sp - 1];
          if (x.mayNone || y.mayNone || a > CmpOp::NE) {
            scalarRows(Op::COMPARE, a, 2, sp - 2, pc);
          } else {
            const double *xv, *yv;
            double xc = 0, yc = 0;
            numbers(x, xv, xc);
            numbers(y, yv, yc);
            kCompare(a, xv, xc, yv, yc, x.ownB, n, pfOf(x), pfOf(y));
            setBoolResult(x);
          }
          if (op == Op::COMPARE) break;
          // COMPARE_CHAIN: rows where it is false jump with False; the others go on with b.
          Merge& m = merges[B.targetOf[code[pc + 2]]];
          if (opt) {
            if (!pendBool(x, m, PEND_AND)) abandoned = staticAbandon = true;
            copySlot(x, y);
            break;
          }
          bool fresh = !m.any;
          if (fresh) startMerge(m);
          int r;
          if (x.mode == TM_BOOL && (m.cval < 0 || m.cval == 0)) {
            r = kSplit(truthOf(x), active, jumpers, 0, m.arrive, n);
            if (r & 1) m.cval = 0;
          } else {
            Slot f{};
            f.mode = TM_BOOL;
            f.cv = 0;
            r = kSplit(truthOf(x), active, jumpers, 0, flagsA, n);
            if (r & 1) save(m, f, jumpers);
          }
          if (!(r & 1) && fresh) m.any = false;
          copySlot(x, y);
          live = (r & 2) != 0;
          break;
        }
        case Op::BINOP: {
          int32_t after = fusedArithCompare(a, sp, next);
          if (after >= 0) {
            next = after;
            break;
          }
          binop(a, sp, pc);
          break;
        }
        case Op::NEG: case Op::POS: {
          Slot& s = slots[sp - 1];
          if (s.mayNone) {
            scalarRows(op, 0, 1, sp - 1, pc);
            break;
          }
          // Numbers only here (None is the one non-number a batch has): bools become ints, and
          // negation keeps every row's int-ness (the sign of a zero is not observable in a batch).
          if (s.mode == TM_BOOL) {
            const double* p;
            double c = 0;
            numbers(s, p, c);
            s.v = p;
            s.cv = c;
            s.b = nullptr;
            s.mode = TM_UNIFORM;
            s.utag = Tag::INT;
          } else if (s.mode == TM_ARRAY) {
            kBoolTagsToInt(s.ownT, n);
          }
          if (op == Op::NEG) {
            if (s.v) {
              kNeg(s.v, s.ownV, n);
              s.v = s.ownV;  // TM_NUMCOL stays valid (safe-int-ness is symmetric); intSource refuses ownV
            } else {
              s.cv = -s.cv;
            }
          }
          break;
        }
        case Op::CALL: {
          int32_t argc = code[pc + 2];
          if (a == Fn::bool_ && argc == 1) {
            Slot& s = slots[sp - 1];
            const uint8_t* tr = truthOf(s);
            if (tr != s.ownB) std::memcpy(s.ownB, tr, n);
            setBoolResult(s);
          } else {
            scalarRows(Op::CALL, a, argc, sp - argc, pc);
          }
          break;
        }
        case Op::JUMP_IF_FALSE_OR_POP: case Op::JUMP_IF_TRUE_OR_POP:
          if (opt) {
            if (!pendBool(slots[sp - 1], merges[B.targetOf[a]], op == Op::JUMP_IF_TRUE_OR_POP ? PEND_OR : PEND_AND)) {
              abandoned = staticAbandon = true;
            }
            break;
          }
          live = (jumpKeeping(slots[sp - 1], merges[B.targetOf[a]], op == Op::JUMP_IF_TRUE_OR_POP) & 2) != 0;
          break;
        case Op::POP_JUMP_IF_FALSE: {
          if (opt) {
            abandoned = staticAbandon = true;
            break;
          }
          Merge& m = merges[B.targetOf[a]];
          bool fresh = !m.any;
          if (fresh) startMerge(m);
          int r = kSplit(truthOf(slots[sp - 1]), active, jumpers, 0, m.arrive, n);
          if (r & 1) {
            if (sp - 1 > 0) save(m, slots[sp - 2], jumpers);  // the value below stays on the stack
          } else if (fresh) {
            m.any = false;
          }
          live = (r & 2) != 0;
          break;
        }
        case Op::JUMP: {
          if (opt) {
            abandoned = staticAbandon = true;
            break;
          }
          Merge& m = merges[B.targetOf[a]];
          std::memcpy(jumpers, active, n);
          if (sp > 0) {
            save(m, slots[sp - 1], jumpers);
          } else {
            if (!m.any) startMerge(m);
            kOrInto(m.arrive, jumpers, n);
          }
          std::memset(active, 0, n);
          live = false;
          break;
        }
        default: throw std::runtime_error("batch VM: unsupported opcode");
      }
      if (abandoned) return;
      pc = next;
    }
  }
};

}  // namespace

std::unique_ptr<BatchPlan> makeBatchPlan(const Program& p, const uint8_t* kinds, size_t nKinds) {
  auto plan = std::make_unique<BatchPlan>();
  plan->kinds.assign(kinds, kinds + nKinds);
  for (int32_t k : plan->kinds) {
    if (k != ColumnKind::NUMBER && k != ColumnKind::BOOL) throw std::runtime_error("invalid column kind");
  }
  for (const Value& c : p.consts) {
    if (c.tag > Tag::FLOAT) throw std::runtime_error("invalid batch program: a constant that is not a number, bool or None");
    if (c.tag == Tag::NONE) plan->optimistic = false;
  }
  const std::vector<int32_t>& code = p.code;
  plan->targetOf.assign(code.size() + 1, -1);
  for (size_t pc = 0; pc < code.size();) {
    int32_t op = code[pc];
    int32_t target = -1;
    switch (op) {
      case Op::RETURN: case Op::CONST: case Op::NAME: case Op::NEG: case Op::POS: case Op::NOT: case Op::BINOP:
        break;
      case Op::COMPARE:
        if (code[pc + 1] > CmpOp::NE) throw std::runtime_error("invalid batch program: in/is comparison");
        break;
      case Op::COMPARE_CHAIN:
        if (code[pc + 1] > CmpOp::NE) throw std::runtime_error("invalid batch program: in/is comparison");
        target = code[pc + 2];
        break;
      case Op::JUMP_IF_FALSE_OR_POP: case Op::JUMP_IF_TRUE_OR_POP: case Op::POP_JUMP_IF_FALSE: case Op::JUMP:
        target = code[pc + 1];
        break;
      case Op::CALL: {
        int32_t fn = code[pc + 1], argc = code[pc + 2];
        // min/max take two or more numbers (one number is a TypeError, as in the scalar VM).
        bool ok = (fn == Fn::min || fn == Fn::max) ? argc >= 1
                  : (fn == Fn::abs || fn == Fn::bool_ || fn == Fn::int_ || fn == Fn::float_ || fn == Fn::round) &&
                        (argc == 1 || (argc == 0 && fn != Fn::abs && fn != Fn::round));
        if (!ok) throw std::runtime_error("invalid batch program: function outside the batch subset");
        break;
      }
      default: throw std::runtime_error("invalid batch program: opcode " + std::to_string(op) + " outside the batch subset");
    }
    if (op == Op::POP_JUMP_IF_FALSE || op == Op::JUMP || (op == Op::BINOP && code[pc + 1] > BinOp::TRUEDIV) ||
        (op == Op::CALL && code[pc + 1] != Fn::bool_)) {
      plan->optimistic = false;
    }
    if (target >= 0 && plan->targetOf[target] < 0) plan->targetOf[target] = plan->nTargets++;
    pc += 1 + OPERAND_COUNT[op];
  }
  return plan;
}

int64_t runBatch(const Program& p, EnvState& env, const Column* cols, size_t nCols, size_t rows, uint8_t* out,
                 int32_t fault[kFaultWordCount]) {
  if (!p.batch) throw std::runtime_error("not a batch program");
  if (nCols < p.batch->kinds.size()) throw std::runtime_error("fewer columns than the program reads");
  for (size_t k = 0; k < p.batch->kinds.size(); k++) {
    if (cols[k].isBool != (p.batch->kinds[k] == ColumnKind::BOOL)) {
      throw std::runtime_error("column " + std::to_string(k) + " has the wrong type for its kind");
    }
    if (cols[k].length < rows) throw std::runtime_error("column " + std::to_string(k) + " is shorter than rows");
  }
  Runner r(p, env, cols, fault);
  bool optimistic = p.batch->optimistic;
  int exactChunks = 0;  // after a chunk abandons its optimistic run, a few run exactly straight away
  for (size_t b = 0; b < rows; b += kChunk) {
    int n = (int)std::min<size_t>(kChunk, rows - b);
    if (optimistic && exactChunks == 0) {
      r.opt = true;
      r.chunk(b, n, out);
      r.opt = false;
      if (!r.abandoned) continue;
      if (r.staticAbandon) optimistic = false;
      exactChunks = 16;
    }
    if (exactChunks > 0) exactChunks--;
    r.chunk(b, n, out);
    if (r.bestRow >= 0) break;
  }
  env.arena.reset();
  return r.bestRow;
}

std::vector<std::string> cpuFeatures() {
  // Process-wide, detected once; never changes afterwards.
  static std::once_flag once;
  static std::vector<std::string> features;
  std::call_once(once, [] {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    features.push_back("sse2");
    if (__builtin_cpu_supports("sse4.2")) features.push_back("sse4.2");
    if (__builtin_cpu_supports("avx2")) features.push_back("avx2");
    if (__builtin_cpu_supports("avx512f")) features.push_back("avx512f");
#endif
  });
  return features;
}

}  // namespace wpipe
