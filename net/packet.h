// Ethernet/ARP/IPv4/UDP/ICMP parsing and building over contiguous frame bytes (no EAL needed).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "dataplane/result.h"

namespace fm::net {

/// A MAC address in wire order.
struct MacAddr {
  std::array<uint8_t, 6> b{};
  /// Compared as one 4-byte and one 2-byte word: the defaulted operator calls memcmp, and every
  /// received frame and sent reply compares a MAC or two.
  bool operator==(const MacAddr& o) const {
    uint32_t a4, o4;
    uint16_t a2, o2;
    std::memcpy(&a4, b.data(), 4);
    std::memcpy(&o4, o.b.data(), 4);
    std::memcpy(&a2, b.data() + 4, 2);
    std::memcpy(&o2, o.b.data() + 4, 2);
    return ((a4 ^ o4) | uint32_t(a2 ^ o2)) == 0;
  }
  /// ff:ff:ff:ff:ff:ff.
  constexpr bool is_broadcast() const { return (b[0] & b[1] & b[2] & b[3] & b[4] & b[5]) == 0xff; }
  /// Group bit set (multicast or broadcast).
  constexpr bool is_multicast() const { return (b[0] & 0x01) != 0; }
  std::string to_string() const;  // "02:00:00:00:00:01"; allocates
};

/// An IPv4 address in host byte order (10.0.0.1 == 0x0a000001).
struct Ipv4Addr {
  uint32_t v = 0;
  bool operator==(const Ipv4Addr&) const = default;
  std::string to_string() const;  // dotted quad; allocates
};

/// Parses "aa:bb:cc:dd:ee:ff" (exactly six hex pairs, either case, ':' separated).
/// The error names `what` (e.g. the config key) and quotes `text`. Control path; allocates.
Result<MacAddr> parse_mac(std::string_view text, std::string_view what);
/// Parses a dotted quad: four decimal octets 0-255, no leading zeros (as inet_pton), no junk.
/// The error names `what` and quotes `text`. Control path; allocates.
Result<Ipv4Addr> parse_ipv4(std::string_view text, std::string_view what);

/// Why a frame was dropped; every drop is counted under exactly one reason.
enum class DropReason : uint8_t {
  kTruncated = 0,  // shorter than the headers it claims
  kBadEthertype,   // neither IPv4 nor ARP (IPv6, VLAN, ...)
  kNotOurMac,      // unicast to another MAC, or multicast other than broadcast
  kBadIpHeader,    // version != 4, IHL < 5, total length < header or > frame
  kBadIpChecksum,
  kIpFragment,        // MF set or fragment offset != 0: fragments are not reassembled
  kNotOurIp,          // destination is not the server's address
  kUnsupportedProto,  // IP protocol other than UDP or ICMP
  kBadUdpLength,      // UDP length < 8 or != IP payload length
  kBadUdpChecksum,    // non-zero checksum that does not verify
  kNoListener,        // UDP to a port nobody serves
  kBadArp,            // not Ethernet/IPv4 ARP, or bad opcode
  kArpNotForUs,       // ARP request for another address
  kIcmpNotEcho,       // ICMP other than echo request
  kBadIcmpChecksum,
  kNoBuffer,  // no mbuf or no TX room for a reply (counted by the stack)
  // Sources the stack never answers (net/filter.h, checked by the stack after classify()).
  kSrcBroadcast,   // ff:ff:ff:ff:ff:ff MAC, 255.255.255.255 or the subnet's broadcast address
  kSrcMulticast,   // group bit in the MAC, or 224.0.0.0/4
  kSrcZero,        // 00:00:00:00:00:00 MAC or 0.0.0.0/8 ("this network")
  kSrcIsUs,        // our own MAC or IP: a reflection or a spoof
  kSrcLoopback,    // 127.0.0.0/8 never arrives on a wire
  kSrcPortZero,    // UDP source port 0: no port to answer
  kSrcPortDenied,  // UDP from a memcached server's port: an answer could start a reply loop
  kSrcNotAllowed,  // IP source outside the allow-list (net.allow)
  kCount
};
inline constexpr size_t kDropReasonCount = static_cast<size_t>(DropReason::kCount);
/// A stable snake_case name for statistics ("bad_ip_checksum"); "unknown" out of range.
const char* drop_reason_name(DropReason r);

/// Who we are on the wire.
struct Identity {
  MacAddr mac;
  Ipv4Addr ip;
  uint16_t udp_port = 11211;  // the one port we listen on (host order)
};

/// Result of classifying a received frame. Offsets are from the start of the frame.
struct Classified {
  enum class Kind : uint8_t { kUdp, kArpRequest, kArpReply, kIcmpEcho, kDrop };
  Kind kind = Kind::kDrop;
  DropReason reason = DropReason::kTruncated;  // valid when kind == kDrop
  MacAddr src_mac;
  Ipv4Addr src_ip;        // UDP/ICMP: IP source; ARP: sender protocol address
  Ipv4Addr dst_ip;        // UDP/ICMP: IP destination; ARP: target protocol address
  uint16_t src_port = 0;  // UDP only, host order
  uint16_t dst_port = 0;
  uint16_t payload_off = 0;  // UDP payload / ICMP header / ARP header
  uint16_t payload_len = 0;  // bounded by the IP total length: Ethernet padding is excluded
  MacAddr arp_sender_mac;    // ARP only
};

/// Classifies one frame addressed to `me`. Never reads outside `frame`.
/// Unicast to another MAC and multicast other than broadcast are dropped as kNotOurMac.
/// `verify_udp_checksum`: false where the PMD verified it already. Pure; any core; no allocation.
Classified classify(std::span<const uint8_t> frame, const Identity& me, bool verify_udp_checksum);

inline constexpr size_t kEthHeaderLen = 14;
inline constexpr size_t kIpv4HeaderLen = 20;  // without options
inline constexpr size_t kUdpHeaderLen = 8;
/// Size of Ethernet + IPv4 (no options) + UDP headers.
inline constexpr size_t kUdpHeadersLen = kEthHeaderLen + kIpv4HeaderLen + kUdpHeaderLen;
/// The largest UDP payload an IPv4 datagram without options can carry.
inline constexpr size_t kMaxUdpPayloadLen = 65535 - kIpv4HeaderLen - kUdpHeaderLen;
/// The Ethernet minimum frame length without the FCS; ARP frames are padded to it.
inline constexpr size_t kMinFrameLen = 60;
/// The largest frame the stack sends or receives: one standard Ethernet frame without the FCS
/// (MTU 1500), which one default-sized mbuf holds; no jumbo frames, no chained mbufs.
inline constexpr size_t kMaxFrameLen = 1514;
/// The largest UDP payload the stack sends in one frame (1472).
inline constexpr size_t kMaxStackUdpPayloadLen = kMaxFrameLen - kUdpHeadersLen;

/// Checks at start that UDP datagrams with `payload` bytes fit port `port` whose IPv4 MTU is
/// `mtu` and the stack's frame limit (kMaxFrameLen); otherwise every such datagram would be
/// dropped on TX. The error names `what` (the config key that set `payload`), the value, the MTU,
/// the port and the largest payload that fits. Pure; control path; allocates on error.
Status check_udp_payload_fits(size_t payload, uint32_t mtu, std::string_view what,
                              std::string_view port);

/// Endpoint of a UDP flow, for building frames.
struct UdpEndpoint {
  MacAddr mac;
  Ipv4Addr ip;
  uint16_t port = 0;  // host order
};

/// Writes Ethernet+IPv4+UDP headers into `out[0..kUdpHeadersLen)` for a payload of
/// `payload_len` bytes that the caller has placed at `out[kUdpHeadersLen..]`, and fills the
/// IPv4 checksum and (when `udp_checksum`) the UDP checksum over that payload; otherwise the
/// UDP checksum is 0 (none). IPv4: TTL 64, DF set, no options. `ip_id` is the identification.
/// Returns the frame length (not padded to kMinFrameLen: NICs pad short frames), or 0 when
/// `out` cannot hold the frame or `payload_len` > kMaxUdpPayloadLen. Any core; no allocation.
size_t write_udp_headers(std::span<uint8_t> out, const UdpEndpoint& src, const UdpEndpoint& dst,
                         size_t payload_len, uint16_t ip_id, bool udp_checksum);

/// Ethernet+IPv4+UDP headers from one endpoint to another, built once and stamped onto each
/// datagram with only its lengths, identification and checksums filled in: the bytes
/// write_udp_headers() writes, for less work per datagram. Not thread-safe; no allocation.
class UdpHeaderTemplate {
 public:
  /// Builds the headers from `src` to `dst`.
  void reset(const UdpEndpoint& src, const UdpEndpoint& dst);
  /// Whether reset() built it for destination `dst` (its source is the caller's to keep fixed).
  bool addressed_to(const UdpEndpoint& dst) const {
    return valid_ && dst.port == dst_.port && dst.ip == dst_.ip && dst.mac == dst_.mac;
  }
  /// As write_udp_headers() with the endpoints given to reset(), which must have been called.
  size_t write(std::span<uint8_t> out, size_t payload_len, uint16_t ip_id,
               bool udp_checksum) const;

 private:
  bool valid_ = false;
  UdpEndpoint dst_;
  std::array<uint8_t, kUdpHeadersLen> bytes_{};  // total length, id, UDP length, checksums 0
  uint32_t ip_sum_ = 0;   // one's complement sum of the IPv4 header as in bytes_
  uint32_t udp_sum_ = 0;  // pseudo-header and UDP header as in bytes_, both lengths left out
};

/// Builds an ARP reply to the request in `request` (classified as kArpRequest) into `out`,
/// addressed to the requester's sender hardware address. `out` may alias `request`.
/// Returns the frame length (60: padded with zeroes to the Ethernet minimum), or 0 if `out` is
/// too small or `request` is not an ARP request. Any core; no allocation.
size_t build_arp_reply(std::span<const uint8_t> request, const Identity& me,
                       std::span<uint8_t> out);

/// Builds a broadcast ARP request asking who has `target` into `out`.
/// Returns the frame length (60, zero padded), or 0 if `out` is too small. No allocation.
size_t build_arp_request(const Identity& me, Ipv4Addr target, std::span<uint8_t> out);

/// Turns the ICMP echo request in `frame` (classified kIcmpEcho as `c`) into its echo reply in
/// place: source MAC/IP become `me`'s (the request may have come to the broadcast MAC),
/// destination MAC/IP the requester's, type 0, TTL 64, checksums fixed. IP options of the
/// request are dropped (the ICMP message moves up to follow a 20-byte header).
/// Returns the reply's frame length (Ethernet padding of the request excluded), or 0 if `c`
/// does not describe an echo request inside `frame`. Any core; no allocation.
size_t make_icmp_echo_reply_in_place(std::span<uint8_t> frame, const Classified& c,
                                     const Identity& me);

/// Internet checksum (RFC 1071) over `data`, folded, not inverted, seeded with `sum`.
/// Works on big-endian 16-bit words and returns a host-order value in [0, 0xffff]; an odd
/// trailing byte is padded with zero, so when summing in pieces every piece but the last must
/// have even length. Pseudo-headers can be summed as plain host-order 16-bit values.
uint32_t checksum_partial(std::span<const uint8_t> data, uint32_t sum = 0);
/// Folds `sum` to 16 bits and inverts it: the checksum field in host order (store big-endian).
/// A region that includes a correct checksum field gives checksum_fold(checksum_partial(..)) 0.
inline uint16_t checksum_fold(uint32_t sum) {
  // Two folds always suffice for 32 bits: the first leaves at most 0x1fffe.
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace fm::net
