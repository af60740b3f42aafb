// End to end on far memory: memnode and kvserver (emulated one-sided transport, 10% local
// memory) in their own processes, this test as the memif client. Values survive paging; a dead
// memory node turns into SERVER_ERROR replies while the server keeps serving.
#include "tests/e2e/kv_e2e.h"

namespace fm::e2e {
namespace {

class FarE2E : public KvE2E {
 protected:
  static void SetUpTestSuite() {
    const char* memnode = std::getenv("MEMNODE");
    ASSERT_NE(memnode, nullptr) << "MEMNODE (path of build/memnode/memnode) is not set";
    const std::string tag = std::to_string(::getpid());
    // The memnode makes the socket's directory (0700) itself.
    memnode_dir_ = "/tmp/farmem-e2e-mn-" + tag;
    memnode_sock_ = memnode_dir_ + "/memnode.sock";
    memnode_log_ = "/tmp/farmem-e2e-mn-" + tag + ".log";
    const std::string cfg = "/tmp/farmem-e2e-mn-" + tag + ".toml";
    std::ofstream(cfg) << "[memnode]\npool_mb = 64\nhugepages = \"off\"\nlisten = \"unix:"
                       << memnode_sock_ << "\"\n";
    memnode_pid_ = spawn({std::string(memnode), "--config", cfg}, memnode_log_);
    ASSERT_GT(memnode_pid_, 0);
    for (int i = 0; i < 100 && ::access(memnode_sock_.c_str(), F_OK) != 0; ++i) ::usleep(50000);
    ASSERT_EQ(::access(memnode_sock_.c_str(), F_OK), 0) << read_log(memnode_log_);
    // 16 MiB of values, 10% of it local: most accesses to a spread of keys fault.
    // FM_FAULTS picks the fault mode and FM_SCHED adds [sched] lines (dispatch, predictor,
    // preemption): meson runs this binary once per variant.
    const char* faults = std::getenv("FM_FAULTS");
    const char* extra = std::getenv("FM_SCHED");
    start("[kv]\nmemory_mb = 16\nitem_size_max = 65536\nreply_buffer_kb = 256\n"
          "[paging]\nmode = \"far\"\nlocal_fraction = 0.1\nmemnode = \"unix:" +
          memnode_sock_ + "\"\n[sched]\nfaults = \"" + (faults ? faults : "async") + "\"\n" +
          (extra ? extra : ""));
  }
  static void TearDownTestSuite() {
    stop();
    stop_process(memnode_pid_, SIGTERM);
    ::rmdir(memnode_dir_.c_str());
  }
  static inline pid_t memnode_pid_ = -1;
  static inline std::string memnode_dir_, memnode_sock_, memnode_log_;
};

std::string value_for(int i) { return std::string(size_t(100 + i % 400), char('a' + i % 26)) + std::to_string(i); }

TEST_F(FarE2E, ValuesSurvivePagingAndStatsShowFaults) {
  constexpr int kKeys = 20000;  // ~6 MiB of items: far more than the 1.6 MiB of local frames
  for (int i = 0; i < kKeys; ++i) {
    const std::string v = value_for(i);
    ASSERT_EQ(request("set far" + std::to_string(i) + " 0 0 " + std::to_string(v.size()) + "\r\n" + v + "\r\n"),
              "STORED\r\n") << i;
  }
  for (int i = 0; i < kKeys; i += 7) {
    const std::string k = "far" + std::to_string(i), v = value_for(i);
    ASSERT_EQ(request("get " + k + "\r\n"),
              "VALUE " + k + " 0 " + std::to_string(v.size()) + "\r\n" + v + "\r\nEND\r\n") << i;
  }
  EXPECT_GT(stat("paging_faults"), 100u);
  EXPECT_GT(stat("paging_writebacks"), 100u);
  EXPECT_EQ(stat("paging_errors"), 0u);
  EXPECT_EQ(stat("paging_memnode_alive"), 1u);
}

TEST_F(FarE2E, DeadMemoryNodeGivesServerErrorsAndTheServerStaysUp) {
  // Kill the memory node without a goodbye, as a crash would.
  ASSERT_EQ(::kill(memnode_pid_, SIGKILL), 0);
  ::waitpid(memnode_pid_, nullptr, 0);
  memnode_pid_ = -1;
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
      ASSERT_EQ(r, "VALUE " + k + " 0 " + std::to_string(v.size()) + "\r\n" + v + "\r\nEND\r\n");
      ++hits;
    }
  }
  EXPECT_GT(errors, 0);
  // The server still answers everything that needs no far memory.
  EXPECT_EQ(request("version\r\n").rfind("VERSION ", 0), 0u);
  EXPECT_GT(stat("paging_errors"), 0u);
}

}  // namespace
}  // namespace fm::e2e
