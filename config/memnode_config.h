// The memnode's configuration, read from one TOML file.
#pragma once

#include <string>
#include <string_view>

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
  // Control address: unix:/path for the emulated transport, tcp:host:port for verbs.
  std::string listen = "unix:/tmp/farmem-memnode.sock";
  paging::TransportKind transport = paging::TransportKind::kEmulated;
  paging::VerbsOptions verbs;
  // Heartbeats to each compute node while idle (ms); 0 disables them.
  uint32_t heartbeat_ms = 1000;
  LogLevel log_level = LogLevel::kInfo;
};

/// Parses a memnode config; errors name the file and key.
Result<MemnodeConfig> parse_memnode_config(std::string_view text, std::string_view source);
Result<MemnodeConfig> load_memnode_config(const std::string& path);
/// The effective configuration as TOML.
std::string to_toml(const MemnodeConfig& c);

}  // namespace fm::config
