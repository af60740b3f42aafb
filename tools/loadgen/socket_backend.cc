// The kernel-socket backend: connected UDP sockets, sendmmsg/recvmmsg, one pinned thread per
// core driving its share of the --queues socket sets. Drives any memcached-UDP server (stock
// `memcached -U`), with the same engine, schedule and measurement as the DPDK backend, so the
// two compare like for like.
#include <arpa/inet.h>
#include <fmt/core.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "dataplane/core_loop.h"
#include "dataplane/log.h"
#include "tools/loadgen/backend.h"
#include "tools/loadgen/tsc_clock.h"
#include "tools/loadgen/tuning.h"

namespace fm::loadgen {
namespace {

/// One core's sockets (one per flow) as an Engine transport. Owner thread only.
class SocketTransport {
 public:
  static constexpr uint32_t kBatch = kSocketBatch;
  static constexpr size_t kBufLen = 2048;  // >= kMaxRequestLen and any one reply datagram
  static_assert(kBufLen >= kMaxRequestLen && kBufLen >= kMaxDatagramLen);

  ~SocketTransport() {
    for (auto& f : flows_)
      if (f.fd >= 0) ::close(f.fd);
  }

  /// Opens and connects `flows` sockets bound to ports first_port.. on any local address.
  static Result<std::unique_ptr<SocketTransport>> open(const sockaddr_in& server,
                                                       uint16_t first_port, uint32_t flows) {
    std::unique_ptr<SocketTransport> t(new SocketTransport());
    t->flows_.resize(flows);
    for (uint32_t i = 0; i < flows; ++i) {
      Flow& f = t->flows_[i];
      f.fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (f.fd < 0)
        return error(Errc::kInternal, fmt::format("socket(): {}", std::strerror(errno)));
      const int big = kSocketBufferBytes;
      // Large buffers so a burst of replies is not dropped by our own socket; FORCE needs
      // CAP_NET_ADMIN and silently falls back to the capped size without it.
      if (::setsockopt(f.fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) != 0)
        (void)::setsockopt(f.fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
      if (::setsockopt(f.fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) != 0)
        (void)::setsockopt(f.fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
      sockaddr_in local{};
      local.sin_family = AF_INET;
      local.sin_addr.s_addr = htonl(INADDR_ANY);
      local.sin_port = htons(uint16_t(first_port + i));
      if (::bind(f.fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
        return error(Errc::kUnavailable, fmt::format("--src-port: cannot bind UDP port {}: {}",
                                                     first_port + i, std::strerror(errno)));
      }
      if (::connect(f.fd, reinterpret_cast<const sockaddr*>(&server), sizeof server) != 0) {
        return error(Errc::kUnavailable, fmt::format("--server-ip: cannot connect a UDP socket "
                                                     "to the server: {}",
                                                     std::strerror(errno)));
      }
      f.tx_buf.resize(size_t(kBatch) * kBufLen);
      f.rx_buf.resize(size_t(kBatch) * kBufLen);
      for (uint32_t j = 0; j < kBatch; ++j) {
        f.tx_iov[j] = {f.tx_buf.data() + j * kBufLen, 0};
        f.tx_msg[j] = {};
        f.tx_msg[j].msg_hdr.msg_iov = &f.tx_iov[j];
        f.tx_msg[j].msg_hdr.msg_iovlen = 1;
        f.rx_iov[j] = {f.rx_buf.data() + j * kBufLen, kBufLen};
        f.rx_msg[j] = {};
        f.rx_msg[j].msg_hdr.msg_iov = &f.rx_iov[j];
        f.rx_msg[j].msg_hdr.msg_iovlen = 1;
      }
    }
    return t;
  }

  uint64_t now() const { return rdtsc_now(); }

  std::span<uint8_t> tx_begin(uint32_t flow) {
    Flow& f = flows_[flow];
    if (f.tx_n == kBatch) flush_flow(f);
    return {f.tx_buf.data() + size_t(f.tx_n) * kBufLen, kBufLen};
  }

  void tx_commit(uint32_t flow, size_t len) {
    Flow& f = flows_[flow];
    f.tx_iov[f.tx_n].iov_len = len;
    ++f.tx_n;
  }

  uint64_t tx_flush() {
    for (Flow& f : flows_)
      if (f.tx_n) flush_flow(f);
    const uint64_t r = refused_;
    refused_ = 0;
    return r;
  }

  template <class Sink>
  uint32_t rx_poll(Sink& sink) {
    uint32_t total = 0;
    for (uint32_t i = 0; i < flows_.size(); ++i) {
      Flow& f = flows_[i];
      for (uint32_t j = 0; j < kBatch; ++j) f.rx_msg[j].msg_hdr.msg_flags = 0;
      const int n = ::recvmmsg(f.fd, f.rx_msg, kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) continue;
      const uint64_t now = rdtsc_now();
      for (int j = 0; j < n; ++j) {
        sink.on_datagram(
            i, std::span<const uint8_t>(f.rx_buf.data() + size_t(j) * kBufLen, f.rx_msg[j].msg_len),
            now);
      }
      total += uint32_t(n);
    }
    return total;
  }

 private:
  struct Flow {
    int fd = -1;
    uint32_t tx_n = 0;
    std::vector<uint8_t> tx_buf, rx_buf;
    iovec tx_iov[kBatch], rx_iov[kBatch];
    mmsghdr tx_msg[kBatch], rx_msg[kBatch];
  };

  void flush_flow(Flow& f) {
    uint32_t done = 0;
    while (done < f.tx_n) {
      const int n = ::sendmmsg(f.fd, f.tx_msg + done, f.tx_n - done, MSG_DONTWAIT);
      if (n > 0) {
        done += uint32_t(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      // EAGAIN (socket buffer full) or ECONNREFUSED (nothing listening, reported by ICMP):
      // the datagram is lost, as on a full NIC queue; it will time out.
      refused_ += f.tx_n - done;
      break;
    }
    f.tx_n = 0;
  }

  SocketTransport() = default;
  std::vector<Flow> flows_;
  uint64_t refused_ = 0;
};

/// Asks the server for its version until it answers: fail fast when nothing listens.
Status probe(const sockaddr_in& server, double timeout_s, const std::string& name) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return error(Errc::kInternal, fmt::format("socket(): {}", std::strerror(errno)));
  timeval tv{0, 200000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const uint8_t req[] = {0xfe, 0xed, 0,   0,   0,   1,   0,    0,   'v',
                         'e',  'r',  's', 'i', 'o', 'n', '\r', '\n'};
  const int tries = std::max(1, int(timeout_s / 0.2));
  for (int i = 0; i < tries && !stop_requested(); ++i) {
    ::sendto(fd, req, sizeof req, 0, reinterpret_cast<const sockaddr*>(&server), sizeof server);
    uint8_t buf[2048];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n >= 8 && buf[0] == 0xfe && buf[1] == 0xed) {
      ::close(fd);
      return Status::ok();
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNREFUSED && errno != EINTR)
      break;
    if (n < 0 && errno == ECONNREFUSED) ::usleep(200000);
  }
  ::close(fd);
  return error(Errc::kUnavailable,
               fmt::format("no memcached answered 'version' over UDP at {} within {} s "
                           "(--server-ip/--server-port; stock memcached needs -U <port>)",
                           name, timeout_s));
}

class SocketBackend : public Backend {
 public:
  static Result<std::unique_ptr<Backend>> create(const Options& o, uint32_t flows,
                                                 const ValueSizes* values) {
    std::unique_ptr<SocketBackend> b(new SocketBackend());
    b->o_ = &o;
    b->hz_ = tsc_hz_calibrated();
    sockaddr_in server{};
    server.sin_family = AF_INET;
    server.sin_port = htons(o.server_port);
    if (::inet_pton(AF_INET, o.server_ip.c_str(), &server.sin_addr) != 1) {
      return error(Errc::kInvalidArgument,
                   fmt::format("--server-ip: '{}' is not an IPv4 address", o.server_ip));
    }
    const std::string name = fmt::format("{}:{}", o.server_ip, o.server_port);
    FM_RETURN_IF_ERROR(probe(server, o.connect_timeout_s, name));
    const EngineConfig ec = engine_config(o, b->hz_, flows, values, &stop_requested);
    for (uint32_t q = 0; q < o.queue_count; ++q) {
      auto c = std::make_unique<SocketSet>();
      auto t = SocketTransport::open(server, uint16_t(o.src_port + q * flows), flows);
      if (!t) return t.status();
      c->transport = std::move(t.value());
      c->engine = std::make_unique<Engine<SocketTransport>>(*c->transport, ec);
      b->sets_.push_back(std::move(c));
    }
    const uint32_t nl = uint32_t(o.lcores.size());
    for (uint32_t i = 0; i < nl; ++i) {
      auto c = std::make_unique<Core>();
      c->cpu = o.lcores[i];
      c->sets = queues_of_lcore(i, nl, o.queue_count);
      for (uint32_t q : c->sets) c->engines.push_back(b->sets_[q]->engine.get());
      b->cores_.push_back(std::move(c));
    }
    return std::unique_ptr<Backend>(std::move(b));
  }

  double hz() const override { return hz_; }
  uint32_t cores() const override { return uint32_t(cores_.size()); }
  uint32_t engines() const override { return uint32_t(sets_.size()); }
  std::string describe() const override {
    return fmt::format("kernel UDP sockets, {} socket set(s) on {} thread(s), server {}:{}",
                       sets_.size(), cores_.size(), o_->server_ip, o_->server_port);
  }

  PreloadResult preload(uint64_t keys, uint32_t window, uint32_t retries) override {
    const uint32_t n = engines();
    std::vector<PreloadResult> per_set(n);
    run_threads([&](uint32_t, Core& c) {
      for (uint32_t q : c.sets) per_set[q] = sets_[q]->engine->preload(q, n, keys, window, retries);
    });
    PreloadResult total;
    for (const PreloadResult& r : per_set) {
      total.stored += r.stored;
      total.failed += r.failed;
    }
    return total;
  }

  std::vector<CoreResult> run_point(const PointSpec& p, std::span<ProgressSlot> progress) override {
    const uint32_t n = engines();
    const uint64_t start =
        rdtsc_now() + uint64_t(kSocketStartDelayS * hz_);  // threads are up by then
    std::vector<CoreResult> out(n);
    run_threads([&](uint32_t, Core& c) {
      std::vector<CoreResult> r =
          run_lcore_point<SocketTransport>(c.engines, c.sets, p, n, hz_, start, progress);
      for (size_t i = 0; i < r.size(); ++i) out[c.sets[i]] = std::move(r[i]);
    });
    return out;
  }

 private:
  struct SocketSet {
    std::unique_ptr<SocketTransport> transport;
    std::unique_ptr<Engine<SocketTransport>> engine;
  };
  struct Core {
    uint32_t cpu = 0;
    std::vector<uint32_t> sets;  // socket sets (engines) this thread drives
    std::vector<Engine<SocketTransport>*> engines;
  };

  /// One thread per core, pinned to its CPU, running fn(i, core); joins them all.
  template <class Fn>
  void run_threads(Fn fn) {
    std::vector<std::thread> threads;
    for (uint32_t i = 0; i < cores_.size(); ++i) {
      threads.emplace_back([this, i, &fn] {
        Core& c = *cores_[i];
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(c.cpu, &set);
        if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
          FM_LOG_FIRST_N(LogLevel::kWarn, 1, "loadgen",
                         "cannot pin a load thread to CPU {}: "
                         "running unpinned",
                         c.cpu);
        }
        fn(i, c);
      });
    }
    for (auto& t : threads) t.join();
  }

  const Options* o_ = nullptr;
  double hz_ = 0;
  std::vector<std::unique_ptr<SocketSet>> sets_;
  std::vector<std::unique_ptr<Core>> cores_;
};

}  // namespace

Result<std::unique_ptr<Backend>> make_socket_backend(const Options& o, uint32_t flows,
                                                     const ValueSizes* values) {
  return SocketBackend::create(o, flows, values);
}

}  // namespace fm::loadgen
