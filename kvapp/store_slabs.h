// The store's slab allocator: per-chunk entries, slab classes, LRU, CLOCK eviction, slab moves.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>

#include "kvapp/slab.h"
#include "kvapp/spin_lock.h"

namespace fm::kv {

struct StoreStats;

// The parts of Store (kvapp/store.h, their only user): this slab allocator, the hash index
// (store_index.h) and the commands (store.cc). Not an API of their own.
namespace store_internal {

/// An entry id that names no entry: the end of a chain, LRU or free list.
inline constexpr uint32_t kNil = std::numeric_limits<uint32_t>::max();

/// kFree -> kAllocated (alloc, class lock) -> kLinked (stripe lock) -> kUnlinked (stripe lock)
/// -> kFree (last unref, class lock); or kAllocated -> kFree when a storage command does not
/// store; or kLinked -> kFree -> kAllocated when eviction takes it (its stripe lock held by the
/// evictor while it holds the class lock).
enum EntryState : uint8_t { kFree = 0, kAllocated, kLinked, kUnlinked };

/// Local metadata of one chunk. Item fields are guarded by the stripe lock of `hash` while the
/// entry is linked; LRU links and the free list by the class lock.
struct Entry {
  uint64_t hash = 0;
  uint64_t cas = 0;
  uint64_t offset = 0;         // arena offset of the chunk; fixed when the slab is carved
  uint32_t chain_next = kNil;  // hash chain while linked; free list while free
  uint32_t lru_prev = kNil;
  uint32_t lru_next = kNil;
  uint32_t value_len = 0;
  uint32_t flags = 0;
  uint32_t expires_at = 0;  // unix seconds; 0 = never
  uint32_t time = 0;        // unix seconds when stored (flush_all compares it)
  uint8_t key_len = 0;
  uint8_t state = kFree;
  uint8_t cls = 0;
  std::atomic<uint8_t> clock{0};  // CLOCK reference bit, set by readers without a lock
  std::atomic<uint32_t> refs{0};  // 1 for being linked + 1 per holder; the last unref frees
};
static_assert(sizeof(Entry) <= 64, "keep the per-chunk metadata within a cache line");

/// One slab of the arena. Guarded by its class's lock (by the mover alone while it has none).
struct SlabInfo {
  std::unique_ptr<Entry[]> entries;  // published under the class lock before any id escapes
  uint32_t chunks = 0;               // entries in `entries`
  uint32_t free_head = kNil;         // free chunks of this slab, through Entry::chain_next
  uint32_t free_count = 0;
  uint32_t partial_prev = kNil, partial_next = kNil;  // ClassState::partial_head list
  uint32_t class_prev = kNil, class_next = kNil;      // every slab of the class
  bool in_partial = false;
};

/// One slab class's slabs, free chunks and LRU, under its own lock.
struct alignas(64) ClassState {
  SpinLock lock;
  uint32_t partial_head = kNil;  // slabs of this class that may have a free chunk (a full one
                                 // leaves when pop_free_locked meets it)
  uint32_t slab_head = kNil;     // every slab of this class
  uint32_t lru_head = kNil;      // most recently stored
  uint32_t lru_tail = kNil;      // eviction starts here
  uint32_t lru_size = 0;
  uint32_t evictions_since_check = 0;  // toward the next automove check
  std::atomic<uint32_t> slabs{0};      // written under the lock; read without it to pick a victim
  uint64_t chunks_used = 0;            // allocated chunks (not free)
  uint64_t evictions = 0;
  uint64_t reclaimed = 0;
};

/// The allocator's hook into whoever links entries (the hash index), whose stripe locks guard
/// the item fields: the allocator picks which chunk to take back, the owner says whether it may
/// and unlinks it. Called with a class lock held, so the owner only try_locks a stripe (lock
/// order: stripe, then class).
class ChunkOwner {
 public:
  enum class Take : uint8_t {
    kFree,          // the entry is free
    kBusy,          // stripe busy, entry held or being written, or live with `evict_live` false
    kSecondChance,  // live and read since its last chance: its CLOCK bit is cleared instead
    kReclaimed,     // was expired or flushed: now unlinked, kFree, no reference
    kEvicted,       // was live: now unlinked, kFree, no reference
  };
  /// Takes linked entry `id` (`e`) for reuse if only its link holds it and it is dead, or live
  /// and `evict_live`; `second_chance`: a live one with its CLOCK bit set is spared once.
  virtual Take try_take(uint32_t id, Entry& e, int64_t now, bool evict_live,
                        bool second_chance) = 0;
  /// The store time of `e` when it is linked and its stripe is free right now.
  virtual bool linked_time(const Entry& e, uint32_t* time) const = 0;

 protected:
  ~ChunkOwner() = default;
};

/// Hands out chunks of the arena's slabs, by offset. Each slab class takes whole slabs (fresh
/// ones first, then moved from another class, memcached's slab_reassign + automove) and keeps
/// an LRU for CLOCK eviction. Never reads or writes item bytes, so it never faults. Thread-safe:
/// one spinlock per class, one class lock held at a time; allocates only when a slab is given
/// to a class (first use, or a move between classes whose chunk counts differ).
class SlabAllocator {
 public:
  /// `geometry` must outlive the allocator. `evict`: take live items when full (else only
  /// expired/flushed ones, like memcached -M).
  SlabAllocator(const SlabGeometry& geometry, uint32_t slab_count, bool evict);
  SlabAllocator(const SlabAllocator&) = delete;
  SlabAllocator& operator=(const SlabAllocator&) = delete;

  /// Registers the owner asked before a linked chunk is taken back. Control path, before alloc().
  void set_owner(ChunkOwner* owner) { owner_ = owner; }

  /// The entry of chunk `id` (slab << index_bits | chunk index). Any thread.
  Entry& entry(uint32_t id) const {
    return slabs_[id >> index_bits_].entries[id & ((1u << index_bits_) - 1)];
  }

  /// A chunk for `size` bytes: an entry in state kAllocated with one reference, at the head of
  /// its class's LRU; kNil when there is no memory. May evict or move a slab; never blocks on a
  /// stripe lock, so any caller holding at most one stripe lock may call it.
  uint32_t alloc(uint32_t size, uint64_t hash, int64_t now);

  /// Drops one reference; frees the chunk on the last. Takes the class lock then.
  void unref(uint32_t id) {
    if (entry(id).refs.fetch_sub(1, std::memory_order_acq_rel) == 1) free_entry(id);
  }

  /// Chunks whose bytes are gone (far memory lost every copy of a page under them): true for
  /// the chunk at arena `offset` of `size` bytes.
  using ChunkFilter = std::function<bool(uint64_t offset, uint32_t size)>;
  struct Dropped {
    uint64_t dropped = 0;  // items unlinked and their chunks freed
    uint64_t busy = 0;     // matching chunks held right now (read, being written): not dropped
  };
  /// Unlinks and frees every item whose chunk `gone` names, live or not, without reading its
  /// bytes. Takes each class lock in turn; held items are left (count them, and call again).
  Dropped drop_chunks(const ChunkFilter& gone, int64_t now);

  /// Slabs class `cls` holds now (tests).
  uint32_t class_slabs(int cls) const {
    return classes_[cls].slabs.load(std::memory_order_relaxed);
  }
  /// Adds the slab counts to `st`; takes every class lock briefly.
  void add_stats(StoreStats& st) const;

 private:
  void free_entry(uint32_t id);
  // Chunk i of slab s, just taken from the owner (kFree, no reference): onto the free list.
  void free_taken_locked(ClassState& c, uint32_t s, uint32_t i);
  // A free chunk of the class, or kNil. Class lock held.
  uint32_t pop_free_locked(ClassState& c);
  // Gives the class a never-used slab of the arena; kNil when none is left. Class lock held.
  uint32_t take_fresh_slab_locked(ClassState& c, int cls);
  // Carves slab `s` for class `cls` (every chunk free) and adds it to the class. Class lock held.
  void attach_slab_locked(ClassState& c, int cls, uint32_t s, std::unique_ptr<Entry[]> entries);
  void detach_slab_locked(ClassState& c, uint32_t s);
  void partial_push_locked(ClassState& c, uint32_t s);
  void partial_remove_locked(ClassState& c, uint32_t s);
  uint32_t evict_locked(ClassState& c, int64_t now);
  // Slab rebalancing (slow path, no lock held): empties one slab of another class (the one
  // holding the most slabs) and gives it to `to`. `automove`: only when that class's least
  // recent item is clearly older than `to`'s (own_tail_time, its store time), else whenever it
  // has a slab. True when `to` got a slab.
  [[gnu::cold, gnu::noinline]] bool reassign_slab(int to, int64_t now, bool automove,
                                                  uint32_t own_tail_time);
  // The store time of the class's least recent item, when it is linked and its stripe free.
  // Class lock held.
  bool tail_time_locked(const ClassState& c, uint32_t* time) const;
  // The automove rule, on victim class `v` (its lock held).
  bool older_by_enough(const ClassState& v, uint32_t victim_slabs, uint32_t own_tail_time,
                       int64_t now) const;
  // Evicts every item of slab `s` of class `c` that nobody holds; true when all its chunks are
  // free then. Class lock held; stripes only try_locked (by the owner).
  bool drain_slab_locked(ClassState& c, uint32_t s, int64_t now);
  void lru_push_head_locked(ClassState& c, uint32_t id);
  void lru_remove_locked(ClassState& c, uint32_t id);

  // Read by every allocation; written only when a fresh slab is handed out (next_slab_).
  const SlabGeometry& geometry_;
  const uint32_t index_bits_;  // entry id = slab << index_bits_ | chunk index
  const uint32_t slab_count_;
  const bool evict_;
  ChunkOwner* owner_ = nullptr;
  std::unique_ptr<ClassState[]> classes_;
  std::unique_ptr<SlabInfo[]> slabs_;
  std::atomic<uint32_t> next_slab_{0};
  alignas(64) std::atomic<uint64_t> slabs_moved_{0};
  std::atomic<uint64_t> reassign_evictions_{0};
  std::atomic<uint64_t> reassign_busy_{0};
};

}  // namespace store_internal
}  // namespace fm::kv
