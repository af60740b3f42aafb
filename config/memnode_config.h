// The memnode's configuration, read from one TOML file.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "dataplane/eal.h"
#include "dataplane/log.h"
#include "dataplane/result.h"
#include "paging/options.h"

namespace fm::config {

struct MemnodeConfig {
  // Size of the pool compute nodes page from; must hold every compute node's far region.
  uint32_t pool_mb = 256;
  // Back the pool with 2 MiB hugepages when free (auto), always (on) or never (off).
  HugepageMode hugepages = HugepageMode::kAuto;
  // Control address: unix:/path for the emulated transport, tcp:host:port for verbs. A Unix
  // socket's directory is private to the memnode's user (created 0700, or checked).
  std::string listen = "unix:/tmp/farmem-memnode/memnode.sock";
  // A file holding the secret compute nodes must prove they know (their paging.key_file);
  // required with a tcp: address. Empty: Unix peers are checked by their uid only.
  std::string key_file;
  // Users whose compute nodes may connect over the Unix socket (SO_PEERCRED), besides the
  // memnode's own user and root.
  std::vector<uint32_t> allow_uids;
  // Compute nodes connected (or handshaking) at once; more are refused with a reason.
  uint32_t max_clients = 16;
  // Verbs queue pairs one compute node may open.
  uint32_t max_qps_per_client = 64;
  paging::TransportKind transport = paging::TransportKind::kEmulated;
  paging::VerbsOptions verbs;
  // Heartbeats to and from each compute node (ms); a compute node silent for three intervals is
  // gone and its lease is released. 0 disables them (only a closed connection counts).
  uint32_t heartbeat_ms = 1000;
  LogLevel log_level = LogLevel::kInfo;
};

/// Parses a memnode config; errors name the file and key.
Result<MemnodeConfig> parse_memnode_config(std::string_view text, std::string_view source);
Result<MemnodeConfig> load_memnode_config(const std::string& path);
/// The effective configuration as TOML.
std::string to_toml(const MemnodeConfig& c);

}  // namespace fm::config
