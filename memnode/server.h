// The memory node's control plane: accepts compute nodes, hands out the pool (memfd or verbs
// keys), connects queue pairs, and tells compute nodes when it goes away. Never on a data path.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <thread>

#include "config/memnode_config.h"
#include "dataplane/result.h"
#include "memnode/pool.h"
#include "paging/channel.h"
#include "paging/memnode_wire.h"

namespace fm::memnode {

/// The verbs side of the memnode (registered pool, queue pairs). Absent for emulated.
class VerbsAcceptor {
 public:
  virtual ~VerbsAcceptor() = default;
  virtual uint64_t pool_addr() const = 0;
  virtual uint32_t rkey() const = 0;
  /// Creates a queue pair connected to the compute node's `peer`; returns its address.
  /// `session` names the compute node's connection.
  virtual Result<paging::wire::QpInfo> accept(const paging::wire::QpInfo& peer,
                                              uint64_t session) = 0;
  /// Drops every queue pair of `session` (the compute node left).
  virtual void release(uint64_t session) = 0;
};

class Server {
 public:
  Server(const config::MemnodeConfig& cfg, Pool& pool, VerbsAcceptor* verbs)
      : cfg_(cfg), pool_(pool), verbs_(verbs) {}
  ~Server();

  /// Binds the control address. Control path.
  Status listen();
  /// Serves until stop(); then says goodbye to every compute node and joins their threads.
  void run();
  /// Any thread (signal handlers use request_stop() and run() polls it too).
  void stop() { stop_.store(true); }
  /// Compute nodes connected now.
  uint32_t connections() const { return connections_.load(); }

 private:
  void serve(paging::Channel ch);

  const config::MemnodeConfig& cfg_;
  Pool& pool_;
  VerbsAcceptor* verbs_;
  paging::Listener listener_;
  std::atomic<bool> stop_{false};
  std::atomic<uint32_t> connections_{0};
  std::atomic<uint64_t> next_session_{1};
  std::mutex mu_;
  std::list<std::thread> threads_;
};

}  // namespace fm::memnode
