// The memory node's registered pool and responder RC queue pairs (libibverbs).
#include "memnode/verbs_pool.h"

#include <cstddef>
#include <mutex>
#include <vector>

#include "dataplane/log.h"
#include "paging/verbs_common.h"

namespace fm::memnode {

namespace verbs = paging::verbs;

struct VerbsPool::Impl {
  struct Held {
    uint64_t session;
    verbs::RcQp rc;
  };
  struct LeaseMr {
    uint64_t session;
    verbs::MrPtr mr;
  };
  // Members die in reverse order: the QPs, then the MR, then the device and its PD.
  std::shared_ptr<verbs::Device> dev;
  verbs::MrPtr mr;
  uint64_t bytes = 0;
  mutable std::mutex mu;
  std::vector<LeaseMr> leases;  // declared first: destroyed after the QPs that address them
  std::vector<Held> qps;
};

VerbsPool::VerbsPool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VerbsPool::~VerbsPool() = default;

Result<std::unique_ptr<VerbsPool>> VerbsPool::create(const paging::VerbsOptions& opts, void* base,
                                                     uint64_t bytes, const VerbsPoolKeys& names) {
  verbs::ConfigKeys keys;
  keys.transport = names.transport;
  keys.verbs = names.verbs;
  auto dev = verbs::Device::open(opts, keys);
  if (!dev) return dev.status();
  auto impl = std::make_unique<Impl>();
  impl->dev = std::move(dev.value());
  auto mr = impl->dev->register_memory(
      base, bytes, IBV_ACCESS_LOCAL_WRITE);
  if (!mr) return mr.status();
  impl->mr = std::move(mr.value());
  impl->bytes = bytes;
  FM_LOG_INFO("memnode", "registered the {}-byte pool with RDMA device {} (rkey {:#x})", bytes,
              impl->dev->name(), impl->mr->rkey);
  return std::unique_ptr<VerbsPool>(new VerbsPool(std::move(impl)));
}

uint64_t VerbsPool::pool_addr() const { return reinterpret_cast<uint64_t>(impl_->mr->addr); }
uint32_t VerbsPool::rkey() const { return impl_->mr->rkey; }
uint64_t VerbsPool::pool_bytes() const { return impl_->bytes; }

Result<uint32_t> VerbsPool::register_lease(uint64_t offset, uint64_t bytes, uint64_t session) {
  if (offset > impl_->bytes || bytes > impl_->bytes - offset) {
    return error(Errc::kInvalidArgument, "a lease outside the registered pool");
  }
  std::lock_guard<std::mutex> g(impl_->mu);
  auto* base = static_cast<std::byte*>(impl_->mr->addr) + offset;
  auto mr = impl_->dev->register_memory(
      base, bytes, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE);
  if (!mr) return mr.status();
  const uint32_t rkey = mr.value()->rkey;
  impl_->leases.push_back(Impl::LeaseMr{session, std::move(mr.value())});
  return rkey;
}

Result<paging::wire::QpInfo> VerbsPool::accept(const paging::wire::QpInfo& compute_qp,
                                               uint64_t session) {
  std::lock_guard<std::mutex> g(impl_->mu);
  // The memory node only answers: one send slot and a tiny CQ suffice; incoming READs use the
  // responder resources set in RTR, not the send queue.
  auto rc = impl_->dev->create_rc_qp(1);
  if (!rc) return rc.status();
  auto local = impl_->dev->local_qp_info(rc->qp.get());
  if (!local) return local.status();
  FM_RETURN_IF_ERROR(impl_->dev->connect_qp(rc->qp.get(), *local, compute_qp,
                                            IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE));
  impl_->qps.push_back(Impl::Held{session, std::move(rc.value())});
  return *local;
}

void VerbsPool::release(uint64_t session) {
  std::lock_guard<std::mutex> g(impl_->mu);
  std::erase_if(impl_->qps, [&](const Impl::Held& h) { return h.session == session; });
  std::erase_if(impl_->leases, [&](const Impl::LeaseMr& l) { return l.session == session; });
}

size_t VerbsPool::queue_pairs() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->qps.size();
}

}  // namespace fm::memnode
