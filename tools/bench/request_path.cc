// request_path: one server core's whole per-request path (RX burst, classify, queue set,
// scheduler, fiber, memcached session, reply TX) fed memcached UDP GETs through a port backed by
// two rte_rings, with no NIC and no second thread: a deterministic driver for callgrind's
// instructions per request (docs/benchmarks.md, "The per-request path").
#include <rte_eth_ring.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <CLI/CLI.hpp>
#include <array>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/server_config.h"
#include "dataplane/check.h"
#include "dataplane/tsc.h"
#include "kvapp/server_app.h"
#include "kvapp/store.h"
#include "runtime/queue_set.h"
#include "runtime/server.h"
#include "sched/scheduler.h"

namespace fm {
namespace {

struct Args {
  uint64_t requests = 100000;  // measured GETs
  uint32_t burst = 8;          // requests per loop pass (the 900K/s run averaged ~8)
  uint32_t keys = 1000;        // distinct keys, stored before the GETs
  uint32_t value_bytes = 32;
};

const net::UdpEndpoint kClient{net::MacAddr{{0x02, 0, 0, 0, 0, 0x02}}, net::Ipv4Addr{0x0a4d0002},
                               40000};

/// The client side of the ring port: frames go into `rx`, replies come out of `tx`.
class Wire {
 public:
  Wire(rte_ring* rx, rte_ring* tx, rte_mempool* pool, net::UdpEndpoint server)
      : rx_(rx), tx_(tx), pool_(pool), server_(server) {}

  /// Queues one request datagram (frame header + `text`) for the server's next RX burst.
  void send(uint16_t request_id, std::string_view text) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    FM_CHECK(m != nullptr);
    auto* out = rte_pktmbuf_mtod(m, uint8_t*);
    uint8_t* payload = out + net::kUdpHeadersLen;
    const std::array<uint8_t, 8> frame{uint8_t(request_id >> 8), uint8_t(request_id), 0, 0, 0, 1,
                                       0, 0};
    std::memcpy(payload, frame.data(), frame.size());
    std::memcpy(payload + frame.size(), text.data(), text.size());
    const size_t len = net::write_udp_headers(
        std::span<uint8_t>(out, rte_pktmbuf_tailroom(m)), kClient, server_,
        frame.size() + text.size(), ip_id_++, true);
    FM_CHECK(len != 0);
    m->data_len = m->pkt_len = uint32_t(len);
    FM_CHECK(rte_ring_enqueue(rx_, m) == 0);
  }

  /// Takes every reply the server sent; counts those whose text starts with `prefix`.
  uint64_t drain(std::string_view prefix, uint64_t* replies) {
    uint64_t matched = 0;
    void* m = nullptr;
    while (rte_ring_dequeue(tx_, &m) == 0) {
      auto* mbuf = static_cast<rte_mbuf*>(m);
      const auto* frame = rte_pktmbuf_mtod(mbuf, const uint8_t*);
      for (size_t i = 0; i < rte_pktmbuf_data_len(mbuf); ++i) {
        digest_ = (digest_ ^ frame[i]) * 0x100000001b3;  // FNV-1a
      }
      const auto* p = rte_pktmbuf_mtod(mbuf, const char*) + net::kUdpHeadersLen + 8;
      const size_t n = rte_pktmbuf_data_len(mbuf) - net::kUdpHeadersLen - 8;
      if (std::string_view(p, n).starts_with(prefix)) ++matched;
      ++*replies;
      rte_pktmbuf_free(mbuf);
    }
    return matched;
  }

  /// FNV-1a over every reply frame's bytes, headers included: a change to the path that should
  /// not change a byte of the replies must leave it the same.
  uint64_t digest() const { return digest_; }

 private:
  rte_ring* rx_;
  rte_ring* tx_;
  rte_mempool* pool_;
  net::UdpEndpoint server_;
  uint16_t ip_id_ = 0;
  uint64_t digest_ = 0xcbf29ce484222325;
};

std::string key_name(uint32_t i) { return "key:" + std::to_string(100000 + i); }

/// The loop pass callgrind measures (--toggle-collect='*measured_poll*'): warm-up passes call
/// poll() directly.
[[gnu::noinline]] uint32_t measured_poll(rt::ServerQueueSet& set) { return set.poll(); }

int run(const Args& a) {
  config::ServerConfig cfg;
  rt::ServerOptions o;
  o.program = "request_path";
  o.eal = cfg.eal;
  o.eal.hugepages = HugepageMode::kOff;  // never takes hugepages from a server running beside it
  o.eal.lcores = {0};
  o.port.vdev = "net_null0";  // the runtime's own port, unused: the bench polls its ring port
  o.net = cfg.net;
  o.sched = cfg.sched;
  o.paging.mode = paging::PagingMode::kLocal;  // local memory: no request can fault
  o.control = false;
  auto server = rt::Server::open(o);
  if (!server) {
    std::fprintf(stderr, "request_path: %s\n", server.status().message().c_str());
    return 1;
  }

  const unsigned ring_size = 4096;
  rte_ring* rx = rte_ring_create("bench_rx", ring_size, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  rte_ring* tx = rte_ring_create("bench_tx", ring_size, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  FM_CHECK(rx != nullptr && tx != nullptr);
  FM_CHECK(rte_eth_from_rings("bench", &rx, 1, &tx, 1, SOCKET_ID_ANY) >= 0);
  net::PortOptions po;
  po.vdev = "net_ring_bench";  // the name rte_eth_from_rings gives it
  auto port = net::Port::open(po, 1);
  if (!port) {
    std::fprintf(stderr, "request_path: %s\n", port.status().message().c_str());
    return 1;
  }

  // A fixed hash key: the same buckets every run, so instruction counts repeat.
  const kv::HashKey key{};
  auto store = kv::Store::create(cfg.store, nullptr, &key);
  if (!store) {
    std::fprintf(stderr, "request_path: %s\n", store.status().message().c_str());
    return 1;
  }
  kv::KvServerApp app(**store, cfg.protocol, **server, cfg.sched.history_window);

  // One core's queue set, wired as rt::Server::run() wires it in local mode.
  rt::FiberApp fiber_app(app);
  auto sched = sched::Scheduler::create(o.sched, 1, fiber_app);
  FM_CHECK(sched.is_ok());
  (*sched)->set_never_parks(true);  // local mode
  sched::CoreScheduler& cs = (*sched)->core(CoreId{0});
  for (size_t f = 0; f < cs.fiber_slots(); ++f) {
    cs.fiber_slot(f).app_state = app.fiber_state(CoreId{0}, f);
  }
  rt::ServerQueueSet set(nullptr, &cs, app);
  const net::Identity me{(*port)->mac(), o.net.ip, o.net.udp_port};
  net::Stack stack(**port, 0, me, o.net, &set);
  set.set_stack(&stack);

  Wire wire(rx, tx, (*port)->pool(), net::UdpEndpoint{me.mac, me.ip, me.udp_port});
  uint64_t replies = 0;
  const std::string value(a.value_bytes, 'v');
  for (uint32_t i = 0; i < a.keys; ++i) {
    wire.send(uint16_t(i), "set " + key_name(i) + " 0 0 " + std::to_string(value.size()) + "\r\n" +
                               value + "\r\n");
    if ((i + 1) % a.burst == 0 || i + 1 == a.keys) {
      while (set.poll() != 0) {}
    }
  }
  const uint64_t stored = wire.drain("STORED", &replies);
  if (stored != a.keys) {
    std::fprintf(stderr, "request_path: %lu of %u sets stored\n", stored, a.keys);
    return 1;
  }

  std::vector<std::string> gets;
  for (uint32_t i = 0; i < a.keys; ++i) gets.push_back("get " + key_name(i) + "\r\n");
  uint64_t hits = 0;
  uint64_t cycles = 0;
  uint32_t next = 0;
  replies = 0;
  for (uint64_t sent = 0; sent < a.requests;) {
    for (uint32_t b = 0; b < a.burst && sent < a.requests; ++b, ++sent) {
      wire.send(uint16_t(sent), gets[next]);
      next = (next + 7) % a.keys;  // strides over every key (a.keys is not a multiple of 7)
    }
    const uint64_t t0 = rdtsc();
    while (measured_poll(set) != 0) {}
    cycles += rdtsc() - t0;
    hits += wire.drain("VALUE ", &replies);
  }
  std::printf("requests %lu  burst %u  replies %lu  hits %lu  cycles/request %.0f (%.0f ns)  "
              "reply digest %016lx\n",
              a.requests, a.burst, replies, hits, double(cycles) / double(a.requests),
              cycles_to_ns(cycles) / double(a.requests), wire.digest());
  return hits == a.requests && replies == a.requests ? 0 : 1;
}

}  // namespace
}  // namespace fm

int main(int argc, char** argv) {
  CLI::App cli{"request_path: memcached UDP GETs through one core's per-request path, no NIC"};
  fm::Args a;
  cli.add_option("--requests", a.requests, "measured GETs")->check(CLI::PositiveNumber);
  cli.add_option("--burst", a.burst, "requests per loop pass (<= 32)")->check(CLI::Range(1, 32));
  cli.add_option("--keys", a.keys, "distinct keys (not a multiple of 7)")->check(CLI::PositiveNumber);
  cli.add_option("--value-bytes", a.value_bytes, "value size")->check(CLI::Range(1, 1024));
  CLI11_PARSE(cli, argc, argv);
  if (a.keys % 7 == 0) ++a.keys;
  return fm::run(a);
}
