// Options of the key-value app (the [kv] config table): store and protocol.
#pragma once

#include <cstdint>

#include "dataplane/result.h"

namespace fm::kv {

/// The ranges validate() accepts, one set for everyone: config/ reads each key with the same
/// bounds, so a value the file accepts is never refused at start.
struct Limits {
  static constexpr uint32_t kMemoryMbMin = 1, kMemoryMbMax = 1u << 20;  // 1 TiB
  static constexpr uint32_t kItemSizeMaxMin = 4096;                     // one far-memory page
  static constexpr uint32_t kItemSizeMaxMax = 128u << 20;
  static constexpr double kGrowthFactorMin = 1.01, kGrowthFactorMax = 4.0;
  static constexpr uint32_t kHashPowerMin = 8, kHashPowerMax = 30;  // 2^30 buckets = 4 GiB
  static constexpr uint32_t kUdpMaxPayloadMin = 64, kUdpMaxPayloadMax = 65507;
  static constexpr uint32_t kReplyBufferKbMin = 4, kReplyBufferKbMax = 1u << 20;
  static constexpr uint32_t kReplyBytesMaxMax = 1u << 30;
  static constexpr uint32_t kSpinNsMax = 1'000'000;  // 1 ms of synthetic work a request
};

/// Store configuration; config/ fills it from the [kv] table (keys named as the fields).
struct StoreOptions {
  uint32_t memory_mb = 64;            // item memory (the arena); memcached's -m default
  uint32_t item_size_max = 1u << 20;  // largest key + value in bytes; memcached's -I default
  double slab_growth_factor = 1.25;   // chunk size ratio between slab classes; memcached's -f
  bool evict = true;                  // full memory: evict by CLOCK, or (false) fail like -M
  uint32_t hash_power = 20;           // log2 of the initial hash buckets; the table doubles
                                      // (incrementally) past 1.5 items per bucket
  uint32_t hash_power_max = 30;       // the table stops doubling here (2^30 buckets = 4 GiB)

  /// Checks every field; the message names the offending key, e.g. "kv.memory_mb must be > 0".
  /// Control path.
  Status validate() const;
};

/// Protocol configuration; config/ fills it from the [kv] table (keys named as the fields).
struct ProtocolOptions {
  uint32_t udp_max_payload = 1400;  // reply datagram bytes incl. the 8-byte frame header;
                                    // memcached's UDP_MAX_PAYLOAD_SIZE
  uint32_t reply_buffer_kb = 2048;  // per-core reply buffer; must hold a get of the largest item
  uint32_t reply_bytes_max = 0;     // reply text per request datagram (bounds amplification)
                                    // beyond a get's first value; 0: 32 KiB
  uint32_t spin_ns = 0;             // synthetic CPU work per request datagram, after serving it
                                    // (a busy loop; 0: none): an app heavier than a lookup

  /// Checks every field; the message names the offending key. Control path.
  Status validate() const;
};

/// Both structs and the rules across them (the reply buffer must hold one largest item).
/// Control path.
Status validate(const StoreOptions& store, const ProtocolOptions& protocol);

/// Reply text bytes one get of a `item_size_max` item needs: VALUE line, value, END.
uint64_t largest_get_reply(uint32_t item_size_max);

/// The bound on reply text per request datagram that `protocol.reply_bytes_max` means (a get's
/// first value may pass it: ReplyBuffer::fit_first).
uint64_t reply_bound(const ProtocolOptions& protocol);

}  // namespace fm::kv
