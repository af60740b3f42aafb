// The far region: data integrity under eviction churn, fetch sharing, overwrite without fetch,
// bounce-buffered multi-page pins, a dead memory node, and configuration errors.
#include <gtest/gtest.h>

#include <atomic>
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

using Fixture = testing::RegionFixture;

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

// Issue #11, 1: a never-used frame was handed out by a fetch_add and marked claimed in a
// separate store, and the CLOCK hand takes any frame reading 0: a core paused between the two
// steps lost its frame to another core, and two pages ended up in one frame. Core 0 is held
// right after it got the last fresh frame while core 1's CLOCK hand sweeps every frame.
TEST(Region, AFreshFrameIsNeverTakenByTheClockHand) {
  Fixture f(1 << 20, 32, 2, 0, 4096);  // 32 frames, 256 pages, two cores
  const uint64_t frames = f.region->frame_count();
  // Pages 0..frames-2 take all fresh frames but the last; unpinned, referenced.
  for (uint64_t p = 0; p + 1 < frames; ++p) {
    const uint8_t x = uint8_t(p);
    write_bytes(*f.region, f.core(0), p * 4096, &x, 1);
  }
  struct Gate {
    std::atomic<int> phase{0};  // 1: core 0 holds the last fresh frame; 2: go on
    uint32_t frame = 0;
  } gate;
  f.region->set_fresh_frame_hook(
      [](void* arg, uint32_t frame) {
        auto* g = static_cast<Gate*>(arg);
        g->frame = frame;
        g->phase.store(1);
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (g->phase.load() != 2 && std::chrono::steady_clock::now() < end) {
        }
      },
      &gate);
  const uint8_t a = 0xAA, b = 0xBB;
  std::thread t0([&] { write_bytes(*f.region, f.core(0), 200 * 4096, &a, 1); });
  while (gate.phase.load() != 1) {
  }
  // Core 1 needs a frame now: no fresh one is left, so its CLOCK hand sweeps every frame.
  f.region->set_fresh_frame_hook(nullptr, nullptr);
  write_bytes(*f.region, f.core(1), 201 * 4096, &b, 1);
  gate.phase.store(2);
  t0.join();
  EXPECT_EQ(f.region->check_quiescent(), "");
  EXPECT_EQ(read_bytes(*f.region, f.core(0), 200 * 4096, 1)[0], 0xAA);
  EXPECT_EQ(read_bytes(*f.region, f.core(1), 201 * 4096, 1)[0], 0xBB);
  EXPECT_EQ(f.region->check_quiescent(), "");
}

// Issue #11, 3: with every frame pinned a pin failed at once (after an O(frames) scan) though
// the memory node was healthy. It now waits for a pin to go.
TEST(Region, APinWaitsForAFrameInsteadOfFailing) {
  Fixture f(1 << 20, 32, 2, 0, 4096);
  const uint64_t frames = f.region->frame_count();
  std::vector<std::byte*> held;
  for (uint64_t p = 0; p < frames; ++p) {
    held.push_back(f.region->pin(f.core(0), p * 4096, 8, PinAccess::kWrite));
    ASSERT_NE(held.back(), nullptr);
  }
  std::atomic<bool> released{false};
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    released.store(true);
    f.region->unpin(f.core(0), 0, 8, held[0]);
  });
  std::byte* p = f.region->pin(f.core(1), 100 * 4096, 8, PinAccess::kRead);
  releaser.join();
  EXPECT_NE(p, nullptr);
  EXPECT_TRUE(released.load());
  if (p) f.region->unpin(f.core(1), 100 * 4096, 8, p);
  for (uint64_t i = 1; i < frames; ++i) f.region->unpin(f.core(0), i * 4096, 8, held[i]);
  EXPECT_GE(f.region->totals().frame_waits, 1u);
  EXPECT_EQ(f.region->totals().errors, 0u);
  EXPECT_EQ(f.region->check_quiescent(), "");
}

// ...and a multi-page pin waited neither for a bounce buffer (4 per core) nor for frames.
TEST(Region, AMultiPagePinWaitsForABounceBuffer) {
  Fixture f(1 << 20, 64, 2, 0, 8192);
  std::vector<std::byte*> held;
  for (uint64_t i = 0; i < 8; ++i) {  // every bounce buffer of both cores
    held.push_back(f.region->pin(f.core(0), i * 3 * 4096 + 100, 5000, PinAccess::kRead));
    ASSERT_NE(held.back(), nullptr) << i;
  }
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    f.region->unpin(f.core(0), 100, 5000, held[0]);
  });
  std::byte* p = f.region->pin(f.core(1), 100 * 4096 + 50, 5000, PinAccess::kWrite);
  releaser.join();
  ASSERT_NE(p, nullptr);
  f.region->unpin(f.core(1), 100 * 4096 + 50, 5000, p);
  for (uint64_t i = 1; i < 8; ++i) f.region->unpin(f.core(0), i * 3 * 4096 + 100, 5000, held[i]);
  EXPECT_GE(f.region->totals().bounce_waits, 1u);
  EXPECT_EQ(f.region->totals().errors, 0u);
  EXPECT_EQ(f.region->check_quiescent(), "");
}

// Pins that stay exhausted past the limit fail with a count, not a hang.
TEST(Region, ExhaustionPastTheWaitLimitFails) {
  Fixture f(1 << 20, 32, 1);
  f.region->set_wait_limit_ms(20);
  const uint64_t frames = f.region->frame_count();
  std::vector<std::byte*> held;
  for (uint64_t p = 0; p < frames; ++p) {
    held.push_back(f.region->pin(f.core(0), p * 4096, 8, PinAccess::kRead));
    ASSERT_NE(held.back(), nullptr);
  }
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(f.region->pin(f.core(0), 100 * 4096, 8, PinAccess::kRead), nullptr);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(20));
  EXPECT_EQ(f.region->totals().errors, 1u);
  for (uint64_t p = 0; p < frames; ++p) f.region->unpin(f.core(0), p * 4096, 8, held[p]);
  EXPECT_EQ(f.region->check_quiescent(), "");
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

// The transfer-latency histograms time one transfer in kLatencySampleEvery per core (its first,
// then every 8th): 16 READs and 8 WRITEs of 1,000 ns give 2 READ samples and 1 WRITE sample,
// each in the bucket of 1,000 ns.
TEST(Region, LatencyHistogramsTimeOneTransferInEight) {
  uint64_t now = 1'000'000;  // ns (manual clock at 1 GHz)
  EmulatedOptions o;
  o.latency_ns = 1000;
  o.link_gbps = 1e9;  // no serialization: every transfer takes exactly the latency
  auto t = EmulatedTransport::in_process(o, 1 << 20, manual_clock(&now));
  ASSERT_TRUE(t.is_ok());
  auto r = Region::create(1 << 20, 64, **t, 1, manual_clock(&now), 4096);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  PagingCore& c = (*r)->core(CoreId{0});
  static_assert(PagingCore::kLatencySampleEvery == 8);
  std::vector<std::byte> buf(kPageSize);
  for (int i = 0; i < 24; ++i) {
    IoWait io;
    const IoOp op = i < 16 ? IoOp::kRead : IoOp::kWrite;
    ASSERT_EQ(c.post(op, uint64_t(i) * kPageSize, buf.data(), kPageSize, io), PostResult::kOk);
    EXPECT_EQ(c.poll(), 0u);  // not due yet
    now += 1000;
    ASSERT_EQ(c.poll(), 1u);
    EXPECT_TRUE(io.done.load());
    EXPECT_EQ(io.status, IoStatus::kOk);
  }
  const PagingTotals tot = (*r)->totals();
  uint64_t reads = 0, writes = 0;
  for (uint64_t v : tot.read_latency) reads += v;
  for (uint64_t v : tot.write_latency) writes += v;
  EXPECT_EQ(reads, 2u);
  EXPECT_EQ(writes, 1u);
  const uint64_t p50 = latency_percentile(tot.read_latency, 0.5);
  EXPECT_GE(p50, 1000u);
  EXPECT_LE(p50, 1063u);  // the bucket's upper edge: within 6.25%
  EXPECT_EQ(latency_percentile(tot.write_latency, 0.5), p50);
}

}  // namespace
}  // namespace fm::paging
