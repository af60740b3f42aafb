// Reclaim off the critical path (a per-core reserve of free frames refilled between polls, with
// pipelined write-backs) and prefetch at dispatch (READs posted into reserve frames before the
// request runs): data integrity, where faults got their frames, and the prefetch accounting.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "paging/emulated_transport.h"
#include "paging/region.h"
#include "tests/paging/region_fixture.h"

namespace fm::paging {
namespace {

// The shared region set-up with pins of a page at most and the frame reserve set to `reserve`
// (what set_reserve() granted: reserve_in_effect).
struct Fixture : testing::RegionFixture {
  Fixture(uint64_t bytes, uint64_t frames, uint16_t cores, uint32_t reserve,
          uint32_t latency_ns = 0)
      : RegionFixture(bytes, frames, cores, latency_ns, 4096),
        reserve_in_effect(region->set_reserve(reserve)) {}
  uint32_t reserve_in_effect;
};

void write_byte(Region& r, PagingCore& c, uint64_t off, uint8_t v) {
  std::byte* p = r.pin(c, off, 1, PinAccess::kWrite);
  ASSERT_NE(p, nullptr);
  *p = std::byte{v};
  r.unpin(c, off, 1, p);
}

uint8_t read_byte(Region& r, PagingCore& c, uint64_t off) {
  std::byte* p = r.pin(c, off, 1, PinAccess::kRead);
  EXPECT_NE(p, nullptr);
  const uint8_t v = p ? uint8_t(*p) : 0;
  if (p) r.unpin(c, off, 1, p);
  return v;
}

// Random reads and writes over 16x more pages than frames on `core`, checked against a copy.
void churn(Region& r, PagingCore& c, uint64_t first_page, uint64_t pages, int ops, uint64_t seed) {
  std::vector<uint8_t> ref(pages, 0);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < ops; ++i) {
    const uint64_t p = rng() % pages;
    const uint64_t off = (first_page + p) * kPageSize + p % 97;
    if (rng() % 3 == 0) {
      const auto v = uint8_t(rng() | 1);
      write_byte(r, c, off, v);
      ref[p] = v;
    } else {
      ASSERT_EQ(read_byte(r, c, off), ref[p]) << "op " << i << " page " << first_page + p;
    }
  }
}

TEST(Reclaim, TheReserveIsClampedToAnEighthOfTheFrames) {
  Fixture f(4 << 20, 64, 2, 1000);
  EXPECT_EQ(f.reserve_in_effect, 64u / 8 / 2);
  Fixture off(4 << 20, 64, 1, 0);
  EXPECT_EQ(off.reserve_in_effect, 0u);
}

TEST(Reclaim, FaultsTakeReserveFramesAndDataSurvivesChurn) {
  Fixture f(4 << 20, 128, 1, 16);
  ASSERT_EQ(f.reserve_in_effect, 16u);
  churn(*f.region, f.core(), 0, 1024, 100000, 3);
  f.settle();
  const PagingTotals t = f.region->totals();
  EXPECT_EQ(t.errors, 0u);
  EXPECT_GT(t.reclaim_writebacks, 1000u);  // dirty victims went back in the background
  EXPECT_GT(t.reserve_takes, t.faults / 2);
  // A fault only sweeps when the reserve ran dry; a refill after every completion keeps it full.
  EXPECT_LT(t.direct_reclaims, t.faults / 10) << "faults " << t.faults;
  EXPECT_EQ(f.region->check_quiescent(), "");
}

TEST(Reclaim, TwoCoresChurnTheirOwnPagesWithReserves) {
  Fixture f(8 << 20, 256, 2, 16, 2000);
  std::thread other([&] { churn(*f.region, f.core(1), 1024, 1024, 20000, 5); });
  churn(*f.region, f.core(0), 0, 1024, 20000, 4);
  other.join();
  f.settle();
  EXPECT_EQ(f.region->totals().errors, 0u);
  EXPECT_EQ(f.region->check_quiescent(), "");
}

TEST(Reclaim, AFailedBackgroundWriteBackKeepsThePage) {
  Fixture f(4 << 20, 64, 1, 8);
  for (uint64_t p = 0; p < 64; ++p) write_byte(*f.region, f.core(), p * kPageSize, uint8_t(p + 1));
  f.transport->kill();
  // Polls now refill: every victim is dirty, and every write-back fails.
  for (int i = 0; i < 100; ++i) f.core().poll();
  f.settle();
  // The pages whose write-backs failed are still here, with their data.
  uint64_t resident = 0;
  for (uint64_t p = 0; p < 64; ++p) {
    if (!f.region->resident(p * kPageSize)) continue;
    ++resident;
    EXPECT_EQ(read_byte(*f.region, f.core(), p * kPageSize), uint8_t(p + 1)) << p;
  }
  EXPECT_GE(resident, 64u - f.reserve_in_effect);
  EXPECT_EQ(f.region->totals().writebacks, 0u);
}

// Writes pages [0, n) and evicts them all by writing n more: pages [0, n) are remote and backed.
void make_remote(Fixture& f, uint64_t n) {
  for (uint64_t p = 0; p < n; ++p) write_byte(*f.region, f.core(), p * kPageSize, uint8_t(p + 7));
  for (uint64_t p = n; p < 8 * n; ++p) write_byte(*f.region, f.core(), p * kPageSize, 1);
  f.settle();
  for (uint64_t p = 0; p < n; ++p) ASSERT_FALSE(f.region->resident(p * kPageSize)) << p;
}

TEST(Prefetch, APrefetchedPageIsPinnedWithoutAFault) {
  Fixture f(4 << 20, 64, 1, 8, 200'000);  // 200 us: the READ is seen in flight
  make_remote(f, 16);
  for (int i = 0; i < 10; ++i) f.core().poll();  // the reserve is full again
  const PagingTotals before = f.region->totals();
  EXPECT_EQ(f.region->prefetch(f.core(), 3 * kPageSize + 10, 100), 1u);
  EXPECT_TRUE(f.region->fetching(3 * kPageSize + 10, 100));
  // Already in flight: not posted twice.
  EXPECT_EQ(f.region->prefetch(f.core(), 3 * kPageSize, 1), 0u);
  f.settle();
  EXPECT_FALSE(f.region->fetching(3 * kPageSize, 1));
  EXPECT_TRUE(f.region->resident(3 * kPageSize));
  EXPECT_EQ(read_byte(*f.region, f.core(), 3 * kPageSize), uint8_t(3 + 7));
  const PagingTotals after = f.region->totals();
  EXPECT_EQ(after.faults, before.faults);
  EXPECT_EQ(after.prefetches, before.prefetches + 1);
  EXPECT_EQ(after.prefetch_used, before.prefetch_used + 1);
  // A second pin is an ordinary hit, not a second use.
  EXPECT_EQ(read_byte(*f.region, f.core(), 3 * kPageSize), uint8_t(3 + 7));
  EXPECT_EQ(f.region->totals().prefetch_used, after.prefetch_used);
  EXPECT_EQ(f.region->check_quiescent(), "");
}

TEST(Prefetch, APinOfAPageInFlightWaitsForThePrefetch) {
  Fixture f(4 << 20, 64, 1, 8, 100'000);
  make_remote(f, 16);
  for (int i = 0; i < 10; ++i) f.core().poll();
  const uint64_t faults = f.region->totals().faults;
  ASSERT_EQ(f.region->prefetch(f.core(), 5 * kPageSize, 1), 1u);
  EXPECT_EQ(read_byte(*f.region, f.core(), 5 * kPageSize), uint8_t(5 + 7));  // waits, no fault
  EXPECT_EQ(f.region->totals().faults, faults);
  EXPECT_EQ(f.region->totals().shared_waits, 1u);
  f.settle();
  EXPECT_EQ(f.region->check_quiescent(), "");
}

TEST(Prefetch, APageEvictedBeforeItsPinIsCountedWasted) {
  Fixture f(4 << 20, 64, 1, 8);
  make_remote(f, 16);
  for (int i = 0; i < 10; ++i) f.core().poll();
  ASSERT_EQ(f.region->prefetch(f.core(), 2 * kPageSize, 1), 1u);
  f.settle();
  for (uint64_t p = 200; p < 400; ++p) write_byte(*f.region, f.core(), p * kPageSize, 1);
  f.settle();
  EXPECT_FALSE(f.region->resident(2 * kPageSize));
  EXPECT_EQ(f.region->totals().prefetch_wasted, 1u);
  EXPECT_EQ(f.region->totals().prefetch_used, 0u);
  EXPECT_EQ(read_byte(*f.region, f.core(), 2 * kPageSize), uint8_t(2 + 7));  // fetched again
}

TEST(Prefetch, NothingToFetchOrNoReservePostsNothing) {
  Fixture f(4 << 20, 64, 1, 8);
  EXPECT_EQ(f.region->prefetch(f.core(), 0, 100), 0u);  // never written: a pin zero-fills it
  write_byte(*f.region, f.core(), 0, 1);
  EXPECT_EQ(f.region->prefetch(f.core(), 0, 100), 0u);  // resident
  Fixture none(4 << 20, 64, 1, 0);
  make_remote(none, 16);
  EXPECT_EQ(none.region->prefetch(none.core(), 0, 1), 0u);  // no reserve: prefetch never sweeps
  EXPECT_EQ(none.region->totals().prefetches, 0u);
}

TEST(Prefetch, AFailedPrefetchLeavesThePageRemote) {
  Fixture f(4 << 20, 64, 1, 8, 100'000);
  make_remote(f, 16);
  for (int i = 0; i < 10; ++i) f.core().poll();
  ASSERT_EQ(f.region->prefetch(f.core(), 4 * kPageSize, 1), 1u);
  f.transport->kill();  // a dead link completes everything in flight with an error
  f.settle();
  EXPECT_FALSE(f.region->fetching(4 * kPageSize, 1));
  EXPECT_FALSE(f.region->resident(4 * kPageSize));
  EXPECT_EQ(f.region->pin(f.core(), 4 * kPageSize, 1, PinAccess::kRead), nullptr);
}

}  // namespace
}  // namespace fm::paging
