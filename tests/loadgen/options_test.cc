// Flags, the TOML config file and output formats: bad input names the flag, files are strict.
#include "tools/loadgen/options.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "tools/loadgen/report.h"

namespace fm::loadgen {
namespace {

Result<Options> parse(std::vector<std::string> args) {
  args.insert(args.begin(), "loadgen");
  auto o = parse_args(args);
  if (!o) return o;
  Options v = std::move(o.value());
  if (Status st = validate(v); !st) return st;
  return v;
}

std::string error_of(std::vector<std::string> args) {
  auto o = parse(std::move(args));
  return o.is_ok() ? "<ok>" : o.status().message();
}

class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    path_ = "/tmp/loadgen-options-test-" + std::to_string(::getpid()) + "-" + std::to_string(n_++) +
            ".toml";
    std::ofstream(path_) << text;
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  static inline int n_ = 0;
  std::string path_;
};

TEST(Rates, SingleListAndRanges) {
  auto r = parse_rates("100000");
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r.value(), std::vector<double>({100000}));
  r = parse_rates("100k,1.5M,2e6");
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r.value(), std::vector<double>({1e5, 1.5e6, 2e6}));
  r = parse_rates("100k:500k:100k");
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r.value(), std::vector<double>({1e5, 2e5, 3e5, 4e5, 5e5}));
  r = parse_rates("1k:8k:x2,20k");
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r.value(), std::vector<double>({1e3, 2e3, 4e3, 8e3, 2e4}));
}

TEST(Rates, BadSpecsNameTheFlag) {
  for (const char* bad : {"", "abc", "0", "-5", "100k:", "100k:50k:10k", "1k:2k:0", "1k:2k:x1",
                          "1:1e9:1", "5G", "100k,,200k", "+5"}) {
    auto r = parse_rates(bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_NE(r.status().message().find("--rate"), std::string::npos) << r.status().message();
  }
}

TEST(Flags, DefaultsAreValid) {
  auto o = parse({});
  ASSERT_TRUE(o.is_ok()) << o.status().message();
  EXPECT_EQ(o->backend_kind, BackendKind::kDpdk);
  EXPECT_EQ(o->server_ip, "10.77.0.1");
  EXPECT_EQ(o->rates, std::vector<double>({100000}));
  EXPECT_EQ(o->label, "dpdk");
  EXPECT_DOUBLE_EQ(o->late_us, 10.0);
}

TEST(Flags, SocketBackendDefaultsToLoopback) {
  auto o = parse({"--backend", "socket", "--lcores", "0,1", "--rate", "10k,20k"});
  ASSERT_TRUE(o.is_ok()) << o.status().message();
  EXPECT_EQ(o->backend_kind, BackendKind::kSocket);
  EXPECT_EQ(o->server_ip, "127.0.0.1");
  EXPECT_EQ(o->lcores, std::vector<uint32_t>({0, 1}));
  EXPECT_DOUBLE_EQ(o->late_us, 50.0);  // auto: a syscall per send
}

TEST(Flags, BadValuesNameTheFlag) {
  EXPECT_NE(error_of({"--rate", "fast"}).find("--rate"), std::string::npos);
  EXPECT_NE(error_of({"--get-ratio", "1.5"}).find("--get-ratio"), std::string::npos);
  EXPECT_NE(error_of({"--keys", "0"}).find("--keys"), std::string::npos);
  EXPECT_NE(error_of({"--value-size", "5000"}).find("--value-size"), std::string::npos);
  EXPECT_NE(error_of({"--key-dist", "zipf:-1"}).find("--key-dist"), std::string::npos);
  EXPECT_NE(error_of({"--backend", "rdma"}).find("--backend"), std::string::npos);
  EXPECT_NE(error_of({"--arrival", "bursty"}).find("--arrival"), std::string::npos);
  EXPECT_NE(error_of({"--lcores", "0,0"}).find("--lcores"), std::string::npos);
  EXPECT_NE(error_of({"--flows", "3"}).find("--flows"), std::string::npos);
  EXPECT_NE(error_of({"--server-ip", "10.0.0.256"}).find("--server-ip"), std::string::npos);
  EXPECT_NE(error_of({"--ip", "nope"}).find("--ip"), std::string::npos);
  EXPECT_NE(error_of({"--timeout-ms", "0"}).find("--timeout-ms"), std::string::npos);
  EXPECT_NE(error_of({"--duration", "-1"}).find("--duration"), std::string::npos);
  EXPECT_NE(error_of({"--server-port", "70000"}).find("--server-port"), std::string::npos);
  EXPECT_NE(error_of({"--no-such-flag"}).find("--no-such-flag"), std::string::npos);
}

TEST(Flags, HelpListsEveryFlag) {
  auto o = parse_args({"loadgen", "--help"});
  ASSERT_FALSE(o.is_ok());
  EXPECT_EQ(o.status().code(), Errc::kNotFound);
  const std::string& help = o.status().message();
  for (const char* f : {"--backend",
                        "--lcores",
                        "--vdev",
                        "--pci",
                        "--hugepages",
                        "--memory-mb",
                        "--mbufs",
                        "--eal-arg",
                        "--ip",
                        "--server-ip",
                        "--server-port",
                        "--src-port",
                        "--udp-checksum",
                        "--connect-timeout",
                        "--keys",
                        "--key-dist",
                        "--value-size",
                        "--get-ratio",
                        "--no-preload",
                        "--preload-window",
                        "--no-verify",
                        "--rate",
                        "--arrival",
                        "--duration",
                        "--requests",
                        "--warmup",
                        "--timeout-ms",
                        "--late-us",
                        "--min-adherence",
                        "--flows",
                        "--seed",
                        "--stop-p99-us",
                        "--retries",
                        "--pause",
                        "--csv",
                        "--json",
                        "--label",
                        "--progress",
                        "--quiet",
                        "--config"}) {
    EXPECT_NE(help.find(f), std::string::npos) << f;
  }
}

TEST(ConfigFile, KeysAreFlagNamesAndTheCommandLineWins) {
  TempFile f(R"(# a sweep
backend = "socket"
rate = "10k:30k:10k"
lcores = [0, 1]
keys = 5000
get_ratio = 0.9
no-verify = true
timeout-ms = 50
)");
  auto o = parse({"--config", f.path(), "--keys", "7000"});
  ASSERT_TRUE(o.is_ok()) << o.status().message();
  EXPECT_EQ(o->backend_kind, BackendKind::kSocket);
  EXPECT_EQ(o->rates, std::vector<double>({1e4, 2e4, 3e4}));
  EXPECT_EQ(o->lcores, std::vector<uint32_t>({0, 1}));
  EXPECT_EQ(o->keys, 7000u);  // the command line wins
  EXPECT_DOUBLE_EQ(o->get_ratio, 0.9);
  EXPECT_FALSE(o->verify);
  EXPECT_DOUBLE_EQ(o->timeout_ms, 50);
  EXPECT_EQ(o->config_file, f.path());
}

TEST(ConfigFile, TheShippedExampleIsValid) {
  const char* path = std::getenv("LOADGEN_EXAMPLE");
  if (path == nullptr) GTEST_SKIP() << "LOADGEN_EXAMPLE (tools/loadgen/example.toml) is not set";
  auto o = parse({"--config", path});
  ASSERT_TRUE(o.is_ok()) << o.status().message();
  EXPECT_EQ(o->key_dist, "zipf:0.99");
  EXPECT_EQ(o->rates.size(), 10u);
  EXPECT_EQ(o->retries, 2u);
}

TEST(ConfigFile, UnknownKeysAndBadValuesAreNamed) {
  TempFile unknown("rate = \"10k\"\nspeed = 5\n");
  std::string e = error_of({"--config", unknown.path()});
  EXPECT_NE(e.find("speed"), std::string::npos) << e;
  EXPECT_NE(e.find(unknown.path()), std::string::npos) << e;

  TempFile bad_value("get-ratio = 3.0\n");
  e = error_of({"--config", bad_value.path()});
  EXPECT_NE(e.find("--get-ratio"), std::string::npos) << e;

  TempFile bad_rate("rate = \"lots\"\n");
  e = error_of({"--config", bad_rate.path()});
  EXPECT_NE(e.find("--rate"), std::string::npos) << e;
}

TEST(ConfigFile, SyntaxErrorsNameFileAndLine) {
  TempFile f("rate = \"10k\"\nkeys = = 3\n");
  const std::string e = error_of({"--config", f.path()});
  EXPECT_NE(e.find(f.path() + ":2:"), std::string::npos) << e;
}

TEST(ConfigFile, MissingFileIsNamed) {
  const std::string e = error_of({"--config", "/nonexistent/loadgen.toml"});
  EXPECT_NE(e.find("--config"), std::string::npos) << e;
  EXPECT_NE(e.find("/nonexistent/loadgen.toml"), std::string::npos) << e;
}

TEST(AutoFlows, EnoughIdsForRateTimesTimeout) {
  EXPECT_EQ(auto_flows(100'000, 0.1), 1u);    // 10k in flight at most
  EXPECT_EQ(auto_flows(1'000'000, 0.1), 4u);  // 100k in flight: a 2x margin needs 200k ids
  EXPECT_EQ(auto_flows(1e9, 10), 64u);        // capped
}

TEST(Output, CsvHasEveryColumnAndInfForDrops) {
  Options o;
  ASSERT_TRUE(validate(o).is_ok());
  PointReport r;
  r.offered_rps = 1000;
  r.all.latency.p99 = std::numeric_limits<double>::infinity();
  r.all.latency.p50 = 12.5;
  r.valid = false;
  r.invalid_reason = "generator fell behind: 90.00% of requests sent on schedule < 99%";
  std::vector<Field> f = config_fields(o, 1, "2024-01-01T00:00:00Z");
  for (Field& x : point_fields(r)) f.push_back(std::move(x));
  const std::string header = csv_header(f), row = csv_row(f);
  for (const char* col : {"label",      "backend",       "cores",        "keys",
                          "key_dist",   "value_size",    "get_ratio",    "arrival",
                          "timeout_ms", "seed",          "offered_rps",  "achieved_rps",
                          "p50_us",     "p99_us",        "p999_us",      "drops",
                          "wrong",      "adherence_pct", "attempts",     "all_p9999_us",
                          "get_p50_us", "set_max_us",    "get_timeouts", "set_server_errors",
                          "valid",      "invalid_reason"}) {
    EXPECT_NE(("," + header + ",").find(std::string(",") + col + ","), std::string::npos) << col;
  }
  // Same number of cells; infinite latency is "inf"; the row says INVALID.
  EXPECT_EQ(std::count(header.begin(), header.end(), ','), std::count(row.begin(), row.end(), ','));
  EXPECT_NE(row.find(",inf,"), std::string::npos);
  EXPECT_NE(row.find(",12.500,"), std::string::npos);
  EXPECT_NE(row.find(",0,generator fell behind"), std::string::npos);
  const std::string json = json_object(f);
  EXPECT_NE(json.find("\"p99_us\": null"), std::string::npos) << json;
  EXPECT_NE(json.find("\"valid\": false"), std::string::npos);
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
}

TEST(Output, CsvQuotesTextWithCommas) {
  Field f;
  f.name = "label";
  f.text = "a,\"b\"";
  EXPECT_EQ(csv_row({f}), "\"a,\"\"b\"\"\"");
}

}  // namespace
}  // namespace fm::loadgen
