// A DPDK ethdev port (vdev or PCI) with one RX/TX queue pair per dataplane core.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "dataplane/ids.h"
#include "dataplane/result.h"
#include "net/packet.h"

namespace fm::net {

/// Port settings; config/ fills them from the [port] table.
struct PortOptions {
  // Any DPDK virtual device spec; the default is the memif server the loadgen connects to.
  std::string vdev = "net_memif0,role=server,socket=/tmp/farmem-memif.sock,socket-abstract=no,mac=02:fa:00:00:00:01";
  // A PCI address ("0000:3b:00.0"); when set it is used instead of vdev.
  std::string pci;
  // Descriptors per RX/TX queue: enough for a 32-packet burst per poll with slack.
  uint16_t rx_desc = 1024;
  uint16_t tx_desc = 1024;
  // Mbufs in the port's pool: every RX ring full plus TX in flight plus per-core caches.
  uint32_t mbufs = 16383;
  // Per-lcore mempool cache (DPDK's recommendation: a divisor of mbufs+1, <= 512).
  uint16_t mbuf_cache = 256;
};

/// An opened, configured port. Control path creates and closes it; the data path calls
/// rx/tx on the queue its core owns.
class Port {
 public:
  /// Finds the device named by opts (already probed by EAL), configures `queues` RX/TX queue
  /// pairs and a mempool, and starts it. Control path.
  static Result<std::unique_ptr<Port>> open(const PortOptions& opts, uint16_t queues);
  ~Port();
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  /// Stops and closes the port (also done by the destructor). Control path, after every core
  /// stopped polling it: DPDK 22.11's memif PMD can crash if a port closes under a poller.
  void close();

  uint16_t id() const { return id_; }
  uint16_t queues() const { return queues_; }
  const MacAddr& mac() const { return mac_; }
  const std::string& name() const { return name_; }
  rte_mempool* pool() const { return pool_; }
  /// True when the PMD verifies IPv4/UDP checksums on RX (flags in each mbuf say the verdict).
  bool rx_cksum_offload() const { return rx_cksum_; }
  /// True when the PMD computes IPv4 and UDP checksums on TX.
  bool tx_cksum_offload() const { return tx_cksum_; }
  /// The port's IPv4 MTU as DPDK reports it after start (1500 unless the device says otherwise).
  uint16_t mtu() const { return mtu_; }

  /// Owner core of queue `q` only.
  uint16_t rx_burst(uint16_t q, rte_mbuf** pkts, uint16_t n) {
    return rte_eth_rx_burst(id_, q, pkts, n);
  }
  uint16_t tx_burst(uint16_t q, rte_mbuf** pkts, uint16_t n) {
    return rte_eth_tx_burst(id_, q, pkts, n);
  }

 private:
  Port() = default;
  std::string name_;
  uint16_t id_ = 0;
  uint16_t queues_ = 0;
  MacAddr mac_;
  rte_mempool* pool_ = nullptr;
  bool rx_cksum_ = false;
  bool tx_cksum_ = false;
  uint16_t mtu_ = RTE_ETHER_MTU;
  bool started_ = false;
  bool closed_ = false;
};

}  // namespace fm::net
