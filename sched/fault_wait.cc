// The fetch-boundary hooks: park or busy-poll by the current fault mode.
#include "sched/fault_wait.h"

namespace fm::sched {

FaultWait::FaultWait(paging::PagingCore& paging, CoreScheduler& sched)
    : paging_(paging), sched_(sched) {
  paging.set_hooks({&FaultWait::wait_io, &FaultWait::wait_other, &FaultWait::on_complete, this});
}

FaultWait::~FaultWait() { paging_.set_hooks(paging::sync_wait_hooks(paging_)); }

void FaultWait::wait_io(void* ctx, paging::IoWait& io) {
  auto* self = static_cast<FaultWait*>(ctx);
  Fiber* f = current_fiber();
  if (f != nullptr) ++f->waits;
  if (f == nullptr || self->sched_.parent().faults() == FaultMode::kSync) {
    // The request's own fetch: nobody else has to run for it to complete.
    while (!io.done.load(std::memory_order_acquire)) self->paging_.poll();
    return;
  }
  io.waiter = f;
  if (!io.done.load(std::memory_order_acquire)) park();
}

void FaultWait::wait_other(void* ctx) {
  auto* self = static_cast<FaultWait*>(ctx);
  Fiber* f = current_fiber();
  if (f == nullptr) {
    self->paging_.poll();
    __builtin_ia32_pause();
    return;
  }
  ++f->waits;
  yield();
}

void FaultWait::on_complete(void* ctx, paging::IoWait& io) {
  auto* f = static_cast<Fiber*>(io.waiter);
  io.done.store(true, std::memory_order_release);
  // Polled by the owner of this set's completion queue, the queue the fiber posted on.
  static_cast<FaultWait*>(ctx)->sched_.wake(f);
}

}  // namespace fm::sched
