// The control channel between compute and memory nodes: framed messages over a Unix or TCP
// stream socket, with file-descriptor passing on Unix sockets (the emulated pool's memfd).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dataplane/result.h"
#include "paging/memnode_wire.h"

namespace fm::paging {

/// An address: "unix:/path/to/socket" or "tcp:HOST:PORT" (HOST a dotted quad or a name).
struct ChannelAddress {
  enum class Kind : uint8_t { kUnix, kTcp };
  Kind kind = Kind::kUnix;
  std::string path;  // kUnix
  std::string host;  // kTcp
  uint16_t port = 0; // kTcp
};

/// Parses an address; the error names `what` (the config key) and quotes the text.
Result<ChannelAddress> parse_channel_address(const std::string& text, const std::string& what);

/// Decodes one received message, `got` and `msg` as Channel::recv() returned them, that must be
/// a `want` of type T; a kError message becomes its reason. Pure: recv_as() is recv() and this.
template <typename T>
Result<T> decode_as(wire::MsgType want, wire::MsgType got, std::span<const uint8_t> msg) {
  if (got == wire::MsgType::kError && msg.size() == sizeof(wire::ErrorMsg)) {
    wire::ErrorMsg e;
    std::memcpy(&e, msg.data(), sizeof(e));
    e.reason[sizeof(e.reason) - 1] = 0;
    return error(Errc::kUnavailable, std::string("memory node refused: ") + e.reason);
  }
  if (got != want || msg.size() != sizeof(T)) {
    return error(Errc::kInternal, "unexpected control message type " + std::to_string(int(got)) +
                                      " of " + std::to_string(msg.size()) + " bytes");
  }
  T out;
  std::memcpy(&out, msg.data(), sizeof(T));
  return out;
}

/// One connected control channel. Control path only: calls block up to their timeout.
class Channel {
 public:
  Channel() = default;
  explicit Channel(int fd) : fd_(fd) {}
  ~Channel();
  Channel(Channel&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Channel& operator=(Channel&& o) noexcept;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  /// Connects, retrying for up to `timeout_ms` while the peer is not listening yet.
  static Result<Channel> connect(const ChannelAddress& addr, int timeout_ms);

  /// Sends one whole message (header included); passes `fd` along when >= 0 (Unix only).
  Status send(const void* msg, uint32_t len, int fd = -1);

  /// Receives one whole message into `buf` (resized to the message's length), checking magic,
  /// version and a sane length; returns its type. `fd_out` receives a passed descriptor (or -1).
  /// Times out after `timeout_ms` (-1: wait forever) with Errc::kTimeout.
  Result<wire::MsgType> recv(std::vector<uint8_t>& buf, int timeout_ms, int* fd_out = nullptr);

  /// Receives a message that must be of type T (a kError message becomes its reason).
  template <typename T>
  Result<T> recv_as(wire::MsgType type, int timeout_ms, int* fd_out = nullptr) {
    std::vector<uint8_t> buf;
    auto t = recv(buf, timeout_ms, fd_out);
    if (!t) return t.status();
    return decode_as<T>(type, *t, buf);
  }

  /// The process at the other end of a Unix channel, as the kernel vouches for it
  /// (SO_PEERCRED): its uid and pid. kInvalidArgument on a TCP channel.
  struct Peer {
    uint32_t uid = 0;
    int32_t pid = 0;
  };
  Result<Peer> peer() const;

  int fd() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }
  void close();

 private:
  int fd_ = -1;
};

/// Makes `dir` a private directory for a listening Unix socket: creates it (0700) when absent,
/// else requires a real directory (not a symbolic link) owned by this process's user with no
/// access for group or others. The error names `what` (the config key) and says how to fix it.
/// This is what keeps another user from creating the socket path first.
Status ensure_private_dir(const std::string& dir, const std::string& what);

/// A listening socket for the memory node.
class Listener {
 public:
  Listener() = default;
  ~Listener();
  Listener(Listener&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)) { o.fd_ = -1; }
  Listener& operator=(Listener&& o) noexcept {
    std::swap(fd_, o.fd_);
    std::swap(path_, o.path_);
    return *this;
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  /// Binds and listens. A Unix socket lives in a private directory (ensure_private_dir; the
  /// error names `what`); a stale socket file there is replaced only if nobody answers on it.
  static Result<Listener> listen(const ChannelAddress& addr, const std::string& what = "listen");

  /// Waits up to `timeout_ms` for a connection (-1: forever). kTimeout on timeout;
  /// kResourceExhausted when the process or system is out of descriptors or memory (EMFILE,
  /// ENFILE, ENOBUFS, ENOMEM: the connection stays queued, so the caller must back off rather
  /// than call again at once); kUnavailable for anything else.
  Result<Channel> accept(int timeout_ms);

  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string path_;  // Unix socket file to remove on close
};

}  // namespace fm::paging
