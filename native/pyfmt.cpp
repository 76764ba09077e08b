#include "pyfmt.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "opcodes.h"

namespace wpipe {

void appendFloatRepr(std::string& out, double x) {
  if (std::isnan(x)) { out += "nan"; return; }
  if (std::isinf(x)) { out += x < 0 ? "-inf" : "inf"; return; }
  if (x == 0) { out += std::signbit(x) ? "-0.0" : "0.0"; return; }
  // Shortest round-trip digits, in scientific form: "-d.ddde+XX".
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  *r.ptr = 0;
  const char* p = buf;
  if (*p == '-') { out += '-'; p++; }
  char digits[32];
  int nd = 0;
  for (; *p && *p != 'e'; p++) {
    if (*p != '.') digits[nd++] = *p;
  }
  int exp = std::atoi(p + 1);
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out += "0.";
      out.append((size_t)(-exp - 1), '0');
      out.append(digits, nd);
    } else if (nd <= exp + 1) {
      out.append(digits, nd);
      out.append((size_t)(exp + 1 - nd), '0');
      out += ".0";
    } else {
      out.append(digits, (size_t)exp + 1);
      out += '.';
      out.append(digits + exp + 1, (size_t)(nd - exp - 1));
    }
  } else {
    out += digits[0];
    if (nd > 1) {
      out += '.';
      out.append(digits + 1, (size_t)nd - 1);
    }
    out += 'e';
    out += exp < 0 ? '-' : '+';
    int e = exp < 0 ? -exp : exp;
    if (e < 10) out += '0';
    out += std::to_string(e);
  }
}

void appendIntText(std::string& out, double x) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, (long long)x);
  out.append(buf, r.ptr);
}

double roundDecimal(double x, int64_t n) {
  if (n > 1100) return x;  // every double is exact at 1,075 decimal places
  if (n < -400) return std::signbit(x) ? -0.0 : 0.0;  // every finite double is below 10^309
  // The exact decimal expansion: a double has at most 767 significant digits, so 800 digits after
  // the point of the scientific form are exact (to_chars is exact, like printf in the C locale).
  constexpr int kPrecision = 800;
  char buf[kPrecision + 32];
  auto r = std::to_chars(buf, buf + sizeof buf, std::fabs(x), std::chars_format::scientific, kPrecision);
  *r.ptr = 0;  // strtol below must stop at the end of the exponent
  char* e = std::find(buf, r.ptr, 'e');
  long exp10 = std::strtol(e + 1, nullptr, 10);
  std::string digits;  // digit i has place value 10^(exp10 - i)
  digits.reserve(kPrecision + 2);
  for (char* p = buf; p < e; p++) {
    if (*p != '.') digits += *p;
  }
  long kept = exp10 + (long)n + 1;  // digits at places >= 10^-n
  if (kept >= (long)digits.size()) return x;  // already exact at n digits
  bool up = false;
  if (kept >= 0) {
    char first = digits[kept];
    if (first > '5') {
      up = true;
    } else if (first == '5') {
      bool rest = false;
      for (size_t i = (size_t)kept + 1; i < digits.size() && !rest; i++) rest = digits[i] != '0';
      up = rest || (kept > 0 && ((digits[kept - 1] - '0') & 1));  // a tie goes to the even neighbour
    }
  }
  std::string q = kept > 0 ? digits.substr(0, (size_t)kept) : std::string();
  if (up) {
    long i = (long)q.size() - 1;
    while (i >= 0 && q[i] == '9') q[i--] = '0';
    if (i >= 0) q[i]++;
    else q.insert(q.begin(), '1');
  }
  double v = 0;
  if (!q.empty() && q.find_first_not_of('0') != std::string::npos) {
    q += 'e';
    q += std::to_string(-n);
    auto rr = std::from_chars(q.data(), q.data() + q.size(), v, std::chars_format::scientific);
    if (rr.ec == std::errc::result_out_of_range) v = HUGE_VAL;  // as the reference: 2e308 is inf
  }
  return std::signbit(x) ? -v : v;
}

namespace {
inline bool isDigit(char16_t c) { return c >= '0' && c <= '9'; }

/** digit (_? digit)* starting at i; returns the end, or i when there is no digit. Copies digits. */
uint32_t digitPart(const char16_t* u, uint32_t len, uint32_t i, std::string& dst) {
  if (i >= len || !isDigit(u[i])) return i;
  dst += (char)u[i++];
  while (i < len) {
    if (isDigit(u[i])) {
      dst += (char)u[i++];
    } else if (u[i] == '_' && i + 1 < len && isDigit(u[i + 1])) {
      dst += (char)u[i + 1];
      i += 2;
    } else {
      break;
    }
  }
  return i;
}

bool equalsNoCase(const char16_t* u, uint32_t len, const char* word) {
  size_t n = std::strlen(word);
  if (len != n) return false;
  for (uint32_t i = 0; i < len; i++) {
    char16_t c = u[i];
    if (c >= 'A' && c <= 'Z') c = (char16_t)(c + 32);
    if (c != (unsigned char)word[i]) return false;
  }
  return true;
}

constexpr int decimalDigits(long long v) { return v < 10 ? 1 : 1 + decimalDigits(v / 10); }
/** Limits::MAX_INT as an exact integer, and its digits: a longer literal overflows. */
constexpr long long kMaxInt = static_cast<long long>(Limits::MAX_INT);
constexpr size_t kMaxIntDigits = (size_t)decimalDigits(kMaxInt);
static_assert(static_cast<double>(kMaxInt) == Limits::MAX_INT, "Limits::MAX_INT must be an exact integer");
static_assert(kMaxIntDigits <= 18, "parseIntLiteral accumulates up to kMaxIntDigits digits in a long long");
}  // namespace

ParseStatus parseIntLiteral(const char16_t* u, uint32_t len, double& out) {
  uint32_t i = 0;
  bool neg = false;
  if (i < len && (u[i] == '+' || u[i] == '-')) neg = u[i++] == '-';
  std::string digits;
  uint32_t end = digitPart(u, len, i, digits);
  if (end == i || end != len) return ParseStatus::INVALID;
  size_t z = 0;
  while (z + 1 < digits.size() && digits[z] == '0') z++;
  if (digits.size() - z > kMaxIntDigits) return ParseStatus::OVERFLOW;
  long long v = 0;
  for (size_t k = z; k < digits.size(); k++) v = v * 10 + (digits[k] - '0');
  if (v > kMaxInt) return ParseStatus::OVERFLOW;
  out = neg ? -(double)v : (double)v;
  return ParseStatus::OK;
}

ParseStatus parseFloatLiteral(const char16_t* u, uint32_t len, double& out) {
  uint32_t i = 0;
  bool neg = false;
  if (i < len && (u[i] == '+' || u[i] == '-')) neg = u[i++] == '-';
  if (equalsNoCase(u + i, len - i, "inf") || equalsNoCase(u + i, len - i, "infinity")) {
    out = neg ? -HUGE_VAL : HUGE_VAL;
    return ParseStatus::OK;
  }
  if (equalsNoCase(u + i, len - i, "nan")) {
    out = std::nan("");  // Python: float('-nan') is nan too
    return ParseStatus::OK;
  }
  std::string text;
  if (neg) text += '-';
  uint32_t intEnd = digitPart(u, len, i, text);
  bool haveDigits = intEnd > i;
  i = intEnd;
  if (i < len && u[i] == '.') {
    text += '.';
    i++;
    uint32_t fracEnd = digitPart(u, len, i, text);
    haveDigits = haveDigits || fracEnd > i;
    i = fracEnd;
  }
  if (!haveDigits) return ParseStatus::INVALID;
  if (i < len && (u[i] == 'e' || u[i] == 'E')) {
    text += 'e';
    i++;
    if (i < len && (u[i] == '+' || u[i] == '-')) text += (char)u[i++];
    uint32_t expEnd = digitPart(u, len, i, text);
    if (expEnd == i) return ParseStatus::INVALID;
    i = expEnd;
  }
  if (i != len) return ParseStatus::INVALID;
  // strtod semantics (overflow to inf, underflow to 0) with from_chars' locale independence.
  const char* b = text.data();
  double v = 0;
  auto r = std::from_chars(b, b + text.size(), v, std::chars_format::general);
  if (r.ec == std::errc::result_out_of_range) {
    // Decide between overflow and underflow from the decimal exponent of the first nonzero digit.
    long long pos = 0, firstNonZero = -1, pointAt = -1;
    const char* q = b + (neg ? 1 : 0);
    for (; *q && *q != 'e'; q++) {
      if (*q == '.') { pointAt = pos; continue; }
      if (*q != '0' && firstNonZero < 0) firstNonZero = pos;
      pos++;
    }
    if (pointAt < 0) pointAt = pos;
    long long e = *q == 'e' ? std::strtoll(q + 1, nullptr, 10) : 0;
    long long sci = e + pointAt - firstNonZero - 1;
    v = firstNonZero < 0 ? 0.0 : (sci > 0 ? HUGE_VAL : 0.0);
    if (neg) v = -v;
  } else if (r.ec != std::errc()) {
    return ParseStatus::INVALID;
  }
  out = v;
  return ParseStatus::OK;
}

}  // namespace wpipe
