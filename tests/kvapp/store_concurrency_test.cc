// Multi-threaded Store tests: disjoint and shared keys, counters, cas loops, eviction pressure.
// Each runs twice: on local memory (the under-lock fast paths) and on an arena that behaves like
// far memory (every key check and read-modify-write takes the read-copy-retry path).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kv_test_util.h"
#include "kvapp/store.h"

namespace fm::kv {
namespace {

using testing::bytes;
using testing::kNow;
using testing::peek;

constexpr int kThreads = 4;

class StoreConcurrencyTest : public ::testing::TestWithParam<bool> {
 protected:
  std::unique_ptr<Store> make_store(const StoreOptions& o = testing::small_options()) {
    return GetParam() ? testing::make_store_on(
                            o, std::make_unique<testing::WaitingArena>(uint64_t{o.memory_mb} << 20))
                      : testing::make_store(o);
  }
};
INSTANTIATE_TEST_SUITE_P(Arenas, StoreConcurrencyTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "ReadCopyRetry" : "Local";
                         });

StoreOutcome put(Store& s, std::string_view key, std::string_view value,
                 StoreMode mode = StoreMode::kSet, uint64_t cas = 0) {
  StoreRequest r;
  r.mode = mode;
  r.key = key;
  r.value = bytes(value);
  r.cas = cas;
  return s.store(r, kNow);
}

// A value that proves it was not torn: "<len>:<tag>" repeated, with the length up front.
std::string make_value(int thread, int seq, size_t size) {
  std::string tag = "t" + std::to_string(thread) + "s" + std::to_string(seq) + ";";
  std::string v;
  while (v.size() < size) v += tag;
  v.resize(size);
  return std::to_string(size) + "|" + tag + "|" + v;
}
bool well_formed(std::string_view v) {
  const size_t bar = v.find('|');
  if (bar == std::string_view::npos) return false;
  const size_t size = std::stoul(std::string(v.substr(0, bar)));
  const size_t bar2 = v.find('|', bar + 1);
  if (bar2 == std::string_view::npos) return false;
  const std::string_view tag = v.substr(bar + 1, bar2 - bar - 1);
  const std::string_view body = v.substr(bar2 + 1);
  if (body.size() != size) return false;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] != tag[i % tag.size()]) return false;
  }
  return true;
}

TEST_P(StoreConcurrencyTest, DisjointKeysMatchAPerThreadModel) {
  StoreOptions o = testing::small_options();
  o.memory_mb = 64;  // no eviction: the model must match exactly
  o.hash_power = 12;
  auto s = make_store(o);
  std::vector<std::map<std::string, std::string>> models(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      auto& model = models[t];
      for (int i = 0; i < 20000; ++i) {
        const std::string key = "T" + std::to_string(t) + "_" + std::to_string(rng() % 200);
        switch (rng() % 6) {
          case 0:
          case 1: {
            const std::string v = make_value(t, i, rng() % 300);
            ASSERT_EQ(put(*s, key, v), StoreOutcome::kStored);
            model[key] = v;
            break;
          }
          case 2:
            ASSERT_EQ(s->remove(key, kNow) == Lookup::kHit, model.erase(key) == 1);
            break;
          case 3: {
            const StoreOutcome out = put(*s, key, "x", StoreMode::kAppend);
            if (model.count(key)) {
              ASSERT_EQ(out, StoreOutcome::kStored);
              model[key] += "x";
            } else {
              ASSERT_EQ(out, StoreOutcome::kNotStored);
            }
            break;
          }
          default: {
            auto it = model.find(key);
            ASSERT_EQ(peek(*s, key), it == model.end() ? "<miss>" : it->second);
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  size_t total = 0;
  for (int t = 0; t < kThreads; ++t) {
    total += models[t].size();
    for (const auto& [k, v] : models[t]) EXPECT_EQ(peek(*s, k), v);
  }
  EXPECT_EQ(s->stats().curr_items, total);
}

TEST_P(StoreConcurrencyTest, SharedKeysAreNeverTorn) {
  StoreOptions o = testing::small_options();
  o.memory_mb = 16;
  auto s = make_store(o);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(7 + t);
      for (int i = 0; i < 20000; ++i) {
        const std::string key = "shared" + std::to_string(rng() % 8);
        switch (rng() % 4) {
          case 0:
            put(*s, key, make_value(t, i, rng() % 2000));
            break;
          case 1:
            s->remove(key, kNow);
            break;
          default:
            s->get(key, kNow, [&](const ItemView& v) {
              if (!well_formed(std::string_view(reinterpret_cast<const char*>(v.value.data()),
                                                v.value.size()))) {
                bad++;
              }
            });
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_LE(s->stats().curr_items, 8u);
}

TEST_P(StoreConcurrencyTest, IncrementsAreNotLost) {
  auto s = make_store();
  ASSERT_EQ(put(*s, "ctr", "0"), StoreOutcome::kStored);
  ASSERT_EQ(put(*s, "ctr2", "1000000"), StoreOutcome::kStored);
  constexpr int kPerThread = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_EQ(s->apply_delta("ctr", true, 1, kNow).outcome, DeltaOutcome::kOk);
        ASSERT_EQ(s->apply_delta("ctr2", false, 1, kNow).outcome, DeltaOutcome::kOk);
        // Readers force incr off the in-place path now and then.
        s->get("ctr", kNow, [](const ItemView&) {});
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(peek(*s, "ctr"), std::to_string(kThreads * kPerThread));
  EXPECT_EQ(peek(*s, "ctr2"), std::to_string(1000000 - kThreads * kPerThread) + " ");
}

TEST_P(StoreConcurrencyTest, AppendsAndPrependsAreNotLost) {
  StoreOptions o = testing::small_options();
  o.memory_mb = 64;  // the value grows through ~20 slab classes of one 1 MiB slab each
  auto s = make_store(o);
  ASSERT_EQ(put(*s, "log", "|"), StoreOutcome::kStored);
  constexpr int kPerThread = 4000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string tag(1, char('a' + t));
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_EQ(put(*s, "log", tag, i % 2 ? StoreMode::kAppend : StoreMode::kPrepend),
                  StoreOutcome::kStored);
        if (i % 16 == 0) s->get("log", kNow, [](const ItemView&) {});
      }
    });
  }
  for (auto& th : threads) th.join();
  const std::string v = peek(*s, "log");
  ASSERT_EQ(v.size(), 1u + kThreads * kPerThread);
  const size_t bar = v.find('|');
  for (int t = 0; t < kThreads; ++t) {
    const char c = char('a' + t);
    EXPECT_EQ(std::count(v.begin(), v.begin() + bar, c), kPerThread / 2);  // prepended
    EXPECT_EQ(std::count(v.begin() + bar, v.end(), c), kPerThread / 2);    // appended
  }
  EXPECT_EQ(s->stats().chunks_used, s->stats().curr_items);
}

TEST_P(StoreConcurrencyTest, CasLoopsCountExactly) {
  auto s = make_store();
  ASSERT_EQ(put(*s, "c", "0"), StoreOutcome::kStored);
  constexpr int kPerThread = 3000;
  std::vector<std::thread> threads;
  std::atomic<int> exists{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int done = 0; done < kPerThread;) {
        uint64_t cas = 0;
        uint64_t value = 0;
        s->get("c", kNow, [&](const ItemView& v) {
          cas = v.cas;
          value = std::stoull(std::string(v.value.begin(), v.value.end()));
        });
        const StoreOutcome out = put(*s, "c", std::to_string(value + 1), StoreMode::kCas, cas);
        if (out == StoreOutcome::kStored) {
          ++done;
        } else {
          ASSERT_EQ(out, StoreOutcome::kExists);
          exists++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(peek(*s, "c"), std::to_string(kThreads * kPerThread));
}

TEST_P(StoreConcurrencyTest, EvictionUnderConcurrentLoad) {
  StoreOptions o;
  o.memory_mb = 2;
  o.item_size_max = 64 << 10;
  o.hash_power = 12;
  auto s = make_store(o);
  std::atomic<int> bad{0};
  std::atomic<int> no_memory{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(50 + t);
      for (int i = 0; i < 30000; ++i) {
        // 20000 keys of ~300 bytes: several times the 2 MiB arena, so eviction must happen.
        const std::string key = "e" + std::to_string(rng() % 20000);
        if (rng() % 3 == 0) {
          s->get(key, kNow, [&](const ItemView& v) {
            if (!well_formed(std::string_view(reinterpret_cast<const char*>(v.value.data()),
                                              v.value.size()))) {
              bad++;
            }
          });
        } else {
          const StoreOutcome out = put(*s, key, make_value(t, i, 100 + rng() % 400));
          if (out == StoreOutcome::kNoMemory)
            no_memory++;
          else if (out != StoreOutcome::kStored)
            bad++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  const StoreStats st = s->stats();
  EXPECT_GT(st.evictions, 0u);
  // Items and bytes add up: every linked item is reachable and well formed.
  uint64_t found = 0;
  for (int k = 0; k < 20000; ++k) {
    s->get("e" + std::to_string(k), kNow, [&](const ItemView&) { ++found; });
  }
  EXPECT_EQ(found, st.curr_items);
  // A class can find every chunk busy only in rare races; it must stay rare.
  EXPECT_LT(no_memory.load(), 100);
}

}  // namespace
}  // namespace fm::kv
