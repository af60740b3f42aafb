// Per-core fiber schedulers: a fiber per request from a preallocated pool, run queues shared
// through lock-free rings (so idle cores can steal), park/wake at fetch boundaries.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/counter.h"
#include "dataplane/ids.h"
#include "dataplane/result.h"
#include "dataplane/ring.h"
#include "sched/context.h"
#include "sched/options.h"

namespace fm::sched {

class CoreScheduler;
class Scheduler;

/// A request waiting for or being served by a fiber. The app fills `bytes` (e.g. a datagram and
/// its sender) before submit(). Owned by the core that acquired it; freed by whichever core
/// finishes it.
struct Request {
  static constexpr size_t kBytes = 1600;
  alignas(64) std::byte bytes[kBytes];
  uint32_t len = 0;
  uint64_t arrival = 0;  // TSC at submit: queueing delay for statistics
  CoreScheduler* owner = nullptr;
};

/// A fiber slot: a context, its stack, and the request it serves.
struct Fiber {
  enum class State : uint8_t { kIdle, kRunning, kParked, kRequeue };
  Context ctx;
  void* stack = nullptr;
  size_t stack_size = 0;
  Request* request = nullptr;
  CoreScheduler* owner = nullptr;  // whose slot this is (returns there when done)
  void* app_state = nullptr;       // per-fiber app object (kvserver: a protocol session)
  State state = State::kIdle;
};

/// The application: serves one request inside a fiber. May park at fetch boundaries.
class App {
 public:
  virtual ~App() = default;
  /// Runs on some core inside `fiber`; may move to another core across a park.
  virtual void serve(Fiber& fiber, Request& request) = 0;
};

/// Per-core counters (single writer).
struct SchedCounters {
  Counter submitted, dropped, started, finished, parks, requeues, wakes;
  Counter stolen_new, stolen_ready;
  Counter queue_delay_cycles;  // sum of (start - arrival)
};

/// One core's scheduler. poll() is its CoreLoop poller; acquire()/submit() feed it.
class CoreScheduler {
 public:
  CoreScheduler(Scheduler& parent, CoreId id, const SchedOptions& opts, App& app);
  ~CoreScheduler();

  /// A free request buffer to fill, or nullptr (the request is then dropped and counted).
  /// Owner core only.
  Request* acquire();
  /// Queues a filled request. False when the queue is full: it is dropped and counted.
  /// Owner core only.
  bool submit(Request* r);
  /// Runs resumed fibers, then new requests while fibers are free; when idle and stealing is
  /// on, takes work from other cores. Returns the fibers run. Owner core only.
  uint32_t poll();
  static uint32_t poll_hook(void* arg) { return static_cast<CoreScheduler*>(arg)->poll(); }

  /// A hook run after every fiber switch back to the scheduler (kvserver: poll the completion
  /// queue), so completions are seen between requests, not only once per loop. Control path.
  void set_between(uint32_t (*fn)(void*), void* arg) {
    between_fn_ = fn;
    between_arg_ = arg;
  }

  /// Makes a parked fiber runnable on THIS core (the one whose completion queue woke it).
  /// Exactly once per park. Owner core only.
  void wake(Fiber* f);

  /// Fibers in flight on this core's slots (parked, ready or running anywhere).
  uint32_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  /// Requests waiting for a fiber.
  uint32_t queued() const { return new_.size(); }
  CoreId id() const { return id_; }
  const SchedCounters& counters() const { return counters_; }
  /// The per-fiber app objects, to set up before serving (index < max_in_flight).
  Fiber& fiber_slot(size_t i) { return *fibers_[i]; }
  App& parent_app() { return app_; }
  size_t fiber_slots() const { return fibers_.size(); }

 private:
  friend class Scheduler;
  void run(Fiber* f);
  void finish(Fiber* f);
  bool start_new(Request* r);
  uint32_t steal();

  Scheduler& parent_;
  CoreId id_;
  SchedOptions opts_;
  App& app_;
  std::vector<std::unique_ptr<Fiber>> fibers_;
  std::vector<std::unique_ptr<Request>> requests_;
  Ring<Fiber> free_fibers_;     // MP (any core finishes), SC (owner starts)
  Ring<Request> free_requests_; // MP, SC
  Ring<Request> new_;           // SP (owner's NIC), MC (owner + stealers)
  Ring<Fiber> ready_;           // MP (wakes), MC (owner + stealers)
  std::atomic<uint32_t> in_flight_{0};
  uint32_t (*between_fn_)(void*) = nullptr;
  void* between_arg_ = nullptr;
  SchedCounters counters_;
  void* stacks_ = nullptr;
  size_t stacks_bytes_ = 0;
};

/// Every core's scheduler, for stealing and statistics.
class Scheduler {
 public:
  /// Creates `cores` schedulers with their fiber pools (stacks mapped once, guard pages set
  /// once). Control path.
  static Result<std::unique_ptr<Scheduler>> create(const SchedOptions& opts, uint16_t cores,
                                                   App& app);
  CoreScheduler& core(CoreId id) { return *cores_[to_int(id)]; }
  uint16_t core_count() const { return uint16_t(cores_.size()); }
  const SchedOptions& options() const { return opts_; }
  /// Runtime switch (safe while serving): stealing on/off.
  void set_steal(bool on) { steal_.store(on, std::memory_order_relaxed); }
  bool steal() const { return steal_.load(std::memory_order_relaxed); }

 private:
  friend class CoreScheduler;
  explicit Scheduler(const SchedOptions& opts) : opts_(opts), steal_(opts.steal) {}
  SchedOptions opts_;
  std::atomic<bool> steal_;
  std::vector<std::unique_ptr<CoreScheduler>> cores_;
};

/// The fiber running on this thread, or nullptr outside fibers. Any core.
Fiber* current_fiber();
/// The scheduler of this thread's core (set while it runs fibers), or nullptr.
CoreScheduler* current_scheduler();

/// Inside a fiber: suspend until someone calls wake() on it. Returns on whichever core resumed it.
void park();
/// Inside a fiber: go to the back of this core's ready queue and let others run.
void yield();

}  // namespace fm::sched
