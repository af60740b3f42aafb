// dpctl's text rendering of control results: tables and name/value lists that show every key a
// result has, known keys first in a chosen order, unknown ones after them.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace fm::dpctl {

using Json = nlohmann::json;
using Keys = std::vector<std::string_view>;

/// One value as a table cell: strings bare, null "-", arrays of scalars joined by commas
/// (empty: "-"), anything else compact JSON.
std::string cell(const Json& v);

/// A table of `rows` (an array of objects): the columns are `preferred` keys that any row has,
/// then every other key any row has, in sorted order. Missing cells print "-"; numeric columns
/// are right-aligned. Rows that are not objects make a single "value" column. Ends in '\n'.
std::string table(const Json& rows, const Keys& preferred = {});

/// The same table with the `preferred` columns only (status: a server's rows carry dozens of
/// statistics; --json has them all).
std::string table_of(const Json& rows, const Keys& columns);

/// `rows` (an array of objects, one per core) turned on its side: one line per key, one column
/// per row headed "c<core>" (or the row's index), so dozens of statistics stay readable. Keys in
/// sorted order, `skip` left out. Ends in '\n'.
std::string transposed(const Json& rows, std::string_view id_key, const Keys& skip = {});

/// Nested objects flattened to dotted names ("drops.no_buffer"), with their values as cells:
/// `preferred` top-level keys first, then the rest in sorted order.
std::vector<std::pair<std::string, std::string>> flatten(const Json& obj,
                                                         const Keys& preferred = {});

/// A two-column name/value list of `obj` (flattened), each line starting with `indent`.
/// Ends in '\n' (empty object: "(none)\n").
std::string name_values(const Json& obj, const Keys& preferred = {}, std::string_view indent = "");

/// "key=value key=value ..." on one line (no newline), `preferred` keys first.
std::string inline_pairs(const Json& obj, const Keys& preferred = {});

/// Any result: null -> "ok"; a scalar -> itself; an object -> name/value list, except that
/// members that are arrays of objects become titled tables; an array of objects -> table.
std::string generic(const Json& v);

}  // namespace fm::dpctl
