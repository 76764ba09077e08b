// The scalar VM: executes src/expr/bytecode.ts programs over values decoded from the context tape.
// Semantics mirror src/vm/pyops.ts (the reference) and docs/expression-semantics.md.
#include "vm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "batch.h"
#include "pyfmt.h"
#include "unicode.h"

namespace wpipe {

Program::~Program() = default;

namespace {

constexpr double MAX_INT = Limits::MAX_INT;
/** Limits::MAX_INT as an exact integer, for the 128-bit range checks. */
constexpr int64_t kMaxInt = static_cast<int64_t>(Limits::MAX_INT);
static_assert(static_cast<double>(kMaxInt) == Limits::MAX_INT, "Limits::MAX_INT must be an exact integer");
using U16View = std::u16string_view;

inline U16View view(const Str* s) { return U16View(s->u, s->len); }
inline bool isSeq(int t) { return t == Tag::LIST || t == Tag::TUPLE; }

[[noreturn]] void typeError(int32_t reason, int32_t a = -1, int32_t b = -1) { fail(ErrorKind::TypeError, reason, a, b); }

inline bool isHigh(char16_t c) { return (c & 0xFC00) == 0xD800; }
inline bool isLow(char16_t c) { return (c & 0xFC00) == 0xDC00; }

/** Reads the code point at unit i and advances i. */
inline uint32_t nextCp(const char16_t* u, uint32_t len, uint32_t& i) {
  char16_t c = u[i++];
  if (isHigh(c) && i < len && isLow(u[i])) return 0x10000u + (((uint32_t)c - 0xD800u) << 10) + ((uint32_t)u[i++] - 0xDC00u);
  return c;
}
/** Reads the code point ending at unit j (exclusive) and moves j back. */
inline uint32_t prevCp(const char16_t* u, uint32_t& j) {
  char16_t c = u[--j];
  if (isLow(c) && j > 0 && isHigh(u[j - 1])) {
    char16_t h = u[--j];
    return 0x10000u + (((uint32_t)h - 0xD800u) << 10) + ((uint32_t)c - 0xDC00u);
  }
  return c;
}
inline void putCp(std::u16string& sb, uint32_t cp) {
  if (cp >= 0x10000) {
    cp -= 0x10000;
    sb += (char16_t)(0xD800 + (cp >> 10));
    sb += (char16_t)(0xDC00 + (cp & 0x3FF));
  } else {
    sb += (char16_t)cp;
  }
}

/** Unit offset of each code point boundary (cps + 1 entries). */
void cpOffsets(const Str* s, std::vector<uint32_t>& off) {
  off.clear();
  off.reserve(s->cps + 1);
  uint32_t i = 0;
  while (i < s->len) {
    off.push_back(i);
    nextCp(s->u, s->len, i);
  }
  off.push_back(s->len);
}

/** The code point at unit i of u[0..len): a whole surrogate pair when i is either half of one. */
static int32_t codePointAt(const char16_t* u, uint32_t len, uint32_t i) {
  int32_t c = u[i];
  if (c >= 0xD800 && c <= 0xDBFF && i + 1 < len) {
    int32_t d = u[i + 1];
    if (d >= 0xDC00 && d <= 0xDFFF) return ((c - 0xD800) << 10) + (d - 0xDC00) + 0x10000;
  } else if (c >= 0xDC00 && c <= 0xDFFF && i > 0) {
    int32_t h = u[i - 1];
    if (h >= 0xD800 && h <= 0xDBFF) return ((h - 0xD800) << 10) + (c - 0xDC00) + 0x10000;
  }
  return c;
}

/** Code point order (lone surrogates are code points of their own, as in Python). */
int compareStr(const Str* a, const Str* b) {
  uint32_t n = std::min(a->len, b->len);
  for (uint32_t i = 0; i < n; i++) {
    int32_t x = a->u[i], y = b->u[i];
    if (x != y) {
      if (x >= 0xD800 || y >= 0xD800) {
        x = codePointAt(a->u, a->len, i);
        y = codePointAt(b->u, b->len, i);
      }
      return x < y ? -1 : 1;
    }
  }
  return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

inline bool strEq(const Str* a, const Str* b) {
  return a->len == b->len && (a->len == 0 || std::memcmp(a->u, b->u, (size_t)a->len * 2) == 0);
}

const Value* dictFind(const Value& d, const Str* key) {
  for (uint32_t i = 0; i < d.n; i++) {
    if (strEq(d.entries[i].key, key)) return &d.entries[i].val;
  }
  return nullptr;
}

/**
 * Element steps left in one evaluation (Limits.MAX_WORK), charged where src/vm/pyops.ts charges:
 * items compared, copied or visited, characters scanned by string functions and repr.
 */
struct Work {
  int64_t left = Limits::MAX_WORK;
  void spend(double n) {
    left -= (int64_t)n;
    if (left < 0) fail(ErrorKind::LimitError, Reason::WORK);
  }
};

inline void tooDeep(int depth) {
  if (depth > Limits::MAX_DEPTH) fail(ErrorKind::LimitError, Reason::DEPTH);
}

/** The same container (a shared reference, as in `[l] * 2`): equal without looking inside. */
inline bool sameObject(const Value& a, const Value& b) {
  return a.tag == b.tag && a.n == b.n && a.items == b.items;
}

bool truthy(const Value& v) {
  switch (v.tag) {
    case Tag::NONE: case Tag::FALSE: case Tag::MISSING: return false;
    case Tag::TRUE: return true;
    case Tag::INT: case Tag::FLOAT: return v.num != 0;  // NaN is true
    case Tag::STR: return v.s->len > 0;
    case Tag::LIST: case Tag::TUPLE: case Tag::DICT: return v.n > 0;
    default: return true;
  }
}

bool equals(Work& w, const Value& a, const Value& b, int depth = 0) {
  if (isNum(a.tag)) return isNum(b.tag) && a.num == b.num;
  if (a.tag != b.tag) return false;
  switch (a.tag) {
    case Tag::NONE: return true;
    case Tag::STR: return strEq(a.s, b.s);
    case Tag::LIST: case Tag::TUPLE:
      if (sameObject(a, b)) return true;
      if (a.n != b.n) return false;
      tooDeep(depth);
      w.spend(a.n);
      for (uint32_t i = 0; i < a.n; i++) if (!equals(w, a.items[i], b.items[i], depth + 1)) return false;
      return true;
    case Tag::DICT:
      if (sameObject(a, b)) return true;
      if (a.n != b.n) return false;
      tooDeep(depth);
      w.spend(a.n);
      for (uint32_t i = 0; i < a.n; i++) {
        const Value* o = dictFind(b, a.entries[i].key);
        if (!o || !equals(w, a.entries[i].val, *o, depth + 1)) return false;
      }
      return true;
    case Tag::OPAQUE: return strEq(a.s, b.s);  // "TypeName#id": the same id is the same host object
    default: return false;
  }
}

inline bool orderResult(int op, int c) {
  switch (op) {
    case CmpOp::LT: return c < 0;
    case CmpOp::LE: return c <= 0;
    case CmpOp::GT: return c > 0;
    default: return c >= 0;
  }
}

bool order(Work& w, int op, const Value& a, const Value& b, int depth = 0) {
  if (isNum(a.tag) && isNum(b.tag)) {
    double x = a.num, y = b.num;
    switch (op) {
      case CmpOp::LT: return x < y;
      case CmpOp::LE: return x <= y;
      case CmpOp::GT: return x > y;
      default: return x >= y;
    }
  }
  if (a.tag == Tag::STR && b.tag == Tag::STR) return orderResult(op, compareStr(a.s, b.s));
  if (isSeq(a.tag) && a.tag == b.tag) {
    uint32_t n = std::min(a.n, b.n);
    tooDeep(depth);
    for (uint32_t i = 0; i < n; i++) {
      w.spend(1);
      if (!equals(w, a.items[i], b.items[i], depth + 1)) return order(w, op, a.items[i], b.items[i], depth + 1);
    }
    return orderResult(op, a.n < b.n ? -1 : a.n > b.n ? 1 : 0);
  }
  typeError(Reason::BAD_OPERANDS, a.tag, b.tag);
}

bool contains(Work& w, const Value& container, const Value& x) {
  switch (container.tag) {
    case Tag::STR:
      if (x.tag != Tag::STR) typeError(Reason::BAD_OPERANDS, x.tag, container.tag);
      w.spend(container.s->len);
      return view(container.s).find(view(x.s)) != U16View::npos;
    case Tag::LIST: case Tag::TUPLE:
      for (uint32_t i = 0; i < container.n; i++) {
        w.spend(1);
        if (equals(w, container.items[i], x)) return true;
      }
      return false;
    case Tag::DICT:
      if (x.tag == Tag::STR) return dictFind(container, x.s) != nullptr;
      if (x.tag == Tag::LIST || x.tag == Tag::DICT) typeError(Reason::UNHASHABLE, x.tag);
      return false;
    default: typeError(Reason::NOT_ITERABLE, x.tag, container.tag);
  }
}

inline bool isSame(const Value& a, const Value& b) {
  // The parser only allows `is None/True/False`; numbers compare like JS ===.
  if (a.tag != b.tag) return false;
  switch (a.tag) {
    case Tag::NONE: case Tag::TRUE: case Tag::FALSE: return true;
    case Tag::INT: case Tag::FLOAT: return a.num == b.num;
    default: return false;
  }
}

/** Index value of an int or bool, or false. */
inline bool indexValue(const Value& v, int64_t& out) {
  if (!isIntLike(v.tag)) return false;
  out = (int64_t)v.num;
  return true;
}

// ------------------------------------------------------------------ numbers

inline double floatMod(double a, double b) {
  double mod = std::fmod(a, b);
  if (mod != 0) {
    if ((b < 0) != (mod < 0)) mod += b;
  } else {
    mod = std::copysign(0.0, b);
  }
  return mod;
}

inline double floatFloorDiv(double a, double b) {
  double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0) {
    if ((b < 0) != (mod < 0)) div -= 1.0;
  }
  double floordiv;
  if (div != 0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, a / b);
  }
  return floordiv;
}

inline int64_t mulCheck(int64_t x, int64_t y) {
  __int128 p = (__int128)x * y;
  if (p > (__int128)kMaxInt || p < -(__int128)kMaxInt) fail(ErrorKind::OverflowError, Reason::INT_RANGE);
  return (int64_t)p;
}

int64_t intPow(int64_t base, int64_t e) {
  int64_t result = 1;
  while (e > 0) {
    if (e & 1) result = mulCheck(result, base);
    e >>= 1;
    if (e > 0) base = mulCheck(base, base);
  }
  return result;
}

Value floatPow(double a, double b) {
  // CPython's float_pow handles an infinite exponent first: 0.0 ** -inf is inf, not an error.
  if (a == 0 && b < 0 && !std::isinf(b)) fail(ErrorKind::ZeroDivisionError, Reason::POW_ZERO_NEG, Tag::FLOAT, Tag::FLOAT);
  if (a < 0 && std::isfinite(a) && std::isfinite(b) && b != std::floor(b)) fail(ErrorKind::ValueError, Reason::COMPLEX_RESULT);
  // C pow follows C99 Annex F, as CPython's float_pow does (pow(1, nan) == 1, pow(-1, inf) == 1).
  double r = std::pow(a, b);
  if (!std::isfinite(r) && std::isfinite(a) && std::isfinite(b) && !std::isnan(r)) {
    fail(ErrorKind::OverflowError, Reason::FLOAT_RANGE);
  }
  return mkFloat(r);
}

Value numericBinop(int op, const Value& a, const Value& b) {
  double x = a.num, y = b.num;
  bool ints = isIntLike(a.tag) && isIntLike(b.tag);
  switch (op) {
    case BinOp::ADD: return ints ? mkInt(x + y) : mkFloat(x + y);
    case BinOp::SUB: return ints ? mkInt(x - y) : mkFloat(x - y);
    case BinOp::MUL: return ints ? mkInt(x * y) : mkFloat(x * y);
    case BinOp::TRUEDIV:
      if (y == 0) fail(ErrorKind::ZeroDivisionError, Reason::DIV_ZERO, a.tag, b.tag);
      return mkFloat(x / y);
    case BinOp::FLOORDIV:
      if (y == 0) fail(ErrorKind::ZeroDivisionError, Reason::DIV_ZERO, a.tag, b.tag);
      if (ints) {
        int64_t p = (int64_t)x, q = (int64_t)y;
        int64_t d = p / q;
        if ((p % q != 0) && ((p < 0) != (q < 0))) d -= 1;
        return mkInt((double)d);
      }
      return mkFloat(floatFloorDiv(x, y));
    case BinOp::MOD:
      if (y == 0) fail(ErrorKind::ZeroDivisionError, Reason::DIV_ZERO, a.tag, b.tag);
      if (ints) {
        int64_t p = (int64_t)x, q = (int64_t)y;
        int64_t r = p % q;
        if (r != 0 && ((r < 0) != (q < 0))) r += q;
        return mkInt((double)r);
      }
      return mkFloat(floatMod(x, y));
    case BinOp::POW:
      if (ints && y >= 0) return mkInt((double)intPow((int64_t)x, (int64_t)y));
      return floatPow(x, y);
    default: throw std::runtime_error("bad BINOP operand");
  }
}

// ------------------------------------------------------------------ the machine

struct Machine {
  const Program& P;
  EnvState& E;
  Arena& A;
  Work W;

  Machine(const Program& p, EnvState& e) : P(p), E(e), A(e.arena) {}

  const Str* sbStr() { return makeStr(A, E.sb.data(), (uint32_t)E.sb.size()); }
  void sbCheck() { checkSize((double)E.sb.size()); }

  Value oneChar(const Str* s, uint32_t unitStart, uint32_t unitEnd) {
    return mkStr(makeStr(A, s->u + unitStart, unitEnd - unitStart));
  }

  // ---------------------------------------------------------- arithmetic on sequences
  Value repeat(const Value& seq, double count) {
    if (count < 0) count = 0;
    if (seq.tag == Tag::STR) {
      const Str* s = seq.s;
      checkSize((double)s->len * count);
      uint32_t n = s->len == 0 ? 0 : (uint32_t)count;
      char16_t* d = allocStrUnits(A, s->len * n);
      for (uint32_t i = 0; i < n; i++) std::memcpy(d + (size_t)i * s->len, s->u, (size_t)s->len * 2);
      return mkStr(finishStr(A, d, s->len * n));
    }
    checkSize((double)seq.n * count);
    W.spend((double)seq.n * count);
    uint32_t n = seq.n == 0 ? 0 : (uint32_t)count;
    Value* items = A.make<Value>((size_t)seq.n * n);
    for (uint32_t i = 0; i < n; i++) std::memcpy(items + (size_t)i * seq.n, seq.items, sizeof(Value) * seq.n);
    return mkSeq(seq.tag, items, seq.n * n);
  }

  Value binop(int op, const Value& a, const Value& b) {
    if (isNum(a.tag) && isNum(b.tag)) return numericBinop(op, a, b);
    if (op == BinOp::ADD) {
      if (a.tag == Tag::STR && b.tag == Tag::STR) {
        checkSize((double)a.s->len + b.s->len);
        uint32_t n = a.s->len + b.s->len;
        char16_t* d = allocStrUnits(A, n);
        if (a.s->len) std::memcpy(d, a.s->u, (size_t)a.s->len * 2);
        if (b.s->len) std::memcpy(d + a.s->len, b.s->u, (size_t)b.s->len * 2);
        return mkStr(finishStr(A, d, n));
      }
      if (isSeq(a.tag) && a.tag == b.tag) {
        checkSize((double)a.n + b.n);
        W.spend((double)a.n + b.n);
        Value* items = A.make<Value>((size_t)a.n + b.n);
        std::memcpy(items, a.items, sizeof(Value) * a.n);
        std::memcpy(items + a.n, b.items, sizeof(Value) * b.n);
        return mkSeq(a.tag, items, a.n + b.n);
      }
    } else if (op == BinOp::MUL) {
      const Value* seq = &a;
      const Value* n = &b;
      if (isIntLike(a.tag) && !isIntLike(b.tag)) { seq = &b; n = &a; }
      if (isIntLike(n->tag) && (seq->tag == Tag::STR || isSeq(seq->tag))) return repeat(*seq, n->num);
    }
    typeError(Reason::BAD_OPERANDS, a.tag, b.tag);
  }

  // ---------------------------------------------------------- subscription
  Value getItem(const Value& obj, const Value& key) {
    if (obj.tag == Tag::STR || isSeq(obj.tag)) {
      int64_t i;
      if (!indexValue(key, i)) typeError(Reason::BAD_INDEX_TYPE, obj.tag, key.tag);
      if (obj.tag == Tag::STR) {
        const Str* s = obj.s;
        int64_t n = s->cps;
        int64_t j = i < 0 ? i + n : i;
        if (j < 0 || j >= n) fail(ErrorKind::IndexError, Reason::INDEX_RANGE, obj.tag);
        if (s->cps == s->len) return oneChar(s, (uint32_t)j, (uint32_t)j + 1);
        uint32_t at = 0;
        for (int64_t k = 0; k < j; k++) nextCp(s->u, s->len, at);
        uint32_t end = at;
        nextCp(s->u, s->len, end);
        return oneChar(s, at, end);
      }
      int64_t n = obj.n;
      int64_t j = i < 0 ? i + n : i;
      if (j < 0 || j >= n) fail(ErrorKind::IndexError, Reason::INDEX_RANGE, obj.tag);
      return obj.items[j];
    }
    if (obj.tag == Tag::DICT) {
      if (key.tag == Tag::STR) {
        const Value* v = dictFind(obj, key.s);
        if (v) return *v;
        fail(ErrorKind::KeyError, Reason::KEY_MISSING, Tag::DICT, Tag::STR);
      }
      if (key.tag == Tag::LIST || key.tag == Tag::DICT) typeError(Reason::UNHASHABLE, key.tag);
      fail(ErrorKind::KeyError, Reason::KEY_MISSING, Tag::DICT, key.tag);
    }
    typeError(Reason::NOT_SUBSCRIPTABLE, obj.tag);
  }

  static bool sliceBound(const Value& v, const Value& obj, int64_t& out) {
    if (v.tag == Tag::NONE) return false;
    if (!indexValue(v, out)) typeError(Reason::BAD_INDEX_TYPE, obj.tag, v.tag);
    return true;
  }

  Value getSlice(const Value& obj, const Value* lo, const Value* hi, const Value* st) {
    W.spend(obj.tag == Tag::STR ? obj.s->len : isSeq(obj.tag) ? obj.n : 0);
    bool isStr = obj.tag == Tag::STR;
    if (!isStr && !isSeq(obj.tag)) typeError(Reason::NOT_SUBSCRIPTABLE, obj.tag);
    int64_t a = 0, b = 0, c = 1;
    bool hasA = lo && sliceBound(*lo, obj, a);
    bool hasB = hi && sliceBound(*hi, obj, b);
    bool hasC = st && sliceBound(*st, obj, c);
    if (!hasC) c = 1;
    if (c == 0) fail(ErrorKind::ValueError, Reason::SLICE_STEP_ZERO);
    int64_t n = isStr ? obj.s->cps : obj.n;
    int64_t start, stop;
    if (c > 0) {
      start = !hasA ? 0 : a < 0 ? std::max<int64_t>(0, a + n) : std::min(a, n);
      stop = !hasB ? n : b < 0 ? std::max<int64_t>(0, b + n) : std::min(b, n);
    } else {
      start = !hasA ? n - 1 : a < 0 ? std::max<int64_t>(-1, a + n) : std::min(a, n - 1);
      stop = !hasB ? -1 : b < 0 ? std::max<int64_t>(-1, b + n) : std::min(b, n - 1);
    }
    int64_t length = 0;
    if (c > 0 && start < stop) length = (stop - start - 1) / c + 1;
    else if (c < 0 && stop < start) length = (start - stop - 1) / (-c) + 1;
    if (isStr) {
      const Str* s = obj.s;
      if (s->cps == s->len) {
        if (c == 1) return mkStr(makeStr(A, s->u + start, (uint32_t)length));
        char16_t* d = allocStrUnits(A, (uint32_t)length);
        for (int64_t k = 0, i = start; k < length; k++, i += c) d[k] = s->u[i];
        return mkStr(finishStr(A, d, (uint32_t)length));
      }
      cpOffsets(s, E.cps);
      const std::vector<uint32_t>& off = E.cps;
      E.sb.clear();
      for (int64_t k = 0, i = start; k < length; k++, i += c) E.sb.append(s->u + off[i], off[i + 1] - off[i]);
      return mkStr(sbStr());
    }
    Value* items = A.make<Value>((size_t)length);
    for (int64_t k = 0, i = start; k < length; k++, i += c) items[k] = obj.items[i];
    return mkSeq(obj.tag, items, (uint32_t)length);
  }

  // ---------------------------------------------------------- str() and repr()
  void reprStr(std::u16string& o, const Str* s) {
    W.spend(s->len);
    U16View v = view(s);
    char16_t q = (v.find(u'\'') != U16View::npos && v.find(u'"') == U16View::npos) ? u'"' : u'\'';
    o += q;
    static constexpr char hex[] = "0123456789abcdef";
    for (char16_t c : v) {
      if (c == u'\\') o += u"\\\\";
      else if (c == q) { o += u'\\'; o += q; }
      else if (c == u'\n') o += u"\\n";
      else if (c == u'\r') o += u"\\r";
      else if (c == u'\t') o += u"\\t";
      else if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad) {
        o += u"\\x";
        o += (char16_t)hex[c >> 4];
        o += (char16_t)hex[c & 15];
      } else {
        o += c;
      }
    }
    o += q;
  }

  void appendAscii(std::u16string& o, const std::string& s) {
    for (char c : s) o += (char16_t)(unsigned char)c;
  }

  void strInto(std::u16string& o, const Value& v, int depth, bool asRepr) {
    tooDeep(depth);
    switch (v.tag) {
      case Tag::STR:
        if (asRepr) reprStr(o, v.s);
        else o.append(v.s->u, v.s->len);
        return;
      case Tag::NONE: o += u"None"; return;
      case Tag::TRUE: o += u"True"; return;
      case Tag::FALSE: o += u"False"; return;
      case Tag::INT: {
        std::string t;
        appendIntText(t, v.num);
        appendAscii(o, t);
        return;
      }
      case Tag::FLOAT: {
        std::string t;
        appendFloatRepr(t, v.num);
        appendAscii(o, t);
        return;
      }
      case Tag::LIST: case Tag::TUPLE: {
        bool list = v.tag == Tag::LIST;
        if (list || v.n != 1) W.spend(v.n);  // a 1-tuple is shown without the join
        o += list ? u'[' : u'(';
        size_t base = o.size();
        for (uint32_t i = 0; i < v.n; i++) {
          if (i > 0) o += u", ";
          strInto(o, v.items[i], depth + 1, true);
          checkSize((double)(o.size() - base));
        }
        if (!list && v.n == 1) o += u',';
        o += list ? u']' : u')';
        return;
      }
      case Tag::DICT: {
        W.spend(v.n);
        o += u'{';
        size_t base = o.size() - 1;
        for (uint32_t i = 0; i < v.n; i++) {
          if (i > 0) o += u", ";
          reprStr(o, v.entries[i].key);
          o += u": ";
          strInto(o, v.entries[i].val, depth + 1, true);
          checkSize((double)(o.size() - base));
        }
        o += u'}';
        return;
      }
      default: typeError(Reason::BAD_ARGUMENT, v.tag);
    }
  }

  Value toStr(const Value& v) {
    if (v.tag == Tag::STR) return v;
    E.sb.clear();
    strInto(E.sb, v, 0, false);
    return mkStr(sbStr());
  }

  // ---------------------------------------------------------- iteration
  /** Items of an iterable (list, tuple, str → its characters, dict → its keys). */
  const Value* iterate(const Value& v, uint32_t& n) {
    switch (v.tag) {
      case Tag::LIST: case Tag::TUPLE: W.spend(v.n); n = v.n; return v.items;
      case Tag::STR: {
        const Str* s = v.s;
        W.spend(s->len);
        n = s->cps;
        Value* items = A.make<Value>(n);
        uint32_t i = 0, k = 0;
        while (i < s->len) {
          uint32_t at = i;
          nextCp(s->u, s->len, i);
          Str* c = A.make<Str>(1);
          c->u = s->u + at;
          c->len = i - at;
          c->cps = 1;
          items[k++] = mkStr(c);
        }
        return items;
      }
      case Tag::DICT: {
        n = v.n;
        Value* items = A.make<Value>(n);
        for (uint32_t i = 0; i < n; i++) items[i] = mkStr(v.entries[i].key);
        return items;
      }
      default: typeError(Reason::NOT_ITERABLE, v.tag);
    }
  }

  static void argCount(int argc, int lo, int hi) {
    if (argc < lo || argc > hi) typeError(Reason::ARG_COUNT);
  }

  Value minMax(const Value* args, int argc, bool isMax) {
    if (argc == 0) typeError(Reason::ARG_COUNT);
    uint32_t n;
    const Value* seq;
    if (argc == 1) {
      if (args[0].tag == Tag::STR) {
        // Characters compared by code point without materializing each one.
        const Str* s = args[0].s;
        W.spend(s->len);
        if (s->len == 0) fail(ErrorKind::ValueError, Reason::EMPTY_SEQUENCE);
        uint32_t i = 0, bestAt = 0, bestEnd = 0;
        uint32_t best = nextCp(s->u, s->len, i);
        bestEnd = i;
        while (i < s->len) {
          uint32_t at = i;
          uint32_t c = nextCp(s->u, s->len, i);
          if (isMax ? c > best : c < best) { best = c; bestAt = at; bestEnd = i; }
        }
        return oneChar(s, bestAt, bestEnd);
      }
      seq = iterate(args[0], n);
    } else {
      seq = args;
      n = (uint32_t)argc;
    }
    if (n == 0) fail(ErrorKind::ValueError, Reason::EMPTY_SEQUENCE);
    const Value* best = &seq[0];
    for (uint32_t i = 1; i < n; i++) {
      if (order(W, isMax ? CmpOp::GT : CmpOp::LT, seq[i], *best)) best = &seq[i];
    }
    return *best;
  }

  /** Round half to even, keeping the sign of a zero (round(-0.4, 0) is -0.0, as in CPython). */
  static double roundHalfEven(double y) { return std::nearbyint(y); }

  Value round(const Value* args, int argc) {
    argCount(argc, 1, 2);
    const Value& x = args[0];
    if (!isNum(x.tag)) typeError(Reason::BAD_ARGUMENT, x.tag);
    double value = x.num;
    if (argc == 1 || args[1].tag == Tag::NONE) {
      if (isIntLike(x.tag)) return mkInt(value);
      if (std::isnan(value)) fail(ErrorKind::ValueError, Reason::NAN_TO_INT);
      if (std::isinf(value)) fail(ErrorKind::OverflowError, Reason::INF_TO_INT);
      return mkInt(roundHalfEven(value));
    }
    int64_t n;
    if (!indexValue(args[1], n)) typeError(Reason::BAD_ARGUMENT, x.tag, args[1].tag);
    if (isIntLike(x.tag)) {
      if (n >= 0) return mkInt(value);
      // Exact, in 128 bits: round(9e15, -16) is 10**16, an OverflowError here as in the spec.
      if (n < -38) return mkInt(0);  // |x| < 2**53 is below half of 10**39
      __int128 p = 1;
      for (int64_t k = 0; k < -n; k++) p *= 10;
      __int128 v = (__int128)(int64_t)value;
      __int128 r = v % p;
      if (r < 0) r += p;
      __int128 q = (v - r) / p;  // floor(v / p)
      __int128 twice = 2 * r;
      if (twice > p || (twice == p && (q & 1) != 0)) q += 1;
      __int128 res = q * p;
      if (res > (__int128)kMaxInt || res < -(__int128)kMaxInt) {
        fail(ErrorKind::OverflowError, Reason::INT_RANGE);
      }
      return mkInt((double)(int64_t)res);
    }
    if (!std::isfinite(value) || value == 0) return mkFloat(value);
    return mkFloat(roundDecimal(value, n));
  }

  /** Python whitespace strip bounds. */
  static void stripSpaceBounds(const Str* s, uint32_t& i, uint32_t& j) {
    i = 0;
    j = s->len;
    while (i < j && uni::isSpace(s->u[i])) i++;
    while (j > i && uni::isSpace(s->u[j - 1])) j--;
  }

  Value call(int fn, const Value* args, int argc) {
    switch (fn) {
      case Fn::len: {
        argCount(argc, 1, 1);
        const Value& v = args[0];
        if (v.tag == Tag::STR) {
          W.spend(v.s->len);
          return mkInt(v.s->cps);
        }
        if (isSeq(v.tag) || v.tag == Tag::DICT) return mkInt(v.n);
        typeError(Reason::BAD_ARGUMENT, v.tag);
      }
      case Fn::abs: {
        argCount(argc, 1, 1);
        const Value& v = args[0];
        if (!isNum(v.tag)) typeError(Reason::BAD_ARGUMENT, v.tag);
        return isIntLike(v.tag) ? mkInt(std::fabs(v.num)) : mkFloat(std::fabs(v.num));
      }
      case Fn::min: return minMax(args, argc, false);
      case Fn::max: return minMax(args, argc, true);
      case Fn::round: return round(args, argc);
      case Fn::int_: {
        argCount(argc, 0, 1);
        if (argc == 0) return mkInt(0);
        const Value& v = args[0];
        if (v.tag == Tag::STR) {
          uint32_t i, j;
          stripSpaceBounds(v.s, i, j);
          double out;
          switch (parseIntLiteral(v.s->u + i, j - i, out)) {
            case ParseStatus::OK: return mkInt(out);
            case ParseStatus::OVERFLOW: fail(ErrorKind::OverflowError, Reason::INT_RANGE);
            default: fail(ErrorKind::ValueError, Reason::INVALID_INT_LITERAL);
          }
        }
        if (!isNum(v.tag)) typeError(Reason::BAD_ARGUMENT, v.tag);
        if (isIntLike(v.tag)) return mkInt(v.num);
        if (std::isnan(v.num)) fail(ErrorKind::ValueError, Reason::NAN_TO_INT);
        if (std::isinf(v.num)) fail(ErrorKind::OverflowError, Reason::INF_TO_INT);
        return mkInt(std::trunc(v.num));
      }
      case Fn::float_: {
        argCount(argc, 0, 1);
        if (argc == 0) return mkFloat(0.0);
        const Value& v = args[0];
        if (v.tag == Tag::STR) {
          uint32_t i, j;
          stripSpaceBounds(v.s, i, j);
          double out;
          if (parseFloatLiteral(v.s->u + i, j - i, out) != ParseStatus::OK) {
            fail(ErrorKind::ValueError, Reason::INVALID_FLOAT_LITERAL);
          }
          return mkFloat(out);
        }
        if (!isNum(v.tag)) typeError(Reason::BAD_ARGUMENT, v.tag);
        return mkFloat(v.num);
      }
      case Fn::str:
        argCount(argc, 0, 1);
        if (argc == 0) return mkStr(makeStr(A, nullptr, 0));
        return toStr(args[0]);
      case Fn::bool_:
        argCount(argc, 0, 1);
        return mkBool(argc == 1 && truthy(args[0]));
      case Fn::sum: {
        argCount(argc, 1, 2);
        Value acc = argc == 2 ? args[1] : mkInt(0);
        if (acc.tag == Tag::STR) typeError(Reason::SUM_STRINGS);
        uint32_t n;
        const Value* seq = iterate(args[0], n);
        for (uint32_t i = 0; i < n; i++) acc = binop(BinOp::ADD, acc, seq[i]);
        return acc;
      }
      case Fn::any: case Fn::all: {
        argCount(argc, 1, 1);
        bool want = fn == Fn::any;
        const Value& v = args[0];
        if (v.tag == Tag::STR) {  // characters are never empty
          W.spend(v.s->len);
          return mkBool(want ? v.s->len > 0 : true);
        }
        uint32_t n;
        const Value* seq = iterate(v, n);
        for (uint32_t i = 0; i < n; i++) if (truthy(seq[i]) == want) return mkBool(want);
        return mkBool(!want);
      }
      default: throw std::runtime_error("bad CALL function");
    }
  }

  // ---------------------------------------------------------- string methods
  Value changeCase(const Str* s, bool toUpper) {
    std::u16string& sb = E.sb;
    sb.clear();
    uint32_t i = 0;
    uint32_t m[3];
    while (i < s->len) {
      char16_t c = s->u[i];
      if (c < 0x80) {
        if (toUpper) sb += (c >= 'a' && c <= 'z') ? (char16_t)(c - 32) : c;
        else sb += (c >= 'A' && c <= 'Z') ? (char16_t)(c + 32) : c;
        i++;
        continue;
      }
      uint32_t at = i;
      uint32_t cp = nextCp(s->u, s->len, i);
      if (!toUpper && cp == 0x3A3) {
        putCp(sb, finalSigma(s, at, i) ? 0x3C2 : 0x3C3);
      } else {
        int k = toUpper ? uni::upper(cp, m) : uni::lower(cp, m);
        for (int t = 0; t < k; t++) putCp(sb, m[t]);
      }
      if (sb.size() > Limits::MAX_VALUE_SIZE) sbCheck();
    }
    sbCheck();
    return mkStr(sbStr());
  }

  /** CPython's handle_capital_sigma: Σ at [at, end) is final when preceded by a cased letter
   * (skipping case-ignorables) and not followed by one. */
  static bool finalSigma(const Str* s, uint32_t at, uint32_t end) {
    uint32_t j = at;
    bool found = false;
    while (j > 0) {
      uint32_t c = prevCp(s->u, j);
      if (!uni::caseIgnorable(c)) {
        found = uni::casedNotIgnorable(c);
        break;
      }
    }
    if (!found) return false;
    uint32_t k = end;
    while (k < s->len) {
      uint32_t c = nextCp(s->u, s->len, k);
      if (!uni::caseIgnorable(c)) return !uni::casedNotIgnorable(c);
    }
    return true;
  }

  Value strip(const Str* s, const Value* chars) {
    if (!chars || chars->tag == Tag::NONE) {
      uint32_t i, j;
      stripSpaceBounds(s, i, j);
      return mkStr(makeStr(A, s->u + i, j - i));
    }
    if (chars->tag != Tag::STR) typeError(Reason::BAD_ARGUMENT, Tag::STR, chars->tag);
    const Str* set = chars->s;
    auto inSet = [&](uint32_t cp) {
      uint32_t k = 0;
      while (k < set->len) if (nextCp(set->u, set->len, k) == cp) return true;
      return false;
    };
    uint32_t i = 0, j = s->len;
    while (i < j) {
      uint32_t at = i;
      if (!inSet(nextCp(s->u, j, i))) { i = at; break; }
    }
    while (j > i) {
      uint32_t at = j;
      uint32_t cp = prevCp(s->u, j);
      if (j < i || !inSet(cp)) { j = at; break; }
    }
    return mkStr(makeStr(A, s->u + i, j - i));
  }

  Value affix(const Str* s, const Value& arg, bool start) {
    auto test = [&](const Value& p) {
      if (p.tag != Tag::STR) typeError(Reason::BAD_ARGUMENT, Tag::STR, p.tag);
      const Str* q = p.s;
      if (q->len > s->len) return false;
      const char16_t* from = start ? s->u : s->u + (s->len - q->len);
      return q->len == 0 || std::memcmp(from, q->u, (size_t)q->len * 2) == 0;
    };
    if (arg.tag == Tag::TUPLE) {
      for (uint32_t i = 0; i < arg.n; i++) if (test(arg.items[i])) return mkBool(true);
      return mkBool(false);
    }
    return mkBool(test(arg));
  }

  Value replace(const Str* s, const Str* old, const Str* repl, int64_t count) {
    std::u16string& sb = E.sb;
    sb.clear();
    if (count < 0) count = INT64_MAX;
    if (old->len == 0) {
      int64_t slots = std::min<int64_t>(count, (int64_t)s->cps + 1);
      checkSize((double)s->len + (double)slots * repl->len);
      uint32_t i = 0;
      int64_t k = 0;
      while (true) {
        if (k < slots) sb.append(repl->u, repl->len);
        k++;
        if (i >= s->len) break;
        uint32_t at = i;
        nextCp(s->u, s->len, i);
        sb.append(s->u + at, i - at);
      }
      return mkStr(sbStr());
    }
    U16View sv = view(s), ov = view(old);
    size_t from = 0;
    int64_t done = 0;
    while (done < count) {
      size_t at = sv.find(ov, from);
      if (at == U16View::npos) break;
      sb.append(s->u + from, at - from);
      sb.append(repl->u, repl->len);
      sbCheck();
      from = at + old->len;
      done++;
    }
    sb.append(s->u + from, s->len - from);
    sbCheck();
    return mkStr(sbStr());
  }

  Value split(const Str* s, const Value* sep, int64_t maxsplit) {
    // Spans first (in the code point scratch as pairs), then one list allocation.
    std::vector<uint32_t>& spans = E.cps;
    spans.clear();
    uint32_t n = s->len;
    const char16_t* u = s->u;
    if (!sep || sep->tag == Tag::NONE) {
      uint32_t i = 0;
      while (true) {
        while (i < n && uni::isSpace(u[i])) i++;
        if (i >= n) break;
        if (maxsplit >= 0 && (int64_t)(spans.size() / 2) >= maxsplit) {
          // CPython keeps the remainder's trailing whitespace: '  a b  '.split(None, 1) == ['a', 'b  ']
          spans.push_back(i);
          spans.push_back(n);
          break;
        }
        uint32_t j = i;
        while (j < n && !uni::isSpace(u[j])) j++;
        spans.push_back(i);
        spans.push_back(j);
        i = j;
      }
    } else {
      if (sep->tag != Tag::STR) typeError(Reason::BAD_ARGUMENT, Tag::STR, sep->tag);
      const Str* p = sep->s;
      if (p->len == 0) fail(ErrorKind::ValueError, Reason::EMPTY_SEPARATOR);
      U16View sv = view(s), pv = view(p);
      size_t from = 0;
      while (maxsplit < 0 || (int64_t)(spans.size() / 2) < maxsplit) {
        size_t at = sv.find(pv, from);
        if (at == U16View::npos) break;
        spans.push_back((uint32_t)from);
        spans.push_back((uint32_t)at);
        from = at + p->len;
      }
      spans.push_back((uint32_t)from);
      spans.push_back(n);
    }
    uint32_t count = (uint32_t)(spans.size() / 2);
    checkSize(count);  // more than MAX_VALUE_SIZE pieces is a LimitError
    Value* items = A.make<Value>(count);
    for (uint32_t k = 0; k < count; k++) {
      // Pieces share the receiver's units (values are immutable).
      Str* piece = A.make<Str>(1);
      piece->u = u + spans[2 * k];
      piece->len = spans[2 * k + 1] - spans[2 * k];
      piece->cps = countCodePoints(piece->u, piece->len);
      items[k] = mkStr(piece);
    }
    return mkSeq(Tag::LIST, items, count);
  }

  static int64_t intArg(const Value& v) {
    int64_t i;
    if (!indexValue(v, i)) typeError(Reason::BAD_ARGUMENT, Tag::STR, v.tag);
    return i;
  }
  static const Str* strArg(const Value& v) {
    if (v.tag != Tag::STR) typeError(Reason::BAD_ARGUMENT, Tag::STR, v.tag);
    return v.s;
  }

  // dict.get(key[, default]): like `key in d` for which keys are allowed, the default (None) when missing.
  Value dictGet(const Value& d, const Value* args, int argc) {
    if (d.tag != Tag::DICT) fail(ErrorKind::AttributeError, Reason::NO_ATTRIBUTE, d.tag);
    argCount(argc, 1, 2);
    W.spend(1);
    const Value& key = args[0];
    if (key.tag == Tag::STR) {
      if (const Value* v = dictFind(d, key.s)) return *v;
    } else if (key.tag == Tag::LIST || key.tag == Tag::DICT) {
      typeError(Reason::UNHASHABLE, key.tag);
    }
    return argc == 2 ? args[1] : mkNone();
  }

  Value method(int m, const Value& recv, const Value* args, int argc) {
    if (m == Method::get) return dictGet(recv, args, argc);
    if (recv.tag != Tag::STR) fail(ErrorKind::AttributeError, Reason::NO_ATTRIBUTE, recv.tag);
    const Str* s = recv.s;
    W.spend(s->len);
    switch (m) {
      case Method::lower: argCount(argc, 0, 0); return changeCase(s, false);
      case Method::upper: argCount(argc, 0, 0); return changeCase(s, true);
      case Method::strip: argCount(argc, 0, 1); return strip(s, argc ? &args[0] : nullptr);
      case Method::startswith: argCount(argc, 1, 1); return affix(s, args[0], true);
      case Method::endswith: argCount(argc, 1, 1); return affix(s, args[0], false);
      case Method::replace: {
        argCount(argc, 2, 3);
        const Str* old = strArg(args[0]);
        const Str* repl = strArg(args[1]);
        return replace(s, old, repl, argc == 3 ? intArg(args[2]) : -1);
      }
      case Method::split:
        argCount(argc, 0, 2);
        return split(s, argc >= 1 ? &args[0] : nullptr, argc == 2 ? intArg(args[1]) : -1);
      default: throw std::runtime_error("bad METHOD operand");
    }
  }

  // ---------------------------------------------------------- the loop
  Value run(int32_t& pcOut) {
    const int32_t* code = P.code.data();
    Value* stack = E.stack.data();
    const Value* ctx = E.ctx.data();
    int sp = 0;
    int32_t pc = 0;
    for (;;) {
      pcOut = pc;
      switch (code[pc]) {
        case Op::RETURN: return stack[sp - 1];
        case Op::CONST: stack[sp++] = P.consts[code[pc + 1]]; pc += 2; break;
        case Op::NAME: {
          const Value& v = ctx[code[pc + 1]];
          if (v.tag == Tag::MISSING) fail(ErrorKind::NameError, Reason::NAME_MISSING);
          stack[sp++] = v;
          pc += 2;
          break;
        }
        case Op::ATTR: {
          Value& o = stack[sp - 1];
          const Value* v = o.tag == Tag::DICT ? dictFind(o, P.strings[code[pc + 1]]) : nullptr;
          if (!v) fail(ErrorKind::AttributeError, Reason::NO_ATTRIBUTE, o.tag);
          o = *v;
          pc += 2;
          break;
        }
        case Op::INDEX: {
          Value r = getItem(stack[sp - 2], stack[sp - 1]);
          stack[--sp - 1] = r;
          pc += 1;
          break;
        }
        case Op::SLICE: {
          int flags = code[pc + 1];
          int k = __builtin_popcount((unsigned)(flags & kSliceFlagMask));
          Value* b = &stack[sp - k];
          const Value* lo = (flags & SliceFlag::LOWER) ? b++ : nullptr;
          const Value* hi = (flags & SliceFlag::UPPER) ? b++ : nullptr;
          const Value* st = (flags & SliceFlag::STEP) ? b++ : nullptr;
          Value r = getSlice(stack[sp - k - 1], lo, hi, st);
          sp -= k;
          stack[sp - 1] = r;
          pc += 2;
          break;
        }
        case Op::LIST: case Op::TUPLE: {
          uint32_t n = (uint32_t)code[pc + 1];
          checkSize(n);
          Value* items = A.make<Value>(n);
          std::memcpy(items, &stack[sp - n], sizeof(Value) * n);
          sp -= n;
          stack[sp++] = mkSeq(code[pc] == Op::LIST ? Tag::LIST : Tag::TUPLE, items, n);
          pc += 2;
          break;
        }
        case Op::NEG: case Op::POS: {
          Value& v = stack[sp - 1];
          if (!isNum(v.tag)) typeError(Reason::BAD_OPERANDS, v.tag);
          if (code[pc] == Op::NEG) v = isIntLike(v.tag) ? mkInt(-v.num) : mkFloat(-v.num);
          else if (v.tag == Tag::TRUE || v.tag == Tag::FALSE) v = mkInt(v.num);
          pc += 1;
          break;
        }
        case Op::NOT: stack[sp - 1] = mkBool(!truthy(stack[sp - 1])); pc += 1; break;
        case Op::BINOP: {
          Value r = binop(code[pc + 1], stack[sp - 2], stack[sp - 1]);
          stack[--sp - 1] = r;
          pc += 2;
          break;
        }
        case Op::COMPARE: {
          bool r = compare(code[pc + 1], stack[sp - 2], stack[sp - 1]);
          stack[--sp - 1] = mkBool(r);
          pc += 2;
          break;
        }
        case Op::JUMP_IF_FALSE_OR_POP:
          if (!truthy(stack[sp - 1])) pc = code[pc + 1];
          else { sp--; pc += 2; }
          break;
        case Op::JUMP_IF_TRUE_OR_POP:
          if (truthy(stack[sp - 1])) pc = code[pc + 1];
          else { sp--; pc += 2; }
          break;
        case Op::POP_JUMP_IF_FALSE:
          pc = truthy(stack[--sp]) ? pc + 2 : code[pc + 1];
          break;
        case Op::JUMP: pc = code[pc + 1]; break;
        case Op::COMPARE_CHAIN: {
          bool r = compare(code[pc + 1], stack[sp - 2], stack[sp - 1]);
          if (!r) {
            sp -= 1;
            stack[sp - 1] = mkBool(false);
            pc = code[pc + 2];
          } else {
            stack[sp - 2] = stack[sp - 1];
            sp -= 1;
            pc += 3;
          }
          break;
        }
        case Op::CALL: {
          int argc = code[pc + 2];
          Value r = call(code[pc + 1], &stack[sp - argc], argc);
          sp -= argc;
          stack[sp++] = r;
          pc += 3;
          break;
        }
        case Op::METHOD: {
          int argc = code[pc + 2];
          Value r = method(code[pc + 1], stack[sp - argc - 1], &stack[sp - argc], argc);
          sp -= argc;
          stack[sp - 1] = r;
          pc += 3;
          break;
        }
        default: throw std::runtime_error("bad opcode");
      }
    }
  }

  bool compare(int op, const Value& a, const Value& b) {
    switch (op) {
      case CmpOp::EQ: return equals(W, a, b);
      case CmpOp::NE: return !equals(W, a, b);
      case CmpOp::IN: return contains(W, b, a);
      case CmpOp::NOT_IN: return !contains(W, b, a);
      case CmpOp::IS: return isSame(a, b);
      case CmpOp::IS_NOT: return !isSame(a, b);
      default: return order(W, op, a, b);
    }
  }
};

// ------------------------------------------------------------------ validation

[[noreturn]] void bad(const std::string& what, int32_t pc) {
  throw std::runtime_error("invalid program: " + what + " at pc " + std::to_string(pc));
}

/** Checks operands and stack depths (jumps go forward only, so one pass in code order suffices). */
void validate(Program& p, size_t nNames, bool batch) {
  const std::vector<int32_t>& code = p.code;
  int32_t n = (int32_t)code.size();
  std::vector<int32_t>& depth = p.depthAt;
  depth.assign(n + 1, -1);
  if (n == 0) bad("empty code", 0);
  depth[0] = 0;
  int32_t maxDepth = 1;
  bool reachable = true;
  int32_t d = 0;
  auto arrive = [&](int32_t at, int32_t dd, int32_t pc) {
    if (at <= pc || at >= n) bad("jump target " + std::to_string(at), pc);
    if (depth[at] >= 0 && depth[at] != dd) bad("inconsistent stack depth", at);
    depth[at] = dd;
  };
  for (int32_t pc = 0; pc < n;) {
    int32_t op = code[pc];
    if (op < 0 || op >= kOpCount) bad("opcode " + std::to_string(op), pc);
    int32_t len = 1 + OPERAND_COUNT[op];
    if (pc + len > n) bad("truncated instruction", pc);
    if (depth[pc] >= 0) {
      if (reachable && depth[pc] != d) bad("inconsistent stack depth", pc);
      d = depth[pc];
      reachable = true;
    } else if (!reachable) {
      bad("unreachable code", pc);
    }
    depth[pc] = d;
    for (int32_t k = 1; k < len; k++) depth[pc + k] = -1;
    auto need = [&](int32_t k) { if (d < k) bad("stack underflow", pc); };
    const int32_t a = len > 1 ? code[pc + 1] : 0;
    const int32_t b = len > 2 ? code[pc + 2] : 0;
    bool falls = true;
    switch (op) {
      case Op::RETURN: need(1); d -= 1; falls = false; break;
      case Op::CONST: if (a < 0 || (size_t)a >= p.consts.size()) bad("constant index", pc); d += 1; break;
      case Op::NAME:
        if (a < 0 || (size_t)a >= nNames) bad("name index", pc);
        if ((uint32_t)a + 1 > p.nameCount) p.nameCount = (uint32_t)a + 1;
        d += 1;
        break;
      case Op::ATTR: need(1); if (a < 0 || (size_t)a >= p.strings.size()) bad("string index", pc); break;
      case Op::INDEX: need(2); d -= 1; break;
      case Op::SLICE: {
        if ((a & ~kSliceFlagMask) != 0) bad("slice flags", pc);
        int k = __builtin_popcount((unsigned)a);
        need(k + 1);
        d -= k;
        break;
      }
      case Op::LIST: case Op::TUPLE: if (a < 0) bad("item count", pc); need(a); d = d - a + 1; break;
      case Op::NEG: case Op::POS: case Op::NOT: need(1); break;
      case Op::BINOP: need(2); if (a < 0 || a >= kBinOpCount) bad("binop", pc); d -= 1; break;
      case Op::COMPARE: need(2); if (a < 0 || a >= kCmpOpCount) bad("compare op", pc); d -= 1; break;
      case Op::JUMP_IF_FALSE_OR_POP: case Op::JUMP_IF_TRUE_OR_POP: need(1); arrive(a, d, pc); d -= 1; break;
      case Op::POP_JUMP_IF_FALSE: need(1); d -= 1; arrive(a, d, pc); break;
      case Op::JUMP: arrive(a, d, pc); falls = false; break;
      case Op::COMPARE_CHAIN: need(2); if (a < 0 || a >= kCmpOpCount) bad("compare op", pc); d -= 1; arrive(b, d, pc); break;
      case Op::CALL: if (a < 0 || a >= kFnCount || b < 0) bad("call", pc); need(b); d = d - b + 1; break;
      case Op::METHOD: if (a < 0 || a >= kMethodCount || b < 0) bad("method", pc); need(b + 1); d -= b; break;
    }
    if (d > maxDepth) maxDepth = d;
    reachable = falls;
    pc += len;
  }
  if (reachable) bad("code falls off the end", n);
  p.stackSize = (uint32_t)maxDepth + 1;
  (void)batch;
}

}  // namespace

std::unique_ptr<Program> prepareProgram(const int32_t* code, size_t codeLen, const uint8_t* consts, size_t constsLen,
                                        const uint8_t* strings, size_t stringsLen, const uint8_t* kinds, size_t nKinds) {
  auto p = std::make_unique<Program>();
  p->code.assign(code, code + codeLen);
  p->constArena = std::make_unique<Arena>(4096);
  TapeIn ct(consts, constsLen);
  while (!ct.done()) p->consts.push_back(ct.value(*p->constArena));
  TapeIn st(strings, stringsLen);
  while (!st.done()) {
    Value v = st.value(*p->constArena);
    if (v.tag != Tag::STR) throw std::runtime_error("string table holds a non-string");
    p->strings.push_back(v.s);
  }
  // The scalar VM reads names by index from the decoded context; batch NAME k reads column k.
  size_t nNames = kinds ? nKinds : SIZE_MAX;
  validate(*p, nNames, kinds != nullptr);
  if (kinds) p->batch = makeBatchPlan(*p, kinds, nKinds);
  return p;
}

bool evaluateScalar(const Program& p, EnvState& env, const uint8_t* ctx, size_t ctxLen, int32_t fault[kFaultWordCount]) {
  env.arena.reset();
  env.hasResult = false;
  if (env.stack.size() < p.stackSize) env.stack.resize(p.stackSize);
  env.ctx.clear();
  TapeIn in(ctx, ctxLen);
  while (!in.done()) env.ctx.push_back(in.value(env.arena));
  // NAME operands beyond the context are a caller bug (names and the tape disagree).
  if (env.ctx.size() < p.nameCount) throw std::runtime_error("context tape has fewer values than the program's names");
  Machine m(p, env);
  int32_t pc = 0;
  try {
    Value r = m.run(pc);
    env.out.clear();
    encodeResult(env.out, r);
    env.hasResult = true;
    env.arena.reset();
    return true;
  } catch (const std::bad_alloc&) {
    fault[FaultWord::KIND] = ErrorKind::LimitError;
    fault[FaultWord::PC] = pc;
    fault[FaultWord::REASON] = Reason::VALUE_TOO_LARGE;
    fault[FaultWord::TAG_A] = fault[FaultWord::TAG_B] = fault[FaultWord::ROW] = -1;
    env.arena.reset();
    return false;
  } catch (const VmError& e) {
    fault[FaultWord::KIND] = e.kind;
    fault[FaultWord::PC] = pc;
    fault[FaultWord::REASON] = e.reason;
    fault[FaultWord::TAG_A] = e.tagA;
    fault[FaultWord::TAG_B] = e.tagB;
    fault[FaultWord::ROW] = -1;
    env.arena.reset();
    return false;
  }
}

}  // namespace wpipe

namespace wpipe {

bool applyScalarOp(const Program& p, EnvState& env, int32_t op, int32_t arg, int32_t argc, const Value* operands,
                   Value& out, VmError& err) {
  Machine m(p, env);
  try {
    switch (op) {
      case Op::BINOP: out = m.binop(arg, operands[0], operands[1]); break;
      case Op::COMPARE: case Op::COMPARE_CHAIN: out = mkBool(m.compare(arg, operands[0], operands[1])); break;
      case Op::NEG: case Op::POS: {
        const Value& v = operands[0];
        if (!isNum(v.tag)) typeError(Reason::BAD_OPERANDS, v.tag);
        if (op == Op::NEG) out = isIntLike(v.tag) ? mkInt(-v.num) : mkFloat(-v.num);
        else out = (v.tag == Tag::TRUE || v.tag == Tag::FALSE) ? mkInt(v.num) : v;
        break;
      }
      case Op::NOT: out = mkBool(!truthy(operands[0])); break;
      case Op::CALL: out = m.call(arg, operands, argc); break;
      default: throw std::runtime_error("applyScalarOp: unsupported opcode");
    }
    return true;
  } catch (const VmError& e) {
    err = e;
    return false;
  }
}

}  // namespace wpipe
