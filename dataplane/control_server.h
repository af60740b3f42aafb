// The control socket's server: fm::ControlServer serves the control protocol (control_protocol.h,
// docs/control.md) on a Unix stream socket from one background thread.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "dataplane/control_protocol.h"
#include "dataplane/result.h"

namespace fm {

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

}  // namespace fm
