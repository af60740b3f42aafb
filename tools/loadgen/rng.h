// Small, fast, deterministic random numbers for schedules and key choice (xoshiro256**).
#pragma once

#include <cstdint>

namespace fm::loadgen {

/// SplitMix64 step: a good 64-bit mixer, used to seed and to derive per-core/per-point seeds.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Mixes several values into one seed (order matters): seed of core c at rate point p.
inline uint64_t derive_seed(uint64_t a, uint64_t b, uint64_t c = 0) {
  uint64_t s = a;
  uint64_t x = splitmix64(s);
  s = x ^ b;
  x = splitmix64(s);
  s = x ^ c;
  return splitmix64(s);
}

/// xoshiro256** (Blackman & Vigna): 1 ns per number, period 2^256 - 1. Not thread-safe:
/// one per core. Deterministic for a given seed on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed = 1) { reseed(seed); }

  void reseed(uint64_t seed) {
    uint64_t s = seed;
    for (auto& w : s_) w = splitmix64(s);
  }

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }

  /// Uniform integer in [0, n) (Lemire's multiply-shift; bias < n / 2^64, negligible).
  uint64_t below(uint64_t n) { return uint64_t((unsigned __int128)next() * n >> 64); }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace fm::loadgen
