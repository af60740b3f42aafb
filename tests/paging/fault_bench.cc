// Fault-path microbenchmarks: the resident fast path, the software overhead of a miss (model
// latency 0), and a whole fault at the model's default 3.3 us. Run: build/tests/paging/fault_bench
#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <vector>

#include "paging/emulated_transport.h"
#include "paging/region.h"
#include "paging/replicated_transport.h"
#include "sched/fault_wait.h"
#include "sched/scheduler.h"

namespace fm::paging {
namespace {

/// How far memory is reached: one emulated node directly, or through the replicated layer
/// (kvserver's default since issue #13: one node behind it, so that it can be redialled), or
/// three nodes with two copies of each page.
enum class Layer { kDirect, kOneNode, kThreeNodesTwoCopies };

struct Setup {
  Setup(uint32_t latency_ns, uint64_t pages, uint64_t frames, Layer layer = Layer::kDirect,
        bool move_bytes = true) {
    EmulatedOptions o;
    o.latency_ns = latency_ns;
    o.move_bytes = move_bytes;
    o.link_gbps = latency_ns == 0 ? 1e6 : 100.0;  // no serialization when measuring software
    if (layer == Layer::kDirect) {
      transport =
          std::move(EmulatedTransport::in_process(o, pages * kPageSize, tsc_clock()).value());
    } else {
      const uint32_t n = layer == Layer::kOneNode ? 1 : 3, r = layer == Layer::kOneNode ? 1 : 2;
      std::vector<std::unique_ptr<Transport>> nodes;
      for (uint32_t i = 0; i < n; ++i) {
        nodes.push_back(std::move(
            EmulatedTransport::in_process(o, Placement{n, r}.lease_bytes(pages), tsc_clock())
                .value()));
      }
      transport = std::move(
          ReplicatedTransport::create(std::move(nodes), {}, r, pages * kPageSize).value());
    }
    region = std::move(
        Region::create(pages * kPageSize, frames, *transport, 1, tsc_clock(), 4096).value());
    // Make every page backed (written back once), so later misses really fetch.
    PagingCore& c = region->core(CoreId{0});
    for (uint64_t p = 0; p < pages; ++p) {
      std::byte* b = region->pin(c, p * kPageSize, 8, PinAccess::kWrite);
      std::memset(b, int(p), 8);
      region->unpin(c, p * kPageSize, 8, b);
    }
    for (uint64_t p = 0; p < pages; ++p) {  // and push them all out with clean evictions
      std::byte* b = region->pin(c, p * kPageSize, 8, PinAccess::kRead);
      region->unpin(c, p * kPageSize, 8, b);
    }
  }
  std::unique_ptr<Transport> transport;
  std::unique_ptr<Region> region;
};

/// Pins the next page of a ring larger than the frames each iteration: every pin misses.
void pin_ring(benchmark::State& state, Setup& s, uint64_t pages) {
  PagingCore& c = s.region->core(CoreId{0});
  uint64_t p = 0;
  for (auto _ : state) {
    const uint64_t off = (p++ % pages) * kPageSize;
    std::byte* b = s.region->pin(c, off, 8, PinAccess::kRead);
    benchmark::DoNotOptimize(b);
    s.region->unpin(c, off, 8, b);
  }
}

void BM_PinResident(benchmark::State& state) {
  Setup s(0, 64, 64);
  PagingCore& c = s.region->core(CoreId{0});
  for (auto _ : state) {
    std::byte* b = s.region->pin(c, 5 * kPageSize + 64, 128, PinAccess::kRead);
    benchmark::DoNotOptimize(b);
    s.region->unpin(c, 5 * kPageSize + 64, 128, b);
  }
}
BENCHMARK(BM_PinResident);

// Each iteration touches the next page of a ring 4x larger than the frames: every pin misses,
// evicts a clean page and fetches one. Includes the emulated transport's 4 KiB copy (the NIC's
// DMA on real hardware) — BM_Copy4K measures that part alone.
void BM_MissSoftwareOverhead(benchmark::State& state) {
  constexpr uint64_t kPages = 4096, kFrames = 1024;
  Setup s(0, kPages, kFrames);
  pin_ring(state, s, kPages);
  const auto t = s.region->totals();
  state.counters["faults_per_iter"] = double(t.faults) / double(state.iterations());
}
BENCHMARK(BM_MissSoftwareOverhead);

// The same misses through the replicated layer: one node (kvserver's default, so that a dead
// node can be redialled) and three nodes with two copies (each eviction here is clean: reads only).
void BM_MissSoftwareOverheadOneNodeLayer(benchmark::State& state) {
  constexpr uint64_t kPages = 4096, kFrames = 1024;
  Setup s(0, kPages, kFrames, Layer::kOneNode);
  pin_ring(state, s, kPages);
}
BENCHMARK(BM_MissSoftwareOverheadOneNodeLayer);
void BM_MissSoftwareOverheadThreeNodesTwoCopies(benchmark::State& state) {
  constexpr uint64_t kPages = 4096, kFrames = 1024;
  Setup s(0, kPages, kFrames, Layer::kThreeNodesTwoCopies);
  pin_ring(state, s, kPages);
}
BENCHMARK(BM_MissSoftwareOverheadThreeNodesTwoCopies);

void BM_Copy4K(benchmark::State& state) {
  static std::byte src[kPageSize * 64], dst[kPageSize];
  uint64_t i = 0;
  for (auto _ : state) {
    std::memcpy(dst, src + (i++ % 64) * kPageSize, kPageSize);
    benchmark::DoNotOptimize(dst);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_Copy4K);

// The emulated DMA as the miss benchmarks see it: a page of a 16 MiB pool into a frame of a
// 4 MiB frame pool, both rings far larger than the cache (a miss's copy is rarely warm). The
// async miss benchmarks minus this (twice with write-backs) is the fault's CPU cost alone.
void BM_Copy4KCold(benchmark::State& state) {
  constexpr uint64_t kPages = 4096, kFrames = 1024;
  std::vector<std::byte> pool(kPages * kPageSize, std::byte{1}), frames(kFrames * kPageSize);
  uint64_t i = 0;
  for (auto _ : state) {
    // Strides that are coprime with both rings: every pair (page, frame) in turn.
    std::memcpy(frames.data() + (i * 7 % kFrames) * kPageSize,
                pool.data() + (i * 13 % kPages) * kPageSize, kPageSize);
    ++i;
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_Copy4KCold);

// A whole synchronous fault at the default model (3.3 us + 4 KiB at 100 Gb/s = 3.63 us).
void BM_SyncFaultAt3300ns(benchmark::State& state) {
  constexpr uint64_t kPages = 2048, kFrames = 512;
  Setup s(3300, kPages, kFrames);
  pin_ring(state, s, kPages);
}
BENCHMARK(BM_SyncFaultAt3300ns)->UseRealTime();

// The asynchronous fault cycle a request goes through in kvserver, at a 0 ns model: a request
// is queued, a fiber starts, its pin misses (victim, post), the fiber parks, the completion is
// polled and wakes it, it resumes, unpins and finishes. Minus BM_Copy4K (the emulated DMA) this is
// the CPU cost of miss -> yield -> resume including the scheduler's bookkeeping.
struct AsyncBench : sched::App {
  Region* region = nullptr;
  uint64_t pages = 0, next = 0;
  bool resident = false;  // always the same (resident) page: the request path without a miss
  bool write = false;     // dirty every page: each eviction writes it back
  void serve(sched::Fiber&, sched::Request&) override {
    PagingCore& c = *current_core();
    const uint64_t off = resident ? 5 * kPageSize : (next++ % pages) * kPageSize;
    std::byte* b = region->pin(c, off, 8, write ? PinAccess::kWrite : PinAccess::kRead);
    if (write) std::memset(b, 1, 8);
    benchmark::DoNotOptimize(b);
    region->unpin(*current_core(), off, 8, b);
  }
};

// `reserve`: paging.reserve_frames (kvserver's default 64; 0 = every fault sweeps and writes
// back for itself).
// `move_bytes` false: the emulated transport completes every transfer without copying the page
// (what a real NIC's DMA spares the CPU), so the time is the fault's CPU cost alone.
void async_requests(benchmark::State& state, bool resident, bool write = false,
                    uint32_t reserve = 0, bool move_bytes = true, Layer layer = Layer::kDirect) {
  constexpr uint64_t kPages = 4096, kFrames = 1024;
  Setup s(0, kPages, kFrames, layer, move_bytes);
  s.region->set_reserve(reserve);
  AsyncBench app;
  app.write = write;
  app.region = s.region.get();
  app.pages = kPages;
  app.resident = resident;
  sched::SchedOptions o;
  o.max_in_flight = 4;
  o.steal = false;
  auto sch = sched::Scheduler::create(o, 1, app);
  sched::CoreScheduler& cs = (*sch)->core(CoreId{0});
  PagingCore& pc = s.region->core(CoreId{0});
  sched::FaultWait hooks(pc, cs);  // kvserver's hooks, async mode
  current_core() = &pc;
  for (auto _ : state) {
    sched::Request* r = cs.acquire();
    r->len = 0;
    cs.submit(r);
    const uint64_t done = cs.counters().finished.read() + 1;
    while (cs.counters().finished.read() < done) {
      pc.poll();
      cs.poll();
    }
  }
  const auto t = s.region->totals();
  const double n = double(state.iterations());
  state.counters["faults_per_iter"] = double(t.faults) / n;
  state.counters["parks_per_iter"] = double(cs.counters().parks.read()) / n;
  state.counters["writebacks_per_iter"] = double(t.writebacks) / n;
  state.counters["direct_reclaims_per_iter"] = double(t.direct_reclaims) / n;
}
void BM_AsyncMissYieldResume(benchmark::State& state) { async_requests(state, false); }
BENCHMARK(BM_AsyncMissYieldResume);
// The same request path when the page is resident: queue, fiber start, pin, unpin, finish.
// BM_AsyncMissYieldResume minus this is what a miss adds (victim, post, park, completion, wake,
// resume), copy included.
void BM_AsyncRequestResident(benchmark::State& state) { async_requests(state, true); }
BENCHMARK(BM_AsyncRequestResident);
// Every request dirties the page it misses on, so every eviction writes a page back: the whole
// amortized cost of a fault (victim, write-back, READ, park, wake) with the emulated copies
// (two BM_Copy4K: the READ's and the WRITE's). Without a reserve each fault sweeps and waits for
// its victim's write-back; with kvserver's default reserve of 64 frames, the refill between
// requests does both in batches and the fault takes a free frame.
void BM_AsyncMissDirtyNoReserve(benchmark::State& state) { async_requests(state, false, true, 0); }
BENCHMARK(BM_AsyncMissDirtyNoReserve);
void BM_AsyncMissDirtyReserve64(benchmark::State& state) { async_requests(state, false, true, 64); }
BENCHMARK(BM_AsyncMissDirtyReserve64);
void BM_AsyncMissCleanReserve64(benchmark::State& state) { async_requests(state, false, false, 64); }
BENCHMARK(BM_AsyncMissCleanReserve64);
// The issue #14 measure, CPU per fault with everything but the fetch and the emulated copy:
// the same requests with no bytes moved, minus BM_AsyncRequestResident (which moves none).
void BM_AsyncMissCleanNoCopy(benchmark::State& state) {
  async_requests(state, false, false, 64, false);
}
BENCHMARK(BM_AsyncMissCleanNoCopy);
void BM_AsyncMissDirtyNoCopy(benchmark::State& state) {
  async_requests(state, false, true, 64, false);
}
BENCHMARK(BM_AsyncMissDirtyNoCopy);
// The same through the replicated layer with one node, as kvserver runs by default (so that a
// dead node can be redialled); the resident request is the same with or without it.
void BM_AsyncRequestResidentOneNodeLayer(benchmark::State& state) {
  async_requests(state, true, false, 0, true, Layer::kOneNode);
}
BENCHMARK(BM_AsyncRequestResidentOneNodeLayer);
void BM_AsyncMissCleanNoCopyOneNodeLayer(benchmark::State& state) {
  async_requests(state, false, false, 64, false, Layer::kOneNode);
}
BENCHMARK(BM_AsyncMissCleanNoCopyOneNodeLayer);
void BM_AsyncMissDirtyNoCopyOneNodeLayer(benchmark::State& state) {
  async_requests(state, false, true, 64, false, Layer::kOneNode);
}
BENCHMARK(BM_AsyncMissDirtyNoCopyOneNodeLayer);

// Fixed iteration counts, for instruction counts under callgrind: each runs once, set-up
// included, so the difference of two sizes divided by 80,000 is the cost of one iteration
// (tools/bench/fault_instructions.sh subtracts the emulated copy's share the same way).
#define FM_FIXED(fn, name)                                              \
  BENCHMARK(fn)->Name("Fixed/" name "/20000")->Iterations(20000);       \
  BENCHMARK(fn)->Name("Fixed/" name "/100000")->Iterations(100000)
FM_FIXED(BM_AsyncRequestResident, "Resident");
FM_FIXED(BM_AsyncMissCleanReserve64, "MissClean");
FM_FIXED(BM_AsyncMissDirtyReserve64, "MissDirty");
FM_FIXED(BM_AsyncMissDirtyNoReserve, "MissDirtyNoReserve");
FM_FIXED(BM_AsyncMissCleanNoCopyOneNodeLayer, "MissCleanOneNodeLayer");
FM_FIXED(BM_AsyncMissDirtyNoCopyOneNodeLayer, "MissDirtyOneNodeLayer");
#undef FM_FIXED

}  // namespace
}  // namespace fm::paging

BENCHMARK_MAIN();
