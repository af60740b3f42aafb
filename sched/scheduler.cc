// Fiber pools, run queues and stealing. Queue discipline per core: resumed fibers first (they
// are the oldest requests), then new requests in arrival order (FCFS).
#include "sched/scheduler.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <rte_cycles.h>

#include "dataplane/check.h"
#include "dataplane/log.h"

namespace fm::sched {
namespace {
constexpr const char* kTag = "sched";
// New requests started per poll: bounds how long a burst keeps the core from its NIC queue.
constexpr uint32_t kNewPerPoll = 8;
thread_local Fiber* tls_fiber = nullptr;
thread_local CoreScheduler* tls_sched = nullptr;

unsigned pow2_at_least(uint64_t v) {
  unsigned p = 2;
  while (p < v) p <<= 1;
  return p;
}

void fiber_entry(void* arg) {
  auto* f = static_cast<Fiber*>(arg);
  f->owner->parent_app().serve(*f, *f->request);
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

CoreScheduler::CoreScheduler(Scheduler& parent, CoreId id, const SchedOptions& opts, App& app)
    : parent_(parent),
      id_(id),
      opts_(opts),
      app_(app),
      free_fibers_("fibers" + std::to_string(to_int(id)), pow2_at_least(opts.max_in_flight + 1),
                   RingMode::kMpSc),
      free_requests_("reqs" + std::to_string(to_int(id)),
                     pow2_at_least(uint64_t(opts.queue_depth) + opts.max_in_flight + 1), RingMode::kMpSc),
      new_("new" + std::to_string(to_int(id)), pow2_at_least(uint64_t(opts.queue_depth) + 1),
           RingMode::kMpMc),
      // Any core's fibers may be woken here (a stolen fiber parks on its new core's queue pair).
      ready_("ready" + std::to_string(to_int(id)), pow2_at_least(uint64_t(opts.max_in_flight) * 64 + 1),
             RingMode::kMpMc) {}

CoreScheduler::~CoreScheduler() {
  if (stacks_) ::munmap(stacks_, stacks_bytes_);
}

Request* CoreScheduler::acquire() { return free_requests_.pop(); }

bool CoreScheduler::submit(Request* r) {
  r->arrival = rte_rdtsc();
  r->owner = this;
  if (!new_.push(r)) {
    counters_.dropped.add();
    FM_CHECK(free_requests_.push(r));
    return false;
  }
  counters_.submitted.add();
  return true;
}

void CoreScheduler::wake(Fiber* f) {
  counters_.wakes.add();
  FM_CHECK_MSG(ready_.push(f), "ready queue overflow");
}

void CoreScheduler::run(Fiber* f) {
  Fiber* const outer_fiber = tls_fiber;
  CoreScheduler* const outer_sched = tls_sched;
  tls_fiber = f;
  tls_sched = this;
  f->state = Fiber::State::kRunning;
  f->ctx.resume();
  tls_fiber = outer_fiber;
  tls_sched = outer_sched;
  if (f->ctx.finished()) {
    finish(f);
  } else if (f->state == Fiber::State::kRequeue) {
    // Queued only now that it is off this stack: a stealer may resume it at once.
    counters_.requeues.add();
    FM_CHECK(ready_.push(f));
  } else {
    counters_.parks.add();  // parked: its completion will wake() it
  }
  if (between_fn_) between_fn_(between_arg_);
}

void CoreScheduler::finish(Fiber* f) {
  CoreScheduler* owner = f->owner;
  Request* r = f->request;
  f->request = nullptr;
  f->state = Fiber::State::kIdle;
  counters_.finished.add();
  FM_CHECK(r->owner->free_requests_.push(r));
  owner->in_flight_.fetch_sub(1, std::memory_order_relaxed);
  FM_CHECK(owner->free_fibers_.push(f));
}

bool CoreScheduler::start_new(Request* r) {
  Fiber* f = free_fibers_.pop();
  if (f == nullptr) return false;
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  f->request = r;
  counters_.started.add();
  counters_.queue_delay_cycles.add(rte_rdtsc() - r->arrival);
  f->ctx.start(f->stack, f->stack_size, &fiber_entry, f);
  run(f);
  return true;
}

uint32_t CoreScheduler::poll() {
  uint32_t ran = 0;
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
  for (uint32_t started = 0; started < kNewPerPoll && !free_fibers_.empty(); ++started) {
    Request* r = new_.pop();
    if (r == nullptr) break;
    if (!start_new(r)) {
      FM_CHECK(new_.push(r));  // raced: no fiber after all (cannot happen with one consumer)
      break;
    }
    ++ran;
  }
  if (ran == 0 && parent_.steal()) ran += steal();
  return ran;
}

uint32_t CoreScheduler::steal() {
  const uint16_t n = parent_.core_count();
  for (uint16_t k = 1; k < n; ++k) {
    CoreScheduler& victim = *parent_.cores_[(to_int(id_) + k) % n];
    if (Fiber* f = victim.ready_.pop()) {
      counters_.stolen_ready.add();
      run(f);
      return 1;
    }
    if (!free_fibers_.empty() && victim.new_.size() > 0) {
      if (Request* r = victim.new_.pop()) {
        counters_.stolen_new.add();
        if (!start_new(r)) FM_CHECK(victim.new_.push(r));
        return 1;
      }
    }
  }
  return 0;
}

Result<std::unique_ptr<Scheduler>> Scheduler::create(const SchedOptions& opts, uint16_t cores,
                                                     App& app) {
  if (opts.max_in_flight == 0) return error(Errc::kInvalidArgument, "sched.max_in_flight must be > 0");
  if (opts.stack_kb < 16) return error(Errc::kInvalidArgument, "sched.stack_kb must be >= 16");
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
      FM_CHECK(cs->free_fibers_.push(f.get()));
      cs->fibers_.push_back(std::move(f));
    }
    const uint64_t nreq = uint64_t(opts.queue_depth) + opts.max_in_flight;
    for (uint64_t i = 0; i < nreq; ++i) {
      auto r = std::make_unique<Request>();
      r->owner = cs.get();
      FM_CHECK(cs->free_requests_.push(r.get()));
      cs->requests_.push_back(std::move(r));
    }
    s->cores_.push_back(std::move(cs));
  }
  FM_LOG_INFO(kTag, "{} core scheduler(s): faults {}, {} fibers of {} KiB each, queue {}, stealing {}",
              cores, opts.faults == FaultMode::kAsync ? "async" : "sync", opts.max_in_flight,
              opts.stack_kb, opts.queue_depth, opts.steal ? "on" : "off");
  return s;
}

}  // namespace fm::sched
