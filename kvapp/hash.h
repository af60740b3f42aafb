// The keyed 64-bit hash of item keys: SipHash-2-4 (libsodium), so chains cannot be flooded.
#pragma once

#include <sodium.h>

#include <cstdint>
#include <cstring>
#include <string_view>

static_assert(crypto_shorthash_siphash24_BYTES == 8, "a 64-bit hash");
static_assert(crypto_shorthash_siphash24_KEYBYTES == 16, "a 128-bit key");

namespace fm::kv {

/// The secret 128-bit key of one store's hash. Whoever knows it can build colliding keys, so
/// it comes from random_hash_key() except in tests that need reproducible buckets.
struct HashKey {
  unsigned char bytes[crypto_shorthash_siphash24_KEYBYTES] = {};
};

/// A fresh random key from libsodium's CSPRNG (initializes libsodium once). Any thread; false
/// only when libsodium cannot initialize (no entropy source).
[[nodiscard]] inline bool random_hash_key(HashKey* out) {
  static const bool ready = sodium_init() >= 0;  // thread-safe, runs once
  if (!ready) return false;
  randombytes_buf(out->bytes, sizeof(out->bytes));
  return true;
}

/// SipHash-2-4 of `key` under `k`: without `k`, an attacker cannot choose keys that share a
/// bucket (the old multiply-fold hash could be collided for every seed). Any thread; no
/// allocation; a pure function of (key, k).
inline uint64_t hash_key(std::string_view key, const HashKey& k) {
  unsigned char out[crypto_shorthash_siphash24_BYTES];
  crypto_shorthash_siphash24(out, reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                             k.bytes);
  uint64_t h;
  std::memcpy(&h, out, sizeof(h));
  return h;
}

}  // namespace fm::kv
