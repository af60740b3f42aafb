// The server's control-socket commands (docs/control.md): cores, scheduler switches, statistics.
#pragma once

#include <memory>
#include <vector>

#include "dataplane/control.h"
#include "dataplane/core_alloc.h"
#include "runtime/app.h"
#include "runtime/queue_set.h"
#include "runtime/stats.h"
#include "sched/scheduler.h"

namespace fm::rt {

/// What the handlers read and change. Everything outlives the control server.
struct ControlRefs {
  CoreAllocator& alloc;
  sched::Scheduler& sched;
  const ServerParts& parts;
  const std::vector<std::unique_ptr<ServerQueueSet>>& sets;
  const UdpApp& app;
};

/// Adds status, cores.set, auto.set, stats, sched.get, sched.set and decisions. Control path.
void add_control_commands(ControlServer& server, const ControlRefs& refs);

}  // namespace fm::rt
