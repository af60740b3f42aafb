// The run-time control socket: a versioned JSON-lines protocol over a Unix stream socket
// (server: fm::ControlServer; client: fm::ControlClient). docs/control.md is the contract.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "dataplane/result.h"

namespace fm {

/// The protocol version this code speaks: requests may carry "v":1 (or no "v"); every
/// response carries "v":1.
inline constexpr int kControlProtocolVersion = 1;
/// The longest request line accepted, in bytes without the newline; a longer one is answered
/// "line_too_long" and its connection closed.
inline constexpr size_t kControlMaxLineBytes = 64 * 1024;
/// The deepest nesting of arrays and objects a request may have; a deeper one is answered
/// "bad_request" before it is parsed (no recursion on a hostile line, however deep).
inline constexpr size_t kControlMaxDepth = 32;
/// How deeply the arrays and objects of JSON text `line` nest (brackets inside strings are not
/// counted; malformed text is measured all the same). Any thread; no allocation.
size_t json_nesting(std::string_view line);
/// Connections served at once; one more is accepted, answered "too_many_clients" and closed.
inline constexpr size_t kControlMaxClients = 16;
/// Unsent response bytes a client may let pile up (it does not read) before it is dropped.
inline constexpr size_t kControlMaxPendingOutput = 1024 * 1024;
/// Where kvserver and dpctl look for the socket unless told otherwise.
inline constexpr const char* kControlDefaultSocket = "/run/farmem/kvserver.sock";

/// The protocol's error code for an Errc: "invalid_argument", "restart_required", "internal",
/// "not_found", "unavailable", "resource_exhausted", "timeout" ("internal" for kOk).
const char* control_error_code(Errc code);

/// Serves the control protocol on a Unix stream socket from one background thread.
///
/// Handlers run on that control thread, one request at a time, never on a dataplane core: a
/// handler that reads or changes dataplane state must do so in a way that is safe against the
/// cores running concurrently (atomics, single-writer counters read relaxed, or a request posted
/// to the cores), and should return quickly — while it runs no other client is served.
/// Not thread-safe itself: call open/add/set_program/start/stop from one thread.
class ControlServer {
 public:
  /// A command: gets the whole request object ({"v","id","cmd", arguments...}) and returns the
  /// response's "result", or an error whose Errc becomes the response's error code
  /// (control_error_code). Runs on the control thread; may allocate; may throw (answered
  /// "internal"; the thread survives).
  using Handler = std::function<Result<nlohmann::json>(const nlohmann::json& request)>;

  /// Binds and listens on `socket_path` (a missing parent directory is created with mode
  /// 0755; the socket gets mode 0660). A stale socket file left by a dead process is replaced;
  /// a live one (connect() succeeds) is an error. `program` is what "version" reports (default:
  /// this process's name). Serves nothing until start().
  static Result<std::unique_ptr<ControlServer>> open(const std::string& socket_path,
                                                     std::string program = {});

  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;
  /// Calls stop().
  ~ControlServer();

  /// Sets the program name the built-in "version" reports. Before start().
  void set_program(std::string program);

  /// Registers command `name` with a one-line `help`. Before start(); a name registered twice
  /// (the built-ins "help" and "version" included) is a programming error (FM_CHECK).
  void add(std::string name, std::string help, Handler fn);

  /// Starts the control thread. Once; an error if the thread cannot be created.
  Status start();

  /// Stops the thread (closing every client), closes the socket and removes its file if it is
  /// still ours. Idempotent; blocks until a handler that is running returns.
  void stop();

  /// The socket path given to open().
  const std::string& path() const;

  /// Clients connected now (for tests and stats). Any thread.
  size_t client_count() const;

  /// Answers one request line (without its newline) exactly as the control thread would, and
  /// returns the response line without its newline. Runs the handler on the calling thread:
  /// for tests, and for in-process callers before start() or after stop().
  std::string handle_line(std::string_view line);

 private:
  struct Impl;
  explicit ControlServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// The integer argument `key` of a request, or invalid_argument naming the key when it is
/// missing, not an integer, or outside [min, max]. For handlers.
Result<int64_t> control_int_arg(const nlohmann::json& request, std::string_view key,
                                int64_t min = INT64_MIN, int64_t max = INT64_MAX);
/// The boolean argument `key` of a request, or invalid_argument naming it. For handlers.
Result<bool> control_bool_arg(const nlohmann::json& request, std::string_view key);
/// The string argument `key` of a request, or invalid_argument naming it. For handlers.
Result<std::string> control_string_arg(const nlohmann::json& request, std::string_view key);

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
