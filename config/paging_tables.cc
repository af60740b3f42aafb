// Readers for the paging option tables ([paging], [paging.emulated], [paging.verbs], memnode's
// [verbs]); in fm_config_base, shared by the kvserver and memnode configs.
#include "config/paging_tables.h"

#include <fmt/format.h>

namespace fm::config {
namespace {
std::string quoted_list(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + toml_quote(s);
  return out;
}
}  // namespace

void read_verbs(TableReader& r, paging::VerbsOptions& v) {
  r.get("device", v.device);
  r.get("ib_port", v.ib_port, 1, 255);
  r.get("gid_index", v.gid_index, -1, 255);
  r.get("max_outstanding", v.max_outstanding, 1, 16384);
  r.reject_unknown();
}

void read_paging(TableReader& r, std::string_view source, Status* err, paging::PagingOptions& p) {
  r.get_enum("mode", p.mode, paging::kPagingModeNames);
  r.get("local_fraction", p.local_fraction, 0.0001, 1.0);
  r.get("local_mb", p.local_mb, 0, 1 << 24);
  r.get_enum("transport", p.transport, paging::kTransportKindNames);
  r.get("memnode", p.memnode);
  r.get("connect_timeout_ms", p.connect_timeout_ms, 0, 600000);
  r.get("key_file", p.key_file);
  r.get("memnodes", p.memnodes);
  r.get("replicas", p.replicas, 0, 64);
  r.get("reconnect_ms", p.reconnect_ms, 0, 3'600'000);
  r.get("repair_share", p.repair_share, 0.001, 1.0);
  r.get("reserve_frames", p.reserve_frames, 0, 1 << 20);
  {
    TableReader e(r.table("emulated"), r.name("emulated"), source, err);
    auto& o = p.emulated;
    e.get("latency_ns", o.latency_ns, 0, 100'000'000);
    e.get_enum("jitter", o.jitter, paging::kJitterKindNames);
    e.get("jitter_ns", o.jitter_ns, 0, 100'000'000);
    e.get("link_gbps", o.link_gbps, 0.001, 10000.0);
    e.get("max_outstanding", o.max_outstanding, 1, 16384);
    e.get("seed", o.seed);
    e.reject_unknown();
  }
  {
    TableReader v(r.table("verbs"), r.name("verbs"), source, err);
    read_verbs(v, p.verbs);
  }
  r.reject_unknown();
  if (err->is_ok() && p.mode == paging::PagingMode::kFar) {
    const bool unix_addr = p.memnode.rfind("unix:", 0) == 0;
    if (p.transport == paging::TransportKind::kEmulated && !unix_addr)
      r.fail("memnode",
             "the emulated transport needs unix:/path (the pool's memfd is passed over it)");
    for (const auto& m : p.memnodes) {
      if (p.transport == paging::TransportKind::kEmulated && m.rfind("unix:", 0) != 0)
        r.fail("memnodes", "\"" + m + "\": the emulated transport needs unix:/path");
      if (p.transport == paging::TransportKind::kVerbs && m.rfind("tcp:", 0) != 0)
        r.fail("memnodes", "\"" + m + "\": the verbs transport needs tcp:host:port");
    }
    const size_t n = p.memnodes.empty() ? 1 : p.memnodes.size();
    if (p.memnodes.size() > 64) r.fail("memnodes", "at most 64 memory nodes");
    if (p.replicas > n)
      r.fail("replicas", std::to_string(p.replicas) + " copies need as many memory nodes; " +
                             std::to_string(n) + " configured (paging.memnodes)");
    if (p.transport == paging::TransportKind::kVerbs && p.memnode.rfind("tcp:", 0) != 0)
      r.fail("memnode", "the verbs transport needs tcp:host:port");
  }
}

std::string paging_to_toml(const paging::PagingOptions& p) {
  const auto& e = p.emulated;
  return fmt::format(
      "[paging]\nmode = \"{}\"\nlocal_fraction = {}\nlocal_mb = {}\ntransport = \"{}\"\n"
      "memnode = {}\nmemnodes = [{}]\nreplicas = {}\nreconnect_ms = {}\nrepair_share = {}\n"
      "reserve_frames = {}\nconnect_timeout_ms = {}\nkey_file = {}\n\n"
      "[paging.emulated]\nlatency_ns = {}\n"
      "jitter = \"{}\"\njitter_ns = {}\nlink_gbps = {}\nmax_outstanding = {}\nseed = {}\n\n"
      "[paging.verbs]\ndevice = {}\nib_port = {}\ngid_index = {}\nmax_outstanding = {}\n",
      enum_name(paging::kPagingModeNames, p.mode), p.local_fraction, p.local_mb,
      enum_name(paging::kTransportKindNames, p.transport), toml_quote(p.memnode),
      quoted_list(p.memnodes), p.replicas, p.reconnect_ms, p.repair_share, p.reserve_frames,
      p.connect_timeout_ms,
      toml_quote(p.key_file), e.latency_ns, enum_name(paging::kJitterKindNames, e.jitter),
      e.jitter_ns, e.link_gbps, e.max_outstanding, e.seed, toml_quote(p.verbs.device),
      p.verbs.ib_port, p.verbs.gid_index, p.verbs.max_outstanding);
}

}  // namespace fm::config
