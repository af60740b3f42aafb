// Emulated one-sided RDMA: a memfd pool, a latency/bandwidth model, completions on poll.
#include "paging/emulated_transport.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "dataplane/log.h"

namespace fm::paging {
namespace {
constexpr const char* kTag = "emulated";

uint64_t round_pow2(uint64_t v) {
  uint64_t p = 1;
  while (p < v) p <<= 1;
  return p;
}
}  // namespace

EmulatedQueuePair::EmulatedQueuePair(EmulatedLink& link, std::byte* pool, uint64_t pool_bytes,
                                     const std::atomic<bool>& alive, const EmulatedOptions& opts,
                                     const Clock& clock, uint64_t seed)
    : link_(link),
      pool_(pool),
      pool_bytes_(pool_bytes),
      alive_(alive),
      clock_(clock),
      latency_(clock.from_ns(opts.latency_ns)),
      jitter_mean_(clock.from_ns(opts.jitter_ns)),
      jitter_kind_(opts.jitter),
      max_outstanding_(opts.max_outstanding),
      move_bytes_(opts.move_bytes),
      rng_(seed * 0x9E3779B97F4A7C15ull + 1),
      ring_(round_pow2(opts.max_outstanding)),
      mask_(ring_.size() - 1) {}

uint64_t EmulatedQueuePair::jitter() {
  if (jitter_kind_ == JitterKind::kNone || jitter_mean_ == 0) return 0;
  // xorshift64*: cheap, per queue pair, reproducible from the seed.
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  const double u = double((rng_ * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;  // [0,1)
  if (jitter_kind_ == JitterKind::kUniform) return uint64_t(u * 2.0 * double(jitter_mean_));
  return uint64_t(-std::log1p(-u) * double(jitter_mean_));
}

PostResult EmulatedQueuePair::post(IoOp op, uint64_t remote_offset, void* local, uint32_t len,
                                   uint64_t wr_id) {
  if (!alive_.load(std::memory_order_relaxed)) return PostResult::kDead;
  if (outstanding() >= max_outstanding_) return PostResult::kFull;
  const uint64_t now = clock_.now();
  // A READ's data crosses the link memnode -> compute, a WRITE's the other way; either way the
  // bytes serialise on the one link, then the fixed latency (plus jitter) applies.
  const uint64_t sent = link_.reserve(now, len);
  uint64_t due = sent + latency_ + (jitter_kind_ == JitterKind::kNone ? 0 : jitter());
  if (due < last_due_) due = last_due_;  // RC: completions in post order
  last_due_ = due;
  const bool in_bounds = remote_offset <= pool_bytes_ && len <= pool_bytes_ - remote_offset;
  ring_[tail_++ & mask_] = Op{due,
                              wr_id,
                              remote_offset,
                              local,
                              len,
                              op,
                              in_bounds ? IoStatus::kOk : IoStatus::kRemoteError};
  return PostResult::kOk;
}

uint32_t EmulatedQueuePair::poll(std::span<Completion> out) {
  if (head_ == tail_) return 0;
  const bool alive = alive_.load(std::memory_order_relaxed);
  const uint64_t now = alive ? clock_.now() : UINT64_MAX;  // a dead link flushes everything
  uint32_t n = 0;
  while (n < out.size() && head_ != tail_) {
    Op& o = ring_[head_ & mask_];
    if (o.due > now) break;
    IoStatus st = alive ? o.status : IoStatus::kDisconnected;
    if (st == IoStatus::kOk && move_bytes_) {
      // The bytes move now, when the real transfer would have landed: nobody sees them early.
      if (o.op == IoOp::kRead)
        std::memcpy(o.local, pool_ + o.remote, o.len);
      else
        std::memcpy(pool_ + o.remote, o.local, o.len);
    }
    out[n++] = Completion{o.wr_id, st};
    ++head_;
  }
  return n;
}

Result<std::unique_ptr<EmulatedTransport>> EmulatedTransport::connect(
    const EmulatedOptions& opts, const ChannelAddress& addr, uint16_t cores, uint64_t region_bytes,
    const AuthKey& key, int timeout_ms, const Clock& clock) {
  if (addr.kind != ChannelAddress::Kind::kUnix) {
    return error(Errc::kInvalidArgument,
                 "paging.memnode: the emulated transport needs a unix: address (the pool's memfd "
                 "is passed over a Unix socket)");
  }
  const std::string where = "unix:" + addr.path;
  auto ch = Channel::connect(addr, timeout_ms);
  if (!ch) return ch.status();
  HelloRequest req;
  req.transport = wire::TransportKind::kEmulated;
  req.cores = cores;
  req.region_bytes = region_bytes;
  req.name = "kvserver-" + std::to_string(::getpid());
  auto granted = client_handshake(*ch, req, key, where, timeout_ms);
  if (!granted) return granted.status();
  const int memfd = granted->memfd;
  const wire::HelloAck& ack = granted->ack;
  if (memfd < 0) {
    return error(Errc::kInternal,
                 "the memory node at " + where + " sent no lease descriptor with its HelloAck");
  }
  // The lease must be sealed: a memfd that its owner could shrink would kill this process with
  // SIGBUS on the next copy. And it must be as large as the lease says.
  struct stat st {};
  const int seals = ::fcntl(memfd, F_GET_SEALS);
  const int need = F_SEAL_SHRINK | F_SEAL_GROW;
  if (::fstat(memfd, &st) != 0 || seals < 0 || (seals & need) != need ||
      uint64_t(st.st_size) != ack.pool_bytes) {
    ::close(memfd);
    return error(Errc::kPermissionDenied, "the memory node at " + where +
                                              " sent a lease that is not sealed against "
                                              "resizing or not of its announced size (" +
                                              std::to_string(ack.pool_bytes) +
                                              " bytes): refusing to map it");
  }
  void* p = ::mmap(nullptr, ack.pool_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  ::close(memfd);
  if (p == MAP_FAILED) {
    return error(Errc::kResourceExhausted, "cannot map the memory node's lease of " +
                                               std::to_string(ack.pool_bytes) +
                                               " bytes: " + std::strerror(errno));
  }
  std::unique_ptr<EmulatedTransport> t(new EmulatedTransport(opts, clock));
  t->pool_ = static_cast<std::byte*>(p);
  t->pool_bytes_ = ack.pool_bytes;
  t->heartbeat_ms_ = ack.heartbeat_ms;
  t->channel_ = std::move(ch.value());
  t->watcher_ = std::thread([raw = t.get()] { raw->watch(); });
  FM_LOG_INFO(kTag,
              "connected to memory node {}: lease {} of {} MiB, latency {} ns, link {} Gb/s{}",
              where, ack.lease_id, ack.pool_bytes >> 20, opts.latency_ns, opts.link_gbps,
              key.present() ? ", authenticated" : "");
  return t;
}

Result<std::unique_ptr<EmulatedTransport>> EmulatedTransport::in_process(
    const EmulatedOptions& opts, uint64_t pool_bytes, const Clock& clock) {
  void* p = ::mmap(nullptr, pool_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return error(Errc::kResourceExhausted, "cannot map a pool of " + std::to_string(pool_bytes) +
                                               " bytes: " + std::strerror(errno));
  }
  std::unique_ptr<EmulatedTransport> t(new EmulatedTransport(opts, clock));
  t->pool_ = static_cast<std::byte*>(p);
  t->pool_bytes_ = pool_bytes;
  return t;
}

void EmulatedTransport::watch() {
  // The memnode sends only Heartbeat and Goodbye once the lease is granted. Dead: Goodbye, EOF,
  // a failed send, or kHeartbeatMisses intervals of silence (a hung or partitioned memnode).
  std::vector<uint8_t> buf;
  Heartbeats beats(heartbeat_ms_, kHeartbeatMisses, steady_ms());
  std::string why;
  const int tick_ms = heartbeat_ms_ ? int(std::min<uint32_t>(heartbeat_ms_ / 2 + 1, 200)) : 200;
  while (!stopping_.load()) {
    auto t = channel_.recv(buf, tick_ms);
    const uint64_t now = steady_ms();
    if (t.is_ok()) {
      beats.heard(now);
      if (*t == wire::MsgType::kGoodbye) {
        why = "it said goodbye";
        break;
      }
    } else if (t.status().code() != Errc::kTimeout) {
      why = t.status().message();
      break;
    }
    if (beats.peer_silent(now)) {
      why = "it missed " + std::to_string(kHeartbeatMisses) + " heartbeats (" +
            std::to_string(heartbeat_ms_) + " ms apart)";
      break;
    }
    if (beats.send_due(now)) {
      wire::Heartbeat hb{wire::make_header<wire::Heartbeat>(wire::MsgType::kHeartbeat), 0};
      if (Status st = channel_.send(&hb, sizeof(hb)); !st) {
        why = st.message();
        break;
      }
    }
  }
  if (!stopping_.load()) {
    alive_.store(false);
    FM_LOG_ERROR(kTag,
                 "the memory node went away ({}): far-memory requests now fail "
                 "(SERVER_ERROR)",
                 why);
  }
}

EmulatedTransport::~EmulatedTransport() {
  stopping_.store(true);
  if (watcher_.joinable()) {
    watcher_.join();  // within one tick; then this thread alone writes to the channel
    wire::Heartbeat bye{wire::make_header<wire::Heartbeat>(wire::MsgType::kGoodbye), 0};
    (void)channel_.send(&bye, sizeof(bye));  // the memnode releases the lease
  }
  if (pool_) ::munmap(pool_, pool_bytes_);
}

Result<std::unique_ptr<QueuePair>> EmulatedTransport::create_queue_pair(CoreId core) {
  return std::unique_ptr<QueuePair>(new EmulatedQueuePair(link_, pool_, pool_bytes_, alive_, opts_,
                                                          clock_, opts_.seed + to_int(core)));
}

}  // namespace fm::paging
