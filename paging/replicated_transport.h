// Far memory over several memory nodes: pages spread across them so that their links add up,
// each page kept on `replicas` nodes. A write-back completes when every live replica has it; a
// fetch reads one replica, the one whose queue pair has fewer requests outstanding, and is
// re-issued to another replica when its node dies under it, so a node's death costs no request
// while another replica of each page lives. Implements the Transport seam, so the region does
// not know it talks to more than one node.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dataplane/counter.h"
#include "dataplane/ids.h"
#include "dataplane/result.h"
#include "paging/transport.h"

namespace fm::paging {

/// Where each replica of a page lives. Replica k of page p is on node (p + k) mod nodes, at slot
/// (p / nodes) * replicas + k of that node's lease: consecutive pages land on different nodes
/// (striping), and a node's lease holds ceil(pages / nodes) * replicas pages. Pure.
struct Placement {
  uint32_t nodes = 1;
  uint32_t replicas = 1;

  uint32_t node_of(uint64_t page, uint32_t k) const { return uint32_t((page + k) % nodes); }
  uint64_t offset_of(uint64_t page, uint32_t k) const {
    return ((page / nodes) * replicas + k) * kPageSize;
  }
  /// Bytes each node must lease for a region of `pages` pages.
  uint64_t lease_bytes(uint64_t pages) const {
    return (pages + nodes - 1) / nodes * replicas * uint64_t(kPageSize);
  }
  /// True when some page has every replica on a dead node: `dead[i]` for node i. With replicas
  /// on consecutive nodes that is a run of `replicas` dead nodes, cyclically.
  bool some_page_lost(const std::vector<bool>& dead) const;
};

/// Counters of the replicated transport, any core's view (single writer per queue pair).
struct ReplicationCounters {
  Counter reads_reissued;   // a fetch whose node died under it, sent to another replica
  Counter writes_degraded;  // a write-back that reached fewer replicas than configured
  Counter reads_lost;       // a fetch with no live replica left (the page is gone)
};

class ReplicatedTransport final : public Transport {
 public:
  /// `nodes[i]` connected with a lease of at least Placement::lease_bytes(pages) each; `names`
  /// for messages. 1 <= replicas <= nodes.size().
  static Result<std::unique_ptr<ReplicatedTransport>> create(
      std::vector<std::unique_ptr<Transport>> nodes, std::vector<std::string> names,
      uint32_t replicas, uint64_t region_bytes);

  const char* name() const override { return name_.c_str(); }
  uint64_t remote_size() const override { return region_bytes_; }
  Status register_local(void* base, uint64_t len) override;
  Result<std::unique_ptr<QueuePair>> create_queue_pair(CoreId core) override;
  /// While every page has a replica on a live node.
  bool alive() const override;

  const Placement& placement() const { return placement_; }
  uint32_t node_count() const { return uint32_t(nodes_.size()); }
  bool node_alive(uint32_t i) const { return nodes_[i]->alive(); }  // any thread
  const std::string& node_name(uint32_t i) const { return names_[i]; }
  Transport& node(uint32_t i) { return *nodes_[i]; }
  /// Summed over the queue pairs created so far. Any thread.
  uint64_t reads_reissued() const;
  uint64_t writes_degraded() const;
  uint64_t reads_lost() const;

 private:
  ReplicatedTransport() = default;

  std::vector<std::unique_ptr<Transport>> nodes_;
  std::vector<std::string> names_;
  Placement placement_;
  uint64_t region_bytes_ = 0;
  std::string name_;
  mutable std::mutex counters_mu_;  // create_queue_pair (control path) vs readers (stats)
  std::vector<std::unique_ptr<ReplicationCounters>> counters_;  // one per queue pair
};

}  // namespace fm::paging
