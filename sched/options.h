// Options of the scheduler (the [sched] config table).
#pragma once

#include <cstdint>

namespace fm::sched {

/// What a request does at a fetch boundary.
enum class FaultMode : uint8_t {
  kSync,   // busy-poll the completion queue; requests run to completion in FCFS order (DiLOS)
  kAsync,  // park the request's fiber and run others until the completion wakes it (the paper)
};

struct SchedOptions {
  // sync is the FCFS/busy-wait baseline; async yields at each fetch boundary.
  FaultMode faults = FaultMode::kAsync;
  // Fibers (requests being served) per core: enough to cover fetch latency at line rate.
  uint32_t max_in_flight = 32;
  // New requests that may wait for a fiber, per core; more are dropped and counted.
  uint32_t queue_depth = 4096;
  // Stack of each fiber (the protocol code needs a few KiB; one guard page below it).
  uint32_t stack_kb = 64;
  // An idle core takes runnable requests (new and resumed) from busy ones.
  bool steal = true;
};

}  // namespace fm::sched
