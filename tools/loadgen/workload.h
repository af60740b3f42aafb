// Deterministic keys and values, and memcached UDP request encoding and reply checking.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "kvapp/udp_frame.h"
#include "tools/loadgen/distributions.h"
#include "tools/loadgen/rng.h"

namespace fm::loadgen {

/// The request kinds the loadgen sends. kMultiGet is one "get k1 k2 ... kN" command whose
/// reply may span several datagrams.
enum class Op : uint8_t { kGet = 0, kSet = 1, kMultiGet = 2 };
inline constexpr int kOpCount = 3;
inline constexpr const char* op_name(Op op) {
  return op == Op::kGet ? "get" : op == Op::kSet ? "set" : "mget";
}

/// memcached's UDP frame header (kvapp/udp_frame.h, the server's own definition), as a client
/// writes it: a request of one datagram.
inline constexpr size_t kFrameHeaderLen = kv::kUdpFrameHeaderSize;
inline void put_frame_header(uint8_t* p, uint16_t request_id) {
  kv::write_frame_header(kv::UdpFrameHeader{.request_id = request_id, .sequence = 0, .total = 1}, p);
}

/// Bytes of one memcached UDP datagram, frame header included (memcached's
/// UDP_MAX_PAYLOAD_SIZE): every request must fit one; replies come in datagrams of at most this.
inline constexpr size_t kMaxDatagramLen = 1400;

/// Bytes a request may take: a datagram. A transport's tx_begin() offers at least this much.
inline constexpr size_t kMaxRequestLen = kMaxDatagramLen;
static_assert(kFrameHeaderLen + 48 + kMaxValueSize <= kMaxRequestLen,
              "a SET of the largest value (set + key + header line + value + CRLF) must fit");

/// Key i as text: "k" + 10 decimal digits (11 bytes), into `out`. Returns its length.
/// Keys >= 10^10 wrap (the key space is capped below that by the flags).
inline constexpr size_t kKeyLen = 11;

/// Length of the datagram "get k1 k2 ... kN\r\n" (frame header included) for `n` keys.
inline constexpr size_t multiget_request_len(size_t n) {
  return kFrameHeaderLen + 3 + n * (1 + kKeyLen) + 2;
}
/// The most keys one multi-key GET can name and still fit one datagram (115).
inline constexpr uint32_t kMaxMultiGetKeys =
    uint32_t((kMaxDatagramLen - kFrameHeaderLen - 5) / (1 + kKeyLen));
static_assert(multiget_request_len(kMaxMultiGetKeys) <= kMaxDatagramLen);
static_assert(multiget_request_len(kMaxMultiGetKeys + 1) > kMaxDatagramLen);
inline size_t key_text(uint64_t i, char* out) {
  out[0] = 'k';
  for (int d = 10; d >= 1; --d) {
    out[d] = char('0' + i % 10);
    i /= 10;
  }
  return kKeyLen;
}

namespace detail {
inline constexpr size_t kPatternLen = 16384;
/// A fixed printable pattern (same in every process and run) that values are cut from.
inline const char* value_pattern() {
  static const std::array<char, kPatternLen + kMaxValueSize> pattern = [] {
    std::array<char, kPatternLen + kMaxValueSize> p{};
    uint64_t st = 0x243F6A8885A308D3ull;
    for (auto& c : p) c = char('a' + splitmix64(st) % 26);
    return p;
  }();
  return pattern.data();
}
inline uint64_t value_hash(uint64_t key) {
  uint64_t st = key * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
  return splitmix64(st);
}
}  // namespace detail

/// Writes key `key`'s value of `len` bytes: up to 8 characters naming a 40-bit hash of the key
/// (so a value returned for the wrong key is caught), then the pattern from a key-dependent
/// offset. Deterministic: every SET of a key writes the same bytes. No allocation; ~memcpy.
inline void write_value(char* out, uint64_t key, uint32_t len) {
  const uint64_t h = detail::value_hash(key);
  const uint32_t tag = len < 8 ? len : 8;
  for (uint32_t j = 0; j < tag; ++j) out[j] = char('A' + ((h >> (5 * j)) & 31) % 26);
  const size_t off = size_t(h >> 40) % detail::kPatternLen;
  if (len > tag) std::memcpy(out + tag, detail::value_pattern() + off + tag, len - tag);
}

/// True when `v` is exactly key `key`'s value of length `len`.
inline bool value_matches(std::string_view v, uint64_t key, uint32_t len) {
  if (v.size() != len) return false;
  const uint64_t h = detail::value_hash(key);
  const uint32_t tag = len < 8 ? len : 8;
  for (uint32_t j = 0; j < tag; ++j)
    if (v[j] != char('A' + ((h >> (5 * j)) & 31) % 26)) return false;
  const size_t off = size_t(h >> 40) % detail::kPatternLen;
  return len <= tag ||
         std::memcmp(v.data() + tag, detail::value_pattern() + off + tag, len - tag) == 0;
}

/// Writes "get <key>\r\n" after the frame header. Returns the payload length.
inline size_t encode_get(uint8_t* buf, uint16_t request_id, uint64_t key) {
  put_frame_header(buf, request_id);
  char* p = reinterpret_cast<char*>(buf + kFrameHeaderLen);
  std::memcpy(p, "get ", 4);
  size_t n = 4 + key_text(key, p + 4);
  p[n++] = '\r';
  p[n++] = '\n';
  return kFrameHeaderLen + n;
}

/// Writes "get <k1> <k2> ... <kN>\r\n" after the frame header. Returns the payload length.
/// `keys.size()` <= kMaxMultiGetKeys, so it fits one datagram.
inline size_t encode_multiget(uint8_t* buf, uint16_t request_id, std::span<const uint64_t> keys) {
  put_frame_header(buf, request_id);
  char* p = reinterpret_cast<char*>(buf + kFrameHeaderLen);
  std::memcpy(p, "get", 3);
  size_t n = 3;
  for (uint64_t k : keys) {
    p[n++] = ' ';
    n += key_text(k, p + n);
  }
  p[n++] = '\r';
  p[n++] = '\n';
  return kFrameHeaderLen + n;
}

/// Writes "set <key> 0 0 <len>\r\n<value>\r\n" after the frame header. Returns the length.
/// `value_len` <= kMaxValueSize.
inline size_t encode_set(uint8_t* buf, uint16_t request_id, uint64_t key, uint32_t value_len) {
  put_frame_header(buf, request_id);
  char* p = reinterpret_cast<char*>(buf + kFrameHeaderLen);
  std::memcpy(p, "set ", 4);
  size_t n = 4 + key_text(key, p + 4);
  std::memcpy(p + n, " 0 0 ", 5);
  n += 5;
  char digits[16];
  int d = 0;
  uint32_t v = value_len;
  do {
    digits[d++] = char('0' + v % 10);
    v /= 10;
  } while (v);
  while (d) p[n++] = digits[--d];
  p[n++] = '\r';
  p[n++] = '\n';
  write_value(p + n, key, value_len);
  n += value_len;
  p[n++] = '\r';
  p[n++] = '\n';
  return kFrameHeaderLen + n;
}

/// What a reply said.
enum class ReplyOutcome : uint8_t {
  kOk,           // GET hit with the right value (or unverified), SET stored
  kMiss,         // GET: END with no value
  kWrongValue,   // GET: a value, but not this key's (length or bytes), or another key's name
  kServerError,  // ERROR, CLIENT_ERROR, SERVER_ERROR, NOT_STORED
  kMalformed,    // none of the above
};

namespace detail {
inline bool is_error_reply(std::string_view body) {
  return body.starts_with("SERVER_ERROR") || body.starts_with("CLIENT_ERROR") ||
         body.starts_with("ERROR") || body.starts_with("NOT_STORED");
}
}  // namespace detail

/// Checks a single-datagram GET reply body (after the frame header) for key `key`, whose
/// value is `value_len` bytes. With `verify` false a well-formed VALUE counts as a hit.
inline ReplyOutcome check_get_reply(std::string_view body, uint64_t key, uint32_t value_len,
                                    bool verify) {
  if (body == "END\r\n") return ReplyOutcome::kMiss;
  if (!body.starts_with("VALUE ")) {
    return detail::is_error_reply(body) ? ReplyOutcome::kServerError : ReplyOutcome::kMalformed;
  }
  const size_t eol = body.find("\r\n");
  if (eol == std::string_view::npos) return ReplyOutcome::kMalformed;
  // "VALUE <key> <flags> <bytes>": the byte count is the last field of the line.
  const std::string_view line = body.substr(0, eol);
  const size_t sp = line.rfind(' ');
  uint64_t bytes = 0;
  if (sp == std::string_view::npos || sp + 1 == line.size()) return ReplyOutcome::kMalformed;
  for (char c : line.substr(sp + 1)) {
    if (c < '0' || c > '9' || bytes > 1'000'000'000) return ReplyOutcome::kMalformed;
    bytes = bytes * 10 + uint64_t(c - '0');
  }
  const std::string_view rest = body.substr(eol + 2);
  if (rest.size() != bytes + 7 || rest.substr(bytes) != "\r\nEND\r\n")
    return ReplyOutcome::kMalformed;
  if (!verify) return ReplyOutcome::kOk;
  char k[kKeyLen];
  key_text(key, k);
  if (line.size() < 6 + kKeyLen + 1 || line.substr(6, kKeyLen) != std::string_view(k, kKeyLen) ||
      line[6 + kKeyLen] != ' ')
    return ReplyOutcome::kWrongValue;
  return value_matches(rest.substr(0, bytes), key, value_len) ? ReplyOutcome::kOk
                                                              : ReplyOutcome::kWrongValue;
}

/// Parses a key's text ("k" + 10 digits) back into its number; false for anything else.
inline bool parse_key_text(std::string_view t, uint64_t* key) {
  if (t.size() != kKeyLen || t[0] != 'k') return false;
  uint64_t v = 0;
  for (char c : t.substr(1)) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + uint64_t(c - '0');
  }
  *key = v;
  return true;
}

/// True when `text` is one or more whole "VALUE <key> <flags> <bytes>\r\n<data>\r\n" items
/// and nothing else: a part of a GET reply that may be followed by more items or END.
inline bool whole_items(std::string_view text) {
  if (text.empty()) return false;
  while (!text.empty()) {
    if (!text.starts_with("VALUE ")) return false;
    const size_t eol = text.find("\r\n");
    if (eol == std::string_view::npos) return false;
    const std::string_view line = text.substr(0, eol);
    const size_t sp = line.rfind(' ');
    if (sp == std::string_view::npos || sp + 1 == line.size()) return false;
    uint64_t bytes = 0;
    for (char c : line.substr(sp + 1)) {
      if (c < '0' || c > '9' || bytes > 1'000'000'000) return false;
      bytes = bytes * 10 + uint64_t(c - '0');
    }
    if (text.size() < eol + 2 + bytes + 2 || text.substr(eol + 2 + bytes, 2) != "\r\n")
      return false;
    text.remove_prefix(eol + 2 + bytes + 2);
  }
  return true;
}

/// What a multi-key GET reply held.
struct MultiGetCheck {
  ReplyOutcome outcome = ReplyOutcome::kMalformed;
  uint32_t found = 0;  // VALUE items for requested keys
};

/// Checks a whole (reassembled) multi-key GET reply body: VALUE items, then "END\r\n" and
/// nothing after it. kOk when every key of `keys` has its value; kMiss when some are absent
/// (a preloaded key is missing); kWrongValue when an item names a key not asked for (or one
/// twice) or, with `verify`, holds bytes that are not the key's value; kServerError for an
/// error reply; kMalformed otherwise. Without `verify` item names and bytes are not looked at.
/// `keys.size()` <= kMaxMultiGetKeys. No allocation.
inline MultiGetCheck check_multiget_reply(std::string_view body, std::span<const uint64_t> keys,
                                          const ValueSizes& values, bool verify) {
  MultiGetCheck r;
  if (detail::is_error_reply(body)) {
    r.outcome = ReplyOutcome::kServerError;
    return r;
  }
  static_assert(kMaxMultiGetKeys <= 128);
  uint64_t seen[2] = {0, 0};
  bool wrong = false;
  size_t cursor = 0;  // servers answer in request order: look there first
  size_t pos = 0;
  for (;;) {
    const std::string_view rest = body.substr(pos);
    if (rest == "END\r\n") break;
    if (!rest.starts_with("VALUE ")) return r;  // malformed (also: a missing END)
    const size_t eol = rest.find("\r\n");
    if (eol == std::string_view::npos) return r;
    // "VALUE <key> <flags> <bytes>": the byte count is the last field of the line.
    const std::string_view line = rest.substr(0, eol);
    const size_t sp = line.rfind(' ');
    const size_t key_end = line.find(' ', 6);
    if (sp == std::string_view::npos || sp + 1 == line.size() ||
        key_end == std::string_view::npos || key_end >= sp)
      return r;
    uint64_t bytes = 0;
    for (char c : line.substr(sp + 1)) {
      if (c < '0' || c > '9' || bytes > 1'000'000'000) return r;
      bytes = bytes * 10 + uint64_t(c - '0');
    }
    if (rest.size() < eol + 2 + bytes + 2 || rest.substr(eol + 2 + bytes, 2) != "\r\n") return r;
    pos += eol + 2 + bytes + 2;
    ++r.found;
    if (!verify) continue;
    uint64_t key = 0;
    size_t idx = keys.size();
    if (parse_key_text(line.substr(6, key_end - 6), &key)) {
      if (cursor < keys.size() && keys[cursor] == key) {
        idx = cursor;
      } else {
        for (size_t i = 0; i < keys.size(); ++i)
          if (keys[i] == key) idx = i;
      }
    }
    if (idx == keys.size() || (seen[idx / 64] >> (idx % 64) & 1)) {
      wrong = true;  // not asked for, or twice
      --r.found;
      continue;
    }
    seen[idx / 64] |= 1ull << (idx % 64);
    cursor = idx + 1;
    if (!value_matches(rest.substr(eol + 2, bytes), key, values.size_for(key))) wrong = true;
  }
  r.outcome = wrong                   ? ReplyOutcome::kWrongValue
              : r.found < keys.size() ? ReplyOutcome::kMiss
                                      : ReplyOutcome::kOk;
  return r;
}

/// Checks a SET reply body.
inline ReplyOutcome check_set_reply(std::string_view body) {
  if (body == "STORED\r\n") return ReplyOutcome::kOk;
  return detail::is_error_reply(body) ? ReplyOutcome::kServerError : ReplyOutcome::kMalformed;
}

}  // namespace fm::loadgen
