// dpctl: reads and changes a running kvserver through its control socket (docs/control.md):
// core allocation, scheduler settings, statistics, allocation decisions.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/control_client.h"
#include "tools/dpctl/render.h"

namespace fm::dpctl {
namespace {

// Exit codes (docs/control.md).
constexpr int kExitOk = 0;
constexpr int kExitServerError = 1;  // the server answered with an error
constexpr int kExitNoServer = 2;     // cannot connect, timeout, or not a control server
constexpr int kExitUsage = 64;       // bad command line (sysexits.h EX_USAGE)

const Keys kCoresKeys = {"active", "min", "max", "auto"};
const Keys kSchedKeys = {"faults", "dispatch", "steal", "predictor", "preempt_us"};
// The per-core statistics of the server's counter registry (runtime/stats.cc) shown in the
// table; --json prints them all.
const Keys kPerCoreKeys = {"core",          "lcore",           "state",
                           "queues",        "sched_in_flight", "sched_queued",
                           "sched_fetches", "sched_finished"};
const Keys kMemnodeKeys = {"name",    "state", "deaths",   "rejoins",        "rebuild_pages",
                           "rebuilt", "lost",  "recopied", "last_rebuild_ms"};
const Keys kDecisionKeys = {"t_us", "action", "core", "active", "signal_us", "reason"};

struct Globals {
  std::string socket = kControlDefaultSocket;
  bool json = false;
  int timeout_ms = 2000;
};

// One connection, opened on first use; every failure is turned into dpctl's exit code with
// its message printed.
class Session {
 public:
  explicit Session(const Globals& g) : g_(g) {}

  // The result of command `request`, or the exit code to return.
  std::optional<Json> call(Json request, int* exit_code) {
    if (!connect(exit_code)) return std::nullopt;
    auto resp = client_->call(std::move(request));
    if (!resp) {
      *exit_code = no_server(resp.status());
      return std::nullopt;
    }
    if (!(*resp)["ok"].get<bool>()) {
      *exit_code = server_error(*resp);
      return std::nullopt;
    }
    return resp->contains("result") ? (*resp)["result"] : Json();
  }

  // `line` verbatim; the response line as received, or the exit code to return.
  std::optional<std::string> exchange(const std::string& line, int* exit_code) {
    if (!connect(exit_code)) return std::nullopt;
    auto resp = client_->exchange(line);
    if (!resp) {
      *exit_code = no_server(resp.status());
      return std::nullopt;
    }
    return std::move(*resp);
  }

  static int server_error(const Json& resp) {
    const Json& e = resp.contains("error") ? resp["error"] : Json::object();
    const auto field = [&](const char* k) {
      return e.is_object() && e.contains(k) && e[k].is_string() ? e[k].get<std::string>()
                                                                : std::string("?");
    };
    fmt::print(stderr, "dpctl: {}: {}\n", field("code"), field("message"));
    return kExitServerError;
  }

 private:
  bool connect(int* exit_code) {
    if (client_) return true;
    auto c = ControlClient::connect(g_.socket, std::chrono::milliseconds(g_.timeout_ms));
    if (!c) {
      *exit_code = no_server(c.status());
      return false;
    }
    client_.emplace(std::move(*c));
    return true;
  }

  int no_server(const Status& s) const {
    fmt::print(stderr, "dpctl: {}\n", s.message());
    fmt::print(stderr,
               "dpctl: check that kvserver is running with its control socket enabled at {} "
               "(config key control.socket); --socket PATH or FARMEM_CONTROL selects another\n",
               g_.socket);
    return kExitNoServer;
  }

  const Globals& g_;
  std::optional<ControlClient> client_;
};

void print_json(const Json& v) {
  fmt::print("{}\n", v.dump(2, ' ', false, Json::error_handler_t::replace));
}

const Json& member(const Json& obj, const char* key) {
  static const Json kNull;
  return obj.is_object() && obj.contains(key) ? obj[key] : kNull;
}

// A summary line per known section, then any other top-level member, then the per-core table.
void print_status(const Json& r) {
  if (!r.is_object()) {
    fmt::print("{}", generic(r));
    return;
  }
  if (r.contains("cores")) fmt::print("cores  {}\n", inline_pairs(r["cores"], kCoresKeys));
  if (r.contains("sched")) fmt::print("sched  {}\n", inline_pairs(r["sched"], kSchedKeys));
  Json rest = Json::object();
  for (const auto& [k, v] : r.items()) {
    if (k != "cores" && k != "sched" && k != "per_core") rest[k] = v;
  }
  if (!rest.empty()) fmt::print("{}", generic(rest));
  if (r.contains("per_core")) fmt::print("\n{}", table_of(r["per_core"], kPerCoreKeys));
}

// "true/false/on/off" -> bool, an integer -> number, anything else -> string.
Json parse_value(const std::string& s) {
  if (s == "true" || s == "on") return true;
  if (s == "false" || s == "off") return false;
  const char* first = s.data();
  const char* last = s.data() + s.size();
  if (!s.empty()) {
    int64_t i = 0;
    if (auto [p, ec] = std::from_chars(first, last, i); ec == std::errc() && p == last) return i;
    uint64_t u = 0;
    if (auto [p, ec] = std::from_chars(first, last, u); ec == std::errc() && p == last) return u;
  }
  return s;
}

int cmd_sched_set(Session& s, const Globals& g, const std::vector<std::string>& assignments) {
  Json req = {{"cmd", "sched.set"}};
  for (const std::string& a : assignments) {
    const size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      fmt::print(stderr, "dpctl: sched set: expected KEY=VALUE, got \"{}\"\n", a);
      return kExitUsage;
    }
    const std::string key = a.substr(0, eq);
    if (key == "cmd" || key == "v" || key == "id") {
      fmt::print(stderr, "dpctl: sched set: \"{}\" is a reserved protocol field\n", key);
      return kExitUsage;
    }
    req[key] = parse_value(a.substr(eq + 1));
  }
  int rc = kExitOk;
  const auto r = s.call(std::move(req), &rc);
  if (!r) return rc;
  if (g.json) {
    print_json(*r);
  } else {
    fmt::print("{}", generic(*r));
  }
  return kExitOk;
}

int cmd_raw(Session& s, const Globals& g, const std::string& line) {
  int rc = kExitOk;
  const auto resp = s.exchange(line, &rc);
  if (!resp) return rc;
  Json parsed;
  try {
    parsed = Json::parse(*resp);
  } catch (const Json::parse_error&) {
    fmt::print("{}\n", *resp);
    fmt::print(stderr, "dpctl: the response is not JSON; is {} a farmem control socket?\n",
               g.socket);
    return kExitNoServer;
  }
  if (g.json) {
    print_json(parsed);
  } else {
    fmt::print("{}\n", *resp);
  }
  const Json& ok = member(parsed, "ok");
  if (ok.is_boolean() && !ok.get<bool>()) return Session::server_error(parsed);
  return kExitOk;
}

// Served count per core id from a status result.
std::map<int64_t, std::pair<int64_t, std::string>> served_by_core(const Json& status) {
  std::map<int64_t, std::pair<int64_t, std::string>> out;
  const Json& rows = member(status, "per_core");
  if (!rows.is_array()) return out;
  int64_t index = 0;
  for (const Json& row : rows) {
    const Json& core = member(row, "core");
    const Json& served = member(row, "sched_finished");
    const Json& state = member(row, "state");
    out[core.is_number_integer() ? core.get<int64_t>() : index] = {
        served.is_number() ? served.get<int64_t>() : 0,
        state.is_string() ? state.get<std::string>() : std::string()};
    ++index;
  }
  return out;
}

int cmd_watch(Session& s, const Globals& g, int interval_ms, int count) {
  int rc = kExitOk;
  auto prev = s.call({{"cmd", "status"}}, &rc);
  if (!prev) return rc;
  const auto t0 = std::chrono::steady_clock::now();
  auto next = t0;
  std::string header;
  for (int printed = 0; count == 0 || printed < count; ++printed) {
    next += std::chrono::milliseconds(interval_ms);
    std::this_thread::sleep_until(next);
    auto cur = s.call({{"cmd", "status"}}, &rc);
    if (!cur) return rc;
    const double t_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const Json& active = member(member(*cur, "cores"), "active");
    const auto before = served_by_core(*prev);
    const auto now = served_by_core(*cur);
    int64_t total = 0;
    Json per_core = Json::array();
    std::vector<std::string> cells;
    std::string cols;
    for (const auto& [core, v] : now) {
      const auto it = before.find(core);
      const int64_t delta = v.first - (it != before.end() ? it->second.first : 0);
      total += delta;
      per_core.push_back({{"core", core}, {"served", delta}, {"state", v.second}});
      // A parked core that served nothing prints "-", so allocation changes stand out.
      cells.push_back(v.second == "parked" && delta == 0 ? "-" : fmt::format("{}", delta));
      cols += fmt::format("  {:>8}", fmt::format("c{}", core));
    }
    if (g.json) {
      fmt::print("{}\n", Json{{"t_s", t_s},
                              {"unix_s", std::chrono::duration<double>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count()},
                              {"active", active},
                              {"served", total},
                              {"per_core", per_core}}
                             .dump(-1, ' ', false, Json::error_handler_t::replace));
    } else {
      const std::string h = fmt::format("{:>7}  {:>6}  {:>9}{}", "t_s", "active", "served", cols);
      if (h != header) {
        fmt::print("{}\n", h);
        header = h;
      }
      std::string line = fmt::format("{:>7.2f}  {:>6}  {:>9}", t_s, cell(active), total);
      for (const std::string& c : cells) line += fmt::format("  {:>8}", c);
      fmt::print("{}\n", line);
    }
    std::fflush(stdout);
    prev = std::move(cur);
  }
  return kExitOk;
}

int run(int argc, char** argv) {
  CLI::App app{"dpctl: control a running kvserver through its control socket (docs/control.md)"};
  app.fallthrough();  // global flags may follow the subcommand: `dpctl status --json`
  app.require_subcommand(1);
  Globals g;
  app.add_option("--socket", g.socket, "control socket of the server")
      ->envname("FARMEM_CONTROL")
      ->capture_default_str();
  app.add_flag("--json", g.json, "print the command's result as JSON");
  app.add_option("--timeout-ms", g.timeout_ms, "give up on the server after this long")
      ->check(CLI::Range(1, 3600 * 1000))
      ->capture_default_str();

  auto* status = app.add_subcommand("status", "core allocation, per-core state and scheduler");
  auto* cores = app.add_subcommand("cores", "show the core allocation, or change it");
  int64_t cores_n = 0;
  auto* cores_set = cores->add_subcommand("set", "set the number of active cores");
  cores_set->add_option("N", cores_n, "active cores")->required()->check(CLI::NonNegativeNumber);
  auto* cores_min = cores->add_subcommand("min", "set the fewest cores the allocator keeps");
  cores_min->add_option("N", cores_n, "minimum active cores")
      ->required()
      ->check(CLI::NonNegativeNumber);
  auto* cores_max = cores->add_subcommand("max", "set the most cores the allocator uses");
  cores_max->add_option("N", cores_n, "maximum active cores")
      ->required()
      ->check(CLI::NonNegativeNumber);
  cores->require_subcommand(0, 1);

  std::string auto_state;
  auto* autoc = app.add_subcommand("auto", "turn automatic core allocation on or off");
  autoc->add_option("STATE", auto_state, "on or off")
      ->required()
      ->check(CLI::IsMember({"on", "off"}));

  bool per_core = false;
  auto* stats = app.add_subcommand("stats", "server counters");
  stats->add_flag("--core", per_core, "also print the per-core counters");

  auto* sched = app.add_subcommand("sched", "show the scheduler settings, or change them");
  std::vector<std::string> assignments;
  auto* sched_set = sched->add_subcommand("set", "change scheduler settings");
  sched_set
      ->add_option("KEY=VALUE", assignments,
                   "settings; values true/false/on/off are booleans, integers numbers, "
                   "anything else a string")
      ->required();
  sched->require_subcommand(0, 1);

  auto* memnodes =
      app.add_subcommand("memnodes", "memory nodes: state, deaths, rejoins, rebuild progress");

  int last = 20;
  auto* decisions = app.add_subcommand("decisions", "the core allocator's recent decisions");
  decisions->add_option("--last", last, "how many")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  std::string raw_line;
  auto* raw = app.add_subcommand("raw", "send one request line verbatim, print the response");
  raw->add_option("JSON", raw_line, "the request, e.g. '{\"cmd\":\"help\"}'")->required();

  int interval_ms = 1000;
  int count = 0;
  auto* watch = app.add_subcommand(
      "watch", "one line per interval: active cores and what each core served in it");
  watch->add_option("--interval-ms", interval_ms, "sampling interval")
      ->check(CLI::Range(10, 3600 * 1000))
      ->capture_default_str();
  watch->add_option("--count", count, "lines to print (0: until interrupted)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  Session s(g);
  int rc = kExitOk;
  // Commands whose result is printed as JSON or with `text`.
  auto simple = [&](Json req, auto text) {
    const auto r = s.call(std::move(req), &rc);
    if (!r) return rc;
    if (g.json) {
      print_json(*r);
    } else {
      text(*r);
    }
    return kExitOk;
  };
  auto print_generic = [](const Json& r) { fmt::print("{}", generic(r)); };

  if (*status) return simple({{"cmd", "status"}}, print_status);
  if (*cores) {
    if (*cores_set) return simple({{"cmd", "cores.set"}, {"active", cores_n}}, print_generic);
    if (*cores_min) return simple({{"cmd", "cores.set"}, {"min", cores_n}}, print_generic);
    if (*cores_max) return simple({{"cmd", "cores.set"}, {"max", cores_n}}, print_generic);
    const auto r = s.call({{"cmd", "status"}}, &rc);
    if (!r) return rc;
    const Json& c = member(*r, "cores");
    if (g.json) {
      print_json(c);
    } else {
      fmt::print("cores  {}\n", inline_pairs(c, kCoresKeys));
    }
    return kExitOk;
  }
  if (*autoc) return simple({{"cmd", "auto.set"}, {"on", auto_state == "on"}}, print_generic);
  if (*stats) {
    return simple({{"cmd", "stats"}}, [&](const Json& r) {
      fmt::print("server\n{}", name_values(member(r, "server"), {}, "  "));
      if (per_core) fmt::print("\nper core\n{}", transposed(member(r, "per_core"), "core"));
      Json rest = Json::object();
      if (r.is_object()) {
        for (const auto& [k, v] : r.items()) {
          if (k != "server" && k != "per_core") rest[k] = v;
        }
      }
      if (!rest.empty()) fmt::print("\n{}", generic(rest));
    });
  }
  if (*sched) {
    if (*sched_set) return cmd_sched_set(s, g, assignments);
    return simple({{"cmd", "sched.get"}},
                  [](const Json& r) { fmt::print("{}", name_values(r, kSchedKeys)); });
  }
  if (*decisions) {
    return simple({{"cmd", "decisions"}, {"last", last}}, [](const Json& r) {
      const Json& d = member(r, "decisions");
      if (d.is_array() && d.empty()) {
        fmt::print("no decisions recorded\n");
      } else {
        fmt::print("{}", table(d, kDecisionKeys));
      }
    });
  }
  if (*memnodes) {
    return simple({{"cmd", "memnodes"}}, [](const Json& r) {
      const Json& n = member(r, "nodes");
      if (!n.is_array() || n.empty()) {
        fmt::print("no memory nodes (local mode)\n");
        return;
      }
      fmt::print("{}", table(n, kMemnodeKeys));
      Json rest = Json::object();
      for (const auto& [k, v] : r.items()) {
        if (k != "nodes") rest[k] = v;
      }
      fmt::print("{}", inline_pairs(rest, {}));
      fmt::print("\n");
    });
  }
  if (*raw) return cmd_raw(s, g, raw_line);
  if (*watch) return cmd_watch(s, g, interval_ms, count);
  return kExitUsage;
}

}  // namespace
}  // namespace fm::dpctl

int main(int argc, char** argv) { return fm::dpctl::run(argc, argv); }
