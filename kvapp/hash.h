// A fast seeded 64-bit hash for keys (wyhash-style multiply-fold mixing).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace fm::kv {

namespace detail {
inline uint64_t mix(uint64_t a, uint64_t b) {
  __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}
inline uint64_t load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
}  // namespace detail

/// Hashes `key` with `seed`. A per-store random seed keeps crafted keys from piling into one
/// chain. Any thread; no allocation.
inline uint64_t hash_key(std::string_view key, uint64_t seed) {
  constexpr uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull,
                     k2 = 0x8ebc6af09c88c6e3ull;
  const char* p = key.data();
  size_t n = key.size();
  uint64_t h = seed ^ detail::mix(n ^ k0, k1);
  while (n >= 16) {
    h = detail::mix(detail::load64(p) ^ k1, detail::load64(p + 8) ^ h);
    p += 16;
    n -= 16;
  }
  uint64_t a = 0, b = 0;
  if (n > 8) {
    a = detail::load64(p);
    std::memcpy(&b, p + 8, n - 8);
  } else if (n > 0) {
    std::memcpy(&a, p, n);
  }
  h = detail::mix(a ^ k1 ^ n, b ^ h);
  return detail::mix(h ^ k2, k0);
}

}  // namespace fm::kv
