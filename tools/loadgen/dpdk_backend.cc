// The DPDK backend: one port, --queues RX/TX queue pairs spread over the loadgen's lcores, a
// lean UDP fast path.
//
// The only loadgen file (with reflector.cc) that calls rte_* directly. Setup (EAL, port,
// ARP) goes through dataplane/ and net/ like kvserver; the per-request path builds frames from
// a per-flow header template into bulk-allocated mbufs and parses replies with a few compares,
// because at millions of requests per second net::Stack's general path (software checksums,
// one allocation per frame) would make the loadgen, not the server, the bottleneck.
#include <fmt/core.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <thread>

#include "dataplane/byte_order.h"
#include "dataplane/core_loop.h"
#include "dataplane/eal.h"
#include "dataplane/log.h"
#include "dataplane/ring.h"
#include "dataplane/tsc.h"
#include "net/packet.h"
#include "net/port.h"
#include "tools/loadgen/backend.h"
#include "tools/loadgen/tuning.h"

namespace fm::loadgen {
namespace {
constexpr const char* kTag = "loadgen";
// Idle time before the port closes at exit (see ~DpdkBackend): longer than the reflector's 2 ms
// before it backs off.
constexpr int kQuietBeforeCloseMs = 20;


// Offsets in an Ethernet + IPv4 (no options) + UDP frame.
constexpr size_t kEthType = 12, kIp = 14, kIpLen = kIp + 2, kIpFrag = kIp + 6, kIpProto = kIp + 9,
                 kIpSum = kIp + 10, kIpDst = kIp + 16, kUdp = 34, kUdpSrc = kUdp,
                 kUdpDst = kUdp + 2, kUdpLen = kUdp + 4, kUdpSum = kUdp + 6;

/// One core's queue pair as an Engine transport. Owner core only; no allocation after setup.
class DpdkTransport {
 public:
  static constexpr uint16_t kBurst = kDpdkBurst;

  DpdkTransport(net::Port& port, uint16_t queue, const net::Identity& me, uint32_t flows,
                bool udp_checksum)
      : port_(port),
        queue_(queue),
        me_(me),
        flows_(flows),
        udp_checksum_(udp_checksum),
        templates_(flows) {}

  ~DpdkTransport() {
    while (rte_mbuf* m = inbox_.pop()) rte_pktmbuf_free(m);
    if (stash_n_) rte_pktmbuf_free_bulk(stash_, stash_n_);
    if (tx_n_) rte_pktmbuf_free_bulk(tx_, tx_n_);
  }

  /// Builds each flow's header template for `server`. Control path.
  void set_server(const net::UdpEndpoint& server) {
    server_ = server;
    for (uint32_t f = 0; f < flows_; ++f) {
      auto& t = templates_[f];
      const net::UdpEndpoint src{me_.mac, me_.ip, uint16_t(me_.udp_port + f)};
      net::write_udp_headers(std::span<uint8_t>(t.bytes, sizeof t.bytes), src, server, 0, 0, false);
      t.bytes[kIpLen] = t.bytes[kIpLen + 1] = 0;
      t.bytes[kIpSum] = t.bytes[kIpSum + 1] = 0;
      // Sum of the IPv4 header without its length: the length is added per frame.
      t.ip_sum_base = net::checksum_partial(std::span<const uint8_t>(t.bytes + kIp, 20));
    }
  }

  uint64_t now() const { return rte_rdtsc(); }

  std::span<uint8_t> tx_begin(uint32_t) {
    if (stash_n_ == 0) {
      if (rte_pktmbuf_alloc_bulk(port_.pool(), stash_, kBurst) != 0) return {};
      stash_n_ = kBurst;
    }
    cur_ = stash_[--stash_n_];
    return {rte_pktmbuf_mtod(cur_, uint8_t*) + net::kUdpHeadersLen,
            size_t(rte_pktmbuf_tailroom(cur_)) - net::kUdpHeadersLen};
  }

  void tx_commit(uint32_t flow, size_t len) {
    const Template& t = templates_[flow];
    uint8_t* f = rte_pktmbuf_mtod(cur_, uint8_t*);
    std::memcpy(f, t.bytes, net::kUdpHeadersLen);
    const uint16_t ip_len = uint16_t(20 + 8 + len);
    store_be16(f + kIpLen, ip_len);
    store_be16(f + kIpSum, net::checksum_fold(t.ip_sum_base + ip_len));
    store_be16(f + kUdpLen, uint16_t(8 + len));
    if (udp_checksum_) {
      const uint32_t pseudo = (me_.ip.v >> 16) + (me_.ip.v & 0xffff) + (server_.ip.v >> 16) +
                              (server_.ip.v & 0xffff) + 17 + uint32_t(8 + len);
      uint16_t sum = net::checksum_fold(net::checksum_partial({f + kUdp, 8 + len}, pseudo));
      store_be16(f + kUdpSum, sum == 0 ? 0xffff : sum);
    }
    cur_->data_len = uint16_t(net::kUdpHeadersLen + len);
    cur_->pkt_len = cur_->data_len;
    tx_[tx_n_++] = cur_;
    if (tx_n_ == kBurst) send_batch();
  }

  uint64_t tx_flush() {
    if (tx_n_) send_batch();
    const uint64_t d = refused_;
    refused_ = 0;
    return d;
  }

  template <class Sink>
  uint32_t rx_poll(Sink& sink) {
    rte_mbuf* rx[kBurst];
    uint32_t got = 0;
    // Replies another queue received for this queue's flows first (see forward()).
    uint16_t n = 0;
    while (n < kBurst) {
      rte_mbuf* m = inbox_.pop();
      if (m == nullptr) break;
      rx[n++] = m;
    }
    if (n) got += process(rx, n, sink);
    n = port_.rx_burst(queue_, rx, kBurst);
    if (n) got += process(rx, n, sink);
    return got;
  }

  /// Every transport of the port by queue, and the first queue's base source port: a reply that
  /// arrives on the wrong queue (the server answered from another core, e.g. after stealing the
  /// request) is handed to the queue whose flow it answers. Control path, before any traffic.
  void set_peers(const std::vector<DpdkTransport*>* peers, uint16_t base_port) {
    peers_ = peers;
    base_port_ = base_port;
  }
  /// Replies received on this queue for another queue's flows, and those dropped because that
  /// queue's inbox was full. Owner core only.
  uint64_t forwarded() const { return forwarded_; }
  uint64_t forward_drops() const { return forward_drops_; }

  /// ARP for the server on this queue until it answers or `timeout_s` passes. Control path.
  Result<net::MacAddr> resolve(net::Ipv4Addr ip, double timeout_s) {
    arp_target_ = ip;
    const uint64_t end = rte_rdtsc() + uint64_t(timeout_s * double(rte_get_tsc_hz()));
    struct NoSink {
      void on_datagram(uint32_t, std::span<const uint8_t>, uint64_t) {}
    } sink;
    while (rte_rdtsc() < end && !stop_requested()) {
      uint8_t arp[64];
      const size_t n = net::build_arp_request(me_, ip, arp);
      send_raw(std::span<const uint8_t>(arp, n));
      const uint64_t until = rte_rdtsc() + rte_get_tsc_hz() / 10;
      while (rte_rdtsc() < until && !arp_found_) rx_poll(sink);
      if (arp_found_) return arp_mac_;
    }
    return error(Errc::kUnavailable, fmt::format("no ARP reply from {} (--server-ip) within {} s",
                                                 ip.to_string(), timeout_s));
  }

  void set_my_ip() {
    const uint32_t v = me_.ip.v;
    my_ip_be_[0] = uint8_t(v >> 24);
    my_ip_be_[1] = uint8_t(v >> 16);
    my_ip_be_[2] = uint8_t(v >> 8);
    my_ip_be_[3] = uint8_t(v);
  }

 private:
  struct Template {
    uint8_t bytes[net::kUdpHeadersLen] = {};
    uint32_t ip_sum_base = 0;
  };

  void send_batch() {
    const uint16_t sent = port_.tx_burst(queue_, tx_, tx_n_);
    if (sent < tx_n_) {
      refused_ += tx_n_ - sent;
      rte_pktmbuf_free_bulk(tx_ + sent, tx_n_ - sent);
    }
    tx_n_ = 0;
  }

  void send_raw(std::span<const uint8_t> frame) {
    rte_mbuf* m = rte_pktmbuf_alloc(port_.pool());
    if (!m) return;
    std::memcpy(rte_pktmbuf_mtod(m, uint8_t*), frame.data(), frame.size());
    m->data_len = uint16_t(frame.size());
    m->pkt_len = m->data_len;
    tx_[tx_n_++] = m;
    send_batch();
  }

  template <class Sink>
  uint32_t process(rte_mbuf** rx, uint16_t n, Sink& sink) {
    const uint64_t now = rte_rdtsc();
    uint16_t keep = 0;  // mbufs to free here (forwarded ones now belong to another queue)
    for (uint16_t i = 0; i < n; ++i) {
      if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(rx[i + 1], void*));
      rte_mbuf* m = rx[i];
      const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
      const uint32_t len = m->data_len;
      // Fast path: unfragmented IPv4/UDP without options, to one of our flows, from the server.
      if (m->nb_segs == 1 && len >= net::kUdpHeadersLen && d[kEthType] == 0x08 &&
          d[kEthType + 1] == 0x00 && d[kIp] == 0x45 && d[kIpProto] == 17 &&
          (load_be16(d + kIpFrag) & 0x3fff) == 0 && load_be16(d + kUdpSrc) == server_.port &&
          std::memcmp(d + kIpDst, my_ip_be_, 4) == 0) {
        const uint32_t dst = load_be16(d + kUdpDst);
        const uint32_t flow = dst - me_.udp_port;
        const uint32_t udp_len = load_be16(d + kUdpLen);
        const uint32_t ip_len = load_be16(d + kIpLen);
        if (flow < flows_ && udp_len >= 8 && ip_len == udp_len + 20 && kIp + ip_len <= len) {
          sink.on_datagram(flow, std::span<const uint8_t>(d + net::kUdpHeadersLen, udp_len - 8),
                           now);
          rx[keep++] = m;
          continue;
        }
        if (forward(m, dst)) continue;
      }
      slow_path(m);
      rx[keep++] = m;
    }
    if (keep) rte_pktmbuf_free_bulk(rx, keep);
    return n;
  }

  /// Hands a reply for another queue's flow to that queue (its owner lcore processes it).
  bool forward(rte_mbuf* m, uint32_t dst_port) {
    if (peers_ == nullptr || dst_port < base_port_) return false;
    const uint32_t q = (dst_port - base_port_) / flows_;
    if (q >= peers_->size() || q == queue_) return false;
    if (!(*peers_)[q]->inbox_.push(m)) {
      ++forward_drops_;
      return false;  // freed by the caller; the request will time out (counted there)
    }
    ++forwarded_;
    return true;
  }

  /// Anything but a reply: answer ARP requests for us, note the ARP reply we wait for.
  [[gnu::cold, gnu::noinline]] void slow_path(rte_mbuf* m) {
    if (m->nb_segs != 1) return;
    std::span<const uint8_t> frame(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len);
    const net::Classified c = net::classify(frame, me_, false);
    if (c.kind == net::Classified::Kind::kArpRequest) {
      rte_mbuf* r = rte_pktmbuf_alloc(port_.pool());
      if (!r) return;
      const size_t n = net::build_arp_reply(
          frame, me_, {rte_pktmbuf_mtod(r, uint8_t*), rte_pktmbuf_tailroom(r)});
      r->data_len = uint16_t(n);
      r->pkt_len = r->data_len;
      if (tx_n_ == kBurst) send_batch();
      tx_[tx_n_++] = r;
    } else if (c.kind == net::Classified::Kind::kArpReply && c.src_ip == arp_target_) {
      arp_mac_ = c.arp_sender_mac;
      arp_found_ = true;
    }
  }

  net::Port& port_;
  uint16_t queue_;
  net::Identity me_;
  uint32_t flows_;
  bool udp_checksum_;
  std::vector<Template> templates_;
  net::UdpEndpoint server_;
  uint8_t my_ip_be_[4] = {};
  rte_mbuf* stash_[kBurst] = {};
  uint16_t stash_n_ = 0;
  rte_mbuf* cur_ = nullptr;
  rte_mbuf* tx_[kBurst] = {};
  uint16_t tx_n_ = 0;
  uint64_t refused_ = 0;
  net::Ipv4Addr arp_target_;
  net::MacAddr arp_mac_;
  bool arp_found_ = false;
  // Replies for this queue's flows that arrived on another queue: many producers, this consumer.
  Ring<rte_mbuf> inbox_{"lg-inbox-" + std::to_string(queue_), 4096, RingMode::kMpSc};
  const std::vector<DpdkTransport*>* peers_ = nullptr;
  uint16_t base_port_ = 0;
  uint64_t forwarded_ = 0;
  uint64_t forward_drops_ = 0;
};

class DpdkBackend : public Backend {
 public:
  ~DpdkBackend() override {
    uint64_t fwd = 0, lost = 0;
    for (auto& c : queues_) {
      fwd += c->transport->forwarded();
      lost += c->transport->forward_drops();
    }
    if (fwd || lost) {
      FM_LOG_INFO(kTag, "{} replies arrived on another queue than their request's and were handed "
                        "to it ({} dropped: its inbox was full)", fwd, lost);
    }
    lcores_.clear();
    queues_.clear();  // engines and transports hold mbufs of the port's pool
    // A quiet spell before leaving: DPDK 22.11's memif server unmaps a leaving client's rings
    // from its interrupt thread, and a server core inside rx_burst then crashes (seen with
    // tools/loadgen/reflector under ASan at the loadgen's exit, right after its last reply).
    // Servers that back off when idle (the reflector after 2 ms, kvserver's idle back-off) are
    // then asleep between rare polls, not inside one, when the disconnect comes.
    if (port_) std::this_thread::sleep_for(std::chrono::milliseconds(kQuietBeforeCloseMs));
    if (port_) port_->close();
    port_.reset();
    if (eal_up_) eal_cleanup();
  }

  static Result<std::unique_ptr<Backend>> create(const Options& o, uint32_t flows,
                                                 const ValueSizes* values) {
    std::unique_ptr<DpdkBackend> b(new DpdkBackend());
    b->o_ = &o;
    EalOptions eal;
    eal.lcores = o.lcores;
    eal.memory_mb = o.memory_mb;
    eal.hugepages = o.hugepages == "on"    ? HugepageMode::kOn
                    : o.hugepages == "off" ? HugepageMode::kOff
                                           : HugepageMode::kAuto;
    eal.extra_args = o.eal_args;
    if (o.pci.empty())
      eal.vdevs.push_back(o.vdev);
    else
      eal.pci_allow.push_back(o.pci);
    auto ei = eal_init(eal, "loadgen");
    if (!ei) return ei.status();
    b->eal_up_ = true;
    b->hugepages_ = ei->hugepages;
    net::PortOptions popts;
    popts.vdev = o.vdev;
    popts.pci = o.pci;
    popts.mbufs = o.mbufs;
    // The device gets --queues queue pairs (for memif: the rings it asks the server for),
    // however many lcores poll them.
    const uint16_t n = uint16_t(o.queue_count);
    auto port = net::Port::open(popts, n);
    if (!port) {
      return error(port.status().code(),
                   port.status().message() +
                       " (a memif client fails to start when no server listens on the socket named "
                       "in --vdev: is the server running? The loadgen opens --queues queue pairs, "
                       "one per --lcores entry by default)");
    }
    b->port_ = std::move(port.value());
    auto my_ip = net::parse_ipv4(o.ip, "--ip");
    auto srv_ip = net::parse_ipv4(o.server_ip, "--server-ip");
    if (!my_ip) return my_ip.status();
    if (!srv_ip) return srv_ip.status();
    if (!b->wait_link(o.connect_timeout_s)) {
      return error(
          Errc::kUnavailable,
          fmt::format(
              "port '{}' did not come up within {} s (--connect-timeout): is the server running, "
              "on the memif socket named in --vdev? A memif server must also have at least as many "
              "queue pairs as the loadgen has --queues ({}; one per --lcores entry unless set): "
              "kvserver has one per eal.lcores entry",
              b->port_->name(), o.connect_timeout_s, n));
    }
    const EngineConfig ec = engine_config(o, double(tsc_hz()), flows, values, &stop_requested);
    for (uint16_t q = 0; q < n; ++q) {
      auto c = std::make_unique<QueuePair>();
      const net::Identity me{b->port_->mac(), *my_ip, uint16_t(o.src_port + q * flows)};
      c->transport = std::make_unique<DpdkTransport>(*b->port_, q, me, flows, o.udp_checksum);
      c->transport->set_my_ip();
      c->engine = std::make_unique<Engine<DpdkTransport>>(*c->transport, ec);
      b->queues_.push_back(std::move(c));
    }
    for (auto& c : b->queues_) b->transports_.push_back(c->transport.get());
    for (auto& c : b->queues_) c->transport->set_peers(&b->transports_, o.src_port);
    const uint32_t nl = uint32_t(o.lcores.size());
    for (uint32_t i = 0; i < nl; ++i) {
      auto l = std::make_unique<Lcore>();
      l->lcore = o.lcores[i];
      l->queues = queues_of_lcore(i, nl, n);
      for (uint32_t q : l->queues) l->engines.push_back(b->queues_[q]->engine.get());
      b->lcores_.push_back(std::move(l));
    }
    auto mac = b->queues_[0]->transport->resolve(*srv_ip, o.connect_timeout_s);
    if (!mac) return mac.status();
    b->server_mac_ = *mac;
    for (auto& c : b->queues_) c->transport->set_server({*mac, *srv_ip, o.server_port});
    FM_LOG_INFO(kTag, "server {} is at {}", o.server_ip, mac->to_string());
    return std::unique_ptr<Backend>(std::move(b));
  }

  double hz() const override { return double(tsc_hz()); }
  uint32_t cores() const override { return uint32_t(lcores_.size()); }
  uint32_t engines() const override { return uint32_t(queues_.size()); }
  std::string describe() const override {
    return fmt::format("dpdk port '{}' ({}), {} queue pair(s) on {} lcore(s), server {}:{} at {}",
                       port_->name(), hugepages_ ? "hugepages" : "no hugepages", queues_.size(),
                       lcores_.size(), o_->server_ip, o_->server_port, server_mac_.to_string());
  }

  PreloadResult preload(uint64_t keys, uint32_t window, uint32_t retries) override {
    const uint32_t n = engines();
    std::vector<PreloadResult> per_queue(n);
    for (auto& lp : lcores_) {
      Lcore& l = *lp;
      // Closed loop, so an lcore's queue pairs take their turns one after the other; the others
      // keep receiving (replies for the one preloading may land on their queues), and so does
      // every queue until every lcore is done.
      l.job = [this, &l, &per_queue, n, keys, window, retries] {
        for (size_t k = 0; k < l.queues.size(); ++k) {
          const std::function<void()> others = [&l, k] {
            for (size_t j = 0; j < l.engines.size(); ++j)
              if (j != k) l.engines[j]->poll_rx();
          };
          per_queue[l.queues[k]] =
              queues_[l.queues[k]]->engine->preload(l.queues[k], n, keys, window, retries, others);
          running_.fetch_sub(1, std::memory_order_acq_rel);
        }
        while (running_.load(std::memory_order_acquire) > 0)
          for (auto* e : l.engines) e->poll_rx();
      };
    }
    running_.store(n, std::memory_order_release);
    launch_all();
    PreloadResult total;
    for (const PreloadResult& r : per_queue) {
      total.stored += r.stored;
      total.failed += r.failed;
    }
    return total;
  }

  std::vector<CoreResult> run_point(const PointSpec& p, std::span<ProgressSlot> progress) override {
    const uint32_t n = engines();
    const double h = hz();
    const uint64_t start = rte_rdtsc() + uint64_t(kDpdkStartDelayS * h);  // cores start together
    std::vector<CoreResult> out(n);
    for (auto& lp : lcores_) {
      Lcore& l = *lp;
      l.job = [this, &l, &p, &out, n, h, start, progress] {
        std::vector<CoreResult> r = run_lcore_point<DpdkTransport>(l.engines, l.queues, p, n, h,
                                                                   start, progress, &running_);
        for (size_t i = 0; i < r.size(); ++i) out[l.queues[i]] = std::move(r[i]);
      };
    }
    running_.store(n, std::memory_order_release);
    launch_all();
    return out;
  }

 private:
  struct QueuePair {
    std::unique_ptr<DpdkTransport> transport;
    std::unique_ptr<Engine<DpdkTransport>> engine;
  };
  struct Lcore {
    uint32_t lcore = 0;
    std::vector<uint32_t> queues;  // queue pairs this lcore drives
    std::vector<Engine<DpdkTransport>*> engines;
    std::function<void()> job;
  };

  static int trampoline(void* arg) {
    static_cast<Lcore*>(arg)->job();
    return 0;
  }

  /// Runs every lcore's job: the first here on the main lcore, the others on theirs.
  void launch_all() {
    for (size_t i = 1; i < lcores_.size(); ++i) {
      if (rte_eal_remote_launch(trampoline, lcores_[i].get(), lcores_[i]->lcore) != 0) {
        FM_LOG_ERROR(kTag, "cannot launch lcore {}", lcores_[i]->lcore);
      }
    }
    lcores_[0]->job();
    for (size_t i = 1; i < lcores_.size(); ++i) rte_eal_wait_lcore(lcores_[i]->lcore);
  }

  bool wait_link(double timeout_s) {
    const uint64_t end = rte_rdtsc() + uint64_t(timeout_s * double(tsc_hz()));
    while (rte_rdtsc() < end && !stop_requested()) {
      rte_eth_link link{};
      rte_eth_link_get_nowait(port_->id(), &link);
      if (link.link_status == RTE_ETH_LINK_UP) return true;
      rte_delay_ms(10);
    }
    return false;
  }

  const Options* o_ = nullptr;
  bool eal_up_ = false;
  bool hugepages_ = false;
  std::unique_ptr<net::Port> port_;
  net::MacAddr server_mac_;
  std::vector<std::unique_ptr<QueuePair>> queues_;
  std::vector<DpdkTransport*> transports_;  // by queue, for replies that arrive on another queue
  std::atomic<uint32_t> running_{0};        // engines still in the current point or preload
  std::vector<std::unique_ptr<Lcore>> lcores_;
};

}  // namespace

Result<std::unique_ptr<Backend>> make_dpdk_backend(const Options& o, uint32_t flows,
                                                   const ValueSizes* values) {
  return DpdkBackend::create(o, flows, values);
}

}  // namespace fm::loadgen
