// Fibers and schedulers: switching, pool exhaustion and the queue/drop policy, wake exactly
// once, and a stealing stress test where no request is lost or served twice.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "sched/context.h"
#include "sched/scheduler.h"

namespace fm::sched {
namespace {

TEST(Context, YieldsAndResumes) {
  alignas(64) static std::byte stack[64 * 1024];
  Context c;
  std::vector<int> trace;
  struct Arg {
    Context* c;
    std::vector<int>* t;
  } arg{&c, &trace};
  c.start(stack, sizeof(stack), [](void* p) {
    auto* a = static_cast<Arg*>(p);
    a->t->push_back(1);
    a->c->yield();
    a->t->push_back(3);
    a->c->yield();
    a->t->push_back(5);
  }, &arg);
  EXPECT_FALSE(c.finished());
  c.resume();
  trace.push_back(2);
  c.resume();
  trace.push_back(4);
  c.resume();
  EXPECT_TRUE(c.finished());
  EXPECT_EQ(trace, (std::vector<int>{1, 2, 3, 4, 5}));
  // A finished context can start again on the same stack (no allocation per request).
  c.start(stack, sizeof(stack), [](void* p) { static_cast<Arg*>(p)->t->push_back(6); }, &arg);
  c.resume();
  EXPECT_TRUE(c.finished());
  EXPECT_EQ(trace.back(), 6);
}

/// An app that parks every request once and records completions by request id.
class ParkingApp : public App {
 public:
  explicit ParkingApp(size_t ids) : served(ids) {
    for (auto& s : served) s.store(0);
  }
  void serve(Fiber& f, Request& r) override {
    uint32_t id;
    std::memcpy(&id, r.bytes, sizeof(id));
    if (park_each) {
      CoreScheduler* here = current_scheduler();
      {
        std::lock_guard<std::mutex> lock(mu);
        parked[to_int(here->id())].push_back(&f);  // "posted on this core's queue pair"
      }
      park();
    }
    served[id].fetch_add(1);
  }
  /// The completion poller of `core`: wakes what parked there.
  uint32_t complete(CoreScheduler& core) {
    std::vector<Fiber*> mine;
    {
      std::lock_guard<std::mutex> lock(mu);
      mine.swap(parked[to_int(core.id())]);
    }
    for (Fiber* f : mine) core.wake(f);
    return uint32_t(mine.size());
  }
  bool park_each = true;
  std::mutex mu;
  std::vector<Fiber*> parked[4];
  std::vector<std::atomic<int>> served;
};

Request* make_request(CoreScheduler& s, uint32_t id) {
  Request* r = s.acquire();
  if (r == nullptr) return nullptr;
  std::memcpy(r->bytes, &id, sizeof(id));
  r->len = sizeof(id);
  return r;
}

TEST(Scheduler, ParkedFibersResumeAfterWake) {
  ParkingApp app(100);
  SchedOptions o;
  o.max_in_flight = 8;
  o.queue_depth = 128;
  o.steal = false;
  auto s = Scheduler::create(o, 1, app);
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  CoreScheduler& c = (*s)->core(CoreId{0});
  for (uint32_t i = 0; i < 20; ++i) ASSERT_TRUE(c.submit(make_request(c, i)));
  c.poll();
  EXPECT_EQ(c.in_flight(), 8u);  // bounded: 8 fibers parked, 12 requests still queued
  EXPECT_EQ(c.queued(), 12u);
  for (int round = 0; round < 10 && c.counters().finished.read() < 20; ++round) {
    app.complete(c);
    c.poll();
  }
  EXPECT_EQ(c.counters().finished.read(), 20u);
  EXPECT_EQ(c.in_flight(), 0u);
  for (uint32_t i = 0; i < 20; ++i) EXPECT_EQ(app.served[i].load(), 1) << i;
  EXPECT_EQ(c.counters().parks.read(), 20u);
  EXPECT_EQ(c.counters().wakes.read(), 20u);
}

/// An app that records, per request id, whether it ran inside a fiber and on which slot's state.
class InlineProbeApp : public App {
 public:
  void serve(Fiber& f, Request& r) override {
    uint32_t id;
    std::memcpy(&id, r.bytes, sizeof(id));
    in_fiber.push_back(current_fiber() != nullptr);
    states.push_back(f.app_state);
    ids.push_back(id);
  }
  std::vector<bool> in_fiber;
  std::vector<void*> states;
  std::vector<uint32_t> ids;
};

/// One core with four fibers, no stealing, and each slot's app state pointing at the slot (so a
/// test sees which slot's state served a request): the set-up of the tests of the paths around
/// new requests (landed ones, run to completion, idle slots).
struct ProbeCore {
  explicit ProbeCore(Dispatch dispatch = Dispatch::kPerCore) {
    SchedOptions o;
    o.max_in_flight = 4;
    o.queue_depth = 64;
    o.steal = false;
    o.dispatch = dispatch;
    auto s = Scheduler::create(o, 1, app);
    EXPECT_TRUE(s.is_ok()) << s.status().message();
    sched = std::move(s.value());
    for (size_t i = 0; i < core().fiber_slots(); ++i) {
      core().fiber_slot(i).app_state = &core().fiber_slot(i);
    }
  }
  CoreScheduler& core() { return sched->core(CoreId{0}); }
  InlineProbeApp app;  // outlives the scheduler, which serves into it
  std::unique_ptr<Scheduler> sched;
};

// With never_parks, new requests run to completion without a fiber, in arrival order, a bounded
// batch per poll, and are never counted in flight; once preemption is on they get fibers again.
TEST(Scheduler, NeverParksRunsRequestsToCompletionWithoutFibers) {
  ProbeCore p;
  p.sched->set_never_parks(true);
  CoreScheduler& c = p.core();
  InlineProbeApp& app = p.app;
  for (uint32_t i = 0; i < 12; ++i) ASSERT_TRUE(c.submit(make_request(c, i)));
  EXPECT_EQ(c.poll(), 8u);  // at most 8 new requests per poll, as with fibers
  EXPECT_EQ(c.queued(), 4u);
  EXPECT_EQ(c.in_flight(), 0u);
  EXPECT_EQ(c.poll(), 4u);
  ASSERT_EQ(app.ids.size(), 12u);
  for (uint32_t i = 0; i < 12; ++i) {
    EXPECT_EQ(app.ids[i], i);
    EXPECT_FALSE(app.in_fiber[i]) << i;
    EXPECT_NE(app.states[i], nullptr);
  }
  EXPECT_EQ(c.counters().started.read(), 12u);
  EXPECT_EQ(c.counters().finished.read(), 12u);
  // Every request buffer went back: the whole pool can be acquired again.
  std::vector<Request*> all;
  while (Request* r = c.acquire()) all.push_back(r);
  const SchedOptions& o = p.sched->options();
  EXPECT_EQ(all.size(), size_t{o.queue_depth} + o.max_in_flight);
  for (uint32_t i = 0; i < 2; ++i) {
    std::memcpy(all[i]->bytes, &i, sizeof(i));
    ASSERT_TRUE(c.submit(all[i]));
  }
  all.erase(all.begin(), all.begin() + 2);
  // A quantum needs a fiber to leave: with preemption on, requests run in fibers again.
  p.sched->set_preempt_us(1000);
  EXPECT_EQ(c.poll(), 2u);
  ASSERT_EQ(app.in_fiber.size(), 14u);
  EXPECT_TRUE(app.in_fiber[12]);
  EXPECT_TRUE(app.in_fiber[13]);
  EXPECT_EQ(c.in_flight(), 0u);
}

// A request whose prefetched pages landed arrived before the ones queued while it waited: it
// starts first (with fibers: the scheduler's usual path).
TEST(Scheduler, LandedRequestsStartBeforeNewOnes) {
  ProbeCore p;
  CoreScheduler& c = p.core();
  InlineProbeApp& app = p.app;
  for (uint32_t i = 1; i <= 3; ++i) ASSERT_TRUE(c.submit(make_request(c, i)));
  ASSERT_TRUE(c.submit_landed(make_request(c, 0)));
  EXPECT_EQ(c.queued(), 4u);
  EXPECT_EQ(c.poll(), 4u);
  ASSERT_EQ(app.ids.size(), 4u);
  for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(app.ids[i], i);
  EXPECT_EQ(c.counters().submitted.read(), 4u);
}

// The receive path may serve a request at once only when that keeps FCFS and needs no fiber.
TEST(Scheduler, AnIdleSlotOnlyWhenNothingWaitsAndNothingCanPark) {
  ProbeCore p;
  CoreScheduler& c = p.core();
  EXPECT_EQ(c.idle_slot(), nullptr);  // far memory: a request may park
  p.sched->set_never_parks(true);
  Fiber* slot = c.idle_slot();
  ASSERT_NE(slot, nullptr);
  EXPECT_EQ(c.idle_slot(), slot);  // the same slot every time
  c.served_now();
  EXPECT_EQ(c.counters().submitted.read(), 1u);
  EXPECT_EQ(c.counters().finished.read(), 1u);
  ASSERT_TRUE(c.submit(make_request(c, 0)));
  EXPECT_EQ(c.idle_slot(), nullptr);  // an older request waits: it goes first
  EXPECT_EQ(c.poll(), 1u);
  EXPECT_EQ(c.idle_slot(), slot);
  p.sched->set_preempt_us(1000);
  EXPECT_EQ(c.idle_slot(), nullptr);  // a quantum needs a fiber
  p.sched->set_preempt_us(0);
  ProbeCore central(Dispatch::kCentral);
  central.sched->set_never_parks(true);
  EXPECT_EQ(central.core().idle_slot(), nullptr);  // the dispatcher decides the order
}

TEST(Scheduler, FullQueueDropsAndCounts) {
  ParkingApp app(100);
  SchedOptions o;
  o.max_in_flight = 2;
  o.queue_depth = 4;
  o.steal = false;
  auto s = Scheduler::create(o, 1, app);
  ASSERT_TRUE(s.is_ok());
  CoreScheduler& c = (*s)->core(CoreId{0});
  int accepted = 0, no_buffer = 0;
  for (uint32_t i = 0; i < 20; ++i) {
    Request* r = make_request(c, i);
    if (r == nullptr) {
      ++no_buffer;
      continue;
    }
    accepted += c.submit(r) ? 1 : 0;
  }
  // Ring capacity is a power of two minus one: 4 queued at most here (queue_depth 4 -> ring 8).
  EXPECT_GE(accepted, 4);
  EXPECT_EQ(accepted + int(c.counters().dropped.read()) + no_buffer, 20);
  c.poll();
  EXPECT_EQ(c.in_flight(), 2u);
  while (c.counters().finished.read() < uint64_t(accepted)) {
    app.complete(c);
    c.poll();
  }
  EXPECT_EQ(c.counters().finished.read(), uint64_t(accepted));
}

TEST(Scheduler, YieldRequeuesBehindOthers) {
  struct YieldApp : App {
    std::vector<int> order;
    void serve(Fiber&, Request& r) override {
      int id;
      std::memcpy(&id, r.bytes, sizeof(id));
      order.push_back(id);
      if (id == 0) {
        yield();
        order.push_back(100);
      }
    }
  } app;
  SchedOptions o;
  o.max_in_flight = 4;
  o.steal = false;
  auto s = Scheduler::create(o, 1, app);
  ASSERT_TRUE(s.is_ok());
  CoreScheduler& c = (*s)->core(CoreId{0});
  for (uint32_t i = 0; i < 3; ++i) ASSERT_TRUE(c.submit(make_request(c, i)));
  c.poll();
  c.poll();
  EXPECT_EQ(app.order, (std::vector<int>{0, 1, 2, 100}));
}

TEST(Scheduler, StealingStressServesEveryRequestExactlyOnce) {
  constexpr uint32_t kRequests = 20000;
  ParkingApp app(kRequests);
  SchedOptions o;
  o.max_in_flight = 16;
  o.queue_depth = 256;
  o.steal = true;
  auto s = Scheduler::create(o, 2, app);
  ASSERT_TRUE(s.is_ok());
  std::atomic<bool> done{false};
  std::atomic<uint32_t> next{0};
  // Core 0 receives every request (like one busy NIC queue) and runs its scheduler only every
  // fourth round, so work piles up there; core 1 only steals — new requests and resumed fibers
  // that parked (and were woken) on core 0. Core 0 runs its scheduler only once core 1 has
  // stolen something (or after 2 s): on a loaded machine core 1's thread may otherwise get no
  // CPU before core 0 has served everything alone (one run finished in 16 ms, nothing stolen).
  const SchedCounters& c1 = (*s)->core(CoreId{1}).counters();
  const auto start = std::chrono::steady_clock::now();
  auto core1_stole = [&] {
    return c1.stolen_new.read() + c1.stolen_ready.read() > 0 ||
           std::chrono::steady_clock::now() - start > std::chrono::seconds(2);
  };
  auto core_loop = [&](uint16_t id) {
    CoreScheduler& c = (*s)->core(CoreId{id});
    uint64_t round = 0;
    bool may_poll = id == 1;
    while (!done.load()) {
      ++round;
      if (id == 0) {
        for (int k = 0; k < 8; ++k) {
          const uint32_t n = next.load();
          if (n >= kRequests) break;
          Request* r = make_request(c, n);
          if (r == nullptr) break;
          if (c.submit(r)) next.fetch_add(1);
        }
      }
      app.complete(c);
      if (!may_poll) may_poll = core1_stole();
      if (id == 1 || (may_poll && round % 4 == 0)) c.poll();
    }
  };
  std::thread t0(core_loop, 0), t1(core_loop, 1);
  for (int i = 0; i < 3000; ++i) {
    uint64_t fin = 0;
    for (uint16_t c = 0; c < 2; ++c) fin += (*s)->core(CoreId{c}).counters().finished.read();
    if (fin == kRequests) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  done.store(true);
  t0.join();
  t1.join();
  uint64_t finished = 0;
  for (uint16_t c = 0; c < 2; ++c) finished += (*s)->core(CoreId{c}).counters().finished.read();
  EXPECT_EQ(finished, kRequests);
  // Which kind gets stolen depends on thread timing (a loaded machine); that both kinds are
  // stolen is asserted deterministically in IdleCoreStealsNewAndResumed.
  EXPECT_GT(c1.stolen_new.read() + c1.stolen_ready.read(), 0u);
  for (uint32_t i = 0; i < kRequests; ++i) ASSERT_EQ(app.served[i].load(), 1) << "request " << i;
}

}  // namespace
}  // namespace fm::sched
