// Research knobs of the key-value app: protocol limits and store geometry (eRPC's tweakme.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace fm::kv {

/// memcached's KEY_MAX_LENGTH: longer keys get "CLIENT_ERROR bad command line format".
inline constexpr size_t kKeyMaxLength = 250;

/// A command line longer than this (bytes before its '\n') that is not a get-family line gets
/// "CLIENT_ERROR line too long"; memcached uses the same 2048-byte threshold on its read buffer.
inline constexpr size_t kMaxLineLength = 2048;

/// memcached's MAX_TOKENS (24 including its terminal token): lines with more tokens fail every
/// command's token-count check, except get-family key lists, which are unbounded.
inline constexpr size_t kMaxTokens = 24;

/// Size of the UDP frame header memcached puts in front of every datagram.
inline constexpr size_t kUdpFrameHeaderSize = 8;

/// A far-memory page: items never straddle one unless larger than a page.
inline constexpr uint32_t kPageSize = 4096;

/// Smallest slab chunk (key + value bytes); metadata lives in a local entry, not in the chunk.
inline constexpr uint32_t kMinChunkSize = 64;

/// Slab class ids fit in a uint8_t.
inline constexpr size_t kMaxSlabClasses = 255;

/// Lock stripes over the hash buckets (a power of two; capped by the bucket count).
inline constexpr uint32_t kMaxLockStripes = 4096;

/// Entries an eviction scan may skip (referenced or lock busy) before giving up, like memcached's
/// LRU search depth (5) but larger because CLOCK second chances are not counted.
inline constexpr uint32_t kEvictionSkipLimit = 64;

/// Bytes of a reply buffer held back so an error line always fits after a truncated reply.
inline constexpr size_t kReplyReserve = 128;

/// What "version" answers: the memcached protocol level first, so clients that parse x.y.z work.
inline constexpr const char* kServerVersion = "1.6.18-farmem";

}  // namespace fm::kv
