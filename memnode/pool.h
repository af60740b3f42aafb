// The memory node's pool: a budget of memory that compute nodes lease, one region each, so that
// several compute nodes can share one memory node without seeing each other's pages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "dataplane/eal.h"
#include "dataplane/result.h"

namespace fm::memnode {

/// One compute node's region.
struct Lease {
  uint64_t id = 0;
  uint64_t offset = 0;  // kOneMapping: where the region starts in the pool's mapping
  uint64_t bytes = 0;   // the region's size (the request rounded up to the page size in use)
  int memfd = -1;       // kMemfdPerLease: the region's sealed memfd (the pool owns it)
};

class Pool {
 public:
  enum class Kind : uint8_t {
    // Emulated transport: each lease is a memfd of its own, sealed against shrinking and
    // growing, handed to its compute node only; nothing else of the pool is reachable.
    kMemfdPerLease,
    // Verbs: one mapping (registered with the device once); leases are disjoint ranges of it,
    // zeroed when leased, each with a memory region of its own.
    kOneMapping,
  };

  /// A pool of `bytes` (hugepages per `huge`: auto falls back to 4 KiB pages). kOneMapping maps
  /// it all now; kMemfdPerLease only checks that "on" can be met and creates nothing yet.
  static Result<std::unique_ptr<Pool>> create(uint64_t bytes, HugepageMode huge, Kind kind);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  /// Leases a region of at least `bytes` to compute node `who` (for messages). Thread-safe.
  /// kResourceExhausted, saying how much is free, when it does not fit.
  Result<Lease> lease(uint64_t bytes, const std::string& who);
  /// Ends lease `id` (goodbye or death of its compute node); its memory returns to the budget.
  /// Thread-safe; an unknown id is ignored.
  void release(uint64_t id);

  Kind kind() const { return kind_; }
  std::byte* base() const { return base_; }  // kOneMapping only
  uint64_t bytes() const { return bytes_; }
  bool hugepages() const { return huge_; }
  uint64_t leased_bytes() const;
  size_t leases() const;

 private:
  Pool() = default;
  Kind kind_ = Kind::kMemfdPerLease;
  HugepageMode huge_mode_ = HugepageMode::kAuto;
  int fd_ = -1;                // kOneMapping
  std::byte* base_ = nullptr;  // kOneMapping
  uint64_t bytes_ = 0;
  bool huge_ = false;
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;
  uint64_t leased_ = 0;
  std::map<uint64_t, Lease> by_offset_;  // kOneMapping: leases ordered by offset (first fit)
  std::map<uint64_t, Lease> by_id_;
};

}  // namespace fm::memnode
