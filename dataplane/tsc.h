// Time from the TSC: cycles, calibrated conversions, a coarse wall clock.
#pragma once

#include <cstdint>

#include <rte_cycles.h>

namespace fm {

/// Reads the TSC. Any core; a few ns.
inline uint64_t rdtsc() { return rte_rdtsc(); }

/// TSC frequency in Hz as EAL calibrated it (valid after EAL init).
inline uint64_t tsc_hz() { return rte_get_tsc_hz(); }

/// tsc_hz(), or where EAL has not calibrated it (unit tests) a one-off 5 ms measurement against
/// the steady clock. Control path on first call.
uint64_t tsc_hz_any();

inline uint64_t us_to_cycles(uint64_t us) { return us * tsc_hz() / 1000000; }
inline uint64_t ns_to_cycles(uint64_t ns) { return ns * tsc_hz() / 1000000000; }
inline double cycles_to_us(uint64_t cycles) { return double(cycles) * 1e6 / double(tsc_hz()); }
inline double cycles_to_ns(uint64_t cycles) { return double(cycles) * 1e9 / double(tsc_hz()); }

}  // namespace fm
