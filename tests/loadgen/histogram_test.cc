// The loadgen's log-linear histogram: percentiles within its stated relative error.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "tools/loadgen/histogram.h"

namespace fm::loadgen {
namespace {

uint64_t exact_percentile(std::vector<uint64_t> v, double q) {
  std::sort(v.begin(), v.end());
  uint64_t rank = uint64_t(q * double(v.size()) + 0.5);
  rank = std::clamp<uint64_t>(rank, 1, v.size());
  return v[rank - 1];
}

TEST(Histogram, SmallValuesAreExact) {
  Histogram h;
  for (uint64_t v = 0; v < 200; ++v) h.record(v);
  EXPECT_EQ(h.percentile(0.5), 99u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 199u);
}

TEST(Histogram, PercentilesWithinRelativeError) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(10.0, 2.0);  // ns: ~22 us median, heavy tail
  std::vector<uint64_t> samples;
  Histogram h;
  for (int i = 0; i < 200000; ++i) {
    const uint64_t v = uint64_t(dist(rng));
    samples.push_back(v);
    h.record(v);
  }
  for (double q : {0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999}) {
    const double exact = double(exact_percentile(samples, q));
    const double got = double(h.percentile(q));
    EXPECT_LE(std::abs(got - exact), exact * Histogram::kRelativeError + 1.0) << "q=" << q;
  }
  EXPECT_LE(Histogram::kRelativeError, 0.01);
}

TEST(Histogram, InfiniteSamplesDominateTheTail) {
  Histogram h;
  for (int i = 0; i < 98; ++i) h.record(1000);
  h.record_infinite(2);
  EXPECT_EQ(h.percentile(0.5), 1000u);
  EXPECT_EQ(h.percentile(0.99), UINT64_MAX);
  EXPECT_EQ(h.max(), UINT64_MAX);
}

TEST(Histogram, MergeAddsCounts) {
  Histogram a, b;
  a.record(10);
  b.record(1000000);
  a.merge(b);
  EXPECT_EQ(a.count(), 2u);
  EXPECT_EQ(a.min(), 10u);
  EXPECT_EQ(a.max(), 1000000u);
}

TEST(Histogram, BucketEdgesCoverEveryValue) {
  for (uint64_t v : {255ull, 256ull, 257ull, 511ull, 512ull, 1ull << 40, (1ull << 63) + 12345, ~0ull}) {
    const size_t i = Histogram::index(v);
    EXPECT_GE(Histogram::upper(i), v);
    EXPECT_LE(double(Histogram::upper(i) - v), double(v) * Histogram::kRelativeError + 1);
  }
}

}  // namespace
}  // namespace fm::loadgen
