// The measurement cut into fixed intervals (--timeline): offered and answered load, latency of
// the requests due in each interval, timeouts and late sends, for load that changes over time.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "tools/loadgen/histogram.h"

namespace fm::loadgen {

/// One interval's latencies: 64 sub-buckets per power of two (relative error < 3.2%), values
/// up to 2^36 ns (68 s, above the longest --timeout-ms), 32-bit counts: 7.9 KiB.
using TimelineHistogram = LogLinearHistogram<6, 36, uint32_t>;

/// What happened in one interval of the measured window.
struct TimelineBucket {
  uint64_t scheduled = 0;     // measured requests due in this interval (sent or not)
  uint64_t received = 0;      // replies to measured requests that arrived in this interval
  uint64_t timeouts = 0;      // requests due in this interval never answered in time (or unsent)
  uint64_t late = 0;          // requests due in this interval sent late (or never)
  uint64_t errors = 0;        // of those, answered with an error (SERVER_ERROR, malformed)
  uint64_t wrong = 0;         // of those, answered with another value than was stored
  uint64_t misses = 0;        // of those, GETs answered "not found"
  TimelineHistogram latency;  // ns from due time, of requests due in this interval; drops +inf

  void merge(const TimelineBucket& o) {
    scheduled += o.scheduled;
    received += o.received;
    timeouts += o.timeouts;
    late += o.late;
    errors += o.errors;
    wrong += o.wrong;
    misses += o.misses;
    latency.merge(o.latency);
  }
};

/// Approximate bytes of one interval, for sizing checks.
inline constexpr uint64_t kTimelineBucketBytes =
    sizeof(TimelineBucket) + uint64_t(TimelineHistogram::kGroups) * TimelineHistogram::kSub * 4;

/// The intervals of one engine's (or, merged, every engine's) measured window. Intervals are
/// `interval` clock ticks long from clock time `origin` (the window's start) and cover
/// `window` ticks; the last may be shorter, or longer by a sliver under 1/1000 of an interval
/// (the rounding of seconds to ticks: 1 s in 10 ms steps is 100 intervals, not 101). Events
/// outside the window are not counted. Allocated on the control path; the on_* calls are
/// O(1), owner core only.
class Timeline {
 public:
  Timeline(uint64_t origin, uint64_t interval, uint64_t window)
      : origin_(origin),
        interval_(interval ? interval : 1),
        window_(window),
        buckets_(intervals(window, interval_)) {}

  /// How many intervals of `interval` ticks cover `window`, as described above.
  static size_t intervals(uint64_t window, uint64_t interval) {
    uint64_t n = window / interval;
    if (window % interval > interval / 1000 || n == 0) ++n;
    return size_t(n);
  }

  /// The interval holding clock time `t`, or null outside the window.
  TimelineBucket* at(uint64_t t) {
    if (t < origin_ || t - origin_ >= window_) return nullptr;
    const uint64_t i = (t - origin_) / interval_;
    return &buckets_[i < buckets_.size() ? size_t(i) : buckets_.size() - 1];
  }

  void on_scheduled(uint64_t due) {
    if (TimelineBucket* b = at(due)) ++b->scheduled;
  }
  /// A reply at clock `now` to a request due at `due`, `latency_ns` after it.
  void on_reply(uint64_t due, uint64_t now, uint64_t latency_ns) {
    if (TimelineBucket* b = at(due)) b->latency.record(latency_ns);
    if (TimelineBucket* b = at(now)) ++b->received;
  }
  void on_timeout(uint64_t due) {
    if (TimelineBucket* b = at(due)) {
      ++b->timeouts;
      b->latency.record_infinite();
    }
  }
  /// A reply to a request due at `due` that was an error (`error`), a wrong value or a miss.
  void on_outcome(uint64_t due, bool error, bool wrong, bool miss) {
    if (TimelineBucket* b = at(due)) {
      b->errors += error;
      b->wrong += wrong;
      b->misses += miss;
    }
  }
  void on_late(uint64_t due) {
    if (TimelineBucket* b = at(due)) ++b->late;
  }

  /// Adds another engine's intervals (the same origin, interval and window). False if the
  /// shapes differ (nothing is added then).
  bool merge(const Timeline& o) {
    if (o.origin_ != origin_ || o.interval_ != interval_ || o.buckets_.size() != buckets_.size())
      return false;
    for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i].merge(o.buckets_[i]);
    return true;
  }

  const std::vector<TimelineBucket>& buckets() const { return buckets_; }
  uint64_t interval() const { return interval_; }
  uint64_t window() const { return window_; }
  uint64_t origin() const { return origin_; }

 private:
  uint64_t origin_;
  uint64_t interval_;
  uint64_t window_;
  std::vector<TimelineBucket> buckets_;
};

}  // namespace fm::loadgen
