// Unit tests for net/packet.h: checksums, addresses, classify(), the frame builders, and a fuzz
// loop over random and mutated frames.
#include "net/packet.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace fm::net {

// Readable gtest failure messages (found by ADL).
void PrintTo(DropReason r, std::ostream* os) { *os << drop_reason_name(r); }
void PrintTo(Classified::Kind k, std::ostream* os) {
  static constexpr const char* kNames[] = {"kUdp", "kArpRequest", "kArpReply", "kIcmpEcho",
                                           "kDrop"};
  const auto i = static_cast<size_t>(k);
  *os << (i < std::size(kNames) ? kNames[i] : "?");
}

namespace {

using Frame = std::vector<uint8_t>;
using Kind = Classified::Kind;
using ::testing::HasSubstr;

constexpr MacAddr kServerMac{{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}};
constexpr MacAddr kClientMac{{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}};
constexpr MacAddr kOtherMac{{0x02, 0x99, 0x88, 0x77, 0x66, 0x55}};
constexpr MacAddr kBroadcastMac{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
constexpr Ipv4Addr kServerIp{0x0a010203};  // 10.1.2.3
constexpr Ipv4Addr kClientIp{0x0a040506};  // 10.4.5.6
constexpr uint16_t kServerPort = 11211;
constexpr uint16_t kClientPort = 40000;

constexpr size_t kIpOff = kEthHeaderLen;
constexpr size_t kUdpOff = kEthHeaderLen + kIpv4HeaderLen;  // without IP options

const Identity kServer{kServerMac, kServerIp, kServerPort};
const Identity kClient{kClientMac, kClientIp, kClientPort};
const UdpEndpoint kServerEp{kServerMac, kServerIp, kServerPort};
const UdpEndpoint kClientEp{kClientMac, kClientIp, kClientPort};

// An independent, obviously correct RFC 1071 checksum: big-endian words, odd byte padded.
uint32_t ref_sum(const uint8_t* p, size_t n, uint64_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n % 2) sum += static_cast<uint32_t>(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint32_t>(sum);
}
uint16_t ref_checksum(const uint8_t* p, size_t n, uint64_t sum = 0) {
  return static_cast<uint16_t>(~ref_sum(p, n, sum) & 0xffff);
}

uint16_t get16(const Frame& f, size_t off) {
  return static_cast<uint16_t>(f.at(off) << 8 | f.at(off + 1));
}
uint32_t get32(const Frame& f, size_t off) {
  return static_cast<uint32_t>(get16(f, off)) << 16 | get16(f, off + 2);
}
void set16(Frame& f, size_t off, uint16_t v) {
  f.at(off) = static_cast<uint8_t>(v >> 8);
  f.at(off + 1) = static_cast<uint8_t>(v);
}
void set32(Frame& f, size_t off, uint32_t v) {
  set16(f, off, static_cast<uint16_t>(v >> 16));
  set16(f, off + 2, static_cast<uint16_t>(v));
}
void set_mac(Frame& f, size_t off, const MacAddr& m) {
  ASSERT_LE(off + 6, f.size());
  std::copy(m.b.begin(), m.b.end(), f.begin() + static_cast<ptrdiff_t>(off));
}
MacAddr get_mac(const Frame& f, size_t off) {
  MacAddr m;
  for (size_t i = 0; i < 6; ++i) m.b[i] = f.at(off + i);
  return m;
}

size_t ip_hlen(const Frame& f) { return static_cast<size_t>(f.at(kIpOff) & 0x0f) * 4; }

// Recomputes the IPv4 header checksum after a test edited the header.
void fix_ip_checksum(Frame& f) {
  set16(f, kIpOff + 10, 0);
  set16(f, kIpOff + 10, ref_checksum(f.data() + kIpOff, ip_hlen(f)));
}

uint32_t udp_pseudo_sum(const Frame& f, uint16_t udp_len) {
  return ref_sum(f.data() + kIpOff + 12, 8) + 17 + udp_len;
}

// Recomputes the UDP checksum over the UDP length the header claims.
void fix_udp_checksum(Frame& f) {
  const size_t off = kIpOff + ip_hlen(f);
  const uint16_t len = get16(f, off + 4);
  set16(f, off + 6, 0);
  uint16_t c = ref_checksum(f.data() + off, len, udp_pseudo_sum(f, len));
  set16(f, off + 6, c == 0 ? 0xffff : c);
}

void fix_icmp_checksum(Frame& f) {
  const size_t off = kIpOff + ip_hlen(f);
  const size_t len = get16(f, kIpOff + 2) - ip_hlen(f);
  set16(f, off + 2, 0);
  set16(f, off + 2, ref_checksum(f.data() + off, len));
}

std::vector<uint8_t> bytes_of(std::string_view s) { return {s.begin(), s.end()}; }

// A client->server UDP frame built with write_udp_headers.
Frame udp_frame(const std::vector<uint8_t>& payload, bool udp_checksum = true,
                const UdpEndpoint& src = kClientEp, const UdpEndpoint& dst = kServerEp) {
  Frame f(kUdpHeadersLen + payload.size());
  std::copy(payload.begin(), payload.end(), f.begin() + kUdpHeadersLen);
  const size_t n = write_udp_headers(f, src, dst, payload.size(), 0x1234, udp_checksum);
  EXPECT_EQ(n, f.size());
  return f;
}
Frame udp_frame(std::string_view payload, bool udp_checksum = true) {
  return udp_frame(bytes_of(payload), udp_checksum);
}

// Inserts `options` (a multiple of 4 bytes) after the IPv4 header and fixes IHL, total length
// and the header checksum. The UDP checksum does not cover IP options and stays valid.
void add_ip_options(Frame& f, const std::vector<uint8_t>& options) {
  ASSERT_EQ(options.size() % 4, 0u);
  const size_t at = kIpOff + ip_hlen(f);
  f.insert(f.begin() + static_cast<ptrdiff_t>(at), options.begin(), options.end());
  f[kIpOff] = static_cast<uint8_t>(0x40 | (ip_hlen(f) + options.size()) / 4);
  set16(f, kIpOff + 2, static_cast<uint16_t>(get16(f, kIpOff + 2) + options.size()));
  fix_ip_checksum(f);
}

// A hand-built client->server ICMP message (echo request by default) of `data_len` data bytes.
Frame icmp_frame(size_t data_len, uint8_t type = 8, uint8_t code = 0, uint16_t id = 0x1234,
                 uint16_t seq = 7) {
  Frame f(kEthHeaderLen + kIpv4HeaderLen + 8 + data_len);
  set_mac(f, 0, kServerMac);
  set_mac(f, 6, kClientMac);
  set16(f, 12, 0x0800);
  f[kIpOff] = 0x45;
  set16(f, kIpOff + 2, static_cast<uint16_t>(kIpv4HeaderLen + 8 + data_len));
  set16(f, kIpOff + 4, 0x4321);
  set16(f, kIpOff + 6, 0x4000);
  f[kIpOff + 8] = 37;  // TTL after a few hops
  f[kIpOff + 9] = 1;   // ICMP
  set32(f, kIpOff + 12, kClientIp.v);
  set32(f, kIpOff + 16, kServerIp.v);
  fix_ip_checksum(f);
  const size_t icmp = kUdpOff;
  f[icmp] = type;
  f[icmp + 1] = code;
  set16(f, icmp + 4, id);
  set16(f, icmp + 6, seq);
  for (size_t i = 0; i < data_len; ++i) f[icmp + 8 + i] = static_cast<uint8_t>(i * 7 + 3);
  fix_icmp_checksum(f);
  return f;
}

// A hand-built ARP frame (to the broadcast MAC) with every field chosen by the test.
struct ArpFields {
  uint16_t htype = 1;
  uint16_t ptype = 0x0800;
  uint8_t hlen = 6;
  uint8_t plen = 4;
  uint16_t op = 1;
  MacAddr sha = kClientMac;
  Ipv4Addr spa = kClientIp;
  MacAddr tha{};
  Ipv4Addr tpa = kServerIp;
};
Frame arp_frame(const ArpFields& a, MacAddr eth_dst = kBroadcastMac) {
  Frame f(kMinFrameLen, 0);
  set_mac(f, 0, eth_dst);
  set_mac(f, 6, a.sha);
  set16(f, 12, 0x0806);
  set16(f, 14, a.htype);
  set16(f, 16, a.ptype);
  f[18] = a.hlen;
  f[19] = a.plen;
  set16(f, 20, a.op);
  set_mac(f, 22, a.sha);
  set32(f, 28, a.spa.v);
  set_mac(f, 32, a.tha);
  set32(f, 38, a.tpa.v);
  return f;
}

// Classifies a copy of `f` in an exactly sized heap buffer, so a sanitizer sees any overread.
Classified classify_copy(const Frame& f, const Identity& me = kServer, bool verify = true) {
  std::vector<uint8_t> exact(f.begin(), f.end());
  return classify(exact, me, verify);
}

void expect_drop(const Frame& f, DropReason want, bool verify = true) {
  const Classified c = classify_copy(f, kServer, verify);
  EXPECT_EQ(c.kind, Kind::kDrop);
  EXPECT_EQ(c.reason, want);
}

// ---------------------------------------------------------------------------------------------
// Checksums.

TEST(Checksum, Rfc1071Example) {
  // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (carry folded in).
  const uint8_t data[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(checksum_partial(data), 0xddf2u);
  EXPECT_EQ(checksum_fold(checksum_partial(data)), 0x220d);
  EXPECT_EQ(checksum_fold(0x2ddf0), 0x220d);  // folds an unfolded sum too
}

TEST(Checksum, KnownIpv4Header) {
  // The worked example of the IPv4 header checksum (192.168.0.1 -> 192.168.0.199, UDP).
  uint8_t hdr[] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                   0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(checksum_fold(checksum_partial(hdr)), 0xb861);
  hdr[10] = 0xb8;
  hdr[11] = 0x61;
  EXPECT_EQ(checksum_fold(checksum_partial(hdr)), 0);  // a correct header verifies to 0
}

TEST(Checksum, KnownUdpDatagram) {
  // 10.0.0.2:40000 -> 10.0.0.1:11211 "hello"; expected values computed independently.
  const UdpEndpoint src{kClientMac, Ipv4Addr{0x0a000002}, 40000};
  const UdpEndpoint dst{kServerMac, Ipv4Addr{0x0a000001}, 11211};
  Frame f = udp_frame(bytes_of("hello"), true, src, dst);
  EXPECT_EQ(get16(f, kIpOff + 10), 0x1496);  // IP checksum with id 0x1234
  EXPECT_EQ(get16(f, kUdpOff + 6), 0xdff3);
}

TEST(Checksum, OddLengthPadsTheLastByte) {
  const uint8_t one[] = {0x01};
  EXPECT_EQ(checksum_partial(one), 0x0100u);
  const uint8_t three[] = {0x12, 0x34, 0x56};
  EXPECT_EQ(checksum_partial(three), 0x6834u);
  EXPECT_EQ(checksum_partial({}), 0u);
  EXPECT_EQ(checksum_partial({}, 0x1234), 0x1234u);
}

TEST(Checksum, SeedIsAddedAndFolded) {
  const uint8_t data[] = {0xff, 0xff};
  EXPECT_EQ(checksum_partial(data, 1), 1u);  // 0xffff + 1 = 0x10000 -> 0x0001
  EXPECT_EQ(checksum_partial(data, 0xffffffff), ref_sum(data, 2, 0xffffffff));
  EXPECT_EQ(checksum_fold(0xffffffff), 0);
  EXPECT_EQ(checksum_fold(0), 0xffff);
}

TEST(Checksum, MatchesReferenceAtEveryLengthAndAlignment) {
  std::mt19937 rng(1071);
  std::vector<uint8_t> buf(300 + 8);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t align = 0; align < 8; ++align) {
    for (size_t len = 0; len <= 300; ++len) {
      const uint8_t* p = buf.data() + align;
      const uint32_t seed = rng() & 0xfffff;
      ASSERT_EQ(checksum_partial({p, len}, seed), ref_sum(p, len, seed))
          << "align " << align << " len " << len;
    }
  }
}

TEST(Checksum, SumsInEvenPiecesEqualTheWhole) {
  std::mt19937 rng(7);
  std::vector<uint8_t> buf(257);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  const uint32_t whole = checksum_partial(buf);
  for (size_t cut = 0; cut <= buf.size(); cut += 2) {
    const std::span<const uint8_t> all(buf);
    EXPECT_EQ(checksum_partial(all.subspan(cut), checksum_partial(all.first(cut))), whole);
  }
}

TEST(Checksum, LargeBuffersDoNotOverflow) {
  std::vector<uint8_t> ones(65534, 0xff);
  EXPECT_EQ(checksum_partial(ones), 0xffffu);
  ones.push_back(0xff);  // odd: the last byte counts as 0xff00
  EXPECT_EQ(checksum_partial(ones), 0xff00u);
  EXPECT_EQ(checksum_partial(ones, 0xffffffff), ref_sum(ones.data(), ones.size(), 0xffffffff));
  std::vector<uint8_t> big(1 << 20);
  std::mt19937 rng(3);
  for (auto& b : big) b = static_cast<uint8_t>(rng());
  EXPECT_EQ(checksum_partial(big), ref_sum(big.data(), big.size()));
}

// ---------------------------------------------------------------------------------------------
// Addresses and names.

TEST(Address, ParseMacAcceptsSixHexPairs) {
  auto m = parse_mac("02:11:22:33:44:55", "net.mac");
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  EXPECT_EQ(*m, kServerMac);
  auto upper = parse_mac("AA:bb:Cc:dD:eE:Ff", "net.mac");
  ASSERT_TRUE(upper.is_ok());
  EXPECT_EQ(*upper, (MacAddr{{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}}));
}

TEST(Address, ParseMacRejectsEverythingElse) {
  for (const char* text :
       {"", "02:11:22:33:44", "02:11:22:33:44:55:", "02:11:22:33:44:55:66", "02:11:22:33:44:5",
        "02:11:22:33:44:555", "02-11-22-33-44-55", "0211.2233.4455",
        "2:11:22:33:44:55:", "g2:11:22:33:44:55", "02:11:22:33:44:5g", " 02:11:22:33:44:55",
        "02:11:22:33:44:55 ", "02::11:22:33:44:55", "02:11:22:33:44:55\n", "021122334455"}) {
    SCOPED_TRACE(text);
    auto m = parse_mac(text, "net.mac");
    ASSERT_FALSE(m.is_ok());
    EXPECT_EQ(m.status().code(), Errc::kInvalidArgument);
    EXPECT_THAT(m.status().message(), HasSubstr("net.mac: "));
    EXPECT_THAT(m.status().message(), HasSubstr("is not a MAC address"));
  }
  EXPECT_EQ(parse_mac("02:11:22:33:44", "net.mac").status().message(),
            "net.mac: \"02:11:22:33:44\" is not a MAC address (want aa:bb:cc:dd:ee:ff)");
}

TEST(Address, ParseIpv4AcceptsDottedQuads) {
  const std::pair<const char*, uint32_t> cases[] = {
      {"10.0.0.1", 0x0a000001},        {"10.1.2.3", 0x0a010203},        {"0.0.0.0", 0},
      {"255.255.255.255", 0xffffffff}, {"192.168.100.200", 0xc0a864c8}, {"1.22.133.9", 0x01168509},
  };
  for (const auto& [text, want] : cases) {
    auto ip = parse_ipv4(text, "net.ip");
    ASSERT_TRUE(ip.is_ok()) << text << ": " << ip.status().message();
    EXPECT_EQ(ip->v, want) << text;
  }
}

TEST(Address, ParseIpv4RejectsEverythingElse) {
  EXPECT_EQ(parse_ipv4("10.0.0.300", "net.ip").status().message(),
            "net.ip: \"10.0.0.300\" is not an IPv4 address");
  for (const char* text : {"",           "10",          "10.0.0",      "10.0.0.",   "10.0.0.1.",
                           "10.0.0.1.5", "10..0.1",     ".10.0.0.1",   "10.0.0.01", "010.0.0.1",
                           "00.0.0.0",   "1000.0.0.1",  "10.0.0.1000", "256.0.0.0", "10.0.0.1 ",
                           " 10.0.0.1",  "10.0.0.-1",   "10.0.0.+1",   "a.b.c.d",   "10.0.0.1x",
                           "0x0a.0.0.1", "10.0.0.1/24", "10,0,0,1",    "::1"}) {
    SCOPED_TRACE(text);
    auto ip = parse_ipv4(text, "kv.server");
    ASSERT_FALSE(ip.is_ok());
    EXPECT_EQ(ip.status().code(), Errc::kInvalidArgument);
    EXPECT_EQ(ip.status().message(),
              std::string("kv.server: \"") + text + "\" is not an IPv4 address");
  }
}

TEST(Address, ErrorMessagesEscapeTheQuotedText) {
  EXPECT_EQ(parse_ipv4(std::string_view("1.2\"\n\x01\\", 7), "k").status().message(),
            "k: \"1.2\\\"\\x0a\\x01\\\\\" is not an IPv4 address");
  EXPECT_EQ(parse_mac(std::string_view("a\0b", 3), "m").status().message(),
            "m: \"a\\x00b\" is not a MAC address (want aa:bb:cc:dd:ee:ff)");
}

TEST(Address, ToStringRoundTrips) {
  EXPECT_EQ(kServerMac.to_string(), "02:11:22:33:44:55");
  EXPECT_EQ((MacAddr{{0xaa, 0xbb, 0xcc, 0x0d, 0xe0, 0xff}}).to_string(), "aa:bb:cc:0d:e0:ff");
  EXPECT_EQ(kServerIp.to_string(), "10.1.2.3");
  EXPECT_EQ(Ipv4Addr{0xffffffff}.to_string(), "255.255.255.255");
  EXPECT_EQ(Ipv4Addr{0}.to_string(), "0.0.0.0");
  std::mt19937 rng(99);
  for (int i = 0; i < 1000; ++i) {
    MacAddr m;
    for (auto& b : m.b) b = static_cast<uint8_t>(rng());
    const Ipv4Addr ip{static_cast<uint32_t>(rng())};
    auto pm = parse_mac(m.to_string(), "x");
    auto pi = parse_ipv4(ip.to_string(), "x");
    ASSERT_TRUE(pm.is_ok() && pi.is_ok()) << m.to_string() << " " << ip.to_string();
    EXPECT_EQ(*pm, m);
    EXPECT_EQ(*pi, ip);
  }
}

TEST(Address, MacPredicates) {
  EXPECT_TRUE(kBroadcastMac.is_broadcast());
  EXPECT_TRUE(kBroadcastMac.is_multicast());
  EXPECT_FALSE(kServerMac.is_broadcast());
  EXPECT_FALSE(kServerMac.is_multicast());
  const MacAddr mcast{{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}};
  EXPECT_TRUE(mcast.is_multicast());
  EXPECT_FALSE(mcast.is_broadcast());
  EXPECT_FALSE((MacAddr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}}).is_broadcast());
}

TEST(DropReasonName, NamesAreStableSnakeCaseAndUnique) {
  const char* const want[] = {
      "truncated",       "bad_ethertype",    "not_our_mac",       "bad_ip_header",
      "bad_ip_checksum", "ip_fragment",      "not_our_ip",        "unsupported_proto",
      "bad_udp_length",  "bad_udp_checksum", "no_listener",       "bad_arp",
      "arp_not_for_us",  "icmp_not_echo",    "bad_icmp_checksum", "no_buffer",
      "src_broadcast",   "src_multicast",    "src_zero",          "src_is_us",
      "src_loopback",    "src_port_zero",    "src_port_denied",   "src_not_allowed",
  };
  ASSERT_EQ(std::size(want), kDropReasonCount);
  std::set<std::string> seen;
  for (size_t i = 0; i < kDropReasonCount; ++i) {
    const std::string name = drop_reason_name(static_cast<DropReason>(i));
    EXPECT_EQ(name, want[i]);
    EXPECT_TRUE(std::all_of(name.begin(), name.end(), [](char ch) {
      return (ch >= 'a' && ch <= 'z') || ch == '_';
    })) << name;
    EXPECT_TRUE(seen.insert(name).second) << name;
  }
  EXPECT_STREQ(drop_reason_name(DropReason::kCount), "unknown");
  EXPECT_STREQ(drop_reason_name(static_cast<DropReason>(200)), "unknown");
}

// ---------------------------------------------------------------------------------------------
// write_udp_headers and UDP round trips.

TEST(WriteUdpHeaders, BytesOnTheWire) {
  Frame f = udp_frame("hello", /*udp_checksum=*/false);
  const Frame want = {
      0x02, 0x11, 0x22, 0x33, 0x44, 0x55,              // dst MAC
      0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,              // src MAC
      0x08, 0x00,                                      // IPv4
      0x45, 0x00, 0x00, 0x21, 0x12, 0x34, 0x40, 0x00,  // v4 IHL 5, len 33, id, DF
      0x40, 0x11, 0x0d, 0x8b,                          // TTL 64, UDP, checksum
      0x0a, 0x04, 0x05, 0x06, 0x0a, 0x01, 0x02, 0x03,  // 10.4.5.6 -> 10.1.2.3
      0x9c, 0x40, 0x2b, 0xcb, 0x00, 0x0d, 0x00, 0x00,  // 40000 -> 11211, len 13, no checksum
      'h',  'e',  'l',  'l',  'o',
  };
  EXPECT_EQ(f, want);
  Frame g = udp_frame("hello", /*udp_checksum=*/true);
  EXPECT_EQ(get16(g, kUdpOff + 6), 0xd8e8);  // computed independently
  g[kUdpOff + 6] = g[kUdpOff + 7] = 0;
  EXPECT_EQ(g, want);  // nothing else differs
}

TEST(WriteUdpHeaders, RejectsShortOutputAndOversizedPayload) {
  std::vector<uint8_t> out(kUdpHeadersLen + 9, 0xee);
  EXPECT_EQ(write_udp_headers(out, kClientEp, kServerEp, 10, 1, true), 0u);
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0xee; }));
  EXPECT_EQ(write_udp_headers({out.data(), kUdpHeadersLen - 1}, kClientEp, kServerEp, 0, 1, true),
            0u);
  EXPECT_EQ(write_udp_headers(out, kClientEp, kServerEp, 9, 1, true), out.size());
  std::vector<uint8_t> huge(kUdpHeadersLen + kMaxUdpPayloadLen + 1);
  EXPECT_EQ(write_udp_headers(huge, kClientEp, kServerEp, kMaxUdpPayloadLen + 1, 1, true), 0u);
  EXPECT_EQ(write_udp_headers(huge, kClientEp, kServerEp, kMaxUdpPayloadLen, 1, true),
            huge.size() - 1);
}

TEST(UdpHeaderTemplate, WritesWhatWriteUdpHeadersWrites) {
  // Payload sizes around the checksum loop's strides, an empty one, all-ones and zero payloads
  // (a UDP sum of 0 goes out as 0xffff), ids that wrap the IPv4 sum, and a change of peer.
  UdpHeaderTemplate t;
  std::mt19937 rng(7);
  const UdpEndpoint other{MacAddr{{0x02, 0x99, 0x88, 0x77, 0x66, 0x55}}, Ipv4Addr{0xc0a80105},
                          5353};
  for (const UdpEndpoint& to : {kClientEp, other, kClientEp}) {
    if (!t.addressed_to(to)) t.reset(kServerEp, to);
    EXPECT_TRUE(t.addressed_to(to));
    for (size_t len : {0, 1, 7, 8, 31, 32, 33, 70, 1472}) {
      for (const int fill : {-1, 0x00, 0xff}) {
        for (const uint16_t id : {0, 1, 0x1234, 0xfffe, 0xffff}) {
          for (const bool csum : {false, true}) {
            Frame payload(len);
            for (auto& b : payload) b = fill < 0 ? uint8_t(rng()) : uint8_t(fill);
            Frame want(kUdpHeadersLen + len), got(kUdpHeadersLen + len, 0xee);
            std::copy(payload.begin(), payload.end(), want.begin() + kUdpHeadersLen);
            std::copy(payload.begin(), payload.end(), got.begin() + kUdpHeadersLen);
            ASSERT_EQ(write_udp_headers(want, kServerEp, to, len, id, csum), want.size());
            ASSERT_EQ(t.write(got, len, id, csum), got.size());
            ASSERT_EQ(got, want) << "len " << len << " id " << id << " checksum " << csum;
          }
        }
      }
    }
  }
  EXPECT_FALSE(t.addressed_to(other));
  EXPECT_FALSE(UdpHeaderTemplate().addressed_to(UdpEndpoint{}));  // none built yet
}

TEST(UdpHeaderTemplate, RejectsShortOutputAndOversizedPayload) {
  UdpHeaderTemplate t;
  t.reset(kServerEp, kClientEp);
  std::vector<uint8_t> out(kUdpHeadersLen + 9, 0xee);
  EXPECT_EQ(t.write(out, 10, 1, true), 0u);
  EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0xee; }));
  EXPECT_EQ(t.write(out, 9, 1, true), out.size());
  std::vector<uint8_t> huge(kUdpHeadersLen + kMaxUdpPayloadLen + 1);
  EXPECT_EQ(t.write(huge, kMaxUdpPayloadLen + 1, 1, true), 0u);
  EXPECT_EQ(t.write(huge, kMaxUdpPayloadLen, 1, true), huge.size() - 1);
}

TEST(ClassifyUdp, RoundTrip) {
  const Frame f = udp_frame("get key:1\r\n");
  const Classified c = classify_copy(f);
  ASSERT_EQ(c.kind, Kind::kUdp) << drop_reason_name(c.reason);
  EXPECT_EQ(c.src_mac, kClientMac);
  EXPECT_EQ(c.src_ip, kClientIp);
  EXPECT_EQ(c.dst_ip, kServerIp);
  EXPECT_EQ(c.src_port, kClientPort);
  EXPECT_EQ(c.dst_port, kServerPort);
  EXPECT_EQ(c.payload_off, kUdpHeadersLen);
  ASSERT_EQ(c.payload_len, 11);
  EXPECT_EQ(std::string(f.begin() + c.payload_off, f.end()), "get key:1\r\n");
}

TEST(ClassifyUdp, RoundTripWithoutChecksum) {
  const Frame f = udp_frame("abc", /*udp_checksum=*/false);
  ASSERT_EQ(get16(f, kUdpOff + 6), 0);
  const Classified c = classify_copy(f, kServer, /*verify=*/true);
  EXPECT_EQ(c.kind, Kind::kUdp);
  EXPECT_EQ(c.payload_len, 3);
}

TEST(ClassifyUdp, EmptyAndLargePayloads) {
  for (size_t len : {size_t{0}, size_t{1}, size_t{2}, size_t{1471}, size_t{1472}, size_t{8972},
                     kMaxUdpPayloadLen}) {
    SCOPED_TRACE(len);
    std::vector<uint8_t> payload(len);
    for (size_t i = 0; i < len; ++i) payload[i] = static_cast<uint8_t>(i * 31);
    const Frame f = udp_frame(payload);
    const Classified c = classify_copy(f);
    ASSERT_EQ(c.kind, Kind::kUdp) << drop_reason_name(c.reason);
    EXPECT_EQ(c.payload_off, kUdpHeadersLen);
    EXPECT_EQ(c.payload_len, len);
  }
}

TEST(ClassifyUdp, BroadcastMacIsAccepted) {
  const UdpEndpoint to_broadcast{kBroadcastMac, kServerIp, kServerPort};
  const Frame f = udp_frame(bytes_of("x"), true, kClientEp, to_broadcast);
  EXPECT_EQ(classify_copy(f).kind, Kind::kUdp);
}

TEST(ClassifyUdp, EthernetPaddingIsIgnored) {
  Frame f = udp_frame("hi");
  ASSERT_EQ(f.size(), 44u);
  f.resize(kMinFrameLen, 0xa5);  // padding junk is not covered by any length or checksum
  const Classified c = classify_copy(f);
  ASSERT_EQ(c.kind, Kind::kUdp) << drop_reason_name(c.reason);
  EXPECT_EQ(c.payload_len, 2);
}

TEST(ClassifyUdp, IpOptionsAreSkipped) {
  Frame f = udp_frame("opts");
  add_ip_options(f, {0x01, 0x01, 0x01, 0x00, 0x94, 0x04, 0x00, 0x00});  // NOPs, EOL, router alert
  const Classified c = classify_copy(f);
  ASSERT_EQ(c.kind, Kind::kUdp) << drop_reason_name(c.reason);
  EXPECT_EQ(c.payload_off, kUdpHeadersLen + 8);
  EXPECT_EQ(c.payload_len, 4);
  EXPECT_EQ(c.src_port, kClientPort);
}

TEST(ClassifyUdp, ComputedZeroChecksumIsSentAsAllOnes) {
  // Choose the last payload word so that the data sums to 0xffff: the computed checksum is then
  // 0, which UDP must send as 0xffff because 0 means "no checksum".
  Frame probe = udp_frame(std::vector<uint8_t>{'a', 'b', 0, 0});
  const uint16_t c0 = get16(probe, kUdpOff + 6);
  ASSERT_NE(c0, 0xffff);
  std::vector<uint8_t> payload = {'a', 'b', static_cast<uint8_t>(c0 >> 8),
                                  static_cast<uint8_t>(c0)};
  Frame f = udp_frame(payload);
  EXPECT_EQ(get16(f, kUdpOff + 6), 0xffff);
  EXPECT_EQ(classify_copy(f).kind, Kind::kUdp);
}

TEST(ClassifyUdp, BadChecksumPassesWhenTheNicVerified) {
  Frame f = udp_frame("payload");
  f.back() ^= 0x01;
  expect_drop(f, DropReason::kBadUdpChecksum, /*verify=*/true);
  EXPECT_EQ(classify_copy(f, kServer, /*verify=*/false).kind, Kind::kUdp);
}

// ---------------------------------------------------------------------------------------------
// One hand-crafted frame per drop reason; each triggers exactly that reason.

TEST(ClassifyDrop, TruncatedEthernet) {
  expect_drop({}, DropReason::kTruncated);
  Frame f = udp_frame("x");
  f.resize(kEthHeaderLen - 1);
  expect_drop(f, DropReason::kTruncated);
}

TEST(ClassifyDrop, TruncatedIpv4Header) {
  Frame f = udp_frame("x");
  f.resize(kEthHeaderLen);
  expect_drop(f, DropReason::kTruncated);
  f = udp_frame("x");
  f.resize(kEthHeaderLen + kIpv4HeaderLen - 1);
  expect_drop(f, DropReason::kTruncated);
}

TEST(ClassifyDrop, TruncatedIpv4Options) {
  // IHL 6 claims 24 header bytes but the frame ends after 20.
  Frame f = udp_frame("x");
  f.resize(kEthHeaderLen + kIpv4HeaderLen);
  f[kIpOff] = 0x46;
  expect_drop(f, DropReason::kTruncated);
  f[kIpOff] = 0x4f;
  expect_drop(f, DropReason::kTruncated);
}

TEST(ClassifyDrop, TruncatedUdpHeader) {
  // The IP total length is honest but leaves fewer than 8 bytes for the UDP header.
  for (uint16_t l4 = 0; l4 < 8; ++l4) {
    Frame f = udp_frame("");
    f.resize(kUdpOff + l4);
    set16(f, kIpOff + 2, static_cast<uint16_t>(kIpv4HeaderLen + l4));
    fix_ip_checksum(f);
    SCOPED_TRACE(l4);
    expect_drop(f, DropReason::kTruncated);
  }
}

TEST(ClassifyDrop, TruncatedIcmpHeader) {
  for (uint16_t l4 = 0; l4 < 8; ++l4) {
    Frame f = icmp_frame(0);
    f.resize(kUdpOff + l4);
    set16(f, kIpOff + 2, static_cast<uint16_t>(kIpv4HeaderLen + l4));
    fix_ip_checksum(f);
    SCOPED_TRACE(l4);
    expect_drop(f, DropReason::kTruncated);
  }
}

TEST(ClassifyDrop, TruncatedArp) {
  Frame f = arp_frame({});
  f.resize(kEthHeaderLen + 27);
  expect_drop(f, DropReason::kTruncated);
  f.resize(kEthHeaderLen);
  expect_drop(f, DropReason::kTruncated);
}

TEST(ClassifyDrop, FrameCutInsideTheDatagramIsABadTotalLength) {
  // Bytes missing behind the IP header show up as a total length beyond the frame.
  const Frame f = udp_frame("0123456789");
  for (size_t n = kEthHeaderLen + kIpv4HeaderLen; n < f.size(); ++n) {
    SCOPED_TRACE(n);
    expect_drop(Frame(f.begin(), f.begin() + static_cast<ptrdiff_t>(n)), DropReason::kBadIpHeader);
  }
}

TEST(ClassifyDrop, EveryProperPrefixOfAValidFrameIsDropped) {
  for (const Frame& f : {udp_frame("0123456789"), icmp_frame(16), arp_frame({})}) {
    ASSERT_NE(classify_copy(f).kind, Kind::kDrop);
    const size_t need = f.size() == kMinFrameLen ? kEthHeaderLen + 28 : f.size();  // ARP pad
    for (size_t n = 0; n < need; ++n) {
      const Classified c = classify_copy(Frame(f.begin(), f.begin() + static_cast<ptrdiff_t>(n)));
      EXPECT_EQ(c.kind, Kind::kDrop) << n;
    }
  }
}

TEST(ClassifyDrop, BadIpVersion) {
  Frame f = udp_frame("x");
  f[kIpOff] = 0x65;  // "IPv6" behind an IPv4 ethertype
  fix_ip_checksum(f);
  expect_drop(f, DropReason::kBadIpHeader);
}

TEST(ClassifyDrop, BadIhl) {
  for (uint8_t ihl = 0; ihl < 5; ++ihl) {
    Frame f = udp_frame("x");
    f[kIpOff] = static_cast<uint8_t>(0x40 | ihl);
    SCOPED_TRACE(static_cast<int>(ihl));
    expect_drop(f, DropReason::kBadIpHeader);
  }
}

TEST(ClassifyDrop, TotalLengthShorterThanHeader) {
  Frame f = udp_frame("x");
  set16(f, kIpOff + 2, 19);
  fix_ip_checksum(f);
  expect_drop(f, DropReason::kBadIpHeader);
  add_ip_options(f, {1, 1, 1, 1});  // total 23 < IHL 6 * 4
  expect_drop(f, DropReason::kBadIpHeader);
}

TEST(ClassifyDrop, TotalLengthBeyondFrame) {
  Frame f = udp_frame("x");
  set16(f, kIpOff + 2, static_cast<uint16_t>(get16(f, kIpOff + 2) + 1));
  fix_ip_checksum(f);
  expect_drop(f, DropReason::kBadIpHeader);
  set16(f, kIpOff + 2, 0xffff);
  fix_ip_checksum(f);
  expect_drop(f, DropReason::kBadIpHeader);
}

TEST(ClassifyDrop, BadIpChecksum) {
  Frame f = udp_frame("x");
  f[kIpOff + 10] ^= 0x80;
  expect_drop(f, DropReason::kBadIpChecksum);
  f = udp_frame("x");
  f[kIpOff + 8] = 63;  // TTL decremented without fixing the checksum
  expect_drop(f, DropReason::kBadIpChecksum);
  f = udp_frame("x");
  add_ip_options(f, {1, 1, 1, 0});
  f[kIpOff + 21] = 0x02;  // an option byte is covered too
  expect_drop(f, DropReason::kBadIpChecksum);
}

TEST(ClassifyDrop, FragmentWithMoreFragments) {
  Frame f = udp_frame("x");
  set16(f, kIpOff + 6, 0x2000);  // MF, offset 0
  fix_ip_checksum(f);
  expect_drop(f, DropReason::kIpFragment);
}

TEST(ClassifyDrop, FragmentWithOffset) {
  for (uint16_t flags : {uint16_t{0x0001}, uint16_t{0x4001}, uint16_t{0x1fff}, uint16_t{0x0100}}) {
    Frame f = udp_frame("x");
    set16(f, kIpOff + 6, flags);
    fix_ip_checksum(f);
    SCOPED_TRACE(flags);
    expect_drop(f, DropReason::kIpFragment);
  }
  Frame no_df = udp_frame("x");
  set16(no_df, kIpOff + 6, 0x0000);  // DF clear and not a fragment: fine
  fix_ip_checksum(no_df);
  EXPECT_EQ(classify_copy(no_df).kind, Kind::kUdp);
}

TEST(ClassifyDrop, NotOurIp) {
  for (uint32_t dst : {0x0a010204u, 0xffffffffu, 0x0a0102ffu, 0xe0000001u, 0x0302010au, 0u}) {
    const UdpEndpoint to{kServerMac, Ipv4Addr{dst}, kServerPort};
    SCOPED_TRACE(dst);
    expect_drop(udp_frame(bytes_of("x"), true, kClientEp, to), DropReason::kNotOurIp);
  }
}

TEST(ClassifyDrop, NotOurMac) {
  const MacAddr others[] = {
      kOtherMac,
      {{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}},  // IPv4 multicast
      {{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}},  // IPv6 multicast
      {{0x03, 0x11, 0x22, 0x33, 0x44, 0x55}},  // our MAC with the group bit set
      {{0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}},
  };
  for (const MacAddr& dst : others) {
    SCOPED_TRACE(dst.to_string());
    const UdpEndpoint to{dst, kServerIp, kServerPort};
    expect_drop(udp_frame(bytes_of("x"), true, kClientEp, to), DropReason::kNotOurMac);
    expect_drop(arp_frame({}, dst), DropReason::kNotOurMac);
  }
}

TEST(ClassifyDrop, MacIsCheckedBeforeEthertype) {
  Frame f = udp_frame("x");
  set_mac(f, 0, kOtherMac);
  set16(f, 12, 0x86dd);
  expect_drop(f, DropReason::kNotOurMac);
}

TEST(ClassifyDrop, Ipv6Ethertype) {
  Frame f = udp_frame("x");
  set16(f, 12, 0x86dd);
  expect_drop(f, DropReason::kBadEthertype);
}

TEST(ClassifyDrop, VlanTaggedFrame) {
  // An 802.1Q tag in front of a valid IPv4 datagram: we do not strip tags in software.
  Frame f = udp_frame("x");
  const uint8_t tag[] = {0x81, 0x00, 0x00, 0x64};
  f.insert(f.begin() + 12, std::begin(tag), std::end(tag));
  expect_drop(f, DropReason::kBadEthertype);
}

TEST(ClassifyDrop, OtherEthertypes) {
  for (uint16_t type : {uint16_t{0x88cc}, uint16_t{0x8035}, uint16_t{0x0000}, uint16_t{0x0008},
                        uint16_t{0x88a8}, uint16_t{0x0600}}) {
    Frame f = udp_frame("x");
    set16(f, 12, type);
    SCOPED_TRACE(type);
    expect_drop(f, DropReason::kBadEthertype);
  }
}

TEST(ClassifyDrop, TcpIsUnsupported) {
  for (uint8_t proto : {uint8_t{6}, uint8_t{2}, uint8_t{41}, uint8_t{58}, uint8_t{132}}) {
    Frame f = udp_frame("x");
    f[kIpOff + 9] = proto;
    fix_ip_checksum(f);
    SCOPED_TRACE(static_cast<int>(proto));
    expect_drop(f, DropReason::kUnsupportedProto);
  }
}

TEST(ClassifyDrop, UdpLengthBelowHeader) {
  for (uint16_t len = 0; len < 8; ++len) {
    Frame f = udp_frame("");  // IP payload is exactly the 8-byte header
    set16(f, kUdpOff + 4, len);
    SCOPED_TRACE(len);
    expect_drop(f, DropReason::kBadUdpLength);
  }
}

TEST(ClassifyDrop, UdpLengthMismatch) {
  Frame f = udp_frame("0123456789");
  set16(f, kUdpOff + 4, 8 + 9);  // one less than the IP payload
  fix_udp_checksum(f);
  expect_drop(f, DropReason::kBadUdpLength);
  set16(f, kUdpOff + 4, 8 + 11);  // one more
  expect_drop(f, DropReason::kBadUdpLength);
  // A padded frame must not let the UDP length reach into the padding.
  Frame g = udp_frame("hi");
  g.resize(kMinFrameLen, 0);
  set16(g, kUdpOff + 4, static_cast<uint16_t>(kMinFrameLen - kUdpOff));
  expect_drop(g, DropReason::kBadUdpLength);
}

TEST(ClassifyDrop, BadUdpChecksum) {
  for (size_t at : {kUdpOff, kUdpOff + 6, kUdpHeadersLen, kUdpHeadersLen + 4}) {
    Frame f = udp_frame("hello");
    f[at] ^= 0x10;
    SCOPED_TRACE(at);
    expect_drop(f, DropReason::kBadUdpChecksum);
  }
  // The pseudo-header is covered: a changed source address breaks the UDP checksum only.
  Frame f = udp_frame("hello");
  set32(f, kIpOff + 12, kClientIp.v + 1);
  fix_ip_checksum(f);
  expect_drop(f, DropReason::kBadUdpChecksum);
}

TEST(ClassifyDrop, ZeroUdpChecksumIsAccepted) {
  Frame f = udp_frame("hello", /*udp_checksum=*/false);
  f.back() ^= 0xff;  // nothing to verify
  EXPECT_EQ(classify_copy(f).kind, Kind::kUdp);
}

TEST(ClassifyDrop, WrongPort) {
  for (uint16_t port : {uint16_t{11212}, uint16_t{0}, uint16_t{53}, uint16_t{0xcb2b}}) {
    const UdpEndpoint to{kServerMac, kServerIp, port};
    SCOPED_TRACE(port);
    const Classified c = classify_copy(udp_frame(bytes_of("x"), true, kClientEp, to));
    EXPECT_EQ(c.kind, Kind::kDrop);
    EXPECT_EQ(c.reason, DropReason::kNoListener);
    EXPECT_EQ(c.dst_port, port);
  }
}

TEST(ClassifyDrop, ArpForAnotherIp) {
  ArpFields a;
  a.tpa = Ipv4Addr{kServerIp.v + 1};
  expect_drop(arp_frame(a), DropReason::kArpNotForUs);
  a.tpa = kClientIp;  // gratuitous ARP of the client
  expect_drop(arp_frame(a), DropReason::kArpNotForUs);
}

TEST(ClassifyDrop, BadArp) {
  auto with = [](auto edit) {
    ArpFields a;
    edit(a);
    return arp_frame(a);
  };
  expect_drop(with([](ArpFields& a) { a.hlen = 5; }), DropReason::kBadArp);
  expect_drop(with([](ArpFields& a) { a.hlen = 8; }), DropReason::kBadArp);
  expect_drop(with([](ArpFields& a) { a.plen = 16; }), DropReason::kBadArp);
  expect_drop(with([](ArpFields& a) { a.htype = 6; }), DropReason::kBadArp);
  expect_drop(with([](ArpFields& a) { a.ptype = 0x86dd; }), DropReason::kBadArp);
  expect_drop(with([](ArpFields& a) { a.op = 0; }), DropReason::kBadArp);
  expect_drop(with([](ArpFields& a) { a.op = 3; }), DropReason::kBadArp);  // RARP request
  expect_drop(with([](ArpFields& a) { a.op = 0x0100; }), DropReason::kBadArp);
}

TEST(ClassifyDrop, IcmpOtherThanEchoRequest) {
  expect_drop(icmp_frame(8, /*type=*/0), DropReason::kIcmpNotEcho);  // echo reply
  expect_drop(icmp_frame(28, /*type=*/3, /*code=*/3), DropReason::kIcmpNotEcho);
  expect_drop(icmp_frame(8, /*type=*/13), DropReason::kIcmpNotEcho);
  expect_drop(icmp_frame(8, /*type=*/8, /*code=*/1), DropReason::kIcmpNotEcho);
}

TEST(ClassifyDrop, BadIcmpChecksum) {
  Frame f = icmp_frame(32);
  f.back() ^= 0x01;
  expect_drop(f, DropReason::kBadIcmpChecksum);
  f = icmp_frame(0);
  f[kUdpOff + 3] ^= 0x01;
  expect_drop(f, DropReason::kBadIcmpChecksum);
}

TEST(ClassifyDrop, IcmpChecksumCoversOddLength) {
  Frame f = icmp_frame(5);
  EXPECT_EQ(classify_copy(f).kind, Kind::kIcmpEcho);
  f.back() ^= 0x40;
  expect_drop(f, DropReason::kBadIcmpChecksum);
}

// ---------------------------------------------------------------------------------------------
// ARP.

TEST(Arp, RequestBytes) {
  std::array<uint8_t, 64> out;
  out.fill(0xee);
  ASSERT_EQ(build_arp_request(kServer, kClientIp, out), kMinFrameLen);
  const std::array<uint8_t, 60> want = {
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // to everyone
      0x02, 0x11, 0x22, 0x33, 0x44, 0x55,  // from us
      0x08, 0x06,                          // ARP
      0x00, 0x01, 0x08, 0x00, 0x06, 0x04,  // Ethernet, IPv4, 6, 4
      0x00, 0x01,                          // request
      0x02, 0x11, 0x22, 0x33, 0x44, 0x55,  // sender MAC
      0x0a, 0x01, 0x02, 0x03,              // sender IP
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // target MAC unknown
      0x0a, 0x04, 0x05, 0x06,              // target IP
                                           // 18 bytes of zero padding follow
  };
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(out[i], want[i]) << "byte " << i;
  EXPECT_EQ(out[60], 0xee);  // nothing written past the frame
  EXPECT_EQ(build_arp_request(kServer, kClientIp, std::span(out).first(59)), 0u);
}

TEST(Arp, RequestIsClassifiedByTheTarget) {
  std::array<uint8_t, 60> out{};
  ASSERT_EQ(build_arp_request(kClient, kServerIp, out), 60u);
  const Classified c = classify(out, kServer, true);
  ASSERT_EQ(c.kind, Kind::kArpRequest) << drop_reason_name(c.reason);
  EXPECT_EQ(c.src_mac, kClientMac);
  EXPECT_EQ(c.arp_sender_mac, kClientMac);
  EXPECT_EQ(c.src_ip, kClientIp);
  EXPECT_EQ(c.dst_ip, kServerIp);
  EXPECT_EQ(c.payload_off, kEthHeaderLen);
  EXPECT_EQ(c.payload_len, 28);
}

TEST(Arp, ReplyBytes) {
  std::array<uint8_t, 60> request{};
  ASSERT_EQ(build_arp_request(kClient, kServerIp, request), 60u);
  ASSERT_EQ(classify(request, kServer, true).kind, Kind::kArpRequest);
  std::array<uint8_t, 61> out;
  out.fill(0xee);
  ASSERT_EQ(build_arp_reply(request, kServer, out), kMinFrameLen);
  std::array<uint8_t, 60> want = {
      0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,  // to the requester
      0x02, 0x11, 0x22, 0x33, 0x44, 0x55,  // from us
      0x08, 0x06,                          // ARP
      0x00, 0x01, 0x08, 0x00, 0x06, 0x04,  // Ethernet, IPv4, 6, 4
      0x00, 0x02,                          // reply
      0x02, 0x11, 0x22, 0x33, 0x44, 0x55,  // sender MAC: the answer
      0x0a, 0x01, 0x02, 0x03,              // sender IP: ours
      0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,  // target MAC: the requester
      0x0a, 0x04, 0x05, 0x06,              // target IP: the requester
  };
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(out[i], want[i]) << "byte " << i;
  EXPECT_EQ(out[60], 0xee);
}

TEST(Arp, ReplyGoesToTheArpSenderAndPadsWithZeroes) {
  // The Ethernet source differs from the ARP sender (a proxy); the ARP sender is answered.
  ArpFields a;
  a.spa = Ipv4Addr{0x0a090909};
  Frame req = arp_frame(a);
  set_mac(req, 6, kOtherMac);
  std::fill(req.begin() + 42, req.end(), 0x5a);  // junk in the request's padding
  ASSERT_EQ(classify_copy(req).kind, Kind::kArpRequest);
  std::array<uint8_t, 60> out;
  out.fill(0xee);
  ASSERT_EQ(build_arp_reply(req, kServer, out), 60u);
  EXPECT_EQ(get_mac(Frame(out.begin(), out.end()), 0), kClientMac);
  EXPECT_EQ(get32(Frame(out.begin(), out.end()), 38), 0x0a090909u);
  EXPECT_TRUE(std::all_of(out.begin() + 42, out.end(), [](uint8_t b) { return b == 0; }));
}

TEST(Arp, ReplyCanBeBuiltInPlace) {
  Frame buf = arp_frame({});
  std::array<uint8_t, 60> separate{};
  ASSERT_EQ(build_arp_reply(buf, kServer, separate), 60u);
  ASSERT_EQ(build_arp_reply(buf, kServer, buf), 60u);
  EXPECT_TRUE(std::equal(buf.begin(), buf.end(), separate.begin()));
}

TEST(Arp, ReplyIsLearnedByTheRequester) {
  std::array<uint8_t, 60> request{};
  std::array<uint8_t, 60> reply{};
  ASSERT_EQ(build_arp_request(kClient, kServerIp, request), 60u);
  ASSERT_EQ(build_arp_reply(request, kServer, reply), 60u);
  const Classified c = classify(reply, kClient, true);
  ASSERT_EQ(c.kind, Kind::kArpReply) << drop_reason_name(c.reason);
  EXPECT_EQ(c.arp_sender_mac, kServerMac);
  EXPECT_EQ(c.src_ip, kServerIp);
  EXPECT_EQ(c.dst_ip, kClientIp);
  // A reply is for learning even when its target is not us (it passed the MAC filter).
  ArpFields a;
  a.op = 2;
  a.tpa = Ipv4Addr{0x0a0a0a0a};
  EXPECT_EQ(classify_copy(arp_frame(a)).kind, Kind::kArpReply);
}

TEST(Arp, ReplyBuilderRejectsBadInput) {
  std::array<uint8_t, 60> out{};
  Frame req = arp_frame({});
  EXPECT_EQ(build_arp_reply(req, kServer, std::span(out).first(59)), 0u);
  EXPECT_EQ(build_arp_reply(std::span(req).first(41), kServer, out), 0u);
  EXPECT_EQ(build_arp_reply(std::span(req).first(42), kServer, out), 60u);  // unpadded is fine
  ArpFields a;
  a.op = 2;
  EXPECT_EQ(build_arp_reply(arp_frame(a), kServer, out), 0u);  // no reply to a reply
  EXPECT_EQ(build_arp_reply(udp_frame("0123456789abcdefghijklmnopqrstuvwxyz"), kServer, out), 0u);
}

// ---------------------------------------------------------------------------------------------
// ICMP echo.

// Checks `reply` (of `len` bytes) is the echo reply to `request` (unpadded, no IP options).
void expect_echo_reply(const Frame& request, const Frame& reply, size_t len) {
  const size_t req_hlen = ip_hlen(request);
  const size_t icmp_len = get16(request, kIpOff + 2) - req_hlen;
  ASSERT_EQ(len, kUdpOff + icmp_len);
  ASSERT_LE(len, reply.size());
  EXPECT_EQ(get_mac(reply, 0), get_mac(request, 6));
  EXPECT_EQ(get_mac(reply, 6), kServerMac);
  EXPECT_EQ(get16(reply, 12), 0x0800);
  EXPECT_EQ(reply[kIpOff], 0x45);
  EXPECT_EQ(reply[kIpOff + 1], request[kIpOff + 1]);  // TOS kept
  EXPECT_EQ(get16(reply, kIpOff + 2), kIpv4HeaderLen + icmp_len);
  EXPECT_EQ(get16(reply, kIpOff + 4), get16(request, kIpOff + 4));  // id kept
  EXPECT_EQ(get16(reply, kIpOff + 6), get16(request, kIpOff + 6));  // flags kept
  EXPECT_EQ(reply[kIpOff + 8], 64);
  EXPECT_EQ(reply[kIpOff + 9], 1);
  EXPECT_EQ(ref_sum(reply.data() + kIpOff, kIpv4HeaderLen), 0xffffu) << "IP checksum";
  EXPECT_EQ(get32(reply, kIpOff + 12), kServerIp.v);
  EXPECT_EQ(get32(reply, kIpOff + 16), get32(request, kIpOff + 12));
  const size_t req_icmp = kIpOff + req_hlen;
  EXPECT_EQ(reply[kUdpOff], 0);      // echo reply
  EXPECT_EQ(reply[kUdpOff + 1], 0);  // code
  EXPECT_EQ(ref_sum(reply.data() + kUdpOff, icmp_len), 0xffffu) << "ICMP checksum";
  // The checksum is the canonical one a full recomputation gives.
  Frame copy(reply.begin() + kUdpOff, reply.begin() + static_cast<ptrdiff_t>(len));
  set16(copy, 2, 0);
  EXPECT_EQ(get16(reply, kUdpOff + 2), ref_checksum(copy.data(), copy.size()));
  // Identifier, sequence number and data are echoed unchanged.
  EXPECT_TRUE(std::equal(reply.begin() + kUdpOff + 4, reply.begin() + static_cast<ptrdiff_t>(len),
                         request.begin() + static_cast<ptrdiff_t>(req_icmp) + 4));
}

TEST(IcmpEcho, RequestIsClassified) {
  const Frame f = icmp_frame(56);
  const Classified c = classify_copy(f);
  ASSERT_EQ(c.kind, Kind::kIcmpEcho) << drop_reason_name(c.reason);
  EXPECT_EQ(c.src_mac, kClientMac);
  EXPECT_EQ(c.src_ip, kClientIp);
  EXPECT_EQ(c.dst_ip, kServerIp);
  EXPECT_EQ(c.payload_off, kUdpOff);
  EXPECT_EQ(c.payload_len, 64);
}

TEST(IcmpEcho, ReplyContents) {
  const Frame request = icmp_frame(56);
  Frame f = request;
  const Classified c = classify_copy(f);
  ASSERT_EQ(c.kind, Kind::kIcmpEcho);
  const size_t len = make_icmp_echo_reply_in_place(f, c, kServer);
  expect_echo_reply(request, f, len);
  EXPECT_EQ(get16(f, kUdpOff + 4), 0x1234);
  EXPECT_EQ(get16(f, kUdpOff + 6), 7);
  // The client sees a well-formed echo reply: it gets past every check up to the ICMP type.
  f.resize(len);
  const Classified at_client = classify_copy(f, kClient);
  EXPECT_EQ(at_client.reason, DropReason::kIcmpNotEcho);
}

TEST(IcmpEcho, ReplyToBroadcastMacComesFromOurMac) {
  Frame request = icmp_frame(8);
  set_mac(request, 0, kBroadcastMac);
  Frame f = request;
  const Classified c = classify_copy(f);
  ASSERT_EQ(c.kind, Kind::kIcmpEcho);
  const size_t len = make_icmp_echo_reply_in_place(f, c, kServer);
  expect_echo_reply(request, f, len);
}

TEST(IcmpEcho, ReplyExcludesEthernetPadding) {
  const Frame request = icmp_frame(0);
  Frame f = request;
  f.resize(kMinFrameLen, 0x77);
  const Classified c = classify_copy(f);
  ASSERT_EQ(c.kind, Kind::kIcmpEcho);
  const size_t len = make_icmp_echo_reply_in_place(f, c, kServer);
  EXPECT_EQ(len, kUdpOff + 8);
  expect_echo_reply(request, f, len);
}

TEST(IcmpEcho, ReplyDropsIpOptions) {
  Frame request = icmp_frame(20);
  add_ip_options(request, {0x07, 0x07, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00});  // record route
  Frame f = request;
  const Classified c = classify_copy(f);
  ASSERT_EQ(c.kind, Kind::kIcmpEcho) << drop_reason_name(c.reason);
  ASSERT_EQ(c.payload_off, kUdpOff + 8);
  const size_t len = make_icmp_echo_reply_in_place(f, c, kServer);
  expect_echo_reply(request, f, len);
}

TEST(IcmpEcho, ReplyChecksumMatchesFullRecomputation) {
  // The incremental update (RFC 1624) must agree with a full recomputation for any content.
  std::mt19937 rng(1624);
  for (int i = 0; i < 3000; ++i) {
    Frame request =
        icmp_frame(rng() % 64, 8, 0, static_cast<uint16_t>(rng()), static_cast<uint16_t>(rng()));
    for (size_t j = kUdpOff + 8; j < request.size(); ++j) request[j] = static_cast<uint8_t>(rng());
    if (i % 3 == 0) set16(request, kUdpOff + 4, 0xf7ff);  // pushes the sum around 0xffff
    fix_icmp_checksum(request);
    Frame f = request;
    const Classified c = classify_copy(f);
    ASSERT_EQ(c.kind, Kind::kIcmpEcho);
    const size_t len = make_icmp_echo_reply_in_place(f, c, kServer);
    ASSERT_NO_FATAL_FAILURE(expect_echo_reply(request, f, len)) << i;
  }
}

// Found by tests/fuzz (regressions/packet/icmp_echo_reply_zero_checksum): with id 0, sequence
// 0 and no data the incremental update gave checksum 0x0000 instead of 0xffff, and receivers
// (and classify) dropped the reply.
TEST(IcmpEcho, ReplyWithAllZeroBodyHasAValidChecksum) {
  for (size_t data : {0, 1, 2, 8}) {
    Frame request = icmp_frame(data, 8, 0, 0, 0);
    fix_icmp_checksum(request);
    Frame f = request;
    const Classified c = classify_copy(f);
    ASSERT_EQ(c.kind, Kind::kIcmpEcho);
    const size_t len = make_icmp_echo_reply_in_place(f, c, kServer);
    ASSERT_NO_FATAL_FAILURE(expect_echo_reply(request, f, len)) << data;
    if (data == 0) {
      EXPECT_EQ(get16(f, kUdpOff + 2), 0xffff);  // all-zero body: ~0 is 0xffff
    }
  }
}

TEST(IcmpEcho, ReplyRejectsAClassificationThatDoesNotFit) {
  Frame f = icmp_frame(8);
  const Frame original = f;
  Classified c = classify_copy(f);
  ASSERT_EQ(c.kind, Kind::kIcmpEcho);
  Classified wrong_kind = c;
  wrong_kind.kind = Kind::kUdp;
  EXPECT_EQ(make_icmp_echo_reply_in_place(f, wrong_kind, kServer), 0u);
  Classified too_long = c;
  too_long.payload_len = static_cast<uint16_t>(too_long.payload_len + 1);
  EXPECT_EQ(make_icmp_echo_reply_in_place(f, too_long, kServer), 0u);
  Classified too_early = c;
  too_early.payload_off = 20;
  EXPECT_EQ(make_icmp_echo_reply_in_place(f, too_early, kServer), 0u);
  EXPECT_EQ(make_icmp_echo_reply_in_place(std::span(f).first(f.size() - 1), c, kServer), 0u);
  EXPECT_EQ(f, original);  // untouched
  Classified none;
  EXPECT_EQ(make_icmp_echo_reply_in_place({}, none, kServer), 0u);
}

// ---------------------------------------------------------------------------------------------
// Fuzz: random and mutated frames must never crash, read out of bounds (run under ASan/UBSan),
// or yield a classification that points outside the frame.

struct FuzzStats {
  std::array<size_t, 5> kinds{};
  std::array<size_t, kDropReasonCount> reasons{};
};

void check_invariants(std::vector<uint8_t>& buf, FuzzStats& stats) {
  const bool verify = buf.size() % 2 == 0;
  const Classified c = classify(buf, kServer, verify);
  ASSERT_LT(static_cast<size_t>(c.kind), stats.kinds.size());
  ++stats.kinds[static_cast<size_t>(c.kind)];
  if (c.kind == Kind::kDrop) {
    ASSERT_LT(static_cast<size_t>(c.reason), kDropReasonCount);
    ++stats.reasons[static_cast<size_t>(c.reason)];
    return;
  }
  ASSERT_LE(size_t{c.payload_off} + c.payload_len, buf.size());
  switch (c.kind) {
    case Kind::kUdp:
      ASSERT_EQ(c.dst_port, kServerPort);
      ASSERT_EQ(c.dst_ip, kServerIp);
      break;
    case Kind::kArpRequest: {
      ASSERT_EQ(c.dst_ip, kServerIp);
      std::array<uint8_t, 60> out;
      ASSERT_EQ(build_arp_reply(buf, kServer, out), 60u);
      break;
    }
    case Kind::kArpReply:
      break;
    case Kind::kIcmpEcho: {
      ASSERT_EQ(c.dst_ip, kServerIp);
      const size_t len = make_icmp_echo_reply_in_place(buf, c, kServer);
      ASSERT_GE(len, kUdpOff + 8);
      ASSERT_LE(len, buf.size());
      ASSERT_EQ(ref_sum(buf.data() + kIpOff, kIpv4HeaderLen), 0xffffu);
      ASSERT_EQ(ref_sum(buf.data() + kUdpOff, len - kUdpOff), 0xffffu);
      break;
    }
    case Kind::kDrop:
      break;
  }
}

TEST(Fuzz, RandomAndMutatedFramesNeverMisbehave) {
  std::mt19937_64 rng(0xfa5e'0001);
  auto uniform = [&rng](size_t lo, size_t hi) {  // inclusive
    return lo + static_cast<size_t>(rng() % (hi - lo + 1));
  };
  std::vector<Frame> seeds = {
      udp_frame("get k\r\n"),
      udp_frame(""),
      udp_frame(std::vector<uint8_t>(1458, 0x41)),
      udp_frame("nock", false),
      icmp_frame(56),
      icmp_frame(0),
      arp_frame({}),
  };
  {
    ArpFields reply;
    reply.op = 2;
    seeds.push_back(arp_frame(reply));
    Frame opts = udp_frame("with options");
    add_ip_options(opts, {1, 1, 1, 0});
    seeds.push_back(opts);
    Frame icmp_opts = icmp_frame(9);
    add_ip_options(icmp_opts, {1, 1, 1, 0, 1, 1, 1, 0});
    seeds.push_back(icmp_opts);
  }

  FuzzStats stats;
  constexpr int kIterations = 150000;
  for (int iter = 0; iter < kIterations; ++iter) {
    Frame f;
    switch (iter % 3) {
      case 0: {  // random bytes of a random length
        f.resize(uniform(0, 1600));
        for (auto& b : f) b = static_cast<uint8_t>(rng());
        break;
      }
      case 1: {  // random bytes behind a plausible Ethernet + IPv4/ARP prefix
        f.resize(uniform(0, 1600));
        for (auto& b : f) b = static_cast<uint8_t>(rng());
        if (f.size() >= 14) {
          set_mac(f, 0, rng() % 4 ? kServerMac : kBroadcastMac);
          set16(f, 12, rng() % 3 ? 0x0800 : 0x0806);
        }
        if (f.size() >= 34 && get16(f, 12) == 0x0800) {
          f[kIpOff] = static_cast<uint8_t>(0x40 | uniform(5, 15));
          set16(f, kIpOff + 2,
                static_cast<uint16_t>(rng() % 2 ? f.size() - kIpOff : uniform(0, 1600)));
          if (rng() % 2) set16(f, kIpOff + 6, 0);
          f[kIpOff + 9] = rng() % 2 ? 17 : 1;
          set32(f, kIpOff + 16, kServerIp.v);
          if (ip_hlen(f) <= f.size() - kIpOff && rng() % 4) fix_ip_checksum(f);
        }
        if (f.size() >= 42 && get16(f, 12) == 0x0806) {
          set16(f, 14, 1);
          set16(f, 16, 0x0800);
          f[18] = 6;
          f[19] = 4;
          set16(f, 20, static_cast<uint16_t>(uniform(0, 3)));
          if (rng() % 2) set32(f, 38, kServerIp.v);
        }
        break;
      }
      default: {  // a valid frame, mutated
        f = seeds[rng() % seeds.size()];
        const size_t flips = uniform(0, 4);
        for (size_t i = 0; i < flips && !f.empty(); ++i) {
          f[rng() % f.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
        }
        switch (rng() % 4) {
          case 0:
            f.resize(uniform(0, f.size()));
            break;
          case 1: {
            const size_t extra = uniform(0, 1600 - std::min<size_t>(f.size(), 1600));
            for (size_t i = 0; i < extra; ++i) f.push_back(static_cast<uint8_t>(rng()));
            break;
          }
          default:
            break;
        }
        // Often repair the IP checksum so mutations reach the layers behind it.
        if (f.size() >= 34 && get16(f, 12) == 0x0800 && ip_hlen(f) >= 20 &&
            ip_hlen(f) <= f.size() - kIpOff && rng() % 2) {
          fix_ip_checksum(f);
        }
        break;
      }
    }
    // An exactly sized heap copy: any read past the end is a sanitizer error.
    std::vector<uint8_t> exact(f.begin(), f.end());
    ASSERT_NO_FATAL_FAILURE(check_invariants(exact, stats)) << "iteration " << iter;
  }

  // The corpus must reach every outcome, or the loop tests less than it claims.
  for (size_t k = 0; k < stats.kinds.size(); ++k) {
    EXPECT_GT(stats.kinds[k], 0u) << "kind " << k << " never produced";
  }
  for (size_t r = 0; r < kDropReasonCount; ++r) {
    if (static_cast<DropReason>(r) == DropReason::kNoBuffer) continue;  // the stack's reason
    // The source filter's reasons: classify() never gives them (tests/net/filter_test.cc does).
    if (r >= static_cast<size_t>(DropReason::kSrcBroadcast)) continue;
    EXPECT_GT(stats.reasons[r], 0u)
        << drop_reason_name(static_cast<DropReason>(r)) << " never produced";
  }
}

}  // namespace
}  // namespace fm::net
