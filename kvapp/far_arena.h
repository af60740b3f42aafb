// The store's arena in far memory: item bytes live in a paging::Region; pin() is the fetch
// boundary (it may fault and wait), unpin() ends the deref scope.
#pragma once

#include "kvapp/arena.h"
#include "paging/region.h"

namespace fm::kv {

/// The paging core of the calling thread's dataplane core (paging::current_core()). Set per
/// core before it serves requests; a fiber that moves to another core reads the new value.
inline paging::PagingCore*& current_paging_core() { return paging::current_core(); }

class FarArena final : public Arena {
 public:
  explicit FarArena(paging::Region& region) : region_(region) {}

  uint64_t size_bytes() const override { return region_.bytes(); }

  std::byte* pin(uint64_t offset, uint32_t len, Access access) override {
    return region_.pin(*current_paging_core(), offset, len, to_pin(access));
  }
  std::byte* try_pin(uint64_t offset, uint32_t len, Access access) override {
    return region_.try_pin(*current_paging_core(), offset, len, to_pin(access));
  }
  void unpin(uint64_t offset, uint32_t len, std::byte* data) override {
    region_.unpin(*current_paging_core(), offset, len, data);
  }
  bool may_fault() const override { return true; }
  bool resident(uint64_t offset, uint32_t len) const override {
    return region_.resident(offset) && (len <= 1 || region_.resident(offset + len - 1));
  }

 private:
  static paging::PinAccess to_pin(Access a) {
    switch (a) {
      case Access::kRead: return paging::PinAccess::kRead;
      case Access::kWrite: return paging::PinAccess::kWrite;
      case Access::kOverwrite: return paging::PinAccess::kOverwrite;
    }
    return paging::PinAccess::kWrite;
  }
  paging::Region& region_;
};

}  // namespace fm::kv
