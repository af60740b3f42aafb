// Flags (CLI11), the optional TOML file (toml++, behind a CLI11 config formatter) and checks.
#include "tools/loadgen/options.h"

#include <fmt/core.h>
#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <memory>
#include <set>
#include <sstream>

#include "net/packet.h"
#include "tools/loadgen/exit_code.h"
#include "tools/loadgen/spec_parse.h"
#include "tools/loadgen/timeline.h"
#include "tools/loadgen/workload.h"

namespace fm::loadgen {
namespace {

/// Reads the --config file with toml++ and hands CLI11 one item per top-level key, so a key
/// goes through exactly the checks of the flag with the same long name (and the command line
/// wins over the file). toml++ throws on syntax errors: caught here and rethrown as CLI11's
/// own error type, which parse_args turns into a Status like every other bad input.
class TomlConfig : public CLI::ConfigBase {
 public:
  explicit TomlConfig(const CLI::App* app) : app_(app) {}
  void set_file(std::string f) { file_ = std::move(f); }

  std::vector<CLI::ConfigItem> from_config(std::istream& in) const override {
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    toml::table table;
    try {
      table = toml::parse(text, std::string_view(file_));
    } catch (const toml::parse_error& e) {
      throw CLI::ConfigError(fmt::format("{}:{}:{}: {}", file_, e.source().begin.line,
                                         e.source().begin.column, e.description()));
    }
    std::vector<CLI::ConfigItem> items;
    for (const auto& [k, node] : table) {
      std::string name(k.str());
      for (char& c : name)
        if (c == '_') c = '-';
      const CLI::Option* op = app_->get_option_no_throw("--" + name);
      if (op == nullptr || name == "config" || name == "help") {
        throw CLI::ConfigError(
            fmt::format("{}: unknown key '{}' (keys are the long flag names "
                        "of --help, without the dashes)",
                        file_, k.str()));
      }
      CLI::ConfigItem item;
      item.name = name;
      if (const toml::array* a = node.as_array()) {
        for (const auto& e : *a) item.inputs.push_back(scalar(e, k.str()));
      } else {
        item.inputs.push_back(scalar(node, k.str()));
      }
      items.push_back(std::move(item));
    }
    return items;
  }

 private:
  std::string scalar(const toml::node& n, std::string_view key) const {
    if (auto s = n.value_exact<std::string>()) return *s;
    if (auto b = n.value_exact<bool>()) return *b ? "true" : "false";
    if (auto i = n.value_exact<int64_t>()) return std::to_string(*i);
    if (auto d = n.value_exact<double>()) return fmt::format("{}", *d);
    throw CLI::ConfigError(
        fmt::format("{}: {}: expected a string, number, boolean or an array "
                    "of them",
                    file_, key));
  }

  const CLI::App* app_;
  std::string file_;
};

/// Adds every flag to `app`, bound to `o`.
void add_flags(CLI::App& app, Options& o) {
  app.get_formatter()->column_width(34);
  app.footer(exit_code_help());
  const char* where = "Where requests go";
  app.add_option("--backend", o.backend,
                 "dpdk: a DPDK port (kernel bypass, memif client by "
                 "default); socket: kernel UDP sockets with sendmmsg/recvmmsg (any memcached -U)")
      ->check(CLI::IsMember({"dpdk", "socket"}))
      ->capture_default_str()
      ->group(where);
  app.add_option("--lcores", o.lcores,
                 "CPUs of the load cores, comma-separated; each is one pinned thread that "
                 "drives its share of the --queues")
      ->delimiter(',')
      ->capture_default_str()
      ->group(where);
  app.add_option("--queues", o.queues,
                 "queue pairs (dpdk; the memif/NIC queue count) or socket sets (socket), each "
                 "with its own schedule and source port(s), spread over the lcores "
                 "round-robin (queue q on lcore q mod lcores); 0 = one per lcore. Over memif "
                 "it must equal the server's queue pairs (queue q meets the server's queue "
                 "q): --queues 12 drives a 12-core kvserver from fewer lcores")
      ->check(CLI::Range(0u, 256u))
      ->capture_default_str()
      ->group(where);
  app.add_option("--vdev", o.vdev,
                 "dpdk: the DPDK virtual device (any net_memif/af_packet/"
                 "af_xdp/tap spec)")
      ->capture_default_str()
      ->group(where);
  app.add_option("--pci", o.pci, "dpdk: a PCI NIC to use instead of --vdev")->group(where);
  app.add_option("--hugepages", o.hugepages, "dpdk: auto | on | off (off = --no-huge)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str()
      ->group(where);
  app.add_option("--memory-mb", o.memory_mb, "dpdk: EAL memory in MiB")
      ->check(CLI::Range(16u, 1u << 20))
      ->capture_default_str()
      ->group(where);
  app.add_option("--mbufs", o.mbufs, "dpdk: mbufs in the port's pool")
      ->check(CLI::Range(1023u, 1u << 24))
      ->capture_default_str()
      ->group(where);
  app.add_option("--eal-arg", o.eal_args,
                 "dpdk: one extra EAL argument, verbatim; repeat for "
                 "several (e.g. --eal-arg=--single-file-segments)")
      ->allow_extra_args(false)
      ->group(where);
  app.add_option("--ip", o.ip, "dpdk: this client's IPv4 address")
      ->capture_default_str()
      ->group(where);
  app.add_option("--server-ip", o.server_ip,
                 "the server's IPv4 address (default 10.77.0.1 for "
                 "dpdk, 127.0.0.1 for socket)")
      ->group(where);
  app.add_option("--server-port", o.server_port, "the server's UDP port")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str()
      ->group(where);
  app.add_option("--src-port", o.src_port,
                 "first source UDP port; queue pair i, flow f sends from "
                 "src-port + i*flows + f")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str()
      ->group(where);
  app.add_flag("--udp-checksum", o.udp_checksum,
               "dpdk: fill UDP checksums (default: 0, i.e. "
               "none, which IPv4 allows)")
      ->group(where);
  app.add_option("--connect-timeout", o.connect_timeout_s,
                 "seconds to wait for the link, ARP "
                 "and the server's first answer")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str()
      ->group(where);

  const char* what = "Workload";
  app.add_option("--keys", o.keys, "key space size: keys k0000000000 .. k<keys-1>")
      ->check(CLI::Range(uint64_t(1), uint64_t(10'000'000'000)))
      ->capture_default_str()
      ->group(what);
  app.add_option("--key-dist", o.key_dist,
                 "key popularity: uniform | zipf:S (S > 0; key 0 is "
                 "the hottest)")
      ->capture_default_str()
      ->group(what);
  app.add_option("--value-size", o.value_size,
                 "value bytes: N | fixed:N | uniform:MIN-MAX | "
                 "exp:MEAN | etc (Facebook ETC); a pure function of the key, 1..1300")
      ->capture_default_str()
      ->group(what);
  app.add_option("--get-ratio", o.get_ratio,
                 "share of GETs, the rest are SETs (of the requests that are not multi-key GETs)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str()
      ->group(what);
  app.add_flag("!--no-preload", o.preload, "do not store every key before measuring")->group(what);
  app.add_option("--preload-window", o.preload_window, "SETs in flight per core while preloading")
      ->check(CLI::Range(1u, 65536u))
      ->capture_default_str()
      ->group(what);
  app.add_flag("!--no-verify", o.verify, "do not check GET values against what was stored")
      ->group(what);
  app.add_option("--multiget-keys", o.multiget_keys,
                 "keys of a multi-key GET: one 'get k1 .. kN' command (N distinct keys from "
                 "--key-dist) whose reply may span several datagrams; done when all have "
                 "arrived. The request must fit one datagram: N <= 115. 0 = none")
      ->capture_default_str()
      ->group(what);
  app.add_option("--multiget-ratio", o.multiget_ratio,
                 "share of requests that are multi-key GETs (e.g. 0.01); --get-ratio splits "
                 "the rest. Reported apart as mget_*, single-key GETs as get_*")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str()
      ->group(what);

  const char* how = "Load and timing";
  app.add_option("--rate", o.rate,
                 "offered load in requests/s over all cores: a rate (250k, "
                 "1.5M), a list (100k,200k) or ranges FROM:TO:STEP / FROM:TO:xFACTOR; one "
                 "point each")
      ->capture_default_str()
      ->group(how);
  app.add_option("--rate-steps", o.rate_steps,
                 "one measurement whose offered rate changes over time, instead of --rate and "
                 "--duration: RATE@SECONDS,... (RATE as in --rate, 0 = idle), e.g. "
                 "100k@2,400k@1.5,50k@3; the schedule stays open-loop Poisson per step and the "
                 "warm-up runs at the first step's rate")
      ->group(how);
  app.add_option("--arrival", o.arrival, "inter-arrival times: poisson (exponential) | constant")
      ->check(CLI::IsMember({"poisson", "constant"}))
      ->capture_default_str()
      ->group(how);
  app.add_option("--duration", o.duration_s, "measured seconds per rate point")
      ->check(CLI::Range(0.001, 86400.0))
      ->capture_default_str()
      ->group(how);
  app.add_option("--requests", o.requests,
                 "measure this many requests per point instead of "
                 "--duration (0 = use --duration)")
      ->capture_default_str()
      ->group(how);
  app.add_option("--warmup", o.warmup_s, "seconds sent but not measured before each point")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str()
      ->group(how);
  app.add_option("--timeout-ms", o.timeout_ms,
                 "a reply later than this after its scheduled "
                 "time is a drop (infinite latency)")
      ->check(CLI::Range(0.01, 60000.0))
      ->capture_default_str()
      ->group(how);
  app.add_option("--late-us", o.late_us,
                 "a request sent later than this after its scheduled "
                 "time is late (schedule adherence); 0 = 10 for dpdk, 50 for socket, whose "
                 "sends are syscalls of several us")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str()
      ->group(how);
  app.add_option("--min-adherence", o.min_adherence,
                 "percent of requests that must be sent "
                 "on schedule, else the point is INVALID")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str()
      ->group(how);
  app.add_option("--flows", o.flows,
                 "source ports per queue pair (1, 2, 4 .. 64), each with its own "
                 "65536 request ids; 0 = enough for rate x timeout")
      ->capture_default_str()
      ->group(how);
  app.add_option("--seed", o.seed, "seed of every schedule and key choice")
      ->capture_default_str()
      ->group(how);
  app.add_option("--stop-p99-us", o.stop_p99_us,
                 "end a sweep after the first point whose p99 "
                 "exceeds this (0 = run every point)")
      ->check(CLI::Range(0.0, 1e12))
      ->capture_default_str()
      ->group(how);
  app.add_option("--retries", o.retries,
                 "rerun a point that came out INVALID (generator fell "
                 "behind) up to this many times; the row says how many attempts it took")
      ->check(CLI::Range(0u, 100u))
      ->capture_default_str()
      ->group(how);
  app.add_option("--max-error-pct", o.max_error_pct,
                 "exit status 3 when some point has more than this percent of its requests "
                 "time out or answered with an error (0: any); the measurement is the same")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str()
      ->group(how);
  app.add_option("--pause", o.pause_s, "idle seconds between rate points")
      ->check(CLI::Range(0.0, 60.0))
      ->capture_default_str()
      ->group(how);

  const char* out = "Output";
  app.add_option("--csv", o.csv,
                 "write one CSV row per rate point (every field + the "
                 "configuration) to this file")
      ->group(out);
  app.add_option("--json", o.json, "write one JSON object per line per rate point to this file")
      ->group(out);
  app.add_option("--label", o.label,
                 "name of this run in CSV/JSON and plot legends (default: "
                 "the backend)")
      ->group(out);
  app.add_option("--timeline", o.timeline,
                 "write one CSV row per --timeline-ms interval of each measured window: t_ms, "
                 "offered_rps, achieved_rps, p50/p99/max_us of the requests due in it, "
                 "timeouts, late_sends, ..., errors, wrong, misses (not with --requests)")
      ->group(out);
  app.add_option("--timeline-ms", o.timeline_ms, "interval of the --timeline rows, in ms")
      ->check(CLI::Range(0.01, 60000.0))
      ->capture_default_str()
      ->group(out);
  app.add_option("--progress", o.progress_s, "seconds between progress lines on stderr (0 = none)")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str()
      ->group(out);
  app.add_flag("--quiet", o.quiet,
               "no table on stdout (INVALID banners and errors still "
               "print)")
      ->group(out);
}

std::string usage_intro() {
  return "loadgen: open-loop memcached-UDP load generator (DPDK or kernel sockets).\n"
         "Latency is measured from each request's scheduled send time; requests not answered "
         "within --timeout-ms count as infinite latency; a point whose generator fell behind "
         "is marked INVALID. Every flag may also be a key of the --config TOML file.";
}

}  // namespace

Result<std::vector<double>> parse_rates(std::string_view spec) {
  std::vector<double> out;
  const auto bad = [&](std::string_view item, std::string_view why) {
    return error(Errc::kInvalidArgument,
                 fmt::format("--rate: '{}': {} (forms: 250k, 100k,200k, FROM:TO:STEP, "
                             "FROM:TO:xFACTOR)",
                             item, why));
  };
  if (spec.empty()) return bad(spec, "empty");
  size_t pos = 0;
  while (pos <= spec.size()) {
    const size_t comma = spec.find(',', pos);
    const std::string_view item =
        spec.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    pos = comma == std::string_view::npos ? spec.size() + 1 : comma + 1;
    const auto rate = [&](std::string_view t) -> std::optional<double> {
      auto v = parse_number(t);
      if (!v || !(*v >= 1) || *v > 1e9) return std::nullopt;
      return v;
    };
    const size_t c1 = item.find(':');
    if (c1 == std::string_view::npos) {
      auto v = rate(item);
      if (!v) return bad(item, "a rate must be a number in [1, 1e9]");
      out.push_back(*v);
    } else {
      const size_t c2 = item.find(':', c1 + 1);
      if (c2 == std::string_view::npos) return bad(item, "a range needs FROM:TO:STEP");
      auto from = rate(item.substr(0, c1));
      auto to = rate(item.substr(c1 + 1, c2 - c1 - 1));
      if (!from || !to) return bad(item, "FROM and TO must be rates in [1, 1e9]");
      if (*to < *from) return bad(item, "TO is below FROM");
      std::string_view step_s = item.substr(c2 + 1);
      const bool geometric = !step_s.empty() && (step_s[0] == 'x' || step_s[0] == '*');
      if (geometric) step_s.remove_prefix(1);
      auto step = parse_number(step_s, !geometric);
      if (!step || (geometric ? !(*step > 1.0) : !(*step > 0))) {
        return bad(item, geometric ? "FACTOR must be > 1" : "STEP must be > 0");
      }
      // A tolerance so that 100k:1M:100k ends at 1M despite rounding.
      for (double r = *from; r <= *to * (1 + 1e-9); r = geometric ? r * *step : r + *step) {
        out.push_back(r);
        if (out.size() > 1000) return bad(item, "more than 1000 points");
      }
    }
    if (out.size() > 1000) return bad(item, "more than 1000 points");
  }
  return out;
}

Result<std::vector<RateStep>> parse_rate_steps(std::string_view spec) {
  std::vector<RateStep> out;
  const auto bad = [&](std::string_view item, std::string_view why) {
    return error(Errc::kInvalidArgument,
                 fmt::format("--rate-steps: '{}': {} (form: RATE@SECONDS,..., e.g. "
                             "100k@2,400k@1.5,50k@3)",
                             item, why));
  };
  if (spec.empty()) return bad(spec, "empty");
  size_t pos = 0;
  bool any = false;
  while (pos <= spec.size()) {
    const size_t comma = spec.find(',', pos);
    const std::string_view item =
        spec.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    pos = comma == std::string_view::npos ? spec.size() + 1 : comma + 1;
    const size_t at = item.find('@');
    if (at == std::string_view::npos) return bad(item, "a step needs RATE@SECONDS");
    const auto rate = parse_number(item.substr(0, at));
    if (!rate || !(*rate >= 0) || *rate > 1e9)
      return bad(item, "RATE must be a number in [0, 1e9]");
    const auto secs = parse_number(item.substr(at + 1), false);
    if (!secs || !(*secs > 0) || *secs > 86400) {
      return bad(item, "SECONDS must be a number in (0, 86400]");
    }
    out.push_back({*rate, *secs});
    any = any || *rate > 0;
    if (out.size() > 10000) return bad(item, "more than 10000 steps");
  }
  if (!any) return bad(spec, "every step has rate 0");
  return out;
}

double max_rate(const Options& o) {
  double m = 0;
  for (double r : o.rates) m = std::max(m, r);
  for (const RateStep& s : o.steps) m = std::max(m, s.rate);
  return m;
}

Result<Options> parse_args(const std::vector<std::string>& args) {
  Options o;
  CLI::App app{usage_intro(), "loadgen"};
  add_flags(app, o);
  auto cfg = std::make_shared<TomlConfig>(&app);
  app.config_formatter(cfg);
  app.set_config("--config", "",
                 "TOML file whose keys are long flag names (rate = \"100k\", "
                 "lcores = [0, 1], no-verify = true); flags on the command line win")
      ->group("Output");
  app.allow_config_extras(CLI::config_extras_mode::error);
  // The file name for messages: CLI11 hands the formatter only a stream.
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size())
      cfg->set_file(args[i + 1]);
    else if (args[i].starts_with("--config="))
      cfg->set_file(args[i].substr(9));
  }
  std::vector<std::string> rev(args.rbegin(), args.rend() - (args.empty() ? 0 : 1));
  try {
    app.parse(rev);
  } catch (const CLI::CallForHelp&) {
    return error(Errc::kNotFound, app.help());
  } catch (const CLI::ParseError& e) {
    std::string msg = e.what();
    if (dynamic_cast<const CLI::FileError*>(&e) != nullptr) msg = "--config: " + msg;
    return error(Errc::kInvalidArgument, msg);
  }
  if (const CLI::Option* c = app.get_option("--config"); c && c->count())
    o.config_file = c->as<std::string>();
  o.rate_given = app.get_option("--rate")->count() > 0;
  o.duration_given = app.get_option("--duration")->count() > 0;
  return o;
}

std::string help_text() {
  Options o;
  CLI::App app{usage_intro(), "loadgen"};
  add_flags(app, o);
  app.set_config("--config", "", "TOML file whose keys are long flag names; flags win")
      ->group("Output");
  return app.help();
}

Status validate(Options& o) {
  const auto bad = [](const std::string& m) { return error(Errc::kInvalidArgument, m); };
  o.backend_kind = o.backend == "socket" ? BackendKind::kSocket : BackendKind::kDpdk;
  o.arrival_kind = o.arrival == "constant" ? Arrival::kConstant : Arrival::kPoisson;
  if (o.server_ip.empty())
    o.server_ip = o.backend_kind == BackendKind::kDpdk ? "10.77.0.1" : "127.0.0.1";
  if (o.label.empty()) o.label = o.backend;
  if (o.late_us == 0) o.late_us = o.backend_kind == BackendKind::kDpdk ? 10.0 : 50.0;
  if (o.lcores.empty()) return bad("--lcores: at least one CPU is needed");
  if (o.lcores.size() > 64) return bad("--lcores: at most 64 cores");
  std::set<uint32_t> seen;
  for (uint32_t c : o.lcores) {
    if (c >= 1024) return bad(fmt::format("--lcores: CPU {} is out of range [0, 1023]", c));
    if (!seen.insert(c).second) return bad(fmt::format("--lcores: CPU {} is listed twice", c));
  }
  o.queue_count = o.queues ? o.queues : uint32_t(o.lcores.size());
  if (o.queue_count < o.lcores.size()) {
    return bad(
        fmt::format("--queues: {} is fewer than the {} --lcores (each lcore drives at "
                    "least one queue pair)",
                    o.queues, o.lcores.size()));
  }
  if (o.queue_count > 256) return bad(fmt::format("--queues: {} is above 256", o.queue_count));
  if (o.flows != 0 && (o.flows > 64 || (o.flows & (o.flows - 1)) != 0)) {
    return bad(fmt::format("--flows: {} is not 0 (auto) or a power of two up to 64", o.flows));
  }
  if (auto ip = net::parse_ipv4(o.server_ip, "--server-ip"); !ip) return ip.status();
  if (o.backend_kind == BackendKind::kDpdk) {
    if (auto ip = net::parse_ipv4(o.ip, "--ip"); !ip) return ip.status();
    if (o.vdev.empty() && o.pci.empty()) return bad("--vdev: empty, and no --pci either");
  }
  if (!o.rate_steps.empty()) {
    if (o.rate_given) {
      return bad(
          "--rate-steps: give either --rate (a point per rate) or --rate-steps (one "
          "measurement whose rate changes), not both");
    }
    if (o.duration_given) {
      return bad("--rate-steps: the steps' SECONDS make up the measurement; drop --duration");
    }
    if (o.requests > 0) return bad("--rate-steps: cannot be combined with --requests");
    auto steps = parse_rate_steps(o.rate_steps);
    if (!steps) return steps.status();
    o.steps = std::move(steps.value());
    double total = 0, sent = 0;
    for (const RateStep& s : o.steps) {
      total += s.seconds;
      sent += s.rate * s.seconds;
    }
    o.duration_s = total;
    o.rates = {sent / total};
  } else {
    auto rates = parse_rates(o.rate);
    if (!rates) return rates.status();
    o.rates = std::move(rates.value());
    o.steps.clear();
  }
  if (auto k = KeyDist::parse(o.key_dist, o.keys, "--key-dist"); !k) return k.status();
  if (auto v = ValueSizes::parse(o.value_size, "--value-size"); !v) return v.status();
  const uint64_t max_flows = o.flows ? o.flows : 64;
  if (uint64_t(o.src_port) + o.queue_count * max_flows - 1 > 65535) {
    return bad(fmt::format("--src-port: {} + {} queues x {} flows runs past port 65535", o.src_port,
                           o.queue_count, max_flows));
  }
  if (o.requests > 0 && o.requests < o.queue_count) {
    return bad("--requests: fewer than one request per queue");
  }
  if (o.multiget_keys > 0 || o.multiget_ratio > 0) {
    if (o.multiget_keys == 0)
      return bad("--multiget-ratio: set --multiget-keys too (keys per multi-key GET)");
    if (o.multiget_ratio == 0) {
      return bad(
          "--multiget-keys: set --multiget-ratio too (the share of requests that are "
          "multi-key GETs, e.g. 0.01)");
    }
    if (o.multiget_keys > kMaxMultiGetKeys) {
      return bad(fmt::format(
          "--multiget-keys: {} keys of {} bytes make a {}-byte 'get' request, but a request "
          "must fit one {}-byte datagram: at most {} keys",
          o.multiget_keys, kKeyLen, multiget_request_len(o.multiget_keys), kMaxDatagramLen,
          kMaxMultiGetKeys));
    }
    if (o.multiget_keys > o.keys) {
      return bad(fmt::format("--multiget-keys: {} distinct keys per request, but --keys is {}",
                             o.multiget_keys, o.keys));
    }
  }
  if (!o.timeline.empty()) {
    if (o.requests > 0) {
      return bad(
          "--timeline: needs a measured window of known length (--duration or "
          "--rate-steps), not --requests");
    }
    const double intervals = std::ceil(o.duration_s * 1e3 / o.timeline_ms);
    const double bytes = intervals * double(o.queue_count + 1) * double(kTimelineBucketBytes);
    if (bytes > double(1ull << 30)) {
      return bad(fmt::format(
          "--timeline-ms: {:g} ms over {:g} s is {:.0f} intervals; with {} "
          "queues that takes {:.0f} MiB (at most 1024): raise --timeline-ms",
          o.timeline_ms, o.duration_s, intervals, o.queue_count, bytes / double(1 << 20)));
    }
  }
  if (o.late_us * 1e-3 >= o.timeout_ms) return bad("--late-us: must be below --timeout-ms");
  return Status::ok();
}

uint32_t auto_flows(double per_core_rate, double timeout_s) {
  const double need = per_core_rate * timeout_s * 2.0 / 65536.0;
  uint32_t f = 1;
  while (f < 64 && double(f) < need) f <<= 1;
  return f;
}

}  // namespace fm::loadgen
