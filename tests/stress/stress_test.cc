// The asynchronous far-memory path on many threads at once, with every value verified: each
// thread is a worker of the real CoreAllocator polling queue sets, each set a paging core (its
// emulated queue pair, with jitter) + a scheduler + a load generator; few frames, so pages churn
// and dirty ones are written back; stealing on; the fault mode flipped between async and sync at
// random; the active cores changed at random (queue sets adopted and handed back); rounds with
// and without the central dispatcher; single- and multi-page values. Every value carries its
// slot and version and is checked on every read; after each round the page table must be at
// rest (no page fetching or evicting, no pin, frames and resident pages a bijection) and every
// value is read back once more from outside the fibers.
//
// Runs for FARMEM_STRESS_SECONDS (default 6; CI) over FARMEM_STRESS_CORES threads (default 3);
// FARMEM_STRESS_SEED picks the random choices. For a long run:
//   FARMEM_STRESS_SECONDS=3600 build/tests/stress/stress_farmem
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/core_alloc.h"
#include "paging/emulated_transport.h"
#include "paging/region.h"
#include "sched/fault_wait.h"
#include "sched/scheduler.h"

namespace fm {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

// The far region: small slots (one page each, never crossing) and big ones (three pages, so
// every access is a multi-page pin through a bounce buffer).
constexpr uint64_t kSmallSlots = 2048, kSmallStride = 256, kSmallBytes = 200;
constexpr uint64_t kBigSlots = 96, kBigStride = 10240, kBigBytes = 10000;
constexpr uint64_t kBigBase = kSmallSlots * kSmallStride;  // 512 KiB
constexpr uint64_t kRegionBytes = kBigBase + kBigSlots * kBigStride + paging::kPageSize;
constexpr uint64_t kSlots = kSmallSlots + kBigSlots;
constexpr uint64_t kFrames = 64;  // of ~380 pages: most accesses fault or evict

uint64_t slot_offset(uint64_t s) {
  return s < kSmallSlots ? s * kSmallStride : kBigBase + (s - kSmallSlots) * kBigStride;
}
uint32_t slot_bytes(uint64_t s) { return uint32_t(s < kSmallSlots ? kSmallBytes : kBigBytes); }

// A value: [slot][version][bytes derived from both]. Version 0 is the never-written zero page.
void fill(std::byte* p, uint64_t slot, uint64_t version, uint32_t len) {
  std::memcpy(p, &slot, 8);
  std::memcpy(p + 8, &version, 8);
  uint64_t x = slot * 0x9E3779B97F4A7C15ull ^ version;
  for (uint32_t i = 16; i < len; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = std::byte(x);
  }
}
// Empty when `p` holds `slot` at `version`; else what is wrong.
std::string check(const std::byte* p, uint64_t slot, uint64_t version, uint32_t len) {
  uint64_t s, v;
  std::memcpy(&s, p, 8);
  std::memcpy(&v, p + 8, 8);
  if (version == 0) {
    for (uint32_t i = 0; i < len; ++i)
      if (p[i] != std::byte{0}) return "slot " + std::to_string(slot) + ": never written, not zero";
    return {};
  }
  if (s != slot || v != version) {
    return "slot " + std::to_string(slot) + ": holds slot " + std::to_string(s) + " version " +
           std::to_string(v) + ", expected version " + std::to_string(version);
  }
  std::vector<std::byte> want(len);
  fill(want.data(), slot, version, len);
  if (std::memcmp(p, want.data(), len) != 0) {
    return "slot " + std::to_string(slot) + " version " + std::to_string(version) +
           ": bytes differ";
  }
  return {};
}

/// Shared state of a run: the region, the versions committed per slot, and findings.
struct World {
  std::unique_ptr<paging::EmulatedTransport> transport;
  std::unique_ptr<paging::Region> region;
  std::unique_ptr<std::atomic<uint64_t>[]> version { new std::atomic<uint64_t>[ kSlots ] };
  std::unique_ptr<std::atomic<bool>[]> busy { new std::atomic<bool>[ kSlots ] };
  std::atomic<uint64_t> reads{0}, writes{0}, multi_page{0}, lock_yields{0}, far_errors{0};
  std::mutex mu;
  std::vector<std::string> findings;

  World() {
    for (uint64_t i = 0; i < kSlots; ++i) {
      version[i].store(0);
      busy[i].store(false);
    }
  }
  void report(std::string what) {
    std::lock_guard<std::mutex> lock(mu);
    if (findings.size() < 20) findings.push_back(std::move(what));
  }
};

/// One request: read or write (read, verify, then write the next version) of one slot. The
/// slot's lock is taken by a fiber: a busy slot yields (its holder may be parked on this core).
struct Origin {
  std::atomic<uint64_t> done{0};  // requests of one set served (anywhere)
};

struct StressApp : sched::App {
  World* w = nullptr;
  std::atomic<uint64_t> served{0};

  void serve(sched::Fiber&, sched::Request& r) override {
    uint64_t slot;
    bool write;
    Origin* origin;
    std::memcpy(&slot, r.bytes, 8);
    std::memcpy(&write, r.bytes + 8, sizeof(write));
    std::memcpy(&origin, r.bytes + 16, sizeof(origin));
    bool expected = false;
    while (!w->busy[slot].compare_exchange_weak(expected, true, std::memory_order_acquire)) {
      expected = false;
      w->lock_yields.fetch_add(1, std::memory_order_relaxed);
      sched::yield();
    }
    const uint64_t off = slot_offset(slot);
    const uint32_t len = slot_bytes(slot);
    const uint64_t v = w->version[slot].load(std::memory_order_relaxed);
    // The core may change across every wait: read it afresh for each call.
    std::byte* p = w->region->pin(*paging::current_core(), off, len,
                                  write ? paging::PinAccess::kWrite : paging::PinAccess::kRead);
    if (p == nullptr) {
      w->far_errors.fetch_add(1);
      w->report("pin of slot " + std::to_string(slot) + " failed on a healthy memory node");
    } else {
      if (std::string bad = check(p, slot, v, len); !bad.empty()) w->report(bad);
      if (write) {
        fill(p, slot, v + 1, len);
        w->version[slot].store(v + 1, std::memory_order_relaxed);
      }
      w->region->unpin(*paging::current_core(), off, len, p);
      (write ? w->writes : w->reads).fetch_add(1, std::memory_order_relaxed);
      if (len > kSmallBytes) w->multi_page.fetch_add(1, std::memory_order_relaxed);
    }
    w->busy[slot].store(false, std::memory_order_release);
    origin->done.fetch_add(1, std::memory_order_relaxed);
    served.fetch_add(1, std::memory_order_relaxed);
  }
};

/// A queue set: a paging core, its scheduler, and a closed-loop generator of requests (at most
/// `window` of its own outstanding). Polled by one worker at a time (CoreAllocator).
class StressSet : public QueueSet {
 public:
  StressSet(paging::PagingCore& pc, sched::CoreScheduler& cs, uint64_t seed)
      : pc_(pc), cs_(cs), rng_(seed) {}

  uint32_t poll() override {
    paging::current_core() = &pc_;
    uint32_t work = 0;
    // Dekker with quiesce(): either it sees this poll busy, or this poll sees generate false.
    generating_.store(true);
    if (generate.load()) {
      for (int i = 0; i < 4 && generated_.load(std::memory_order_relaxed) -
                                       origin_.done.load(std::memory_order_relaxed) <
                                   kWindow;
           ++i) {
        sched::Request* r = cs_.acquire();
        if (r == nullptr) break;
        const uint64_t slot =
            rng_() % 8 == 0 ? kSmallSlots + rng_() % kBigSlots : rng_() % kSmallSlots;
        const bool write = rng_() % 3 == 0;
        std::memcpy(r->bytes, &slot, 8);
        std::memcpy(r->bytes + 8, &write, sizeof(write));
        Origin* origin = &origin_;
        std::memcpy(r->bytes + 16, &origin, sizeof(origin));
        r->len = 24;
        // Sometimes the slot's pages are prefetched first (only into reserve frames, when the
        // round has a reserve): its fiber may then find them in flight and wait for them.
        if (rng_() % 2 == 0) pc_.region().prefetch(pc_, slot_offset(slot), slot_bytes(slot));
        if (cs_.submit(r)) generated_.fetch_add(1, std::memory_order_relaxed);
        ++work;
      }
    }
    generating_.store(false);
    work += pc_.poll();
    work += cs_.poll();
    return work;
  }
  QueueProbe probe() const override {
    QueueProbe p;
    p.waiting = cs_.queued();
    p.enqueued = cs_.enqueued();
    p.fetches = cs_.parked();
    p.in_flight = cs_.in_flight();
    return p;
  }
  void set_accepting(bool on) override { cs_.set_accepting(on); }

  uint64_t generated() const { return generated_.load(); }
  /// Stops generating and waits out a poll that may still be submitting: generated() is final
  /// afterwards. (A plain flag was not enough: under TSan a poll that had read it before the
  /// drain submitted one more request after the drain had summed generated().)
  void quiesce() {
    generate.store(false);
    while (generating_.load()) std::this_thread::yield();
  }

  std::atomic<bool> generate{true};

 private:
  static constexpr uint64_t kWindow = 48;
  paging::PagingCore& pc_;
  sched::CoreScheduler& cs_;
  std::mt19937_64 rng_;
  std::atomic<uint64_t> generated_{0};
  std::atomic<bool> generating_{false};
  Origin origin_;
};

struct RoundResult {
  uint64_t served = 0, flips = 0, core_changes = 0;
  sched::SchedCounters totals;
  uint64_t steals = 0, parks = 0;
};

// One round: a scheduler with `dispatch`, an allocator over `cores` workers, `seconds` of load
// with random mode flips and core changes, then a drain and the checks.
void round(World& w, uint16_t cores, sched::Dispatch dispatch, double seconds, std::mt19937_64& rng,
           RoundResult* out) {
  StressApp app;
  app.w = &w;
  // Rounds with and without a frame reserve (background reclaim, and prefetches into it).
  w.region->set_reserve(rng() % 3 == 0 ? 0 : 8);
  sched::SchedOptions so;
  so.faults = rng() % 2 ? sched::FaultMode::kAsync : sched::FaultMode::kSync;
  so.max_in_flight = 16;
  so.queue_depth = 64;
  so.steal = true;
  so.dispatch = dispatch;
  auto sched = std::move(sched::Scheduler::create(so, cores, app).value());
  std::vector<std::unique_ptr<sched::FaultWait>> waits;
  std::vector<std::unique_ptr<StressSet>> sets;
  std::vector<QueueSet*> set_ptrs;
  for (uint16_t i = 0; i < cores; ++i) {
    waits.push_back(
        std::make_unique<sched::FaultWait>(w.region->core(CoreId{i}), sched->core(CoreId{i})));
    sets.push_back(
        std::make_unique<StressSet>(w.region->core(CoreId{i}), sched->core(CoreId{i}), rng()));
    set_ptrs.push_back(sets.back().get());
  }
  AllocOptions ao;
  ao.park = rng() % 4 == 0 ? ParkMode::kSpin : ParkMode::kSleep;
  auto alloc = std::move(CoreAllocator::create(ao, set_ptrs).value());

  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (uint16_t i = 0; i < cores; ++i) {
    threads.emplace_back([&, i] {
      while (!stop.load(std::memory_order_relaxed)) alloc->poll_worker(i);
    });
  }
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::microseconds(200 + rng() % 2000));
    switch (rng() % 3) {
      case 0:
        sched->set_faults(sched->faults() == sched::FaultMode::kAsync ? sched::FaultMode::kSync
                                                                      : sched::FaultMode::kAsync);
        ++out->flips;
        break;
      case 1:
        if (alloc->set_active(uint16_t(1 + rng() % cores)).is_ok()) ++out->core_changes;
        break;
      default: {
        // What kvserver's stats and status commands read from the control thread.
        uint64_t seen = sched->central_queued();
        for (uint16_t i = 0; i < cores; ++i) {
          seen += sched->core(CoreId{i}).queued() + sched->core(CoreId{i}).parked() +
                  sched->core(CoreId{i}).counters().parks.read();
        }
        asm volatile("" : : "r"(seen));  // keep the reads
        break;
      }
    }
  }
  // Drain: no new requests; everything generated must be served, in bounded time.
  for (auto& s : sets) s->quiesce();
  (void)alloc->set_active(cores);  // every worker back, so parked sets are polled quickly too
  uint64_t generated = 0;
  for (auto& s : sets) generated += s->generated();
  const auto drain_end = Clock::now() + 20s;
  while (app.served.load() < generated && Clock::now() < drain_end)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(app.served.load(), generated) << "requests never finished: a core hung or lost work";
  // Every worker active again before the loops end (a parked one returns only once active).
  const auto wake_end = Clock::now() + 10s;
  while (Clock::now() < wake_end) {
    bool all = true;
    for (uint16_t i = 0; i < cores; ++i) all = all && !alloc->worker_info(i).parked;
    if (all && alloc->active() == cores) break;
    std::this_thread::sleep_for(100us);
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  // Background write-backs and prefetches still in flight land now (this thread owns every
  // paging core once the workers are gone).
  const auto settle_end = Clock::now() + 10s;
  for (uint16_t i = 0; i < cores; ++i) {
    paging::PagingCore& pc = w.region->core(CoreId{i});
    while (pc.background_in_flight() != 0 && Clock::now() < settle_end) pc.poll();
  }
  out->served = app.served.load();
  for (uint16_t i = 0; i < cores; ++i) {
    const sched::SchedCounters& c = sched->core(CoreId{i}).counters();
    out->steals += c.stolen_new.read() + c.stolen_ready.read();
    out->parks += c.parks.read();
    EXPECT_EQ(sched->core(CoreId{i}).in_flight(), 0u);
  }
  EXPECT_EQ(w.region->check_quiescent(), "") << "the page table is not at rest after a round";
}

TEST(Stress, FarMemoryUnderStealingModeFlipsAndCoreChangesKeepsEveryValue) {
  const double seconds = double(env_or("FARMEM_STRESS_SECONDS", 6));
  const uint16_t cores = uint16_t(std::max<uint64_t>(2, env_or("FARMEM_STRESS_CORES", 3)));
  const uint64_t seed = env_or("FARMEM_STRESS_SEED", 1);
  std::mt19937_64 rng(seed);
  World w;
  paging::EmulatedOptions eo;
  eo.latency_ns = 3300;
  eo.jitter = paging::JitterKind::kExponential;
  eo.jitter_ns = 5000;
  eo.link_gbps = 100;
  eo.max_outstanding = 8;  // small: posts find the queue pair full too
  eo.seed = seed;
  w.transport = std::move(paging::EmulatedTransport::in_process(
                              eo, kRegionBytes + paging::kPageSize, paging::tsc_clock())
                              .value());
  auto region = paging::Region::create(kRegionBytes, kFrames, *w.transport, cores,
                                       paging::tsc_clock(), uint32_t(kBigBytes));
  ASSERT_TRUE(region.is_ok()) << region.status().message();
  w.region = std::move(region.value());

  const int rounds = std::max(2, int(seconds / 2));
  RoundResult total;
  for (int r = 0; r < rounds && !HasFailure(); ++r) {
    const auto dispatch = r % 2 ? sched::Dispatch::kCentral : sched::Dispatch::kPerCore;
    RoundResult one;
    round(w, cores, dispatch, seconds / rounds, rng, &one);
    total.served += one.served;
    total.flips += one.flips;
    total.core_changes += one.core_changes;
    total.steals += one.steals;
    total.parks += one.parks;
  }
  // Every value once more, from outside the fibers (waits busy-poll core 0).
  paging::current_core() = &w.region->core(CoreId{0});
  std::vector<std::byte> buf(kBigBytes);
  for (uint64_t s = 0; s < kSlots; ++s) {
    const uint32_t len = slot_bytes(s);
    std::byte* p =
        w.region->pin(w.region->core(CoreId{0}), slot_offset(s), len, paging::PinAccess::kRead);
    ASSERT_NE(p, nullptr);
    if (std::string bad = check(p, s, w.version[s].load(), len); !bad.empty()) w.report(bad);
    w.region->unpin(w.region->core(CoreId{0}), slot_offset(s), len, p);
  }
  const auto settle_end = Clock::now() + 10s;
  while (w.region->core(CoreId{0}).background_in_flight() != 0 && Clock::now() < settle_end)
    w.region->core(CoreId{0}).poll();
  EXPECT_EQ(w.region->check_quiescent(), "");
  const paging::PagingTotals t = w.region->totals();
  std::printf(
      "stress: %d rounds, %.0f s, %u threads, seed %lu: %lu requests (%lu reads, %lu writes, %lu "
      "multi-page) verified; %lu mode flips, %lu core changes, %lu steals, %lu parks, %lu lock "
      "yields; paging: %lu faults, %lu evictions, %lu write-backs, %lu shared waits, %lu frame "
      "waits, %lu bounce waits, %lu full retries, %lu errors; reserve: %lu takes, %lu direct "
      "reclaims, %lu background write-backs; %lu prefetches (%lu used, %lu wasted)\n",
      rounds, seconds, cores, (unsigned long)seed, (unsigned long)total.served,
      (unsigned long)w.reads.load(), (unsigned long)w.writes.load(),
      (unsigned long)w.multi_page.load(), (unsigned long)total.flips,
      (unsigned long)total.core_changes, (unsigned long)total.steals, (unsigned long)total.parks,
      (unsigned long)w.lock_yields.load(), (unsigned long)t.faults, (unsigned long)t.evictions,
      (unsigned long)t.writebacks, (unsigned long)t.shared_waits, (unsigned long)t.frame_waits,
      (unsigned long)t.bounce_waits, (unsigned long)t.full_retries, (unsigned long)t.errors,
      (unsigned long)t.reserve_takes, (unsigned long)t.direct_reclaims,
      (unsigned long)t.reclaim_writebacks, (unsigned long)t.prefetches,
      (unsigned long)t.prefetch_used, (unsigned long)t.prefetch_wasted);
  for (const auto& f : w.findings) ADD_FAILURE() << f;
  EXPECT_EQ(w.far_errors.load(), 0u);
  EXPECT_EQ(t.errors, 0u);
  EXPECT_GT(t.faults, 0u);
  EXPECT_GT(t.writebacks, 0u);
  EXPECT_GT(total.served, 0u);
}

}  // namespace
}  // namespace fm
