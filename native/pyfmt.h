// Python number <-> text conversions: float repr, int(str) and float(str) parsing.
#pragma once
#include <cstdint>
#include <string>

namespace wpipe {

/** Python repr() of a float, appended as ASCII. */
void appendFloatRepr(std::string& out, double x);
/** Decimal text of an exact int (|x| <= Limits::MAX_INT). */
void appendIntText(std::string& out, double x);

/**
 * CPython's float round(x, n): the exact binary value of x rounded half-to-even at n decimal digits,
 * then converted to the nearest double (round(2.675, 2) == 2.67). x is finite and nonzero.
 */
double roundDecimal(double x, int64_t n);

enum class ParseStatus { OK, INVALID, OVERFLOW };
/** int(text) for text already stripped of whitespace: ASCII digits with single underscores. */
ParseStatus parseIntLiteral(const char16_t* u, uint32_t len, double& out);
/** float(text) for text already stripped of whitespace. */
ParseStatus parseFloatLiteral(const char16_t* u, uint32_t len, double& out);

}  // namespace wpipe
