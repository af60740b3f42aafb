// Slab geometry: chunk size classes and where each chunk lies, so no chunk straddles a page.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dataplane/result.h"
#include "kvapp/tuning.h"

namespace fm::kv {

/// One slab class: every chunk of it has the same size.
struct SlabClass {
  uint32_t chunk_size = 0;       // bytes for key + value
  uint32_t chunks_per_page = 0;  // > 0: a sub-page class, chunks packed inside single pages
  uint32_t pages_per_chunk = 0;  // > 0: a multi-page class, each chunk whole contiguous pages
  uint32_t chunks_per_slab = 0;
};

/// The slab classes for one store. A slab is item_size_max rounded up to whole pages (memcached
/// also makes its slab page the item size limit); a class takes whole slabs from the arena and
/// carves them into chunks. Sub-page chunk sizes grow by the growth factor and are then widened
/// to divide a page evenly (4096 / k, 8-byte aligned), so a chunk never straddles a 4 KiB page
/// and no page tail is wasted beyond alignment; chunks larger than a page are whole contiguous
/// pages starting on a page boundary. Immutable after build(); any thread.
class SlabGeometry {
 public:
  /// Builds the classes. Control path. Fails (naming the config key) when the factor yields more
  /// than kMaxSlabClasses classes or the sizes are out of range.
  static Result<SlabGeometry> build(uint32_t item_size_max, double growth_factor);

  uint32_t slab_bytes() const { return slab_bytes_; }
  size_t class_count() const { return classes_.size(); }
  const SlabClass& cls(size_t id) const { return classes_[id]; }
  uint32_t max_chunks_per_slab() const { return max_chunks_per_slab_; }
  /// Bits an entry id needs for a chunk index within a slab (at least 1).
  uint32_t index_bits() const {
    uint32_t b = 1;
    while ((uint64_t{1} << b) < max_chunks_per_slab_) ++b;
    return b;
  }

  /// The smallest class whose chunks hold `bytes`, or -1 when `bytes` exceeds the largest chunk.
  int class_for(uint32_t bytes) const;

  /// Byte offset of chunk `index` from the start of its slab.
  static uint64_t chunk_offset_in_slab(const SlabClass& c, uint32_t index) {
    if (c.chunks_per_page != 0) {
      return uint64_t{index / c.chunks_per_page} * kPageSize +
             uint64_t{index % c.chunks_per_page} * c.chunk_size;
    }
    return uint64_t{index} * c.pages_per_chunk * kPageSize;
  }

 private:
  uint32_t slab_bytes_ = 0;
  uint32_t max_chunks_per_slab_ = 0;
  std::vector<SlabClass> classes_;
};

}  // namespace fm::kv
