// The one-sided transport seam: queue pairs that post READ/WRITE to the memory node's pool and
// report completions. Implementations: emulated (memfd + a latency/bandwidth model) and verbs.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "dataplane/ids.h"
#include "dataplane/result.h"

namespace fm::paging {

/// What a work request does.
enum class IoOp : uint8_t {
  kRead,   // remote pool -> local buffer (RDMA READ)
  kWrite,  // local buffer -> remote pool (RDMA WRITE)
};

/// How a work request ended.
enum class IoStatus : uint8_t {
  kOk = 0,
  kRemoteError,   // the memory node refused it (bad offset, protection)
  kDisconnected,  // the memory node died or the queue pair broke: no data moved
};

/// One finished work request. `wr_id` is the caller's, returned untouched.
struct Completion {
  uint64_t wr_id = 0;
  IoStatus status = IoStatus::kOk;
};

/// Why a post did not go out.
enum class PostResult : uint8_t {
  kOk = 0,
  kFull,  // max_outstanding reached: poll completions, then post again
  kDead,  // the transport is down: the request will never complete
};

/// One core's queue pair to the memory node, with its own completion queue. Owner core only: no
/// locks; neither post() nor poll() ever blocks.
class QueuePair {
 public:
  virtual ~QueuePair() = default;

  /// Posts a one-sided `op` of `len` bytes between `local` and the pool at `remote_offset`.
  /// `local` must lie in memory registered with Transport::register_local(). The buffer must
  /// stay valid (and, for kWrite, unchanged) until the completion is polled.
  virtual PostResult post(IoOp op, uint64_t remote_offset, void* local, uint32_t len,
                          uint64_t wr_id) = 0;

  /// Moves up to out.size() completions into `out`; returns how many. Completions of one queue
  /// pair arrive in post order (as on an RC queue pair), except over several memory nodes
  /// (ReplicatedTransport): callers match completions by `wr_id`, never by position.
  virtual uint32_t poll(std::span<Completion> out) = 0;

  /// Work requests posted and not yet polled.
  virtual uint32_t outstanding() const = 0;
};

/// A connection to one memory node. Control path creates it and its queue pairs; the data path
/// only uses the queue pairs.
class Transport {
 public:
  virtual ~Transport() = default;

  /// "emulated" or "verbs".
  virtual const char* name() const = 0;

  /// Size of the memory node's pool in bytes: valid remote offsets are [0, remote_size()).
  virtual uint64_t remote_size() const = 0;

  /// Registers local memory that work requests will read into or write from (verbs: a memory
  /// region). Control path; call once for the frame pool before creating queue pairs.
  virtual Status register_local(void* base, uint64_t len) = 0;

  /// Creates the queue pair of dataplane core `core`. Control path.
  virtual Result<std::unique_ptr<QueuePair>> create_queue_pair(CoreId core) = 0;

  /// False once the memory node is known dead; every later post returns kDead and every
  /// outstanding request completes with kDisconnected. Any thread.
  virtual bool alive() const = 0;
};

}  // namespace fm::paging
