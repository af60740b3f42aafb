// Fiber pools, run queues, stealing, central dispatch and preemption. Queue discipline per core:
// resumed fibers first (they are the oldest requests), then new requests in arrival order (FCFS)
// with fault-free ones ahead of fault-likely ones, then fibers preempted at their quantum.
#include "sched/scheduler.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <rte_cycles.h>
#include <sanitizer/asan_interface.h>

#include "dataplane/check.h"
#include "dataplane/log.h"
#include "dataplane/tsc.h"

namespace fm::sched {
namespace {
constexpr const char* kTag = "sched";
// New requests started per poll: bounds how long a burst keeps the core from its NIC queue.
constexpr uint32_t kNewPerPoll = 8;
// Fault-free requests started while a fault-likely one waits before that one gets its turn:
// bounds how long the predictor's separate queue can starve.
constexpr uint32_t kMaxLikelyFaultSkips = 16;
// Requests the central dispatcher places per call.
constexpr uint32_t kDispatchBatch = 32;
// Request buffers a core keeps as spares (what it frees beyond them goes to its ring). Its fibers
// need no such bound: there are only max_in_flight of them.
constexpr size_t kSpareRequests = 64;
thread_local Fiber* tls_fiber = nullptr;
thread_local CoreScheduler* tls_sched = nullptr;

unsigned pow2_at_least(uint64_t v) {
  unsigned p = 2;
  while (p < v) p <<= 1;
  return p;
}

void fiber_entry(void* arg) {
  auto* f = static_cast<Fiber*>(arg);
  for (;;) {  // never returns: ~Context unwinds it, suspended in yield(), at shutdown
    f->owner->parent_app().serve(*f, *f->request);
    f->state = Fiber::State::kServed;
    f->ctx.yield();  // resumed by start_new() with the next request, maybe on another core
  }
}
}  // namespace

Fiber* current_fiber() { return tls_fiber; }
CoreScheduler* current_scheduler() { return tls_sched; }

void park() {
  Fiber* f = tls_fiber;
  FM_DCHECK(f != nullptr);
  f->state = Fiber::State::kParked;
  f->ctx.yield();
}

void yield() {
  Fiber* f = tls_fiber;
  FM_DCHECK(f != nullptr);
  f->state = Fiber::State::kRequeue;
  f->ctx.yield();
}

void preempt_point() {
  Fiber* f = tls_fiber;
  if (f == nullptr) return;
  const uint64_t quantum = tls_sched->parent().preempt_cycles();
  if (quantum == 0 || rte_rdtsc() - f->slice_start < quantum) return;
  f->state = Fiber::State::kPreempted;
  f->ctx.yield();
}


CoreScheduler::CoreScheduler(Scheduler& parent, CoreId id, const SchedOptions& opts, App& app)
    : parent_(parent),
      id_(id),
      opts_(opts),
      app_(app),
      free_fibers_("fibers" + std::to_string(to_int(id)), pow2_at_least(opts.max_in_flight + 1),
                   opts.max_in_flight),
      free_requests_("reqs" + std::to_string(to_int(id)),
                     pow2_at_least(uint64_t(opts.queue_depth) + opts.max_in_flight + 1),
                     kSpareRequests),
      new_("new" + std::to_string(to_int(id)), pow2_at_least(uint64_t(opts.queue_depth) + 1),
           RingMode::kMpMc),
      likely_fault_("lf" + std::to_string(to_int(id)), pow2_at_least(uint64_t(opts.queue_depth) + 1),
                    RingMode::kMpMc),
      landed_("landed" + std::to_string(to_int(id)), pow2_at_least(uint64_t(opts.queue_depth) + 1),
              RingMode::kMpMc),
      // Any core's fibers may be woken here (a stolen fiber parks on its new core's queue pair),
      // always by this set's poller: one producer (no CAS per push), stealers among consumers.
      ready_("ready" + std::to_string(to_int(id)), pow2_at_least(uint64_t(opts.max_in_flight) * 64 + 1),
             RingMode::kSpMc),
      preempted_("pre" + std::to_string(to_int(id)),
                 pow2_at_least(uint64_t(opts.max_in_flight) * 64 + 1), RingMode::kSpMc) {}

CoreScheduler::~CoreScheduler() {
  // Fibers first: each one started waits suspended (parked, or between requests) and unwinds
  // its stack (Boost.Context), which must still be mapped.
  fibers_.clear();
  if (stacks_) {
    // Boost's entry frames stay poisoned under ASan after a run jumps away; memory mapped here
    // later must not inherit them (a no-op without ASan).
    ASAN_UNPOISON_MEMORY_REGION(stacks_, stacks_bytes_);
    ::munmap(stacks_, stacks_bytes_);
  }
}

Request* CoreScheduler::acquire() { return free_requests_.take(); }

// Only the pool's own core may keep what it frees as a spare: the spares are not synchronised.
void CoreScheduler::free_request(Request* r) { r->owner->free_requests_.give(r, r->owner == this); }

void CoreScheduler::free_fiber(Fiber* f) { f->owner->free_fibers_.give(f, f->owner == this); }

bool CoreScheduler::submit(Request* r) {
  r->arrival = rte_rdtsc();
  r->owner = this;
  bool queued;
  if (parent_.opts_.dispatch == Dispatch::kCentral) {
    queued = (r->likely_fault ? parent_.central_likely_fault_ : parent_.central_).push(r);
  } else {
    queued = (r->likely_fault ? likely_fault_ : new_).push(r);
    if (queued) enqueued_.add();
  }
  if (!queued) {
    counters_.dropped.add();
    free_request(r);
    return false;
  }
  counters_.submitted.add();
  return true;
}

bool CoreScheduler::place(Request* r) {
  if (!(r->likely_fault ? likely_fault_ : new_).push(r)) return false;
  enqueued_.add();
  counters_.dispatched.add();
  return true;
}

void CoreScheduler::wake(Fiber* f) {
  counters_.wakes.add();
  if (f->parked_on != nullptr) {
    // A fiber parks on the core that ran it, whose queue pair it posted on: the same set's
    // poller wakes it, the one writer of parked_ (a load and a store, no locked instruction).
    FM_DCHECK(f->parked_on == this);
    parked_.store(parked_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    f->parked_on = nullptr;
  }
  FM_CHECK_MSG(ready_.push(f), "ready queue overflow");
}

void CoreScheduler::run(Fiber* f) {
  Fiber* const outer_fiber = tls_fiber;
  CoreScheduler* const outer_sched = tls_sched;
  tls_fiber = f;
  tls_sched = this;
  f->state = Fiber::State::kRunning;
  // Only preemption reads it, and a clock read costs ~25 cycles here (RDTSC): none without a
  // quantum (switched on later, a fiber's first check may find its slice long over: it yields).
  if (parent_.preempt_cycles() != 0) f->slice_start = rte_rdtsc();
  f->ctx.resume();
  tls_fiber = outer_fiber;
  tls_sched = outer_sched;
  if (f->state == Fiber::State::kServed) {
    finish(f);
  } else if (f->state == Fiber::State::kRequeue) {
    // Queued only now that it is off this stack: a stealer may resume it at once.
    counters_.requeues.add();
    FM_CHECK(ready_.push(f));
  } else if (f->state == Fiber::State::kPreempted) {
    counters_.preemptions.add();
    FM_CHECK(preempted_.push(f));
  } else {
    // Parked: the completion polled on this core's queue pair will wake() it here.
    counters_.parks.add();
    f->parked_on = this;
    parked_.store(parked_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  if (between_fn_) between_fn_(between_arg_);
}

void CoreScheduler::finish(Fiber* f) {
  CoreScheduler* owner = f->owner;
  Request* r = f->request;
  f->request = nullptr;
  f->state = Fiber::State::kIdle;
  counters_.finished.add();
  free_request(r);
  owner->in_flight_.fetch_sub(1, std::memory_order_relaxed);
  free_fiber(f);
}

// A request that cannot park needs no stack of its own: it runs here, between two polls, with
// one fiber slot set aside for its app state (no ring operation or atomic per request). It is
// not counted in in_flight_, which it never outlives a poll to be seen in.
void CoreScheduler::run_to_completion(Request* r) {
  counters_.started.add();
  counters_.queue_delay_cycles.add(rte_rdtsc() - r->arrival);
  Fiber* f = inline_slot_;
  f->request = r;
  f->waits = 0;
  app_.serve(*f, *r);
  f->request = nullptr;
  counters_.finished.add();
  free_request(r);
  if (between_fn_) between_fn_(between_arg_);
}

Fiber* CoreScheduler::idle_slot() {
  if (!parent_.runs_to_completion() || parent_.opts_.dispatch != Dispatch::kPerCore ||
      !new_.empty() || !likely_fault_.empty() || !landed_.empty()) {
    return nullptr;
  }
  if (inline_slot_ == nullptr) inline_slot_ = free_fibers_.take();
  return inline_slot_;
}

bool CoreScheduler::start_new(Request* r) {
  Fiber* f = free_fibers_.take();
  if (f == nullptr) return false;
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  f->request = r;
  f->waits = 0;
  counters_.started.add();
  counters_.queue_delay_cycles.add(rte_rdtsc() - r->arrival);
  if (f->ctx.finished()) f->ctx.start(f->stack, f->stack_size, &fiber_entry, f);  // its first
  run(f);
  return true;
}

bool CoreScheduler::submit_landed(Request* r) {
  if (parent_.opts_.dispatch == Dispatch::kCentral) return submit(r);
  r->owner = this;
  if (!landed_.push(r)) {
    counters_.dropped.add();
    free_request(r);
    return false;
  }
  enqueued_.add();
  counters_.submitted.add();
  return true;
}

Request* CoreScheduler::take_new() {
  // A dequeue from an empty ring costs several times an emptiness check, and most polls find
  // the rings empty: each pop below is asked for only when its ring looked non-empty.
  // Requests whose prefetched pages landed arrived before any new one: they go first.
  if (!landed_.empty()) {
    if (Request* r = landed_.pop()) return r;
  }
  const bool lf_waits = !likely_fault_.empty();
  // Fault-free first; a waiting fault-likely request gets its turn after kMaxLikelyFaultSkips.
  if (!lf_waits || likely_fault_skips_ < kMaxLikelyFaultSkips) {
    if (!new_.empty()) {
      if (Request* r = new_.pop()) {
        if (lf_waits) ++likely_fault_skips_;
        return r;
      }
    }
    if (!lf_waits) return nullptr;
  }
  Request* r = likely_fault_.pop();
  if (r == nullptr) r = new_.pop();  // a stealer took the fault-likely one meanwhile
  if (r == nullptr) return nullptr;
  likely_fault_skips_ = 0;
  if (r->likely_fault) counters_.started_likely_fault.add();
  return r;
}

uint32_t CoreScheduler::poll() {
  uint32_t ran = 0;
  if (to_int(id_) == 0 && parent_.worker_dispatches()) parent_.dispatch();
  // Resumed fibers first: their requests are older than any new one.
  const unsigned ready = ready_.size();
  for (unsigned i = 0; i < ready; ++i) {
    Fiber* f = ready_.pop();
    if (f == nullptr) break;
    run(f);
    ++ran;
  }
  // Then new requests, FCFS, while this core has a free fiber — a bounded batch, so the loop
  // gets back to the NIC and the completion queue within a few requests.
  uint32_t started = 0;
  if (parent_.runs_to_completion()) {
    if (inline_slot_ == nullptr) inline_slot_ = free_fibers_.take();
    for (; started < kNewPerPoll && inline_slot_ != nullptr; ++started) {
      Request* r = take_new();
      if (r == nullptr) break;
      run_to_completion(r);
      ++ran;
    }
  } else if (inline_slot_ != nullptr) {
    free_fiber(inline_slot_);  // preemption came on: every request needs a fiber
    inline_slot_ = nullptr;
  }
  for (; started < kNewPerPoll && !free_fibers_.empty(); ++started) {
    Request* r = take_new();
    if (r == nullptr) break;
    FM_CHECK(start_new(r));  // one consumer of free_fibers_: the check above holds
    ++ran;
  }
  // Preempted fibers go behind new requests: all of them once no new request waits, else one.
  const unsigned preempted = (started < kNewPerPoll) ? preempted_.size() : 1;
  for (unsigned i = 0; i < preempted; ++i) {
    Fiber* f = preempted_.pop();
    if (f == nullptr) break;
    run(f);
    ++ran;
  }
  if (ran == 0 && parent_.steal()) ran += steal();
  return ran;
}

uint32_t CoreScheduler::steal() {
  const uint16_t n = parent_.core_count();
  for (uint16_t k = 1; k < n; ++k) {
    CoreScheduler& victim = *parent_.cores_[(to_int(id_) + k) % n];
    Fiber* f = victim.ready_.pop();
    if (f == nullptr) f = victim.preempted_.pop();
    if (f != nullptr) {
      counters_.stolen_ready.add();
      run(f);
      return 1;
    }
    if (!free_fibers_.empty() && victim.queued() > 0) {
      if (Request* r = victim.take_stolen()) {
        counters_.stolen_new.add();
        FM_CHECK(start_new(r));
        return 1;
      }
    }
  }
  return 0;
}

Request* CoreScheduler::take_stolen() {
  Request* r = landed_.pop();
  if (r == nullptr) r = new_.pop();
  if (r == nullptr) r = likely_fault_.pop();
  return r;
}

Scheduler::Scheduler(const SchedOptions& opts)
    : opts_(opts),
      steal_(opts.steal),
      faults_(opts.faults),
      predictor_(opts.predictor),
      prefetch_(opts.prefetch),
      central_("central", pow2_at_least(uint64_t(opts.queue_depth) + 1), RingMode::kMpSc),
      central_likely_fault_("central-lf", pow2_at_least(uint64_t(opts.queue_depth) + 1),
                            RingMode::kMpSc) {
  set_preempt_us(opts.preempt_us);
}

void Scheduler::set_preempt_us(uint32_t us) {
  preempt_us_.store(us, std::memory_order_relaxed);
  preempt_cycles_.store(us ? uint64_t(us) * tsc_hz_any() / 1000000 : 0, std::memory_order_relaxed);
}

CoreScheduler* Scheduler::least_loaded() {
  const uint16_t n = core_count();
  CoreScheduler* best = nullptr;
  uint64_t best_score = ~0ull;
  for (uint16_t k = 0; k < n; ++k) {
    CoreScheduler* c = cores_[(rotor_ + k) % n].get();
    if (!c->accepting()) continue;
    const uint32_t waiting = c->queued();
    if (waiting >= opts_.dispatch_bound) continue;
    // Fewest waiting requests first; among equals, fewest fetches in flight (a core whose
    // fibers are all parked on fetches has the fewest free fibers and the most wake-ups due).
    const uint64_t score = uint64_t(waiting) << 32 | c->parked();
    if (score < best_score) {
      best = c;
      best_score = score;
    }
  }
  rotor_ = uint16_t((rotor_ + 1) % n);
  return best;
}

uint32_t Scheduler::dispatch() {
  uint32_t placed = 0;
  while (placed < kDispatchBatch) {
    Request* r = pending_.load(std::memory_order_relaxed);
    if (r == nullptr) {
      r = central_.pop();
      if (r == nullptr) r = central_likely_fault_.pop();
      if (r == nullptr) break;
    }
    CoreScheduler* c = least_loaded();
    if (c == nullptr || !c->place(r)) {
      // Every core has its bound waiting: keep it, in order, for the next call.
      pending_.store(r, std::memory_order_relaxed);
      break;
    }
    pending_.store(nullptr, std::memory_order_relaxed);
    ++placed;
  }
  return placed;
}

Result<std::unique_ptr<Scheduler>> Scheduler::create(const SchedOptions& opts, uint16_t cores,
                                                     App& app) {
  if (opts.max_in_flight == 0) return error(Errc::kInvalidArgument, "sched.max_in_flight must be > 0");
  if (opts.stack_kb < 16) return error(Errc::kInvalidArgument, "sched.stack_kb must be >= 16");
  if (opts.dispatch_bound == 0) return error(Errc::kInvalidArgument, "sched.dispatch_bound must be > 0");
  std::unique_ptr<Scheduler> s(new Scheduler(opts));
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  const size_t stack = size_t(opts.stack_kb) * 1024;
  const size_t slot = stack + page;  // one guard page below each stack
  for (uint16_t c = 0; c < cores; ++c) {
    auto cs = std::make_unique<CoreScheduler>(*s, CoreId{c}, opts, app);
    const size_t bytes = slot * opts.max_in_flight;
    void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
      return error(Errc::kResourceExhausted, "cannot map " + std::to_string(bytes >> 20) +
                                                 " MiB of fiber stacks (sched.max_in_flight x "
                                                 "sched.stack_kb): " + std::strerror(errno));
    }
    cs->stacks_ = mem;
    cs->stacks_bytes_ = bytes;
    // Both pools start whole in their rings; the spares fill as the core frees what it took.
    for (uint32_t i = 0; i < opts.max_in_flight; ++i) {
      auto* base = static_cast<std::byte*>(mem) + i * slot;
      // Guard pages are set once here, never per request.
      if (::mprotect(base, page, PROT_NONE) != 0) {
        return error(Errc::kInternal, std::string("mprotect of a stack guard page: ") + std::strerror(errno));
      }
      auto f = std::make_unique<Fiber>();
      f->stack = base + page;
      f->stack_size = stack;
      f->owner = cs.get();
      cs->free_fibers_.give(f.get(), /*by_owner=*/false);
      cs->fibers_.push_back(std::move(f));
    }
    const uint64_t nreq = uint64_t(opts.queue_depth) + opts.max_in_flight;
    for (uint64_t i = 0; i < nreq; ++i) {
      auto r = std::make_unique<Request>();
      r->owner = cs.get();
      cs->free_requests_.give(r.get(), /*by_owner=*/false);
      cs->requests_.push_back(std::move(r));
    }
    s->cores_.push_back(std::move(cs));
  }
  FM_LOG_INFO(kTag,
              "{} core scheduler(s): faults {}, {} fibers of {} KiB each, queue {}, stealing {}, "
              "dispatch {}, predictor {}, preemption {}",
              cores, fault_mode_name(opts.faults), opts.max_in_flight, opts.stack_kb,
              opts.queue_depth, opts.steal ? "on" : "off", dispatch_name(opts.dispatch),
              predictor_name(opts.predictor),
              opts.preempt_us ? std::to_string(opts.preempt_us) + " us" : std::string("off"));
  return s;
}

}  // namespace fm::sched
