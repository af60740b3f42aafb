// Source rules: prefixes, their parser, and the per-frame check the stack runs before answering.
#include "net/filter.h"

#include <fmt/format.h>

#include <algorithm>

namespace fm::net {
namespace {

constexpr Ipv4Prefix kLimitedBroadcast{Ipv4Addr{0xffffffff}, 32};
constexpr Ipv4Prefix kMulticast{Ipv4Addr{0xe0000000}, 4};    // 224.0.0.0/4
constexpr Ipv4Prefix kThisNetwork{Ipv4Addr{0x00000000}, 8};  // 0.0.0.0/8 (RFC 1122 3.2.1.3)
constexpr Ipv4Prefix kLoopback{Ipv4Addr{0x7f000000}, 8};     // 127.0.0.0/8

// A /31 (RFC 3021) or /32 has no broadcast address of its own.
Ipv4Addr broadcast_of(Ipv4Addr ip, uint8_t prefix_len) {
  if (prefix_len >= 31) return kLimitedBroadcast.addr;
  return Ipv4Addr{ip.v | ~Ipv4Prefix::mask_of(prefix_len)};
}

// `text` in quotes with anything that would garble a log line escaped.
std::string printable(std::string_view text) {
  std::string out = "\"";
  for (const char ch : text) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\' || u < 0x20 || u >= 0x7f)
      out += fmt::format("\\x{:02x}", u);
    else
      out += ch;
  }
  return out + "\"";
}

}  // namespace

std::string Ipv4Prefix::to_string() const { return fmt::format("{}/{}", addr.to_string(), len); }

Result<Ipv4Prefix> parse_ipv4_prefix(std::string_view text, std::string_view what) {
  const size_t slash = text.find('/');
  const std::string_view addr_text = text.substr(0, slash);
  auto bad = [&](std::string_view why) -> Status {
    return error(Errc::kInvalidArgument,
                 fmt::format("{}: {} is not an IPv4 prefix ({}; want a.b.c.d/len, len 0..32)", what,
                             printable(text), why));
  };
  for (const char ch : text) {
    if (!((ch >= '0' && ch <= '9') || ch == '.' || ch == '/')) return bad("unexpected character");
  }
  auto addr = parse_ipv4(addr_text, what);
  if (!addr) return bad("bad address");
  uint32_t len = 32;
  if (slash != std::string_view::npos) {
    const std::string_view len_text = text.substr(slash + 1);
    if (len_text.empty() || len_text.size() > 2 || (len_text.size() > 1 && len_text[0] == '0')) {
      return bad("bad length");
    }
    len = 0;
    for (const char ch : len_text) {
      if (ch < '0' || ch > '9') return bad("bad length");
      len = len * 10 + uint32_t(ch - '0');
    }
    if (len > 32) return bad("length over 32");
  }
  const Ipv4Prefix p = prefix_of(*addr, uint8_t(len));
  if (p.addr != *addr) {
    return error(Errc::kInvalidArgument,
                 fmt::format("{}: {} has host bits set past /{}; did you mean \"{}\"?", what,
                             printable(text), len, p.to_string()));
  }
  return p;
}

SourceFilter::SourceFilter(const Identity& me, uint8_t prefix_len,
                           std::span<const Ipv4Prefix> allow, std::span<const uint16_t> deny_ports)
    : me_(me),
      subnet_broadcast_(broadcast_of(me.ip, prefix_len)),
      subnet_zero_(prefix_len >= 31 ? kLimitedBroadcast.addr : prefix_of(me.ip, prefix_len).addr),
      allow_(allow.begin(), allow.end()),
      deny_ports_(deny_ports.begin(), deny_ports.end()) {
  if (allow_.empty()) allow_.push_back(prefix_of(me.ip, prefix_len));
  if (std::find(deny_ports_.begin(), deny_ports_.end(), me.udp_port) == deny_ports_.end()) {
    deny_ports_.push_back(me.udp_port);
  }
}

std::optional<DropReason> SourceFilter::check_mac(const MacAddr& mac) const {
  if (mac.is_broadcast()) return DropReason::kSrcBroadcast;
  if (mac.is_multicast()) return DropReason::kSrcMulticast;
  if (mac == MacAddr{}) return DropReason::kSrcZero;
  if (mac == me_.mac) return DropReason::kSrcIsUs;
  return std::nullopt;
}

std::optional<DropReason> SourceFilter::check_ip(Ipv4Addr ip) const {
  // The subnet's all-zeros host is the obsolete BSD broadcast, still to be read as one on receipt
  // (RFC 1122 3.3.6); a /31 or /32 has neither.
  if (ip == kLimitedBroadcast.addr || ip == subnet_broadcast_ || ip == subnet_zero_) {
    return DropReason::kSrcBroadcast;
  }
  if (kMulticast.contains(ip)) return DropReason::kSrcMulticast;
  if (kThisNetwork.contains(ip)) return DropReason::kSrcZero;
  if (ip == me_.ip) return DropReason::kSrcIsUs;
  if (kLoopback.contains(ip)) return DropReason::kSrcLoopback;
  return std::nullopt;
}

std::optional<DropReason> SourceFilter::check(const Classified& c) const {
  using Kind = Classified::Kind;
  if (c.kind == Kind::kDrop) return std::nullopt;
  if (auto why = check_mac(c.src_mac)) return why;
  const bool arp = c.kind == Kind::kArpRequest || c.kind == Kind::kArpReply;
  if (arp) {
    if (auto why = check_mac(c.arp_sender_mac)) return why;
  }
  if (auto why = check_ip(c.src_ip)) return why;
  if (arp) return std::nullopt;
  if (c.kind == Kind::kUdp) {
    if (c.src_port == 0) return DropReason::kSrcPortZero;
    for (const uint16_t p : deny_ports_) {
      if (c.src_port == p) return DropReason::kSrcPortDenied;
    }
  }
  for (const Ipv4Prefix& p : allow_) {
    if (p.contains(c.src_ip)) return std::nullopt;
  }
  return DropReason::kSrcNotAllowed;
}

}  // namespace fm::net
