// Decimal number parsing with memcached's safe_strto* rules, over byte ranges (no NUL needed).
#pragma once

#include <cstdint>
#include <limits>
#include <string_view>

namespace fm::kv {

namespace detail {
constexpr bool is_c_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// strtoull's grammar as memcached's safe_strtoull accepts it: leading whitespace, an optional
// sign, at least one digit, no overflow, then the end, a NUL or whitespace. `*negative` reports
// a '-' sign. Returns false on anything else.
constexpr bool parse_magnitude(std::string_view s, uint64_t* out, bool* negative) {
  size_t i = 0;
  while (i < s.size() && is_c_space(s[i])) ++i;
  *negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    *negative = s[i] == '-';
    ++i;
  }
  const size_t first_digit = i;
  uint64_t v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    const uint64_t d = static_cast<uint64_t>(s[i] - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;  // ERANGE
    v = v * 10 + d;
    ++i;
  }
  if (i == first_digit) return false;
  if (i < s.size() && s[i] != '\0' && !is_c_space(s[i])) return false;
  *out = v;
  return true;
}
}  // namespace detail

/// A uint64 (incr/decr delta, cas unique, a stored counter value). "-0" is 0; other negatives
/// are rejected, as memcached's safe_strtoull rejects them.
constexpr bool parse_u64(std::string_view s, uint64_t* out) {
  bool neg = false;
  uint64_t v = 0;
  if (!detail::parse_magnitude(s, &v, &neg)) return false;
  if (neg && v != 0) return false;
  *out = v;
  return true;
}

/// A uint32 (flags, verbosity level). Values above 2^32-1 are rejected; memcached 1.6 on 64-bit
/// hosts silently truncates them, which loses the client's flags.
constexpr bool parse_u32(std::string_view s, uint32_t* out) {
  uint64_t v = 0;
  if (!parse_u64(s, &v) || v > std::numeric_limits<uint32_t>::max()) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

/// An int32 (exptime, byte count, flush delay). Values outside int32 are rejected rather than
/// truncated.
constexpr bool parse_i32(std::string_view s, int32_t* out) {
  bool neg = false;
  uint64_t v = 0;
  if (!detail::parse_magnitude(s, &v, &neg)) return false;
  if (!neg && v > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) return false;
  if (neg && v > static_cast<uint64_t>(std::numeric_limits<int32_t>::max()) + 1) return false;
  *out = neg ? static_cast<int32_t>(-static_cast<int64_t>(v)) : static_cast<int32_t>(v);
  return true;
}

}  // namespace fm::kv
