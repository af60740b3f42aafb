// Helpers for the control tests: a temporary directory, a raw socket client that controls
// framing byte by byte, and a server with test handlers.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>

#include "dataplane/control.h"

namespace fm::test {

using json = nlohmann::json;
using namespace std::chrono_literals;

/// A fresh directory under /tmp (short, so socket paths fit sun_path), removed at destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/fmctl.XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    EXPECT_NE(p, nullptr) << std::strerror(errno);
    path_ = p ? p : "/tmp";
  }
  ~TempDir() {
    std::error_code ec;
    // A permission test may have left a directory read-only.
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// Polls `pred` until it holds or `timeout` passes.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 3000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return pred();
}

/// A blocking Unix-socket client with full control over what bytes go out when.
class RawConn {
 public:
  explicit RawConn(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawConn() { close(); }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  /// Writes all of `bytes`; false if the peer is gone.
  bool send(std::string_view bytes) {
    for (size_t off = 0; off < bytes.size();) {
      const ssize_t w = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (w <= 0) return false;
      off += size_t(w);
    }
    return true;
  }

  /// The next line (no newline), or nullopt on EOF, error or timeout.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (const size_t nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      if (!wait_readable(deadline)) return std::nullopt;
      char tmp[65536];
      const ssize_t r = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (r <= 0) return std::nullopt;
      buf_.append(tmp, size_t(r));
    }
  }

  /// The next response line parsed as JSON (null JSON if none came).
  json read_json(std::chrono::milliseconds timeout = 5000ms) {
    auto line = read_line(timeout);
    if (!line) return json();
    return json::parse(*line);
  }

  /// True when the server closed the connection (EOF or reset) within `timeout` and nothing
  /// but whole lines came first (they are discarded).
  bool closed_by_peer(std::chrono::milliseconds timeout = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (!wait_readable(deadline)) return false;
      char tmp[65536];
      const ssize_t r = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (r == 0 || (r < 0 && errno == ECONNRESET)) return true;
      if (r < 0) return false;
    }
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  bool wait_readable(std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, int(left)) > 0;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

}  // namespace fm::test
