// The key-value store: striped hash index, slab allocator over an Arena, CLOCK eviction.
//
// Invariants (see store.h for the contract):
//  - An entry's state moves kFree -> kAllocated (alloc, class lock) -> kLinked (stripe lock)
//    -> kUnlinked (stripe lock) -> kFree (last unref, class lock); or kAllocated -> kFree when a
//    storage command does not store; or kLinked -> kAllocated directly when eviction takes it
//    (stripe lock held by the evictor while it holds the class lock).
//  - refs counts one for being linked plus one per holder (the allocating writer, each reader).
//    New references are taken only under the stripe lock while linked, so whoever holds the
//    stripe lock and sees refs == 1 knows nobody else can read the item.
//  - Lock order: stripe, then class. The evictor and the slab mover hold a class lock and only
//    try_lock stripes. The mover holds one class lock at a time. The index grower holds
//    expand_lock_ (only ever try_locked) and then one stripe lock at a time, never a class lock.
//  - A slab belongs to one class at a time. It leaves a class only when every chunk of it is
//    free (state kFree under that class's lock, so no reference and no id in any chain or
//    LRU); in between it belongs to the mover alone.
//  - Index growth: bucket b of a 2^p array splits into b and b + 2^p of the doubled one; both
//    have stripe b & stripe_mask_, so moving a bucket under its stripe lock is atomic for every
//    command on its keys. Lookups read the old array until their bucket is marked kMoved.
//  - A key is linked at most once: a store unlinks the old item under the same stripe lock that
//    links the new one.
//  - No lock is held across Arena::pin(): it may fetch and wait (and will yield the fiber).
//    Item bytes are read under a reference with the lock dropped; what was read stays valid
//    while the reference is held, because a chunk's key never changes while it is allocated and
//    its value changes in place only under the stripe lock when refs == 2 (link + the writer).
//    Whoever acts on what it read retakes the lock and checks the item is still linked, live and
//    of the same cas (still_current_locked), else looks again.
//  - A failed pin changes nothing: a fresh chunk goes back (unref), the old item stays linked.
#include "kvapp/store.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <ctime>
#include <limits>
#include <new>
#include <string>

#include "dataplane/check.h"
#include "dataplane/log.h"
#include "kvapp/hash.h"
#include "kvapp/numbers.h"

namespace fm::kv {
namespace {
constexpr uint32_t kNil = std::numeric_limits<uint32_t>::max();
// An old bucket whose chain has moved to the doubled array. Never an entry id: validate() keeps
// ids below 2^32 - 2^(index_bits + 1).
constexpr uint32_t kMoved = kNil - 1;
// Index growth: double past this many linked items per bucket (memcached's 3/2).
constexpr uint64_t kGrowLoadNum = 3, kGrowLoadDen = 2;
// Bounded index work per command: old buckets moved, or stripes passed after the last move.
constexpr uint32_t kExpandBucketsPerStep = 8;
constexpr uint32_t kSweepStripesPerStep = 64;
// A class that keeps evicting checks every this many evictions whether a class with more slabs
// holds older items, and takes a slab from it instead (memcached's slab_automove, by age).
constexpr uint32_t kAutomoveEvery = 64;
// Slabs a move tries (an item may be held, or its stripe busy) before this request gives up.
constexpr uint32_t kReassignAttempts = 3;
enum ExpandPhase : uint8_t { kIdle = 0, kMigrating = 1, kSweeping = 2 };
enum EntryState : uint8_t { kFree = 0, kAllocated, kLinked, kUnlinked };
constexpr uint64_t kMiB = 1ull << 20;
constexpr const char* kTag = "kv";

// Unix seconds in an entry: 0 stays "never"; the rest is clamped to [1, 2^32-1].
uint32_t clamp_time(int64_t t) {
  if (t <= 0) return t == 0 ? 0 : 1;
  if (t > std::numeric_limits<uint32_t>::max()) return std::numeric_limits<uint32_t>::max();
  return static_cast<uint32_t>(t);
}

// memcached's incr/decr on a value's text: false when it is not a decimal uint64 (leading
// whitespace and trailing whitespace/NUL allowed). Else the new value and its digits.
struct DeltaDigits {
  uint64_t value = 0;
  uint32_t len = 0;
  char digits[24];
  std::span<const uint8_t> span() const { return {reinterpret_cast<const uint8_t*>(digits), len}; }
};
bool compute_delta(const std::byte* text, uint32_t text_len, bool incr, uint64_t delta,
                   DeltaDigits* out) {
  uint64_t value = 0;
  if (text_len == 0 ||
      !parse_u64(std::string_view(reinterpret_cast<const char*>(text), text_len), &value)) {
    return false;
  }
  if (incr) {
    value += delta;  // wraps modulo 2^64, like memcached
  } else {
    value = delta > value ? 0 : value - delta;
  }
  const auto [end, ec] = std::to_chars(out->digits, out->digits + sizeof(out->digits), value);
  FM_DCHECK(ec == std::errc());
  out->value = value;
  out->len = static_cast<uint32_t>(end - out->digits);
  return true;
}

// Writes `d` over a value of `value_len` >= d.len bytes, padded with spaces like memcached.
void write_in_place(std::byte* value_bytes, uint32_t value_len, const DeltaDigits& d) {
  std::memcpy(value_bytes, d.digits, d.len);
  std::memset(value_bytes + d.len, ' ', value_len - d.len);
}

}  // namespace

// Local metadata of one chunk. Item fields are guarded by the stripe lock of `hash` while the
// entry is linked; LRU links and the free list by the class lock.
struct Store::Entry {
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
  std::atomic<uint32_t> refs{0};
};

struct alignas(64) Store::Stripe {
  SpinLock lock;
  uint64_t curr_items = 0;
  uint64_t bytes = 0;
  uint64_t total_items = 0;
};

struct alignas(64) Store::ClassState {
  SpinLock lock;
  uint32_t partial_head = kNil;  // slabs of this class that may have a free chunk (a full one
                                 // leaves when pop_free_locked meets it)
  uint32_t slab_head = kNil;     // every slab of this class
  uint32_t lru_head = kNil;      // most recently stored
  uint32_t lru_tail = kNil;      // eviction starts here
  uint32_t lru_size = 0;
  uint32_t evictions_since_check = 0;  // toward the next automove check
  std::atomic<uint32_t> slabs{0};  // written under the lock; read without it to pick a victim
  uint64_t chunks_used = 0;        // allocated chunks (not free)
  uint64_t evictions = 0;
  uint64_t reclaimed = 0;
};

// One slab of the arena. Guarded by its class's lock (by the mover alone while it has none).
struct Store::SlabInfo {
  std::unique_ptr<Entry[]> entries;  // published under the class lock before any id escapes
  uint32_t chunks = 0;               // entries in `entries`
  uint32_t free_head = kNil;         // free chunks of this slab, through Entry::chain_next
  uint32_t free_count = 0;
  uint32_t partial_prev = kNil, partial_next = kNil;  // ClassState::partial_head list
  uint32_t class_prev = kNil, class_next = kNil;      // every slab of the class
  bool in_partial = false;
};

// A bucket array; the buckets follow the header in the same allocation. Never initialized
// beyond the constructor's: a doubled array's buckets are written when their old bucket moves.
struct Store::Table {
  uint64_t mask = 0;
  uint32_t power = 0;
  uint32_t* buckets() { return reinterpret_cast<uint32_t*>(this + 1); }
  uint64_t bytes() const { return (mask + 1) * sizeof(uint32_t); }

  static Table* create(uint32_t power) {
    void* p = ::operator new(sizeof(Table) + (sizeof(uint32_t) << power), std::nothrow);
    if (p == nullptr) return nullptr;
    Table* t = new (p) Table;
    t->mask = (uint64_t{1} << power) - 1;
    t->power = power;
    return t;
  }
  static void destroy(Table* t) {
    if (t != nullptr) ::operator delete(t);
  }
};

Result<std::unique_ptr<Store>> Store::create(const StoreOptions& options,
                                             std::unique_ptr<Arena> arena,
                                             const HashKey* fixed_key) {
  FM_RETURN_IF_ERROR(options.validate());
  auto geometry = SlabGeometry::build(options.item_size_max, options.slab_growth_factor);
  if (!geometry) return geometry.status();
  const uint64_t bytes = uint64_t{options.memory_mb} * kMiB;
  if (arena == nullptr) {
    auto local = LocalArena::create(bytes);
    if (!local) return local.status();
    arena = std::move(local).value();
  } else if (arena->size_bytes() < bytes) {
    return error(Errc::kInvalidArgument, "kv.memory_mb (" + std::to_string(options.memory_mb) +
                                             " MiB) exceeds the arena given (" +
                                             std::to_string(arena->size_bytes()) + " bytes)");
  }
  HashKey key;
  if (fixed_key != nullptr) {
    key = *fixed_key;
  } else if (!random_hash_key(&key)) {
    return error(Errc::kInternal, "kv store: libsodium could not initialize (no entropy source)");
  }
  Table* table = Table::create(options.hash_power);
  if (table == nullptr) {
    return error(Errc::kResourceExhausted,
                 "kv.hash_power " + std::to_string(options.hash_power) +
                     ": no memory for the hash table");
  }
  auto store = std::unique_ptr<Store>(
      new Store(options, std::move(geometry).value(), std::move(arena), key));
  std::fill_n(table->buckets(), table->mask + 1, kNil);
  store->table_.store(table, std::memory_order_release);
  store->grow_at_.store(options.hash_power < options.hash_power_max
                            ? (table->mask + 1) * kGrowLoadNum / kGrowLoadDen
                            : std::numeric_limits<uint64_t>::max(),
                        std::memory_order_relaxed);
  return store;
}

Store::Store(const StoreOptions& options, SlabGeometry geometry, std::unique_ptr<Arena> arena,
             const HashKey& key)
    : options_(options),
      geometry_(std::move(geometry)),
      arena_(std::move(arena)),
      hash_key_(key),
      started_at_(static_cast<int64_t>(std::time(nullptr))) {
  index_bits_ = geometry_.index_bits();
  slab_count_ = static_cast<uint32_t>(uint64_t{options_.memory_mb} * kMiB / geometry_.slab_bytes());
  // Stripes never change: a doubling keeps every bucket under its stripe.
  const uint64_t stripes = std::min<uint64_t>(uint64_t{1} << options_.hash_power, kMaxLockStripes);
  stripe_mask_ = stripes - 1;
  stripes_ = std::make_unique<Stripe[]>(stripes);
  classes_ = std::make_unique<ClassState[]>(geometry_.class_count());
  slabs_ = std::make_unique<SlabInfo[]>(slab_count_);
}

Store::~Store() {
  Table::destroy(table_.load(std::memory_order_relaxed));
  Table::destroy(old_table_.load(std::memory_order_relaxed));
  Table::destroy(retiring_);
}

// ---------------------------------------------------------------------------------------------
// Index

Store::Entry& Store::entry(uint32_t id) const {
  static_assert(sizeof(Entry) <= 64, "keep the per-chunk metadata within a cache line");
  return slabs_[id >> index_bits_].entries[id & ((1u << index_bits_) - 1)];
}

Store::Stripe& Store::stripe_for(uint64_t hash) const { return stripes_[hash & stripe_mask_]; }

inline uint32_t& Store::bucket_for(uint64_t hash) const {
  // The current array first: a reader that sees a doubled array also sees its old one (both
  // published before any bucket moves), and one that sees the previous array holds a stripe lock
  // that no bucket move of it has taken yet.
  Table* cur = table_.load(std::memory_order_acquire);
  Table* old = old_table_.load(std::memory_order_acquire);
  if (old != nullptr && old != cur) [[unlikely]] {
    uint32_t& b = old->buckets()[hash & old->mask];
    if (b != kMoved) return b;
  }
  return cur->buckets()[hash & cur->mask];
}

bool Store::is_live(const Entry& e, int64_t now) const {
  if (e.expires_at != 0 && e.expires_at <= now) return false;
  if (e.cas < floor_cas_.load(std::memory_order_acquire)) return false;
  if (e.time < floor_time_.load(std::memory_order_acquire)) return false;
  const int64_t pending = pending_flush_at_.load(std::memory_order_acquire);
  if (pending != 0 && pending <= now && e.time < pending) return false;
  return true;
}

bool Store::still_current_locked(const Handle& h, int64_t now) const {
  const Entry& e = entry(h.id);
  return e.state == kLinked && e.cas == h.cas && is_live(e, now);
}

uint32_t* Store::link_to_locked(uint64_t hash, uint32_t id) const {
  uint32_t* link = &bucket_for(hash);
  while (*link != id) {
    FM_DCHECK(*link != kNil);
    link = &entry(*link).chain_next;
  }
  return link;
}

inline uint32_t Store::find_candidate_locked(Stripe& s, uint64_t hash, size_t len, int64_t now,
                                             const KeySkips& skips, uint32_t** link_out,
                                             Lookup* why) {
  *why = Lookup::kMiss;
  uint32_t* link = &bucket_for(hash);
  while (*link != kNil) {
    const uint32_t id = *link;
    Entry& e = entry(id);
    if (e.hash == hash && e.key_len == len && !skips.contains(id, e.cas)) {
      if (is_live(e, now)) {
        *link_out = link;
        return id;
      }
      // Dead whatever its key: reclaim it. (Were it another key with the same 64-bit hash, the
      // miss would be reported as expired/flushed: only a counter would differ.)
      *why = (e.expires_at != 0 && e.expires_at <= now) ? Lookup::kExpired : Lookup::kFlushed;
      unlink_locked(s, id, link);  // *link now names the next entry
      linked_items_.fetch_sub(1, std::memory_order_relaxed);
      continue;
    }
    link = &e.chain_next;
  }
  return kNil;
}

uint32_t Store::find_live_locked(Stripe& s, uint64_t hash, std::string_view key, int64_t now,
                                 uint32_t** link_out, Lookup* why, uint32_t* held) {
  *held = kNil;
  uint32_t* link = nullptr;
  const uint32_t id = find_candidate_locked(s, hash, key.size(), now, KeySkips{}, &link, why);
  if (id == kNil) return kNil;
  // Fast path: the candidate's key can be read without waiting (always, for local memory), so
  // compare it under the lock.
  const Entry& e = entry(id);
  if (std::byte* p = arena_->try_pin(e.offset, e.key_len, Access::kRead)) {
    const bool equal = std::memcmp(p, key.data(), key.size()) == 0;
    arena_->unpin(e.offset, e.key_len, p);
    if (equal) [[likely]] {
      *link_out = link;
      *why = Lookup::kHit;
      return id;
    }
  }
  return find_live_slow_locked(s, hash, key, now, link_out, why, held);
}

uint32_t Store::find_live_slow_locked(Stripe& s, uint64_t hash, std::string_view key, int64_t now,
                                      uint32_t** link_out, Lookup* why, uint32_t* held) {
  KeySkips skips;
  Lookup dead = *why;  // what the fast path's search reclaimed, if anything
  for (;;) {
    uint32_t* link = nullptr;
    Lookup w;
    const uint32_t id = find_candidate_locked(s, hash, key.size(), now, skips, &link, &w);
    if (w != Lookup::kMiss) dead = w;
    if (id == kNil) {
      *why = dead;
      return kNil;
    }
    Entry& e = entry(id);
    const uint64_t cas = e.cas;
    bool equal;
    if (std::byte* p = arena_->try_pin(e.offset, e.key_len, Access::kRead)) {
      equal = std::memcmp(p, key.data(), key.size()) == 0;
      arena_->unpin(e.offset, e.key_len, p);
      if (equal) {
        *link_out = link;
        *why = Lookup::kHit;
        return id;
      }
    } else {
      // The pin may wait: hold a reference instead of the lock while it does.
      e.refs.fetch_add(1, std::memory_order_relaxed);
      const uint64_t offset = e.offset;
      const uint32_t len = e.key_len;
      s.lock.unlock();
      std::byte* q = arena_->pin(offset, len, Access::kRead);
      equal = q != nullptr && std::memcmp(q, key.data(), key.size()) == 0;
      if (q != nullptr) arena_->unpin(offset, len, q);
      s.lock.lock();
      if (q == nullptr) {
        unref(id);
        note_far_error();
        *why = Lookup::kUnavailable;
        return kNil;
      }
      if (equal) {
        if (e.state == kLinked && is_live(e, now)) {
          *link_out = link_to_locked(hash, id);
          *held = id;
          *why = Lookup::kHit;
          return id;
        }
        // Unlinked or dead while the lock was dropped: look again (a replacement may be there).
        unref(id);
        retries_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      unref(id);
    }
    if (skips.n == KeySkips::kMax) {
      FM_LOG_FIRST_N(LogLevel::kError, 5, kTag, "more than {} keys share one 64-bit key hash",
                     KeySkips::kMax);
      note_far_error();
      *why = Lookup::kUnavailable;
      return kNil;
    }
    skips.id[skips.n] = id;
    skips.cas[skips.n] = cas;
    ++skips.n;
  }
}

void Store::link_locked(Stripe& s, uint32_t id, uint32_t* at) {
  Entry& e = entry(id);
  e.chain_next = *at;
  *at = id;
  e.state = kLinked;
  e.refs.fetch_add(1, std::memory_order_relaxed);
  s.curr_items++;
  s.total_items++;
  s.bytes += e.key_len + e.value_len;
}

void Store::unlink_locked(Stripe& s, uint32_t id, uint32_t* link) {
  Entry& e = entry(id);
  FM_DCHECK(*link == id && e.state == kLinked);
  *link = e.chain_next;
  e.chain_next = kNil;
  e.state = kUnlinked;
  s.curr_items--;
  s.bytes -= e.key_len + e.value_len;
  unref(id);
}

void Store::unchain_locked(Stripe& s, uint32_t id) {
  Entry& e = entry(id);
  uint32_t* link = &bucket_for(e.hash);
  while (*link != id) link = &entry(*link).chain_next;
  *link = e.chain_next;
  e.chain_next = kNil;
  s.curr_items--;
  s.bytes -= e.key_len + e.value_len;
  linked_items_.fetch_sub(1, std::memory_order_relaxed);
}

void Store::unref(uint32_t id) {
  if (entry(id).refs.fetch_sub(1, std::memory_order_acq_rel) == 1) free_entry(id);
}

void Store::free_entry(uint32_t id) {
  Entry& e = entry(id);
  // e.cls is stable: a slab changes class only once all its entries are kFree, and this one is
  // not until the line below.
  ClassState& c = classes_[e.cls];
  c.lock.lock();
  lru_remove_locked(c, id);
  e.state = kFree;
  SlabInfo& si = slabs_[id >> index_bits_];
  e.chain_next = si.free_head;
  si.free_head = id;
  si.free_count++;
  if (!si.in_partial) partial_push_locked(c, id >> index_bits_);
  c.chunks_used--;
  c.lock.unlock();
}

// ---------------------------------------------------------------------------------------------
// Slab allocation and eviction

void Store::lru_push_head_locked(ClassState& c, uint32_t id) {
  Entry& e = entry(id);
  e.lru_prev = kNil;
  e.lru_next = c.lru_head;
  if (c.lru_head != kNil) entry(c.lru_head).lru_prev = id;
  c.lru_head = id;
  if (c.lru_tail == kNil) c.lru_tail = id;
  c.lru_size++;
}

void Store::lru_remove_locked(ClassState& c, uint32_t id) {
  Entry& e = entry(id);
  if (e.lru_prev != kNil) {
    entry(e.lru_prev).lru_next = e.lru_next;
  } else {
    c.lru_head = e.lru_next;
  }
  if (e.lru_next != kNil) {
    entry(e.lru_next).lru_prev = e.lru_prev;
  } else {
    c.lru_tail = e.lru_prev;
  }
  e.lru_prev = e.lru_next = kNil;
  c.lru_size--;
}

void Store::partial_push_locked(ClassState& c, uint32_t s) {
  SlabInfo& si = slabs_[s];
  FM_DCHECK(!si.in_partial);
  si.partial_prev = kNil;
  si.partial_next = c.partial_head;
  if (c.partial_head != kNil) slabs_[c.partial_head].partial_prev = s;
  c.partial_head = s;
  si.in_partial = true;
}

void Store::partial_remove_locked(ClassState& c, uint32_t s) {
  SlabInfo& si = slabs_[s];
  if (!si.in_partial) return;
  if (si.partial_prev != kNil) {
    slabs_[si.partial_prev].partial_next = si.partial_next;
  } else {
    c.partial_head = si.partial_next;
  }
  if (si.partial_next != kNil) slabs_[si.partial_next].partial_prev = si.partial_prev;
  si.partial_prev = si.partial_next = kNil;
  si.in_partial = false;
}

uint32_t Store::pop_free_locked(ClassState& c) {
  // A slab leaves the partial list lazily, when found empty here: a free followed by an
  // allocation (every overwrite when full) then touches the list not at all.
  uint32_t s = c.partial_head;
  while (s != kNil && slabs_[s].free_count == 0) {
    const uint32_t next = slabs_[s].partial_next;
    partial_remove_locked(c, s);
    s = next;
  }
  if (s == kNil) return kNil;
  SlabInfo& si = slabs_[s];
  const uint32_t id = si.free_head;
  FM_DCHECK(id != kNil);
  si.free_head = entry(id).chain_next;
  --si.free_count;
  c.chunks_used++;
  return id;
}

void Store::attach_slab_locked(ClassState& c, int cls, uint32_t s,
                               std::unique_ptr<Entry[]> entries) {
  const SlabClass& geo = geometry_.cls(cls);
  const uint64_t base = uint64_t{s} * geometry_.slab_bytes();
  // Every chunk free, in offset order (the free list pops from the front).
  for (uint32_t i = 0; i < geo.chunks_per_slab; ++i) {
    Entry& e = entries[i];
    e.offset = base + SlabGeometry::chunk_offset_in_slab(geo, i);
    e.cls = static_cast<uint8_t>(cls);
    e.state = kFree;
    e.refs.store(0, std::memory_order_relaxed);
    e.clock.store(0, std::memory_order_relaxed);
    e.lru_prev = e.lru_next = kNil;
    e.chain_next = i + 1 < geo.chunks_per_slab ? ((s << index_bits_) | (i + 1)) : kNil;
  }
  SlabInfo& si = slabs_[s];
  si.entries = std::move(entries);
  si.chunks = geo.chunks_per_slab;
  si.free_head = s << index_bits_;
  si.free_count = geo.chunks_per_slab;
  si.in_partial = false;
  partial_push_locked(c, s);
  si.class_prev = kNil;
  si.class_next = c.slab_head;
  if (c.slab_head != kNil) slabs_[c.slab_head].class_prev = s;
  c.slab_head = s;
  c.slabs.store(c.slabs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void Store::detach_slab_locked(ClassState& c, uint32_t s) {
  SlabInfo& si = slabs_[s];
  FM_DCHECK(si.free_count == si.chunks);
  partial_remove_locked(c, s);
  if (si.class_prev != kNil) {
    slabs_[si.class_prev].class_next = si.class_next;
  } else {
    c.slab_head = si.class_next;
  }
  if (si.class_next != kNil) slabs_[si.class_next].class_prev = si.class_prev;
  si.class_prev = si.class_next = kNil;
  si.free_head = kNil;
  si.free_count = 0;
  c.slabs.store(c.slabs.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

uint32_t Store::take_fresh_slab_locked(ClassState& c, int cls) {
  // A CAS loop rather than fetch_add so failed attempts never wrap.
  uint32_t s = next_slab_.load(std::memory_order_relaxed);
  do {
    if (s >= slab_count_) return kNil;
  } while (!next_slab_.compare_exchange_weak(s, s + 1, std::memory_order_relaxed));
  // Allocates on a request path: once per slab of the arena, when a class first needs it.
  std::unique_ptr<Entry[]> entries(new (std::nothrow) Entry[geometry_.cls(cls).chunks_per_slab]);
  FM_CHECK_MSG(entries != nullptr, "out of local memory for kv slab metadata");
  attach_slab_locked(c, cls, s, std::move(entries));
  return pop_free_locked(c);
}

uint32_t Store::evict_locked(ClassState& c, int64_t now) {
  uint32_t skips = 0;
  uint32_t second_chances = 0;
  uint32_t id = c.lru_tail;
  while (id != kNil) {
    Entry& e = entry(id);
    const uint32_t prev = e.lru_prev;
    Stripe& s = stripe_for(e.hash);  // hash is fixed while the entry is allocated
    if (s.lock.try_lock()) {
      if (e.state == kLinked && e.refs.load(std::memory_order_acquire) == 1) {
        const bool dead = !is_live(e, now);
        if (dead || options_.evict) {
          if (!dead && e.clock.load(std::memory_order_relaxed) != 0 &&
              second_chances < c.lru_size) {
            // CLOCK: a recently read item goes round once more.
            e.clock.store(0, std::memory_order_relaxed);
            s.lock.unlock();
            lru_remove_locked(c, id);
            lru_push_head_locked(c, id);
            ++second_chances;
            id = prev;
            continue;
          }
          take_linked_unlock(s, c, id, e);
          if (dead) {
            c.reclaimed++;
          } else {
            c.evictions++;
          }
          return id;
        }
      }
      s.lock.unlock();
    }
    if (++skips > kEvictionSkipLimit) break;
    id = prev;
  }
  return kNil;
}

void Store::take_linked_unlock(Stripe& s, ClassState& c, uint32_t id, Entry& e) {
  unchain_locked(s, id);
  e.refs.store(0, std::memory_order_relaxed);
  e.state = kFree;
  s.lock.unlock();
  lru_remove_locked(c, id);
}

bool Store::drain_slab_locked(ClassState& c, uint32_t s, int64_t now) {
  SlabInfo& si = slabs_[s];
  bool busy = false;
  for (uint32_t i = 0; i < si.chunks; ++i) {
    const uint32_t id = (s << index_bits_) | i;
    Entry& e = si.entries[i];
    // State is read under the stripe of e.hash (fixed while allocated; for a free entry any
    // stripe will do, and its state cannot change while we hold the class lock).
    Stripe& st = stripe_for(e.hash);
    if (!st.lock.try_lock()) {
      busy = true;
      continue;
    }
    if (e.state == kFree) {
      st.lock.unlock();
      continue;
    }
    const bool dead = e.state == kLinked && !is_live(e, now);
    // Allocated (being written), unlinked with readers left, or read now: it has holders. With
    // eviction off (-M), live items are never taken either.
    if (e.state != kLinked || e.refs.load(std::memory_order_acquire) != 1 ||
        (!dead && !options_.evict)) {
      st.lock.unlock();
      busy = true;
      continue;
    }
    // Metadata only: the item's bytes are never read, so no far-memory fetch.
    take_linked_unlock(st, c, id, e);
    e.chain_next = si.free_head;
    si.free_head = id;
    si.free_count++;
    if (!si.in_partial) partial_push_locked(c, s);
    c.chunks_used--;
    if (dead) {
      c.reclaimed++;
    } else {
      reassign_evictions_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return !busy && si.free_count == si.chunks;
}

bool Store::tail_time_locked(const ClassState& c, uint32_t* time) const {
  if (c.lru_tail == kNil) return false;
  const Entry& e = entry(c.lru_tail);
  // Item fields are the stripe's: a tail being written or locked right now gives no answer.
  Stripe& st = stripe_for(e.hash);
  if (!st.lock.try_lock()) return false;
  const bool linked = e.state == kLinked;
  if (linked) *time = e.time;
  st.lock.unlock();
  return linked;
}

bool Store::older_by_enough(const ClassState& v, uint32_t victim_slabs, uint32_t own_tail_time,
                            int64_t now) const {
  // memcached's automove: move when the needy class's oldest item is well younger than the
  // victim's (ratio 0.8), so item lifetimes even out across classes. The victim keeps a slab.
  uint32_t victim_time = 0;
  if (victim_slabs < 2 || !tail_time_locked(v, &victim_time)) return false;
  const int64_t victim_age = now - int64_t{victim_time};
  const int64_t own_age = now - int64_t{own_tail_time};
  return own_age * 5 < victim_age * 4;
}

bool Store::reassign_slab(int to, int64_t now, bool automove, uint32_t own_tail_time) {
  uint32_t tried_slab = kNil;
  int tried_cls = -1;
  for (uint32_t attempt = 0; attempt < kReassignAttempts; ++attempt) {
    // The victim: the class holding the most slabs (a racy read; rechecked under its lock).
    int victim = -1;
    uint32_t most = 0;
    for (size_t i = 0; i < geometry_.class_count(); ++i) {
      const uint32_t n = classes_[i].slabs.load(std::memory_order_relaxed);
      if (static_cast<int>(i) != to && n > most) {
        most = n;
        victim = static_cast<int>(i);
      }
    }
    if (victim < 0) return false;
    ClassState& v = classes_[victim];
    v.lock.lock();
    const uint32_t slabs = v.slabs.load(std::memory_order_relaxed);
    if (slabs == 0 || (automove && !older_by_enough(v, slabs, own_tail_time, now))) {
      v.lock.unlock();
      return false;
    }
    // The slab: one already empty if the first few partial slabs have one; else the slab of
    // the least recently stored item; on a retry in the same class, the next slab of the class.
    uint32_t slab = kNil;
    uint32_t looked = 0;
    for (uint32_t p = v.partial_head; p != kNil && looked < 16; p = slabs_[p].partial_next) {
      if (slabs_[p].free_count == slabs_[p].chunks) {
        slab = p;
        break;
      }
      ++looked;
    }
    if (slab == kNil) {
      if (tried_cls == victim && tried_slab != kNil && slabs_[tried_slab].class_next != kNil) {
        slab = slabs_[tried_slab].class_next;
      } else if (v.lru_tail != kNil) {
        slab = v.lru_tail >> index_bits_;
      } else {
        slab = v.slab_head;
      }
    }
    if (slab == kNil || !drain_slab_locked(v, slab, now)) {
      reassign_busy_.fetch_add(1, std::memory_order_relaxed);
      v.lock.unlock();
      tried_cls = victim;
      tried_slab = slab;
      if (automove) return false;
      continue;
    }
    detach_slab_locked(v, slab);
    v.lock.unlock();

    // The slab is ours alone now: re-carve it, allocating metadata only if the count differs.
    SlabInfo& si = slabs_[slab];
    std::unique_ptr<Entry[]> entries;
    std::unique_ptr<Entry[]> old_entries;
    const uint32_t chunks = geometry_.cls(to).chunks_per_slab;
    if (si.chunks == chunks) {
      entries = std::move(si.entries);
    } else {
      entries.reset(new (std::nothrow) Entry[chunks]);
      FM_CHECK_MSG(entries != nullptr, "out of local memory for kv slab metadata");
      old_entries = std::move(si.entries);
    }
    ClassState& c = classes_[to];
    c.lock.lock();
    attach_slab_locked(c, to, slab, std::move(entries));
    c.lock.unlock();
    slabs_moved_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  return false;
}

uint32_t Store::alloc(uint32_t size, uint64_t hash, int64_t now) {
  const int cls = geometry_.class_for(size);
  FM_DCHECK(cls >= 0);
  ClassState& c = classes_[cls];
  c.lock.lock();
  uint32_t id = pop_free_locked(c);
  if (id == kNil) id = take_fresh_slab_locked(c, cls);
  bool automove = false;
  uint32_t tail_time = 0;
  if (id == kNil) {
    // Full: evict our own least recent item, except now and then, when another class may hold
    // more memory with older items; then try to take a slab from it first.
    if (++c.evictions_since_check >= kAutomoveEvery) {
      c.evictions_since_check = 0;
      automove = tail_time_locked(c, &tail_time);
    }
    if (!automove) id = evict_locked(c, now);  // an evicted chunk was in use and stays so
  }
  if (id == kNil) [[unlikely]] {
    // Nothing of our own to reuse (or automove's turn): move a slab from another class.
    c.lock.unlock();
    reassign_slab(cls, now, automove, tail_time);
    c.lock.lock();
    id = pop_free_locked(c);
    if (id == kNil) id = evict_locked(c, now);
  }
  if (id != kNil) {
    Entry& e = entry(id);
    e.hash = hash;
    e.state = kAllocated;
    e.chain_next = kNil;
    e.refs.store(1, std::memory_order_relaxed);
    e.clock.store(0, std::memory_order_relaxed);
    lru_push_head_locked(c, id);
  }
  c.lock.unlock();
  return id;
}

bool Store::fill_item(uint32_t id, std::string_view key, std::span<const uint8_t> a,
                      std::span<const uint8_t> b, uint32_t pad, uint32_t flags, int64_t expires_at,
                      int64_t now, bool try_only) {
  Entry& e = entry(id);
  const uint32_t value_len = static_cast<uint32_t>(a.size() + b.size()) + pad;
  const uint32_t len = static_cast<uint32_t>(key.size()) + value_len;
  std::byte* p = try_only ? arena_->try_pin(e.offset, len, Access::kOverwrite)
                          : arena_->pin(e.offset, len, Access::kOverwrite);
  if (p == nullptr) [[unlikely]] {
    if (!try_only) note_far_error();
    return false;
  }
  std::byte* const start = p;
  std::memcpy(p, key.data(), key.size());
  p += key.size();
  if (!a.empty()) std::memcpy(p, a.data(), a.size());
  p += a.size();
  if (!b.empty()) std::memcpy(p, b.data(), b.size());
  p += b.size();
  std::memset(p, ' ', pad);
  arena_->unpin(e.offset, len, start);
  e.key_len = static_cast<uint8_t>(key.size());
  e.value_len = value_len;
  e.flags = flags;
  e.expires_at = clamp_time(expires_at);
  e.time = clamp_time(now);
  return true;
}

bool Store::relink_if_current(Stripe& s, const Handle& h, uint32_t id, int64_t now,
                              uint64_t* cas_out) {
  s.lock.lock();
  const bool current = still_current_locked(h, now);
  if (current) replace_locked(s, h, id, cas_out);
  s.lock.unlock();
  unref(id);
  release(h.id);
  if (!current) retries_.fetch_add(1, std::memory_order_relaxed);
  return current;
}

void Store::replace_locked(Stripe& s, const Handle& old, uint32_t id, uint64_t* cas_out) {
  const Entry& o = entry(old.id);
  Entry& e = entry(id);
  e.flags = o.flags;  // now, not as read: a touch may have come in between
  e.expires_at = o.expires_at;
  e.cas = next_cas();
  if (cas_out != nullptr) *cas_out = e.cas;
  unlink_locked(s, old.id, link_to_locked(old.hash, old.id));
  link_locked(s, id, &bucket_for(old.hash));
}

void Store::note_far_error() { far_errors_.fetch_add(1, std::memory_order_relaxed); }

Lookup Store::read_failed(uint32_t id) {
  release(id);
  note_far_error();
  return Lookup::kUnavailable;
}

bool Store::skip_candidate(KeySkips& skips, const Handle& h) {
  release(h.id);
  if (skips.n == KeySkips::kMax) {
    FM_LOG_FIRST_N(LogLevel::kError, 5, kTag, "more than {} keys share one 64-bit key hash",
                   KeySkips::kMax);
    note_far_error();
    return false;
  }
  skips.id[skips.n] = h.id;
  skips.cas[skips.n] = h.cas;
  ++skips.n;
  return true;
}

int64_t Store::touch_held(const Handle& h, int64_t expires_at) {
  const uint32_t t = clamp_time(expires_at);
  Stripe& s = stripe_for(h.hash);
  s.lock.lock();
  Entry& e = entry(h.id);
  // Replaced since it was read: the gat took effect just before the replacement.
  if (e.state == kLinked) e.expires_at = t;
  s.lock.unlock();
  return t;
}

// ---------------------------------------------------------------------------------------------
// Index growth

void Store::expand_step() {
  // Whoever holds it is doing a bounded step; nobody waits for it.
  if (!expand_lock_.try_lock()) return;
  switch (expand_phase_.load(std::memory_order_relaxed)) {
    case kIdle:
      if (linked_items_.load(std::memory_order_relaxed) > grow_at_.load(std::memory_order_relaxed)) {
        start_expansion_locked();
      }
      break;
    case kMigrating:
      migrate_buckets_locked();
      break;
    default:
      sweep_stripes_locked();
      break;
  }
  expand_lock_.unlock();
}

void Store::start_expansion_locked() {
  Table* cur = table_.load(std::memory_order_relaxed);
  if (cur->power >= options_.hash_power_max) {
    grow_at_.store(std::numeric_limits<uint64_t>::max(), std::memory_order_relaxed);
    return;
  }
  // Not initialized: each bucket pair is written when its old bucket moves, so the only cost
  // here is the allocation (the kernel commits the pages as moves touch them).
  Table* bigger = Table::create(cur->power + 1);
  if (bigger == nullptr) {
    FM_LOG_FIRST_N(LogLevel::kError, 1, kTag,
                   "no memory to grow the hash table to 2^{} buckets; it stays at 2^{}",
                   cur->power + 1, cur->power);
    grow_at_.store(std::numeric_limits<uint64_t>::max(), std::memory_order_relaxed);
    return;
  }
  expand_next_ = 0;
  // Old first, then current (bucket_for reads them in the opposite order), then the phase: a
  // bucket moves only after all three are visible to whoever takes its stripe lock next.
  old_table_.store(cur, std::memory_order_release);
  table_.store(bigger, std::memory_order_release);
  grow_at_.store(bigger->power < options_.hash_power_max
                     ? (bigger->mask + 1) * kGrowLoadNum / kGrowLoadDen
                     : std::numeric_limits<uint64_t>::max(),
                 std::memory_order_relaxed);
  expand_phase_.store(kMigrating, std::memory_order_release);
}

void Store::migrate_buckets_locked() {
  Table* old = old_table_.load(std::memory_order_relaxed);
  Table* cur = table_.load(std::memory_order_relaxed);
  const uint64_t old_size = old->mask + 1;
  for (uint32_t k = 0; k < kExpandBucketsPerStep && expand_next_ < old_size; ++k) {
    const uint64_t b = expand_next_++;
    Stripe& s = stripes_[b & stripe_mask_];
    s.lock.lock();
    uint32_t lo = kNil, hi = kNil;  // chains of buckets b and b + old_size
    for (uint32_t id = old->buckets()[b]; id != kNil;) {
      Entry& e = entry(id);
      const uint32_t next = e.chain_next;
      uint32_t& head = (e.hash & old_size) != 0 ? hi : lo;
      e.chain_next = head;
      head = id;
      id = next;
    }
    cur->buckets()[b] = lo;
    cur->buckets()[b + old_size] = hi;
    old->buckets()[b] = kMoved;
    s.lock.unlock();
  }
  if (expand_next_ == old_size) {
    // Every bucket moved: unpublish the old array, and free it once every stripe lock has been
    // passed (whoever read the old pointer did so under one of them).
    old_table_.store(nullptr, std::memory_order_release);
    retiring_ = old;
    sweep_next_ = 0;
    expand_phase_.store(kSweeping, std::memory_order_relaxed);
  }
}

void Store::sweep_stripes_locked() {
  for (uint32_t k = 0; k < kSweepStripesPerStep && sweep_next_ <= stripe_mask_; ++k) {
    Stripe& s = stripes_[sweep_next_++];
    s.lock.lock();
    s.lock.unlock();
  }
  if (sweep_next_ > stripe_mask_) {
    Table::destroy(retiring_);
    retiring_ = nullptr;
    hash_expansions_.fetch_add(1, std::memory_order_relaxed);
    expand_phase_.store(kIdle, std::memory_order_relaxed);
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

StoreOutcome Store::drop_old_on_failed_set(const StoreRequest& r, int64_t now, StoreOutcome why) {
  if (r.mode != StoreMode::kSet) return why;
  return remove(r.key, now) == Lookup::kUnavailable ? StoreOutcome::kUnavailable : why;
}

StoreOutcome Store::store(const StoreRequest& r, int64_t now, uint64_t* cas_out) {
  if (r.key.empty() || r.key.size() > kKeyMaxLength) return StoreOutcome::kBadKey;
  help_index();  // no lock held: the one bounded step of index growth this command may take
  const uint64_t hash = hash_key(r.key, hash_key_);
  if (r.mode == StoreMode::kAppend || r.mode == StoreMode::kPrepend) {
    return store_concat(r, hash, now, cas_out);
  }
  const uint64_t size = r.key.size() + r.value.size();
  if (size > options_.item_size_max) {
    return drop_old_on_failed_set(r, now, StoreOutcome::kTooLarge);
  }
  // Allocate and copy before taking the stripe lock: a fresh chunk is overwritten whole, so it
  // needs no fetch of its own bytes, and no lock is held while the value is copied.
  const uint32_t id = alloc(static_cast<uint32_t>(size), hash, now);
  if (id == kNil) return drop_old_on_failed_set(r, now, StoreOutcome::kNoMemory);
  if (!fill_item(id, r.key, r.value, {}, 0, r.flags, r.expires_at, now)) {
    unref(id);  // the chunk goes back; the old item was never touched
    return StoreOutcome::kUnavailable;
  }

  Stripe& s = stripe_for(hash);
  StoreOutcome out = StoreOutcome::kStored;
  s.lock.lock();
  uint32_t* link = nullptr;
  Lookup why;
  uint32_t held;
  const uint32_t old = find_live_locked(s, hash, r.key, now, &link, &why, &held);
  if (why == Lookup::kUnavailable) {
    // Whether the key exists is unknown, so nothing may be linked: keep the old, drop the new.
    out = StoreOutcome::kUnavailable;
  } else {
    switch (r.mode) {
      case StoreMode::kAdd:
        if (old != kNil) {
          entry(old).clock.store(1, std::memory_order_relaxed);  // memcached bumps it too
          out = StoreOutcome::kNotStored;
        }
        break;
      case StoreMode::kReplace:
        if (old == kNil) out = StoreOutcome::kNotStored;
        break;
      case StoreMode::kCas:
        if (old == kNil) {
          out = StoreOutcome::kNotFound;
        } else if (entry(old).cas != r.cas) {
          out = StoreOutcome::kExists;
        }
        break;
      default:
        break;
    }
  }
  if (out == StoreOutcome::kStored) {
    if (old != kNil) {
      unlink_locked(s, old, link);
    } else {
      linked_items_.fetch_add(1, std::memory_order_relaxed);  // a replacement changes no count
    }
    Entry& e = entry(id);
    e.cas = next_cas();
    if (cas_out != nullptr) *cas_out = e.cas;
    link_locked(s, id, &bucket_for(hash));
  }
  s.lock.unlock();
  unref(id);  // the writer's reference: the link keeps a stored item; anything else is freed
  if (held != kNil) unref(held);
  return out;
}

StoreOutcome Store::store_concat(const StoreRequest& r, uint64_t hash, int64_t now,
                                 uint64_t* cas_out) {
  Stripe& s = stripe_for(hash);
  {
    // Fast path, all under the lock, when the arena can pin both items without waiting (always,
    // for local memory). Lock order stripe then class holds for the allocation.
    s.lock.lock();
    uint32_t* link = nullptr;
    Lookup why;
    const uint32_t old = find_candidate_locked(s, hash, r.key.size(), now, KeySkips{}, &link, &why);
    if (old == kNil) {
      s.lock.unlock();
      return StoreOutcome::kNotStored;  // no item has the key's hash and length
    }
    const Entry& o = entry(old);
    const uint32_t old_len = o.key_len + o.value_len;
    std::byte* p = arena_->try_pin(o.offset, old_len, Access::kRead);
    if (p != nullptr) {
      StoreOutcome out = StoreOutcome::kStored;
      bool done = false;
      if (std::memcmp(p, r.key.data(), r.key.size()) == 0) {
        const uint64_t size = uint64_t{old_len} + r.value.size();
        const uint32_t id =
            size > options_.item_size_max ? kNil : alloc(static_cast<uint32_t>(size), hash, now);
        if (id == kNil) {
          out = StoreOutcome::kNotStored;  // memcached's answer when the sum cannot be allocated
          done = true;
        } else {
          const std::span<const uint8_t> old_value(reinterpret_cast<const uint8_t*>(p) + o.key_len,
                                                   o.value_len);
          done = r.mode == StoreMode::kAppend
                     ? fill_item(id, r.key, old_value, r.value, 0, o.flags, o.expires_at, now,
                                 /*try_only=*/true)
                     : fill_item(id, r.key, r.value, old_value, 0, o.flags, o.expires_at, now,
                                 /*try_only=*/true);
          if (done) replace_locked(s, Handle{hash, old}, id, cas_out);
          unref(id);  // the writer's reference (frees the chunk if it was not linked)
        }
      }
      arena_->unpin(o.offset, old_len, p);
      if (done) {
        s.lock.unlock();
        return out;
      }
    }
    s.lock.unlock();
  }
  // Read-copy-retry: read the old item under a reference with no lock held, build the new item
  // in a fresh chunk, then link it if the old one is still current.
  KeySkips skips;
  for (;;) {
    Handle h;
    if (acquire(r.key, hash, now, skips, &h) != Lookup::kHit) return StoreOutcome::kNotStored;
    const uint32_t old_len = h.key_len + h.value_len;
    ArenaPin old_pin(*arena_, h.offset, old_len, Access::kRead);
    if (!old_pin) {
      (void)read_failed(h.id);
      return StoreOutcome::kUnavailable;
    }
    const auto* old_bytes = reinterpret_cast<const uint8_t*>(old_pin.data());
    if (std::memcmp(old_bytes, r.key.data(), r.key.size()) != 0) [[unlikely]] {
      old_pin.release();
      if (!skip_candidate(skips, h)) return StoreOutcome::kUnavailable;
      continue;
    }
    const uint64_t size = uint64_t{old_len} + r.value.size();
    // memcached answers NOT_STORED when the combined item cannot be allocated.
    const uint32_t id =
        size > options_.item_size_max ? kNil : alloc(static_cast<uint32_t>(size), hash, now);
    if (id == kNil) {
      old_pin.release();
      release(h.id);
      return StoreOutcome::kNotStored;
    }
    const std::span<const uint8_t> old_value(old_bytes + h.key_len, h.value_len);
    const bool filled =
        r.mode == StoreMode::kAppend
            ? fill_item(id, r.key, old_value, r.value, 0, h.flags, h.expires_at, now)
            : fill_item(id, r.key, r.value, old_value, 0, h.flags, h.expires_at, now);
    old_pin.release();
    if (!filled) {
      unref(id);
      release(h.id);
      return StoreOutcome::kUnavailable;
    }
    if (!relink_if_current(s, h, id, now, cas_out)) continue;
    return StoreOutcome::kStored;
  }
}

uint64_t Store::hash_of(std::string_view key) const { return hash_key(key, hash_key_); }

Lookup Store::acquire(std::string_view key, uint64_t hash, int64_t now, const KeySkips& skips,
                      Handle* h) {
  help_index_read();
  Stripe& s = stripe_for(hash);
  s.lock.lock();
  uint32_t* link = nullptr;
  Lookup why;
  const uint32_t id = find_candidate_locked(s, hash, key.size(), now, skips, &link, &why);
  if (id == kNil) {
    s.lock.unlock();
    return why;
  }
  Entry& e = entry(id);
  e.refs.fetch_add(1, std::memory_order_relaxed);
  if (e.clock.load(std::memory_order_relaxed) == 0) e.clock.store(1, std::memory_order_relaxed);
  *h = Handle{hash, id, e.offset, e.key_len, e.value_len, e.flags, e.cas, e.expires_at};
  s.lock.unlock();
  return Lookup::kHit;
}

void Store::release(uint32_t id) { unref(id); }

Lookup Store::touch(std::string_view key, int64_t expires_at, int64_t now) {
  if (key.empty() || key.size() > kKeyMaxLength) return Lookup::kMiss;
  help_index_read();
  const uint64_t hash = hash_key(key, hash_key_);
  Stripe& s = stripe_for(hash);
  s.lock.lock();
  uint32_t* link = nullptr;
  Lookup why;
  uint32_t held;
  const uint32_t id = find_live_locked(s, hash, key, now, &link, &why, &held);
  if (id != kNil) {
    entry(id).expires_at = clamp_time(expires_at);
    entry(id).clock.store(1, std::memory_order_relaxed);
  }
  s.lock.unlock();
  if (held != kNil) unref(held);
  return why;
}

Lookup Store::remove(std::string_view key, int64_t now) {
  if (key.empty() || key.size() > kKeyMaxLength) return Lookup::kMiss;
  help_index_read();
  const uint64_t hash = hash_key(key, hash_key_);
  Stripe& s = stripe_for(hash);
  s.lock.lock();
  uint32_t* link = nullptr;
  Lookup why;
  uint32_t held;
  const uint32_t id = find_live_locked(s, hash, key, now, &link, &why, &held);
  if (id != kNil) {
    unlink_locked(s, id, link);
    linked_items_.fetch_sub(1, std::memory_order_relaxed);
  }
  s.lock.unlock();
  if (held != kNil) unref(held);
  return why;
}

DeltaResult Store::apply_delta(std::string_view key, bool incr, uint64_t delta, int64_t now) {
  if (key.empty() || key.size() > kKeyMaxLength) return {DeltaOutcome::kNotFound, 0};
  help_index_read();
  const uint64_t hash = hash_key(key, hash_key_);
  Stripe& s = stripe_for(hash);
  DeltaDigits d;
  {
    // Fast path, all under the lock: a counter that nobody else holds, rewritten in place,
    // when the arena can pin it without waiting (always, for local memory). Anything else
    // takes the read-copy-retry path below.
    s.lock.lock();
    uint32_t* link = nullptr;
    Lookup why;
    const uint32_t id = find_candidate_locked(s, hash, key.size(), now, KeySkips{}, &link, &why);
    if (id == kNil) {
      s.lock.unlock();
      return {DeltaOutcome::kNotFound, 0};  // no item has the key's hash and length
    }
    Entry& o = entry(id);
    const uint32_t item_len = o.key_len + o.value_len;
    std::byte* p = nullptr;
    if (item_len <= kPageSize && o.refs.load(std::memory_order_acquire) == 1) {
      p = arena_->try_pin(o.offset, item_len, Access::kWrite);
    }
    if (p != nullptr) {
      std::byte* value_bytes = p + o.key_len;
      DeltaResult out{DeltaOutcome::kOk, 0};
      bool done = true;
      if (std::memcmp(p, key.data(), key.size()) != 0) {
        done = false;  // another key with the same hash: let the general path sort it out
      } else if (!compute_delta(value_bytes, o.value_len, incr, delta, &d)) {
        out.outcome = DeltaOutcome::kNonNumeric;
      } else if (d.len <= o.value_len) {
        write_in_place(value_bytes, o.value_len, d);
        o.cas = next_cas();
        out.value = d.value;
      } else {
        done = false;  // longer than before: needs a new chunk
      }
      arena_->unpin(o.offset, item_len, p);
      if (done) {
        s.lock.unlock();
        return out;
      }
    }
    s.lock.unlock();
  }

  KeySkips skips;
  for (;;) {
    Handle h;
    if (acquire(key, hash, now, skips, &h) != Lookup::kHit) return {DeltaOutcome::kNotFound, 0};
    const uint32_t item_len = h.key_len + h.value_len;
    // An item within one page may be rewritten in place, so pin it for writing from the start
    // (a pin cannot be upgraded under the lock). A larger one would go through the arena's
    // bounce buffer, whose write-back at unpin must not race readers: always copy those.
    const bool in_place_ok = item_len <= kPageSize;
    ArenaPin pin(*arena_, h.offset, item_len, in_place_ok ? Access::kWrite : Access::kRead);
    if (!pin) {
      (void)read_failed(h.id);
      return {DeltaOutcome::kUnavailable, 0};
    }
    if (std::memcmp(pin.data(), key.data(), key.size()) != 0) [[unlikely]] {
      pin.release();
      if (!skip_candidate(skips, h)) return {DeltaOutcome::kUnavailable, 0};
      continue;
    }
    std::byte* value_bytes = pin.data() + h.key_len;
    if (!compute_delta(value_bytes, h.value_len, incr, delta, &d)) {
      pin.release();
      release(h.id);
      return {DeltaOutcome::kNonNumeric, 0};
    }
    if (in_place_ok && d.len <= h.value_len) {
      s.lock.lock();
      if (!still_current_locked(h, now)) {
        s.lock.unlock();
        pin.release();
        release(h.id);
        retries_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (entry(h.id).refs.load(std::memory_order_acquire) == 2) {
        // Only the link and we hold it, and new readers need this lock: rewrite in place
        // through the pin taken earlier, and end that pin before anyone can read.
        write_in_place(value_bytes, h.value_len, d);
        pin.release();
        entry(h.id).cas = next_cas();
        s.lock.unlock();
        release(h.id);
        return {DeltaOutcome::kOk, d.value};
      }
      s.lock.unlock();
    }
    pin.release();
    // Longer than before, or a reader holds the old bytes: store a new item.
    const uint32_t pad = d.len <= h.value_len ? h.value_len - d.len : 0;
    const uint64_t size = uint64_t{h.key_len} + d.len + pad;
    const uint32_t id =
        size > options_.item_size_max ? kNil : alloc(static_cast<uint32_t>(size), hash, now);
    if (id == kNil) {
      release(h.id);
      return {DeltaOutcome::kNoMemory, 0};
    }
    if (!fill_item(id, key, d.span(), {}, pad, h.flags, h.expires_at, now)) {
      unref(id);
      release(h.id);
      return {DeltaOutcome::kUnavailable, 0};
    }
    if (!relink_if_current(s, h, id, now, nullptr)) continue;
    return {DeltaOutcome::kOk, d.value};
  }
}

void Store::flush_all(int64_t flush_at, int64_t now) {
  std::lock_guard<std::mutex> lock(flush_mu_);
  // A scheduled flush that has come due becomes permanent before anything replaces it, so a new
  // flush_all never brings back items an earlier one invalidated.
  const int64_t pending = pending_flush_at_.load(std::memory_order_relaxed);
  if (pending != 0 && pending <= now) {
    if (pending > floor_time_.load(std::memory_order_relaxed)) {
      floor_time_.store(pending, std::memory_order_release);
    }
  }
  if (flush_at <= now) {
    // Immediately: everything stored before this call, by cas order, so items stored later in
    // the same second survive (memcached's oldest_cas).
    const uint64_t floor = cas_counter_.load(std::memory_order_relaxed) + 1;
    if (floor > floor_cas_.load(std::memory_order_relaxed)) {
      floor_cas_.store(floor, std::memory_order_release);
    }
    pending_flush_at_.store(0, std::memory_order_release);
  } else {
    // Later: items stored before `flush_at` become invalid when it comes. Like memcached, a new
    // flush_all replaces a scheduled one that has not come due.
    pending_flush_at_.store(flush_at, std::memory_order_release);
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics and test hooks

StoreStats Store::collect() const {
  StoreStats st;
  for (uint64_t i = 0; i <= stripe_mask_; ++i) {
    Stripe& s = stripes_[i];
    s.lock.lock();
    st.curr_items += s.curr_items;
    st.bytes += s.bytes;
    st.total_items += s.total_items;
    s.lock.unlock();
  }
  for (size_t i = 0; i < geometry_.class_count(); ++i) {
    ClassState& c = classes_[i];
    c.lock.lock();
    st.evictions += c.evictions;
    st.reclaimed += c.reclaimed;
    st.used_slabs += c.slabs;
    st.chunks_used += c.chunks_used;
    c.lock.unlock();
  }
  st.limit_maxbytes = uint64_t{options_.memory_mb} * kMiB;
  st.total_slabs = slab_count_;
  expand_lock_.lock();
  const Table* cur = table_.load(std::memory_order_relaxed);
  const Table* old = old_table_.load(std::memory_order_relaxed);
  st.hash_power_level = cur->power;
  st.hash_bytes = cur->bytes() + (old != nullptr ? old->bytes() : 0) +
                  (retiring_ != nullptr ? retiring_->bytes() : 0);
  st.hash_is_expanding = old != nullptr;
  expand_lock_.unlock();
  st.hash_expansions = hash_expansions_.load(std::memory_order_relaxed);
  st.slabs_moved = slabs_moved_.load(std::memory_order_relaxed);
  st.slab_reassign_evictions = reassign_evictions_.load(std::memory_order_relaxed);
  st.slab_reassign_busy = reassign_busy_.load(std::memory_order_relaxed);
  st.far_errors = far_errors_.load(std::memory_order_relaxed);
  st.retries = retries_.load(std::memory_order_relaxed);
  return st;
}

StoreStats Store::stats() const {
  StoreStats st = collect();
  std::lock_guard<std::mutex> lock(stats_mu_);
  st.total_items -= std::min(st.total_items, stats_baseline_.total_items);
  st.evictions -= std::min(st.evictions, stats_baseline_.evictions);
  st.reclaimed -= std::min(st.reclaimed, stats_baseline_.reclaimed);
  st.far_errors -= std::min(st.far_errors, stats_baseline_.far_errors);
  st.retries -= std::min(st.retries, stats_baseline_.retries);
  st.slabs_moved -= std::min(st.slabs_moved, stats_baseline_.slabs_moved);
  st.slab_reassign_evictions -=
      std::min(st.slab_reassign_evictions, stats_baseline_.slab_reassign_evictions);
  st.slab_reassign_busy -= std::min(st.slab_reassign_busy, stats_baseline_.slab_reassign_busy);
  return st;
}

void Store::reset_stats() {
  const StoreStats now = collect();
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_baseline_ = now;
}

Store::IndexAudit Store::audit_index() const {
  IndexAudit a;
  for (uint64_t si = 0; si <= stripe_mask_; ++si) {
    Stripe& s = stripes_[si];
    s.lock.lock();
    Table* cur = table_.load(std::memory_order_acquire);
    Table* old = old_table_.load(std::memory_order_acquire);
    if (old == cur) old = nullptr;
    auto walk = [&](uint32_t head, uint64_t bucket, uint64_t mask) {
      uint32_t len = 0;
      for (uint32_t id = head; id != kNil; id = entry(id).chain_next) {
        const Entry& e = entry(id);
        ++len;
        ++a.linked;
        if (e.state != kLinked || (e.hash & mask) != bucket || (e.hash & stripe_mask_) != si) {
          ++a.misplaced;
        }
      }
      a.longest_chain = std::max(a.longest_chain, len);
    };
    if (old != nullptr) {
      for (uint64_t b = si; b <= old->mask; b += stripe_mask_ + 1) {
        const uint32_t head = old->buckets()[b];
        if (head != kMoved) {
          walk(head, b, old->mask);
        } else {
          walk(cur->buckets()[b], b, cur->mask);
          walk(cur->buckets()[b + old->mask + 1], b + old->mask + 1, cur->mask);
        }
      }
    } else {
      for (uint64_t b = si; b <= cur->mask; b += stripe_mask_ + 1) {
        walk(cur->buckets()[b], b, cur->mask);
      }
    }
    s.lock.unlock();
  }
  return a;
}

uint32_t Store::class_slabs(int cls) const {
  return classes_[cls].slabs.load(std::memory_order_relaxed);
}

bool Store::locate(std::string_view key, int64_t now, uint64_t* offset, uint32_t* len) {
  if (key.empty() || key.size() > kKeyMaxLength) return false;
  const uint64_t hash = hash_key(key, hash_key_);
  Stripe& s = stripe_for(hash);
  s.lock.lock();
  uint32_t* link = nullptr;
  Lookup why;
  const uint32_t id = find_candidate_locked(s, hash, key.size(), now, KeySkips{}, &link, &why);
  if (id != kNil) {
    *offset = entry(id).offset;
    *len = entry(id).key_len + entry(id).value_len;
  }
  s.lock.unlock();
  return id != kNil;
}

}  // namespace fm::kv
