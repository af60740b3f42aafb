// The memory node's control plane: accepts compute nodes, hands out the pool (memfd or verbs
// keys), connects queue pairs, and tells compute nodes when it goes away. Never on a data path.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <mutex>
#include <span>
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

/// A compute node's Hello as the memory node reads it.
struct HelloCheck {
  std::string who;      // the compute node's name (its NUL-padded name field, cut at 47 bytes)
  std::string refusal;  // why it is refused, sent back in an ErrorMsg; empty: accepted
};
/// Checks a decoded Hello against the transport this memory node serves. Pure.
HelloCheck check_hello(const paging::wire::Hello& hello, paging::TransportKind served);

/// What the memory node does with one message of a connected compute node (after its Hello).
struct Step {
  enum class Kind : uint8_t {
    kIgnore,     // a heartbeat
    kClose,      // goodbye: the session ends
    kConnectQp,  // connect the verbs queue pair in `qp`
    kRefuse,     // answer an ErrorMsg with `reason`; the session goes on
  };
  Kind kind = Kind::kIgnore;
  paging::wire::QpConnect qp{};
  std::string reason;
};
/// Decides the Step for a message, `type` and `msg` as Channel::recv() returned them; `verbs`:
/// this memory node has a verbs side. Pure: the protocol half of Server's session loop.
Step next_step(paging::wire::MsgType type, std::span<const uint8_t> msg, bool verbs);

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
