// Core allocation at run time (Shenango-style): worker cores poll "queue sets" (a NIC queue with
// everything attached to it); a parked worker sleeps and its queue sets are adopted by active
// workers, so nothing sent to them is stranded. The active count changes by command or
// automatically: a core is added when queued work waits across consecutive checks (queueing
// delay), and released when the load fits in fewer cores.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dataplane/core_loop.h"
#include "dataplane/counter.h"
#include "dataplane/enum_names.h"
#include "dataplane/result.h"

namespace fm {

/// How a parked worker waits to be woken.
enum class ParkMode : uint8_t {
  kSleep,  // blocks on an eventfd: costs no CPU; waking takes a kernel wake-up (~10-50 us)
  kSpin,   // spins on a flag with pause: wakes in < 1 us but keeps its CPU busy (for comparison)
};
inline constexpr EnumName<ParkMode> kParkModeNames[] = {{"sleep", ParkMode::kSleep},
                                                        {"spin", ParkMode::kSpin}};
static_assert(enum_table_ok(kParkModeNames));

struct AllocOptions {
  uint16_t min = 1;          // never fewer active workers (worker 0 is always one of them)
  uint16_t max = 0;          // never more (0: every worker)
  uint16_t initial = 0;      // active at start (0: max)
  bool automatic = false;    // grow on congestion, shrink when idle
  uint32_t interval_us = 10;       // how often the congestion signal is computed
  uint32_t congestion_us = 10;     // queueing delay that counts as congestion
  uint32_t congested_checks = 2;   // consecutive congested checks before a core is added
  uint32_t release_window_us = 1000;  // utilisation is measured over this window...
  double release_utilisation = 0.5;   // ...and a core released when the rest would stay below this
  uint32_t cooldown_us = 200;      // no second decision sooner than this after one
  ParkMode park = ParkMode::kSleep;
};

/// What the allocator reads of a queue set to judge congestion. Any thread; relaxed reads.
struct QueueProbe {
  uint64_t enqueued = 0;   // requests ever queued for a fiber on this set
  uint32_t waiting = 0;    // requests waiting now (read before `enqueued`)
  uint32_t fetches = 0;    // fetches in flight (fibers parked on a completion)
  uint32_t in_flight = 0;  // requests being served (fibers in use)
};

/// A unit of work that moves between workers as a whole: a NIC queue, its network stack, its
/// completion queue and its scheduler queues. Exactly one worker polls it at a time.
class QueueSet {
 public:
  virtual ~QueueSet() = default;
  /// One pass over the set: NIC in, completions, fibers, replies out. Owner worker only.
  virtual uint32_t poll() = 0;
  /// The congestion probe. Any thread.
  virtual QueueProbe probe() const = 0;
  /// Whether a central dispatcher may place requests here (false while its home worker is
  /// parked). Any thread.
  virtual void set_accepting(bool /*on*/) {}
  /// Called by the worker that just handed this set to worker `to` (tests time hand-offs).
  virtual void on_handoff(uint16_t /*from*/, uint16_t /*to*/) {}
};

/// One allocation decision, for statistics and the control CLI.
struct AllocDecision {
  uint64_t seq = 0;
  uint64_t tsc = 0;            // when it was made
  double t_us = 0;             // microseconds since the allocator started
  std::string action;          // "add", "release", "set"
  int32_t worker = -1;         // the worker woken or parked (-1: several / none)
  uint16_t active = 0;         // active workers after it
  double signal_us = 0;        // queueing delay that triggered an add (0 otherwise)
  double utilisation = 0;      // busy fraction of the active workers over the last window
  std::string reason;
  double first_work_us = -1;   // add: decision -> the woken worker's first work (-1: not yet)
  double wake_us = -1;         // add: decision -> the woken worker left its park
};

/// Per-worker state and counters (the worker writes, anyone reads).
struct WorkerInfo {
  bool active = false;
  bool parked = false;         // asleep (or spinning) with no queue set
  std::vector<uint16_t> sets;  // queue sets it polls now
  uint64_t busy_cycles = 0;
  uint64_t parks = 0;
  uint64_t wakes = 0;
  uint64_t handoffs = 0;       // queue sets it handed to another worker
};

class CoreAllocator {
 public:
  /// `sets[i]` is worker i's home set (there are as many workers as sets). Control path.
  static Result<std::unique_ptr<CoreAllocator>> create(const AllocOptions& opts,
                                                       std::vector<QueueSet*> sets);
  ~CoreAllocator();

  /// Worker `w`'s loop body (its CoreLoop's one poller): hands over sets it no longer owns,
  /// polls the sets it owns, parks when it owns none, and on worker 0 runs the policy.
  uint32_t poll_worker(uint16_t w);
  /// A CoreLoop poller for worker `w`.
  Poller poller(uint16_t w);

  // Control (any thread; applied by worker 0 within one check interval). Errors name the limit.
  Status set_active(uint16_t n);
  Status set_min(uint16_t n);
  Status set_max(uint16_t n);
  void set_automatic(bool on);

  uint16_t workers() const { return uint16_t(sets_.size()); }
  uint16_t active() const { return active_count_.load(std::memory_order_acquire); }
  uint16_t min() const { return min_.load(std::memory_order_relaxed); }
  uint16_t max() const { return max_.load(std::memory_order_relaxed); }
  bool automatic() const { return auto_.load(std::memory_order_relaxed); }
  ParkMode park_mode() const { return opts_.park; }
  /// A snapshot of worker `w`. Any thread.
  WorkerInfo worker_info(uint16_t w) const;
  /// The last `n` decisions, oldest first. Any thread.
  std::vector<AllocDecision> decisions(size_t n) const;
  uint64_t decision_count() const;

 private:
  struct Worker;
  struct PollerArg {
    CoreAllocator* a;
    uint16_t w;
  };
  CoreAllocator(const AllocOptions& opts, std::vector<QueueSet*> sets);
  void policy(uint64_t now);
  void apply(uint16_t target, uint64_t now, const char* action, double signal_us,
             double utilisation, std::string reason);
  void assign(uint64_t mask);
  void park(Worker& w, uint16_t id);
  void wake(uint16_t id, uint64_t decision_seq);
  void kick(uint16_t id);
  bool owns_any(uint16_t id) const;
  void record_first_work(Worker& w, uint64_t now);
  // Sets `field` of the decision that woke `w` to the microseconds from it to `now`.
  void stamp(const Worker& w, double AllocDecision::*field, uint64_t now);

  AllocOptions opts_;
  std::vector<QueueSet*> sets_;
  std::vector<std::unique_ptr<Worker>> w_;
  // Per set: the worker polling it now (written only by that worker, when it hands the set
  // over) and the worker that should (written by worker 0's policy).
  std::unique_ptr<std::atomic<int16_t>[]> owner_;
  std::unique_ptr<std::atomic<int16_t>[]> target_;
  std::atomic<uint64_t> active_mask_{0};
  std::atomic<uint16_t> active_count_{0};
  std::atomic<uint16_t> min_{1};
  std::atomic<uint16_t> max_{1};
  std::atomic<bool> auto_{false};
  std::atomic<int32_t> requested_{-1};  // a set_active() not yet applied (-1: none)
  uint64_t start_tsc_ = 0;
  uint64_t next_check_ = 0;
  uint64_t last_decision_ = 0;
  uint64_t last_add_ = 0;
  uint64_t interval_cycles_ = 0;
  // Congestion state per set (worker 0 only).
  std::vector<uint64_t> enq_at_check_;
  std::vector<uint32_t> congested_for_;
  // Utilisation window (worker 0 only).
  uint64_t window_start_ = 0;
  std::vector<uint64_t> busy_at_window_;
  std::vector<uint64_t> fetch_wait_;  // cycles this window each worker had fetches in flight
  uint64_t last_check_ = 0;
  bool congested_in_window_ = false;
  mutable std::mutex log_mu_;
  std::vector<AllocDecision> log_;  // ring of the last kLogSize decisions
  uint64_t log_seq_ = 0;
  std::vector<std::unique_ptr<PollerArg>> args_;
};

}  // namespace fm
