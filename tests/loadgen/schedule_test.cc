// The open-loop schedule: exponential inter-arrival times with the requested mean (statistical
// tests with fixed seeds), constant spacing, determinism, and the GET/SET mix.
#include "tools/loadgen/schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace fm::loadgen {
namespace {

constexpr double kHz = 1e9;

/// Kolmogorov-Smirnov statistic of `x` against the exponential CDF with mean `mean`.
double ks_exponential(std::vector<double> x, double mean) {
  std::sort(x.begin(), x.end());
  const double n = double(x.size());
  double d = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double f = 1.0 - std::exp(-x[i] / mean);
    d = std::max({d, double(i + 1) / n - f, f - double(i) / n});
  }
  return d;
}

std::vector<double> gaps(Schedule& s, size_t n) {
  std::vector<double> g(n);
  for (auto& v : g) v = s.next_gap();
  return g;
}

class PoissonSchedule : public ::testing::TestWithParam<uint64_t> {};

TEST_P(PoissonSchedule, InterArrivalTimesAreExponentialWithTheRequestedMean) {
  const KeyDist keys = KeyDist::uniform(100);
  const WorkloadSpec w{&keys, 1.0, Arrival::kPoisson};
  const double rate = 250'000;  // mean gap 4 us = 4000 ticks
  Schedule s(w, rate, kHz, GetParam());
  const size_t n = 200'000;
  const std::vector<double> g = gaps(s, n);
  double sum = 0, sq = 0;
  for (double v : g) {
    sum += v;
    sq += v * v;
  }
  const double mean = sum / double(n);
  const double sd = std::sqrt(sq / double(n) - mean * mean);
  // The sample mean has a standard error of mean/sqrt(n) = 0.22%: 1% is > 4 sigma.
  EXPECT_NEAR(mean, kHz / rate, 0.01 * kHz / rate);
  // An exponential's standard deviation equals its mean (coefficient of variation 1).
  EXPECT_NEAR(sd / mean, 1.0, 0.02);
  // KS at alpha = 0.001: D < 1.949 / sqrt(n).
  EXPECT_LT(ks_exponential(g, kHz / rate), 1.949 / std::sqrt(double(n)));
}

INSTANTIATE_TEST_SUITE_P(Seeds, PoissonSchedule, ::testing::Values(1, 42, 20240501));

TEST(Schedule, TheKsTestRejectsNonExponentialGaps) {
  // The statistical test has teeth: uniform gaps with the same mean fail it.
  Rng rng(3);
  std::vector<double> g(200'000);
  for (auto& v : g) v = rng.uniform() * 8000.0;
  EXPECT_GT(ks_exponential(g, 4000.0), 1.949 / std::sqrt(double(g.size())));
}

TEST(Schedule, ArrivalCountMatchesTheRate) {
  const KeyDist keys = KeyDist::uniform(100);
  const WorkloadSpec w{&keys, 1.0, Arrival::kPoisson};
  Schedule s(w, 1e6, kHz, 9);
  uint64_t n = 0;
  for (Request r = s.next(); r.at < uint64_t(kHz); r = s.next()) ++n;  // one second
  // Poisson count: mean 1e6, sd 1000.
  EXPECT_NEAR(double(n), 1e6, 5000);
}

TEST(Schedule, ConstantArrivalsAreEvenlySpacedAndPhaseShifted) {
  const KeyDist keys = KeyDist::uniform(100);
  const WorkloadSpec w{&keys, 1.0, Arrival::kConstant};
  Schedule a(w, 100'000, kHz, 1, 0.0), b(w, 100'000, kHz, 1, 0.5);
  uint64_t prev = a.next().at;
  EXPECT_EQ(prev, 10'000u);
  for (int i = 0; i < 1000; ++i) {
    const uint64_t t = a.next().at;
    EXPECT_NEAR(double(t - prev), 10'000.0, 1.0);
    prev = t;
  }
  EXPECT_EQ(b.next().at, 15'000u);  // half a gap later: cores do not send in lock-step
}

TEST(Schedule, SameSeedSameScheduleDifferentSeedDifferent) {
  const KeyDist keys = KeyDist::zipf(1000, 0.99);
  const WorkloadSpec w{&keys, 0.5, Arrival::kPoisson};
  Schedule a(w, 1e5, kHz, 5), b(w, 1e5, kHz, 5), c(w, 1e5, kHz, 6);
  bool differs = false;
  for (int i = 0; i < 1000; ++i) {
    const Request ra = a.next(), rb = b.next(), rc = c.next();
    ASSERT_EQ(ra.at, rb.at);
    ASSERT_EQ(ra.key, rb.key);
    ASSERT_EQ(ra.op, rb.op);
    differs = differs || ra.at != rc.at || ra.key != rc.key;
  }
  EXPECT_TRUE(differs);
  // Per-core seeds differ from each other and from the base seed.
  EXPECT_NE(derive_seed(1, 0, 0), derive_seed(1, 0, 1));
  EXPECT_NE(derive_seed(1, 0, 0), derive_seed(1, 1, 0));
}

TEST(Schedule, GetRatioSetsTheMix) {
  const KeyDist keys = KeyDist::uniform(100);
  for (double ratio : {0.0, 0.1, 0.9, 1.0}) {
    const WorkloadSpec w{&keys, ratio, Arrival::kPoisson};
    Schedule s(w, 1e5, kHz, 11);
    int gets = 0;
    const int n = 100'000;
    for (int i = 0; i < n; ++i) gets += s.next().op == Op::kGet;
    EXPECT_NEAR(double(gets) / n, ratio, 0.005) << ratio;
  }
}

/// Arrivals of `s` in each of the half-open spans [edges[i], edges[i+1]) (seconds).
std::vector<uint64_t> counts_between(Schedule& s, const std::vector<double>& edges) {
  std::vector<uint64_t> n(edges.size() - 1, 0);
  for (Request r = s.next(); double(r.at) < edges.back() * kHz; r = s.next()) {
    for (size_t i = 0; i + 1 < edges.size(); ++i)
      if (double(r.at) >= edges[i] * kHz && double(r.at) < edges[i + 1] * kHz) ++n[i];
  }
  return n;
}

class RateStepCounts : public ::testing::TestWithParam<uint64_t> {};

TEST_P(RateStepCounts, EachStepGetsItsRatesCount) {
  const KeyDist keys = KeyDist::uniform(100);
  const WorkloadSpec w{&keys, 1.0, Arrival::kPoisson};
  // 100k for 0.2 s, 400k for 0.1 s, 50k for 0.3 s, idle for 0.1 s, 200k for 0.1 s.
  const std::vector<RateSegment> segs = {{0.2, 100e3}, {0.3, 400e3}, {0.6, 50e3},
                                         {0.7, 0},     {0.8, 200e3}, {1.0, 200e3}};
  Schedule s(w, segs, kHz, GetParam());
  const std::vector<uint64_t> n = counts_between(s, {0, 0.2, 0.3, 0.6, 0.7, 0.8});
  const double want[] = {20'000, 40'000, 15'000, 0, 20'000};
  for (size_t i = 0; i < n.size(); ++i) {
    // Poisson counts: standard deviation sqrt(mean); 5 of them is a 1-in-3.5-million miss.
    EXPECT_NEAR(double(n[i]), want[i], 5 * std::sqrt(want[i])) << "step " << i;
  }
  EXPECT_EQ(n[3], 0u);  // an idle step sends nothing
}

INSTANTIATE_TEST_SUITE_P(Seeds, RateStepCounts, ::testing::Values(1, 7, 99));

TEST(RateSteps, GapsWithinAStepAreExponentialAtItsRate) {
  const KeyDist keys = KeyDist::uniform(100);
  const WorkloadSpec w{&keys, 1.0, Arrival::kPoisson};
  const std::vector<RateSegment> segs = {{0.1, 10e3}, {10.0, 500e3}};
  Schedule s(w, segs, kHz, 4);
  std::vector<double> g;
  uint64_t prev = 0;
  for (Request r = s.next(); r.at < uint64_t(1.0 * kHz); r = s.next()) {
    if (prev >= uint64_t(0.2 * kHz)) g.push_back(double(r.at - prev));
    prev = r.at;
  }
  ASSERT_GT(g.size(), 300'000u);
  EXPECT_LT(ks_exponential(g, kHz / 500e3), 1.949 / std::sqrt(double(g.size())));
}

TEST(RateSteps, ConstantArrivalsChangeSpacingAtTheBoundary) {
  const KeyDist keys = KeyDist::uniform(100);
  const WorkloadSpec w{&keys, 1.0, Arrival::kConstant};
  const std::vector<RateSegment> segs = {{0.001, 10e3}, {1.0, 20e3}};  // 10 then 20 per ms
  Schedule s(w, segs, kHz, 1);
  std::vector<uint64_t> at;
  for (int i = 0; i < 15; ++i) at.push_back(s.next().at);
  EXPECT_EQ(at[0], 100'000u);  // 100 us apart...
  EXPECT_EQ(at[8], 900'000u);
  EXPECT_NEAR(double(at[9]), 1'000'000.0, 1.0);        // the boundary
  EXPECT_NEAR(double(at[10] - at[9]), 50'000.0, 1.0);  // ...then 50 us
  EXPECT_NEAR(double(at[14] - at[13]), 50'000.0, 1.0);
}

TEST(RateSteps, OneSegmentIsTheSingleRateSchedule) {
  const KeyDist keys = KeyDist::uniform(100);
  const WorkloadSpec w{&keys, 0.5, Arrival::kPoisson};
  const std::vector<RateSegment> one = {{1.0, 1e5}};
  Schedule a(w, 1e5, kHz, 5), b(w, one, kHz, 5);
  for (int i = 0; i < 1000; ++i) {
    const Request x = a.next(), y = b.next();
    ASSERT_NEAR(double(x.at), double(y.at), 2.0);
    ASSERT_EQ(x.key, y.key);
    ASSERT_EQ(x.op, y.op);
  }
}

}  // namespace
}  // namespace fm::loadgen
