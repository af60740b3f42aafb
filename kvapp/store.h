// The key-value store shared by all dataplane cores: hash index, slab allocator, CLOCK eviction.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>

#include "dataplane/result.h"
#include "kvapp/arena.h"
#include "kvapp/hash.h"
#include "kvapp/options.h"
#include "kvapp/slab.h"
#include "kvapp/stats.h"
#include "kvapp/store_index.h"
#include "kvapp/store_slabs.h"

namespace fm::kv {

/// Whether the `n` bytes at `a` and `b` are equal (both readable for `n` bytes). For key
/// checks on every read: word compares inline, the last word overlapping, instead of a libc
/// memcmp call whose ordering nobody reads. Any thread; reads nothing past `n`.
inline bool bytes_equal(const void* a, const void* b, size_t n) {
  const auto* p = static_cast<const unsigned char*>(a);
  const auto* q = static_cast<const unsigned char*>(b);
  auto load8 = [](const unsigned char* x) {
    uint64_t w;
    std::memcpy(&w, x, 8);
    return w;
  };
  auto load4 = [](const unsigned char* x) {
    uint32_t w;
    std::memcpy(&w, x, 4);
    return w;
  };
  if (n >= 8) {
    uint64_t diff = 0;
    for (size_t i = 0; i + 8 < n; i += 8) diff |= load8(p + i) ^ load8(q + i);
    return (diff | (load8(p + n - 8) ^ load8(q + n - 8))) == 0;
  }
  if (n >= 4) return ((load4(p) ^ load4(q)) | (load4(p + n - 4) ^ load4(q + n - 4))) == 0;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != q[i]) return false;
  }
  return true;
}

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
  kStored,       // STORED
  kNotStored,    // NOT_STORED: add on a live key, replace/append/prepend on a missing one
  kExists,       // EXISTS: cas unique differs
  kNotFound,     // NOT_FOUND: cas on a missing key
  kTooLarge,     // key + value > item_size_max
  kNoMemory,     // no chunk could be found or evicted
  kBadKey,       // empty or longer than kKeyMaxLength (the protocol checks before calling)
  kUnavailable,  // far memory could not be read or written (memory node gone, no free frame):
                 // nothing was stored and the old item, if any, is intact
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
  kMiss,         // no such key
  kExpired,      // the key was there but past its expiry (now reclaimed)
  kFlushed,      // the key was there but invalidated by flush_all (now reclaimed)
  kUnavailable,  // far memory could not be read, so whether the key is there is unknown;
                 // nothing changed
};

/// incr/decr outcome.
enum class DeltaOutcome : uint8_t {
  kOk,
  kNotFound,
  kNonNumeric,
  kNoMemory,
  kUnavailable,  // far memory could not be read or written: the value is unchanged
};
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
  uint32_t hash_power_level = 0;   // hash_power_level: log2 of the current bucket count
  uint64_t hash_bytes = 0;         // hash_bytes: every bucket array held (old one too, mid-growth)
  bool hash_is_expanding = false;  // hash_is_expanding: buckets are moving to a doubled table
  uint64_t hash_expansions = 0;    // doublings completed since start (not reset)
  uint64_t slabs_moved = 0;        // slabs_moved: slabs taken from one class and given to another
  uint64_t slab_reassign_evictions = 0;  // live items evicted to empty a slab for another class
  uint64_t slab_reassign_busy = 0;  // slab moves abandoned: an item was held or its stripe busy
  uint64_t chunks_used = 0;  // chunks allocated (linked, being written, or still read); equals
                             // curr_items whenever no command is in flight
  uint64_t far_errors = 0;   // commands that failed with k*Unavailable (an arena pin failed)
  uint64_t lost_items = 0;   // items dropped because far memory lost every copy of their bytes
  uint64_t retries = 0;      // re-validations that found the item changed while its bytes were
                             // read outside the lock, so the command looked again
};

/// The item store. Thread-safe: every dataplane core calls it concurrently. Items (key and
/// value bytes) live in slab chunks of an Arena addressed by offset; their metadata (64-bit key
/// hash, cas, flags, expiry, links) lives in local entries, so misses, expiry checks, cas
/// mismatches and eviction decisions never touch item memory; a hash match reads the key bytes
/// once to confirm it. Keys are hashed with SipHash under a per-store random key. Locks: one
/// spinlock per hash stripe (never a global lock) and one per slab class. No allocation on
/// request paths except when a slab is given to a class (first use, or a move between classes
/// whose chunk counts differ) and when the hash table starts to double.
///
/// Growth: past 1.5 items per bucket the bucket array doubles incrementally (memcached's
/// expansion): requests move a few old buckets each, under the buckets' own stripe lock, and
/// lookups consult the old array for buckets not yet moved. Slabs move between classes (like
/// memcached's slab_reassign + automove) when a class cannot allocate, or now and then when
/// another class holds more slabs with older items: every item of the chosen slab is evicted
/// (none with a holder) and the slab is re-carved for the needy class.
///
/// Far memory: no lock is ever held across Arena::pin() (which may fetch and wait, and later
/// yield the fiber). Item bytes are read under a reference taken with the stripe lock, with the
/// lock dropped; a command that then changes the index retakes the lock and re-validates (the
/// item still linked, live and with the same cas), looking again if it changed (read-copy-retry).
/// Only Arena::try_pin(), which never waits, is used under a lock. Every command may therefore
/// wait at a fetch boundary, and any of them can fail with k*Unavailable when a pin fails; such a
/// failure never changes the store (no item lost, replaced or leaked).
///
/// Parts: the hash index (store_index.h: stripes, chains, growth, liveness) and the slab
/// allocator (store_slabs.h: classes, LRU, eviction, slab moves) keep the metadata and never
/// touch item bytes; this class holds the arena and the command semantics, and alone pins.
class Store {
 public:
  /// Builds a store over `arena`, or over a new LocalArena of memory_mb when null. Control path.
  /// `fixed_key` (tests only) replaces the random hash key, for reproducible bucket placement.
  static Result<std::unique_ptr<Store>> create(const StoreOptions& options,
                                               std::unique_ptr<Arena> arena = nullptr,
                                               const HashKey* fixed_key = nullptr);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  /// set/add/replace/append/prepend/cas. A kSet that fails (too large, no memory) also removes
  /// the old item, as memcached does, so stale data never outlives a failed set; kUnavailable
  /// instead keeps the old item (its data is still in far memory) and stores nothing.
  /// append/prepend keep the old flags and expiry. On kStored, `*cas_out` (if given) receives the
  /// new cas. Any core; may wait at a fetch boundary.
  StoreOutcome store(const StoreRequest& request, int64_t now, uint64_t* cas_out = nullptr);

  /// Looks `key` up and, on a hit, calls `fn(const ItemView&)` with the value pinned. The view
  /// must not escape `fn`. kUnavailable when the item could not be read (fn is not called).
  /// Any core; may wait at a fetch boundary (no lock is held then, nor while fn runs).
  template <typename Fn>
  Lookup get(std::string_view key, int64_t now, Fn&& fn) {
    return read(key, now, nullptr, fn);
  }

  /// get and set the expiry in one step (gat). `expires_at` as in StoreRequest. The expiry is
  /// set only once the value has been read (never on kUnavailable).
  template <typename Fn>
  Lookup get_and_touch(std::string_view key, int64_t expires_at, int64_t now, Fn&& fn) {
    return read(key, now, &expires_at, fn);
  }

  /// Sets a live item's expiry. Any core; may wait at a fetch boundary (to confirm the key).
  Lookup touch(std::string_view key, int64_t expires_at, int64_t now);

  /// Deletes a live item. Any core; may wait at a fetch boundary (to confirm the key).
  Lookup remove(std::string_view key, int64_t now);

  /// incr (`incr` true) or decr by `delta`, memcached's way: the value must be a decimal
  /// uint64 (leading whitespace and trailing whitespace/NUL allowed); incr wraps modulo 2^64,
  /// decr stops at 0; a shorter result is padded with spaces to the old length. Rewrites in
  /// place when nobody else holds the item, else stores a new item. Any core; may wait at a
  /// fetch boundary.
  DeltaResult apply_delta(std::string_view key, bool incr, uint64_t delta, int64_t now);

  /// flush_all: items stored before `flush_at` (absolute unix seconds; <= now means now) become
  /// invalid once `now` reaches it. Any core.
  void flush_all(int64_t flush_at, int64_t now);

  /// Drops every item whose chunk `gone` names (offset, chunk size): far memory lost every copy
  /// of a page under it. Never reads item bytes. Items held by a command are retried until
  /// `deadline_ms` passes. Returns the items dropped (counted in lost_items). Not a dataplane
  /// core: it may sleep.
  uint64_t drop_lost(const std::function<bool(uint64_t offset, uint32_t size)>& gone, int64_t now,
                     uint32_t deadline_ms = 2000);

  /// Counts; takes every lock briefly (stats command only).
  StoreStats stats() const;

  /// What a walk of the whole hash index found (tests and diagnostics): `linked` entries found
  /// in chains, `longest_chain`, and `misplaced` entries (not linked, or in a bucket their hash
  /// does not name).
  using IndexAudit = store_internal::IndexAudit;
  /// Walks every chain, one stripe lock at a time; exact only when no command is in flight.
  IndexAudit audit_index() const;
  /// Slabs class `cls` holds now (tests).
  uint32_t class_slabs(int cls) const;
  /// "stats reset": total_items, evictions, reclaimed and the slab-move counts restart from zero.
  void reset_stats();

  /// Registry of per-core protocol counters, summed by any core's "stats".
  StatsRegistry& stats_registry() { return registry_; }

  const StoreOptions& options() const { return options_; }
  const SlabGeometry& geometry() const { return geometry_; }
  Arena& arena() { return *arena_; }
  /// Unix time at creation, for "stats uptime".
  int64_t started_at() const { return started_at_; }

  /// Batched lookups (MICA, NSDI'14): a burst's keys are announced before any of its requests
  /// is served, and each lookup's lines are prefetched in stages so the burst's cache misses
  /// overlap instead of stalling one request at a time. prefetch_key() hashes the key,
  /// prefetches its stripe and bucket, and remembers the hash on this thread until end_burst()
  /// (the lookup when the request is served, of the same bytes at the same address, does not
  /// hash it again). prefetch_burst() then prefetches each key's chain head entry and, once all
  /// of those are on their way, the head item's bytes (local arenas only: far memory is never
  /// touched). Each stage reads the chain under the key's stripe lock, taken with try_lock
  /// (never waits; a busy stripe skips its prefetch). The keys' bytes must stay where they are,
  /// unchanged, until end_burst(). Owner core; at most kBurstKeys keys a burst (more are only
  /// hashed when served).
  static constexpr uint32_t kBurstKeys = 32;
  void prefetch_key(std::string_view key);
  void prefetch_burst();
  void end_burst();

  /// Arena offset and length of `key`'s chunk (key + value), for the fault predictor and tests
  /// of the page layout. Matches by hash and length only, so it never reads item memory (never
  /// faults). Returns false when no live item has that hash and length.
  bool locate(std::string_view key, int64_t now, uint64_t* offset, uint32_t* len);

  /// The page-table predictor: false when reading `key` would fetch from far memory now (its
  /// item's pages are not resident). A key with no candidate item reads no item bytes: true.
  /// Never faults or waits; takes the key's stripe lock briefly. Any core.
  bool likely_resident(std::string_view key, int64_t now) {
    uint64_t offset = 0;
    uint32_t len = 0;
    return likely_resident(key, now, &offset, &len);
  }
  /// The same; when false, [*offset, *offset + *len) is the arena range the read will fetch.
  bool likely_resident(std::string_view key, int64_t now, uint64_t* offset, uint32_t* len) {
    if (!arena_->may_fault()) return true;
    if (!locate(key, now, offset, len)) return true;
    return arena_->resident(*offset, *len);
  }

 private:
  using Entry = store_internal::Entry;
  using Stripe = store_internal::Stripe;
  using KeySkips = store_internal::KeySkips;
  using Dead = store_internal::Dead;
  static constexpr uint32_t kNil = store_internal::kNil;

  // A reference to a linked item (acquire()) and its fields as they were then.
  struct Handle {
    uint64_t hash = 0;
    uint32_t id = 0;
    uint64_t offset = 0;
    uint32_t key_len = 0;
    uint32_t value_len = 0;
    uint32_t flags = 0;
    uint64_t cas = 0;
    int64_t expires_at = 0;
  };

  // One stage of prefetch_burst() for the key hashed to `hash`: its chain head entry, or
  // (`item`) the first lines of that entry's item.
  void prefetch_chain(uint64_t hash, bool item);

  // How read_copy_retry() pins an item. incr/decr may rewrite an item of one page in place, so
  // it pins those for writing from the start (a pin cannot be upgraded under the lock). A larger
  // one would go through the arena's bounce buffer, whose write-back at unpin must not race
  // readers: those are always pinned for reading and copied.
  enum class PinFor : uint8_t { kRead, kRewriteInPage };

  Store(const StoreOptions& options, SlabGeometry geometry, std::unique_ptr<Arena> arena,
        const HashKey& key);

  template <typename Fn>
  Lookup read(std::string_view key, int64_t now, const int64_t* new_expiry, Fn& fn) {
    if (key.empty() || key.size() > kKeyMaxLength) return Lookup::kMiss;
    return read_copy_retry(key, hash_of(key), now, PinFor::kRead, [&](Handle& h, ArenaPin& pin) {
      const auto* p = reinterpret_cast<const uint8_t*>(pin.data());
      if (new_expiry != nullptr) h.expires_at = touch_held(h, *new_expiry);
      const ItemView view{std::string_view(reinterpret_cast<const char*>(p), h.key_len),
                          std::span<const uint8_t>(p + h.key_len, h.value_len), h.flags, h.cas,
                          h.expires_at};
      fn(view);
      pin.release();
      release(h.id);
      return true;
    });
  }

  // The read-copy-retry skeleton, shared by every command that works on an item's bytes with no
  // lock held (get, gat, and append/prepend and incr/decr past their under-the-lock fast paths):
  // take a reference on the next candidate under the stripe lock, pin its bytes with the lock
  // dropped, confirm the key (skipping other keys with the same hash), then call `body(Handle& h,
  // ArenaPin& pin)` on the confirmed item. body owns the reference (it releases it on every path)
  // and may end the pin early. It returns true when the command is done, or false when it found, on
  // retaking the lock, that the item changed (the reference and pin already released): the skeleton
  // looks again. Returns kHit once body is done; else why no item was read:
  // kMiss/kExpired/kFlushed, or kUnavailable (a pin failed, or too many keys share the hash;
  // counted as far errors). May wait at a fetch boundary, holding no lock then.
  template <typename Body>
  Lookup read_copy_retry(std::string_view key, uint64_t hash, int64_t now, PinFor pin_for,
                         Body&& body) {
    KeySkips skips;
    for (;;) {
      Handle h;
      const Lookup r = acquire(key, hash, now, skips, &h);
      if (r != Lookup::kHit) return r;
      const uint32_t len = h.key_len + h.value_len;
      const Access access =
          pin_for == PinFor::kRewriteInPage && len <= kPageSize ? Access::kWrite : Access::kRead;
      // The key check and what body reads share one pin, taken with no lock held.
      ArenaPin pin(*arena_, h.offset, len, access);
      if (!pin) [[unlikely]]
        return read_failed(h.id);
      if (!bytes_equal(pin.data(), key.data(), key.size())) [[unlikely]] {
        pin.release();
        if (!skip_candidate(skips, h)) return Lookup::kUnavailable;
        continue;
      }
      if (body(h, pin)) return Lookup::kHit;
    }
  }

  // Takes a reference on the first live item whose hash and length match `key` and that `skips`
  // does not name (its key bytes are not compared: the caller pins and compares). Never pins.
  // `key` is valid (1..kKeyMaxLength bytes) and `hash` is hash_of(key).
  Lookup acquire(std::string_view key, uint64_t hash, int64_t now, const KeySkips& skips,
                 Handle* h);
  uint64_t hash_of(std::string_view key) const;
  // Drops a reference taken by acquire(); frees the chunk if it was the last one.
  void release(uint32_t id);
  // A read whose pin failed: drops the reference and counts the error. Returns kUnavailable.
  Lookup read_failed(uint32_t id);
  // An acquired candidate held another key: remembers it in `skips` and releases it. False (and
  // counted as an error) when `skips` is full.
  bool skip_candidate(KeySkips& skips, const Handle& h);
  // Remembers entry (id, cas) in `skips`; false (logged, counted as an error) when it is full.
  bool add_skip(KeySkips& skips, uint32_t id, uint64_t cas);
  // Sets the expiry of the held item `h` if it is still linked (gat); returns the new expiry.
  int64_t touch_held(const Handle& h, int64_t expires_at);
  void note_far_error();

  Entry& entry(uint32_t id) const { return slabs_.entry(id); }
  // Finds the live item of `key`, with the stripe lock held on entry and on return. Key bytes
  // are compared under the lock only through try_pin(); otherwise the candidate gets a
  // reference, the lock is dropped for pin(), and the candidate is re-validated when the lock is
  // back. Returns the id or kNil (*why: kMiss, kExpired, kFlushed, or kUnavailable when a key
  // could not be read). *held names the entry left with this call's reference (kNil if none):
  // the caller unref()s it after unlocking.
  uint32_t find_live_locked(Stripe& s, uint64_t hash, std::string_view key, int64_t now,
                            uint32_t** link_out, Lookup* why, uint32_t* held);
  // find_live_locked() past its first candidate: reference, pin unlocked, re-validate; skips
  // other keys with the same hash. `dead` is what the first search reclaimed.
  [[gnu::cold, gnu::noinline]] uint32_t find_live_slow_locked(Stripe& s, uint64_t hash,
                                                              std::string_view key, int64_t now,
                                                              Dead dead, uint32_t** link_out,
                                                              Lookup* why, uint32_t* held);
  // Drops one reference; frees on the last. May take a class lock.
  void unref(uint32_t id) { slabs_.unref(id); }

  // Writes key, a, b and `pad` spaces into a fresh chunk and fills the entry's item fields.
  // False when the chunk could not be pinned. No lock held (may wait at a fetch boundary),
  // unless `try_only`: then it only uses try_pin() (a failure there is not an error).
  [[nodiscard]] bool fill_item(uint32_t id, std::string_view key, std::span<const uint8_t> a,
                               std::span<const uint8_t> b, uint32_t pad, uint32_t flags,
                               int64_t expires_at, int64_t now, bool try_only = false);
  // Unlinks the held item `old` and links the filled chunk `id` in its place, keeping the old
  // item's current flags and expiry. Stripe held; `old` passed still_current_locked().
  void replace_locked(Stripe& s, const Handle& old, uint32_t id, uint64_t* cas_out);
  /// Takes the stripe lock and links `id` in place of `h`'s item if that is still current;
  /// either way drops the references to both. False: the item changed, the caller retries.
  bool relink_if_current(Stripe& s, const Handle& h, uint32_t id, int64_t now, uint64_t* cas_out);
  StoreOutcome store_concat(const StoreRequest& r, uint64_t hash, int64_t now, uint64_t* cas_out);
  // kSet's cleanup after too-large/no-memory: removes the old item; kUnavailable if it could not.
  StoreOutcome drop_old_on_failed_set(const StoreRequest& r, int64_t now, StoreOutcome why);
  StoreStats collect() const;  // stats() before the reset baseline is applied

  const StoreOptions options_;
  const SlabGeometry geometry_;
  std::unique_ptr<Arena> arena_;
  const std::byte* const local_base_;  // arena_->local_base(), for prefetch_burst()
  const HashKey hash_key_;
  const int64_t started_at_;
  store_internal::SlabAllocator slabs_;  // after geometry_, which it reads
  store_internal::HashIndex index_;      // after slabs_, whose entries it links
  // Rare events, counted store-wide (a relaxed add only when one happens).
  alignas(64) std::atomic<uint64_t> far_errors_{0};
  std::atomic<uint64_t> lost_items_{0};
  std::atomic<uint64_t> retries_{0};
  StatsRegistry registry_;
  mutable std::mutex stats_mu_;
  StoreStats stats_baseline_;  // guarded by stats_mu_
};

}  // namespace fm::kv
