// Source rules: which senders the stack may answer at all (no reflection, no amplification).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/result.h"
#include "net/packet.h"

namespace fm::net {

/// An IPv4 prefix (CIDR block), host byte order; `addr` has no bits set past the first `len`.
struct Ipv4Prefix {
  Ipv4Addr addr;
  uint8_t len = 32;
  bool operator==(const Ipv4Prefix&) const = default;
  /// The netmask of `len` bits (0 for /0).
  static constexpr uint32_t mask_of(uint8_t len) {
    return len == 0 ? 0 : ~uint32_t{0} << (32 - (len > 32 ? 32 : len));
  }
  constexpr bool contains(Ipv4Addr a) const { return (a.v & mask_of(len)) == addr.v; }
  std::string to_string() const;  // "10.77.0.0/24"; allocates
};

/// The prefix of `len` bits (at most 32) that holds `a`: its host bits cleared.
constexpr Ipv4Prefix prefix_of(Ipv4Addr a, uint8_t len) {
  if (len > 32) len = 32;
  return Ipv4Prefix{Ipv4Addr{a.v & Ipv4Prefix::mask_of(len)}, len};
}

/// Parses "a.b.c.d/len" (len 0..32, decimal, no leading zeros) or a bare address (a /32).
/// Host bits set past `len` are an error that names the prefix meant ("10.77.0.1/24": did you
/// mean 10.77.0.0/24?), so a typo cannot open a wider block than intended. The error names
/// `what` and quotes `text`. Control path; allocates.
Result<Ipv4Prefix> parse_ipv4_prefix(std::string_view text, std::string_view what);

/// The source rules of one stack, resolved against its identity. Built on the control path;
/// read-only afterwards, so any core may call check().
class SourceFilter {
 public:
  /// `me`: our MAC, IP and UDP port, none of which is ever a valid source. `prefix_len`: the
  /// length of our own subnet (me.ip/prefix_len), whose broadcast address is never a source.
  /// `allow`: the client prefixes answered; empty means our own subnet. `deny_ports`: UDP source
  /// ports never answered; me.udp_port is always added. Control path; allocates.
  SourceFilter(const Identity& me, uint8_t prefix_len, std::span<const Ipv4Prefix> allow,
               std::span<const uint16_t> deny_ports);

  /// Why the frame classified as `c` must be neither answered nor learned from, or nullopt when
  /// its sender may be answered. For UDP, ICMP echo and ARP (`c.kind` kDrop: nullopt). The first
  /// rule that matches decides, in this order:
  ///   the Ethernet source MAC (and an ARP sender's MAC): broadcast, multicast, zero, ours;
  ///   the IPv4 source (an ARP sender's address): 255.255.255.255 or our subnet's broadcast
  ///   (all-ones or all-zeros host), 224.0.0.0/4, 0.0.0.0/8, our own address, 127.0.0.0/8;
  ///   UDP: source port 0, then a denied source port;
  ///   UDP and ICMP echo: a source outside the allow-list. ARP is not held to the allow-list: it
  ///   never leaves the link, its reply is unicast and no larger than the request, and a gateway
  ///   that routes allowed clients must be able to resolve us.
  /// Pure; any core; no allocation.
  std::optional<DropReason> check(const Classified& c) const;

  /// The resolved allow-list (never empty) and denied ports (ours included), for logs.
  const std::vector<Ipv4Prefix>& allow() const { return allow_; }
  const std::vector<uint16_t>& deny_ports() const { return deny_ports_; }
  /// Our subnet's broadcast address (255.255.255.255 when the subnet is a /31 or /32).
  Ipv4Addr subnet_broadcast() const { return subnet_broadcast_; }

 private:
  std::optional<DropReason> check_mac(const MacAddr& mac) const;
  std::optional<DropReason> check_ip(Ipv4Addr ip) const;

  Identity me_;
  Ipv4Addr subnet_broadcast_;
  Ipv4Addr subnet_zero_;           // the subnet's all-zeros host (255.255.255.255 for a /31 or /32)
  std::vector<Ipv4Prefix> allow_;  // few entries; linear scan
  std::vector<uint16_t> deny_ports_;  // few entries; linear scan
};

/// A SourceFilter's verdicts remembered for the last UDP sender it accepted, so a burst from one
/// client is checked once: the rules never change after construction, so that (MAC, IP, port)
/// stays accepted. Anything else goes to the filter. One per stack; owner core only.
class LastSourceCache {
 public:
  /// filter.check(c), the same answer for every `c`.
  std::optional<DropReason> check(const SourceFilter& filter, const Classified& c) {
    if (c.kind == Classified::Kind::kUdp && c.src_port == last_.port && c.src_ip == last_.ip &&
        c.src_mac == last_.mac) {
      return std::nullopt;
    }
    const std::optional<DropReason> why = filter.check(c);
    if (!why && c.kind == Classified::Kind::kUdp) {
      last_ = UdpEndpoint{c.src_mac, c.src_ip, c.src_port};
    }
    return why;
  }

 private:
  UdpEndpoint last_{};  // port 0 (always refused): none yet
};

}  // namespace fm::net
