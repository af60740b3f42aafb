// The verbs transport: RC queue pairs posting one-sided READ/WRITE to the memory node's pool.
#include "paging/verbs_transport.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "dataplane/check.h"
#include "dataplane/log.h"
#include "paging/verbs_common.h"

namespace fm::paging {
namespace {

constexpr const char* kTag = "verbs";

/// Where a queue pair's work goes: the pool at the memory node and our registered memory (the
/// ranges registered when the queue pair was created).
struct Target {
  uint64_t pool_addr;
  uint64_t pool_bytes;
  uint32_t rkey;
  verbs::LocalRanges local;
};

class VerbsQueuePair final : public QueuePair {
 public:
  VerbsQueuePair(std::shared_ptr<verbs::Device> dev,
                 std::vector<std::shared_ptr<verbs::MrPtr>> mr,
                 std::shared_ptr<verbs::VerbsControl> control, verbs::RcQp rc, CoreId core,
                 const Target& target, uint32_t max_outstanding)
      : dev_(std::move(dev)),
        mr_(std::move(mr)),
        control_(std::move(control)),
        live_(control_->liveness().get()),
        rc_(std::move(rc)),
        core_(core),
        target_(target),
        book_(max_outstanding) {}

  ~VerbsQueuePair() override {
    if (book_.outstanding() > 0) {
      FM_LOG_WARN(kTag, "core {}'s queue pair destroyed with {} work requests outstanding",
                  to_int(core_), book_.outstanding());
    }
  }

  PostResult post(IoOp op, uint64_t remote_offset, void* local, uint32_t len,
                  uint64_t wr_id) override {
    const PostResult admit = book_.admit(live_->alive.load(std::memory_order_relaxed));
    if (admit != PostResult::kOk) [[unlikely]]
      return admit;
    FM_DCHECK(remote_offset + len <= target_.pool_bytes);
    uint32_t lkey;
    if (!target_.local.find(reinterpret_cast<uintptr_t>(local), len, &lkey)) [[unlikely]] {
      unregistered(local, len);  // the caller's bug; the NIC would refuse it (local protection)
      return PostResult::kDead;
    }
    ibv_send_wr wr;
    ibv_sge sge;
    verbs::fill_send_wr(wr, sge, op, target_.pool_addr, target_.rkey, remote_offset, local, len,
                        lkey, wr_id);
    ibv_send_wr* bad = nullptr;
    const int rc = ibv_post_send(rc_.qp.get(), &wr, &bad);
    const PostResult r = verbs::post_errno_result(rc);
    if (r == PostResult::kOk) [[likely]] {
      book_.on_posted();
    } else if (r == PostResult::kDead) {
      post_failed(rc);
    }
    return r;
  }

  uint32_t poll(std::span<Completion> out) override {
    if (!flushed_ && !live_->alive.load(std::memory_order_relaxed)) [[unlikely]]
      flush();
    uint32_t total = 0;
    while (total < out.size() && book_.outstanding() > 0) {
      std::array<ibv_wc, verbs::kPollBurst> wcs;
      const int want = int(std::min<size_t>(wcs.size(), out.size() - total));
      const int n = ibv_poll_cq(rc_.cq.get(), want, wcs.data());
      if (n <= 0) [[likely]] {
        if (n < 0) poll_failed(n);
        break;
      }
      bool peer_gone = false;
      const ibv_wc* first_error = nullptr;
      total += verbs::harvest_completions(std::span<const ibv_wc>(wcs.data(), size_t(n)),
                                          out.subspan(total), book_, &peer_gone, &first_error);
      if (first_error) [[unlikely]]
        completion_failed(*first_error, peer_gone);
      if (n < want) break;
    }
    return total;
  }

  uint32_t outstanding() const override { return book_.outstanding(); }

 private:
  // The memory node left: move the QP to the error state so the hardware flushes every
  // outstanding request (WR_FLUSH_ERR -> kDisconnected) and stops touching our frames.
  [[gnu::cold, gnu::noinline]] void flush() {
    flushed_ = true;
    book_.mark_broken();
    ibv_qp_attr attr{};
    attr.qp_state = IBV_QPS_ERR;
    if (int rc = ibv_modify_qp(rc_.qp.get(), &attr, IBV_QP_STATE); rc != 0) {
      FM_LOG_ERROR(kTag, "core {}: moving the queue pair to the error state failed: {}",
                   to_int(core_), std::strerror(rc));
    }
  }

  [[gnu::cold, gnu::noinline]] void unregistered(const void* local, uint32_t len) {
    FM_LOG_FIRST_N(LogLevel::kError, 8, kTag,
                   "core {}: {} bytes at {} are in no memory registered before this queue pair",
                   to_int(core_), len, local);
    FM_DCHECK(false);
  }

  [[gnu::cold, gnu::noinline]] void post_failed(int rc) {
    book_.mark_broken();
    FM_LOG_FIRST_N(LogLevel::kError, 8, kTag, "core {}: ibv_post_send failed: {}; queue pair dead",
                   to_int(core_), std::strerror(rc));
  }

  [[gnu::cold, gnu::noinline]] void poll_failed(int rc) {
    book_.mark_broken();
    control_->mark_dead("ibv_poll_cq failed (" + std::to_string(rc) + ")");
  }

  [[gnu::cold, gnu::noinline]] void completion_failed(const ibv_wc& wc, bool peer_gone) {
    if (wc.status != IBV_WC_WR_FLUSH_ERR) {
      FM_LOG_FIRST_N(LogLevel::kError, 16, kTag, "core {}: work request {:#x} failed: {}",
                     to_int(core_), wc.wr_id, verbs::wc_status_message(wc.status, wc.vendor_err));
    }
    if (peer_gone) control_->mark_dead(verbs::wc_status_message(wc.status, wc.vendor_err));
  }

  // Held so the device, PD, MRs and control outlive this QP whatever order owners drop them in.
  std::shared_ptr<verbs::Device> dev_;
  std::vector<std::shared_ptr<verbs::MrPtr>> mr_;
  std::shared_ptr<verbs::VerbsControl> control_;
  const verbs::Liveness* live_;
  verbs::RcQp rc_;
  CoreId core_;
  Target target_;
  verbs::QpBook book_;
  bool flushed_ = false;
};

class VerbsTransport final : public Transport {
 public:
  VerbsTransport(const VerbsOptions& opts, std::shared_ptr<verbs::Device> dev,
                 std::shared_ptr<verbs::VerbsControl> control, int timeout_ms)
      : opts_(opts), dev_(std::move(dev)), control_(std::move(control)), timeout_ms_(timeout_ms) {}

  const char* name() const override { return "verbs"; }

  uint64_t remote_size() const override { return control_->hello_ack().pool_bytes; }

  /// The frames, then any other buffer (the recovery thread's copy buffer). Queue pairs know the
  /// buffers registered before they were created.
  Status register_local(void* base, uint64_t len) override {
    std::lock_guard<std::mutex> g(mu_);
    verbs::LocalRanges probe = ranges_;
    if (!probe.add(reinterpret_cast<uintptr_t>(base), len, 0)) {
      return error(Errc::kInvalidArgument,
                   "verbs transport: cannot register " + std::to_string(len) +
                       " bytes: empty, overlapping memory registered before, or more than " +
                       std::to_string(verbs::LocalRanges::kMax) + " buffers");
    }
    auto mr = dev_->register_memory(base, len, IBV_ACCESS_LOCAL_WRITE);
    if (!mr) return mr.status();
    auto shared = std::make_shared<verbs::MrPtr>(std::move(mr.value()));
    ranges_.add(reinterpret_cast<uintptr_t>((*shared)->addr), uint64_t((*shared)->length),
                (*shared)->lkey);
    mr_.push_back(std::move(shared));
    return Status::ok();
  }

  Result<std::unique_ptr<QueuePair>> create_queue_pair(CoreId core) override {
    std::lock_guard<std::mutex> g(mu_);
    if (mr_.empty()) {
      return error(Errc::kInvalidArgument,
                   "verbs transport: register_local() must come before create_queue_pair()");
    }
    if (!control_->alive()) {
      return error(Errc::kUnavailable, "memory node at " + control_->address() + " is gone");
    }
    auto rc = dev_->create_rc_qp(opts_.max_outstanding);
    if (!rc) return rc.status();
    auto local = dev_->local_qp_info(rc->qp.get());
    if (!local) return local.status();
    auto remote = control_->exchange_qp(to_int(core), *local, timeout_ms_);
    if (!remote) return remote.status();
    FM_RETURN_IF_ERROR(dev_->connect_qp(rc->qp.get(), *local, *remote, 0));
    const wire::HelloAck& ack = control_->hello_ack();
    const Target target{ack.pool_addr, ack.pool_bytes, ack.rkey, ranges_};
    FM_LOG_INFO(kTag, "core {}: queue pair {} connected to memory node QP {}", to_int(core),
                local->qp_num, remote->qp_num);
    return std::unique_ptr<QueuePair>(new VerbsQueuePair(dev_, mr_, control_, std::move(rc.value()),
                                                         core, target, opts_.max_outstanding));
  }

  bool alive() const override { return control_->alive(); }

 private:
  VerbsOptions opts_;
  std::shared_ptr<verbs::Device> dev_;
  std::shared_ptr<verbs::VerbsControl> control_;
  int timeout_ms_;
  std::mutex mu_;  // control path: register_local / create_queue_pair from any thread
  std::vector<std::shared_ptr<verbs::MrPtr>> mr_;
  verbs::LocalRanges ranges_;  // mr_'s address ranges and lkeys
};

}  // namespace

Result<std::unique_ptr<Transport>> connect_verbs(const VerbsOptions& opts,
                                                 const ChannelAddress& memnode, uint16_t cores,
                                                 uint64_t region_bytes, const AuthKey& key,
                                                 int timeout_ms) {
  if (opts.max_outstanding == 0) {
    return error(Errc::kInvalidArgument, "paging.verbs.max_outstanding must be > 0");
  }
  const verbs::ConfigKeys keys;  // the compute node's: paging.transport, paging.verbs.*
  auto dev = verbs::Device::open(opts, keys);
  if (!dev) return dev.status();
  auto control = verbs::VerbsControl::connect(memnode, cores, region_bytes, key, timeout_ms);
  if (!control) return control.status();
  std::shared_ptr<verbs::VerbsControl> shared_control(std::move(control.value()));
  const wire::HelloAck& ack = shared_control->hello_ack();
  FM_LOG_INFO(kTag, "connected to memory node at {}: pool {} bytes at {:#x}",
              shared_control->address(), ack.pool_bytes, ack.pool_addr);
  return std::unique_ptr<Transport>(
      new VerbsTransport(opts, std::move(dev.value()), std::move(shared_control), timeout_ms));
}

}  // namespace fm::paging
