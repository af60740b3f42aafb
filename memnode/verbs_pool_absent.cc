// VerbsPool for builds without libibverbs: create() explains; nothing else is reachable.
#include "memnode/verbs_pool.h"

namespace fm::memnode {

struct VerbsPool::Impl {};

VerbsPool::VerbsPool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VerbsPool::~VerbsPool() = default;

Result<std::unique_ptr<VerbsPool>> VerbsPool::create(const paging::VerbsOptions&, void*, uint64_t,
                                                     const VerbsPoolKeys& keys) {
  return error(Errc::kUnavailable, keys.transport +
                                       " = \"verbs\": this memnode was built without libibverbs "
                                       "(meson -Drdma=enabled needs libibverbs-dev); use " +
                                       keys.transport + " = \"emulated\"");
}

uint64_t VerbsPool::pool_addr() const { return 0; }
uint32_t VerbsPool::rkey() const { return 0; }
uint64_t VerbsPool::pool_bytes() const { return 0; }

Result<uint32_t> VerbsPool::register_lease(uint64_t, uint64_t, uint64_t) {
  return error(Errc::kUnavailable, "built without libibverbs");
}

Result<paging::wire::QpInfo> VerbsPool::accept(const paging::wire::QpInfo&, uint64_t) {
  return error(Errc::kUnavailable, "built without libibverbs");
}

void VerbsPool::release(uint64_t) {}

size_t VerbsPool::queue_pairs() const { return 0; }

}  // namespace fm::memnode
