// A far region: page table, local frame pool, CLOCK eviction with dirty write-back, and the
// explicit fetch boundary (pin/unpin) through which the app reaches far data.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/counter.h"
#include "dataplane/ids.h"
#include "dataplane/log_linear.h"
#include "dataplane/result.h"
#include "paging/clock.h"
#include "paging/transport.h"

namespace fm::paging {

using fm::kPageSize;

class PagingCore;

/// How a pinned range will be used.
enum class PinAccess : uint8_t {
  kRead,       // fetch if needed; the page stays clean
  kWrite,      // fetch if needed; the page becomes dirty
  kOverwrite,  // every byte of the range is written before it is read: whole pages need no fetch
};

/// One outstanding transport request a fiber or core waits on. Lives on the waiter's stack
/// (which stays valid while it waits); the queue pair's wr_id points here.
struct IoWait {
  std::atomic<bool> done{false};
  IoStatus status = IoStatus::kOk;
  IoOp op = IoOp::kRead;   // which latency histogram the completion goes to
  bool timed = false;      // one transfer in PagingCore::kLatencySampleEvery is timed
  uint64_t posted_at = 0;  // clock ticks, for the latency histograms (when timed)
  void* waiter = nullptr;  // the scheduler's handle of a parked fiber (async mode)
  // Set on the region's own requests (background write-backs, prefetches): the completion
  // poller calls it instead of publishing `done`; `slot` names the request in its core's table.
  void (*on_done)(PagingCore& core, IoWait& io) = nullptr;
  uint32_t slot = 0;
};

/// How a core waits at a fetch boundary. The default (sync) busy-polls the completion queue —
/// the FCFS/busy-wait baseline; the scheduler installs one that parks the fiber (async).
struct WaitHooks {
  /// Returns once io.done. Sync: poll the core's completion queue until then.
  void (*wait_io)(void* ctx, IoWait& io) = nullptr;
  /// Lets others run while another core's fetch of the same page is in flight.
  void (*wait_other)(void* ctx) = nullptr;
  /// Called by the completion poller when `io` completes with io.waiter set (wake the fiber).
  void (*on_complete)(void* ctx, IoWait& io) = nullptr;
  void* ctx = nullptr;
};

/// Transfer latencies: 32 buckets per power of two (a bucket spans < 6.25% of its values),
/// exact below 32 ns, everything from 2^32 ns (4.3 s) up in the last bucket. A sample: each
/// core times one transfer in PagingCore::kLatencySampleEvery (its first, then every 8th).
using LatencyBuckets = LogLinear<5>;
constexpr size_t kLatencyBucketCount = LatencyBuckets::buckets(32);

/// Per-core paging counters (single writer: the owning core).
struct PagingCounters {
  Counter pins;            // pin() calls that hit a resident page (fast path)
  Counter faults;          // misses that this core fetched (READ posted)
  Counter zero_fills;      // misses served without a fetch (never-written page, or overwrite)
  Counter shared_waits;    // misses that waited for another fetch of the same page
  Counter evictions;       // frames taken from a page
  Counter writebacks;      // dirty pages written back before reuse
  Counter errors;          // pins that failed (memory node dead, or exhausted past the limit)
  Counter frame_waits;     // pins that waited because every frame was pinned or in transition
  Counter bounce_waits;    // multi-page pins that waited for a free bounce buffer
  Counter bytes_read, bytes_written;
  Counter full_retries;    // posts refused with kFull and retried
  // Reclaim (paging.reserve_frames): where faults got their frames.
  Counter reserve_takes;     // frames a fault took from its core's reserve
  Counter direct_reclaims;   // faults that found the reserve empty and swept CLOCK themselves
  Counter fault_writebacks;  // write-backs a fault (or a prefetch's sweep) waited for
  Counter reclaim_sweeps;    // background refills of the reserve
  Counter reclaim_writebacks;  // write-backs posted by them (pipelined, nobody waits)
  // Prefetch at dispatch: READs posted before the request ran.
  Counter prefetches;        // pages whose READ was posted ahead of the request
  Counter prefetch_used;     // prefetched pages pinned before they were evicted again
  Counter prefetch_wasted;   // prefetched pages evicted before any pin (wasted fetches)
  Counter prefetch_no_frame;  // prefetches skipped: the reserve was empty or no slot was free
  // READ / WRITE post -> completion polled, one transfer in PagingCore::kLatencySampleEvery.
  std::array<Counter, kLatencyBucketCount> read_latency;
  std::array<Counter, kLatencyBucketCount> write_latency;
};

class Region;

/// One dataplane core's view of the region: its queue pair and wait hooks. Owner core only.
class PagingCore {
 public:
  PagingCore(Region& region, CoreId id, std::unique_ptr<QueuePair> qp);

  /// Polls the completion queue and completes the IoWaits it names; then, when this core's
  /// frame reserve is at or below half its size, refills it (one bounded CLOCK sweep, dirty
  /// victims written back without waiting). Returns completions seen.
  uint32_t poll();
  /// The latency histograms time one transfer in this many (a clock read costs ~25 cycles here).
  static constexpr uint32_t kLatencySampleEvery = 8;
  /// Poller hook for CoreLoop: `arg` is a PagingCore*.
  static uint32_t poll_hook(void* arg) { return static_cast<PagingCore*>(arg)->poll(); }
  /// The same, but only while write-backs or prefetches are in flight (whose completions free
  /// background slots and reserve frames): the scheduler's hook between fibers.
  static uint32_t poll_background_hook(void* arg) {
    auto* c = static_cast<PagingCore*>(arg);
    return c->background_in_flight() != 0 ? c->poll() : 0;
  }

  /// Posts one request, polling while the queue pair is full. kDead when the node is gone.
  PostResult post(IoOp op, uint64_t remote, void* local, uint32_t len, IoWait& io);
  /// Posts once: kFull is returned, not waited out (the background paths never wait).
  PostResult try_post(IoOp op, uint64_t remote, void* local, uint32_t len, IoWait& io);

  /// Frames in this core's reserve now, and write-backs and prefetches it has in flight.
  uint32_t reserve_size() const { return reserve_count(); }
  uint32_t background_in_flight() const { return writebacks_in_flight_ + prefetches_in_flight_; }

  /// Waits for `io` with this core's hooks (sync: spin on poll()).
  void wait(IoWait& io) { hooks_.wait_io(hooks_.ctx, io); }
  void wait_other() { hooks_.wait_other(hooks_.ctx); }

  void set_hooks(const WaitHooks& h) { hooks_ = h; }
  const PagingCounters& counters() const { return counters_; }
  PagingCounters& counters() { return counters_; }
  CoreId id() const { return id_; }
  Region& region() { return region_; }

 private:
  friend class Region;
  // A write-back or prefetch the region posted for itself: the frame and the page's entry word
  // before, to restore when the transfer fails.
  struct Background {
    IoWait io;
    uint64_t page = 0;
    uint64_t old_word = 0;
    uint32_t frame = 0;
  };
  static constexpr uint32_t kBackgroundSlots = 32;
  Background* take_slot();
  void free_slot(Background* b);
  static void writeback_done(PagingCore& core, IoWait& io);
  // The reserve: owner only, but its size is read by statistics.
  uint32_t reserve_count() const { return reserve_count_.load(std::memory_order_relaxed); }
  void push_reserve(uint32_t frame);
  uint32_t pop_reserve();
  static void prefetch_done(PagingCore& core, IoWait& io);

  Region& region_;
  CoreId id_;
  std::unique_ptr<QueuePair> qp_;
  double ns_per_tick_;  // the region clock's (no division per completion)
  uint32_t latency_countdown_ = 1;  // transfers until the next timed one (the first is)
  WaitHooks hooks_;
  PagingCounters counters_;
  // Free frames owned by this core (frame_page_ reads kClaimed): faults take from here first.
  std::vector<uint32_t> reserve_;
  std::atomic<uint32_t> reserve_count_{0};
  uint32_t reserve_target_ = 0;  // 0: no reserve (faults sweep CLOCK themselves)
  bool refilling_ = false;       // poll() is reached again from inside a refill's sweep
  // poll()'s completion buffer: a member, so no poll value-initializes 16 of them on the stack
  // (callgrind: ~170 instructions of memset a faulting request). Nothing it calls polls again.
  std::array<Completion, 16> completions_;
  std::array<Background, kBackgroundSlots> slots_;
  std::array<uint32_t, kBackgroundSlots> free_slots_;
  uint32_t free_slot_count_ = 0;
  uint32_t writebacks_in_flight_ = 0;
  uint32_t prefetches_in_flight_ = 0;
};

/// Totals over every core, for statistics.
struct PagingTotals {
  uint64_t pins = 0, faults = 0, zero_fills = 0, shared_waits = 0, evictions = 0, writebacks = 0,
           errors = 0, frame_waits = 0, bounce_waits = 0, bytes_read = 0, bytes_written = 0,
           full_retries = 0, reserve_takes = 0, direct_reclaims = 0, fault_writebacks = 0,
           reclaim_sweeps = 0, reclaim_writebacks = 0, prefetches = 0, prefetch_used = 0,
           prefetch_wasted = 0, prefetch_no_frame = 0;
  std::array<uint64_t, kLatencyBucketCount> read_latency{};
  std::array<uint64_t, kLatencyBucketCount> write_latency{};
  uint64_t frames = 0, pages = 0, resident = 0, reserved = 0;
};

/// The value at quantile q of a latency histogram (the bucket's upper edge, ns); 0 when empty.
uint64_t latency_percentile(const std::array<uint64_t, kLatencyBucketCount>& h, double q);

/// The far region [0, bytes) backed by the memory node's pool at [remote_base, +bytes), with
/// `frames` local 4 KiB frames. Thread-safe: any core pins any page; a page is fetched once even
/// when several cores fault on it together.
class Region {
 public:
  /// Control path. `transport` must outlive the region; `cores` queue pairs are created.
  /// `max_pin_bytes`: the longest range one pin() may ask for (the store's largest item); pins
  /// longer than a page hold every page they cover, so frames must exceed a few of those.
  static Result<std::unique_ptr<Region>> create(uint64_t bytes, uint64_t frames,
                                                Transport& transport, uint16_t cores,
                                                const Clock& clock, uint32_t max_pin_bytes,
                                                uint64_t remote_base = 0);
  ~Region();

  /// Makes [offset, offset+len) addressable and returns its first byte, or nullptr when the
  /// memory node is gone (or frames or bounce buffers stayed exhausted past wait_limit_ms()).
  /// A range within one page is the page's frame; a longer one is copied through a bounce
  /// buffer (written back by unpin for writes). May wait at the fetch boundary, and while every
  /// frame or bounce buffer is held by other pins (sync: spin; async: the fiber yields). A
  /// multi-page pin that finds no frame gives back the pages it holds before it waits, so pins
  /// never wait on each other in a cycle. Any core, as `core`.
  std::byte* pin(PagingCore& core, uint64_t offset, uint32_t len, PinAccess access);

  /// pin() that never waits: the range's page must be resident already (one page only), else
  /// nullptr. For callers holding a lock. Any core.
  std::byte* try_pin(PagingCore& core, uint64_t offset, uint32_t len, PinAccess access);

  /// Ends the scope of the matching pin(), which returned `data`. `core` is the core running
  /// the caller now (a fiber may have moved). Never fails: every page stayed pinned.
  void unpin(PagingCore& core, uint64_t offset, uint32_t len, std::byte* data);

  /// True if the page holding `offset` is resident (the fault predictor asks). Any core.
  bool resident(uint64_t offset) const;
  /// True while a page of [offset, offset+len) is being fetched (by a fault or a prefetch).
  bool fetching(uint64_t offset, uint32_t len) const;
  /// The far copy of the page holding `offset` was lost (every memory node with it died). If
  /// the page is resident, marks it dirty so that its eviction writes it back, and returns true:
  /// its data lives on. False when it is not here (its data is gone). Any thread.
  bool keep_lost_page(uint64_t offset);

  /// Prefetch at dispatch: posts, on `core`'s queue pair, a READ for each page of
  /// [offset, offset+len) that is remote, into a frame of `core`'s reserve. Never waits and never
  /// sweeps: a page with no reserve frame or slot left is skipped (counted). The page is
  /// resident, unpinned and clean when its READ completes (in core.poll()). Returns the READs
  /// posted. Owner of `core` only.
  uint32_t prefetch(PagingCore& core, uint64_t offset, uint32_t len);

  /// Keeps `frames` free frames per core, refilled between polls (0: off, faults sweep CLOCK
  /// themselves). Clamped so every reserve together holds at most an eighth of the frames.
  /// Control path, while no core polls (frames of an earlier reserve become free). Returns the
  /// size per core in effect.
  uint32_t set_reserve(uint32_t frames);

  PagingCore& core(CoreId id) { return *cores_[to_int(id)]; }
  uint16_t core_count() const { return uint16_t(cores_.size()); }
  uint64_t bytes() const { return bytes_; }
  uint64_t frame_count() const { return frames_; }
  const Clock& clock() const { return clock_; }
  Transport& transport() { return transport_; }
  PagingTotals totals() const;

  /// How long a pin waits for a frame or a bounce buffer before it fails (default 1000 ms): past
  /// it the pins are leaked or the frames too few for the load. Control path.
  void set_wait_limit_ms(uint32_t ms) { wait_limit_ms_ = ms; }
  uint32_t wait_limit_ms() const { return wait_limit_ms_; }

  /// Checks the page table at rest (no pin, fetch or eviction under way; the caller stops every
  /// core first and polls each until background_in_flight() is 0): every page settled and
  /// unpinned, resident pages and their frames a bijection, reserve frames owned by nobody
  /// else, every bounce buffer free. Returns the first violation, or an empty string.
  std::string check_quiescent() const;

  /// Tests only: called after a never-used frame was handed out, before it is used.
  void set_fresh_frame_hook(void (*fn)(void* arg, uint32_t frame), void* arg) {
    fresh_frame_hook_ = fn;
    fresh_frame_arg_ = arg;
  }

 private:
  friend class PagingCore;
  Region(uint64_t bytes, uint64_t frames, Transport& transport, const Clock& clock,
         uint32_t max_pin_bytes, uint64_t remote_base);

  // Why a pin_page() failed: the memory node refused, or no frame was free this time.
  enum class PinFail : uint8_t { kNone, kUnavailable, kNoFrame };
  std::byte* pin_page(uint64_t page, PinAccess access, bool whole_page, PinFail* why);
  void unpin_page(uint64_t page);
  PinFail fault(uint64_t page, uint64_t claimed_word, PinAccess access, bool whole_page,
                uint64_t* word_out);
  // Waits once for pins to be released (sync: poll; async: yield). False once `deadline`
  // (steady-clock ns) has passed; `deadline` 0 starts it.
  bool wait_for_release(uint64_t* deadline);
  // kNoFrame: every frame pinned or in transition this time; kUnavailable: none free and a
  // dirty page's write-back failed (the memory node is gone).
  PinFail take_frame(uint32_t* frame_out);
  // The reserve's refill: one CLOCK sweep of at most a few times the deficit, clean victims
  // straight into the reserve, dirty ones written back in the background.
  void refill(PagingCore& core);
  // Takes `frame` from the unpinned resident `page` if it is still unreferenced; false if a pin
  // or another core got there first. Dirty pages are written back: with `background` on
  // `core`'s slot (then *posted is set and the frame joins the reserve on completion), else
  // waited for.
  bool evict_for(PagingCore& core, uint32_t frame, uint64_t page, bool background, bool* posted,
                 bool* write_failed);
  // CLOCK's test of `frame`'s reference bit: true (and the bit cleared) if it was set.
  bool second_chance(uint64_t frame);
  void install_frame(PagingCore& core, uint32_t frame);
  std::byte* frame_addr(uint32_t f) const { return frames_base_ + uint64_t(f) * kPageSize; }

  struct Bounce;
  Bounce* claim_bounce(uint64_t offset, uint32_t len, PinAccess access);
  Bounce* find_bounce(const std::byte* data);
  PinFail pin_span(uint64_t first, uint64_t last, uint64_t offset, uint32_t len,
                   PinAccess access);
  void unpin_span(uint64_t first, uint64_t last);

  uint64_t bytes_;
  uint64_t pages_;
  uint64_t frames_;
  Transport& transport_;
  Clock clock_;
  uint32_t max_pin_bytes_;
  uint64_t remote_base_;
  std::byte* frames_base_ = nullptr;
  std::unique_ptr<std::atomic<uint64_t>[]> table_;       // page -> entry word (see region.cc)
  std::unique_ptr<std::atomic<uint64_t>[]> frame_page_;  // frame -> page + 1 (0: unowned)
  std::unique_ptr<std::atomic<uint8_t>[]> frame_ref_;    // CLOCK reference bits
  alignas(64) std::atomic<uint64_t> next_unused_{0};     // frames never used yet
  alignas(64) std::atomic<uint64_t> hand_{0};            // CLOCK hand
  std::vector<std::unique_ptr<PagingCore>> cores_;
  std::vector<std::unique_ptr<Bounce>> bounces_;
  uint32_t wait_limit_ms_ = 1000;
  void (*fresh_frame_hook_)(void*, uint32_t) = nullptr;
  void* fresh_frame_arg_ = nullptr;
};

/// The paging core of the calling thread's dataplane core: pin()/unpin() set it to their
/// `core` argument; the scheduler sets it before it resumes a fiber (which may have moved).
PagingCore*& current_core();

/// The synchronous wait hooks (busy-poll the completion queue): the FCFS baseline. `ctx` is the
/// PagingCore.
WaitHooks sync_wait_hooks(PagingCore& core);

}  // namespace fm::paging
