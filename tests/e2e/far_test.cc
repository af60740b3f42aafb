// End to end on far memory: memnode(s) and kvserver (emulated one-sided transport, 10% local
// memory) in their own processes, this test as the memif client. Values survive paging; a dead
// memory node turns into SERVER_ERROR replies while the server keeps serving, unless the pages
// have replicas on other nodes (FM_MEMNODES=3), when it costs no request at all.
#include "tests/e2e/kv_e2e.h"

namespace fm::e2e {
namespace {

class FarE2E : public KvE2E {
 protected:
  static void SetUpTestSuite() {
    const char* memnode = std::getenv("MEMNODE");
    ASSERT_NE(memnode, nullptr) << "MEMNODE (path of build/memnode/memnode) is not set";
    // FM_MEMNODES=N: N memory nodes with two copies of each page (paging.memnodes).
    const char* n_env = std::getenv("FM_MEMNODES");
    const int n = n_env ? std::atoi(n_env) : 1;
    const std::string tag = std::to_string(::getpid());
    // Each memnode makes its socket's directory (0700) itself.
    std::string addresses;
    for (int i = 0; i < n; ++i) {
      const std::string base = "/tmp/farmem-e2e-mn-" + tag + "-" + std::to_string(i);
      memnode_dirs_.push_back(base);
      const std::string sock = base + "/memnode.sock";
      const std::string log = base + ".log";
      memnode_logs_.push_back(log);
      std::ofstream(base + ".toml") << "[memnode]\npool_mb = 64\nhugepages = \"off\"\nlisten = "
                                       "\"unix:"
                                    << sock << "\"\nheartbeat_ms = 200\n";
      memnode_pids_.push_back(spawn({std::string(memnode), "--config", base + ".toml"}, log));
      ASSERT_GT(memnode_pids_.back(), 0);
      for (int k = 0; k < 100 && ::access(sock.c_str(), F_OK) != 0; ++k) ::usleep(50000);
      ASSERT_EQ(::access(sock.c_str(), F_OK), 0) << read_log(log);
      addresses += (i ? ", \"unix:" : "\"unix:") + sock + "\"";
    }
    const std::string nodes =
        n == 1 ? "memnode = " + addresses + "\n" : "memnodes = [" + addresses + "]\nreplicas = 2\n";
    // 16 MiB of values, 10% of it local: most accesses to a spread of keys fault.
    // FM_FAULTS picks the fault mode and FM_SCHED adds [sched] lines (dispatch, predictor,
    // preemption): meson runs this binary once per variant.
    const char* faults = std::getenv("FM_FAULTS");
    const char* extra = std::getenv("FM_SCHED");
    start(
        "[kv]\nmemory_mb = 16\nitem_size_max = 65536\nreply_buffer_kb = 256\n"
        "[paging]\nmode = \"far\"\nlocal_fraction = 0.1\n" +
        nodes + "[sched]\nfaults = \"" + (faults ? faults : "async") + "\"\n" +
        (extra ? extra : ""));
  }
  static void TearDownTestSuite() {
    stop();
    for (pid_t pid : memnode_pids_) stop_process(pid, SIGTERM);
    for (const auto& d : memnode_dirs_) ::rmdir(d.c_str());
  }
  static bool replicated() { return memnode_pids_.size() > 1; }
  /// Starts memory node i again (a new process, an empty pool) on the same socket.
  static void restart_memnode(size_t i) {
    const char* memnode = std::getenv("MEMNODE");
    memnode_pids_[i] =
        spawn({std::string(memnode), "--config", memnode_dirs_[i] + ".toml"}, memnode_logs_[i]);
    ASSERT_GT(memnode_pids_[i], 0);
  }
  /// Waits up to 10 s for statistic `name` to read `want`.
  static bool wait_stat(const std::string& name, uint64_t want) {
    for (int i = 0; i < 100; ++i) {
      if (stat(name) == want) return true;
      ::usleep(100000);
    }
    return stat(name) == want;
  }
  static inline std::vector<pid_t> memnode_pids_;
  static inline std::vector<std::string> memnode_dirs_, memnode_logs_;
};

std::string value_for(int i) {
  return std::string(size_t(100 + i % 400), char('a' + i % 26)) + std::to_string(i);
}
/// The request that stores `v` under far<i>, and the reply a get of `k` holding `v` gets.
std::string set_far(int i, const std::string& v) {
  return "set far" + std::to_string(i) + " 0 0 " + std::to_string(v.size()) + "\r\n" + v + "\r\n";
}
std::string value_reply(const std::string& k, const std::string& v) {
  return "VALUE " + k + " 0 " + std::to_string(v.size()) + "\r\n" + v + "\r\nEND\r\n";
}

TEST_F(FarE2E, ValuesSurvivePagingAndStatsShowFaults) {
  constexpr int kKeys = 20000;  // ~6 MiB of items: far more than the 1.6 MiB of local frames
  for (int i = 0; i < kKeys; ++i) {
    const std::string v = value_for(i);
    ASSERT_EQ(request(set_far(i, v)), "STORED\r\n") << i;
  }
  for (int i = 0; i < kKeys; i += 7) {
    const std::string k = "far" + std::to_string(i), v = value_for(i);
    ASSERT_EQ(request("get " + k + "\r\n"), value_reply(k, v)) << i;
  }
  EXPECT_GT(stat("paging_writebacks"), 100u);
  EXPECT_EQ(stat("paging_errors"), 0u);
  EXPECT_EQ(stat("paging_memnode_alive"), 1u);
  // Dirty pages went back in the background (paging.reserve_frames), not inside faults.
  EXPECT_GT(stat("paging_reclaim_writebacks"), 100u);
  if (stat("sched_prefetch") == 1) {
    // One request at a time: every GET of a remote item had its page fetched before it ran.
    EXPECT_GT(stat("paging_prefetches"), 100u);
    EXPECT_GT(stat("sched_prefetch_held"), 100u);
    EXPECT_GT(stat("paging_prefetch_used"), 100u);
  } else {
    EXPECT_GT(stat("paging_faults"), 100u);
  }
}

// Prefetch at dispatch covers every key of a multi-get: a request naming eight far keys has each
// key's page fetched before it runs (the first version fetched the first key's only, at most two
// pages a request), and every value comes back right.
TEST_F(FarE2E, AMultiGetPrefetchesEveryKeysPage) {
  if (stat("sched_prefetch") != 1) GTEST_SKIP() << "prefetch is off in this variant";
  const uint64_t before = stat("paging_prefetches");
  constexpr int kRequests = 40;
  for (int r = 0; r < kRequests; ++r) {
    std::string cmd = "get", want;
    for (int k = 0; k < 8; ++k) {
      const int i = (r * 389 + k * 2503) % 20000;
      const std::string key = "far" + std::to_string(i), v = value_for(i);
      cmd += " " + key;
      want += "VALUE " + key + " 0 " + std::to_string(v.size()) + "\r\n" + v + "\r\n";
    }
    ASSERT_EQ(request(cmd + "\r\n"), want + "END\r\n") << r;
  }
  EXPECT_GT(stat("paging_prefetches") - before, uint64_t(3 * kRequests));
}

TEST_F(FarE2E, DeadMemoryNodeGivesServerErrorsAndTheServerStaysUp) {
  if (replicated()) GTEST_SKIP() << "with replicas a dead node costs nothing: the next test";
  // Kill the memory node without a goodbye, as a crash would.
  ASSERT_EQ(::kill(memnode_pids_[0], SIGKILL), 0);
  ::waitpid(memnode_pids_[0], nullptr, 0);
  memnode_pids_[0] = -1;
  for (int i = 0; i < 50 && stat("paging_memnode_alive") != 0; ++i) ::usleep(100000);
  EXPECT_EQ(stat("paging_memnode_alive"), 0u);
  // Keys spread over the region: most are not resident and cannot be fetched any more.
  int errors = 0, hits = 0;
  for (int i = 1; i < 20000; i += 97) {
    const std::string k = "far" + std::to_string(i), v = value_for(i);
    const std::string r = request("get " + k + "\r\n");
    if (r.rfind("SERVER_ERROR", 0) == 0) {
      ++errors;
    } else {
      ASSERT_EQ(r, value_reply(k, v));
      ++hits;
    }
  }
  EXPECT_GT(errors, 0);
  // The server still answers everything that needs no far memory.
  EXPECT_EQ(request("version\r\n").rfind("VERSION ", 0), 0u);
  EXPECT_GT(stat("paging_errors"), 0u);
}

// The single node of the test above comes back (a new process, an empty pool) while the server
// serves: the server dials it again, drops the items whose bytes lived only on the dead node
// (counted), and every key answers either its value or a miss; never SERVER_ERROR, never
// another value. New sets work at once.
TEST_F(FarE2E, ARestartedMemoryNodeIsTakenBackAndLostKeysAreDropped) {
  if (replicated()) GTEST_SKIP() << "the single-node case";
  ASSERT_EQ(memnode_pids_[0], -1) << "runs after DeadMemoryNodeGivesServerErrors...";
  restart_memnode(0);
  ASSERT_TRUE(wait_stat("paging_memnode_alive", 1)) << read_log(memnode_logs_[0]);
  EXPECT_EQ(stat("paging_memnode_rejoins"), 1u);
  EXPECT_GT(stat("kv_lost_items"), 0u);
  EXPECT_GT(stat("paging_pages_forgotten"), 0u);
  // Pages still in local frames were kept (written back to the new node), not dropped.
  EXPECT_GT(stat("paging_pages_kept"), 0u);
  EXPECT_EQ(stat("paging_pages_lost"), 0u);
  int hits = 0, misses = 0;
  for (int i = 0; i < 20000; i += 13) {
    const std::string k = "far" + std::to_string(i), v = value_for(i);
    const std::string r = request("get " + k + "\r\n");
    if (r == "END\r\n") {
      ++misses;
    } else {
      ASSERT_EQ(r, value_reply(k, v));
      ++hits;
    }
  }
  EXPECT_GT(misses, 0);
  for (int i = 0; i < 20000; i += 13) {
    const std::string v = value_for(i + 2);
    ASSERT_EQ(request(set_far(i, v)), "STORED\r\n") << i;
  }
  for (int i = 0; i < 20000; i += 13) {
    const std::string k = "far" + std::to_string(i), v = value_for(i + 2);
    ASSERT_EQ(request("get " + k + "\r\n"), value_reply(k, v)) << i;
  }
}

// Three memory nodes, two copies of each page: kill -9 one, and every value still reads back
// (fetches outstanding on it are re-issued to the other replica), and new writes still land.
TEST_F(FarE2E, WithReplicasADeadNodeCostsNoRequest) {
  if (!replicated()) GTEST_SKIP() << "needs FM_MEMNODES >= 2 (the e2e_far_replicated variant)";
  ASSERT_EQ(::kill(memnode_pids_[1], SIGKILL), 0);
  ::waitpid(memnode_pids_[1], nullptr, 0);
  memnode_pids_[1] = -1;
  for (int i = 1; i < 20000; i += 3) {
    const std::string k = "far" + std::to_string(i), v = value_for(i);
    ASSERT_EQ(request("get " + k + "\r\n"), value_reply(k, v)) << i;
  }
  for (int i = 0; i < 20000; i += 5) {
    const std::string v = value_for(i + 1);
    ASSERT_EQ(request(set_far(i, v)), "STORED\r\n") << i;
  }
  for (int i = 0; i < 20000; i += 5) {
    const std::string k = "far" + std::to_string(i), v = value_for(i + 1);
    ASSERT_EQ(request("get " + k + "\r\n"), value_reply(k, v)) << i;
  }
  EXPECT_EQ(stat("paging_errors"), 0u);
  EXPECT_EQ(stat("paging_memnode_alive"), 1u);  // every page still has a live copy
  EXPECT_EQ(stat("paging_memnodes"), 3u);
  EXPECT_EQ(stat("paging_memnodes_alive"), 2u);
  EXPECT_EQ(stat("paging_reads_lost"), 0u);
  EXPECT_GT(stat("paging_writes_degraded"), 0u);
}

// The killed node is started again (empty): the server rebuilds it from the other replicas,
// and then another node may die: every value still reads back, with no error and no loss.
TEST_F(FarE2E, AReplacementNodeIsRebuiltAndThenAnotherMayDie) {
  if (!replicated()) GTEST_SKIP() << "needs FM_MEMNODES >= 2 (the e2e_far_replicated variant)";
  ASSERT_EQ(memnode_pids_[1], -1) << "runs after WithReplicasADeadNodeCostsNoRequest";
  restart_memnode(1);
  ASSERT_TRUE(wait_stat("paging_memnodes_alive", 3)) << read_log(memnode_logs_[1]);
  ASSERT_TRUE(wait_stat("paging_memnodes_rebuilding", 0));
  EXPECT_GT(stat("paging_pages_repaired"), 0u);
  if (const char* dpctl = std::getenv("DPCTL")) {  // what an operator sees
    const std::string cmd = std::string(dpctl) + " --socket /tmp/farmem-e2e-" +
                            std::to_string(::getpid()) + ".ctl memnodes";
    std::string out;
    if (FILE* f = ::popen(cmd.c_str(), "r")) {
      char buf[512];
      while (std::fgets(buf, sizeof buf, f)) out += buf;
      EXPECT_EQ(::pclose(f), 0) << out;
    }
    EXPECT_NE(out.find("rebuild_pages"), std::string::npos) << out;
    EXPECT_EQ(out.find("dead"), std::string::npos) << out;
    EXPECT_EQ(out.find("rebuilding"), std::string::npos) << out;
    EXPECT_NE(out.find("live"), std::string::npos) << out;
  }
  EXPECT_EQ(stat("paging_pages_lost"), 0u);
  ASSERT_EQ(::kill(memnode_pids_[2], SIGKILL), 0);
  ::waitpid(memnode_pids_[2], nullptr, 0);
  memnode_pids_[2] = -1;
  for (int i = 0; i < 20000; i += 2) {
    const std::string k = "far" + std::to_string(i), v = value_for(i % 5 == 0 ? i + 1 : i);
    ASSERT_EQ(request("get " + k + "\r\n"), value_reply(k, v)) << i;
  }
  EXPECT_EQ(stat("paging_errors"), 0u);
  EXPECT_EQ(stat("paging_reads_lost"), 0u);
  EXPECT_EQ(stat("kv_lost_items"), 0u);
}

}  // namespace
}  // namespace fm::e2e
