// The store's hash index: lock stripes, bucket arrays that double incrementally, chains, liveness.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "dataplane/check.h"
#include "kvapp/spin_lock.h"
#include "kvapp/store_slabs.h"

namespace fm::kv {

struct StoreStats;

namespace store_internal {

/// An old bucket whose chain has moved to the doubled array. Never an entry id: validate() keeps
/// ids below 2^32 - 2^(index_bits + 1).
inline constexpr uint32_t kMoved = kNil - 1;

/// One lock stripe: guards its buckets (in every array), the item fields of the entries linked
/// in them, and its share of the item counts.
struct alignas(64) Stripe {
  SpinLock lock;
  uint64_t curr_items = 0;
  uint64_t bytes = 0;
  uint64_t total_items = 0;
};

/// A bucket array; the buckets follow the header in the same allocation. Never initialized
/// beyond the constructor's: a doubled array's buckets are written when their old bucket moves.
struct Table {
  uint64_t mask = 0;
  uint32_t power = 0;
  uint32_t* buckets() { return reinterpret_cast<uint32_t*>(this + 1); }
  uint64_t bytes() const { return (mask + 1) * sizeof(uint32_t); }

  /// nullptr when out of memory.
  static Table* create(uint32_t power);
  static void destroy(Table* t);
};

/// Entries known to hold another key with the same hash and length, as (id, cas): a chunk's
/// key never changes while it is linked, and a reused chunk gets a new cas.
struct KeySkips {
  static constexpr uint32_t kMax = 8;  // beyond this the lookup gives up (kUnavailable)
  uint32_t n = 0;
  uint32_t id[kMax];
  uint64_t cas[kMax];
  bool contains(uint32_t i, uint64_t c) const {
    for (uint32_t k = 0; k < n; ++k) {
      if (id[k] == i && cas[k] == c) return true;
    }
    return false;
  }
  /// Remembers (i, c); false when already full.
  bool add(uint32_t i, uint64_t c) {
    if (n == kMax) return false;
    id[n] = i;
    cas[n] = c;
    ++n;
    return true;
  }
};

/// What a chain walk found dead (and reclaimed) with the key's hash and length; the last wins.
enum class Dead : uint8_t { kNone, kExpired, kFlushed };

/// What a walk of the whole hash index found (tests and diagnostics).
struct IndexAudit {
  uint64_t linked = 0;  // entries found in chains
  uint32_t longest_chain = 0;
  uint64_t misplaced = 0;  // entries not linked, or in a bucket their hash does not name
};

/// Maps 64-bit key hashes to chains of entry ids; decides liveness (expiry, flush_all) and
/// stamps each stored item's cas. Reads entry metadata only, never item bytes: comparing keys is
/// the store's (it alone pins the arena). Thread-safe: one spinlock per stripe, never a global
/// lock. Growth: past 1.5 items per bucket the bucket array doubles incrementally (memcached's
/// expansion): commands move a few old buckets each, under the buckets' own stripe lock, and
/// lookups consult the old array for buckets not yet moved.
class HashIndex final : public ChunkOwner {
 public:
  /// `slabs` holds the entries the chains link; it must outlive the index.
  HashIndex(uint32_t hash_power, uint32_t hash_power_max, SlabAllocator& slabs);
  ~HashIndex();
  HashIndex(const HashIndex&) = delete;
  HashIndex& operator=(const HashIndex&) = delete;

  /// Allocates the first bucket array (2^hash_power). False when out of memory. Control path.
  [[nodiscard]] bool init();

  Stripe& stripe_for(uint64_t hash) const { return stripes_[hash & stripe_mask_]; }

  /// Prefetches `hash`'s stripe (for writing: its lock) and its bucket in the current array (one
  /// not yet moved out of an old array is not: growth is rare). Without a lock, so it reads no
  /// table (one may be freed under it), only the index's own copy of the current array's
  /// address and mask; a pair torn by a doubling only prefetches a useless line (a prefetch
  /// never faults).
  void prefetch(uint64_t hash) const {
    __builtin_prefetch(&stripe_for(hash), 1);
    const uintptr_t buckets = hint_buckets_.load(std::memory_order_relaxed);
    const uint64_t mask = hint_mask_.load(std::memory_order_relaxed);
    __builtin_prefetch(reinterpret_cast<const void*>(buckets + (hash & mask) * sizeof(uint32_t)));
  }

  /// The head of `hash`'s chain: in the old array while its bucket has not moved, else in the
  /// current one. Its stripe lock held (the only lock that guards both the bucket and the move).
  uint32_t& bucket_for(uint64_t hash) const {
    // The current array first: a reader that sees a doubled array also sees its old one (both
    // published before any bucket moves), and one that sees the previous array holds a stripe
    // lock that no bucket move of it has taken yet.
    Table* cur = table_.load(std::memory_order_acquire);
    Table* old = old_table_.load(std::memory_order_acquire);
    if (old != nullptr && old != cur) [[unlikely]] {
      uint32_t& b = old->buckets()[hash & old->mask];
      if (b != kMoved) return b;
    }
    return cur->buckets()[hash & cur->mask];
  }

  /// Not expired and not invalidated by flush_all. Item fields read: stripe held (or the entry
  /// otherwise stable).
  bool is_live(const Entry& e, int64_t now) const {
    if (e.expires_at != 0 && e.expires_at <= now) return false;
    if (e.cas < floor_cas_.load(std::memory_order_acquire)) return false;
    if (e.time < floor_time_.load(std::memory_order_acquire)) return false;
    const int64_t pending = pending_flush_at_.load(std::memory_order_acquire);
    if (pending != 0 && pending <= now && e.time < pending) return false;
    return true;
  }

  /// True when entry `id` is still linked, live and of cas `cas` (what a holder read). Stripe
  /// held.
  bool still_current_locked(uint32_t id, uint64_t cas, int64_t now) const {
    const Entry& e = slabs_.entry(id);
    return e.state == kLinked && e.cas == cas && is_live(e, now);
  }

  /// The link that names linked entry `id` in its chain. Stripe held.
  uint32_t* link_to_locked(uint64_t hash, uint32_t id) const;

  /// The first linked entry with `hash` and key length `len` not in `skips` that is live; dead
  /// ones met on the way are unlinked (*dead says the last one's kind). Stripe held; reads no
  /// item memory.
  // Inlined into every caller: it is the hot loop of each command, and with no skips (the fast
  // paths) the skip check folds away.
  [[gnu::always_inline]] uint32_t find_candidate_locked(Stripe& s, uint64_t hash, size_t len,
                                                        int64_t now, const KeySkips& skips,
                                                        uint32_t** link_out, Dead* dead) {
    *dead = Dead::kNone;
    uint32_t* link = &bucket_for(hash);
    while (*link != kNil) {
      const uint32_t id = *link;
      Entry& e = slabs_.entry(id);
      if (e.hash == hash && e.key_len == len && !skips.contains(id, e.cas)) {
        if (is_live(e, now)) {
          *link_out = link;
          return id;
        }
        // Dead whatever its key: reclaim it. (Were it another key with the same 64-bit hash, the
        // miss would be reported as expired/flushed: only a counter would differ.)
        *dead = (e.expires_at != 0 && e.expires_at <= now) ? Dead::kExpired : Dead::kFlushed;
        remove_locked(s, id, link);  // *link now names the next entry
        continue;
      }
      link = &e.chain_next;
    }
    return kNil;
  }

  // Link and unlink leave the linked-item count to their callers, so a replacement (one of
  // each) costs no shared atomic; count_new_key() and remove_locked() keep it.

  /// Links allocated entry `id` at `at` (a bucket head) and takes the link's reference.
  /// Stripe held.
  void link_locked(Stripe& s, uint32_t id, uint32_t* at) {
    Entry& e = slabs_.entry(id);
    e.chain_next = *at;
    *at = id;
    e.state = kLinked;
    e.refs.fetch_add(1, std::memory_order_relaxed);
    s.curr_items++;
    s.total_items++;
    s.bytes += e.key_len + e.value_len;
  }
  /// Unlinks linked entry `id` at `link` and drops the link's reference (may free it).
  /// Stripe held.
  void unlink_locked(Stripe& s, uint32_t id, uint32_t* link) {
    Entry& e = slabs_.entry(id);
    FM_DCHECK(*link == id && e.state == kLinked);
    *link = e.chain_next;
    e.chain_next = kNil;
    e.state = kUnlinked;
    s.curr_items--;
    s.bytes -= e.key_len + e.value_len;
    slabs_.unref(id);
  }
  /// unlink_locked() of a key that leaves the index (not replaced). Stripe held.
  void remove_locked(Stripe& s, uint32_t id, uint32_t* link) {
    unlink_locked(s, id, link);
    linked_items_.fetch_sub(1, std::memory_order_relaxed);
  }
  /// A link_locked() that added a key rather than replacing one.
  void count_new_key() { linked_items_.fetch_add(1, std::memory_order_relaxed); }

  /// A new cas, unique and increasing store-wide. Any thread.
  uint64_t next_cas() { return cas_counter_.fetch_add(1, std::memory_order_relaxed) + 1; }

  /// flush_all: items stored before `flush_at` (absolute unix seconds; <= now means now) become
  /// dead once `now` reaches it. Any thread.
  void flush_all(int64_t flush_at, int64_t now);

  /// Incremental growth: called by commands with no lock held, does at most one bounded step:
  /// start a doubling, move a few old buckets, or pass a few stripes after the last move (so no
  /// reader still holds the old array when it is freed). One core at a time (expand_lock_, only
  /// ever try_locked).
  void help_grow() {
    if (expand_phase_.load(std::memory_order_relaxed) == 0 &&
        linked_items_.load(std::memory_order_relaxed) <= grow_at_.load(std::memory_order_relaxed))
        [[likely]] {
      return;
    }
    expand_step();
  }
  /// help_grow() for read-only commands: only helps a doubling already under way, so reads
  /// never touch the item counter that writes update.
  void help_grow_read() {
    if (expand_phase_.load(std::memory_order_relaxed) != 0) [[unlikely]]
      expand_step();
  }

  /// Walks every chain, one stripe lock at a time; exact only when no command is in flight.
  IndexAudit audit() const;
  /// Adds the item and bucket-array counts to `st`; takes every stripe lock briefly.
  void add_stats(StoreStats& st) const;

  // ChunkOwner: the slab allocator taking chunks back (a class lock held).
  Take try_take(uint32_t id, Entry& e, int64_t now, bool evict_live, bool second_chance) override;
  bool linked_time(const Entry& e, uint32_t* time) const override;

 private:
  // Unlinks linked entry `id` wherever it is in its chain, for the slab allocator: the caller
  // takes over its reference and state. Stripe held.
  void unchain_locked(Stripe& s, uint32_t id);
  uint64_t grow_at_for(const Table& t) const;
  void set_prefetch_hint(Table* t);  // after table_ changes (hint_buckets_, hint_mask_)
  [[gnu::cold, gnu::noinline]] void expand_step();
  void start_expansion_locked();
  void migrate_buckets_locked();
  void sweep_stripes_locked();

  SlabAllocator& slabs_;
  const uint32_t hash_power_;
  const uint32_t hash_power_max_;
  const uint64_t stripe_mask_;  // fixed: a doubling splits bucket i into i and i + old size,
                                // both under stripe i & stripe_mask_
  std::unique_ptr<Stripe[]> stripes_;
  // The bucket arrays. table_ is current; old_table_ is non-null while its buckets are being
  // moved (a moved bucket holds kMoved). Both are read under a stripe lock and written under
  // expand_lock_; an array is freed only after every stripe lock was passed once since it
  // stopped being published (retiring_).
  // Read by every command (one line, written only when a doubling starts or ends).
  alignas(64) std::atomic<Table*> table_{nullptr};
  std::atomic<Table*> old_table_{nullptr};
  // table_'s bucket array and mask, for prefetch() (which holds no lock): set with table_.
  std::atomic<uintptr_t> hint_buckets_{0};
  std::atomic<uint64_t> hint_mask_{0};
  std::atomic<uint8_t> expand_phase_{0};  // 0 idle, 1 moving buckets, 2 sweeping stripes
  std::atomic<uint64_t> grow_at_{0};      // linked items past which the table doubles
  // The grower's own line: try_locked by helpers only while a doubling is due or under way.
  alignas(64) mutable SpinLock expand_lock_;  // add_stats() takes it to read the arrays' sizes
  uint64_t expand_next_ = 0;                  // next old bucket to move; guarded by expand_lock_
  uint64_t sweep_next_ = 0;                   // next stripe to pass; guarded by expand_lock_
  Table* retiring_ = nullptr;                 // guarded by expand_lock_
  std::atomic<uint64_t> hash_expansions_{0};
  // Written by every store; together on one line so a store dirties one shared line, not two.
  alignas(64) std::atomic<uint64_t> cas_counter_{0};
  std::atomic<uint64_t> linked_items_{0};  // linked entries (the load factor's numerator)
  // flush_all state, read by every liveness check and written only by flush_all (its own line):
  // items with cas < floor_cas_ or time < floor_time_ are dead for good; items with
  // time < pending_flush_at_ die once now reaches it. Written under flush_mu_.
  alignas(64) std::mutex flush_mu_;
  std::atomic<uint64_t> floor_cas_{0};
  std::atomic<int64_t> floor_time_{0};
  std::atomic<int64_t> pending_flush_at_{0};
};

}  // namespace store_internal
}  // namespace fm::kv
