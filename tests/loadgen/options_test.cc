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
                        "--max-error-pct",
                        "--pause",
                        "--csv",
                        "--json",
                        "--label",
                        "--progress",
                        "--quiet",
                        "--config",
                        "--queues",
                        "--multiget-keys",
                        "--multiget-ratio",
                        "--rate-steps",
                        "--timeline",
                        "--timeline-ms"}) {
    EXPECT_NE(help.find(f), std::string::npos) << f;
  }
}

TEST(MultiGetFlags, ParseAndDefaults) {
  auto o = parse({"--multiget-keys", "24", "--multiget-ratio", "0.01"});
  ASSERT_TRUE(o.is_ok()) << o.status().message();
  EXPECT_EQ(o->multiget_keys, 24u);
  EXPECT_DOUBLE_EQ(o->multiget_ratio, 0.01);
  auto off = parse({});
  ASSERT_TRUE(off.is_ok());
  EXPECT_EQ(off->multiget_keys, 0u);
  EXPECT_DOUBLE_EQ(off->multiget_ratio, 0.0);
  // 115 keys of 11 bytes: the largest request that fits one 1400-byte datagram.
  EXPECT_TRUE(parse({"--multiget-keys", "115", "--multiget-ratio", "1"}).is_ok());
}

TEST(MultiGetFlags, BadCombinationsAreClearErrors) {
  // Too many keys for one datagram: the message says why and what fits.
  std::string e = error_of({"--multiget-keys", "116", "--multiget-ratio", "0.01"});
  EXPECT_NE(e.find("--multiget-keys"), std::string::npos) << e;
  EXPECT_NE(e.find("1405-byte"), std::string::npos) << e;
  EXPECT_NE(e.find("at most 115"), std::string::npos) << e;
  e = error_of({"--multiget-keys", "1000", "--multiget-ratio", "0.01"});
  EXPECT_NE(e.find("at most 115"), std::string::npos) << e;
  e = error_of({"--multiget-keys", "10"});
  EXPECT_NE(e.find("--multiget-ratio"), std::string::npos) << e;
  e = error_of({"--multiget-ratio", "0.1"});
  EXPECT_NE(e.find("--multiget-keys"), std::string::npos) << e;
  e = error_of({"--multiget-keys", "50", "--multiget-ratio", "0.1", "--keys", "20"});
  EXPECT_NE(e.find("--keys is 20"), std::string::npos) << e;
  EXPECT_NE(error_of({"--multiget-keys", "5", "--multiget-ratio", "1.5"}).find("--multiget-ratio"),
            std::string::npos);
}

TEST(RateStepFlags, ParseIntoOneMeasurement) {
  auto o = parse({"--rate-steps", "100k@2,400k@1.5,50k@3"});
  ASSERT_TRUE(o.is_ok()) << o.status().message();
  ASSERT_EQ(o->steps.size(), 3u);
  EXPECT_DOUBLE_EQ(o->steps[1].rate, 400e3);
  EXPECT_DOUBLE_EQ(o->steps[1].seconds, 1.5);
  EXPECT_DOUBLE_EQ(o->duration_s, 6.5);
  ASSERT_EQ(o->rates.size(), 1u);  // one point, at the time-weighted mean rate
  EXPECT_NEAR(o->rates[0], (200e3 + 600e3 + 150e3) / 6.5, 1e-6);
  EXPECT_DOUBLE_EQ(max_rate(*o), 400e3);
  auto idle = parse_rate_steps("1M@0.5,0@0.25");
  ASSERT_TRUE(idle.is_ok());
  EXPECT_DOUBLE_EQ(idle.value()[1].rate, 0);
}

TEST(RateStepFlags, BadSpecsAndCombinationsNameTheFlag) {
  for (const char* bad : {"", "100k", "100k@", "@2", "100k@0", "100k@-1", "fast@1", "-5@1",
                          "100k@2,,50k@1", "0@1,0@2", "100k@1s", "2G@1"}) {
    auto r = parse_rate_steps(bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_NE(r.status().message().find("--rate-steps"), std::string::npos) << r.status().message();
  }
  std::string e = error_of({"--rate-steps", "10k@1", "--rate", "20k"});
  EXPECT_NE(e.find("--rate-steps"), std::string::npos) << e;
  EXPECT_NE(e.find("not both"), std::string::npos) << e;
  e = error_of({"--rate-steps", "10k@1", "--duration", "5"});
  EXPECT_NE(e.find("--duration"), std::string::npos) << e;
  e = error_of({"--rate-steps", "10k@1", "--requests", "500"});
  EXPECT_NE(e.find("--requests"), std::string::npos) << e;
  // The same rules hold for keys of the --config file.
  TempFile both("rate-steps = \"10k@1,20k@1\"\nrate = \"5k\"\n");
  e = error_of({"--config", both.path()});
  EXPECT_NE(e.find("not both"), std::string::npos) << e;
  TempFile steps(
      "rate-steps = \"10k@1,20k@1\"\nqueues = 2\nmultiget-keys = 8\n"
      "multiget-ratio = 0.5\ntimeline = \"/tmp/x.csv\"\n");
  auto o = parse({"--config", steps.path()});
  ASSERT_TRUE(o.is_ok()) << o.status().message();
  EXPECT_EQ(o->steps.size(), 2u);
  EXPECT_EQ(o->queue_count, 2u);
  EXPECT_EQ(o->multiget_keys, 8u);
  EXPECT_EQ(o->timeline, "/tmp/x.csv");
}

TEST(TimelineFlags, NeedsAKnownWindowAndBoundedMemory) {
  auto o = parse({"--timeline", "/tmp/t.csv", "--rate", "10k,20k"});
  ASSERT_TRUE(o.is_ok()) << o.status().message();  // works with plain --rate, default 10 ms
  EXPECT_DOUBLE_EQ(o->timeline_ms, 10.0);
  std::string e = error_of({"--timeline", "/tmp/t.csv", "--requests", "1000"});
  EXPECT_NE(e.find("--timeline"), std::string::npos) << e;
  e = error_of({"--timeline", "/tmp/t.csv", "--duration", "3600", "--timeline-ms", "1"});
  EXPECT_NE(e.find("--timeline-ms"), std::string::npos) << e;
  EXPECT_NE(error_of({"--timeline-ms", "0"}).find("--timeline-ms"), std::string::npos);
}

TEST(QueueFlags, DefaultToTheLcoresAndMayBeMore) {
  auto o = parse({"--lcores", "0,1"});
  ASSERT_TRUE(o.is_ok());
  EXPECT_EQ(o->queue_count, 2u);
  o = parse({"--lcores", "0,1,2,3", "--queues", "12"});
  ASSERT_TRUE(o.is_ok()) << o.status().message();
  EXPECT_EQ(o->queue_count, 12u);
  std::string e = error_of({"--lcores", "0,1,2", "--queues", "2"});
  EXPECT_NE(e.find("--queues"), std::string::npos) << e;
  EXPECT_NE(e.find("fewer than the 3 --lcores"), std::string::npos) << e;
  EXPECT_NE(error_of({"--queues", "300"}).find("--queues"), std::string::npos);
  // Source ports: every queue has its flows.
  e = error_of({"--queues", "200", "--flows", "64", "--src-port", "60000"});
  EXPECT_NE(e.find("--src-port"), std::string::npos) << e;
  e = error_of({"--queues", "8", "--requests", "5"});
  EXPECT_NE(e.find("--requests"), std::string::npos) << e;
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

TEST(Output, NewColumnsComeAfterTheOldOnes) {
  Options o;
  o.multiget_keys = 10;
  o.multiget_ratio = 0.01;
  o.rate_steps = "100k@2";  // one step: no comma to quote
  ASSERT_TRUE(validate(o).is_ok());
  PointReport r;
  r.mget.requests = 7;
  r.mget.latency.p99 = 123.5;
  std::vector<Field> f = config_fields(o, 1, "2024-01-01T00:00:00Z");
  for (Field& x : point_fields(r)) f.push_back(std::move(x));
  for (Field& x : config_fields_tail(o)) f.push_back(std::move(x));
  const std::string header = csv_header(f);
  // The columns of the first format, in their order, then the new ones.
  const size_t old_end = header.find(",invalid_reason") + std::string(",invalid_reason").size();
  EXPECT_NE(header.find(",get_p99_us,"), std::string::npos);  // single-key GETs
  EXPECT_LT(header.find(",get_p99_us,"), old_end);
  for (const char* col :
       {"mget_requests", "mget_replies", "mget_timeouts", "mget_p50_us", "mget_p99_us",
        "mget_p999_us", "mget_max_us", "multiget_keys", "multiget_ratio", "queues", "rate_steps"}) {
    const size_t at = (header + ",").find(std::string(",") + col + ",");
    EXPECT_NE(at, std::string::npos) << col;
    EXPECT_GE(at, old_end) << col;
  }
  const std::string row = csv_row(f);
  EXPECT_EQ(std::count(header.begin(), header.end(), ','), std::count(row.begin(), row.end(), ','));
  EXPECT_NE(row.find(",123.500,"), std::string::npos);
  EXPECT_NE(row.find(",100k@2"), std::string::npos);
}

TEST(Output, CsvQuotesTextWithCommas) {
  Field f;
  f.name = "label";
  f.text = "a,\"b\"";
  EXPECT_EQ(csv_row({f}), "\"a,\"\"b\"\"\"");
}

}  // namespace
}  // namespace fm::loadgen
