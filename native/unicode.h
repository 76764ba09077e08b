// Unicode properties the expression language needs, from tables generated from CPython 3.11
// (scripts/gen-unicode-tables.py -> native/unicode_tables.h).
#pragma once
#include <cstdint>

namespace wpipe::uni {

/** Python str.isspace of one code point. */
bool isSpace(uint32_t cp);
/** Full lower-case mapping of one code point (not the final-sigma rule); returns the count (1..3). */
int lower(uint32_t cp, uint32_t out[3]);
/** Full upper-case mapping of one code point; returns the count (1..3). */
int upper(uint32_t cp, uint32_t out[3]);
bool caseIgnorable(uint32_t cp);
bool casedNotIgnorable(uint32_t cp);
/** Decimal digit value (Unicode Nd), or -1. */
int decimalValue(uint32_t cp);

}  // namespace wpipe::uni
