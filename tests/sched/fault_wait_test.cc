// The fetch-boundary hooks on the real path (Region + emulated transport + scheduler, one
// thread): a fault parks its fiber in async mode, and switching the mode while fibers are
// parked never leaves one of them unable to run.
#include "sched/fault_wait.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "paging/emulated_transport.h"
#include "paging/region.h"
#include "sched/scheduler.h"

namespace fm::sched {
namespace {

using namespace std::chrono_literals;

/// Reads 8 bytes at the offset a request carries, through the page table.
struct PinApp : App {
  paging::Region* region = nullptr;
  std::atomic<int> done{0}, failed{0};
  void serve(Fiber&, Request& r) override {
    uint64_t off;
    std::memcpy(&off, r.bytes, sizeof(off));
    std::byte* p = region->pin(*paging::current_core(), off, 8, paging::PinAccess::kRead);
    if (p == nullptr) {
      failed.fetch_add(1);
    } else {
      region->unpin(*paging::current_core(), off, 8, p);
    }
    done.fetch_add(1);
  }
};

struct Rig {
  explicit Rig(FaultMode mode) {
    paging::EmulatedOptions o;
    // 20 ms: the first fiber is still parked when the second comes, even on a TSan build on a
    // busy 2-vCPU machine (at 2 ms one TSan run in a few saw the fetch done first).
    o.latency_ns = 20'000'000;
    o.link_gbps = 1000;
    transport =
        std::move(paging::EmulatedTransport::in_process(o, 1 << 20, paging::tsc_clock()).value());
    region = std::move(
        paging::Region::create(1 << 20, 32, *transport, 1, paging::tsc_clock(), 4096).value());
    app.region = region.get();
    SchedOptions so;
    so.faults = mode;
    so.max_in_flight = 4;
    so.queue_depth = 16;
    so.steal = false;
    sched = std::move(Scheduler::create(so, 1, app).value());
    wait = std::make_unique<FaultWait>(region->core(CoreId{0}), sched->core(CoreId{0}));
    paging::current_core() = &region->core(CoreId{0});
  }
  paging::PagingCore& pc() { return region->core(CoreId{0}); }
  CoreScheduler& cs() { return sched->core(CoreId{0}); }
  /// Writes page `page` and evicts it (written back), so a later pin fetches it.
  void make_remote(uint64_t page) {
    const uint64_t off = page * paging::kPageSize;
    std::byte* p = region->pin(pc(), off, 1, paging::PinAccess::kWrite);
    ASSERT_NE(p, nullptr);
    *p = std::byte{7};
    region->unpin(pc(), off, 1, p);
    for (uint64_t q = 100; q < 200; ++q) {  // outside fibers: waits busy-poll
      std::byte* z = region->pin(pc(), q * paging::kPageSize, 1, paging::PinAccess::kRead);
      ASSERT_NE(z, nullptr);
      region->unpin(pc(), q * paging::kPageSize, 1, z);
    }
    ASSERT_FALSE(region->resident(off));
  }
  void submit(uint64_t off) {
    Request* r = cs().acquire();
    ASSERT_NE(r, nullptr);
    std::memcpy(r->bytes, &off, sizeof(off));
    r->len = sizeof(off);
    ASSERT_TRUE(cs().submit(r));
  }
  /// Polls completions and fibers until `n` requests are done. A hang (a fiber spinning on a
  /// page that only a parked fiber of this very thread can settle) ends the whole test binary
  /// after 10 s with a message: there is no way back into a spinning fiber.
  void run_until_done(int n) {
    std::atomic<bool> finished{false};
    std::thread watchdog([&] {
      const auto end = std::chrono::steady_clock::now() + 10s;
      while (!finished.load() && std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(1ms);
      if (!finished.load()) {
        std::fprintf(stderr, "FATAL: the core hung: %d of %d requests done after 10 s\n",
                     app.done.load(), n);
        std::_Exit(3);
      }
    });
    while (app.done.load() < n) {
      pc().poll();
      cs().poll();
    }
    finished.store(true);
    watchdog.join();
  }

  PinApp app;
  std::unique_ptr<paging::EmulatedTransport> transport;
  std::unique_ptr<paging::Region> region;
  std::unique_ptr<Scheduler> sched;
  std::unique_ptr<FaultWait> wait;
};

TEST(FaultWait, AsyncFaultParksAndTheCompletionWakesIt) {
  Rig r(FaultMode::kAsync);
  r.make_remote(3);
  r.submit(3 * paging::kPageSize);
  r.cs().poll();  // starts the fiber: it faults and parks
  EXPECT_EQ(r.cs().parked(), 1u);
  EXPECT_EQ(r.app.done.load(), 0);
  r.run_until_done(1);
  EXPECT_EQ(r.app.failed.load(), 0);
  EXPECT_EQ(r.cs().counters().parks.read(), 1u);
  EXPECT_EQ(r.region->check_quiescent(), "");
}

// Issue #11, 2: a fiber parked on a fetch in async mode; after the switch to sync, a second
// fiber on the same core that needed the same page busy-waited for it without yielding, so
// the parked fiber (runnable once its fetch completed) never ran again: the core hung.
TEST(FaultWait, SwitchingToSyncWhileAFiberIsParkedOnTheSamePageDoesNotHang) {
  Rig r(FaultMode::kAsync);
  r.make_remote(3);
  r.submit(3 * paging::kPageSize);
  r.cs().poll();
  ASSERT_EQ(r.cs().parked(), 1u);
  r.sched->set_faults(FaultMode::kSync);
  r.submit(3 * paging::kPageSize + 64);  // same page, now fetching for the parked fiber
  r.run_until_done(2);
  EXPECT_EQ(r.app.failed.load(), 0);
  EXPECT_GE(r.region->totals().shared_waits, 1u);
  EXPECT_EQ(r.region->check_quiescent(), "");
}

// A sync fault busy-polls its own completion; a fiber parked before the switch on another page
// is woken meanwhile and runs after it.
TEST(FaultWait, SwitchingToSyncWithParkedFibersOnOtherPages) {
  Rig r(FaultMode::kAsync);
  r.make_remote(3);
  r.make_remote(4);
  r.submit(3 * paging::kPageSize);
  r.cs().poll();
  ASSERT_EQ(r.cs().parked(), 1u);
  r.sched->set_faults(FaultMode::kSync);
  r.submit(4 * paging::kPageSize);
  r.run_until_done(2);
  EXPECT_EQ(r.app.failed.load(), 0);
  EXPECT_EQ(r.region->check_quiescent(), "");
}

}  // namespace
}  // namespace fm::sched
