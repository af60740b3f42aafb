// The per-core entry point of the key-value app: one UDP payload in, reply datagrams out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "kvapp/protocol.h"
#include "kvapp/reply_buffer.h"
#include "kvapp/stats.h"
#include "kvapp/store.h"

namespace fm::kv {

/// Called for every reply datagram: frame header included, at most udp_max_payload bytes. The
/// bytes are valid only during the call (copy them into the packet being sent).
using EmitFn = void (*)(void* ctx, std::span<const uint8_t> datagram);

/// One dataplane core's memcached UDP endpoint. Owner core only (not thread-safe); the Store
/// behind it is shared by all cores. Construction allocates the reply buffer and registers the
/// core's counters with the store, so "stats" on any core sums all cores.
class Session {
 public:
  /// `options` must have passed validate(); `hook` may be null and must outlive the session, as
  /// must `store`. Control path (allocates).
  Session(Store& store, const ProtocolOptions& options, const StatsHook* hook);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// Handles one UDP payload (8-byte frame header + request text) received at `now_unix`
  /// seconds and calls `emit(ctx, datagram)` for each reply datagram, in sequence order. A
  /// payload shorter than the header is dropped and counted (no reply is possible); so is a
  /// datagram that is not the first of its message (sequence != 0) or whose text starts like a
  /// memcached reply (looks_like_reply): answering those could start a reply loop with another
  /// server. The first datagram of a multi-datagram request (total != 1) is answered with
  /// "SERVER_ERROR multi-packet request not supported" (memcached 1.6.18 drops those silently).
  /// Replies are bounded by kv.reply_bytes_max (reply_bound). All replies to one request datagram
  /// form one message: sequence 0..n-1 of total n, each datagram at most udp_max_payload bytes.
  /// (memcached 1.6 sends one message per command of a multi-command datagram, each numbered
  /// from 0; for the usual one command per datagram the two are the same.) Returns the
  /// datagrams emitted. Owner core; no allocation; does not block beyond the store's spinlocks.
  size_t handle_datagram(std::span<const uint8_t> payload, int64_t now_unix, EmitFn emit,
                         void* ctx);

  /// Reply text bytes the buffer can hold in all (its reserve included): no reply is longer.
  size_t reply_capacity() const { return reply_.total_capacity(); }

  /// What "stats" would answer, as named values (protocol.h). Any thread.
  void write_stats(int64_t now_unix, StatSink& out) const { protocol_.write_stats(now_unix, out); }

  /// This core's counters: datagrams, malformed requests, per-command counts.
  const SessionCounters& counters() const { return counters_; }

 private:
  Store& store_;
  SessionCounters counters_;
  ReplyBuffer reply_;
  Protocol protocol_;
  size_t reply_bound_;  // reply text bytes per request datagram
};

}  // namespace fm::kv
