// The --timeline intervals: which interval an event lands in, the rows made of them, merging
// engines, and a whole run through rate steps on the simulated server.
#include "tools/loadgen/timeline.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tests/loadgen/fake_net.h"
#include "tools/loadgen/backend.h"
#include "tools/loadgen/report.h"
#include "tools/loadgen/results.h"

namespace fm::loadgen {
namespace {

using testing::FakeNet;

TEST(Timeline, EventsLandInTheIntervalOfTheirTime) {
  // Intervals of 100 ticks from clock 1000, over 350 ticks: 4 intervals, the last 50 long.
  Timeline t(1000, 100, 350);
  ASSERT_EQ(t.buckets().size(), 4u);
  t.on_scheduled(999);                                          // before the window: not counted
  t.on_scheduled(1000);                                         // first tick of interval 0
  t.on_scheduled(1099);                                         // last tick of interval 0
  t.on_scheduled(1100);                                         // interval 1
  t.on_scheduled(1349);                                         // the last interval
  t.on_scheduled(1350);                                         // past the window
  t.on_reply(/*due=*/1050, /*now=*/1160, /*latency_ns=*/5000);  // due in 0, arrived in 1
  t.on_timeout(1200);
  t.on_late(1300);
  const auto& b = t.buckets();
  EXPECT_EQ(b[0].scheduled, 2u);
  EXPECT_EQ(b[1].scheduled, 1u);
  EXPECT_EQ(b[2].scheduled, 0u);
  EXPECT_EQ(b[3].scheduled, 1u);
  EXPECT_EQ(b[0].latency.count(), 1u);  // latency goes with the due time...
  EXPECT_EQ(b[0].received, 0u);
  EXPECT_EQ(b[1].received, 1u);  // ...the reply with its arrival
  EXPECT_EQ(b[2].timeouts, 1u);
  EXPECT_EQ(b[2].latency.infinite(), 1u);
  EXPECT_EQ(b[3].late, 1u);
}

TEST(Timeline, ASliverOfRoundingDoesNotMakeAnIntervalOfItsOwn) {
  EXPECT_EQ(Timeline::intervals(1000, 100), 10u);
  EXPECT_EQ(Timeline::intervals(1000, 99), 11u);           // 10 left over: an interval of its own
  EXPECT_EQ(Timeline::intervals(1'000'000, 99'999), 10u);  // 10 ticks over: the last is longer
  EXPECT_EQ(Timeline::intervals(50, 100), 1u);
  Timeline t(0, 99'999, 1'000'000);
  t.on_scheduled(999'999);  // in the sliver: the last interval
  EXPECT_EQ(t.buckets().back().scheduled, 1u);
  const auto rows = timeline_rows(t, 1e6);
  EXPECT_NEAR(rows.back().length_s, 0.100009, 1e-9);
}

TEST(Timeline, RowsAreRatesPerIntervalAndMergeAddsEngines) {
  const double hz = 1e4;  // 100 ticks = 10 ms
  Timeline a(0, 100, 350), b(0, 100, 350);
  for (int i = 0; i < 20; ++i) a.on_scheduled(10);
  for (int i = 0; i < 30; ++i) b.on_scheduled(20);
  for (int i = 0; i < 10; ++i) b.on_scheduled(320);  // in the 5 ms last interval
  for (uint64_t ns : {1000u, 2000u, 3000u}) a.on_reply(10, 50, ns);
  ASSERT_TRUE(a.merge(b));
  EXPECT_FALSE(a.merge(Timeline(0, 100, 500)));  // another shape: refused
  const std::vector<TimelineRow> rows = timeline_rows(a, hz);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_DOUBLE_EQ(rows[0].t_ms, 0.0);
  EXPECT_DOUBLE_EQ(rows[3].t_ms, 30.0);
  EXPECT_EQ(rows[0].scheduled, 50u);
  EXPECT_NEAR(rows[0].offered_rps, 50 / 0.010, 1e-6);
  EXPECT_NEAR(rows[0].achieved_rps, 3 / 0.010, 1e-6);
  EXPECT_NEAR(rows[3].length_s, 0.005, 1e-12);
  EXPECT_NEAR(rows[3].offered_rps, 10 / 0.005, 1e-6);  // its own length, not a full interval
  EXPECT_NEAR(rows[0].latency.p50, 2.0, 2.0 * TimelineHistogram::kRelativeError);
  EXPECT_NEAR(rows[0].latency.max, 3.0, 1e-9);
  EXPECT_EQ(rows[1].latency.p99, 0.0);  // nothing due there
}

TEST(Timeline, CompactHistogramKeepsItsPrecisionAndClampsHugeValues) {
  TimelineHistogram h;
  for (uint64_t v = 1; v <= 100'000; ++v) h.record(v * 1000);  // 1 us .. 100 ms
  const double p99 = double(h.percentile(0.99));
  EXPECT_NEAR(p99, 99'000'000.0, 99'000'000.0 * TimelineHistogram::kRelativeError);
  h.record(~0ull);  // beyond 2^36 ns: kept, at the top
  EXPECT_EQ(h.max(), TimelineHistogram::kMaxValue);
  EXPECT_LE(kTimelineBucketBytes, 9000u);
}

TEST(Timeline, StepRatesAndRowFields) {
  const std::vector<RateStep> steps = {{100e3, 2}, {400e3, 1.5}, {50e3, 3}};
  EXPECT_EQ(step_rate_at(steps, 0), 100e3);
  EXPECT_EQ(step_rate_at(steps, 1.999), 100e3);
  EXPECT_EQ(step_rate_at(steps, 2.0), 400e3);
  EXPECT_EQ(step_rate_at(steps, 6.4), 50e3);
  EXPECT_EQ(step_rate_at(steps, 60), 50e3);
  TimelineRow row;
  row.latency.p99 = std::numeric_limits<double>::infinity();
  const std::string header = csv_header(timeline_fields(row, 1, 0, "x", 0));
  EXPECT_EQ(header,
            "t_ms,offered_rps,achieved_rps,p50_us,p99_us,max_us,timeouts,late_sends,"
            "target_rps,requests,replies,point,label,unix_s,errors,wrong,misses");
  const std::string csv = csv_row(timeline_fields(row, 1, 0, "x", 1790000000.1234567));
  EXPECT_NE(csv.find(",inf,"), std::string::npos);
  EXPECT_NE(csv.find(",1790000000.123457,"), std::string::npos) << csv;  // microseconds
}

/// Runs one engine through `p` on `net`; returns its result.
CoreResult run_point(FakeNet& net, const PointSpec& p) {
  EngineConfig c;
  c.timeout_ticks = 5'000'000;
  c.late_ticks = 10'000;
  c.values = nullptr;
  static const ValueSizes values = ValueSizes::fixed(32);
  c.values = &values;
  c.verify = false;
  Engine<FakeNet> e(net, c);
  ProgressSlot slot;
  return run_core_point(e, p, 0, 1, 1e9, net.now() + 1000, &slot);
}

TEST(Timeline, FollowsRateStepsThroughAWholeRun) {
  FakeNet net({.service_ns = 1000, .one_way_ns = 500});
  const KeyDist keys = KeyDist::uniform(100);
  const WorkloadSpec w{&keys, 1.0, Arrival::kPoisson};
  PointSpec p;
  p.workload = &w;
  p.warmup_s = 0.01;
  p.steps = {{50e3, 0.05}, {200e3, 0.05}, {0, 0.02}, {100e3, 0.05}};
  p.duration_s = 0.17;
  p.timeline_s = 0.01;
  const CoreResult r = run_point(net, p);
  ASSERT_TRUE(r.timeline);
  const std::vector<TimelineRow> rows = timeline_rows(*r.timeline, 1e9);
  ASSERT_EQ(rows.size(), 17u);
  uint64_t scheduled = 0, received = 0;
  for (const TimelineRow& row : rows) {
    scheduled += row.scheduled;
    received += row.received;
    const double want = step_rate_at(p.steps, row.t_ms * 1e-3);
    // A Poisson count of mean want x 10 ms: within 5 standard deviations.
    const double mean = want * 0.01;
    EXPECT_NEAR(double(row.scheduled), mean, 5 * std::sqrt(mean) + 1) << "t_ms " << row.t_ms;
    if (want == 0) {
      EXPECT_EQ(row.scheduled, 0u);
      EXPECT_LE(row.received, 2u);  // replies to the last requests before the pause
    }
    if (row.scheduled) {
      EXPECT_TRUE(std::isfinite(row.latency.p99));
      EXPECT_LT(row.latency.p50, 10.0);
    }
  }
  EXPECT_EQ(scheduled, r.ops[0].scheduled);  // every measured request is in an interval
  EXPECT_LE(received, r.ops[0].completed);
  EXPECT_GE(received + 5, r.ops[0].completed);  // all but the very last replies
}

TEST(Timeline, AStallShowsAsLateSendsInItsInterval) {
  FakeNet net({.service_ns = 1000, .one_way_ns = 500});
  const KeyDist keys = KeyDist::uniform(100);
  const WorkloadSpec w{&keys, 1.0, Arrival::kPoisson};
  PointSpec p;
  p.workload = &w;
  p.rate = 100e3;
  p.warmup_s = 0;
  p.duration_s = 0.05;
  p.timeline_s = 0.01;
  // Clock 1'000'000 + 1000: the stall is ~25 ms into the window, in interval 2.
  net.stall_at(net.time() + 25'000'000, 2'000'000);
  const CoreResult r = run_point(net, p);
  ASSERT_TRUE(r.timeline);
  const auto rows = timeline_rows(*r.timeline, 1e9);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_GT(rows[2].late, 100u);
  EXPECT_GT(rows[2].latency.max, 1900.0);
  for (size_t i : {0u, 1u, 3u, 4u}) EXPECT_EQ(rows[i].late, 0u) << i;
}

}  // namespace
}  // namespace fm::loadgen
