// Research knobs of the key-value app: protocol limits and store geometry (eRPC's tweakme.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/ids.h"

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
using fm::kPageSize;

/// Smallest slab chunk (key + value bytes); metadata lives in a local entry, not in the chunk.
inline constexpr uint32_t kMinChunkSize = 64;

/// Slab class ids fit in a uint8_t.
inline constexpr size_t kMaxSlabClasses = 255;

/// Lock stripes over the hash buckets (a power of two; capped by the bucket count).
inline constexpr uint32_t kMaxLockStripes = 4096;

/// Entries an eviction scan may skip (referenced or lock busy) before giving up, like memcached's
/// LRU search depth (5) but larger because CLOCK second chances are not counted.
inline constexpr uint32_t kEvictionSkipLimit = 64;

/// The longest line ever written into a reply buffer's reserve (an error after a rollback).
inline constexpr size_t kMaxReservedLine = 64;

/// Bytes of a reply buffer held back so error lines always fit after a truncated reply: one
/// command's error plus the line that cuts the rest of the datagram short.
inline constexpr size_t kReplyReserve = 2 * kMaxReservedLine;

/// The longest reply a non-get, non-stats command can give (an error line with usage text, or an
/// incr result). A command starts only while this much room is left under the reply limit, so a
/// command that changes the store always gets its reply in.
inline constexpr size_t kMaxShortReply = 96;

/// The default bound on reply text per request datagram (kv.reply_bytes_max = 0). A get's
/// first value may pass it (one item of kv.item_size_max always fits); everything else in the
/// reply — more values, repeated keys, many commands — stays within it. Bounds what one small
/// datagram can return; a 64-key get of 128-byte values takes ~10 KiB.
inline constexpr size_t kDefaultReplyBytesMax = 32 * 1024;

/// The smallest kv.reply_bytes_max accepted: a "stats" reply (~3 KiB) must fit.
inline constexpr size_t kMinReplyBytesMax = 8 * 1024;

/// What "version" answers: the memcached protocol level first, so clients that parse x.y.z work.
inline constexpr const char* kServerVersion = "1.6.18-farmem";

}  // namespace fm::kv
