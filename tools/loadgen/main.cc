// loadgen: an open-loop memcached-UDP load generator on DPDK (memif client by default).
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "dataplane/core_loop.h"
#include "dataplane/eal.h"
#include "dataplane/log.h"
#include "dataplane/tsc.h"
#include "net/port.h"
#include "net/stack.h"
#include "tools/loadgen/histogram.h"
#include "tools/loadgen/workload.h"

namespace fm::loadgen {
namespace {
constexpr const char* kTag = "loadgen";

struct Flags {
  std::string vdev = "net_memif0,role=client,socket=/tmp/farmem-memif.sock,socket-abstract=no,mac=02:fa:00:00:00:02";
  std::string pci;
  uint32_t lcore = 0;
  std::string hugepages = "auto";
  uint32_t memory_mb = 256;
  std::string ip = "10.77.0.2";
  std::string server_ip = "10.77.0.1";
  uint16_t server_port = 11211;
  uint16_t src_port = 40000;
  uint64_t keys = 10000;
  uint32_t value_size = 128;
  double get_ratio = 1.0;
  double rate = 100000;
  double duration_s = 3.0;
  double warmup_s = 0.5;
  double timeout_ms = 100;
  bool preload = true;
  bool verify = true;
  bool constant = false;
  uint64_t seed = 1;
  double connect_timeout_s = 10;
};

enum class Op : uint8_t { kGet, kSet };

struct Slot {
  uint64_t sched = 0;  // scheduled send time (TSC): latency is measured from here
  uint64_t key = 0;
  uint32_t gen = 0;    // bumps on every reuse so a late reply to an old request is a stray
  bool active = false;
  bool measured = false;
  Op op = Op::kGet;
};

struct Pending {
  uint16_t id;
  uint32_t gen;
  uint64_t deadline;
};

struct Results {
  Histogram get_lat, set_lat;
  uint64_t sent = 0, completed = 0, timeouts = 0, misses = 0, wrong = 0, server_errors = 0,
           malformed = 0, strays = 0, late_sends = 0, measured_sent = 0;
};

class Client : public net::UdpHandler {
 public:
  Client(const Flags& f, net::Port& port, const net::Identity& me, net::UdpPeer server)
      : f_(f), server_(server), stack_(port, 0, me, net::NetOptions{}, this),
        slots_(65536), pending_(65536) {}

  net::Stack& stack() { return stack_; }

  void on_udp(net::Stack&, const net::UdpPeer&, std::span<const uint8_t> p) override {
    const uint64_t now = rdtsc();
    if (p.size() < 8) {
      res_.malformed++;
      return;
    }
    const uint16_t id = uint16_t(p[0] << 8 | p[1]);
    Slot& s = slots_[id];
    if (!s.active) {
      res_.strays++;
      return;
    }
    s.active = false;
    --outstanding_;
    res_.completed++;
    const std::string_view body(reinterpret_cast<const char*>(p.data() + 8), p.size() - 8);
    if (s.op == Op::kGet) {
      switch (check_get_reply(body, s.key, f_.value_size, f_.verify)) {
        case GetOutcome::kHit: break;
        case GetOutcome::kMiss: res_.misses++; break;
        case GetOutcome::kWrongValue: res_.wrong++; break;
        case GetOutcome::kServerError: res_.server_errors++; break;
        case GetOutcome::kMalformed: res_.malformed++; break;
      }
      if (s.measured) res_.get_lat.record(uint64_t(cycles_to_ns(now - s.sched)));
    } else {
      if (body != "STORED\r\n") res_.server_errors++;
      if (s.measured) res_.set_lat.record(uint64_t(cycles_to_ns(now - s.sched)));
    }
  }

  /// Sends one request scheduled at `sched`. Returns false when every id is in flight.
  bool send(Op op, uint64_t key, uint64_t sched, bool measured) {
    const uint16_t id = next_id_++;
    Slot& s = slots_[id];
    if (s.active) {  // 65536 requests outstanding: the oldest is long past any sane timeout
      s.active = false;
      --outstanding_;
      res_.timeouts++;
      if (s.measured) (s.op == Op::kGet ? res_.get_lat : res_.set_lat).record_infinite();
    }
    uint8_t buf[1500];
    const size_t n = op == Op::kGet ? encode_get(buf, id, key) : encode_set(buf, id, key, f_.value_size);
    s = Slot{sched, key, s.gen + 1, true, measured, op};
    pending_[pend_tail_++ % pending_.size()] = {id, s.gen, rdtsc() + timeout_cycles_};
    ++outstanding_;
    res_.sent++;
    if (measured) res_.measured_sent++;
    stack_.send_udp(server_, std::span<const uint8_t>(buf, n));
    return true;
  }

  /// Expires requests past their deadline (they count as infinite latency).
  void expire(uint64_t now) {
    while (pend_head_ != pend_tail_) {
      const Pending& p = pending_[pend_head_ % pending_.size()];
      if (p.deadline > now) break;
      Slot& s = slots_[p.id];
      if (s.active && s.gen == p.gen) {
        s.active = false;
        --outstanding_;
        res_.timeouts++;
        if (s.measured) (s.op == Op::kGet ? res_.get_lat : res_.set_lat).record_infinite();
      }
      ++pend_head_;
    }
  }

  uint64_t outstanding() const { return outstanding_; }
  Results& results() { return res_; }
  void reset_results() { res_ = Results{}; }
  void set_timeout(uint64_t cycles) { timeout_cycles_ = cycles; }
  void set_server(const net::UdpPeer& s) { server_ = s; }

 private:
  const Flags& f_;
  net::UdpPeer server_;
  net::Stack stack_;
  std::vector<Slot> slots_;
  std::vector<Pending> pending_;
  uint64_t pend_head_ = 0, pend_tail_ = 0;
  uint16_t next_id_ = 0;
  uint64_t outstanding_ = 0;
  uint64_t timeout_cycles_ = 0;
  Results res_;
};

bool wait_link(uint16_t port, double timeout_s) {
  const uint64_t end = rdtsc() + uint64_t(timeout_s * double(tsc_hz()));
  while (rdtsc() < end && !stop_requested()) {
    rte_eth_link link{};
    rte_eth_link_get_nowait(port, &link);
    if (link.link_status == RTE_ETH_LINK_UP) return true;
    rte_delay_ms(10);
  }
  return false;
}

std::string fmt_us(uint64_t ns) {
  if (ns == UINT64_MAX) return "inf";
  return fmt::format("{:.1f}", double(ns) / 1000.0);
}

int run(const Flags& f) {
  EalOptions eal;
  eal.lcores = {f.lcore};
  eal.memory_mb = f.memory_mb;
  eal.hugepages = f.hugepages == "on" ? HugepageMode::kOn
                  : f.hugepages == "off" ? HugepageMode::kOff : HugepageMode::kAuto;
  net::PortOptions popts;
  popts.vdev = f.vdev;
  popts.pci = f.pci;
  popts.mbufs = 8191;
  if (f.pci.empty()) eal.vdevs.push_back(f.vdev);
  else eal.pci_allow.push_back(f.pci);
  auto ei = eal_init(eal, "loadgen");
  if (!ei) {
    FM_LOG_ERROR(kTag, "{}", ei.status().message());
    return 1;
  }
  install_stop_signals();
  auto port = net::Port::open(popts, 1);
  if (!port) {
    FM_LOG_ERROR(kTag, "{}", port.status().message());
    return 1;
  }
  auto my_ip = net::parse_ipv4(f.ip, "--ip");
  auto srv_ip = net::parse_ipv4(f.server_ip, "--server-ip");
  if (!my_ip || !srv_ip) {
    FM_LOG_ERROR(kTag, "{}", (!my_ip ? my_ip.status() : srv_ip.status()).message());
    return 1;
  }
  const net::Identity me{(*port)->mac(), *my_ip, f.src_port};
  if (!wait_link((*port)->id(), f.connect_timeout_s)) {
    FM_LOG_ERROR(kTag, "port '{}' did not come up within {} s: is the server running (memif "
                 "socket in --vdev)?", (*port)->name(), f.connect_timeout_s);
    return 1;
  }
  Client client(f, **port, me, net::UdpPeer{});
  // Resolve the server's MAC with ARP (bounded retries).
  uint8_t arp[64];
  const net::MacAddr* smac = nullptr;
  for (int attempt = 0; attempt < 50 && !smac && !stop_requested(); ++attempt) {
    const size_t n = net::build_arp_request(me, *srv_ip, arp);
    client.stack().send_raw(std::span<const uint8_t>(arp, n));
    client.stack().flush();
    const uint64_t until = rdtsc() + us_to_cycles(100000);
    while (rdtsc() < until && !(smac = client.stack().neighbor(*srv_ip))) client.stack().poll();
  }
  if (!smac) {
    FM_LOG_ERROR(kTag, "no ARP reply from {} within 5 s", f.server_ip);
    return 1;
  }
  client.set_server(net::UdpPeer{*smac, *srv_ip, f.server_port});
  client.set_timeout(uint64_t(f.timeout_ms * 1e-3 * double(tsc_hz())));
  FM_LOG_INFO(kTag, "server {} is at {}", f.server_ip, smac->to_string());

  if (f.preload) {
    // Closed-loop preload with a window: every key stored once before measuring.
    const uint64_t t0 = rdtsc();
    uint64_t next = 0;
    uint64_t retries = 0;
    while (next < f.keys && !stop_requested()) {
      while (client.outstanding() < 32 && next < f.keys) client.send(Op::kSet, next++, rdtsc(), false);
      client.stack().flush();
      client.stack().poll();
      client.expire(rdtsc());
    }
    while (client.outstanding() && !stop_requested()) {
      client.stack().poll();
      client.expire(rdtsc());
    }
    auto& r = client.results();
    retries = r.timeouts + r.server_errors;
    printf("preload: %lu keys of %u bytes in %.2f s (%lu not stored)\n", (unsigned long)f.keys,
           f.value_size, cycles_to_us(rdtsc() - t0) / 1e6, (unsigned long)retries);
    client.reset_results();
  }

  std::mt19937_64 rng(f.seed);
  std::exponential_distribution<double> gap(f.rate);
  std::uniform_int_distribution<uint64_t> pick(0, f.keys - 1);
  std::uniform_real_distribution<double> coin(0, 1);
  const double hz = double(tsc_hz());
  const uint64_t start = rdtsc() + us_to_cycles(1000);
  const uint64_t measure_from = start + uint64_t(f.warmup_s * hz);
  const uint64_t end = measure_from + uint64_t(f.duration_s * hz);
  const uint64_t late_window = us_to_cycles(10);
  double next_d = double(start);
  uint64_t next = start;
  while (next < end && !stop_requested()) {
    const uint64_t now = rdtsc();
    while (next <= now && next < end) {
      if (now - next > late_window && next >= measure_from) client.results().late_sends++;
      const Op op = coin(rng) < f.get_ratio ? Op::kGet : Op::kSet;
      client.send(op, pick(rng), next, next >= measure_from);
      next_d += f.constant ? hz / f.rate : gap(rng) * hz;
      next = uint64_t(next_d);
    }
    client.stack().poll();
    client.expire(now);
  }
  const uint64_t drain_end = rdtsc() + uint64_t(f.timeout_ms * 1e-3 * hz) + us_to_cycles(1000);
  while (client.outstanding() && rdtsc() < drain_end) {
    client.stack().poll();
    client.expire(rdtsc());
  }
  client.expire(UINT64_MAX);
  const Results& r = client.results();
  Histogram all;
  all.merge(r.get_lat);
  all.merge(r.set_lat);
  const double secs = f.duration_s;
  const double adherence = r.measured_sent ? 100.0 * (1.0 - double(r.late_sends) / double(r.measured_sent)) : 0;
  const bool valid = adherence >= 99.0;
  printf("offered %.0f req/s  achieved %.0f req/s  sent %lu  timeouts %lu  misses %lu  "
         "wrong %lu  errors %lu  schedule adherence %.2f%%%s\n",
         f.rate, double(all.count()) / secs, (unsigned long)r.measured_sent,
         (unsigned long)r.timeouts, (unsigned long)r.misses, (unsigned long)r.wrong,
         (unsigned long)r.server_errors, adherence, valid ? "" : "  INVALID: generator fell behind");
  printf("latency us: min %s  mean %.1f  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
         fmt_us(all.min()).c_str(), all.mean() / 1000.0, fmt_us(all.percentile(0.5)).c_str(),
         fmt_us(all.percentile(0.9)).c_str(), fmt_us(all.percentile(0.99)).c_str(),
         fmt_us(all.percentile(0.999)).c_str(), fmt_us(all.max()).c_str());
  (*port)->close();
  eal_cleanup();
  return (r.wrong == 0 && valid) ? 0 : 2;
}

}  // namespace
}  // namespace fm::loadgen

int main(int argc, char** argv) {
  fm::loadgen::Flags f;
  CLI::App app{"loadgen: open-loop memcached-UDP load generator over DPDK"};
  app.add_option("--vdev", f.vdev, "DPDK virtual device to send from")->capture_default_str();
  app.add_option("--pci", f.pci, "PCI device to send from (instead of --vdev)");
  app.add_option("--lcore", f.lcore, "CPU to run on")->capture_default_str();
  app.add_option("--hugepages", f.hugepages, "auto | on | off")->check(CLI::IsMember({"auto", "on", "off"}))->capture_default_str();
  app.add_option("--memory-mb", f.memory_mb, "EAL memory")->capture_default_str()->check(CLI::Range(16u, 1u << 20));
  app.add_option("--ip", f.ip, "this client's IPv4 address")->capture_default_str();
  app.add_option("--server-ip", f.server_ip, "the server's IPv4 address")->capture_default_str();
  app.add_option("--server-port", f.server_port, "the server's UDP port")->capture_default_str();
  app.add_option("--keys", f.keys, "key space size")->capture_default_str()->check(CLI::Range(uint64_t(1), uint64_t(1) << 40));
  app.add_option("--value-size", f.value_size, "value bytes (one datagram: <= 1300)")->capture_default_str()->check(CLI::Range(1u, 1300u));
  app.add_option("--get-ratio", f.get_ratio, "share of GETs (rest SETs)")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  app.add_option("--rate", f.rate, "offered load, requests/s")->capture_default_str()->check(CLI::Range(1.0, 1e9));
  app.add_option("--duration", f.duration_s, "measured seconds")->capture_default_str()->check(CLI::Range(0.01, 3600.0));
  app.add_option("--warmup", f.warmup_s, "discarded seconds before measuring")->capture_default_str()->check(CLI::Range(0.0, 600.0));
  app.add_option("--timeout-ms", f.timeout_ms, "a reply later than this counts as dropped")->capture_default_str()->check(CLI::Range(0.01, 60000.0));
  app.add_flag("!--no-preload", f.preload, "skip storing every key first");
  app.add_flag("!--no-verify", f.verify, "do not check GET values");
  app.add_flag("--constant", f.constant, "constant inter-arrival times instead of Poisson");
  app.add_option("--seed", f.seed, "random seed")->capture_default_str();
  app.add_option("--connect-timeout", f.connect_timeout_s, "seconds to wait for the link")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return fm::loadgen::run(f);
}
