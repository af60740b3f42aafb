// Validation of the key-value app's options, naming each offending config key.
#include "kvapp/options.h"

#include <string>

#include "kvapp/slab.h"
#include "kvapp/tuning.h"

namespace fm::kv {
namespace {
constexpr uint64_t kMiB = 1ull << 20;
}  // namespace

Status StoreOptions::validate() const {
  static_assert(Limits::kItemSizeMaxMin == kPageSize);
  if (memory_mb < Limits::kMemoryMbMin) {
    return error(Errc::kInvalidArgument, "kv.memory_mb must be > 0");
  }
  if (memory_mb > Limits::kMemoryMbMax) {
    return error(Errc::kInvalidArgument, "kv.memory_mb must be <= 1048576 (1 TiB)");
  }
  if (item_size_max < Limits::kItemSizeMaxMin || item_size_max > Limits::kItemSizeMaxMax) {
    return error(Errc::kInvalidArgument, "kv.item_size_max must be between " +
                                             std::to_string(Limits::kItemSizeMaxMin) + " and " +
                                             std::to_string(Limits::kItemSizeMaxMax) + " bytes");
  }
  if (hash_power < Limits::kHashPowerMin || hash_power > Limits::kHashPowerMax) {
    return error(Errc::kInvalidArgument, "kv.hash_power must be between " +
                                             std::to_string(Limits::kHashPowerMin) + " and " +
                                             std::to_string(Limits::kHashPowerMax));
  }
  if (hash_power_max < hash_power || hash_power_max > Limits::kHashPowerMax) {
    return error(Errc::kInvalidArgument, "kv.hash_power_max must be between kv.hash_power and " +
                                             std::to_string(Limits::kHashPowerMax));
  }
  auto geometry = SlabGeometry::build(item_size_max, slab_growth_factor);
  if (!geometry) return geometry.status();
  const uint64_t slabs = uint64_t{memory_mb} * kMiB / geometry->slab_bytes();
  if (slabs == 0) {
    return error(Errc::kInvalidArgument,
                 "kv.memory_mb (" + std::to_string(memory_mb) +
                     " MiB) must hold at least one slab of kv.item_size_max (" +
                     std::to_string(geometry->slab_bytes()) + " bytes)");
  }
  const uint32_t index_bits = geometry->index_bits();
  if (index_bits >= 32 || slabs > (uint64_t{1} << (32 - index_bits)) - 2) {
    return error(Errc::kInvalidArgument,
                 "kv.memory_mb is too large for kv.item_size_max: " + std::to_string(slabs) +
                     " slabs exceed the entry id space; raise kv.item_size_max");
  }
  return Status::ok();
}

Status ProtocolOptions::validate() const {
  if (udp_max_payload < Limits::kUdpMaxPayloadMin || udp_max_payload > Limits::kUdpMaxPayloadMax) {
    return error(Errc::kInvalidArgument, "kv.udp_max_payload must be between 64 and 65507");
  }
  if (reply_buffer_kb < Limits::kReplyBufferKbMin || reply_buffer_kb > Limits::kReplyBufferKbMax) {
    return error(Errc::kInvalidArgument, "kv.reply_buffer_kb must be between 4 and 1048576");
  }
  if (reply_bytes_max > Limits::kReplyBytesMaxMax) {
    return error(Errc::kInvalidArgument, "kv.reply_bytes_max must be <= 1073741824");
  }
  if (reply_bytes_max != 0 && reply_bytes_max < kMinReplyBytesMax) {
    return error(Errc::kInvalidArgument,
                 "kv.reply_bytes_max must be 0 (the default, " +
                     std::to_string(kDefaultReplyBytesMax) + ") or at least " +
                     std::to_string(kMinReplyBytesMax) + " so a stats reply fits");
  }
  if (spin_ns > Limits::kSpinNsMax) {
    return error(Errc::kInvalidArgument, "kv.spin_ns must be <= 1000000 (1 ms)");
  }
  const uint64_t slots = uint64_t{reply_buffer_kb} * 1024 / udp_max_payload;
  if (slots > 65535) {
    return error(Errc::kInvalidArgument,
                 "kv.reply_buffer_kb is too large: a reply may span at most 65535 datagrams of "
                 "kv.udp_max_payload bytes");
  }
  return Status::ok();
}

uint64_t largest_get_reply(uint32_t item_size_max) {
  // One VALUE line (key and numbers), the value with its \r\n, and END.
  return uint64_t{item_size_max} + kKeyMaxLength + 64;
}

uint64_t reply_bound(const ProtocolOptions& protocol) {
  return protocol.reply_bytes_max != 0 ? protocol.reply_bytes_max : kDefaultReplyBytesMax;
}

Status validate(const StoreOptions& store, const ProtocolOptions& protocol) {
  FM_RETURN_IF_ERROR(store.validate());
  FM_RETURN_IF_ERROR(protocol.validate());
  const uint64_t slots = uint64_t{protocol.reply_buffer_kb} * 1024 / protocol.udp_max_payload;
  const uint64_t text = slots * (protocol.udp_max_payload - kUdpFrameHeaderSize) - kReplyReserve;
  const uint64_t need = largest_get_reply(store.item_size_max);
  if (text < need) {
    return error(Errc::kInvalidArgument,
                 "kv.reply_buffer_kb (" + std::to_string(protocol.reply_buffer_kb) +
                     ") must hold a get reply of one kv.item_size_max item (" +
                     std::to_string((need + kReplyReserve) / 1024 + 2) + " KiB or more)");
  }
  return Status::ok();
}

}  // namespace fm::kv
