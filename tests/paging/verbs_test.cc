// The verbs transport without hardware: control messages over real sockets, QP attribute
// builders, completion mapping, queue bookkeeping, and the clear errors when no RDMA device (or
// no libibverbs) exists. VerbsHw.* needs a device and skips with the reason when there is none.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "memnode/verbs_pool.h"
#include "paging/channel.h"
#include "paging/memnode_wire.h"
#include "paging/options.h"
#include "paging/verbs_transport.h"

#if FM_HAVE_VERBS
#include "paging/verbs_common.h"
#endif

namespace fm::paging {
namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

#define EXPECT_CONTAINS(s, part) EXPECT_TRUE(contains((s), (part))) << "in: " << (s)

// ---------------------------------------------------------------------------------------------
// Wire layouts and round trips (no libibverbs needed).

TEST(VerbsWire, FieldOffsetsAreFixed) {
  EXPECT_EQ(offsetof(wire::QpInfo, qp_num), 0u);
  EXPECT_EQ(offsetof(wire::QpInfo, psn), 4u);
  EXPECT_EQ(offsetof(wire::QpInfo, lid), 8u);
  EXPECT_EQ(offsetof(wire::QpInfo, port), 10u);
  EXPECT_EQ(offsetof(wire::QpInfo, gid_index), 11u);
  EXPECT_EQ(offsetof(wire::QpInfo, mtu), 12u);
  EXPECT_EQ(offsetof(wire::QpInfo, gid), 16u);
  EXPECT_EQ(offsetof(wire::QpConnect, core), 16u);
  EXPECT_EQ(offsetof(wire::QpConnect, qp), 20u);
  EXPECT_EQ(offsetof(wire::QpAccept, qp), 20u);
  EXPECT_EQ(offsetof(wire::HelloAck, pool_bytes), 16u);
  EXPECT_EQ(offsetof(wire::HelloAck, pool_addr), 24u);
  EXPECT_EQ(offsetof(wire::HelloAck, rkey), 32u);
  EXPECT_EQ(offsetof(wire::Hello, transport), 16u);
  EXPECT_EQ(offsetof(wire::Hello, cores), 18u);
  EXPECT_EQ(offsetof(wire::Hello, name), 24u);
  EXPECT_EQ(offsetof(wire::ErrorMsg, reason), 16u);
}

/// Two connected channels over a Unix socketpair.
struct Pair {
  Channel a, b;
  Pair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    a = Channel(fds[0]);
    b = Channel(fds[1]);
  }
};

wire::QpInfo sample_qp(uint32_t qp_num, uint8_t gid_tail) {
  wire::QpInfo q{};
  q.qp_num = qp_num;
  q.psn = 0xabcdef;
  q.lid = 7;
  q.port = 1;
  q.gid_index = 3;
  q.mtu = 5;
  for (int i = 0; i < 16; ++i) q.gid[i] = uint8_t(0xf0 + i);
  q.gid[15] = gid_tail;
  return q;
}

TEST(VerbsWire, HelloAndAckRoundTrip) {
  Pair p;
  wire::Hello hello{};
  hello.h = wire::make_header<wire::Hello>(wire::MsgType::kHello);
  hello.transport = uint16_t(wire::TransportKind::kVerbs);
  hello.cores = 12;
  std::strcpy(hello.name, "compute-7");
  ASSERT_TRUE(p.a.send(&hello, sizeof(hello)).is_ok());
  auto got = p.b.recv_as<wire::Hello>(wire::MsgType::kHello, 1000);
  ASSERT_TRUE(got.is_ok()) << got.status().message();
  EXPECT_TRUE(wire::header_ok(got->h, wire::MsgType::kHello, sizeof(wire::Hello)));
  EXPECT_EQ(got->transport, uint16_t(wire::TransportKind::kVerbs));
  EXPECT_EQ(got->cores, 12);
  EXPECT_STREQ(got->name, "compute-7");

  wire::HelloAck ack{};
  ack.h = wire::make_header<wire::HelloAck>(wire::MsgType::kHelloAck);
  ack.pool_bytes = 1ull << 34;
  ack.pool_addr = 0x7f1234560000;
  ack.rkey = 0xdeadbeef;
  ASSERT_TRUE(p.b.send(&ack, sizeof(ack)).is_ok());
  auto a = p.a.recv_as<wire::HelloAck>(wire::MsgType::kHelloAck, 1000);
  ASSERT_TRUE(a.is_ok()) << a.status().message();
  EXPECT_EQ(a->pool_bytes, 1ull << 34);
  EXPECT_EQ(a->pool_addr, 0x7f1234560000u);
  EXPECT_EQ(a->rkey, 0xdeadbeefu);
}

TEST(VerbsWire, QpConnectAndAcceptRoundTrip) {
  Pair p;
  wire::QpConnect c{};
  c.h = wire::make_header<wire::QpConnect>(wire::MsgType::kQpConnect);
  c.core = 5;
  c.qp = sample_qp(0x1234, 0x11);
  ASSERT_TRUE(p.a.send(&c, sizeof(c)).is_ok());
  auto got = p.b.recv_as<wire::QpConnect>(wire::MsgType::kQpConnect, 1000);
  ASSERT_TRUE(got.is_ok()) << got.status().message();
  EXPECT_EQ(got->core, 5);
  EXPECT_EQ(std::memcmp(&got->qp, &c.qp, sizeof(c.qp)), 0);

  wire::QpAccept acc{};
  acc.h = wire::make_header<wire::QpAccept>(wire::MsgType::kQpAccept);
  acc.core = 5;
  acc.qp = sample_qp(0x99, 0x22);
  ASSERT_TRUE(p.b.send(&acc, sizeof(acc)).is_ok());
  auto back = p.a.recv_as<wire::QpAccept>(wire::MsgType::kQpAccept, 1000);
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_EQ(back->core, 5);
  EXPECT_EQ(back->qp.qp_num, 0x99u);
  EXPECT_EQ(back->qp.psn, 0xabcdefu);
  EXPECT_EQ(back->qp.gid[15], 0x22);
}

TEST(VerbsWire, ErrorBecomesTheRefusalReason) {
  Pair p;
  wire::ErrorMsg e{};
  e.h = wire::make_header<wire::ErrorMsg>(wire::MsgType::kError);
  std::strcpy(e.reason, "this memory node serves the emulated transport, not verbs");
  ASSERT_TRUE(p.b.send(&e, sizeof(e)).is_ok());
  auto a = p.a.recv_as<wire::HelloAck>(wire::MsgType::kHelloAck, 1000);
  ASSERT_FALSE(a.is_ok());
  EXPECT_EQ(a.status().message(),
            "memory node refused: this memory node serves the emulated transport, not verbs");
}

TEST(VerbsWire, WrongTypeIsAnError) {
  Pair p;
  wire::QpAccept acc{};
  acc.h = wire::make_header<wire::QpAccept>(wire::MsgType::kQpAccept);
  ASSERT_TRUE(p.b.send(&acc, sizeof(acc)).is_ok());
  auto a = p.a.recv_as<wire::HelloAck>(wire::MsgType::kHelloAck, 1000);
  ASSERT_FALSE(a.is_ok());
  EXPECT_CONTAINS(a.status().message(), "unexpected control message type 4 of " +
                                            std::to_string(sizeof(wire::QpAccept)) + " bytes");
}

// ---------------------------------------------------------------------------------------------
// Built without libibverbs: the stubs explain.

#if !FM_HAVE_VERBS
TEST(VerbsAbsent, ConnectExplains) {
  ChannelAddress addr;
  auto t = connect_verbs(VerbsOptions{}, addr, 1, 1 << 20, AuthKey{}, 10);
  ASSERT_FALSE(t.is_ok());
  EXPECT_CONTAINS(t.status().message(),
                  "built without libibverbs (meson -Drdma=enabled needs libibverbs-dev)");
}

TEST(VerbsAbsent, PoolExplains) {
  std::vector<std::byte> pool(4096);
  auto p = memnode::VerbsPool::create(VerbsOptions{}, pool.data(), pool.size());
  ASSERT_FALSE(p.is_ok());
  EXPECT_CONTAINS(p.status().message(),
                  "built without libibverbs (meson -Drdma=enabled needs libibverbs-dev)");
  EXPECT_CONTAINS(p.status().message(), "memnode.transport = \"emulated\"");
}
#endif

#if FM_HAVE_VERBS

/// Whether this machine has an RDMA device (ENOSYS or an empty list: none).
bool rdma_device_present() {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (!list) return false;
  ibv_free_device_list(list);
  return n > 0;
}

// ---------------------------------------------------------------------------------------------
// No device on this machine: every entry point says so, naming the config keys.

TEST(VerbsNoDevice, DeviceOpenNamesTheKeys) {
  if (rdma_device_present()) GTEST_SKIP() << "this machine has an RDMA device";
  auto d = verbs::Device::open(VerbsOptions{}, verbs::ConfigKeys{});
  ASSERT_FALSE(d.is_ok());
  EXPECT_EQ(d.status().code(), Errc::kNotFound);
  const std::string& m = d.status().message();
  EXPECT_EQ(m.rfind("no RDMA device found (ibv_get_device_list: ", 0), 0u) << m;
  EXPECT_CONTAINS(m, "use paging.transport = \"emulated\"");
  EXPECT_CONTAINS(m, "paging.verbs.device");
}

TEST(VerbsNoDevice, ConnectVerbsFailsBeforeTouchingTheMemnode) {
  if (rdma_device_present()) GTEST_SKIP() << "this machine has an RDMA device";
  auto addr = parse_channel_address("tcp:127.0.0.1:1", "paging.memnode");
  ASSERT_TRUE(addr.is_ok());
  const auto t0 = std::chrono::steady_clock::now();
  auto t = connect_verbs(VerbsOptions{}, *addr, 4, 1 << 20, AuthKey{}, 5000);
  ASSERT_FALSE(t.is_ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));  // no retry loop
  const std::string& m = t.status().message();
  EXPECT_CONTAINS(m, "no RDMA device found (ibv_get_device_list: ");
  EXPECT_CONTAINS(m, "); use paging.transport = \"emulated\"");
  EXPECT_CONTAINS(m, "paging.verbs.device");
}

TEST(VerbsNoDevice, MemnodePoolNamesItsOwnKeys) {
  if (rdma_device_present()) GTEST_SKIP() << "this machine has an RDMA device";
  std::vector<std::byte> pool(1 << 16);
  VerbsOptions o;
  o.device = "mlx5_0";
  auto p = memnode::VerbsPool::create(o, pool.data(), pool.size());
  ASSERT_FALSE(p.is_ok());
  const std::string& m = p.status().message();
  EXPECT_CONTAINS(m, "no RDMA device found (ibv_get_device_list: ");
  EXPECT_CONTAINS(m, "use memnode.transport = \"emulated\"");
  EXPECT_CONTAINS(m, "verbs.device");
  EXPECT_FALSE(contains(m, "paging.")) << m;
}

// ---------------------------------------------------------------------------------------------
// Device choice and the no-device message (pure).

TEST(VerbsDevice, NoDeviceMessage) {
  verbs::ConfigKeys keys;
  EXPECT_EQ(verbs::no_device_message("Function not implemented", keys),
            "no RDMA device found (ibv_get_device_list: Function not implemented); use "
            "paging.transport = \"emulated\", or install an RDMA NIC (or rdma_rxe soft-RoCE) and "
            "name it in paging.verbs.device");
}

TEST(VerbsDevice, PickFirstNamedOrExplain) {
  verbs::ConfigKeys keys;
  std::vector<std::string> names{"mlx5_0", "mlx5_1"};
  auto first = verbs::pick_device(names, "", keys);
  ASSERT_TRUE(first.is_ok());
  EXPECT_EQ(*first, 0u);
  auto second = verbs::pick_device(names, "mlx5_1", keys);
  ASSERT_TRUE(second.is_ok());
  EXPECT_EQ(*second, 1u);
  auto missing = verbs::pick_device(names, "rxe0", keys);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().message(),
            "paging.verbs.device: RDMA device \"rxe0\" not found; present: mlx5_0, mlx5_1");
  auto none = verbs::pick_device({}, "", keys);
  ASSERT_FALSE(none.is_ok());
  EXPECT_CONTAINS(none.status().message(),
                  "no RDMA device found (ibv_get_device_list: no devices)");
}

// ---------------------------------------------------------------------------------------------
// Local QpInfo from port attributes (pure).

ibv_port_attr active_port(uint8_t link_layer, uint16_t lid) {
  ibv_port_attr a{};
  a.state = IBV_PORT_ACTIVE;
  a.active_mtu = IBV_MTU_4096;
  a.max_mtu = IBV_MTU_4096;
  a.gid_tbl_len = 16;
  a.lid = lid;
  a.link_layer = link_layer;
  return a;
}

ibv_gid some_gid() {
  ibv_gid g{};
  g.raw[0] = 0xfe;
  g.raw[1] = 0x80;
  g.raw[15] = 0x42;
  return g;
}

TEST(VerbsQpInfo, RoceUsesTheGid) {
  auto q = verbs::make_qp_info(active_port(IBV_LINK_LAYER_ETHERNET, 0), 1, 3, some_gid(), 0x321,
                               0x1abcdef, "mlx5_0", verbs::ConfigKeys{});
  ASSERT_TRUE(q.is_ok()) << q.status().message();
  EXPECT_EQ(q->qp_num, 0x321u);
  EXPECT_EQ(q->psn, 0xabcdefu);  // 24 bits
  EXPECT_EQ(q->lid, 0);
  EXPECT_EQ(q->port, 1);
  EXPECT_EQ(q->gid_index, 3);
  EXPECT_EQ(q->mtu, uint32_t(IBV_MTU_4096));
  EXPECT_EQ(q->gid[0], 0xfe);
  EXPECT_EQ(q->gid[15], 0x42);
}

TEST(VerbsQpInfo, InfinibandWithoutGidUsesTheLid) {
  auto q = verbs::make_qp_info(active_port(IBV_LINK_LAYER_INFINIBAND, 17), 2, -1, ibv_gid{}, 9, 1,
                               "mlx5_0", verbs::ConfigKeys{});
  ASSERT_TRUE(q.is_ok()) << q.status().message();
  EXPECT_EQ(q->lid, 17);
  EXPECT_EQ(q->port, 2);
  EXPECT_TRUE(verbs::gid_is_zero(q->gid));
}

TEST(VerbsQpInfo, BadPortOrGidSettingsNameTheKey) {
  verbs::ConfigKeys keys;
  ibv_port_attr down = active_port(IBV_LINK_LAYER_ETHERNET, 0);
  down.state = IBV_PORT_DOWN;
  auto a = verbs::make_qp_info(down, 1, 0, some_gid(), 1, 1, "mlx5_0", keys);
  ASSERT_FALSE(a.is_ok());
  EXPECT_CONTAINS(a.status().message(), "port 1 of RDMA device mlx5_0 is not active");
  EXPECT_CONTAINS(a.status().message(), "paging.verbs.ib_port");

  auto b = verbs::make_qp_info(active_port(IBV_LINK_LAYER_ETHERNET, 0), 1, -1, ibv_gid{}, 1, 1,
                               "mlx5_0", keys);
  ASSERT_FALSE(b.is_ok());
  EXPECT_CONTAINS(b.status().message(), "paging.verbs.gid_index = -1");
  EXPECT_CONTAINS(b.status().message(), "RoCE");

  auto c = verbs::make_qp_info(active_port(IBV_LINK_LAYER_ETHERNET, 0), 1, 16, some_gid(), 1, 1,
                               "mlx5_0", keys);
  ASSERT_FALSE(c.is_ok());
  EXPECT_CONTAINS(c.status().message(), "paging.verbs.gid_index = 16");
  EXPECT_CONTAINS(c.status().message(), "only 16 GID entries");

  auto d = verbs::make_qp_info(active_port(IBV_LINK_LAYER_ETHERNET, 0), 1, 2, ibv_gid{}, 1, 1,
                               "mlx5_0", keys);
  ASSERT_FALSE(d.is_ok());
  EXPECT_CONTAINS(d.status().message(), "the GID entry on port 1 of RDMA device mlx5_0 is empty");

  auto e = verbs::make_qp_info(active_port(IBV_LINK_LAYER_INFINIBAND, 0), 1, -1, ibv_gid{}, 1, 1,
                               "mlx5_0", keys);
  ASSERT_FALSE(e.is_ok());
  EXPECT_CONTAINS(e.status().message(), "has no LID");
}

TEST(VerbsQpInfo, RandomPsnHas24Bits) {
  bool varied = false;
  const uint32_t first = verbs::random_psn();
  for (int i = 0; i < 100; ++i) {
    const uint32_t p = verbs::random_psn();
    EXPECT_LE(p, 0xffffffu);
    varied |= p != first;
  }
  EXPECT_TRUE(varied);
}

// ---------------------------------------------------------------------------------------------
// INIT -> RTR -> RTS attributes (pure).

TEST(VerbsTransitions, Init) {
  auto t = verbs::init_transition(2, IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE);
  EXPECT_EQ(t.attr.qp_state, IBV_QPS_INIT);
  EXPECT_EQ(t.attr.port_num, 2);
  EXPECT_EQ(t.attr.pkey_index, 0);
  EXPECT_EQ(t.attr.qp_access_flags, unsigned(IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE));
  EXPECT_EQ(t.mask, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
}

TEST(VerbsTransitions, RtrWithGids) {
  wire::QpInfo local = sample_qp(0x10, 0x01);
  local.mtu = IBV_MTU_4096;
  local.gid_index = 3;
  wire::QpInfo remote = sample_qp(0x20, 0x02);
  remote.mtu = IBV_MTU_1024;
  remote.psn = 0x123456;
  remote.lid = 0;  // RoCE
  auto r = verbs::rtr_transition(local, remote, 16);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const ibv_qp_attr& a = r->attr;
  EXPECT_EQ(a.qp_state, IBV_QPS_RTR);
  EXPECT_EQ(a.path_mtu, IBV_MTU_1024);  // the smaller side
  EXPECT_EQ(a.dest_qp_num, 0x20u);
  EXPECT_EQ(a.rq_psn, 0x123456u);
  EXPECT_EQ(a.max_dest_rd_atomic, 16);
  EXPECT_EQ(a.min_rnr_timer, verbs::kMinRnrTimer);
  EXPECT_EQ(a.ah_attr.is_global, 1);
  EXPECT_EQ(a.ah_attr.port_num, local.port);
  EXPECT_EQ(a.ah_attr.grh.sgid_index, 3);
  EXPECT_EQ(a.ah_attr.grh.hop_limit, verbs::kHopLimit);
  EXPECT_EQ(std::memcmp(a.ah_attr.grh.dgid.raw, remote.gid, 16), 0);
  EXPECT_EQ(r->mask, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                         IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
}

TEST(VerbsTransitions, RtrWithLids) {
  wire::QpInfo local = sample_qp(0x10, 0);
  std::memset(local.gid, 0, 16);
  local.lid = 4;
  wire::QpInfo remote = sample_qp(0x20, 0);
  std::memset(remote.gid, 0, 16);
  remote.lid = 9;
  auto r = verbs::rtr_transition(local, remote, 8);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->attr.ah_attr.is_global, 0);
  EXPECT_EQ(r->attr.ah_attr.dlid, 9);
  EXPECT_EQ(r->attr.path_mtu, IBV_MTU_4096);
  EXPECT_EQ(r->attr.max_dest_rd_atomic, 8);

  // One side without a GID falls back to LIDs when both have one.
  wire::QpInfo gid_remote = sample_qp(0x20, 7);
  gid_remote.lid = 9;
  auto mixed = verbs::rtr_transition(local, gid_remote, 8);
  ASSERT_TRUE(mixed.is_ok()) << mixed.status().message();
  EXPECT_EQ(mixed->attr.ah_attr.is_global, 0);
  EXPECT_EQ(mixed->attr.ah_attr.dlid, 9);
}

TEST(VerbsTransitions, RtrRejectsAMalformedPeer) {
  wire::QpInfo local = sample_qp(0x10, 1);
  wire::QpInfo remote = sample_qp(0x20, 2);
  remote.mtu = 9;
  auto bad_mtu = verbs::rtr_transition(local, remote, 16);
  ASSERT_FALSE(bad_mtu.is_ok());
  EXPECT_CONTAINS(bad_mtu.status().message(), "peer MTU invalid(9) is invalid");

  remote = sample_qp(0, 2);
  auto bad_qpn = verbs::rtr_transition(local, remote, 16);
  ASSERT_FALSE(bad_qpn.is_ok());
  EXPECT_CONTAINS(bad_qpn.status().message(), "peer queue pair number 0 is invalid");

  // RoCE peer (GID, no LID) but we have no GID: nothing to address it by.
  std::memset(local.gid, 0, 16);
  remote = sample_qp(0x20, 2);
  remote.lid = 0;
  auto no_addr = verbs::rtr_transition(local, remote, 16);
  ASSERT_FALSE(no_addr.is_ok());
  EXPECT_CONTAINS(no_addr.status().message(),
                  "it uses GID addressing but we have no GID; set the same gid_index style");
}

TEST(VerbsTransitions, Rts) {
  wire::QpInfo local = sample_qp(0x10, 1);
  local.psn = 0x1fedcba;  // only 24 bits go on the wire
  auto t = verbs::rts_transition(local, 16);
  EXPECT_EQ(t.attr.qp_state, IBV_QPS_RTS);
  EXPECT_EQ(t.attr.sq_psn, 0xfedcbau);
  EXPECT_EQ(t.attr.timeout, verbs::kAckTimeout);
  EXPECT_EQ(t.attr.retry_cnt, verbs::kRetryCount);
  EXPECT_EQ(t.attr.rnr_retry, verbs::kRnrRetry);
  EXPECT_EQ(t.attr.max_rd_atomic, 16);
  EXPECT_EQ(t.mask, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                        IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
}

TEST(VerbsTransitions, BothSidesAgree) {
  // The compute node's RTR expects the memnode's send PSN and vice versa.
  wire::QpInfo compute = sample_qp(0x111, 1);
  compute.psn = 100;
  wire::QpInfo memnode = sample_qp(0x222, 2);
  memnode.psn = 200;
  auto c_rtr = verbs::rtr_transition(compute, memnode, 16);
  auto m_rtr = verbs::rtr_transition(memnode, compute, 16);
  ASSERT_TRUE(c_rtr.is_ok() && m_rtr.is_ok());
  EXPECT_EQ(c_rtr->attr.rq_psn, verbs::rts_transition(memnode, 16).attr.sq_psn);
  EXPECT_EQ(m_rtr->attr.rq_psn, verbs::rts_transition(compute, 16).attr.sq_psn);
  EXPECT_EQ(c_rtr->attr.dest_qp_num, memnode.qp_num);
  EXPECT_EQ(m_rtr->attr.dest_qp_num, compute.qp_num);
}

// ---------------------------------------------------------------------------------------------
// Completion status mapping: every ibv_wc_status.

struct WcExpect {
  ibv_wc_status status;
  IoStatus io;
  bool peer_gone;
};

TEST(VerbsStatus, EveryWcStatusMaps) {
  const WcExpect table[] = {
      {IBV_WC_SUCCESS, IoStatus::kOk, false},
      {IBV_WC_LOC_LEN_ERR, IoStatus::kRemoteError, false},
      {IBV_WC_LOC_QP_OP_ERR, IoStatus::kRemoteError, false},
      {IBV_WC_LOC_EEC_OP_ERR, IoStatus::kRemoteError, false},
      {IBV_WC_LOC_PROT_ERR, IoStatus::kRemoteError, false},
      {IBV_WC_WR_FLUSH_ERR, IoStatus::kDisconnected, false},
      {IBV_WC_MW_BIND_ERR, IoStatus::kRemoteError, false},
      {IBV_WC_BAD_RESP_ERR, IoStatus::kDisconnected, false},
      {IBV_WC_LOC_ACCESS_ERR, IoStatus::kRemoteError, false},
      {IBV_WC_REM_INV_REQ_ERR, IoStatus::kRemoteError, false},
      {IBV_WC_REM_ACCESS_ERR, IoStatus::kRemoteError, false},
      {IBV_WC_REM_OP_ERR, IoStatus::kRemoteError, false},
      {IBV_WC_RETRY_EXC_ERR, IoStatus::kDisconnected, true},
      {IBV_WC_RNR_RETRY_EXC_ERR, IoStatus::kDisconnected, true},
      {IBV_WC_LOC_RDD_VIOL_ERR, IoStatus::kRemoteError, false},
      {IBV_WC_REM_INV_RD_REQ_ERR, IoStatus::kRemoteError, false},
      {IBV_WC_REM_ABORT_ERR, IoStatus::kDisconnected, true},
      {IBV_WC_INV_EECN_ERR, IoStatus::kRemoteError, false},
      {IBV_WC_INV_EEC_STATE_ERR, IoStatus::kRemoteError, false},
      {IBV_WC_FATAL_ERR, IoStatus::kDisconnected, true},
      {IBV_WC_RESP_TIMEOUT_ERR, IoStatus::kDisconnected, true},
      {IBV_WC_GENERAL_ERR, IoStatus::kDisconnected, false},
      {IBV_WC_TM_ERR, IoStatus::kRemoteError, false},
      {IBV_WC_TM_RNDV_INCOMPLETE, IoStatus::kRemoteError, false},
  };
  // The table covers the whole enum, in order.
  ASSERT_EQ(std::size(table), size_t(IBV_WC_TM_RNDV_INCOMPLETE) + 1);
  for (size_t i = 0; i < std::size(table); ++i) {
    const WcExpect& e = table[i];
    ASSERT_EQ(size_t(e.status), i);
    const verbs::WcClass c = verbs::classify_wc_status(e.status);
    SCOPED_TRACE(ibv_wc_status_str(e.status));
    EXPECT_EQ(c.io, e.io);
    EXPECT_EQ(c.breaks_qp, e.status != IBV_WC_SUCCESS);  // RC: any error stops the QP
    EXPECT_EQ(c.peer_gone, e.peer_gone);
    const std::string m = verbs::wc_status_message(e.status, 0x88);
    EXPECT_CONTAINS(m, ibv_wc_status_str(e.status));
    EXPECT_CONTAINS(m, "vendor_err 0x88");
    EXPECT_FALSE(contains(m, "<unknown>")) << m;
  }
  // A status newer than this code: no data assumed moved, QP assumed broken.
  const verbs::WcClass unknown = verbs::classify_wc_status(ibv_wc_status(200));
  EXPECT_EQ(unknown.io, IoStatus::kDisconnected);
  EXPECT_TRUE(unknown.breaks_qp);
  EXPECT_FALSE(unknown.peer_gone);
}

TEST(VerbsStatus, MessageNamesTheEnum) {
  EXPECT_EQ(verbs::wc_status_message(IBV_WC_REM_ACCESS_ERR, 0x88),
            std::string(ibv_wc_status_str(IBV_WC_REM_ACCESS_ERR)) +
                " (IBV_WC_REM_ACCESS_ERR, vendor_err 0x88)");
}

// ---------------------------------------------------------------------------------------------
// Work requests and queue bookkeeping (pure).

TEST(VerbsPost, ReadAndWriteRequests) {
  alignas(64) static uint8_t frame[4096];
  ibv_send_wr wr;
  ibv_sge sge;
  verbs::fill_send_wr(wr, sge, IoOp::kRead, 0x7f0000000000, 0xabc, 0x3000, frame, 4096, 0x55,
                      0xfeedface12345678);
  EXPECT_EQ(wr.opcode, IBV_WR_RDMA_READ);
  EXPECT_EQ(wr.send_flags, unsigned(IBV_SEND_SIGNALED));
  EXPECT_EQ(wr.wr_id, 0xfeedface12345678u);
  EXPECT_EQ(wr.num_sge, 1);
  EXPECT_EQ(wr.sg_list, &sge);
  EXPECT_EQ(wr.next, nullptr);
  EXPECT_EQ(wr.wr.rdma.remote_addr, 0x7f0000003000u);
  EXPECT_EQ(wr.wr.rdma.rkey, 0xabcu);
  EXPECT_EQ(sge.addr, reinterpret_cast<uint64_t>(frame));
  EXPECT_EQ(sge.length, 4096u);
  EXPECT_EQ(sge.lkey, 0x55u);
  verbs::fill_send_wr(wr, sge, IoOp::kWrite, 0x1000, 7, 0, frame + 64, 64, 8, 1);
  EXPECT_EQ(wr.opcode, IBV_WR_RDMA_WRITE);
  EXPECT_EQ(wr.wr.rdma.remote_addr, 0x1000u);
  EXPECT_EQ(sge.addr, reinterpret_cast<uint64_t>(frame + 64));
}

TEST(VerbsPost, PostErrnoMapping) {
  EXPECT_EQ(verbs::post_errno_result(0), PostResult::kOk);
  EXPECT_EQ(verbs::post_errno_result(ENOMEM), PostResult::kFull);
  EXPECT_EQ(verbs::post_errno_result(EINVAL), PostResult::kDead);
}

ibv_wc wc_of(uint64_t wr_id, ibv_wc_status s) {
  ibv_wc wc{};
  wc.wr_id = wr_id;
  wc.status = s;
  return wc;
}

// The frames and the recovery thread's copy buffer are registered apart: a post names the lkey
// of the buffer its local address lies in (issue #13: rebuilding a verbs node copies pages
// through the second buffer).
TEST(VerbsLocalRanges, EachAddressFindsTheLkeyOfItsOwnBuffer) {
  verbs::LocalRanges r;
  ASSERT_TRUE(r.add(0x10000, 0x8000, 11));  // frames
  ASSERT_TRUE(r.add(0x40000, 0x1000, 22));  // copy buffer
  uint32_t lkey = 0;
  ASSERT_TRUE(r.find(0x10000, 4096, &lkey));
  EXPECT_EQ(lkey, 11u);
  ASSERT_TRUE(r.find(0x17000, 4096, &lkey));  // the last page of the frames
  EXPECT_EQ(lkey, 11u);
  ASSERT_TRUE(r.find(0x40000, 4096, &lkey));
  EXPECT_EQ(lkey, 22u);
  EXPECT_FALSE(r.find(0x17001, 4096, &lkey));      // runs past the frames
  EXPECT_FALSE(r.find(0x3f000, 8192, &lkey));      // starts before the copy buffer
  EXPECT_FALSE(r.find(0x20000, 1, &lkey));         // between them
  EXPECT_FALSE(r.find(UINTPTR_MAX - 10, 4096, &lkey));  // wraps around: never found
}

TEST(VerbsLocalRanges, OverlapsEmptyAndTooManyAreRefused) {
  verbs::LocalRanges r;
  ASSERT_TRUE(r.add(0x10000, 0x8000, 1));
  EXPECT_FALSE(r.add(0x17fff, 2, 2));   // overlaps the end
  EXPECT_FALSE(r.add(0x8000, 0x8001, 3));  // overlaps the start
  EXPECT_FALSE(r.add(0x30000, 0, 4));   // empty
  EXPECT_FALSE(r.add(UINTPTR_MAX - 4, 16, 5));  // wraps around
  EXPECT_EQ(r.size(), 1u);
  ASSERT_TRUE(r.add(0x18000, 0x1000, 6));  // adjacent is fine
  ASSERT_TRUE(r.add(0x20000, 0x1000, 7));
  ASSERT_TRUE(r.add(0x30000, 0x1000, 8));
  EXPECT_FALSE(r.add(0x40000, 0x1000, 9));  // kMax ranges held
  uint32_t lkey = 0;
  ASSERT_TRUE(r.find(0x18000, 0x1000, &lkey));
  EXPECT_EQ(lkey, 6u);
}

TEST(VerbsBook, FullAtMaxOutstandingAndFreedByCompletions) {
  verbs::QpBook book(3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(book.admit(true), PostResult::kOk);
    book.on_posted();
  }
  EXPECT_EQ(book.outstanding(), 3u);
  EXPECT_EQ(book.admit(true), PostResult::kFull);

  const ibv_wc wcs[] = {wc_of(10, IBV_WC_SUCCESS), wc_of(11, IBV_WC_SUCCESS)};
  Completion out[4];
  bool gone = false;
  const ibv_wc* first_error = nullptr;
  EXPECT_EQ(verbs::harvest_completions(wcs, out, book, &gone, &first_error), 2u);
  EXPECT_EQ(out[0].wr_id, 10u);
  EXPECT_EQ(out[1].wr_id, 11u);
  EXPECT_EQ(out[0].status, IoStatus::kOk);
  EXPECT_FALSE(gone);
  EXPECT_EQ(first_error, nullptr);
  EXPECT_EQ(book.outstanding(), 1u);
  EXPECT_EQ(book.admit(true), PostResult::kOk);
}

TEST(VerbsBook, RemoteErrorKillsTheQueuePairNotTheTransport) {
  verbs::QpBook book(8);
  for (int i = 0; i < 3; ++i) book.on_posted();
  const ibv_wc wcs[] = {wc_of(1, IBV_WC_SUCCESS), wc_of(2, IBV_WC_REM_ACCESS_ERR),
                        wc_of(3, IBV_WC_WR_FLUSH_ERR)};
  Completion out[3];
  bool gone = false;
  const ibv_wc* first_error = nullptr;
  ASSERT_EQ(verbs::harvest_completions(wcs, out, book, &gone, &first_error), 3u);
  EXPECT_EQ(out[0].status, IoStatus::kOk);
  EXPECT_EQ(out[1].status, IoStatus::kRemoteError);
  EXPECT_EQ(out[2].status, IoStatus::kDisconnected);
  EXPECT_EQ(out[2].wr_id, 3u);
  ASSERT_NE(first_error, nullptr);
  EXPECT_EQ(first_error->wr_id, 2u);
  EXPECT_FALSE(gone);
  EXPECT_EQ(book.outstanding(), 0u);
  EXPECT_TRUE(book.broken());
  EXPECT_EQ(book.admit(true), PostResult::kDead);
}

TEST(VerbsBook, RetryExceededMeansThePeerIsGone) {
  verbs::QpBook book(8);
  book.on_posted();
  book.on_posted();
  const ibv_wc wcs[] = {wc_of(7, IBV_WC_RETRY_EXC_ERR), wc_of(8, IBV_WC_WR_FLUSH_ERR)};
  Completion out[2];
  bool gone = false;
  const ibv_wc* first_error = nullptr;
  ASSERT_EQ(verbs::harvest_completions(wcs, out, book, &gone, &first_error), 2u);
  EXPECT_TRUE(gone);
  EXPECT_EQ(out[0].status, IoStatus::kDisconnected);
  EXPECT_EQ(out[0].wr_id, 7u);
  EXPECT_EQ(book.admit(true), PostResult::kDead);
}

TEST(VerbsBook, DeadTransportRefusesPostsEvenWithRoom) {
  verbs::QpBook book(8);
  EXPECT_EQ(book.admit(false), PostResult::kDead);
  EXPECT_EQ(book.admit(true), PostResult::kOk);
  book.mark_broken();
  EXPECT_EQ(book.admit(true), PostResult::kDead);
}

TEST(VerbsBook, HarvestStopsAtTheOutputSize) {
  verbs::QpBook book(8);
  for (int i = 0; i < 3; ++i) book.on_posted();
  const ibv_wc wcs[] = {wc_of(1, IBV_WC_SUCCESS), wc_of(2, IBV_WC_SUCCESS),
                        wc_of(3, IBV_WC_SUCCESS)};
  Completion out[2];
  EXPECT_EQ(verbs::harvest_completions(wcs, out, book, nullptr, nullptr), 2u);
  EXPECT_EQ(book.outstanding(), 1u);
}

// ---------------------------------------------------------------------------------------------
// The compute side's control client against a scripted memory node on a Unix socket.

class FakeMemnode {
 public:
  using Script = std::function<void(Channel&)>;
  explicit FakeMemnode(Script script) {
    static std::atomic<int> seq{0};
    // The listener makes the directory (0700) and checks it.
    dir_ = "/tmp/fm-verbs-test-" + std::to_string(getpid()) + "-" + std::to_string(seq++);
    path_ = dir_ + "/m.sock";
    auto addr = parse_channel_address("unix:" + path_, "test");
    EXPECT_TRUE(addr.is_ok());
    addr_ = *addr;
    auto l = Listener::listen(addr_);
    EXPECT_TRUE(l.is_ok()) << l.status().message();
    listener_.emplace(std::move(l.value()));
    thread_ = std::thread([this, script = std::move(script)] {
      auto ch = listener_->accept(5000);
      if (!ch.is_ok()) return;
      script(*ch);
    });
  }
  ~FakeMemnode() {
    join();
    listener_.reset();  // removes the socket
    ::rmdir(dir_.c_str());
  }

  /// Waits for the script to finish.
  void join() {
    if (thread_.joinable()) thread_.join();
  }

  const ChannelAddress& addr() const { return addr_; }

 private:
  std::string dir_, path_;
  ChannelAddress addr_;
  std::optional<Listener> listener_;
  std::thread thread_;
};

constexpr uint64_t kPoolAddr = 0x7f5500000000;
constexpr uint32_t kRkey = 0x1234abcd;
constexpr uint64_t kRegion = 1 << 20;  // the lease every test's compute side asks for

void serve_hello(Channel& ch, uint64_t pool_bytes = kRegion, uint64_t pool_addr = kPoolAddr,
                 uint32_t heartbeat_ms = 0) {
  const wire::Challenge challenge = make_challenge(false);
  ASSERT_TRUE(ch.send(&challenge, sizeof(challenge)).is_ok());
  auto h = ch.recv_as<wire::Hello>(wire::MsgType::kHello, 5000);
  ASSERT_TRUE(h.is_ok()) << h.status().message();
  EXPECT_EQ(h->transport, uint16_t(wire::TransportKind::kVerbs));
  EXPECT_EQ(h->cores, 3);
  wire::HelloAck ack{};
  ack.h = wire::make_header<wire::HelloAck>(wire::MsgType::kHelloAck);
  ack.pool_bytes = pool_bytes;
  ack.pool_addr = pool_addr;
  ack.rkey = kRkey;
  ack.heartbeat_ms = heartbeat_ms;
  ASSERT_TRUE(ch.send(&ack, sizeof(ack)).is_ok());
}

void send_error(Channel& ch, const char* reason) {
  wire::ErrorMsg e{};
  e.h = wire::make_header<wire::ErrorMsg>(wire::MsgType::kError);
  std::strncpy(e.reason, reason, sizeof(e.reason) - 1);
  EXPECT_TRUE(ch.send(&e, sizeof(e)).is_ok());
}

void send_goodbye(Channel& ch) {
  wire::Heartbeat bye{wire::make_header<wire::Heartbeat>(wire::MsgType::kGoodbye), 0};
  EXPECT_TRUE(ch.send(&bye, sizeof(bye)).is_ok());
}

/// Receives until the peer says goodbye or closes; returns the last message type seen.
std::optional<wire::MsgType> drain_until_closed(Channel& ch) {
  std::vector<uint8_t> buf;
  std::optional<wire::MsgType> last;
  for (;;) {
    auto t = ch.recv(buf, 5000);
    if (!t.is_ok()) return last;
    last = *t;
    if (*t == wire::MsgType::kGoodbye) return last;
  }
}

bool wait_dead(const verbs::VerbsControl& c) {
  for (int i = 0; i < 400 && c.alive(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return !c.alive();
}

TEST(VerbsControl, HandshakeAndGoodbyeOnClose) {
  std::atomic<bool> got_goodbye{false};
  FakeMemnode fake([&](Channel& ch) {
    serve_hello(ch, 1 << 30);
    got_goodbye = drain_until_closed(ch) == wire::MsgType::kGoodbye;
  });
  {
    auto c = verbs::VerbsControl::connect(fake.addr(), 3, kRegion, AuthKey{}, 2000);
    ASSERT_TRUE(c.is_ok()) << c.status().message();
    EXPECT_EQ((*c)->hello_ack().pool_bytes, 1ull << 30);
    EXPECT_EQ((*c)->hello_ack().pool_addr, kPoolAddr);
    EXPECT_EQ((*c)->hello_ack().rkey, kRkey);
    EXPECT_TRUE((*c)->alive());
  }
  fake.join();
  EXPECT_TRUE(got_goodbye.load()) << "~VerbsControl must say Goodbye";
}

TEST(VerbsControl, RefusedHelloCarriesTheReason) {
  FakeMemnode fake([](Channel& ch) {
    const wire::Challenge challenge = make_challenge(false);
    ASSERT_TRUE(ch.send(&challenge, sizeof(challenge)).is_ok());
    auto h = ch.recv_as<wire::Hello>(wire::MsgType::kHello, 5000);
    ASSERT_TRUE(h.is_ok());
    send_error(ch, "this memory node serves the emulated transport, not verbs");
    drain_until_closed(ch);
  });
  auto c = verbs::VerbsControl::connect(fake.addr(), 3, kRegion, AuthKey{}, 2000);
  ASSERT_FALSE(c.is_ok());
  EXPECT_CONTAINS(c.status().message(), "memory node at unix:/tmp/fm-verbs-test-");
  EXPECT_CONTAINS(c.status().message(),
                  "memory node refused: this memory node serves the emulated transport, not verbs");
}

TEST(VerbsControl, AckWithoutVerbsPoolIsRefused) {
  FakeMemnode fake([](Channel& ch) {
    serve_hello(ch, 1 << 20, /*pool_addr=*/0);
    drain_until_closed(ch);
  });
  auto c = verbs::VerbsControl::connect(fake.addr(), 3, kRegion, AuthKey{}, 2000);
  ASSERT_FALSE(c.is_ok());
  EXPECT_CONTAINS(c.status().message(), "offers no verbs pool");
  EXPECT_CONTAINS(c.status().message(), "is it running with the verbs transport?");
}

TEST(VerbsControl, UnreachableMemnodeNamesTheAddress) {
  auto addr = parse_channel_address("unix:/tmp/fm-verbs-test-nobody-listens.sock", "test");
  ASSERT_TRUE(addr.is_ok());
  auto c = verbs::VerbsControl::connect(*addr, 3, kRegion, AuthKey{}, 50);
  ASSERT_FALSE(c.is_ok());
  EXPECT_CONTAINS(c.status().message(),
                  "cannot reach the memory node at unix:/tmp/fm-verbs-test-nobody-listens.sock");
}

TEST(VerbsControl, ExchangeQueuePairs) {
  FakeMemnode fake([](Channel& ch) {
    serve_hello(ch);
    std::vector<uint8_t> buf;
    for (;;) {
      auto t = ch.recv(buf, 5000);
      if (!t.is_ok() || *t == wire::MsgType::kGoodbye) return;
      ASSERT_EQ(*t, wire::MsgType::kQpConnect);
      ASSERT_EQ(buf.size(), sizeof(wire::QpConnect));
      wire::QpConnect qc;
      std::memcpy(&qc, buf.data(), sizeof(qc));
      EXPECT_EQ(qc.qp.qp_num, 0x500u + qc.core);
      if (qc.core == 2) {
        send_error(ch, "out of queue pairs");
        continue;
      }
      if (qc.core == 3) continue;  // never answers: the exchange times out
      wire::QpAccept qa{};
      qa.h = wire::make_header<wire::QpAccept>(wire::MsgType::kQpAccept);
      qa.core = qc.core == 4 ? 9 : qc.core;  // core 4 gets a mismatched answer
      qa.qp = sample_qp(0x900 + qc.core, 0x33);
      EXPECT_TRUE(ch.send(&qa, sizeof(qa)).is_ok());
    }
  });
  auto c = verbs::VerbsControl::connect(fake.addr(), 3, kRegion, AuthKey{}, 2000);
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  verbs::VerbsControl& ctl = **c;

  for (uint16_t core : {0, 1}) {
    auto r = ctl.exchange_qp(core, sample_qp(0x500 + core, 0x11), 2000);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ(r->qp_num, 0x900u + core);
    EXPECT_EQ(r->gid[15], 0x33);
  }
  auto refused = ctl.exchange_qp(2, sample_qp(0x502, 0x11), 2000);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_CONTAINS(refused.status().message(), "refused core 2's queue pair: out of queue pairs");

  auto slow = ctl.exchange_qp(3, sample_qp(0x503, 0x11), 100);
  ASSERT_FALSE(slow.is_ok());
  EXPECT_CONTAINS(slow.status().message(),
                  "did not answer within 100 ms while connecting core 3's queue pair");

  auto wrong = ctl.exchange_qp(4, sample_qp(0x504, 0x11), 2000);
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_CONTAINS(wrong.status().message(), "accepted core 9's queue pair, expected core 4");

  EXPECT_TRUE(ctl.alive());  // refusals are not deaths
}

TEST(VerbsControl, GoodbyeMarksTheMemnodeDead) {
  std::atomic<bool> say_goodbye{false};
  FakeMemnode fake([&](Channel& ch) {
    serve_hello(ch);
    wire::Heartbeat hb{wire::make_header<wire::Heartbeat>(wire::MsgType::kHeartbeat), 1};
    EXPECT_TRUE(ch.send(&hb, sizeof(hb)).is_ok());
    while (!say_goodbye.load()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    send_goodbye(ch);
    drain_until_closed(ch);
  });
  auto c = verbs::VerbsControl::connect(fake.addr(), 3, kRegion, AuthKey{}, 2000);
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE((*c)->alive()) << "a heartbeat must not end the connection";
  const auto live = (*c)->liveness();
  say_goodbye = true;
  EXPECT_TRUE(wait_dead(**c));
  EXPECT_FALSE(live->alive.load());
  auto r = (*c)->exchange_qp(0, sample_qp(0x500, 1), 1000);
  ASSERT_FALSE(r.is_ok());
  EXPECT_CONTAINS(r.status().message(), "is gone; cannot connect core 0's queue pair");
}

TEST(VerbsControl, ClosedChannelMarksTheMemnodeDead) {
  FakeMemnode fake([](Channel& ch) {
    serve_hello(ch);
    ch.close();  // the memnode process died: the kernel closes its socket
  });
  auto c = verbs::VerbsControl::connect(fake.addr(), 3, kRegion, AuthKey{}, 2000);
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_TRUE(wait_dead(**c));
}

TEST(VerbsControl, DeathWakesAWaitingExchange) {
  FakeMemnode fake([](Channel& ch) {
    serve_hello(ch);
    std::vector<uint8_t> buf;
    auto t = ch.recv(buf, 5000);  // the QpConnect: die instead of answering
    EXPECT_TRUE(t.is_ok());
    ch.close();
  });
  auto c = verbs::VerbsControl::connect(fake.addr(), 3, kRegion, AuthKey{}, 2000);
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = (*c)->exchange_qp(1, sample_qp(0x501, 1), 5000);
  ASSERT_FALSE(r.is_ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_CONTAINS(r.status().message(), "went away while connecting core 1's queue pair");
}

TEST(VerbsControl, FatalCompletionMarksDead) {
  FakeMemnode fake([](Channel& ch) {
    serve_hello(ch);
    drain_until_closed(ch);
  });
  auto c = verbs::VerbsControl::connect(fake.addr(), 3, kRegion, AuthKey{}, 2000);
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  (*c)->mark_dead("transport retry counter exceeded");
  EXPECT_FALSE((*c)->alive());
}

// ---------------------------------------------------------------------------------------------
// Hardware: a loopback compute node and memory node on one RDMA device (suite `hw`).
// FM_VERBS_DEVICE / FM_VERBS_GID_INDEX pick the device and GID (default: first, 0).

TEST(VerbsHw, LoopbackReadWriteErrorsAndDeath) {
  if (!rdma_device_present()) {
    GTEST_SKIP() << "no RDMA device (ibv_get_device_list found none): the hw suite needs an RDMA "
                    "NIC or a soft-RoCE device (rdma link add rxe0 type rxe netdev <if>)";
  }
  VerbsOptions opts;
  if (const char* d = getenv("FM_VERBS_DEVICE")) opts.device = d;
  if (const char* g = getenv("FM_VERBS_GID_INDEX")) opts.gid_index = std::atoi(g);
  opts.max_outstanding = 8;

  constexpr uint64_t kPool = 1 << 20;
  std::vector<uint8_t> pool(kPool + 4096);
  uint8_t* pool_base = pool.data() + (4096 - reinterpret_cast<uintptr_t>(pool.data()) % 4096);
  auto vp = memnode::VerbsPool::create(opts, pool_base, kPool);
  ASSERT_TRUE(vp.is_ok()) << vp.status().message();
  memnode::VerbsPool& vpool = **vp;

  std::atomic<bool> say_goodbye{false};
  FakeMemnode fake([&](Channel& ch) {
    auto h = ch.recv_as<wire::Hello>(wire::MsgType::kHello, 5000);
    ASSERT_TRUE(h.is_ok());
    wire::HelloAck ack{};
    ack.h = wire::make_header<wire::HelloAck>(wire::MsgType::kHelloAck);
    ack.pool_bytes = 2 * kPool;  // a lie: the upper half is not registered (REM_ACCESS_ERR)
    ack.pool_addr = vpool.pool_addr();
    ack.rkey = vpool.rkey();
    ASSERT_TRUE(ch.send(&ack, sizeof(ack)).is_ok());
    std::vector<uint8_t> buf;
    for (;;) {
      if (say_goodbye.load()) {
        send_goodbye(ch);
        drain_until_closed(ch);
        return;
      }
      pollfd p{ch.fd(), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      auto t = ch.recv(buf, 5000);
      if (!t.is_ok() || *t == wire::MsgType::kGoodbye) return;
      if (*t != wire::MsgType::kQpConnect) continue;
      wire::QpConnect qc;
      std::memcpy(&qc, buf.data(), sizeof(qc));
      auto mine = vpool.accept(qc.qp, 1);
      if (!mine.is_ok()) {
        send_error(ch, mine.status().message().c_str());
        continue;
      }
      wire::QpAccept qa{};
      qa.h = wire::make_header<wire::QpAccept>(wire::MsgType::kQpAccept);
      qa.core = qc.core;
      qa.qp = *mine;
      ASSERT_TRUE(ch.send(&qa, sizeof(qa)).is_ok());
    }
  });

  auto t = connect_verbs(opts, fake.addr(), 3, kRegion, AuthKey{}, 5000);
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  Transport& tr = **t;
  EXPECT_STREQ(tr.name(), "verbs");
  EXPECT_EQ(tr.remote_size(), 2 * kPool);
  auto early = tr.create_queue_pair(CoreId{0});
  ASSERT_FALSE(early.is_ok());
  EXPECT_CONTAINS(early.status().message(), "register_local() must come before");

  alignas(4096) static uint8_t frames[16 * 4096];
  ASSERT_TRUE(tr.register_local(frames, sizeof(frames)).is_ok());
  auto qp_or = tr.create_queue_pair(CoreId{0});
  ASSERT_TRUE(qp_or.is_ok()) << qp_or.status().message();
  QueuePair& qp = **qp_or;
  EXPECT_EQ(vpool.queue_pairs(), 1u);

  auto wait_one = [&](QueuePair& q) {
    Completion c[1];
    for (int i = 0; i < 2000000; ++i) {
      if (q.poll(c) == 1) return c[0];
    }
    ADD_FAILURE() << "no completion";
    return Completion{~0ull, IoStatus::kDisconnected};
  };

  // WRITE a page, see it land in the pool; READ another back.
  for (int i = 0; i < 4096; ++i) frames[i] = uint8_t(i * 7);
  ASSERT_EQ(qp.post(IoOp::kWrite, 8192, frames, 4096, 42), PostResult::kOk);
  Completion w = wait_one(qp);
  EXPECT_EQ(w.wr_id, 42u);
  EXPECT_EQ(w.status, IoStatus::kOk);
  EXPECT_EQ(std::memcmp(pool_base + 8192, frames, 4096), 0);
  for (int i = 0; i < 4096; ++i) pool_base[4 * 4096 + i] = uint8_t(i * 13);
  ASSERT_EQ(qp.post(IoOp::kRead, 4 * 4096, frames + 4096, 4096, 43), PostResult::kOk);
  Completion r = wait_one(qp);
  EXPECT_EQ(r.wr_id, 43u);
  EXPECT_EQ(r.status, IoStatus::kOk);
  EXPECT_EQ(std::memcmp(frames + 4096, pool_base + 4 * 4096, 4096), 0);

  // max_outstanding, then kFull; completions in post order.
  for (uint64_t i = 0; i < opts.max_outstanding; ++i) {
    ASSERT_EQ(qp.post(IoOp::kRead, i * 4096, frames + (i % 16) * 4096, 4096, 100 + i),
              PostResult::kOk);
  }
  EXPECT_EQ(qp.outstanding(), opts.max_outstanding);
  EXPECT_EQ(qp.post(IoOp::kRead, 0, frames, 4096, 999), PostResult::kFull);
  for (uint64_t i = 0; i < opts.max_outstanding; ++i) {
    Completion c = wait_one(qp);
    EXPECT_EQ(c.wr_id, 100 + i);
    EXPECT_EQ(c.status, IoStatus::kOk);
  }
  EXPECT_EQ(qp.outstanding(), 0u);

  // A READ outside the registered pool: the memnode's HCA refuses; the QP is dead after it.
  ASSERT_EQ(qp.post(IoOp::kRead, kPool, frames, 4096, 77), PostResult::kOk);
  Completion bad = wait_one(qp);
  EXPECT_EQ(bad.wr_id, 77u);
  EXPECT_EQ(bad.status, IoStatus::kRemoteError);
  EXPECT_EQ(qp.post(IoOp::kRead, 0, frames, 4096, 78), PostResult::kDead);
  EXPECT_TRUE(tr.alive());

  // The memnode leaves: alive() turns false, new posts are refused.
  auto qp2_or = tr.create_queue_pair(CoreId{1});
  ASSERT_TRUE(qp2_or.is_ok()) << qp2_or.status().message();
  say_goodbye = true;
  for (int i = 0; i < 400 && tr.alive(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_FALSE(tr.alive());
  EXPECT_EQ((*qp2_or)->post(IoOp::kRead, 0, frames, 4096, 1), PostResult::kDead);
  Completion none[1];
  EXPECT_EQ((*qp2_or)->poll(none), 0u);
  vpool.release(1);
  EXPECT_EQ(vpool.queue_pairs(), 0u);
}

#endif  // FM_HAVE_VERBS

}  // namespace
}  // namespace fm::paging
