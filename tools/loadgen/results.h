// What one core (or all cores merged) measured at one rate point, and the derived report row.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/counter.h"
#include "tools/loadgen/histogram.h"
#include "tools/loadgen/timeline.h"
#include "tools/loadgen/workload.h"

namespace fm::loadgen {

/// Counters and latencies of one operation type, over the measured requests only.
struct OpStats {
  Histogram latency;           // ns from the scheduled send time; drops recorded as infinite
  uint64_t scheduled = 0;      // measured requests that were due in the window
  uint64_t completed = 0;      // answered within the timeout (any answer, errors included)
  uint64_t timeouts = 0;       // not answered within the timeout, or never sent: infinite latency
  uint64_t misses = 0;         // GET answered END (no value)
  uint64_t wrong = 0;          // GET answered with a value that is not the key's
  uint64_t server_errors = 0;  // ERROR / CLIENT_ERROR / SERVER_ERROR / NOT_STORED
  uint64_t malformed = 0;      // an answer the loadgen cannot parse (or a GET's split over
                               // datagrams, or a multi-get's with inconsistent datagrams)

  void merge(const OpStats& o) {
    latency.merge(o.latency);
    scheduled += o.scheduled;
    completed += o.completed;
    timeouts += o.timeouts;
    misses += o.misses;
    wrong += o.wrong;
    server_errors += o.server_errors;
    malformed += o.malformed;
  }
};

/// One core's measurements at one rate point; merge() folds the cores together.
struct CoreResult {
  std::array<OpStats, kOpCount> ops;
  Histogram send_lag;         // ns between due and actual send, measured requests
  uint64_t late = 0;          // measured requests sent later than the late window, or unsent
  uint64_t unsent = 0;        // no buffer to build a request in (a local failure)
  uint64_t tx_dropped = 0;    // frames the TX queue refused (the peer's ring was full)
  uint64_t strays = 0;        // replies matching nothing in flight (after timeout, duplicates)
  uint64_t id_wraps = 0;      // a request id had to be reused while still in flight
  uint64_t window_ticks = 0;  // length of the measured window (max over cores)
  uint64_t busy_ticks = 0;    // loop time spent sending or receiving
  uint64_t loop_ticks = 0;    // loop time in all
  bool interrupted = false;   // SIGINT/SIGTERM cut the point short
  std::unique_ptr<Timeline> timeline;  // per-interval view of the window (--timeline), or null

  void merge(const CoreResult& o) {
    if (o.timeline) {
      if (!timeline)
        timeline = std::make_unique<Timeline>(*o.timeline);
      else
        timeline->merge(*o.timeline);
    }
    for (int i = 0; i < kOpCount; ++i) ops[size_t(i)].merge(o.ops[size_t(i)]);
    send_lag.merge(o.send_lag);
    late += o.late;
    unsent += o.unsent;
    tx_dropped += o.tx_dropped;
    strays += o.strays;
    id_wraps += o.id_wraps;
    window_ticks = window_ticks > o.window_ticks ? window_ticks : o.window_ticks;
    busy_ticks += o.busy_ticks;
    loop_ticks += o.loop_ticks;
    interrupted = interrupted || o.interrupted;
  }
};

/// A zeroed result. (A function rather than `CoreResult{}` inside templates: GCC 12 crashes
/// on the latter, in check_noexcept_r.)
inline CoreResult fresh_result() { return CoreResult(); }

/// Live counters of one core for the progress line. Written by the owner core only.
struct alignas(64) ProgressSlot {
  Counter sent, replies, timeouts, late;
};
static_assert(sizeof(ProgressSlot) == 64, "one cache line per core");

/// Latency summary of one operation type (or of all), in microseconds; +inf for drops.
struct LatencySummary {
  double min = 0, mean = 0, p50 = 0, p90 = 0, p95 = 0, p99 = 0, p999 = 0, p9999 = 0, max = 0;
};

/// Latency summary of any log-linear histogram of ns, in microseconds (+inf where drops
/// dominate).
template <class H>
LatencySummary summarize_histogram(const H& h) {
  const auto us = [](uint64_t ns) {
    return ns == std::numeric_limits<uint64_t>::max() ? std::numeric_limits<double>::infinity()
                                                      : double(ns) / 1000.0;
  };
  LatencySummary s;
  if (h.count() + h.infinite() == 0) return s;
  s.min = h.count() ? us(h.min()) : std::numeric_limits<double>::infinity();
  s.mean = h.infinite() ? std::numeric_limits<double>::infinity() : h.mean() / 1000.0;
  s.p50 = us(h.percentile(0.50));
  s.p90 = us(h.percentile(0.90));
  s.p95 = us(h.percentile(0.95));
  s.p99 = us(h.percentile(0.99));
  s.p999 = us(h.percentile(0.999));
  s.p9999 = us(h.percentile(0.9999));
  s.max = us(h.max());
  return s;
}

/// One interval of the --timeline file.
struct TimelineRow {
  double t_ms = 0;          // interval start, from the start of the measured window
  uint64_t start_tick = 0;  // interval start on the load cores' clock (for wall-clock time)
  double length_s = 0;      // interval length (the last one may be shorter)
  double offered_rps = 0;   // measured requests due in the interval, per second
  double achieved_rps = 0;  // replies that arrived in the interval, per second
  LatencySummary latency;   // of the requests due in the interval
  uint64_t scheduled = 0, received = 0, timeouts = 0, late = 0;
  uint64_t errors = 0, wrong = 0, misses = 0;  // replies to requests due in the interval
};

/// The rows of a (merged) timeline; `hz` converts ticks to seconds.
std::vector<TimelineRow> timeline_rows(const Timeline& t, double hz);

/// What one operation type (or all of them) saw at a rate point.
struct OpReport {
  uint64_t requests = 0;  // measured requests due in the window
  uint64_t replies = 0;   // answered within the timeout
  uint64_t timeouts = 0;  // drops: not answered in time, or never sent (infinite latency)
  uint64_t misses = 0, wrong = 0, server_errors = 0, malformed = 0;
  double scheduled_rps = 0;  // requests due per second of window (this op's offered load)
  double achieved_rps = 0;   // replies per second of window
  LatencySummary latency;
};

/// One row of output: a rate point, everything measured, and whether it can be trusted.
struct PointReport {
  double offered_rps = 0;    // the rate asked for
  double scheduled_rps = 0;  // measured requests the schedule made due, per second
  double window_s = 0;
  OpReport all, get, set;
  OpReport mget;  // multi-key GETs (--multiget-keys); `get` is single-key GETs only
  uint64_t strays = 0, late = 0, unsent = 0, tx_dropped = 0, id_wraps = 0;
  double adherence_pct = 0;  // share of measured requests sent within the late window
  double send_lag_p99_us = 0, send_lag_max_us = 0;
  double loadgen_busy_pct = 0;  // how busy the loadgen's cores were (near 100: suspect)
  uint32_t attempts = 1;        // runs of this point (> 1 with --retries after INVALID ones)
  bool valid = true;
  std::string invalid_reason;         // empty when valid
  std::vector<TimelineRow> timeline;  // --timeline: one row per interval of the window
};

/// Thresholds that decide validity.
struct ValidityRules {
  double min_adherence_pct = 99.0;
};

/// Builds the report row from merged results. `hz` converts ticks to seconds.
PointReport make_report(double offered_rps, const CoreResult& merged, double hz,
                        const ValidityRules& rules);

/// One operation type's row part.
OpReport op_report(const OpStats& o, double window_s);

/// Latency summary of a histogram in microseconds (+inf where drops dominate).
LatencySummary summarize(const Histogram& h);

}  // namespace fm::loadgen
