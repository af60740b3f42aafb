// The sender/receiver engine against a simulated server: open-loop behaviour (the coordinated-
// omission case), drops as infinite latency, schedule adherence, verification, preload.
#include "tools/loadgen/engine.h"

#include <gtest/gtest.h>

#include <limits>
#include <memory>

#include "tests/loadgen/fake_net.h"
#include "tools/loadgen/backend.h"
#include "tools/loadgen/results.h"
#include "tools/loadgen/schedule.h"

namespace fm::loadgen {
namespace {

using testing::FakeNet;
constexpr double kHz = 1e9;  // the fake clock counts nanoseconds

struct PointRun {
  CoreResult result;
  PointReport report;
  uint64_t scheduled_by_replay =
      0;  // measured requests an independent replay of the schedule finds
};

class EngineTest : public ::testing::Test {
 protected:
  EngineConfig config(double timeout_ms, uint32_t flows = 1) {
    EngineConfig c;
    c.flows = flows;
    c.timeout_ticks = uint64_t(timeout_ms * 1e6);
    c.late_ticks = 10'000;  // 10 us
    c.ns_per_tick = 1.0;
    c.verify = true;
    c.values = &values_;
    return c;
  }

  /// Runs one point of `rate` req/s: `warmup_s` then `duration_s` measured.
  PointRun run(FakeNet& net, const EngineConfig& cfg, double rate, double duration_s,
               double warmup_s = 0.01, double get_ratio = 1.0, uint64_t seed = 7) {
    Engine<FakeNet> e(net, cfg);
    WorkloadSpec w{&keys_, get_ratio, Arrival::kPoisson};
    if (preload_) {
      const PreloadResult p = e.preload(0, 1, keys_.keys(), 32, 2);
      EXPECT_EQ(p.failed, 0u);
    }
    Schedule s(w, rate, kHz, seed);
    PointPlan plan;
    plan.start = net.now() + 1000;
    plan.measure_from = uint64_t(warmup_s * kHz);
    plan.measure_until = plan.measure_from + uint64_t(duration_s * kHz);
    PointRun out;
    out.result = e.run(s, plan);
    Schedule replay(w, rate, kHz, seed);
    for (Request r = replay.next(); r.at < plan.measure_until; r = replay.next())
      if (r.at >= plan.measure_from) ++out.scheduled_by_replay;
    out.report = make_report(rate, out.result, kHz, ValidityRules{});
    return out;
  }

  KeyDist keys_ = KeyDist::uniform(1000);
  ValueSizes values_ = ValueSizes::fixed(64);
  bool preload_ = true;
};

TEST_F(EngineTest, FastServerAnswersEverythingWithLowLatency) {
  FakeNet net({.service_ns = 1000, .one_way_ns = 500});
  const PointRun r = run(net, config(100), 100'000, 0.1);
  EXPECT_TRUE(r.report.valid) << r.report.invalid_reason;
  EXPECT_EQ(r.report.all.requests, r.scheduled_by_replay);
  EXPECT_EQ(r.report.all.replies, r.report.all.requests);
  EXPECT_EQ(r.report.all.timeouts, 0u);
  EXPECT_EQ(r.report.all.misses, 0u);
  EXPECT_EQ(r.report.all.wrong, 0u);
  EXPECT_DOUBLE_EQ(r.report.adherence_pct, 100.0);
  EXPECT_NEAR(r.report.all.achieved_rps, 100'000, 100'000 * 0.05);
  // 0.5 + 1 + 0.5 us on the wire and in service, plus a loop turn or two and some queueing.
  EXPECT_GE(r.report.all.latency.min, 2.0);
  EXPECT_LT(r.report.all.latency.p50, 5.0);
}

// The coordinated-omission case: the server can do 50k req/s and is offered 100k. An open-loop
// generator keeps sending on schedule; the queue, and with it latency, grows for the whole run.
// (A closed-loop one would slow down to 50k and report the service time as latency.)
TEST_F(EngineTest, SlowServerMakesLatencyGrowNotTheSendRateDrop) {
  FakeNet net({.service_ns = 20'000, .one_way_ns = 500}, /*loop_cost_ns=*/200);
  preload_ = false;
  const PointRun r = run(net, config(/*timeout_ms=*/10'000), 100'000, 0.2, 0.0);
  EXPECT_TRUE(r.report.valid) << r.report.invalid_reason;
  EXPECT_EQ(r.report.all.requests, r.scheduled_by_replay);  // every request sent...
  EXPECT_DOUBLE_EQ(r.report.adherence_pct, 100.0);          // ...on time
  EXPECT_LT(r.report.send_lag_max_us, 10.0);
  EXPECT_EQ(r.report.all.replies, r.report.all.requests);  // and answered, eventually
  EXPECT_NEAR(r.report.scheduled_rps, 100'000, 5'000);
  // After 0.2 s at twice the capacity the backlog is ~0.1 s of work: the last requests wait
  // that long, the median about half of it. Far above the 20 us service time.
  EXPECT_GT(r.report.all.latency.max, 80'000.0);
  EXPECT_GT(r.report.all.latency.p50, 30'000.0);
  EXPECT_GT(r.report.all.latency.p99, 90'000.0);
}

TEST_F(EngineTest, DropsAreTimeoutsWithInfiniteLatency) {
  FakeNet net({.service_ns = 1000, .one_way_ns = 500, .drop_every = 10});
  preload_ = false;
  const PointRun r = run(net, config(/*timeout_ms=*/5), 100'000, 0.1);
  const uint64_t n = r.report.all.requests;
  EXPECT_NEAR(double(r.report.all.timeouts), n / 10.0, n * 0.01);
  EXPECT_EQ(r.report.all.replies + r.report.all.timeouts, n);
  EXPECT_EQ(r.result.ops[0].latency.infinite(), r.report.all.timeouts);
  EXPECT_TRUE(std::isinf(r.report.all.latency.p99));  // 10% drops > 1%: p99 is a drop
  EXPECT_TRUE(std::isinf(r.report.all.latency.max));
  EXPECT_TRUE(std::isinf(r.report.all.latency.mean));
  EXPECT_TRUE(std::isfinite(r.report.all.latency.p50));
  EXPECT_TRUE(r.report.valid);  // drops are the server's doing, not the generator's
}

// The generator itself loses the CPU for 2 ms: requests due meanwhile go out late, their
// latency counts from when they were due (so the stall shows), and the point is INVALID.
TEST_F(EngineTest, GeneratorStallIsCountedFromTheScheduleAndInvalidatesThePoint) {
  FakeNet net({.service_ns = 1000, .one_way_ns = 500});
  preload_ = false;
  net.stall_at(net.time() + 50'000'000, 2'000'000);
  const PointRun r = run(net, config(100), 100'000, 0.1);
  EXPECT_EQ(r.report.all.requests, r.scheduled_by_replay);
  EXPECT_GT(r.report.late, 150u);  // ~200 requests were due during the stall
  EXPECT_LT(r.report.adherence_pct, 99.0);
  EXPECT_FALSE(r.report.valid);
  EXPECT_NE(r.report.invalid_reason.find("generator fell behind"), std::string::npos);
  EXPECT_GE(r.report.all.latency.max, 1900.0);  // us: the stall is in the latency
  EXPECT_GE(r.report.send_lag_max_us, 1900.0);
}

TEST_F(EngineTest, WrongValuesAreCounted) {
  FakeNet net({.service_ns = 1000, .one_way_ns = 500, .corrupt_every = 50});
  const PointRun r = run(net, config(100), 100'000, 0.05, 0.0);
  EXPECT_NEAR(double(r.report.all.wrong), r.report.all.requests / 50.0, 3.0);
  EXPECT_EQ(r.report.all.misses, 0u);
}

TEST_F(EngineTest, MixedGetSetIsReportedPerOperation) {
  FakeNet net({.service_ns = 1000, .one_way_ns = 500});
  const PointRun r = run(net, config(100), 100'000, 0.1, 0.01, /*get_ratio=*/0.7);
  EXPECT_GT(r.report.get.requests, 0u);
  EXPECT_GT(r.report.set.requests, 0u);
  EXPECT_NEAR(double(r.report.get.requests) / double(r.report.all.requests), 0.7, 0.02);
  EXPECT_EQ(r.report.get.requests + r.report.set.requests, r.report.all.requests);
  EXPECT_EQ(r.report.get.wrong + r.report.set.server_errors, 0u);
}

TEST_F(EngineTest, RequestCountModeMeasuresExactlyThatMany) {
  FakeNet net({.service_ns = 1000, .one_way_ns = 500});
  Engine<FakeNet> e(net, config(100));
  WorkloadSpec w{&keys_, 1.0, Arrival::kConstant};
  Schedule s(w, 100'000, kHz, 1);
  PointPlan plan;
  plan.start = net.now();
  plan.measure_from = 1'000'000;
  plan.measure_count = 1234;
  const CoreResult res = e.run(s, plan);
  EXPECT_EQ(res.ops[0].scheduled, 1234u);
  EXPECT_NEAR(double(res.window_ticks), 1234 * 10'000.0, 10'000.0);  // constant 10 us gaps
}

// One flow has 65536 request ids. If the server never answers and the timeout is long, ids run
// out: the oldest request is given up (as a drop) and the point says why it is invalid.
TEST_F(EngineTest, RunningOutOfRequestIdsIsReported) {
  FakeNet net({.never_answer = true}, /*loop_cost_ns=*/1000);
  preload_ = false;
  const PointRun r = run(net, config(/*timeout_ms=*/500), 1'000'000, 0.1, 0.0);
  EXPECT_GT(r.report.id_wraps, 0u);
  EXPECT_FALSE(r.report.valid);
  EXPECT_EQ(r.report.all.timeouts, r.report.all.requests);
  // With 4 flows the 100k requests fit: no reuse.
  FakeNet net4({.never_answer = true}, 1000);
  const PointRun r4 = run(net4, config(500, 4), 1'000'000, 0.1, 0.0);
  EXPECT_EQ(r4.report.id_wraps, 0u);
  EXPECT_EQ(r4.report.all.timeouts, r4.report.all.requests);
}

TEST_F(EngineTest, PreloadStoresEveryKeyAndRetriesDrops) {
  FakeNet net({.service_ns = 1000, .one_way_ns = 500, .drop_every = 7});
  Engine<FakeNet> e(net, config(1));
  const PreloadResult p = e.preload(0, 1, 1000, 16, 3);
  EXPECT_EQ(p.failed, 0u);
  EXPECT_EQ(p.stored, 1000u);
  std::vector<uint64_t> stored = net.stored();
  std::sort(stored.begin(), stored.end());
  stored.erase(std::unique(stored.begin(), stored.end()), stored.end());
  EXPECT_EQ(stored.size(), 1000u);
}

TEST_F(EngineTest, PreloadOfACoreTakesItsStride) {
  FakeNet net({.service_ns = 100, .one_way_ns = 100});
  Engine<FakeNet> e(net, config(1));
  const PreloadResult p = e.preload(1, 4, 100, 8, 0);  // keys 1, 5, 9, ... 97
  EXPECT_EQ(p.stored, 25u);
  for (uint64_t k : net.stored()) EXPECT_EQ(k % 4, 1u);
}

TEST(Queues, AreSpreadOverTheLcoresRoundRobin) {
  // 12 queue pairs on 4 lcores: lcore 1 drives 1, 5, 9.
  EXPECT_EQ(queues_of_lcore(1, 4, 12), std::vector<uint32_t>({1, 5, 9}));
  EXPECT_EQ(queues_of_lcore(0, 4, 6), std::vector<uint32_t>({0, 4}));
  EXPECT_EQ(queues_of_lcore(3, 4, 6), std::vector<uint32_t>({3}));
  EXPECT_EQ(queues_of_lcore(0, 1, 1), std::vector<uint32_t>({0}));
  std::vector<int> seen(12, 0);
  for (uint32_t l = 0; l < 4; ++l)
    for (uint32_t q : queues_of_lcore(l, 4, 12)) ++seen[q];
  EXPECT_EQ(seen, std::vector<int>(12, 1));  // each queue on exactly one lcore
}

// One core drives three queue pairs (three engines on three fake queues with one clock): each
// queue gets its own Poisson share of the rate, on time, and the results add up.
TEST_F(EngineTest, OneCoreDrivesSeveralQueuePairs) {
  std::vector<std::unique_ptr<FakeNet>> nets;
  std::vector<std::unique_ptr<Engine<FakeNet>>> engines;
  for (int i = 0; i < 3; ++i) {
    nets.push_back(
        std::make_unique<FakeNet>(FakeNet::Server{.service_ns = 1000, .one_way_ns = 500}));
    if (i) nets.back()->share_clock(*nets[0]);
    engines.push_back(std::make_unique<Engine<FakeNet>>(*nets.back(), config(100)));
  }
  const WorkloadSpec w{&keys_, 1.0, Arrival::kPoisson};
  PointSpec p;
  p.rate = 300'000;
  p.workload = &w;
  p.warmup_s = 0.01;
  p.duration_s = 0.1;
  p.seed = 3;
  // This lcore has queues 1, 3 and 5 of 6 (the other three are another lcore's).
  std::vector<Engine<FakeNet>*> es = {engines[0].get(), engines[1].get(), engines[2].get()};
  const std::vector<uint32_t> ids = {1, 3, 5};
  std::vector<ProgressSlot> progress(6);
  preload_ = false;
  const std::vector<CoreResult> out =
      run_lcore_point<FakeNet>(es, ids, p, /*engines=*/6, kHz, nets[0]->now() + 1000, progress);
  ASSERT_EQ(out.size(), 3u);
  CoreResult merged;
  for (size_t i = 0; i < 3; ++i) {
    // 300k over 6 queues: 50k each, 5000 in 0.1 s (Poisson: sd ~71).
    EXPECT_NEAR(double(out[i].ops[0].scheduled), 5000, 400) << i;
    EXPECT_EQ(out[i].ops[0].completed, out[i].ops[0].scheduled);
    EXPECT_EQ(nets[i]->requests(), progress[ids[i]].sent.read());
    merged.merge(out[i]);
  }
  EXPECT_EQ(progress[0].sent.read(), 0u);  // other lcores' slots untouched
  EXPECT_GT(out[0].loop_ticks, 0u);        // the lcore's time is on the first result only
  EXPECT_EQ(out[1].loop_ticks + out[2].loop_ticks + out[1].busy_ticks + out[2].busy_ticks, 0u);
  const PointReport r = make_report(150'000, merged, kHz, ValidityRules{});
  EXPECT_TRUE(r.valid) << r.invalid_reason;
  EXPECT_DOUBLE_EQ(r.adherence_pct, 100.0);
  EXPECT_NEAR(r.all.achieved_rps, 150'000, 150'000 * 0.05);
  // The schedules differ per queue (seeded by the queue number), as with one lcore each.
  EXPECT_NE(out[0].ops[0].scheduled, out[1].ops[0].scheduled);
}

TEST(ReportTest, ValidityNeedsAdherenceAndNoIdReuse) {
  CoreResult m;
  m.ops[0].scheduled = 1000;
  m.ops[0].completed = 1000;
  m.window_ticks = 1'000'000'000;
  m.late = 5;
  PointReport r = make_report(1000, m, 1e9, ValidityRules{});
  EXPECT_TRUE(r.valid);
  EXPECT_DOUBLE_EQ(r.adherence_pct, 99.5);
  m.late = 11;
  r = make_report(1000, m, 1e9, ValidityRules{});
  EXPECT_FALSE(r.valid);
  m.late = 0;
  m.id_wraps = 1;
  r = make_report(1000, m, 1e9, ValidityRules{});
  EXPECT_FALSE(r.valid);
  EXPECT_NE(r.invalid_reason.find("--flows"), std::string::npos);
}

}  // namespace
}  // namespace fm::loadgen
