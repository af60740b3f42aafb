// Per-queue network stack: RX burst, classify, answer ARP/ICMP, hand UDP to the app, TX batch.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include <rte_mbuf.h>

#include "dataplane/counter.h"
#include "net/filter.h"
#include "net/packet.h"
#include "net/port.h"

namespace fm::net {

/// A static ARP entry from config.
struct Neighbor {
  Ipv4Addr ip;
  MacAddr mac;
};

/// Addresses; config/ fills them from the [net] table.
struct NetOptions {
  // The server's IPv4 address on the port (requests to any other address are dropped).
  Ipv4Addr ip{0x0a4d0001};  // 10.77.0.1
  // Override the port's MAC (empty: the PMD's). Useful with memif, whose MAC is random.
  std::string mac;
  // The UDP port memcached clients send to (memcached's default).
  uint16_t udp_port = 11211;
  // Compute UDP checksums on TX in software when the PMD cannot (0 is legal in IPv4 but some
  // kernels' stacks and tools expect one).
  bool udp_checksum = true;
  // Static neighbours: known peers answered without ARP.
  std::vector<Neighbor> neighbors;
  // Length of the server's subnet (ip/prefix_len): the default allow-list, and its broadcast
  // address is never a sender.
  uint8_t prefix_len = 24;
  // Client prefixes answered (UDP, ICMP echo); empty: the server's own subnet, so a server is
  // never open to every address by accident (["0.0.0.0/0"] opens it).
  std::vector<Ipv4Prefix> allow;
  // UDP source ports never answered: other memcached servers, whose answer to our answer would
  // start a loop. udp_port is always added. Empty here so that a client Stack (tests) hears
  // replies from 11211; kvserver's config defaults to [kMemcachedPort] (config/server_config.h).
  std::vector<uint16_t> deny_source_ports;
};

/// memcached's well-known port: kvserver's default for net.deny_source_ports.
inline constexpr uint16_t kMemcachedPort = 11211;

/// Per-queue counters (single writer: the core that owns the queue).
struct NetCounters {
  Counter rx_packets, rx_bytes, tx_packets, tx_bytes;
  Counter udp_in, arp_replies, icmp_replies, arp_learned;
  std::array<Counter, kDropReasonCount> drops;
  uint64_t total_drops() const {
    uint64_t t = 0;
    for (const auto& d : drops) t += d.read();
    return t;
  }
};

/// Who sent a UDP datagram, so a reply can go back (copyable; may outlive the RX burst).
using UdpPeer = UdpEndpoint;

class Stack;

/// The application's hook for UDP datagrams.
class UdpHandler {
 public:
  virtual ~UdpHandler() = default;
  /// One datagram to our port. `payload` is valid only during the call. Reply through
  /// stack.send_udp(). Runs on the core that owns `stack`; must not block.
  virtual void on_udp(Stack& stack, const UdpPeer& from, std::span<const uint8_t> payload) = 0;
  /// A datagram that on_udp() will get later in this RX burst, once every frame of the burst has
  /// been classified: a chance to prefetch what serving it will read, so that the burst's cache
  /// misses overlap (MICA's batched lookups) instead of stalling one request at a time. Must
  /// only read and prefetch: no reply, no state a later on_udp() depends on. Owner core.
  virtual void on_udp_ahead(std::span<const uint8_t> /*payload*/) {}
  /// After on_udp_ahead() of every datagram of the burst, before the first on_udp(): the later
  /// stages of a pipelined prefetch (what the first stage's lines point to). Owner core.
  virtual void on_burst_classified() {}
  /// After the burst's last on_udp(): its payloads are about to be freed (whatever
  /// on_udp_ahead() kept about them must go). Owner core.
  virtual void on_burst_served() {}
};

/// The stack of one RX/TX queue pair, owned by one core at a time. Not thread-safe.
class Stack {
 public:
  static constexpr uint16_t kBurst = 32;

  Stack(Port& port, uint16_t queue, const Identity& me, const NetOptions& opts, UdpHandler* handler);
  ~Stack();
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  /// One RX burst: classify, drop senders the source rules refuse (SourceFilter), answer,
  /// dispatch, then flush TX. Returns frames received.
  /// Owner core only.
  uint32_t poll();

  /// Queues a UDP datagram to `to` (copied into a fresh mbuf). Sent at the next flush() or when
  /// the batch fills. Returns false (and counts kNoBuffer) when no mbuf is free or it is too
  /// big for one frame. Owner core only; no allocation.
  bool send_udp(const UdpPeer& to, std::span<const uint8_t> payload);

  /// Queues a raw frame (copied). For ARP requests from clients. Owner core only.
  bool send_raw(std::span<const uint8_t> frame);

  /// Sends the TX batch; what the queue does not take is freed and counted. Owner core only.
  void flush();

  /// Poller hook for CoreLoop: `arg` is a Stack*.
  static uint32_t poll_hook(void* arg) { return static_cast<Stack*>(arg)->poll(); }

  /// Looks up a neighbour learned from ARP or configured. Owner core only.
  const MacAddr* neighbor(Ipv4Addr ip) const;

  const NetCounters& counters() const { return counters_; }
  const Identity& identity() const { return me_; }
  const SourceFilter& source_filter() const { return filter_; }
  uint16_t queue() const { return queue_; }

 private:
  void enqueue_tx(rte_mbuf* m);
  /// A UDP datagram of the current burst, classified and accepted, not yet handed to the app.
  struct Accepted {
    UdpPeer from;
    std::span<const uint8_t> payload;
  };
  enum class Handled : uint8_t {
    kFree,    // done with: the caller frees the frame
    kReused,  // the frame went out again (an ICMP echo reply built in place)
    kKept,    // a datagram for the app, recorded in *udp: freed after the burst's second pass
  };
  /// Handles one received frame, except that a UDP datagram for the app is only recorded in
  /// `*udp`: poll() hands those over after the whole burst is classified.
  Handled handle(rte_mbuf* m, Accepted* udp);
  void learn(Ipv4Addr ip, const MacAddr& mac);

  Port& port_;
  uint16_t queue_;
  Identity me_;
  SourceFilter filter_;
  bool udp_checksum_;
  UdpHandler* handler_;
  LastSourceCache filter_cache_;
  // Replies go mostly to the client that just asked: headers rebuilt only for another one.
  UdpHeaderTemplate tx_header_;
  uint16_t ip_id_ = 0;
  uint16_t tx_n_ = 0;
  std::array<rte_mbuf*, kBurst> tx_{};
  std::vector<Neighbor> neighbors_;  // few entries; linear scan
  NetCounters counters_;
};

}  // namespace fm::net
