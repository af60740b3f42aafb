// The page table and its state machine, CLOCK eviction, and the fault path.
//
// Each page has one 64-bit entry word, changed only by compare-and-swap:
//   bits 0-2  state: kUnbacked (never written back: the remote copy is zeros), kRemote,
//             kFetching (one core is bringing it in), kResident, kEvicting (being written back)
//   bit 3     dirty (resident only)
//   bit 4     backed (the memory node holds a copy written by us)
//   bit 5     prefetched (resident only): fetched ahead of its request, not pinned since
//   bits 8-31 pin count (resident only)
//   bits 32-63 frame index (resident / evicting only)
// Invariants: a page is fetched by exactly the core whose CAS moved it to kFetching; others wait.
// Only a resident page with zero pins can start eviction (CAS to kEvicting), so a pinned page
// never moves and nobody writes a page while it is written back. Frames are owned through
// frame_page_ (0 free, kClaimed in transition or never used yet, else page + 1). A never-used
// frame starts as kClaimed and only next_unused_ hands it out, so the CLOCK hand (which takes
// only frames reading 0) cannot take it between the hand-out and its first use. A core's reserve
// holds free frames that read kClaimed too: only that core hands them out.
//
// Reclaim (paging.reserve_frames): each core keeps a reserve of free frames that poll() refills
// between requests whenever it is half empty; the refill's CLOCK sweep takes clean pages at once
// and posts dirty ones' write-backs without waiting (their frames join the reserve when the WRITE
// completes). A fault takes a reserve frame and sweeps CLOCK itself only when the reserve is
// empty (counted: direct_reclaims, fault_writebacks).
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
constexpr uint64_t kPrefetched = 1ull << 5;
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
    : region_(region),
      id_(id),
      qp_(std::move(qp)),
      ns_per_tick_(1e9 / double(region.clock().hz)) {
  hooks_ = sync_wait_hooks(*this);
  for (uint32_t i = 0; i < kBackgroundSlots; ++i) {
    slots_[i].io.slot = i;
    free_slots_[i] = kBackgroundSlots - 1 - i;
  }
  free_slot_count_ = kBackgroundSlots;
}

uint32_t PagingCore::poll() {
  std::span<Completion> c(completions_);
  const uint32_t n = qp_->poll(c);
  if (n != 0) {
    uint64_t now = 0;  // read once, and only when a timed transfer completed (| 1: never 0)
    for (uint32_t i = 0; i < n; ++i) {
      auto* io = reinterpret_cast<IoWait*>(c[i].wr_id);
      io->status = c[i].status;
      if (io->timed) {
        if (now == 0) now = region_.clock().now() | 1;
        const auto ns = uint64_t(double(now - io->posted_at) * ns_per_tick_);
        const size_t b = std::min(LatencyBuckets::index(ns), kLatencyBucketCount - 1);
        (io->op == IoOp::kRead ? counters_.read_latency : counters_.write_latency)[b].add();
      }
      if (io->on_done != nullptr) {
        io->on_done(*this, *io);
      } else if (io->waiter != nullptr && hooks_.on_complete != nullptr) {
        // Whoever publishes `done` lets the waiter return and free `io`: nothing touches it after.
        hooks_.on_complete(hooks_.ctx, *io);
      } else {
        io->done.store(true, std::memory_order_release);
      }
    }
  }
  if (reserve_target_ != 0 && 2 * (reserve_count() + writebacks_in_flight_) <= reserve_target_ &&
      !refilling_) {
    region_.refill(*this);
  }
  return n;
}

PostResult PagingCore::try_post(IoOp op, uint64_t remote, void* local, uint32_t len, IoWait& io) {
  io.op = op;
  // A clock read costs ~25 cycles here (RDTSC, ~10 ns on these CPUs): the histograms time one
  // transfer in kLatencySampleEvery, so a fault pays a fraction of the two reads.
  io.timed = --latency_countdown_ == 0;
  if (io.timed) {
    latency_countdown_ = kLatencySampleEvery;
    io.posted_at = region_.clock().now();
  }
  return qp_->post(op, remote, local, len, reinterpret_cast<uint64_t>(&io));
}

PostResult PagingCore::post(IoOp op, uint64_t remote, void* local, uint32_t len, IoWait& io) {
  for (;;) {
    const PostResult r = try_post(op, remote, local, len, io);
    if (r != PostResult::kFull) return r;
    counters_.full_retries.add();
    poll();
  }
}

PagingCore::Background* PagingCore::take_slot() {
  if (free_slot_count_ == 0) return nullptr;
  Background* b = &slots_[free_slots_[--free_slot_count_]];
  b->io.status = IoStatus::kOk;
  return b;
}

void PagingCore::free_slot(Background* b) { free_slots_[free_slot_count_++] = b->io.slot; }

void PagingCore::push_reserve(uint32_t frame) {
  const uint32_t n = reserve_count();
  reserve_[n] = frame;
  reserve_count_.store(n + 1, std::memory_order_relaxed);
}

uint32_t PagingCore::pop_reserve() {
  const uint32_t n = reserve_count() - 1;
  reserve_count_.store(n, std::memory_order_relaxed);
  return reserve_[n];
}

void PagingCore::writeback_done(PagingCore& core, IoWait& io) {
  Background& b = core.slots_[io.slot];
  Region& r = core.region_;
  --core.writebacks_in_flight_;
  if (io.status == IoStatus::kOk) {
    r.table_[b.page].store(kRemote | kBacked, std::memory_order_release);
    core.counters_.writebacks.add();
    core.counters_.bytes_written.add(kPageSize);
    core.counters_.evictions.add();
    r.install_frame(core, b.frame);
  } else {
    // The memory node cannot take it: the page stays here rather than lose its data.
    r.frame_page_[b.frame].store(b.page + 1, std::memory_order_release);
    r.table_[b.page].store(b.old_word, std::memory_order_release);
  }
  core.free_slot(&b);
}

void PagingCore::prefetch_done(PagingCore& core, IoWait& io) {
  Background& b = core.slots_[io.slot];
  Region& r = core.region_;
  --core.prefetches_in_flight_;
  if (io.status == IoStatus::kOk) {
    r.frame_page_[b.frame].store(b.page + 1, std::memory_order_release);
    r.frame_ref_[b.frame].store(1, std::memory_order_relaxed);
    r.table_[b.page].store(resident_word(b.frame, 0, false, true) | kPrefetched,
                           std::memory_order_release);
    core.counters_.bytes_read.add(kPageSize);
  } else {
    r.table_[b.page].store(b.old_word, std::memory_order_release);  // a pin fetches it again
    r.install_frame(core, b.frame);
  }
  core.free_slot(&b);
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

bool Region::fetching(uint64_t offset, uint32_t len) const {
  const uint64_t last = (offset + std::max<uint32_t>(len, 1) - 1) / kPageSize;
  for (uint64_t p = offset / kPageSize; p <= last; ++p) {
    if (state_of(table_[p].load(std::memory_order_acquire)) == kFetching) return true;
  }
  return false;
}

bool Region::keep_lost_page(uint64_t offset) {
  if (offset / kPageSize >= pages_) return false;
  std::atomic<uint64_t>& e = table_[offset / kPageSize];
  uint64_t w = e.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t st = state_of(w);
    // A dirty page being evicted is written back, or stays resident (dirty) if that fails.
    if (st == kEvicting) return (w & kDirty) != 0;
    if (st != kResident) return false;
    if (w & kDirty) return true;
    // Pins and unpins change the word with atomic read-modify-writes too: none is lost.
    if (e.compare_exchange_weak(w, w | kDirty, std::memory_order_acq_rel)) return true;
  }
}

uint32_t Region::set_reserve(uint32_t frames) {
  const uint64_t most = frames_ / (8 * cores_.size());
  const auto per_core = uint32_t(std::min<uint64_t>(frames, most));
  for (auto& c : cores_) {
    while (c->reserve_count() != 0) frame_page_[c->pop_reserve()].store(0, std::memory_order_release);
    c->reserve_.assign(per_core, 0);
    c->reserve_target_ = per_core;
  }
  return per_core;
}

uint32_t Region::prefetch(PagingCore& core, uint64_t offset, uint32_t len) {
  if (core.reserve_target_ == 0) return 0;  // prefetch only takes reserve frames: never sweeps
  const uint64_t last = (offset + std::max<uint32_t>(len, 1) - 1) / kPageSize;
  uint32_t posted = 0;
  for (uint64_t p = offset / kPageSize; p <= last; ++p) {
    std::atomic<uint64_t>& e = table_[p];
    uint64_t w = e.load(std::memory_order_acquire);
    // Resident, in flight, or never written back (a pin zero-fills it): nothing to fetch.
    if (state_of(w) != kRemote) continue;
    if (core.reserve_count() == 0 || core.free_slot_count_ == 0) {
      core.counters_.prefetch_no_frame.add();
      break;
    }
    if (!e.compare_exchange_strong(w, kFetching | kBacked, std::memory_order_acq_rel)) continue;
    PagingCore::Background* b = core.take_slot();
    b->page = p;
    b->old_word = w;
    b->frame = core.pop_reserve();
    b->io.on_done = &PagingCore::prefetch_done;
    if (core.try_post(IoOp::kRead, remote_base_ + p * kPageSize, frame_addr(b->frame), kPageSize,
                      b->io) != PostResult::kOk) {
      e.store(w, std::memory_order_release);
      install_frame(core, b->frame);
      core.free_slot(b);
      core.counters_.prefetch_no_frame.add();
      break;
    }
    ++core.prefetches_in_flight_;
    core.counters_.prefetches.add();
    ++posted;
  }
  return posted;
}

void Region::install_frame(PagingCore& core, uint32_t frame) {
  if (core.reserve_count() < core.reserve_target_) {
    core.push_reserve(frame);  // stays kClaimed: this core hands it out
  } else {
    frame_page_[frame].store(0, std::memory_order_release);
  }
}

void Region::refill(PagingCore& core) {
  core.refilling_ = true;
  core.counters_.reclaim_sweeps.add();
  uint32_t want = core.reserve_target_ - core.reserve_count() - core.writebacks_in_flight_;
  while (want > 0 && next_unused_.load(std::memory_order_relaxed) < frames_) {
    const uint64_t u = next_unused_.fetch_add(1, std::memory_order_relaxed);
    if (u >= frames_) break;
    if (fresh_frame_hook_ != nullptr) fresh_frame_hook_(fresh_frame_arg_, uint32_t(u));
    core.push_reserve(uint32_t(u));
    --want;
  }
  // A bounded sweep: a few frames per one wanted (CLOCK finds one in ~2 when a fifth is hot),
  // so one refill never holds the core for long; the next poll goes on where this one stopped.
  // The sweep claims its stretch of the hand at once and gives back what it did not look at
  // (unless another core moved the hand meanwhile): two atomic operations a sweep, not one per
  // frame looked at.
  const uint64_t budget = 4 * uint64_t(want) + 16;
  const uint64_t start = hand_.fetch_add(budget, std::memory_order_relaxed);
  uint64_t i = 0;
  for (; i < budget && want > 0; ++i) {
    const uint64_t h = (start + i) % frames_;
    uint64_t pg = frame_page_[h].load(std::memory_order_acquire);
    if (pg == 0) {
      if (frame_page_[h].compare_exchange_strong(pg, kClaimed, std::memory_order_acq_rel)) {
        core.push_reserve(uint32_t(h));
        --want;
      }
      continue;
    }
    if (pg == kClaimed) continue;
    if (second_chance(h)) continue;
    bool posted = false, stop = false;
    if (evict_for(core, uint32_t(h), pg - 1, true, &posted, &stop)) {
      if (!posted) core.push_reserve(uint32_t(h));  // clean: free now
      --want;
    }
    if (stop) {  // every slot busy, the queue pair full, or the memory node gone
      ++i;
      break;
    }
  }
  if (i < budget) {
    uint64_t end = start + budget;
    hand_.compare_exchange_strong(end, start + i, std::memory_order_relaxed);
  }
  core.refilling_ = false;
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
    uint64_t nw = (w + kPinOne) & ~kPrefetched;
    if (access != PinAccess::kRead) nw |= kDirty;
    if (e.compare_exchange_weak(w, nw, std::memory_order_acq_rel)) {
      frame_ref_[frame_of(w)].store(1, std::memory_order_relaxed);
      core.counters().pins.add();
      if (w & kPrefetched) core.counters().prefetch_used.add();
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
        uint64_t nw = (w + kPinOne) & ~kPrefetched;
        if (access != PinAccess::kRead) nw |= kDirty;
        if (e.compare_exchange_weak(w, nw, std::memory_order_acq_rel)) {
          frame_ref_[frame_of(w)].store(1, std::memory_order_relaxed);
          PagingCore& c = cur();
          c.counters().pins.add();
          if (w & kPrefetched) c.counters().prefetch_used.add();
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
    PagingCore& here = cur();
    const PostResult r =
        here.post(IoOp::kRead, remote_base_ + page * kPageSize, frame, kPageSize, io);
    if (r == PostResult::kOk) here.wait(io);  // async: may resume on another core
    if (r != PostResult::kOk || io.status != IoStatus::kOk) {
      frame_page_[f].store(0, std::memory_order_release);  // give the frame back
      e.store(old, std::memory_order_release);
      cur().counters().errors.add();
      FM_LOG_FIRST_N(LogLevel::kError, 5, kTag, "fetch of page {} failed: {}", page,
                     r != PostResult::kOk ? "memory node unavailable" : "completion error");
      return PinFail::kUnavailable;
    }
    PagingCore& now = cur();
    now.counters().faults.add();
    now.counters().bytes_read.add(kPageSize);
  }
  frame_page_[f].store(page + 1, std::memory_order_release);
  frame_ref_[f].store(1, std::memory_order_relaxed);
  *word_out = resident_word(f, 1, dirty, backed);
  e.store(*word_out, std::memory_order_release);
  return PinFail::kNone;
}

Region::PinFail Region::take_frame(uint32_t* frame_out) {
  if (PagingCore& c = cur(); c.reserve_count() != 0) {
    *frame_out = c.pop_reserve();
    c.counters_.reserve_takes.add();
    return PinFail::kNone;
  }
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
  if (cur().reserve_target_ != 0) cur().counters_.direct_reclaims.add();
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
    if (second_chance(h)) continue;
    bool posted = false;
    if (evict_for(cur(), uint32_t(h), pg - 1, false, &posted, &write_failed)) {
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

bool Region::second_chance(uint64_t frame) {
  // A load and a store, not an exchange: a pin's store of 1 between the two is lost at worst,
  // and the frame is evicted one pass of the hand early (CLOCK is an approximation anyway).
  if (frame_ref_[frame].load(std::memory_order_relaxed) == 0) return false;
  frame_ref_[frame].store(0, std::memory_order_relaxed);
  return true;
}

bool Region::evict_for(PagingCore& core, uint32_t f, uint64_t page, bool background,
                       bool* posted, bool* write_failed) {
  std::atomic<uint64_t>& e = table_[page];
  uint64_t w = e.load(std::memory_order_acquire);
  if (state_of(w) != kResident || frame_of(w) != f || pins_of(w) != 0) return false;
  PagingCore::Background* b = nullptr;
  if ((w & kDirty) && background && (b = core.take_slot()) == nullptr) {
    *write_failed = true;  // every slot in flight: the refill stops here
    return false;
  }
  if (!e.compare_exchange_strong(w, (w & ~kStateMask) | kEvicting, std::memory_order_acq_rel)) {
    if (b != nullptr) core.free_slot(b);
    return false;
  }
  frame_page_[f].store(kClaimed, std::memory_order_relaxed);
  if (w & kPrefetched) core.counters_.prefetch_wasted.add();
  bool backed = (w & kBacked) != 0;
  if (b != nullptr) {
    b->page = page;
    b->old_word = w;
    b->frame = f;
    b->io.on_done = &PagingCore::writeback_done;
    if (core.try_post(IoOp::kWrite, remote_base_ + page * kPageSize, frame_addr(f), kPageSize,
                      b->io) != PostResult::kOk) {
      core.free_slot(b);
      frame_page_[f].store(page + 1, std::memory_order_release);
      e.store(w, std::memory_order_release);
      *write_failed = true;
      return false;
    }
    ++core.writebacks_in_flight_;
    core.counters_.reclaim_writebacks.add();
    *posted = true;
    return true;
  }
  if (w & kDirty) {
    cur().counters_.fault_writebacks.add();
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
    t.reserve_takes += k.reserve_takes.read();
    t.direct_reclaims += k.direct_reclaims.read();
    t.fault_writebacks += k.fault_writebacks.read();
    t.reclaim_sweeps += k.reclaim_sweeps.read();
    t.reclaim_writebacks += k.reclaim_writebacks.read();
    t.prefetches += k.prefetches.read();
    t.prefetch_used += k.prefetch_used.read();
    t.prefetch_wasted += k.prefetch_wasted.read();
    t.prefetch_no_frame += k.prefetch_no_frame.read();
    for (size_t i = 0; i < kLatencyBucketCount; ++i) {
      t.read_latency[i] += k.read_latency[i].read();
      t.write_latency[i] += k.write_latency[i].read();
    }
    t.reserved += c->reserve_count();
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
  std::vector<bool> reserved(frames_, false);
  for (const auto& c : cores_) {
    if (c->background_in_flight() != 0) return "a write-back or prefetch is still in flight";
    for (uint32_t i = 0; i < c->reserve_count(); ++i) {
      const uint32_t f = c->reserve_[i];
      if (f >= used || reserved[f]) return fmt::format("frame {} is in a reserve twice or unused", f);
      reserved[f] = true;
    }
  }
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
    if (pg == kClaimed) {
      if (!reserved[f]) return fmt::format("frame {} left claimed", f);
      if (holder[f] != ~0ull) return fmt::format("reserve frame {} holds page {}", f, holder[f]);
      continue;
    }
    if (reserved[f]) return fmt::format("reserve frame {} is owned ({})", f, pg);
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

namespace fm::paging {

uint64_t latency_percentile(const std::array<uint64_t, kLatencyBucketCount>& h, double q) {
  uint64_t total = 0;
  for (uint64_t c : h) total += c;
  if (total == 0) return 0;
  const uint64_t rank = std::max<uint64_t>(1, uint64_t(q * double(total) + 0.5));
  uint64_t seen = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    seen += h[i];
    if (seen >= rank) return LatencyBuckets::upper(i);
  }
  return LatencyBuckets::upper(h.size() - 1);
}

}  // namespace fm::paging
