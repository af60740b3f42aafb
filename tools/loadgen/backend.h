// What the sweep needs from a way of sending requests (DPDK queues or kernel sockets).
#pragma once

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
  double rate = 0;     // requests/s over all cores
  const WorkloadSpec* workload = nullptr;
  double warmup_s = 0;
  double duration_s = 0;
  uint64_t requests = 0;  // > 0: measure this many (over all cores) instead of duration
  uint64_t seed = 1;
};

/// Cores that send and receive. Control path: called from main() only.
class Backend {
 public:
  virtual ~Backend() = default;
  /// Clock ticks per second (the calibrated TSC).
  virtual double hz() const = 0;
  virtual uint32_t cores() const = 0;
  /// One line naming the device or sockets, for the table header.
  virtual std::string describe() const = 0;
  /// Stores keys [0, keys) on all cores at once (core i takes i, i+n, ...), closed loop.
  virtual PreloadResult preload(uint64_t keys, uint32_t window, uint32_t retries) = 0;
  /// Runs one rate point on every core; one result per core.
  virtual std::vector<CoreResult> run_point(const PointSpec& p,
                                            std::span<ProgressSlot> progress) = 0;
};

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
  return c;
}

/// Runs core `core` of `ncores` through point `p`, whose schedule time 0 is clock time
/// `start`. The same on every backend: per-core Poisson streams of rate/ncores superpose to
/// one Poisson stream of the full rate.
template <class Transport>
CoreResult run_core_point(Engine<Transport>& e, const PointSpec& p, uint32_t core, uint32_t ncores,
                          double hz, uint64_t start, ProgressSlot* slot) {
  Schedule sched(*p.workload, p.rate / ncores, hz, derive_seed(p.seed, p.index, core),
                 double(core) / double(ncores));
  PointPlan plan;
  plan.start = start;
  plan.measure_from = uint64_t(p.warmup_s * hz);
  plan.measure_until = plan.measure_from + uint64_t(p.duration_s * hz);
  if (p.requests) plan.measure_count = p.requests / ncores + (core < p.requests % ncores ? 1 : 0);
  return e.run(sched, plan, slot);
}

/// A kernel-socket backend: UDP sockets, one pinned thread per core. Works without DPDK.
Result<std::unique_ptr<Backend>> make_socket_backend(const Options& o, uint32_t flows,
                                                     const ValueSizes* values);
/// A DPDK backend: EAL, one port, one queue pair and stack per core, ARP to the server.
Result<std::unique_ptr<Backend>> make_dpdk_backend(const Options& o, uint32_t flows,
                                                   const ValueSizes* values);

}  // namespace fm::loadgen
