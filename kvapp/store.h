// The key-value store shared by all dataplane cores: hash index, slab allocator, CLOCK eviction.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>

#include "dataplane/result.h"
#include "kvapp/arena.h"
#include "kvapp/options.h"
#include "kvapp/slab.h"
#include "kvapp/spin_lock.h"
#include "kvapp/stats.h"

namespace fm::kv {

/// memcached's relative-expiry limit: exptimes up to 30 days are relative, larger are absolute.
inline constexpr int64_t kMaxRelativeExptime = 60 * 60 * 24 * 30;

/// Turns a protocol exptime into an absolute unix time, exactly as memcached reads it: 0 never
/// expires (returns 0); negative is already expired; <= 30 days is relative to `now`; larger is
/// an absolute unix time (one in the past is already expired).
constexpr int64_t absolute_expiry(int64_t exptime, int64_t now) {
  if (exptime == 0) return 0;
  if (exptime < 0) return 1;
  if (exptime <= kMaxRelativeExptime) return now + exptime;
  return exptime;
}

/// What a storage command asks for.
enum class StoreMode : uint8_t { kSet, kAdd, kReplace, kAppend, kPrepend, kCas };

/// How a storage command ended; the protocol maps each to memcached's reply.
enum class StoreOutcome : uint8_t {
  kStored,     // STORED
  kNotStored,  // NOT_STORED: add on a live key, replace/append/prepend on a missing one
  kExists,     // EXISTS: cas unique differs
  kNotFound,   // NOT_FOUND: cas on a missing key
  kTooLarge,   // key + value > item_size_max
  kNoMemory,   // no chunk could be found or evicted
  kBadKey,     // empty or longer than kKeyMaxLength (the protocol checks before calling)
};

/// One storage request. `value` is only read during the call.
struct StoreRequest {
  StoreMode mode = StoreMode::kSet;
  std::string_view key;
  std::span<const uint8_t> value;
  uint32_t flags = 0;
  int64_t expires_at = 0;  // absolute unix seconds from absolute_expiry(); 0 = never
  uint64_t cas = 0;        // compared for kCas only
};

/// How a lookup ended.
enum class Lookup : uint8_t {
  kHit,
  kMiss,     // no such key
  kExpired,  // the key was there but past its expiry (now reclaimed)
  kFlushed,  // the key was there but invalidated by flush_all (now reclaimed)
};

/// incr/decr outcome.
enum class DeltaOutcome : uint8_t { kOk, kNotFound, kNonNumeric, kNoMemory };
struct DeltaResult {
  DeltaOutcome outcome = DeltaOutcome::kNotFound;
  uint64_t value = 0;  // the new value when kOk
};

/// A live item, handed to a get callback. Valid only inside the callback: the bytes are pinned
/// in the arena for exactly that long (the deref scope).
struct ItemView {
  std::string_view key;
  std::span<const uint8_t> value;
  uint32_t flags = 0;
  uint64_t cas = 0;
  int64_t expires_at = 0;  // 0 = never
};

/// Store-wide statistics (memcached's names in the comments).
struct StoreStats {
  uint64_t curr_items = 0;      // curr_items: linked items, expired ones not yet reclaimed included
  uint64_t total_items = 0;     // total_items: items stored since start or stats reset
  uint64_t bytes = 0;           // bytes: key + value bytes of linked items
  uint64_t evictions = 0;       // evictions: live items removed to make room
  uint64_t reclaimed = 0;       // reclaimed: expired/flushed items whose chunk was reused
  uint64_t limit_maxbytes = 0;  // limit_maxbytes: arena size
  uint64_t total_slabs = 0;     // slabs in the arena
  uint64_t used_slabs = 0;      // slabs given to a class
  uint32_t hash_power_level = 0;
  uint64_t hash_bytes = 0;
};

/// The item store. Thread-safe: every dataplane core calls it concurrently. Items (key and
/// value bytes) live in slab chunks of an Arena addressed by offset; their metadata (64-bit key
/// hash, cas, flags, expiry, links) lives in local entries, so misses, expiry checks, cas
/// mismatches and eviction decisions never touch item memory; a hash match reads the key bytes
/// once to confirm it. Locks: one spinlock per hash stripe (never a global lock) and one per slab
/// class; get() copies values outside every lock, under a reference count and an arena pin.
/// No allocation on request paths except when a slab is first given to a class (at most once
/// per slab for the life of the store).
///
/// For the far-memory arena: the key confirmation, append/prepend and incr/decr pin item memory
/// while holding their stripe lock, so a pin that has to fetch must not yield there (or those
/// paths should become read-copy-retry); get() and the value copy of set are already lock-free.
class Store {
 public:
  /// Builds a store over `arena`, or over a new LocalArena of memory_mb when null. Control path.
  static Result<std::unique_ptr<Store>> create(const StoreOptions& options,
                                               std::unique_ptr<Arena> arena = nullptr);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  /// set/add/replace/append/prepend/cas. A kSet that fails (too large, no memory) also removes
  /// the old item, as memcached does, so stale data never outlives a failed set. append/prepend
  /// keep the old flags and expiry. On kStored, `*cas_out` (if given) receives the new cas.
  /// Any core; does not block beyond spinlocks.
  StoreOutcome store(const StoreRequest& request, int64_t now, uint64_t* cas_out = nullptr);

  /// Looks `key` up and, on a hit, calls `fn(const ItemView&)` with the value pinned. The view
  /// must not escape `fn`. Any core.
  template <typename Fn>
  Lookup get(std::string_view key, int64_t now, Fn&& fn) {
    return read(key, now, nullptr, fn);
  }

  /// get and set the expiry in one step (gat). `expires_at` as in StoreRequest.
  template <typename Fn>
  Lookup get_and_touch(std::string_view key, int64_t expires_at, int64_t now, Fn&& fn) {
    return read(key, now, &expires_at, fn);
  }

  /// Sets a live item's expiry. Any core.
  Lookup touch(std::string_view key, int64_t expires_at, int64_t now);

  /// Deletes a live item. Any core.
  Lookup remove(std::string_view key, int64_t now);

  /// incr (`incr` true) or decr by `delta`, memcached's way: the value must be a decimal
  /// uint64 (leading whitespace and trailing whitespace/NUL allowed); incr wraps modulo 2^64,
  /// decr stops at 0; a shorter result is padded with spaces to the old length. Any core.
  DeltaResult apply_delta(std::string_view key, bool incr, uint64_t delta, int64_t now);

  /// flush_all: items stored before `flush_at` (absolute unix seconds; <= now means now) become
  /// invalid once `now` reaches it. Any core.
  void flush_all(int64_t flush_at, int64_t now);

  /// Counts; takes every lock briefly (stats command only).
  StoreStats stats() const;
  /// "stats reset": total_items, evictions and reclaimed restart from zero.
  void reset_stats();

  /// Registry of per-core protocol counters, summed by any core's "stats".
  StatsRegistry& stats_registry() { return registry_; }

  const StoreOptions& options() const { return options_; }
  const SlabGeometry& geometry() const { return geometry_; }
  Arena& arena() { return *arena_; }
  /// Unix time at creation, for "stats uptime".
  int64_t started_at() const { return started_at_; }

  /// Arena offset and length of `key`'s chunk (key + value), for tests of the page layout.
  /// Returns false when the key is not live.
  bool locate_for_test(std::string_view key, int64_t now, uint64_t* offset, uint32_t* len);

 private:
  struct Entry;
  struct Stripe;
  struct ClassState;
  struct SlabInfo;
  struct Handle {
    uint32_t id = 0;
    uint64_t offset = 0;
    uint32_t key_len = 0;
    uint32_t value_len = 0;
    uint32_t flags = 0;
    uint64_t cas = 0;
    int64_t expires_at = 0;
  };

  Store(const StoreOptions& options, SlabGeometry geometry, std::unique_ptr<Arena> arena);

  template <typename Fn>
  Lookup read(std::string_view key, int64_t now, const int64_t* new_expiry, Fn& fn) {
    Handle h;
    const Lookup r = acquire(key, now, new_expiry, &h);
    if (r != Lookup::kHit) return r;
    {
      ArenaPin pin(*arena_, h.offset, h.key_len + h.value_len, Access::kRead);
      const auto* p = reinterpret_cast<const uint8_t*>(pin.data());
      const ItemView view{std::string_view(reinterpret_cast<const char*>(p), h.key_len),
                          std::span<const uint8_t>(p + h.key_len, h.value_len), h.flags, h.cas,
                          h.expires_at};
      fn(view);
    }
    release(h.id);
    return r;
  }

  // Takes a reference on a live item (and sets its expiry when `new_expiry`).
  Lookup acquire(std::string_view key, int64_t now, const int64_t* new_expiry, Handle* h);
  // Drops a reference taken by acquire(); frees the chunk if it was the last one.
  void release(uint32_t id);

  Entry& entry(uint32_t id) const;
  Stripe& stripe_for(uint64_t hash) const;
  uint32_t& bucket_for(uint64_t hash) const;
  bool key_equals(const Entry& e, std::string_view key);
  bool is_live(const Entry& e, int64_t now) const;
  // Finds `key` in its chain (stripe held); *link_out points at the link that names it.
  uint32_t find_locked(uint64_t hash, std::string_view key, uint32_t** link_out);
  // Finds `key`; reclaims it when dead. Stripe held. Returns kNil when absent or dead.
  uint32_t find_live_locked(Stripe& s, uint64_t hash, std::string_view key, int64_t now,
                            uint32_t** link_out, Lookup* why);
  void link_locked(Stripe& s, uint32_t id, uint32_t* at);
  void unlink_locked(Stripe& s, uint32_t id, uint32_t* link);
  // Drops one reference; frees on the last. May take a class lock.
  void unref(uint32_t id);
  void free_entry(uint32_t id);

  // Allocates a chunk for `size` bytes (an entry in state kAllocated with one reference).
  // Returns kNil when no memory. May evict; never blocks on a stripe lock.
  uint32_t alloc(uint32_t size, uint64_t hash, int64_t now);
  uint32_t carve_locked(ClassState& c, int cls);
  uint32_t evict_locked(ClassState& c, int64_t now);
  void lru_push_head_locked(ClassState& c, uint32_t id);
  void lru_remove_locked(ClassState& c, uint32_t id);

  // Writes key, a, b and `pad` spaces into a fresh chunk and fills the entry's item fields.
  void fill_item(uint32_t id, std::string_view key, std::span<const uint8_t> a,
                 std::span<const uint8_t> b, uint32_t pad, uint32_t flags, int64_t expires_at,
                 int64_t now);
  StoreOutcome store_concat(const StoreRequest& r, uint64_t hash, int64_t now, uint64_t* cas_out);
  StoreStats collect() const;  // stats() before the reset baseline is applied
  uint64_t next_cas() { return cas_counter_.fetch_add(1, std::memory_order_relaxed) + 1; }

  const StoreOptions options_;
  const SlabGeometry geometry_;
  std::unique_ptr<Arena> arena_;
  const uint64_t seed_;
  const int64_t started_at_;
  uint32_t index_bits_ = 0;  // entry id = slab << index_bits_ | chunk index
  uint32_t slab_count_ = 0;
  uint64_t bucket_mask_ = 0;
  uint64_t stripe_mask_ = 0;
  std::unique_ptr<uint32_t[]> buckets_;
  std::unique_ptr<Stripe[]> stripes_;
  std::unique_ptr<ClassState[]> classes_;
  std::unique_ptr<SlabInfo[]> slabs_;
  std::atomic<uint32_t> next_slab_{0};
  std::atomic<uint64_t> cas_counter_{0};
  // flush_all state: items with cas < floor_cas_ or time < floor_time_ are dead for good; items
  // with time < pending_flush_at_ die once now reaches it. Written under flush_mu_.
  std::mutex flush_mu_;
  std::atomic<uint64_t> floor_cas_{0};
  std::atomic<int64_t> floor_time_{0};
  std::atomic<int64_t> pending_flush_at_{0};
  StatsRegistry registry_;
  mutable std::mutex stats_mu_;
  StoreStats stats_baseline_;  // guarded by stats_mu_
};

}  // namespace fm::kv
