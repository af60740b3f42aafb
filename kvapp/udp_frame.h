// memcached's 8-byte UDP frame header: the on-wire struct and its parse/write helpers. Header
// only: the server, the loadgen and the reflector speak it from this one definition.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "dataplane/byte_order.h"
#include "dataplane/check.h"
#include "kvapp/tuning.h"

namespace fm::kv {

/// The frame header in front of every memcached UDP datagram, as it lies on the wire: four
/// 16-bit fields in network byte order. Use parse_frame_header()/write_frame_header() rather than
/// reading the fields directly (they are big-endian).
struct UdpFrameWire {
  uint16_t request_id_be;  // chosen by the client, echoed in every reply datagram
  uint16_t sequence_be;    // 0..total-1
  uint16_t total_be;       // datagrams in this message
  uint16_t reserved_be;    // must be 0; ignored on receipt, like memcached
};
static_assert(sizeof(UdpFrameWire) == kUdpFrameHeaderSize);

/// The frame header in host byte order.
struct UdpFrameHeader {
  uint16_t request_id = 0;
  uint16_t sequence = 0;
  uint16_t total = 0;
  uint16_t reserved = 0;

  /// A request we can serve: a whole message in one datagram (total 1, sequence 0).
  bool is_single_datagram() const { return total == 1 && sequence == 0; }
};

/// Reads the header at the front of `datagram`; nullopt when it is shorter than 8 bytes.
/// Any thread; no allocation.
inline std::optional<UdpFrameHeader> parse_frame_header(std::span<const uint8_t> datagram) {
  if (datagram.size() < kUdpFrameHeaderSize) return std::nullopt;
  const uint8_t* p = datagram.data();
  return UdpFrameHeader{load_be16(p), load_be16(p + 2), load_be16(p + 4), load_be16(p + 6)};
}

/// Writes `h` into the first 8 bytes at `out` (which must hold at least 8 bytes).
/// Any thread; no allocation.
inline void write_frame_header(const UdpFrameHeader& h, uint8_t* out) {
  store_be16(out, h.request_id);
  store_be16(out + 2, h.sequence);
  store_be16(out + 4, h.total);
  store_be16(out + 6, h.reserved);
}
inline void write_frame_header(const UdpFrameHeader& h, std::span<uint8_t> out) {
  FM_DCHECK(out.size() >= kUdpFrameHeaderSize);
  write_frame_header(h, out.data());
}

/// Datagrams needed for a reply of `text_bytes` when each datagram carries at most
/// `max_payload` bytes including the header (0 for an empty reply).
constexpr size_t datagrams_for(size_t text_bytes, size_t max_payload) {
  const size_t per = max_payload - kUdpFrameHeaderSize;
  return (text_bytes + per - 1) / per;
}

}  // namespace fm::kv
