// End to end: the loadgen binary against kvserver over memif, against the instant reflector,
// and (kernel-socket backend) against stock memcached -U; its CSV/JSON and its exit codes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fm {
namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

/// CSV rows as column -> value maps (the loadgen quotes no field these tests look at).
std::vector<std::map<std::string, std::string>> read_csv(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::vector<std::string> header;
  std::vector<std::map<std::string, std::string>> rows;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    const std::vector<std::string> cells = split(line, ',');
    if (header.empty()) {
      header = cells;
      continue;
    }
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < header.size() && i < cells.size(); ++i) row[header[i]] = cells[i];
    rows.push_back(std::move(row));
  }
  return rows;
}

/// A child process with stdout+stderr in a file; killed (SIGTERM, then SIGKILL) on destruction.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& log) : log_(log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      FILE* f = std::freopen(log.c_str(), "w", stdout);
      (void)f;
      ::dup2(::fileno(stdout), 2);
      std::vector<char*> a;
      for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      ::execv(a[0], a.data());
      std::_Exit(127);
    }
  }
  ~Child() { stop(); }

  /// Waits up to `timeout_s` for the exit; returns the exit code, or -1 on timeout/signal.
  int wait(double timeout_s) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    if (wait(5) == -1 && pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
  }

  bool alive() const { return pid_ > 0 && ::kill(pid_, 0) == 0; }
  std::string log() const { return slurp(log_); }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

class LoadgenE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    loadgen_ = env_or_empty("LOADGEN");
    ASSERT_FALSE(loadgen_.empty()) << "LOADGEN (path of build/tools/loadgen/loadgen) is not set";
    tag_ = "/tmp/farmem-lg-e2e-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
  void TearDown() override {
    for (const char* ext : {".sock", ".csv", ".json", ".toml", ".server.log", ".loadgen.log"})
      ::unlink((tag_ + ext).c_str());
  }

  std::string vdev_client() const {
    return "net_memif0,role=client,socket=" + tag_ +
           ".sock,socket-abstract=no,mac=02:fa:00:00:00:02";
  }
  std::string vdev_server() const {
    return "net_memif0,role=server,socket=" + tag_ +
           ".sock,socket-abstract=no,mac=02:fa:00:00:00:01";
  }

  /// Waits for the server's memif socket (bounded).
  bool wait_socket(const Child& server) {
    for (int i = 0; i < 100; ++i) {
      if (::access((tag_ + ".sock").c_str(), F_OK) == 0) return true;
      if (!server.alive()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  /// Runs the loadgen to completion; returns its exit code.
  int run_loadgen(std::vector<std::string> args, double timeout_s = 40) {
    args.insert(args.begin(), loadgen_);
    Child lg(args, tag_ + ".loadgen.log");
    const int rc = lg.wait(timeout_s);
    loadgen_log_ = lg.log();
    return rc;
  }

  std::string loadgen_, tag_, loadgen_log_;
};

TEST_F(LoadgenE2E, AgainstKvserverOverMemif) {
  const std::string kvserver = env_or_empty("KVSERVER");
  ASSERT_FALSE(kvserver.empty()) << "KVSERVER is not set";
  std::ofstream(tag_ + ".toml") << "[eal]\nlcores = [1]\nmemory_mb = 256\n"
                                << "[port]\nvdev = \"" << vdev_server() << "\"\nmbufs = 8191\n"
                                << "[paging]\nmode = \"local\"\n";  // no memory node needed
  Child server({kvserver, "--config", tag_ + ".toml"}, tag_ + ".server.log");
  ASSERT_TRUE(wait_socket(server)) << "kvserver made no memif socket; log:\n" << server.log();

  const int rc = run_loadgen({"--vdev",      vdev_client(), "--lcores",     "0",
                              "--keys",      "2000",        "--value-size", "uniform:16-512",
                              "--get-ratio", "0.9",         "--rate",       "20k,40k",
                              "--duration",  "1",           "--warmup",     "0.2",
                              "--retries",   "2",           "--progress",   "0",
                              "--label",     "e2e",         "--csv",        tag_ + ".csv",
                              "--json",      tag_ + ".json"});
  // 0: every point valid; 2: a point INVALID (this shared machine can starve the loadgen) or
  // wrong values, which the checks below tell apart. Anything else is a failure.
  ASSERT_TRUE(rc == 0 || rc == 2) << "exit " << rc << "; loadgen log:\n"
                                  << loadgen_log_ << "\nserver log:\n"
                                  << server.log();
  const auto rows = read_csv(tag_ + ".csv");
  ASSERT_EQ(rows.size(), 2u) << slurp(tag_ + ".csv");
  for (const char* col :
       {"label", "backend", "offered_rps", "achieved_rps", "p50_us", "p99_us", "p999_us", "drops",
        "wrong", "adherence_pct", "valid", "get_p99_us", "set_p99_us", "all_p9999_us", "all_max_us",
        "get_misses", "server_errors", "invalid_reason"}) {
    EXPECT_TRUE(rows[0].count(col)) << "no column " << col;
  }
  for (const auto& r : rows) {
    EXPECT_EQ(r.at("label"), "e2e");
    EXPECT_GT(std::stod(r.at("achieved_rps")), 1000.0);
    EXPECT_GT(std::stoull(r.at("get_replies")), 0u);
    EXPECT_GT(std::stoull(r.at("set_replies")), 0u);
    EXPECT_EQ(r.at("wrong"), "0");
    EXPECT_EQ(r.at("get_misses"), "0");  // every key was preloaded
    EXPECT_EQ(r.at("server_errors"), "0");
  }
  const std::string json = slurp(tag_ + ".json");
  EXPECT_EQ(std::count(json.begin(), json.end(), '\n'), 2);
  EXPECT_EQ(json.front(), '{');
  EXPECT_NE(json.find("\"achieved_rps\": "), std::string::npos);
  EXPECT_NE(loadgen_log_.find("preload: 2000 keys"), std::string::npos) << loadgen_log_;
  server.stop();
}

TEST_F(LoadgenE2E, AgainstTheInstantReflector) {
  const std::string reflector = env_or_empty("REFLECTOR");
  ASSERT_FALSE(reflector.empty()) << "REFLECTOR is not set";
  Child server({reflector, "--vdev", vdev_server(), "--lcores", "1"}, tag_ + ".server.log");
  ASSERT_TRUE(wait_socket(server)) << server.log();
  const int rc = run_loadgen({"--vdev", vdev_client(), "--no-preload", "--no-verify", "--rate",
                              "200k", "--duration", "0.5", "--warmup", "0.1", "--retries", "2",
                              "--progress", "0", "--csv", tag_ + ".csv"});
  ASSERT_TRUE(rc == 0 || rc == 2) << loadgen_log_;
  const auto rows = read_csv(tag_ + ".csv");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_GT(std::stod(rows[0].at("achieved_rps")), 10000.0);
  // The reflector answers every GET with END: all misses, no wrong values.
  EXPECT_EQ(rows[0].at("get_misses"), rows[0].at("get_replies"));
  EXPECT_EQ(rows[0].at("wrong"), "0");
  server.stop();
  EXPECT_NE(server.log().find("answered"), std::string::npos) << server.log();
}

TEST_F(LoadgenE2E, KernelSocketsAgainstStockMemcached) {
  std::string memcached;
  for (const char* p : {"/usr/bin/memcached", "/usr/local/bin/memcached"})
    if (::access(p, X_OK) == 0) memcached = p;
  if (memcached.empty())
    GTEST_SKIP() << "stock memcached is not installed (tools/setup.sh installs it)";
  const std::string port = std::to_string(20000 + ::getpid() % 20000);
  Child server(
      {memcached, "-U", port, "-p", "0", "-l", "127.0.0.1", "-t", "1", "-u", "root", "-m", "64"},
      tag_ + ".server.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(server.alive()) << server.log();
  const int rc = run_loadgen(
      {"--backend",     "socket", "--lcores",    "0",
       "--server-port", port,     "--src-port",  std::to_string(30000 + ::getpid() % 20000),
       "--keys",        "1000",   "--get-ratio", "0.8",
       "--rate",        "10k",    "--duration",  "1",
       "--warmup",      "0.2",    "--retries",   "2",
       "--progress",    "0",      "--csv",       tag_ + ".csv"});
  ASSERT_TRUE(rc == 0 || rc == 2) << loadgen_log_;
  const auto rows = read_csv(tag_ + ".csv");
  ASSERT_EQ(rows.size(), 1u) << loadgen_log_;
  EXPECT_EQ(rows[0].at("backend"), "socket");
  EXPECT_GT(std::stod(rows[0].at("achieved_rps")), 1000.0);
  EXPECT_EQ(rows[0].at("wrong"), "0");
  EXPECT_EQ(rows[0].at("get_misses"), "0");
  EXPECT_EQ(rows[0].at("server_errors"), "0");
}

TEST_F(LoadgenE2E, NoServerIsAClearErrorNotAHang) {
  const auto t0 = std::chrono::steady_clock::now();
  const int rc =
      run_loadgen({"--vdev", vdev_client(), "--connect-timeout", "2", "--progress", "0"}, 30);
  EXPECT_EQ(rc, 1) << loadgen_log_;
  EXPECT_NE(loadgen_log_.find("server running"), std::string::npos) << loadgen_log_;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
}

TEST_F(LoadgenE2E, BadFlagsNameTheFlag) {
  EXPECT_EQ(run_loadgen({"--rate", "lots"}), 1);
  EXPECT_NE(loadgen_log_.find("--rate"), std::string::npos) << loadgen_log_;
  EXPECT_EQ(run_loadgen({"--value-size", "uniform:9-3"}), 1);
  EXPECT_NE(loadgen_log_.find("--value-size"), std::string::npos) << loadgen_log_;
  EXPECT_EQ(run_loadgen({"--help"}), 0);
  EXPECT_NE(loadgen_log_.find("--timeout-ms"), std::string::npos);
}

}  // namespace
}  // namespace fm
