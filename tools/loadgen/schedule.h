// A sending core's open-loop schedule: when each request is due, and what it is.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "tools/loadgen/distributions.h"
#include "tools/loadgen/rng.h"
#include "tools/loadgen/workload.h"

namespace fm::loadgen {

/// How arrivals are spaced.
enum class Arrival : uint8_t {
  kPoisson,   // exponential inter-arrival times: the default, as in mutilate/Lancet/wrk2
  kConstant,  // exactly 1/rate apart (per core, phase-shifted between cores)
};

/// One scheduled request. A kMultiGet's keys are Schedule::multiget_keys() until the next
/// call of Schedule::next(); `key` is the first of them.
struct Request {
  uint64_t at = 0;  // due time, TSC cycles after the rate point's start
  uint64_t key = 0;
  Op op = Op::kGet;
};

/// What a schedule draws from; shared read-only by every core.
struct WorkloadSpec {
  const KeyDist* keys = nullptr;
  double get_ratio = 1.0;  // share of GETs among the requests that are not multi-key GETs
  Arrival arrival = Arrival::kPoisson;
  uint32_t multiget_keys = 0;  // > 0: keys of each multi-key GET (<= kMaxMultiGetKeys, <= keys)
  double multiget_ratio = 0;   // share of all requests that are multi-key GETs
};

/// A stretch of schedule time with one rate: until `end_s` seconds of schedule time,
/// `rate` requests/s on this core (0: none).
struct RateSegment {
  double end_s = std::numeric_limits<double>::infinity();
  double rate = 0;
};

/// The open-loop schedule of one core for one rate point: a deterministic function of the
/// seed, independent of when requests are actually sent or answered (that independence is
/// what keeps coordinated omission out). Generated lazily, ~20 ns per request, in the
/// sending loop: the same sequence a pre-computed array would hold, without its memory.
/// Not thread-safe: one per core.
class Schedule {
 public:
  /// `rate` requests/s on this core; `hz` the clock's ticks per second; `phase` in [0, 1)
  /// shifts constant arrivals so that several cores do not send in lock-step.
  Schedule(const WorkloadSpec& w, double rate, double hz, uint64_t seed, double phase = 0)
      : w_(w), rng_(seed), mean_gap_(hz / rate) {
    t_ = w.arrival == Arrival::kConstant ? phase * mean_gap_ : 0.0;
  }

  /// A piecewise-constant rate: `segments` in time order (ends increasing; the last one lasts
  /// for ever and should have a rate > 0, else it gets the highest rate of the others).
  /// Arrivals are the unit-rate process (exponential or constant gaps of mean 1) run through
  /// the integrated rate, so each segment is a Poisson (or evenly spaced) stream of its own
  /// rate, and a gap that crosses a boundary continues at the next segment's rate (exact for
  /// Poisson: the exponential is memoryless). Control path (allocates).
  Schedule(const WorkloadSpec& w, std::span<const RateSegment> segments, double hz, uint64_t seed,
           double phase = 0)
      : w_(w), rng_(seed) {
    double fastest = kNoArrivals;
    for (const RateSegment& s : segments) {
      segs_.push_back({s.end_s * hz, s.rate > 0 ? hz / s.rate : kNoArrivals});
      fastest = std::min(fastest, segs_.back().gap);
    }
    if (segs_.empty()) segs_.push_back({0, kNoArrivals});
    segs_.back().end = kNoArrivals;
    if (segs_.back().gap == kNoArrivals) segs_.back().gap = fastest != kNoArrivals ? fastest : hz;
    mean_gap_ = segs_[0].gap;
    // Constant arrivals: the first at `phase` of a gap, like the single-rate schedule.
    if (w.arrival == Arrival::kConstant) advance(phase);
  }

  /// The next inter-arrival gap in ticks (exponential with mean hz/rate, or constant), at
  /// the single rate (or the current segment's).
  double next_gap() {
    if (w_.arrival == Arrival::kConstant) return mean_gap_;
    return -std::log1p(-rng_.uniform()) * mean_gap_;
  }

  /// The next request, in due-time order.
  Request next() {
    if (segs_.empty()) [[likely]]
      t_ += next_gap();
    else
      next_stepped();
    Request r;
    r.at = uint64_t(t_);
    r.key = w_.keys->sample(rng_);
    if (w_.multiget_ratio > 0) [[unlikely]] {
      if (rng_.uniform() < w_.multiget_ratio) {
        r.op = Op::kMultiGet;
        draw_multiget(r.key);
        return r;
      }
    }
    r.op = (w_.get_ratio >= 1.0 || rng_.uniform() < w_.get_ratio) ? Op::kGet : Op::kSet;
    return r;
  }

  /// The keys of the last multi-key GET next() returned: distinct, the first is its `key`.
  std::span<const uint64_t> multiget_keys() const { return {mget_keys_, multiget_n()}; }

  double mean_gap() const { return mean_gap_; }

 private:
  static constexpr double kNoArrivals = std::numeric_limits<double>::infinity();
  struct Seg {
    double end;  // ticks of schedule time
    double gap;  // mean gap in ticks, kNoArrivals for a rate of 0
  };

  /// Keys per multi-key GET: as asked, within the buffer and the key space (options.cc
  /// refuses more, with the reason).
  uint32_t multiget_n() const {
    return uint32_t(std::min<uint64_t>({w_.multiget_keys, kMaxMultiGetKeys, w_.keys->keys()}));
  }

  /// The next arrival time of a piecewise rate.
  [[gnu::noinline]] void next_stepped() {
    advance(w_.arrival == Arrival::kConstant ? 1.0 : -std::log1p(-rng_.uniform()));
  }

  /// Moves t_ forward by `e` units of the integrated rate (e mean gaps), segment by segment.
  void advance(double e) {
    for (;;) {
      const Seg& s = segs_[cur_];
      if (s.gap != kNoArrivals) {
        const double t = t_ + e * s.gap;
        if (t < s.end) {
          t_ = t;
          mean_gap_ = s.gap;
          return;
        }
        if (s.end > t_) e -= (s.end - t_) / s.gap;
      }
      t_ = std::max(t_, s.end);
      ++cur_;
    }
  }

  /// Draws the other keys of a multi-key GET from the key distribution, distinct. A very
  /// skewed distribution over few keys may repeat its hot keys for ever: after 64 tries per
  /// key the rest are the next unused keys after the last one drawn (still deterministic).
  [[gnu::noinline]] void draw_multiget(uint64_t first) {
    const uint64_t space = w_.keys->keys();
    const uint32_t n = multiget_n();
    const auto used = [&](uint64_t k, uint32_t have) {
      for (uint32_t i = 0; i < have; ++i)
        if (mget_keys_[i] == k) return true;
      return false;
    };
    uint32_t have = 0;
    mget_keys_[have++] = first;
    for (uint32_t tries = 0; have < n && tries < 64 * n; ++tries) {
      const uint64_t k = w_.keys->sample(rng_);
      if (!used(k, have)) mget_keys_[have++] = k;
    }
    uint64_t k = mget_keys_[have - 1];
    while (have < n) {
      k = k + 1 == space ? 0 : k + 1;
      if (!used(k, have)) mget_keys_[have++] = k;
    }
  }

  const WorkloadSpec& w_;
  Rng rng_;
  double mean_gap_ = 0;
  double t_ = 0;
  std::vector<Seg> segs_;  // empty: one rate (mean_gap_) for ever
  size_t cur_ = 0;
  uint64_t mget_keys_[kMaxMultiGetKeys] = {};
};

}  // namespace fm::loadgen
