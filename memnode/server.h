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
#include <vector>

#include "config/memnode_config.h"
#include "dataplane/result.h"
#include "memnode/pool.h"
#include "paging/channel.h"
#include "paging/handshake.h"
#include "paging/memnode_wire.h"

namespace fm::memnode {

/// The verbs side of the memnode (registered pool, queue pairs). Absent for emulated.
class VerbsAcceptor {
 public:
  virtual ~VerbsAcceptor() = default;
  virtual uint64_t pool_addr() const = 0;
  /// Registers the lease [offset, offset + bytes) of the pool for remote READ/WRITE under
  /// `session` and returns its rkey: a compute node reaches its own lease and nothing else.
  virtual Result<uint32_t> lease_rkey(uint64_t offset, uint64_t bytes, uint64_t session) = 0;
  /// Creates a queue pair connected to the compute node's `peer`; returns its address.
  /// `session` names the compute node's connection.
  virtual Result<paging::wire::QpInfo> accept(const paging::wire::QpInfo& peer,
                                              uint64_t session) = 0;
  /// Drops every queue pair and lease registration of `session` (the compute node left).
  virtual void release(uint64_t session) = 0;
};

/// A compute node's Hello as the memory node reads it.
struct HelloCheck {
  std::string who;      // the compute node's name (its NUL-padded name field, cut at 47 bytes)
  std::string refusal;  // why it is refused, sent back in an ErrorMsg; empty: accepted
};
/// What a Hello is checked against.
struct HelloPolicy {
  paging::TransportKind served = paging::TransportKind::kEmulated;
  const paging::AuthKey* key = nullptr;                // present: the Hello's MAC must verify
  const paging::wire::Challenge* challenge = nullptr;  // the one this session sent
  uint32_t max_qps = 64;                               // memnode.max_qps_per_client
};
/// Checks a decoded Hello: transport, a non-empty region, cores within max_qps, and the MAC
/// when a key is configured (constant time). Pure.
HelloCheck check_hello(const paging::wire::Hello& hello, const HelloPolicy& policy);

/// Whether a Unix peer of uid `uid` may connect: the memnode's own user, root, or one listed in
/// memnode.allow_uids. Pure.
bool uid_allowed(uint32_t uid, uint32_t self, const std::vector<uint32_t>& allowed);

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
  /// `key`: the shared secret of memnode.key_file (empty when none).
  Server(const config::MemnodeConfig& cfg, Pool& pool, VerbsAcceptor* verbs,
         paging::AuthKey key = {})
      : cfg_(cfg), pool_(pool), verbs_(verbs), key_(std::move(key)) {}
  ~Server();

  /// Binds the control address (a Unix socket in a private directory). Control path.
  Status listen();
  /// Serves until stop(); then says goodbye to every compute node and joins their threads.
  /// At most memnode.max_clients sessions (handshaking or connected) at once: more are told
  /// why and closed. Finished sessions' threads are joined as it goes.
  void run();
  /// Any thread (signal handlers use request_stop() and run() polls it too).
  void stop() { stop_.store(true); }
  /// Compute nodes connected now (handshake done, lease held).
  uint32_t connections() const { return connections_.load(); }
  /// Session threads alive now (handshaking or connected).
  uint32_t sessions() const { return sessions_.load(); }
  /// Connections refused (over max_clients, a uid not allowed, a bad Hello or key).
  uint64_t refused() const { return refused_.load(); }

 private:
  struct Session {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void serve(paging::Channel ch);
  void reap(bool all);

  const config::MemnodeConfig& cfg_;
  Pool& pool_;
  VerbsAcceptor* verbs_;
  paging::AuthKey key_;
  paging::Listener listener_;
  std::atomic<bool> stop_{false};
  std::atomic<uint32_t> connections_{0};
  std::atomic<uint32_t> sessions_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> next_session_{1};
  std::mutex mu_;
  std::list<Session> threads_;
};

}  // namespace fm::memnode
