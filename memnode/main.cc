// memnode: the memory node. Owns the pool that compute nodes page from with one-sided
// READ/WRITE; its own CPU only runs the control plane.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "config/memnode_config.h"
#include "dataplane/core_loop.h"
#include "dataplane/log.h"
#include "memnode/pool.h"
#include "memnode/server.h"
#include "memnode/verbs_acceptor.h"

int main(int argc, char** argv) {
  CLI::App app{"memnode: the memory node compute nodes page far memory from"};
  std::string config_path;
  bool print_config = false;
  app.add_option("--config", config_path,
                 "TOML config file (default: built-in defaults, identical to config/memnode.toml)");
  app.add_flag("--print-config", print_config, "print the effective configuration and exit");
  CLI11_PARSE(app, argc, argv);

  fm::config::MemnodeConfig cfg;
  if (!config_path.empty()) {
    auto loaded = fm::config::load_memnode_config(config_path);
    if (!loaded) {
      std::fprintf(stderr, "memnode: %s\n", loaded.status().message().c_str());
      return 1;
    }
    cfg = std::move(loaded.value());
  }
  if (print_config) {
    std::fputs(fm::config::to_toml(cfg).c_str(), stdout);
    return 0;
  }
  fm::set_log_level(cfg.log_level);
  FM_LOG_INFO("config", "effective configuration ({}):\n{}",
              config_path.empty() ? "built-in defaults" : config_path, fm::config::to_toml(cfg));

  fm::paging::AuthKey key;
  if (!cfg.key_file.empty()) {
    auto k = fm::paging::AuthKey::load(cfg.key_file, "memnode.key_file");
    if (!k) {
      std::fprintf(stderr, "memnode: %s\n", k.status().message().c_str());
      return 1;
    }
    key = *k;
  }
  const bool verbs_side = cfg.transport == fm::paging::TransportKind::kVerbs;
  auto pool = fm::memnode::Pool::create(
      uint64_t(cfg.pool_mb) << 20, cfg.hugepages,
      verbs_side ? fm::memnode::Pool::Kind::kOneMapping : fm::memnode::Pool::Kind::kMemfdPerLease);
  if (!pool) {
    std::fprintf(stderr, "memnode: %s\n", pool.status().message().c_str());
    return 1;
  }
  std::unique_ptr<fm::memnode::VerbsAcceptor> verbs;
  if (verbs_side) {
    auto v = fm::memnode::make_verbs_acceptor(cfg.verbs, (*pool)->base(), (*pool)->bytes());
    if (!v) {
      std::fprintf(stderr, "memnode: %s\n", v.status().message().c_str());
      return 1;
    }
    verbs = std::move(v.value());
  }
  fm::memnode::Server server(cfg, **pool, verbs.get(), key);
  if (fm::Status st = server.listen(); !st) {
    std::fprintf(stderr, "memnode: %s\n", st.message().c_str());
    return 1;
  }
  fm::install_stop_signals();
  FM_LOG_INFO("memnode", "serving a {} MiB pool ({}) on {} ({} transport{}), one lease per "
              "compute node", cfg.pool_mb, (*pool)->hugepages() ? "hugepages" : "4 KiB pages",
              cfg.listen, verbs_side ? "verbs" : "emulated",
              key.present() ? ", key required" : "");
  server.run();
  FM_LOG_INFO("memnode", "stopped");
  return 0;
}
