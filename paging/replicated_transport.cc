// Replicated, striped far memory over several memory nodes, and their recovery (see the header).
#include "paging/replicated_transport.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <limits>

#include <sys/prctl.h>

#include "dataplane/log.h"

namespace fm::paging {
namespace {

constexpr const char* kTag = "replicas";
constexpr uint32_t kMaxNodes = 64;   // a child's wr_id carries the node in its low 8 bits
constexpr CoreId kRepairCore{1000};  // the recovery thread's queue pairs (seed and logs only)

uint64_t unix_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count());
}

uint64_t now_ns() {
  return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}

}  // namespace

/// One queue pair per node behind one QueuePair. Owner core only, like its children, except the
/// mailboxes, through which the recovery thread hands over the queue pair of a node that came
/// back. Unlike a single RC queue pair it completes out of post order (the region matches by
/// wr_id).
class ReplicatedQueuePair final : public QueuePair {
 public:
  ReplicatedQueuePair(ReplicatedTransport& owner, CoreId core,
                      std::vector<std::unique_ptr<QueuePair>> qps, std::vector<Transport*> conns,
                      uint32_t max_ops, ReplicationCounters& counters)
      : owner_(owner),
        core_(core),
        qps_(std::move(qps)),
        conn_(std::move(conns)),
        mailbox_(new std::atomic<Delivery*>[qps_.size()]),
        placement_(owner.placement_),
        pages_(owner.pages_),
        ops_(max_ops),
        backlog_(qps_.size()),
        counters_(counters) {
    for (size_t n = 0; n < qps_.size(); ++n) mailbox_[n].store(nullptr);
    free_.reserve(max_ops);
    for (uint32_t i = max_ops; i-- > 0;) free_.push_back(i);
  }

  ~ReplicatedQueuePair() override {
    owner_.unregister(this);
    for (size_t n = 0; n < qps_.size(); ++n) delete mailbox_[n].exchange(nullptr);
  }

  CoreId core() const { return core_; }

  /// Recovery thread, under the owner's lock: node n's queue pair on its new connection `conn`.
  void deliver(uint32_t n, std::unique_ptr<QueuePair> qp, Transport* conn) {
    delete mailbox_[n].exchange(new Delivery{std::move(qp), conn}, std::memory_order_acq_rel);
  }

  PostResult post(IoOp op, uint64_t remote_offset, void* local, uint32_t len,
                  uint64_t wr_id) override {
    adopt();
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
      if (owner_.lost(page)) {  // every copy of it died: never hand out what a new node holds
        free_.pop_back();
        finish_lost(slot, o);
        return PostResult::kOk;
      }
      const PostResult r = issue_read(slot, o);
      if (r == PostResult::kFull) return PostResult::kFull;  // slot stays free
      free_.pop_back();
      if (r == PostResult::kDead) finish_lost(slot, o);
      return PostResult::kOk;
    }
    free_.pop_back();
    owner_.write_posted(page);
    // Count the replicas first: a send that fails at once completes (and may finish) the op.
    uint32_t live[kMaxNodes];
    uint32_t nlive = 0;
    for (uint32_t k = 0; k < placement_.replicas; ++k) {
      if (owner_.writable(placement_.node_of(page, k))) live[nlive++] = k;
    }
    // A node seen rebuilding here has its new queue pair in the mailbox already: take it
    // before sending, so that no write meant for the new connection goes to the dead one.
    adopt();
    if (nlive == 0) {
      owner_.write_done(page, false);
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
    adopt();
    if (backlogged_ != 0) {
      for (uint32_t n = 0; n < qps_.size(); ++n) drain_backlog(n);
    }
    // What finished earlier goes out first. Then each child is polled straight into what is
    // left of `out` and its completions are turned into the caller's in place; what does not
    // fit stays in the child's queue for the next poll.
    uint32_t k = 0;
    while (k < out.size() && !ready_.empty()) {
      out[k++] = ready_.front();
      ready_.pop_front();
    }
    for (uint32_t n = 0; n < qps_.size() && k < out.size(); ++n)
      k = poll_child_into(*qps_[n], out, k);
    if (!draining_.empty()) [[unlikely]] {
      // Replaced children: drained whole (their completions are failures), the overflow into
      // ready_.
      out_ = out;
      out_n_ = k;
      from_old_ = true;
      for (size_t i = 0; i < draining_.size();) {
        poll_child(*draining_[i], child_completions_);
        if (draining_[i]->outstanding() == 0) {
          draining_[i] = std::move(draining_.back());
          draining_.pop_back();
        } else {
          ++i;
        }
      }
      from_old_ = false;
      k = out_n_;
      out_ = {};
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
    uint8_t sent = 0;                  // kWrite: replicas it went to
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

  /// Polls child `q` into out[k...] and rewrites its completions there as the caller's: a read
  /// that succeeded becomes its op's completion in place (the common case: no copy, no queue);
  /// anything else goes through on_child(), which emits at most one completion for each child
  /// completion, so the write position never passes the read position. Returns the new k.
  uint32_t poll_child_into(QueuePair& q, std::span<Completion> out, uint32_t k) {
    const uint32_t got = q.poll(out.subspan(k));
    const uint32_t end = k + got;
    uint32_t w = k;
    for (uint32_t i = k; i < end; ++i) {
      const Completion c = out[i];
      const uint32_t slot = uint32_t(c.wr_id >> 8);
      Op& o = ops_[slot];
      if (o.op == IoOp::kRead && c.status == IoStatus::kOk) [[likely]] {
        out[w++] = Completion{o.wr_id, IoStatus::kOk};
        free_.push_back(slot);
        continue;
      }
      out_ = out.first(i + 1);  // finish() writes at out_n_ <= i: never past what was read
      out_n_ = w;
      on_child(c);
      w = out_n_;
      out_ = {};
    }
    return w;
  }

  void poll_child(QueuePair& q, std::array<Completion, 32>& c) {
    uint32_t got;
    while ((got = q.poll(c)) > 0) {
      for (uint32_t i = 0; i < got; ++i) on_child(c[i]);
      if (got < c.size()) break;
    }
  }

  /// Takes the queue pairs the recovery thread left in the mailboxes. The old ones keep being
  /// polled until their (failed) requests are all back; what waited in their backlogs was bound
  /// for a dead connection and fails like it.
  void adopt() {
    const uint32_t g = owner_.generation_.load(std::memory_order_acquire);
    if (g == seen_generation_) return;
    seen_generation_ = g;
    for (uint32_t n = 0; n < qps_.size(); ++n) {
      std::unique_ptr<Delivery> d(mailbox_[n].exchange(nullptr, std::memory_order_acq_rel));
      if (d == nullptr) continue;
      draining_.push_back(std::move(qps_[n]));
      qps_[n] = std::move(d->qp);
      conn_[n] = d->conn;
      std::deque<Child> stale;
      stale.swap(backlog_[n]);
      backlogged_ -= uint32_t(stale.size());
      for (const Child& c : stale) ready_child_failure(c.wr_id);
    }
  }

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
    ++backlogged_;
  }

  void drain_backlog(uint32_t n) {
    auto& q = backlog_[n];
    while (!q.empty()) {
      const Child& c = q.front();
      const PostResult r = qps_[n]->post(c.op, c.offset, c.local, c.len, c.wr_id);
      if (r == PostResult::kFull) return;
      const uint64_t wr = c.wr_id;
      q.pop_front();
      --backlogged_;
      if (r == PostResult::kDead) ready_child_failure(wr);
    }
  }

  /// A child post that can never complete: handled as its kDisconnected completion.
  void ready_child_failure(uint64_t child_wr) {
    on_child(Completion{child_wr, IoStatus::kDisconnected});
  }

  /// The least-loaded readable replica of `o` not tried yet (its node; `k_out` its replica
  /// index); kMaxNodes when none is left.
  uint32_t pick(const Op& o, uint32_t* k_out) const {
    if (placement_.replicas == 1) {  // one copy: nothing to choose between
      const uint32_t n = placement_.node_of(o.page, 0);
      if (((o.tried >> n) & 1) || !owner_.has_copy(n, 0, o.page)) return kMaxNodes;
      *k_out = 0;
      return n;
    }
    uint32_t best = kMaxNodes;
    uint64_t best_load = std::numeric_limits<uint64_t>::max();
    for (uint32_t k = 0; k < placement_.replicas; ++k) {
      const uint32_t n = placement_.node_of(o.page, k);
      if (((o.tried >> n) & 1) || !owner_.has_copy(n, k, o.page)) continue;
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
          ++backlogged_;
          return;
        }
        finish_lost(slot, o);
        return;
      }
      finish(slot, o, c.status);
      return;
    }
    // A write: done when every replica it went to answered.
    if (o.sent < 255) ++o.sent;
    if (c.status == IoStatus::kOk) {
      ++o.written;
      const uint32_t n = uint32_t(c.wr_id & 0xff);
      if (!from_old_ && o.in_page == 0 && o.len == kPageSize)
        owner_.landed_in_full(o.page, n, conn_[n]);
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
    owner_.write_done(
        o.page, st == IoStatus::kOk && o.written == o.sent && o.in_page == 0 && o.len == kPageSize);
    finish(slot, o, st);
  }

  void finish(uint32_t slot, Op& o, IoStatus st) {
    if (out_n_ < out_.size()) {
      out_[out_n_++] = Completion{o.wr_id, st};  // inside poll(), behind everything in ready_
    } else {
      ready_.push_back(Completion{o.wr_id, st});
    }
    free_.push_back(slot);
  }

  void finish_lost(uint32_t slot, Op& o) {
    counters_.reads_lost.add();
    finish(slot, o, IoStatus::kDisconnected);
  }

  ReplicatedTransport& owner_;
  CoreId core_;
  // A queue pair the recovery thread made on a node's new connection, waiting to be adopted.
  struct Delivery {
    std::unique_ptr<QueuePair> qp;
    Transport* conn;
  };

  std::vector<std::unique_ptr<QueuePair>> qps_;
  std::vector<Transport*> conn_;  // the connection each of qps_ is on
  std::unique_ptr<std::atomic<Delivery*>[]> mailbox_;
  bool from_old_ = false;  // on_child() is handling a replaced child's completion
  std::vector<std::unique_ptr<QueuePair>> draining_;  // replaced children not yet empty
  uint32_t seen_generation_ = 0;
  Placement placement_;
  uint64_t pages_;
  std::vector<Op> ops_;
  std::vector<uint32_t> free_;
  std::vector<std::deque<Child>> backlog_;
  uint32_t backlogged_ = 0;  // entries in all of backlog_: poll() skips them while 0
  std::deque<Completion> ready_;
  ReplicationCounters& counters_;
  // The children's completions, polled into a buffer kept here: a local array of Completions
  // (which have initializers) would be zeroed, 512 bytes, on every poll of every loop pass.
  std::array<Completion, 32> child_completions_;
  // poll()'s output while it polls the children (empty otherwise): finish() fills it in order.
  std::span<Completion> out_;
  uint32_t out_n_ = 0;
};

/// The recovery thread's copy pipeline: up to `window` pages in flight, to any rebuilding node,
/// each read from a replica that has it into its own buffer and written to the node rebuilt.
struct ReplicatedTransport::Repair {
  struct Slot {
    bool busy = false;
    uint32_t gen = 0;     // bumped when the slot's copy is abandoned: late completions are ignored
    uint32_t target = 0;  // the node it copies to
    uint64_t page = 0;
    uint64_t seq = 0;  // the page's write count when its copy began
  };
  /// wr_id of slot i's READ or WRITE: its generation, index and the op.
  uint64_t tag(uint32_t i, bool write) const {
    return (uint64_t(slots[i].gen) << 32) | (uint64_t(i) << 1) | uint64_t(write);
  }
  /// The slot a completion names, or null when it is stale (the copy was abandoned).
  Slot* slot_of(uint64_t wr_id) {
    const uint32_t i = uint32_t(wr_id & 0xffffffffu) >> 1;
    if (i >= slots.size()) return nullptr;
    Slot& s = slots[i];
    return s.busy && s.gen == uint32_t(wr_id >> 32) ? &s : nullptr;
  }
  std::byte* buf = nullptr;
  std::vector<Slot> slots;
  std::vector<std::unique_ptr<QueuePair>> qps;  // per node, on conn[n]
  std::vector<Transport*> conn;
  uint64_t refilled_ns = 0;
  uint32_t next_target = 0;  // round robin over rebuilding nodes
  bool registered_everywhere = true;

  ~Repair() { std::free(buf); }
};

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
  t->pages_ = t->region_bytes_ / kPageSize;
  const uint64_t need = t->placement_.lease_bytes(t->pages_);
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i]->remote_size() < need) {
      return error(Errc::kInvalidArgument,
                   "memory node " + (i < names.size() ? names[i] : std::to_string(i)) + " leased " +
                       std::to_string(nodes[i]->remote_size()) + " bytes; " + std::to_string(need) +
                       " are needed for this region");
    }
  }
  names.resize(nodes.size());
  t->name_ = nodes.size() == 1
                 ? std::string(nodes[0]->name())
                 : std::string(nodes[0]->name()) + " x" + std::to_string(nodes.size()) + " (" +
                       std::to_string(replicas) + (replicas == 1 ? " replica)" : " replicas)");
  t->node_count_ = uint32_t(nodes.size());
  t->nodes_.reset(new Node[nodes.size()]);
  for (size_t i = 0; i < nodes.size(); ++i) {
    t->nodes_[i].name = names[i].empty() ? "#" + std::to_string(i) : names[i];
    t->nodes_[i].t.store(nodes[i].get());
    t->owned_.push_back(std::move(nodes[i]));
  }
  t->wseq_.reset(new std::atomic<uint64_t>[t->pages_]);
  t->lost_.reset(new std::atomic<uint8_t>[t->pages_]);
  t->copied_.reset(new std::atomic<uint64_t>[t->pages_]);
  t->rewritten_.reset(new std::atomic<uint64_t>[t->pages_]);
  for (uint64_t p = 0; p < t->pages_; ++p) {
    t->wseq_[p].store(0, std::memory_order_relaxed);
    t->lost_[p].store(0, std::memory_order_relaxed);
    t->copied_[p].store(0, std::memory_order_relaxed);
    t->rewritten_[p].store(0, std::memory_order_relaxed);
  }
  return t;
}

ReplicatedTransport::~ReplicatedTransport() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  repair_.reset();  // its queue pairs before the connections they belong to
}

bool ReplicatedTransport::readable(uint32_t n) const {
  return NodeState(nodes_[n].state.load(std::memory_order_acquire)) == NodeState::kLive &&
         nodes_[n].t.load(std::memory_order_acquire)->alive();
}

bool ReplicatedTransport::has_copy(uint32_t n, uint32_t k, uint64_t page) const {
  const NodeState st = NodeState(nodes_[n].state.load(std::memory_order_acquire));
  if (st == NodeState::kDead || !nodes_[n].t.load(std::memory_order_acquire)->alive()) return false;
  // The bit is set after the copy's WRITE completed: reading it (acquire) orders the read after.
  return st == NodeState::kLive || ((copied_[page].load(std::memory_order_acquire) >> k) & 1) != 0;
}

bool ReplicatedTransport::writable(uint32_t n) const {
  return NodeState(nodes_[n].state.load(std::memory_order_acquire)) != NodeState::kDead &&
         nodes_[n].t.load(std::memory_order_acquire)->alive();
}

void ReplicatedTransport::write_done(uint64_t page, bool every_replica_full_page) {
  // A page written in full to every replica it has holds data again.
  if (every_replica_full_page && lost_[page].load(std::memory_order_relaxed) != 0 &&
      lost_[page].exchange(0, std::memory_order_acq_rel) != 0) {
    pages_lost_.fetch_sub(1, std::memory_order_relaxed);
  }
  wseq_[page].fetch_add(1);
}

void ReplicatedTransport::landed_in_full(uint64_t page, uint32_t n, const Transport* conn) {
  // Only a rebuild reads the mark, and a node rebuilds only after it came back.
  if (NodeState(nodes_[n].state.load(std::memory_order_acquire)) != NodeState::kRebuilding) return;
  const uint32_t k = uint32_t((n + placement_.nodes - page % placement_.nodes) % placement_.nodes);
  const uint64_t bit = uint64_t(1) << k;
  rewritten_[page].fetch_or(bit);
  // The write went to `conn`: if the node has been replaced since (rejoin() stores the new
  // connection, then clears the marks), this mark is about a lease that is gone.
  if (nodes_[n].t.load() != conn) rewritten_[page].fetch_and(~bit);
}

Status ReplicatedTransport::register_local(void* base, uint64_t len) {
  for (uint32_t n = 0; n < node_count_; ++n) FM_RETURN_IF_ERROR(node(n).register_local(base, len));
  local_base_ = base;
  local_len_ = len;
  return Status::ok();
}

Result<std::unique_ptr<QueuePair>> ReplicatedTransport::create_queue_pair(CoreId core) {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<std::unique_ptr<QueuePair>> qps;
  std::vector<Transport*> conns;
  uint64_t depth = 0;
  for (uint32_t n = 0; n < node_count_; ++n) {
    auto q = node(n).create_queue_pair(core);
    if (!q) return q.status();
    qps.push_back(std::move(q.value()));
    conns.push_back(&node(n));
    depth += 64;
  }
  counters_.push_back(std::make_unique<ReplicationCounters>());
  // Room for every child's queue to be full, plus reads waiting in backlogs.
  const uint32_t max_ops = uint32_t(std::max<uint64_t>(depth, 256));
  auto* qp = new ReplicatedQueuePair(*this, core, std::move(qps), std::move(conns), max_ops,
                                     *counters_.back());
  qps_.push_back(qp);
  return std::unique_ptr<QueuePair>(qp);
}

void ReplicatedTransport::unregister(ReplicatedQueuePair* qp) {
  std::lock_guard<std::mutex> g(mu_);
  qps_.erase(std::remove(qps_.begin(), qps_.end(), qp), qps_.end());
}

bool ReplicatedTransport::alive() const {
  std::vector<bool> dead(node_count_);
  bool any = false;
  for (uint32_t i = 0; i < node_count_; ++i) {
    dead[i] = !readable(i);
    any |= dead[i];
  }
  return !any || !placement_.some_page_lost(dead);
}

std::vector<NodeInfo> ReplicatedTransport::nodes_info() const {
  std::vector<NodeInfo> v;
  for (uint32_t i = 0; i < node_count_; ++i) {
    const Node& n = nodes_[i];
    NodeInfo info;
    info.name = n.name;
    info.state = node_state(i);
    if (info.state != NodeState::kDead && !n.t.load(std::memory_order_acquire)->alive())
      info.state = NodeState::kDead;  // not noticed by the recovery thread yet
    info.deaths = n.deaths.load();
    info.rejoins = n.rejoins.load();
    info.repair_pages = n.repair_pages.load();
    info.repaired = n.repaired.load();
    info.lost = n.lost.load();
    info.recopied = n.recopied.load();
    info.died_unix_ms = n.died_unix_ms.load();
    info.rejoined_unix_ms = n.rejoined_unix_ms.load();
    info.rebuilt_unix_ms = n.rebuilt_unix_ms.load();
    info.last_repair_ms = n.last_repair_ms.load();
    v.push_back(std::move(info));
  }
  return v;
}

uint64_t ReplicatedTransport::sum(Counter ReplicationCounters::*which) const {
  std::lock_guard<std::mutex> g(mu_);
  uint64_t s = 0;
  for (const auto& c : counters_) s += ((*c).*which).read();
  return s;
}

// ---- Recovery ----

Status ReplicatedTransport::start_recovery(RecoveryOptions opts, bool thread) {
  if (!opts.connect) return error(Errc::kInvalidArgument, "recovery needs a connect function");
  if (thread_.joinable()) return error(Errc::kInvalidArgument, "recovery is already running");
  recovery_ = std::move(opts);
  if (thread) thread_ = std::thread([this] { recovery_loop(); });
  return Status::ok();
}

void ReplicatedTransport::recovery_loop() {
  // The rebuild sleeps tens of microseconds between polls of its copies: with the default 50 us
  // timer slack each sleep took ~4x as long and the copies reached half the allowed rate.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  while (!stop_.load(std::memory_order_relaxed)) {
    recovery_step(5);
    bool rebuilding = false;
    for (uint32_t n = 0; n < node_count_; ++n)
      rebuilding |= node_state(n) == NodeState::kRebuilding;
    // Rebuilding paces itself inside each step (its rate, its window): between steps only a
    // breath, or a step that found nothing to start (copies waiting on write-backs) would spin.
    // Otherwise look again every 10 ms (deaths are noticed by the connections themselves; this
    // only acts on them).
    if (rebuilding)
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void ReplicatedTransport::recovery_step(uint32_t budget_ms) {
  const uint64_t now = now_ns();
  for (uint32_t n = 0; n < node_count_; ++n) {
    Node& node = nodes_[n];
    const NodeState st = node_state(n);
    if (st != NodeState::kDead && !node.t.load(std::memory_order_acquire)->alive()) {
      node.state.store(uint8_t(NodeState::kDead), std::memory_order_release);
      node.deaths.fetch_add(1);
      node.died_unix_ms.store(unix_ms());
      node.next_try_ns = now + uint64_t(recovery_.reconnect_ms) * 1000000;
      FM_LOG_WARN(kTag, "memory node {} is dead{}", node.name,
                  st == NodeState::kRebuilding ? " again, before its rebuild finished" : "");
      continue;
    }
    if (st == NodeState::kDead && recovery_.connect && now >= node.next_try_ns) {
      node.next_try_ns = now + uint64_t(recovery_.reconnect_ms) * 1000000;
      auto c = recovery_.connect(n);
      if (!c) {
        FM_LOG_DEBUG(kTag, "memory node {} not back yet: {}", node.name, c.status().message());
        continue;
      }
      rejoin(n, std::move(c.value()));
    }
  }
  rebuild(now_ns() + uint64_t(budget_ms) * 1000000);
}

void ReplicatedTransport::rebuilt(uint32_t n) {
  Node& node = nodes_[n];
  if (pages_lost() > 0) forget_lost();
  node.last_repair_ms.store((now_ns() - node.repair_started_ns) / 1000000);
  node.rebuilt_unix_ms.store(unix_ms());
  node.state.store(uint8_t(NodeState::kLive), std::memory_order_release);
  const uint64_t lost = node.lost.load();
  FM_LOG_INFO(kTag,
              "memory node {} rebuilt in {} ms: {} pages copied ({} again, raced by a "
              "write-back), {} lost (no live copy)",
              node.name, node.last_repair_ms.load(), node.repaired.load() - lost,
              node.recopied.load(), lost);
}

void ReplicatedTransport::set_lost_hook(LostHook hook) {
  std::lock_guard<std::mutex> g(hook_mu_);
  lost_hook_ = std::move(hook);
}

void ReplicatedTransport::set_lost_keeper(LostKeeper keeper) {
  std::lock_guard<std::mutex> g(hook_mu_);
  lost_keeper_ = std::move(keeper);
}

void ReplicatedTransport::forget_lost() {
  std::lock_guard<std::mutex> g(hook_mu_);
  if (lost_keeper_) {
    // A page still held here is written back by its holder: its far copy is rebuilt that way.
    uint64_t kept = 0;
    for (uint64_t p = 0; p < pages_; ++p) {
      if (lost_[p].load(std::memory_order_relaxed) == 0 || !lost_keeper_(p)) continue;
      if (lost_[p].exchange(0) != 0) {
        pages_lost_.fetch_sub(1, std::memory_order_relaxed);
        ++kept;
      }
    }
    if (kept > 0) {
      pages_kept_.fetch_add(kept, std::memory_order_relaxed);
      FM_LOG_INFO(kTag, "{} pages with no live copy were still in local frames: kept", kept);
    }
  }
  if (!lost_hook_ || pages_lost() == 0) return;
  const uint64_t before = pages_lost();
  if (!lost_hook_([this](uint64_t page) { return page < pages_ && lost(page); })) return;
  // Nothing refers to their old bytes now: they hold whatever the new node has (zeros).
  for (uint64_t p = 0; p < pages_; ++p) {
    if (lost_[p].load(std::memory_order_relaxed) != 0 && lost_[p].exchange(0) != 0)
      pages_lost_.fetch_sub(1, std::memory_order_relaxed);
  }
  pages_forgotten_.fetch_add(before, std::memory_order_relaxed);
  FM_LOG_WARN(kTag, "{} pages had no live copy left; what lived on them was dropped", before);
}

void ReplicatedTransport::rejoin(uint32_t n, std::unique_ptr<Transport> t) {
  Node& node = nodes_[n];
  const uint64_t need = placement_.lease_bytes(pages_);
  if (t->remote_size() < need) {
    FM_LOG_ERROR(kTag, "memory node {} is back with a lease of {} bytes; {} are needed", node.name,
                 t->remote_size(), need);
    return;
  }
  if (local_base_ != nullptr) {
    if (Status s = t->register_local(local_base_, local_len_); !s.is_ok()) {
      FM_LOG_ERROR(kTag, "memory node {} is back but: {}", node.name, s.message());
      return;
    }
  }
  // Progress shown while it rebuilds: its pages written so far (counted outside the lock that
  // statistics take too).
  // Its pages copied back in an earlier life are gone with that lease: none is readable until
  // copied again (cleared before the state says rebuilding; cores read the bits only then).
  uint64_t to_copy = 0;
  for (uint64_t p = 0; p < pages_; ++p) {
    const uint32_t k = uint32_t((n + placement_.nodes - p % placement_.nodes) % placement_.nodes);
    if (k >= placement_.replicas) continue;
    copied_[p].fetch_and(~(uint64_t(1) << k), std::memory_order_relaxed);
    if (wseq_[p].load(std::memory_order_relaxed) != 0) ++to_copy;
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    std::vector<std::unique_ptr<QueuePair>> fresh;
    for (ReplicatedQueuePair* qp : qps_) {
      auto q = t->create_queue_pair(qp->core());
      if (!q) {
        FM_LOG_ERROR(kTag, "memory node {} is back but its queue pairs: {}", node.name,
                     q.status().message());
        return;
      }
      fresh.push_back(std::move(q.value()));
    }
    for (size_t i = 0; i < qps_.size(); ++i) qps_[i]->deliver(n, std::move(fresh[i]), t.get());
    node.t.store(t.get());
    // Full writes that landed on the old lease say nothing about the new one. Cleared after
    // the connection is replaced: a core that marks a page after this saw the new connection
    // (landed_in_full() checks it after marking, and takes the mark back for an old one).
    for (uint64_t p = 0; p < pages_; ++p) {
      const uint32_t k = uint32_t((n + placement_.nodes - p % placement_.nodes) % placement_.nodes);
      if (k < placement_.replicas) rewritten_[p].fetch_and(~(uint64_t(1) << k));
    }
    owned_.push_back(std::move(t));  // the dead connection stays until the end: queue pairs
                                     // may still drain it
    // Mailboxes, then the generation, then the state: a core that sees the node rebuilding
    // sees the generation and takes its queue pair first (ReplicatedQueuePair::post).
    generation_.fetch_add(1, std::memory_order_acq_rel);
    node.repair_pages.store(to_copy);
    node.repaired.store(0);
    node.lost.store(0);
    node.recopied.store(0);
    node.repair_cursor = 0;
    node.repair_retry.clear();
    node.repair_tokens = 0;
    node.repair_started_ns = now_ns();
    if (repair_) {  // copies to its old lease are void
      for (Repair::Slot& sl : repair_->slots) {
        if (!sl.busy || sl.target != n) continue;
        sl.busy = false;
        ++sl.gen;
      }
    }
    node.repair_in_flight = 0;
    node.rejoins.fetch_add(1);
    node.rejoined_unix_ms.store(unix_ms());
    node.state.store(uint8_t(NodeState::kRebuilding), std::memory_order_release);
  }
  FM_LOG_INFO(kTag, "memory node {} is back: rebuilding {} pages", node.name,
              node.repair_pages.load());
}

bool ReplicatedTransport::copying(uint64_t page, uint32_t but) const {
  for (const Repair::Slot& sl : repair_->slots)
    if (sl.busy && sl.page == page && sl.target != but) return true;
  return false;
}

bool ReplicatedTransport::next_repair(uint32_t n, uint64_t* page, uint64_t* seq) {
  Node& node = nodes_[n];
  const uint32_t nodes = placement_.nodes;
  const uint32_t window = uint32_t(repair_->slots.size());
  // Pages put back for later; one pass over the retry queue at most, so that a queue of pages
  // whose write-backs are all still in flight is not spun on.
  size_t deferred = 0;
  auto defer = [&](uint64_t p) {
    node.repair_retry.push_back(p);
    return node.repair_retry.size() <= window || ++deferred >= node.repair_retry.size();
  };
  for (;;) {
    uint64_t p;
    if (!node.repair_retry.empty() &&
        (node.repair_cursor >= pages_ || node.repair_retry.size() > window)) {
      p = node.repair_retry.front();
      node.repair_retry.pop_front();
    } else if (node.repair_cursor < pages_) {
      p = node.repair_cursor++;
    } else {
      return false;
    }
    const uint32_t k = uint32_t((n + nodes - p % nodes) % nodes);
    if (k >= placement_.replicas) continue;  // not one of this node's pages
    const uint64_t s = wseq_[p].load();
    if (s == 0) {  // never written: the new lease's zeros are what every replica holds
      copied_[p].fetch_or(uint64_t(1) << k, std::memory_order_release);
      continue;
    }
    if ((s >> 32) != (s & 0xffffffffu)) {  // a write-back is in flight: it reaches this node too
      if (defer(p)) return false;
      continue;
    }
    bool source = false;
    for (uint32_t j = 0; j < placement_.replicas && !source; ++j) {
      const uint32_t m = placement_.node_of(p, j);
      source = m != n && repair_->qps[m] && has_copy(m, j, p);
    }
    if (!source && !lost(p) && copying(p, n)) {
      // Its only copy may be on its way to another rebuilding node: decide after that one.
      if (defer(p)) return false;
      continue;
    }
    if (!source && ((rewritten_[p].load() >> k) & 1) != 0) {
      // No copy to take, but the page was written in full to this node since it came back (and
      // no write-back is in flight: checked above): it holds the page's data.
      copied_[p].fetch_or(uint64_t(1) << k, std::memory_order_release);
      node.repaired.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (!source || lost(p)) {
      // No copy left: the page's data is gone. Its fetches fail until it is written again.
      if (lost_[p].exchange(1) == 0) {
        pages_lost_.fetch_add(1, std::memory_order_relaxed);
        if (wseq_[p].load() != s && lost_[p].exchange(0) != 0) {
          pages_lost_.fetch_sub(1, std::memory_order_relaxed);  // written meanwhile
        } else {
          node.lost.fetch_add(1, std::memory_order_relaxed);
        }
      }
      node.repaired.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    *page = p;
    *seq = s;
    return true;
  }
}

void ReplicatedTransport::rebuild(uint64_t until_ns) {
  const uint32_t window = std::max<uint32_t>(1, recovery_.repair_window);
  bool any = false;
  for (uint32_t n = 0; n < node_count_; ++n) any |= node_state(n) == NodeState::kRebuilding;
  if (!any) return;
  if (!repair_) {
    repair_ = std::make_unique<Repair>();
    repair_->buf = static_cast<std::byte*>(std::aligned_alloc(kPageSize, window * kPageSize));
    repair_->slots.resize(window);
    repair_->qps.resize(node_count_);
    repair_->conn.assign(node_count_, nullptr);
    repair_->refilled_ns = now_ns();
  }
  Repair& r = *repair_;
  // Abandons every copy under way: requests on a replaced or dead queue pair never complete.
  auto abandon_all = [&] {
    for (Repair::Slot& sl : r.slots) {
      if (!sl.busy) continue;
      sl.busy = false;
      ++sl.gen;
      Node& t = nodes_[sl.target];
      --t.repair_in_flight;
      t.repair_retry.push_back(sl.page);
    }
  };
  for (uint32_t i = 0; i < node_count_; ++i) {  // queue pairs on each node's current connection
    Transport* t = nodes_[i].t.load(std::memory_order_acquire);
    if (r.conn[i] == t) continue;
    if (!t->alive()) {  // a dead connection serves no copy (a new one replaces it)
      if (r.qps[i]) abandon_all();
      r.qps[i].reset();
      r.conn[i] = t;
      continue;
    }
    if (Status s = t->register_local(r.buf, uint64_t(window) * kPageSize); !s.is_ok()) {
      if (r.registered_everywhere) {
        FM_LOG_ERROR(kTag,
                     "memory node {}: pages cannot be copied back ({}); it takes writes "
                     "only",
                     nodes_[i].name, s.message());
      }
      r.registered_everywhere = false;
    }
    auto q = t->create_queue_pair(kRepairCore);
    if (!q) {
      FM_LOG_ERROR(kTag, "memory node {}: no queue pair to copy pages: {}", nodes_[i].name,
                   q.status().message());
      return;
    }
    abandon_all();
    r.qps[i] = std::move(q.value());
    r.conn[i] = t;
  }
  if (!r.registered_everywhere) return;
  const uint32_t nodes = placement_.nodes;
  auto k_of = [&](uint32_t n, uint64_t p) { return uint32_t((n + nodes - p % nodes) % nodes); };
  auto rebuilding = [&](uint32_t n) {
    return node_state(n) == NodeState::kRebuilding && writable(n) && r.qps[n];
  };
  std::array<Completion, 32> c;
  for (;;) {
    bool progress = false;
    // Completions: a copied page is done if no write-back raced it.
    for (uint32_t i = 0; i < node_count_; ++i) {
      if (!r.qps[i]) continue;
      const uint32_t got = r.qps[i]->poll(c);
      progress |= got > 0;
      for (uint32_t j = 0; j < got; ++j) {
        Repair::Slot* sp = r.slot_of(c[j].wr_id);
        if (sp == nullptr) continue;
        Repair::Slot& s = *sp;
        Node& node = nodes_[s.target];
        const uint32_t slot = uint32_t(c[j].wr_id & 0xffffffffu) >> 1;
        const bool was_write = (c[j].wr_id & 1) != 0;
        if (c[j].status == IoStatus::kOk && !was_write && r.qps[s.target] &&
            r.qps[s.target]->post(IoOp::kWrite, placement_.offset_of(s.page, k_of(s.target, s.page)),
                                  r.buf + uint64_t(slot) * kPageSize, kPageSize,
                                  r.tag(slot, true)) == PostResult::kOk) {
          continue;
        }
        s.busy = false;
        --node.repair_in_flight;
        if (c[j].status != IoStatus::kOk || !was_write) {
          node.repair_retry.push_back(s.page);
        } else if (wseq_[s.page].load() != s.seq) {
          node.repair_retry.push_back(s.page);  // a write-back was posted meanwhile: copy again
          node.recopied.fetch_add(1, std::memory_order_relaxed);
        } else {
          copied_[s.page].fetch_or(uint64_t(1) << k_of(s.target, s.page),
                                   std::memory_order_release);
          pages_repaired_.fetch_add(1, std::memory_order_relaxed);
          node.repaired.fetch_add(1, std::memory_order_relaxed);
        }
      }
    }
    // Each rebuilding node's link allows repair_bytes_per_s of copies.
    const uint64_t now = now_ns();
    for (uint32_t n = 0; n < node_count_; ++n) {
      Node& node = nodes_[n];
      node.repair_tokens =
          recovery_.repair_bytes_per_s > 0
              ? std::min<double>(window, node.repair_tokens + double(now - r.refilled_ns) * 1e-9 *
                                                                  recovery_.repair_bytes_per_s /
                                                                  kPageSize)
              : window;
    }
    r.refilled_ns = now;
    // Start copies into free slots, the rebuilding nodes taking turns.
    bool busy = false, paced = false;
    for (uint32_t slot = 0; slot < window; ++slot) {
      Repair::Slot& s = r.slots[slot];
      if (s.busy) {
        busy = true;
        continue;
      }
      bool started = false;
      for (uint32_t tries = 0; tries < node_count_ && !started; ++tries) {
        const uint32_t n = r.next_target;
        r.next_target = (r.next_target + 1) % node_count_;
        if (!rebuilding(n)) continue;
        Node& node = nodes_[n];
        if (node.repair_tokens < 1.0) {
          paced = true;
          continue;
        }
        uint64_t p, seq;
        if (!next_repair(n, &p, &seq)) continue;
        uint32_t src = kMaxNodes, src_k = 0;
        for (uint32_t k = 0; k < placement_.replicas && src == kMaxNodes; ++k) {
          const uint32_t m = placement_.node_of(p, k);
          if (m != n && r.qps[m] && has_copy(m, k, p)) {
            src = m;
            src_k = k;
          }
        }
        if (src == kMaxNodes) {  // its source died since next_repair looked
          node.repair_retry.push_back(p);
          continue;
        }
        s.target = n;
        s.page = p;
        s.seq = seq;
        s.busy = true;
        if (r.qps[src]->post(IoOp::kRead, placement_.offset_of(p, src_k),
                             r.buf + uint64_t(slot) * kPageSize, kPageSize,
                             r.tag(slot, false)) != PostResult::kOk) {
          s.busy = false;
          node.repair_retry.push_back(p);
          continue;
        }
        ++node.repair_in_flight;
        node.repair_tokens -= 1.0;
        started = true;
        busy = true;
        progress = true;
      }
    }
    // A node whose every page is settled serves reads again.
    bool left = false;
    for (uint32_t n = 0; n < node_count_; ++n) {
      if (node_state(n) != NodeState::kRebuilding) continue;
      Node& node = nodes_[n];
      if (rebuilding(n) && node.repair_in_flight == 0 && node.repair_retry.empty() &&
          node.repair_cursor >= pages_) {
        rebuilt(n);
      } else {
        left = true;
      }
    }
    const uint64_t after = now_ns();
    if (!left || after >= until_ns) return;
    if (busy && !progress) {
      std::this_thread::sleep_for(std::chrono::microseconds(10));  // copies in flight: a 4 KiB
                                                                   // page takes microseconds
    } else if (!busy && paced && recovery_.repair_bytes_per_s > 0) {
      // Paced: wait for the next token rather than spin (bounded by the step's budget).
      const double wait_s = double(kPageSize) / recovery_.repair_bytes_per_s;
      const uint64_t wait_ns = std::min<uint64_t>(uint64_t(wait_s * 1e9) + 1, until_ns - after);
      std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<uint64_t>(wait_ns, 1000000)));
    } else if (!busy && !progress) {
      // Nothing could start (every rebuilding node died, or waits on write-backs): come back.
      return;
    }
  }
}

}  // namespace fm::paging
