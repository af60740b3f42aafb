// A bounded lock-free ring of pointers (rte_ring on our own memory, so it needs no EAL).
#pragma once

#include <rte_ring.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "dataplane/check.h"
#include "dataplane/sanitizers.h"
#if FM_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace fm {

/// Producer/consumer modes, mapped to rte_ring's flags.
enum class RingMode : uint8_t {
  kSpSc,  // one producer core, one consumer core
  kMpSc,  // many producers (remote wake-ups), one consumer
  kSpMc,  // one producer core, many consumers (its run queue, which idle cores steal from)
  kMpMc,  // many producers, many consumers (work stealing)
};

/// A ring of T* with capacity `count` (a power of two; holds count - 1). Any core per its mode.
template <typename T>
class Ring {
 public:
  Ring(const std::string& name, unsigned count, RingMode mode) {
    unsigned flags = 0;
    if (mode == RingMode::kSpSc) flags = RING_F_SP_ENQ | RING_F_SC_DEQ;
    if (mode == RingMode::kMpSc) flags = RING_F_SC_DEQ;
    if (mode == RingMode::kSpMc) flags = RING_F_SP_ENQ;
    const ssize_t bytes = rte_ring_get_memsize(count);
    FM_CHECK_MSG(bytes > 0, "ring size must be a power of two");
    mem_ = static_cast<rte_ring*>(std::aligned_alloc(64, (size_t(bytes) + 63) & ~size_t(63)));
    FM_CHECK(mem_ != nullptr);
    FM_CHECK(rte_ring_init(mem_, name.substr(0, RTE_RING_NAMESIZE - 1).c_str(), count, flags) == 0);
  }
  ~Ring() { std::free(mem_); }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  /// False when full.
  bool push(T* v) {
#if FM_TSAN
    // rte_ring publishes through inline asm that TSan cannot see: hand the element over by hand.
    // Before the enqueue, since a consumer may take it at once; a failed push only over-orders.
    __tsan_release(v);
#endif
    return rte_ring_enqueue(mem_, v) == 0;
  }
  /// nullptr when empty.
  T* pop() {
    void* v = nullptr;
    if (rte_ring_dequeue(mem_, &v) != 0) return nullptr;
#if FM_TSAN
    __tsan_acquire(v);
#endif
    return static_cast<T*>(v);
  }
  unsigned size() const { return rte_ring_count(mem_); }
  bool empty() const { return rte_ring_empty(mem_); }
  unsigned capacity() const { return rte_ring_get_capacity(mem_); }

 private:
  rte_ring* mem_ = nullptr;
};

}  // namespace fm
