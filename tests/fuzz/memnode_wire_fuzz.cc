// libFuzzer harness: the compute <-> memory node control channel (paging/memnode_wire.h) in both
// directions. The input is a byte stream a peer sent; it goes through a real socket pair into
// paging::Channel::recv (framing, length checks), then through what each side does with the
// messages: the memory node's check_hello/next_step (memnode/server.h) and the compute node's
// decode_as<Challenge> / decode_as<HelloAck> / decode_as<QpAccept> (paging/channel.h), as their
// socket loops do.
//
// Input: byte 0 picks the side (bit 0: 0 = bytes from a compute node, read by the memory node;
// 1 = bytes from a memory node, read by a compute node) and the transport (bit 1: verbs); the
// rest is the stream.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "memnode/server.h"
#include "paging/channel.h"
#include "paging/memnode_wire.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace wire = fm::paging::wire;
using fm::Errc;
using fm::paging::Channel;
using fm::paging::decode_as;

constexpr std::string_view kRefused = "memory node refused: ";

// Receives the next message and checks what recv() promises about it.
fm::Result<wire::MsgType> recv_next(Channel& ch, std::vector<uint8_t>& buf) {
  auto t = ch.recv(buf, 0);  // everything was written before: never waits
  if (!t) {
    FUZZ_CHECK(t.status().code() == Errc::kUnavailable || t.status().code() == Errc::kInternal,
               "recv failed with %d: %s", int(t.status().code()), t.status().message().c_str());
    return t;
  }
  wire::MsgHeader h;
  FUZZ_CHECK(buf.size() >= sizeof(h), "a %zu-byte message", buf.size());
  std::memcpy(&h, buf.data(), sizeof(h));
  FUZZ_CHECK(wire::frame_ok(h) && h.length == buf.size() && uint16_t(*t) == h.type,
             "recv returned a %zu-byte message of type %d with header length %u", buf.size(),
             int(*t), h.length);
  return t;
}

// What decode_as promises: a T of exactly its size, or the peer's reason, or an error.
template <typename T>
void check_decoded(const fm::Result<T>& r, wire::MsgType want, wire::MsgType got,
                   std::span<const uint8_t> msg) {
  if (r.is_ok()) {
    FUZZ_CHECK(got == want && msg.size() == sizeof(T), "decoded a %zu-byte type %d", msg.size(),
               int(got));
    return;
  }
  const std::string& m = r.status().message();
  if (got == wire::MsgType::kError && msg.size() == sizeof(wire::ErrorMsg)) {
    FUZZ_CHECK(r.status().code() == Errc::kUnavailable && m.starts_with(kRefused) &&
                   m.size() < kRefused.size() + sizeof(wire::ErrorMsg::reason),
               "refusal decoded as: %s", m.c_str());
  } else {
    FUZZ_CHECK(r.status().code() == Errc::kInternal && !m.empty(), "decode error %d: %s",
               int(r.status().code()), m.c_str());
  }
}

// The memory node's side of one session: Hello, then its loop (Server::serve).
void memnode_reads(Channel& ch, bool verbs) {
  std::vector<uint8_t> buf;
  auto t = recv_next(ch, buf);
  if (!t) return;
  auto hello = decode_as<wire::Hello>(wire::MsgType::kHello, *t, buf);
  check_decoded(hello, wire::MsgType::kHello, *t, buf);
  if (!hello) return;  // "sent no valid Hello": the connection is dropped
  // Checked as a keyed memnode would (the MAC fails unless the input forged HMAC-SHA-256), and,
  // on odd-sized Hellos' last byte, as one without a key, so both paths are explored.
  static const fm::paging::AuthKey key = fm::paging::AuthKey::from_secret("fuzzing secret 0123");
  static const wire::Challenge challenge = fm::paging::make_challenge(true);
  fm::memnode::HelloPolicy policy;
  policy.served = verbs ? fm::paging::TransportKind::kVerbs : fm::paging::TransportKind::kEmulated;
  policy.key = (hello->name[sizeof(hello->name) - 1] & 1) ? &key : nullptr;
  policy.challenge = &challenge;
  const fm::memnode::HelloCheck checked = fm::memnode::check_hello(*hello, policy);
  FUZZ_CHECK(policy.key == nullptr || !checked.refusal.empty(),
             "a Hello with a forged MAC was accepted");
  FUZZ_CHECK(checked.who.size() < sizeof(hello->name) &&
                 checked.who.find('\0') == std::string::npos,
             "name of %zu bytes", checked.who.size());
  if (!checked.refusal.empty()) return;
  for (;;) {
    t = recv_next(ch, buf);
    if (!t) return;
    const fm::memnode::Step step = fm::memnode::next_step(*t, buf, verbs);
    using Kind = fm::memnode::Step::Kind;
    switch (step.kind) {
      case Kind::kClose:
        FUZZ_CHECK(*t == wire::MsgType::kGoodbye, "type %d closes the session", int(*t));
        return;
      case Kind::kIgnore:
        FUZZ_CHECK(*t == wire::MsgType::kHeartbeat, "type %d ignored", int(*t));
        break;
      case Kind::kConnectQp: {
        FUZZ_CHECK(verbs && *t == wire::MsgType::kQpConnect && buf.size() == sizeof(wire::QpConnect),
                   "type %d of %zu bytes connects a queue pair", int(*t), buf.size());
        // The answer the server builds must decode at the compute node.
        wire::QpAccept qa{};
        qa.h = wire::make_header<wire::QpAccept>(wire::MsgType::kQpAccept);
        qa.core = step.qp.core;
        qa.qp = step.qp.qp;
        const auto* p = reinterpret_cast<const uint8_t*>(&qa);
        auto back = decode_as<wire::QpAccept>(wire::MsgType::kQpAccept, wire::MsgType::kQpAccept,
                                              {p, sizeof(qa)});
        FUZZ_CHECK(back.is_ok() && back->core == step.qp.core &&
                       wire::header_ok(back->h, wire::MsgType::kQpAccept, sizeof(qa)),
                   "QpAccept does not decode");
        break;
      }
      case Kind::kRefuse: {
        FUZZ_CHECK(!step.reason.empty(), "a refusal without a reason");
        // As send_error() frames it: the compute node reads the reason back, cut to fit.
        wire::ErrorMsg e{};
        e.h = wire::make_header<wire::ErrorMsg>(wire::MsgType::kError);
        std::snprintf(e.reason, sizeof(e.reason), "%s", step.reason.c_str());
        const auto* p = reinterpret_cast<const uint8_t*>(&e);
        auto back = decode_as<wire::QpAccept>(wire::MsgType::kQpAccept, wire::MsgType::kError,
                                              {p, sizeof(e)});
        FUZZ_CHECK(!back.is_ok() && back.status().message() ==
                                        std::string(kRefused) + e.reason,
                   "refusal decodes as: %s", back.status().message().c_str());
        break;
      }
    }
  }
}

// The compute node's side: HelloAck (EmulatedTransport/VerbsControl::connect), then the
// watcher loop and queue-pair answers (VerbsControl::watch/exchange_qp).
void compute_reads(Channel& ch, bool verbs) {
  std::vector<uint8_t> buf;
  auto t = recv_next(ch, buf);
  if (!t) return;
  auto challenge = decode_as<wire::Challenge>(wire::MsgType::kChallenge, *t, buf);
  check_decoded(challenge, wire::MsgType::kChallenge, *t, buf);
  if (!challenge) return;
  t = recv_next(ch, buf);
  if (!t) return;
  auto ack = decode_as<wire::HelloAck>(wire::MsgType::kHelloAck, *t, buf);
  check_decoded(ack, wire::MsgType::kHelloAck, *t, buf);
  if (!ack) return;
  if (verbs && (ack->pool_bytes == 0 || ack->pool_addr == 0)) return;  // "offers no verbs pool"
  for (;;) {
    t = recv_next(ch, buf);
    if (!t) return;
    if (*t == wire::MsgType::kGoodbye) return;
    if (*t == wire::MsgType::kQpAccept || *t == wire::MsgType::kError) {
      auto acc = decode_as<wire::QpAccept>(wire::MsgType::kQpAccept, *t, buf);
      check_decoded(acc, wire::MsgType::kQpAccept, *t, buf);
      if (acc) {
        FUZZ_CHECK(wire::header_ok(acc->h, wire::MsgType::kQpAccept, sizeof(wire::QpAccept)),
                   "a QpAccept with a bad header decoded");
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool from_memnode = (data[0] & 1) != 0;
  const bool verbs = (data[0] & 2) != 0;
  int fds[2];
  FUZZ_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0, "socketpair: %s",
             std::strerror(errno));
  // The whole stream, then EOF: the peer sent it and closed (inputs fit the socket buffer).
  size_t off = 1;
  while (off < size) {
    const ssize_t n = ::write(fds[0], data + off, size - off);
    FUZZ_CHECK(n > 0, "write: %s", std::strerror(errno));
    off += size_t(n);
  }
  ::close(fds[0]);
  Channel ch(fds[1]);
  if (from_memnode) {
    compute_reads(ch, verbs);
  } else {
    memnode_reads(ch, verbs);
  }
  return 0;
}
