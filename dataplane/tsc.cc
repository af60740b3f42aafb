// TSC frequency without EAL (unit tests): measured once against the steady clock.
#include "dataplane/tsc.h"

#include <chrono>

namespace fm {

uint64_t tsc_hz_any() {
  if (uint64_t hz = tsc_hz()) return hz;
  static const uint64_t measured = [] {
    const auto t0 = std::chrono::steady_clock::now();
    const uint64_t c0 = rdtsc();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(5)) {
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return uint64_t(double(rdtsc() - c0) / s);
  }();
  return measured;
}

}  // namespace fm
