// The kvserver's configuration: every module's Options, read from one TOML file.
#pragma once

#include <string>
#include <string_view>

#include "dataplane/core_alloc.h"
#include "dataplane/core_loop.h"
#include "dataplane/eal.h"
#include "dataplane/log.h"
#include "dataplane/result.h"
#include "kvapp/options.h"
#include "net/port.h"
#include "net/stack.h"
#include "paging/options.h"
#include "sched/options.h"

namespace fm::config {

/// Everything kvserver needs to start.
struct ServerConfig {
  EalOptions eal;
  IdleOptions idle;
  net::PortOptions port;
  net::NetOptions net{.deny_source_ports = {net::kMemcachedPort}};  // no loops with memcached
  kv::StoreOptions store;
  kv::ProtocolOptions protocol;
  paging::PagingOptions paging;
  sched::SchedOptions sched;
  AllocOptions alloc;                    // [alloc]: run-time core allocation
  bool control = true;                   // [control] enabled
  std::string control_socket = "/run/farmem/kvserver.sock";  // [control] socket
  LogLevel log_level = LogLevel::kInfo;  // [log] level
};

/// Parses a kvserver config from TOML text; `source` names it in errors. Unknown keys, wrong
/// types and out-of-range values are errors naming the key. The kv module's own cross-field
/// rules are checked by kv::validate() (the caller runs it: config/ links no module code).
Result<ServerConfig> parse_server_config(std::string_view text, std::string_view source);

/// Reads and parses a kvserver config file.
Result<ServerConfig> load_server_config(const std::string& path);

/// The effective configuration as TOML (logged once at start; parses back to the same config).
std::string to_toml(const ServerConfig& c);

}  // namespace fm::config
