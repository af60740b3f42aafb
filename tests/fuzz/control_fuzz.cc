// libFuzzer harness: the control socket's JSON-lines protocol (dataplane/control.h). Each input
// line goes through ControlServer::handle_line, as the control thread would answer it, with
// handlers that read arguments through control_int_arg/control_bool_arg/control_string_arg.
// Every answer must be one line of JSON: {"v":1, "id", "ok", "result" | "error":{code,message}}.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

#include "dataplane/control.h"
#include "dataplane/log.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using json = nlohmann::json;
using fm::Errc;
using fm::Result;

// The socket lives in a directory made once per run and removed at exit (open() binds it; the
// control thread is never started: handle_line answers on the fuzzing thread).
struct Fixture {
  std::string dir;
  std::unique_ptr<fm::ControlServer> server;

  Fixture() {
    char tmpl[] = "/tmp/fmfuzz.XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    FUZZ_CHECK(d != nullptr, "mkdtemp failed");
    dir = d;
    auto s = fm::ControlServer::open(dir + "/control.sock", "control_fuzz");
    FUZZ_CHECK(s.is_ok(), "ControlServer::open: %s", s.status().message().c_str());
    server = std::move(s).value();
    add_handlers(*server);
  }
  ~Fixture() {
    server.reset();  // removes the socket file
    ::rmdir(dir.c_str());
  }

  static void add_handlers(fm::ControlServer& s) {
    s.add("set", "an integer in [-1000, 1000]", [](const json& r) -> Result<json> {
      auto n = fm::control_int_arg(r, "n", -1000, 1000);
      if (!n) return n.status();
      return json{{"n", *n}};
    });
    s.add("flag", "a boolean", [](const json& r) -> Result<json> {
      auto on = fm::control_bool_arg(r, "on");
      if (!on) return on.status();
      return json{{"on", *on}};
    });
    s.add("name", "a string", [](const json& r) -> Result<json> {
      auto name = fm::control_string_arg(r, "name");
      if (!name) return name.status();
      return json{{"name", *name}, {"bytes", name->size()}};
    });
    s.add("cores", "all three kinds, like cores.set", [](const json& r) -> Result<json> {
      auto n = fm::control_int_arg(r, "active", 1, 64);
      if (!n) return n.status();
      auto automatic = fm::control_bool_arg(r, "auto");
      if (!automatic) return automatic.status();
      auto park = fm::control_string_arg(r, "park");
      if (!park) return park.status();
      if (*park != "sleep" && *park != "spin") {
        return fm::error(Errc::kInvalidArgument, "park must be \"sleep\" or \"spin\", not \"" +
                                                     *park + "\"");
      }
      return json{{"active", *n}, {"auto", *automatic}, {"park", *park}};
    });
    s.add("echo", "the request itself", [](const json& r) -> Result<json> { return r; });
    s.add("throw", "a handler that throws", [](const json& r) -> Result<json> {
      if (r.contains("odd")) throw 42;  // not a std::exception
      throw std::runtime_error("boom");
    });
  }
};

void check_response(std::string_view line, const std::string& response) {
  FUZZ_CHECK(!response.empty() && response.find('\n') == std::string::npos,
             "response is not one line: %s", response.c_str());
  const json r = json::parse(response, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(!r.is_discarded(), "response is not JSON: %s", response.c_str());
  FUZZ_CHECK(r.is_object(), "response is not an object: %s", response.c_str());
  FUZZ_CHECK(r.contains("v") && r["v"] == fm::kControlProtocolVersion && r.contains("id"),
             "response without v/id: %s", response.c_str());
  FUZZ_CHECK(r.contains("ok") && r["ok"].is_boolean(), "response without ok: %s",
             response.c_str());
  if (r["ok"].get<bool>()) {
    FUZZ_CHECK(r.contains("result"), "ok response without result: %s", response.c_str());
  } else {
    const auto e = r.find("error");
    FUZZ_CHECK(e != r.end() && e->is_object() && (*e)["code"].is_string() &&
                   (*e)["message"].is_string() && !(*e)["message"].get<std::string>().empty(),
               "error response without code/message: %s", response.c_str());
  }
  // A request that is an object with an integer id gets that id back.
  if (line.find("\"id\"") == std::string_view::npos) return;  // (parsing twice is slow)
  const json req = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!req.is_discarded() && req.is_object()) {
    const auto id = req.find("id");
    if (id != req.end() && id->is_number_integer()) {
      FUZZ_CHECK(r["id"] == *id, "id %s answered as %s", id->dump().c_str(),
                 r["id"].dump().c_str());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The handler that throws logs a warning each time: kept off stderr, which would cost more
  // than the input itself.
  static const bool quiet = (fm::set_log_level(fm::LogLevel::kError), true);
  (void)quiet;
  static Fixture fixture;
  // An exactly sized copy, so a read past the input is a heap overflow ASan reports.
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::string_view rest = input;
  // JSON lines, split as the control thread splits them: a line over the limit never reaches
  // handle_line (the connection is answered "line_too_long" and closed), a blank one is
  // skipped, a trailing '\r' is dropped.
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    if (line.size() > fm::kControlMaxLineBytes) continue;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;  // blank: skipped
    const std::string_view request = line.back() == '\r' ? line.substr(0, line.size() - 1) : line;
    check_response(request, fixture.server->handle_line(request));
  }
  return 0;
}
