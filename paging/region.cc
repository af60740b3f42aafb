// The page table and its state machine, CLOCK eviction, and the fault path.
//
// Each page has one 64-bit entry word, changed only by compare-and-swap:
//   bits 0-2  state: kUnbacked (never written back: the remote copy is zeros), kRemote,
//             kFetching (one core is bringing it in), kResident, kEvicting (being written back)
//   bit 3     dirty (resident only)
//   bit 4     backed (the memory node holds a copy written by us)
//   bits 8-31 pin count (resident only)
//   bits 32-63 frame index (resident / evicting only)
// Invariants: a page is fetched by exactly the core whose CAS moved it to kFetching; others wait.
// Only a resident page with zero pins can start eviction (CAS to kEvicting), so a pinned page
// never moves and nobody writes a page while it is written back. Frames are owned through
// frame_page_ (0 free, kClaimed in transition or never used yet, else page + 1). A never-used
// frame starts as kClaimed and only next_unused_ hands it out, so the CLOCK hand (which takes
// only frames reading 0) cannot take it between the hand-out and its first use.
#include "paging/region.h"

#include <sys/mman.h>

#include <chrono>
#include <cstring>

#include "dataplane/check.h"
#include "dataplane/log.h"

namespace fm::paging {
namespace {
constexpr const char* kTag = "paging";

constexpr uint64_t kStateMask = 0x7;
constexpr uint64_t kUnbacked = 0, kRemote = 1, kFetching = 2, kResident = 3, kEvicting = 4;
constexpr uint64_t kDirty = 1ull << 3;
constexpr uint64_t kBacked = 1ull << 4;
constexpr uint64_t kPinOne = 1ull << 8;
constexpr uint64_t kPinMask = 0xFFFFFFull << 8;
constexpr uint64_t kClaimed = ~0ull;

constexpr uint64_t state_of(uint64_t w) { return w & kStateMask; }
constexpr uint64_t pins_of(uint64_t w) { return (w & kPinMask) >> 8; }
constexpr uint32_t frame_of(uint64_t w) { return uint32_t(w >> 32); }
constexpr uint64_t resident_word(uint32_t frame, uint64_t pins, bool dirty, bool backed) {
  return kResident | (dirty ? kDirty : 0) | (backed ? kBacked : 0) | (pins << 8) |
         (uint64_t(frame) << 32);
}

void cpu_relax() { __builtin_ia32_pause(); }

// The core running the caller now. Read afresh after every wait: in async mode a fiber that
// parked may resume on another core, and each queue pair and counter has one owner.
PagingCore& cur() { return *current_core(); }

void sync_wait_io(void* ctx, IoWait& io) {
  auto* core = static_cast<PagingCore*>(ctx);
  while (!io.done.load(std::memory_order_acquire)) core->poll();
}
void sync_wait_other(void* ctx) {
  static_cast<PagingCore*>(ctx)->poll();
  cpu_relax();
}
}  // namespace

PagingCore*& current_core() {
  static thread_local PagingCore* core = nullptr;
  return core;
}

WaitHooks sync_wait_hooks(PagingCore& core) {
  return WaitHooks{&sync_wait_io, &sync_wait_other, nullptr, &core};
}

struct Region::Bounce {
  std::atomic<bool> in_use{false};
  uint64_t offset = 0;
  uint32_t len = 0;
  PinAccess access = PinAccess::kRead;
  std::unique_ptr<std::byte[]> buf;
};

// ---------------------------------------------------------------------------------------------
// PagingCore

PagingCore::PagingCore(Region& region, CoreId id, std::unique_ptr<QueuePair> qp)
    : region_(region), id_(id), qp_(std::move(qp)) {
  hooks_ = sync_wait_hooks(*this);
}

uint32_t PagingCore::poll() {
  std::array<Completion, 16> c;
  const uint32_t n = qp_->poll(c);
  if (n == 0) return 0;
  const uint64_t now = region_.clock().now();
  for (uint32_t i = 0; i < n; ++i) {
    auto* io = reinterpret_cast<IoWait*>(c[i].wr_id);
    io->status = c[i].status;
    const double ns = region_.clock().to_ns(now - io->posted_at);
    size_t b = 0;
    while (b + 1 < PagingCounters::kLatencyBuckets && ns >= double(1ull << (b + 7))) ++b;
    counters_.fetch_latency[b].add();
    // Whoever publishes `done` lets the waiter return and free `io`: nothing touches it after.
    if (io->waiter != nullptr && hooks_.on_complete != nullptr) {
      hooks_.on_complete(hooks_.ctx, *io);
    } else {
      io->done.store(true, std::memory_order_release);
    }
  }
  return n;
}

PostResult PagingCore::post(IoOp op, uint64_t remote, void* local, uint32_t len, IoWait& io) {
  io.posted_at = region_.clock().now();
  for (;;) {
    const PostResult r = qp_->post(op, remote, local, len, reinterpret_cast<uint64_t>(&io));
    if (r != PostResult::kFull) return r;
    counters_.full_retries.add();
    poll();
  }
}

// ---------------------------------------------------------------------------------------------
// Region

Region::Region(uint64_t bytes, uint64_t frames, Transport& transport, const Clock& clock,
               uint32_t max_pin_bytes, uint64_t remote_base)
    : bytes_(bytes),
      pages_((bytes + kPageSize - 1) / kPageSize),
      frames_(frames),
      transport_(transport),
      clock_(clock),
      max_pin_bytes_(max_pin_bytes),
      remote_base_(remote_base) {}

Result<std::unique_ptr<Region>> Region::create(uint64_t bytes, uint64_t frames,
                                               Transport& transport, uint16_t cores,
                                               const Clock& clock, uint32_t max_pin_bytes,
                                               uint64_t remote_base) {
  if (bytes == 0) return error(Errc::kInvalidArgument, "the far region is empty");
  const uint64_t pages = (bytes + kPageSize - 1) / kPageSize;
  if (remote_base + pages * kPageSize > transport.remote_size()) {
    return error(Errc::kInvalidArgument,
                 "the far region (" + std::to_string(bytes >> 20) +
                     " MiB) does not fit the memory node's pool (" +
                     std::to_string(transport.remote_size() >> 20) +
                     " MiB): raise the memnode's pool_mb or lower kv.memory_mb");
  }
  const uint64_t pin_pages = (uint64_t(max_pin_bytes) + kPageSize - 1) / kPageSize + 1;
  const uint64_t min_frames = 2 * pin_pages * cores + 16;
  if (frames < min_frames) {
    return error(Errc::kInvalidArgument,
                 "paging: " + std::to_string(frames) + " local frames are too few: a pin of the "
                 "largest item holds " + std::to_string(pin_pages) + " pages, so at least " +
                 std::to_string(min_frames) + " frames (" + std::to_string(min_frames * 4 / 1024 + 1) +
                 " MiB) are needed for " + std::to_string(cores) +
                 " core(s); raise paging.local_fraction / paging.local_mb or lower kv.item_size_max");
  }
  if (frames > pages) frames = pages;  // more frames than pages would never be used
  std::unique_ptr<Region> r(new Region(bytes, frames, transport, clock, max_pin_bytes, remote_base));
  const uint64_t frame_bytes = frames * kPageSize;
  void* p = ::mmap(nullptr, frame_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) {
    return error(Errc::kResourceExhausted, "cannot map " + std::to_string(frame_bytes >> 20) +
                                               " MiB of local frames: " + std::strerror(errno));
  }
  r->frames_base_ = static_cast<std::byte*>(p);
  FM_RETURN_IF_ERROR(transport.register_local(p, frame_bytes));
  r->table_.reset(new std::atomic<uint64_t>[pages]);
  for (uint64_t i = 0; i < pages; ++i) r->table_[i].store(kUnbacked, std::memory_order_relaxed);
  r->frame_page_.reset(new std::atomic<uint64_t>[frames]);
  r->frame_ref_.reset(new std::atomic<uint8_t>[frames]);
  for (uint64_t i = 0; i < frames; ++i) {
    r->frame_page_[i].store(kClaimed, std::memory_order_relaxed);  // until next_unused_ reaches it
    r->frame_ref_[i].store(0, std::memory_order_relaxed);
  }
  for (uint16_t c = 0; c < cores; ++c) {
    auto qp = transport.create_queue_pair(CoreId{c});
    if (!qp) return qp.status();
    r->cores_.push_back(std::make_unique<PagingCore>(*r, CoreId{c}, std::move(qp.value())));
  }
  // Bounce buffers for pins longer than a page: a few per core (append holds two at once).
  for (size_t i = 0; i < size_t(cores) * 4; ++i) {
    auto b = std::make_unique<Bounce>();
    b->buf.reset(new std::byte[max_pin_bytes]);
    r->bounces_.push_back(std::move(b));
  }
  FM_LOG_INFO(kTag, "far region: {} pages ({} MiB), {} local frames ({} MiB, {:.0f}%), transport {}",
              pages, bytes >> 20, frames, frame_bytes >> 20, 100.0 * double(frames) / double(pages),
              transport.name());
  return r;
}

Region::~Region() {
  if (frames_base_) ::munmap(frames_base_, frames_ * kPageSize);
}

bool Region::resident(uint64_t offset) const {
  return state_of(table_[offset / kPageSize].load(std::memory_order_relaxed)) == kResident;
}

std::byte* Region::pin(PagingCore& core, uint64_t offset, uint32_t len, PinAccess access) {
  current_core() = &core;
  if (len == 0) len = 1;
  FM_CHECK(offset + len <= pages_ * kPageSize);
  const uint64_t first = offset / kPageSize, last = (offset + len - 1) / kPageSize;
  uint64_t deadline = 0;
  PinFail why = PinFail::kNone;
  if (first == last) [[likely]] {
    const bool whole = offset % kPageSize == 0 && len == kPageSize;
    for (;;) {
      std::byte* f = pin_page(first, access, whole, &why);
      if (f != nullptr) return f + offset % kPageSize;
      if (why == PinFail::kUnavailable) return nullptr;
      if (deadline == 0) cur().counters().frame_waits.add();
      if (!wait_for_release(&deadline)) break;
    }
    cur().counters().errors.add();
    FM_LOG_FIRST_N(LogLevel::kWarn, 5, kTag, "no frame for page {} within {} ms: every frame "
                   "stayed pinned", first, wait_limit_ms_);
    return nullptr;
  }
  FM_CHECK(len <= max_pin_bytes_);
  Bounce* b = nullptr;
  while ((b = claim_bounce(offset, len, access)) == nullptr) {
    if (deadline == 0) cur().counters().bounce_waits.add();
    if (!wait_for_release(&deadline)) {
      cur().counters().errors.add();
      FM_LOG_FIRST_N(LogLevel::kWarn, 5, kTag,
                     "no free bounce buffer for a {}-byte pin within {} ms", len, wait_limit_ms_);
      return nullptr;
    }
  }
  deadline = 0;
  for (;;) {
    why = pin_span(first, last, offset, len, access);
    if (why == PinFail::kNone) break;
    if (why == PinFail::kNoFrame) {
      // pin_span gave back the pages it held: waiting holds nothing another pin could need.
      if (deadline == 0) cur().counters().frame_waits.add();
      if (wait_for_release(&deadline)) continue;
      cur().counters().errors.add();
      FM_LOG_FIRST_N(LogLevel::kWarn, 5, kTag, "no frames for a {}-byte pin within {} ms", len,
                     wait_limit_ms_);
    }
    b->in_use.store(false, std::memory_order_release);
    return nullptr;
  }
  if (access != PinAccess::kOverwrite) {
    uint64_t pos = offset;
    while (pos < offset + len) {
      const uint64_t page = pos / kPageSize;
      const uint64_t end = std::min<uint64_t>((page + 1) * kPageSize, offset + len);
      const std::byte* src = frame_addr(frame_of(table_[page].load(std::memory_order_acquire)));
      std::memcpy(b->buf.get() + (pos - offset), src + pos % kPageSize, end - pos);
      pos = end;
    }
  }
  return b->buf.get();
}

bool Region::wait_for_release(uint64_t* deadline) {
  const auto now = uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::steady_clock::now().time_since_epoch())
                                .count());
  if (*deadline == 0) {
    *deadline = now + uint64_t(wait_limit_ms_) * 1000000;
  } else if (now >= *deadline) {
    return false;
  }
  cur().wait_other();
  return true;
}

std::byte* Region::try_pin(PagingCore& core, uint64_t offset, uint32_t len, PinAccess access) {
  if (len == 0) len = 1;
  const uint64_t page = offset / kPageSize;
  if (page != (offset + len - 1) / kPageSize) return nullptr;
  std::atomic<uint64_t>& e = table_[page];
  uint64_t w = e.load(std::memory_order_acquire);
  while (state_of(w) == kResident && pins_of(w) < (kPinMask >> 8)) {
    uint64_t nw = w + kPinOne;
    if (access != PinAccess::kRead) nw |= kDirty;
    if (e.compare_exchange_weak(w, nw, std::memory_order_acq_rel)) {
      frame_ref_[frame_of(w)].store(1, std::memory_order_relaxed);
      core.counters().pins.add();
      return frame_addr(frame_of(w)) + offset % kPageSize;
    }
  }
  return nullptr;
}

void Region::unpin(PagingCore& core, uint64_t offset, uint32_t len, std::byte* data) {
  current_core() = &core;
  if (len == 0) len = 1;
  const uint64_t first = offset / kPageSize, last = (offset + len - 1) / kPageSize;
  if (first == last) [[likely]] {
    unpin_page(first);
    return;
  }
  Bounce* b = find_bounce(data);
  FM_CHECK_MSG(b != nullptr && b->offset == offset && b->len == len, "unpin without its pin");
  if (b->access != PinAccess::kRead) {
    // Every page is still pinned (and marked dirty by pin_span): copy back cannot fail.
    uint64_t pos = offset;
    while (pos < offset + len) {
      const uint64_t page = pos / kPageSize;
      const uint64_t end = std::min<uint64_t>((page + 1) * kPageSize, offset + len);
      std::byte* dst = frame_addr(frame_of(table_[page].load(std::memory_order_acquire)));
      std::memcpy(dst + pos % kPageSize, b->buf.get() + (pos - offset), end - pos);
      pos = end;
    }
  }
  unpin_span(first, last);
  b->in_use.store(false, std::memory_order_release);
}

Region::PinFail Region::pin_span(uint64_t first, uint64_t last, uint64_t offset, uint32_t len,
                                 PinAccess access) {
  for (uint64_t p = first; p <= last; ++p) {
    const uint64_t lo = std::max<uint64_t>(p * kPageSize, offset);
    const uint64_t hi = std::min<uint64_t>((p + 1) * kPageSize, offset + len);
    const bool whole = lo == p * kPageSize && hi == (p + 1) * kPageSize;
    PinFail why = PinFail::kNone;
    if (pin_page(p, access, whole, &why) == nullptr) {
      if (p > first) unpin_span(first, p - 1);
      return why;
    }
  }
  return PinFail::kNone;
}

void Region::unpin_span(uint64_t first, uint64_t last) {
  for (uint64_t p = first; p <= last; ++p) unpin_page(p);
}

Region::Bounce* Region::claim_bounce(uint64_t offset, uint32_t len, PinAccess access) {
  for (auto& b : bounces_) {
    bool expected = false;
    if (!b->in_use.load(std::memory_order_relaxed) &&
        b->in_use.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      b->offset = offset;
      b->len = len;
      b->access = access;
      return b.get();
    }
  }
  return nullptr;
}

Region::Bounce* Region::find_bounce(const std::byte* data) {
  for (auto& b : bounces_) {
    if (b->buf.get() == data && b->in_use.load(std::memory_order_acquire)) return b.get();
  }
  return nullptr;
}

std::byte* Region::pin_page(uint64_t page, PinAccess access, bool whole_page, PinFail* why) {
  std::atomic<uint64_t>& e = table_[page];
  bool waited = false;
  for (;;) {
    uint64_t w = e.load(std::memory_order_acquire);
    switch (state_of(w)) {
      case kResident: {
        if (pins_of(w) == (kPinMask >> 8)) {
          cur().wait_other();
          continue;
        }
        uint64_t nw = w + kPinOne;
        if (access != PinAccess::kRead) nw |= kDirty;
        if (e.compare_exchange_weak(w, nw, std::memory_order_acq_rel)) {
          frame_ref_[frame_of(w)].store(1, std::memory_order_relaxed);
          cur().counters().pins.add();
          return frame_addr(frame_of(w));
        }
        continue;
      }
      case kUnbacked:
      case kRemote: {
        const uint64_t claimed = kFetching | (w & kBacked);
        if (!e.compare_exchange_strong(w, claimed, std::memory_order_acq_rel)) continue;
        uint64_t nw = 0;
        *why = fault(page, w, access, whole_page, &nw);
        if (*why != PinFail::kNone) return nullptr;
        return frame_addr(frame_of(nw));
      }
      default:  // kFetching or kEvicting by another core: wait for it to settle
        if (!waited) {
          cur().counters().shared_waits.add();
          waited = true;
        }
        cur().wait_other();
        continue;
    }
  }
}

void Region::unpin_page(uint64_t page) {
  const uint64_t before = table_[page].fetch_sub(kPinOne, std::memory_order_acq_rel);
  FM_DCHECK(state_of(before) == kResident && pins_of(before) > 0);
  (void)before;
}

Region::PinFail Region::fault(uint64_t page, uint64_t old, PinAccess access, bool whole_page,
                              uint64_t* word_out) {
  std::atomic<uint64_t>& e = table_[page];
  const bool backed = (old & kBacked) != 0;
  uint32_t f = 0;
  if (const PinFail why = take_frame(&f); why != PinFail::kNone) {
    e.store(old, std::memory_order_release);  // back to remote: kNoFrame waits and retries
    if (why == PinFail::kUnavailable) cur().counters().errors.add();
    return why;
  }
  std::byte* frame = frame_addr(f);
  bool dirty = access != PinAccess::kRead;
  if (access == PinAccess::kOverwrite && whole_page) {
    cur().counters().zero_fills.add();  // every byte will be written: nothing to fetch
  } else if (!backed) {
    std::memset(frame, 0, kPageSize);  // never written back: the remote copy is zeros
    cur().counters().zero_fills.add();
  } else {
    IoWait io;
    const PostResult r =
        cur().post(IoOp::kRead, remote_base_ + page * kPageSize, frame, kPageSize, io);
    if (r == PostResult::kOk) cur().wait(io);
    if (r != PostResult::kOk || io.status != IoStatus::kOk) {
      frame_page_[f].store(0, std::memory_order_release);  // give the frame back
      e.store(old, std::memory_order_release);
      cur().counters().errors.add();
      FM_LOG_FIRST_N(LogLevel::kError, 5, kTag, "fetch of page {} failed: {}", page,
                     r != PostResult::kOk ? "memory node unavailable" : "completion error");
      return PinFail::kUnavailable;
    }
    cur().counters().faults.add();
    cur().counters().bytes_read.add(kPageSize);
  }
  frame_page_[f].store(page + 1, std::memory_order_release);
  frame_ref_[f].store(1, std::memory_order_relaxed);
  *word_out = resident_word(f, 1, dirty, backed);
  e.store(*word_out, std::memory_order_release);
  return PinFail::kNone;
}

Region::PinFail Region::take_frame(uint32_t* frame_out) {
  if (next_unused_.load(std::memory_order_relaxed) < frames_) {
    // Already kClaimed since create(): this fetch_add alone makes it ours.
    const uint64_t u = next_unused_.fetch_add(1, std::memory_order_relaxed);
    if (u < frames_) {
      if (fresh_frame_hook_ != nullptr) fresh_frame_hook_(fresh_frame_arg_, uint32_t(u));
      *frame_out = uint32_t(u);
      return PinFail::kNone;
    }
  }
  // CLOCK: clear reference bits on the first pass, take an unpinned unreferenced frame. Two
  // passes at most: the caller then waits for pins to go and asks again.
  bool write_failed = false;
  for (uint64_t i = 0; i < 2 * frames_; ++i) {
    const uint64_t h = hand_.fetch_add(1, std::memory_order_relaxed) % frames_;
    uint64_t pg = frame_page_[h].load(std::memory_order_acquire);
    if (pg == 0) {
      if (frame_page_[h].compare_exchange_strong(pg, kClaimed, std::memory_order_acq_rel)) {
        *frame_out = uint32_t(h);
        return PinFail::kNone;
      }
      continue;
    }
    if (pg == kClaimed) continue;
    if (frame_ref_[h].exchange(0, std::memory_order_relaxed) != 0) continue;
    if (evict(uint32_t(h), pg - 1, &write_failed)) {
      *frame_out = uint32_t(h);
      return PinFail::kNone;
    }
    if (i % 64 == 63) cur().poll();  // keep our own completions flowing while we search
  }
  if (write_failed) {
    FM_LOG_FIRST_N(LogLevel::kError, 5, kTag, "no frame: write-backs to the memory node fail");
    return PinFail::kUnavailable;
  }
  return PinFail::kNoFrame;
}

bool Region::evict(uint32_t f, uint64_t page, bool* write_failed) {
  std::atomic<uint64_t>& e = table_[page];
  uint64_t w = e.load(std::memory_order_acquire);
  if (state_of(w) != kResident || frame_of(w) != f || pins_of(w) != 0) return false;
  if (!e.compare_exchange_strong(w, (w & ~kStateMask) | kEvicting, std::memory_order_acq_rel)) {
    return false;
  }
  frame_page_[f].store(kClaimed, std::memory_order_relaxed);
  bool backed = (w & kBacked) != 0;
  if (w & kDirty) {
    IoWait io;
    const PostResult r =
        cur().post(IoOp::kWrite, remote_base_ + page * kPageSize, frame_addr(f), kPageSize, io);
    if (r == PostResult::kOk) cur().wait(io);
    if (r != PostResult::kOk || io.status != IoStatus::kOk) {
      // The memory node cannot take it: keep the page here rather than lose the data.
      frame_page_[f].store(page + 1, std::memory_order_release);
      e.store(w, std::memory_order_release);
      *write_failed = true;
      return false;
    }
    backed = true;
    cur().counters().writebacks.add();
    cur().counters().bytes_written.add(kPageSize);
  }
  e.store(backed ? (kRemote | kBacked) : kUnbacked, std::memory_order_release);
  cur().counters().evictions.add();
  return true;
}

PagingTotals Region::totals() const {
  PagingTotals t;
  for (const auto& c : cores_) {
    const PagingCounters& k = c->counters();
    t.pins += k.pins.read();
    t.faults += k.faults.read();
    t.zero_fills += k.zero_fills.read();
    t.shared_waits += k.shared_waits.read();
    t.evictions += k.evictions.read();
    t.writebacks += k.writebacks.read();
    t.errors += k.errors.read();
    t.frame_waits += k.frame_waits.read();
    t.bounce_waits += k.bounce_waits.read();
    t.bytes_read += k.bytes_read.read();
    t.bytes_written += k.bytes_written.read();
    t.full_retries += k.full_retries.read();
    for (size_t i = 0; i < t.fetch_latency.size(); ++i) t.fetch_latency[i] += k.fetch_latency[i].read();
  }
  t.frames = frames_;
  t.pages = pages_;
  const uint64_t used = std::min<uint64_t>(next_unused_.load(std::memory_order_relaxed), frames_);
  for (uint64_t i = 0; i < used; ++i) {
    const uint64_t pg = frame_page_[i].load(std::memory_order_relaxed);
    t.resident += (pg != 0 && pg != kClaimed) ? 1 : 0;
  }
  return t;
}

std::string Region::check_quiescent() const {
  const uint64_t used = std::min<uint64_t>(next_unused_.load(std::memory_order_acquire), frames_);
  std::vector<uint64_t> holder(frames_, ~0ull);  // frame -> the page the table says it holds
  for (uint64_t p = 0; p < pages_; ++p) {
    const uint64_t w = table_[p].load(std::memory_order_acquire);
    const uint64_t st = state_of(w);
    if (st == kFetching || st == kEvicting) {
      return fmt::format("page {} left {}", p, st == kFetching ? "fetching" : "evicting");
    }
    if (st != kResident) {
      if (st != kUnbacked && st != kRemote) return fmt::format("page {}: bad state {}", p, st);
      continue;
    }
    if (pins_of(w) != 0) return fmt::format("page {} still pinned {} time(s)", p, pins_of(w));
    const uint32_t f = frame_of(w);
    if (f >= used) return fmt::format("page {} resident in frame {}, never handed out", p, f);
    if (holder[f] != ~0ull) return fmt::format("pages {} and {} share frame {}", holder[f], p, f);
    holder[f] = p;
  }
  for (uint64_t f = 0; f < frames_; ++f) {
    const uint64_t pg = frame_page_[f].load(std::memory_order_acquire);
    if (f >= used) {
      if (pg != kClaimed) return fmt::format("never-used frame {} owned ({})", f, pg);
      continue;
    }
    if (pg == kClaimed) return fmt::format("frame {} left claimed", f);
    if (pg == 0) {
      if (holder[f] != ~0ull) return fmt::format("free frame {} holds page {}", f, holder[f]);
      continue;
    }
    if (holder[f] != pg - 1) {
      return fmt::format("frame {} owned by page {} but the table says {}", f, pg - 1,
                         holder[f] == ~0ull ? std::string("none") : std::to_string(holder[f]));
    }
  }
  for (const auto& b : bounces_) {
    if (b->in_use.load(std::memory_order_acquire)) return "a bounce buffer is still in use";
  }
  return {};
}

}  // namespace fm::paging
