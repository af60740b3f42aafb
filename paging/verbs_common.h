// The libibverbs seam shared by the compute side (verbs_transport.cc) and the memory node
// (memnode/verbs_pool.cc): device, memory regions, RC queue pairs and their state transitions,
// plus the hardware-independent pieces (attribute builders, completion mapping, queue
// bookkeeping, the control-channel client) that tests drive without an RDMA device.
// The only header that includes <infiniband/verbs.h>; include it from verbs files only.
#pragma once

#include <infiniband/verbs.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/result.h"
#include "paging/channel.h"
#include "paging/handshake.h"
#include "paging/memnode_wire.h"
#include "paging/options.h"
#include "paging/transport.h"

namespace fm::paging::verbs {

// Research knobs of the verbs transport (deployment values live in VerbsOptions).
// RDMA READs in flight per QP on the wire; both sides clamp to their device's limits.
inline constexpr uint8_t kMaxRdAtomic = 16;
// Local ACK timeout 4.096 us * 2^14 = 67 ms, 7 retries: a dead peer surfaces in about 0.5 s.
inline constexpr uint8_t kAckTimeout = 14;
inline constexpr uint8_t kRetryCount = 7;
inline constexpr uint8_t kRnrRetry = 7;  // 7 = retry forever (we post no receives anyway)
inline constexpr uint8_t kMinRnrTimer = 12;
// GRH hop limit for RoCE v2: routable across a few L3 hops.
inline constexpr uint8_t kHopLimit = 64;
// Completions taken from the CQ per ibv_poll_cq call.
inline constexpr uint32_t kPollBurst = 32;

/// The config keys that name this side's verbs settings, for error messages: the compute node
/// uses paging.transport / paging.verbs.*, the memory node its own table.
struct ConfigKeys {
  std::string transport = "paging.transport";  // selects "verbs" or "emulated"
  std::string verbs = "paging.verbs";          // table with device, ib_port, gid_index, ...
};

// ---------------------------------------------------------------------------------------------
// Pure helpers (no device needed).

/// The message for "no RDMA device": `why` says what ibv_get_device_list reported.
std::string no_device_message(const std::string& why, const ConfigKeys& keys);

/// Picks the device named `wanted` (empty: the first) from `names`; the error names the key
/// and lists the devices present.
Result<size_t> pick_device(std::span<const std::string> names, const std::string& wanted,
                           const ConfigKeys& keys);

/// True when all 16 bytes are zero (the GID that says "address me by LID").
bool gid_is_zero(const uint8_t (&gid)[16]);

/// A 24-bit random initial packet sequence number. Thread-safe.
uint32_t random_psn();

/// Builds this side's QpInfo from the port's attributes and (gid_index >= 0) its GID. Pure.
/// Fails with a message naming `keys` when the port is not active, RoCE is used without a
/// GID, or the GID entry is empty.
Result<wire::QpInfo> make_qp_info(const ibv_port_attr& port_attr, uint8_t port, int gid_index,
                                  const ibv_gid& gid, uint32_t qp_num, uint32_t psn,
                                  const std::string& device, const ConfigKeys& keys);

/// The attributes and mask of one ibv_modify_qp call.
struct QpTransition {
  ibv_qp_attr attr;
  int mask = 0;
};

/// RESET -> INIT on `port`; `access` is the QP's remote access (0 on the requester side,
/// REMOTE_READ | REMOTE_WRITE on the memory node). Pure.
QpTransition init_transition(uint8_t port, unsigned access);

/// INIT -> RTR towards `remote`: path MTU is the smaller of both, GRH (GID) addressing when
/// both sides carry a GID, else the remote LID. Fails on a malformed peer QpInfo. Pure.
Result<QpTransition> rtr_transition(const wire::QpInfo& local, const wire::QpInfo& remote,
                                    uint8_t max_dest_rd_atomic);

/// RTR -> RTS with our send PSN, retry and timeout policy. Pure.
QpTransition rts_transition(const wire::QpInfo& local, uint8_t max_rd_atomic);

/// What one work-completion status means to the transport.
struct WcClass {
  IoStatus io = IoStatus::kOk;
  bool breaks_qp = false;  // the RC QP is in the error state: later work only flushes
  bool peer_gone = false;  // the memory node is unreachable: the whole transport is dead
};

/// Maps an ibv_wc_status (unknown values included) to its class. Pure.
WcClass classify_wc_status(ibv_wc_status status);

/// "remote access error (IBV_WC_REM_ACCESS_ERR, vendor_err 0x88)": for logs and tests.
std::string wc_status_message(ibv_wc_status status, uint32_t vendor_err);

/// Fills one signaled RDMA READ/WRITE work request with a single SGE. Pure. The remote
/// address is `pool_addr + remote_offset`; `wr_id` passes through to the completion.
void fill_send_wr(ibv_send_wr& wr, ibv_sge& sge, IoOp op, uint64_t pool_addr, uint32_t rkey,
                  uint64_t remote_offset, void* local, uint32_t len, uint32_t lkey, uint64_t wr_id);

/// Registered local memory a queue pair may name: the frames, and the recovery thread's copy
/// buffer (a rebuild reads a page from one node into it and writes it to another). Holds few
/// ranges (two today), searched in order. Pure; no device.
class LocalRanges {
 public:
  struct Range {
    uintptr_t base;
    uint64_t len;
    uint32_t lkey;
  };
  static constexpr size_t kMax = 4;

  /// False (nothing added) when full, empty, or overlapping a range already held: each byte
  /// has one registration, so its lkey is never ambiguous.
  bool add(uintptr_t base, uint64_t len, uint32_t lkey);
  /// The lkey of the range holding all of [addr, addr + len), or false.
  bool find(uintptr_t addr, uint64_t len, uint32_t* lkey) const {
    for (size_t i = 0; i < n_; ++i) {
      const Range& r = r_[i];
      if (addr >= r.base && len <= r.len && addr - r.base <= r.len - len) {
        *lkey = r.lkey;
        return true;
      }
    }
    return false;
  }
  size_t size() const { return n_; }

 private:
  std::array<Range, kMax> r_{};
  size_t n_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Queue bookkeeping: one QP's outstanding count and health. Owner core only; no device.

class QpBook {
 public:
  explicit QpBook(uint32_t max_outstanding) : max_(max_outstanding) {}

  /// Whether a post may go out now: kDead once the QP broke or the transport died, kFull at
  /// max_outstanding, else kOk.
  PostResult admit(bool transport_alive) const {
    if (broken_ || !transport_alive) [[unlikely]]
      return PostResult::kDead;
    if (outstanding_ >= max_) return PostResult::kFull;
    return PostResult::kOk;
  }

  /// A post went to the hardware.
  void on_posted() { ++outstanding_; }

  /// Accounts one completion and returns what the caller sees (`wr_id` untouched).
  Completion on_completion(uint64_t wr_id, const WcClass& c) {
    if (outstanding_ > 0) --outstanding_;
    if (c.breaks_qp) broken_ = true;
    return Completion{wr_id, c.io};
  }

  /// The QP can take no more work (post failed, error completion, transport died).
  void mark_broken() { broken_ = true; }

  uint32_t outstanding() const { return outstanding_; }
  uint32_t max_outstanding() const { return max_; }
  bool broken() const { return broken_; }

 private:
  uint32_t max_;
  uint32_t outstanding_ = 0;
  bool broken_ = false;
};

/// Turns polled work completions into Completions, updating `book`. Returns how many were
/// written (== wcs.size(); `out` must be at least as large). Sets `*peer_gone` when one of them
/// says the memory node is unreachable; `first_error` receives the first failed wc (if any)
/// for logging. Pure apart from `book`.
uint32_t harvest_completions(std::span<const ibv_wc> wcs, std::span<Completion> out, QpBook& book,
                             bool* peer_gone, const ibv_wc** first_error);

/// What ibv_post_send's return value means: 0 -> kOk, ENOMEM (send queue full) -> kFull,
/// anything else (QP in the error state, bad WR) -> kDead.
PostResult post_errno_result(int rc);

// ---------------------------------------------------------------------------------------------
// RAII over the verbs objects.

struct ContextDeleter {
  void operator()(ibv_context* c) const {
    if (c) ibv_close_device(c);
  }
};
struct PdDeleter {
  void operator()(ibv_pd* p) const {
    if (p) ibv_dealloc_pd(p);
  }
};
struct MrDeleter {
  void operator()(ibv_mr* m) const {
    if (m) ibv_dereg_mr(m);
  }
};
struct CqDeleter {
  void operator()(ibv_cq* c) const {
    if (c) ibv_destroy_cq(c);
  }
};
struct QpDeleter {
  void operator()(ibv_qp* q) const {
    if (q) ibv_destroy_qp(q);
  }
};
using ContextPtr = std::unique_ptr<ibv_context, ContextDeleter>;
using PdPtr = std::unique_ptr<ibv_pd, PdDeleter>;
using MrPtr = std::unique_ptr<ibv_mr, MrDeleter>;
using CqPtr = std::unique_ptr<ibv_cq, CqDeleter>;
using QpPtr = std::unique_ptr<ibv_qp, QpDeleter>;

/// An RC queue pair with its own completion queue (declared so the QP is destroyed first).
struct RcQp {
  CqPtr cq;
  QpPtr qp;
};

/// An opened RDMA device, port and protection domain. Control path; share it (shared_ptr) with
/// every object created from it so destruction order is safe.
class Device {
 public:
  /// Opens `opts.device` (empty: the first device), queries `opts.ib_port` and the GID at
  /// `opts.gid_index`, allocates a protection domain. Fails with no_device_message() when the
  /// machine has no RDMA device; every other error names the key in `keys`.
  static Result<std::shared_ptr<Device>> open(const VerbsOptions& opts, const ConfigKeys& keys);

  ~Device();

  /// Registers [base, base+len) with `access` (IBV_ACCESS_* flags). Control path.
  Result<MrPtr> register_memory(void* base, uint64_t len, int access);

  /// Creates a CQ of `depth` entries and an RC QP with send depth `depth`, one SGE.
  Result<RcQp> create_rc_qp(uint32_t depth);

  /// This side's address of `qp` (fresh random PSN). Control path.
  Result<wire::QpInfo> local_qp_info(const ibv_qp* qp) const;

  /// Moves `qp` RESET -> INIT -> RTR -> RTS against `remote`, with remote `access` flags.
  Status connect_qp(ibv_qp* qp, const wire::QpInfo& local, const wire::QpInfo& remote,
                    unsigned access);

  ibv_context* context() const { return ctx_.get(); }
  ibv_pd* pd() const { return pd_.get(); }
  const std::string& name() const { return name_; }
  uint8_t port() const { return port_; }
  const ibv_device_attr& device_attr() const { return dev_attr_; }
  const ibv_port_attr& port_attr() const { return port_attr_; }

 private:
  Device() = default;

  ContextPtr ctx_;
  PdPtr pd_;  // declared after ctx_: deallocated before the device closes
  std::string name_;
  uint8_t port_ = 1;
  int gid_index_ = 0;
  ibv_gid gid_{};
  ibv_device_attr dev_attr_{};
  ibv_port_attr port_attr_{};
  ConfigKeys keys_;
};

// ---------------------------------------------------------------------------------------------
// Compute side of the control channel (no device needed): Hello/HelloAck, one QpConnect/
// QpAccept exchange per queue pair, and a watcher thread that notices the memory node leaving.

/// Liveness shared between the control thread and the queue pairs. The data path only loads it.
struct Liveness {
  std::atomic<bool> alive{true};
};

class VerbsControl {
 public:
  /// Connects to `memnode` (retrying up to `timeout_ms`), runs the handshake (client_handshake:
  /// Hello(kVerbs, cores, region_bytes), the key both ways when `key` is present) and starts
  /// the watcher thread, which exchanges heartbeats. Control path; blocks.
  static Result<std::unique_ptr<VerbsControl>> connect(const ChannelAddress& memnode,
                                                       uint16_t cores, uint64_t region_bytes,
                                                       const AuthKey& key, int timeout_ms);

  /// Says Goodbye and stops the watcher thread.
  ~VerbsControl();

  const wire::HelloAck& hello_ack() const { return ack_; }
  const std::string& address() const { return address_; }

  /// Sends QpConnect(core, local) and waits up to `timeout_ms` for the matching QpAccept.
  /// Control path; exchanges are serialized. Fails with the memory node's reason on kError.
  Result<wire::QpInfo> exchange_qp(uint16_t core, const wire::QpInfo& local, int timeout_ms);

  /// Marks the memory node dead (a fatal completion, or the channel closed). Any thread.
  void mark_dead(const std::string& why);

  bool alive() const { return live_->alive.load(std::memory_order_acquire); }
  const std::shared_ptr<Liveness>& liveness() const { return live_; }

 private:
  VerbsControl() = default;
  void watch();

  Channel channel_;
  std::string address_;
  wire::HelloAck ack_{};
  std::shared_ptr<Liveness> live_ = std::make_shared<Liveness>();
  std::thread watcher_;
  std::atomic<bool> stopping_{false};
  std::mutex exchange_mu_;  // one QpConnect in flight
  std::mutex send_mu_;      // one writer on the channel at a time (exchanges, heartbeats, bye)
  std::mutex mu_;           // guards replies_
  std::condition_variable cv_;
  std::deque<std::vector<uint8_t>> replies_;  // QpAccept / Error messages from the watcher
};

}  // namespace fm::paging::verbs
