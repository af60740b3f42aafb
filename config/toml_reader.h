// A strict reader over one TOML table: typed gets with range checks, unknown keys rejected.
#pragma once

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "dataplane/enum_names.h"
#include "dataplane/log.h"
#include "dataplane/result.h"

namespace fm::config {

/// Reads keys of one table; the first problem is kept in a shared Status and named
/// "<file>: <table.key>: <reason>". Control path only.
class TableReader {
 public:
  TableReader(const toml::table* table, std::string prefix, std::string_view file, Status* err)
      : table_(table), prefix_(std::move(prefix)), file_(file), err_(err) {}

  /// Full dotted name of `key` in this table ("eal.memory_mb").
  std::string name(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  }

  /// Records an error about `key` unless one is already recorded.
  void fail(std::string_view key, const std::string& reason) {
    if (err_->is_ok()) {
      *err_ = error(Errc::kInvalidArgument, std::string(file_) + ": " + name(key) + ": " + reason);
    }
  }

  void get(std::string_view key, bool& out) {
    const toml::node* n = find(key);
    if (!n) return;
    if (auto v = n->value<bool>(); v && n->is_boolean()) {
      out = *v;
    } else {
      fail(key, "expected true or false, got " + type_name(*n));
    }
  }

  template <typename Int>
    requires std::is_integral_v<Int> && (!std::is_same_v<Int, bool>)
  void get(std::string_view key, Int& out, int64_t min = std::numeric_limits<Int>::min(),
           int64_t max = int64_t(std::min<uint64_t>(std::numeric_limits<Int>::max(),
                                                    std::numeric_limits<int64_t>::max()))) {
    const toml::node* n = find(key);
    if (!n) return;
    if (!n->is_integer()) {
      fail(key, "expected an integer, got " + type_name(*n));
      return;
    }
    const int64_t v = n->as_integer()->get();
    if (v < min || v > max) {
      fail(key, std::to_string(v) + " is out of range [" + std::to_string(min) + ", " +
                    std::to_string(max) + "]");
      return;
    }
    out = static_cast<Int>(v);
  }

  void get(std::string_view key, double& out, double min, double max) {
    const toml::node* n = find(key);
    if (!n) return;
    if (!n->is_floating_point() && !n->is_integer()) {
      fail(key, "expected a number, got " + type_name(*n));
      return;
    }
    const double v = n->is_integer() ? double(n->as_integer()->get()) : n->as_floating_point()->get();
    if (!(v >= min && v <= max)) {
      fail(key, std::to_string(v) + " is out of range [" + std::to_string(min) + ", " +
                    std::to_string(max) + "]");
      return;
    }
    out = v;
  }

  void get(std::string_view key, std::string& out) {
    const toml::node* n = find(key);
    if (!n) return;
    if (!n->is_string()) {
      fail(key, "expected a string, got " + type_name(*n));
      return;
    }
    out = n->as_string()->get();
  }

  void get(std::string_view key, std::vector<std::string>& out) {
    const toml::node* n = find(key);
    if (!n) return;
    const toml::array* a = n->as_array();
    if (!a) {
      fail(key, "expected an array of strings, got " + type_name(*n));
      return;
    }
    std::vector<std::string> v;
    for (const auto& e : *a) {
      if (!e.is_string()) {
        fail(key, "expected an array of strings, found an element of type " + type_name(e));
        return;
      }
      v.push_back(e.as_string()->get());
    }
    out = std::move(v);
  }

  void get(std::string_view key, std::vector<uint32_t>& out, int64_t min, int64_t max) {
    const toml::node* n = find(key);
    if (!n) return;
    const toml::array* a = n->as_array();
    if (!a) {
      fail(key, "expected an array of integers, got " + type_name(*n));
      return;
    }
    std::vector<uint32_t> v;
    for (const auto& e : *a) {
      if (!e.is_integer()) {
        fail(key, "expected an array of integers, found an element of type " + type_name(e));
        return;
      }
      const int64_t x = e.as_integer()->get();
      if (x < min || x > max) {
        fail(key, "element " + std::to_string(x) + " is out of range [" + std::to_string(min) +
                      ", " + std::to_string(max) + "]");
        return;
      }
      v.push_back(uint32_t(x));
    }
    out = std::move(v);
  }

  /// A string that must be one of the enum's names (its one table: dataplane/enum_names.h).
  template <typename Enum, size_t N>
  void get_enum(std::string_view key, Enum& out, const EnumName<Enum> (&names)[N]) {
    std::string s;
    const toml::node* n = table_ ? table_->get(key) : nullptr;
    if (!n) return;
    get(key, s);
    if (!err_->is_ok()) return;
    if (auto v = parse_enum(names, s)) {
      out = *v;
      return;
    }
    fail(key, "\"" + s + "\" is not one of " + enum_choices(names));
  }

  /// A sub-table (nullptr when absent). Marks the key consumed; a non-table is an error.
  const toml::table* table(std::string_view key) {
    const toml::node* n = find(key);
    if (!n) return nullptr;
    if (!n->is_table()) {
      fail(key, "expected a table, got " + type_name(*n));
      return nullptr;
    }
    return n->as_table();
  }

  /// An array of tables (empty when absent).
  std::vector<const toml::table*> tables(std::string_view key) {
    std::vector<const toml::table*> out;
    const toml::node* n = find(key);
    if (!n) return out;
    const toml::array* a = n->as_array();
    if (!a) {
      fail(key, "expected an array of tables, got " + type_name(*n));
      return out;
    }
    for (const auto& e : *a) {
      if (!e.is_table()) {
        fail(key, "expected an array of tables, found an element of type " + type_name(e));
        return {};
      }
      out.push_back(e.as_table());
    }
    return out;
  }

  /// Rejects every key of the table that no get() asked for.
  void reject_unknown() {
    if (!table_) return;
    for (const auto& [k, v] : *table_) {
      if (!seen_.count(std::string(k.str()))) {
        fail(k.str(), "unknown key (see docs/config.md for the keys this table takes)");
        return;
      }
    }
  }

  bool ok() const { return err_->is_ok(); }

 private:
  const toml::node* find(std::string_view key) {
    seen_.insert(std::string(key));
    return table_ ? table_->get(key) : nullptr;
  }

  static std::string type_name(const toml::node& n) {
    switch (n.type()) {
      case toml::node_type::table: return "a table";
      case toml::node_type::array: return "an array";
      case toml::node_type::string: return "a string";
      case toml::node_type::integer: return "an integer";
      case toml::node_type::floating_point: return "a float";
      case toml::node_type::boolean: return "a boolean";
      case toml::node_type::date: return "a date";
      case toml::node_type::time: return "a time";
      case toml::node_type::date_time: return "a date-time";
      default: return "nothing";
    }
  }

  const toml::table* table_;
  std::string prefix_;
  std::string_view file_;
  Status* err_;
  std::set<std::string> seen_;
};

/// Reads the [log] table (key `level`) of `top`.
inline void read_log(TableReader& top, std::string_view source, Status* err, LogLevel& level) {
  TableReader r(top.table("log"), "log", source, err);
  r.get_enum("level", level, kLogLevelNames);
  r.reject_unknown();
}

/// Parses TOML text; a syntax error names the file, line and column.
Result<toml::table> parse_toml(std::string_view text, std::string_view source);

/// `s` as a TOML basic string: quotes, backslashes and control characters escaped, so what the
/// to_toml() printers write parses back to the same string whatever it held.
std::string toml_quote(std::string_view s);

/// Reads a whole file. The error names the path.
Result<std::string> read_file(const std::string& path);

}  // namespace fm::config
