// What the sweep needs from a way of sending requests (DPDK queues or kernel sockets).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dataplane/result.h"
#include "tools/loadgen/engine.h"
#include "tools/loadgen/options.h"
#include "tools/loadgen/results.h"
#include "tools/loadgen/schedule.h"

namespace fm::loadgen {

/// One rate point, as every core must run it.
struct PointSpec {
  uint32_t index = 0;  // position in the sweep (seeds differ per point)
  double rate = 0;     // requests/s over all cores (with steps: their time-weighted mean)
  const WorkloadSpec* workload = nullptr;
  double warmup_s = 0;
  double duration_s = 0;  // with steps: their sum
  uint64_t requests = 0;  // > 0: measure this many (over all cores) instead of duration
  uint64_t seed = 1;
  // Non-empty: the rate changes over the measured window (--rate-steps); the warm-up runs at
  // the first step's rate.
  std::vector<RateStep> steps;
  double timeline_s = 0;  // > 0: a Timeline of intervals this long (--timeline-ms)
};

/// Cores that send and receive. Control path: called from main() only.
class Backend {
 public:
  virtual ~Backend() = default;
  /// Clock ticks per second (the calibrated TSC).
  virtual double hz() const = 0;
  /// Load cores (lcores or threads).
  virtual uint32_t cores() const = 0;
  /// Engines: queue pairs (dpdk) or socket sets, spread over the cores; one result each.
  virtual uint32_t engines() const = 0;
  /// One line naming the device or sockets, for the table header.
  virtual std::string describe() const = 0;
  /// Stores keys [0, keys) on all cores at once (engine i takes i, i+n, ...), closed loop.
  virtual PreloadResult preload(uint64_t keys, uint32_t window, uint32_t retries) = 0;
  /// Runs one rate point on every core; one result per engine (`progress` has one slot each).
  virtual std::vector<CoreResult> run_point(const PointSpec& p,
                                            std::span<ProgressSlot> progress) = 0;
};

/// Multi-key GETs one engine may have in flight: twice as many as its share of the rate puts
/// in flight within the timeout, plus 64, but at most its request ids (65536 per flow) and
/// 256 MiB of reply buffers. Past that a multi-key GET is counted unsent (and the point will
/// say the generator fell behind), never silently skipped.
inline uint32_t multiget_slots(double engine_rate, double ratio, double timeout_s, uint32_t flows,
                               size_t reply_cap) {
  const double want = 2.0 * engine_rate * ratio * timeout_s + 64.0;
  const double by_ids = double(flows) * 65536.0;
  const double by_memory = std::max(16.0, double(256u << 20) / double(reply_cap));
  return uint32_t(std::min({want, by_ids, by_memory}));
}

/// The engine settings implied by the options on a clock of `hz` ticks per second.
inline EngineConfig engine_config(const Options& o, double hz, uint32_t flows,
                                  const ValueSizes* values, bool (*stop)()) {
  EngineConfig c;
  c.flows = flows;
  c.timeout_ticks = uint64_t(o.timeout_ms * 1e-3 * hz);
  c.late_ticks = uint64_t(o.late_us * 1e-6 * hz);
  c.ns_per_tick = 1e9 / hz;
  c.verify = o.verify;
  c.values = values;
  c.stop = stop;
  if (o.multiget_keys && o.multiget_ratio > 0) {
    c.multiget_keys = o.multiget_keys;
    c.multiget_slots =
        multiget_slots(max_rate(o) / double(o.queue_count), o.multiget_ratio, o.timeout_ms * 1e-3,
                       flows, multiget_reply_capacity(o.multiget_keys, values->max()));
  }
  return c;
}

/// Queue pairs (engines) that lcore `lcore` of `lcores` drives when `queues` are spread over
/// them round-robin: lcore, lcore + lcores, ... (queue q runs on lcore q % lcores).
inline std::vector<uint32_t> queues_of_lcore(uint32_t lcore, uint32_t lcores, uint32_t queues) {
  std::vector<uint32_t> out;
  for (uint32_t q = lcore; q < queues; q += lcores) out.push_back(q);
  return out;
}

/// The schedule of engine `engine` of `engines` at point `p`: per-engine Poisson streams of
/// rate/engines superpose to one Poisson stream of the full rate. With steps, schedule time
/// 0 is the warm-up's start and the steps follow it. Control path.
inline Schedule make_schedule(const PointSpec& p, uint32_t engine, uint32_t engines, double hz) {
  const uint64_t seed = derive_seed(p.seed, p.index, engine);
  const double phase = double(engine) / double(engines);
  if (p.steps.empty()) return Schedule(*p.workload, p.rate / engines, hz, seed, phase);
  std::vector<RateSegment> segs;
  double t = p.warmup_s;
  double fastest = 0;
  segs.push_back({t, p.steps[0].rate / engines});
  for (const RateStep& s : p.steps) {
    t += s.seconds;
    segs.push_back({t, s.rate / engines});
    fastest = std::max(fastest, s.rate / engines);
  }
  // After the window: only the first request past its end is drawn (it ends the point), so
  // let it come soon.
  segs.push_back({t, fastest});
  return Schedule(*p.workload, segs, hz, seed, phase);
}

/// When engine `engine` of `engines` runs point `p`, whose schedule time 0 is clock `start`.
inline PointPlan make_plan(const PointSpec& p, uint32_t engine, uint32_t engines, double hz,
                           uint64_t start) {
  PointPlan plan;
  plan.start = start;
  plan.measure_from = uint64_t(p.warmup_s * hz);
  plan.measure_until = plan.measure_from + uint64_t(p.duration_s * hz);
  if (p.requests)
    plan.measure_count = p.requests / engines + (engine < p.requests % engines ? 1 : 0);
  if (p.timeline_s > 0 && !p.requests)
    plan.timeline_ticks = std::max<uint64_t>(1, uint64_t(p.timeline_s * hz));
  return plan;
}

/// Runs engine `engine` of `engines` through point `p`, whose schedule time 0 is clock time
/// `start`. The same on every backend.
template <class Transport>
CoreResult run_core_point(Engine<Transport>& e, const PointSpec& p, uint32_t engine,
                          uint32_t engines, double hz, uint64_t start, ProgressSlot* slot) {
  Schedule sched = make_schedule(p, engine, engines, hz);
  return e.run(sched, make_plan(p, engine, engines, hz, start), slot);
}

/// Runs the engines of one lcore through point `p`, interleaving them a loop turn each, so
/// one core drives several queue pairs open loop. `ids[i]` is the engine number of `es[i]`
/// (its seed, share of the rate and progress slot); one result per engine, in `es` order.
/// The first result carries the lcore's busy and loop time (the others none), so the merged
/// busy share is the lcores', not the engines'.
template <class Transport>
std::vector<CoreResult> run_lcore_point(std::span<Engine<Transport>* const> es,
                                        std::span<const uint32_t> ids, const PointSpec& p,
                                        uint32_t engines, double hz, uint64_t start,
                                        std::span<ProgressSlot> progress,
                                        std::atomic<uint32_t>* running = nullptr) {
  // `running` counts the engines of every core still in this point: a core whose engines are done
  // keeps receiving until it is 0, because replies for another core's queue may land on its
  // queues (the transport passes them on).
  std::vector<CoreResult> out;
  if (es.size() == 1) {
    out.push_back(run_core_point(*es[0], p, ids[0], engines, hz, start, &progress[ids[0]]));
    if (running) {
      running->fetch_sub(1, std::memory_order_acq_rel);
      while (running->load(std::memory_order_acquire) > 0) es[0]->poll_rx();
    }
    return out;
  }
  std::vector<Schedule> scheds;
  scheds.reserve(es.size());
  for (size_t i = 0; i < es.size(); ++i) scheds.push_back(make_schedule(p, ids[i], engines, hz));
  for (size_t i = 0; i < es.size(); ++i)
    es[i]->begin(scheds[i], make_plan(p, ids[i], engines, hz, start), &progress[ids[i]]);
  std::vector<uint8_t> done(es.size(), 0);
  size_t left = es.size();
  const uint64_t t0 = es[0]->now();
  uint64_t prev = t0, busy = 0;
  while (left || (running && running->load(std::memory_order_acquire) > 0)) {
    bool work = false;
    for (size_t i = 0; i < es.size(); ++i) {
      if (done[i]) {
        if (running) es[i]->poll_rx();
        continue;
      }
      if (es[i]->step()) {
        done[i] = 1;
        --left;
        if (running) running->fetch_sub(1, std::memory_order_acq_rel);
      }
      work = work || es[i]->worked();
    }
    const uint64_t now = es[0]->now();
    if (work) busy += now - prev;
    prev = now;
  }
  for (size_t i = 0; i < es.size(); ++i) {
    out.push_back(es[i]->finish());
    out.back().busy_ticks = i == 0 ? busy : 0;
    out.back().loop_ticks = i == 0 ? prev - t0 : 0;
  }
  return out;
}

/// A kernel-socket backend: UDP sockets, one pinned thread per core, each driving its share of
/// the --queues socket sets. Works without DPDK.
Result<std::unique_ptr<Backend>> make_socket_backend(const Options& o, uint32_t flows,
                                                     const ValueSizes* values);
/// A DPDK backend: EAL, one port with --queues queue pairs spread over the lcores, ARP to the
/// server.
Result<std::unique_ptr<Backend>> make_dpdk_backend(const Options& o, uint32_t flows,
                                                   const ValueSizes* values);

}  // namespace fm::loadgen
