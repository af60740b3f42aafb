// ReplyBuffer: slot allocation and text extraction.
#include "kvapp/reply_buffer.h"

#include "dataplane/check.h"
#include "kvapp/tuning.h"

namespace fm::kv {

ReplyBuffer::ReplyBuffer(size_t capacity_bytes, size_t datagram_size)
    : slot_size_(datagram_size), per_slot_(datagram_size - kUdpFrameHeaderSize) {
  FM_CHECK(datagram_size > kUdpFrameHeaderSize);
  const size_t slots = capacity_bytes / datagram_size;
  FM_CHECK(slots >= 1);
  total_ = slots * per_slot_;
  FM_CHECK(total_ > kReplyReserve);
  limit_ = total_ - kReplyReserve;
  // The reserve must take the two lines that can follow the limit: one command's error after a
  // rollback and the line that cuts the datagram short (Protocol::execute).
  static_assert(kReplyReserve >= 2 * kMaxReservedLine);
  // Default-initialised, not zeroed: every fiber slot owns a buffer this size, and memory a
  // reply never reaches should never be committed.
  storage_.reset(new uint8_t[slots * slot_size_]);
  seek(0);
}

std::string ReplyBuffer::text() const {
  std::string s;
  s.reserve(size_);
  for (size_t done = 0; done < size_;) {
    const size_t slot = done / per_slot_;
    const size_t take = std::min(per_slot_, size_ - done);
    s.append(
        reinterpret_cast<const char*>(storage_.get() + slot * slot_size_ + kUdpFrameHeaderSize),
        take);
    done += take;
  }
  return s;
}

}  // namespace fm::kv
