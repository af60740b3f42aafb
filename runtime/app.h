// What an app plugs into the server runtime: a handler for UDP request datagrams, run in fibers.
#pragma once

#include <cstddef>
#include <array>
#include <cstdint>
#include <functional>
#include <span>

#include "dataplane/ids.h"
#include "dataplane/stat_sink.h"
#include "sched/options.h"

namespace fm::rt {

/// Sends one reply datagram (the app's frame header included) to the request's sender, through
/// the stack of the core the fiber runs on now. `ctx` is what serve() was given.
using ReplyFn = void (*)(void* ctx, std::span<const uint8_t> datagram);

/// A request/response app over UDP (kvserver: memcached's UDP text protocol).
/// A byte range of the far region a request will read (prefetch at dispatch).
struct FarRange {
  uint64_t offset = 0;
  uint32_t len = 0;
};

/// The far ranges a request will read that are not resident: one per key of a (multi-)get, the
/// first kMax of them (a request naming more keys fetches the rest when it runs).
struct FarRanges {
  static constexpr uint32_t kMax = 8;
  std::array<FarRange, kMax> range{};
  uint32_t n = 0;
};

class UdpApp {
 public:
  virtual ~UdpApp() = default;

  /// The state of fiber slot `slot` of core `core` (kvserver: a protocol session with its reply
  /// buffer), created once per slot before serving. Control path; may allocate.
  virtual void* fiber_state(CoreId core, size_t slot) = 0;

  /// Serves one request datagram inside a fiber, `now_unix` seconds. Replies go through
  /// `reply(ctx, datagram)`. May wait at fetch boundaries (in async mode the fiber parks and may
  /// resume on another core): it must not keep per-core state across a far-memory access.
  virtual void serve(void* state, std::span<const uint8_t> payload, int64_t now_unix, ReplyFn reply,
                     void* ctx) = 0;

  /// Before the request is queued, when sched.predictor is not none or sched.prefetch is on:
  /// whether serving it will likely fault (it then waits in the fault-likely queue). `history`
  /// is the receiving core's private count for the history predictor. With `fetch` set (the
  /// page-table predictor, for prefetch at dispatch) a request predicted to fault also names
  /// the far ranges it will read that are not resident (every key of a multi-get, up to
  /// FarRanges::kMax). Owner core; must not block or fault.
  virtual bool likely_fault(std::span<const uint8_t> /*payload*/, sched::Predictor /*mode*/,
                            int64_t /*now_unix*/, uint32_t& /*history*/, FarRanges* /*fetch*/) {
    return false;
  }

  /// A burst's requests, before any of them is served (net::UdpHandler's on_udp_ahead,
  /// on_burst_classified, on_burst_served), on the receiving core: prefetch() for each request
  /// datagram, prefetch_burst() once after the last, burst_served() once the burst's requests
  /// were handed over (their payloads are then freed). kvserver prefetches each key's lookup in
  /// stages (bucket, chain head, item) so the burst's cache misses overlap instead of stalling
  /// one request at a time. Reads and prefetches only: no reply, no fault, no wait.
  virtual void prefetch(std::span<const uint8_t> /*payload*/) {}
  virtual void prefetch_burst() {}
  virtual void burst_served() {}
  /// The app's own statistics (kvserver: memcached's "stats" lines before the runtime's), for
  /// the control socket's `stats`. Control thread; must not block the cores.
  virtual void write_stats(int64_t now_unix, StatSink& out) const = 0;

  /// Far memory lost every copy of some pages (memory nodes died and came back empty): forget
  /// whatever lives where `gone(offset, len)` is true (kvserver drops those items, counted as
  /// kv_lost_items). Returns whether the app forgot them; until then fetches of those pages
  /// fail. The far-memory recovery thread; may sleep, must not fault.
  virtual bool forget_far(const std::function<bool(uint64_t offset, uint32_t len)>& /*gone*/,
                          int64_t /*now_unix*/) {
    return false;
  }
};

}  // namespace fm::rt
