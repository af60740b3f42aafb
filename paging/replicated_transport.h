// Far memory over several memory nodes: pages spread across them so that their links add up,
// each page kept on `replicas` nodes. A write-back completes when every live replica has it; a
// fetch reads one replica, the one whose queue pair has fewer requests outstanding, and is
// re-issued to another replica when its node dies under it, so a node's death costs no request
// while another replica of each page lives. Implements the Transport seam, so the region does
// not know it talks to more than one node.
//
// Recovery (start_recovery): a thread redials dead nodes. A node that is back (a fresh, empty
// lease) takes writes at once and serves a page's reads once that page is copied back to it from
// another replica (per page: a page copied early serves, and is a source for other rebuilds, even
// while the rest of the node is still being copied). Several nodes rebuild at once, each at a
// bounded rate. A page with no copy left is marked lost, so that its fetches fail (never return
// zeros or stale bytes) until it is written again.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/counter.h"
#include "dataplane/enum_names.h"
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

  // A fetch asks both: no division with one node (kvserver's default), a 32-bit one below 2^32
  // pages (a 64-bit DIV costs up to ~45 cycles on these CPUs).
  uint32_t node_of(uint64_t page, uint32_t k) const {
    if (nodes == 1) return 0;
    const uint64_t v = page + k;
    return v <= UINT32_MAX ? uint32_t(v) % nodes : uint32_t(v % nodes);
  }
  uint64_t offset_of(uint64_t page, uint32_t k) const {
    const uint64_t row = nodes == 1         ? page
                         : page <= UINT32_MAX ? uint64_t(uint32_t(page) / nodes)
                                              : page / nodes;
    return (row * replicas + k) * kPageSize;
  }
  /// Bytes each node must lease for a region of `pages` pages.
  uint64_t lease_bytes(uint64_t pages) const {
    return (pages + nodes - 1) / nodes * replicas * uint64_t(kPageSize);
  }
  /// True when some page has every replica on a dead node: `dead[i]` for node i. With replicas
  /// on consecutive nodes that is a run of `replicas` dead nodes, cyclically.
  bool some_page_lost(const std::vector<bool>& dead) const;
};

/// A memory node's state as the compute side sees it.
enum class NodeState : uint8_t {
  kLive,        // connected and holding every page it should: reads and writes
  kDead,        // missed heartbeats, closed or failed a work request: neither
  kRebuilding,  // connected again: takes writes; serves a page once that page is copied back
};
inline constexpr EnumName<NodeState> kNodeStateNames[] = {
    {"live", NodeState::kLive}, {"dead", NodeState::kDead}, {"rebuilding", NodeState::kRebuilding}};
static_assert(enum_table_ok(kNodeStateNames));

/// How dead nodes come back (start_recovery).
struct RecoveryOptions {
  /// Connects node i again with a fresh lease of the same size. Called on the recovery thread.
  std::function<Result<std::unique_ptr<Transport>>(uint32_t node)> connect;
  uint32_t reconnect_ms = 500;    // between attempts to reach a dead node
  double repair_bytes_per_s = 0;  // re-replication traffic per node's link; 0: unbounded
  uint32_t repair_window = 64;    // pages being copied at once (256 KiB of buffer)
};

/// One node, for dpctl and statistics.
struct NodeInfo {
  std::string name;
  NodeState state = NodeState::kLive;
  uint64_t deaths = 0;          // times it was declared dead
  uint64_t rejoins = 0;         // times it was connected again
  uint64_t repair_pages = 0;    // pages the current (or last) rebuild copies
  uint64_t repaired = 0;        // of which settled so far (copied, or found lost)
  uint64_t lost = 0;            // of which had no live copy left
  uint64_t recopied = 0;        // copies done again because a write-back raced them
  uint64_t last_repair_ms = 0;  // how long the last finished rebuild took
  // Wall-clock times (Unix ms; 0: never) of the last death, rejoin and finished rebuild.
  uint64_t died_unix_ms = 0, rejoined_unix_ms = 0, rebuilt_unix_ms = 0;
};

/// Counters of the replicated transport, any core's view (single writer per queue pair).
struct ReplicationCounters {
  Counter reads_reissued;   // a fetch whose node died under it, sent to another replica
  Counter writes_degraded;  // a write-back that reached fewer replicas than configured
  Counter reads_lost;       // a fetch with no live replica left, or of a lost page
};

class ReplicatedQueuePair;

class ReplicatedTransport final : public Transport {
 public:
  /// `nodes[i]` connected with a lease of at least Placement::lease_bytes(pages) each; `names`
  /// for messages. 1 <= replicas <= nodes.size().
  static Result<std::unique_ptr<ReplicatedTransport>> create(
      std::vector<std::unique_ptr<Transport>> nodes, std::vector<std::string> names,
      uint32_t replicas, uint64_t region_bytes);
  ~ReplicatedTransport() override;

  const char* name() const override { return name_.c_str(); }
  uint64_t remote_size() const override { return region_bytes_; }
  Status register_local(void* base, uint64_t len) override;
  Result<std::unique_ptr<QueuePair>> create_queue_pair(CoreId core) override;
  /// While every page has a replica on a live (not rebuilding) node. Coarse: a page copied back
  /// to a rebuilding node is readable although this may say false.
  bool alive() const override;

  /// Starts the recovery thread (control path, once, after the queue pairs exist): it declares
  /// nodes dead, redials them every reconnect_ms and rebuilds them. Without it a dead node
  /// stays dead. `thread` false: no thread; the caller drives recovery_step() (tests).
  Status start_recovery(RecoveryOptions opts, bool thread = true);
  /// Who forgets what lived on lost pages (the app), called on the recovery thread when a
  /// rebuild found pages with no live copy, before the node serves reads. `is_lost(page)`; it
  /// returns true when nothing refers to those pages' old bytes any more: their fetches then
  /// succeed again (with what the new node holds). Without one, lost pages fail until written.
  /// Any thread; an empty function removes it (and waits for a call under way).
  using LostHook = std::function<bool(const std::function<bool(uint64_t page)>& is_lost)>;
  void set_lost_hook(LostHook hook);

  /// Who still holds a lost page's contents (the region, for a page resident in a frame): called
  /// once per lost page, before the lost hook; true when the holder will write the page back
  /// (it marked it dirty), so its data lives on: it is no longer lost and the app keeps what
  /// lives on it. Any thread; an empty function removes it.
  using LostKeeper = std::function<bool(uint64_t page)>;
  void set_lost_keeper(LostKeeper keeper);

  /// One pass of what the recovery thread does, for at most `budget_ms` of rebuilding.
  void recovery_step(uint32_t budget_ms);

  const Placement& placement() const { return placement_; }
  uint32_t node_count() const { return node_count_; }
  NodeState node_state(uint32_t i) const {
    return NodeState(nodes_[i].state.load(std::memory_order_acquire));
  }
  const std::string& node_name(uint32_t i) const { return nodes_[i].name; }
  /// The node's current connection (replaced when it rejoins). Control path.
  Transport& node(uint32_t i) { return *nodes_[i].t.load(std::memory_order_acquire); }
  std::vector<NodeInfo> nodes_info() const;  // any thread
  /// Summed over the queue pairs created so far. Any thread.
  uint64_t reads_reissued() const { return sum(&ReplicationCounters::reads_reissued); }
  uint64_t writes_degraded() const { return sum(&ReplicationCounters::writes_degraded); }
  uint64_t reads_lost() const { return sum(&ReplicationCounters::reads_lost); }
  /// Pages whose every replica was lost (until each is written again). Any thread.
  uint64_t pages_lost() const { return pages_lost_.load(std::memory_order_relaxed); }
  uint64_t pages_repaired() const { return pages_repaired_.load(std::memory_order_relaxed); }
  /// Lost pages whose contents the app forgot (set_lost_hook), so they serve again.
  uint64_t pages_forgotten() const { return pages_forgotten_.load(std::memory_order_relaxed); }
  /// Lost pages whose contents a keeper still held (set_lost_keeper): written back, not dropped.
  uint64_t pages_kept() const { return pages_kept_.load(std::memory_order_relaxed); }

 private:
  friend class ReplicatedQueuePair;
  struct Node {
    std::string name;
    std::atomic<Transport*> t{nullptr};
    std::atomic<uint8_t> state{uint8_t(NodeState::kLive)};
    // Recovery thread writes, any thread reads.
    std::atomic<uint64_t> deaths{0}, rejoins{0}, repair_pages{0}, repaired{0}, lost{0}, recopied{0},
        last_repair_ms{0}, died_unix_ms{0}, rejoined_unix_ms{0}, rebuilt_unix_ms{0};
    // Recovery thread only.
    uint64_t next_try_ns = 0;
    uint64_t repair_started_ns = 0;
    uint64_t repair_cursor = 0;          // next page to look at
    std::deque<uint64_t> repair_retry;   // pages to look at again (raced, source died, ...)
    uint32_t repair_in_flight = 0;       // copies under way (pipeline slots)
    double repair_tokens = 0;            // pages its link's repair rate allows now
  };
  struct Repair;  // the recovery thread's copy pipeline (replicated_transport.cc)

  ReplicatedTransport() = default;
  uint64_t sum(Counter ReplicationCounters::*which) const;  // over every queue pair's
  bool readable(uint32_t n) const;                          // live and connected
  bool writable(uint32_t n) const;                          // live or rebuilding, and connected
  /// Node n holds replica k of `page` as it is now: live, or rebuilding with the page copied back.
  bool has_copy(uint32_t n, uint32_t k, uint64_t page) const;
  // Write accounting per page, for the recovery thread to see writes race its copies: bits
  // 63..32 count write-backs posted, 31..0 write-backs completed.
  void write_posted(uint64_t page) { wseq_[page].fetch_add(uint64_t(1) << 32); }
  void write_done(uint64_t page, bool every_replica_full_page);
  bool lost(uint64_t page) const { return lost_[page].load(std::memory_order_acquire) != 0; }
  /// A write of the whole of `page` completed on node n's connection `conn` (a core, while
  /// polling): while n rebuilds, it holds that page's data (next_repair()).
  void landed_in_full(uint64_t page, uint32_t n, const Transport* conn);
  void unregister(ReplicatedQueuePair* qp);
  void forget_lost();  // the keeper, the lost hook, then the lost flags cleared
  void rejoin(uint32_t n, std::unique_ptr<Transport> t);
  // Copies pages to every rebuilding node until `until_ns` or until none is left rebuilding.
  void rebuild(uint64_t until_ns);
  void rebuilt(uint32_t n);  // node n holds every page it should: live again
  // The next page to copy to rebuilding node n (pages that need no copy are settled on the way),
  // or false when none is ready now.
  bool next_repair(uint32_t n, uint64_t* page, uint64_t* seq);
  bool copying(uint64_t page, uint32_t but) const;  // a copy of it to another node is under way
  void recovery_loop();

  std::unique_ptr<Node[]> nodes_;
  uint32_t node_count_ = 0;
  std::vector<std::unique_ptr<Transport>> owned_;  // every connection, current and retired
  Placement placement_;
  uint64_t region_bytes_ = 0;
  uint64_t pages_ = 0;
  std::string name_;
  void* local_base_ = nullptr;
  uint64_t local_len_ = 0;
  std::unique_ptr<std::atomic<uint64_t>[]> wseq_;
  std::unique_ptr<std::atomic<uint8_t>[]> lost_;
  // Bit k: replica k of the page was copied back to its node since that node rejoined (read only
  // while that node is rebuilding; cleared when it rejoins).
  std::unique_ptr<std::atomic<uint64_t>[]> copied_;
  // Bit k: a write of the whole page completed on replica k's node, on its current connection,
  // while that node was rebuilding (cleared when it rejoins). Where no other replica is left to
  // copy from, the rebuild takes such a page as settled instead of lost.
  std::unique_ptr<std::atomic<uint64_t>[]> rewritten_;
  std::atomic<uint64_t> pages_lost_{0}, pages_repaired_{0}, pages_forgotten_{0}, pages_kept_{0};
  std::atomic<uint32_t> generation_{0};  // bumped when a queue pair has a new child to adopt

  mutable std::mutex mu_;  // queue pairs and counters (control path vs stats vs recovery)
  std::vector<ReplicatedQueuePair*> qps_;
  std::vector<std::unique_ptr<ReplicationCounters>> counters_;  // one per queue pair, kept

  std::mutex hook_mu_;  // held while the keeper or the hook runs
  LostHook lost_hook_;
  LostKeeper lost_keeper_;
  RecoveryOptions recovery_;
  std::unique_ptr<Repair> repair_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace fm::paging
