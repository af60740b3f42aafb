// The TSC clock: EAL's calibration when EAL is up, our own otherwise (tests, memnode).
#include "paging/clock.h"

#include <rte_cycles.h>
#include <time.h>

namespace fm::paging {
namespace {

uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

uint64_t calibrate() {
  if (uint64_t hz = rte_get_tsc_hz(); hz != 0) return hz;
  const uint64_t t0 = mono_ns(), c0 = rte_rdtsc();
  while (mono_ns() - t0 < 20'000'000) {
  }
  const uint64_t t1 = mono_ns(), c1 = rte_rdtsc();
  return uint64_t(double(c1 - c0) * 1e9 / double(t1 - t0));
}

}  // namespace

Clock tsc_clock() {
  static const uint64_t hz = calibrate();
  return Clock{[](void*) { return rte_rdtsc(); }, nullptr, hz, true};
}

}  // namespace fm::paging
