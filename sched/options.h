// Options of the scheduler (the [sched] config table).
#pragma once

#include <cstdint>

#include "dataplane/enum_names.h"

namespace fm::sched {

/// What a request does at a fetch boundary.
enum class FaultMode : uint8_t {
  kSync,   // busy-poll the completion queue; requests run to completion in FCFS order (DiLOS)
  kAsync,  // park the request's fiber and run others until the completion wakes it (the paper)
};

/// Where new requests wait for a fiber.
enum class Dispatch : uint8_t {
  kPerCore,  // each core serves what its own NIC queues receive (RSS-style), plus stealing
  kCentral,  // one queue for all; a dispatcher places each request on the least-loaded core
};

/// Who runs the central dispatcher.
enum class DispatcherRole : uint8_t {
  kWorker,     // core 0 dispatches between its own requests (no core is lost on small machines)
  kDedicated,  // a core of its own (sched.dispatcher_lcore) that only dispatches
};

/// How a request is classified before it runs (fault-likely requests get their own queue).
enum class Predictor : uint8_t {
  kNone,       // one queue, FCFS
  kHistory,    // keys touched recently are likely resident (the design paper's proposal)
  kPageTable,  // the app looks the key up and asks the page table (exact for single-key GETs)
};

// The spellings config files and control commands use (one table each: dataplane/enum_names.h).
inline constexpr EnumName<FaultMode> kFaultModeNames[] = {{"sync", FaultMode::kSync},
                                                          {"async", FaultMode::kAsync}};
inline constexpr EnumName<Dispatch> kDispatchNames[] = {{"percore", Dispatch::kPerCore},
                                                        {"central", Dispatch::kCentral}};
inline constexpr EnumName<DispatcherRole> kDispatcherRoleNames[] = {
    {"worker", DispatcherRole::kWorker}, {"dedicated", DispatcherRole::kDedicated}};
inline constexpr EnumName<Predictor> kPredictorNames[] = {{"none", Predictor::kNone},
                                                          {"history", Predictor::kHistory},
                                                          {"pagetable", Predictor::kPageTable}};
static_assert(enum_table_ok(kFaultModeNames) && enum_table_ok(kDispatchNames) &&
              enum_table_ok(kDispatcherRoleNames) && enum_table_ok(kPredictorNames));

inline const char* fault_mode_name(FaultMode m) { return enum_name(kFaultModeNames, m).data(); }
inline const char* dispatch_name(Dispatch d) { return enum_name(kDispatchNames, d).data(); }
inline const char* dispatcher_role_name(DispatcherRole r) {
  return enum_name(kDispatcherRoleNames, r).data();
}
inline const char* predictor_name(Predictor p) { return enum_name(kPredictorNames, p).data(); }

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
  // Per-core queues, or one central queue with a fault-aware dispatcher.
  Dispatch dispatch = Dispatch::kPerCore;
  DispatcherRole dispatcher = DispatcherRole::kWorker;
  // The dispatcher's lcore when dispatcher = dedicated (must not be one of eal.lcores).
  int32_t dispatcher_lcore = -1;
  // Requests the dispatcher may place on one core ahead of its free fibers (JBSQ bound).
  uint32_t dispatch_bound = 2;
  // Fault predictor; fault-likely requests wait in a queue of their own.
  Predictor predictor = Predictor::kNone;
  // Prefetch at dispatch: a request whose item the page table shows is not resident gets its
  // READs posted as it arrives (into frames of the paging reserve) and waits apart until they
  // land, then queues ahead of every new request. Classifies with the page table whatever
  // `predictor` says.
  bool prefetch = false;
  // history predictor: how many recent key accesses count as "likely resident" (0: derived from
  // the local memory size by the app).
  uint32_t history_window = 0;
  // Cooperative preemption quantum in microseconds for long requests (0: off). The app calls
  // preempt_point() between steps; a request over its quantum goes behind new requests.
  uint32_t preempt_us = 0;
};

}  // namespace fm::sched
