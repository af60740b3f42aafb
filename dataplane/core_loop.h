// One polling loop per dataplane core, with hooks (pollers) that upper layers register.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "dataplane/counter.h"
#include "dataplane/ids.h"
#include "dataplane/result.h"

namespace fm {

/// What a core does when it finds no work.
struct IdleOptions {
  // Back off (short sleeps) when idle, so two DPDK programs on a 2-core machine do not
  // starve each other. Off for dedicated cores: pure polling has the lowest latency.
  bool backoff = true;
  // Keep polling this long after the last work before the first sleep.
  uint32_t spin_us = 200;
  // Length of one idle sleep; the latency a request may pay when it finds the core asleep.
  uint32_t sleep_us = 20;
};

/// A hook polled once per loop iteration on the owning core. Returns the work done (0 = none).
/// Lower layers stay ignorant of upper ones: the NIC stack, the transport's completion queue and
/// the scheduler each register one (Caladan's softirq pollers).
struct Poller {
  const char* name = "";
  uint32_t (*fn)(void* arg) = nullptr;
  void* arg = nullptr;
};

/// Per-core counters: written by the owner only, read by anyone (relaxed).
struct alignas(64) CoreStats {
  Counter loops;        // iterations of the loop
  Counter busy_loops;   // iterations in which some poller found work
  Counter work;         // units of work the pollers reported
  Counter sleeps;       // idle back-off sleeps
  Counter busy_cycles;  // TSC cycles spent in busy iterations
  Counter cycles;       // TSC cycles since the loop started: busy share = busy_cycles / cycles
};
static_assert(sizeof(CoreStats) == 64, "CoreStats is one cache line");

/// The loop of one dataplane core. Set up on the control path, then run by its lcore.
class CoreLoop {
 public:
  CoreLoop(CoreId id, uint32_t lcore, const IdleOptions& idle) : id_(id), lcore_(lcore), idle_(idle) {}

  /// Adds a hook. Control path; before run().
  void add_poller(const Poller& p) { pollers_.push_back(p); }

  /// Polls every hook until stop_requested(). Owner lcore only; never returns early.
  void run();

  CoreId id() const { return id_; }
  uint32_t lcore() const { return lcore_; }
  const CoreStats& stats() const { return stats_; }

 private:
  CoreStats stats_;
  CoreId id_;
  uint32_t lcore_;
  IdleOptions idle_;
  std::vector<Poller> pollers_;
};

/// Asks every core loop to stop. Async-signal-safe.
void request_stop();
/// True once request_stop() was called.
bool stop_requested();
/// Routes SIGINT and SIGTERM to request_stop().
void install_stop_signals();

/// Runs core i on its lcore (core 0 on the calling main lcore) until stop is requested, then
/// waits for every core. Main lcore only.
Status run_cores(std::span<CoreLoop* const> cores);

}  // namespace fm
