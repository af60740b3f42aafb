// Unit tests for net/filter.h (prefixes, the source rules on real frames, a fuzz loop) and the
// start-up check of a UDP payload against the port's MTU (net/packet.h).
#include "net/filter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "net/packet.h"

namespace fm::net {
namespace {

using Frame = std::vector<uint8_t>;
using Kind = Classified::Kind;
using ::testing::HasSubstr;

constexpr MacAddr kServerMac{{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}};
constexpr MacAddr kClientMac{{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}};
constexpr MacAddr kBroadcastMac{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
constexpr MacAddr kMulticastMac{{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}};
constexpr MacAddr kZeroMac{};
constexpr Ipv4Addr kServerIp{0x0a010203};  // 10.1.2.3
constexpr Ipv4Addr kClientIp{0x0a010209};  // 10.1.2.9: in the server's /24
constexpr uint16_t kServerPort = 11211;
constexpr uint16_t kClientPort = 40000;

const Identity kServer{kServerMac, kServerIp, kServerPort};

Ipv4Addr ip(const char* text) { return parse_ipv4(text, "test").value(); }
Ipv4Prefix prefix(const char* text) { return parse_ipv4_prefix(text, "test").value(); }

std::string name_of(std::optional<DropReason> r) { return r ? drop_reason_name(*r) : "accepted"; }

// The filter's verdict on a UDP datagram to the server, built and classified as the stack does.
std::optional<DropReason> udp_from(const SourceFilter& f, MacAddr mac, Ipv4Addr src_ip,
                                   uint16_t src_port, const Identity& me = kServer) {
  const std::string payload = "\0\1\0\0\0\1\0\0get k\r\n";
  Frame frame(kUdpHeadersLen + payload.size());
  std::copy(payload.begin(), payload.end(), frame.begin() + kUdpHeadersLen);
  const size_t n =
      write_udp_headers(frame, UdpEndpoint{mac, src_ip, src_port},
                        UdpEndpoint{me.mac, me.ip, me.udp_port}, payload.size(), 1, true);
  EXPECT_EQ(n, frame.size());
  const Classified c = classify(frame, me, true);
  EXPECT_EQ(c.kind, Kind::kUdp) << drop_reason_name(c.reason);
  return f.check(c);
}

std::optional<DropReason> udp_from(const SourceFilter& f, Ipv4Addr src_ip,
                                   uint16_t src_port = kClientPort) {
  return udp_from(f, kClientMac, src_ip, src_port);
}

void set16(Frame& f, size_t off, uint16_t v) {
  f.at(off) = uint8_t(v >> 8);
  f.at(off + 1) = uint8_t(v);
}
void set32(Frame& f, size_t off, uint32_t v) {
  set16(f, off, uint16_t(v >> 16));
  set16(f, off + 2, uint16_t(v));
}
void set_mac(Frame& f, size_t off, const MacAddr& m) {
  std::copy(m.b.begin(), m.b.end(), f.begin() + ptrdiff_t(off));
}
void fix_checksum(Frame& f, size_t off, size_t len, size_t field) {
  set16(f, field, 0);
  set16(f, field, checksum_fold(checksum_partial({f.data() + off, len})));
}

// An ICMP echo request from `src_ip` to the server.
std::optional<DropReason> icmp_from(const SourceFilter& f, Ipv4Addr src_ip,
                                    MacAddr mac = kClientMac) {
  Frame fr(kEthHeaderLen + kIpv4HeaderLen + 8 + 4, 0);
  set_mac(fr, 0, kServerMac);
  set_mac(fr, 6, mac);
  set16(fr, 12, 0x0800);
  fr[14] = 0x45;
  set16(fr, 16, uint16_t(kIpv4HeaderLen + 12));
  fr[22] = 64;
  fr[23] = 1;
  set32(fr, 26, src_ip.v);
  set32(fr, 30, kServerIp.v);
  fix_checksum(fr, 14, 20, 24);
  fr[34] = 8;  // echo request
  set16(fr, 38, 0x77);
  fix_checksum(fr, 34, 12, 36);
  const Classified c = classify(fr, kServer, true);
  EXPECT_EQ(c.kind, Kind::kIcmpEcho) << drop_reason_name(c.reason);
  return f.check(c);
}

// An ARP request for the server's address (op 1) or a reply (op 2) from `sha`/`spa`.
std::optional<DropReason> arp_from(const SourceFilter& f, MacAddr eth_src, MacAddr sha,
                                   Ipv4Addr spa, uint16_t op = 1) {
  Frame fr(kMinFrameLen, 0);
  set_mac(fr, 0, op == 1 ? kBroadcastMac : kServerMac);
  set_mac(fr, 6, eth_src);
  set16(fr, 12, 0x0806);
  set16(fr, 14, 1);
  set16(fr, 16, 0x0800);
  fr[18] = 6;
  fr[19] = 4;
  set16(fr, 20, op);
  set_mac(fr, 22, sha);
  set32(fr, 28, spa.v);
  set32(fr, 38, kServerIp.v);
  const Classified c = classify(fr, kServer, true);
  EXPECT_EQ(c.kind, op == 1 ? Kind::kArpRequest : Kind::kArpReply) << drop_reason_name(c.reason);
  return f.check(c);
}

// The kvserver defaults: our /24 answered, memcached's port denied.
SourceFilter default_filter(const Identity& me = kServer) {
  const std::vector<uint16_t> deny{11211};
  return SourceFilter(me, 24, {}, deny);
}

// ---------------------------------------------------------------------------------------------
// Prefixes.

TEST(Prefix, ParsesCidrAndBareAddresses) {
  EXPECT_EQ(prefix("10.77.0.0/16"), (Ipv4Prefix{ip("10.77.0.0"), 16}));
  EXPECT_EQ(prefix("0.0.0.0/0"), (Ipv4Prefix{ip("0.0.0.0"), 0}));
  EXPECT_EQ(prefix("10.78.0.2"), (Ipv4Prefix{ip("10.78.0.2"), 32}));
  EXPECT_EQ(prefix("10.78.0.2/32"), (Ipv4Prefix{ip("10.78.0.2"), 32}));
  EXPECT_EQ(prefix("128.0.0.0/1"), (Ipv4Prefix{ip("128.0.0.0"), 1}));
  EXPECT_EQ(prefix("255.255.255.254/31").len, 31);
}

TEST(Prefix, RejectsEverythingElseNamingTheKey) {
  for (const char* bad : {"", "/24", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/024", "10.0.0.0/2a",
                          " 10.0.0.0/8", "10.0.0.0/8 ", "10.0.0.0/8/8", "10.0.0/8", "10.0.0.256/32",
                          "10.0.0.0/-1", "10.0.0.0/100", "any", "10.0.0.0/8,10.1.0.0/16"}) {
    auto r = parse_ipv4_prefix(bad, "net.allow");
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_THAT(r.status().message(), HasSubstr("net.allow: ")) << bad;
    EXPECT_THAT(r.status().message(), HasSubstr("IPv4 prefix")) << bad;
  }
}

TEST(Prefix, HostBitsAreAnErrorThatSaysWhatWasMeant) {
  auto r = parse_ipv4_prefix("10.77.0.1/24", "net.allow");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(
      r.status().message(),
      "net.allow: \"10.77.0.1/24\" has host bits set past /24; did you mean \"10.77.0.0/24\"?");
}

TEST(Prefix, ErrorEscapesTheQuotedText) {
  auto r = parse_ipv4_prefix("10.0.0.0/8\n\"x", "k");
  ASSERT_FALSE(r.is_ok());
  EXPECT_THAT(r.status().message(), HasSubstr("\"10.0.0.0/8\\x0a\\x22x\""));
}

TEST(Prefix, ContainsAndMaskEdges) {
  EXPECT_EQ(Ipv4Prefix::mask_of(0), 0u);
  EXPECT_EQ(Ipv4Prefix::mask_of(1), 0x80000000u);
  EXPECT_EQ(Ipv4Prefix::mask_of(24), 0xffffff00u);
  EXPECT_EQ(Ipv4Prefix::mask_of(32), 0xffffffffu);
  EXPECT_TRUE(prefix("0.0.0.0/0").contains(ip("255.255.255.255")));
  EXPECT_TRUE(prefix("10.77.0.0/16").contains(ip("10.77.255.1")));
  EXPECT_FALSE(prefix("10.77.0.0/16").contains(ip("10.78.0.1")));
  EXPECT_TRUE(prefix("10.78.0.2").contains(ip("10.78.0.2")));
  EXPECT_FALSE(prefix("10.78.0.2").contains(ip("10.78.0.3")));
  EXPECT_EQ(prefix_of(ip("10.77.0.1"), 24), prefix("10.77.0.0/24"));
  EXPECT_EQ(prefix_of(ip("10.77.0.1"), 0), prefix("0.0.0.0/0"));
  EXPECT_EQ(prefix_of(ip("10.77.0.1"), 32), prefix("10.77.0.1/32"));
}

TEST(Prefix, ToStringRoundTrips) {
  for (const char* t : {"10.77.0.0/16", "0.0.0.0/0", "10.78.0.2/32", "192.168.128.0/17"}) {
    EXPECT_EQ(prefix(t).to_string(), t);
  }
}

// ---------------------------------------------------------------------------------------------
// Resolution: defaults against the identity.

TEST(SourceFilter, DefaultsToOurSubnetAndAlwaysDeniesOurPort) {
  const Identity me{kServerMac, kServerIp, 11311};
  const SourceFilter f(me, 24, {}, std::vector<uint16_t>{11211});
  EXPECT_EQ(f.allow(), (std::vector<Ipv4Prefix>{prefix("10.1.2.0/24")}));
  EXPECT_EQ(f.deny_ports(), (std::vector<uint16_t>{11211, 11311}));
  EXPECT_EQ(f.subnet_broadcast(), ip("10.1.2.255"));
  const SourceFilter g(kServer, 24, {}, std::vector<uint16_t>{11211, 11211});
  EXPECT_EQ(g.deny_ports(), (std::vector<uint16_t>{11211, 11211}));  // ours already there
  EXPECT_EQ(SourceFilter(kServer, 16, {}, {}).subnet_broadcast(), ip("10.1.255.255"));
  // A /31 (RFC 3021) and a /32 have no broadcast address of their own.
  EXPECT_EQ(SourceFilter(kServer, 31, {}, {}).subnet_broadcast(), ip("255.255.255.255"));
  EXPECT_EQ(SourceFilter(kServer, 32, {}, {}).subnet_broadcast(), ip("255.255.255.255"));
}

TEST(SourceFilter, ExplicitAllowListReplacesTheSubnet) {
  const std::vector<Ipv4Prefix> allow{prefix("10.4.0.0/16")};
  const SourceFilter f(kServer, 24, allow, {});
  EXPECT_EQ(f.allow(), allow);
  EXPECT_EQ(udp_from(f, ip("10.4.5.6")), std::nullopt);
  EXPECT_EQ(udp_from(f, ip("10.1.2.9")), DropReason::kSrcNotAllowed);  // our subnet: not listed
}

// ---------------------------------------------------------------------------------------------
// Each rule, on real frames.

TEST(SourceFilter, AnsweredClient) {
  const SourceFilter f = default_filter();
  EXPECT_EQ(udp_from(f, kClientIp), std::nullopt);
  EXPECT_EQ(udp_from(f, ip("10.1.2.1")), std::nullopt);
  EXPECT_EQ(udp_from(f, ip("10.1.2.254"), 1), std::nullopt);
  EXPECT_EQ(udp_from(f, ip("10.1.2.254"), 65535), std::nullopt);
}

TEST(SourceFilter, BroadcastSources) {
  const SourceFilter f = default_filter();
  EXPECT_EQ(udp_from(f, kBroadcastMac, kClientIp, kClientPort), DropReason::kSrcBroadcast);
  EXPECT_EQ(udp_from(f, ip("255.255.255.255")), DropReason::kSrcBroadcast);
  EXPECT_EQ(udp_from(f, ip("10.1.2.255")), DropReason::kSrcBroadcast);
  EXPECT_EQ(udp_from(f, ip("10.1.2.0")), DropReason::kSrcBroadcast);  // the old BSD broadcast
  // The subnet broadcast follows prefix_len: 10.1.2.255 and 10.1.2.0 are hosts of a /16.
  const std::vector<Ipv4Prefix> wide{prefix("10.1.0.0/16")};
  const SourceFilter g(kServer, 16, wide, {});
  EXPECT_EQ(udp_from(g, ip("10.1.2.255")), std::nullopt);
  EXPECT_EQ(udp_from(g, ip("10.1.2.0")), std::nullopt);
  EXPECT_EQ(udp_from(g, ip("10.1.255.255")), DropReason::kSrcBroadcast);
  EXPECT_EQ(udp_from(g, ip("10.1.0.0")), DropReason::kSrcBroadcast);
  // A /31's two addresses are both hosts (RFC 3021).
  const Identity p2p{kServerMac, ip("10.1.2.2"), kServerPort};
  const std::vector<Ipv4Prefix> pair{prefix("10.1.2.2/31")};
  const SourceFilter h(p2p, 31, pair, {});
  EXPECT_EQ(udp_from(h, kClientMac, ip("10.1.2.3"), kClientPort, p2p), std::nullopt);
}

TEST(SourceFilter, MulticastSources) {
  const SourceFilter f = default_filter();
  EXPECT_EQ(udp_from(f, kMulticastMac, kClientIp, kClientPort), DropReason::kSrcMulticast);
  EXPECT_EQ(udp_from(f, MacAddr{{0x03, 0, 0, 0, 0, 1}}, kClientIp, kClientPort),
            DropReason::kSrcMulticast);
  EXPECT_EQ(udp_from(f, ip("224.0.0.1")), DropReason::kSrcMulticast);
  EXPECT_EQ(udp_from(f, ip("239.255.255.250")), DropReason::kSrcMulticast);
  EXPECT_EQ(udp_from(f, ip("223.255.255.255")), DropReason::kSrcNotAllowed);  // unicast
  EXPECT_EQ(udp_from(f, ip("240.0.0.1")), DropReason::kSrcNotAllowed);
}

TEST(SourceFilter, ZeroSources) {
  const SourceFilter f = default_filter();
  EXPECT_EQ(udp_from(f, kZeroMac, kClientIp, kClientPort), DropReason::kSrcZero);
  EXPECT_EQ(udp_from(f, ip("0.0.0.0")), DropReason::kSrcZero);
  EXPECT_EQ(udp_from(f, ip("0.255.0.1")), DropReason::kSrcZero);
}

TEST(SourceFilter, OurOwnAddressesAsSource) {
  const SourceFilter f = default_filter();
  EXPECT_EQ(udp_from(f, kServerMac, kClientIp, kClientPort), DropReason::kSrcIsUs);
  EXPECT_EQ(udp_from(f, kServerIp), DropReason::kSrcIsUs);
}

TEST(SourceFilter, LoopbackSources) {
  const std::vector<Ipv4Prefix> all{prefix("0.0.0.0/0")};
  const SourceFilter f(kServer, 24, all, {});
  EXPECT_EQ(udp_from(f, ip("127.0.0.1")), DropReason::kSrcLoopback);
  EXPECT_EQ(udp_from(f, ip("127.255.255.254")), DropReason::kSrcLoopback);
  EXPECT_EQ(udp_from(f, ip("128.0.0.1")), std::nullopt);
}

TEST(SourceFilter, UdpSourcePortZero) {
  EXPECT_EQ(udp_from(default_filter(), kClientIp, 0), DropReason::kSrcPortZero);
}

TEST(SourceFilter, DeniedSourcePorts) {
  // A server on 11311 still refuses memcached's 11211 (the list) and its own port.
  const Identity me{kServerMac, kServerIp, 11311};
  const SourceFilter f = default_filter(me);
  EXPECT_EQ(udp_from(f, kClientMac, kClientIp, 11211, me), DropReason::kSrcPortDenied);
  EXPECT_EQ(udp_from(f, kClientMac, kClientIp, 11311, me), DropReason::kSrcPortDenied);
  EXPECT_EQ(udp_from(f, kClientMac, kClientIp, 11212, me), std::nullopt);
  // An empty list leaves only our own port.
  const SourceFilter g(me, 24, {}, {});
  EXPECT_EQ(udp_from(g, kClientMac, kClientIp, 11211, me), std::nullopt);
  EXPECT_EQ(udp_from(g, kClientMac, kClientIp, 11311, me), DropReason::kSrcPortDenied);
}

TEST(SourceFilter, SourcesOutsideTheAllowList) {
  const SourceFilter f = default_filter();
  EXPECT_EQ(udp_from(f, ip("10.1.3.9")), DropReason::kSrcNotAllowed);
  EXPECT_EQ(udp_from(f, ip("192.0.2.1")), DropReason::kSrcNotAllowed);
  const std::vector<Ipv4Prefix> only{prefix("10.1.2.9/32")};
  const SourceFilter one(kServer, 24, only, {});
  EXPECT_EQ(udp_from(one, ip("10.1.2.9")), std::nullopt);
  EXPECT_EQ(udp_from(one, ip("10.1.2.10")), DropReason::kSrcNotAllowed);
}

TEST(SourceFilter, EveryoneStillExcludesImpossibleSources) {
  const std::vector<Ipv4Prefix> all{prefix("0.0.0.0/0")};
  const SourceFilter f(kServer, 24, all, std::vector<uint16_t>{11211});
  EXPECT_EQ(udp_from(f, ip("198.51.100.7")), std::nullopt);
  EXPECT_EQ(udp_from(f, ip("255.255.255.255")), DropReason::kSrcBroadcast);
  EXPECT_EQ(udp_from(f, ip("10.1.2.255")), DropReason::kSrcBroadcast);
  EXPECT_EQ(udp_from(f, ip("224.0.0.251")), DropReason::kSrcMulticast);
  EXPECT_EQ(udp_from(f, ip("0.0.0.0")), DropReason::kSrcZero);
  EXPECT_EQ(udp_from(f, kServerIp), DropReason::kSrcIsUs);
  EXPECT_EQ(udp_from(f, ip("127.0.0.1")), DropReason::kSrcLoopback);
  EXPECT_EQ(udp_from(f, ip("198.51.100.7"), 0), DropReason::kSrcPortZero);
  EXPECT_EQ(udp_from(f, ip("198.51.100.7"), 11211), DropReason::kSrcPortDenied);
}

TEST(SourceFilter, TheFirstMatchingRuleNamesTheDrop) {
  const SourceFilter f = default_filter();
  // MAC before IP, IP before port, port before allow-list.
  EXPECT_EQ(udp_from(f, kBroadcastMac, ip("127.0.0.1"), 0), DropReason::kSrcBroadcast);
  EXPECT_EQ(udp_from(f, kZeroMac, ip("224.0.0.1"), 0), DropReason::kSrcZero);
  EXPECT_EQ(udp_from(f, kClientMac, ip("127.0.0.1"), 0), DropReason::kSrcLoopback);
  EXPECT_EQ(udp_from(f, kClientMac, ip("192.0.2.1"), 0), DropReason::kSrcPortZero);
  EXPECT_EQ(udp_from(f, kClientMac, ip("192.0.2.1"), 11211), DropReason::kSrcPortDenied);
}

TEST(SourceFilter, IcmpEchoFollowsTheAddressRulesAndTheAllowList) {
  const SourceFilter f = default_filter();
  EXPECT_EQ(icmp_from(f, kClientIp), std::nullopt);
  EXPECT_EQ(icmp_from(f, ip("192.0.2.1")), DropReason::kSrcNotAllowed);
  EXPECT_EQ(icmp_from(f, ip("10.1.2.255")), DropReason::kSrcBroadcast);
  EXPECT_EQ(icmp_from(f, kClientIp, kMulticastMac), DropReason::kSrcMulticast);
  EXPECT_EQ(icmp_from(f, ip("127.0.0.1")), DropReason::kSrcLoopback);
}

TEST(SourceFilter, ArpFollowsTheAddressRulesButNotTheAllowList) {
  const std::vector<Ipv4Prefix> only{prefix("10.9.0.0/16")};
  const SourceFilter f(kServer, 24, only, {});
  // A gateway in our subnet but outside the allow-list still resolves us.
  EXPECT_EQ(arp_from(f, kClientMac, kClientMac, ip("10.1.2.1")), std::nullopt);
  EXPECT_EQ(arp_from(f, kClientMac, kClientMac, ip("10.1.2.1"), 2), std::nullopt);
  // The sender hardware address is where the reply goes and what is learned: checked too.
  EXPECT_EQ(arp_from(f, kClientMac, kBroadcastMac, kClientIp), DropReason::kSrcBroadcast);
  EXPECT_EQ(arp_from(f, kClientMac, kMulticastMac, kClientIp), DropReason::kSrcMulticast);
  EXPECT_EQ(arp_from(f, kClientMac, kZeroMac, kClientIp), DropReason::kSrcZero);
  EXPECT_EQ(arp_from(f, kClientMac, kServerMac, kClientIp, 2), DropReason::kSrcIsUs);
  EXPECT_EQ(arp_from(f, kServerMac, kClientMac, kClientIp), DropReason::kSrcIsUs);
  // A probe (sender 0.0.0.0) and a claim on our own address are not answered or learned.
  EXPECT_EQ(arp_from(f, kClientMac, kClientMac, ip("0.0.0.0")), DropReason::kSrcZero);
  EXPECT_EQ(arp_from(f, kClientMac, kClientMac, kServerIp, 2), DropReason::kSrcIsUs);
  EXPECT_EQ(arp_from(f, kClientMac, kClientMac, ip("127.0.0.1")), DropReason::kSrcLoopback);
}

TEST(SourceFilter, FramesAlreadyDroppedAreLeftAlone) {
  Classified c;  // kDrop / kTruncated
  c.src_mac = kBroadcastMac;
  EXPECT_EQ(default_filter().check(c), std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// Fuzz: random sources through classify() and the filter. An accepted sender must satisfy every
// rule (checked here independently of the filter's code), and every rule must be reached.

TEST(SourceFilterFuzz, AcceptedSendersObeyEveryRule) {
  std::mt19937_64 rng(20240611);
  const std::vector<Ipv4Prefix> allow{prefix("10.1.2.0/24"), prefix("172.16.0.0/12")};
  const Identity me{kServerMac, kServerIp, 11311};
  const std::vector<uint16_t> deny{11211, 5000};
  const SourceFilter f(me, 24, allow, deny);
  const std::array<MacAddr, 6> macs{kClientMac, kBroadcastMac, kMulticastMac,
                                    kZeroMac,   kServerMac,    MacAddr{{0x02, 0, 0, 0, 0, 7}}};
  const std::array<uint32_t, 10> ips{kClientIp.v, 0xffffffff,  0x0a0102ff, 0x0a010200, 0xe0000001,
                                     0x00000000,  kServerIp.v, 0x7f000001, 0xac100005, 0xc0000201};
  const std::array<uint16_t, 6> ports{kClientPort, 0, 11211, 11311, 5000, 65535};
  std::array<size_t, kDropReasonCount> reasons{};
  size_t accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    const MacAddr mac = rng() % 4 ? macs[rng() % macs.size()] : [&] {
      MacAddr m;
      for (auto& b : m.b) b = uint8_t(rng());
      return m;
    }();
    const Ipv4Addr src{rng() % 3 ? ips[rng() % ips.size()] : uint32_t(rng())};
    const uint16_t port = rng() % 3 ? ports[rng() % ports.size()] : uint16_t(rng());
    const std::optional<DropReason> why = udp_from(f, mac, src, port, me);
    if (why) {
      ++reasons.at(size_t(*why));
      ASSERT_GE(size_t(*why), size_t(DropReason::kSrcBroadcast)) << name_of(why);
      continue;
    }
    ++accepted;
    ASSERT_FALSE(mac.is_multicast());
    ASSERT_NE(mac, kZeroMac);
    ASSERT_NE(mac, kServerMac);
    ASSERT_NE(src.v, 0xffffffffu);
    ASSERT_NE(src.v, 0x0a0102ffu);
    ASSERT_NE(src.v, 0x0a010200u);
    ASSERT_NE(src.v >> 28, 0xeu);
    ASSERT_NE(src.v >> 24, 0u);
    ASSERT_NE(src.v >> 24, 127u);
    ASSERT_NE(src, kServerIp);
    ASSERT_NE(port, 0);
    ASSERT_NE(port, 11211);
    ASSERT_NE(port, 11311);
    ASSERT_NE(port, 5000);
    ASSERT_TRUE(allow[0].contains(src) || allow[1].contains(src)) << src.to_string();
  }
  EXPECT_GT(accepted, 0u);
  for (size_t r = size_t(DropReason::kSrcBroadcast); r < kDropReasonCount; ++r) {
    EXPECT_GT(reasons[r], 0u) << drop_reason_name(DropReason(r)) << " never produced";
  }
}

// The stack's cache of the last accepted sender answers as the filter would, whatever the order:
// a refused frame right after an accepted one from the same MAC and IP (another port), the same
// port from another MAC or IP, ICMP and ARP from an accepted UDP sender, and runs from one sender.
TEST(LastSourceCache, AnswersAsTheFilterDoes) {
  std::mt19937_64 rng(20260101);
  const std::vector<Ipv4Prefix> allow{prefix("10.1.2.0/24")};
  const std::vector<uint16_t> deny{11211, 5000};
  const SourceFilter f(kServer, 24, allow, deny);
  LastSourceCache cache;
  const std::array<MacAddr, 3> macs{kClientMac, kMulticastMac, MacAddr{{0x02, 0, 0, 0, 0, 7}}};
  const std::array<uint32_t, 4> ips{kClientIp.v, 0x0a010207, 0x0a0102ff, 0xc0000201};
  const std::array<uint16_t, 4> ports{kClientPort, 0, 5000, 40001};
  const std::array<Kind, 4> kinds{Kind::kUdp, Kind::kIcmpEcho, Kind::kArpRequest, Kind::kDrop};
  size_t from_cache_shape = 0;
  Classified last;
  for (int iter = 0; iter < 20000; ++iter) {
    Classified c = last;
    if (iter == 0 || rng() % 2) {  // else the same sender again
      c.kind = rng() % 4 ? Kind::kUdp : kinds[rng() % kinds.size()];
      c.src_mac = macs[rng() % macs.size()];
      c.arp_sender_mac = c.src_mac;
      c.src_ip = Ipv4Addr{ips[rng() % ips.size()]};
      c.src_port = c.kind == Kind::kUdp ? ports[rng() % ports.size()] : 0;
    } else {
      ++from_cache_shape;
    }
    ASSERT_EQ(name_of(cache.check(f, c)), name_of(f.check(c)))
        << iter << ": " << c.src_mac.to_string() << " " << c.src_ip.to_string() << ":"
        << c.src_port << " kind " << int(c.kind);
    last = c;
  }
  EXPECT_GT(from_cache_shape, 1000u);
}

// ---------------------------------------------------------------------------------------------
// The reply size against the port's MTU, checked at start.

TEST(UdpPayloadFits, PayloadsUpToTheMtuLessHeadersFit) {
  EXPECT_TRUE(check_udp_payload_fits(1400, 1500, "kv.udp_max_payload", "net_memif0").is_ok());
  EXPECT_TRUE(check_udp_payload_fits(1472, 1500, "kv.udp_max_payload", "net_memif0").is_ok());
  EXPECT_TRUE(check_udp_payload_fits(64, 1500, "kv.udp_max_payload", "net_memif0").is_ok());
  EXPECT_TRUE(check_udp_payload_fits(1372, 1400, "kv.udp_max_payload", "p").is_ok());
}

TEST(UdpPayloadFits, TooLargeNamesKeyValueMtuPortAndLimit) {
  const Status st = check_udp_payload_fits(1473, 1500, "kv.udp_max_payload", "net_af_packet0");
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), Errc::kInvalidArgument);
  EXPECT_EQ(st.message(),
            "kv.udp_max_payload = 1473 does not fit port 'net_af_packet0' (MTU 1500): a datagram "
            "of 1473 payload bytes needs an MTU of 1501; at most 1472 fits. Lower "
            "kv.udp_max_payload");
  const Status small = check_udp_payload_fits(1400, 1400, "kv.udp_max_payload", "p");
  ASSERT_FALSE(small.is_ok());
  EXPECT_THAT(small.message(), HasSubstr("(MTU 1400)"));
  EXPECT_THAT(small.message(), HasSubstr("at most 1372 fits"));
}

TEST(UdpPayloadFits, AJumboMtuIsStillBoundByTheStacksFrames) {
  EXPECT_TRUE(check_udp_payload_fits(1472, 9000, "kv.udp_max_payload", "p").is_ok());
  const Status st = check_udp_payload_fits(8000, 9000, "kv.udp_max_payload", "p");
  ASSERT_FALSE(st.is_ok());
  EXPECT_THAT(st.message(), HasSubstr("kv.udp_max_payload = 8000"));
  EXPECT_THAT(st.message(), HasSubstr("(MTU 9000)"));
  EXPECT_THAT(st.message(), HasSubstr("at most 1472 fits the stack's 1514-byte frames"));
}

TEST(UdpPayloadFits, AnMtuBelowTheHeadersFitsNothing) {
  const Status st = check_udp_payload_fits(64, 20, "kv.udp_max_payload", "p");
  ASSERT_FALSE(st.is_ok());
  EXPECT_THAT(st.message(), HasSubstr("at most 0 fits"));
}

}  // namespace
}  // namespace fm::net
