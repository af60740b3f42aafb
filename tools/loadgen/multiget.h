// Multi-key GETs in flight: the keys each one asked for and the reassembly of its reply datagrams.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "tools/loadgen/workload.h"

namespace fm::loadgen {

/// Most datagrams one reply may have: more than a reply of kMaxMultiGetKeys values of
/// kMaxValueSize bytes needs (~110 full datagrams), with room for a server that starts a new
/// datagram at every VALUE (kMaxMultiGetKeys + 1).
inline constexpr uint32_t kMaxReplyDatagrams = 128;

/// Bytes of the largest well-formed reply to a GET of `keys` keys whose values are at most
/// `max_value` bytes: per item a "VALUE <key> <flags> <bytes>\r\n" line (48 bytes is room for
/// 32-bit flags and a CAS), the value and CRLF; then "END\r\n".
inline constexpr size_t multiget_reply_capacity(uint32_t keys, uint32_t max_value) {
  return size_t(keys) * (48 + max_value + 2) + 5;
}

/// One multi-key GET reply being put back together from its datagrams. The datagram bodies
/// (after the 8-byte frame header) are appended to a caller-owned buffer as they come, in any
/// order, and laid out in sequence order once the reply is complete. Not thread-safe; no
/// allocation.
///
/// A reply is one message of `total` datagrams numbered 0..total-1 (kvserver; memcached up to
/// 1.5). memcached 1.6 instead answers each item of a multi-key GET as a message of its own
/// (each "sequence 0 of 1"), the last one ending with END: so a complete message that does not
/// end with END but holds whole VALUE items is kept, and the reply goes on with the next
/// message. Whole messages cannot be told from their duplicates there (no message number).
class ReplyAssembly {
 public:
  /// What one datagram did to the reply.
  enum class Add : uint8_t {
    kMore,       // stored; more is to come
    kComplete,   // stored; the reply is complete (it ends with END, or is an error, or is
                 // a message that cannot be continued: check_multiget_reply says which)
    kDuplicate,  // this sequence number of the current message was seen already: ignored
    kBad,        // total 0 or > kMaxReplyDatagrams, sequence >= total, or a total that
                 // differs from the message's first datagram's: the reply is malformed
  };

  /// Starts an empty reply whose bodies go to `buf`.
  void reset(std::span<char> buf) {
    buf_ = buf.data();
    cap_ = uint32_t(buf.size());
    used_ = 0;
    stream_ = 0;
    total_ = 0;
    got_ = 0;
    messages_ = 0;
    overflow_ = false;
    seen_[0] = seen_[1] = 0;
  }

  /// Adds datagram `seq` of `total` with payload `body` (frame header stripped).
  Add add(uint16_t seq, uint16_t total, std::span<const uint8_t> body) {
    if (total == 0 || total > kMaxReplyDatagrams || seq >= total) return Add::kBad;
    if (total_ == 0) total_ = total;
    if (total != total_) return Add::kBad;
    uint64_t& word = seen_[seq / 64];
    const uint64_t bit = 1ull << (seq % 64);
    if (word & bit) return Add::kDuplicate;
    word |= bit;
    off_[seq] = used_;
    if (body.size() > cap_ - used_) {
      overflow_ = true;  // longer than any well-formed reply: counted, not stored
      len_[seq] = 0;
    } else {
      std::memcpy(buf_ + used_, body.data(), body.size());
      len_[seq] = uint32_t(body.size());
      used_ += uint32_t(body.size());
    }
    if (++got_ < total_) return Add::kMore;
    return message_done();
  }

  /// After kComplete: the reply in order, copied into `out` (>= the buffer given to reset()).
  /// Empty when a datagram did not fit (overflowed()).
  std::string_view assemble(std::span<char> out) const {
    if (overflow_ || got_ != total_ || out.size() < used_) return {};
    std::memcpy(out.data(), buf_, stream_);
    size_t n = stream_;
    for (uint32_t s = 0; s < total_; ++s) {
      std::memcpy(out.data() + n, buf_ + off_[s], len_[s]);
      n += len_[s];
    }
    return {out.data(), n};
  }

  /// Datagrams of the current message: its total, and how many arrived.
  uint16_t total() const { return total_; }
  uint16_t received() const { return got_; }
  /// Earlier messages of this reply (memcached 1.6 style), complete and kept.
  uint32_t messages() const { return messages_; }
  bool overflowed() const { return overflow_; }

 private:
  /// The current message has all its datagrams: is the reply complete?
  Add message_done() {
    if (overflow_) return Add::kComplete;  // malformed anyway; do not wait for more
    char tail[5];
    const uint32_t n = message_tail(tail, sizeof tail);
    if (n == 5 && std::memcmp(tail, "END\r\n", 5) == 0) return Add::kComplete;
    if (stream_ == 0 && total_ == 1 && detail::is_error_reply({buf_ + off_[0], len_[0]}))
      return Add::kComplete;
    // Not the end: keep it if it is whole items (memcached 1.6's one message per item).
    in_order();
    if (messages_ + 1 >= kMaxReplyDatagrams || !whole_items({buf_ + stream_, used_ - stream_}))
      return Add::kComplete;  // check_multiget_reply calls it malformed
    ++messages_;
    stream_ = used_;
    total_ = 0;
    got_ = 0;
    seen_[0] = seen_[1] = 0;
    return Add::kMore;
  }

  /// Copies the last up to `n` bytes of the current message (in sequence order) to the end
  /// of `out`; returns how many there were.
  uint32_t message_tail(char* out, uint32_t n) const {
    uint32_t have = 0;
    for (int s = int(total_) - 1; s >= 0 && have < n; --s) {
      const uint32_t take = std::min(len_[s], n - have);
      std::memcpy(out + (n - have - take), buf_ + off_[s] + len_[s] - take, take);
      have += take;
    }
    if (have < n) std::memmove(out, out + (n - have), have);
    return have;
  }

  /// Moves the current message's datagrams into sequence order in place, after stream_.
  /// Quadratic in the datagrams, but only a message that is not the last gets here.
  void in_order() {
    uint32_t at = stream_;
    for (uint32_t s = 0; s < total_; ++s) {
      if (off_[s] != at) {
        // Rotate [at, off_[s] + len_[s]) so datagram s comes first; those between move up.
        std::rotate(buf_ + at, buf_ + off_[s], buf_ + off_[s] + len_[s]);
        for (uint32_t t = s + 1; t < total_; ++t)
          if (off_[t] >= at && off_[t] < off_[s]) off_[t] += len_[s];
        off_[s] = at;
      }
      at += len_[s];
    }
  }

  char* buf_ = nullptr;
  uint32_t cap_ = 0;
  uint32_t used_ = 0;
  uint32_t stream_ = 0;  // bytes of earlier, complete messages at the buffer's start
  uint16_t total_ = 0;   // of the current message; 0 until its first datagram says
  uint16_t got_ = 0;
  uint32_t messages_ = 0;
  bool overflow_ = false;
  uint64_t seen_[2] = {0, 0};
  uint32_t off_[kMaxReplyDatagrams] = {};
  uint32_t len_[kMaxReplyDatagrams] = {};
};
static_assert(kMaxReplyDatagrams <= 128, "seen_ holds 128 bits");

/// The multi-key GETs one engine may have in flight: for each, its keys and its reply's
/// reassembly, with a reply buffer sized for the largest well-formed reply. Everything is
/// allocated by init() (control path); acquire/release are O(1). Owner core only.
class MultiGetPool {
 public:
  static constexpr uint32_t kNone = ~0u;

  /// `slots` requests of `keys` keys each, replies of up to `reply_cap` bytes.
  void init(uint32_t slots, uint32_t keys, size_t reply_cap) {
    keys_per_ = keys;
    reply_cap_ = reply_cap;
    keys_.assign(size_t(slots) * keys, 0);
    // Default-initialised: pages are committed only as far as replies reach.
    buf_.reset(new char[size_t(slots) * reply_cap]);
    scratch_.assign(reply_cap, 0);
    asm_.assign(slots, ReplyAssembly());
    free_.resize(slots);
    for (uint32_t i = 0; i < slots; ++i) free_[i] = slots - 1 - i;
  }

  /// A free slot with an empty reply, or kNone when every slot is in flight.
  uint32_t acquire() {
    if (free_.empty()) return kNone;
    const uint32_t i = free_.back();
    free_.pop_back();  // no reallocation: capacity stays
    asm_[i].reset({buf_.get() + size_t(i) * reply_cap_, reply_cap_});
    return i;
  }
  void release(uint32_t i) { free_.push_back(i); }

  std::span<uint64_t> keys(uint32_t i) { return {keys_.data() + size_t(i) * keys_per_, keys_per_}; }
  ReplyAssembly& assembly(uint32_t i) { return asm_[i]; }
  /// Where a complete reply is laid out in order for checking.
  std::span<char> scratch() { return scratch_; }

  uint32_t slots() const { return uint32_t(asm_.size()); }
  uint32_t in_use() const { return slots() - uint32_t(free_.size()); }
  uint32_t keys_per_request() const { return keys_per_; }

 private:
  uint32_t keys_per_ = 0;
  size_t reply_cap_ = 0;
  std::vector<uint64_t> keys_;
  std::unique_ptr<char[]> buf_;
  std::vector<char> scratch_;
  std::vector<ReplyAssembly> asm_;
  std::vector<uint32_t> free_;
};

}  // namespace fm::loadgen
