#include "value.h"

#include <unordered_map>

namespace wpipe {

uint32_t countCodePoints(const char16_t* u, uint32_t len) {
  uint32_t pairs = 0;
  for (uint32_t i = 0; i + 1 < len; i++) {
    // A high surrogate followed by a low one is one code point.
    pairs += ((u[i] & 0xFC00) == 0xD800) & ((u[i + 1] & 0xFC00) == 0xDC00);
  }
  return len - pairs;
}

char16_t* allocStrUnits(Arena& a, uint32_t len) {
  checkSize(len);
  return a.make<char16_t>(len);
}

const Str* finishStr(Arena& a, const char16_t* u, uint32_t len) {
  Str* s = a.make<Str>(1);
  s->len = len;
  s->u = u;
  s->cps = countCodePoints(u, len);
  return s;
}

const Str* makeStr(Arena& a, const char16_t* u, uint32_t len) {
  char16_t* d = allocStrUnits(a, len);
  if (len) std::memcpy(d, u, len * 2);
  return finishStr(a, d, len);
}

const Str* makeAsciiStr(Arena& a, const char* s) {
  uint32_t n = (uint32_t)std::strlen(s);
  char16_t* d = a.make<char16_t>(n);
  for (uint32_t i = 0; i < n; i++) d[i] = (unsigned char)s[i];
  Str* r = a.make<Str>(1);
  r->len = n;
  r->cps = n;
  r->u = d;
  return r;
}

const Str* TapeIn::str(Arena& a) {
  uint32_t n = u32();
  need((size_t)n * 2);
  char16_t* d = a.make<char16_t>(n);
  if (n) std::memcpy(d, p_, (size_t)n * 2);  // the tape is little-endian, like every target we build for
  p_ += (size_t)n * 2;
  return finishStr(a, d, n);
}

Value TapeIn::value(Arena& a, int depth) {
  if (depth > Limits::MAX_DEPTH + 1) throw std::runtime_error("corrupt value tape (too deep)");
  need(1);
  int tag = *p_++;
  Value v = mkNone();
  v.tag = (uint8_t)tag;
  switch (tag) {
    case Tag::NONE: return v;
    case Tag::FALSE: return mkBool(false);
    case Tag::TRUE: return mkBool(true);
    case Tag::INT: v.num = f64(); return v;  // a context -0 stays -0, as in the js evaluator
    case Tag::FLOAT: v.num = f64(); return v;
    case Tag::STR: case Tag::OPAQUE: v.s = str(a); return v;
    case Tag::LIST: case Tag::TUPLE: {
      uint32_t n = u32();
      need(n);  // at least a byte per item: bounds the allocation by the tape size
      Value* items = a.make<Value>(n);
      for (uint32_t i = 0; i < n; i++) items[i] = value(a, depth + 1);
      v.n = n;
      v.items = items;
      return v;
    }
    case Tag::DICT: {
      uint32_t n = u32();
      need((size_t)n * 5);
      DictEntry* e = a.make<DictEntry>(n);
      for (uint32_t i = 0; i < n; i++) {
        e[i].key = str(a);
        e[i].val = value(a, depth + 1);
      }
      v.n = n;
      v.entries = e;
      return v;
    }
    case Tag::MISSING: return v;
    default: throw std::runtime_error("corrupt value tape (bad tag " + std::to_string(tag) + ")");
  }
}

namespace {
/**
 * Writes a result tape, bounded by Limits::MAX_TAPE_BYTES as the AssemblyScript VM's (assembly/vm.ts
 * wRoom): a write that would take the tape past it is a LimitError (Reason::TAPE_TOO_LARGE), which
 * evaluateScalar reports at the pc of RETURN, as the wasm VM does. The buffer grows by doubling, never
 * past the cap.
 */
struct ResultEncoder {
  std::vector<uint8_t>& out;
  std::unordered_map<const void*, uint32_t> seen;
  uint32_t next = 0;

  /** Makes room for n more bytes and returns where they go. */
  uint8_t* room(size_t n) {
    size_t at = out.size();
    if (n > (size_t)Limits::MAX_TAPE_BYTES - at) fail(ErrorKind::LimitError, Reason::TAPE_TOO_LARGE);
    if (at + n > out.capacity()) {
      size_t cap = out.capacity() * 2;
      if (cap < at + n) cap = at + n;
      if (cap > (size_t)Limits::MAX_TAPE_BYTES) cap = Limits::MAX_TAPE_BYTES;
      out.reserve(cap);
    }
    out.resize(at + n);
    return out.data() + at;
  }
  void byte(uint8_t b) { *room(1) = b; }
  void u32(uint32_t x) { std::memcpy(room(4), &x, 4); }
  void f64(double x) { std::memcpy(room(8), &x, 8); }
  void str(const Str* s) {
    u32(s->len);
    size_t bytes = (size_t)s->len * 2;
    uint8_t* d = room(bytes);
    if (bytes) std::memcpy(d, s->u, bytes);  // the tape is little-endian, like every target we build for
  }

  /** Emits a reference when `key` was encoded before; else numbers it. */
  bool ref(const void* key) {
    auto it = seen.find(key);
    if (it != seen.end()) {
      byte(TapeTag::SHARED_REF);
      u32(it->second);
      return true;
    }
    seen.emplace(key, next++);
    return false;
  }

  void value(const Value& v) {
    switch (v.tag) {
      case Tag::INT: case Tag::FLOAT:
        byte(v.tag);
        f64(v.num);
        return;
      case Tag::STR:
        // Short strings are cheaper to repeat than to look up.
        if (v.s->len >= SHARED_REF_MIN_STRING && ref(v.s)) return;
        byte(v.tag);
        str(v.s);
        return;
      case Tag::OPAQUE:
        byte(v.tag);
        str(v.s);
        return;
      case Tag::LIST: case Tag::TUPLE:
        if (v.n > 0 && ref(v.items)) return;
        byte(v.tag);
        u32(v.n);
        for (uint32_t i = 0; i < v.n; i++) value(v.items[i]);
        return;
      case Tag::DICT:
        if (v.n > 0 && ref(v.entries)) return;
        byte(v.tag);
        u32(v.n);
        for (uint32_t i = 0; i < v.n; i++) {
          str(v.entries[i].key);
          value(v.entries[i].val);
        }
        return;
      default:  // NONE, FALSE, TRUE: the tag alone
        byte(v.tag);
        return;
    }
  }
};
}  // namespace

void encodeResult(std::vector<uint8_t>& out, const Value& v) {
  ResultEncoder e{out, {}};
  e.value(v);
}

}  // namespace wpipe
