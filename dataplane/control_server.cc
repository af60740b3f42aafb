// The control socket's server: listener, per-client buffers and request dispatch.
#include "dataplane/control_server.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <map>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "dataplane/check.h"
#include "dataplane/control_internal.h"
#include "dataplane/log.h"

namespace fm {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using control_internal::errno_text;
using control_internal::fill_addr;
using control_internal::strip_json_prefix;
using control_internal::to_line;

constexpr const char* kTag = "control";
constexpr size_t kReadChunk = 64 * 1024;
constexpr int kListenBacklog = 64;
// What a closing connection may still have unread from its peer; draining it before close()
// lets the peer read our last line instead of getting ECONNRESET first.
constexpr size_t kDrainOnCloseBytes = 256 * 1024;

json error_response(const json& id, std::string_view code, std::string_view message) {
  return json{{"v", kControlProtocolVersion},
              {"id", id},
              {"ok", false},
              {"error", {{"code", code}, {"message", message}}}};
}

bool is_blank(std::string_view s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

// Creates the missing directories above `path`, each with mode 0755 whatever the umask.
Status make_parent_dirs(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return Status::ok();
  const std::string dir = path.substr(0, slash);
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return error(Errc::kInvalidArgument,
                   fmt::format("cannot create control socket {}: {} is not a directory (set "
                               "control.socket)",
                               path, dir));
    }
    return Status::ok();
  }
  if (errno != ENOENT) {
    const int e = errno;
    return error(Errc::kInvalidArgument,
                 fmt::format("cannot use directory {} for control socket {}: {} (set "
                             "control.socket)",
                             dir, path, errno_text(e)));
  }
  for (size_t pos = 1;;) {
    const size_t next = dir.find('/', pos);
    const std::string part = dir.substr(0, next);
    if (::mkdir(part.c_str(), 0755) == 0) {
      ::chmod(part.c_str(), 0755);  // the umask may have taken bits away
    } else if (errno != EEXIST) {
      const int e = errno;
      return error(Errc::kInvalidArgument,
                   fmt::format("cannot create directory {} for control socket {}: {}{}", part, path,
                               errno_text(e),
                               e == EACCES ? " (run as a user that may, or set control.socket)"
                                           : " (set control.socket)"));
    }
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return Status::ok();
}

// Reads and discards what the peer already sent, then closes (see kDrainOnCloseBytes).
void close_gently(int fd) {
  ::shutdown(fd, SHUT_WR);
  char buf[4096];
  for (size_t total = 0; total < kDrainOnCloseBytes;) {
    const ssize_t r = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (r <= 0) break;
    total += size_t(r);
  }
  ::close(fd);
}

}  // namespace

struct ControlServer::Impl {
  struct Command {
    std::string help;
    Handler fn;
  };
  // One connection. Owned and touched only by the control thread.
  struct Conn {
    int fd = -1;
    uint64_t serial = 0;
    std::string in;        // bytes of the current, incomplete request line(s)
    size_t scan_from = 0;  // `in` before this offset holds no newline
    std::string out;       // responses not yet accepted by the socket, from out_off on
    size_t out_off = 0;
    bool read_eof = false;  // the peer shut down its side: answer what is complete, then close
    bool closing = false;   // we answered a fatal error: flush, then close
    bool dead = false;      // close now

    size_t pending() const { return out.size() - out_off; }
  };

  std::string path;
  std::string program;
  int listen_fd = -1;
  int stop_fd = -1;
  dev_t sock_dev = 0;
  ino_t sock_ino = 0;
  std::map<std::string, Command, std::less<>> commands;
  std::vector<Conn> conns;
  std::thread thread;
  bool started = false;
  bool stopped = false;
  std::atomic<size_t> nclients{0};
  uint64_t next_serial = 1;

  ~Impl() { shutdown(); }

  void add_builtins() {
    commands.emplace("help", Command{"list the commands with a line of help each",
                                     [this](const json&) -> Result<json> {
                                       json list = json::array();
                                       for (const auto& [name, c] : commands) {
                                         list.push_back({{"cmd", name}, {"help", c.help}});
                                       }
                                       return list;
                                     }});
    commands.emplace(
        "version",
        Command{"the protocol version and the program serving it",
                [this](const json&) -> Result<json> {
                  return json{{"protocol", kControlProtocolVersion}, {"program", program}};
                }});
  }

  std::string handle_line(std::string_view line) {
    try {
      return to_line(respond(line));
    } catch (const std::exception& e) {  // to_line() cannot throw; this is belt and braces
      return to_line(error_response(nullptr, "internal", e.what()));
    }
  }

  json respond(std::string_view line) {
    if (const size_t depth = json_nesting(line); depth > kControlMaxDepth) {
      return error_response(nullptr, "bad_request",
                            fmt::format("request nests {} levels deep; at most {} are accepted",
                                        depth, kControlMaxDepth));
    }
    json req;
    try {
      req = json::parse(line);
    } catch (const json::parse_error& e) {
      return error_response(nullptr, "parse_error",
                            fmt::format("request is not JSON: {}", strip_json_prefix(e.what())));
    }
    if (!req.is_object()) {
      return error_response(
          nullptr, "bad_request",
          fmt::format("a request must be a JSON object, not {}", req.type_name()));
    }
    const auto id_it = req.find("id");
    const json id = id_it != req.end() ? *id_it : json(nullptr);
    if (const auto v = req.find("v");
        v != req.end() && !(v->is_number_integer() && *v == kControlProtocolVersion)) {
      return error_response(id, "unsupported_version",
                            fmt::format("protocol version {} is not supported; this server "
                                        "speaks version {}",
                                        to_line(*v), kControlProtocolVersion));
    }
    const auto cmd_it = req.find("cmd");
    if (cmd_it == req.end() || !cmd_it->is_string()) {
      return error_response(id, "bad_request", "a request needs a string \"cmd\"");
    }
    const std::string& name = cmd_it->get_ref<const std::string&>();
    const auto cmd = commands.find(name);
    if (cmd == commands.end()) {
      return error_response(
          id, "unknown_command",
          fmt::format("unknown command \"{}\" (\"help\" lists the commands)", name));
    }
    FM_LOG_DEBUG(kTag, "command {}", name);
    std::optional<Result<json>> result;
    try {
      result.emplace(cmd->second.fn(req));
    } catch (const std::exception& e) {
      FM_LOG_WARN(kTag, "command {} threw: {}", name, e.what());
      return error_response(id, "internal", fmt::format("command {} failed: {}", name, e.what()));
    } catch (...) {
      FM_LOG_WARN(kTag, "command {} threw a non-standard exception", name);
      return error_response(id, "internal",
                            fmt::format("command {} failed with an unknown exception", name));
    }
    if (!result->is_ok()) {
      return error_response(id, control_error_code(result->status().code()),
                            result->status().message());
    }
    return json{{"v", kControlProtocolVersion},
                {"id", id},
                {"ok", true},
                {"result", std::move(result->value())}};
  }

  void run() {
    std::vector<pollfd> pfds;
    Clock::time_point accept_resume{};
    for (;;) {
      const bool listening = Clock::now() >= accept_resume;
      pfds.clear();
      pfds.push_back({stop_fd, POLLIN, 0});
      pfds.push_back({listening ? listen_fd : -1, POLLIN, 0});  // poll() skips a negative fd
      for (const Conn& c : conns) {
        short events = 0;
        if (!c.read_eof && !c.closing) events |= POLLIN;
        if (c.pending() != 0) events |= POLLOUT;
        pfds.push_back({c.fd, events, 0});
      }
      const int n = ::poll(pfds.data(), pfds.size(), listening ? -1 : 100);
      if (n < 0) {
        const int e = errno;
        if (e == EINTR) continue;
        FM_LOG_FIRST_N(LogLevel::kError, 5, kTag, "poll failed: {}", errno_text(e));
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      if (pfds[0].revents != 0) break;
      const size_t existing = conns.size();
      for (size_t i = 0; i < existing; ++i) service(conns[i], pfds[2 + i].revents);
      if (listening && (pfds[1].revents & POLLIN)) accept_clients(&accept_resume);
      std::erase_if(conns, [](Conn& c) {
        if (!c.dead) return false;
        if (c.closing || c.read_eof) {
          close_gently(c.fd);
        } else {
          ::close(c.fd);
        }
        return true;
      });
      nclients.store(conns.size(), std::memory_order_relaxed);
    }
    for (Conn& c : conns) ::close(c.fd);
    conns.clear();
    nclients.store(0, std::memory_order_relaxed);
  }

  void accept_clients(Clock::time_point* accept_resume) {
    for (;;) {
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const int e = errno;
        if (e == EINTR || e == ECONNABORTED) continue;
        if (e == EAGAIN || e == EWOULDBLOCK) return;
        // Out of descriptors or memory: the listener stays readable, so back off instead of
        // spinning on it.
        FM_LOG_FIRST_N(LogLevel::kWarn, 5, kTag, "accept on {} failed: {}", path, errno_text(e));
        *accept_resume = Clock::now() + std::chrono::milliseconds(100);
        return;
      }
      if (conns.size() >= kControlMaxClients) {
        const std::string line =
            to_line(error_response(nullptr, "too_many_clients",
                                   fmt::format("the control socket serves at most {} clients at "
                                               "once; try again later",
                                               kControlMaxClients))) +
            "\n";
        // A fresh socket's buffer takes one short line; if not, the client learns by EOF.
        (void)!::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        close_gently(fd);
        FM_LOG_FIRST_N(LogLevel::kWarn, 5, kTag, "refused a client: {} already connected",
                       kControlMaxClients);
        continue;
      }
      Conn c;
      c.fd = fd;
      c.serial = next_serial++;
      FM_LOG_DEBUG(kTag, "client {} connected", c.serial);
      conns.push_back(std::move(c));
    }
  }

  void service(Conn& c, short revents) {
    if (revents & POLLNVAL) {
      c.dead = true;
      return;
    }
    if ((revents & (POLLIN | POLLHUP | POLLERR)) && !c.read_eof && !c.closing) read_some(c);
    if (!c.dead && c.pending() != 0) flush(c);
    if (c.dead) return;
    if (c.pending() > kControlMaxPendingOutput) {
      FM_LOG_WARN(kTag, "dropping client {}: {} bytes of responses unread (limit {})", c.serial,
                  c.pending(), kControlMaxPendingOutput);
      c.dead = true;
      return;
    }
    if (c.pending() == 0 && (c.read_eof || c.closing)) c.dead = true;
  }

  void read_some(Conn& c) {
    const size_t old = c.in.size();
    c.in.resize(old + kReadChunk);
    const ssize_t r = ::recv(c.fd, c.in.data() + old, kReadChunk, 0);
    const int e = errno;
    c.in.resize(old + size_t(r > 0 ? r : 0));
    if (r > 0) {
      process_lines(c);
    } else if (r == 0) {
      // A request without its newline is incomplete: the client left mid-line.
      if (!c.in.empty()) {
        FM_LOG_DEBUG(kTag, "client {} closed mid-line ({} bytes dropped)", c.serial, c.in.size());
      }
      c.in.clear();
      c.scan_from = 0;
      c.read_eof = true;
    } else if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR) {
      FM_LOG_DEBUG(kTag, "client {}: {}", c.serial, errno_text(e));
      c.dead = true;
    }
  }

  void process_lines(Conn& c) {
    size_t start = 0;
    while (!c.closing) {
      const size_t nl = c.in.find('\n', c.scan_from);
      if (nl == std::string::npos) {
        c.scan_from = c.in.size();
        break;
      }
      std::string_view line(c.in.data() + start, nl - start);
      c.scan_from = nl + 1;
      start = nl + 1;
      if (line.size() > kControlMaxLineBytes) {
        line_too_long(c, line.size());
        break;
      }
      if (!is_blank(line)) {
        if (line.back() == '\r') line.remove_suffix(1);
        c.out += handle_line(line);
        c.out += '\n';
      }
    }
    if (c.closing) {
      c.in.clear();
      c.scan_from = 0;
      return;
    }
    c.in.erase(0, start);
    c.scan_from -= start;
    if (c.in.size() > kControlMaxLineBytes) line_too_long(c, c.in.size());
  }

  void line_too_long(Conn& c, size_t bytes) {
    FM_LOG_WARN(kTag, "client {}: request line of {}{} bytes is over the {} byte limit; closing",
                c.serial, c.in.size() == bytes ? "at least " : "", bytes, kControlMaxLineBytes);
    c.out += to_line(
        error_response(nullptr, "line_too_long",
                       fmt::format("request line is longer than {} bytes; closing the connection",
                                   kControlMaxLineBytes)));
    c.out += '\n';
    c.closing = true;
  }

  void flush(Conn& c) {
    while (c.pending() != 0) {
      const ssize_t w =
          ::send(c.fd, c.out.data() + c.out_off, c.pending(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        c.out_off += size_t(w);
      } else if (w < 0 && errno == EINTR) {
        continue;
      } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      } else {
        const int e = w < 0 ? errno : EPIPE;
        FM_LOG_DEBUG(kTag, "client {}: {}", c.serial, errno_text(e));
        c.dead = true;
        return;
      }
    }
    if (c.out_off == c.out.size()) {
      c.out.clear();
      c.out_off = 0;
    } else if (c.out_off > kReadChunk && c.out_off > c.out.size() / 2) {
      c.out.erase(0, c.out_off);
      c.out_off = 0;
    }
  }

  void shutdown() {
    if (stopped) return;
    stopped = true;
    if (thread.joinable()) {
      FM_CHECK_MSG(thread.get_id() != std::this_thread::get_id(),
                   "ControlServer::stop() called from a control handler");
      const uint64_t one = 1;
      (void)!::write(stop_fd, &one, sizeof(one));
      thread.join();
    }
    if (listen_fd >= 0) ::close(listen_fd);
    if (stop_fd >= 0) ::close(stop_fd);
    listen_fd = stop_fd = -1;
    // Remove the file only if it is still the socket we bound: another server may own the path
    // by now.
    struct stat st {};
    if (sock_ino != 0 && ::lstat(path.c_str(), &st) == 0 && st.st_dev == sock_dev &&
        st.st_ino == sock_ino) {
      ::unlink(path.c_str());
    }
    if (started) FM_LOG_INFO(kTag, "stopped serving {}", path);
  }
};

ControlServer::ControlServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ControlServer::~ControlServer() { stop(); }

Result<std::unique_ptr<ControlServer>> ControlServer::open(const std::string& socket_path,
                                                           std::string program) {
  sockaddr_un addr;
  FM_RETURN_IF_ERROR(fill_addr(socket_path, &addr));
  FM_RETURN_IF_ERROR(make_parent_dirs(socket_path));
  const char* p = socket_path.c_str();

  struct stat st {};
  if (::lstat(p, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return error(Errc::kInvalidArgument,
                   fmt::format("control socket path {} exists and is not a socket; remove it or "
                               "set control.socket",
                               socket_path));
    }
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe < 0) {
      const int e = errno;
      return error(Errc::kInternal, fmt::format("socket(AF_UNIX): {}", errno_text(e)));
    }
    const int rc = ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    const int e = errno;
    ::close(probe);
    // EAGAIN: a live server whose backlog is full.
    if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
      return error(Errc::kUnavailable,
                   fmt::format("control socket {} is in use by another process (set "
                               "control.socket)",
                               socket_path));
    }
    if (e != ECONNREFUSED) {
      return error(Errc::kInvalidArgument,
                   fmt::format("cannot check whether control socket {} is in use: {} (set "
                               "control.socket)",
                               socket_path, errno_text(e)));
    }
    if (::unlink(p) != 0 && errno != ENOENT) {
      const int ue = errno;
      return error(Errc::kInvalidArgument,
                   fmt::format("cannot remove stale control socket {}: {} (set control.socket)",
                               socket_path, errno_text(ue)));
    }
    FM_LOG_INFO(kTag, "replaced stale control socket {}", socket_path);
  } else if (errno != ENOENT) {
    const int e = errno;
    return error(Errc::kInvalidArgument,
                 fmt::format("cannot use control socket path {}: {} (set control.socket)",
                             socket_path, errno_text(e)));
  }

  auto impl = std::make_unique<Impl>();
  impl->path = socket_path;
  impl->program = program.empty() ? std::string(program_invocation_short_name) : program;
  impl->listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (impl->listen_fd < 0) {
    const int e = errno;
    return error(Errc::kInternal, fmt::format("socket(AF_UNIX): {}", errno_text(e)));
  }
  if (::bind(impl->listen_fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int e = errno;
    if (e == EADDRINUSE) {
      return error(Errc::kUnavailable,
                   fmt::format("control socket {} is in use by another process (set "
                               "control.socket)",
                               socket_path));
    }
    return error(Errc::kInvalidArgument,
                 fmt::format("cannot bind control socket {}: {}{}", socket_path, errno_text(e),
                             e == EACCES ? " (its directory is not writable by this user; set "
                                           "control.socket)"
                                         : " (set control.socket)"));
  }
  // Nothing can connect before listen(), so the mode is right before the first client.
  if (::chmod(p, 0660) != 0 || ::lstat(p, &st) != 0) {
    const int e = errno;
    ::unlink(p);
    return error(Errc::kInternal, fmt::format("cannot set mode 0660 on control socket {}: {}",
                                              socket_path, errno_text(e)));
  }
  impl->sock_dev = st.st_dev;
  impl->sock_ino = st.st_ino;
  if (::listen(impl->listen_fd, kListenBacklog) != 0) {
    const int e = errno;
    return error(Errc::kInternal,
                 fmt::format("listen on control socket {}: {}", socket_path, errno_text(e)));
  }
  impl->stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (impl->stop_fd < 0) {
    const int e = errno;
    return error(Errc::kInternal, fmt::format("eventfd: {}", errno_text(e)));
  }
  impl->add_builtins();
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl)));
}

void ControlServer::set_program(std::string program) {
  FM_CHECK_MSG(!impl_->started, "ControlServer::set_program() after start()");
  impl_->program = std::move(program);
}

void ControlServer::add(std::string name, std::string help, Handler fn) {
  FM_CHECK_MSG(!impl_->started, "ControlServer::add() after start()");
  FM_CHECK_MSG(fn != nullptr, "ControlServer::add() without a handler");
  const bool inserted =
      impl_->commands.emplace(std::move(name), Impl::Command{std::move(help), std::move(fn)})
          .second;
  FM_CHECK_MSG(inserted, "ControlServer::add(): command registered twice");
}

Status ControlServer::start() {
  if (impl_->started) return error(Errc::kInternal, "control server already started");
  if (impl_->stopped) return error(Errc::kInternal, "control server already stopped");
  try {
    impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
  } catch (const std::system_error& e) {
    return error(Errc::kResourceExhausted,
                 fmt::format("cannot start the control thread: {}", e.what()));
  }
  pthread_setname_np(impl_->thread.native_handle(), "fm-control");
  impl_->started = true;
  FM_LOG_INFO(kTag, "serving {} ({} commands)", impl_->path, impl_->commands.size());
  return Status::ok();
}

void ControlServer::stop() { impl_->shutdown(); }

const std::string& ControlServer::path() const { return impl_->path; }

size_t ControlServer::client_count() const {
  return impl_->nclients.load(std::memory_order_relaxed);
}

std::string ControlServer::handle_line(std::string_view line) { return impl_->handle_line(line); }

}  // namespace fm
