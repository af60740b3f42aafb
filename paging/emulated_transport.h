// The emulated one-sided transport: the memory node's pool is a shared memfd mapping; a READ or
// WRITE moves bytes only when the model says the real one would complete (base latency +
// jitter + serialization on a shared link with queueing), discovered when the core polls.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "paging/channel.h"
#include "paging/handshake.h"
#include "paging/clock.h"
#include "paging/options.h"
#include "paging/transport.h"

namespace fm::paging {

/// The link every queue pair of one compute node shares: reserving it serialises transfers, so
/// overlapping fetches queue behind each other at link_gbps. Any core (one CAS per transfer).
class EmulatedLink {
 public:
  EmulatedLink(double gbps, const Clock& clock)
      : ticks_per_byte_(8.0 * double(clock.hz) / (gbps * 1e9)) {}

  /// Reserves the link for `bytes` from no earlier than `now`; returns when the last byte leaves.
  uint64_t reserve(uint64_t now, uint32_t bytes) {
    const uint64_t ser = uint64_t(double(bytes) * ticks_per_byte_ + 0.5);
    uint64_t free_at = free_at_.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t start = free_at > now ? free_at : now;
      if (free_at_.compare_exchange_weak(free_at, start + ser, std::memory_order_relaxed)) {
        return start + ser;
      }
    }
  }

 private:
  double ticks_per_byte_;
  alignas(64) std::atomic<uint64_t> free_at_{0};
};

/// One core's emulated queue pair. Owner core only.
class EmulatedQueuePair final : public QueuePair {
 public:
  EmulatedQueuePair(EmulatedLink& link, std::byte* pool, uint64_t pool_bytes,
                    const std::atomic<bool>& alive, const EmulatedOptions& opts,
                    const Clock& clock, uint64_t seed);

  PostResult post(IoOp op, uint64_t remote_offset, void* local, uint32_t len,
                  uint64_t wr_id) override;
  uint32_t poll(std::span<Completion> out) override;
  uint32_t outstanding() const override { return uint32_t(tail_ - head_); }

  /// When the oldest outstanding request completes (ticks); UINT64_MAX when none. For tests.
  uint64_t next_due() const { return head_ == tail_ ? UINT64_MAX : ring_[head_ & mask_].due; }

 private:
  struct Op {
    uint64_t due;
    uint64_t wr_id;
    uint64_t remote;
    void* local;
    uint32_t len;
    IoOp op;
    IoStatus status;
  };
  uint64_t jitter();

  EmulatedLink& link_;
  std::byte* pool_;
  uint64_t pool_bytes_;
  const std::atomic<bool>& alive_;
  Clock clock_;
  uint64_t latency_;
  uint64_t jitter_mean_;
  JitterKind jitter_kind_;
  uint32_t max_outstanding_;
  bool move_bytes_;
  uint64_t rng_;
  uint64_t last_due_ = 0;  // RC queue pairs complete in order
  std::vector<Op> ring_;
  uint64_t mask_;
  uint64_t head_ = 0, tail_ = 0;
};

/// A connection to a memory node over the emulated transport.
class EmulatedTransport final : public Transport {
 public:
  /// Connects to the memnode at `addr` (client_handshake: its uid, the key both ways), leases
  /// `region_bytes`, receives the lease's memfd, checks that it is sealed against shrinking and
  /// growing and of the leased size, and maps it. A control thread exchanges heartbeats and
  /// marks the transport dead when the memnode says goodbye, closes, or misses three.
  static Result<std::unique_ptr<EmulatedTransport>> connect(const EmulatedOptions& opts,
                                                            const ChannelAddress& addr,
                                                            uint16_t cores, uint64_t region_bytes,
                                                            const AuthKey& key, int timeout_ms,
                                                            const Clock& clock);

  /// An in-process pool of `pool_bytes` (no memnode): for tests and benchmarks.
  static Result<std::unique_ptr<EmulatedTransport>> in_process(const EmulatedOptions& opts,
                                                               uint64_t pool_bytes,
                                                               const Clock& clock);
  ~EmulatedTransport() override;

  const char* name() const override { return "emulated"; }
  uint64_t remote_size() const override { return pool_bytes_; }
  Status register_local(void*, uint64_t) override { return Status::ok(); }
  Result<std::unique_ptr<QueuePair>> create_queue_pair(CoreId core) override;
  bool alive() const override { return alive_.load(std::memory_order_relaxed); }

  /// Marks the memory node dead (what the control thread does on EOF). For tests.
  void kill() { alive_.store(false, std::memory_order_relaxed); }

 private:
  EmulatedTransport(const EmulatedOptions& opts, const Clock& clock)
      : opts_(opts), clock_(clock), link_(opts.link_gbps, clock) {}
  void watch();

  EmulatedOptions opts_;
  Clock clock_;
  EmulatedLink link_;
  std::byte* pool_ = nullptr;
  uint64_t pool_bytes_ = 0;
  std::atomic<bool> alive_{true};
  std::atomic<bool> stopping_{false};
  uint32_t heartbeat_ms_ = 0;  // the memnode's (HelloAck)
  Channel channel_;
  std::thread watcher_;
};

}  // namespace fm::paging
