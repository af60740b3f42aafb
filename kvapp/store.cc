// The item store's commands: memcached semantics over the hash index and the slab allocator.

// Store-wide invariants (store_index.cc and store_slabs.cc hold their parts' own; see store.h
// for the contract):
//  - refs counts one for being linked plus one per holder (the allocating writer, each reader).
//    New references are taken only under the stripe lock while linked, so whoever holds the
//    stripe lock and sees refs == 1 knows nobody else can read the item.
//  - Lock order: stripe, then class. The evictor and the slab mover hold a class lock and only
//    try_lock stripes; the index grower never takes a class lock.
//  - A key is linked at most once: a store unlinks the old item under the same stripe lock that
//    links the new one.
//  - Only this file pins the arena, and never with a lock held across Arena::pin(): it may
//    fetch and wait (and will yield the fiber). Item bytes are read under a reference with the
//    lock dropped (read_copy_retry in store.h, the one copy of that loop); what was read stays
//    valid while the reference is held, because a chunk's key never changes while it is
//    allocated and its value changes in place only under the stripe lock when refs == 2 (link +
//    the writer). Whoever acts on what it read retakes the lock and checks the item is still
//    linked, live and of the same cas (still_current_locked), else looks again.
//  - A failed pin changes nothing: a fresh chunk goes back (unref), the old item stays linked.
#include "kvapp/store.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <limits>
#include <string>
#include <thread>

#include "dataplane/check.h"
#include "dataplane/log.h"
#include "kvapp/hash.h"
#include "kvapp/numbers.h"

namespace fm::kv {
namespace {
using store_internal::Dead;
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

// What a lookup that found no live item reports, from what its chain walk reclaimed.
Lookup miss_reason(Dead dead) {
  switch (dead) {
    case Dead::kExpired:
      return Lookup::kExpired;
    case Dead::kFlushed:
      return Lookup::kFlushed;
    default:
      return Lookup::kMiss;
  }
}

}  // namespace

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
  auto store = std::unique_ptr<Store>(
      new Store(options, std::move(geometry).value(), std::move(arena), key));
  if (!store->index_.init()) {
    return error(Errc::kResourceExhausted, "kv.hash_power " + std::to_string(options.hash_power) +
                                               ": no memory for the hash table");
  }
  return store;
}

Store::Store(const StoreOptions& options, SlabGeometry geometry, std::unique_ptr<Arena> arena,
             const HashKey& key)
    : options_(options),
      geometry_(std::move(geometry)),
      arena_(std::move(arena)),
      local_base_(arena_->local_base()),
      hash_key_(key),
      started_at_(static_cast<int64_t>(std::time(nullptr))),
      slabs_(geometry_,
             static_cast<uint32_t>(uint64_t{options_.memory_mb} * kMiB / geometry_.slab_bytes()),
             options_.evict),
      index_(options_.hash_power, options_.hash_power_max, slabs_) {
  slabs_.set_owner(&index_);
}

// ---------------------------------------------------------------------------------------------
// Finding and holding items

namespace {
// The keys of the burst being served on this thread and their hashes (Store::prefetch_key).
struct BurstKeys {
  const Store* owner = nullptr;
  uint32_t n = 0;
  uint32_t next = 0;  // served in the order announced: where the next lookup most likely is
  const char* key[Store::kBurstKeys];
  uint32_t len[Store::kBurstKeys];
  uint64_t hash[Store::kBurstKeys];
};
thread_local BurstKeys tl_burst;
}  // namespace

uint64_t Store::hash_of(std::string_view key) const {
  BurstKeys& b = tl_burst;
  if (b.n != 0 && b.owner == this) {
    // The same address and length as announced: the same bytes (they stay put until
    // end_burst()). The next in order first, then the others (a multi-get's later keys, a
    // request that was not a get, miss after a short scan).
    const auto at = [&](uint32_t i) { return b.key[i] == key.data() && b.len[i] == key.size(); };
    if (b.next < b.n && at(b.next)) return b.hash[b.next++];
    for (uint32_t i = 0; i < b.n; ++i)
      if (at(i)) return b.hash[i];
  }
  return hash_key(key, hash_key_);
}

void Store::prefetch_key(std::string_view key) {
  BurstKeys& b = tl_burst;
  if (b.owner != this) {
    b.owner = this;
    b.n = b.next = 0;
  }
  if (b.n == kBurstKeys || key.empty() || key.size() > kKeyMaxLength) return;  // never looked up
  const uint64_t h = hash_key(key, hash_key_);
  index_.prefetch(h);
  b.key[b.n] = key.data();
  b.len[b.n] = uint32_t(key.size());
  b.hash[b.n] = h;
  ++b.n;
}

void Store::prefetch_burst() {
  const BurstKeys& b = tl_burst;
  // One request alone has nothing to overlap its misses with: the stages would only add theirs.
  if (b.owner != this || b.n < 2) return;
  for (uint32_t i = 0; i < b.n; ++i) prefetch_chain(b.hash[i], false);
  if (local_base_ == nullptr) return;
  for (uint32_t i = 0; i < b.n; ++i) prefetch_chain(b.hash[i], true);
}

void Store::end_burst() {
  BurstKeys& b = tl_burst;
  if (b.owner == this) b.n = b.next = 0;
}

Store::~Store() {
  // A store made later at this address must not find this one's hashes (tests make many).
  BurstKeys& b = tl_burst;
  if (b.owner == this) {
    b.owner = nullptr;
    b.n = b.next = 0;
  }
}

void Store::prefetch_chain(uint64_t hash, bool item) {
  Stripe& s = index_.stripe_for(hash);
  if (!s.lock.try_lock()) return;
  // Under the stripe lock the bucket array and the linked entry are this lookup's to read (a
  // retired array is freed, and a slab's entries re-carved, only after its stripe was passed).
  const uint32_t id = index_.bucket_for(hash);
  if (id != kNil) {
    const Entry& e = slabs_.entry(id);
    if (!item) {
      __builtin_prefetch(&e);
    } else {
      // The item's first lines (key, then value), up to four.
      const uintptr_t first = reinterpret_cast<uintptr_t>(local_base_ + e.offset);
      const uintptr_t last = first + std::min<uint32_t>(e.key_len + e.value_len, 256) - 1;
      for (uintptr_t line = first & ~uintptr_t{63}; line <= last; line += 64)
        __builtin_prefetch(reinterpret_cast<const void*>(line));
    }
  }
  s.lock.unlock();
}

Lookup Store::acquire(std::string_view key, uint64_t hash, int64_t now, const KeySkips& skips,
                      Handle* h) {
  index_.help_grow_read();
  Stripe& s = index_.stripe_for(hash);
  s.lock.lock();
  uint32_t* link = nullptr;
  Dead dead;
  const uint32_t id = index_.find_candidate_locked(s, hash, key.size(), now, skips, &link, &dead);
  if (id == kNil) {
    s.lock.unlock();
    return miss_reason(dead);
  }
  Entry& e = entry(id);
  e.refs.fetch_add(1, std::memory_order_relaxed);
  if (e.clock.load(std::memory_order_relaxed) == 0) e.clock.store(1, std::memory_order_relaxed);
  *h = Handle{hash, id, e.offset, e.key_len, e.value_len, e.flags, e.cas, e.expires_at};
  s.lock.unlock();
  return Lookup::kHit;
}

void Store::release(uint32_t id) { unref(id); }

void Store::note_far_error() { far_errors_.fetch_add(1, std::memory_order_relaxed); }

Lookup Store::read_failed(uint32_t id) {
  release(id);
  note_far_error();
  return Lookup::kUnavailable;
}

bool Store::add_skip(KeySkips& skips, uint32_t id, uint64_t cas) {
  if (skips.add(id, cas)) return true;
  FM_LOG_FIRST_N(LogLevel::kError, 5, kTag, "more than {} keys share one 64-bit key hash",
                 KeySkips::kMax);
  note_far_error();
  return false;
}

bool Store::skip_candidate(KeySkips& skips, const Handle& h) {
  release(h.id);
  return add_skip(skips, h.id, h.cas);
}

int64_t Store::touch_held(const Handle& h, int64_t expires_at) {
  const uint32_t t = clamp_time(expires_at);
  Stripe& s = index_.stripe_for(h.hash);
  s.lock.lock();
  Entry& e = entry(h.id);
  // Replaced since it was read: the gat took effect just before the replacement.
  if (e.state == store_internal::kLinked) e.expires_at = t;
  s.lock.unlock();
  return t;
}

uint32_t Store::find_live_locked(Stripe& s, uint64_t hash, std::string_view key, int64_t now,
                                 uint32_t** link_out, Lookup* why, uint32_t* held) {
  *held = kNil;
  uint32_t* link = nullptr;
  Dead dead;
  const uint32_t id =
      index_.find_candidate_locked(s, hash, key.size(), now, KeySkips{}, &link, &dead);
  if (id == kNil) {
    *why = miss_reason(dead);
    return kNil;
  }
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
  return find_live_slow_locked(s, hash, key, now, dead, link_out, why, held);
}

uint32_t Store::find_live_slow_locked(Stripe& s, uint64_t hash, std::string_view key, int64_t now,
                                      Dead dead, uint32_t** link_out, Lookup* why, uint32_t* held) {
  // Not read_copy_retry: the caller acts under the stripe lock, so it is held on entry and on
  // return, and dropped only around the pin of a candidate's key.
  KeySkips skips;
  for (;;) {
    uint32_t* link = nullptr;
    Dead d;
    const uint32_t id = index_.find_candidate_locked(s, hash, key.size(), now, skips, &link, &d);
    if (d != Dead::kNone) dead = d;
    if (id == kNil) {
      *why = miss_reason(dead);
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
        if (e.state == store_internal::kLinked && index_.is_live(e, now)) {
          *link_out = index_.link_to_locked(hash, id);
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
    if (!add_skip(skips, id, cas)) {
      *why = Lookup::kUnavailable;
      return kNil;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writing items

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
  const bool current = index_.still_current_locked(h.id, h.cas, now);
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
  e.cas = index_.next_cas();
  if (cas_out != nullptr) *cas_out = e.cas;
  index_.unlink_locked(s, old.id, index_.link_to_locked(old.hash, old.id));
  index_.link_locked(s, id, &index_.bucket_for(old.hash));
}

// ---------------------------------------------------------------------------------------------
// Commands

StoreOutcome Store::drop_old_on_failed_set(const StoreRequest& r, int64_t now, StoreOutcome why) {
  if (r.mode != StoreMode::kSet) return why;
  return remove(r.key, now) == Lookup::kUnavailable ? StoreOutcome::kUnavailable : why;
}

StoreOutcome Store::store(const StoreRequest& r, int64_t now, uint64_t* cas_out) {
  if (r.key.empty() || r.key.size() > kKeyMaxLength) return StoreOutcome::kBadKey;
  index_.help_grow();  // no lock held: the one bounded step of index growth this command may take
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
  const uint32_t id = slabs_.alloc(static_cast<uint32_t>(size), hash, now);
  if (id == kNil) return drop_old_on_failed_set(r, now, StoreOutcome::kNoMemory);
  if (!fill_item(id, r.key, r.value, {}, 0, r.flags, r.expires_at, now)) {
    unref(id);  // the chunk goes back; the old item was never touched
    return StoreOutcome::kUnavailable;
  }

  Stripe& s = index_.stripe_for(hash);
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
      index_.unlink_locked(s, old, link);
    } else {
      index_.count_new_key();  // a replacement changes no count
    }
    Entry& e = entry(id);
    e.cas = index_.next_cas();
    if (cas_out != nullptr) *cas_out = e.cas;
    index_.link_locked(s, id, &index_.bucket_for(hash));
  }
  s.lock.unlock();
  unref(id);  // the writer's reference: the link keeps a stored item; anything else is freed
  if (held != kNil) unref(held);
  return out;
}

StoreOutcome Store::store_concat(const StoreRequest& r, uint64_t hash, int64_t now,
                                 uint64_t* cas_out) {
  Stripe& s = index_.stripe_for(hash);
  {
    // Fast path, all under the lock, when the arena can pin both items without waiting (always,
    // for local memory). Lock order stripe then class holds for the allocation.
    s.lock.lock();
    uint32_t* link = nullptr;
    Dead dead;
    const uint32_t old =
        index_.find_candidate_locked(s, hash, r.key.size(), now, KeySkips{}, &link, &dead);
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
        const uint32_t id = size > options_.item_size_max
                                ? kNil
                                : slabs_.alloc(static_cast<uint32_t>(size), hash, now);
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
  StoreOutcome out = StoreOutcome::kStored;
  const Lookup found =
      read_copy_retry(r.key, hash, now, PinFor::kRead, [&](const Handle& h, ArenaPin& old_pin) {
        const uint32_t old_len = h.key_len + h.value_len;
        const auto* old_bytes = reinterpret_cast<const uint8_t*>(old_pin.data());
        const uint64_t size = uint64_t{old_len} + r.value.size();
        // memcached answers NOT_STORED when the combined item cannot be allocated.
        const uint32_t id = size > options_.item_size_max
                                ? kNil
                                : slabs_.alloc(static_cast<uint32_t>(size), hash, now);
        if (id == kNil) {
          old_pin.release();
          release(h.id);
          out = StoreOutcome::kNotStored;
          return true;
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
          out = StoreOutcome::kUnavailable;
          return true;
        }
        return relink_if_current(s, h, id, now, cas_out);
      });
  if (found == Lookup::kUnavailable) return StoreOutcome::kUnavailable;
  if (found != Lookup::kHit) return StoreOutcome::kNotStored;
  return out;
}

Lookup Store::touch(std::string_view key, int64_t expires_at, int64_t now) {
  if (key.empty() || key.size() > kKeyMaxLength) return Lookup::kMiss;
  index_.help_grow_read();
  const uint64_t hash = hash_key(key, hash_key_);
  Stripe& s = index_.stripe_for(hash);
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
  index_.help_grow_read();
  const uint64_t hash = hash_key(key, hash_key_);
  Stripe& s = index_.stripe_for(hash);
  s.lock.lock();
  uint32_t* link = nullptr;
  Lookup why;
  uint32_t held;
  const uint32_t id = find_live_locked(s, hash, key, now, &link, &why, &held);
  if (id != kNil) index_.remove_locked(s, id, link);
  s.lock.unlock();
  if (held != kNil) unref(held);
  return why;
}

DeltaResult Store::apply_delta(std::string_view key, bool incr, uint64_t delta, int64_t now) {
  if (key.empty() || key.size() > kKeyMaxLength) return {DeltaOutcome::kNotFound, 0};
  index_.help_grow_read();
  const uint64_t hash = hash_key(key, hash_key_);
  Stripe& s = index_.stripe_for(hash);
  DeltaDigits d;
  {
    // Fast path, all under the lock: a counter that nobody else holds, rewritten in place,
    // when the arena can pin it without waiting (always, for local memory). Anything else
    // takes the read-copy-retry path below.
    s.lock.lock();
    uint32_t* link = nullptr;
    Dead dead;
    const uint32_t id =
        index_.find_candidate_locked(s, hash, key.size(), now, KeySkips{}, &link, &dead);
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
        o.cas = index_.next_cas();
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

  DeltaResult out{DeltaOutcome::kNotFound, 0};
  const Lookup found =
      read_copy_retry(key, hash, now, PinFor::kRewriteInPage, [&](const Handle& h, ArenaPin& pin) {
        std::byte* value_bytes = pin.data() + h.key_len;
        if (!compute_delta(value_bytes, h.value_len, incr, delta, &d)) {
          pin.release();
          release(h.id);
          out = {DeltaOutcome::kNonNumeric, 0};
          return true;
        }
        // Pinned for writing exactly when within a page (PinFor::kRewriteInPage).
        const bool in_place_ok = h.key_len + h.value_len <= kPageSize;
        if (in_place_ok && d.len <= h.value_len) {
          s.lock.lock();
          if (!index_.still_current_locked(h.id, h.cas, now)) {
            s.lock.unlock();
            pin.release();
            release(h.id);
            retries_.fetch_add(1, std::memory_order_relaxed);
            return false;
          }
          if (entry(h.id).refs.load(std::memory_order_acquire) == 2) {
            // Only the link and we hold it, and new readers need this lock: rewrite in place
            // through the pin taken earlier, and end that pin before anyone can read.
            write_in_place(value_bytes, h.value_len, d);
            pin.release();
            entry(h.id).cas = index_.next_cas();
            s.lock.unlock();
            release(h.id);
            out = {DeltaOutcome::kOk, d.value};
            return true;
          }
          s.lock.unlock();
        }
        pin.release();
        // Longer than before, or a reader holds the old bytes: store a new item.
        const uint32_t pad = d.len <= h.value_len ? h.value_len - d.len : 0;
        const uint64_t size = uint64_t{h.key_len} + d.len + pad;
        const uint32_t id = size > options_.item_size_max
                                ? kNil
                                : slabs_.alloc(static_cast<uint32_t>(size), hash, now);
        if (id == kNil) {
          release(h.id);
          out = {DeltaOutcome::kNoMemory, 0};
          return true;
        }
        if (!fill_item(id, key, d.span(), {}, pad, h.flags, h.expires_at, now)) {
          unref(id);
          release(h.id);
          out = {DeltaOutcome::kUnavailable, 0};
          return true;
        }
        if (!relink_if_current(s, h, id, now, nullptr)) return false;
        out = {DeltaOutcome::kOk, d.value};
        return true;
      });
  if (found == Lookup::kUnavailable) return {DeltaOutcome::kUnavailable, 0};
  if (found != Lookup::kHit) return {DeltaOutcome::kNotFound, 0};
  return out;
}

void Store::flush_all(int64_t flush_at, int64_t now) { index_.flush_all(flush_at, now); }

// ---------------------------------------------------------------------------------------------
// Statistics and test hooks

StoreStats Store::collect() const {
  StoreStats st;
  index_.add_stats(st);
  slabs_.add_stats(st);
  st.limit_maxbytes = uint64_t{options_.memory_mb} * kMiB;
  st.far_errors = far_errors_.load(std::memory_order_relaxed);
  st.lost_items = lost_items_.load(std::memory_order_relaxed);
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
  st.lost_items -= std::min(st.lost_items, stats_baseline_.lost_items);
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

uint64_t Store::drop_lost(const std::function<bool(uint64_t, uint32_t)>& gone, int64_t now,
                          uint32_t deadline_ms) {
  uint64_t dropped = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(deadline_ms);
  for (;;) {
    const store_internal::SlabAllocator::Dropped d = slabs_.drop_chunks(gone, now);
    dropped += d.dropped;
    if (d.busy == 0) break;
    if (std::chrono::steady_clock::now() >= until) {
      FM_LOG_ERROR(kTag,
                   "{} items on lost far memory stayed held for {} ms; their pages fail "
                   "until they are written again",
                   d.busy, deadline_ms);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  lost_items_.fetch_add(dropped, std::memory_order_relaxed);
  return dropped;
}

Store::IndexAudit Store::audit_index() const { return index_.audit(); }

uint32_t Store::class_slabs(int cls) const { return slabs_.class_slabs(cls); }

bool Store::locate(std::string_view key, int64_t now, uint64_t* offset, uint32_t* len) {
  if (key.empty() || key.size() > kKeyMaxLength) return false;
  const uint64_t hash = hash_key(key, hash_key_);
  Stripe& s = index_.stripe_for(hash);
  s.lock.lock();
  uint32_t* link = nullptr;
  Dead dead;
  const uint32_t id =
      index_.find_candidate_locked(s, hash, key.size(), now, KeySkips{}, &link, &dead);
  if (id != kNil) {
    *offset = entry(id).offset;
    *len = entry(id).key_len + entry(id).value_len;
  }
  s.lock.unlock();
  return id != kNil;
}

}  // namespace fm::kv
