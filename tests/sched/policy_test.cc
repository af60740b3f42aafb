// Scheduling policies: stealing of both kinds, the fault-likely queue and its starvation bound,
// the central dispatcher's placement, cooperative preemption, and the history predictor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include <rte_cycles.h>

#include "sched/predictor.h"
#include "sched/scheduler.h"

namespace fm::sched {
namespace {

Request* make_request(CoreScheduler& s, uint32_t id, bool likely_fault = false) {
  Request* r = s.acquire();
  if (r == nullptr) return nullptr;
  std::memcpy(r->bytes, &id, sizeof(id));
  r->len = sizeof(id);
  r->likely_fault = likely_fault;
  return r;
}

uint32_t id_of(const Request& r) {
  uint32_t id;
  std::memcpy(&id, r.bytes, sizeof(id));
  return id;
}

/// Records the order requests finish in; parks the ones listed in `park_ids` once, on the core
/// running them, until complete() wakes them there.
class OrderApp : public App {
 public:
  void serve(Fiber& f, Request& r) override {
    const uint32_t id = id_of(r);
    if (park_all) {
      parked[to_int(current_scheduler()->id())].push_back(&f);
      park();
    }
    if (id >= kLong) {  // a long request: ~spin_us of work in steps, a preemption check each
      const uint64_t end = rte_rdtsc() + spin_cycles;
      while (rte_rdtsc() < end) preempt_point();
    }
    order.push_back(id);
  }
  void complete(CoreScheduler& core) {
    std::vector<Fiber*> mine;
    mine.swap(parked[to_int(core.id())]);
    for (Fiber* f : mine) core.wake(f);
  }
  static constexpr uint32_t kLong = 1000;
  bool park_all = false;
  uint64_t spin_cycles = 0;
  std::vector<uint32_t> order;
  std::vector<Fiber*> parked[4];
};

TEST(Steal, IdleCoreStealsNewAndResumed) {
  OrderApp app;
  app.park_all = true;
  SchedOptions o;
  o.max_in_flight = 4;
  auto s = Scheduler::create(o, 2, app);
  ASSERT_TRUE(s.is_ok());
  CoreScheduler& c0 = (*s)->core(CoreId{0});
  CoreScheduler& c1 = (*s)->core(CoreId{1});
  ASSERT_TRUE(c0.submit(make_request(c0, 1)));
  ASSERT_TRUE(c0.submit(make_request(c0, 2)));
  // Core 1 has nothing: it takes core 0's oldest new request, which parks on core 1.
  EXPECT_EQ(c1.poll(), 1u);
  EXPECT_EQ(c1.counters().stolen_new.read(), 1u);
  EXPECT_EQ(c1.parked(), 1u);
  // Core 0 starts the other; it parks there and core 0's completion wakes it there...
  EXPECT_EQ(c0.poll(), 1u);
  EXPECT_EQ(c0.parked(), 1u);
  app.complete(c0);
  EXPECT_EQ(c0.parked(), 0u);
  EXPECT_EQ(c0.runnable(), 1u);
  // ...but idle core 1 resumes it first.
  EXPECT_EQ(c1.poll(), 1u);
  EXPECT_EQ(c1.counters().stolen_ready.read(), 1u);
  EXPECT_EQ(app.order, (std::vector<uint32_t>{2}));
  app.complete(c1);
  c1.poll();
  EXPECT_EQ(app.order, (std::vector<uint32_t>{2, 1}));
  EXPECT_EQ(c0.in_flight() + c1.in_flight(), 0u);
}

TEST(Predictor, FaultLikelyRequestsWaitBehindFaultFreeOnes) {
  OrderApp app;
  SchedOptions o;
  o.max_in_flight = 4;
  o.steal = false;
  auto s = Scheduler::create(o, 1, app);
  ASSERT_TRUE(s.is_ok());
  CoreScheduler& c = (*s)->core(CoreId{0});
  const bool fault[] = {true, false, false, true, false};
  for (uint32_t i = 0; i < 5; ++i) ASSERT_TRUE(c.submit(make_request(c, i, fault[i])));
  EXPECT_EQ(c.queued(), 5u);
  while (c.queued() > 0) c.poll();
  EXPECT_EQ(app.order, (std::vector<uint32_t>{1, 2, 4, 0, 3}));
  EXPECT_EQ(c.counters().started_likely_fault.read(), 2u);
}

TEST(Predictor, FaultLikelyQueueDoesNotStarve) {
  OrderApp app;
  SchedOptions o;
  o.max_in_flight = 4;
  o.steal = false;
  auto s = Scheduler::create(o, 1, app);
  ASSERT_TRUE(s.is_ok());
  CoreScheduler& c = (*s)->core(CoreId{0});
  ASSERT_TRUE(c.submit(make_request(c, 0, true)));
  for (uint32_t i = 1; i <= 40; ++i) ASSERT_TRUE(c.submit(make_request(c, i, false)));
  while (c.queued() > 0) c.poll();
  // The fault-likely request runs after at most 16 fault-free ones that came after it.
  size_t pos = 0;
  while (app.order[pos] != 0) ++pos;
  EXPECT_LE(pos, 16u);
  EXPECT_EQ(app.order.size(), 41u);
}

TEST(Dispatch, CentralQueueRespectsTheBoundAndKeepsOrder) {
  OrderApp app;
  SchedOptions o;
  o.max_in_flight = 4;
  o.dispatch = Dispatch::kCentral;
  o.dispatch_bound = 2;
  o.steal = false;
  auto s = Scheduler::create(o, 3, app);
  ASSERT_TRUE(s.is_ok());
  CoreScheduler& c0 = (*s)->core(CoreId{0});
  for (uint32_t i = 0; i < 10; ++i) ASSERT_TRUE(c0.submit(make_request(c0, i)));
  EXPECT_EQ(c0.queued(), 0u);  // central: nothing waits on the receiving core yet
  EXPECT_EQ((*s)->central_queued(), 10u);
  EXPECT_EQ((*s)->dispatch(), 6u);  // 3 cores x bound 2
  EXPECT_EQ((*s)->central_queued(), 4u);
  for (uint16_t i = 0; i < 3; ++i) EXPECT_EQ((*s)->core(CoreId{i}).queued(), 2u);
  EXPECT_EQ((*s)->dispatch(), 0u);  // every core is at its bound
}

TEST(Dispatch, PlacesOnTheLeastLoadedCoreFewestFetchesFirst) {
  OrderApp app;
  app.park_all = true;
  SchedOptions o;
  o.max_in_flight = 4;
  o.dispatch = Dispatch::kCentral;
  o.dispatch_bound = 2;
  o.steal = false;
  auto s = Scheduler::create(o, 3, app);
  ASSERT_TRUE(s.is_ok());
  Scheduler& sc = **s;
  CoreScheduler& c0 = sc.core(CoreId{0});
  CoreScheduler& c1 = sc.core(CoreId{1});
  CoreScheduler& c2 = sc.core(CoreId{2});
  for (uint32_t i = 0; i < 6; ++i) ASSERT_TRUE(c0.submit(make_request(c0, i)));
  ASSERT_EQ(sc.dispatch(), 6u);
  // Core 1 starts its two (both park on fetches); core 2 starts and finishes its two; core 0
  // does not run: it still has its two waiting (at the bound).
  c1.poll();
  c2.poll();
  app.complete(c2);
  c2.poll();
  ASSERT_EQ(c1.parked(), 2u);
  ASSERT_EQ(c2.parked(), 0u);
  ASSERT_EQ(c0.queued(), 2u);
  // Cores 1 and 2 both have nothing waiting: the one with no fetches in flight gets it.
  ASSERT_TRUE(c0.submit(make_request(c0, 10)));
  const uint64_t before1 = c1.counters().dispatched.read(), before2 = c2.counters().dispatched.read();
  EXPECT_EQ(sc.dispatch(), 1u);
  EXPECT_EQ(c2.counters().dispatched.read(), before2 + 1);
  EXPECT_EQ(c1.counters().dispatched.read(), before1);
  // Now core 2 has one waiting and core 1 none: fewer waiting beats fewer fetches.
  ASSERT_TRUE(c0.submit(make_request(c0, 11)));
  EXPECT_EQ(sc.dispatch(), 1u);
  EXPECT_EQ(c1.counters().dispatched.read(), before1 + 1);
  // A core that does not accept (parked by the allocator) gets nothing.
  c1.set_accepting(false);
  c2.poll();  // drain core 2's waiting request (it parks)
  ASSERT_TRUE(c0.submit(make_request(c0, 12)));
  EXPECT_EQ(sc.dispatch(), 1u);
  EXPECT_EQ(c1.counters().dispatched.read(), before1 + 1);
  EXPECT_EQ(c2.counters().dispatched.read(), before2 + 2);
}

TEST(Preempt, LongRequestGoesBehindShortOnes) {
  for (const uint32_t quantum_us : {0u, 5u}) {
    OrderApp app;
    SchedOptions o;
    o.max_in_flight = 4;
    o.steal = false;
    o.preempt_us = quantum_us;
    auto s = Scheduler::create(o, 1, app);
    ASSERT_TRUE(s.is_ok());
    // ~200 us of work: far beyond a 5 us quantum on any machine (cycles per us measured by
    // setting a 1 us quantum).
    (*s)->set_preempt_us(1);
    app.spin_cycles = 200 * std::max<uint64_t>((*s)->preempt_cycles(), 1);
    (*s)->set_preempt_us(quantum_us);
    CoreScheduler& c = (*s)->core(CoreId{0});
    ASSERT_TRUE(c.submit(make_request(c, OrderApp::kLong)));
    ASSERT_TRUE(c.submit(make_request(c, 1)));
    ASSERT_TRUE(c.submit(make_request(c, 2)));
    for (int i = 0; i < 10000 && app.order.size() < 3; ++i) c.poll();
    ASSERT_EQ(app.order.size(), 3u);
    if (quantum_us == 0) {
      EXPECT_EQ(app.order, (std::vector<uint32_t>{OrderApp::kLong, 1, 2}));
      EXPECT_EQ(c.counters().preemptions.read(), 0u);
    } else {
      EXPECT_EQ(app.order, (std::vector<uint32_t>{1, 2, OrderApp::kLong}));
      EXPECT_GT(c.counters().preemptions.read(), 0u);
    }
  }
}

TEST(Predictor, HistoryKnowsRecentKeysOnly) {
  HistoryPredictor p(1000);
  EXPECT_GE(p.slots(), 2000u);
  uint32_t local = 0;
  auto h = [](uint64_t k) { return k * 0x9e3779b97f4a7c15ull; };
  EXPECT_FALSE(p.likely_resident(h(1)));  // never seen
  for (uint64_t k = 1; k <= 5000; ++k) p.touch(h(k), local);
  // The last ~1000 accesses are recent (give or take one publishing batch of 64)...
  for (uint64_t k = 4100; k <= 5000; ++k) EXPECT_TRUE(p.likely_resident(h(k))) << k;
  // ...older ones are not, and neither are keys never touched.
  for (uint64_t k = 1; k <= 3800; ++k) EXPECT_FALSE(p.likely_resident(h(k))) << k;
  for (uint64_t k = 6000; k <= 6100; ++k) EXPECT_FALSE(p.likely_resident(h(k))) << k;
  // A re-access makes an old key recent again.
  p.touch(h(7), local);
  EXPECT_TRUE(p.likely_resident(h(7)));
}

TEST(Predictor, HistoryCollisionForgetsTheOlderKey) {
  HistoryPredictor p(8);  // 16 slots
  uint32_t local = 0;
  const uint64_t a = 0x1111111100000003ull, b = 0x2222222200000003ull;  // same slot, other tags
  p.touch(a, local);
  EXPECT_TRUE(p.likely_resident(a));
  p.touch(b, local);
  EXPECT_TRUE(p.likely_resident(b));
  EXPECT_FALSE(p.likely_resident(a));
}

TEST(Predictor, CountersClassifyOutcomes) {
  PredictorCounters c;
  c.record(true, true);
  c.record(true, false);
  c.record(false, true);
  c.record(false, false);
  c.record(false, false);
  EXPECT_EQ(c.fault_faulted.read(), 1u);
  EXPECT_EQ(c.fault_clean.read(), 1u);
  EXPECT_EQ(c.clean_faulted.read(), 1u);
  EXPECT_EQ(c.clean_clean.read(), 2u);
}

}  // namespace
}  // namespace fm::sched
