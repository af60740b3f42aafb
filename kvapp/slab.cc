// Slab geometry: building the chunk size classes.
#include "kvapp/slab.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace fm::kv {

Result<SlabGeometry> SlabGeometry::build(uint32_t item_size_max, double growth_factor) {
  if (!(growth_factor > 1.0) || growth_factor > 4.0) {
    return error(Errc::kInvalidArgument, "kv.slab_growth_factor must be > 1.0 and <= 4.0");
  }
  if (item_size_max < kPageSize) {
    return error(Errc::kInvalidArgument,
                 "kv.item_size_max must be >= " + std::to_string(kPageSize));
  }
  SlabGeometry g;
  const uint32_t slab_pages = (item_size_max + kPageSize - 1) / kPageSize;
  g.slab_bytes_ = slab_pages * kPageSize;

  auto add = [&](SlabClass c) { g.classes_.push_back(c); };

  // Sub-page classes: geometric growth, each size widened to divide a page evenly.
  double want = kMinChunkSize;
  uint32_t last = 0;
  while (last < kPageSize) {
    uint32_t size =
        std::min<uint32_t>(kPageSize, (static_cast<uint32_t>(std::ceil(want)) + 7) & ~7u);
    const uint32_t per_page = kPageSize / size;
    const uint32_t chunk = (kPageSize / per_page) & ~7u;
    if (chunk > last) {
      add(SlabClass{chunk, per_page, 0, per_page * slab_pages});
      last = chunk;
    }
    want = std::max<double>(last + 8, last * growth_factor);
  }
  // Multi-page classes: whole pages, growing by the same factor up to the whole slab.
  uint32_t pages = 1;
  while (pages < slab_pages) {
    pages = std::min(slab_pages,
                     std::max(pages + 1, static_cast<uint32_t>(std::ceil(pages * growth_factor))));
    add(SlabClass{pages * kPageSize, 0, pages, slab_pages / pages});
  }
  if (g.classes_.size() > kMaxSlabClasses) {
    return error(Errc::kInvalidArgument,
                 "kv.slab_growth_factor " + std::to_string(growth_factor) + " gives " +
                     std::to_string(g.classes_.size()) + " slab classes; at most " +
                     std::to_string(kMaxSlabClasses) + " are allowed (raise the factor)");
  }
  for (const SlabClass& c : g.classes_) {
    g.max_chunks_per_slab_ = std::max(g.max_chunks_per_slab_, c.chunks_per_slab);
  }
  return g;
}

int SlabGeometry::class_for(uint32_t bytes) const {
  auto it = std::lower_bound(classes_.begin(), classes_.end(), bytes,
                             [](const SlabClass& c, uint32_t b) { return c.chunk_size < b; });
  if (it == classes_.end()) return -1;
  return static_cast<int>(it - classes_.begin());
}

}  // namespace fm::kv
