// The per-queue stack: run-to-completion receive path and batched transmit.
#include "net/stack.h"

#include <cstring>
#include <new>
#include <string>
#include <type_traits>

#include "dataplane/log.h"

namespace fm::net {
namespace {
constexpr const char* kTag = "net";
constexpr size_t kMaxFrame = kMaxFrameLen;
static_assert(kMaxFrameLen == RTE_ETHER_MAX_LEN - RTE_ETHER_CRC_LEN);
}  // namespace

Stack::Stack(Port& port, uint16_t queue, const Identity& me, const NetOptions& opts,
             UdpHandler* handler)
    : port_(port),
      queue_(queue),
      me_(me),
      filter_(me, opts.prefix_len, opts.allow, opts.deny_source_ports),
      udp_checksum_(opts.udp_checksum),
      handler_(handler),
      neighbors_(opts.neighbors) {
  neighbors_.reserve(neighbors_.size() + 64);
  if (queue == 0) {  // the same rules on every queue: say them once
    std::string allow, deny;
    for (const Ipv4Prefix& p : filter_.allow()) {
      allow += (allow.empty() ? "" : ", ") + p.to_string();
    }
    for (const uint16_t p : filter_.deny_ports()) {
      deny += (deny.empty() ? "" : ", ") + std::to_string(p);
    }
    FM_LOG_INFO(kTag, "answering UDP and ICMP echo from {} (net.allow); never from UDP source "
                "ports {} (net.deny_source_ports)", allow, deny);
  }
}

Stack::~Stack() {
  for (uint16_t i = 0; i < tx_n_; ++i) rte_pktmbuf_free(tx_[i]);
}

uint32_t Stack::poll() {
  std::array<rte_mbuf*, kBurst> rx;
  const uint16_t n = port_.rx_burst(queue_, rx.data(), kBurst);
  // The frames handled go back to the pool together at the end of the burst: one mempool put
  // instead of one per frame. They are gathered at the front of `rx` (done <= i).
  uint16_t done = 0;
  // Two passes: classify the whole burst (ARP, ICMP and drops are answered there), telling the
  // app of each datagram ahead of time; then hand the datagrams over in arrival order. The
  // app's prefetches for the later requests overlap the earlier ones' work.
  // Left uninitialized (no 32 constructors a poll): handle() constructs the ones it fills.
  union Slot {
    Slot() {}
    Accepted a;
  };
  static_assert(std::is_trivially_destructible_v<Accepted>);
  std::array<Slot, kBurst> udp;
  uint16_t nu = 0;
  for (uint16_t i = 0; i < n; ++i) {
    if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(rx[i + 1], void*));
    switch (handle(rx[i], &udp[nu].a)) {
      case Handled::kKept:
        handler_->on_udp_ahead(udp[nu++].a.payload);
        [[fallthrough]];  // freed after the second pass, with the others
      case Handled::kFree:
        rx[done++] = rx[i];
        break;
      case Handled::kReused:
        break;
    }
  }
  if (nu != 0) {
    handler_->on_burst_classified();
    for (uint16_t i = 0; i < nu; ++i) handler_->on_udp(*this, udp[i].a.from, udp[i].a.payload);
    handler_->on_burst_served();
  }
  rte_pktmbuf_free_bulk(rx.data(), done);
  flush();
  return n;
}

Stack::Handled Stack::handle(rte_mbuf* m, Accepted* udp) {
  counters_.rx_packets.add();
  counters_.rx_bytes.add(rte_pktmbuf_pkt_len(m));
  if (m->nb_segs != 1) {  // we configure no scatter: a chained mbuf is a frame we cannot hold
    counters_.drops[size_t(DropReason::kTruncated)].add();
    return Handled::kFree;
  }
  auto* data = rte_pktmbuf_mtod(m, uint8_t*);
  std::span<uint8_t> frame(data, rte_pktmbuf_data_len(m));
  const bool hw_l4_ok =
      port_.rx_cksum_offload() && (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD;
  Classified c = classify(frame, me_, !hw_l4_ok);
  // Before anything answers or learns: a reply to a sender that cannot be a client would reflect
  // (or amplify) traffic onto a victim, or start a loop with another server.
  if (const std::optional<DropReason> refused = filter_cache_.check(filter_, c)) {
    c.kind = Classified::Kind::kDrop;
    c.reason = *refused;
    FM_LOG_FIRST_N(LogLevel::kWarn, 5, kTag,
                   "queue {}: not answering {} {}:{} ({}); later refusals are only counted "
                   "(dp_drop_src_*)",
                   queue_, c.src_mac.to_string(), c.src_ip.to_string(), c.src_port,
                   drop_reason_name(c.reason));
  }
  switch (c.kind) {
    case Classified::Kind::kUdp: {
      counters_.udp_in.add();
      new (udp) Accepted{UdpPeer{c.src_mac, c.src_ip, c.src_port},
                         frame.subspan(c.payload_off, c.payload_len)};
      return Handled::kKept;
    }
    case Classified::Kind::kArpRequest: {
      learn(c.src_ip, c.arp_sender_mac);
      rte_mbuf* r = rte_pktmbuf_alloc(port_.pool());
      if (r == nullptr) {
        counters_.drops[size_t(DropReason::kNoBuffer)].add();
        break;
      }
      auto* out = rte_pktmbuf_mtod(r, uint8_t*);
      const size_t len = build_arp_reply(frame, me_, std::span<uint8_t>(out, rte_pktmbuf_tailroom(r)));
      r->data_len = r->pkt_len = uint32_t(len);
      counters_.arp_replies.add();
      enqueue_tx(r);
      break;
    }
    case Classified::Kind::kArpReply:
      learn(c.src_ip, c.arp_sender_mac);
      break;
    case Classified::Kind::kIcmpEcho: {
      const size_t len = make_icmp_echo_reply_in_place(frame, c, me_);
      m->data_len = m->pkt_len = uint32_t(len);
      counters_.icmp_replies.add();
      enqueue_tx(m);
      return Handled::kReused;
    }
    case Classified::Kind::kDrop:
      counters_.drops[size_t(c.reason)].add();
      FM_LOG_FIRST_N(LogLevel::kDebug, 10, kTag, "queue {}: dropped a frame: {}", queue_,
                     drop_reason_name(c.reason));
      break;
  }
  return Handled::kFree;
}

void Stack::learn(Ipv4Addr ip, const MacAddr& mac) {
  for (auto& n : neighbors_) {
    if (n.ip == ip) {
      n.mac = mac;
      return;
    }
  }
  if (neighbors_.size() < neighbors_.capacity()) {  // never reallocate on the data path
    neighbors_.push_back({ip, mac});
    counters_.arp_learned.add();
  }
}

const MacAddr* Stack::neighbor(Ipv4Addr ip) const {
  for (const auto& n : neighbors_) {
    if (n.ip == ip) return &n.mac;
  }
  return nullptr;
}

bool Stack::send_udp(const UdpPeer& to, std::span<const uint8_t> payload) {
  if (payload.size() + kUdpHeadersLen > kMaxFrame) {
    counters_.drops[size_t(DropReason::kNoBuffer)].add();
    return false;
  }
  rte_mbuf* m = rte_pktmbuf_alloc(port_.pool());
  if (m == nullptr) {
    counters_.drops[size_t(DropReason::kNoBuffer)].add();
    return false;
  }
  auto* out = rte_pktmbuf_mtod(m, uint8_t*);
  std::memcpy(out + kUdpHeadersLen, payload.data(), payload.size());
  if (!tx_header_.addressed_to(to)) tx_header_.reset({me_.mac, me_.ip, me_.udp_port}, to);
  const size_t len = tx_header_.write(std::span<uint8_t>(out, kUdpHeadersLen + payload.size()),
                                      payload.size(), ip_id_++, udp_checksum_);
  m->data_len = m->pkt_len = uint32_t(len);
  enqueue_tx(m);
  return true;
}

bool Stack::send_raw(std::span<const uint8_t> frame) {
  rte_mbuf* m = frame.size() <= kMaxFrame ? rte_pktmbuf_alloc(port_.pool()) : nullptr;
  if (m == nullptr) {
    counters_.drops[size_t(DropReason::kNoBuffer)].add();
    return false;
  }
  std::memcpy(rte_pktmbuf_mtod(m, uint8_t*), frame.data(), frame.size());
  m->data_len = m->pkt_len = uint32_t(frame.size());
  enqueue_tx(m);
  return true;
}

void Stack::enqueue_tx(rte_mbuf* m) {
  tx_[tx_n_++] = m;
  if (tx_n_ == kBurst) flush();
}

void Stack::flush() {
  if (tx_n_ == 0) return;
  uint16_t sent = port_.tx_burst(queue_, tx_.data(), tx_n_);
  uint64_t bytes = 0;
  for (uint16_t i = 0; i < sent; ++i) bytes += rte_pktmbuf_pkt_len(tx_[i]);
  counters_.tx_packets.add(sent);
  counters_.tx_bytes.add(bytes);
  if (sent < tx_n_) {
    counters_.drops[size_t(DropReason::kNoBuffer)].add(tx_n_ - sent);
    for (uint16_t i = sent; i < tx_n_; ++i) rte_pktmbuf_free(tx_[i]);
  }
  tx_n_ = 0;
}

}  // namespace fm::net
