// The far region: data integrity under eviction churn, fetch sharing, overwrite without fetch,
// bounce-buffered multi-page pins, a dead memory node, and configuration errors.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "paging/emulated_transport.h"
#include "paging/region.h"

namespace fm::paging {
namespace {

struct Fixture {
  explicit Fixture(uint64_t bytes, uint64_t frames, uint16_t cores = 1, uint32_t latency_ns = 0,
                   uint32_t max_pin = 16384) {
    EmulatedOptions o;
    o.latency_ns = latency_ns;
    o.link_gbps = 1000;
    auto t = EmulatedTransport::in_process(o, bytes, tsc_clock());
    EXPECT_TRUE(t.is_ok());
    transport = std::move(t.value());
    auto r = Region::create(bytes, frames, *transport, cores, tsc_clock(), max_pin);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    region = std::move(r.value());
  }
  PagingCore& core(uint16_t i = 0) { return region->core(CoreId{i}); }
  std::unique_ptr<EmulatedTransport> transport;
  std::unique_ptr<Region> region;
};

void write_bytes(Region& r, PagingCore& c, uint64_t off, const uint8_t* src, uint32_t len,
                 PinAccess a = PinAccess::kWrite) {
  std::byte* p = r.pin(c, off, len, a);
  ASSERT_NE(p, nullptr);
  std::memcpy(p, src, len);
  r.unpin(c, off, len, p);
}

std::vector<uint8_t> read_bytes(Region& r, PagingCore& c, uint64_t off, uint32_t len) {
  std::byte* p = r.pin(c, off, len, PinAccess::kRead);
  EXPECT_NE(p, nullptr);
  std::vector<uint8_t> out(len);
  if (p) std::memcpy(out.data(), p, len);
  r.unpin(c, off, len, p);
  return out;
}

TEST(Region, NeverWrittenPagesReadAsZeroWithoutAFetch) {
  Fixture f(1 << 20, 64);
  auto v = read_bytes(*f.region, f.core(), 4096 * 3 + 10, 100);
  EXPECT_EQ(v, std::vector<uint8_t>(100, 0));
  EXPECT_EQ(f.region->totals().faults, 0u);
  EXPECT_EQ(f.region->totals().zero_fills, 1u);
}

TEST(Region, ResidentPageIsAFastPin) {
  Fixture f(1 << 20, 64);
  const uint8_t x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  write_bytes(*f.region, f.core(), 100, x, 8);
  auto before = f.region->totals();
  auto v = read_bytes(*f.region, f.core(), 100, 8);
  EXPECT_EQ(v, std::vector<uint8_t>(x, x + 8));
  auto after = f.region->totals();
  EXPECT_EQ(after.pins, before.pins + 1);
  EXPECT_EQ(after.faults, before.faults);
  EXPECT_TRUE(f.region->resident(100));
}

TEST(Region, IntegrityUnderEvictionChurn) {
  // 1024 pages, 64 frames (6%): almost every access evicts, dirty pages are written back.
  constexpr uint64_t kBytes = 4 << 20;
  Fixture f(kBytes, 64);
  std::vector<uint8_t> ref(kBytes, 0);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const uint32_t len = 1 + uint32_t(rng() % 200);
    uint64_t off = rng() % (kBytes - len);
    if (off / 4096 != (off + len - 1) / 4096) off = (off / 4096) * 4096;  // stay in one page
    if (rng() % 3 == 0) {
      uint8_t buf[200];
      for (uint32_t j = 0; j < len; ++j) buf[j] = uint8_t(rng());
      write_bytes(*f.region, f.core(), off, buf, len);
      std::memcpy(&ref[off], buf, len);
    } else {
      auto v = read_bytes(*f.region, f.core(), off, len);
      ASSERT_EQ(0, std::memcmp(v.data(), &ref[off], len)) << "op " << i << " offset " << off;
    }
  }
  auto t = f.region->totals();
  EXPECT_GT(t.evictions, 10000u);
  EXPECT_GT(t.writebacks, 1000u);
  EXPECT_GT(t.faults, 1000u);
  EXPECT_EQ(t.errors, 0u);
  // Every page once more, after the churn.
  for (uint64_t off = 0; off < kBytes; off += 4096) {
    auto v = read_bytes(*f.region, f.core(), off, 4096);
    ASSERT_EQ(0, std::memcmp(v.data(), &ref[off], 4096)) << off;
  }
}

TEST(Region, MultiPagePinsGoThroughBounceBuffers) {
  Fixture f(1 << 20, 64, 1, 0, 16384);
  std::vector<uint8_t> big(10000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = uint8_t(i * 7);
  write_bytes(*f.region, f.core(), 4096 * 2 + 100, big.data(), uint32_t(big.size()));
  for (uint64_t off = 40 * 4096; off < 200 * 4096; off += 4096) {  // evict everything
    uint8_t z = 1;
    write_bytes(*f.region, f.core(), off, &z, 1);
  }
  auto v = read_bytes(*f.region, f.core(), 4096 * 2 + 100, uint32_t(big.size()));
  EXPECT_EQ(v, big);
}

TEST(Region, WholePageOverwriteNeedsNoFetch) {
  Fixture f(1 << 20, 32);
  std::vector<uint8_t> page(4096, 9);
  write_bytes(*f.region, f.core(), 0, page.data(), 4096);
  for (uint64_t off = 4096; off < 100 * 4096; off += 4096) {
    uint8_t z = 1;
    write_bytes(*f.region, f.core(), off, &z, 1);  // evicts page 0 (written back: backed)
  }
  ASSERT_FALSE(f.region->resident(0));
  const uint64_t faults = f.region->totals().faults;
  std::vector<uint8_t> page2(4096, 5);
  write_bytes(*f.region, f.core(), 0, page2.data(), 4096, PinAccess::kOverwrite);
  EXPECT_EQ(f.region->totals().faults, faults);
  EXPECT_EQ(read_bytes(*f.region, f.core(), 0, 4096), page2);
}

TEST(Region, ConcurrentFaultsOnOnePageFetchItOnce) {
  // A 200 ms fetch gives both threads time to fault on the same page even on a busy machine.
  Fixture f(1 << 20, 48, 2, 200'000'000);
  const uint8_t x = 42;
  write_bytes(*f.region, f.core(0), 5 * 4096, &x, 1);
  // Reading never-written pages evicts page 5 (one write-back); clean evictions cost nothing.
  for (uint64_t off = 10 * 4096; off < 120 * 4096; off += 4096) read_bytes(*f.region, f.core(0), off, 1);
  ASSERT_FALSE(f.region->resident(5 * 4096));
  const uint64_t faults = f.region->totals().faults;
  std::atomic<int> ready{0};
  std::vector<uint8_t> seen(2);
  auto worker = [&](uint16_t c) {
    ready.fetch_add(1);
    while (ready.load() < 2) {
    }
    seen[c] = read_bytes(*f.region, f.core(c), 5 * 4096, 1)[0];
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  EXPECT_EQ(seen[0], 42);
  EXPECT_EQ(seen[1], 42);
  EXPECT_EQ(f.region->totals().faults, faults + 1);
  EXPECT_GE(f.region->totals().shared_waits, 1u);
}

TEST(Region, TwoCoresChurnWithoutLosingWrites) {
  constexpr uint64_t kBytes = 2 << 20;
  Fixture f(kBytes, 48, 2);
  // Each core owns every other 64-byte record; both read everything.
  std::vector<uint8_t> ref(kBytes, 0);
  auto worker = [&](uint16_t c) {
    std::mt19937_64 rng(100 + c);
    for (int i = 0; i < 60000; ++i) {
      const uint64_t rec = (rng() % (kBytes / 128)) * 2 + c;
      const uint64_t off = rec * 64;
      uint8_t buf[64];
      if (rng() % 2) {
        for (auto& b : buf) b = uint8_t(rng());
        write_bytes(*f.region, f.core(c), off, buf, 64);
        std::memcpy(&ref[off], buf, 64);  // records are disjoint between cores
      } else {
        auto v = read_bytes(*f.region, f.core(c), off, 64);
        ASSERT_EQ(0, std::memcmp(v.data(), &ref[off], 64));
      }
    }
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  for (uint64_t off = 0; off < kBytes; off += 4096) {
    auto v = read_bytes(*f.region, f.core(0), off, 4096);
    ASSERT_EQ(0, std::memcmp(v.data(), &ref[off], 4096)) << off;
  }
  EXPECT_EQ(f.region->totals().errors, 0u);
}

TEST(Region, DeadMemoryNodeFailsFaultsButKeepsResidentData) {
  Fixture f(1 << 20, 32);
  const uint8_t x = 7;
  write_bytes(*f.region, f.core(), 0, &x, 1);
  for (uint64_t off = 4096; off < 80 * 4096; off += 4096) {
    const uint8_t z = 1;
    write_bytes(*f.region, f.core(), off, &z, 1);
  }
  ASSERT_FALSE(f.region->resident(0));
  const uint8_t y = 8;
  write_bytes(*f.region, f.core(), 79 * 4096 + 5, &y, 1);  // resident now
  f.transport->kill();
  std::byte* p = f.region->pin(f.core(), 0, 1, PinAccess::kRead);
  EXPECT_EQ(p, nullptr);
  EXPECT_GE(f.region->totals().errors, 1u);
  auto v = read_bytes(*f.region, f.core(), 79 * 4096 + 5, 1);
  EXPECT_EQ(v[0], 8);
}

TEST(Region, TooFewFramesIsAClearError) {
  EmulatedOptions o;
  auto t = EmulatedTransport::in_process(o, 1 << 20, tsc_clock());
  ASSERT_TRUE(t.is_ok());
  auto r = Region::create(1 << 20, 4, **t, 1, tsc_clock(), 1 << 20);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("paging.local_fraction"), std::string::npos);
  EXPECT_NE(r.status().message().find("kv.item_size_max"), std::string::npos);
}

TEST(Region, RegionLargerThanThePoolIsAClearError) {
  EmulatedOptions o;
  auto t = EmulatedTransport::in_process(o, 1 << 20, tsc_clock());
  ASSERT_TRUE(t.is_ok());
  auto r = Region::create(4 << 20, 64, **t, 1, tsc_clock(), 4096);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("pool_mb"), std::string::npos);
  EXPECT_NE(r.status().message().find("kv.memory_mb"), std::string::npos);
}

}  // namespace
}  // namespace fm::paging
