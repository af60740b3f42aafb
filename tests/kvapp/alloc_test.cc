// Proves the per-request path (Session::handle_datagram) performs no heap allocation once the
// slab classes it uses have their slabs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "kv_test_util.h"

namespace {
thread_local bool g_counting = false;
thread_local size_t g_allocations = 0;

void* counted_alloc(size_t n) {
  if (g_counting) ++g_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
}  // namespace

// Replacing the global allocation functions counts every heap allocation in this binary; only
// the sections between start/stop below are checked. GCC cannot see that the replaced operator
// new allocates with malloc, so it flags the matching free() as a mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t n) { return counted_alloc(n); }
void* operator new[](size_t n) { return counted_alloc(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  if (g_counting) ++g_allocations;
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  if (g_counting) ++g_allocations;
  return std::malloc(n == 0 ? 1 : n);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace fm::kv {
namespace {

using testing::Client;

TEST(HotPathTest, HandleDatagramDoesNotAllocate) {
  auto store = testing::make_store();
  Session session(*store, ProtocolOptions{}, nullptr);
  Client framer(*store);  // only used to build payloads
  const std::string value(3000, 'v');
  const std::vector<std::string> bodies = {
      "set k1 5 0 3\r\nabc\r\n",
      "set k2 0 0 3000\r\n" + value + "\r\n",
      "get k1 k2 nokey\r\ngets k1\r\n",
      "add k3 0 0 2\r\n10\r\nincr k3 5\r\ndecr k3 100\r\nincr k3 123456\r\n",
      "append k1 0 0 2\r\nzz\r\nprepend k1 0 0 2\r\naa\r\n",
      "cas k1 0 0 1 1\r\nx\r\ntouch k1 100\r\ngat 100 k1\r\n",
      "delete k3\r\ndelete k3\r\nversion\r\nverbosity 1\r\nbogus\r\n",
      "set k1 0 0 3\r\nab\r\nget " + std::string(300, 'x') + "\r\n",
      "flush_all 1000\r\n",
  };
  std::vector<std::vector<uint8_t>> payloads;
  for (size_t i = 0; i < bodies.size(); ++i) {
    payloads.push_back(framer.frame(bodies[i], static_cast<uint16_t>(i)));
  }
  size_t emitted = 0;
  auto emit = [](void* ctx, std::span<const uint8_t>) { ++*static_cast<size_t*>(ctx); };
  // Warm-up: the first use of a slab class allocates its slab's entries (once per slab).
  for (const auto& p : payloads) session.handle_datagram(p, testing::kNow, emit, &emitted);

  g_allocations = 0;
  g_counting = true;
  for (int round = 0; round < 100; ++round) {
    for (const auto& p : payloads) session.handle_datagram(p, testing::kNow, emit, &emitted);
  }
  g_counting = false;
  EXPECT_EQ(g_allocations, 0u);
  EXPECT_GT(emitted, 0u);
}

}  // namespace
}  // namespace fm::kv
