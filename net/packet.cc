// Ethernet/ARP/IPv4/UDP/ICMP parsing and building over contiguous frame bytes.
#include "net/packet.h"

#include "dataplane/byte_order.h"
#include "dataplane/check.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>

namespace fm::net {
namespace {

// On-wire layouts, used to build headers on the stack and copy them out whole, and (through
// offsetof) to name field offsets when parsing. Parsing never casts frame bytes to these.
struct [[gnu::packed]] EthHdr {
  uint8_t dst[6];
  uint8_t src[6];
  uint16_t ether_type;
};
static_assert(sizeof(EthHdr) == kEthHeaderLen);

struct [[gnu::packed]] Ipv4Hdr {
  uint8_t version_ihl;
  uint8_t tos;
  uint16_t total_len;
  uint16_t id;
  uint16_t flags_frag;
  uint8_t ttl;
  uint8_t proto;
  uint16_t checksum;
  uint32_t src;
  uint32_t dst;
};
static_assert(sizeof(Ipv4Hdr) == kIpv4HeaderLen);

struct [[gnu::packed]] UdpHdr {
  uint16_t src_port;
  uint16_t dst_port;
  uint16_t len;
  uint16_t checksum;
};
static_assert(sizeof(UdpHdr) == kUdpHeaderLen);

struct [[gnu::packed]] IcmpEchoHdr {
  uint8_t type;
  uint8_t code;
  uint16_t checksum;
  uint16_t id;
  uint16_t seq;
};
static_assert(sizeof(IcmpEchoHdr) == 8);

// Ethernet/IPv4 ARP (RFC 826).
struct [[gnu::packed]] ArpBody {
  uint16_t htype;
  uint16_t ptype;
  uint8_t hlen;
  uint8_t plen;
  uint16_t op;
  uint8_t sha[6];
  uint32_t spa;
  uint8_t tha[6];
  uint32_t tpa;
};
static_assert(sizeof(ArpBody) == 28);
static_assert(kEthHeaderLen + sizeof(ArpBody) <= kMinFrameLen);

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeArp = 0x0806;
constexpr uint8_t kIpProtoIcmp = 1;
constexpr uint8_t kIpProtoUdp = 17;
constexpr uint16_t kIpFlagDf = 0x4000;
constexpr uint16_t kIpFlagMf = 0x2000;
constexpr uint16_t kIpFragOffsetMask = 0x1fff;
constexpr uint8_t kIpDefaultTtl = 64;
constexpr uint16_t kArpHtypeEther = 1;
constexpr uint16_t kArpOpRequest = 1;
constexpr uint16_t kArpOpReply = 2;
constexpr uint8_t kIcmpEchoReply = 0;
constexpr uint8_t kIcmpEchoRequest = 8;

constexpr size_t kIpOff = kEthHeaderLen;

MacAddr load_mac(const uint8_t* p) {
  MacAddr m;
  std::memcpy(m.b.data(), p, m.b.size());
  return m;
}

// Sum of a 32-bit host-order value as two 16-bit words (for pseudo-headers).
uint32_t sum_ip(Ipv4Addr a) { return (a.v >> 16) + (a.v & 0xffff); }

// Whether the IPv4 header of `hlen` bytes at `ip` (bounded by the caller) sums to all ones with
// its checksum field included. The usual 20-byte header is summed as five 32-bit words into 64
// bits, which cannot overflow; the generic path takes headers with options.
bool ipv4_header_checksum_ok(const uint8_t* ip, size_t hlen) {
  if (hlen != sizeof(Ipv4Hdr)) return checksum_fold(checksum_partial({ip, hlen})) == 0;
  uint64_t acc = 0;
  for (size_t i = 0; i < sizeof(Ipv4Hdr); i += 4) {
    uint32_t w;
    std::memcpy(&w, ip + i, 4);
    acc += w;
  }
  // Native-order words: the folded sum is byte-swapped on little-endian hosts, and all ones
  // (the only value that verifies) reads the same either way.
  acc = (acc & 0xffffffff) + (acc >> 32);
  acc = (acc & 0xffff) + (acc >> 16);
  acc = (acc & 0xffff) + (acc >> 16);
  return acc == 0xffff;
}

// The classify_* helpers fill the caller's result in place (classify() returns it by NRVO):
// passing the 32-byte struct by value down three levels cost a copy at each.
void drop(Classified& c, DropReason r) {
  c.kind = Classified::Kind::kDrop;
  c.reason = r;
}

// Bytes from `l4` (IP payload of `l4_len` bytes, validated against the frame by the caller).
void classify_udp(Classified& c, const uint8_t* l4, size_t l4_off, size_t l4_len,
                  const Identity& me, bool verify_checksum) {
  if (l4_len < sizeof(UdpHdr)) return drop(c, DropReason::kTruncated);
  const uint16_t udp_len = load_be16(l4 + offsetof(UdpHdr, len));
  if (udp_len < sizeof(UdpHdr) || udp_len != l4_len) return drop(c, DropReason::kBadUdpLength);
  if (verify_checksum && load_be16(l4 + offsetof(UdpHdr, checksum)) != 0) {
    const uint32_t pseudo = sum_ip(c.src_ip) + sum_ip(c.dst_ip) + kIpProtoUdp + udp_len;
    if (checksum_fold(checksum_partial({l4, l4_len}, pseudo)) != 0) {
      return drop(c, DropReason::kBadUdpChecksum);
    }
  }
  c.src_port = load_be16(l4 + offsetof(UdpHdr, src_port));
  c.dst_port = load_be16(l4 + offsetof(UdpHdr, dst_port));
  if (c.dst_port != me.udp_port) return drop(c, DropReason::kNoListener);
  c.kind = Classified::Kind::kUdp;
  c.payload_off = static_cast<uint16_t>(l4_off + sizeof(UdpHdr));
  c.payload_len = static_cast<uint16_t>(udp_len - sizeof(UdpHdr));
}

void classify_icmp(Classified& c, const uint8_t* l4, size_t l4_off, size_t l4_len) {
  // Every ICMP message, echo included, is at least 8 bytes.
  if (l4_len < sizeof(IcmpEchoHdr)) return drop(c, DropReason::kTruncated);
  if (l4[offsetof(IcmpEchoHdr, type)] != kIcmpEchoRequest || l4[offsetof(IcmpEchoHdr, code)] != 0) {
    return drop(c, DropReason::kIcmpNotEcho);
  }
  if (checksum_fold(checksum_partial({l4, l4_len})) != 0) {
    return drop(c, DropReason::kBadIcmpChecksum);
  }
  c.kind = Classified::Kind::kIcmpEcho;
  c.payload_off = static_cast<uint16_t>(l4_off);
  c.payload_len = static_cast<uint16_t>(l4_len);
}

void classify_ipv4(Classified& c, const uint8_t* ip, size_t avail, const Identity& me,
                   bool verify_udp_checksum) {
  if (avail < sizeof(Ipv4Hdr)) return drop(c, DropReason::kTruncated);
  const uint8_t version_ihl = ip[offsetof(Ipv4Hdr, version_ihl)];
  const size_t hlen = static_cast<size_t>(version_ihl & 0x0f) * 4;
  if ((version_ihl >> 4) != 4 || hlen < sizeof(Ipv4Hdr)) return drop(c, DropReason::kBadIpHeader);
  if (avail < hlen) return drop(c, DropReason::kTruncated);
  // Bytes past the total length are Ethernet padding (or junk) and are ignored.
  const size_t total_len = load_be16(ip + offsetof(Ipv4Hdr, total_len));
  if (total_len < hlen || total_len > avail) return drop(c, DropReason::kBadIpHeader);
  if (!ipv4_header_checksum_ok(ip, hlen)) return drop(c, DropReason::kBadIpChecksum);
  const uint16_t flags_frag = load_be16(ip + offsetof(Ipv4Hdr, flags_frag));
  if ((flags_frag & (kIpFlagMf | kIpFragOffsetMask)) != 0) {
    return drop(c, DropReason::kIpFragment);
  }
  c.src_ip.v = load_be32(ip + offsetof(Ipv4Hdr, src));
  c.dst_ip.v = load_be32(ip + offsetof(Ipv4Hdr, dst));
  if (c.dst_ip != me.ip) return drop(c, DropReason::kNotOurIp);

  const uint8_t* l4 = ip + hlen;
  const size_t l4_off = kIpOff + hlen;
  const size_t l4_len = total_len - hlen;
  switch (ip[offsetof(Ipv4Hdr, proto)]) {
    case kIpProtoUdp:
      return classify_udp(c, l4, l4_off, l4_len, me, verify_udp_checksum);
    case kIpProtoIcmp:
      return classify_icmp(c, l4, l4_off, l4_len);
    default:
      return drop(c, DropReason::kUnsupportedProto);
  }
}

void classify_arp(Classified& c, const uint8_t* arp, size_t avail, const Identity& me) {
  if (avail < sizeof(ArpBody)) return drop(c, DropReason::kTruncated);
  const uint16_t op = load_be16(arp + offsetof(ArpBody, op));
  if (load_be16(arp + offsetof(ArpBody, htype)) != kArpHtypeEther ||
      load_be16(arp + offsetof(ArpBody, ptype)) != kEtherTypeIpv4 ||
      arp[offsetof(ArpBody, hlen)] != 6 || arp[offsetof(ArpBody, plen)] != 4 ||
      (op != kArpOpRequest && op != kArpOpReply)) {
    return drop(c, DropReason::kBadArp);
  }
  c.arp_sender_mac = load_mac(arp + offsetof(ArpBody, sha));
  c.src_ip.v = load_be32(arp + offsetof(ArpBody, spa));
  c.dst_ip.v = load_be32(arp + offsetof(ArpBody, tpa));
  c.payload_off = static_cast<uint16_t>(kEthHeaderLen);
  c.payload_len = static_cast<uint16_t>(sizeof(ArpBody));
  if (op == kArpOpReply) {
    c.kind = Classified::Kind::kArpReply;
    return;
  }
  if (c.dst_ip != me.ip) return drop(c, DropReason::kArpNotForUs);
  c.kind = Classified::Kind::kArpRequest;
}

// Quotes `text` for an error message, escaping what would garble a log line.
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (const char ch : text) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20 || u >= 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

int hex_value(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

void build_arp_frame(const MacAddr& eth_dst, const MacAddr& eth_src, uint16_t op,
                     const MacAddr& sha, Ipv4Addr spa, const MacAddr& tha, Ipv4Addr tpa,
                     uint8_t* out) {
  EthHdr eth;
  std::memcpy(eth.dst, eth_dst.b.data(), 6);
  std::memcpy(eth.src, eth_src.b.data(), 6);
  eth.ether_type = htons(kEtherTypeArp);
  ArpBody arp;
  arp.htype = htons(kArpHtypeEther);
  arp.ptype = htons(kEtherTypeIpv4);
  arp.hlen = 6;
  arp.plen = 4;
  arp.op = htons(op);
  std::memcpy(arp.sha, sha.b.data(), 6);
  arp.spa = htonl(spa.v);
  std::memcpy(arp.tha, tha.b.data(), 6);
  arp.tpa = htonl(tpa.v);
  std::memcpy(out, &eth, sizeof eth);
  std::memcpy(out + sizeof eth, &arp, sizeof arp);
  std::memset(out + sizeof eth + sizeof arp, 0, kMinFrameLen - sizeof eth - sizeof arp);
}

}  // namespace

std::string MacAddr::to_string() const {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4],
                     b[5]);
}

std::string Ipv4Addr::to_string() const {
  return fmt::format("{}.{}.{}.{}", v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
}

Result<MacAddr> parse_mac(std::string_view text, std::string_view what) {
  MacAddr mac;
  bool ok = text.size() == 17;
  for (size_t i = 0; ok && i < 6; ++i) {
    const int hi = hex_value(text[3 * i]);
    const int lo = hex_value(text[3 * i + 1]);
    ok = hi >= 0 && lo >= 0 && (i == 5 || text[3 * i + 2] == ':');
    mac.b[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  if (!ok) {
    return error(
        Errc::kInvalidArgument,
        fmt::format("{}: {} is not a MAC address (want aa:bb:cc:dd:ee:ff)", what, quoted(text)));
  }
  return mac;
}

Result<Ipv4Addr> parse_ipv4(std::string_view text, std::string_view what) {
  uint32_t addr = 0;
  size_t pos = 0;
  bool ok = true;
  for (int octet = 0; ok && octet < 4; ++octet) {
    if (octet > 0) {
      ok = pos < text.size() && text[pos] == '.';
      ++pos;
    }
    const size_t start = pos;
    uint32_t value = 0;
    while (ok && pos < text.size() && pos - start < 3 && text[pos] >= '0' && text[pos] <= '9') {
      value = value * 10 + static_cast<uint32_t>(text[pos] - '0');
      ++pos;
    }
    const size_t digits = pos - start;
    // No leading zeros: "010" means 8 to inet_aton and 10 to others; refuse to guess.
    ok = ok && digits > 0 && value <= 255 && !(digits > 1 && text[start] == '0');
    addr = addr << 8 | value;
  }
  if (!ok || pos != text.size()) {
    return error(Errc::kInvalidArgument,
                 fmt::format("{}: {} is not an IPv4 address", what, quoted(text)));
  }
  return Ipv4Addr{addr};
}

const char* drop_reason_name(DropReason r) {
  static constexpr const char* kNames[] = {
      "truncated",       "bad_ethertype",    "not_our_mac",       "bad_ip_header",
      "bad_ip_checksum", "ip_fragment",      "not_our_ip",        "unsupported_proto",
      "bad_udp_length",  "bad_udp_checksum", "no_listener",       "bad_arp",
      "arp_not_for_us",  "icmp_not_echo",    "bad_icmp_checksum", "no_buffer",
      "src_broadcast",   "src_multicast",    "src_zero",          "src_is_us",
      "src_loopback",    "src_port_zero",    "src_port_denied",   "src_not_allowed",
  };
  static_assert(std::size(kNames) == kDropReasonCount, "a DropReason has no name");
  const auto i = static_cast<size_t>(r);
  return i < kDropReasonCount ? kNames[i] : "unknown";
}

Status check_udp_payload_fits(size_t payload, uint32_t mtu, std::string_view what,
                              std::string_view port) {
  constexpr size_t kIpUdp = kIpv4HeaderLen + kUdpHeaderLen;
  const size_t mtu_limit = mtu > kIpUdp ? mtu - kIpUdp : 0;
  const size_t limit = std::min(mtu_limit, kMaxStackUdpPayloadLen);
  if (payload <= limit) return Status::ok();
  const std::string bound =
      limit == mtu_limit
          ? fmt::format("at most {} fits", limit)
          : fmt::format("at most {} fits the stack's {}-byte frames", limit, kMaxFrameLen);
  return error(Errc::kInvalidArgument,
               fmt::format("{} = {} does not fit port '{}' (MTU {}): a datagram of {} payload "
                           "bytes needs an MTU of {}; {}. Lower {}",
                           what, payload, port, mtu, payload, payload + kIpUdp, bound, what));
}

Classified classify(std::span<const uint8_t> frame, const Identity& me, bool verify_udp_checksum) {
  Classified c;  // kDrop / kTruncated
  if (frame.size() < kEthHeaderLen) return c;
  const uint8_t* p = frame.data();
  const MacAddr dst = load_mac(p + offsetof(EthHdr, dst));
  c.src_mac = load_mac(p + offsetof(EthHdr, src));
  if (dst != me.mac && !dst.is_broadcast()) {
    drop(c, DropReason::kNotOurMac);
    return c;
  }
  const uint8_t* l3 = p + kEthHeaderLen;
  const size_t avail = frame.size() - kEthHeaderLen;
  switch (load_be16(p + offsetof(EthHdr, ether_type))) {
    case kEtherTypeIpv4:
      classify_ipv4(c, l3, avail, me, verify_udp_checksum);
      break;
    case kEtherTypeArp:
      classify_arp(c, l3, avail, me);
      break;
    default:
      drop(c, DropReason::kBadEthertype);
      break;
  }
  return c;
}

size_t write_udp_headers(std::span<uint8_t> out, const UdpEndpoint& src, const UdpEndpoint& dst,
                         size_t payload_len, uint16_t ip_id, bool udp_checksum) {
  if (payload_len > kMaxUdpPayloadLen || out.size() < kUdpHeadersLen + payload_len) return 0;
  const auto udp_len = static_cast<uint16_t>(sizeof(UdpHdr) + payload_len);

  EthHdr eth;
  std::memcpy(eth.dst, dst.mac.b.data(), 6);
  std::memcpy(eth.src, src.mac.b.data(), 6);
  eth.ether_type = htons(kEtherTypeIpv4);

  Ipv4Hdr ip;
  ip.version_ihl = 0x45;
  ip.tos = 0;
  ip.total_len = htons(static_cast<uint16_t>(sizeof(Ipv4Hdr) + udp_len));
  ip.id = htons(ip_id);
  ip.flags_frag = htons(kIpFlagDf);
  ip.ttl = kIpDefaultTtl;
  ip.proto = kIpProtoUdp;
  ip.src = htonl(src.ip.v);
  ip.dst = htonl(dst.ip.v);
  // The header's 16-bit words summed from the values just written rather than read back: the
  // same one's complement sum (RFC 1071) without a pass over the bytes.
  const uint32_t ip_sum = 0x4500u + static_cast<uint32_t>(sizeof(Ipv4Hdr) + udp_len) + ip_id +
                          kIpFlagDf +
                          (uint32_t{kIpDefaultTtl} << 8 | kIpProtoUdp) + sum_ip(src.ip) +
                          sum_ip(dst.ip);
  ip.checksum = htons(checksum_fold(ip_sum));

  UdpHdr udp;
  udp.src_port = htons(src.port);
  udp.dst_port = htons(dst.port);
  udp.len = htons(udp_len);
  udp.checksum = 0;

  uint8_t* p = out.data();
  std::memcpy(p, &eth, sizeof eth);
  std::memcpy(p + kIpOff, &ip, sizeof ip);
  uint8_t* l4 = p + kIpOff + sizeof ip;
  std::memcpy(l4, &udp, sizeof udp);
  if (udp_checksum) {
    const uint32_t pseudo = sum_ip(src.ip) + sum_ip(dst.ip) + kIpProtoUdp + udp_len;
    uint16_t sum = checksum_fold(checksum_partial({l4, udp_len}, pseudo));
    // 0 on the wire means "no checksum"; RFC 768 sends a computed 0 as all ones.
    if (sum == 0) sum = 0xffff;
    store_be16(l4 + offsetof(UdpHdr, checksum), sum);
  }
  return kUdpHeadersLen + payload_len;
}

void UdpHeaderTemplate::reset(const UdpEndpoint& src, const UdpEndpoint& dst) {
  FM_CHECK(write_udp_headers(bytes_, src, dst, 0, 0, false) == kUdpHeadersLen);
  store_be16(bytes_.data() + kIpOff + offsetof(Ipv4Hdr, total_len), 0);
  store_be16(bytes_.data() + kIpOff + offsetof(Ipv4Hdr, checksum), 0);
  const size_t udp_off = kIpOff + sizeof(Ipv4Hdr);
  store_be16(bytes_.data() + udp_off + offsetof(UdpHdr, len), 0);
  ip_sum_ = checksum_partial({bytes_.data() + kIpOff, sizeof(Ipv4Hdr)});
  udp_sum_ = checksum_partial({bytes_.data() + udp_off, sizeof(UdpHdr)},
                              sum_ip(src.ip) + sum_ip(dst.ip) + kIpProtoUdp);
  dst_ = dst;
  valid_ = true;
}

size_t UdpHeaderTemplate::write(std::span<uint8_t> out, size_t payload_len, uint16_t ip_id,
                                bool udp_checksum) const {
  if (payload_len > kMaxUdpPayloadLen || out.size() < kUdpHeadersLen + payload_len) return 0;
  const auto udp_len = static_cast<uint16_t>(sizeof(UdpHdr) + payload_len);
  const auto total_len = static_cast<uint16_t>(sizeof(Ipv4Hdr) + udp_len);
  uint8_t* p = out.data();
  std::memcpy(p, bytes_.data(), kUdpHeadersLen);
  uint8_t* ip = p + kIpOff;
  store_be16(ip + offsetof(Ipv4Hdr, total_len), total_len);
  store_be16(ip + offsetof(Ipv4Hdr, id), ip_id);
  // Adding the new words to the sum of the rest is the full sum again (RFC 1071), not an
  // incremental update of an old checksum (RFC 1624), so no -0 corner case can arise.
  store_be16(ip + offsetof(Ipv4Hdr, checksum), checksum_fold(ip_sum_ + total_len + ip_id));
  uint8_t* l4 = ip + sizeof(Ipv4Hdr);
  store_be16(l4 + offsetof(UdpHdr, len), udp_len);
  if (udp_checksum) {
    // The length counts twice: once in the pseudo-header, once in the UDP header.
    const uint32_t seed = udp_sum_ + 2 * uint32_t{udp_len};
    uint16_t sum = checksum_fold(checksum_partial({l4 + sizeof(UdpHdr), payload_len}, seed));
    if (sum == 0) sum = 0xffff;  // as write_udp_headers: a computed 0 goes out as all ones
    store_be16(l4 + offsetof(UdpHdr, checksum), sum);
  }
  return kUdpHeadersLen + payload_len;
}

size_t build_arp_reply(std::span<const uint8_t> request, const Identity& me,
                       std::span<uint8_t> out) {
  if (out.size() < kMinFrameLen || request.size() < kEthHeaderLen + sizeof(ArpBody)) return 0;
  const uint8_t* req = request.data();
  const uint8_t* arp = req + kEthHeaderLen;
  if (load_be16(req + offsetof(EthHdr, ether_type)) != kEtherTypeArp ||
      load_be16(arp + offsetof(ArpBody, op)) != kArpOpRequest) {
    return 0;
  }
  // Read everything before writing: `out` may alias `request`.
  const MacAddr requester_mac = load_mac(arp + offsetof(ArpBody, sha));
  const Ipv4Addr requester_ip{load_be32(arp + offsetof(ArpBody, spa))};
  build_arp_frame(requester_mac, me.mac, kArpOpReply, me.mac, me.ip, requester_mac, requester_ip,
                  out.data());
  return kMinFrameLen;
}

size_t build_arp_request(const Identity& me, Ipv4Addr target, std::span<uint8_t> out) {
  if (out.size() < kMinFrameLen) return 0;
  MacAddr broadcast;
  broadcast.b.fill(0xff);
  build_arp_frame(broadcast, me.mac, kArpOpRequest, me.mac, me.ip, MacAddr{}, target, out.data());
  return kMinFrameLen;
}

size_t make_icmp_echo_reply_in_place(std::span<uint8_t> frame, const Classified& c,
                                     const Identity& me) {
  const size_t icmp_off = c.payload_off;
  const size_t icmp_len = c.payload_len;
  if (c.kind != Classified::Kind::kIcmpEcho || icmp_off < kIpOff + sizeof(Ipv4Hdr) ||
      icmp_off > kIpOff + 60 || icmp_len < sizeof(IcmpEchoHdr) ||
      icmp_off + icmp_len > frame.size() || frame[icmp_off] != kIcmpEchoRequest) {
    return 0;
  }
  uint8_t* p = frame.data();
  uint8_t* ip = p + kIpOff;
  uint8_t* icmp = ip + sizeof(Ipv4Hdr);
  if (icmp_off != kIpOff + sizeof(Ipv4Hdr)) {
    // Options (record route, source route, ...) would need per-option handling (RFC 1122
    // 3.2.2.6); a reply without them is still a valid reply.
    std::memmove(icmp, p + icmp_off, icmp_len);
  }

  // The checksum is computed afresh over the whole message. An incremental update (RFC 1624
  // eqn. 3) gives 0x0000 instead of 0xffff when everything after the checksum is zero (id 0,
  // sequence 0, no data), which receivers drop; echo replies are not on the fast path.
  icmp[offsetof(IcmpEchoHdr, type)] = kIcmpEchoReply;
  store_be16(icmp + offsetof(IcmpEchoHdr, checksum), 0);
  store_be16(icmp + offsetof(IcmpEchoHdr, checksum),
             checksum_fold(checksum_partial({icmp, icmp_len})));

  EthHdr eth;
  std::memcpy(&eth, p, sizeof eth);
  std::memcpy(eth.dst, eth.src, 6);
  std::memcpy(eth.src, me.mac.b.data(), 6);
  std::memcpy(p, &eth, sizeof eth);

  Ipv4Hdr iph;
  std::memcpy(&iph, ip, sizeof iph);
  iph.version_ihl = 0x45;
  iph.total_len = htons(static_cast<uint16_t>(sizeof(Ipv4Hdr) + icmp_len));
  iph.ttl = kIpDefaultTtl;
  iph.dst = iph.src;
  iph.src = htonl(me.ip.v);
  iph.checksum = 0;
  iph.checksum =
      htons(checksum_fold(checksum_partial({reinterpret_cast<const uint8_t*>(&iph), sizeof iph})));
  std::memcpy(ip, &iph, sizeof iph);
  return kIpOff + sizeof(Ipv4Hdr) + icmp_len;
}

uint32_t checksum_partial(std::span<const uint8_t> data, uint32_t sum) {
  // Sum native-order 64-bit words with end-around carry, fold, then byte-swap on little-endian
  // hosts: the one's complement sum commutes with byte swapping (RFC 1071 section 2(B)).
  const uint8_t* p = data.data();
  size_t n = data.size();
  uint64_t acc = 0;
  auto add = [&acc](uint64_t w) {
    acc += w;
    acc += acc < w;
  };
  // Four words a pass: a reply's UDP checksum covers ~70-1500 bytes, and the loop's own
  // compare and branch cost as much as the two additions of each word.
  // One 8-byte load per word: a 32-byte memcpy into an array went through the stack.
  auto load = [](const uint8_t* q) {
    uint64_t w;
    std::memcpy(&w, q, 8);
    return w;
  };
  for (; n >= 32; p += 32, n -= 32) {
    add(load(p));
    add(load(p + 8));
    add(load(p + 16));
    add(load(p + 24));
  }
  for (; n >= 8; p += 8, n -= 8) add(load(p));
  if (n >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    add(w);
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    add(w);
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    // The odd byte is the high-order byte of a zero-padded big-endian word.
    add(std::endian::native == std::endian::little ? uint64_t{*p} : uint64_t{*p} << 8);
  }
  // Four fixed folds (64 -> 33 -> 32 -> 17 -> 16 bits) instead of a loop over 16-bit steps.
  acc = (acc & 0xffffffff) + (acc >> 32);
  acc = (acc & 0xffffffff) + (acc >> 32);
  acc = (acc & 0xffff) + (acc >> 16);
  acc = (acc & 0xffff) + (acc >> 16);
  auto folded = static_cast<uint16_t>(acc);
  if constexpr (std::endian::native == std::endian::little) {
    folded = static_cast<uint16_t>(folded << 8 | folded >> 8);
  }
  uint64_t total = uint64_t{folded} + sum;
  while (total >> 16) total = (total & 0xffff) + (total >> 16);
  return static_cast<uint32_t>(total);
}

}  // namespace fm::net
