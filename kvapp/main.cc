// kvserver: the compute node — DPDK polling cores serving memcached UDP from the store.
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <memory>
#include <vector>

#include "config/server_config.h"
#include "dataplane/core_loop.h"
#include "dataplane/eal.h"
#include "dataplane/log.h"
#include "dataplane/tsc.h"
#include "kvapp/far_arena.h"
#include "kvapp/session.h"
#include "net/port.h"
#include "net/stack.h"
#include "paging/emulated_transport.h"
#include "paging/region.h"
#include "paging/verbs_transport.h"

namespace fm::kv {
namespace {
constexpr const char* kTag = "kvserver";

/// Seconds since the epoch, refreshed from the TSC at most every 10 ms (no syscall per request).
class CoarseClock {
 public:
  int64_t now() {
    const uint64_t t = rdtsc();
    if (t - last_tsc_ > refresh_) {
      last_tsc_ = t;
      now_ = int64_t(::time(nullptr));
    }
    return now_;
  }

 private:
  uint64_t refresh_ = tsc_hz() / 100;
  uint64_t last_tsc_ = 0;
  int64_t now_ = int64_t(::time(nullptr));
};

/// What `stats` reports beyond the kv app: every queue's stack and the far region (if any).
struct ServerView {
  std::vector<const net::Stack*> stacks;
  const paging::Region* region = nullptr;
  const paging::Transport* transport = nullptr;
};

/// Fetch latency percentile from the log2 histogram (upper bucket edge, ns).
uint64_t latency_percentile(const paging::PagingTotals& t, double q) {
  uint64_t total = 0;
  for (uint64_t c : t.fetch_latency) total += c;
  if (total == 0) return 0;
  const uint64_t rank = uint64_t(q * double(total) + 0.5);
  uint64_t seen = 0;
  for (size_t i = 0; i < t.fetch_latency.size(); ++i) {
    seen += t.fetch_latency[i];
    if (seen >= rank) return 1ull << (i + 7);
  }
  return 1ull << (t.fetch_latency.size() + 6);
}

/// Appends network statistics (summed over every queue's stack) to memcached's `stats`.
class ServerStats : public StatsHook {
 public:
  explicit ServerStats(const ServerView* v) : v_(v) {}
  void append_stats(StatsWriter& w) const override {
    uint64_t rx = 0, tx = 0, drops = 0;
    uint64_t by_reason[net::kDropReasonCount] = {};
    for (const net::Stack* s : v_->stacks) {
      rx += s->counters().rx_packets.read();
      tx += s->counters().tx_packets.read();
      drops += s->counters().total_drops();
      for (size_t i = 0; i < net::kDropReasonCount; ++i) by_reason[i] += s->counters().drops[i].read();
    }
    w.stat("dp_rx_packets", rx);
    w.stat("dp_tx_packets", tx);
    w.stat("dp_drops", drops);
    char name[64];
    for (size_t i = 0; i < net::kDropReasonCount; ++i) {
      std::snprintf(name, sizeof(name), "dp_drop_%s", net::drop_reason_name(net::DropReason(i)));
      w.stat(name, by_reason[i]);
    }
    if (v_->region == nullptr) {
      w.stat("paging_mode", "local");
      return;
    }
    const paging::PagingTotals t = v_->region->totals();
    w.stat("paging_mode", "far");
    w.stat("paging_transport", v_->transport->name());
    w.stat("paging_memnode_alive", v_->transport->alive() ? 1 : 0);
    w.stat("paging_pages", t.pages);
    w.stat("paging_frames", t.frames);
    w.stat("paging_resident", t.resident);
    w.stat("paging_hits", t.pins);
    w.stat("paging_faults", t.faults);
    w.stat("paging_zero_fills", t.zero_fills);
    w.stat("paging_shared_waits", t.shared_waits);
    w.stat("paging_evictions", t.evictions);
    w.stat("paging_writebacks", t.writebacks);
    w.stat("paging_errors", t.errors);
    w.stat("paging_bytes_read", t.bytes_read);
    w.stat("paging_bytes_written", t.bytes_written);
    w.stat("paging_qp_full_retries", t.full_retries);
    w.stat("paging_fetch_p50_ns", latency_percentile(t, 0.5));
    w.stat("paging_fetch_p99_ns", latency_percentile(t, 0.99));
  }

 private:
  const ServerView* v_;
};

/// One core's glue between its network stack and its protocol session.
class KvHandler : public net::UdpHandler {
 public:
  KvHandler(Store& store, const ProtocolOptions& p, const StatsHook* hook, paging::PagingCore* pc)
      : session_(store, p, hook), paging_core_(pc) {}

  void on_udp(net::Stack& stack, const net::UdpPeer& from, std::span<const uint8_t> payload) override {
    current_paging_core() = paging_core_;  // the far arena faults through this core's queue pair
    Reply r{&stack, &from};
    session_.handle_datagram(payload, clock_.now(), &KvHandler::emit, &r);
  }

  const Session& session() const { return session_; }

 private:
  struct Reply {
    net::Stack* stack;
    const net::UdpPeer* to;
  };
  static void emit(void* ctx, std::span<const uint8_t> datagram) {
    auto* r = static_cast<Reply*>(ctx);
    r->stack->send_udp(*r->to, datagram);
  }

  Session session_;
  paging::PagingCore* paging_core_;
  CoarseClock clock_;
};

/// Connects the configured transport and creates the far region sized by [kv] and [paging].
Status open_far_memory(const config::ServerConfig& cfg, uint16_t ncores,
                       std::unique_ptr<paging::Transport>& transport,
                       std::unique_ptr<paging::Region>& region) {
  auto addr = paging::parse_channel_address(cfg.paging.memnode, "paging.memnode");
  if (!addr) return addr.status();
  const int timeout = int(cfg.paging.connect_timeout_ms);
  if (cfg.paging.transport == paging::TransportKind::kEmulated) {
    auto t = paging::EmulatedTransport::connect(cfg.paging.emulated, *addr, ncores, timeout,
                                                paging::tsc_clock());
    if (!t) return t.status();
    transport = std::move(t.value());
  } else {
    auto t = paging::connect_verbs(cfg.paging.verbs, *addr, ncores, timeout);
    if (!t) return t.status();
    transport = std::move(t.value());
  }
  const uint64_t bytes = uint64_t(cfg.store.memory_mb) << 20;
  const uint64_t pages = bytes / paging::kPageSize;
  const uint64_t frames = cfg.paging.local_mb > 0
                              ? (uint64_t(cfg.paging.local_mb) << 20) / paging::kPageSize
                              : uint64_t(double(pages) * cfg.paging.local_fraction + 0.5);
  auto r = paging::Region::create(bytes, frames, *transport, ncores, paging::tsc_clock(),
                                  cfg.store.item_size_max);
  if (!r) return r.status();
  region = std::move(r.value());
  return Status::ok();
}

int run(const config::ServerConfig& cfg) {
  EalOptions eal = cfg.eal;
  if (cfg.port.pci.empty()) eal.vdevs.push_back(cfg.port.vdev);
  else eal.pci_allow.push_back(cfg.port.pci);
  auto ei = eal_init(eal, "kvserver");
  if (!ei) {
    FM_LOG_ERROR(kTag, "{}", ei.status().message());
    return 1;
  }
  install_stop_signals();
  const uint16_t ncores = uint16_t(cfg.eal.lcores.size());
  auto port = net::Port::open(cfg.port, ncores);
  if (!port) {
    FM_LOG_ERROR(kTag, "{}", port.status().message());
    eal_cleanup();
    return 1;
  }
  net::Identity me{(*port)->mac(), cfg.net.ip, cfg.net.udp_port};
  if (!cfg.net.mac.empty()) me.mac = net::parse_mac(cfg.net.mac, "net.mac").value();

  // Far memory: connect to the memory node, build the region, put the store's arena in it.
  std::unique_ptr<paging::Transport> transport;
  std::unique_ptr<paging::Region> region;
  std::unique_ptr<Arena> arena;
  if (cfg.paging.mode == paging::PagingMode::kFar) {
    auto far = open_far_memory(cfg, ncores, transport, region);
    if (!far) {
      FM_LOG_ERROR(kTag, "{}", far.message());
      (*port)->close();
      eal_cleanup();
      return 1;
    }
    arena = std::make_unique<FarArena>(*region);
  }
  auto store = Store::create(cfg.store, std::move(arena));
  if (!store) {
    FM_LOG_ERROR(kTag, "{}", store.status().message());
    (*port)->close();
    eal_cleanup();
    return 1;
  }
  ServerView view;
  view.region = region.get();
  view.transport = transport.get();
  const ServerStats server_stats(&view);
  std::vector<std::unique_ptr<KvHandler>> handlers;  // destroyed after the stacks
  std::vector<std::unique_ptr<net::Stack>> stacks;
  std::vector<std::unique_ptr<CoreLoop>> loops;
  std::vector<CoreLoop*> loop_ptrs;
  for (uint16_t i = 0; i < ncores; ++i) {
    paging::PagingCore* pc = region ? &region->core(CoreId{i}) : nullptr;
    handlers.push_back(std::make_unique<KvHandler>(**store, cfg.protocol, &server_stats, pc));
    stacks.push_back(std::make_unique<net::Stack>(**port, i, me, cfg.net, handlers.back().get()));
    view.stacks.push_back(stacks.back().get());
    loops.push_back(std::make_unique<CoreLoop>(CoreId{i}, cfg.eal.lcores[i], cfg.idle));
    loops.back()->add_poller({"nic", &net::Stack::poll_hook, stacks.back().get()});
    // The core's completion queue is polled in the same loop as its NIC queue (Shenango-style).
    if (pc) loops.back()->add_poller({"cq", &paging::PagingCore::poll_hook, pc});
    loop_ptrs.push_back(loops.back().get());
  }
  FM_LOG_INFO(kTag, "serving memcached UDP on {}:{} (mac {}) with {} core(s)", me.ip.to_string(),
              me.udp_port, me.mac.to_string(), ncores);
  std::fflush(stderr);
  Status st = run_cores(loop_ptrs);
  if (!st) FM_LOG_ERROR(kTag, "{}", st.message());

  // Every core has stopped polling: only now is it safe to close the port (memif).
  for (uint16_t i = 0; i < ncores; ++i) {
    const auto& nc = stacks[i]->counters();
    const auto& cs = loops[i]->stats();
    std::fprintf(stderr,
                 "core %u (lcore %u): rx %lu tx %lu udp %lu drops %lu arp %lu icmp %lu | loops %lu "
                 "busy %lu sleeps %lu\n",
                 i, loops[i]->lcore(), (unsigned long)nc.rx_packets.read(),
                 (unsigned long)nc.tx_packets.read(), (unsigned long)nc.udp_in.read(),
                 (unsigned long)nc.total_drops(), (unsigned long)nc.arp_replies.read(),
                 (unsigned long)nc.icmp_replies.read(), (unsigned long)cs.loops.read(),
                 (unsigned long)cs.busy_loops.read(), (unsigned long)cs.sleeps.read());
    for (size_t r = 0; r < net::kDropReasonCount; ++r) {
      if (uint64_t d = nc.drops[r].read())
        std::fprintf(stderr, "  drop %s: %lu\n", net::drop_reason_name(net::DropReason(r)), (unsigned long)d);
    }
  }
  if (region) {
    const paging::PagingTotals t = region->totals();
    std::fprintf(stderr,
                 "paging: %lu faults, %lu zero-fills, %lu shared waits, %lu evictions, %lu "
                 "write-backs, %lu errors; fetch p50 %lu ns p99 %lu ns\n",
                 (unsigned long)t.faults, (unsigned long)t.zero_fills, (unsigned long)t.shared_waits,
                 (unsigned long)t.evictions, (unsigned long)t.writebacks, (unsigned long)t.errors,
                 (unsigned long)latency_percentile(t, 0.5), (unsigned long)latency_percentile(t, 0.99));
  }
  stacks.clear();
  (*port)->close();
  eal_cleanup();
  return st ? 0 : 1;
}

}  // namespace
}  // namespace fm::kv

int main(int argc, char** argv) {
  CLI::App app{"kvserver: memcached-UDP key-value server on DPDK polling cores"};
  std::string config_path;
  bool print_config = false;
  app.add_option("--config", config_path,
                 "TOML config file (default: built-in defaults, identical to config/kvserver.toml)");
  app.add_flag("--print-config", print_config, "print the effective configuration and exit");
  CLI11_PARSE(app, argc, argv);

  fm::config::ServerConfig cfg;
  if (!config_path.empty()) {
    auto loaded = fm::config::load_server_config(config_path);
    if (!loaded) {
      std::fprintf(stderr, "kvserver: %s\n", loaded.status().message().c_str());
      return 1;
    }
    cfg = std::move(loaded.value());
  }
  if (fm::Status st = fm::kv::validate(cfg.store, cfg.protocol); !st) {
    std::fprintf(stderr, "kvserver: %s%s%s\n", config_path.c_str(), config_path.empty() ? "" : ": ",
                 st.message().c_str());
    return 1;
  }
  const std::string effective = fm::config::to_toml(cfg);
  if (print_config) {
    std::fputs(effective.c_str(), stdout);
    return 0;
  }
  fm::set_log_level(cfg.log_level == "debug" ? fm::LogLevel::kDebug
                    : cfg.log_level == "warn" ? fm::LogLevel::kWarn
                    : cfg.log_level == "error" ? fm::LogLevel::kError : fm::LogLevel::kInfo);
  FM_LOG_INFO("config", "effective configuration ({}):\n{}",
              config_path.empty() ? "built-in defaults" : config_path, effective);
  return fm::kv::run(cfg);
}
