// reflector: a memcached-UDP "server" that answers instantly (GET -> END, SET -> STORED), in
// place in the received mbuf, for measuring the loadgen's own ceiling. Not a key-value store.
// With --value-size it answers every GET (one key or many) with each key's deterministic value
// as the loadgen writes it, splitting a long reply into several datagrams the way memcached
// does, optionally out of order, duplicated or with one left out: a stand-in server for
// testing the loadgen's multi-key GETs without kvserver.
#include <fmt/core.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

#include "dataplane/byte_order.h"
#include "dataplane/core_loop.h"
#include "dataplane/counter.h"
#include "dataplane/eal.h"
#include "dataplane/log.h"
#include "kvapp/udp_frame.h"
#include "net/packet.h"
#include "net/port.h"
#include "tools/loadgen/workload.h"

namespace {
constexpr const char* kTag = "reflector";
constexpr uint16_t kBurst = 32;

struct Flags {
  std::string vdev =
      "net_memif0,role=server,socket=/tmp/"
      "farmem-memif.sock,socket-abstract=no,mac=02:fa:00:00:00:01";
  std::vector<uint32_t> lcores = {1};
  uint32_t queues = 0;
  std::string hugepages = "auto";
  uint32_t memory_mb = 256;
  std::string ip = "10.77.0.1";
  uint16_t port = 11211;
  uint32_t value_size = 0;
  uint32_t max_datagram = uint32_t(fm::loadgen::kMaxDatagramLen);
  bool mget_reorder = false;
  uint32_t mget_drop_every = 0;
  std::vector<std::string> eal_args;
};

struct alignas(64) CoreState {
  fm::net::Port* port = nullptr;
  std::vector<uint16_t> queues;
  fm::net::Identity me;
  uint8_t ip_be[4] = {};
  const Flags* flags = nullptr;
  std::vector<char> reply;  // a reply body being built (value mode)
  uint64_t multi_replies = 0;
  fm::Counter answered, other, busy_cycles, cycles, multi;
};

using fm::load_be16;
using fm::store_be16;

constexpr size_t kHdr = fm::net::kUdpHeadersLen;  // Ethernet + IPv4 + UDP
constexpr size_t kFrame = fm::loadgen::kFrameHeaderLen;

/// True when the frame is a UDP datagram to our address and port with a frame header.
bool is_request(const uint8_t* d, uint32_t len, const CoreState& c) {
  return len >= kHdr + kFrame + 4 && d[12] == 0x08 && d[13] == 0x00 && d[14] == 0x45 &&
         d[23] == 17 && load_be16(d + 36) == c.me.udp_port && std::memcmp(d + 30, c.ip_be, 4) == 0 &&
         load_be16(d + 38) >= 8 + kFrame && kHdr - 8 + load_be16(d + 38) <= len;
}

/// Swaps the MACs, IPs and ports of a request so it is addressed back to its sender.
void swap_headers(uint8_t* d) {
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
}

/// Sets the IPv4 and UDP lengths for a UDP payload of `payload` bytes, and the IPv4 checksum
/// (no UDP checksum). Returns the frame length.
uint32_t finish_headers(uint8_t* d, size_t payload) {
  const uint16_t udp_len = uint16_t(8 + payload), ip_len = uint16_t(20 + udp_len);
  store_be16(d + 16, ip_len);
  store_be16(d + 38, udp_len);
  d[40] = d[41] = 0;
  d[24] = d[25] = 0;
  store_be16(d + 24, fm::net::checksum_fold(fm::net::checksum_partial({d + 14, 20})));
  return uint32_t(fm::net::kEthHeaderLen + ip_len);
}

/// The reply body to request body `req` in value mode: every GET key's value, then END.
std::string_view value_reply(std::string_view req, CoreState& c) {
  using namespace fm::loadgen;
  std::vector<char>& out = c.reply;
  size_t n = 0;
  const auto put = [&](const char* p, size_t len) {
    std::memcpy(out.data() + n, p, len);
    n += len;
  };
  if (!req.starts_with("get ")) {
    const char* r = req.starts_with("set ") ? "STORED\r\n" : "ERROR\r\n";
    put(r, std::strlen(r));
    return {out.data(), n};
  }
  const uint32_t vlen = c.flags->value_size;
  const std::string len_text = std::to_string(vlen);
  size_t pos = 3;
  while (pos < req.size()) {
    while (pos < req.size() && req[pos] == ' ') ++pos;
    size_t end = pos;
    while (end < req.size() && req[end] != ' ' && req[end] != '\r' && req[end] != '\n') ++end;
    if (end == pos) break;
    uint64_t key = 0;
    const std::string_view tok = req.substr(pos, end - pos);
    pos = end;
    if (!parse_key_text(tok, &key)) continue;  // not a loadgen key: a miss
    if (n + 32 + vlen + 7 > out.size()) break;
    put("VALUE ", 6);
    put(tok.data(), tok.size());
    put(" 0 ", 3);
    put(len_text.data(), len_text.size());
    put("\r\n", 2);
    write_value(out.data() + n, key, vlen);
    n += vlen;
    put("\r\n", 2);
  }
  put("END\r\n", 5);
  return {out.data(), n};
}

/// Answers request mbuf `m` (already known to be one) into `tx`; returns frames added.
/// Frees `m` when the reply goes out in new mbufs.
uint16_t answer(rte_mbuf* m, CoreState& c, rte_mbuf** tx, uint16_t room) {
  uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
  const size_t payload = load_be16(d + 38) - 8;  // frame header + request text
  const std::string_view req(reinterpret_cast<const char*>(d + kHdr + kFrame), payload - kFrame);
  swap_headers(d);
  std::string_view body;
  if (c.flags->value_size == 0) {
    body = req.starts_with("get ")   ? std::string_view("END\r\n")
           : req.starts_with("set ") ? std::string_view("STORED\r\n")
                                     : std::string_view("ERROR\r\n");
  } else {
    body = value_reply(req, c);
  }
  const size_t chunk = c.flags->max_datagram - kFrame;
  const size_t total = body.empty() ? 1 : (body.size() + chunk - 1) / chunk;
  if (total == 1 && kHdr + kFrame + body.size() <= size_t(rte_pktmbuf_tailroom(m)) + m->data_len) {
    std::memmove(d + kHdr + kFrame, body.data(), body.size());  // the frame header stays
    const uint32_t len = finish_headers(d, kFrame + body.size());
    m->data_len = uint16_t(len);
    m->pkt_len = len;
    tx[0] = m;
    return 1;
  }
  // Several datagrams, each with the request's id, its sequence number and the total.
  const bool drop_one = total > 1 && c.flags->mget_drop_every &&
                        (c.multi_replies + 1) % c.flags->mget_drop_every == 0;
  if (total > 1) {
    ++c.multi_replies;
    c.multi.add();
  }
  const size_t extra = c.flags->mget_reorder && total > 1 ? 1 : 0;  // the first one twice
  if (total + extra > room || total > 0xffff) {
    rte_pktmbuf_free(m);
    return 0;
  }
  rte_mbuf* out[256 + 1];
  const size_t want = total + extra - (drop_one ? 1 : 0);
  if (want > 256 || rte_pktmbuf_alloc_bulk(c.port->pool(), out, unsigned(want)) != 0) {
    rte_pktmbuf_free(m);
    return 0;
  }
  uint16_t made = 0;
  for (size_t k = 0; k < total + extra; ++k) {
    // Sequence order, or last-to-first then the last datagram sent (seq 0) once more.
    size_t seq = k < total ? k : 0;
    if (c.flags->mget_reorder && total > 1 && k < total) seq = total - 1 - k;
    if (drop_one && seq == 1 && k < total) continue;
    rte_mbuf* r = out[made];
    uint8_t* o = rte_pktmbuf_mtod(r, uint8_t*);
    std::memcpy(o, d, kHdr + kFrame);
    store_be16(o + kHdr + offsetof(fm::kv::UdpFrameWire, sequence_be), uint16_t(seq));
    store_be16(o + kHdr + offsetof(fm::kv::UdpFrameWire, total_be), uint16_t(total));
    o[kHdr + 6] = o[kHdr + 7] = 0;
    const size_t off = seq * chunk;
    const size_t len = std::min(chunk, body.size() - off);
    std::memcpy(o + kHdr + kFrame, body.data() + off, len);
    const uint32_t flen = finish_headers(o, kFrame + len);
    r->data_len = uint16_t(flen);
    r->pkt_len = flen;
    tx[made] = r;
    ++made;
  }
  rte_pktmbuf_free(m);
  return made;
}

int core_main(void* arg) {
  auto& c = *static_cast<CoreState*>(arg);
  rte_mbuf* rx[kBurst];
  rte_mbuf* tx[kBurst * 4];
  constexpr uint16_t kTxRoom = kBurst * 4;
  const uint64_t t_start = rte_rdtsc();
  uint64_t busy = 0, loops = 0;
  // Idle for over 2 ms (between points, after the run), it sleeps 200 us per empty pass. DPDK
  // 22.11's memif server unmaps its client's rings from the interrupt thread when the client
  // goes away and can crash an rx_burst in progress (seen at the loadgen's exit); a sleeping
  // poller is almost never inside rx_burst then. Under load it never sleeps.
  const uint64_t idle_limit = rte_get_tsc_hz() / 500;
  uint64_t last_work = t_start;
  while (!fm::stop_requested()) {
    const uint64_t t0 = rte_rdtsc();
    uint16_t polled = 0;
    for (uint16_t q : c.queues) {
      const uint16_t n = c.port->rx_burst(q, rx, kBurst);
      polled = uint16_t(polled + n);
      uint16_t t = 0;
      const auto flush = [&] {
        if (t == 0) return;
        const uint16_t sent = c.port->tx_burst(q, tx, t);
        if (sent < t) rte_pktmbuf_free_bulk(tx + sent, t - sent);
        c.answered.add(sent);
        t = 0;
      };
      for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = rx[i];
        uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
        if (m->nb_segs == 1 && is_request(d, m->data_len, c)) {
          if (kTxRoom - t < 260) flush();
          t = uint16_t(t + answer(m, c, tx + t, uint16_t(kTxRoom - t)));
          continue;
        }
        const fm::net::Classified cl = fm::net::classify({d, m->data_len}, c.me, false);
        if (cl.kind == fm::net::Classified::Kind::kArpRequest) {
          const size_t l = fm::net::build_arp_reply(
              {d, m->data_len}, c.me, {d, size_t(rte_pktmbuf_tailroom(m)) + m->data_len});
          m->data_len = uint16_t(l);
          m->pkt_len = uint32_t(l);
          if (t == kTxRoom) flush();
          tx[t++] = m;
          continue;
        }
        c.other.add();
        rte_pktmbuf_free(m);
      }
      flush();
    }
    if (polled) {
      busy += rte_rdtsc() - t0;
      last_work = t0;
    } else if (t0 - last_work > idle_limit) {
      ::usleep(200);
    }
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
      "on a DPDK port, to measure the loadgen's own ceiling; with --value-size, answers GETs "
      "(multi-key ones in several datagrams) with the loadgen's values, to test it"};
  app.add_option("--vdev", f.vdev, "DPDK virtual device (memif server by default)")
      ->capture_default_str();
  app.add_option("--lcores", f.lcores, "CPUs, each polling its share of the --queues")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--queues", f.queues,
                 "queue pairs, spread over the lcores round-robin (0 = one per lcore); a memif "
                 "client may use up to this many")
      ->check(CLI::Range(0u, 256u))
      ->capture_default_str();
  app.add_option("--hugepages", f.hugepages, "auto | on | off")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  app.add_option("--memory-mb", f.memory_mb, "EAL memory in MiB")
      ->check(CLI::Range(16u, 1u << 20))
      ->capture_default_str();
  app.add_option("--eal-arg", f.eal_args,
                 "one extra EAL argument, verbatim; repeat for several (e.g. --eal-arg=-d "
                 "--eal-arg=/path/librte_net_memif.so)")
      ->allow_extra_args(false);
  app.add_option("--ip", f.ip, "the address it answers on")->capture_default_str();
  app.add_option("--port", f.port, "the UDP port it answers on")->capture_default_str();
  app.add_option("--value-size", f.value_size,
                 "0: GET -> END. N: answer every key of a GET (one or many) with its N-byte "
                 "value as the loadgen's --value-size N writes it (verifiable), then END; a "
                 "reply longer than --max-datagram goes out in several datagrams")
      ->check(CLI::Range(0u, fm::loadgen::kMaxValueSize))
      ->capture_default_str();
  app.add_option("--max-datagram", f.max_datagram,
                 "bytes of one reply datagram, frame header included (memcached: 1400)")
      ->check(CLI::Range(64u, uint32_t(fm::loadgen::kMaxDatagramLen)))
      ->capture_default_str();
  app.add_flag("--mget-reorder", f.mget_reorder,
               "send a multi-datagram reply's datagrams last to first, then the first again "
               "(a duplicate)");
  app.add_option("--mget-drop-every", f.mget_drop_every,
                 "leave out the second datagram of every Nth multi-datagram reply (0 = never): "
                 "the loadgen must count those requests as timeouts")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const uint32_t nq = f.queues ? f.queues : uint32_t(f.lcores.size());
  if (nq < f.lcores.size()) {
    std::fprintf(stderr, "reflector: --queues: %u is fewer than the %zu --lcores\n", nq,
                 f.lcores.size());
    return 1;
  }

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
  eal.extra_args = f.eal_args;
  auto ei = fm::eal_init(eal, "reflector");
  if (!ei) {
    std::fprintf(stderr, "reflector: %s\n", ei.status().message().c_str());
    return 1;
  }
  fm::install_stop_signals();
  fm::net::PortOptions po;
  po.vdev = f.vdev;
  auto port = fm::net::Port::open(po, uint16_t(nq));
  if (!port) {
    std::fprintf(stderr, "reflector: %s\n", port.status().message().c_str());
    return 1;
  }
  std::vector<CoreState> cores(f.lcores.size());
  for (size_t i = 0; i < cores.size(); ++i) {
    cores[i].port = port->get();
    for (uint32_t q = uint32_t(i); q < nq; q += uint32_t(cores.size()))
      cores[i].queues.push_back(uint16_t(q));
    cores[i].me = fm::net::Identity{(*port)->mac(), *ip, f.port};
    for (int b = 0; b < 4; ++b) cores[i].ip_be[b] = uint8_t(ip->v >> (24 - 8 * b));
    cores[i].flags = &f;
    cores[i].reply.resize(256 << 10);
  }
  FM_LOG_INFO(
      kTag, "answering on {} port {} with {} core(s), {} queue pair(s), {}", f.ip, f.port,
      cores.size(), nq,
      f.value_size ? fmt::format("{}-byte values", f.value_size) : std::string("GET -> END"));
  for (size_t i = 1; i < cores.size(); ++i)
    rte_eal_remote_launch(core_main, &cores[i], f.lcores[i]);
  core_main(&cores[0]);
  rte_eal_mp_wait_lcore();
  for (size_t i = 0; i < cores.size(); ++i) {
    const double busy = cores[i].cycles.read() ? 100.0 * double(cores[i].busy_cycles.read()) /
                                                     double(cores[i].cycles.read())
                                               : 0.0;
    std::fprintf(stderr,
                 "reflector core %zu: answered %lu, other frames %lu, multi-datagram replies %lu, "
                 "busy %.1f%% of %.1f s\n",
                 i, (unsigned long)cores[i].answered.read(), (unsigned long)cores[i].other.read(),
                 (unsigned long)cores[i].multi.read(), busy,
                 double(cores[i].cycles.read()) / double(rte_get_tsc_hz()));
  }
  (*port)->close();
  fm::eal_cleanup();
  return 0;
}
