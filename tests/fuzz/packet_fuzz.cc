// libFuzzer harness: net/packet.h on arbitrary frames. classify() them, run the source filter
// (net/filter.h) on what classify() accepts, build the replies the classification calls for (ARP,
// ICMP echo, a UDP echo), and check the replies classify back.
//
// Input: byte 0 holds flags (bit 0: verify UDP checksums; bit 1: checksum the UDP reply), the
// rest is one Ethernet frame without FCS.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/filter.h"
#include "net/packet.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace fm::net;
using Kind = Classified::Kind;

constexpr size_t kIpOff = kEthHeaderLen;
constexpr size_t kIcmpOff = kEthHeaderLen + kIpv4HeaderLen;  // in a reply: no IP options

Identity me() {
  Identity id;
  id.mac.b = {0x02, 0xfa, 0x00, 0x00, 0x00, 0x01};
  id.ip.v = 0x0a4d0001;  // 10.77.0.1
  id.udp_port = 11211;
  return id;
}

// Whole-buffer checksum equals the sum of two pieces (the first of even length).
void check_checksum_pieces(std::span<const uint8_t> data) {
  const size_t split = (data.size() / 2) & ~size_t{1};
  const uint32_t whole = checksum_partial(data);
  const uint32_t pieces = checksum_partial(data.subspan(split), checksum_partial(data.first(split)));
  FUZZ_CHECK(whole <= 0xffff && pieces <= 0xffff, "unfolded sums %x %x", whole, pieces);
  FUZZ_CHECK(checksum_fold(whole) == checksum_fold(pieces), "whole %x, in pieces %x", whole,
             pieces);
}

// Text parsers: whatever parses prints back as the same text (lower-case hex for MACs).
void check_text_parsers(std::span<const uint8_t> data) {
  if (data.size() > 64) return;
  const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
  if (auto mac = parse_mac(text, "fuzz.mac"); mac.is_ok()) {
    std::string lower(text);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    FUZZ_CHECK(mac->to_string() == lower, "MAC %s prints as %s", lower.c_str(),
               mac->to_string().c_str());
  } else {
    FUZZ_CHECK(!mac.status().message().empty(), "an error without a message");
  }
  if (auto ip = parse_ipv4(text, "fuzz.ip"); ip.is_ok()) {
    FUZZ_CHECK(ip->to_string() == text, "IPv4 prints as %s", ip->to_string().c_str());
  }
  if (auto p = parse_ipv4_prefix(text, "fuzz.allow"); p.is_ok()) {
    FUZZ_CHECK(p->len <= 32 && prefix_of(p->addr, p->len) == *p, "prefix with host bits");
    auto again = parse_ipv4_prefix(p->to_string(), "fuzz.allow");
    FUZZ_CHECK(again.is_ok() && *again == *p, "prefix %s does not parse back",
               p->to_string().c_str());
  }
}

// A source filter as kvserver builds it: our /24, two allowed client blocks, one denied port.
const SourceFilter& source_filter() {
  static const Ipv4Prefix kAllow[] = {{Ipv4Addr{0x0a4d0000}, 24}, {Ipv4Addr{0xc0a80000}, 16}};
  static const uint16_t kDeny[] = {53};
  static const SourceFilter filter(me(), 24, kAllow, kDeny);
  return filter;
}

bool allowed(Ipv4Addr ip) {
  return std::any_of(source_filter().allow().begin(), source_filter().allow().end(),
                     [&](const Ipv4Prefix& p) { return p.contains(ip); });
}

// What filter.h promises: a sender it lets through is none of the sources it lists, and a UDP
// or ICMP sender is inside the allow-list; what it refuses carries a source reason.
void check_source_filter(const Classified& c, const Identity& id) {
  const std::optional<DropReason> why = source_filter().check(c);
  // The stack's cache of the last accepted sender answers as the filter, asked twice in a row
  // (the second from the cache when the first accepted a UDP sender).
  static LastSourceCache cache;
  for (int i = 0; i < 2; ++i) {
    const std::optional<DropReason> cached = cache.check(source_filter(), c);
    FUZZ_CHECK(cached == why, "cached verdict %s, filter %s",
               cached ? drop_reason_name(*cached) : "accepted",
               why ? drop_reason_name(*why) : "accepted");
  }
  if (c.kind == Classified::Kind::kDrop) {
    FUZZ_CHECK(!why, "a dropped frame got a source verdict");
    return;
  }
  if (why) {
    FUZZ_CHECK(*why >= DropReason::kSrcBroadcast && *why <= DropReason::kSrcNotAllowed,
               "source verdict %s", drop_reason_name(*why));
    return;
  }
  auto bad_mac = [&](const MacAddr& m) { return m.is_multicast() || m == MacAddr{} || m == id.mac; };
  FUZZ_CHECK(!bad_mac(c.src_mac), "accepted source MAC %s", c.src_mac.to_string().c_str());
  const bool arp = c.kind == Classified::Kind::kArpRequest || c.kind == Classified::Kind::kArpReply;
  FUZZ_CHECK(!arp || !bad_mac(c.arp_sender_mac), "accepted ARP sender %s",
             c.arp_sender_mac.to_string().c_str());
  const uint32_t ip = c.src_ip.v;
  FUZZ_CHECK(ip != 0xffffffff && ip != source_filter().subnet_broadcast().v &&
                 (ip >> 28) != 0xe && (ip >> 24) != 0 && (ip >> 24) != 127 && c.src_ip != id.ip,
             "accepted source IP %s", c.src_ip.to_string().c_str());
  if (arp) return;
  FUZZ_CHECK(allowed(c.src_ip), "accepted %s outside the allow-list", c.src_ip.to_string().c_str());
  if (c.kind == Classified::Kind::kUdp) {
    FUZZ_CHECK(c.src_port != 0 && c.src_port != 53 && c.src_port != id.udp_port,
               "accepted UDP source port %u", unsigned(c.src_port));
  }
}

void check_arp_request(std::span<const uint8_t> frame, const Classified& c, const Identity& id) {
  FUZZ_CHECK(c.dst_ip == id.ip, "an ARP request for another address was accepted");
  std::vector<uint8_t> out(kMinFrameLen);
  FUZZ_CHECK(build_arp_reply(frame, id, std::span<uint8_t>(out).first(kMinFrameLen - 1)) == 0,
             "an ARP reply was built into a runt buffer");
  const size_t n = build_arp_reply(frame, id, out);
  FUZZ_CHECK(n == kMinFrameLen, "ARP reply of %zu bytes", n);

  // The reply classifies as an ARP reply at the requester, from us, about us.
  const Identity requester{c.arp_sender_mac, c.src_ip, 0};
  const Classified r = classify(out, requester, true);
  FUZZ_CHECK(r.kind == Kind::kArpReply, "ARP reply classified as %d (%s)", int(r.kind),
             drop_reason_name(r.reason));
  FUZZ_CHECK(r.src_mac == id.mac && r.arp_sender_mac == id.mac, "ARP reply not from our MAC");
  FUZZ_CHECK(r.src_ip == id.ip && r.dst_ip == c.src_ip, "ARP reply addresses");

  // `out` may alias `request`: building in place gives the same bytes.
  std::vector<uint8_t> in_place(frame.begin(), frame.end());
  if (in_place.size() < kMinFrameLen) in_place.resize(kMinFrameLen);
  const size_t m =
      build_arp_reply(std::span<const uint8_t>(in_place).first(frame.size()), id, in_place);
  FUZZ_CHECK(m == n && std::memcmp(in_place.data(), out.data(), n) == 0,
             "ARP reply built in place differs");
}

void check_icmp_echo(std::span<const uint8_t> frame, const Classified& c, const Identity& id) {
  FUZZ_CHECK(c.dst_ip == id.ip, "ICMP echo to another address was accepted");
  std::vector<uint8_t> reply(frame.begin(), frame.end());
  Classified not_echo = c;
  not_echo.kind = Kind::kUdp;
  FUZZ_CHECK(make_icmp_echo_reply_in_place(reply, not_echo, id) == 0,
             "an echo reply was made from a non-echo classification");
  FUZZ_CHECK(std::memcmp(reply.data(), frame.data(), frame.size()) == 0,
             "a refused echo reply changed the frame");

  const size_t n = make_icmp_echo_reply_in_place(reply, c, id);
  FUZZ_CHECK(n == kIcmpOff + c.payload_len, "echo reply of %zu bytes for %u ICMP bytes", n,
             unsigned(c.payload_len));
  FUZZ_CHECK(n <= reply.size(), "echo reply of %zu bytes in a %zu-byte frame", n, reply.size());
  const std::span<const uint8_t> r(reply.data(), n);
  FUZZ_CHECK(checksum_fold(checksum_partial(r.subspan(kIpOff, kIpv4HeaderLen))) == 0,
             "echo reply IP checksum");
  FUZZ_CHECK(checksum_fold(checksum_partial(r.subspan(kIcmpOff))) == 0,
             "echo reply ICMP checksum");
  FUZZ_CHECK(r[kIcmpOff] == 0 && r[kIcmpOff + 1] == 0, "echo reply type/code %u/%u",
             unsigned(r[kIcmpOff]), unsigned(r[kIcmpOff + 1]));
  // Identifier, sequence and data come back unchanged.
  FUZZ_CHECK(std::memcmp(r.data() + kIcmpOff + 4, frame.data() + c.payload_off + 4,
                         c.payload_len - 4) == 0,
             "echo reply data differs");

  // At the requester the reply is a valid IPv4 frame carrying an ICMP message that is not an
  // echo request: classify() gets as far as the ICMP type.
  const Identity requester{c.src_mac, c.src_ip, 0};
  const Classified back = classify(r, requester, true);
  FUZZ_CHECK(back.kind == Kind::kDrop && back.reason == DropReason::kIcmpNotEcho,
             "echo reply classified as %d (%s)", int(back.kind), drop_reason_name(back.reason));
  FUZZ_CHECK(back.src_ip == id.ip && back.src_mac == id.mac, "echo reply source");
}

void check_udp(std::span<const uint8_t> frame, const Classified& c, const Identity& id,
               bool udp_checksum) {
  FUZZ_CHECK(c.dst_ip == id.ip && c.dst_port == id.udp_port, "UDP to another endpoint accepted");
  FUZZ_CHECK(c.payload_off >= kUdpHeadersLen, "UDP payload at %u", unsigned(c.payload_off));
  const std::span<const uint8_t> payload = frame.subspan(c.payload_off, c.payload_len);

  // Echo the payload back to the sender and classify the reply there.
  std::vector<uint8_t> out(kUdpHeadersLen + payload.size());
  std::copy(payload.begin(), payload.end(), out.begin() + kUdpHeadersLen);
  const UdpEndpoint src{id.mac, id.ip, id.udp_port};
  const UdpEndpoint dst{c.src_mac, c.src_ip, c.src_port};
  FUZZ_CHECK(write_udp_headers(std::span<uint8_t>(out).first(out.size() - 1), src, dst,
                               payload.size(), 7, udp_checksum) == 0,
             "UDP headers written into a short buffer");
  const size_t n = write_udp_headers(out, src, dst, payload.size(), 7, udp_checksum);
  FUZZ_CHECK(n == out.size(), "UDP reply of %zu bytes, want %zu", n, out.size());
  // The stack's per-peer template writes the same bytes (the id taken from the payload, so the
  // IPv4 sum sees every value), and refuses the short buffer as well.
  UdpHeaderTemplate tmpl;
  tmpl.reset(src, dst);
  FUZZ_CHECK(tmpl.addressed_to(dst), "template not addressed to its destination");
  const uint16_t id16 = payload.size() >= 2 ? uint16_t(payload[0] << 8 | payload[1]) : 7;
  std::vector<uint8_t> want(out), got(out);
  FUZZ_CHECK(write_udp_headers(want, src, dst, payload.size(), id16, udp_checksum) == n &&
                 tmpl.write(got, payload.size(), id16, udp_checksum) == n && got == want,
             "template headers differ from write_udp_headers");
  FUZZ_CHECK(tmpl.write(std::span<uint8_t>(got).first(got.size() - 1), payload.size(), id16,
                        udp_checksum) == 0,
             "template headers written into a short buffer");
  const Identity requester{c.src_mac, c.src_ip, c.src_port};
  const Classified back = classify(out, requester, true);
  FUZZ_CHECK(back.kind == Kind::kUdp, "UDP reply classified as %d (%s)", int(back.kind),
             drop_reason_name(back.reason));
  FUZZ_CHECK(back.src_port == id.udp_port && back.src_ip == id.ip, "UDP reply source");
  FUZZ_CHECK(back.payload_off == kUdpHeadersLen && back.payload_len == payload.size() &&
                 std::equal(payload.begin(), payload.end(), out.begin() + kUdpHeadersLen),
             "UDP reply payload");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  // An exactly sized copy, so any read past the frame is a heap overflow ASan reports.
  const std::vector<uint8_t> bytes(data + 1, data + size);
  const std::span<const uint8_t> frame(bytes);
  const Identity id = me();

  check_checksum_pieces(frame);
  check_text_parsers(frame);

  const Classified c = classify(frame, id, (flags & 1) != 0);
  check_source_filter(c, id);
  if (c.kind == Kind::kDrop) {
    FUZZ_CHECK(size_t(c.reason) < kDropReasonCount, "drop reason %d", int(c.reason));
    FUZZ_CHECK(std::string_view(drop_reason_name(c.reason)) != "unknown", "unnamed drop reason");
    return 0;
  }
  FUZZ_CHECK(size_t{c.payload_off} + c.payload_len <= frame.size(),
             "payload [%u, +%u) past a %zu-byte frame", unsigned(c.payload_off),
             unsigned(c.payload_len), frame.size());
  switch (c.kind) {
    case Kind::kArpRequest:
      check_arp_request(frame, c, id);
      break;
    case Kind::kArpReply: {
      std::vector<uint8_t> out(kMinFrameLen);
      FUZZ_CHECK(build_arp_reply(frame, id, out) == 0, "an ARP reply was answered");
      break;
    }
    case Kind::kIcmpEcho:
      check_icmp_echo(frame, c, id);
      break;
    case Kind::kUdp:
      check_udp(frame, c, id, (flags & 2) != 0);
      break;
    case Kind::kDrop:
      break;
  }
  return 0;
}
