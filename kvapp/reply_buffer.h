// A bounded, preallocated reply buffer laid out as ready-to-send UDP datagrams.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "kvapp/tuning.h"
#include "kvapp/udp_frame.h"

namespace fm::kv {

/// Reply text for one request, written straight into datagram slots of `datagram_size` bytes
/// with an 8-byte gap in front of each slot's text for its frame header, so sending needs no
/// copy. Appends that would not fit under the limit fail whole (nothing written). The limit is
/// the smaller of the slots' text minus kReplyReserve and the bound begin() sets for the request
/// (kv.reply_bytes_max); the reserve past it takes only append_reserved() lines, so an error
/// line always fits after a rollback. Every append checks against the limit even when a
/// reserved line already took the size past it: no append ever writes past the slots.
/// Owner core only; never allocates after construction.
class ReplyBuffer {
 public:
  /// Allocates the slots: `capacity_bytes` rounded down to whole datagrams. Control path.
  ReplyBuffer(size_t capacity_bytes, size_t datagram_size);
  ReplyBuffer(const ReplyBuffer&) = delete;
  ReplyBuffer& operator=(const ReplyBuffer&) = delete;

  /// Empties the buffer for a new request whose ordinary appends may fill at most `bound` text
  /// bytes (never more than the slots minus the reserve).
  void begin(size_t bound) {
    // seek(0) without its division: the first slot's text, after its frame header.
    size_ = 0;
    cursor_ = storage_.get() + kUdpFrameHeaderSize;
    slot_left_ = per_slot_;
    limit_ = bound < total_ - kReplyReserve ? bound : total_ - kReplyReserve;
  }
  /// Lets the first thing in the reply pass the request's bound: when nothing has been written
  /// yet, raises the limit to at least `bytes` (never past the slots minus the reserve). For a
  /// get's first value, so one item of kv.item_size_max always fits.
  void fit_first(size_t bytes) {
    if (size_ != 0 || bytes <= limit_) return;
    limit_ = bytes < total_ - kReplyReserve ? bytes : total_ - kReplyReserve;
  }
  /// Reply text bytes written so far.
  size_t size() const { return size_; }
  /// Text bytes ordinary appends may fill (the reserve excluded).
  size_t capacity() const { return limit_; }
  /// Text bytes ordinary appends may still add (0 once a reserved line went past the limit).
  size_t room() const { return size_ < limit_ ? limit_ - size_ : 0; }
  /// Text bytes the slots hold in all, reserve included: no append goes past this.
  size_t total_capacity() const { return total_; }

  bool append(std::string_view s) { return append_bytes(s.data(), s.size(), limit_); }
  bool append(std::span<const uint8_t> s) {
    return append_bytes(reinterpret_cast<const char*>(s.data()), s.size(), limit_);
  }
  /// Takes `n` bytes in one piece for the caller to write, and returns where they go: null
  /// (nothing taken) when they do not fit under the limit or would cross into the next
  /// datagram, and then append() them instead. Lets a get write its VALUE line in place
  /// rather than format it aside and copy it.
  char* claim(size_t n) {
    if (size_ > limit_ || n > limit_ - size_ || n > slot_left_) return nullptr;
    char* p = reinterpret_cast<char*>(cursor_);
    size_ += n;
    cursor_ += n;
    slot_left_ -= n;
    return p;
  }
  /// Appends into the reserve too; for the one error line that ends a truncated reply.
  bool append_reserved(std::string_view s) { return append_bytes(s.data(), s.size(), total_); }

  /// A position to roll back to.
  size_t mark() const { return size_; }
  void rollback(size_t mark) { seek(mark < size_ ? mark : size_); }

  /// Datagrams the current text needs.
  size_t datagram_count() const {
    // Most replies fit one datagram: no division for them.
    if (size_ <= per_slot_) return size_ != 0 ? 1 : 0;
    return datagrams_for(size_, slot_size_);
  }

  /// Writes each datagram's frame header (`request_id`, sequence i, total n) and calls
  /// `fn(std::span<const uint8_t>)` for it in order. Returns n.
  template <typename Fn>
  size_t for_each_datagram(uint16_t request_id, Fn&& fn) {
    const size_t n = datagram_count();
    for (size_t i = 0; i < n; ++i) {
      uint8_t* slot = storage_.get() + i * slot_size_;
      write_frame_header(
          UdpFrameHeader{request_id, static_cast<uint16_t>(i), static_cast<uint16_t>(n), 0},
          std::span<uint8_t>(slot, kUdpFrameHeaderSize));
      const size_t text = i + 1 < n ? per_slot_ : size_ - i * per_slot_;
      fn(std::span<const uint8_t>(slot, kUdpFrameHeaderSize + text));
    }
    return n;
  }

  /// The reply text as one string (tests and debugging; allocates).
  std::string text() const;

 private:
  bool append_bytes(const char* p, size_t n, size_t limit) {
    // size_ may already exceed an ordinary limit (a reserved line went past it): then nothing
    // fits, and `limit - size_` must not be computed.
    if (size_ > limit || n > limit - size_) return false;
    size_ += n;
    // The cursor, not size_, says where: no division per append. Past the bounds check above,
    // every byte lands in a slot, so the cursor only steps into a slot that exists.
    if (n <= slot_left_) [[likely]] {
      // Within the slot: one copy, whose length the compiler knows for a constant line.
      std::memcpy(cursor_, p, n);
      cursor_ += n;
      slot_left_ -= n;
      return true;
    }
    while (n > slot_left_) {
      std::memcpy(cursor_, p, slot_left_);
      p += slot_left_;
      n -= slot_left_;
      cursor_ += slot_left_ + kUdpFrameHeaderSize;  // over the next slot's frame header
      slot_left_ = per_slot_;
    }
    std::memcpy(cursor_, p, n);
    cursor_ += n;
    slot_left_ -= n;
    return true;
  }

  // Sets size_ and puts the cursor after text byte `size`. A full slot keeps the cursor at its
  // end (slot_left_ 0) rather than in the next slot, which may not exist.
  void seek(size_t size) {
    size_ = size;
    size_t slot = size / per_slot_;
    size_t off = size % per_slot_;
    if (off == 0 && slot > 0) {
      --slot;
      off = per_slot_;
    }
    cursor_ = storage_.get() + slot * slot_size_ + kUdpFrameHeaderSize + off;
    slot_left_ = per_slot_ - off;
  }

  size_t slot_size_;  // bytes per datagram, header included
  size_t per_slot_;   // text bytes per datagram
  size_t total_;      // text bytes in all slots
  size_t limit_;      // total_ minus the reserve
  size_t size_ = 0;
  std::unique_ptr<uint8_t[]> storage_;
  uint8_t* cursor_ = nullptr;  // where text byte size_ goes (seek())
  size_t slot_left_ = 0;       // text bytes the cursor's slot still takes
};

}  // namespace fm::kv
