// Helpers for the kvapp tests: small stores and a Session driven like a UDP client.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvapp/session.h"
#include "kvapp/store.h"
#include "kvapp/udp_frame.h"

namespace fm::kv::testing {

using namespace std::string_view_literals;

/// A fixed "now" (2023-11-14) so expiry tests are deterministic.
inline constexpr int64_t kNow = 1'700'000'000;

/// A store small enough for tests: 8 MiB, 1 MiB items, 1024 buckets.
inline StoreOptions small_options() {
  StoreOptions o;
  o.memory_mb = 8;
  o.hash_power = 10;
  return o;
}

inline std::unique_ptr<Store> make_store(const StoreOptions& o = small_options()) {
  auto r = Store::create(o);
  EXPECT_TRUE(r.is_ok()) << (r.is_ok() ? "" : r.status().message());
  return r.is_ok() ? std::move(r).value() : nullptr;
}

/// Local memory that the store must treat like far memory: try_pin() never succeeds, so every
/// key check and read-modify-write takes the read-copy-retry path (pins with no lock held).
class WaitingArena final : public Arena {
 public:
  explicit WaitingArena(uint64_t bytes) : inner_(std::move(LocalArena::create(bytes).value())) {}
  uint64_t size_bytes() const override { return inner_->size_bytes(); }
  std::byte* pin(uint64_t offset, uint32_t len, Access access) override {
    return inner_->pin(offset, len, access);
  }
  void unpin(uint64_t offset, uint32_t len, std::byte* data) override {
    inner_->unpin(offset, len, data);
  }
  bool may_fault() const override { return true; }

 private:
  std::unique_ptr<LocalArena> inner_;
};

inline std::unique_ptr<Store> make_store_on(const StoreOptions& o, std::unique_ptr<Arena> arena) {
  auto r = Store::create(o, std::move(arena));
  EXPECT_TRUE(r.is_ok()) << (r.is_ok() ? "" : r.status().message());
  return r.is_ok() ? std::move(r).value() : nullptr;
}

inline std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

/// One reply datagram as received.
struct Datagram {
  UdpFrameHeader header;
  std::string text;  // after the frame header
  size_t size = 0;   // whole datagram
};

/// Drives a Session with framed requests, as a memcached UDP client would.
class Client {
 public:
  explicit Client(Store& store, const ProtocolOptions& options = ProtocolOptions{},
                  const StatsHook* hook = nullptr)
      : session(store, options, hook) {}

  /// Sends a whole payload (frame header included) and returns the reply datagrams.
  std::vector<Datagram> send_raw(std::span<const uint8_t> payload, int64_t now = kNow) {
    std::vector<Datagram> out;
    const size_t n = session.handle_datagram(
        payload, now,
        [](void* ctx, std::span<const uint8_t> d) {
          auto* v = static_cast<std::vector<Datagram>*>(ctx);
          Datagram g;
          g.header = *parse_frame_header(d);
          g.text.assign(reinterpret_cast<const char*>(d.data()) + kUdpFrameHeaderSize,
                        d.size() - kUdpFrameHeaderSize);
          g.size = d.size();
          v->push_back(std::move(g));
        },
        &out);
    EXPECT_EQ(n, out.size());
    return out;
  }

  /// Frames `body` as a single-datagram request with a fresh request id.
  std::vector<uint8_t> frame(std::string_view body, uint16_t id, uint16_t seq = 0,
                             uint16_t total = 1) {
    std::vector<uint8_t> d(kUdpFrameHeaderSize);
    write_frame_header(UdpFrameHeader{id, seq, total, 0}, d);
    d.insert(d.end(), body.begin(), body.end());
    return d;
  }

  /// Sends `body` and returns the reply text of all datagrams joined, after checking that they
  /// carry the request id and a consistent sequence.
  std::string req(std::string_view body, int64_t now = kNow) {
    const uint16_t id = next_id_++;
    const std::vector<Datagram> ds = send_raw(frame(body, id), now);
    std::string text;
    for (size_t i = 0; i < ds.size(); ++i) {
      EXPECT_EQ(ds[i].header.request_id, id);
      EXPECT_EQ(ds[i].header.sequence, i);
      EXPECT_EQ(ds[i].header.total, ds.size());
      text += ds[i].text;
    }
    return text;
  }

  Session session;

 private:
  uint16_t next_id_ = 100;
};

/// The value of `key` as the protocol would show it, or "<miss>".
inline std::string peek(Store& store, std::string_view key, int64_t now = kNow) {
  std::string v = "<miss>";
  store.get(key, now, [&](const ItemView& item) {
    v.assign(reinterpret_cast<const char*>(item.value.data()), item.value.size());
  });
  return v;
}

}  // namespace fm::kv::testing
