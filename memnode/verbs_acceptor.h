// Builds the memnode's verbs side (or explains why it cannot: no device, no libibverbs).
#pragma once

#include <memory>

#include "dataplane/result.h"
#include "memnode/server.h"
#include "paging/options.h"

namespace fm::memnode {

/// Registers the pool with the RDMA device named in `opts` and returns the acceptor that
/// connects compute nodes' queue pairs to it. Fails with a clear message when no device exists.
Result<std::unique_ptr<VerbsAcceptor>> make_verbs_acceptor(const paging::VerbsOptions& opts,
                                                           std::byte* pool, uint64_t bytes);

}  // namespace fm::memnode
