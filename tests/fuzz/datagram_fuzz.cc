// libFuzzer harness: one memcached UDP datagram (frame header + commands) through
// kv::Session::handle_datagram against a Store holding items sized near the reply limits.
//
// Input: byte 0 picks the configuration (kConfigs, modulo their count); the rest is the whole
// UDP payload, 8-byte frame header included. Every emitted datagram must fit the datagram size
// and carry a consistent frame header; the reply text must be bounded by the reply buffer (and by
// kv.reply_bytes_max where the tree has it) and be well-formed memcached replies.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvapp/options.h"
#include "kvapp/protocol.h"
#include "kvapp/session.h"
#include "kvapp/store.h"
#include "kvapp/tuning.h"
#include "kvapp/udp_frame.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace fm::kv;

constexpr int64_t kNow = 1'700'000'000;  // a fixed "now", so expiry is deterministic

// kv.reply_bytes_max (kvapp/options.h) bounds the reply text per request datagram; the harness
// also builds against a tree from before it (to reproduce the reply-buffer overflow it fixed).
template <typename P>
concept HasReplyBytesMax = requires(P p) { p.reply_bytes_max; };

constexpr uint32_t kReplyBytesMax = 8 * 1024;  // the smallest value kv.reply_bytes_max takes

template <typename P>
void set_reply_bytes_max(P& p, uint32_t bytes) {
  if constexpr (HasReplyBytesMax<P>) p.reply_bytes_max = bytes;
}

// Reply text bytes one request datagram may produce: what the slots hold, and where
// kv.reply_bytes_max is set, that bound plus one get's first value (which may pass it) and the
// reserve for the error lines.
template <typename P>
uint64_t reply_text_bound(const StoreOptions& s, const P& p, uint64_t slot_text) {
  if constexpr (HasReplyBytesMax<P>) {
    if (p.reply_bytes_max != 0) {
      const uint64_t first_value = uint64_t{s.item_size_max} + kKeyMaxLength + 64;
      return std::min<uint64_t>(slot_text, p.reply_bytes_max + first_value + kReplyReserve);
    }
  }
  return slot_text;
}

struct Config {
  StoreOptions store;
  ProtocolOptions protocol;
  bool persistent = false;  // one Store for the whole run (too big to build per input)
};

Config make_config(uint32_t item_size_max, uint32_t udp_max_payload, uint32_t reply_buffer_kb,
                   uint32_t reply_bytes_max = 0) {
  Config c;
  c.store.memory_mb = 2;
  c.store.hash_power = 8;
  c.store.item_size_max = item_size_max;
  c.protocol.udp_max_payload = udp_max_payload;
  c.protocol.reply_buffer_kb = reply_buffer_kb;
  set_reply_bytes_max(c.protocol, reply_bytes_max);
  return c;
}

std::vector<Config> configs() {
  std::vector<Config> v;
  Config defaults;  // kvserver's defaults: 64 MiB, 1 MiB items, 1400-byte datagrams, 2 MiB buffer
  defaults.persistent = true;
  v.push_back(defaults);
  v.push_back(make_config(4096, 1400, 8));   // 4 KiB items, an 8 KiB buffer (5 datagrams)
  v.push_back(make_config(4096, 64, 6));     // the smallest datagrams: 56 text bytes each
  v.push_back(make_config(4096, 1400, 6));   // the smallest buffer that holds one 4 KiB get
  v.push_back(make_config(4096, 9000, 64, kReplyBytesMax));  // jumbo datagrams, a tight bound
  for (const Config& c : v) {
    FUZZ_CHECK(validate(c.store, c.protocol).is_ok(), "config: %s",
               validate(c.store, c.protocol).message().c_str());
  }
  return v;
}

void put(Store& store, std::string_view key, size_t value_len, uint32_t flags) {
  std::vector<uint8_t> value(value_len);
  for (size_t i = 0; i < value_len; ++i) value[i] = static_cast<uint8_t>('a' + i % 26);
  StoreRequest r;
  r.key = key;
  r.value = value;
  r.flags = flags;
  const StoreOutcome o = store.store(r, kNow);
  FUZZ_CHECK(o == StoreOutcome::kStored, "seeding %.*s: outcome %d", int(key.size()), key.data(),
             int(o));
}

// Items near every limit: empty, one byte, a number at the top of uint64, one slot's text,
// half the largest and the largest item (key + value = item_size_max).
void seed(Store& store, const Config& c) {
  const size_t max = c.store.item_size_max;
  const size_t slot = c.protocol.udp_max_payload - kUdpFrameHeaderSize;
  put(store, "k0", 0, 0);
  put(store, "k1", 1, 1);
  StoreRequest num;
  num.key = "num";
  const std::string_view digits = "18446744073709551615";
  num.value = {reinterpret_cast<const uint8_t*>(digits.data()), digits.size()};
  FUZZ_CHECK(store.store(num, kNow) == StoreOutcome::kStored, "seeding num");
  put(store, "slot", std::min(slot, max - 4), 4294967295u);
  put(store, "half", max / 2, 7);
  put(store, "big", max - 3, 0);
}

struct Served {
  std::unique_ptr<Store> store;
  std::unique_ptr<Session> session;
};

Served serve(const Config& c) {
  Served s;
  auto r = Store::create(c.store);
  FUZZ_CHECK(r.is_ok(), "Store::create: %s", r.status().message().c_str());
  s.store = std::move(r).value();
  seed(*s.store, c);
  s.session = std::make_unique<Session>(*s.store, c.protocol, nullptr);
  return s;
}

struct Emitted {
  std::vector<std::vector<uint8_t>> datagrams;
};

// "" when `text` is a sequence of well-formed memcached replies, else what is wrong.
std::string check_reply(std::string_view text) {
  static constexpr std::string_view kExact[] = {"STORED",  "NOT_STORED", "EXISTS", "NOT_FOUND",
                                                "DELETED", "TOUCHED",    "OK",     "END",
                                                "ERROR",   "RESET"};
  static constexpr std::string_view kPrefixes[] = {"CLIENT_ERROR ", "SERVER_ERROR ", "VERSION ",
                                                   "STAT "};
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t e = text.find("\r\n", pos);
    if (e == std::string_view::npos) return "unterminated line at " + std::to_string(pos);
    const std::string_view line = text.substr(pos, e - pos);
    pos = e + 2;
    if (line.starts_with("VALUE ")) {
      // VALUE <key> <flags> <bytes>[ <cas>]
      std::vector<std::string_view> tok;
      for (size_t i = 0; i <= line.size();) {
        const size_t j = std::min(line.find(' ', i), line.size());
        tok.push_back(line.substr(i, j - i));
        i = j + 1;
      }
      if (tok.size() != 4 && tok.size() != 5) return "VALUE line with " + std::to_string(tok.size()) + " fields";
      uint64_t n = 0;
      for (char ch : tok[3]) {
        if (ch < '0' || ch > '9' || n > (uint64_t{1} << 40)) return "VALUE length not a number";
        n = n * 10 + uint64_t(ch - '0');
      }
      if (pos + n + 2 > text.size() || text.substr(pos + n, 2) != "\r\n") {
        return "VALUE data block of " + std::to_string(n) + " bytes not ended at " +
               std::to_string(pos + n);
      }
      pos += n + 2;
      continue;
    }
    if (std::find(std::begin(kExact), std::end(kExact), line) != std::end(kExact)) continue;
    if (std::any_of(std::begin(kPrefixes), std::end(kPrefixes),
                    [&](std::string_view p) { return line.starts_with(p); })) {
      continue;
    }
    if (!line.empty() && line.find_first_not_of("0123456789 ") == std::string_view::npos &&
        line[0] != ' ') {
      continue;  // incr/decr (padded with spaces like memcached's in-place rewrite)
    }
    return "unexpected reply line at " + std::to_string(pos - line.size() - 2);
  }
  return "";
}

// The dataplane's burst prefetch (kvserver announces a burst's first get keys before serving
// it): the key scan on hostile bytes, and the lookup through the hash it kept. Only in trees
// that have it.
template <typename S>
concept HasBurstPrefetch = requires(S s, std::string_view k) { s.prefetch_key(k); };

template <typename S>
void announce(S& store, std::span<const uint8_t> payload) {
  if constexpr (HasBurstPrefetch<S>) {
    if (payload.size() > kUdpFrameHeaderSize) {
      const std::string_view key = first_get_key(
          std::string_view(reinterpret_cast<const char*>(payload.data()) + kUdpFrameHeaderSize,
                           payload.size() - kUdpFrameHeaderSize));
      FUZZ_CHECK(key.data() + key.size() <= reinterpret_cast<const char*>(payload.data()) +
                                                  payload.size(),
                 "first_get_key read past the datagram");
      if (!key.empty()) store.prefetch_key(key);
    }
    store.prefetch_burst();
  }
}

template <typename S>
void end_burst(S& store) {
  if constexpr (HasBurstPrefetch<S>) store.end_burst();
}

void run(const Config& c, Store& store, Session& session, std::span<const uint8_t> payload) {
  Emitted out;
  announce(store, payload);
  const size_t n = session.handle_datagram(
      payload, kNow,
      [](void* ctx, std::span<const uint8_t> d) {
        static_cast<Emitted*>(ctx)->datagrams.emplace_back(d.begin(), d.end());
      },
      &out);
  end_burst(store);
  FUZZ_CHECK(n == out.datagrams.size(), "returned %zu, emitted %zu", n, out.datagrams.size());
  if (payload.size() < kUdpFrameHeaderSize) {
    FUZZ_CHECK(n == 0, "a runt got %zu datagrams", n);
    return;
  }
  const UdpFrameHeader request = *parse_frame_header(payload);
  const size_t max = c.protocol.udp_max_payload;
  const uint64_t slots = uint64_t{c.protocol.reply_buffer_kb} * 1024 / max;
  const uint64_t bound = reply_text_bound(c.store, c.protocol, slots * (max - kUdpFrameHeaderSize));
  std::string text;
  for (size_t i = 0; i < n; ++i) {
    const std::vector<uint8_t>& d = out.datagrams[i];
    FUZZ_CHECK(d.size() > kUdpFrameHeaderSize && d.size() <= max,
               "datagram %zu of %zu is %zu bytes (max %zu)", i, n, d.size(), max);
    FUZZ_CHECK(i + 1 == n || d.size() == max, "datagram %zu of %zu is %zu bytes, not full", i, n,
               d.size());
    const UdpFrameHeader h = *parse_frame_header(d);
    FUZZ_CHECK(h.request_id == request.request_id && h.sequence == i && h.total == n &&
                   h.reserved == 0,
               "datagram %zu of %zu: header id %u seq %u total %u", i, n, h.request_id,
               h.sequence, h.total);
    text.append(reinterpret_cast<const char*>(d.data()) + kUdpFrameHeaderSize,
                d.size() - kUdpFrameHeaderSize);
  }
  FUZZ_CHECK(text.size() <= bound, "%zu reply text bytes, bound %llu", text.size(),
             static_cast<unsigned long long>(bound));
  const std::string bad = check_reply(text);
  FUZZ_CHECK(bad.empty(), "malformed reply: %s", bad.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<Config> kConfigs = configs();
  static Served persistent = serve(kConfigs[0]);
  if (size < 1) return 0;
  const Config& c = kConfigs[data[0] % kConfigs.size()];
  // An exactly sized copy, so a read past the datagram is a heap overflow ASan reports.
  const std::vector<uint8_t> payload(data + 1, data + size);
  if (c.persistent) {
    run(c, *persistent.store, *persistent.session, payload);
  } else {
    Served fresh = serve(c);
    run(c, *fresh.store, *fresh.session, payload);
    fresh.session.reset();  // before its store
  }
  return 0;
}
