// LocalArena: item memory in one anonymous mapping.
#include "kvapp/arena.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace fm::kv {

Result<std::unique_ptr<LocalArena>> LocalArena::create(uint64_t size_bytes) {
  if (size_bytes == 0) return error(Errc::kInvalidArgument, "arena size must be > 0");
  // MAP_NORESERVE: pages cost nothing until a slab is first written, so a large kv.memory_mb
  // does not commit memory up front (memcached also grows into its limit lazily).
  void* p = mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    return error(Errc::kResourceExhausted,
                 "mmap of " + std::to_string(size_bytes) +
                     " bytes for the kv arena failed: " + std::strerror(errno));
  }
  return std::unique_ptr<LocalArena>(new LocalArena(static_cast<std::byte*>(p), size_bytes));
}

LocalArena::~LocalArena() { munmap(base_, size_); }

}  // namespace fm::kv
