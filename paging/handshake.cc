// Challenge/Hello/HelloAck with HMAC-SHA-256 (libsodium) and the compute node's checks.
#include "paging/handshake.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>

namespace fm::paging {
namespace {

void init_sodium() {
  // Idempotent and thread-safe; -1 only when the system has no usable randomness.
  static const int rc = ::sodium_init();
  if (rc < 0) std::abort();
}

using Mac = std::array<uint8_t, wire::kMacBytes>;

Mac tag(const AuthKey& key, const char* label, const uint8_t* nonce, const void* msg, size_t len) {
  init_sodium();
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key.bytes().data(), key.bytes().size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(label),
                                std::strlen(label) + 1);
  crypto_auth_hmacsha256_update(&st, nonce, wire::kNonceBytes);
  crypto_auth_hmacsha256_update(&st, static_cast<const unsigned char*>(msg), len);
  Mac out{};
  crypto_auth_hmacsha256_final(&st, out.data());
  ::sodium_memzero(&st, sizeof(st));
  return out;
}

bool equal(const Mac& a, const uint8_t* b) { return ::sodium_memcmp(a.data(), b, a.size()) == 0; }

}  // namespace

uint64_t steady_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}

Result<AuthKey> AuthKey::load(const std::string& path, const std::string& what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return error(Errc::kNotFound,
                 what + ": cannot open the key file " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return error(Errc::kInvalidArgument, what + ": " + path + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", unsigned(st.st_mode & 07777));
    return error(Errc::kPermissionDenied, what + ": the key file " + path + " has mode " + mode +
                                              "; it must be readable by its owner only "
                                              "(chmod 600 " +
                                              path + ")");
  }
  std::string text(4097, '\0');
  size_t got = 0;
  for (;;) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += size_t(n);
    if (got == text.size()) break;
  }
  ::close(fd);
  if (got > 4096) {
    return error(Errc::kInvalidArgument, what + ": the key file " + path +
                                             " is longer than 4096 bytes: is it the right file?");
  }
  text.resize(got);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' ||
                           text.back() == '\t')) {
    text.pop_back();
  }
  if (text.size() < 16) {
    return error(Errc::kInvalidArgument,
                 what + ": the key file " + path + " holds " + std::to_string(text.size()) +
                     " bytes; at least 16 are needed (e.g. head -c 32 /dev/urandom | base64 > " +
                     path + ")");
  }
  AuthKey k = from_secret(text);
  ::sodium_memzero(text.data(), text.size());
  return k;
}

AuthKey AuthKey::from_secret(const std::string& secret) {
  init_sodium();
  AuthKey k;
  crypto_generichash(k.key_.data(), k.key_.size(),
                     reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), nullptr,
                     0);
  k.present_ = true;
  return k;
}

wire::Challenge make_challenge(bool key_required) {
  init_sodium();
  wire::Challenge c{};
  c.h = wire::make_header<wire::Challenge>(wire::MsgType::kChallenge);
  ::randombytes_buf(c.nonce, sizeof(c.nonce));
  c.flags = key_required ? wire::kChallengeKeyRequired : 0;
  return c;
}

Mac hello_mac(const AuthKey& key, const wire::Challenge& c, const wire::Hello& h) {
  return tag(key, "farmem hello v2", c.nonce, &h, offsetof(wire::Hello, mac));
}

bool hello_mac_ok(const AuthKey& key, const wire::Challenge& c, const wire::Hello& h) {
  return equal(hello_mac(key, c, h), h.mac);
}

void sign_ack(const AuthKey& key, const wire::Hello& h, wire::HelloAck& ack) {
  const Mac m = tag(key, "farmem ack v2", h.nonce, &ack, offsetof(wire::HelloAck, mac));
  std::memcpy(ack.mac, m.data(), m.size());
}

bool ack_mac_ok(const AuthKey& key, const wire::Hello& h, const wire::HelloAck& ack) {
  return equal(tag(key, "farmem ack v2", h.nonce, &ack, offsetof(wire::HelloAck, mac)), ack.mac);
}

Result<Granted> client_handshake(Channel& ch, const HelloRequest& req, const AuthKey& key,
                                 const std::string& where, int timeout_ms) {
  if (auto peer = ch.peer(); peer.is_ok()) {  // a Unix channel: who really listens there?
    const uint32_t me = uint32_t(::geteuid());
    if (peer->uid != me && peer->uid != 0) {
      return error(Errc::kPermissionDenied,
                   "the process listening at " + where + " (pid " + std::to_string(peer->pid) +
                       ") runs as uid " + std::to_string(peer->uid) + ", not as this user (uid " +
                       std::to_string(me) +
                       ") or root: refusing to hand it far memory (an impostor on the socket "
                       "path?)");
    }
  }
  auto challenge = ch.recv_as<wire::Challenge>(wire::MsgType::kChallenge, timeout_ms);
  if (!challenge) {
    return error(challenge.status().code(),
                 "memory node at " + where + ": " + challenge.status().message());
  }
  if ((challenge->flags & wire::kChallengeKeyRequired) && !key.present()) {
    return error(Errc::kPermissionDenied,
                 "memory node at " + where +
                     " requires a shared key: set paging.key_file to the file its "
                     "memnode.key_file names");
  }
  wire::Hello hello{};
  hello.h = wire::make_header<wire::Hello>(wire::MsgType::kHello);
  hello.transport = uint16_t(req.transport);
  hello.cores = req.cores;
  std::snprintf(hello.name, sizeof(hello.name), "%s", req.name.c_str());
  hello.region_bytes = req.region_bytes;
  init_sodium();
  ::randombytes_buf(hello.nonce, sizeof(hello.nonce));
  if (key.present()) {
    const Mac m = hello_mac(key, *challenge, hello);
    std::memcpy(hello.mac, m.data(), m.size());
  }
  FM_RETURN_IF_ERROR(ch.send(&hello, sizeof(hello)));
  Granted g;
  auto ack = ch.recv_as<wire::HelloAck>(wire::MsgType::kHelloAck, timeout_ms, &g.memfd);
  if (!ack) {
    if (g.memfd >= 0) ::close(g.memfd);
    return error(ack.status().code(), "memory node at " + where + ": " + ack.status().message());
  }
  g.ack = *ack;
  if (key.present() && !ack_mac_ok(key, hello, g.ack)) {
    if (g.memfd >= 0) ::close(g.memfd);
    return error(Errc::kPermissionDenied,
                 "memory node at " + where +
                     " could not prove it holds the key of paging.key_file (a different key, or "
                     "not the memory node you configured): refusing its memory");
  }
  if (g.ack.pool_bytes < req.region_bytes) {
    if (g.memfd >= 0) ::close(g.memfd);
    return error(Errc::kInternal, "memory node at " + where + " leased " +
                                      std::to_string(g.ack.pool_bytes) + " bytes, " +
                                      std::to_string(req.region_bytes) + " were asked for");
  }
  return g;
}

}  // namespace fm::paging
