// Per-core fiber schedulers: a fiber per request from a preallocated pool, run queues shared
// through lock-free rings (so idle cores can steal), park/wake at fetch boundaries, an optional
// central dispatcher, a queue of its own for fault-likely requests, and cooperative preemption.
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
#include "sched/spare_pool.h"

namespace fm::sched {

class CoreScheduler;
class Scheduler;

/// A request waiting for or being served by a fiber. The app fills `bytes` (e.g. a datagram and
/// its sender) and `likely_fault` before submit(). Owned by the core that acquired it; freed by
/// whichever core finishes it.
struct Request {
  static constexpr size_t kBytes = 1600;
  alignas(64) std::byte bytes[kBytes];
  uint32_t len = 0;
  bool likely_fault = false;  // the predictor's verdict: waits in the fault-likely queue
  uint64_t arrival = 0;       // TSC at submit: queueing delay for statistics
  CoreScheduler* owner = nullptr;
};

/// A fiber slot: a context, its stack, and the request it serves. Its context is made once and
/// serves one request after another: after each it yields back as kServed and waits, suspended,
/// for the next (making a Boost context per request cost ~120 instructions: its creation jump
/// and its exit path).
struct Fiber {
  enum class State : uint8_t { kIdle, kRunning, kParked, kRequeue, kPreempted, kServed };
  Context ctx;
  void* stack = nullptr;
  size_t stack_size = 0;
  Request* request = nullptr;
  CoreScheduler* owner = nullptr;  // whose slot this is (returns there when done)
  void* app_state = nullptr;       // per-fiber app object (kvserver: a protocol session)
  State state = State::kIdle;
  uint32_t waits = 0;         // fetch waits of the current request (the app counts them)
  uint64_t slice_start = 0;   // TSC when this fiber was last switched in
  CoreScheduler* parked_on = nullptr;  // whose fetches-in-flight count includes this park
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
  Counter preemptions;           // fibers that went behind new requests at a preempt_point()
  Counter started_likely_fault;  // requests started from the fault-likely queue
  Counter dispatched;            // requests the central dispatcher placed on this core
  Counter queue_delay_cycles;    // sum of (start - arrival)
};

/// One core's scheduler. poll() is its CoreLoop poller; acquire()/submit() feed it. "Owner"
/// below means whichever thread polls this core's queues now (with run-time core allocation an
/// active core adopts a parked one's queues; exactly one thread owns them at any time).
class CoreScheduler {
 public:
  CoreScheduler(Scheduler& parent, CoreId id, const SchedOptions& opts, App& app);
  ~CoreScheduler();

  /// A free request buffer to fill, or nullptr (the request is then dropped and counted).
  /// Owner only.
  Request* acquire();
  /// Queues a filled request: in this core's queue (fault-likely or not), or the central one.
  /// False when that queue is full: it is dropped and counted. Owner only.
  bool submit(Request* r);
  /// Queues a request that waited apart for its prefetched pages (it arrived before anything
  /// queued since): it starts before every new request. Its `arrival` is kept, so its queueing
  /// delay includes the wait. Per-core dispatch; with central dispatch it is submit(). Owner only.
  bool submit_landed(Request* r);
  /// Runs resumed fibers, then new requests while fibers are free (fault-free ones before
  /// fault-likely ones), then preempted ones; when idle and stealing is on, takes work from
  /// other cores. With the dispatcher role (core 0, central dispatch) it dispatches first.
  /// Returns the fibers run. Owner only.
  uint32_t poll();
  static uint32_t poll_hook(void* arg) { return static_cast<CoreScheduler*>(arg)->poll(); }

  /// A hook run after every fiber switch back to the scheduler (kvserver: poll the completion
  /// queue while background transfers are in flight), so those completions are seen between
  /// requests, not only once per loop. Control path.
  void set_between(uint32_t (*fn)(void*), void* arg) {
    between_fn_ = fn;
    between_arg_ = arg;
  }

  /// The shortest path, where no request can park (Scheduler::set_never_parks), preemption is
  /// off, dispatch is per core and nothing waits here: the caller may serve a new request at
  /// once, in the returned slot's app state, then call served_now(). nullptr: queue it as
  /// usual. FCFS holds: nothing older waits. Owner only.
  Fiber* idle_slot();
  /// Counts a request served through idle_slot() (submitted, started and finished).
  void served_now() {
    counters_.submitted.add();
    counters_.started.add();
    counters_.finished.add();
  }

  /// Makes a parked fiber runnable on THIS core (the one whose completion queue woke it).
  /// Exactly once per park. Owner only.
  void wake(Fiber* f);

  /// Whether the central dispatcher may place new requests here (false while parked). Any thread.
  void set_accepting(bool on) { accepting_.store(on, std::memory_order_relaxed); }
  bool accepting() const { return accepting_.load(std::memory_order_relaxed); }

  /// Fibers in flight on this core's slots (parked, ready or running anywhere).
  uint32_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  /// Fibers parked on a fetch posted from this core (its fetches in flight).
  uint32_t parked() const { return parked_.load(std::memory_order_relaxed); }
  /// Requests waiting for a fiber (landed, fault-free and fault-likely queues).
  uint32_t queued() const { return landed_.size() + new_.size() + likely_fault_.size(); }
  /// Runnable fibers waiting for this core (resumed and preempted).
  uint32_t runnable() const { return ready_.size() + preempted_.size(); }
  /// Requests ever queued on this core (for a Shenango-style congestion check: a queue is
  /// congested when what waited at the last check is still waiting; the requests taken off so
  /// far are enqueued() - queued()). Single writer: the owner (per-core dispatch) or the
  /// dispatcher (central).
  uint64_t enqueued() const { return enqueued_.read(); }
  CoreId id() const { return id_; }
  const SchedCounters& counters() const { return counters_; }
  /// The per-fiber app objects, to set up before serving (index < max_in_flight).
  Fiber& fiber_slot(size_t i) { return *fibers_[i]; }
  App& parent_app() { return app_; }
  Scheduler& parent() { return parent_; }
  size_t fiber_slots() const { return fibers_.size(); }

 private:
  friend class Scheduler;
  void run(Fiber* f);
  void run_to_completion(Request* r);
  // Return a fiber or request buffer this core is done with to the pool it came from (f->owner,
  // r->owner: this core's or another's). Owner only.
  void free_fiber(Fiber* f);
  void free_request(Request* r);
  void finish(Fiber* f);
  bool start_new(Request* r);
  Request* take_new();
  Request* take_stolen();
  bool place(Request* r);
  uint32_t steal();

  Scheduler& parent_;
  CoreId id_;
  SchedOptions opts_;
  App& app_;
  std::vector<std::unique_ptr<Fiber>> fibers_;
  std::vector<std::unique_ptr<Request>> requests_;
  // Any core returns what it finished with to these; only the owner takes from them.
  SparePool<Fiber> free_fibers_;
  SparePool<Request> free_requests_;
  Ring<Request> new_;           // MP (owner's NIC, dispatcher), MC (owner + stealers)
  Ring<Request> likely_fault_;  // the same, for requests the predictor expects to fault
  Ring<Request> landed_;        // the same, for requests whose prefetched pages landed: first
  Ring<Fiber> ready_;           // SP (this set's poller: wakes, yields), MC (owner + stealers)
  Ring<Fiber> preempted_;       // the same, for fibers over their quantum: after new requests
  std::atomic<uint32_t> in_flight_{0};
  std::atomic<uint32_t> parked_{0};  // one writer (this set's poller), read by any thread
  Counter enqueued_;
  std::atomic<bool> accepting_{true};
  uint32_t likely_fault_skips_ = 0;  // polls that passed the fault-likely queue over
  Fiber* inline_slot_ = nullptr;     // the slot whose app state run_to_completion() uses
  uint32_t (*between_fn_)(void*) = nullptr;
  void* between_arg_ = nullptr;
  SchedCounters counters_;
  void* stacks_ = nullptr;
  size_t stacks_bytes_ = 0;
};

/// Every core's scheduler, the central queue, and the switches that may change while serving.
class Scheduler {
 public:
  /// Creates `cores` schedulers with their fiber pools (stacks mapped once, guard pages set
  /// once). Control path.
  static Result<std::unique_ptr<Scheduler>> create(const SchedOptions& opts, uint16_t cores,
                                                   App& app);
  CoreScheduler& core(CoreId id) { return *cores_[to_int(id)]; }
  const CoreScheduler& core(CoreId id) const { return *cores_[to_int(id)]; }
  uint16_t core_count() const { return uint16_t(cores_.size()); }
  const SchedOptions& options() const { return opts_; }

  /// Central dispatch: places queued requests on accepting cores, fewest waiting requests
  /// first, then fewest fetches in flight (fault-aware, like Adios), at most
  /// options().dispatch_bound waiting per core; the rest stay in the central queue in order.
  /// Returns the requests placed. Only one thread at a time (the dispatcher).
  uint32_t dispatch();
  static uint32_t dispatch_hook(void* arg) { return static_cast<Scheduler*>(arg)->dispatch(); }
  /// Requests in the central queue (central dispatch).
  /// Any thread.
  uint32_t central_queued() const {
    return central_.size() + central_likely_fault_.size() +
           (pending_.load(std::memory_order_relaxed) != nullptr ? 1 : 0);
  }
  /// Whether core 0 runs dispatch() from its poll (central dispatch with the worker role).
  bool worker_dispatches() const {
    return opts_.dispatch == Dispatch::kCentral && opts_.dispatcher == DispatcherRole::kWorker;
  }

  // Run-time switches (safe while serving; any thread).
  void set_steal(bool on) { steal_.store(on, std::memory_order_relaxed); }
  bool steal() const { return steal_.load(std::memory_order_relaxed); }
  void set_faults(FaultMode m) { faults_.store(m, std::memory_order_relaxed); }
  FaultMode faults() const { return faults_.load(std::memory_order_relaxed); }
  void set_predictor(Predictor p) { predictor_.store(p, std::memory_order_relaxed); }
  Predictor predictor() const { return predictor_.load(std::memory_order_relaxed); }
  void set_prefetch(bool on) { prefetch_.store(on, std::memory_order_relaxed); }
  bool prefetch() const { return prefetch_.load(std::memory_order_relaxed); }
  void set_preempt_us(uint32_t us);
  uint32_t preempt_us() const { return preempt_us_.load(std::memory_order_relaxed); }
  /// The quantum in TSC cycles (0: off).
  uint64_t preempt_cycles() const { return preempt_cycles_.load(std::memory_order_relaxed); }

  /// Declares that no request can park or yield (no far memory: no fetch boundary). New
  /// requests then run to completion on the polling core's own stack, with no fiber switch,
  /// while preemption is off (a quantum needs a fiber to leave). Control path, before serving.
  void set_never_parks(bool on) { never_parks_ = on; }

 private:
  friend class CoreScheduler;
  explicit Scheduler(const SchedOptions& opts);
  CoreScheduler* least_loaded();
  /// Whether new requests run to completion on the polling core's stack, with no fiber: none
  /// can park (never_parks_) and no quantum needs a fiber to leave (preemption off). Asked per
  /// poll, since preemption may come on while serving. Any core.
  bool runs_to_completion() const { return never_parks_ && preempt_cycles() == 0; }
  SchedOptions opts_;
  std::atomic<bool> steal_;
  std::atomic<FaultMode> faults_;
  std::atomic<Predictor> predictor_;
  std::atomic<bool> prefetch_;
  std::atomic<uint32_t> preempt_us_{0};
  std::atomic<uint64_t> preempt_cycles_{0};
  bool never_parks_ = false;
  std::vector<std::unique_ptr<CoreScheduler>> cores_;
  Ring<Request> central_;               // MP (every core's NIC), SC (the dispatcher)
  Ring<Request> central_likely_fault_;  // fault-likely requests, placed after the others
  // Taken from a central queue, no core could take it yet. Written by the dispatcher only;
  // atomic because statistics and the control thread read it.
  std::atomic<Request*> pending_{nullptr};
  uint16_t rotor_ = 0;                  // where the next least-loaded scan starts (spreads ties)
};

/// The fiber running on this thread, or nullptr outside fibers. Any core.
Fiber* current_fiber();
/// The scheduler of this thread's core (set while it runs fibers), or nullptr.
CoreScheduler* current_scheduler();

/// Inside a fiber: suspend until someone calls wake() on it. Returns on whichever core resumed it.
void park();
/// Inside a fiber: go to the back of this core's ready queue and let others run.
void yield();
/// Inside a fiber, between steps of a long request (no lock held): when preemption is on and
/// this fiber has run longer than its quantum, it goes behind the new requests. Outside fibers,
/// or with preemption off, returns at once (one TLS load and a compare).
void preempt_point();

}  // namespace fm::sched
