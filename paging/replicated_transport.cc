// Replicated, striped far memory over several memory nodes (see the header).
#include "paging/replicated_transport.h"

#include <algorithm>
#include <array>
#include <limits>

#include "dataplane/log.h"

namespace fm::paging {
namespace {

constexpr const char* kTag = "replicas";
constexpr uint32_t kMaxNodes = 64;  // a child's wr_id carries the node in its low 8 bits

/// One queue pair per node behind one QueuePair. Owner core only, like its children. Unlike a
/// single RC queue pair it completes out of post order (the region matches by wr_id).
class ReplicatedQueuePair final : public QueuePair {
 public:
  ReplicatedQueuePair(std::vector<Transport*> nodes, std::vector<std::unique_ptr<QueuePair>> qps,
                      Placement placement, uint64_t pages, uint32_t max_ops,
                      ReplicationCounters& counters)
      : nodes_(std::move(nodes)),
        qps_(std::move(qps)),
        placement_(placement),
        pages_(pages),
        ops_(max_ops),
        backlog_(qps_.size()),
        counters_(counters) {
    free_.reserve(max_ops);
    for (uint32_t i = max_ops; i-- > 0;) free_.push_back(i);
  }

  PostResult post(IoOp op, uint64_t remote_offset, void* local, uint32_t len,
                  uint64_t wr_id) override {
    const uint64_t page = remote_offset / kPageSize;
    const uint64_t in_page = remote_offset % kPageSize;
    if (free_.empty()) return PostResult::kFull;
    if (page >= pages_ || len > kPageSize - in_page) {  // what a single node answers
      ready_.push_back(Completion{wr_id, IoStatus::kRemoteError});
      return PostResult::kOk;
    }
    const uint32_t slot = free_.back();
    Op& o = ops_[slot];
    o = Op{};
    o.wr_id = wr_id;
    o.op = op;
    o.page = page;
    o.in_page = uint32_t(in_page);
    o.local = local;
    o.len = len;
    if (op == IoOp::kRead) {
      const PostResult r = issue_read(slot, o);
      if (r == PostResult::kFull) return PostResult::kFull;  // slot stays free
      free_.pop_back();
      if (r == PostResult::kDead) finish_lost(slot, o);
      return PostResult::kOk;
    }
    free_.pop_back();
    // Count the replicas first: a send that fails at once completes (and may finish) the op.
    uint32_t live[kMaxNodes];
    uint32_t nlive = 0;
    for (uint32_t k = 0; k < placement_.replicas; ++k) {
      if (nodes_[placement_.node_of(page, k)]->alive()) live[nlive++] = k;
    }
    if (nlive == 0) {
      finish(slot, o, IoStatus::kDisconnected);  // no replica left to hold it
      return PostResult::kOk;
    }
    o.pending = uint8_t(nlive);
    for (uint32_t i = 0; i < nlive; ++i) {
      const uint32_t k = live[i], n = placement_.node_of(page, k);
      send(n, Child{IoOp::kWrite, placement_.offset_of(page, k) + o.in_page, local, len,
                    tag(slot, n)});
    }
    return PostResult::kOk;
  }

  uint32_t poll(std::span<Completion> out) override {
    for (uint32_t n = 0; n < qps_.size(); ++n) drain_backlog(n);
    std::array<Completion, 32> c;
    for (uint32_t n = 0; n < qps_.size(); ++n) {
      uint32_t got;
      while ((got = qps_[n]->poll(c)) > 0) {
        for (uint32_t i = 0; i < got; ++i) on_child(c[i]);
        if (got < c.size()) break;
      }
    }
    uint32_t k = 0;
    while (k < out.size() && !ready_.empty()) {
      out[k++] = ready_.front();
      ready_.pop_front();
    }
    return k;
  }

  uint32_t outstanding() const override {
    return uint32_t(ops_.size() - free_.size() + ready_.size());
  }

 private:
  struct Op {
    uint64_t wr_id = 0;
    uint64_t page = 0;
    void* local = nullptr;
    uint32_t in_page = 0;
    uint32_t len = 0;
    IoOp op = IoOp::kRead;
    uint8_t pending = 0;               // child work requests not yet completed
    uint8_t written = 0;               // kWrite: replicas that have it
    uint64_t tried = 0;                // kRead: nodes already asked (bit per node)
    IoStatus failure = IoStatus::kOk;  // kWrite: the worst child status
  };
  struct Child {
    IoOp op;
    uint64_t offset;
    void* local;
    uint32_t len;
    uint64_t wr_id;
  };

  static uint64_t tag(uint32_t slot, uint32_t node) { return (uint64_t(slot) << 8) | node; }

  /// Sends to node n's queue pair, or queues behind its backlog when it is full (kept in order).
  void send(uint32_t n, const Child& c) {
    if (backlog_[n].empty()) {
      const PostResult r = qps_[n]->post(c.op, c.offset, c.local, c.len, c.wr_id);
      if (r == PostResult::kOk) return;
      if (r == PostResult::kDead) {
        ready_child_failure(c.wr_id);
        return;
      }
    }
    backlog_[n].push_back(c);
  }

  void drain_backlog(uint32_t n) {
    auto& q = backlog_[n];
    while (!q.empty()) {
      const Child& c = q.front();
      const PostResult r = qps_[n]->post(c.op, c.offset, c.local, c.len, c.wr_id);
      if (r == PostResult::kFull) return;
      const uint64_t wr = c.wr_id;
      q.pop_front();
      if (r == PostResult::kDead) ready_child_failure(wr);
    }
  }

  /// A child post that can never complete: handled as its kDisconnected completion.
  void ready_child_failure(uint64_t child_wr) {
    on_child(Completion{child_wr, IoStatus::kDisconnected});
  }

  /// The least-loaded live replica of `o` not tried yet (its node; `k_out` its replica index);
  /// kMaxNodes when none is left.
  uint32_t pick(const Op& o, uint32_t* k_out) const {
    uint32_t best = kMaxNodes;
    uint64_t best_load = std::numeric_limits<uint64_t>::max();
    for (uint32_t k = 0; k < placement_.replicas; ++k) {
      const uint32_t n = placement_.node_of(o.page, k);
      if (((o.tried >> n) & 1) || !nodes_[n]->alive()) continue;
      const uint64_t load = qps_[n]->outstanding() + backlog_[n].size();
      if (load < best_load) {
        best = n;
        *k_out = k;
        best_load = load;
      }
    }
    return best;
  }

  /// Posts the read to the least-loaded live replica not tried yet: kOk, kFull (that replica's
  /// queue is full: poll and post again), or kDead (no replica left).
  PostResult issue_read(uint32_t slot, Op& o) {
    for (;;) {
      uint32_t k = 0;
      const uint32_t n = pick(o, &k);
      if (n == kMaxNodes) return PostResult::kDead;
      if (!backlog_[n].empty()) return PostResult::kFull;
      const PostResult r = qps_[n]->post(IoOp::kRead, placement_.offset_of(o.page, k) + o.in_page,
                                         o.local, o.len, tag(slot, n));
      if (r == PostResult::kFull) return r;
      o.tried |= uint64_t(1) << n;
      if (r == PostResult::kOk) {
        o.pending = 1;
        return r;
      }
      // kDead: that node is gone; try the next replica.
    }
  }

  void on_child(const Completion& c) {
    const uint32_t slot = uint32_t(c.wr_id >> 8);
    Op& o = ops_[slot];
    if (o.op == IoOp::kRead) {
      if (c.status == IoStatus::kDisconnected) {
        // The replica's node died with this fetch outstanding: ask another one.
        o.pending = 0;
        const PostResult r = issue_read(slot, o);
        if (r == PostResult::kOk) {
          counters_.reads_reissued.add();
          return;
        }
        if (r == PostResult::kFull) {
          // No room right now: queue it behind that replica's backlog.
          uint32_t k = 0;
          const uint32_t n = pick(o, &k);
          o.tried |= uint64_t(1) << n;
          o.pending = 1;
          counters_.reads_reissued.add();
          backlog_[n].push_back(Child{IoOp::kRead, placement_.offset_of(o.page, k) + o.in_page,
                                      o.local, o.len, tag(slot, n)});
          return;
        }
        finish_lost(slot, o);
        return;
      }
      finish(slot, o, c.status);
      return;
    }
    // A write: done when every replica it went to answered.
    if (c.status == IoStatus::kOk) {
      ++o.written;
    } else if (c.status == IoStatus::kRemoteError || o.failure == IoStatus::kOk) {
      o.failure = c.status;
    }
    if (--o.pending > 0) return;
    if (o.written < placement_.replicas) counters_.writes_degraded.add();
    // A refused write (kRemoteError) fails the write-back even if another replica took it: the
    // region keeps the page dirty and the replicas cannot be left to disagree silently. Writes
    // lost only to dead nodes succeed while one replica has the data.
    IoStatus st = IoStatus::kOk;
    if (o.failure == IoStatus::kRemoteError)
      st = IoStatus::kRemoteError;
    else if (o.written == 0)
      st = IoStatus::kDisconnected;
    finish(slot, o, st);
  }

  void finish(uint32_t slot, Op& o, IoStatus st) {
    ready_.push_back(Completion{o.wr_id, st});
    free_.push_back(slot);
  }

  void finish_lost(uint32_t slot, Op& o) {
    counters_.reads_lost.add();
    finish(slot, o, IoStatus::kDisconnected);
  }

  std::vector<Transport*> nodes_;
  std::vector<std::unique_ptr<QueuePair>> qps_;
  Placement placement_;
  uint64_t pages_;
  std::vector<Op> ops_;
  std::vector<uint32_t> free_;
  std::vector<std::deque<Child>> backlog_;
  std::deque<Completion> ready_;
  ReplicationCounters& counters_;
};

}  // namespace

bool Placement::some_page_lost(const std::vector<bool>& dead) const {
  for (uint32_t s = 0; s < nodes; ++s) {
    uint32_t k = 0;
    while (k < replicas && dead[(s + k) % nodes]) ++k;
    if (k == replicas) return true;
  }
  return false;
}

Result<std::unique_ptr<ReplicatedTransport>> ReplicatedTransport::create(
    std::vector<std::unique_ptr<Transport>> nodes, std::vector<std::string> names,
    uint32_t replicas, uint64_t region_bytes) {
  if (nodes.empty() || nodes.size() > kMaxNodes) {
    return error(Errc::kInvalidArgument, "paging.memnodes: 1 to " + std::to_string(kMaxNodes) +
                                             " memory nodes, not " + std::to_string(nodes.size()));
  }
  if (replicas < 1 || replicas > nodes.size()) {
    return error(Errc::kInvalidArgument, "paging.replicas = " + std::to_string(replicas) +
                                             ": must be 1 to the number of "
                                             "memory nodes (" +
                                             std::to_string(nodes.size()) + ")");
  }
  std::unique_ptr<ReplicatedTransport> t(new ReplicatedTransport());
  t->placement_ = Placement{uint32_t(nodes.size()), replicas};
  t->region_bytes_ = (region_bytes + kPageSize - 1) / kPageSize * kPageSize;
  const uint64_t pages = t->region_bytes_ / kPageSize;
  const uint64_t need = t->placement_.lease_bytes(pages);
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i]->remote_size() < need) {
      return error(Errc::kInvalidArgument,
                   "memory node " + (i < names.size() ? names[i] : std::to_string(i)) + " leased " +
                       std::to_string(nodes[i]->remote_size()) + " bytes; " + std::to_string(need) +
                       " are needed for this region");
    }
  }
  names.resize(nodes.size());
  t->name_ = std::string(nodes[0]->name()) + " x" + std::to_string(nodes.size()) + " (" +
             std::to_string(replicas) + (replicas == 1 ? " replica)" : " replicas)");
  t->nodes_ = std::move(nodes);
  t->names_ = std::move(names);
  return t;
}

Status ReplicatedTransport::register_local(void* base, uint64_t len) {
  for (auto& n : nodes_) FM_RETURN_IF_ERROR(n->register_local(base, len));
  return Status::ok();
}

Result<std::unique_ptr<QueuePair>> ReplicatedTransport::create_queue_pair(CoreId core) {
  std::vector<std::unique_ptr<QueuePair>> qps;
  std::vector<Transport*> raw;
  uint64_t depth = 0;
  for (auto& n : nodes_) {
    auto q = n->create_queue_pair(core);
    if (!q) return q.status();
    qps.push_back(std::move(q.value()));
    raw.push_back(n.get());
    depth += 64;
  }
  std::lock_guard<std::mutex> g(counters_mu_);
  counters_.push_back(std::make_unique<ReplicationCounters>());
  // Room for every child's queue to be full, plus reads waiting in backlogs.
  const uint32_t max_ops = uint32_t(std::max<uint64_t>(depth, 256));
  return std::unique_ptr<QueuePair>(new ReplicatedQueuePair(std::move(raw), std::move(qps),
                                                            placement_, region_bytes_ / kPageSize,
                                                            max_ops, *counters_.back()));
}

bool ReplicatedTransport::alive() const {
  std::vector<bool> dead(nodes_.size());
  bool any = false;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    dead[i] = !nodes_[i]->alive();
    any |= dead[i];
  }
  return !any || !placement_.some_page_lost(dead);
}

uint64_t ReplicatedTransport::reads_reissued() const {
  std::lock_guard<std::mutex> g(counters_mu_);
  uint64_t s = 0;
  for (const auto& c : counters_) s += c->reads_reissued.read();
  return s;
}
uint64_t ReplicatedTransport::writes_degraded() const {
  std::lock_guard<std::mutex> g(counters_mu_);
  uint64_t s = 0;
  for (const auto& c : counters_) s += c->writes_degraded.read();
  return s;
}
uint64_t ReplicatedTransport::reads_lost() const {
  std::lock_guard<std::mutex> g(counters_mu_);
  uint64_t s = 0;
  for (const auto& c : counters_) s += c->reads_lost.read();
  return s;
}

}  // namespace fm::paging
