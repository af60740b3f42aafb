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
#include "kvapp/store.h"

#include <charconv>
#include <cstring>
#include <ctime>
#include <limits>
#include <new>
#include <random>
#include <string>

#include "dataplane/check.h"
#include "kvapp/hash.h"
#include "kvapp/numbers.h"

namespace fm::kv {
namespace {
constexpr uint32_t kNil = std::numeric_limits<uint32_t>::max();
enum EntryState : uint8_t { kFree = 0, kAllocated, kLinked, kUnlinked };
constexpr uint64_t kMiB = 1ull << 20;

// Unix seconds in an entry: 0 stays "never"; the rest is clamped to [1, 2^32-1].
uint32_t clamp_time(int64_t t) {
  if (t <= 0) return t == 0 ? 0 : 1;
  if (t > std::numeric_limits<uint32_t>::max()) return std::numeric_limits<uint32_t>::max();
  return static_cast<uint32_t>(t);
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

bool Store::key_equals(const Entry& e, std::string_view key) {
  // Reads item memory under the stripe lock; a 64-bit hash match first makes a needless read
  // (a fetch, with far memory) vanishingly rare.
  ArenaPin pin(*arena_, e.offset, e.key_len, Access::kRead);
  return std::memcmp(pin.data(), key.data(), key.size()) == 0;
}

bool Store::is_live(const Entry& e, int64_t now) const {
  if (e.expires_at != 0 && e.expires_at <= now) return false;
  if (e.cas < floor_cas_.load(std::memory_order_acquire)) return false;
  if (e.time < floor_time_.load(std::memory_order_acquire)) return false;
  const int64_t pending = pending_flush_at_.load(std::memory_order_acquire);
  if (pending != 0 && pending <= now && e.time < pending) return false;
  return true;
}

uint32_t Store::find_locked(uint64_t hash, std::string_view key, uint32_t** link_out) {
  uint32_t* link = &bucket_for(hash);
  while (*link != kNil) {
    Entry& e = entry(*link);
    if (e.hash == hash && e.key_len == key.size() && key_equals(e, key)) {
      *link_out = link;
      return *link;
    }
    link = &e.chain_next;
  }
  return kNil;
}

uint32_t Store::find_live_locked(Stripe& s, uint64_t hash, std::string_view key, int64_t now,
                                 uint32_t** link_out, Lookup* why) {
  uint32_t* link = nullptr;
  const uint32_t id = find_locked(hash, key, &link);
  if (id == kNil) {
    *why = Lookup::kMiss;
    return kNil;
  }
  const Entry& e = entry(id);
  if (!is_live(e, now)) {
    *why = (e.expires_at != 0 && e.expires_at <= now) ? Lookup::kExpired : Lookup::kFlushed;
    unlink_locked(s, id, link);
    return kNil;
  }
  *why = Lookup::kHit;
  *link_out = link;
  return id;
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
  } else {
    id = carve_locked(c, cls);
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

void Store::fill_item(uint32_t id, std::string_view key, std::span<const uint8_t> a,
                      std::span<const uint8_t> b, uint32_t pad, uint32_t flags, int64_t expires_at,
                      int64_t now) {
  Entry& e = entry(id);
  const uint32_t value_len = static_cast<uint32_t>(a.size() + b.size()) + pad;
  const uint32_t len = static_cast<uint32_t>(key.size()) + value_len;
  {
    ArenaPin pin(*arena_, e.offset, len, Access::kOverwrite);
    std::byte* p = pin.data();
    std::memcpy(p, key.data(), key.size());
    p += key.size();
    if (!a.empty()) std::memcpy(p, a.data(), a.size());
    p += a.size();
    if (!b.empty()) std::memcpy(p, b.data(), b.size());
    p += b.size();
    std::memset(p, ' ', pad);
  }
  e.key_len = static_cast<uint8_t>(key.size());
  e.value_len = value_len;
  e.flags = flags;
  e.expires_at = clamp_time(expires_at);
  e.time = clamp_time(now);
}

// ---------------------------------------------------------------------------------------------
// Commands

StoreOutcome Store::store(const StoreRequest& r, int64_t now, uint64_t* cas_out) {
  if (r.key.empty() || r.key.size() > kKeyMaxLength) return StoreOutcome::kBadKey;
  const uint64_t hash = hash_key(r.key, seed_);
  if (r.mode == StoreMode::kAppend || r.mode == StoreMode::kPrepend) {
    return store_concat(r, hash, now, cas_out);
  }
  const uint64_t size = r.key.size() + r.value.size();
  if (size > options_.item_size_max) {
    if (r.mode == StoreMode::kSet) (void)remove(r.key, now);
    return StoreOutcome::kTooLarge;
  }
  // Allocate and copy before taking the stripe lock: a fresh chunk is overwritten whole, so it
  // needs no fetch, and no lock is held while the value is copied.
  const uint32_t id = alloc(static_cast<uint32_t>(size), hash, now);
  if (id == kNil) {
    if (r.mode == StoreMode::kSet) (void)remove(r.key, now);
    return StoreOutcome::kNoMemory;
  }
  fill_item(id, r.key, r.value, {}, 0, r.flags, r.expires_at, now);

  Stripe& s = stripe_for(hash);
  StoreOutcome out = StoreOutcome::kStored;
  s.lock.lock();
  uint32_t* link = nullptr;
  Lookup why;
  const uint32_t old = find_live_locked(s, hash, r.key, now, &link, &why);
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
  if (out == StoreOutcome::kStored) {
    if (old != kNil) unlink_locked(s, old, link);
    Entry& e = entry(id);
    e.cas = next_cas();
    if (cas_out != nullptr) *cas_out = e.cas;
    link_locked(s, id, &bucket_for(hash));
  }
  s.lock.unlock();
  unref(id);  // the writer's reference: the link keeps a stored item; anything else is freed
  return out;
}

StoreOutcome Store::store_concat(const StoreRequest& r, uint64_t hash, int64_t now,
                                 uint64_t* cas_out) {
  // Held under the stripe lock throughout: the old value is read while the new chunk is written.
  // (The far-memory issue may turn this into read-copy-retry so no fetch happens under a lock.)
  Stripe& s = stripe_for(hash);
  s.lock.lock();
  uint32_t* link = nullptr;
  Lookup why;
  const uint32_t old = find_live_locked(s, hash, r.key, now, &link, &why);
  if (old == kNil) {
    s.lock.unlock();
    return StoreOutcome::kNotStored;
  }
  Entry& o = entry(old);
  const uint64_t size = uint64_t{o.key_len} + o.value_len + r.value.size();
  // memcached answers NOT_STORED when the combined item cannot be allocated.
  const uint32_t id =
      size > options_.item_size_max ? kNil : alloc(static_cast<uint32_t>(size), hash, now);
  if (id == kNil) {
    s.lock.unlock();
    return StoreOutcome::kNotStored;
  }
  {
    ArenaPin old_pin(*arena_, o.offset, o.key_len + o.value_len, Access::kRead);
    const std::span<const uint8_t> old_value(
        reinterpret_cast<const uint8_t*>(old_pin.data()) + o.key_len, o.value_len);
    if (r.mode == StoreMode::kAppend) {
      fill_item(id, r.key, old_value, r.value, 0, o.flags, o.expires_at, now);
    } else {
      fill_item(id, r.key, r.value, old_value, 0, o.flags, o.expires_at, now);
    }
  }
  unlink_locked(s, old, link);
  Entry& e = entry(id);
  e.cas = next_cas();
  if (cas_out != nullptr) *cas_out = e.cas;
  link_locked(s, id, &bucket_for(hash));
  s.lock.unlock();
  unref(id);
  return StoreOutcome::kStored;
}

Lookup Store::acquire(std::string_view key, int64_t now, const int64_t* new_expiry, Handle* h) {
  if (key.empty() || key.size() > kKeyMaxLength) return Lookup::kMiss;
  const uint64_t hash = hash_key(key, seed_);
  Stripe& s = stripe_for(hash);
  s.lock.lock();
  uint32_t* link = nullptr;
  Lookup why;
  const uint32_t id = find_live_locked(s, hash, key, now, &link, &why);
  if (id == kNil) {
    s.lock.unlock();
    return why;
  }
  Entry& e = entry(id);
  if (new_expiry != nullptr) e.expires_at = clamp_time(*new_expiry);
  e.refs.fetch_add(1, std::memory_order_relaxed);
  if (e.clock.load(std::memory_order_relaxed) == 0) e.clock.store(1, std::memory_order_relaxed);
  *h = Handle{id, e.offset, e.key_len, e.value_len, e.flags, e.cas, e.expires_at};
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
  const uint32_t id = find_live_locked(s, hash, key, now, &link, &why);
  if (id != kNil) {
    entry(id).expires_at = clamp_time(expires_at);
    entry(id).clock.store(1, std::memory_order_relaxed);
  }
  s.lock.unlock();
  return why;
}

Lookup Store::remove(std::string_view key, int64_t now) {
  if (key.empty() || key.size() > kKeyMaxLength) return Lookup::kMiss;
  const uint64_t hash = hash_key(key, seed_);
  Stripe& s = stripe_for(hash);
  s.lock.lock();
  uint32_t* link = nullptr;
  Lookup why;
  const uint32_t id = find_live_locked(s, hash, key, now, &link, &why);
  if (id != kNil) unlink_locked(s, id, link);
  s.lock.unlock();
  return why;
}

DeltaResult Store::apply_delta(std::string_view key, bool incr, uint64_t delta, int64_t now) {
  if (key.empty() || key.size() > kKeyMaxLength) return {DeltaOutcome::kNotFound, 0};
  const uint64_t hash = hash_key(key, seed_);
  Stripe& s = stripe_for(hash);
  s.lock.lock();
  uint32_t* link = nullptr;
  Lookup why;
  const uint32_t old = find_live_locked(s, hash, key, now, &link, &why);
  if (old == kNil) {
    s.lock.unlock();
    return {DeltaOutcome::kNotFound, 0};
  }
  Entry& o = entry(old);
  uint64_t value = 0;
  bool numeric = false;
  if (o.value_len > 0) {
    ArenaPin pin(*arena_, o.offset + o.key_len, o.value_len, Access::kRead);
    numeric =
        parse_u64(std::string_view(reinterpret_cast<const char*>(pin.data()), o.value_len), &value);
  }
  if (!numeric) {
    s.lock.unlock();
    return {DeltaOutcome::kNonNumeric, 0};
  }
  if (incr) {
    value += delta;  // wraps modulo 2^64, like memcached
  } else {
    value = delta > value ? 0 : value - delta;
  }
  char digits[24];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), value);
  FM_DCHECK(ec == std::errc());
  const uint32_t len = static_cast<uint32_t>(end - digits);
  const std::span<const uint8_t> digit_span(reinterpret_cast<const uint8_t*>(digits), len);

  if (len <= o.value_len && o.refs.load(std::memory_order_acquire) == 1) {
    // Nobody else holds the item: rewrite in place, padding with spaces like memcached.
    ArenaPin pin(*arena_, o.offset + o.key_len, o.value_len, Access::kWrite);
    std::memcpy(pin.data(), digits, len);
    std::memset(pin.data() + len, ' ', o.value_len - len);
    o.cas = next_cas();
    s.lock.unlock();
    return {DeltaOutcome::kOk, value};
  }
  // Longer than before, or a reader holds the old bytes: store a new item.
  const uint32_t pad = len <= o.value_len ? o.value_len - len : 0;
  const uint64_t size = uint64_t{o.key_len} + len + pad;
  const uint32_t id =
      size > options_.item_size_max ? kNil : alloc(static_cast<uint32_t>(size), hash, now);
  if (id == kNil) {
    s.lock.unlock();
    return {DeltaOutcome::kNoMemory, 0};
  }
  fill_item(id, key, digit_span, {}, pad, o.flags, o.expires_at, now);
  unlink_locked(s, old, link);
  entry(id).cas = next_cas();
  link_locked(s, id, &bucket_for(hash));
  s.lock.unlock();
  unref(id);
  return {DeltaOutcome::kOk, value};
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
    c.lock.unlock();
  }
  st.limit_maxbytes = uint64_t{options_.memory_mb} * kMiB;
  st.total_slabs = slab_count_;
  st.hash_power_level = options_.hash_power;
  st.hash_bytes = (bucket_mask_ + 1) * sizeof(uint32_t);
  return st;
}

StoreStats Store::stats() const {
  StoreStats st = collect();
  std::lock_guard<std::mutex> lock(stats_mu_);
  st.total_items -= std::min(st.total_items, stats_baseline_.total_items);
  st.evictions -= std::min(st.evictions, stats_baseline_.evictions);
  st.reclaimed -= std::min(st.reclaimed, stats_baseline_.reclaimed);
  return st;
}

void Store::reset_stats() {
  const StoreStats now = collect();
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_baseline_ = now;
}

bool Store::locate_for_test(std::string_view key, int64_t now, uint64_t* offset, uint32_t* len) {
  Handle h;
  if (acquire(key, now, nullptr, &h) != Lookup::kHit) return false;
  *offset = h.offset;
  *len = h.key_len + h.value_len;
  release(h.id);
  return true;
}

}  // namespace fm::kv
