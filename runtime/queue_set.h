// One core's queue set: a NIC queue's stack, its paging core's completions and its scheduler's
// run queues, polled together by whichever worker owns the set (Shenango-style).
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "dataplane/core_alloc.h"
#include "net/stack.h"
#include "paging/region.h"
#include "runtime/app.h"
#include "runtime/stats.h"
#include "sched/predictor.h"
#include "sched/fault_wait.h"
#include "sched/scheduler.h"

namespace fm::rt {

/// Seconds since the epoch, refreshed from the TSC at most every 10 ms (no syscall per request).
class CoarseClock {
 public:
  CoarseClock();
  int64_t now();

 private:
  uint64_t refresh_;
  uint64_t last_tsc_ = 0;
  int64_t now_;
};

/// The scheduler's app: runs the UdpApp on a request's datagram in a fiber and counts how the
/// fault prediction fared on the core that finished it.
class FiberApp final : public sched::App {
 public:
  explicit FiberApp(UdpApp& app) : app_(app) {}
  void serve(sched::Fiber& fiber, sched::Request& request) override;

 private:
  UdpApp& app_;
};

/// Wires `sched` to `paging` as a far-memory core is wired: the FaultWait hooks (installed in
/// both fault modes: they read the mode, which may change while serving) and a poll of the
/// completion queue between fibers while write-backs or prefetches are in flight — theirs free
/// background slots and reserve frames that a burst of new requests (and the next RX burst's
/// prefetches) need; a fiber a completion wakes runs at the next scheduler poll either way, so
/// with nothing in the background the loop pass's own poll does. Keep the result alive while
/// the core serves. Control path.
std::unique_ptr<sched::FaultWait> attach_paging(paging::PagingCore& paging,
                                                sched::CoreScheduler& sched);

/// NIC datagrams become scheduler requests; one pass polls NIC, completions and fibers.
class ServerQueueSet final : public net::UdpHandler, public QueueSet {
 public:
  /// `paging` is null in local mode. Control path.
  ServerQueueSet(paging::PagingCore* paging, sched::CoreScheduler* sched, UdpApp& app);

  /// The stack is created after this set (it needs the set as its handler). Control path.
  void set_stack(net::Stack* s);

  void on_udp(net::Stack&, const net::UdpPeer& from, std::span<const uint8_t> payload) override;
  void on_udp_ahead(std::span<const uint8_t> payload) override { app_.prefetch(payload); }
  void on_burst_classified() override { app_.prefetch_burst(); }
  void on_burst_served() override { app_.burst_served(); }
  uint32_t poll() override;
  QueueProbe probe() const override;
  void set_accepting(bool on) override;

  /// This set's parts for the counter registry (the loop is filled in by the server).
  CoreParts parts() const;

 private:
  // Prefetch at dispatch: posts the READs of `ranges` and keeps `r` apart while any page of
  // them is in flight. False when nothing is in flight or no room is left (queue it as usual).
  bool hold(sched::Request* r, const FarRanges& ranges);
  bool fetching(const FarRanges& ranges) const;
  // Queues the held requests whose pages have landed ahead of every new request, in arrival
  // order (submit_landed).
  void release_held();

  struct Context {
    net::Stack* stack = nullptr;
    paging::PagingCore* paging = nullptr;
    sched::CoreScheduler* sched = nullptr;
    CoarseClock* clock = nullptr;
    sched::PredictorCounters* predictions = nullptr;
  };
  friend class FiberApp;
  static void send_reply(void* peer, std::span<const uint8_t> datagram);
  static thread_local Context tls_;  // the set the calling worker polls now

  Context ctx_;
  UdpApp& app_;
  uint32_t history_local_ = 0;
  sched::PredictorCounters predictions_;
  CoarseClock clock_;
  SetCounters counters_;
  struct Held {
    sched::Request* request;
    FarRanges ranges;
  };
  static constexpr uint32_t kMaxHeld = 64;
  std::array<Held, kMaxHeld> held_;
  uint32_t held_count_ = 0;
};

}  // namespace fm::rt
