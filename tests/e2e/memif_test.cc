// End to end over real DPDK memif: kvserver (local memory) in its own process, this test as the
// memif client: protocol behaviour, datagram splitting, drops and their counters.
#include "tests/e2e/kv_e2e.h"

namespace fm::e2e {
namespace {

// FM_SPIN_NS (meson's e2e_memif_spin): the same suite with kv.spin_ns set.
uint64_t spin_ns() {
  const char* v = std::getenv("FM_SPIN_NS");
  return v ? std::strtoull(v, nullptr, 10) : 0;
}

class MemifE2E : public KvE2E {
 protected:
  static void SetUpTestSuite() {
    start("[kv]\nspin_ns = " + std::to_string(spin_ns()) + "\n[paging]\nmode = \"local\"\n");
  }
  static void TearDownTestSuite() { stop(); }
};

TEST_F(MemifE2E, SetThenGetReturnsTheValue) {
  EXPECT_EQ(request("set alpha 7 0 5\r\nhello\r\n"), "STORED\r\n");
  EXPECT_EQ(request("get alpha\r\n"), "VALUE alpha 7 5\r\nhello\r\nEND\r\n");
  EXPECT_EQ(request("get nosuchkey\r\n"), "END\r\n");
}

TEST_F(MemifE2E, ManySetsAndGetsKeepTheirValues) {
  for (int i = 0; i < 500; ++i) {
    const std::string k = "key" + std::to_string(i), v = std::string(size_t(i % 200 + 1), char('a' + i % 26));
    ASSERT_EQ(request("set " + k + " 0 0 " + std::to_string(v.size()) + "\r\n" + v + "\r\n"), "STORED\r\n");
  }
  for (int i = 0; i < 500; ++i) {
    const std::string k = "key" + std::to_string(i), v = std::string(size_t(i % 200 + 1), char('a' + i % 26));
    ASSERT_EQ(request("get " + k + "\r\n"),
              "VALUE " + k + " 0 " + std::to_string(v.size()) + "\r\n" + v + "\r\nEND\r\n");
  }
}

TEST_F(MemifE2E, MultiKeyGetSplitsIntoSequencedDatagrams) {
  const std::string v(1200, 'x');
  for (const char* k : {"m1", "m2", "m3"})
    ASSERT_EQ(request(std::string("set ") + k + " 0 0 1200\r\n" + v + "\r\n"), "STORED\r\n");
  const std::string r = request("get m1 m2 m3\r\n");
  EXPECT_EQ(r, "VALUE m1 0 1200\r\n" + v + "\r\nVALUE m2 0 1200\r\n" + v + "\r\nVALUE m3 0 1200\r\n" + v + "\r\nEND\r\n");
  EXPECT_GE(last_total_, 3);
  for (size_t s : last_sizes_) EXPECT_LE(s, 1400u);
}

TEST_F(MemifE2E, ShortDataBlockIsRejectedAndTheNextDatagramIsReadNormally) {
  EXPECT_EQ(request("set trunc 0 0 10\r\nabc\r\n").rfind("CLIENT_ERROR", 0), 0u);
  EXPECT_EQ(request("get trunc\r\n"), "END\r\n");
  EXPECT_EQ(request("set after 0 0 2\r\nok\r\n"), "STORED\r\n");
  EXPECT_EQ(request("get after\r\n"), "VALUE after 0 2\r\nok\r\nEND\r\n");
}

TEST_F(MemifE2E, GarbageGetsAnErrorAndTheServerKeepsServing) {
  EXPECT_EQ(request(std::string("\x01\x02\xff garbage\r\n", 13)), "ERROR\r\n");
  EXPECT_EQ(request("set g 0 0 1\r\nz\r\n"), "STORED\r\n");
  EXPECT_EQ(request("get g\r\n"), "VALUE g 0 1\r\nz\r\nEND\r\n");
}

TEST_F(MemifE2E, RuntDatagramIsDroppedWithoutReply) {
  EXPECT_EQ(request("abc", 11211, /*raw=*/true), "<timeout>");
  EXPECT_EQ(request("version\r\n").rfind("VERSION ", 0), 0u);
}

TEST_F(MemifE2E, WrongPortIsDroppedAndCounted) {
  const uint64_t before = stat("dp_drop_no_listener");
  EXPECT_EQ(request("version\r\n", 9999), "<timeout>");
  EXPECT_EQ(stat("dp_drop_no_listener"), before + 1);
}

TEST_F(MemifE2E, DeleteAndIncr) {
  EXPECT_EQ(request("set n 0 0 2\r\n41\r\n"), "STORED\r\n");
  EXPECT_EQ(request("incr n 1\r\n"), "42\r\n");
  EXPECT_EQ(request("delete n\r\n"), "DELETED\r\n");
  EXPECT_EQ(request("delete n\r\n"), "NOT_FOUND\r\n");
}

// kv.spin_ns is service time: no reply comes back sooner than the work it stands for, and the
// replies are still right.
TEST_F(MemifE2E, EachRequestTakesAtLeastItsSyntheticWork) {
  const uint64_t spin = spin_ns();
  if (spin == 0) {
    GTEST_SKIP() << "kv.spin_ns is 0 here; the e2e_memif_spin run (FM_SPIN_NS) checks it";
  }
  ASSERT_EQ(request("set spun 0 0 3\r\nabc\r\n"), "STORED\r\n");
  for (int i = 0; i < 20; ++i) {
    const uint64_t t0 = rdtsc();
    ASSERT_EQ(request("get spun\r\n"), "VALUE spun 0 3\r\nabc\r\nEND\r\n");
    const double ns = double(rdtsc() - t0) * 1e9 / double(tsc_hz());
    EXPECT_GE(ns, double(spin)) << "request " << i;
  }
}

}  // namespace
}  // namespace fm::e2e
