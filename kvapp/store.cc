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
//  - Lock order: stripe, then class. The evictor holds a class lock and only try_locks stripes.
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

#include <charconv>
#include <cstring>
#include <ctime>
#include <limits>
#include <new>
#include <random>
#include <string>

#include "dataplane/check.h"
#include "dataplane/log.h"
#include "kvapp/hash.h"
#include "kvapp/numbers.h"

namespace fm::kv {
namespace {
constexpr uint32_t kNil = std::numeric_limits<uint32_t>::max();
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
  uint32_t free_head = kNil;
  uint32_t lru_head = kNil;  // most recently stored
  uint32_t lru_tail = kNil;  // eviction starts here
  uint32_t lru_size = 0;
  uint32_t carve_slab = kNil;
  uint32_t carve_next = 0;
  uint32_t slabs = 0;
  uint64_t chunks_used = 0;  // allocated chunks (not free, not yet carved)
  uint64_t evictions = 0;
  uint64_t reclaimed = 0;
};

struct Store::SlabInfo {
  std::unique_ptr<Entry[]> entries;  // published under the class lock before any id escapes
};

Result<std::unique_ptr<Store>> Store::create(const StoreOptions& options,
                                             std::unique_ptr<Arena> arena) {
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
  return std::unique_ptr<Store>(new Store(options, std::move(geometry).value(), std::move(arena)));
}

Store::Store(const StoreOptions& options, SlabGeometry geometry, std::unique_ptr<Arena> arena)
    : options_(options),
      geometry_(std::move(geometry)),
      arena_(std::move(arena)),
      seed_((uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()),
      started_at_(static_cast<int64_t>(std::time(nullptr))) {
  index_bits_ = geometry_.index_bits();
  slab_count_ = static_cast<uint32_t>(uint64_t{options_.memory_mb} * kMiB / geometry_.slab_bytes());
  const uint64_t buckets = uint64_t{1} << options_.hash_power;
  bucket_mask_ = buckets - 1;
  const uint64_t stripes = std::min<uint64_t>(buckets, kMaxLockStripes);
  stripe_mask_ = stripes - 1;
  buckets_ = std::make_unique<uint32_t[]>(buckets);
  for (uint64_t i = 0; i < buckets; ++i) buckets_[i] = kNil;
  stripes_ = std::make_unique<Stripe[]>(stripes);
  classes_ = std::make_unique<ClassState[]>(geometry_.class_count());
  slabs_ = std::make_unique<SlabInfo[]>(slab_count_);
}

Store::~Store() = default;

// ---------------------------------------------------------------------------------------------
// Index

Store::Entry& Store::entry(uint32_t id) const {
  static_assert(sizeof(Entry) <= 64, "keep the per-chunk metadata within a cache line");
  return slabs_[id >> index_bits_].entries[id & ((1u << index_bits_) - 1)];
}

Store::Stripe& Store::stripe_for(uint64_t hash) const { return stripes_[hash & stripe_mask_]; }

uint32_t& Store::bucket_for(uint64_t hash) const { return buckets_[hash & bucket_mask_]; }

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

void Store::unref(uint32_t id) {
  if (entry(id).refs.fetch_sub(1, std::memory_order_acq_rel) == 1) free_entry(id);
}

void Store::free_entry(uint32_t id) {
  Entry& e = entry(id);
  ClassState& c = classes_[e.cls];
  c.lock.lock();
  lru_remove_locked(c, id);
  e.state = kFree;
  e.chain_next = c.free_head;
  c.free_head = id;
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

uint32_t Store::carve_locked(ClassState& c, int cls) {
  const SlabClass& geo = geometry_.cls(cls);
  if (c.carve_slab == kNil || c.carve_next == geo.chunks_per_slab) {
    // Take a fresh slab. A CAS loop rather than fetch_add so failed attempts never wrap.
    uint32_t s = next_slab_.load(std::memory_order_relaxed);
    do {
      if (s >= slab_count_) return kNil;
    } while (!next_slab_.compare_exchange_weak(s, s + 1, std::memory_order_relaxed));
    // The one allocation on a request path: once per slab for the life of the store.
    std::unique_ptr<Entry[]> entries(new (std::nothrow) Entry[geo.chunks_per_slab]);
    FM_CHECK_MSG(entries != nullptr, "out of local memory for kv slab metadata");
    const uint64_t base = uint64_t{s} * geometry_.slab_bytes();
    for (uint32_t i = 0; i < geo.chunks_per_slab; ++i) {
      entries[i].offset = base + SlabGeometry::chunk_offset_in_slab(geo, i);
      entries[i].cls = static_cast<uint8_t>(cls);
    }
    slabs_[s].entries = std::move(entries);
    c.carve_slab = s;
    c.carve_next = 0;
    c.slabs++;
  }
  return (c.carve_slab << index_bits_) | c.carve_next++;
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
          uint32_t* link = &bucket_for(e.hash);
          while (*link != id) link = &entry(*link).chain_next;
          *link = e.chain_next;
          e.chain_next = kNil;
          s.curr_items--;
          s.bytes -= e.key_len + e.value_len;
          e.refs.store(0, std::memory_order_relaxed);
          e.state = kFree;
          s.lock.unlock();
          lru_remove_locked(c, id);
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

uint32_t Store::alloc(uint32_t size, uint64_t hash, int64_t now) {
  const int cls = geometry_.class_for(size);
  FM_DCHECK(cls >= 0);
  ClassState& c = classes_[cls];
  c.lock.lock();
  uint32_t id = c.free_head;
  if (id != kNil) {
    c.free_head = entry(id).chain_next;
    c.chunks_used++;
  } else {
    id = carve_locked(c, cls);
    if (id != kNil) {
      c.chunks_used++;
    } else {
      id = evict_locked(c, now);  // an evicted chunk was in use and stays so
    }
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
// Commands

StoreOutcome Store::drop_old_on_failed_set(const StoreRequest& r, int64_t now, StoreOutcome why) {
  if (r.mode != StoreMode::kSet) return why;
  return remove(r.key, now) == Lookup::kUnavailable ? StoreOutcome::kUnavailable : why;
}

StoreOutcome Store::store(const StoreRequest& r, int64_t now, uint64_t* cas_out) {
  if (r.key.empty() || r.key.size() > kKeyMaxLength) return StoreOutcome::kBadKey;
  const uint64_t hash = hash_key(r.key, seed_);
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
    if (old != kNil) unlink_locked(s, old, link);
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

uint64_t Store::hash_of(std::string_view key) const { return hash_key(key, seed_); }

Lookup Store::acquire(std::string_view key, uint64_t hash, int64_t now, const KeySkips& skips,
                      Handle* h) {
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
  const uint64_t hash = hash_key(key, seed_);
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
  const uint64_t hash = hash_key(key, seed_);
  Stripe& s = stripe_for(hash);
  s.lock.lock();
  uint32_t* link = nullptr;
  Lookup why;
  uint32_t held;
  const uint32_t id = find_live_locked(s, hash, key, now, &link, &why, &held);
  if (id != kNil) unlink_locked(s, id, link);
  s.lock.unlock();
  if (held != kNil) unref(held);
  return why;
}

DeltaResult Store::apply_delta(std::string_view key, bool incr, uint64_t delta, int64_t now) {
  if (key.empty() || key.size() > kKeyMaxLength) return {DeltaOutcome::kNotFound, 0};
  const uint64_t hash = hash_key(key, seed_);
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
  st.hash_power_level = options_.hash_power;
  st.hash_bytes = (bucket_mask_ + 1) * sizeof(uint32_t);
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
  return st;
}

void Store::reset_stats() {
  const StoreStats now = collect();
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_baseline_ = now;
}

bool Store::locate(std::string_view key, int64_t now, uint64_t* offset, uint32_t* len) {
  if (key.empty() || key.size() > kKeyMaxLength) return false;
  const uint64_t hash = hash_key(key, seed_);
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
