// The counter registry's tables and its three views.
#include "runtime/stats.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "net/packet.h"
#include "paging/replicated_transport.h"

namespace fm::rt {
namespace {

// Names: lowercase [a-z0-9_], a module prefix, and no name twice across the tables (checked
// below at build time). They are an interface: scripts and dashboards read them.
constexpr CoreStat kCoreStats[] = {
    {"dp_rx_packets", [](const CoreParts& c) { return c.stack->counters().rx_packets.read(); }},
    {"dp_rx_bytes", [](const CoreParts& c) { return c.stack->counters().rx_bytes.read(); }},
    {"dp_tx_packets", [](const CoreParts& c) { return c.stack->counters().tx_packets.read(); }},
    {"dp_tx_bytes", [](const CoreParts& c) { return c.stack->counters().tx_bytes.read(); }},
    {"dp_udp_in", [](const CoreParts& c) { return c.stack->counters().udp_in.read(); }},
    {"dp_arp_replies", [](const CoreParts& c) { return c.stack->counters().arp_replies.read(); }},
    {"dp_icmp_replies", [](const CoreParts& c) { return c.stack->counters().icmp_replies.read(); }},
    {"dp_arp_learned", [](const CoreParts& c) { return c.stack->counters().arp_learned.read(); }},
    {"dp_drops", [](const CoreParts& c) { return c.stack->counters().total_drops(); }},
    {"loop_iterations", [](const CoreParts& c) { return c.loop->stats().loops.read(); }},
    {"loop_busy", [](const CoreParts& c) { return c.loop->stats().busy_loops.read(); }},
    {"loop_work", [](const CoreParts& c) { return c.loop->stats().work.read(); }},
    {"loop_sleeps", [](const CoreParts& c) { return c.loop->stats().sleeps.read(); }},
    {"loop_busy_cycles", [](const CoreParts& c) { return c.loop->stats().busy_cycles.read(); }},
    {"loop_cycles", [](const CoreParts& c) { return c.loop->stats().cycles.read(); }},
    {"sched_submitted", [](const CoreParts& c) { return c.sched->counters().submitted.read(); }},
    {"sched_dropped", [](const CoreParts& c) { return c.sched->counters().dropped.read(); }},
    {"sched_no_request", [](const CoreParts& c) { return c.set->no_request.read(); }},
    {"sched_oversize", [](const CoreParts& c) { return c.set->oversize.read(); }},
    {"sched_prefetch_held", [](const CoreParts& c) { return c.set->prefetch_held.read(); }},
    {"sched_prefetch_overflow", [](const CoreParts& c) { return c.set->prefetch_overflow.read(); }},
    {"sched_started", [](const CoreParts& c) { return c.sched->counters().started.read(); }},
    {"sched_finished", [](const CoreParts& c) { return c.sched->counters().finished.read(); }},
    {"sched_parks", [](const CoreParts& c) { return c.sched->counters().parks.read(); }},
    {"sched_wakes", [](const CoreParts& c) { return c.sched->counters().wakes.read(); }},
    {"sched_requeues", [](const CoreParts& c) { return c.sched->counters().requeues.read(); }},
    {"sched_stolen",
     [](const CoreParts& c) {
       return c.sched->counters().stolen_new.read() + c.sched->counters().stolen_ready.read();
     }},
    {"sched_preemptions",
     [](const CoreParts& c) { return c.sched->counters().preemptions.read(); }},
    {"sched_likely_fault_started",
     [](const CoreParts& c) { return c.sched->counters().started_likely_fault.read(); }},
    {"sched_dispatched", [](const CoreParts& c) { return c.sched->counters().dispatched.read(); }},
    {"sched_queue_delay_cycles",
     [](const CoreParts& c) { return c.sched->counters().queue_delay_cycles.read(); }},
    {"predictor_fault_faulted",
     [](const CoreParts& c) { return c.predictions->fault_faulted.read(); }},
    {"predictor_fault_clean", [](const CoreParts& c) { return c.predictions->fault_clean.read(); }},
    {"predictor_clean_faulted",
     [](const CoreParts& c) { return c.predictions->clean_faulted.read(); }},
    {"predictor_clean_clean", [](const CoreParts& c) { return c.predictions->clean_clean.read(); }},
};

constexpr PagingStat kPagingStats[] = {
    {"paging_pages", [](const paging::PagingTotals& t) { return t.pages; }},
    {"paging_frames", [](const paging::PagingTotals& t) { return t.frames; }},
    {"paging_resident", [](const paging::PagingTotals& t) { return t.resident; }},
    {"paging_hits", [](const paging::PagingTotals& t) { return t.pins; }},
    {"paging_faults", [](const paging::PagingTotals& t) { return t.faults; }},
    {"paging_zero_fills", [](const paging::PagingTotals& t) { return t.zero_fills; }},
    {"paging_shared_waits", [](const paging::PagingTotals& t) { return t.shared_waits; }},
    {"paging_evictions", [](const paging::PagingTotals& t) { return t.evictions; }},
    {"paging_writebacks", [](const paging::PagingTotals& t) { return t.writebacks; }},
    {"paging_errors", [](const paging::PagingTotals& t) { return t.errors; }},
    {"paging_frame_waits", [](const paging::PagingTotals& t) { return t.frame_waits; }},
    {"paging_bounce_waits", [](const paging::PagingTotals& t) { return t.bounce_waits; }},
    {"paging_bytes_read", [](const paging::PagingTotals& t) { return t.bytes_read; }},
    {"paging_bytes_written", [](const paging::PagingTotals& t) { return t.bytes_written; }},
    {"paging_qp_full_retries", [](const paging::PagingTotals& t) { return t.full_retries; }},
    {"paging_reserve_frames", [](const paging::PagingTotals& t) { return t.reserved; }},
    {"paging_reserve_takes", [](const paging::PagingTotals& t) { return t.reserve_takes; }},
    {"paging_direct_reclaims", [](const paging::PagingTotals& t) { return t.direct_reclaims; }},
    {"paging_fault_writebacks", [](const paging::PagingTotals& t) { return t.fault_writebacks; }},
    {"paging_reclaim_sweeps", [](const paging::PagingTotals& t) { return t.reclaim_sweeps; }},
    {"paging_reclaim_writebacks",
     [](const paging::PagingTotals& t) { return t.reclaim_writebacks; }},
    {"paging_prefetches", [](const paging::PagingTotals& t) { return t.prefetches; }},
    {"paging_prefetch_used", [](const paging::PagingTotals& t) { return t.prefetch_used; }},
    {"paging_prefetch_wasted", [](const paging::PagingTotals& t) { return t.prefetch_wasted; }},
    {"paging_prefetch_no_frame", [](const paging::PagingTotals& t) { return t.prefetch_no_frame; }},
    // Transfer latencies (post to completion polled) from 32 buckets per power of two: each is
    // its bucket's upper edge, within 6.25% of the true value.
    {"paging_read_p50_ns",
     [](const paging::PagingTotals& t) { return paging::latency_percentile(t.read_latency, 0.5); }},
    {"paging_read_p99_ns",
     [](const paging::PagingTotals& t) { return paging::latency_percentile(t.read_latency, 0.99); }},
    {"paging_read_p999_ns",
     [](const paging::PagingTotals& t) { return paging::latency_percentile(t.read_latency, 0.999); }},
    {"paging_write_p50_ns",
     [](const paging::PagingTotals& t) { return paging::latency_percentile(t.write_latency, 0.5); }},
    {"paging_write_p99_ns",
     [](const paging::PagingTotals& t) { return paging::latency_percentile(t.write_latency, 0.99); }},
};

// The names written by the views below without a table row (switches, gauges, worker state).
constexpr std::string_view kOtherNames[] = {
    "sched_fault_mode",
    "sched_dispatch",
    "sched_steal",
    "sched_preempt_us",
    "sched_predictor",
    "sched_prefetch",
    "sched_in_flight",
    "sched_queued",
    "sched_fetches",
    "paging_mode",
    "paging_transport",
    "paging_memnode_alive",
    "worker_busy_cycles",
    "worker_parks",
    "worker_wakes",
    "worker_handoffs",
    "paging_memnodes",
    "paging_memnodes_alive",
    "paging_replicas",
    "paging_reads_reissued",
    "paging_writes_degraded",
    "paging_reads_lost",
    "paging_memnodes_rebuilding",
    "paging_memnode_rejoins",
    "paging_pages_repaired",
    "paging_pages_lost",
    "paging_pages_forgotten",
    "paging_pages_kept",
};

constexpr bool name_ok(std::string_view n) {
  if (n.empty() || n.find('_') == std::string_view::npos) return false;  // a module prefix
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

template <typename F>
constexpr bool each_name(F&& f) {
  for (const CoreStat& s : kCoreStats)
    if (!f(s.name)) return false;
  for (const PagingStat& s : kPagingStats)
    if (!f(s.name)) return false;
  for (std::string_view n : kOtherNames)
    if (!f(n)) return false;
  return true;
}

constexpr bool names_ok() {
  return each_name([](std::string_view n) {
    if (!name_ok(n) || n.starts_with("dp_drop_")) return false;  // dp_drop_<reason> is derived
    int seen = 0;
    each_name([&](std::string_view m) {
      seen += m == n;
      return true;
    });
    return seen == 1;
  });
}
static_assert(names_ok(), "a statistic name is malformed or listed twice");

/// Per-core drop counters by reason: `dp_drop_<reason>`. memcached's "stats" runs this on a
/// dataplane core: the names are formatted on the stack, nothing is allocated.
void write_drops(const ServerParts& s, const uint16_t* only, StatSink& out) {
  char name[64];
  for (size_t r = 0; r < net::kDropReasonCount; ++r) {
    uint64_t v = 0;
    for (size_t i = 0; i < s.cores.size(); ++i)
      if (only == nullptr || *only == i) v += s.cores[i].stack->counters().drops[r].read();
    const int n =
        std::snprintf(name, sizeof(name), "dp_drop_%s", net::drop_reason_name(net::DropReason(r)));
    out.stat(std::string_view(name, size_t(std::clamp(n, 0, int(sizeof(name)) - 1))), v);
  }
}

/// Writes "name value" pairs on lines of up to ~100 columns, skipping zeros.
class SummarySink final : public StatSink {
 public:
  SummarySink(std::FILE* f, bool skip_zero) : f_(f), skip_zero_(skip_zero) {}
  ~SummarySink() override { end_line(); }
  void stat(std::string_view name, uint64_t value) override {
    if (skip_zero_ && value == 0) return;
    put(name, std::to_string(value));
  }
  void stat(std::string_view name, std::string_view value) override { put(name, value); }
  void stat_signed(std::string_view name, int64_t value) override {
    if (skip_zero_ && value == 0) return;
    put(name, std::to_string(value));
  }

 private:
  void put(std::string_view name, std::string_view value) {
    const size_t need = name.size() + value.size() + 2;
    if (col_ > 0 && col_ + need > 100) end_line();
    if (col_ == 0) col_ = size_t(std::fprintf(f_, " "));
    col_ += size_t(std::fprintf(f_, " %.*s %.*s", int(name.size()), name.data(), int(value.size()),
                                value.data()));
  }
  void end_line() {
    if (col_ > 0) std::fputc('\n', f_);
    col_ = 0;
  }
  std::FILE* f_;
  bool skip_zero_;
  size_t col_ = 0;
};

}  // namespace

std::span<const CoreStat> core_stats() { return kCoreStats; }
std::span<const PagingStat> paging_stats() { return kPagingStats; }

void write_server_stats(const ServerParts& s, StatSink& out) {
  const sched::Scheduler& sc = *s.scheduler;
  out.stat("sched_fault_mode", sched::fault_mode_name(sc.faults()));
  out.stat("sched_dispatch", sched::dispatch_name(sc.options().dispatch));
  out.stat("sched_steal", uint64_t{sc.steal()});
  out.stat("sched_preempt_us", uint64_t{sc.preempt_us()});
  out.stat("sched_predictor", sched::predictor_name(sc.predictor()));
  out.stat("sched_prefetch", uint64_t{sc.prefetch()});
  // The one summing loop: every core statistic is the sum of its per-core values.
  for (const CoreStat& st : kCoreStats) {
    uint64_t v = 0;
    for (const CoreParts& c : s.cores) v += st.read(c);
    out.stat(st.name, v);
  }
  write_drops(s, nullptr, out);
  uint64_t in_flight = 0, queued = 0, fetches = 0;
  for (const CoreParts& c : s.cores) {
    in_flight += c.sched->in_flight();
    queued += c.sched->queued();
    fetches += c.sched->parked();
  }
  out.stat("sched_in_flight", in_flight);
  out.stat("sched_queued", queued + sc.central_queued());
  out.stat("sched_fetches", fetches);
  if (s.region == nullptr) {
    out.stat("paging_mode", "local");
    return;
  }
  out.stat("paging_mode", "far");
  out.stat("paging_transport", s.transport->name());
  out.stat("paging_memnode_alive", uint64_t{s.transport->alive()});
  if (const auto* r = dynamic_cast<const paging::ReplicatedTransport*>(s.transport)) {
    uint64_t alive = 0, rebuilding = 0, rejoins = 0;
    for (const paging::NodeInfo& n : r->nodes_info()) {
      alive += n.state != paging::NodeState::kDead;
      rebuilding += n.state == paging::NodeState::kRebuilding;
      rejoins += n.rejoins;
    }
    out.stat("paging_memnodes", uint64_t{r->node_count()});
    out.stat("paging_memnodes_alive", alive);
    out.stat("paging_memnodes_rebuilding", rebuilding);
    out.stat("paging_memnode_rejoins", rejoins);
    out.stat("paging_pages_repaired", r->pages_repaired());
    out.stat("paging_pages_lost", r->pages_lost());
    out.stat("paging_pages_forgotten", r->pages_forgotten());
    out.stat("paging_pages_kept", r->pages_kept());
    out.stat("paging_replicas", uint64_t{r->placement().replicas});
    out.stat("paging_reads_reissued", r->reads_reissued());
    out.stat("paging_writes_degraded", r->writes_degraded());
    out.stat("paging_reads_lost", r->reads_lost());
  }
  const paging::PagingTotals t = s.region->totals();
  for (const PagingStat& st : kPagingStats) out.stat(st.name, st.read(t));
}

void write_core_stats(const ServerParts& s, uint16_t i, StatSink& out) {
  const CoreParts& c = s.cores[i];
  for (const CoreStat& st : kCoreStats) out.stat(st.name, st.read(c));
  write_drops(s, &i, out);
  out.stat("sched_in_flight", uint64_t{c.sched->in_flight()});
  out.stat("sched_queued", uint64_t{c.sched->queued()});
  out.stat("sched_fetches", uint64_t{c.sched->parked()});
  if (s.alloc != nullptr && i < s.alloc->workers()) {
    const WorkerInfo w = s.alloc->worker_info(i);
    out.stat("worker_busy_cycles", w.busy_cycles);
    out.stat("worker_parks", w.parks);
    out.stat("worker_wakes", w.wakes);
    out.stat("worker_handoffs", w.handoffs);
  }
}

void print_summary(const ServerParts& s, std::FILE* f) {
  for (uint16_t i = 0; i < s.cores.size(); ++i) {
    std::fprintf(f, "core %u (lcore %u):\n", i, s.cores[i].loop->lcore());
    SummarySink sink(f, /*skip_zero=*/true);
    write_core_stats(s, i, sink);
  }
  std::fprintf(f, "server:\n");
  SummarySink sink(f, /*skip_zero=*/true);
  write_server_stats(s, sink);
}

}  // namespace fm::rt
