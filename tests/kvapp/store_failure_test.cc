// Pin failures: with an arena whose n-th pin fails on demand, every store command and every
// protocol reply on its failure path: SERVER_ERROR (k*Unavailable), the store unchanged, no chunk
// or pin leaked.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kv_test_util.h"
#include "kvapp/store.h"

namespace fm::kv {
namespace {

using testing::bytes;
using testing::Client;
using testing::kNow;

/// A local arena that pretends to be far memory: pin() fails when told to, try_pin() succeeds
/// only when `ready` (so tests reach both the under-lock fast paths and the read-copy-retry
/// paths), and every pin is checked to be unpinned exactly once with what it returned.
class FlakyArena final : public Arena {
 public:
  explicit FlakyArena(uint64_t bytes) : inner_(std::move(LocalArena::create(bytes).value())) {}

  uint64_t size_bytes() const override { return inner_->size_bytes(); }
  std::byte* pin(uint64_t offset, uint32_t len, Access access) override {
    ++pins;
    if (fail_at != 0 && pins == fail_at) {
      ++failures;
      return nullptr;
    }
    if (fail_all) {
      ++failures;
      return nullptr;
    }
    ++outstanding;
    return inner_->pin(offset, len, access);
  }
  std::byte* try_pin(uint64_t offset, uint32_t len, Access access) override {
    if (!ready) return nullptr;
    ++outstanding;
    return inner_->try_pin(offset, len, access);
  }
  void unpin(uint64_t offset, uint32_t len, std::byte* data) override {
    EXPECT_NE(data, nullptr) << "unpin of a failed pin";
    EXPECT_EQ(data, inner_->pin(offset, len, Access::kRead)) << "unpin with another address";
    --outstanding;
    inner_->unpin(offset, len, data);
  }
  bool may_fault() const override { return true; }

  /// Fails the n-th pin() from now (1-based); 0 = none.
  void fail_nth(uint64_t n) {
    pins = 0;
    failures = 0;
    fail_at = n;
  }

  bool ready = false;     // try_pin succeeds
  bool fail_all = false;  // every pin() fails
  uint64_t fail_at = 0;
  uint64_t pins = 0;
  uint64_t failures = 0;
  int64_t outstanding = 0;

 private:
  std::unique_ptr<LocalArena> inner_;
};

StoreOptions options() {
  StoreOptions o;
  o.memory_mb = 4;
  o.item_size_max = 16 << 10;
  o.hash_power = 8;
  return o;
}

struct Fixture {
  explicit Fixture(bool ready) {
    auto a = std::make_unique<FlakyArena>(uint64_t{options().memory_mb} << 20);
    a->ready = ready;
    arena = a.get();
    store = std::move(Store::create(options(), std::move(a)).value());
  }
  StoreOutcome put(std::string_view key, std::string_view value, StoreMode mode = StoreMode::kSet,
                   uint64_t cas = 0, int64_t expires_at = 0, uint32_t flags = 0) {
    StoreRequest r;
    r.mode = mode;
    r.key = key;
    r.value = bytes(value);
    r.cas = cas;
    r.flags = flags;
    r.expires_at = expires_at;
    return store->store(r, kNow);
  }
  FlakyArena* arena;
  std::unique_ptr<Store> store;
};

// Everything a client could observe of one key.
struct Seen {
  bool hit = false;
  std::string value;
  uint32_t flags = 0;
  uint64_t cas = 0;
  int64_t expires_at = 0;
  bool operator==(const Seen&) const = default;
};

const std::vector<std::string> kKeys = {"k1", "k2", "num", "num9", "big", "absent"};

// The keys' items and the store's counters, read with pins working.
struct Snapshot {
  std::map<std::string, Seen> items;
  uint64_t curr_items = 0, bytes = 0, chunks_used = 0, total_items = 0;
  bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(Fixture& f) {
  const uint64_t saved = f.arena->fail_at;
  f.arena->fail_at = 0;
  Snapshot s;
  for (const std::string& k : kKeys) {
    Seen v;
    EXPECT_NE(f.store->get(k, kNow,
                           [&](const ItemView& item) {
                             v.hit = true;
                             v.value.assign(reinterpret_cast<const char*>(item.value.data()),
                                            item.value.size());
                             v.flags = item.flags;
                             v.cas = item.cas;
                             v.expires_at = item.expires_at;
                           }),
              Lookup::kUnavailable);
    s.items[k] = v;
  }
  const StoreStats st = f.store->stats();
  s.curr_items = st.curr_items;
  s.bytes = st.bytes;
  s.chunks_used = st.chunks_used;
  s.total_items = st.total_items;
  f.arena->fail_at = saved;
  return s;
}

void populate(Fixture& f) {
  ASSERT_EQ(f.put("k1", "hello", StoreMode::kSet, 0, kNow + 1000, 7), StoreOutcome::kStored);
  ASSERT_EQ(f.put("k2", "world"), StoreOutcome::kStored);
  ASSERT_EQ(f.put("num", "41"), StoreOutcome::kStored);
  ASSERT_EQ(f.put("num9", "99"), StoreOutcome::kStored);
  ASSERT_EQ(f.put("big", std::string(9000, 'b')), StoreOutcome::kStored);  // a multi-page chunk
}

uint64_t cas_of(Store& s, std::string_view key) {
  uint64_t cas = 0;
  s.get(key, kNow, [&](const ItemView& v) { cas = v.cas; });
  return cas;
}

// One command; returns true when it ended with its k*Unavailable outcome.
struct Op {
  std::string name;
  std::function<bool(Fixture&)> run;
};

std::vector<Op> all_ops() {
  auto get = [](std::string key) {
    return [key](Fixture& f) {
      return f.store->get(key, kNow, [](const ItemView&) {}) == Lookup::kUnavailable;
    };
  };
  auto put = [](std::string key, std::string value, StoreMode mode) {
    return [=](Fixture& f) { return f.put(key, value, mode) == StoreOutcome::kUnavailable; };
  };
  auto delta = [](std::string key, bool incr, uint64_t by) {
    return [=](Fixture& f) {
      return f.store->apply_delta(key, incr, by, kNow).outcome == DeltaOutcome::kUnavailable;
    };
  };
  return {
      {"get", get("k1")},
      {"get big", get("big")},
      {"gat",
       [](Fixture& f) {
         return f.store->get_and_touch("k1", kNow + 5, kNow, [](const ItemView&) {}) ==
                Lookup::kUnavailable;
       }},
      {"touch",
       [](Fixture& f) { return f.store->touch("k1", kNow + 5, kNow) == Lookup::kUnavailable; }},
      {"delete", [](Fixture& f) { return f.store->remove("k1", kNow) == Lookup::kUnavailable; }},
      {"set existing", put("k1", "new value", StoreMode::kSet)},
      {"set new", put("fresh", "v", StoreMode::kSet)},
      {"set big over big", put("big", std::string(12000, 'c'), StoreMode::kSet)},
      {"add existing", put("k1", "v", StoreMode::kAdd)},
      {"add new", put("fresh", "v", StoreMode::kAdd)},
      {"replace", put("k2", "v", StoreMode::kReplace)},
      {"replace missing", put("fresh", "v", StoreMode::kReplace)},
      {"cas",
       [](Fixture& f) {
         const uint64_t cas = cas_of(*f.store, "k2");  // before the failure is armed: no pin
         return f.put("k2", "v", StoreMode::kCas, cas) == StoreOutcome::kUnavailable;
       }},
      {"append", put("k1", "++", StoreMode::kAppend)},
      {"prepend", put("k2", "--", StoreMode::kPrepend)},
      {"append big", put("big", "++", StoreMode::kAppend)},
      {"incr in place", delta("num", true, 1)},
      {"decr in place", delta("num", false, 1)},
      {"incr grows", delta("num9", true, 1)},
      {"incr non-numeric", delta("k1", true, 1)},
  };
}

// For every command and every pin it makes, fail that pin: the command must report
// unavailable, change nothing and leak nothing; a command that got past all its pins succeeds.
void check_every_failure_point(bool ready) {
  for (const Op& op : all_ops()) {
    SCOPED_TRACE(op.name + (ready ? " (try_pin ready)" : " (try_pin never ready)"));
    int failure_points = 0;
    for (uint64_t n = 1;; ++n) {
      ASSERT_LT(n, 20u) << "a command that never stops pinning";
      Fixture f(ready);
      populate(f);
      const Snapshot before = snapshot(f);
      const uint64_t far_errors = f.store->stats().far_errors;
      f.arena->fail_nth(op.name == "cas" ? n + 1 : n);  // cas_of() pins once first
      const bool unavailable = op.run(f);
      const uint64_t failures = f.arena->failures;
      f.arena->fail_nth(0);
      EXPECT_EQ(f.arena->outstanding, 0) << "pin " << n;
      if (failures == 0) {
        EXPECT_FALSE(unavailable) << "pin " << n;
        break;  // the command made fewer than n pins
      }
      ++failure_points;
      EXPECT_TRUE(unavailable) << "pin " << n << " failed but the command did not say so";
      EXPECT_EQ(f.store->stats().far_errors, far_errors + 1) << "pin " << n;
      const Snapshot after = snapshot(f);
      EXPECT_TRUE(after == before) << "pin " << n << " failed and the store changed";
      EXPECT_EQ(after.chunks_used, after.curr_items) << "pin " << n << ": a chunk leaked";
      // The store still works after the failure.
      EXPECT_EQ(f.put("k2", "again"), StoreOutcome::kStored);
      EXPECT_EQ(testing::peek(*f.store, "k2"), "again");
      EXPECT_EQ(f.store->stats().chunks_used, f.store->stats().curr_items);
    }
    // With try_pin ready, commands that only read keys under the lock never call pin().
    if (!ready) {
      EXPECT_GT(failure_points, 0) << "the command never pinned";
    }
  }
}

TEST(StoreFailureTest, EveryPinOfEveryCommandCanFailHarmlessly) {
  check_every_failure_point(false);
}

TEST(StoreFailureTest, EveryPinCanFailWithTryPinReady) { check_every_failure_point(true); }

TEST(StoreFailureTest, MissesNeedNoPin) {
  Fixture f(false);
  populate(f);
  f.arena->fail_all = true;
  EXPECT_EQ(f.store->get("nope", kNow, [](const ItemView&) {}), Lookup::kMiss);
  EXPECT_EQ(f.store->remove("nope", kNow), Lookup::kMiss);
  EXPECT_EQ(f.store->touch("nope", 0, kNow), Lookup::kMiss);
  EXPECT_EQ(f.store->apply_delta("nope", true, 1, kNow).outcome, DeltaOutcome::kNotFound);
  EXPECT_EQ(f.put("nope", "x", StoreMode::kAppend), StoreOutcome::kNotStored);
  EXPECT_EQ(f.store->stats().far_errors, 0u);
  EXPECT_EQ(f.arena->outstanding, 0);
}

TEST(StoreFailureTest, FailedSetKeepsTheOldValueUnlikeTooLarge) {
  Fixture f(false);
  populate(f);
  f.arena->fail_all = true;
  EXPECT_EQ(f.put("k1", "replacement"), StoreOutcome::kUnavailable);
  // Too large for the store and the old item cannot be confirmed (so not removed): unavailable
  // too, since memcached's "the old value is gone" could not be kept.
  EXPECT_EQ(f.put("k1", std::string(20000, 'x')), StoreOutcome::kUnavailable);
  f.arena->fail_all = false;
  EXPECT_EQ(testing::peek(*f.store, "k1"), "hello");
  EXPECT_EQ(f.put("k1", std::string(20000, 'x')), StoreOutcome::kTooLarge);
  EXPECT_EQ(testing::peek(*f.store, "k1"), "<miss>");  // memcached's rule when pins work
  EXPECT_EQ(f.store->stats().chunks_used, f.store->stats().curr_items);
}

TEST(StoreFailureTest, ReadersAndWritersAreNotBlockedByAFailure) {
  // A reader holding an item (the copy path of incr) and a pin failure in that copy path.
  Fixture f(true);
  populate(f);
  f.store->get("num", kNow, [&](const ItemView&) {
    f.arena->fail_nth(2);  // the slow path's read pin succeeds, the new chunk's pin fails
    EXPECT_EQ(f.store->apply_delta("num", true, 1, kNow).outcome, DeltaOutcome::kUnavailable);
    f.arena->fail_nth(0);
    EXPECT_EQ(f.store->apply_delta("num", true, 1, kNow).value, 42u);
  });
  EXPECT_EQ(testing::peek(*f.store, "num"), "42");
  EXPECT_EQ(f.arena->outstanding, 0);
  EXPECT_EQ(f.store->stats().chunks_used, f.store->stats().curr_items);
}

// --- the protocol's replies
// ---------------------------------------------------------------------------------

constexpr std::string_view kFarError = "SERVER_ERROR far memory unavailable\r\n";

TEST(ProtocolFarErrorTest, EveryCommandAnswersServerError) {
  Fixture f(false);
  populate(f);
  Client c(*f.store);
  const uint64_t cas = cas_of(*f.store, "k2");
  f.arena->fail_all = true;
  const std::vector<std::string> requests = {
      "get k1\r\n",
      "gets k1\r\n",
      "gat 100 k1\r\n",
      "gats 100 k1\r\n",
      "touch k1 100\r\n",
      "delete k1\r\n",
      "set k1 0 0 1\r\nx\r\n",
      "add k1 0 0 1\r\nx\r\n",
      "replace k1 0 0 1\r\nx\r\n",
      "append k1 0 0 1\r\nx\r\n",
      "prepend k1 0 0 1\r\nx\r\n",
      "cas k2 0 0 1 " + std::to_string(cas) + "\r\nx\r\n",
      "incr num 1\r\n",
      "decr num 1\r\n",
      "set k1 0 0 2000000\r\n",  // too large, and the old value cannot be removed
  };
  const Snapshot before = [&] {
    f.arena->fail_all = false;
    Snapshot s = snapshot(f);
    f.arena->fail_all = true;
    return s;
  }();
  for (const std::string& r : requests) EXPECT_EQ(c.req(r), kFarError) << r;
  // Keys that are not there need no far memory.
  EXPECT_EQ(c.req("get nope\r\n"), "END\r\n");
  EXPECT_EQ(c.req("delete nope\r\n"), "NOT_FOUND\r\n");
  EXPECT_EQ(c.req("set k1 0 0 1 noreply\r\nx\r\nincr num 1 noreply\r\nget nope\r\n"), "END\r\n");
  f.arena->fail_all = false;
  EXPECT_TRUE(snapshot(f) == before);
  const std::string stats = c.req("stats\r\n");
  EXPECT_NE(stats.find("STAT kv_far_errors " + std::to_string(requests.size() + 2) + "\r\n"),
            std::string::npos)
      << stats;
  EXPECT_NE(stats.find("STAT kv_chunks_used 5\r\n"), std::string::npos) << stats;
  EXPECT_EQ(c.req("get k1\r\n"), "VALUE k1 7 5\r\nhello\r\nEND\r\n");
}

TEST(ProtocolFarErrorTest, AMultiKeyGetAnswersOnlyTheError) {
  Fixture f(false);
  populate(f);
  Client c(*f.store);
  f.arena->fail_nth(2);  // k2 reads, k1 fails
  EXPECT_EQ(c.req("get k2 k1 num\r\n"), kFarError);
  f.arena->fail_nth(0);
  // The next command of the datagram still runs.
  f.arena->fail_nth(1);
  EXPECT_EQ(c.req("get k1\r\nget k2\r\n"),
            std::string(kFarError) + "VALUE k2 0 5\r\nworld\r\nEND\r\n");
}

}  // namespace
}  // namespace fm::kv
