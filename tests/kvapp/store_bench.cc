// Store microbenchmarks: the request paths in local memory (the no-fault mode) and on a far
// arena whose frames hold everything (pins hit, nothing faults).
//
//   build/tests/kvapp/store_bench [--benchmark_filter=Local]
//
// Every benchmark works on 16384 keys of 128-byte values. Numbers are per operation.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "kvapp/far_arena.h"
#include "kvapp/hash.h"
#include "kvapp/store.h"
#include "paging/emulated_transport.h"
#include "paging/region.h"

namespace fm::kv {
namespace {

constexpr int64_t kNow = 1'700'000'000;
constexpr size_t kKeys = 16384;

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// One store per arena kind, built once and shared by every benchmark (and thread) of that kind.
struct Fixture {
  std::unique_ptr<paging::EmulatedTransport> transport;
  std::unique_ptr<paging::Region> region;
  std::unique_ptr<Store> store;
  std::vector<std::string> keys;
  std::string value = std::string(128, 'v');

  explicit Fixture(bool far) {
    StoreOptions o;
    o.memory_mb = 64;
    o.hash_power = 16;
    o.item_size_max = 64 << 10;
    std::unique_ptr<Arena> arena;
    if (far) {
      const uint64_t bytes = uint64_t{o.memory_mb} << 20;
      paging::EmulatedOptions eo;
      eo.latency_ns = 0;
      eo.link_gbps = 1000;
      transport =
          std::move(paging::EmulatedTransport::in_process(eo, bytes, paging::tsc_clock()).value());
      region = std::move(paging::Region::create(bytes, bytes / paging::kPageSize, *transport, 4,
                                                paging::tsc_clock(), o.item_size_max)
                             .value());
      arena = std::make_unique<FarArena>(*region);
    }
    auto s = Store::create(o, std::move(arena));
    if (!s.is_ok()) {
      std::fprintf(stderr, "store: %s\n", s.status().message().c_str());
      std::abort();
    }
    store = std::move(s).value();
    bind(0);
    for (size_t i = 0; i < kKeys; ++i) {
      char k[32];
      std::snprintf(k, sizeof(k), "key:%08zu", i * 7919);
      keys.emplace_back(k);
      set(keys.back(), value);
    }
  }

  // Binds the calling thread to paging core `thread` (far arena only).
  void bind(int thread) {
    if (region) current_paging_core() = &region->core(CoreId{uint16_t(thread)});
  }

  StoreOutcome set(std::string_view key, std::string_view v, StoreMode mode = StoreMode::kSet) {
    StoreRequest r;
    r.mode = mode;
    r.key = key;
    r.value = bytes(v);
    return store->store(r, kNow);
  }
};

Fixture& fixture(bool far) {
  static Fixture local(false);
  if (!far) return local;
  static Fixture remote(true);
  return remote;
}

// Each thread walks the keys with its own stride so threads rarely touch one key together.
size_t next(size_t& i, int thread) {
  i = (i + 1 + size_t(thread) * 2) % kKeys;
  return i;
}

void BM_GetHit(benchmark::State& state, bool far) {
  Fixture& f = fixture(far);
  f.bind(state.thread_index());
  size_t i = size_t(state.thread_index()) * 4099;
  uint64_t sum = 0;
  for (auto _ : state) {
    const Lookup r = f.store->get(f.keys[next(i, state.thread_index())], kNow,
                                  [&](const ItemView& v) { sum += v.value[0]; });
    benchmark::DoNotOptimize(r);
  }
  benchmark::DoNotOptimize(sum);
}

void BM_GetMiss(benchmark::State& state, bool far) {
  Fixture& f = fixture(far);
  f.bind(state.thread_index());
  uint64_t n = 0;
  for (auto _ : state) {
    char k[32];
    std::snprintf(k, sizeof(k), "nokey:%08llu", static_cast<unsigned long long>(n++ % kKeys));
    benchmark::DoNotOptimize(f.store->get(k, kNow, [](const ItemView&) {}));
  }
}

void BM_SetOverwrite(benchmark::State& state, bool far) {
  Fixture& f = fixture(far);
  f.bind(state.thread_index());
  size_t i = size_t(state.thread_index()) * 4099;
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.set(f.keys[next(i, state.thread_index())], f.value));
  }
}

void BM_SetDelete(benchmark::State& state, bool far) {
  Fixture& f = fixture(far);
  f.bind(state.thread_index());
  const std::string key = "fresh:" + std::to_string(state.thread_index());
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.set(key, f.value));
    benchmark::DoNotOptimize(f.store->remove(key, kNow));
  }
}

void BM_Touch(benchmark::State& state, bool far) {
  Fixture& f = fixture(far);
  f.bind(state.thread_index());
  size_t i = size_t(state.thread_index()) * 4099;
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.store->touch(f.keys[next(i, state.thread_index())], 0, kNow));
  }
}

void BM_Incr(benchmark::State& state, bool far) {
  Fixture& f = fixture(far);
  f.bind(state.thread_index());
  const std::string key = "counter:" + std::to_string(state.thread_index());
  f.set(key, "1000000000");
  for (auto _ : state) {
    benchmark::DoNotOptimize(f.store->apply_delta(key, true, 1, kNow));
  }
}

// Appends 8 bytes; every 8th operation resets the value with a set, so sizes stay 128..192.
void BM_Append(benchmark::State& state, bool far) {
  Fixture& f = fixture(far);
  f.bind(state.thread_index());
  const std::string key = "append:" + std::to_string(state.thread_index());
  f.set(key, f.value);
  uint32_t n = 0;
  for (auto _ : state) {
    if (++n % 8 == 0) {
      benchmark::DoNotOptimize(f.set(key, f.value));
    } else {
      benchmark::DoNotOptimize(f.set(key, "12345678", StoreMode::kAppend));
    }
  }
}

// The key hash alone (SipHash-2-4 under a random key), at the bench keys' 12 bytes and longer.
void BM_HashKey(benchmark::State& state) {
  std::string key(static_cast<size_t>(state.range(0)), 'k');
  HashKey hk;
  if (!random_hash_key(&hk)) std::abort();
  uint64_t sum = 0;
  uint32_t n = 0;
  for (auto _ : state) {
    key[0] = static_cast<char>(n++);
    sum += hash_key(key, hk);
  }
  benchmark::DoNotOptimize(sum);
}
BENCHMARK(BM_HashKey)->Arg(12)->Arg(64)->Arg(250);

#define FM_STORE_BENCH(fn)                                               \
  BENCHMARK_CAPTURE(fn, Local, false)->ThreadRange(1, 2)->UseRealTime(); \
  BENCHMARK_CAPTURE(fn, FarResident, true)->ThreadRange(1, 2)->UseRealTime()

FM_STORE_BENCH(BM_GetHit);
FM_STORE_BENCH(BM_GetMiss);
FM_STORE_BENCH(BM_SetOverwrite);
FM_STORE_BENCH(BM_SetDelete);
FM_STORE_BENCH(BM_Touch);
FM_STORE_BENCH(BM_Incr);
FM_STORE_BENCH(BM_Append);

}  // namespace
}  // namespace fm::kv

BENCHMARK_MAIN();
