// The dpctl binary against an in-process ControlServer with the kvserver commands faked: the
// requests it sends, its JSON and table output, and its exit codes.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <mutex>
#include <vector>

#include "tests/control/control_util.h"

extern char** environ;

#ifndef FM_DPCTL_PATH
#define FM_DPCTL_PATH "dpctl"
#endif

namespace fm::test {
namespace {

struct ProcResult {
  int rc = -1;
  std::string out;
  std::string err;
};

std::string dpctl_path() {
  const char* env = std::getenv("DPCTL");
  return env && *env ? env : FM_DPCTL_PATH;
}

// Runs dpctl with `args` (and `env` added to ours), capturing stdout and stderr.
ProcResult run_dpctl(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
                     std::chrono::milliseconds timeout = 10000ms) {
  ProcResult run;
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) return run;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  const std::string exe = dpctl_path();
  std::vector<std::string> argv_s = {exe};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) {
    if (std::strncmp(*e, "FARMEM_CONTROL=", 15) != 0) env_s.emplace_back(*e);
  }
  env_s.insert(env_s.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  const int sp = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (sp != 0) {
    ADD_FAILURE() << "cannot run " << exe << ": " << std::strerror(sp);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return run;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* bufs[2] = {&run.out, &run.err};
  int open_fds = 2;
  while (open_fds > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      ::kill(pid, SIGKILL);
      ADD_FAILURE() << "dpctl did not finish in time";
      break;
    }
    if (::poll(fds, 2, int(left)) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      const ssize_t r = ::read(fds[i].fd, buf, sizeof(buf));
      if (r > 0) {
        bufs[i]->append(buf, size_t(r));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  run.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t nl; (nl = s.find('\n', start)) != std::string::npos; start = nl + 1) {
    out.push_back(s.substr(start, nl - start));
  }
  if (start < s.size()) out.push_back(s.substr(start));
  return out;
}

// A server answering the kvserver commands from a small fake state, recording every request.
class DpctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_ / "kv.sock";
    auto s = ControlServer::open(path_, "kvserver");
    ASSERT_TRUE(s.is_ok()) << s.status().message();
    server_ = std::move(*s);
    auto record = [this](const json& req) {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req);
    };
    server_->add("status", "cores, per-core state, scheduler", [this, record](const json& req) {
      record(req);
      std::lock_guard<std::mutex> lock(mu_);
      served_ += 100;
      return Result<json>(
          json{{"cores", {{"active", active_}, {"min", 1}, {"max", 4}, {"auto", auto_}}},
               {"per_core",
                {{{"core", 0},
                  {"lcore", 1},
                  {"state", "active"},
                  {"queues", {0, 1}},
                  {"sched_in_flight", 3},
                  {"sched_queued", 4},
                  {"sched_fetches", 5},
                  {"sched_finished", served_},
                  {"extra_col", "zz"}},
                 {{"core", 1},
                  {"lcore", 2},
                  {"state", "parked"},
                  {"queues", json::array()},
                  {"sched_in_flight", 0},
                  {"sched_queued", 0},
                  {"sched_fetches", 0},
                  {"sched_finished", 7}}}},
               {"sched",
                {{"faults", "async"},
                 {"steal", true},
                 {"predictor", "none"},
                 {"dispatch", "percore"},
                 {"preempt_us", 0}}},
               {"uptime_s", 42}});
    });
    server_->add("cores.set", "set active/min/max", [this, record](const json& req) {
      record(req);
      if (req.contains("active")) {
        auto n = control_int_arg(req, "active");
        if (!n) return Result<json>(n.status());
        if (*n < 1 || *n > 8) {
          return Result<json>(
              error(Errc::kInvalidArgument, "active " + std::to_string(*n) + " is outside [1, 8]"));
        }
        std::lock_guard<std::mutex> lock(mu_);
        active_ = int(*n);
      }
      std::lock_guard<std::mutex> lock(mu_);
      return Result<json>(json{{"active", active_}, {"min", 1}, {"max", 4}, {"auto", auto_}});
    });
    server_->add("auto.set", "automatic allocation on/off", [this, record](const json& req) {
      record(req);
      auto on = control_bool_arg(req, "on");
      if (!on) return Result<json>(on.status());
      std::lock_guard<std::mutex> lock(mu_);
      auto_ = *on;
      return Result<json>(json{{"auto", auto_}});
    });
    server_->add("stats", "counters", [record](const json& req) -> Result<json> {
      record(req);
      return json{{"server", {{"rx_packets", 1234567}, {"drops", {{"no_buffer", 2}}}}},
                  {"per_core", {{{"core", 0}, {"rx", 5}}, {{"core", 1}, {"tx", 3}}}}};
    });
    server_->add("sched.get", "scheduler settings", [record](const json& req) -> Result<json> {
      record(req);
      return json{{"faults", "async"}, {"steal", true}, {"preempt_us", 0}, {"quantum", 9}};
    });
    server_->add("sched.set", "change scheduler settings",
                 [record](const json& req) -> Result<json> {
                   record(req);
                   if (req.contains("faults") && req["faults"] == "sync") {
                     return error(Errc::kRestartRequired, "faults can only change at start");
                   }
                   return json(nullptr);
                 });
    server_->add("decisions", "allocator log", [record](const json& req) -> Result<json> {
      record(req);
      return json{{"decisions",
                   {{{"t_us", 100},
                     {"action", "add"},
                     {"core", 1},
                     {"active", 2},
                     {"signal_us", 12},
                     {"reason", "queueing delay 12 us > 10 us"}}}}};
    });
    ASSERT_TRUE(server_->start().is_ok());
  }

  json last_request() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_.empty() ? json() : requests_.back();
  }
  // The request without the protocol fields dpctl adds.
  json last_args() {
    json r = last_request();
    EXPECT_EQ(r["v"], 1) << r;
    EXPECT_TRUE(r.contains("id")) << r;
    r.erase("v");
    r.erase("id");
    return r;
  }
  ProcResult dpctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"--socket", path_});
    return run_dpctl(args);
  }

  TempDir dir_;
  std::string path_;
  std::mutex mu_;
  std::vector<json> requests_;
  int active_ = 2;
  bool auto_ = true;
  int64_t served_ = 0;
  // Last, so destroyed first: its thread may still be in a handler that touches the state above
  // (TSan caught requests_ freed under a handler's push_back).
  std::unique_ptr<ControlServer> server_;
};

TEST_F(DpctlTest, StatusJsonPrintsTheResult) {
  const ProcResult r = dpctl({"--json", "status"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.err, "");
  const json j = json::parse(r.out);
  EXPECT_EQ(j["cores"]["active"], 2);
  EXPECT_EQ(j["per_core"][1]["state"], "parked");
  EXPECT_EQ(j["uptime_s"], 42);
  EXPECT_EQ(last_args(), (json{{"cmd", "status"}}));
}

TEST_F(DpctlTest, StatusTableShowsTheKnownColumns) {
  const ProcResult r = dpctl({"status"});  // flags also work after the subcommand: see CoresSet
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto l = lines(r.out);
  ASSERT_GE(l.size(), 6u) << r.out;
  EXPECT_EQ(l[0], "cores  active=2 min=1 max=4 auto=true");
  EXPECT_EQ(l[1], "sched  faults=async dispatch=percore steal=true predictor=none preempt_us=0");
  EXPECT_NE(r.out.find("uptime_s  42"), std::string::npos) << r.out;
  // The per-core table: the known columns in order (the rest is in --json and stats --core).
  const std::string header =
      "core  lcore  state   queues  sched_in_flight  sched_queued  sched_fetches  sched_finished\n";
  ASSERT_NE(r.out.find(header), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("   0      1  active  0,1                   3             4              5"
                       "             100\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("   1      2  parked  -                     0             0              0"
                       "               7\n"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("extra_col"), std::string::npos) << r.out;
}

TEST_F(DpctlTest, CoresShowAndSet) {
  ProcResult r = dpctl({"cores"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "cores  active=2 min=1 max=4 auto=true\n");

  r = dpctl({"cores", "set", "3", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(last_args(), (json{{"cmd", "cores.set"}, {"active", 3}}));
  EXPECT_EQ(json::parse(r.out)["active"], 3);

  r = dpctl({"cores", "min", "1"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(last_args(), (json{{"cmd", "cores.set"}, {"min", 1}}));
  EXPECT_NE(r.out.find("active  3"), std::string::npos) << r.out;

  r = dpctl({"cores", "max", "4"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(last_args(), (json{{"cmd", "cores.set"}, {"max", 4}}));
}

TEST_F(DpctlTest, ServerErrorExitsOneWithCodeAndMessage) {
  const ProcResult r = dpctl({"cores", "set", "99"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "dpctl: invalid_argument: active 99 is outside [1, 8]\n");

  const ProcResult s = dpctl({"sched", "set", "faults=sync"});
  EXPECT_EQ(s.rc, 1);
  EXPECT_EQ(s.err, "dpctl: restart_required: faults can only change at start\n");
}

TEST_F(DpctlTest, AutoOnOff) {
  ProcResult r = dpctl({"--json", "auto", "off"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(last_args(), (json{{"cmd", "auto.set"}, {"on", false}}));
  EXPECT_EQ(json::parse(r.out), (json{{"auto", false}}));
  r = dpctl({"auto", "on"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(last_args(), (json{{"cmd", "auto.set"}, {"on", true}}));
  EXPECT_EQ(r.out, "auto  true\n");
  r = dpctl({"auto", "maybe"});
  EXPECT_EQ(r.rc, 64);
  EXPECT_EQ(last_args(), (json{{"cmd", "auto.set"}, {"on", true}}));  // nothing was sent
}

TEST_F(DpctlTest, RawSendsTheLineVerbatim) {
  ProcResult r = dpctl({"raw", R"({"v":1,"id":"r1","cmd":"version"})"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), (json{{"v", 1},
                                      {"id", "r1"},
                                      {"ok", true},
                                      {"result", {{"protocol", 1}, {"program", "kvserver"}}}}));
  EXPECT_EQ(lines(r.out).size(), 1u);

  r = dpctl({"--json", "raw", R"({"id":"r2","cmd":"cores.set","active":5})"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["result"]["active"], 5);
  EXPECT_EQ(last_request(), (json{{"id", "r2"}, {"cmd", "cores.set"}, {"active", 5}}));

  r = dpctl({"raw", "not json"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(json::parse(r.out)["error"]["code"], "parse_error");
  EXPECT_EQ(r.err.rfind("dpctl: parse_error: ", 0), 0u) << r.err;

  r = dpctl({"raw", R"({"cmd":"no.such"})"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err.rfind("dpctl: unknown_command: ", 0), 0u) << r.err;
}

TEST_F(DpctlTest, SchedGetAndSetParseValues) {
  ProcResult r = dpctl({"sched"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(last_args(), (json{{"cmd", "sched.get"}}));
  // Known keys first, extra ones after.
  EXPECT_EQ(r.out, "faults      async\nsteal       true\npreempt_us  0\nquantum     9\n");

  r = dpctl({"sched", "set", "steal=off", "preempt_us=50", "predictor=history", "x=-3", "on=true",
             "y=1.5"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
  EXPECT_EQ(last_args(), (json{{"cmd", "sched.set"},
                               {"steal", false},
                               {"preempt_us", 50},
                               {"predictor", "history"},
                               {"x", -3},
                               {"on", true},
                               {"y", "1.5"}}));
  r = dpctl({"sched", "set", "novalue"});
  EXPECT_EQ(r.rc, 64);
  r = dpctl({"sched", "set", "cmd=status"});
  EXPECT_EQ(r.rc, 64);
}

TEST_F(DpctlTest, StatsTables) {
  ProcResult r = dpctl({"stats"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(last_args(), (json{{"cmd", "stats"}}));
  EXPECT_EQ(r.out, "server\n  drops.no_buffer        2\n  rx_packets       1234567\n");

  r = dpctl({"stats", "--core"});
  ASSERT_EQ(r.rc, 0) << r.err;
  // On its side: a line per statistic, a column per core.
  EXPECT_NE(r.out.find("per core\nname  c0  c1\nrx     5   -\ntx     -   3\n"), std::string::npos)
      << r.out;
}

TEST_F(DpctlTest, DecisionsTable) {
  ProcResult r = dpctl({"decisions", "--last", "5"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(last_args(), (json{{"cmd", "decisions"}, {"last", 5}}));
  EXPECT_EQ(r.out,
            "t_us  action  core  active  signal_us  reason\n"
            " 100  add        1       2         12  queueing delay 12 us > 10 us\n");
  r = dpctl({"decisions"});
  EXPECT_EQ(last_args(), (json{{"cmd", "decisions"}, {"last", 20}}));
}

TEST_F(DpctlTest, WatchPrintsServedDeltas) {
  ProcResult r = dpctl({"--json", "watch", "--interval-ms", "20", "--count", "2"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto l = lines(r.out);
  ASSERT_EQ(l.size(), 2u) << r.out;
  for (const std::string& line : l) {
    const json j = json::parse(line);
    EXPECT_EQ(j["active"], 2);
    EXPECT_EQ(j["served"], 100);  // core 0 serves 100 per status call, core 1 nothing
    EXPECT_EQ(j["per_core"][0], (json{{"core", 0}, {"served", 100}, {"state", "active"}}));
    EXPECT_EQ(j["per_core"][1]["served"], 0);
  }
  r = dpctl({"watch", "--interval-ms", "20", "--count", "1"});
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto t = lines(r.out);
  ASSERT_EQ(t.size(), 2u) << r.out;
  EXPECT_EQ(t[0], "    t_s  active     served        c0        c1");
  EXPECT_NE(t[1].find("       2        100       100         -"), std::string::npos) << t[1];
}

TEST_F(DpctlTest, SocketFromEnvironment) {
  const ProcResult r = run_dpctl({"--json", "cores"}, {"FARMEM_CONTROL=" + path_});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["active"], 2);
}

TEST(DpctlNoServer, CannotConnectExitsTwo) {
  TempDir dir;
  const std::string path = dir / "absent.sock";
  const ProcResult r = run_dpctl({"--socket", path, "status"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("cannot connect to control socket " + path), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kvserver is running"), std::string::npos) << r.err;
}

TEST(DpctlNoServer, SilentServerTimesOutWithExitTwo) {
  TempDir dir;
  const std::string path = dir / "mute.sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  const auto t0 = std::chrono::steady_clock::now();
  const ProcResult r = run_dpctl({"--socket", path, "--timeout-ms", "200", "cores", "set", "2"});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("200 ms"), std::string::npos) << r.err;
  ::close(fd);
}

TEST(DpctlNoServer, UsageErrors) {
  EXPECT_EQ(run_dpctl({}).rc, 64);
  EXPECT_EQ(run_dpctl({"frobnicate"}).rc, 64);
  EXPECT_EQ(run_dpctl({"cores", "set"}).rc, 64);
  EXPECT_EQ(run_dpctl({"cores", "set", "-1"}).rc, 64);
  const ProcResult help = run_dpctl({"--help"});
  EXPECT_EQ(help.rc, 0);
  EXPECT_NE(help.out.find("watch"), std::string::npos);
}

}  // namespace
}  // namespace fm::test
