// The control socket's blocking client.
#include "dataplane/control_client.h"

#include <errno.h>
#include <fmt/core.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <utility>

#include "dataplane/control_internal.h"

namespace fm {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using control_internal::errno_text;
using control_internal::fill_addr;
using control_internal::strip_json_prefix;
using control_internal::to_line;

// A response line the client will buffer before giving up on the server.
constexpr size_t kClientMaxResponseBytes = 64 * 1024 * 1024;

}  // namespace

Result<ControlClient> ControlClient::connect(const std::string& socket_path,
                                             std::chrono::milliseconds timeout) {
  sockaddr_un addr;
  FM_RETURN_IF_ERROR(fill_addr(socket_path, &addr));
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    const int e = errno;
    return error(Errc::kInternal, fmt::format("socket(AF_UNIX): {}", errno_text(e)));
  }
  ControlClient client(fd, socket_path, timeout);
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) break;
    const int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN) {  // the listener's backlog is full: Unix sockets say so instead of waiting
      if (Clock::now() >= deadline) {
        return error(Errc::kTimeout,
                     fmt::format("control socket {} did not accept a connection within {} ms",
                                 socket_path, timeout.count()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    if (e == EINPROGRESS) {
      FM_RETURN_IF_ERROR(client.wait_fd(POLLOUT, deadline, "connect"));
      int so_error = 0;
      socklen_t len = sizeof(so_error);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
      if (so_error == 0) break;
      return error(Errc::kUnavailable, fmt::format("cannot connect to control socket {}: {}",
                                                   socket_path, errno_text(so_error)));
    }
    return error(Errc::kUnavailable, fmt::format("cannot connect to control socket {}: {}",
                                                 socket_path, errno_text(e)));
  }
  return client;
}

ControlClient::ControlClient(ControlClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      timeout_(other.timeout_),
      in_(std::move(other.in_)),
      next_id_(other.next_id_) {}

ControlClient& ControlClient::operator=(ControlClient&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    timeout_ = other.timeout_;
    in_ = std::move(other.in_);
    next_id_ = other.next_id_;
  }
  return *this;
}

ControlClient::~ControlClient() {
  if (fd_ >= 0) ::close(fd_);
}

Status ControlClient::wait_fd(short events, Clock::time_point deadline, const char* what) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      return error(Errc::kTimeout,
                   fmt::format("control socket {}: no {} within {} ms (is the server stuck?)",
                               path_, what, timeout_.count()));
    }
    pollfd p{fd_, events, 0};
    const int n = ::poll(&p, 1, int(std::min<int64_t>(left, INT32_MAX)));
    if (n > 0) return Status::ok();
    if (n < 0 && errno != EINTR) {
      const int e = errno;
      return error(Errc::kInternal, fmt::format("poll: {}", errno_text(e)));
    }
  }
}

Status ControlClient::send_line(std::string_view line) {
  if (fd_ < 0) return error(Errc::kUnavailable, "control client is not connected");
  std::string buf(line);
  buf += '\n';
  const auto deadline = Clock::now() + timeout_;
  for (size_t off = 0; off < buf.size();) {
    const ssize_t w = ::send(fd_, buf.data() + off, buf.size() - off, MSG_NOSIGNAL);
    if (w > 0) {
      off += size_t(w);
      continue;
    }
    const int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EWOULDBLOCK) {
      FM_RETURN_IF_ERROR(wait_fd(POLLOUT, deadline, "room to send"));
      continue;
    }
    return error(Errc::kUnavailable,
                 fmt::format("control socket {}: cannot send: {}", path_, errno_text(e)));
  }
  return Status::ok();
}

Result<std::string> ControlClient::read_line() {
  if (fd_ < 0) return error(Errc::kUnavailable, "control client is not connected");
  const auto deadline = Clock::now() + timeout_;
  size_t scan_from = 0;
  for (;;) {
    if (const size_t nl = in_.find('\n', scan_from); nl != std::string::npos) {
      std::string line = in_.substr(0, nl);
      in_.erase(0, nl + 1);
      return line;
    }
    scan_from = in_.size();
    if (in_.size() > kClientMaxResponseBytes) {
      return error(Errc::kInternal, fmt::format("control socket {}: response line over {} bytes",
                                                path_, kClientMaxResponseBytes));
    }
    char buf[64 * 1024];
    const ssize_t r = ::recv(fd_, buf, sizeof(buf), 0);
    if (r > 0) {
      in_.append(buf, size_t(r));
      continue;
    }
    if (r == 0) {
      return error(Errc::kUnavailable,
                   fmt::format("control socket {} closed the connection{}", path_,
                               in_.empty() ? "" : " in the middle of a response"));
    }
    const int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EWOULDBLOCK) {
      FM_RETURN_IF_ERROR(wait_fd(POLLIN, deadline, "response"));
      continue;
    }
    return error(Errc::kUnavailable,
                 fmt::format("control socket {}: cannot read: {}", path_, errno_text(e)));
  }
}

Result<std::string> ControlClient::exchange(std::string_view line) {
  FM_RETURN_IF_ERROR(send_line(line));
  return read_line();
}

Result<json> ControlClient::call(json request) {
  if (!request.is_object()) {
    return error(Errc::kInvalidArgument, "a control request must be a JSON object");
  }
  if (!request.contains("v")) request["v"] = kControlProtocolVersion;
  if (!request.contains("id")) request["id"] = next_id_++;
  const json id = request["id"];
  auto line = exchange(to_line(request));
  if (!line) return line.status();
  json resp;
  try {
    resp = json::parse(*line);
  } catch (const json::parse_error& e) {
    return error(Errc::kInternal, fmt::format("control socket {}: response is not JSON: {}", path_,
                                              strip_json_prefix(e.what())));
  }
  const auto ok = resp.is_object() ? resp.find("ok") : resp.end();
  if (!resp.is_object() || ok == resp.end() || !ok->is_boolean() ||
      (!ok->get<bool>() && !(resp.contains("error") && resp["error"].is_object()))) {
    return error(Errc::kInternal,
                 fmt::format("control socket {}: malformed response: {}", path_, *line));
  }
  // A server that could not read the request (too many clients) answers with a null id.
  if (const auto rid = resp.find("id"); rid != resp.end() && !rid->is_null() && *rid != id) {
    return error(Errc::kInternal,
                 fmt::format("control socket {}: response id {} does not match request id {}",
                             path_, to_line(*rid), to_line(id)));
  }
  return resp;
}

}  // namespace fm
