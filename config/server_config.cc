// kvserver configuration: TOML -> typed Options, with every error naming its key.
#include "config/server_config.h"

#include <fmt/format.h>

#include "config/paging_tables.h"
#include "config/toml_reader.h"

namespace fm::config {
namespace {

void read_eal(TableReader& r, EalOptions& o) {
  r.get(std::string_view("lcores"), o.lcores, 0, 1023);
  r.get_enum("hugepages", o.hugepages, kHugepageModeNames);
  r.get("memory_mb", o.memory_mb, 16, 1 << 20);
  r.get("file_prefix", o.file_prefix);
  r.get("pci_allow", o.pci_allow);
  r.get("log_level", o.log_level);
  r.get("extra_args", o.extra_args);
  r.reject_unknown();
  if (r.ok() && o.lcores.empty()) r.fail("lcores", "must name at least one lcore");
  if (r.ok()) {
    for (size_t i = 0; i < o.lcores.size(); ++i)
      for (size_t j = i + 1; j < o.lcores.size(); ++j)
        if (o.lcores[i] == o.lcores[j])
          r.fail("lcores", "lcore " + std::to_string(o.lcores[i]) + " is listed twice");
  }
}

void read_dataplane(TableReader& r, IdleOptions& o) {
  r.get("idle_backoff", o.backoff);
  r.get("idle_spin_us", o.spin_us, 0, 10'000'000);
  r.get("idle_sleep_us", o.sleep_us, 1, 1'000'000);
  r.reject_unknown();
}

void read_port(TableReader& r, net::PortOptions& o) {
  r.get("vdev", o.vdev);
  r.get("pci", o.pci);
  r.get("rx_desc", o.rx_desc, 32, 32768);
  r.get("tx_desc", o.tx_desc, 32, 32768);
  r.get("mbufs", o.mbufs, 1023, 16 << 20);
  r.get("mbuf_cache", o.mbuf_cache, 0, 512);
  r.reject_unknown();
  if (r.ok() && o.vdev.empty() && o.pci.empty()) r.fail("vdev", "set port.vdev or port.pci");
}

// net.allow and net.deny_source_ports are scanned for every datagram: keep them short.
constexpr size_t kMaxListLen = 64;

void read_net(TableReader& r, net::NetOptions& o) {
  std::string ip = o.ip.to_string();
  r.get("ip", ip);
  if (r.ok()) {
    auto parsed = net::parse_ipv4(ip, r.name("ip"));
    if (!parsed)
      r.fail("ip", parsed.status().message());
    else
      o.ip = *parsed;
  }
  r.get("mac", o.mac);
  if (r.ok() && !o.mac.empty()) {
    if (auto m = net::parse_mac(o.mac, r.name("mac")); !m) r.fail("mac", m.status().message());
  }
  r.get("udp_port", o.udp_port, 1, 65535);
  r.get("udp_checksum", o.udp_checksum);
  auto neigh = r.tables("neighbors");
  for (size_t i = 0; i < neigh.size() && r.ok(); ++i) {
    Status st;
    TableReader nr(neigh[i], r.name("neighbors") + "[" + std::to_string(i) + "]", "", &st);
    std::string nip, nmac;
    nr.get("ip", nip);
    nr.get("mac", nmac);
    nr.reject_unknown();
    net::Neighbor n;
    if (st.is_ok()) {
      auto a = net::parse_ipv4(nip, nr.name("ip"));
      auto m = net::parse_mac(nmac, nr.name("mac"));
      if (!a)
        st = a.status();
      else if (!m)
        st = m.status();
      else
        n = {*a, *m};
    }
    if (!st.is_ok()) {
      r.fail("neighbors", st.message());
      break;
    }
    o.neighbors.push_back(n);
  }
  r.get("prefix_len", o.prefix_len, 1, 32);
  std::vector<std::string> allow;
  for (const net::Ipv4Prefix& p : o.allow) allow.push_back(p.to_string());
  r.get("allow", allow);
  if (r.ok() && allow.size() > kMaxListLen) {
    r.fail("allow", fmt::format("{} prefixes; at most {} (checked per datagram)", allow.size(),
                                kMaxListLen));
  }
  o.allow.clear();
  for (size_t i = 0; i < allow.size() && r.ok(); ++i) {
    auto p = net::parse_ipv4_prefix(allow[i], fmt::format("element {}", i));
    if (!p)
      r.fail("allow", p.status().message());
    else
      o.allow.push_back(*p);
  }
  std::vector<uint32_t> deny(o.deny_source_ports.begin(), o.deny_source_ports.end());
  r.get("deny_source_ports", deny, 1, 65535);
  if (r.ok() && deny.size() > kMaxListLen) {
    r.fail("deny_source_ports",
           fmt::format("{} ports; at most {} (checked per datagram)", deny.size(), kMaxListLen));
  }
  o.deny_source_ports.assign(deny.begin(), deny.end());
  r.reject_unknown();
}

void read_kv(TableReader& r, kv::StoreOptions& s, kv::ProtocolOptions& p) {
  using L = kv::Limits;  // the same bounds kv::validate() checks
  r.get("memory_mb", s.memory_mb, L::kMemoryMbMin, L::kMemoryMbMax);
  r.get("item_size_max", s.item_size_max, L::kItemSizeMaxMin, L::kItemSizeMaxMax);
  r.get("slab_growth_factor", s.slab_growth_factor, L::kGrowthFactorMin, L::kGrowthFactorMax);
  r.get("evict", s.evict);
  r.get("hash_power", s.hash_power, L::kHashPowerMin, L::kHashPowerMax);
  r.get("hash_power_max", s.hash_power_max, L::kHashPowerMin, L::kHashPowerMax);
  r.get("udp_max_payload", p.udp_max_payload, L::kUdpMaxPayloadMin, L::kUdpMaxPayloadMax);
  r.get("reply_buffer_kb", p.reply_buffer_kb, L::kReplyBufferKbMin, L::kReplyBufferKbMax);
  r.get("reply_bytes_max", p.reply_bytes_max, 0u, L::kReplyBytesMaxMax);
  r.get("spin_ns", p.spin_ns, 0u, L::kSpinNsMax);
  r.reject_unknown();
}

std::string kv_to_toml(const kv::StoreOptions& s, const kv::ProtocolOptions& p) {
  return fmt::format(
      "[kv]\nmemory_mb = {}\nitem_size_max = {}\nslab_growth_factor = {}\nevict = {}\n"
      "hash_power = {}\nhash_power_max = {}\nudp_max_payload = {}\nreply_buffer_kb = {}\n"
      "reply_bytes_max = {}\nspin_ns = {}\n",
      s.memory_mb, s.item_size_max, s.slab_growth_factor, s.evict ? "true" : "false", s.hash_power,
      s.hash_power_max, p.udp_max_payload, p.reply_buffer_kb, p.reply_bytes_max, p.spin_ns);
}

}  // namespace

Result<ServerConfig> parse_server_config(std::string_view text, std::string_view source) {
  auto parsed = parse_toml(text, source);
  if (!parsed) return parsed.status();
  const toml::table& root = *parsed;
  ServerConfig c;
  Status err;
  TableReader top(&root, "", source, &err);
  {
    TableReader r(top.table("eal"), "eal", source, &err);
    read_eal(r, c.eal);
  }
  {
    TableReader r(top.table("dataplane"), "dataplane", source, &err);
    read_dataplane(r, c.idle);
  }
  {
    TableReader r(top.table("port"), "port", source, &err);
    read_port(r, c.port);
  }
  {
    TableReader r(top.table("net"), "net", source, &err);
    read_net(r, c.net);
  }
  {
    TableReader r(top.table("kv"), "kv", source, &err);
    read_kv(r, c.store, c.protocol);
  }
  {
    TableReader r(top.table("paging"), "paging", source, &err);
    read_paging(r, source, &err, c.paging);
  }
  {
    TableReader r(top.table("sched"), "sched", source, &err);
    r.get_enum("faults", c.sched.faults, sched::kFaultModeNames);
    r.get("max_in_flight", c.sched.max_in_flight, 1, 4096);
    r.get("queue_depth", c.sched.queue_depth, 1, 1 << 20);
    r.get("stack_kb", c.sched.stack_kb, 16, 8192);
    r.get("steal", c.sched.steal);
    r.get_enum("dispatch", c.sched.dispatch, sched::kDispatchNames);
    r.get_enum("dispatcher", c.sched.dispatcher, sched::kDispatcherRoleNames);
    r.get("dispatcher_lcore", c.sched.dispatcher_lcore, -1, 1023);
    r.get("dispatch_bound", c.sched.dispatch_bound, 1, 4096);
    r.get_enum("predictor", c.sched.predictor, sched::kPredictorNames);
    r.get("history_window", c.sched.history_window, 0, 1u << 30);
    r.get("prefetch", c.sched.prefetch);
    r.get("preempt_us", c.sched.preempt_us, 0, 1000000);
    if (r.ok() && c.sched.dispatch == sched::Dispatch::kCentral &&
        c.sched.dispatcher == sched::DispatcherRole::kDedicated) {
      if (c.sched.dispatcher_lcore < 0) {
        r.fail("dispatcher_lcore", "must be set when dispatcher = \"dedicated\"");
      } else {
        for (uint32_t l : c.eal.lcores)
          if (int32_t(l) == c.sched.dispatcher_lcore)
            r.fail("dispatcher_lcore", "lcore " + std::to_string(l) + " is also in eal.lcores");
      }
    }
    r.reject_unknown();
  }
  {
    TableReader r(top.table("alloc"), "alloc", source, &err);
    AllocOptions& a = c.alloc;
    const uint32_t lcores = uint32_t(c.eal.lcores.size());
    r.get("min", a.min, 1, 64);
    r.get("max", a.max, 0, 64);
    r.get("initial", a.initial, 0, 64);
    r.get("auto", a.automatic);
    r.get("interval_us", a.interval_us, 1, 1000000);
    r.get("congestion_us", a.congestion_us, 1, 10000000);
    r.get("congested_checks", a.congested_checks, 1, 1000);
    r.get("release_window_us", a.release_window_us, 1, 100000000);
    r.get("release_utilisation", a.release_utilisation, 0.0, 1.0);
    r.get("cooldown_us", a.cooldown_us, 0, 100000000);
    r.get_enum("park", a.park, kParkModeNames);
    if (r.ok() && lcores > 0) {
      const uint32_t max = a.max ? a.max : lcores;
      if (max > lcores)
        r.fail("max",
               "is " + std::to_string(max) + " but eal.lcores has only " + std::to_string(lcores));
      else if (a.min > max)
        r.fail("min", "must be <= max (" + std::to_string(max) + ")");
      else if (a.initial && (a.initial < a.min || a.initial > max))
        r.fail("initial",
               "must be in min..max (" + std::to_string(a.min) + ".." + std::to_string(max) + ")");
    }
    r.reject_unknown();
  }
  {
    TableReader r(top.table("control"), "control", source, &err);
    r.get("enabled", c.control);
    r.get("socket", c.control_socket);
    if (r.ok() && c.control && c.control_socket.empty()) r.fail("socket", "must not be empty");
    r.reject_unknown();
  }
  read_log(top, source, &err, c.log_level);
  top.reject_unknown();
  if (!err.is_ok()) return err;
  return c;
}

Result<ServerConfig> load_server_config(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.status();
  return parse_server_config(*text, path);
}

namespace {
template <typename T>
std::string list(const std::vector<T>& v) {
  std::string o = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) o += ", ";
    if constexpr (std::is_same_v<T, std::string>)
      o += toml_quote(v[i]);
    else
      o += std::to_string(v[i]);
  }
  return o + "]";
}
const char* b(bool v) { return v ? "true" : "false"; }
}  // namespace

std::string to_toml(const ServerConfig& c) {
  const std::string_view huge = enum_name(kHugepageModeNames, c.eal.hugepages);
  std::string s;
  s += fmt::format(
      "[eal]\nlcores = {}\nhugepages = \"{}\"\nmemory_mb = {}\nfile_prefix = {}\n"
      "pci_allow = {}\nlog_level = {}\nextra_args = {}\n\n",
      list(c.eal.lcores), huge, c.eal.memory_mb, toml_quote(c.eal.file_prefix),
      list(c.eal.pci_allow), toml_quote(c.eal.log_level), list(c.eal.extra_args));
  s += fmt::format("[dataplane]\nidle_backoff = {}\nidle_spin_us = {}\nidle_sleep_us = {}\n\n",
                   b(c.idle.backoff), c.idle.spin_us, c.idle.sleep_us);
  s += fmt::format(
      "[port]\nvdev = {}\npci = {}\nrx_desc = {}\ntx_desc = {}\nmbufs = {}\n"
      "mbuf_cache = {}\n\n",
      toml_quote(c.port.vdev), toml_quote(c.port.pci), c.port.rx_desc, c.port.tx_desc, c.port.mbufs,
      c.port.mbuf_cache);
  s += fmt::format("[net]\nip = \"{}\"\nmac = {}\nudp_port = {}\nudp_checksum = {}\nneighbors = [",
                   c.net.ip.to_string(), toml_quote(c.net.mac), c.net.udp_port,
                   b(c.net.udp_checksum));
  for (size_t i = 0; i < c.net.neighbors.size(); ++i) {
    s += fmt::format("{}{{ ip = \"{}\", mac = \"{}\" }}", i ? ", " : "",
                     c.net.neighbors[i].ip.to_string(), c.net.neighbors[i].mac.to_string());
  }
  s += "]\n";
  std::vector<std::string> allow;
  for (const net::Ipv4Prefix& p : c.net.allow) allow.push_back(p.to_string());
  s += fmt::format("prefix_len = {}\nallow = {}\ndeny_source_ports = {}\n\n", c.net.prefix_len,
                   list(allow), list(c.net.deny_source_ports));
  s += kv_to_toml(c.store, c.protocol);
  s += "\n" + paging_to_toml(c.paging);
  s += fmt::format(
      "\n[sched]\nfaults = \"{}\"\nmax_in_flight = {}\nqueue_depth = {}\nstack_kb = {}\n"
      "steal = {}\ndispatch = \"{}\"\ndispatcher = \"{}\"\ndispatcher_lcore = {}\n"
      "dispatch_bound = {}\npredictor = \"{}\"\nhistory_window = {}\nprefetch = {}\n"
      "preempt_us = {}\n",
      sched::fault_mode_name(c.sched.faults), c.sched.max_in_flight, c.sched.queue_depth,
      c.sched.stack_kb, b(c.sched.steal), sched::dispatch_name(c.sched.dispatch),
      sched::dispatcher_role_name(c.sched.dispatcher), c.sched.dispatcher_lcore,
      c.sched.dispatch_bound, sched::predictor_name(c.sched.predictor), c.sched.history_window,
      b(c.sched.prefetch), c.sched.preempt_us);
  const AllocOptions& a = c.alloc;
  s += fmt::format(
      "\n[alloc]\nmin = {}\nmax = {}\ninitial = {}\nauto = {}\ninterval_us = {}\n"
      "congestion_us = {}\ncongested_checks = {}\nrelease_window_us = {}\n"
      "release_utilisation = {}\ncooldown_us = {}\npark = \"{}\"\n",
      a.min, a.max, a.initial, b(a.automatic), a.interval_us, a.congestion_us, a.congested_checks,
      a.release_window_us, a.release_utilisation, a.cooldown_us, enum_name(kParkModeNames, a.park));
  s += fmt::format("\n[control]\nenabled = {}\nsocket = {}\n", b(c.control),
                   toml_quote(c.control_socket));
  s += fmt::format("\n[log]\nlevel = \"{}\"\n", log_level_name(c.log_level));
  return s;
}

}  // namespace fm::config
