// A per-core pool of preallocated objects (fibers, request buffers): a ring that any core frees
// into, and spares that the owning core frees into and takes back without a ring operation.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "dataplane/check.h"
#include "dataplane/ring.h"

namespace fm::sched {

/// A pool of T* owned by one core. The owner takes from its spares first, then from the ring;
/// what the owner frees stays a spare while there is room, what other cores free goes through
/// the ring (MP: any core frees, SC: only the owner takes). take() and empty() owner only;
/// give() any core. Neither allocates.
template <typename T>
class SparePool {
 public:
  /// `ring_count`: the ring's size (a power of two above everything the pool ever holds);
  /// `spares`: how many the owner keeps off the ring. Control path: allocates both once.
  SparePool(const std::string& name, unsigned ring_count, size_t spares)
      : ring_(name, ring_count, RingMode::kMpSc) {
    spares_.reserve(spares);
  }

  /// A free object, or nullptr when the pool is empty. Owner only.
  T* take() {
    if (!spares_.empty()) {
      T* v = spares_.back();
      spares_.pop_back();
      return v;
    }
    return ring_.pop();
  }
  /// Whether take() would return nullptr. Owner only.
  bool empty() const { return spares_.empty() && ring_.empty(); }
  /// Returns `v` to this pool. `by_owner`: the caller is the pool's owner, so it may keep `v` as
  /// a spare (only the owner touches them); past the spares' capacity it goes to the ring, so
  /// the vector never grows while serving. The ring holds the whole pool: a failed push means a
  /// double free or an object of another pool. Any core.
  void give(T* v, bool by_owner) {
    if (by_owner && spares_.size() < spares_.capacity()) {
      spares_.push_back(v);
    } else {
      FM_CHECK(ring_.push(v));
    }
  }

 private:
  Ring<T> ring_;
  std::vector<T*> spares_;
};

}  // namespace fm::sched
