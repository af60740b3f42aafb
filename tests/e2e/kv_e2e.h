// End-to-end fixture: kvserver in its own process over real DPDK memif, this process its client.
#pragma once
#include <gtest/gtest.h>
#include <rte_ethdev.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "dataplane/core_loop.h"
#include "dataplane/eal.h"
#include "dataplane/tsc.h"
#include "net/port.h"
#include "net/stack.h"

namespace fm::e2e {

constexpr uint16_t kClientPort = 40123;

/// Collects reply datagrams by request id.
class Collector : public net::UdpHandler {
 public:
  void on_udp(net::Stack&, const net::UdpPeer&, std::span<const uint8_t> p) override {
    if (p.size() < 8) return;
    const uint16_t id = uint16_t(p[0] << 8 | p[1]);
    const uint16_t seq = uint16_t(p[2] << 8 | p[3]);
    const uint16_t total = uint16_t(p[4] << 8 | p[5]);
    auto& r = replies[id];
    r.total = total;
    r.parts[seq] = std::string(reinterpret_cast<const char*>(p.data() + 8), p.size() - 8);
    r.sizes.push_back(p.size());
  }
  struct Reply {
    uint16_t total = 0;
    std::map<uint16_t, std::string> parts;
    std::vector<size_t> sizes;
  };
  std::map<uint16_t, Reply> replies;
};

/// Starts `argv[0]` with stderr to `log`; returns its pid.
inline pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stderr);
    (void)f;
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::_Exit(127);
  }
  return pid;
}

/// Sends `sig`, waits up to 10 s, then SIGKILLs. Returns the wait status (-1 if it had to kill).
inline int stop_process(pid_t pid, int sig) {
  if (pid <= 0) return -1;
  ::kill(pid, sig);
  int status = 0;
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    ::usleep(100000);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

inline std::string read_log(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// kvserver in its own process on a memif port; this process is its DPDK memif client.
/// `extra_config` is appended to the server's TOML (e.g. a [paging] table).
class KvE2E : public ::testing::Test {
 protected:
  static void start(const std::string& extra_config) {
    const char* server = std::getenv("KVSERVER");
    ASSERT_NE(server, nullptr) << "KVSERVER (path of build/kvserver) is not set";
    const std::string tag = std::to_string(::getpid());
    socket_ = "/tmp/farmem-e2e-" + tag + ".sock";
    log_ = "/tmp/farmem-e2e-" + tag + ".log";
    const std::string cfg = "/tmp/farmem-e2e-" + tag + ".toml";
    std::ofstream(cfg) << "[eal]\nlcores = [1]\nmemory_mb = 256\n"
                       << "[port]\nvdev = \"net_memif0,role=server,socket=" << socket_
                       << ",socket-abstract=no,mac=02:fa:00:00:00:01\"\nmbufs = 4095\n"
                       << "[control]\nsocket = \"/tmp/farmem-e2e-" << tag << ".ctl\"\n"
                       << "[log]\nlevel = \"info\"\n" << extra_config;
    server_pid_ = spawn({std::string(server), "--config", cfg}, log_);
    ASSERT_GT(server_pid_, 0);
    // Give the server time to create the memif socket (bounded).
    for (int i = 0; i < 100 && ::access(socket_.c_str(), F_OK) != 0; ++i) ::usleep(100000);
    ASSERT_EQ(::access(socket_.c_str(), F_OK), 0) << "kvserver made no memif socket; log:\n" << server_log();

    EalOptions eal;
    eal.lcores = {0};
    eal.memory_mb = 128;
    eal.vdevs = {"net_memif0,role=client,socket=" + socket_ + ",socket-abstract=no,mac=02:fa:00:00:00:02"};
    auto ei = eal_init(eal, "e2e_test");
    ASSERT_TRUE(ei.is_ok()) << ei.status().message();
    net::PortOptions po;
    po.vdev = eal.vdevs[0];
    po.mbufs = 2047;
    auto port = net::Port::open(po, 1);
    ASSERT_TRUE(port.is_ok()) << port.status().message();
    port_ = std::move(port.value());
    me_ = net::Identity{port_->mac(), net::Ipv4Addr{0x0a4d0002}, kClientPort};
    collector_ = new Collector();
    stack_ = new net::Stack(*port_, 0, me_, net::NetOptions{}, collector_);
    // Link up and ARP, bounded.
    const uint64_t end = rdtsc() + 10 * tsc_hz();
    const net::MacAddr* mac = nullptr;
    uint8_t arp[64];
    while (!mac && rdtsc() < end) {
      rte_eth_link link{};
      rte_eth_link_get_nowait(port_->id(), &link);
      if (link.link_status == RTE_ETH_LINK_UP) {
        stack_->send_raw({arp, net::build_arp_request(me_, server_ip(), arp)});
        stack_->flush();
      }
      const uint64_t until = rdtsc() + tsc_hz() / 20;
      while (rdtsc() < until && !(mac = stack_->neighbor(server_ip()))) stack_->poll();
    }
    ASSERT_NE(mac, nullptr) << "no ARP reply from kvserver; log:\n" << server_log();
    server_mac_ = *mac;
  }

  static void stop() {
    // The server stops first: DPDK 22.11's memif PMD can read a region its control thread has
    // just unmapped when the peer disconnects while the data path polls (seen once here as a
    // kvserver segfault in librte_net_memif at teardown).
    server_status_ = stop_process(server_pid_, SIGTERM);
    delete stack_;
    stack_ = nullptr;
    if (port_) port_->close();
    port_.reset();
    delete collector_;
    eal_cleanup();
    EXPECT_TRUE(server_status_ >= 0 && WIFEXITED(server_status_) && WEXITSTATUS(server_status_) == 0)
        << "kvserver did not exit cleanly on SIGTERM; log:\n" << server_log();
    ::unlink(socket_.c_str());
  }

  static net::Ipv4Addr server_ip() { return net::Ipv4Addr{0x0a4d0001}; }

  static std::string server_log() { return read_log(log_); }

  /// Sends one request datagram (frame header added) to `port`; waits up to 1 s for its whole
  /// reply. Returns the reassembled reply text, or "<timeout>".
  static std::string request(const std::string& text, uint16_t port = 11211, bool raw = false) {
    const uint16_t id = next_id_++;
    std::string dgram;
    if (!raw) {
      const uint8_t hdr[8] = {uint8_t(id >> 8), uint8_t(id), 0, 0, 0, 1, 0, 0};
      dgram.assign(reinterpret_cast<const char*>(hdr), 8);
    }
    dgram += text;
    stack_->send_udp(net::UdpPeer{server_mac_, server_ip(), port},
                     {reinterpret_cast<const uint8_t*>(dgram.data()), dgram.size()});
    stack_->flush();
    const uint64_t end = rdtsc() + tsc_hz();
    while (rdtsc() < end) {
      stack_->poll();
      auto it = collector_->replies.find(id);
      if (it != collector_->replies.end() && it->second.parts.size() == it->second.total) {
        std::string all;
        for (auto& [seq, part] : it->second.parts) all += part;
        last_sizes_ = it->second.sizes;
        last_total_ = it->second.total;
        collector_->replies.erase(it);
        return all;
      }
    }
    return "<timeout>";
  }

  static uint64_t stat(const std::string& name) {
    const std::string s = request("stats\r\n");
    const std::string key = "STAT " + name + " ";
    const size_t at = s.find(key);
    if (at == std::string::npos) return 0;
    return std::stoull(s.substr(at + key.size()));
  }

  static inline pid_t server_pid_ = -1;
  static inline int server_status_ = -1;
  static inline std::string socket_, log_;
  static inline std::unique_ptr<net::Port> port_;
  static inline net::Stack* stack_ = nullptr;
  static inline Collector* collector_ = nullptr;
  static inline net::Identity me_;
  static inline net::MacAddr server_mac_;
  static inline uint16_t next_id_ = 1;
  static inline std::vector<size_t> last_sizes_;
  static inline uint16_t last_total_ = 0;
};

}  // namespace fm::e2e
