// kvserver: the compute node — memcached UDP served from the store by the server runtime.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "config/server_config.h"
#include "dataplane/log.h"
#include "kvapp/far_arena.h"
#include "kvapp/server_app.h"
#include "kvapp/store.h"
#include "runtime/server.h"

namespace fm::kv {
namespace {
constexpr const char* kTag = "kvserver";

/// The runtime's options from the config: every module's table, and the far region sized for
/// the store's memory and its largest item.
rt::ServerOptions server_options(const config::ServerConfig& cfg) {
  rt::ServerOptions o;
  o.program = "kvserver";
  o.service = "memcached UDP";
  o.eal = cfg.eal;
  o.idle = cfg.idle;
  o.port = cfg.port;
  o.net = cfg.net;
  o.paging = cfg.paging;
  o.sched = cfg.sched;
  o.alloc = cfg.alloc;
  o.control = cfg.control;
  o.control_socket = cfg.control_socket;
  o.udp_max_payload = cfg.protocol.udp_max_payload;
  o.far_bytes = uint64_t(cfg.store.memory_mb) << 20;
  o.max_pin_bytes = cfg.store.item_size_max;
  return o;
}

int run(const config::ServerConfig& cfg) {
  auto server = rt::Server::open(server_options(cfg));
  if (!server) {
    FM_LOG_ERROR(kTag, "{}", server.status().message());
    return 1;
  }
  // In far mode the store's items live in the far region; its index stays local.
  std::unique_ptr<Arena> arena;
  if (paging::Region* region = (*server)->region()) arena = std::make_unique<FarArena>(*region);
  auto store = Store::create(cfg.store, std::move(arena));
  if (!store) {
    FM_LOG_ERROR(kTag, "{}", store.status().message());
    return 1;
  }
  KvServerApp app(**store, cfg.protocol, **server, cfg.sched.history_window);
  Status st = (*server)->run(app);
  if (!st) FM_LOG_ERROR(kTag, "{}", st.message());
  return st ? 0 : 1;
}

}  // namespace
}  // namespace fm::kv

int main(int argc, char** argv) {
  CLI::App app{"kvserver: memcached-UDP key-value server on DPDK polling cores"};
  std::string config_path;
  bool print_config = false;
  app.add_option("--config", config_path,
                 "TOML config file (default: built-in defaults, identical to config/kvserver.toml)");
  app.add_flag("--print-config", print_config, "print the effective configuration and exit");
  CLI11_PARSE(app, argc, argv);

  fm::config::ServerConfig cfg;
  if (!config_path.empty()) {
    auto loaded = fm::config::load_server_config(config_path);
    if (!loaded) {
      std::fprintf(stderr, "kvserver: %s\n", loaded.status().message().c_str());
      return 1;
    }
    cfg = std::move(loaded.value());
  }
  if (fm::Status st = fm::kv::validate(cfg.store, cfg.protocol); !st) {
    std::fprintf(stderr, "kvserver: %s%s%s\n", config_path.c_str(), config_path.empty() ? "" : ": ",
                 st.message().c_str());
    return 1;
  }
  const std::string effective = fm::config::to_toml(cfg);
  if (print_config) {
    std::fputs(effective.c_str(), stdout);
    return 0;
  }
  fm::set_log_level(cfg.log_level);
  FM_LOG_INFO("config", "effective configuration ({}):\n{}",
              config_path.empty() ? "built-in defaults" : config_path, effective);
  return fm::kv::run(cfg);
}
