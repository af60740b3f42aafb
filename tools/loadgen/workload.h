// Deterministic keys and values, and memcached request encoding for the load generator.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace fm::loadgen {

/// memcached's UDP frame header, as the client writes it (network byte order).
inline void put_frame_header(uint8_t* p, uint16_t request_id) {
  p[0] = uint8_t(request_id >> 8);
  p[1] = uint8_t(request_id);
  p[2] = 0; p[3] = 0;  // sequence 0
  p[4] = 0; p[5] = 1;  // one datagram
  p[6] = 0; p[7] = 0;
}

/// Key i as text: "k" + 10 decimal digits (11 bytes), into `out`. Returns its length.
inline size_t key_text(uint64_t i, char* out) {
  out[0] = 'k';
  for (int d = 10; d >= 1; --d) {
    out[d] = char('0' + i % 10);
    i /= 10;
  }
  return 11;
}

/// Byte j of key i's value (printable, depends on both so a swapped value is caught).
inline char value_byte(uint64_t key, uint32_t j) {
  uint64_t x = key * 0x9E3779B97F4A7C15ull + j * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return char('a' + x % 26);
}

/// Writes "get <key>\r\n" after the frame header. Returns the payload length.
inline size_t encode_get(uint8_t* buf, uint16_t request_id, uint64_t key) {
  put_frame_header(buf, request_id);
  char* p = reinterpret_cast<char*>(buf + 8);
  std::memcpy(p, "get ", 4);
  size_t n = 4 + key_text(key, p + 4);
  p[n++] = '\r';
  p[n++] = '\n';
  return 8 + n;
}

/// Writes "set <key> 0 0 <len>\r\n<value>\r\n" after the frame header. Returns the length.
inline size_t encode_set(uint8_t* buf, uint16_t request_id, uint64_t key, uint32_t value_len) {
  put_frame_header(buf, request_id);
  char* p = reinterpret_cast<char*>(buf + 8);
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
  for (uint32_t j = 0; j < value_len; ++j) p[n++] = value_byte(key, j);
  p[n++] = '\r';
  p[n++] = '\n';
  return 8 + n;
}

/// What a GET reply said.
enum class GetOutcome : uint8_t { kHit, kMiss, kWrongValue, kServerError, kMalformed };

/// Checks a single-datagram GET reply body (after the frame header) for key `key`.
inline GetOutcome check_get_reply(std::string_view body, uint64_t key, uint32_t value_len,
                                  bool verify) {
  if (body == "END\r\n") return GetOutcome::kMiss;
  if (body.starts_with("SERVER_ERROR") || body.starts_with("CLIENT_ERROR") ||
      body.starts_with("ERROR"))
    return GetOutcome::kServerError;
  if (!body.starts_with("VALUE ")) return GetOutcome::kMalformed;
  const size_t eol = body.find("\r\n");
  if (eol == std::string_view::npos) return GetOutcome::kMalformed;
  const std::string_view data = body.substr(eol + 2);
  if (data.size() < size_t(value_len) + 7 || data.substr(value_len) != "\r\nEND\r\n")
    return verify ? GetOutcome::kWrongValue : GetOutcome::kHit;
  if (!verify) return GetOutcome::kHit;
  char k[11];
  key_text(key, k);
  if (body.substr(6, 11) != std::string_view(k, 11)) return GetOutcome::kWrongValue;
  for (uint32_t j = 0; j < value_len; ++j)
    if (data[j] != value_byte(key, j)) return GetOutcome::kWrongValue;
  return GetOutcome::kHit;
}

}  // namespace fm::loadgen
