// memcached's UDP frame header: parse and write in network byte order.
#include "kvapp/udp_frame.h"

#include "dataplane/check.h"

namespace fm::kv {
namespace {
uint16_t load_be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
void store_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
}  // namespace

std::optional<UdpFrameHeader> parse_frame_header(std::span<const uint8_t> datagram) {
  if (datagram.size() < kUdpFrameHeaderSize) return std::nullopt;
  const uint8_t* p = datagram.data();
  return UdpFrameHeader{load_be16(p), load_be16(p + 2), load_be16(p + 4), load_be16(p + 6)};
}

void write_frame_header(const UdpFrameHeader& h, std::span<uint8_t> out) {
  FM_DCHECK(out.size() >= kUdpFrameHeaderSize);
  uint8_t* p = out.data();
  store_be16(p, h.request_id);
  store_be16(p + 2, h.sequence);
  store_be16(p + 4, h.total);
  store_be16(p + 6, h.reserved);
}

}  // namespace fm::kv
