// A sending core's open-loop schedule: when each request is due, and what it is.
#pragma once

#include <cmath>
#include <cstdint>

#include "tools/loadgen/distributions.h"
#include "tools/loadgen/rng.h"
#include "tools/loadgen/workload.h"

namespace fm::loadgen {

/// How arrivals are spaced.
enum class Arrival : uint8_t {
  kPoisson,   // exponential inter-arrival times: the default, as in mutilate/Lancet/wrk2
  kConstant,  // exactly 1/rate apart (per core, phase-shifted between cores)
};

/// One scheduled request.
struct Request {
  uint64_t at = 0;  // due time, TSC cycles after the rate point's start
  uint64_t key = 0;
  Op op = Op::kGet;
};

/// What a schedule draws from; shared read-only by every core.
struct WorkloadSpec {
  const KeyDist* keys = nullptr;
  double get_ratio = 1.0;  // share of GETs; the rest are SETs
  Arrival arrival = Arrival::kPoisson;
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

  /// The next inter-arrival gap in ticks (exponential with mean hz/rate, or constant).
  double next_gap() {
    if (w_.arrival == Arrival::kConstant) return mean_gap_;
    return -std::log1p(-rng_.uniform()) * mean_gap_;
  }

  /// The next request, in due-time order.
  Request next() {
    t_ += next_gap();
    Request r;
    r.at = uint64_t(t_);
    r.key = w_.keys->sample(rng_);
    r.op = (w_.get_ratio >= 1.0 || rng_.uniform() < w_.get_ratio) ? Op::kGet : Op::kSet;
    return r;
  }

  double mean_gap() const { return mean_gap_; }

 private:
  const WorkloadSpec& w_;
  Rng rng_;
  double mean_gap_;
  double t_ = 0;
};

}  // namespace fm::loadgen
