// Control channel sockets: connect with retry, framed send/recv, SCM_RIGHTS fd passing.
#include "paging/channel.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

namespace fm::paging {
namespace {

std::string errno_text() { return std::strerror(errno); }

std::string describe(const ChannelAddress& a) {
  return a.kind == ChannelAddress::Kind::kUnix ? "unix:" + a.path
                                               : "tcp:" + a.host + ":" + std::to_string(a.port);
}

Status fill_sockaddr(const ChannelAddress& a, sockaddr_storage& ss, socklen_t& len) {
  std::memset(&ss, 0, sizeof(ss));
  if (a.kind == ChannelAddress::Kind::kUnix) {
    auto* un = reinterpret_cast<sockaddr_un*>(&ss);
    un->sun_family = AF_UNIX;
    if (a.path.size() >= sizeof(un->sun_path)) {
      return error(Errc::kInvalidArgument, "unix socket path too long: " + a.path);
    }
    std::memcpy(un->sun_path, a.path.c_str(), a.path.size() + 1);
    len = sizeof(sockaddr_un);
    return Status::ok();
  }
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(a.host.c_str(), nullptr, &hints, &res); rc != 0 || !res) {
    return error(Errc::kNotFound, "cannot resolve '" + a.host + "': " + gai_strerror(rc));
  }
  auto* in = reinterpret_cast<sockaddr_in*>(&ss);
  *in = *reinterpret_cast<sockaddr_in*>(res->ai_addr);
  in->sin_port = htons(a.port);
  len = sizeof(sockaddr_in);
  freeaddrinfo(res);
  return Status::ok();
}

int domain_of(const ChannelAddress& a) {
  return a.kind == ChannelAddress::Kind::kUnix ? AF_UNIX : AF_INET;
}

/// Waits until `fd` is readable; false on timeout.
bool wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    int rc = ::poll(&p, 1, timeout_ms);
    if (rc < 0 && errno == EINTR) continue;
    return rc > 0;
  }
}

}  // namespace

Result<ChannelAddress> parse_channel_address(const std::string& text, const std::string& what) {
  ChannelAddress a;
  if (text.rfind("unix:", 0) == 0 && text.size() > 5) {
    a.kind = ChannelAddress::Kind::kUnix;
    a.path = text.substr(5);
    if (a.path.size() >= sizeof(sockaddr_un::sun_path)) {
      return error(Errc::kInvalidArgument,
                   what + ": \"" + text + "\": the socket path is longer than " +
                       std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
    }
    return a;
  }
  if (text.rfind("tcp:", 0) == 0) {
    const std::string rest = text.substr(4);
    const size_t colon = rest.rfind(':');
    if (colon != std::string::npos && colon > 0 && colon + 1 < rest.size()) {
      const std::string port = rest.substr(colon + 1);
      char* end = nullptr;
      const long p = std::strtol(port.c_str(), &end, 10);
      if (*end == 0 && p > 0 && p < 65536) {
        a.kind = ChannelAddress::Kind::kTcp;
        a.host = rest.substr(0, colon);
        a.port = uint16_t(p);
        return a;
      }
    }
  }
  return error(Errc::kInvalidArgument,
               what + ": \"" + text + "\" is not an address (want unix:/path or tcp:host:port)");
}

Channel::~Channel() { close(); }

Channel& Channel::operator=(Channel&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void Channel::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<Channel> Channel::connect(const ChannelAddress& addr, int timeout_ms) {
  sockaddr_storage ss;
  socklen_t len = 0;
  FM_RETURN_IF_ERROR(fill_sockaddr(addr, ss, len));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int last_errno = 0;
  do {
    int fd = ::socket(domain_of(addr), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return error(Errc::kInternal, "socket(): " + errno_text());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
      if (addr.kind == ChannelAddress::Kind::kTcp) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      }
      return Channel(fd);
    }
    last_errno = errno;
    ::close(fd);
    if (last_errno != ENOENT && last_errno != ECONNREFUSED && last_errno != EAGAIN) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  return error(Errc::kUnavailable, "cannot reach the memory node at " + describe(addr) + ": " +
                                       std::strerror(last_errno) +
                                       " (is build/memnode/memnode running there?)");
}

Result<Channel::Peer> Channel::peer() const {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd_, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
    return error(Errc::kInvalidArgument, "no peer credentials on this channel: " + errno_text());
  }
  return Peer{uint32_t(cred.uid), int32_t(cred.pid)};
}

Status ensure_private_dir(const std::string& dir, const std::string& what) {
  if (::mkdir(dir.c_str(), 0700) == 0) return Status::ok();
  if (errno != EEXIST) {
    return error(Errc::kUnavailable,
                 what + ": cannot create the socket's directory " + dir + ": " + errno_text());
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    return error(Errc::kUnavailable, what + ": cannot inspect " + dir + ": " + errno_text());
  }
  char mode[8];
  std::snprintf(mode, sizeof(mode), "%04o", unsigned(st.st_mode & 07777));
  if (!S_ISDIR(st.st_mode)) {
    return error(Errc::kPermissionDenied,
                 what + ": " + dir +
                     " must be a directory, not a link or file (someone may have "
                     "put it there to catch the socket): remove it or choose another path");
  }
  if (st.st_uid != ::geteuid()) {
    return error(Errc::kPermissionDenied,
                 what + ": the socket's directory " + dir + " belongs to uid " +
                     std::to_string(st.st_uid) + ", not to this user (uid " +
                     std::to_string(::geteuid()) +
                     "): another user could replace the socket; remove it or choose another path");
  }
  if ((st.st_mode & 077) != 0) {
    return error(Errc::kPermissionDenied, what + ": the socket's directory " + dir + " has mode " +
                                              mode + "; it must be private (chmod 700 " + dir +
                                              ")");
  }
  return Status::ok();
}

Status Channel::send(const void* msg, uint32_t len, int fd) {
  if (fd_ < 0) return error(Errc::kUnavailable, "control channel is closed");
  iovec iov{const_cast<void*>(msg), len};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof(cbuf);
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  size_t sent = 0;
  while (sent < len) {
    ssize_t n = ::sendmsg(fd_, &mh, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return error(Errc::kUnavailable, "control channel send failed: " + errno_text());
    }
    sent += size_t(n);
    iov.iov_base = static_cast<char*>(iov.iov_base) + n;
    iov.iov_len -= size_t(n);
    mh.msg_control = nullptr;  // the descriptor rides with the first byte only
    mh.msg_controllen = 0;
  }
  return Status::ok();
}

Result<wire::MsgType> Channel::recv(std::vector<uint8_t>& buf, int timeout_ms, int* fd_out) {
  if (fd_out) *fd_out = -1;
  if (fd_ < 0) return error(Errc::kUnavailable, "control channel is closed");
  auto read_exact = [&](uint8_t* dst, size_t want) -> Status {
    size_t got = 0;
    while (got < want) {
      if (!wait_readable(fd_, timeout_ms)) {
        return error(Errc::kTimeout,
                     "the memory node did not answer within " + std::to_string(timeout_ms) + " ms");
      }
      iovec iov{dst + got, want - got};
      msghdr mh{};
      mh.msg_iov = &iov;
      mh.msg_iovlen = 1;
      alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
      mh.msg_control = cbuf;
      mh.msg_controllen = sizeof(cbuf);
      ssize_t n = ::recvmsg(fd_, &mh, MSG_CMSG_CLOEXEC);
      if (n < 0) {
        if (errno == EINTR) continue;
        return error(Errc::kUnavailable, "control channel receive failed: " + errno_text());
      }
      if (n == 0) return error(Errc::kUnavailable, "the peer closed the control channel");
      for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
          if (fd_out && *fd_out < 0)
            *fd_out = fd;
          else
            ::close(fd);
        }
      }
      got += size_t(n);
    }
    return Status::ok();
  };
  wire::MsgHeader h;
  buf.resize(sizeof(h));
  FM_RETURN_IF_ERROR(read_exact(buf.data(), sizeof(h)));
  std::memcpy(&h, buf.data(), sizeof(h));
  if (!wire::frame_ok(h)) {
    return error(Errc::kInternal, "malformed control message (magic " + std::to_string(h.magic) +
                                      ", version " + std::to_string(h.version) + ", length " +
                                      std::to_string(h.length) + ")");
  }
  buf.resize(h.length);
  FM_RETURN_IF_ERROR(read_exact(buf.data() + sizeof(h), h.length - sizeof(h)));
  return wire::MsgType(h.type);
}

Listener::~Listener() {
  if (fd_ >= 0) ::close(fd_);
  if (!path_.empty()) ::unlink(path_.c_str());
}

Result<Listener> Listener::listen(const ChannelAddress& addr, const std::string& what) {
  sockaddr_storage ss;
  socklen_t len = 0;
  FM_RETURN_IF_ERROR(fill_sockaddr(addr, ss, len));
  if (addr.kind == ChannelAddress::Kind::kUnix) {
    const size_t slash = addr.path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "."
                            : slash == 0               ? "/"
                                                       : addr.path.substr(0, slash);
    FM_RETURN_IF_ERROR(ensure_private_dir(dir, what));
  }
  if (addr.kind == ChannelAddress::Kind::kUnix && ::access(addr.path.c_str(), F_OK) == 0) {
    // A socket file exists: another memnode may own it. Replace it only if nobody answers.
    auto probe = Channel::connect(addr, 0);
    if (probe.is_ok()) {
      return error(Errc::kUnavailable, "another process already listens on unix:" + addr.path);
    }
    ::unlink(addr.path.c_str());
  }
  int fd = ::socket(domain_of(addr), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return error(Errc::kInternal, "socket(): " + errno_text());
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 16) != 0) {
    std::string why = errno_text();
    ::close(fd);
    return error(Errc::kUnavailable, "cannot listen on " + describe(addr) + ": " + why);
  }
  Listener l;
  l.fd_ = fd;
  if (addr.kind == ChannelAddress::Kind::kUnix) l.path_ = addr.path;
  return l;
}

Result<Channel> Listener::accept(int timeout_ms) {
  if (!wait_readable(fd_, timeout_ms)) return error(Errc::kTimeout, "no connection");
  int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    const bool exhausted = e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
    return error(exhausted ? Errc::kResourceExhausted : Errc::kUnavailable,
                 "accept(): " + std::string(std::strerror(e)));
  }
  return Channel(fd);
}

}  // namespace fm::paging
