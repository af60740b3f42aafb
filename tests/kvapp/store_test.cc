// Unit tests of the Store: storage semantics, expiry, flush_all, eviction, options.
#include "kvapp/store.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "kv_test_util.h"

namespace fm::kv {
namespace {

using testing::bytes;
using testing::Client;
using testing::kNow;
using testing::make_store;
using testing::peek;
using testing::small_options;

StoreOutcome put(Store& s, std::string_view key, std::string_view value,
                 StoreMode mode = StoreMode::kSet, int64_t expires_at = 0, uint32_t flags = 0,
                 uint64_t cas = 0, int64_t now = kNow) {
  StoreRequest r;
  r.mode = mode;
  r.key = key;
  r.value = bytes(value);
  r.flags = flags;
  r.expires_at = expires_at;
  r.cas = cas;
  return s.store(r, now);
}

// The command semantics hold on local memory (under-lock fast paths) and on an arena that the
// store must treat like far memory (every key check and read-modify-write reads with no lock
// held and re-validates).
class StoreTest : public ::testing::TestWithParam<bool> {
 protected:
  std::unique_ptr<Store> make_store(const StoreOptions& o = small_options()) {
    return GetParam() ? testing::make_store_on(
                            o, std::make_unique<testing::WaitingArena>(uint64_t{o.memory_mb} << 20))
                      : testing::make_store(o);
  }
};
INSTANTIATE_TEST_SUITE_P(Arenas, StoreTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "ReadCopyRetry" : "Local";
                         });

// Far memory lost every copy of some pages: the items on them are dropped (counted), without
// reading their bytes; the others stay, and the freed chunks are reused.
TEST_P(StoreTest, DropLostForgetsExactlyTheItemsOnLostPages) {
  auto s = make_store();
  const std::string value(300, 'x');
  std::map<std::string, uint64_t> where;
  for (int i = 0; i < 200; ++i) {
    const std::string k = "key" + std::to_string(i);
    ASSERT_EQ(put(*s, k, value), StoreOutcome::kStored);
    uint64_t off = 0;
    uint32_t len = 0;
    ASSERT_TRUE(s->locate(k, kNow, &off, &len));
    where[k] = off;
  }
  // "Lose" every other 4 KiB page of the arena.
  auto page_lost = [](uint64_t page) { return page % 2 == 1; };
  const uint64_t dropped = s->drop_lost(
      [&](uint64_t off, uint32_t size) {
        for (uint64_t p = off / 4096; p <= (off + size - 1) / 4096; ++p)
          if (page_lost(p)) return true;
        return false;
      },
      kNow);
  EXPECT_GT(dropped, 0u);
  EXPECT_LT(dropped, 200u);
  EXPECT_EQ(s->stats().lost_items, dropped);
  EXPECT_EQ(s->stats().curr_items, 200u - dropped);
  uint64_t misses = 0;
  for (const auto& [k, off] : where) {
    const std::string got = peek(*s, k);
    if (got == "<miss>") {
      ++misses;
      EXPECT_TRUE(page_lost(off / 4096) || page_lost((off + k.size() + value.size() - 1) / 4096))
          << k;
    } else {
      EXPECT_EQ(got, value) << k;
    }
  }
  EXPECT_EQ(misses, dropped);
  for (int i = 0; i < 200; ++i)
    ASSERT_EQ(put(*s, "again" + std::to_string(i), value), StoreOutcome::kStored);
}

// A burst's keys announced before it is served (the dataplane's batched lookups): each is
// found through the hash kept for its address, in any order; a view of other bytes or another
// length at an announced address is hashed anew; once the burst ends nothing kept is used (the
// RX frame that held a key may hold another one in the next burst).
TEST_P(StoreTest, BurstPrefetchFindsAnnouncedKeysAndForgetsThemAtTheEnd) {
  auto s = make_store();
  ASSERT_EQ(put(*s, "alpha", "1"), StoreOutcome::kStored);
  ASSERT_EQ(put(*s, "bravo", "2"), StoreOutcome::kStored);
  ASSERT_EQ(put(*s, "charl", "3"), StoreOutcome::kStored);
  ASSERT_EQ(put(*s, "alp", "short"), StoreOutcome::kStored);
  char frame[3][5];
  std::memcpy(frame[0], "alpha", 5);
  std::memcpy(frame[1], "bravo", 5);
  std::memcpy(frame[2], "charl", 5);
  const auto key = [&](int i, size_t len = 5) { return std::string_view(frame[i], len); };
  for (int i = 0; i < 3; ++i) s->prefetch_key(key(i));
  s->prefetch_burst();
  EXPECT_EQ(peek(*s, key(2)), "3");  // out of order
  EXPECT_EQ(peek(*s, key(0)), "1");
  EXPECT_EQ(peek(*s, key(1)), "2");
  EXPECT_EQ(peek(*s, key(0, 3)), "short");  // the same address, another length
  s->end_burst();
  std::memcpy(frame[0], "bravo", 5);  // the next burst's frame, at the same address
  EXPECT_EQ(peek(*s, key(0)), "2");
  // More keys than a burst keeps: the rest are hashed when served.
  std::vector<std::string> many;
  for (uint32_t i = 0; i < Store::kBurstKeys + 8; ++i) many.push_back(i % 2 ? "alpha" : "charl");
  for (const std::string& k : many) s->prefetch_key(k);
  s->prefetch_burst();
  for (uint32_t i = 0; i < many.size(); ++i) EXPECT_EQ(peek(*s, many[i]), i % 2 ? "1" : "3");
  s->end_burst();
}

// Hashes are per store (each has its own random SipHash key): a key announced to one store is
// hashed anew when another store on the same thread looks it up.
TEST_P(StoreTest, BurstKeysBelongToTheStoreTheyWereAnnouncedTo) {
  auto a = make_store();
  auto b = make_store();
  ASSERT_EQ(put(*b, "shared", "b"), StoreOutcome::kStored);
  const std::string frame = "shared";
  a->prefetch_key(frame);
  a->prefetch_burst();
  EXPECT_EQ(peek(*b, frame), "b");
  EXPECT_EQ(peek(*a, frame), "<miss>");
  a->end_burst();
}

TEST(BytesEqualTest, EveryLengthAndEveryDifferingByte) {
  // Lengths around each path (bytes, two 4-byte words, 8-byte words with an overlapping tail),
  // a difference at every position, and nothing read past the end (the buffers end at `n`).
  for (size_t n = 0; n <= 40; ++n) {
    std::vector<unsigned char> a(n), b(n);
    for (size_t i = 0; i < n; ++i) a[i] = b[i] = static_cast<unsigned char>('a' + i % 26);
    EXPECT_TRUE(bytes_equal(a.data(), b.data(), n)) << n;
    for (size_t i = 0; i < n; ++i) {
      b[i] ^= 0x80;
      EXPECT_FALSE(bytes_equal(a.data(), b.data(), n)) << n << " " << i;
      b[i] ^= 0x80;
    }
  }
}

TEST(AbsoluteExpiryTest, MemcachedRules) {
  EXPECT_EQ(absolute_expiry(0, kNow), 0);                     // never
  EXPECT_EQ(absolute_expiry(1, kNow), kNow + 1);              // relative
  EXPECT_EQ(absolute_expiry(2592000, kNow), kNow + 2592000);  // 30 days: still relative
  EXPECT_EQ(absolute_expiry(2592001, kNow), 2592001);         // absolute (long past)
  EXPECT_EQ(absolute_expiry(kNow + 5, kNow), kNow + 5);       // absolute
  EXPECT_EQ(absolute_expiry(-1, kNow), 1);                    // already expired
  EXPECT_EQ(absolute_expiry(INT32_MIN, kNow), 1);
}

TEST_P(StoreTest, SetGetView) {
  auto s = make_store();
  uint64_t cas = 0;
  StoreRequest r;
  r.key = "k";
  r.value = bytes("hello");
  r.flags = 42;
  r.expires_at = kNow + 100;
  ASSERT_EQ(s->store(r, kNow, &cas), StoreOutcome::kStored);
  EXPECT_GT(cas, 0u);
  int calls = 0;
  EXPECT_EQ(s->get("k", kNow,
                   [&](const ItemView& v) {
                     ++calls;
                     EXPECT_EQ(v.key, "k");
                     EXPECT_EQ(std::string(v.value.begin(), v.value.end()), "hello");
                     EXPECT_EQ(v.flags, 42u);
                     EXPECT_EQ(v.cas, cas);
                     EXPECT_EQ(v.expires_at, kNow + 100);
                   }),
            Lookup::kHit);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(s->get("nope", kNow, [&](const ItemView&) { ++calls; }), Lookup::kMiss);
  EXPECT_EQ(calls, 1);
  // cas uniques grow with every store.
  uint64_t cas2 = 0;
  ASSERT_EQ(s->store(r, kNow, &cas2), StoreOutcome::kStored);
  EXPECT_GT(cas2, cas);
}

TEST_P(StoreTest, Modes) {
  auto s = make_store();
  EXPECT_EQ(put(*s, "a", "1", StoreMode::kAdd), StoreOutcome::kStored);
  EXPECT_EQ(put(*s, "a", "2", StoreMode::kAdd), StoreOutcome::kNotStored);
  EXPECT_EQ(put(*s, "b", "1", StoreMode::kReplace), StoreOutcome::kNotStored);
  EXPECT_EQ(put(*s, "a", "3", StoreMode::kReplace), StoreOutcome::kStored);
  EXPECT_EQ(put(*s, "a", "<", StoreMode::kPrepend, 0, 7), StoreOutcome::kStored);
  EXPECT_EQ(put(*s, "a", ">", StoreMode::kAppend, 0, 7), StoreOutcome::kStored);
  EXPECT_EQ(put(*s, "b", ">", StoreMode::kAppend), StoreOutcome::kNotStored);
  EXPECT_EQ(peek(*s, "a"), "<3>");
  uint32_t flags = 99;
  s->get("a", kNow, [&](const ItemView& v) { flags = v.flags; });
  EXPECT_EQ(flags, 0u);  // append/prepend keep the item's flags
  EXPECT_EQ(put(*s, "a", "x", StoreMode::kCas, 0, 0, 12345), StoreOutcome::kExists);
  EXPECT_EQ(put(*s, "zz", "x", StoreMode::kCas, 0, 0, 1), StoreOutcome::kNotFound);
  EXPECT_EQ(put(*s, "", "x"), StoreOutcome::kBadKey);
  EXPECT_EQ(put(*s, std::string(251, 'k'), "x"), StoreOutcome::kBadKey);
  EXPECT_EQ(s->stats().curr_items, 1u);
}

TEST_P(StoreTest, RemoveAndTouch) {
  auto s = make_store();
  ASSERT_EQ(put(*s, "a", "1"), StoreOutcome::kStored);
  EXPECT_EQ(s->touch("a", kNow + 5, kNow), Lookup::kHit);
  EXPECT_EQ(s->touch("b", kNow + 5, kNow), Lookup::kMiss);
  EXPECT_EQ(peek(*s, "a", kNow + 4), "1");
  EXPECT_EQ(s->touch("a", kNow + 5, kNow + 5), Lookup::kExpired);
  EXPECT_EQ(s->touch("a", kNow + 5, kNow + 5), Lookup::kMiss);  // reclaimed on first sight
  ASSERT_EQ(put(*s, "a", "1"), StoreOutcome::kStored);
  EXPECT_EQ(s->remove("a", kNow), Lookup::kHit);
  EXPECT_EQ(s->remove("a", kNow), Lookup::kMiss);
  EXPECT_EQ(s->stats().curr_items, 0u);
  EXPECT_EQ(s->stats().bytes, 0u);
}

TEST_P(StoreTest, GetAndTouch) {
  auto s = make_store();
  ASSERT_EQ(put(*s, "a", "1", StoreMode::kSet, kNow + 5), StoreOutcome::kStored);
  int64_t seen = -1;
  EXPECT_EQ(
      s->get_and_touch("a", kNow + 100, kNow, [&](const ItemView& v) { seen = v.expires_at; }),
      Lookup::kHit);
  EXPECT_EQ(seen, kNow + 100);
  EXPECT_EQ(peek(*s, "a", kNow + 99), "1");
  EXPECT_EQ(peek(*s, "a", kNow + 100), "<miss>");
}

TEST_P(StoreTest, Expiry) {
  auto s = make_store();
  ASSERT_EQ(put(*s, "rel", "1", StoreMode::kSet, absolute_expiry(10, kNow)), StoreOutcome::kStored);
  ASSERT_EQ(put(*s, "abs", "1", StoreMode::kSet, absolute_expiry(kNow + 60, kNow)),
            StoreOutcome::kStored);
  ASSERT_EQ(put(*s, "neg", "1", StoreMode::kSet, absolute_expiry(-1, kNow)), StoreOutcome::kStored);
  ASSERT_EQ(put(*s, "never", "1", StoreMode::kSet, 0), StoreOutcome::kStored);
  EXPECT_EQ(s->get("neg", kNow, [](const ItemView&) {}), Lookup::kExpired);
  EXPECT_EQ(peek(*s, "rel", kNow + 9), "1");
  EXPECT_EQ(s->get("rel", kNow + 10, [](const ItemView&) {}), Lookup::kExpired);
  EXPECT_EQ(peek(*s, "abs", kNow + 59), "1");
  EXPECT_EQ(peek(*s, "abs", kNow + 60), "<miss>");
  EXPECT_EQ(peek(*s, "never", kNow + 100'000'000), "1");
  // An expired item counts as absent for add and replace.
  ASSERT_EQ(put(*s, "e", "1", StoreMode::kSet, kNow + 1), StoreOutcome::kStored);
  EXPECT_EQ(put(*s, "e", "2", StoreMode::kAdd, 0, 0, 0, kNow + 1), StoreOutcome::kStored);
  ASSERT_EQ(put(*s, "f", "1", StoreMode::kSet, kNow + 1), StoreOutcome::kStored);
  EXPECT_EQ(put(*s, "f", "2", StoreMode::kReplace, 0, 0, 0, kNow + 1), StoreOutcome::kNotStored);
  EXPECT_EQ(s->apply_delta("rel", true, 1, kNow + 10).outcome, DeltaOutcome::kNotFound);
}

TEST_P(StoreTest, FlushAllImmediate) {
  auto s = make_store();
  ASSERT_EQ(put(*s, "a", "1"), StoreOutcome::kStored);
  ASSERT_EQ(put(*s, "b", "1", StoreMode::kSet, 0, 0, 0, kNow - 100), StoreOutcome::kStored);
  s->flush_all(kNow, kNow);
  EXPECT_EQ(s->get("a", kNow, [](const ItemView&) {}), Lookup::kFlushed);
  EXPECT_EQ(s->get("b", kNow, [](const ItemView&) {}), Lookup::kFlushed);
  // Stored after the flush in the same second: survives (memcached's cas rule).
  ASSERT_EQ(put(*s, "c", "1"), StoreOutcome::kStored);
  EXPECT_EQ(peek(*s, "c"), "1");
  EXPECT_EQ(peek(*s, "c", kNow + 1000), "1");
}

TEST_P(StoreTest, FlushAllDelayedAndNeverResurrects) {
  auto s = make_store();
  ASSERT_EQ(put(*s, "old", "1"), StoreOutcome::kStored);
  ASSERT_EQ(put(*s, "old2", "1"), StoreOutcome::kStored);
  s->flush_all(kNow + 10, kNow);
  EXPECT_EQ(peek(*s, "old", kNow + 9), "1");
  ASSERT_EQ(put(*s, "mid", "1", StoreMode::kSet, 0, 0, 0, kNow + 9), StoreOutcome::kStored);
  ASSERT_EQ(put(*s, "new", "1", StoreMode::kSet, 0, 0, 0, kNow + 10), StoreOutcome::kStored);
  EXPECT_EQ(s->get("old", kNow + 10, [](const ItemView&) {}), Lookup::kFlushed);
  EXPECT_EQ(peek(*s, "mid", kNow + 10), "<miss>");
  EXPECT_EQ(peek(*s, "new", kNow + 10), "1");
  // A new delayed flush replaces the schedule, but what the due one removed stays removed
  // ("old2" was never looked at, so it was never reclaimed).
  s->flush_all(kNow + 1000, kNow + 20);
  EXPECT_EQ(peek(*s, "old2", kNow + 21), "<miss>");
  EXPECT_EQ(peek(*s, "new", kNow + 21), "1");
  // A scheduled flush that has not come due is replaced by a newer flush_all, as in memcached.
  s->flush_all(kNow + 5000, kNow + 30);
  EXPECT_EQ(peek(*s, "new", kNow + 1000), "1");
  EXPECT_EQ(peek(*s, "new", kNow + 5000), "<miss>");
}

TEST_P(StoreTest, DeltaKeepsFlagsAndExpiry) {
  auto s = make_store();
  ASSERT_EQ(put(*s, "n", "99", StoreMode::kSet, kNow + 50, 5), StoreOutcome::kStored);
  const DeltaResult r = s->apply_delta("n", true, 1, kNow);
  EXPECT_EQ(r.outcome, DeltaOutcome::kOk);
  EXPECT_EQ(r.value, 100u);
  s->get("n", kNow, [&](const ItemView& v) {
    EXPECT_EQ(v.flags, 5u);
    EXPECT_EQ(v.expires_at, kNow + 50);
  });
  EXPECT_EQ(s->apply_delta("n", false, 1000, kNow).value, 0u);
  EXPECT_EQ(peek(*s, "n"), "0  ");
}

TEST_P(StoreTest, ReadersKeepTheirBytesWhileTheItemChanges) {
  // A view stays valid for its callback even when the item is deleted, replaced or incremented
  // meanwhile: the chunk is not reused until the reader lets go.
  auto s = make_store();
  ASSERT_EQ(put(*s, "n", "1234"), StoreOutcome::kStored);
  s->get("n", kNow, [&](const ItemView& v) {
    EXPECT_EQ(s->apply_delta("n", true, 1, kNow).value, 1235u);  // not in place: a reader
    EXPECT_EQ(s->remove("n", kNow), Lookup::kHit);
    for (int i = 0; i < 100; ++i)
      ASSERT_EQ(put(*s, "o" + std::to_string(i), "9999"), StoreOutcome::kStored);
    EXPECT_EQ(std::string(v.value.begin(), v.value.end()), "1234");
    EXPECT_EQ(v.key, "n");
  });
  EXPECT_EQ(peek(*s, "n"), "<miss>");
  EXPECT_EQ(s->stats().curr_items, 100u);
}

TEST_P(StoreTest, StatsCountItemsAndBytes) {
  auto s = make_store();
  ASSERT_EQ(put(*s, "ab", "123"), StoreOutcome::kStored);
  ASSERT_EQ(put(*s, "ab", "12345"), StoreOutcome::kStored);
  ASSERT_EQ(put(*s, "c", ""), StoreOutcome::kStored);
  StoreStats st = s->stats();
  EXPECT_EQ(st.curr_items, 2u);
  EXPECT_EQ(st.total_items, 3u);
  EXPECT_EQ(st.bytes, 2u + 5 + 1);
  EXPECT_EQ(st.limit_maxbytes, 8u << 20);
  EXPECT_EQ(st.total_slabs, 8u);
  EXPECT_EQ(st.used_slabs, 1u);
  s->reset_stats();
  st = s->stats();
  EXPECT_EQ(st.total_items, 0u);
  EXPECT_EQ(st.curr_items, 2u);
}

// --- memory full
// ----------------------------------------------------------------------------------

StoreOptions tiny_options(bool evict) {
  StoreOptions o;
  o.memory_mb = 1;
  o.item_size_max = 64 << 10;  // 16 slabs of 64 KiB
  o.hash_power = 12;
  o.evict = evict;
  return o;
}

TEST(StoreEvictionTest, EvictsOldestOfTheClassWhenFull) {
  auto s = make_store(tiny_options(true));
  const std::string value(200, 'v');
  int stored = 0;
  for (int i = 0; i < 20000; ++i) {
    ASSERT_EQ(put(*s, "k" + std::to_string(i), value), StoreOutcome::kStored) << i;
    ++stored;
  }
  const StoreStats st = s->stats();
  EXPECT_GT(st.evictions, 0u);
  EXPECT_EQ(st.used_slabs, st.total_slabs);
  EXPECT_EQ(st.curr_items + st.evictions, 20000u);
  EXPECT_EQ(peek(*s, "k0"), "<miss>");   // the oldest went first
  EXPECT_EQ(peek(*s, "k19999"), value);  // the newest stayed
  // Other classes still work: with no slab left, one moves over from the full class.
  EXPECT_EQ(put(*s, "big", std::string(30000, 'b')), StoreOutcome::kStored);
  EXPECT_EQ(peek(*s, "big"), std::string(30000, 'b'));
  EXPECT_EQ(s->stats().slabs_moved, 1u);
}

TEST(StoreEvictionTest, RecentlyReadItemsGetASecondChance) {
  auto s = make_store(tiny_options(true));
  const std::string value(200, 'v');
  int i = 0;
  while (s->stats().evictions == 0) {
    ASSERT_EQ(put(*s, "k" + std::to_string(i++), value), StoreOutcome::kStored);
  }
  // k1 is now the oldest live item. Read it, then make room for a few more.
  ASSERT_EQ(peek(*s, "k1"), value);
  for (int j = 0; j < 5; ++j) {
    ASSERT_EQ(put(*s, "n" + std::to_string(j), value), StoreOutcome::kStored);
  }
  EXPECT_EQ(peek(*s, "k1"), value);     // spared: its CLOCK bit was set
  EXPECT_EQ(peek(*s, "k2"), "<miss>");  // evicted instead
}

TEST(StoreEvictionTest, NoEvictionFailsLikeMemcachedDashM) {
  auto s = make_store(tiny_options(false));
  const std::string value(200, 'v');
  int i = 0;
  StoreOutcome out;
  while ((out = put(*s, "k" + std::to_string(i), value)) == StoreOutcome::kStored) ++i;
  EXPECT_EQ(out, StoreOutcome::kNoMemory);
  EXPECT_GT(i, 1000);
  EXPECT_EQ(s->stats().evictions, 0u);
  EXPECT_EQ(peek(*s, "k0"), value);  // nothing was evicted
  // memcached: a failed set removes the old value...
  EXPECT_EQ(put(*s, "k0", value), StoreOutcome::kNoMemory);
  EXPECT_EQ(peek(*s, "k0"), "<miss>");
  // ...which frees a chunk for the next store of that class.
  EXPECT_EQ(put(*s, "k0", value), StoreOutcome::kStored);

  // The protocol answers memcached's error.
  Client c(*s);
  EXPECT_EQ(c.req("set zz 0 0 200\r\n" + value + "\r\n"),
            "SERVER_ERROR out of memory storing object\r\n");
  EXPECT_EQ(c.req("set zz 0 0 200 noreply\r\n" + value + "\r\n"), "");
  EXPECT_EQ(c.session.counters().get(Stat::kStoreNoMemory), 2u);
}

TEST(StoreEvictionTest, ExpiredItemsAreReclaimedEvenWithoutEviction) {
  auto s = make_store(tiny_options(false));
  const std::string value(200, 'v');
  int i = 0;
  while (put(*s, "k" + std::to_string(i), value, StoreMode::kSet, kNow + 10) ==
         StoreOutcome::kStored) {
    ++i;
  }
  // Once they expire their chunks are reused.
  for (int j = 0; j < 100; ++j) {
    ASSERT_EQ(put(*s, "x" + std::to_string(j), value, StoreMode::kSet, 0, 0, 0, kNow + 10),
              StoreOutcome::kStored);
  }
  EXPECT_EQ(s->stats().reclaimed, 100u);
  EXPECT_EQ(s->stats().evictions, 0u);
}

TEST(StoreEvictionTest, ReferencedItemsAreNotEvicted) {
  auto s = make_store(tiny_options(true));
  const std::string value(200, 'v');
  int i = 0;
  while (s->stats().evictions == 0)
    ASSERT_EQ(put(*s, "k" + std::to_string(i++), value), StoreOutcome::kStored);
  const uint64_t items = s->stats().curr_items;
  // k1 is the oldest. While a reader holds it, cycle the whole class twice: its CLOCK bit only
  // saves it once; the reference must save it after that.
  s->get("k1", kNow, [&](const ItemView& v) {
    for (uint64_t j = 0; j < 2 * items; ++j) {
      ASSERT_EQ(put(*s, "n" + std::to_string(j), value), StoreOutcome::kStored);
    }
    EXPECT_EQ(std::string(v.value.begin(), v.value.end()), value);
  });
  EXPECT_EQ(peek(*s, "k1"), value);
  EXPECT_EQ(peek(*s, "k2"), "<miss>");
}

// --- options
// ---------------------------------------------------------------------------------------

TEST(StoreOptionsTest, ValidationNamesTheKey) {
  EXPECT_TRUE(StoreOptions{}.validate().is_ok());
  auto message = [](auto mutate) {
    StoreOptions o;
    mutate(o);
    return o.validate().message();
  };
  EXPECT_EQ(message([](StoreOptions& o) { o.memory_mb = 0; }), "kv.memory_mb must be > 0");
  EXPECT_NE(message([](StoreOptions& o) { o.item_size_max = 100; }).find("kv.item_size_max"),
            std::string::npos);
  EXPECT_NE(
      message([](StoreOptions& o) { o.slab_growth_factor = 1.0; }).find("kv.slab_growth_factor"),
      std::string::npos);
  EXPECT_NE(
      message([](StoreOptions& o) { o.slab_growth_factor = 1.0001; }).find("kv.slab_growth_factor"),
      std::string::npos);
  EXPECT_NE(message([](StoreOptions& o) { o.hash_power = 4; }).find("kv.hash_power"),
            std::string::npos);
  EXPECT_EQ(message([](StoreOptions& o) {
              o.hash_power = 16;
              o.hash_power_max = 12;
            }),
            "kv.hash_power_max must be between kv.hash_power and 30");
  EXPECT_EQ(message([](StoreOptions& o) { o.hash_power_max = 31; }),
            "kv.hash_power_max must be between kv.hash_power and 30");
  EXPECT_NE(message([](StoreOptions& o) {
              o.memory_mb = 1;
              o.item_size_max = 2 << 20;
            }).find("kv.memory_mb (1 MiB) must hold at least one slab"),
            std::string::npos);
  StoreOptions bad;
  bad.memory_mb = 0;
  auto r = Store::create(bad);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Errc::kInvalidArgument);
}

TEST(StoreOptionsTest, ArenaMustHoldMemoryMb) {
  auto arena = LocalArena::create(1 << 20);
  ASSERT_TRUE(arena.is_ok());
  StoreOptions o = tiny_options(true);
  o.memory_mb = 2;
  auto r = Store::create(o, std::move(arena).value());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("kv.memory_mb (2 MiB) exceeds the arena"), std::string::npos);
}

}  // namespace
}  // namespace fm::kv
