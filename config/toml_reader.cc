// TOML parsing and file reading with errors that name the file and position.
#include "config/toml_reader.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

namespace fm::config {

std::string toml_quote(std::string_view s) {
  std::string o = "\"";
  for (char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      o += '\\';
      o += ch;
    } else if (u < 0x20 || u == 0x7f) {
      o += fmt::format("\\u{:04X}", u);
    } else {
      o += ch;
    }
  }
  return o + "\"";
}

Result<toml::table> parse_toml(std::string_view text, std::string_view source) {
  // Debian's toml++ is built with exceptions: its parse errors are caught here and become a
  // Status, so no exception leaves config/.
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return error(Errc::kInvalidArgument,
                 std::string(source) + ":" + std::to_string(e.source().begin.line) + ":" +
                     std::to_string(e.source().begin.column) + ": " + std::string(e.description()));
  }
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return error(Errc::kNotFound, "cannot open config file '" + path + "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace fm::config
