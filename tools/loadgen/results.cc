// Turning merged per-core measurements into a report row, and deciding whether to trust it.
#include "tools/loadgen/results.h"

#include <fmt/core.h>

#include <algorithm>
#include <limits>

namespace fm::loadgen {
namespace {
double us(uint64_t ns) {
  return ns == std::numeric_limits<uint64_t>::max() ? std::numeric_limits<double>::infinity()
                                                    : double(ns) / 1000.0;
}
}  // namespace

LatencySummary summarize(const Histogram& h) { return summarize_histogram(h); }

std::vector<TimelineRow> timeline_rows(const Timeline& t, double hz) {
  std::vector<TimelineRow> rows;
  const auto& b = t.buckets();
  rows.reserve(b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    TimelineRow r;
    const uint64_t begin = uint64_t(i) * t.interval();
    const uint64_t end = i + 1 == b.size()
                             ? std::max(t.window(), begin + 1)  // may be a sliver over
                             : begin + t.interval();
    r.t_ms = double(begin) / hz * 1e3;
    r.start_tick = t.origin() + begin;
    r.length_s = double(end - begin) / hz;
    r.scheduled = b[i].scheduled;
    r.received = b[i].received;
    r.timeouts = b[i].timeouts;
    r.late = b[i].late;
    r.errors = b[i].errors;
    r.wrong = b[i].wrong;
    r.misses = b[i].misses;
    r.offered_rps = double(r.scheduled) / r.length_s;
    r.achieved_rps = double(r.received) / r.length_s;
    r.latency = summarize_histogram(b[i].latency);
    rows.push_back(r);
  }
  return rows;
}

OpReport op_report(const OpStats& o, double window_s) {
  OpReport r;
  r.requests = o.scheduled;
  r.replies = o.completed;
  r.timeouts = o.timeouts;
  r.misses = o.misses;
  r.wrong = o.wrong;
  r.server_errors = o.server_errors;
  r.malformed = o.malformed;
  r.scheduled_rps = window_s > 0 ? double(o.scheduled) / window_s : 0.0;
  r.achieved_rps = window_s > 0 ? double(o.completed) / window_s : 0.0;
  r.latency = summarize(o.latency);
  return r;
}

PointReport make_report(double offered_rps, const CoreResult& m, double hz,
                        const ValidityRules& rules) {
  PointReport r;
  r.offered_rps = offered_rps;
  r.window_s = double(m.window_ticks) / hz;
  OpStats all;
  for (const OpStats& o : m.ops) all.merge(o);
  r.all = op_report(all, r.window_s);
  r.get = op_report(m.ops[size_t(Op::kGet)], r.window_s);
  r.set = op_report(m.ops[size_t(Op::kSet)], r.window_s);
  r.mget = op_report(m.ops[size_t(Op::kMultiGet)], r.window_s);
  if (m.timeline) r.timeline = timeline_rows(*m.timeline, hz);
  r.scheduled_rps = r.window_s > 0 ? double(r.all.requests) / r.window_s : 0.0;
  r.strays = m.strays;
  r.late = m.late;
  r.unsent = m.unsent;
  r.tx_dropped = m.tx_dropped;
  r.id_wraps = m.id_wraps;
  const uint64_t n = r.all.requests;
  r.adherence_pct = n ? 100.0 * double(n - std::min(n, r.late)) / double(n) : 0.0;
  r.send_lag_p99_us = us(m.send_lag.percentile(0.99));
  r.send_lag_max_us = us(m.send_lag.max());
  r.loadgen_busy_pct = m.loop_ticks ? 100.0 * double(m.busy_ticks) / double(m.loop_ticks) : 0.0;

  // Every reason is kept: a reader should see all that went wrong, not only the first.
  std::string why;
  const auto add = [&](const std::string& s) { why += (why.empty() ? "" : "; ") + s; };
  if (m.interrupted) add("interrupted before the window ended");
  if (n == 0) add("no request was measured (window too short?)");
  if (n && r.adherence_pct < rules.min_adherence_pct) {
    add(fmt::format("generator fell behind: {:.2f}% of requests sent on schedule < {:g}%",
                    r.adherence_pct, rules.min_adherence_pct));
  }
  if (r.id_wraps) {
    add(fmt::format("{} request ids reused while in flight (raise --flows or lower --timeout-ms)",
                    r.id_wraps));
  }
  r.valid = why.empty();
  r.invalid_reason = why;
  return r;
}

}  // namespace fm::loadgen
