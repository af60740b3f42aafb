// One name table per option enum: its parser, its printer and its list of choices come from the
// same pairs, so the config file, the control socket and to_toml() cannot disagree.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace fm {

/// One spelling of an enum value, as config files and control commands write it.
template <typename E>
struct EnumName {
  std::string_view name;
  E value;
};

/// The name of `v` ("?" when the table lacks it, which enum_table_ok() rules out at build time
/// for the values the table's author listed). The view points at a string literal, so .data()
/// is NUL-terminated.
template <typename E, size_t N>
constexpr std::string_view enum_name(const EnumName<E> (&table)[N], E v) {
  for (const EnumName<E>& e : table)
    if (e.value == v) return e.name;
  return "?";
}

/// The value spelled `s` (case-sensitive), or nullopt.
template <typename E, size_t N>
constexpr std::optional<E> parse_enum(const EnumName<E> (&table)[N], std::string_view s) {
  for (const EnumName<E>& e : table)
    if (e.name == s) return e.value;
  return std::nullopt;
}

/// The choices for an error message: "\"sync\", \"async\"".
template <typename E, size_t N>
std::string enum_choices(const EnumName<E> (&table)[N]) {
  std::string s;
  for (const EnumName<E>& e : table) {
    if (!s.empty()) s += ", ";
    s += '"';
    s += e.name;
    s += '"';
  }
  return s;
}

/// For static_assert: names non-empty, lowercase [a-z0-9_], and no name or value listed twice.
template <typename E, size_t N>
constexpr bool enum_table_ok(const EnumName<E> (&table)[N]) {
  for (size_t i = 0; i < N; ++i) {
    if (table[i].name.empty()) return false;
    for (char c : table[i].name)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    for (size_t j = i + 1; j < N; ++j)
      if (table[i].name == table[j].name || table[i].value == table[j].value) return false;
  }
  return true;
}

}  // namespace fm
