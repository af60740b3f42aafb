// Wire format between a compute node (kvserver) and a memory node (memnode): the control channel
// messages for both transports. Versioned; every struct has a fixed, asserted size.
//
// A session (version 2): the memnode accepts and sends a Challenge (its nonce); the compute node
// answers Hello (its nonce, the region it wants leased, and, when a key is configured, an HMAC
// over the memnode's nonce and the Hello); the memnode answers HelloAck (the lease, and an HMAC
// over the compute node's nonce and the HelloAck, so the compute node knows it reached a memnode
// holding the key) or ErrorMsg. Then QpConnect/QpAccept (verbs), Heartbeat both ways, Goodbye.
#pragma once

#include <cstdint>
#include <type_traits>

namespace fm::paging::wire {

inline constexpr uint32_t kMagic = 0x464d4e44;  // "FMND"
inline constexpr uint16_t kVersion = 2;

enum class MsgType : uint16_t {
  kHello = 1,       // compute -> memnode: who I am, which transport
  kHelloAck = 2,    // memnode -> compute: pool size; emulated: the pool's memfd rides along
  kQpConnect = 3,   // compute -> memnode (verbs): my queue pair; memnode answers with its own
  kQpAccept = 4,    // memnode -> compute (verbs)
  kHeartbeat = 5,   // either way: liveness while idle
  kGoodbye = 6,     // either way: orderly shutdown
  kError = 7,       // memnode -> compute: refused, with a reason
  kChallenge = 8,   // memnode -> compute, first: the nonce a keyed Hello must sign
};

/// Bytes of a nonce and of an HMAC-SHA-256 tag.
inline constexpr uint32_t kNonceBytes = 32;
inline constexpr uint32_t kMacBytes = 32;

enum class TransportKind : uint16_t { kEmulated = 1, kVerbs = 2 };

/// Every message starts with this header; `length` counts the whole message.
struct MsgHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t type;  // MsgType
  uint32_t length;
  uint32_t reserved;
};
static_assert(sizeof(MsgHeader) == 16);

struct Challenge {
  MsgHeader h;
  uint8_t nonce[kNonceBytes];  // fresh per connection
  uint32_t flags;              // kChallengeKeyRequired: a Hello without a valid MAC is refused
  uint32_t reserved;
};
static_assert(sizeof(Challenge) == 56);
inline constexpr uint32_t kChallengeKeyRequired = 1;

struct Hello {
  MsgHeader h;
  uint16_t transport;  // TransportKind
  uint16_t cores;      // queue pairs the compute node will create
  uint32_t reserved;
  char name[48];       // the compute node's name, for the memnode's logs (NUL-padded)
  uint64_t region_bytes;       // the far region to lease: remote offsets [0, region_bytes)
  uint8_t nonce[kNonceBytes];  // the compute node's nonce, signed back in the HelloAck
  uint8_t mac[kMacBytes];      // HMAC(key, "hello" | Challenge.nonce | this up to mac); 0s: no key
};
static_assert(sizeof(Hello) == 144);

struct HelloAck {
  MsgHeader h;
  uint64_t pool_bytes;  // size of the lease: remote offsets are [0, pool_bytes)
  uint64_t pool_addr;   // verbs: the lease's virtual address at the memnode (0 for emulated)
  uint32_t rkey;        // verbs: the lease's remote key (0 for emulated)
  uint32_t heartbeat_ms;  // the memnode's heartbeat interval (0: none); silence = death
  uint64_t lease_id;      // this compute node's lease, for the memnode's logs and dpctl
  uint8_t mac[kMacBytes];  // HMAC(key, "ack" | Hello.nonce | this up to mac); 0s: no key
};
static_assert(sizeof(HelloAck) == 80);

/// A verbs RC queue pair's address, as exchanged to connect it (INIT -> RTR needs the peer's).
struct QpInfo {
  uint32_t qp_num;
  uint32_t psn;      // initial packet sequence number (24 bits used)
  uint16_t lid;      // InfiniBand local id (0 on RoCE)
  uint8_t port;      // the HCA port the QP uses
  uint8_t gid_index;
  uint32_t mtu;      // ibv_mtu enum value both sides agree on
  uint8_t gid[16];   // RoCE/global routing address
};
static_assert(sizeof(QpInfo) == 32);

struct QpConnect {
  MsgHeader h;
  uint16_t core;      // which compute core's queue pair
  uint16_t reserved;
  QpInfo qp;
};
static_assert(sizeof(QpConnect) == 52);

struct QpAccept {
  MsgHeader h;
  uint16_t core;
  uint16_t reserved;
  QpInfo qp;
};
static_assert(sizeof(QpAccept) == 52);

struct Heartbeat {
  MsgHeader h;
  uint64_t sequence;
};
static_assert(sizeof(Heartbeat) == 24);

struct ErrorMsg {
  MsgHeader h;
  char reason[112];  // NUL-terminated
};
static_assert(sizeof(ErrorMsg) == 128);

template <typename T>
constexpr MsgHeader make_header(MsgType type) {
  return MsgHeader{kMagic, kVersion, uint16_t(type), uint32_t(sizeof(T)), 0};
}

/// Checks a received header against the expected type and size. Pure.
inline bool header_ok(const MsgHeader& h, MsgType type, uint32_t size) {
  return h.magic == kMagic && h.version == kVersion && h.type == uint16_t(type) && h.length == size;
}

/// The longest message a receiver takes; every message above is far shorter.
inline constexpr uint32_t kMaxMessageLength = 4096;

/// Checks a header just read off the stream, before its body is read: magic, version and a
/// length from the header's own size to kMaxMessageLength. Any type passes. Pure.
inline bool frame_ok(const MsgHeader& h) {
  return h.magic == kMagic && h.version == kVersion && h.length >= sizeof(MsgHeader) &&
         h.length <= kMaxMessageLength;
}

static_assert(std::is_trivially_copyable_v<QpInfo>);

}  // namespace fm::paging::wire
