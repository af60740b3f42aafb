// The memory node's control plane against its threats (issue #13, 1): an impostor on the socket
// path or its directory, unauthenticated peers, a compute node that tries to resize the pool,
// two compute nodes on one memnode, a connect/close flood, too many clients, and heartbeat loss
// in both directions. In-process memnode servers on private directories under /tmp.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config/memnode_config.h"
#include "memnode/pool.h"
#include "memnode/server.h"
#include "paging/channel.h"
#include "paging/clock.h"
#include "paging/emulated_transport.h"
#include "paging/handshake.h"

namespace fm::memnode {
namespace {

namespace wire = paging::wire;
using namespace std::chrono_literals;
using paging::AuthKey;
using paging::Channel;
using paging::ChannelAddress;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}
#define EXPECT_CONTAINS(s, part) EXPECT_TRUE(contains((s), (part))) << "in: " << (s)

ChannelAddress unix_addr(const std::string& path) {
  auto a = paging::parse_channel_address("unix:" + path, "test");
  EXPECT_TRUE(a.is_ok());
  return a.is_ok() ? *a : ChannelAddress{};
}

/// A private directory under /tmp (mkdtemp: 0700, ours), removed with what is left in it.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/fm-memnode-test.XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    EXPECT_NE(d, nullptr);
    path = d ? d : "";
  }
  ~TempDir() {
    if (path.empty()) return;
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d)) {
        const std::string n = e->d_name;
        if (n != "." && n != "..") ::unlink((path + "/" + n).c_str());
      }
      ::closedir(d);
    }
    ::rmdir(path.c_str());
  }
};

/// A verbs side without a device: leases get rkey 0x7000 + their session, addresses as if the
/// pool were mapped at kBase.
class FakeAcceptor final : public VerbsAcceptor {
 public:
  static constexpr uint64_t kBase = 0x7f0000000000;
  uint64_t pool_addr() const override { return kBase; }
  Result<uint32_t> lease_rkey(uint64_t, uint64_t, uint64_t session) override {
    return uint32_t(0x7000 + session);
  }
  Result<wire::QpInfo> accept(const wire::QpInfo& peer, uint64_t) override {
    wire::QpInfo mine = peer;
    mine.qp_num = peer.qp_num + 1000;
    accepted.fetch_add(1);
    return mine;
  }
  void release(uint64_t) override { released.fetch_add(1); }
  std::atomic<int> accepted{0}, released{0};
};

/// A memnode Server on its own thread, listening at <dir>/m.sock.
struct Memnode {
  TempDir dir;
  config::MemnodeConfig cfg;
  std::unique_ptr<Pool> pool;
  FakeAcceptor acceptor;
  std::unique_ptr<Server> server;
  std::thread thread;
  ChannelAddress addr;

  /// `tweak` edits the config before the server starts (transport, limits, heartbeats).
  explicit Memnode(std::function<void(config::MemnodeConfig&)> tweak = {}, AuthKey key = {},
                   uint64_t pool_bytes = 64ull << 20) {
    cfg.hugepages = HugepageMode::kOff;
    cfg.heartbeat_ms = 100;
    cfg.listen = "unix:" + dir.path + "/m.sock";
    if (tweak) tweak(cfg);
    const bool verbs = cfg.transport == paging::TransportKind::kVerbs;
    auto p = Pool::create(pool_bytes, HugepageMode::kOff,
                          verbs ? Pool::Kind::kOneMapping : Pool::Kind::kMemfdPerLease);
    EXPECT_TRUE(p.is_ok()) << p.status().message();
    pool = std::move(p.value());
    server = std::make_unique<Server>(cfg, *pool, verbs ? &acceptor : nullptr, std::move(key));
    const Status st = server->listen();
    EXPECT_TRUE(st.is_ok()) << st.message();
    addr = unix_addr(dir.path + "/m.sock");
    thread = std::thread([this] { server->run(); });
  }
  ~Memnode() {
    server->stop();
    thread.join();
    server.reset();
  }
};

template <typename F>
bool eventually(F f, std::chrono::milliseconds limit = 3000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return f();
}

paging::HelloRequest request(uint64_t bytes = 1 << 20,
                             wire::TransportKind t = wire::TransportKind::kEmulated) {
  paging::HelloRequest r;
  r.transport = t;
  r.cores = 2;
  r.region_bytes = bytes;
  r.name = "memnode-test";
  return r;
}

Result<paging::Granted> handshake(const Memnode& m, const AuthKey& key = {},
                                  uint64_t bytes = 1 << 20, Channel* keep = nullptr,
                                  wire::TransportKind t = wire::TransportKind::kEmulated) {
  auto ch = Channel::connect(m.addr, 2000);
  if (!ch) return ch.status();
  auto g = paging::client_handshake(*ch, request(bytes, t), key, m.cfg.listen, 2000);
  if (keep) *keep = std::move(ch.value());
  return g;
}

size_t thread_count() {
  size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// The socket's directory: private, or the memnode does not start.

TEST(MemnodeSocket, CreatesAPrivateDirectory) {
  TempDir base;
  const std::string dir = base.path + "/sub";
  ASSERT_TRUE(paging::ensure_private_dir(dir, "memnode.listen").is_ok());
  struct stat st {};
  ASSERT_EQ(::lstat(dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  ::rmdir(dir.c_str());
}

TEST(MemnodeSocket, RefusesADirectoryOthersCanEnter) {
  TempDir base;
  const std::string dir = base.path + "/open";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  auto l = paging::Listener::listen(unix_addr(dir + "/m.sock"), "memnode.listen");
  ASSERT_FALSE(l.is_ok());
  EXPECT_EQ(l.status().code(), Errc::kPermissionDenied);
  EXPECT_CONTAINS(l.status().message(), "memnode.listen: the socket's directory " + dir +
                                            " has mode 0755; it must be private (chmod 700 ");
  ::rmdir(dir.c_str());
}

TEST(MemnodeSocket, RefusesALinkPlantedAtTheDirectory) {
  TempDir base;
  const std::string dir = base.path + "/link";
  ASSERT_EQ(::symlink(base.path.c_str(), dir.c_str()), 0);
  auto l = paging::Listener::listen(unix_addr(dir + "/m.sock"), "memnode.listen");
  ASSERT_FALSE(l.is_ok());
  EXPECT_CONTAINS(l.status().message(), "must be a directory, not a link or file");
}

TEST(MemnodeSocket, RefusesADirectoryAnotherUserCreatedFirst) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a directory owned by another uid";
  TempDir base;
  const std::string dir = base.path + "/theirs";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(::chown(dir.c_str(), 12345, 12345), 0);
  auto l = paging::Listener::listen(unix_addr(dir + "/m.sock"), "memnode.listen");
  ASSERT_FALSE(l.is_ok());
  EXPECT_CONTAINS(l.status().message(), "belongs to uid 12345, not to this user");
  ::rmdir(dir.c_str());
}

// An impostor that listens on the path the compute node was given, as another user: the compute
// node checks the listener's credentials before it takes any memory from it.
TEST(MemnodeSocket, ComputeNodeRefusesAnImpostorOfAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the impostor as another uid";
  TempDir base;
  const std::string dir = base.path + "/impostor";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(::chown(dir.c_str(), 12345, 12345), 0);
  ASSERT_EQ(::chmod(base.path.c_str(), 0711), 0);  // uid 12345 may pass through
  const auto addr = unix_addr(dir + "/m.sock");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setgid(12345) != 0 || ::setuid(12345) != 0) ::_exit(2);
    auto l = paging::Listener::listen(addr, "impostor");
    if (!l) ::_exit(3);
    (void)!::write(ready[1], "x", 1);
    auto ch = l->accept(5000);
    if (ch) {  // offer a challenge, as a memnode would, and wait for the victim to leave
      const wire::Challenge c = paging::make_challenge(false);
      (void)ch->send(&c, sizeof(c));
      std::vector<uint8_t> buf;
      (void)ch->recv(buf, 5000);
    }
    ::_exit(0);
  }
  char x;
  ASSERT_EQ(::read(ready[0], &x, 1), 1);
  auto ch = Channel::connect(addr, 2000);
  ASSERT_TRUE(ch.is_ok()) << ch.status().message();
  auto g = paging::client_handshake(*ch, request(), AuthKey{}, "unix:" + addr.path, 2000);
  ASSERT_FALSE(g.is_ok());
  EXPECT_EQ(g.status().code(), Errc::kPermissionDenied);
  EXPECT_CONTAINS(g.status().message(), "runs as uid 12345, not as this user (uid 0) or root");
  ch->close();
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ::close(ready[0]);
  ::close(ready[1]);
  ::rmdir(dir.c_str());
}

TEST(MemnodeSocket, PeerCredentialsAreChecked) {
  EXPECT_TRUE(uid_allowed(1000, 1000, {}));
  EXPECT_TRUE(uid_allowed(0, 1000, {}));
  EXPECT_FALSE(uid_allowed(1001, 1000, {}));
  EXPECT_TRUE(uid_allowed(1001, 1000, {7, 1001}));
}

// ---------------------------------------------------------------------------------------------
// The shared key.

TEST(MemnodeAuth, KeyFileMustBePrivateAndLongEnough) {
  TempDir d;
  const std::string f = d.path + "/key";
  {
    const int fd = ::open(f.c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "0123456789abcdefXYZ\n", 20), 20);
    ::close(fd);
  }
  ASSERT_EQ(::chmod(f.c_str(), 0644), 0);
  auto k = AuthKey::load(f, "memnode.key_file");
  ASSERT_FALSE(k.is_ok());
  EXPECT_CONTAINS(k.status().message(), "memnode.key_file: the key file " + f +
                                            " has mode 0644; it must be readable by its owner "
                                            "only (chmod 600 ");
  ASSERT_EQ(::chmod(f.c_str(), 0600), 0);
  k = AuthKey::load(f, "memnode.key_file");
  ASSERT_TRUE(k.is_ok()) << k.status().message();
  EXPECT_EQ(k->bytes(), AuthKey::from_secret("0123456789abcdefXYZ").bytes());  // newline cut
  const int fd = ::open(f.c_str(), O_WRONLY | O_TRUNC);
  ASSERT_EQ(::write(fd, "short\n", 6), 6);
  ::close(fd);
  k = AuthKey::load(f, "paging.key_file");
  ASSERT_FALSE(k.is_ok());
  EXPECT_CONTAINS(k.status().message(), "holds 5 bytes; at least 16 are needed");
  k = AuthKey::load(d.path + "/none", "paging.key_file");
  ASSERT_FALSE(k.is_ok());
  EXPECT_CONTAINS(k.status().message(), "paging.key_file: cannot open the key file");
}

TEST(MemnodeAuth, KeyedMemnodeRefusesPeersWithoutTheKey) {
  const AuthKey key = AuthKey::from_secret("the right secret, 32 bytes long!");
  Memnode m({}, key);
  // No key at all: the compute node is told what to set, before it sends anything.
  auto none = handshake(m);
  ASSERT_FALSE(none.is_ok());
  EXPECT_CONTAINS(none.status().message(), "requires a shared key: set paging.key_file");
  // A different key: the memnode refuses the Hello.
  auto wrong = handshake(m, AuthKey::from_secret("a wrong secret of some length"));
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_CONTAINS(wrong.status().message(), "memory node refused: authentication failed");
  EXPECT_EQ(m.pool->leases(), 0u);
  // The key: a lease, and the memnode proved it holds the key too.
  auto ok = handshake(m, key);
  ASSERT_TRUE(ok.is_ok()) << ok.status().message();
  EXPECT_GE(ok->memfd, 0);
  ::close(ok->memfd);
  EXPECT_GE(m.server->refused(), 1u);
}

TEST(MemnodeAuth, ComputeNodeRefusesAMemnodeThatCannotProveTheKey) {
  Memnode m;  // no key: it cannot sign its HelloAck
  auto g = handshake(m, AuthKey::from_secret("a secret only the compute node has"));
  ASSERT_FALSE(g.is_ok());
  EXPECT_EQ(g.status().code(), Errc::kPermissionDenied);
  EXPECT_CONTAINS(g.status().message(), "could not prove it holds the key of paging.key_file");
}

TEST(MemnodeAuth, HelloMacCoversTheChallengeAndEveryField) {
  const AuthKey key = AuthKey::from_secret("0123456789abcdef0123");
  const wire::Challenge c = paging::make_challenge(true);
  wire::Hello h{};
  h.h = wire::make_header<wire::Hello>(wire::MsgType::kHello);
  h.cores = 2;
  h.region_bytes = 1 << 20;
  const auto mac = paging::hello_mac(key, c, h);
  std::memcpy(h.mac, mac.data(), mac.size());
  EXPECT_TRUE(paging::hello_mac_ok(key, c, h));
  wire::Hello bigger = h;
  bigger.region_bytes = 1ull << 40;  // a replayed Hello may not ask for more
  EXPECT_FALSE(paging::hello_mac_ok(key, c, bigger));
  const wire::Challenge other = paging::make_challenge(true);  // nor be replayed at all
  EXPECT_FALSE(paging::hello_mac_ok(key, other, h));
  EXPECT_FALSE(paging::hello_mac_ok(AuthKey::from_secret("0123456789abcdef0124"), c, h));
}

TEST(MemnodeConfigKeys, TcpNeedsAKeyFile) {
  auto c = config::parse_memnode_config(
      "[memnode]\ntransport = \"verbs\"\nlisten = \"tcp:0.0.0.0:7000\"\n", "m.toml");
  ASSERT_FALSE(c.is_ok());
  EXPECT_CONTAINS(c.status().message(), "memnode.key_file");
  EXPECT_CONTAINS(c.status().message(), "required with a tcp: listen address");
  c = config::parse_memnode_config(
      "[memnode]\ntransport = \"verbs\"\nlisten = "
      "\"tcp:0.0.0.0:7000\"\nkey_file = \"/etc/farmem.key\"\n"
      "allow_uids = [1000]\nmax_clients = 4\n",
      "m.toml");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->allow_uids, std::vector<uint32_t>{1000});
  EXPECT_EQ(c->max_clients, 4u);
}

// ---------------------------------------------------------------------------------------------
// Leases: sealed, private, released.

TEST(MemnodeLease, TheMemfdCannotBeResized) {
  Memnode m;
  auto g = handshake(m, {}, 1 << 20);
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  const int fd = g->memfd;
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(uint64_t(st.st_size), g->ack.pool_bytes);
  EXPECT_EQ(g->ack.pool_bytes, 1u << 20);
  EXPECT_NE(::ftruncate(fd, 0), 0);  // what would SIGBUS the memnode's other users
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::ftruncate(fd, off_t(2) << 20), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), 0);  // the seals are sealed
  const int seals = ::fcntl(fd, F_GET_SEALS);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
            F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  ::close(fd);
}

TEST(MemnodeLease, TwoComputeNodesShareAMemnodeWithoutSeeingEachOther) {
  Memnode m({}, {}, 8ull << 20);
  paging::EmulatedOptions o;
  o.latency_ns = 0;
  auto a = paging::EmulatedTransport::connect(o, m.addr, 1, 4 << 20, {}, 2000, paging::tsc_clock());
  ASSERT_TRUE(a.is_ok()) << a.status().message();
  auto b = paging::EmulatedTransport::connect(o, m.addr, 1, 4 << 20, {}, 2000, paging::tsc_clock());
  ASSERT_TRUE(b.is_ok()) << b.status().message();
  EXPECT_EQ(m.pool->leases(), 2u);
  // A third does not fit: refused with the pool's numbers.
  auto c = paging::EmulatedTransport::connect(o, m.addr, 1, 4 << 20, {}, 2000, paging::tsc_clock());
  ASSERT_FALSE(c.is_ok());
  EXPECT_CONTAINS(c.status().message(), "asked for 4 MiB but the pool has 0 MiB free of 8 MiB");

  auto qa = (*a)->create_queue_pair(CoreId{0});
  auto qb = (*b)->create_queue_pair(CoreId{0});
  ASSERT_TRUE(qa.is_ok() && qb.is_ok());
  auto io = [](paging::QueuePair& q, paging::IoOp op, uint64_t off, void* buf) {
    EXPECT_EQ(q.post(op, off, buf, 4096, 1), paging::PostResult::kOk);
    paging::Completion c[1];
    for (int i = 0; i < 100000 && q.poll(c) == 0; ++i) std::this_thread::yield();
    EXPECT_EQ(c[0].status, paging::IoStatus::kOk);
  };
  std::vector<char> pa(4096, 'a'), pb(4096, 'b'), got(4096);
  io(**qa, paging::IoOp::kWrite, 0, pa.data());
  io(**qb, paging::IoOp::kWrite, 0, pb.data());
  io(**qa, paging::IoOp::kRead, 0, got.data());
  EXPECT_EQ(got, pa);  // b's write at the same offset went to b's own lease
  io(**qb, paging::IoOp::kRead, 0, got.data());
  EXPECT_EQ(got, pb);
  // Beyond the lease is a remote error, not the neighbour's memory.
  std::vector<char> far(4096);
  EXPECT_EQ((*qa)->post(paging::IoOp::kRead, 4 << 20, far.data(), 4096, 2),
            paging::PostResult::kOk);
  paging::Completion cc[1];
  for (int i = 0; i < 100000 && (*qa)->poll(cc) == 0; ++i) std::this_thread::yield();
  EXPECT_EQ(cc[0].status, paging::IoStatus::kRemoteError);

  qa->reset();
  a->reset();  // goodbye: the lease returns to the pool
  EXPECT_TRUE(eventually([&] { return m.pool->leases() == 1; }));
  auto d = paging::EmulatedTransport::connect(o, m.addr, 1, 4 << 20, {}, 2000, paging::tsc_clock());
  ASSERT_TRUE(d.is_ok()) << d.status().message();
}

TEST(MemnodeLease, VerbsLeasesAreDisjointZeroedRangesWithTheirOwnKeys) {
  Memnode m(
      [](config::MemnodeConfig& c) {
        c.transport = paging::TransportKind::kVerbs;
        c.heartbeat_ms = 0;  // the held channels send no heartbeats
      },
      {}, 8ull << 20);
  Channel c1, c2;
  auto a = handshake(m, {}, 3 << 20, &c1, wire::TransportKind::kVerbs);
  ASSERT_TRUE(a.is_ok()) << a.status().message();
  auto b = handshake(m, {}, 3 << 20, &c2, wire::TransportKind::kVerbs);
  ASSERT_TRUE(b.is_ok()) << b.status().message();
  EXPECT_EQ(a->memfd, -1);
  EXPECT_NE(a->ack.rkey, b->ack.rkey);
  const uint64_t a0 = a->ack.pool_addr, b0 = b->ack.pool_addr;
  EXPECT_TRUE(a0 + a->ack.pool_bytes <= b0 || b0 + b->ack.pool_bytes <= a0);
  EXPECT_GE(a0, FakeAcceptor::kBase);
  // Leases are zeroed when granted: write into a's range, release it, lease again.
  std::memset(m.pool->base() + (a0 - FakeAcceptor::kBase), 0x5a, 4096);
  c1.close();
  EXPECT_TRUE(eventually([&] { return m.pool->leases() == 1; }));
  Channel c3;
  auto again = handshake(m, {}, 3 << 20, &c3, wire::TransportKind::kVerbs);
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_EQ(again->ack.pool_addr, a0);  // first fit: the freed range
  EXPECT_EQ(m.pool->base()[a0 - FakeAcceptor::kBase], std::byte{0});
}

// ---------------------------------------------------------------------------------------------
// Bounded clients and threads.

TEST(MemnodeLimits, AConnectCloseFloodLeavesNoThreads) {
  Memnode m;
  ASSERT_TRUE(eventually([&] { return m.server->sessions() == 0; }));
  const size_t before = thread_count();
  for (int i = 0; i < 2000; ++i) {
    auto ch = Channel::connect(m.addr, 1000);
    ASSERT_TRUE(ch.is_ok()) << i << ": " << ch.status().message();
  }
  EXPECT_TRUE(eventually([&] { return m.server->sessions() == 0; }, 10000ms))
      << m.server->sessions() << " sessions left";
  EXPECT_TRUE(eventually([&] { return thread_count() <= before + 1; }, 5000ms))
      << thread_count() << " threads, " << before << " before";  // reaped as run() goes
  // And it still serves — once the flood's last connections, which the clients closed while
  // they were still queued in the listen backlog, have been accepted and refused (until then
  // each briefly counts as a session, and on a loaded machine 16 of them may be in flight).
  Result<paging::Granted> g = error(Errc::kInternal, "never tried");
  EXPECT_TRUE(eventually([&] { return (g = handshake(m)).is_ok(); }, 10000ms))
      << g.status().message();
  if (g.is_ok()) ::close(g->memfd);
}

TEST(MemnodeLimits, ClientsBeyondTheLimitAreToldWhy) {
  Memnode m([](config::MemnodeConfig& c) {
    c.max_clients = 3;
    c.heartbeat_ms = 0;  // the held channels send no heartbeats
  });
  std::vector<Channel> held;
  for (int i = 0; i < 3; ++i) {
    Channel ch;
    auto g = handshake(m, {}, 1 << 20, &ch);
    ASSERT_TRUE(g.is_ok()) << g.status().message();
    ::close(g->memfd);
    held.push_back(std::move(ch));
  }
  auto fourth = handshake(m);
  ASSERT_FALSE(fourth.is_ok());
  EXPECT_CONTAINS(
      fourth.status().message(),
      "too many compute nodes: this memory node serves at most 3 (memnode.max_clients)");
  held.pop_back();  // one leaves: room again
  EXPECT_TRUE(eventually([&] { return m.server->sessions() == 2; }));
  auto fifth = handshake(m);
  ASSERT_TRUE(fifth.is_ok()) << fifth.status().message();
  ::close(fifth->memfd);
}

TEST(MemnodeLimits, QueuePairsPerClientAreBounded) {
  Memnode m([](config::MemnodeConfig& c) {
    c.transport = paging::TransportKind::kVerbs;
    c.max_qps_per_client = 4;
    c.heartbeat_ms = 0;
  });
  Channel ch;
  paging::HelloRequest r = request(1 << 20, wire::TransportKind::kVerbs);
  r.cores = 5;
  ASSERT_TRUE((ch = std::move(Channel::connect(m.addr, 2000).value())).is_open());
  auto refused = paging::client_handshake(ch, r, {}, m.cfg.listen, 2000);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_CONTAINS(refused.status().message(), "allows 1 to 4 per compute node");
  // Two announced: the third QpConnect is refused.
  r.cores = 2;
  ch = std::move(Channel::connect(m.addr, 2000).value());
  auto g = paging::client_handshake(ch, r, {}, m.cfg.listen, 2000);
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  for (int i = 0; i < 3; ++i) {
    wire::QpConnect q{};
    q.h = wire::make_header<wire::QpConnect>(wire::MsgType::kQpConnect);
    q.core = uint16_t(i);
    ASSERT_TRUE(ch.send(&q, sizeof(q)).is_ok());
    std::vector<uint8_t> buf;
    for (;;) {
      auto t = ch.recv(buf, 2000);
      ASSERT_TRUE(t.is_ok()) << t.status().message();
      if (*t == wire::MsgType::kHeartbeat) continue;
      EXPECT_EQ(*t, i < 2 ? wire::MsgType::kQpAccept : wire::MsgType::kError) << i;
      break;
    }
  }
  EXPECT_EQ(m.acceptor.accepted.load(), 2);
}

// ---------------------------------------------------------------------------------------------
// Heartbeats, both ways.

TEST(MemnodeHeartbeat, ASilentComputeNodeLosesItsLease) {
  Memnode m([](config::MemnodeConfig& c) { c.heartbeat_ms = 50; });
  Channel ch;  // handshakes, then never sends a heartbeat (a hung compute node)
  auto g = handshake(m, {}, 1 << 20, &ch);
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  ::close(g->memfd);
  EXPECT_EQ(g->ack.heartbeat_ms, 50u);
  EXPECT_EQ(m.pool->leases(), 1u);
  EXPECT_TRUE(eventually([&] { return m.pool->leases() == 0; }, 3000ms));
}

TEST(MemnodeHeartbeat, AHeartbeatingComputeNodeKeepsItsLease) {
  Memnode m([](config::MemnodeConfig& c) { c.heartbeat_ms = 50; });
  paging::EmulatedOptions o;
  auto t = paging::EmulatedTransport::connect(o, m.addr, 1, 1 << 20, {}, 2000, paging::tsc_clock());
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  std::this_thread::sleep_for(600ms);  // 12 intervals
  EXPECT_EQ(m.pool->leases(), 1u);
  EXPECT_TRUE((*t)->alive());
}

// A memnode that hangs (its socket open, nothing sent): the compute node declares it dead after
// three heartbeat intervals, not only on EOF.
TEST(MemnodeHeartbeat, ASilentMemnodeIsDeclaredDead) {
  TempDir dir;
  const auto addr = unix_addr(dir.path + "/m.sock");
  auto l = paging::Listener::listen(addr);
  ASSERT_TRUE(l.is_ok()) << l.status().message();
  std::atomic<bool> release{false};
  std::thread fake([&] {
    auto ch = l->accept(5000);
    ASSERT_TRUE(ch.is_ok());
    const wire::Challenge c = paging::make_challenge(false);
    ASSERT_TRUE(ch->send(&c, sizeof(c)).is_ok());
    auto h = ch->recv_as<wire::Hello>(wire::MsgType::kHello, 5000);
    ASSERT_TRUE(h.is_ok());
    const int fd = ::memfd_create("fake-lease", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    ASSERT_EQ(::ftruncate(fd, off_t(h->region_bytes)), 0);
    ASSERT_EQ(::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    wire::HelloAck ack{};
    ack.h = wire::make_header<wire::HelloAck>(wire::MsgType::kHelloAck);
    ack.pool_bytes = h->region_bytes;
    ack.heartbeat_ms = 40;
    ASSERT_TRUE(ch->send(&ack, sizeof(ack), fd).is_ok());
    ::close(fd);
    while (!release.load()) std::this_thread::sleep_for(5ms);  // hung: reads and sends nothing
  });
  paging::EmulatedOptions o;
  auto t = paging::EmulatedTransport::connect(o, addr, 1, 1 << 20, {}, 2000, paging::tsc_clock());
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(eventually([&] { return !(*t)->alive(); }, 3000ms));
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 100ms);  // three intervals of 40 ms, less the time the handshake took
  release.store(true);
  fake.join();
}

// A lease that is not sealed (a memnode of another make, or an impostor of our own user) is
// refused before it is mapped.
TEST(MemnodeLease, AnUnsealedLeaseIsRefused) {
  TempDir dir;
  const auto addr = unix_addr(dir.path + "/m.sock");
  auto l = paging::Listener::listen(addr);
  ASSERT_TRUE(l.is_ok()) << l.status().message();
  std::thread fake([&] {
    auto ch = l->accept(5000);
    ASSERT_TRUE(ch.is_ok());
    const wire::Challenge c = paging::make_challenge(false);
    ASSERT_TRUE(ch->send(&c, sizeof(c)).is_ok());
    auto h = ch->recv_as<wire::Hello>(wire::MsgType::kHello, 5000);
    ASSERT_TRUE(h.is_ok());
    const int fd = ::memfd_create("unsealed", MFD_CLOEXEC);
    ASSERT_EQ(::ftruncate(fd, off_t(h->region_bytes)), 0);
    wire::HelloAck ack{};
    ack.h = wire::make_header<wire::HelloAck>(wire::MsgType::kHelloAck);
    ack.pool_bytes = h->region_bytes;
    ASSERT_TRUE(ch->send(&ack, sizeof(ack), fd).is_ok());
    ::close(fd);
    std::vector<uint8_t> buf;
    (void)ch->recv(buf, 2000);
  });
  paging::EmulatedOptions o;
  auto t = paging::EmulatedTransport::connect(o, addr, 1, 1 << 20, {}, 2000, paging::tsc_clock());
  ASSERT_FALSE(t.is_ok());
  EXPECT_CONTAINS(t.status().message(), "not sealed against resizing");
  fake.join();
}

}  // namespace
}  // namespace fm::memnode
