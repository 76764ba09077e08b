#include "unicode.h"

#include <algorithm>
#include <iterator>

#include "unicode_tables.h"

namespace wpipe::uni {
using namespace unitab;

namespace {

template <size_t N>
bool inRanges(const CpRange (&r)[N], uint32_t cp) {
  // Last range whose lo <= cp.
  auto it = std::upper_bound(std::begin(r), std::end(r), cp, [](uint32_t c, const CpRange& x) { return c < x.lo; });
  return it != std::begin(r) && cp <= (it - 1)->hi;
}

template <size_t NR, size_t NM>
int mapCase(const CaseRun (&runs)[NR], const CaseMulti (&multi)[NM], uint32_t cp, uint32_t out[3]) {
  auto m = std::lower_bound(std::begin(multi), std::end(multi), cp, [](const CaseMulti& x, uint32_t c) { return x.cp < c; });
  if (m != std::end(multi) && m->cp == cp) {
    for (int i = 0; i < m->len; i++) out[i] = m->to[i];
    return m->len;
  }
  auto it = std::upper_bound(std::begin(runs), std::end(runs), cp, [](uint32_t c, const CaseRun& x) { return c < x.first; });
  out[0] = cp;
  if (it == std::begin(runs)) return 1;
  const CaseRun& r = *(it - 1);
  uint32_t off = cp - r.first;
  if (off % r.stride == 0 && off / r.stride < r.count) out[0] = (uint32_t)((int32_t)cp + r.delta);
  return 1;
}

}  // namespace

bool isSpace(uint32_t cp) {
  if (cp < 0x80) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
  return inRanges(kSpace, cp);
}

int lower(uint32_t cp, uint32_t out[3]) {
  if (cp < 0x80) {
    out[0] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    return 1;
  }
  return mapCase(kLowerRuns, kLowerMulti, cp, out);
}

int upper(uint32_t cp, uint32_t out[3]) {
  if (cp < 0x80) {
    out[0] = (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
    return 1;
  }
  return mapCase(kUpperRuns, kUpperMulti, cp, out);
}

bool caseIgnorable(uint32_t cp) { return inRanges(kCaseIgnorable, cp); }
bool casedNotIgnorable(uint32_t cp) { return inRanges(kCasedNotIgnorable, cp); }

int decimalValue(uint32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') ? (int)(cp - '0') : -1;
  auto it = std::upper_bound(std::begin(kDigitZeros), std::end(kDigitZeros), cp);
  if (it == std::begin(kDigitZeros)) return -1;
  uint32_t z = *(it - 1);
  return cp - z < 10 ? (int)(cp - z) : -1;
}

}  // namespace wpipe::uni
