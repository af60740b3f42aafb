// net::Stack over an in-memory ring port (DPDK's net_ring): the order in which a burst reaches
// the app — every datagram announced (on_udp_ahead) before any is handed over, then handed over
// in arrival order, bracketed by on_burst_classified / on_burst_served — with ARP, ICMP and
// drops answered in the same burst.
#include <gtest/gtest.h>

#include <rte_eth_ring.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/eal.h"
#include "net/packet.h"
#include "net/port.h"
#include "net/stack.h"

namespace fm::net {
namespace {

const UdpEndpoint kClient{MacAddr{{0x02, 0, 0, 0, 0, 0x02}}, Ipv4Addr{0x0a4d0002}, 40000};

/// Records every call, in order.
class Recorder final : public UdpHandler {
 public:
  void on_udp(Stack&, const UdpPeer& from, std::span<const uint8_t> p) override {
    EXPECT_EQ(from.port, kClient.port);
    events.push_back("udp " + text(p));
  }
  void on_udp_ahead(std::span<const uint8_t> p) override { events.push_back("ahead " + text(p)); }
  void on_burst_classified() override { events.push_back("classified"); }
  void on_burst_served() override { events.push_back("served"); }

  std::vector<std::string> events;

 private:
  static std::string text(std::span<const uint8_t> p) {
    return std::string(reinterpret_cast<const char*>(p.data()), p.size());
  }
};

class StackBurst : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EalOptions eal;
    eal.lcores = {0};
    eal.hugepages = HugepageMode::kOff;
    eal.memory_mb = 64;
    auto ei = eal_init(eal, "stack_test");
    ASSERT_TRUE(ei.is_ok()) << ei.status().message();
    rx_ = rte_ring_create("stack_rx", 64, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    tx_ = rte_ring_create("stack_tx", 64, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    ASSERT_TRUE(rx_ != nullptr && tx_ != nullptr);
    ASSERT_GE(rte_eth_from_rings("stk", &rx_, 1, &tx_, 1, SOCKET_ID_ANY), 0);
    PortOptions po;
    po.vdev = "net_ring_stk";  // the name rte_eth_from_rings gives it
    po.mbufs = 1023;
    auto port = Port::open(po, 1);
    ASSERT_TRUE(port.is_ok()) << port.status().message();
    port_ = std::move(port.value()).release();
  }

  void SetUp() override {
    ASSERT_NE(port_, nullptr);
    stack_ = std::make_unique<Stack>(*port_, 0, Identity{port_->mac(), NetOptions{}.ip, 11211},
                                     NetOptions{}, &recorder_);
  }

  void TearDown() override {
    void* m = nullptr;
    while (rte_ring_dequeue(tx_, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
  }

  /// Queues one frame of `len` bytes written by `fill` for the stack's next RX burst.
  template <typename Fill>
  void inject(Fill&& fill) {
    rte_mbuf* m = rte_pktmbuf_alloc(port_->pool());
    ASSERT_NE(m, nullptr);
    auto* out = rte_pktmbuf_mtod(m, uint8_t*);
    const size_t len = fill(std::span<uint8_t>(out, rte_pktmbuf_tailroom(m)));
    ASSERT_NE(len, 0u);
    m->data_len = m->pkt_len = uint32_t(len);
    ASSERT_EQ(rte_ring_enqueue(rx_, m), 0);
  }

  void udp(const std::string& payload) {
    inject([&](std::span<uint8_t> out) {
      std::memcpy(out.data() + kUdpHeadersLen, payload.data(), payload.size());
      return write_udp_headers(out, kClient, server(), payload.size(), ip_id_++, true);
    });
  }

  UdpEndpoint server() const { return UdpEndpoint{port_->mac(), NetOptions{}.ip, 11211}; }

  /// Frames the stack sent, as their count.
  size_t sent() {
    size_t n = 0;
    void* m = nullptr;
    while (rte_ring_dequeue(tx_, &m) == 0) {
      rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
      ++n;
    }
    return n;
  }

  static inline rte_ring* rx_ = nullptr;
  static inline rte_ring* tx_ = nullptr;
  static inline Port* port_ = nullptr;  // lives until the process ends (EAL cannot restart)
  Recorder recorder_;
  std::unique_ptr<Stack> stack_;
  uint16_t ip_id_ = 1;
};

TEST_F(StackBurst, EveryDatagramIsAnnouncedBeforeAnyIsHandedOverInArrivalOrder) {
  udp("a");
  // An ARP request for the server and a frame for another address, between the datagrams.
  inject([&](std::span<uint8_t> out) {
    const Identity client{kClient.mac, kClient.ip, kClient.port};
    return build_arp_request(client, NetOptions{}.ip, out);
  });
  udp("b");
  inject([&](std::span<uint8_t> out) {
    UdpEndpoint elsewhere = server();
    elsewhere.ip = Ipv4Addr{0x0a4d0063};
    std::memcpy(out.data() + kUdpHeadersLen, "x", 1);
    return write_udp_headers(out, kClient, elsewhere, 1, ip_id_++, true);
  });
  udp("c");
  EXPECT_EQ(stack_->poll(), 5u);
  EXPECT_EQ(recorder_.events,
            (std::vector<std::string>{"ahead a", "ahead b", "ahead c", "classified", "udp a",
                                      "udp b", "udp c", "served"}));
  EXPECT_EQ(stack_->counters().arp_replies.read(), 1u);
  EXPECT_EQ(stack_->counters().udp_in.read(), 3u);
  EXPECT_EQ(sent(), 1u);  // the ARP reply, answered in the same burst
}

TEST_F(StackBurst, ABurstWithoutDatagramsNeverReachesTheApp) {
  EXPECT_EQ(stack_->poll(), 0u);  // nothing received
  inject([&](std::span<uint8_t> out) {
    const Identity client{kClient.mac, kClient.ip, kClient.port};
    return build_arp_request(client, NetOptions{}.ip, out);
  });
  EXPECT_EQ(stack_->poll(), 1u);
  EXPECT_TRUE(recorder_.events.empty());
  EXPECT_EQ(sent(), 1u);
}

TEST_F(StackBurst, AFullBurstIsAnnouncedWhole) {
  for (int i = 0; i < Stack::kBurst + 3; ++i) udp(std::to_string(i));
  EXPECT_EQ(stack_->poll(), uint32_t(Stack::kBurst));
  ASSERT_EQ(recorder_.events.size(), 2u * Stack::kBurst + 2);
  EXPECT_EQ(recorder_.events[Stack::kBurst - 1], "ahead " + std::to_string(Stack::kBurst - 1));
  EXPECT_EQ(recorder_.events[Stack::kBurst], "classified");
  EXPECT_EQ(recorder_.events[Stack::kBurst + 1], "udp 0");
  EXPECT_EQ(recorder_.events.back(), "served");
  recorder_.events.clear();
  EXPECT_EQ(stack_->poll(), 3u);  // the rest, in the next burst
  EXPECT_EQ(recorder_.events.front(), "ahead " + std::to_string(Stack::kBurst));
}

}  // namespace
}  // namespace fm::net
