// The pool: memfd_create, sized, mapped once so verbs can register it.
#include "memnode/pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace fm::memnode {

Result<std::unique_ptr<Pool>> Pool::create(uint64_t bytes, HugepageMode huge) {
  constexpr uint64_t k2M = 2ull << 20;
  std::unique_ptr<Pool> p(new Pool());
  const bool want_huge = huge != HugepageMode::kOff && bytes % k2M == 0 &&
                         free_hugepages_2m() >= bytes / k2M;
  if (huge == HugepageMode::kOn && !want_huge) {
    return error(Errc::kResourceExhausted,
                 "memnode.hugepages = \"on\" but " + std::to_string(free_hugepages_2m()) +
                     " free 2 MiB hugepages cannot hold memnode.pool_mb = " +
                     std::to_string(bytes >> 20) + " (reserve more or set \"auto\")");
  }
  if (want_huge) {
    p->fd_ = ::memfd_create("farmem-pool", MFD_CLOEXEC | MFD_HUGETLB);
    p->huge_ = p->fd_ >= 0 && ::ftruncate(p->fd_, off_t(bytes)) == 0;
    if (!p->huge_ && p->fd_ >= 0) {
      ::close(p->fd_);
      p->fd_ = -1;
    }
  }
  if (p->fd_ < 0) {
    p->fd_ = ::memfd_create("farmem-pool", MFD_CLOEXEC);
    if (p->fd_ < 0) return error(Errc::kInternal, std::string("memfd_create: ") + std::strerror(errno));
    if (::ftruncate(p->fd_, off_t(bytes)) != 0) {
      return error(Errc::kResourceExhausted, "cannot size the pool to " + std::to_string(bytes >> 20) +
                                                 " MiB (memnode.pool_mb): " + std::strerror(errno));
    }
  }
  void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd_, 0);
  if (m == MAP_FAILED) {
    return error(Errc::kResourceExhausted, "cannot map the pool of " + std::to_string(bytes >> 20) +
                                               " MiB: " + std::strerror(errno));
  }
  p->base_ = static_cast<std::byte*>(m);
  p->bytes_ = bytes;
  return p;
}

Pool::~Pool() {
  if (base_) ::munmap(base_, bytes_);
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace fm::memnode
