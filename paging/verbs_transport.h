// The libibverbs RC transport to a memory node: one-sided RDMA READ/WRITE into its registered
// pool. Declared here without <infiniband/verbs.h>; built from verbs_transport.cc when Meson
// finds libibverbs, else from verbs_absent.cc, whose connect_verbs() says why it cannot.
#pragma once

#include <cstdint>
#include <memory>

#include "dataplane/result.h"
#include "paging/channel.h"
#include "paging/handshake.h"
#include "paging/options.h"
#include "paging/transport.h"

namespace fm::paging {

/// Opens the RDMA device named by `opts` (paging.verbs.*), connects the control channel to
/// `memnode`, says Hello(verbs, `cores`, `region_bytes`; signed with `key` when present) and
/// receives the lease's size, address and rkey.
/// Fails with a message naming the config keys when the machine has no RDMA device, when the
/// library was built without libibverbs, or when the memory node is unreachable or refuses.
/// Control path: blocks up to `timeout_ms` per step; starts one control thread that watches the
/// channel so Transport::alive() turns false when the memory node leaves.
Result<std::unique_ptr<Transport>> connect_verbs(const VerbsOptions& opts,
                                                 const ChannelAddress& memnode, uint16_t cores,
                                                 uint64_t region_bytes, const AuthKey& key,
                                                 int timeout_ms);

}  // namespace fm::paging
