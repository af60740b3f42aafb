// memnode configuration: TOML -> MemnodeConfig with errors naming their key.
#include "config/memnode_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "config/paging_tables.h"
#include "config/toml_reader.h"

namespace fm::config {

Result<MemnodeConfig> parse_memnode_config(std::string_view text, std::string_view source) {
  auto parsed = parse_toml(text, source);
  if (!parsed) return parsed.status();
  MemnodeConfig c;
  Status err;
  TableReader top(&*parsed, "", source, &err);
  {
    TableReader r(top.table("memnode"), "memnode", source, &err);
    r.get("pool_mb", c.pool_mb, 1, 1 << 24);
    r.get_enum("hugepages", c.hugepages, kHugepageModeNames);
    r.get("listen", c.listen);
    r.get_enum("transport", c.transport, paging::kTransportKindNames);
    r.get("heartbeat_ms", c.heartbeat_ms, 0, 600000);
    r.get("key_file", c.key_file);
    r.get(std::string_view("allow_uids"), c.allow_uids, 0, 4294967294u);
    r.get("max_clients", c.max_clients, 1, 4096);
    r.get("max_qps_per_client", c.max_qps_per_client, 1, 4096);
    r.reject_unknown();
    if (err.is_ok() && c.listen.rfind("tcp:", 0) == 0 && c.key_file.empty())
      r.fail("key_file",
             "required with a tcp: listen address: without a shared key anyone who reaches the "
             "port could read and write every compute node's far memory");
    if (err.is_ok() && c.transport == paging::TransportKind::kEmulated &&
        c.listen.rfind("unix:", 0) != 0)
      r.fail("listen",
             "the emulated transport passes the pool's memfd over a Unix socket: use unix:/path");
    if (err.is_ok() && c.transport == paging::TransportKind::kVerbs &&
        c.listen.rfind("tcp:", 0) != 0)
      r.fail("listen", "the verbs transport exchanges queue pairs over TCP: use tcp:host:port");
  }
  {
    TableReader r(top.table("verbs"), "verbs", source, &err);
    read_verbs(r, c.verbs);
  }
  read_log(top, source, &err, c.log_level);
  top.reject_unknown();
  if (!err.is_ok()) return err;
  return c;
}

Result<MemnodeConfig> load_memnode_config(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.status();
  return parse_memnode_config(*text, path);
}

std::string to_toml(const MemnodeConfig& c) {
  const std::string_view huge = enum_name(kHugepageModeNames, c.hugepages);
  return fmt::format(
      "[memnode]\npool_mb = {}\nhugepages = \"{}\"\nlisten = {}\ntransport = \"{}\"\n"
      "heartbeat_ms = {}\nkey_file = {}\nallow_uids = [{}]\nmax_clients = {}\n"
      "max_qps_per_client = {}\n\n[verbs]\ndevice = {}\nib_port = {}\ngid_index = {}\n"
      "max_outstanding = {}\n\n[log]\nlevel = \"{}\"\n",
      c.pool_mb, huge, toml_quote(c.listen),
      enum_name(paging::kTransportKindNames, c.transport), c.heartbeat_ms, toml_quote(c.key_file),
      fmt::join(c.allow_uids, ", "), c.max_clients, c.max_qps_per_client,
      toml_quote(c.verbs.device), c.verbs.ib_port, c.verbs.gid_index, c.verbs.max_outstanding,
      log_level_name(c.log_level));
}

}  // namespace fm::config
