// The TSC as the loadgen's clock without EAL: read it, and calibrate it against CLOCK_MONOTONIC.
#pragma once

#include <time.h>
#include <x86intrin.h>

#include <cstdint>

namespace fm::loadgen {

/// Reads the TSC (invariant on every x86 CPU of the last decade: same rate on all cores).
inline uint64_t rdtsc_now() { return __rdtsc(); }

/// TSC ticks per second, measured against CLOCK_MONOTONIC_RAW over ~50 ms (< 0.01% error).
/// Control path; sleeps.
inline double tsc_hz_calibrated() {
  const auto mono_ns = [] {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
  };
  const uint64_t n0 = mono_ns(), t0 = rdtsc_now();
  timespec nap{0, 50 * 1000 * 1000};
  nanosleep(&nap, nullptr);
  const uint64_t n1 = mono_ns(), t1 = rdtsc_now();
  return double(t1 - t0) * 1e9 / double(n1 - n0);
}

}  // namespace fm::loadgen
