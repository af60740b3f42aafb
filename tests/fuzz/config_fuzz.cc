// libFuzzer harness: config/ on arbitrary text. parse_toml, parse_server_config (then
// kv::validate on what it accepts) and parse_memnode_config; an accepted config must print with
// to_toml() as TOML that parses back to the same config.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/memnode_config.h"
#include "config/server_config.h"
#include "config/toml_reader.h"
#include "kvapp/options.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr std::string_view kSource = "fuzz.toml";

// A rejection says why and names the file.
void check_error(const fm::Status& s, const char* what) {
  FUZZ_CHECK(!s.message().empty(), "%s: an error without a message", what);
  FUZZ_CHECK(s.message().find(kSource) != std::string::npos, "%s: error names no file: %s", what,
             s.message().c_str());
}

// to_toml(parse(text)) parses back, and prints the same again.
template <typename Parse, typename Config>
void check_round_trip(Parse parse, const Config& config, const char* what) {
  const std::string once = fm::config::to_toml(config);
  auto again = parse(once, "effective.toml");
  FUZZ_CHECK(again.is_ok(), "%s: to_toml output does not parse: %s\n%s", what,
             again.status().message().c_str(), once.c_str());
  const std::string twice = fm::config::to_toml(*again);
  FUZZ_CHECK(twice == once, "%s: to_toml differs after a round trip:\n%s\n---\n%s", what,
             once.c_str(), twice.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exactly sized copy, so a read past the text is a heap overflow ASan reports.
  const std::string text(reinterpret_cast<const char*>(data), size);

  if (auto t = fm::config::parse_toml(text, kSource); !t.is_ok()) {
    check_error(t.status(), "parse_toml");
  }

  if (auto s = fm::config::parse_server_config(text, kSource); s.is_ok()) {
    (void)fm::kv::validate(s->store, s->protocol);
    check_round_trip(fm::config::parse_server_config, *s, "server");
  } else {
    check_error(s.status(), "parse_server_config");
  }

  if (auto m = fm::config::parse_memnode_config(text, kSource); m.is_ok()) {
    check_round_trip(fm::config::parse_memnode_config, *m, "memnode");
  } else {
    check_error(m.status(), "parse_memnode_config");
  }
  return 0;
}
