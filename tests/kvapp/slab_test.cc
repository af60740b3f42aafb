// Unit tests of the slab geometry: class sizes, and no chunk ever straddling a 4 KiB page.
#include "kvapp/slab.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "kv_test_util.h"

namespace fm::kv {
namespace {

using testing::bytes;
using testing::kNow;
using testing::make_store;

bool straddles(uint64_t offset, uint64_t len) {
  return len > 0 && offset / kPageSize != (offset + len - 1) / kPageSize;
}

struct GeometryCase {
  uint32_t item_size_max;
  double factor;
};

class SlabGeometryTest : public ::testing::TestWithParam<GeometryCase> {};

TEST_P(SlabGeometryTest, ChunksNeverStraddlePagesAndNeverOverlap) {
  const auto [item_size_max, factor] = GetParam();
  auto g = SlabGeometry::build(item_size_max, factor);
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  EXPECT_EQ(g->slab_bytes() % kPageSize, 0u);
  EXPECT_GE(g->slab_bytes(), item_size_max);
  uint32_t prev = 0;
  for (size_t id = 0; id < g->class_count(); ++id) {
    const SlabClass& c = g->cls(id);
    EXPECT_GT(c.chunk_size, prev) << "class sizes must grow";
    prev = c.chunk_size;
    EXPECT_EQ(c.chunk_size % 8, 0u);
    EXPECT_GT(c.chunks_per_slab, 0u);
    if (c.chunk_size <= kPageSize) {
      EXPECT_EQ(c.chunks_per_page, kPageSize / c.chunk_size);
    } else {
      EXPECT_EQ(c.chunk_size % kPageSize, 0u);
      EXPECT_EQ(c.pages_per_chunk * kPageSize, c.chunk_size);
    }
    uint64_t end_of_prev = 0;
    for (uint32_t i = 0; i < c.chunks_per_slab; ++i) {
      const uint64_t off = SlabGeometry::chunk_offset_in_slab(c, i);
      ASSERT_GE(off, end_of_prev) << "class " << id << " chunk " << i;
      ASSERT_LE(off + c.chunk_size, g->slab_bytes());
      if (c.chunk_size <= kPageSize) {
        ASSERT_FALSE(straddles(off, c.chunk_size)) << "class " << id << " chunk " << i;
      } else {
        ASSERT_EQ(off % kPageSize, 0u) << "multi-page chunks start on a page";
      }
      end_of_prev = off + c.chunk_size;
    }
  }
  EXPECT_EQ(g->cls(g->class_count() - 1).chunk_size, g->slab_bytes());
}

INSTANTIATE_TEST_SUITE_P(Configs, SlabGeometryTest,
                         ::testing::Values(GeometryCase{1 << 20, 1.25}, GeometryCase{4096, 1.25},
                                           GeometryCase{65536, 2.0}, GeometryCase{100000, 1.07},
                                           GeometryCase{1 << 20, 4.0}));

TEST(SlabGeometryTest, ClassForPicksTheSmallestFit) {
  auto g = SlabGeometry::build(1 << 20, 1.25);
  ASSERT_TRUE(g.is_ok());
  EXPECT_EQ(g->class_for(1), 0);
  EXPECT_EQ(g->class_for(64), 0);
  EXPECT_EQ(g->class_for(65), 1);
  for (uint32_t b : {1u, 100u, 1000u, 4095u, 4096u, 4097u, 50000u, 1u << 20}) {
    const int id = g->class_for(b);
    ASSERT_GE(id, 0);
    EXPECT_GE(g->cls(id).chunk_size, b);
    if (id > 0) {
      EXPECT_LT(g->cls(id - 1).chunk_size, b);
    }
  }
  EXPECT_EQ(g->class_for((1 << 20) + 1), -1);
  EXPECT_EQ(g->cls(0).chunk_size, kMinChunkSize);
}

TEST(SlabGeometryTest, RejectsBadFactors) {
  for (double f : {0.5, 1.0, 1.0001, 4.5}) {
    auto g = SlabGeometry::build(1 << 20, f);
    ASSERT_FALSE(g.is_ok()) << f;
    EXPECT_NE(g.status().message().find("kv.slab_growth_factor"), std::string::npos);
  }
}

TEST(SlabStoreTest, StoredItemsNeverStraddleAPage) {
  StoreOptions o = testing::small_options();
  o.memory_mb = 16;
  auto s = make_store(o);
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(0, 5000);
  std::uniform_int_distribution<int> large(4000, 200000);
  for (int i = 0; i < 3000; ++i) {
    const std::string key = "key" + std::to_string(i);
    const size_t size = i % 10 == 0 ? large(rng) : small(rng);
    StoreRequest r;
    r.key = key;
    const std::string value(size, static_cast<char>('a' + i % 26));
    r.value = bytes(value);
    const StoreOutcome out = s->store(r, kNow);
    ASSERT_TRUE(out == StoreOutcome::kStored || out == StoreOutcome::kNoMemory);
    uint64_t off = 0;
    uint32_t len = 0;
    if (!s->locate(key, kNow, &off, &len)) continue;
    ASSERT_EQ(len, key.size() + size);
    if (len <= kPageSize) {
      ASSERT_FALSE(straddles(off, len)) << key << " at " << off << " len " << len;
    } else {
      ASSERT_EQ(off % kPageSize, 0u) << key;
    }
    ASSERT_LE(off + len, s->arena().size_bytes());
  }
}

}  // namespace
}  // namespace fm::kv
