// The memory node's pool: a memfd (hugepage-backed when it can be) mapped here, shareable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "dataplane/eal.h"
#include "dataplane/result.h"

namespace fm::memnode {

class Pool {
 public:
  /// Creates a pool of `bytes` (hugepages per `huge`: auto falls back to 4 KiB pages).
  static Result<std::unique_ptr<Pool>> create(uint64_t bytes, HugepageMode huge);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int memfd() const { return fd_; }
  std::byte* base() const { return base_; }
  uint64_t bytes() const { return bytes_; }
  bool hugepages() const { return huge_; }

 private:
  Pool() = default;
  int fd_ = -1;
  std::byte* base_ = nullptr;
  uint64_t bytes_ = 0;
  bool huge_ = false;
};

}  // namespace fm::memnode
