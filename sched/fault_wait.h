// How a dataplane core waits at a fetch boundary: the sync/async switch between the paging
// layer and the scheduler (the hooks paging/region.h leaves to "the scheduler").
#pragma once

#include "paging/region.h"
#include "sched/scheduler.h"

namespace fm::sched {

/// The wait hooks of one queue set: its paging core and its scheduler. Installed on `paging`
/// until destroyed (no fiber may be waiting then). Per fetch, by the scheduler's mode when the
/// wait starts (switchable while serving): sync busy-polls the completion queue (the FCFS/
/// busy-wait baseline); async parks the fiber and this set's completion queue wakes it on this
/// set's scheduler. A wait for something another request holds (a fetch or eviction of the same
/// page, a frame, a bounce buffer) always yields inside a fiber, in either mode: the holder may
/// be a fiber parked on this very core, and spinning would keep it from ever running again.
/// Outside fibers (set-up) every wait busy-polls. Every wait counts in Fiber::waits.
class FaultWait {
 public:
  FaultWait(paging::PagingCore& paging, CoreScheduler& sched);
  /// Puts the synchronous hooks back.
  ~FaultWait();
  FaultWait(const FaultWait&) = delete;
  FaultWait& operator=(const FaultWait&) = delete;

 private:
  static void wait_io(void* ctx, paging::IoWait& io);
  static void wait_other(void* ctx);
  static void on_complete(void* ctx, paging::IoWait& io);

  paging::PagingCore& paging_;
  CoreScheduler& sched_;
};

}  // namespace fm::sched
