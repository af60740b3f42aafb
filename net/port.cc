// Opening DPDK ports: find the probed device, size queues, create the mbuf pool, start.
#include "net/port.h"

#include <rte_errno.h>
#include <rte_lcore.h>

#include "dataplane/log.h"

namespace fm::net {
namespace {
constexpr const char* kTag = "port";

std::string device_name(const PortOptions& o) {
  if (!o.pci.empty()) return o.pci;
  return o.vdev.substr(0, o.vdev.find(','));
}
}  // namespace

Result<std::unique_ptr<Port>> Port::open(const PortOptions& opts, uint16_t queues) {
  const std::string name = device_name(opts);
  const std::string key = opts.pci.empty() ? "port.vdev" : "port.pci";
  if (name.empty()) return error(Errc::kInvalidArgument, key + " names no device");
  uint16_t pid = 0;
  if (rte_eth_dev_get_port_by_name(name.c_str(), &pid) != 0) {
    return error(Errc::kNotFound,
                 "DPDK has no port named '" + name + "' (" + key +
                     "): the device was not probed; check the spelling, that its PMD is "
                     "installed (librte_net_*), and for af_xdp/af_packet that the interface exists");
  }
  std::unique_ptr<Port> p(new Port());
  p->name_ = name;
  p->id_ = pid;
  p->queues_ = queues;

  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(pid, &info); rc != 0) {
    return error(Errc::kInternal, "rte_eth_dev_info_get(" + name + "): " + rte_strerror(-rc));
  }
  if (queues > info.max_rx_queues || queues > info.max_tx_queues) {
    return error(Errc::kInvalidArgument,
                 "port '" + name + "' supports " + std::to_string(info.max_rx_queues) + " RX / " +
                     std::to_string(info.max_tx_queues) + " TX queues but " +
                     std::to_string(queues) +
                     " dataplane cores need one each (for af_xdp set queue_count, for "
                     "af_packet qpairs in port.vdev)");
  }

  rte_eth_conf conf{};
  constexpr uint64_t kRxCk = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
  constexpr uint64_t kTxCk = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
  if ((info.rx_offload_capa & kRxCk) == kRxCk) {
    conf.rxmode.offloads |= kRxCk;
    p->rx_cksum_ = true;
  }
  if ((info.tx_offload_capa & kTxCk) == kTxCk) {
    conf.txmode.offloads |= kTxCk;
    p->tx_cksum_ = true;
  }
  if (queues > 1 && info.flow_type_rss_offloads != 0) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf =
        (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
  }
  if (int rc = rte_eth_dev_configure(pid, queues, queues, &conf); rc != 0) {
    return error(Errc::kInternal, "rte_eth_dev_configure(" + name + "): " + rte_strerror(-rc));
  }
  uint16_t rxd = opts.rx_desc, txd = opts.tx_desc;
  rte_eth_dev_adjust_nb_rx_tx_desc(pid, &rxd, &txd);

  const std::string pool_name = "mbuf_" + std::to_string(pid);
  const int socket = rte_eth_dev_socket_id(pid) < 0 ? int(rte_socket_id()) : rte_eth_dev_socket_id(pid);
  p->pool_ = rte_pktmbuf_pool_create(pool_name.c_str(), opts.mbufs, opts.mbuf_cache, 0,
                                     RTE_MBUF_DEFAULT_BUF_SIZE, socket);
  if (p->pool_ == nullptr) {
    return error(Errc::kResourceExhausted,
                 "cannot create a pool of " + std::to_string(opts.mbufs) +
                     " mbufs (port.mbufs) for port '" + name + "': " + rte_strerror(rte_errno) +
                     "; raise eal.memory_mb or lower port.mbufs");
  }
  for (uint16_t q = 0; q < queues; ++q) {
    rte_eth_rxconf rxc = info.default_rxconf;
    rxc.offloads = conf.rxmode.offloads;
    if (int rc = rte_eth_rx_queue_setup(pid, q, rxd, socket, &rxc, p->pool_); rc != 0) {
        return error(Errc::kInternal, "rx queue " + std::to_string(q) + " of '" + name +
                                        "': " + rte_strerror(-rc));
    }
    rte_eth_txconf txc = info.default_txconf;
    txc.offloads = conf.txmode.offloads;
    if (int rc = rte_eth_tx_queue_setup(pid, q, txd, socket, &txc); rc != 0) {
        return error(Errc::kInternal, "tx queue " + std::to_string(q) + " of '" + name +
                                        "': " + rte_strerror(-rc));
    }
  }
  if (int rc = rte_eth_dev_start(pid); rc != 0) {
    return error(Errc::kInternal, "rte_eth_dev_start(" + name + "): " + rte_strerror(-rc));
  }
  p->started_ = true;
  rte_ether_addr mac{};
  rte_eth_macaddr_get(pid, &mac);
  std::copy(std::begin(mac.addr_bytes), std::end(mac.addr_bytes), p->mac_.b.begin());
  rte_eth_promiscuous_enable(pid);  // vdevs ignore it; a PCI NIC then sees our configured MAC
  // rte_eth_dev_configure() set the MTU (1500, or the device's maximum when that is smaller);
  // a PMD without the query keeps the Ethernet default.
  if (uint16_t mtu = 0; rte_eth_dev_get_mtu(pid, &mtu) == 0 && mtu != 0) p->mtu_ = mtu;
  FM_LOG_INFO(kTag, "port {} '{}' ({}) up: {} queue pair(s), {}x{} desc, mac {}, mtu {}, "
              "rx-cksum {}, tx-cksum {}", pid, name, info.driver_name, queues, rxd, txd,
              p->mac_.to_string(), p->mtu_, p->rx_cksum_ ? "hw" : "sw",
              p->tx_cksum_ ? "hw" : "sw");
  return p;
}

void Port::close() {
  if (closed_) return;
  closed_ = true;
  if (started_) {
    rte_eth_dev_stop(id_);
    started_ = false;
  }
  rte_eth_dev_close(id_);
  // The pool outlives the port's queues; free it last.
  rte_mempool_free(pool_);
  pool_ = nullptr;
}

Port::~Port() { close(); }

}  // namespace fm::net
