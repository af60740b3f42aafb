// The memory that holds item bytes, addressed by offset, and its local-memory implementation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "dataplane/result.h"

namespace fm::kv {

/// How a pinned range will be used; lets a far-memory arena skip fetches and track dirty pages.
enum class Access : uint8_t {
  kRead,       // read only
  kWrite,      // read-modify-write: fetch, then mark dirty
  kOverwrite,  // every byte will be written before it is read: no fetch needed for whole pages
};

/// Item memory addressed by byte offset, so that a far-memory implementation can map offsets to
/// 4 KiB pages and fetch them on demand. The store never keeps a pointer beyond the pin that
/// produced it: pin() opens a deref scope, unpin() closes it (AIFM's deref scope). While pinned,
/// the pages under the range must stay put. Ranges never straddle a page boundary unless they
/// are larger than a page, in which case they start on a page boundary.
/// Thread-safe: any core may pin any range; pins of one range may overlap.
class Arena {
 public:
  virtual ~Arena() = default;

  /// Total bytes addressable; offsets are in [0, size_bytes()).
  virtual uint64_t size_bytes() const = 0;

  /// Makes [offset, offset + len) addressable and returns its first byte, or nullptr when it
  /// cannot (a far arena whose memory node is gone, or with no frame to spare); a failed pin
  /// needs no unpin. A far-memory arena may fetch and wait (sync: busy-poll; async: the calling
  /// fiber yields), so never call it with a spinlock held; the local arena returns at once.
  virtual std::byte* pin(uint64_t offset, uint32_t len, Access access) = 0;

  /// pin() that never waits, fetches, yields or fails loudly: returns nullptr whenever the range
  /// is not addressable at once (the caller then drops its locks and calls pin()). Safe with a
  /// spinlock held. The default never succeeds, which is always correct.
  virtual std::byte* try_pin(uint64_t /*offset*/, uint32_t /*len*/, Access /*access*/) {
    return nullptr;
  }

  /// Ends the deref scope opened by the matching successful pin() or try_pin(); `data` is what
  /// it returned. Never waits or fails, so it may be called with a spinlock held.
  virtual void unpin(uint64_t offset, uint32_t len, std::byte* data) = 0;

  /// Where offset 0 lives when every offset is always resident at base + offset (a local
  /// arena), else nullptr: for prefetching item bytes without a pin.
  virtual const std::byte* local_base() const { return nullptr; }

  /// True when pin() may have to fetch (and wait, or yield) or fail.
  virtual bool may_fault() const { return false; }

  /// True when pin() of the range would not fetch now (a hint: it may change at once). Never
  /// waits. Local memory is always resident.
  virtual bool resident(uint64_t /*offset*/, uint32_t /*len*/) const { return true; }
};

/// An Arena in ordinary local memory: one anonymous mapping, committed lazily by the kernel.
class LocalArena final : public Arena {
 public:
  /// Maps `size_bytes` of anonymous memory. Control path; may fail with kResourceExhausted.
  static Result<std::unique_ptr<LocalArena>> create(uint64_t size_bytes);
  ~LocalArena() override;
  LocalArena(const LocalArena&) = delete;
  LocalArena& operator=(const LocalArena&) = delete;

  uint64_t size_bytes() const override { return size_; }
  std::byte* pin(uint64_t offset, uint32_t /*len*/, Access /*access*/) override {
    return base_ + offset;
  }
  std::byte* try_pin(uint64_t offset, uint32_t /*len*/, Access /*access*/) override {
    return base_ + offset;
  }
  void unpin(uint64_t /*offset*/, uint32_t /*len*/, std::byte* /*data*/) override {}
  const std::byte* local_base() const override { return base_; }

 private:
  LocalArena(std::byte* base, uint64_t size) : base_(base), size_(size) {}
  std::byte* base_;
  uint64_t size_;
};

/// RAII deref scope: pins a range for the lifetime of this object, or until release(). A failed
/// pin (data() == nullptr) is never unpinned. Check data() (or the bool) before using it.
class ArenaPin {
 public:
  ArenaPin(Arena& arena, uint64_t offset, uint32_t len, Access access)
      : arena_(arena), offset_(offset), len_(len), data_(arena.pin(offset, len, access)) {}
  ~ArenaPin() { release(); }
  ArenaPin(const ArenaPin&) = delete;
  ArenaPin& operator=(const ArenaPin&) = delete;

  /// The first byte of the range; nullptr when the pin failed or after release().
  std::byte* data() const { return data_; }
  explicit operator bool() const { return data_ != nullptr; }

  /// Ends the deref scope now (no-op when the pin failed or was released). Never waits.
  void release() {
    if (data_ != nullptr) arena_.unpin(offset_, len_, data_);
    data_ = nullptr;
  }

 private:
  Arena& arena_;
  uint64_t offset_;
  uint32_t len_;
  std::byte* data_;
};

}  // namespace fm::kv
