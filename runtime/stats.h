// The runtime's counter registry: every statistic declared once, with one name, and read
// through one summing loop by every view — memcached's "stats" lines, dpctl's JSON and the exit
// summary (Caladan's runtime/stat.c does the same with one enum and one name table).
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string_view>
#include <vector>

#include "dataplane/core_alloc.h"
#include "dataplane/core_loop.h"
#include "dataplane/counter.h"
#include "dataplane/stat_sink.h"
#include "net/stack.h"
#include "paging/region.h"
#include "paging/transport.h"
#include "sched/predictor.h"
#include "sched/scheduler.h"

namespace fm::rt {

/// Counters of a queue set's own glue (runtime/queue_set.h): requests it could not hand on.
struct SetCounters {
  Counter no_request;  // no free request buffer: the datagram was dropped
  Counter oversize;    // a datagram larger than a request buffer (not with a 1500-byte MTU)
  Counter prefetch_held;      // requests that waited apart for READs posted at dispatch
  Counter prefetch_overflow;  // requests with READs in flight queued as fault-likely: no room
};

/// What one core's statistics are read from: its queue set's parts. Pointers stay valid for
/// the server's life; every read is a relaxed load of a single-writer counter.
struct CoreParts {
  const net::Stack* stack = nullptr;
  const sched::CoreScheduler* sched = nullptr;
  const sched::PredictorCounters* predictions = nullptr;
  const CoreLoop* loop = nullptr;
  const SetCounters* set = nullptr;
};

/// A per-core counter: its one name (memcached's "stats" prints the sum over cores under it,
/// dpctl shows it per core, the exit summary both) and how to read it from one core.
struct CoreStat {
  std::string_view name;
  uint64_t (*read)(const CoreParts&);
};

/// A far-memory statistic, read from the region's totals (summed over its paging cores).
struct PagingStat {
  std::string_view name;
  uint64_t (*read)(const paging::PagingTotals&);
};

/// The registry. Order is the order every view lists them in.
std::span<const CoreStat> core_stats();
std::span<const PagingStat> paging_stats();

/// Everything the views read; filled once by the server at start.
struct ServerParts {
  std::vector<CoreParts> cores;
  const sched::Scheduler* scheduler = nullptr;
  const CoreAllocator* alloc = nullptr;
  const paging::Region* region = nullptr;        // null in local mode
  const paging::Transport* transport = nullptr;  // null in local mode
};

/// The server-wide view: the scheduler's switches, every core statistic summed over cores, the
/// queue gauges, and far memory's state and totals. What memcached's "stats" prints after the
/// app's own lines, and dpctl's `stats` under "server". Any thread.
void write_server_stats(const ServerParts& s, StatSink& out);

/// One core's view: every core statistic of core `i`, and the queue gauges. Any thread.
void write_core_stats(const ServerParts& s, uint16_t i, StatSink& out);

/// The exit summary on `f`: per core, the statistics that are not zero; then the server-wide
/// ones. After the cores stopped.
void print_summary(const ServerParts& s, std::FILE* f);

}  // namespace fm::rt
