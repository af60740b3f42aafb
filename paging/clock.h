// A clock the transports and page table read, injectable so tests control time.
#pragma once

#include <cstdint>

namespace fm::paging {

/// Ticks of some monotonic clock and how many make a second. Data path reads now() per post/poll.
struct Clock {
  uint64_t (*now_fn)(void* ctx) = nullptr;
  void* ctx = nullptr;
  uint64_t hz = 1'000'000'000;
  bool tsc = false;  // now_fn reads the TSC: now() reads it inline (a fault reads the clock ~4x)

  uint64_t now() const {
#if defined(__x86_64__)
    if (tsc) return __builtin_ia32_rdtsc();
#endif
    return now_fn(ctx);
  }
  /// Converts nanoseconds to ticks (rounded down).
  uint64_t from_ns(double ns) const { return uint64_t(ns * double(hz) / 1e9); }
  double to_ns(uint64_t ticks) const { return double(ticks) * 1e9 / double(hz); }
};

/// The TSC, calibrated by EAL (valid after rte_eal_init) — or, without EAL, calibrated here once
/// against CLOCK_MONOTONIC. Any core.
Clock tsc_clock();

/// A manual clock for tests: now() returns *ctx.
inline Clock manual_clock(uint64_t* ticks, uint64_t hz = 1'000'000'000) {
  return Clock{[](void* c) { return *static_cast<uint64_t*>(c); }, ticks, hz};
}

}  // namespace fm::paging
