// reflector: a memcached-UDP "server" that answers instantly (GET -> END, SET -> STORED), in
// place in the received mbuf, for measuring the loadgen's own ceiling. Not a key-value store.
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <vector>

#include "dataplane/core_loop.h"
#include "dataplane/counter.h"
#include "dataplane/eal.h"
#include "dataplane/log.h"
#include "net/packet.h"
#include "net/port.h"

namespace {
constexpr const char* kTag = "reflector";

struct Flags {
  std::string vdev =
      "net_memif0,role=server,socket=/tmp/"
      "farmem-memif.sock,socket-abstract=no,mac=02:fa:00:00:00:01";
  std::vector<uint32_t> lcores = {1};
  std::string hugepages = "auto";
  uint32_t memory_mb = 256;
  std::string ip = "10.77.0.1";
  uint16_t port = 11211;
};

struct alignas(64) CoreState {
  fm::net::Port* port = nullptr;
  uint16_t queue = 0;
  fm::net::Identity me;
  uint8_t ip_be[4] = {};
  fm::Counter answered, other, busy_cycles, cycles;
};

inline uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

/// Rewrites a request frame into its reply in place. Returns false if it is not one.
bool reflect(uint8_t* d, uint32_t len, const CoreState& c, uint32_t* out_len) {
  if (len < fm::net::kUdpHeadersLen + 8 + 4 || d[12] != 0x08 || d[13] != 0x00 || d[14] != 0x45 ||
      d[23] != 17 || be16(d + 36) != c.me.udp_port || std::memcmp(d + 30, c.ip_be, 4) != 0)
    return false;
  uint8_t tmp[6];
  std::memcpy(tmp, d, 6);  // MACs
  std::memcpy(d, d + 6, 6);
  std::memcpy(d + 6, tmp, 6);
  std::memcpy(tmp, d + 26, 4);  // IPs
  std::memcpy(d + 26, d + 30, 4);
  std::memcpy(d + 30, tmp, 4);
  std::memcpy(tmp, d + 34, 2);  // ports
  std::memcpy(d + 34, d + 36, 2);
  std::memcpy(d + 36, tmp, 2);
  uint8_t* body = d + fm::net::kUdpHeadersLen + 8;  // after the memcached frame header
  const char* reply;
  size_t n;
  if (std::memcmp(body, "get ", 4) == 0) {
    reply = "END\r\n";
    n = 5;
  } else if (std::memcmp(body, "set ", 4) == 0) {
    reply = "STORED\r\n";
    n = 8;
  } else {
    reply = "ERROR\r\n";
    n = 7;
  }
  std::memcpy(body, reply, n);
  const uint16_t udp_len = uint16_t(8 + 8 + n), ip_len = uint16_t(20 + udp_len);
  d[16] = uint8_t(ip_len >> 8);
  d[17] = uint8_t(ip_len);
  d[38] = uint8_t(udp_len >> 8);
  d[39] = uint8_t(udp_len);
  d[40] = d[41] = 0;  // no UDP checksum
  d[24] = d[25] = 0;
  const uint16_t sum = fm::net::checksum_fold(fm::net::checksum_partial({d + 14, 20}));
  d[24] = uint8_t(sum >> 8);
  d[25] = uint8_t(sum);
  *out_len = fm::net::kEthHeaderLen + ip_len;
  return true;
}

int core_main(void* arg) {
  auto& c = *static_cast<CoreState*>(arg);
  rte_mbuf* rx[32];
  rte_mbuf* tx[32];
  const uint64_t t_start = rte_rdtsc();
  uint64_t busy = 0, loops = 0;
  while (!fm::stop_requested()) {
    const uint64_t t0 = rte_rdtsc();
    const uint16_t n = c.port->rx_burst(c.queue, rx, 32);
    uint16_t t = 0;
    for (uint16_t i = 0; i < n; ++i) {
      rte_mbuf* m = rx[i];
      uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
      uint32_t len = 0;
      if (m->nb_segs == 1 && reflect(d, m->data_len, c, &len)) {
        m->data_len = uint16_t(len);
        m->pkt_len = len;
        tx[t++] = m;
        continue;
      }
      const fm::net::Classified cl = fm::net::classify({d, m->data_len}, c.me, false);
      if (cl.kind == fm::net::Classified::Kind::kArpRequest) {
        const size_t l = fm::net::build_arp_reply(
            {d, m->data_len}, c.me, {d, size_t(rte_pktmbuf_tailroom(m)) + m->data_len});
        m->data_len = uint16_t(l);
        m->pkt_len = uint32_t(l);
        tx[t++] = m;
        continue;
      }
      c.other.add();
      rte_pktmbuf_free(m);
    }
    if (t) {
      const uint16_t sent = c.port->tx_burst(c.queue, tx, t);
      if (sent < t) rte_pktmbuf_free_bulk(tx + sent, t - sent);
      c.answered.add(sent);
    }
    if (n) busy += rte_rdtsc() - t0;
    if ((++loops & 1023) == 0) {
      c.busy_cycles.set(busy);
      c.cycles.set(rte_rdtsc() - t_start);
    }
  }
  c.busy_cycles.set(busy);
  c.cycles.set(rte_rdtsc() - t_start);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{
      "reflector: answers memcached UDP requests instantly (GET -> END, SET -> STORED) "
      "on a DPDK port, to measure the loadgen's own ceiling"};
  app.add_option("--vdev", f.vdev, "DPDK virtual device (memif server by default)")
      ->capture_default_str();
  app.add_option("--lcores", f.lcores, "CPUs, one queue pair each")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--hugepages", f.hugepages, "auto | on | off")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  app.add_option("--memory-mb", f.memory_mb, "EAL memory in MiB")
      ->check(CLI::Range(16u, 1u << 20))
      ->capture_default_str();
  app.add_option("--ip", f.ip, "the address it answers on")->capture_default_str();
  app.add_option("--port", f.port, "the UDP port it answers on")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto ip = fm::net::parse_ipv4(f.ip, "--ip");
  if (!ip) {
    std::fprintf(stderr, "reflector: %s\n", ip.status().message().c_str());
    return 1;
  }
  fm::EalOptions eal;
  eal.lcores = f.lcores;
  eal.memory_mb = f.memory_mb;
  eal.hugepages = f.hugepages == "on"    ? fm::HugepageMode::kOn
                  : f.hugepages == "off" ? fm::HugepageMode::kOff
                                         : fm::HugepageMode::kAuto;
  eal.vdevs.push_back(f.vdev);
  auto ei = fm::eal_init(eal, "reflector");
  if (!ei) {
    std::fprintf(stderr, "reflector: %s\n", ei.status().message().c_str());
    return 1;
  }
  fm::install_stop_signals();
  fm::net::PortOptions po;
  po.vdev = f.vdev;
  auto port = fm::net::Port::open(po, uint16_t(f.lcores.size()));
  if (!port) {
    std::fprintf(stderr, "reflector: %s\n", port.status().message().c_str());
    return 1;
  }
  std::vector<CoreState> cores(f.lcores.size());
  for (size_t i = 0; i < cores.size(); ++i) {
    cores[i].port = port->get();
    cores[i].queue = uint16_t(i);
    cores[i].me = fm::net::Identity{(*port)->mac(), *ip, f.port};
    for (int b = 0; b < 4; ++b) cores[i].ip_be[b] = uint8_t(ip->v >> (24 - 8 * b));
  }
  FM_LOG_INFO(kTag, "answering on {} port {} with {} core(s)", f.ip, f.port, cores.size());
  for (size_t i = 1; i < cores.size(); ++i)
    rte_eal_remote_launch(core_main, &cores[i], f.lcores[i]);
  core_main(&cores[0]);
  rte_eal_mp_wait_lcore();
  for (size_t i = 0; i < cores.size(); ++i) {
    const double busy = cores[i].cycles.read() ? 100.0 * double(cores[i].busy_cycles.read()) /
                                                     double(cores[i].cycles.read())
                                               : 0.0;
    std::fprintf(stderr,
                 "reflector core %zu: answered %lu, other frames %lu, busy %.1f%% of %.1f s\n", i,
                 (unsigned long)cores[i].answered.read(), (unsigned long)cores[i].other.read(),
                 busy, double(cores[i].cycles.read()) / double(rte_get_tsc_hz()));
  }
  (*port)->close();
  fm::eal_cleanup();
  return 0;
}
