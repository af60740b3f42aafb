// The memnode's verbs side: VerbsPool behind the server's VerbsAcceptor seam.
#include "memnode/verbs_acceptor.h"

#include "memnode/verbs_pool.h"

namespace fm::memnode {
namespace {

class PoolAcceptor final : public VerbsAcceptor {
 public:
  explicit PoolAcceptor(std::unique_ptr<VerbsPool> pool) : pool_(std::move(pool)) {}
  uint64_t pool_addr() const override { return pool_->pool_addr(); }
  Result<uint32_t> lease_rkey(uint64_t offset, uint64_t bytes, uint64_t session) override {
    return pool_->register_lease(offset, bytes, session);
  }
  Result<paging::wire::QpInfo> accept(const paging::wire::QpInfo& peer, uint64_t session) override {
    return pool_->accept(peer, session);
  }
  void release(uint64_t session) override { pool_->release(session); }

 private:
  std::unique_ptr<VerbsPool> pool_;
};

}  // namespace

Result<std::unique_ptr<VerbsAcceptor>> make_verbs_acceptor(const paging::VerbsOptions& opts,
                                                           std::byte* pool, uint64_t bytes) {
  auto vp = VerbsPool::create(opts, pool, bytes);
  if (!vp) return vp.status();
  return std::unique_ptr<VerbsAcceptor>(new PoolAcceptor(std::move(vp.value())));
}

}  // namespace fm::memnode
