// libibverbs device, regions, RC queue pairs and the hardware-independent verbs logic.
#include "paging/verbs_common.h"

#include <fmt/core.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>

#include "dataplane/log.h"

namespace fm::paging::verbs {
namespace {

constexpr const char* kTag = "verbs";

std::string mtu_name(uint32_t mtu) {
  switch (mtu) {
    case IBV_MTU_256:
      return "256";
    case IBV_MTU_512:
      return "512";
    case IBV_MTU_1024:
      return "1024";
    case IBV_MTU_2048:
      return "2048";
    case IBV_MTU_4096:
      return "4096";
    default:
      return "invalid(" + std::to_string(mtu) + ")";
  }
}

bool mtu_valid(uint32_t mtu) { return mtu >= IBV_MTU_256 && mtu <= IBV_MTU_4096; }

const char* wc_status_enum_name(ibv_wc_status s) {
  switch (s) {
#define FM_WC_CASE(x) \
  case x:             \
    return #x;
    FM_WC_CASE(IBV_WC_SUCCESS)
    FM_WC_CASE(IBV_WC_LOC_LEN_ERR)
    FM_WC_CASE(IBV_WC_LOC_QP_OP_ERR)
    FM_WC_CASE(IBV_WC_LOC_EEC_OP_ERR)
    FM_WC_CASE(IBV_WC_LOC_PROT_ERR)
    FM_WC_CASE(IBV_WC_WR_FLUSH_ERR)
    FM_WC_CASE(IBV_WC_MW_BIND_ERR)
    FM_WC_CASE(IBV_WC_BAD_RESP_ERR)
    FM_WC_CASE(IBV_WC_LOC_ACCESS_ERR)
    FM_WC_CASE(IBV_WC_REM_INV_REQ_ERR)
    FM_WC_CASE(IBV_WC_REM_ACCESS_ERR)
    FM_WC_CASE(IBV_WC_REM_OP_ERR)
    FM_WC_CASE(IBV_WC_RETRY_EXC_ERR)
    FM_WC_CASE(IBV_WC_RNR_RETRY_EXC_ERR)
    FM_WC_CASE(IBV_WC_LOC_RDD_VIOL_ERR)
    FM_WC_CASE(IBV_WC_REM_INV_RD_REQ_ERR)
    FM_WC_CASE(IBV_WC_REM_ABORT_ERR)
    FM_WC_CASE(IBV_WC_INV_EECN_ERR)
    FM_WC_CASE(IBV_WC_INV_EEC_STATE_ERR)
    FM_WC_CASE(IBV_WC_FATAL_ERR)
    FM_WC_CASE(IBV_WC_RESP_TIMEOUT_ERR)
    FM_WC_CASE(IBV_WC_GENERAL_ERR)
    FM_WC_CASE(IBV_WC_TM_ERR)
    FM_WC_CASE(IBV_WC_TM_RNDV_INCOMPLETE)
#undef FM_WC_CASE
  }
  return "IBV_WC_<unknown>";
}

std::string errno_text(int e) { return std::strerror(e); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Pure helpers.

std::string no_device_message(const std::string& why, const ConfigKeys& keys) {
  return "no RDMA device found (ibv_get_device_list: " + why + "); use " + keys.transport +
         " = \"emulated\", or install an RDMA NIC (or rdma_rxe soft-RoCE) and name it in " +
         keys.verbs + ".device";
}

Result<size_t> pick_device(std::span<const std::string> names, const std::string& wanted,
                           const ConfigKeys& keys) {
  if (names.empty()) return error(Errc::kNotFound, no_device_message("no devices", keys));
  if (wanted.empty()) return size_t{0};
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == wanted) return i;
  }
  std::string present;
  for (const auto& n : names) present += (present.empty() ? "" : ", ") + n;
  return error(Errc::kNotFound, keys.verbs + ".device: RDMA device \"" + wanted +
                                    "\" not found; present: " + present);
}

bool gid_is_zero(const uint8_t (&gid)[16]) {
  for (uint8_t b : gid) {
    if (b != 0) return false;
  }
  return true;
}

uint32_t random_psn() {
  thread_local std::mt19937 gen{std::random_device{}()};
  return gen() & 0xffffff;
}

Result<wire::QpInfo> make_qp_info(const ibv_port_attr& port_attr, uint8_t port, int gid_index,
                                  const ibv_gid& gid, uint32_t qp_num, uint32_t psn,
                                  const std::string& device, const ConfigKeys& keys) {
  const std::string where = "port " + std::to_string(port) + " of RDMA device " + device;
  if (port_attr.state != IBV_PORT_ACTIVE) {
    return error(Errc::kUnavailable,
                 where + " is not active (state " + ibv_port_state_str(port_attr.state) +
                     "): check the link, or pick another " + keys.verbs + ".ib_port");
  }
  if (!mtu_valid(port_attr.active_mtu)) {
    return error(Errc::kInternal, where + " reports an invalid active MTU " +
                                      std::to_string(int(port_attr.active_mtu)));
  }
  wire::QpInfo info{};
  info.qp_num = qp_num;
  info.psn = psn & 0xffffff;
  info.lid = port_attr.lid;
  info.port = port;
  info.mtu = uint32_t(port_attr.active_mtu);
  if (gid_index < 0) {
    if (port_attr.link_layer == IBV_LINK_LAYER_ETHERNET) {
      return error(Errc::kInvalidArgument,
                   keys.verbs + ".gid_index = " + std::to_string(gid_index) + ": " + where +
                       " is RoCE (Ethernet), which needs a GID; set a GID index >= 0 "
                       "(see `ibv_devinfo -v` or show_gids)");
    }
    if (port_attr.lid == 0) {
      return error(Errc::kUnavailable, where + " has no LID (is a subnet manager running?); set " +
                                           keys.verbs + ".gid_index >= 0 to use GID addressing");
    }
    return info;  // LID addressing: gid stays zero
  }
  if (gid_index >= port_attr.gid_tbl_len || gid_index > 255) {
    return error(Errc::kInvalidArgument,
                 keys.verbs + ".gid_index = " + std::to_string(gid_index) + ": " + where +
                     " has only " + std::to_string(port_attr.gid_tbl_len) + " GID entries");
  }
  std::memcpy(info.gid, gid.raw, sizeof(info.gid));
  if (gid_is_zero(info.gid)) {
    return error(Errc::kInvalidArgument, keys.verbs + ".gid_index = " + std::to_string(gid_index) +
                                             ": the GID entry on " + where +
                                             " is empty (no IP address on the RoCE interface?)");
  }
  info.gid_index = uint8_t(gid_index);
  return info;
}

QpTransition init_transition(uint8_t port, unsigned access) {
  QpTransition t;
  std::memset(&t.attr, 0, sizeof(t.attr));
  t.attr.qp_state = IBV_QPS_INIT;
  t.attr.pkey_index = 0;
  t.attr.port_num = port;
  t.attr.qp_access_flags = access;
  t.mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
  return t;
}

Result<QpTransition> rtr_transition(const wire::QpInfo& local, const wire::QpInfo& remote,
                                    uint8_t max_dest_rd_atomic) {
  if (remote.qp_num == 0 || remote.qp_num > 0xffffff) {
    return error(Errc::kInvalidArgument,
                 "peer queue pair number " + std::to_string(remote.qp_num) + " is invalid");
  }
  if (!mtu_valid(remote.mtu)) {
    return error(Errc::kInvalidArgument, "peer MTU " + mtu_name(remote.mtu) + " is invalid");
  }
  if (!mtu_valid(local.mtu)) {
    return error(Errc::kInvalidArgument, "local MTU " + mtu_name(local.mtu) + " is invalid");
  }
  QpTransition t;
  std::memset(&t.attr, 0, sizeof(t.attr));
  t.attr.qp_state = IBV_QPS_RTR;
  t.attr.path_mtu = ibv_mtu(std::min(local.mtu, remote.mtu));
  t.attr.dest_qp_num = remote.qp_num;
  t.attr.rq_psn = remote.psn & 0xffffff;
  t.attr.max_dest_rd_atomic = max_dest_rd_atomic;
  t.attr.min_rnr_timer = kMinRnrTimer;
  t.attr.ah_attr.port_num = local.port;
  t.attr.ah_attr.sl = 0;
  t.attr.ah_attr.src_path_bits = 0;
  const bool local_gid = !gid_is_zero(local.gid);
  const bool remote_gid = !gid_is_zero(remote.gid);
  if (local_gid && remote_gid) {
    t.attr.ah_attr.is_global = 1;
    std::memcpy(t.attr.ah_attr.grh.dgid.raw, remote.gid, sizeof(remote.gid));
    t.attr.ah_attr.grh.sgid_index = local.gid_index;
    t.attr.ah_attr.grh.hop_limit = kHopLimit;
    t.attr.ah_attr.grh.flow_label = 0;
    t.attr.ah_attr.grh.traffic_class = 0;
    // RoCE has no LIDs; InfiniBand routes by dlid even with a GRH.
    t.attr.ah_attr.dlid = remote.lid;
  } else if (remote.lid != 0 && local.lid != 0) {
    t.attr.ah_attr.is_global = 0;
    t.attr.ah_attr.dlid = remote.lid;
  } else {
    return error(Errc::kInvalidArgument,
                 std::string("cannot address the peer queue pair: ") +
                     (remote_gid  ? "it uses GID addressing but we have no GID"
                      : local_gid ? "we use GID addressing but the peer sent no GID"
                                  : "neither side has a LID or a GID") +
                     "; set the same gid_index style (>= 0 on RoCE) on both nodes");
  }
  t.mask = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
           IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
  return t;
}

QpTransition rts_transition(const wire::QpInfo& local, uint8_t max_rd_atomic) {
  QpTransition t;
  std::memset(&t.attr, 0, sizeof(t.attr));
  t.attr.qp_state = IBV_QPS_RTS;
  t.attr.timeout = kAckTimeout;
  t.attr.retry_cnt = kRetryCount;
  t.attr.rnr_retry = kRnrRetry;
  t.attr.sq_psn = local.psn & 0xffffff;
  t.attr.max_rd_atomic = max_rd_atomic;
  t.mask = IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
           IBV_QP_MAX_QP_RD_ATOMIC;
  return t;
}

WcClass classify_wc_status(ibv_wc_status status) {
  switch (status) {
    case IBV_WC_SUCCESS:
      return {IoStatus::kOk, false, false};
    // This request was bad or refused (offset outside the pool, wrong key, length, local
    // buffer not registered): the memory node is fine, but an RC QP stops after any error.
    case IBV_WC_LOC_LEN_ERR:
    case IBV_WC_LOC_QP_OP_ERR:
    case IBV_WC_LOC_EEC_OP_ERR:
    case IBV_WC_LOC_PROT_ERR:
    case IBV_WC_MW_BIND_ERR:
    case IBV_WC_LOC_ACCESS_ERR:
    case IBV_WC_REM_INV_REQ_ERR:
    case IBV_WC_REM_ACCESS_ERR:
    case IBV_WC_REM_OP_ERR:
    case IBV_WC_LOC_RDD_VIOL_ERR:
    case IBV_WC_REM_INV_RD_REQ_ERR:
    case IBV_WC_INV_EECN_ERR:
    case IBV_WC_INV_EEC_STATE_ERR:
    case IBV_WC_TM_ERR:
    case IBV_WC_TM_RNDV_INCOMPLETE:
      return {IoStatus::kRemoteError, true, false};
    // Flushed because the QP is already in the error state (after another error, or because we
    // moved it there when the memory node left): no data moved, nothing new about the peer.
    case IBV_WC_WR_FLUSH_ERR:
    case IBV_WC_BAD_RESP_ERR:
    case IBV_WC_GENERAL_ERR:
      return {IoStatus::kDisconnected, true, false};
    // The peer stopped answering or the device broke: the memory node is unreachable.
    case IBV_WC_RETRY_EXC_ERR:
    case IBV_WC_RNR_RETRY_EXC_ERR:
    case IBV_WC_REM_ABORT_ERR:
    case IBV_WC_FATAL_ERR:
    case IBV_WC_RESP_TIMEOUT_ERR:
      return {IoStatus::kDisconnected, true, true};
  }
  return {IoStatus::kDisconnected, true, false};  // a status newer than this code
}

std::string wc_status_message(ibv_wc_status status, uint32_t vendor_err) {
  return fmt::format("{} ({}, vendor_err {:#x})", ibv_wc_status_str(status),
                     wc_status_enum_name(status), vendor_err);
}

void fill_send_wr(ibv_send_wr& wr, ibv_sge& sge, IoOp op, uint64_t pool_addr, uint32_t rkey,
                  uint64_t remote_offset, void* local, uint32_t len, uint32_t lkey,
                  uint64_t wr_id) {
  sge.addr = reinterpret_cast<uint64_t>(local);
  sge.length = len;
  sge.lkey = lkey;
  std::memset(&wr, 0, sizeof(wr));
  wr.wr_id = wr_id;
  wr.next = nullptr;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = op == IoOp::kRead ? IBV_WR_RDMA_READ : IBV_WR_RDMA_WRITE;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.wr.rdma.remote_addr = pool_addr + remote_offset;
  wr.wr.rdma.rkey = rkey;
}

bool LocalRanges::add(uintptr_t base, uint64_t len, uint32_t lkey) {
  if (n_ == kMax || len == 0 || base + len < base) return false;
  for (size_t i = 0; i < n_; ++i) {
    const Range& r = r_[i];
    if (base < r.base + r.len && r.base < base + len) return false;
  }
  r_[n_++] = Range{base, len, lkey};
  return true;
}

uint32_t harvest_completions(std::span<const ibv_wc> wcs, std::span<Completion> out, QpBook& book,
                             bool* peer_gone, const ibv_wc** first_error) {
  uint32_t n = 0;
  for (const ibv_wc& wc : wcs) {
    if (n >= out.size()) break;
    const WcClass c = classify_wc_status(wc.status);
    if (wc.status != IBV_WC_SUCCESS) [[unlikely]] {
      if (first_error && !*first_error) *first_error = &wc;
      if (c.peer_gone && peer_gone) *peer_gone = true;
    }
    out[n++] = book.on_completion(wc.wr_id, c);
  }
  return n;
}

PostResult post_errno_result(int rc) {
  if (rc == 0) return PostResult::kOk;
  if (rc == ENOMEM) return PostResult::kFull;
  return PostResult::kDead;
}

// ---------------------------------------------------------------------------------------------
// Device.

Device::~Device() = default;

Result<std::shared_ptr<Device>> Device::open(const VerbsOptions& opts, const ConfigKeys& keys) {
  errno = 0;
  int num = 0;
  ibv_device** list = ibv_get_device_list(&num);
  if (list == nullptr) {
    // ENOSYS: no RDMA support in the kernel (no uverbs); treat like an empty list.
    const int e = errno;
    return error(Errc::kNotFound,
                 no_device_message(e ? errno_text(e) : std::string("no devices"), keys));
  }
  std::vector<std::string> names;
  for (int i = 0; i < num; ++i) names.emplace_back(ibv_get_device_name(list[i]));
  auto pick = pick_device(names, opts.device, keys);
  if (!pick) {
    ibv_free_device_list(list);
    return pick.status();
  }
  auto dev = std::shared_ptr<Device>(new Device());
  dev->name_ = names[*pick];
  dev->port_ = opts.ib_port;
  dev->gid_index_ = opts.gid_index;
  dev->keys_ = keys;
  dev->ctx_.reset(ibv_open_device(list[*pick]));
  const int open_errno = errno;
  ibv_free_device_list(list);
  const std::string where = "RDMA device " + dev->name_ + " (" + keys.verbs + ".device)";
  if (!dev->ctx_) {
    return error(Errc::kUnavailable,
                 "cannot open " + where + ": " + errno_text(open_errno) +
                     " (permissions on /dev/infiniband/uverbs*? memlock ulimit?)");
  }
  if (int rc = ibv_query_device(dev->ctx_.get(), &dev->dev_attr_); rc != 0) {
    return error(Errc::kInternal, "ibv_query_device on " + where + ": " + errno_text(rc));
  }
  if (opts.ib_port == 0 || opts.ib_port > dev->dev_attr_.phys_port_cnt) {
    return error(Errc::kInvalidArgument, keys.verbs + ".ib_port = " + std::to_string(opts.ib_port) +
                                             ": " + where + " has ports 1.." +
                                             std::to_string(dev->dev_attr_.phys_port_cnt));
  }
  if (int rc = ibv_query_port(dev->ctx_.get(), opts.ib_port, &dev->port_attr_); rc != 0) {
    return error(Errc::kInternal, "ibv_query_port(" + std::to_string(opts.ib_port) + ") on " +
                                      where + ": " + errno_text(rc));
  }
  if (opts.gid_index >= 0) {
    errno = 0;
    if (int rc = ibv_query_gid(dev->ctx_.get(), opts.ib_port, opts.gid_index, &dev->gid_);
        rc != 0) {
      return error(Errc::kInvalidArgument, keys.verbs +
                                               ".gid_index = " + std::to_string(opts.gid_index) +
                                               ": ibv_query_gid on " + where +
                                               " failed: " + errno_text(errno ? errno : rc));
    }
  }
  // Validate the port and GID now, so a bad setting fails at start rather than at the first QP.
  auto probe = make_qp_info(dev->port_attr_, opts.ib_port, opts.gid_index, dev->gid_, 1, 0,
                            dev->name_, keys);
  if (!probe) return probe.status();
  dev->pd_.reset(ibv_alloc_pd(dev->ctx_.get()));
  if (!dev->pd_) {
    return error(Errc::kInternal, "ibv_alloc_pd on " + where + ": " + errno_text(errno));
  }
  FM_LOG_INFO(kTag, "opened RDMA device {} port {} ({}, MTU {}, LID {}, gid_index {})", dev->name_,
              int(opts.ib_port),
              dev->port_attr_.link_layer == IBV_LINK_LAYER_ETHERNET ? "RoCE" : "InfiniBand",
              mtu_name(dev->port_attr_.active_mtu), dev->port_attr_.lid, opts.gid_index);
  return dev;
}

Result<MrPtr> Device::register_memory(void* base, uint64_t len, int access) {
  if (base == nullptr || len == 0) {
    return error(Errc::kInvalidArgument, "cannot register an empty memory region");
  }
  MrPtr mr(ibv_reg_mr(pd_.get(), base, len, access));
  if (!mr) {
    const int e = errno;
    return error(
        e == ENOMEM ? Errc::kResourceExhausted : Errc::kInternal,
        fmt::format(
            "ibv_reg_mr of {} bytes at {} on RDMA device {}: {}{}", len, base, name_, errno_text(e),
            e == ENOMEM || e == EPERM ? " (raise the memlock limit: ulimit -l unlimited)" : ""));
  }
  return mr;
}

Result<RcQp> Device::create_rc_qp(uint32_t depth) {
  if (depth == 0)
    return error(Errc::kInvalidArgument, keys_.verbs + ".max_outstanding must be > 0");
  if (depth > uint32_t(dev_attr_.max_qp_wr) || depth > uint32_t(dev_attr_.max_cqe)) {
    return error(Errc::kInvalidArgument,
                 keys_.verbs + ".max_outstanding = " + std::to_string(depth) +
                     " exceeds RDMA device " + name_ + "'s limit (max_qp_wr " +
                     std::to_string(dev_attr_.max_qp_wr) + ", max_cqe " +
                     std::to_string(dev_attr_.max_cqe) + ")");
  }
  RcQp out;
  out.cq.reset(ibv_create_cq(ctx_.get(), int(depth), nullptr, nullptr, 0));
  if (!out.cq) {
    return error(Errc::kResourceExhausted, "ibv_create_cq(" + std::to_string(depth) + ") on " +
                                               name_ + ": " + errno_text(errno));
  }
  ibv_qp_init_attr init{};
  init.send_cq = out.cq.get();
  init.recv_cq = out.cq.get();
  init.qp_type = IBV_QPT_RC;
  init.sq_sig_all = 0;  // every WR we post asks for its completion explicitly
  init.cap.max_send_wr = depth;
  init.cap.max_recv_wr = 1;  // no receives are posted; some providers reject 0
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  init.cap.max_inline_data = 0;
  out.qp.reset(ibv_create_qp(pd_.get(), &init));
  if (!out.qp) {
    return error(Errc::kResourceExhausted, "ibv_create_qp (RC, depth " + std::to_string(depth) +
                                               ") on " + name_ + ": " + errno_text(errno));
  }
  return out;
}

Result<wire::QpInfo> Device::local_qp_info(const ibv_qp* qp) const {
  return make_qp_info(port_attr_, port_, gid_index_, gid_, qp->qp_num, random_psn(), name_, keys_);
}

Status Device::connect_qp(ibv_qp* qp, const wire::QpInfo& local, const wire::QpInfo& remote,
                          unsigned access) {
  // Both directions use the smaller of our limit and the knob; see kMaxRdAtomic.
  const uint8_t dest_rd = uint8_t(std::min<int>(kMaxRdAtomic, dev_attr_.max_qp_rd_atom));
  const uint8_t init_rd = uint8_t(std::min<int>(kMaxRdAtomic, dev_attr_.max_qp_init_rd_atom));
  auto fail = [&](const char* step, int rc) {
    return error(Errc::kInternal, fmt::format("ibv_modify_qp({}) of QP {} on {}: {}", step,
                                              qp->qp_num, name_, errno_text(rc)));
  };
  QpTransition init = init_transition(local.port, access);
  if (int rc = ibv_modify_qp(qp, &init.attr, init.mask); rc != 0) return fail("INIT", rc);
  auto rtr = rtr_transition(local, remote, dest_rd);
  if (!rtr) return rtr.status();
  if (int rc = ibv_modify_qp(qp, &rtr->attr, rtr->mask); rc != 0) return fail("RTR", rc);
  QpTransition rts = rts_transition(local, init_rd);
  if (int rc = ibv_modify_qp(qp, &rts.attr, rts.mask); rc != 0) return fail("RTS", rc);
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// VerbsControl.

Result<std::unique_ptr<VerbsControl>> VerbsControl::connect(const ChannelAddress& memnode,
                                                            uint16_t cores,
                                                            uint64_t region_bytes,
                                                            const AuthKey& key, int timeout_ms) {
  std::unique_ptr<VerbsControl> c(new VerbsControl());
  c->address_ = memnode.kind == ChannelAddress::Kind::kUnix
                    ? "unix:" + memnode.path
                    : "tcp:" + memnode.host + ":" + std::to_string(memnode.port);
  auto ch = Channel::connect(memnode, timeout_ms);
  if (!ch) return ch.status();
  c->channel_ = std::move(ch.value());

  HelloRequest req;
  req.transport = wire::TransportKind::kVerbs;
  req.cores = cores;
  req.region_bytes = region_bytes;
  char host[sizeof(wire::Hello::name)] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "compute");
  req.name = host;
  auto granted = client_handshake(c->channel_, req, key, c->address_, timeout_ms);
  if (!granted) return granted.status();
  if (granted->memfd >= 0) ::close(granted->memfd);
  const wire::HelloAck& ack = granted->ack;
  if (ack.pool_bytes == 0 || ack.pool_addr == 0) {
    return error(Errc::kInvalidArgument,
                 fmt::format("memory node at {} offers no verbs pool (pool_bytes {}, pool_addr "
                             "{:#x}): is it running with the verbs transport?",
                             c->address_, ack.pool_bytes, ack.pool_addr));
  }
  c->ack_ = ack;
  c->watcher_ = std::thread([raw = c.get()] { raw->watch(); });
  return c;
}

VerbsControl::~VerbsControl() {
  stopping_.store(true);
  if (channel_.is_open()) {
    {
      std::lock_guard<std::mutex> g(send_mu_);
      // Same shape as the memnode's Goodbye: a Heartbeat-sized message of type kGoodbye.
      wire::Heartbeat bye{wire::make_header<wire::Heartbeat>(wire::MsgType::kGoodbye), 0};
      (void)channel_.send(&bye, sizeof(bye));  // best effort: the peer may be gone already
    }
    ::shutdown(channel_.fd(), SHUT_RDWR);  // wakes the watcher's blocking receive
  }
  if (watcher_.joinable()) watcher_.join();
}

void VerbsControl::mark_dead(const std::string& why) {
  if (live_->alive.exchange(false, std::memory_order_acq_rel)) {
    if (!stopping_.load()) {
      FM_LOG_ERROR(kTag, "memory node at {} is gone: {}; far memory is unavailable", address_, why);
    }
  }
  std::lock_guard<std::mutex> g(mu_);
  cv_.notify_all();
}

void VerbsControl::watch() {
  std::vector<uint8_t> buf;
  const uint32_t hb = ack_.heartbeat_ms;
  Heartbeats beats(hb, kHeartbeatMisses, steady_ms());
  const int tick_ms = hb ? int(std::min<uint32_t>(hb / 2 + 1, 200)) : -1;
  for (;;) {
    auto t = channel_.recv(buf, tick_ms);
    const uint64_t now = steady_ms();
    if (!t && t.status().code() != Errc::kTimeout) {
      mark_dead(t.status().message());
      return;
    }
    if (t) {
      beats.heard(now);
      switch (*t) {
        case wire::MsgType::kQpAccept:
        case wire::MsgType::kError: {
          std::lock_guard<std::mutex> g(mu_);
          replies_.push_back(buf);
          cv_.notify_all();
          break;
        }
        case wire::MsgType::kHeartbeat:
          break;
        case wire::MsgType::kGoodbye:
          mark_dead("it said goodbye");
          return;
        default:
          FM_LOG_WARN(kTag, "memory node at {} sent an unexpected control message (type {})",
                      address_, int(*t));
          break;
      }
    }
    if (stopping_.load()) return;
    if (beats.peer_silent(now)) {
      mark_dead("it missed " + std::to_string(kHeartbeatMisses) + " heartbeats (" +
                std::to_string(hb) + " ms apart)");
      return;
    }
    if (beats.send_due(now)) {
      std::lock_guard<std::mutex> g(send_mu_);  // never exchange_mu_: exchange_qp holds it
                                                // while it waits for this thread
      wire::Heartbeat beat{wire::make_header<wire::Heartbeat>(wire::MsgType::kHeartbeat), 0};
      if (Status st = channel_.send(&beat, sizeof(beat)); !st) {
        mark_dead(st.message());
        return;
      }
    }
  }
}

Result<wire::QpInfo> VerbsControl::exchange_qp(uint16_t core, const wire::QpInfo& local,
                                               int timeout_ms) {
  std::lock_guard<std::mutex> ex(exchange_mu_);
  {
    std::lock_guard<std::mutex> g(mu_);
    replies_.clear();  // a late answer to an exchange that timed out
  }
  if (!alive()) {
    return error(Errc::kUnavailable, "memory node at " + address_ +
                                         " is gone; cannot connect core " + std::to_string(core) +
                                         "'s queue pair");
  }
  wire::QpConnect msg{};
  msg.h = wire::make_header<wire::QpConnect>(wire::MsgType::kQpConnect);
  msg.core = core;
  msg.qp = local;
  {
    std::lock_guard<std::mutex> g(send_mu_);
    FM_RETURN_IF_ERROR(channel_.send(&msg, sizeof(msg)));
  }

  std::unique_lock<std::mutex> lk(mu_);
  const bool got = cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms),
                                [&] { return !replies_.empty() || !alive(); });
  if (replies_.empty()) {
    return error(
        Errc::kUnavailable,
        "memory node at " + address_ +
            (got ? " went away" : " did not answer within " + std::to_string(timeout_ms) + " ms") +
            " while connecting core " + std::to_string(core) + "'s queue pair");
  }
  std::vector<uint8_t> reply = std::move(replies_.front());
  replies_.pop_front();
  lk.unlock();

  wire::MsgHeader h;
  std::memcpy(&h, reply.data(), sizeof(h));
  if (h.type == uint16_t(wire::MsgType::kError) && reply.size() == sizeof(wire::ErrorMsg)) {
    wire::ErrorMsg e;
    std::memcpy(&e, reply.data(), sizeof(e));
    e.reason[sizeof(e.reason) - 1] = 0;
    return error(Errc::kUnavailable, "memory node at " + address_ + " refused core " +
                                         std::to_string(core) + "'s queue pair: " + e.reason);
  }
  if (!wire::header_ok(h, wire::MsgType::kQpAccept, sizeof(wire::QpAccept)) ||
      reply.size() != sizeof(wire::QpAccept)) {
    return error(Errc::kInternal, "memory node at " + address_ + " sent a malformed answer (type " +
                                      std::to_string(h.type) + ", " + std::to_string(reply.size()) +
                                      " bytes) to QpConnect");
  }
  wire::QpAccept acc;
  std::memcpy(&acc, reply.data(), sizeof(acc));
  if (acc.core != core) {
    return error(Errc::kInternal, "memory node at " + address_ + " accepted core " +
                                      std::to_string(acc.core) + "'s queue pair, expected core " +
                                      std::to_string(core));
  }
  return acc.qp;
}

}  // namespace fm::paging::verbs
