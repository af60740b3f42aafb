// The store on far memory (FarArena over an in-process emulated memory node): integrity under
// eviction churn against a reference map, on one core and on two, and a memory node that dies
// mid-run (SERVER_ERROR for what is not resident, correct answers for what is, nothing wrong).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kv_test_util.h"
#include "kvapp/far_arena.h"
#include "kvapp/numbers.h"
#include "kvapp/store.h"
#include "paging/emulated_transport.h"
#include "paging/region.h"

namespace fm::kv {
namespace {

using testing::bytes;
using testing::Client;
using testing::kNow;

constexpr std::string_view kFarError = "SERVER_ERROR far memory unavailable\r\n";

/// A store whose items live in a far region of `memory_mb` with only `frames` local 4 KiB
/// frames; the emulated link has no latency so churn runs fast. Binds the constructing thread
/// to paging core 0.
struct FarStore {
  FarStore(uint32_t memory_mb, uint64_t frames, uint16_t cores, uint32_t item_size_max) {
    const uint64_t bytes = uint64_t{memory_mb} << 20;
    paging::EmulatedOptions eo;
    eo.latency_ns = 0;
    eo.link_gbps = 1000;
    auto t = paging::EmulatedTransport::in_process(eo, bytes, paging::tsc_clock());
    EXPECT_TRUE(t.is_ok());
    transport = std::move(t).value();
    auto r = paging::Region::create(bytes, frames, *transport, cores, paging::tsc_clock(),
                                    item_size_max);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    region = std::move(r).value();
    StoreOptions o;
    o.memory_mb = memory_mb;
    o.item_size_max = item_size_max;
    o.hash_power = 16;
    auto s = Store::create(o, std::make_unique<FarArena>(*region));
    EXPECT_TRUE(s.is_ok()) << s.status().message();
    store = std::move(s).value();
    bind(0);
  }
  ~FarStore() { current_paging_core() = nullptr; }

  void bind(uint16_t core) { current_paging_core() = &region->core(CoreId{core}); }

  std::unique_ptr<paging::EmulatedTransport> transport;
  std::unique_ptr<paging::Region> region;
  std::unique_ptr<Store> store;
};

// ---------------------------------------------------------------------------------------------
// Churn against a reference map

/// One thread's random commands on its own keys, each checked against a std::map as it goes.
class Model {
 public:
  Model(Store& store, std::string prefix, uint32_t keys, uint64_t seed, uint32_t item_size_max)
      : store_(store),
        prefix_(std::move(prefix)),
        keys_(keys),
        rng_(seed),
        item_size_max_(item_size_max) {}

  std::string key(uint32_t i) const { return prefix_ + std::to_string(i); }

  /// A value that names its write, so a stale or torn read cannot pass for the right one.
  std::string make_value(size_t size) {
    std::string v = "#" + std::to_string(++writes_) + ":";
    const char base = char('a' + rng_() % 26);
    while (v.size() < size) v += char(base + v.size() % 7);
    v.resize(std::max<size_t>(size, 1));
    return v;
  }

  size_t value_size() {
    const uint32_t r = uint32_t(rng_() % 100);
    if (r < 3 && item_size_max_ > 8192) return 4500 + rng_() % 7000;  // multi-page chunks
    return 1 + rng_() % 300;
  }

  StoreOutcome put(const std::string& k, const std::string& v, StoreMode mode, uint64_t cas = 0) {
    StoreRequest r;
    r.mode = mode;
    r.key = k;
    r.value = bytes(v);
    r.cas = cas;
    return store_.store(r, kNow);
  }

  bool read(const std::string& k, std::string* v, uint64_t* cas = nullptr) {
    bool hit = false;
    const Lookup l = store_.get(k, kNow, [&](const ItemView& item) {
      hit = true;
      v->assign(reinterpret_cast<const char*>(item.value.data()), item.value.size());
      if (cas != nullptr) *cas = item.cas;
    });
    EXPECT_NE(l, Lookup::kUnavailable);
    return hit;
  }

  void check(const std::string& k) {
    std::string v;
    const bool hit = read(k, &v);
    auto it = ref_.find(k);
    ASSERT_EQ(hit, it != ref_.end()) << k << " after " << ops_ << " ops";
    if (hit) {
      ASSERT_EQ(v, it->second) << k << " after " << ops_ << " ops";
    }
  }

  void step() {
    ++ops_;
    const uint32_t i = uint32_t(rng_() % keys_);
    const std::string k = key(i);
    auto it = ref_.find(k);
    const bool present = it != ref_.end();
    const bool numeric_key = i % 8 == 0;  // these hold counters
    const uint32_t op = uint32_t(rng_() % 100);
    if (op < 35) {
      check(k);
    } else if (op < 58) {
      const std::string v = numeric_key ? std::to_string(rng_() % 1000) : make_value(value_size());
      ASSERT_EQ(put(k, v, StoreMode::kSet), StoreOutcome::kStored) << k;
      ref_[k] = v;
    } else if (op < 66) {
      ASSERT_EQ(store_.remove(k, kNow), present ? Lookup::kHit : Lookup::kMiss) << k;
      ref_.erase(k);
    } else if (op < 78) {
      if (numeric_key) {
        const bool incr = rng_() % 3 != 0;
        const uint64_t delta = rng_() % 50;
        const DeltaResult r = store_.apply_delta(k, incr, delta, kNow);
        if (!present) {
          ASSERT_EQ(r.outcome, DeltaOutcome::kNotFound) << k;
          return;
        }
        uint64_t old = 0;
        ASSERT_TRUE(parse_u64(it->second, &old)) << it->second;
        const uint64_t now = incr ? old + delta : (delta > old ? 0 : old - delta);
        ASSERT_EQ(r.outcome, DeltaOutcome::kOk) << k;
        ASSERT_EQ(r.value, now) << k;
        std::string s = std::to_string(now);
        if (s.size() < it->second.size()) s.resize(it->second.size(), ' ');
        it->second = s;
      } else if (present && it->second.size() > 3000) {
        ASSERT_EQ(put(k, "reset", StoreMode::kSet), StoreOutcome::kStored);
        it->second = "reset";
      } else {
        const bool append = rng_() % 3 != 0;
        const std::string add = make_value(1 + rng_() % 64);
        const StoreOutcome r = put(k, add, append ? StoreMode::kAppend : StoreMode::kPrepend);
        if (!present) {
          ASSERT_EQ(r, StoreOutcome::kNotStored) << k;
        } else if (k.size() + it->second.size() + add.size() > item_size_max_) {
          ASSERT_EQ(r, StoreOutcome::kNotStored) << k;
        } else {
          ASSERT_EQ(r, StoreOutcome::kStored) << k;
          it->second = append ? it->second + add : add + it->second;
        }
      }
    } else if (op < 84) {
      const std::string v = numeric_key ? "7" : make_value(value_size());
      const StoreOutcome r = put(k, v, StoreMode::kAdd);
      ASSERT_EQ(r, present ? StoreOutcome::kNotStored : StoreOutcome::kStored) << k;
      if (!present) ref_[k] = v;
    } else if (op < 90) {
      const std::string v = numeric_key ? "12" : make_value(value_size());
      const StoreOutcome r = put(k, v, StoreMode::kReplace);
      ASSERT_EQ(r, present ? StoreOutcome::kStored : StoreOutcome::kNotStored) << k;
      if (present) it->second = v;
    } else if (op < 95) {
      std::string seen;
      uint64_t cas = 0;
      const bool hit = read(k, &seen, &cas);
      ASSERT_EQ(hit, present) << k;
      const std::string v = numeric_key ? "3" : make_value(value_size());
      const bool stale = rng_() % 4 == 0;
      const StoreOutcome r = put(k, v, StoreMode::kCas, stale ? cas + 1000000000 : cas);
      if (!present) {
        ASSERT_EQ(r, StoreOutcome::kNotFound) << k;
      } else if (stale) {
        ASSERT_EQ(r, StoreOutcome::kExists) << k;
      } else {
        ASSERT_EQ(r, StoreOutcome::kStored) << k;
        it->second = v;
      }
    } else {
      ASSERT_EQ(store_.touch(k, 0, kNow), present ? Lookup::kHit : Lookup::kMiss) << k;
    }
  }

  void check_all() {
    for (uint32_t i = 0; i < keys_; ++i) {
      check(key(i));
      if (::testing::Test::HasFatalFailure()) return;
    }
  }

  uint64_t ops() const { return ops_; }
  size_t size() const { return ref_.size(); }

 private:
  Store& store_;
  std::string prefix_;
  uint32_t keys_;
  std::mt19937_64 rng_;
  uint32_t item_size_max_;
  std::map<std::string, std::string> ref_;
  uint64_t writes_ = 0;
  uint64_t ops_ = 0;
};

void expect_healthy(FarStore& f) {
  const StoreStats st = f.store->stats();
  EXPECT_EQ(st.evictions, 0u) << "the store itself evicted: the reference map no longer holds";
  EXPECT_EQ(st.far_errors, 0u);
  EXPECT_EQ(st.chunks_used, st.curr_items) << "a chunk leaked";
  const paging::PagingTotals t = f.region->totals();
  EXPECT_EQ(t.errors, 0u);
  EXPECT_GT(t.faults, 10000u) << "the data should not fit in the local frames";
  EXPECT_GT(t.writebacks, 10000u);
}

TEST(FarStoreTest, SlabsMoveAfterATinyFlood) {
  // 128 slabs of 64 KiB in 8 MiB of far memory, 256 local frames (1 MiB). Moving a slab evicts
  // its items from local metadata alone, so it must not fault; the moved slab's chunks are then
  // written (overwrite pins) and read back through the region like any other.
  FarStore f(8, 256, 1, 64 << 10);
  Store& s = *f.store;
  auto put = [&](const std::string& k, const std::string& v) {
    StoreRequest r;
    r.key = k;
    r.value = bytes(v);
    return s.store(r, kNow);
  };
  int i = 0;
  for (;; ++i) {
    if (i % 1024 == 0 && s.stats().used_slabs == s.stats().total_slabs) break;
    ASSERT_EQ(put("t" + std::to_string(i), std::string(50, 'x')), StoreOutcome::kStored) << i;
  }
  const uint64_t faults_before = f.region->totals().faults;
  const std::string mid(2000, 'm'), big(40000, 'b');
  for (int j = 0; j < 20; ++j) {
    ASSERT_EQ(put("mid" + std::to_string(j), mid), StoreOutcome::kStored) << j;
    ASSERT_EQ(put("big" + std::to_string(j), big), StoreOutcome::kStored) << j;
  }
  // Overwrite pins of whole pages need no fetch: a slab move itself reads no item memory.
  EXPECT_LT(f.region->totals().faults - faults_before, 100u);
  for (int j = 0; j < 20; ++j) {
    std::string v;
    ASSERT_EQ(s.get("mid" + std::to_string(j), kNow,
                    [&](const ItemView& item) { v.assign(item.value.begin(), item.value.end()); }),
              Lookup::kHit);
    EXPECT_TRUE(v == mid) << j;
  }
  // A 40000-byte chunk fills a 64 KiB slab: the class holds one slab, so the last one stays.
  std::string b;
  ASSERT_EQ(s.get("big19", kNow,
                  [&](const ItemView& item) { b.assign(item.value.begin(), item.value.end()); }),
            Lookup::kHit);
  EXPECT_TRUE(b == big);
  // The newest tiny items are still there, in the slabs that stayed.
  std::string v;
  EXPECT_EQ(s.get("t" + std::to_string(i - 1), kNow,
                  [&](const ItemView& item) { v.assign(item.value.begin(), item.value.end()); }),
            Lookup::kHit);
  EXPECT_EQ(v, std::string(50, 'x'));
  const StoreStats st = s.stats();
  EXPECT_GE(st.slabs_moved, 2u);
  EXPECT_EQ(st.far_errors, 0u);
  EXPECT_EQ(st.chunks_used, st.curr_items) << "a chunk leaked";
  EXPECT_EQ(f.region->totals().errors, 0u);
}

TEST(FarStoreTest, ChurnOnOneCoreMatchesAReferenceMap) {
  // 16 MiB of far memory, 64 local frames (256 KiB): ~2 MiB of items, most accesses fault.
  FarStore f(16, 64, 1, 16 << 10);
  Model m(*f.store, "k:", 12000, 1, 16 << 10);
  for (int i = 0; i < 1000000; ++i) {
    m.step();
    if (HasFatalFailure()) return;
  }
  m.check_all();
  expect_healthy(f);
  EXPECT_GT(m.size(), 3000u);
}

TEST(FarStoreTest, ChurnOnTwoCoresMatchesReferenceMaps) {
  // Two threads, each with its own paging core and keys (pages are shared), plus a counter and
  // an append target both of them update: no update may be lost by the read-copy-retry paths.
  FarStore f(16, 64, 2, 16 << 10);
  ASSERT_EQ(Model(*f.store, "", 1, 0, 16 << 10).put("shared:n", "0", StoreMode::kSet),
            StoreOutcome::kStored);
  ASSERT_EQ(Model(*f.store, "", 1, 0, 16 << 10).put("shared:s", "<", StoreMode::kSet),
            StoreOutcome::kStored);
  constexpr int kOps = 400000;
  std::vector<uint64_t> incrs(2, 0), appends(2, 0);
  auto worker = [&](uint16_t t) {
    f.bind(t);
    Model m(*f.store, "t" + std::to_string(t) + ":", 6000, 10 + t, 16 << 10);
    std::mt19937_64 rng(77 + t);
    for (int i = 0; i < kOps; ++i) {
      const uint32_t r = uint32_t(rng() % 100);
      if (r < 4) {
        ASSERT_EQ(f.store->apply_delta("shared:n", true, 1, kNow).outcome, DeltaOutcome::kOk);
        ++incrs[t];
      } else if (r < 6 && appends[t] < 1500) {
        ASSERT_EQ(m.put("shared:s", t == 0 ? "a" : "b", StoreMode::kAppend), StoreOutcome::kStored);
        ++appends[t];
      } else {
        m.step();
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
    m.check_all();
    current_paging_core() = nullptr;
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  std::string n, s;
  Model reader(*f.store, "", 1, 0, 16 << 10);
  ASSERT_TRUE(reader.read("shared:n", &n));
  EXPECT_EQ(n, std::to_string(incrs[0] + incrs[1]));
  ASSERT_TRUE(reader.read("shared:s", &s));
  EXPECT_EQ(s.size(), 1 + appends[0] + appends[1]);
  EXPECT_EQ(uint64_t(std::count(s.begin(), s.end(), 'a')), appends[0]);
  EXPECT_EQ(uint64_t(std::count(s.begin(), s.end(), 'b')), appends[1]);
  expect_healthy(f);
}

// ---------------------------------------------------------------------------------------------
// A dead memory node

class DeadNodeTest : public ::testing::Test {
 protected:
  DeadNodeTest() : f_(8, 64, 1, 4096), client_(*f_.store) {}

  std::string key(int i) const { return "d:" + std::to_string(i); }
  static std::string value_reply(const std::string& k, const std::string& v) {
    return "VALUE " + k + " 0 " + std::to_string(v.size()) + "\r\n" + v + "\r\nEND\r\n";
  }
  bool resident(const std::string& k) {
    uint64_t off = 0;
    uint32_t len = 0;
    if (!f_.store->locate(k, kNow, &off, &len)) return false;
    return f_.region->resident(off);
  }
  // Any key: either the reference's answer or the far-memory error; never a wrong value.
  void expect_right_or_error(const std::string& k) {
    const std::string reply = client_.req("get " + k + "\r\n");
    if (reply == kFarError) {
      ++errors_;
      return;
    }
    auto it = ref_.find(k);
    if (it == ref_.end()) {
      EXPECT_EQ(reply, "END\r\n") << k;
    } else {
      EXPECT_EQ(reply, value_reply(k, it->second)) << k;
    }
  }

  FarStore f_;
  Client client_;
  std::map<std::string, std::string> ref_;
  int errors_ = 0;
};

TEST_F(DeadNodeTest, NonResidentItemsAnswerServerErrorAndNothingIsWrong) {
  constexpr int kKeys = 6000;  // ~1.2 MiB of items over 64 frames (256 KiB)
  std::mt19937_64 rng(5);
  for (int i = 0; i < kKeys; ++i) {
    const std::string k = key(i);
    const std::string v =
        (i % 10 == 0) ? std::to_string(i) : std::string(100 + rng() % 100, char('a' + i % 26));
    ASSERT_EQ(client_.req("set " + k + " 0 0 " + std::to_string(v.size()) + "\r\n" + v + "\r\n"),
              "STORED\r\n");
    ref_[k] = v;
  }
  f_.transport->kill();

  // Reads: resident items are answered, the others get the error; the residency of the item's
  // page is read just before each request (a failing fault may evict a clean page).
  int answered = 0, refused = 0;
  std::vector<int> order(kKeys);
  for (int i = 0; i < kKeys; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  for (int i : order) {
    const std::string k = key(i);
    const bool was_resident = resident(k);
    const std::string reply = client_.req("get " + k + "\r\n");
    if (was_resident) {
      EXPECT_EQ(reply, value_reply(k, ref_[k])) << k;
      ++answered;
    } else {
      EXPECT_EQ(reply, kFarError) << k;
      ++refused;
    }
  }
  EXPECT_GT(answered, 0);
  EXPECT_GT(refused, kKeys / 2);

  // A multi-key get with one item out of reach answers only the error.
  int in = -1, out = -1;
  for (int i = 0; i < kKeys && (in < 0 || out < 0); ++i) {
    (resident(key(i)) ? in : out) = i;
  }
  ASSERT_GE(in, 0);
  ASSERT_GE(out, 0);
  EXPECT_EQ(client_.req("get " + key(in) + " " + key(out) + "\r\n"), kFarError);

  // Writes after the failure: each either takes effect or answers the error and changes nothing.
  for (int n = 0; n < 4000; ++n) {
    const int i = int(rng() % kKeys);
    const std::string k = key(i);
    const bool present = ref_.count(k) != 0;
    const uint32_t op = uint32_t(rng() % 4);
    if (op == 0) {
      const std::string v = "new" + std::to_string(n);
      const std::string reply =
          client_.req("set " + k + " 0 0 " + std::to_string(v.size()) + "\r\n" + v + "\r\n");
      if (reply == "STORED\r\n") {
        ref_[k] = v;
      } else {
        ASSERT_EQ(reply, kFarError) << k;
      }
    } else if (op == 1) {
      const std::string reply = client_.req("delete " + k + "\r\n");
      if (reply == kFarError) continue;
      ASSERT_EQ(reply, present ? "DELETED\r\n" : "NOT_FOUND\r\n") << k;
      ref_.erase(k);
    } else if (op == 2) {
      const std::string reply = client_.req("append " + k + " 0 0 1\r\n+\r\n");
      if (reply == kFarError) continue;
      ASSERT_EQ(reply, present ? "STORED\r\n" : "NOT_STORED\r\n") << k;
      if (present) ref_[k] += "+";
    } else {
      const std::string reply = client_.req("incr " + k + " 1\r\n");
      if (reply == kFarError) continue;
      uint64_t v = 0;
      if (!present) {
        ASSERT_EQ(reply, "NOT_FOUND\r\n") << k;
      } else if (!parse_u64(ref_[k], &v)) {
        ASSERT_EQ(reply, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
      } else {
        ASSERT_EQ(reply, std::to_string(v + 1) + "\r\n") << k;
        std::string s = std::to_string(v + 1);
        if (s.size() < ref_[k].size()) s.resize(ref_[k].size(), ' ');
        ref_[k] = s;
      }
    }
  }

  // Every key, once more: the right value or the error, never a wrong value or a false miss.
  errors_ = 0;
  for (int i = 0; i < kKeys; ++i) expect_right_or_error(key(i));
  EXPECT_GT(errors_, 0);
  const std::string stats = client_.req("stats\r\n");
  EXPECT_EQ(stats.find("STAT kv_far_errors 0\r\n"), std::string::npos);
  const StoreStats st = f_.store->stats();
  EXPECT_EQ(st.chunks_used, st.curr_items) << "a chunk leaked";
  EXPECT_GT(f_.region->totals().errors, 0u);
}

}  // namespace
}  // namespace fm::kv
