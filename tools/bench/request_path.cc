// request_path: one server core's whole per-request path (RX burst, classify, queue set,
// scheduler, fiber, memcached session, reply TX) fed memcached UDP GETs through a port backed by
// two rte_rings, with no NIC and no second thread: a deterministic driver for callgrind's
// instructions per request (docs/benchmarks.md, "The per-request path"). --far serves the GETs
// from a far region on an in-process emulated memory node, wired as kvserver wires it by default
// (asynchronous faults), so most of them fault.
#include <rte_eth_ring.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "config/server_config.h"
#include "dataplane/check.h"
#include "dataplane/tsc.h"
#include "kvapp/far_arena.h"
#include "kvapp/server_app.h"
#include "kvapp/slab.h"
#include "kvapp/store.h"
#include "paging/emulated_transport.h"
#include "paging/replicated_transport.h"
#include "runtime/queue_set.h"
#include "runtime/server.h"
#include "sched/fault_wait.h"
#include "sched/scheduler.h"

namespace fm {
namespace {

struct Args {
  uint64_t requests = 100000;  // measured GETs
  uint32_t burst = 8;          // requests per loop pass (the 900K/s run averaged ~8)
  uint32_t keys = 0;           // distinct keys, stored before the GETs (0: the mode's default)
  uint32_t value_bytes = 0;    // 0: the mode's default
  // Far mode: values in a far region paged from an in-process emulated memory node.
  bool far = false;
  uint32_t far_mb = 16;         // the region (kv.memory_mb): small, so set-up is short under
                                // callgrind, yet its frames hold a pin of a 1 MiB item
  double local_fraction = 0.2;  // frames as a share of the region's pages (paging.local_fraction)
  uint32_t latency_ns = 0;      // 0: every completion is due at once, nothing waits on the clock
  double link_gbps = 1e6;       // no serialization delay either
  bool move_bytes = true;       // false: the emulated READ/WRITE copies no bytes
};

// Local mode: the keys and values the published instruction counts were measured with.
constexpr uint32_t kLocalKeys = 1000, kLocalValueBytes = 32;
constexpr uint32_t kLocalStride = 7;
// Far mode: values span this many times the frames, capped at this share of the region (the
// store evicts once its slabs are all taken; 20% frames would need the whole region for 5x).
constexpr uint32_t kFarValueBytes = 128;
constexpr double kFarPagesPerFrame = 5.0, kFarFill = 0.9;
// Far mode gives up when no reply came for this long (a fetch that never completes).
constexpr uint64_t kStallSeconds = 10;

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

  /// Takes every reply the server sent; counts those whose text starts with `prefix`, and in
  /// `*misses` (if given) those that are a bare "END\r\n".
  uint64_t drain(std::string_view prefix, uint64_t* replies, uint64_t* misses = nullptr) {
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
      if (misses != nullptr && std::string_view(p, n) == "END\r\n") ++*misses;
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

/// The slab class that holds one benchmark item (key + `value_bytes`). Control path.
kv::SlabClass item_class(const kv::StoreOptions& so, uint32_t value_bytes) {
  auto g = kv::SlabGeometry::build(so.item_size_max, so.slab_growth_factor);
  FM_CHECK(g.is_ok());
  const int c = g->class_for(uint32_t(key_name(0).size()) + value_bytes);
  FM_CHECK(c >= 0);
  return g->cls(size_t(c));
}

/// Pages that `keys` items of `value_bytes` fill (chunks never straddle a page). Control path.
uint64_t value_pages(const kv::StoreOptions& so, uint32_t keys, uint32_t value_bytes) {
  const kv::SlabClass c = item_class(so, value_bytes);
  return c.chunks_per_page != 0 ? (uint64_t(keys) + c.chunks_per_page - 1) / c.chunks_per_page
                                : uint64_t(keys) * c.pages_per_chunk;
}

/// Far mode's default keys: values on kFarPagesPerFrame times the frames, at most kFarFill of
/// the region. Control path.
uint32_t far_default_keys(const Args& a) {
  const kv::SlabClass c = item_class(config::ServerConfig{}.store, a.value_bytes);
  const uint64_t pages = (uint64_t(a.far_mb) << 20) / paging::kPageSize;
  const double frames = std::floor(double(pages) * a.local_fraction + 0.5);
  const uint64_t want = uint64_t(std::min(frames * kFarPagesPerFrame, double(pages) * kFarFill));
  const uint64_t keys = c.chunks_per_page != 0 ? want * c.chunks_per_page
                                               : want / std::max<uint32_t>(1, c.pages_per_chunk);
  return uint32_t(std::clamp<uint64_t>(keys, 1, UINT32_MAX));
}

/// Far memory as kvserver wires it by default (runtime/server.cc, open_far_memory): one memory
/// node behind the replicated layer (so that it could be redialled) with one copy of each page,
/// frames as a share of the region's pages, the largest item as the longest pin, and
/// paging.reserve_frames free frames refilled between polls. The node is an in-process pool
/// instead of a memnode process, and no recovery thread runs (it never dies). Control path.
Status open_far_memory(const Args& a, const config::ServerConfig& cfg, uint64_t bytes,
                       std::unique_ptr<paging::Transport>& transport,
                       std::unique_ptr<paging::Region>& region) {
  paging::EmulatedOptions eo = cfg.paging.emulated;
  eo.latency_ns = a.latency_ns;
  eo.link_gbps = a.link_gbps;
  eo.move_bytes = a.move_bytes;
  const uint64_t pages = bytes / paging::kPageSize;
  const paging::Placement place{1, 1};
  auto node =
      paging::EmulatedTransport::in_process(eo, place.lease_bytes(pages), paging::tsc_clock());
  if (!node) return node.status();
  std::vector<std::unique_ptr<paging::Transport>> nodes;
  nodes.push_back(std::move(node.value()));
  auto replicated = paging::ReplicatedTransport::create(std::move(nodes), {"in-process"}, 1, bytes);
  if (!replicated) return replicated.status();
  transport = std::move(replicated.value());
  const uint64_t frames = uint64_t(double(pages) * a.local_fraction + 0.5);
  auto r = paging::Region::create(bytes, frames, *transport, 1, paging::tsc_clock(),
                                  cfg.store.item_size_max);
  if (!r) return r.status();
  region = std::move(r.value());
  region->set_reserve(cfg.paging.reserve_frames);
  return Status::ok();
}

/// Far mode: polls until `expect` replies wait in `tx` and a pass finds nothing left to do (a
/// pass returns 0 while fibers wait for their pages). False after kStallSeconds without a new
/// reply.
template <typename Poll>
bool settle(Poll&& poll, rte_ring* tx, uint32_t expect) {
  const uint64_t stall = kStallSeconds * tsc_hz();
  uint64_t last = rdtsc();
  uint32_t seen = 0;
  for (;;) {
    const uint32_t work = poll();
    const uint32_t ready = rte_ring_count(tx);
    if (work == 0 && ready >= expect) return true;
    if (ready != seen) {
      seen = ready;
      last = rdtsc();
    } else if (rdtsc() - last > stall) {
      std::fprintf(stderr,
                   "request_path: no progress for %lu s: %u of %u replies (is a fetch lost?)\n",
                   kStallSeconds, ready, expect);
      return false;
    }
  }
}

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
  // Local memory: no request can fault. Far mode builds its region itself (open_far_memory), on
  // an in-process node rather than the memnode the runtime would dial.
  o.paging.mode = paging::PagingMode::kLocal;
  o.control = false;
  if (a.far) {
    // kvserver's defaults, spelled out: asynchronous faults, no predictor, no prefetch.
    o.sched.faults = sched::FaultMode::kAsync;
    o.sched.predictor = sched::Predictor::kNone;
    o.sched.prefetch = false;
  }
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

  // Far mode: the store's items live in the far region (kvapp/main.cc); its index stays local.
  kv::StoreOptions so = cfg.store;
  std::unique_ptr<paging::Transport> transport;
  std::unique_ptr<paging::Region> region;
  std::unique_ptr<kv::Arena> arena;
  if (a.far) {
    so.memory_mb = a.far_mb;
    Status st = open_far_memory(a, cfg, uint64_t(so.memory_mb) << 20, transport, region);
    if (!st) {
      std::fprintf(stderr, "request_path: %s\n", st.message().c_str());
      return 1;
    }
    arena = std::make_unique<kv::FarArena>(*region);
  }
  // A fixed hash key: the same buckets every run, so instruction counts repeat.
  const kv::HashKey key{};
  auto store = kv::Store::create(so, std::move(arena), &key);
  if (!store) {
    std::fprintf(stderr, "request_path: %s\n", store.status().message().c_str());
    return 1;
  }
  kv::KvServerApp app(**store, cfg.protocol, **server, cfg.sched.history_window);

  // One core's queue set, wired as rt::Server::run() wires it in local or far mode.
  rt::FiberApp fiber_app(app);
  auto sched = sched::Scheduler::create(o.sched, 1, fiber_app);
  FM_CHECK(sched.is_ok());
  (*sched)->set_never_parks(!a.far);  // local mode: no request reaches a fetch boundary
  sched::CoreScheduler& cs = (*sched)->core(CoreId{0});
  for (size_t f = 0; f < cs.fiber_slots(); ++f) {
    cs.fiber_slot(f).app_state = app.fiber_state(CoreId{0}, f);
  }
  paging::PagingCore* pc = a.far ? &region->core(CoreId{0}) : nullptr;
  std::unique_ptr<sched::FaultWait> fault_wait;
  if (pc != nullptr) fault_wait = rt::attach_paging(*pc, cs);  // as rt::Server wires its cores
  // Its poll() points paging::current_core() at `pc` on every pass, as on a server core.
  rt::ServerQueueSet set(pc, &cs, app);
  const net::Identity me{(*port)->mac(), o.net.ip, o.net.udp_port};
  net::Stack stack(**port, 0, me, o.net, &set);
  set.set_stack(&stack);

  Wire wire(rx, tx, (*port)->pool(), net::UdpEndpoint{me.mac, me.ip, me.udp_port});
  uint64_t replies = 0;
  const std::string value(a.value_bytes, 'v');
  uint64_t stored = 0;
  for (uint32_t i = 0, first = 0; i < a.keys; ++i) {
    wire.send(uint16_t(i), "set " + key_name(i) + " 0 0 " + std::to_string(value.size()) + "\r\n" +
                               value + "\r\n");
    if ((i + 1) % a.burst == 0 || i + 1 == a.keys) {
      if (!a.far) {
        while (set.poll() != 0) {}
        stored += wire.drain("STORED", &replies);  // the TX ring holds fewer than 200K keys
        continue;
      }
      // Each burst's replies drained at once: the TX ring holds far fewer than the keys.
      if (!settle([&] { return set.poll(); }, tx, i + 1 - first)) return 1;
      stored += wire.drain("STORED", &replies);
      first = i + 1;
    }
  }
  if (stored != a.keys) {
    std::fprintf(stderr, "request_path: %lu of %u sets stored\n", stored, a.keys);
    return 1;
  }

  // Local mode strides by 7 (a.keys is not a multiple of 7); far mode by about 0.618 of the keys
  // (coprime with them), so consecutive GETs land on pages far apart and most of them fault.
  uint32_t stride = kLocalStride;
  if (a.far) {
    stride = std::max<uint32_t>(1, uint32_t(std::lround(a.keys * 0.6180339887)));
    while (std::gcd(stride, a.keys) != 1) ++stride;
  }
  std::vector<std::string> gets;
  for (uint32_t i = 0; i < a.keys; ++i) gets.push_back("get " + key_name(i) + "\r\n");
  const paging::PagingTotals before = region ? region->totals() : paging::PagingTotals{};
  const uint64_t parks_before = cs.counters().parks.read();
  uint64_t hits = 0;
  uint64_t misses = 0;  // far mode without moved bytes: a frame holds another page's bytes
  uint64_t cycles = 0;
  uint32_t next = 0;
  replies = 0;
  for (uint64_t sent = 0; sent < a.requests;) {
    uint32_t n = 0;
    for (; n < a.burst && sent < a.requests; ++n, ++sent) {
      wire.send(uint16_t(sent), gets[next]);
      next = uint32_t((uint64_t(next) + stride) % a.keys);  // strides over every key
    }
    const uint64_t t0 = rdtsc();
    if (!a.far) {
      while (measured_poll(set) != 0) {}
    } else if (!settle([&] { return measured_poll(set); }, tx, n)) {
      return 1;
    }
    cycles += rdtsc() - t0;
    hits += wire.drain("VALUE ", &replies, a.far ? &misses : nullptr);
  }
  std::printf("requests %lu  burst %u  replies %lu  hits %lu  cycles/request %.0f (%.0f ns)  "
              "reply digest %016lx\n",
              a.requests, a.burst, replies, hits, double(cycles) / double(a.requests),
              cycles_to_ns(cycles) / double(a.requests), wire.digest());
  if (a.far) {
    const paging::PagingTotals t = region->totals();
    const double n = double(a.requests);
    const uint64_t vpages = value_pages(so, a.keys, a.value_bytes);
    std::printf("far: %lu pages, %lu frames (%.2f), %u keys of %u B on %lu pages (%.1fx the "
                "frames), latency %u ns, link %g Gb/s, move_bytes %s\n",
                t.pages, t.frames, a.local_fraction, a.keys, a.value_bytes, vpages,
                double(vpages) / double(t.frames), a.latency_ns, a.link_gbps,
                a.move_bytes ? "true" : "false");
    std::printf("far per request: faults %.3f  evictions %.3f  write-backs %.3f  parks %.3f\n",
                double(t.faults - before.faults) / n, double(t.evictions - before.evictions) / n,
                double(t.writebacks - before.writebacks) / n,
                double(cs.counters().parks.read() - parks_before) / n);
    if (!a.move_bytes) {
      // No bytes moved: a fetched frame keeps the bytes of the page it held before, so a GET
      // finds another key there and misses. Every request must still be answered, hit or miss.
      std::printf("far: move_bytes false: %lu misses (END) expected, not checked as hits\n",
                  misses);
      return hits + misses == a.requests && replies == a.requests ? 0 : 1;
    }
  }
  return hits == a.requests && replies == a.requests ? 0 : 1;
}

}  // namespace
}  // namespace fm

int main(int argc, char** argv) {
  CLI::App cli{"request_path: memcached UDP GETs through one core's per-request path, no NIC"};
  fm::Args a;
  cli.add_option("--requests", a.requests, "measured GETs")->check(CLI::PositiveNumber);
  cli.add_option("--burst", a.burst, "requests per loop pass (<= 32)")->check(CLI::Range(1, 32));
  cli.add_option("--keys", a.keys,
                 "distinct keys (local: default 1000, not a multiple of 7; far: default values "
                 "on 5x the frames, at most 90% of the region)")
      ->check(CLI::PositiveNumber);
  cli.add_option("--value-bytes", a.value_bytes, "value size (default: local 32, far 128)")
      ->check(CLI::Range(1, 1024));
  auto* far = cli.add_flag("--far", a.far,
                           "values in a far region on an in-process emulated memory node, "
                           "asynchronous faults (kvserver's default wiring)");
  cli.add_option("--far-mb", a.far_mb, "far region size in MiB (kv.memory_mb)")
      ->check(CLI::Range(1, 1 << 20))
      ->needs(far);
  cli.add_option("--local-fraction", a.local_fraction, "local frames as a share of the region")
      ->check(CLI::Range(0.0, 1.0))
      ->needs(far);
  cli.add_option("--latency-ns", a.latency_ns, "emulated READ/WRITE latency")->needs(far);
  cli.add_option("--link-gbps", a.link_gbps, "emulated link bandwidth")
      ->check(CLI::PositiveNumber)
      ->needs(far);
  cli.add_option("--move-bytes", a.move_bytes, "whether emulated READ/WRITEs copy the page")
      ->needs(far);
  CLI11_PARSE(cli, argc, argv);
  if (!a.far) {
    if (a.keys == 0) a.keys = fm::kLocalKeys;
    if (a.value_bytes == 0) a.value_bytes = fm::kLocalValueBytes;
    if (a.keys % fm::kLocalStride == 0) ++a.keys;
  } else {
    if (a.value_bytes == 0) a.value_bytes = fm::kFarValueBytes;
    if (a.keys == 0) a.keys = fm::far_default_keys(a);
  }
  return fm::run(a);
}
