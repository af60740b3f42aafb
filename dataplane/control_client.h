// The control socket's client: fm::ControlClient, a blocking client of the control protocol
// (control_protocol.h, docs/control.md) with a deadline on every exchange. Needs no DPDK.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "dataplane/control_protocol.h"
#include "dataplane/result.h"

namespace fm {

/// A blocking client of the control protocol with a deadline on every exchange (dpctl, tests).
/// Not thread-safe; one request in flight at a time.
class ControlClient {
 public:
  /// Connects to the server at `socket_path`. Errors: kUnavailable (no such socket, refused,
  /// permission denied; the message names the path), kTimeout (the server's backlog stayed
  /// full for `timeout`), kInvalidArgument (path too long). `timeout` also bounds every later
  /// exchange.
  static Result<ControlClient> connect(const std::string& socket_path,
                                       std::chrono::milliseconds timeout);

  ControlClient(ControlClient&& other) noexcept;
  ControlClient& operator=(ControlClient&& other) noexcept;
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;
  ~ControlClient();

  /// Sends `line` plus a newline verbatim and returns the next response line (no newline).
  /// Errors: kTimeout, kUnavailable (the server closed the connection), kInternal.
  Result<std::string> exchange(std::string_view line);

  /// Sends `request` (an object; "v" and a fresh "id" are filled in when absent) and returns
  /// the parsed response. A server-side failure is a response with "ok":false, not an error
  /// Status; errors are transport failures and malformed responses (kInternal).
  Result<nlohmann::json> call(nlohmann::json request);

  /// Sends one line (a newline is appended) within the deadline.
  Status send_line(std::string_view line);
  /// Reads the next line (without its newline) within the deadline.
  Result<std::string> read_line();

  const std::string& path() const { return path_; }

 private:
  ControlClient(int fd, std::string path, std::chrono::milliseconds timeout)
      : fd_(fd), path_(std::move(path)), timeout_(timeout) {}
  Status wait_fd(short events, std::chrono::steady_clock::time_point deadline, const char* what);

  int fd_ = -1;
  std::string path_;
  std::chrono::milliseconds timeout_;
  std::string in_;
  int64_t next_id_ = 1;
};

}  // namespace fm
