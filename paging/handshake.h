// The session handshake between a compute node and a memory node (paging/memnode_wire.h):
// Challenge -> Hello -> HelloAck, authenticated with a shared key when one is configured
// (HMAC-SHA-256 both ways, libsodium), and the checks each side makes of the other before any
// memory changes hands. Control path only.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "dataplane/result.h"
#include "paging/channel.h"
#include "paging/memnode_wire.h"

namespace fm::paging {

/// A shared secret, from a key file named in both configs. Empty (no file): sessions are not
/// authenticated, which a memnode allows on a Unix socket only (peer credentials check there).
class AuthKey {
 public:
  AuthKey() = default;
  /// Reads the key file `path` (the config key `what` is quoted in errors): at least 16 bytes
  /// after trailing whitespace is cut, at most 4096, and readable by its owner only (like an
  /// ssh private key). The key is a BLAKE2b hash of the contents, so any text works.
  static Result<AuthKey> load(const std::string& path, const std::string& what);
  /// A key from bytes (tests).
  static AuthKey from_secret(const std::string& secret);

  bool present() const { return present_; }
  const std::array<uint8_t, 32>& bytes() const { return key_; }

 private:
  bool present_ = false;
  std::array<uint8_t, 32> key_{};
};

/// The memory node's first message: a fresh nonce; `key_required` when it has a key.
wire::Challenge make_challenge(bool key_required);

/// The tag a keyed compute node puts in Hello.mac (over "hello", the challenge's nonce and the
/// Hello up to its mac field). Pure given the key.
std::array<uint8_t, wire::kMacBytes> hello_mac(const AuthKey& key, const wire::Challenge& c,
                                               const wire::Hello& h);
/// Checks Hello.mac in constant time. Pure.
bool hello_mac_ok(const AuthKey& key, const wire::Challenge& c, const wire::Hello& h);
/// Fills HelloAck.mac (over "ack", the Hello's nonce and the HelloAck up to its mac field).
void sign_ack(const AuthKey& key, const wire::Hello& h, wire::HelloAck& ack);
/// Checks HelloAck.mac in constant time. Pure.
bool ack_mac_ok(const AuthKey& key, const wire::Hello& h, const wire::HelloAck& ack);

/// What a compute node asks for.
struct HelloRequest {
  wire::TransportKind transport = wire::TransportKind::kEmulated;
  uint16_t cores = 1;
  uint64_t region_bytes = 0;  // the lease: what the far region needs
  std::string name;           // for the memnode's logs (cut to 47 bytes)
};

/// What the memory node granted: its HelloAck, and (emulated) the lease's memfd, owned by the
/// caller (-1 for verbs).
struct Granted {
  wire::HelloAck ack{};
  int memfd = -1;
};

/// Liveness of a control channel by heartbeats: each side sends one every `interval_ms` and
/// declares the other dead after `misses` intervals without hearing anything. Pure (times in
/// milliseconds from any monotonic clock); interval 0 disables both.
class Heartbeats {
 public:
  Heartbeats(uint32_t interval_ms, uint32_t misses, uint64_t now_ms)
      : interval_(interval_ms), misses_(misses), last_rx_(now_ms), last_tx_(now_ms) {}
  void heard(uint64_t now_ms) { last_rx_ = now_ms; }
  /// True (and the send is accounted) when a heartbeat is due now.
  bool send_due(uint64_t now_ms) {
    if (interval_ == 0 || now_ms - last_tx_ < interval_) return false;
    last_tx_ = now_ms;
    return true;
  }
  /// True once the peer has been silent for `misses` intervals.
  bool peer_silent(uint64_t now_ms) const {
    return interval_ != 0 && now_ms - last_rx_ >= uint64_t(interval_) * misses_;
  }
  uint32_t interval_ms() const { return interval_; }
  uint32_t misses() const { return misses_; }

 private:
  uint32_t interval_;
  uint32_t misses_;
  uint64_t last_rx_, last_tx_;
};

/// Heartbeat intervals of silence after which either side declares the other dead.
inline constexpr uint32_t kHeartbeatMisses = 3;

/// Milliseconds on the steady clock (for Heartbeats).
uint64_t steady_ms();

/// The compute node's side of the handshake on a connected channel to `where` (its address, for
/// messages): on a Unix channel first checks that the memnode runs as this user or root (an
/// impostor that took the socket path fails here), then Challenge -> Hello -> HelloAck, with the
/// MACs checked both ways when `key` is present. Errors say what to fix (a missing or different
/// key, a refusal with the memnode's reason, a lease that does not fit).
Result<Granted> client_handshake(Channel& ch, const HelloRequest& req, const AuthKey& key,
                                 const std::string& where, int timeout_ms);

}  // namespace fm::paging
