// The pool: a lease budget; per-lease sealed memfds (emulated) or ranges of one mapping (verbs).
#include "memnode/pool.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace fm::memnode {
namespace {

constexpr uint64_t k2M = 2ull << 20;
constexpr uint64_t k4K = 4096;

uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

std::string mib(uint64_t b) { return std::to_string(b >> 20) + " MiB"; }

/// A memfd of `bytes`, sealed so that nobody (its receivers included) can shrink or grow it.
Result<int> sealed_memfd(uint64_t bytes, bool huge, const char* name) {
  const int fd = ::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | (huge ? MFD_HUGETLB : 0));
  if (fd < 0)
    return error(Errc::kResourceExhausted, std::string("memfd_create: ") + std::strerror(errno));
  if (::ftruncate(fd, off_t(bytes)) != 0) {
    const int e = errno;
    ::close(fd);
    return error(Errc::kResourceExhausted,
                 "cannot size a lease to " + mib(bytes) + ": " + std::strerror(e));
  }
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    const int e = errno;
    ::close(fd);
    return error(Errc::kInternal, std::string("cannot seal a lease's memfd: ") + std::strerror(e));
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<Pool>> Pool::create(uint64_t bytes, HugepageMode huge, Kind kind) {
  std::unique_ptr<Pool> p(new Pool());
  p->kind_ = kind;
  p->huge_mode_ = huge;
  p->bytes_ = bytes;
  const bool fits_huge = bytes % k2M == 0 && free_hugepages_2m() >= bytes / k2M;
  if (huge == HugepageMode::kOn && !fits_huge) {
    return error(Errc::kResourceExhausted,
                 "memnode.hugepages = \"on\" but " + std::to_string(free_hugepages_2m()) +
                     " free 2 MiB hugepages cannot hold memnode.pool_mb = " +
                     std::to_string(bytes >> 20) + " (reserve more or set \"auto\")");
  }
  if (kind == Kind::kMemfdPerLease) {
    p->huge_ = huge != HugepageMode::kOff && fits_huge;
    return p;
  }
  if (huge != HugepageMode::kOff && fits_huge) {
    p->fd_ = ::memfd_create("farmem-pool", MFD_CLOEXEC | MFD_HUGETLB);
    p->huge_ = p->fd_ >= 0 && ::ftruncate(p->fd_, off_t(bytes)) == 0;
    if (!p->huge_ && p->fd_ >= 0) {
      ::close(p->fd_);
      p->fd_ = -1;
    }
  }
  if (p->fd_ < 0) {
    p->fd_ = ::memfd_create("farmem-pool", MFD_CLOEXEC);
    if (p->fd_ < 0)
      return error(Errc::kInternal, std::string("memfd_create: ") + std::strerror(errno));
    if (::ftruncate(p->fd_, off_t(bytes)) != 0) {
      return error(Errc::kResourceExhausted, "cannot size the pool to " + mib(bytes) +
                                                 " (memnode.pool_mb): " + std::strerror(errno));
    }
  }
  void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd_, 0);
  if (m == MAP_FAILED) {
    return error(Errc::kResourceExhausted,
                 "cannot map the pool of " + mib(bytes) + ": " + std::strerror(errno));
  }
  p->base_ = static_cast<std::byte*>(m);
  return p;
}

Pool::~Pool() {
  for (auto& [id, l] : by_id_) {
    if (l.memfd >= 0) ::close(l.memfd);
  }
  if (base_) ::munmap(base_, bytes_);
  if (fd_ >= 0) ::close(fd_);
}

Result<Lease> Pool::lease(uint64_t bytes, const std::string& who) {
  if (bytes == 0) return error(Errc::kInvalidArgument, who + " asked for an empty region");
  std::lock_guard<std::mutex> g(mu_);
  Lease l;
  l.id = next_id_;
  const auto refuse = [&](uint64_t need) {
    return error(Errc::kResourceExhausted,
                 who + " asked for " + mib(need) + " but the pool has " + mib(bytes_ - leased_) +
                     " free of " + mib(bytes_) + " (" + std::to_string(by_id_.size()) +
                     " lease(s) held): raise memnode.pool_mb or lower kv.memory_mb");
  };
  if (kind_ == Kind::kMemfdPerLease) {
    // Hugepages when the mode allows and enough are free now; "on" insists.
    bool huge = false;
    uint64_t size = round_up(bytes, k4K);
    if (huge_mode_ != HugepageMode::kOff) {
      const uint64_t hsize = round_up(bytes, k2M);
      if (free_hugepages_2m() >= hsize / k2M) {
        huge = true;
        size = hsize;
      } else if (huge_mode_ == HugepageMode::kOn) {
        return error(Errc::kResourceExhausted,
                     "memnode.hugepages = \"on\" but too few free 2 MiB hugepages remain for " +
                         who + "'s " + mib(hsize));
      }
    }
    if (size > bytes_ - leased_) return refuse(size);
    auto fd = sealed_memfd(size, huge, "farmem-lease");
    if (!fd && huge && huge_mode_ == HugepageMode::kAuto) {
      size = round_up(bytes, k4K);  // the hugepages went elsewhere meanwhile
      if (size > bytes_ - leased_) return refuse(size);
      fd = sealed_memfd(size, false, "farmem-lease");
    }
    if (!fd) return fd.status();
    l.memfd = *fd;
    l.bytes = size;
  } else {
    const uint64_t align = huge_ ? k2M : k4K;
    const uint64_t size = round_up(bytes, align);
    uint64_t at = 0;
    bool found = false;
    for (const auto& [off, held] : by_offset_) {  // first fit between leases
      if (off >= at && off - at >= size) {
        found = true;
        break;
      }
      at = round_up(off + held.bytes, align);
    }
    if (!found && (at > bytes_ || bytes_ - at < size)) return refuse(size);
    l.offset = at;
    l.bytes = size;
    std::memset(base_ + at, 0, size);  // nothing of an earlier tenant's pages survives
    by_offset_[at] = l;
  }
  ++next_id_;
  leased_ += l.bytes;
  by_id_[l.id] = l;
  return l;
}

void Pool::release(uint64_t id) {
  std::lock_guard<std::mutex> g(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  if (it->second.memfd >= 0) ::close(it->second.memfd);
  if (kind_ == Kind::kOneMapping) by_offset_.erase(it->second.offset);
  leased_ -= it->second.bytes;
  by_id_.erase(it);
}

uint64_t Pool::leased_bytes() const {
  std::lock_guard<std::mutex> g(mu_);
  return leased_;
}

size_t Pool::leases() const {
  std::lock_guard<std::mutex> g(mu_);
  return by_id_.size();
}

}  // namespace fm::memnode
