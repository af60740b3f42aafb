// The memory node's side of the verbs transport: the pool registered as an RDMA memory region
// and one responder RC queue pair per compute core. No <infiniband/verbs.h> here: built from
// verbs_pool.cc with libibverbs, else from verbs_pool_absent.cc, whose create() says why not.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "dataplane/result.h"
#include "paging/memnode_wire.h"
#include "paging/options.h"

namespace fm::memnode {

/// The config keys errors quote: the memnode's `memnode.transport` and its `[verbs]` table.
struct VerbsPoolKeys {
  std::string transport = "memnode.transport";
  std::string verbs = "verbs";  // "verbs.device", "verbs.ib_port", "verbs.gid_index"
};

/// The pool registered for remote READ/WRITE, and the queue pairs that serve it. Control path
/// only (the data path is the NIC's): thread-safe, blocking calls; may allocate.
class VerbsPool {
 public:
  /// Opens the device, registers [base, base+bytes) with LOCAL_WRITE only (leases get remote
  /// access through register_lease). Fails with a message naming the config keys when no RDMA device exists,
  /// when built without libibverbs, or when registration fails (memlock limit).
  /// `opts.max_outstanding` is unused here (the compute side sizes its send queues).
  static Result<std::unique_ptr<VerbsPool>> create(const paging::VerbsOptions& opts, void* base,
                                                   uint64_t bytes,
                                                   const VerbsPoolKeys& keys = VerbsPoolKeys());
  ~VerbsPool();
  VerbsPool(const VerbsPool&) = delete;
  VerbsPool& operator=(const VerbsPool&) = delete;

  /// The pool's address as compute nodes name it (a lease's HelloAck.pool_addr is this plus
  /// its offset).
  uint64_t pool_addr() const;
  /// The whole pool's key: local access only (no compute node gets it).
  uint32_t rkey() const;
  /// Registers [offset, offset + bytes) of the pool for remote READ/WRITE under `session` and
  /// returns the rkey (HelloAck.rkey): a compute node can reach its lease and nothing else.
  Result<uint32_t> register_lease(uint64_t offset, uint64_t bytes, uint64_t session);
  uint64_t pool_bytes() const;

  /// Creates a QP + CQ, moves it INIT -> RTR -> RTS against `compute_qp` (from QpConnect) and
  /// returns this side's QpInfo for the QpAccept. `session` tags the QP with the compute node's
  /// connection so release(session) can drop its QPs when that node leaves.
  Result<paging::wire::QpInfo> accept(const paging::wire::QpInfo& compute_qp, uint64_t session = 0);

  /// Destroys every queue pair accepted and lease registered under `session` (the compute node
  /// said Goodbye or its control channel closed).
  void release(uint64_t session);

  /// Queue pairs currently held.
  size_t queue_pairs() const;

 private:
  struct Impl;
  explicit VerbsPool(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fm::memnode
