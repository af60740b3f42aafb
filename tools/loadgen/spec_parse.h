// Strict number parsing for flag specs: whole string, optional k/M/G suffix, no junk.
#pragma once

#include <charconv>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>

namespace fm::loadgen {

/// Parses a finite decimal number ("2.5", "1e6"), optionally followed by k, M or G (x1e3, 1e6,
/// 1e9) when `suffixes`. Leading/trailing spaces are trimmed. nullopt on anything else.
inline std::optional<double> parse_number(std::string_view s, bool suffixes = true) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (s.empty()) return std::nullopt;
  double mult = 1;
  if (suffixes) {
    switch (s.back()) {
      case 'k':
      case 'K':
        mult = 1e3;
        s.remove_suffix(1);
        break;
      case 'm':
      case 'M':
        mult = 1e6;
        s.remove_suffix(1);
        break;
      case 'g':
      case 'G':
        mult = 1e9;
        s.remove_suffix(1);
        break;
      default:
        break;
    }
  }
  if (s.empty() || s.front() == '+') return std::nullopt;
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v * mult;
}

/// A non-negative integer (suffixes allowed: "10k" = 10000); nullopt if not integral.
inline std::optional<uint64_t> parse_count(std::string_view s) {
  auto v = parse_number(s);
  if (!v || *v < 0 || *v > 1.8e19 || std::floor(*v) != *v) return std::nullopt;
  return uint64_t(*v);
}

}  // namespace fm::loadgen
