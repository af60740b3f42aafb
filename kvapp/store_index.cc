// The store's hash index: chains, incremental doubling, flush_all floors, taking chunks back.

// Invariants (store.cc lists the store-wide ones):
//  - Bucket b of a 2^p array splits into b and b + 2^p of the doubled one; both have stripe
//    b & stripe_mask_, so moving a bucket under its stripe lock is atomic for every command on
//    its keys. Lookups read the old array until their bucket is marked kMoved.
//  - The grower holds expand_lock_ (only ever try_locked) and then one stripe lock at a time,
//    never a class lock.
//  - An entry's item fields and chain link change only under its stripe lock; new references
//    are taken only under it while linked, so whoever holds it and sees refs == 1 knows nobody
//    else can read the item (what try_take relies on).
#include "kvapp/store_index.h"

#include <algorithm>
#include <limits>
#include <new>

#include "dataplane/log.h"
#include "kvapp/store.h"
#include "kvapp/tuning.h"

namespace fm::kv::store_internal {
namespace {
// Index growth: double past this many linked items per bucket (memcached's 3/2).
constexpr uint64_t kGrowLoadNum = 3, kGrowLoadDen = 2;
// Bounded index work per command: old buckets moved, or stripes passed after the last move.
constexpr uint32_t kExpandBucketsPerStep = 8;
constexpr uint32_t kSweepStripesPerStep = 64;
enum ExpandPhase : uint8_t { kIdle = 0, kMigrating = 1, kSweeping = 2 };
constexpr const char* kTag = "kv";
}  // namespace

Table* Table::create(uint32_t power) {
  void* p = ::operator new(sizeof(Table) + (sizeof(uint32_t) << power), std::nothrow);
  if (p == nullptr) return nullptr;
  Table* t = new (p) Table;
  t->mask = (uint64_t{1} << power) - 1;
  t->power = power;
  return t;
}

void Table::destroy(Table* t) {
  if (t != nullptr) ::operator delete(t);
}

HashIndex::HashIndex(uint32_t hash_power, uint32_t hash_power_max, SlabAllocator& slabs)
    : slabs_(slabs),
      hash_power_(hash_power),
      hash_power_max_(hash_power_max),
      // Stripes never change: a doubling keeps every bucket under its stripe.
      stripe_mask_(std::min<uint64_t>(uint64_t{1} << hash_power, kMaxLockStripes) - 1),
      stripes_(std::make_unique<Stripe[]>(stripe_mask_ + 1)) {}

HashIndex::~HashIndex() {
  Table::destroy(table_.load(std::memory_order_relaxed));
  Table::destroy(old_table_.load(std::memory_order_relaxed));
  Table::destroy(retiring_);
}

void HashIndex::set_prefetch_hint(Table* t) {
  hint_buckets_.store(reinterpret_cast<uintptr_t>(t->buckets()), std::memory_order_relaxed);
  hint_mask_.store(t->mask, std::memory_order_relaxed);
}

bool HashIndex::init() {
  Table* table = Table::create(hash_power_);
  if (table == nullptr) return false;
  std::fill_n(table->buckets(), table->mask + 1, kNil);
  table_.store(table, std::memory_order_release);
  set_prefetch_hint(table);
  grow_at_.store(grow_at_for(*table), std::memory_order_relaxed);
  return true;
}

uint64_t HashIndex::grow_at_for(const Table& t) const {
  return t.power < hash_power_max_ ? (t.mask + 1) * kGrowLoadNum / kGrowLoadDen
                                   : std::numeric_limits<uint64_t>::max();
}

uint32_t* HashIndex::link_to_locked(uint64_t hash, uint32_t id) const {
  uint32_t* link = &bucket_for(hash);
  while (*link != id) {
    FM_DCHECK(*link != kNil);
    link = &slabs_.entry(*link).chain_next;
  }
  return link;
}

void HashIndex::unchain_locked(Stripe& s, uint32_t id) {
  Entry& e = slabs_.entry(id);
  uint32_t* link = &bucket_for(e.hash);
  while (*link != id) link = &slabs_.entry(*link).chain_next;
  *link = e.chain_next;
  e.chain_next = kNil;
  s.curr_items--;
  s.bytes -= e.key_len + e.value_len;
  linked_items_.fetch_sub(1, std::memory_order_relaxed);
}

ChunkOwner::Take HashIndex::try_take(uint32_t id, Entry& e, int64_t now, bool evict_live,
                                     bool second_chance) {
  // e.hash is fixed while the entry is allocated; for a free entry any stripe will do, and its
  // state cannot change while the caller holds the class lock.
  Stripe& s = stripe_for(e.hash);
  if (!s.lock.try_lock()) return Take::kBusy;
  if (e.state == kFree) {
    s.lock.unlock();
    return Take::kFree;
  }
  // Allocated (being written), unlinked with readers left, or read now: it has holders.
  if (e.state != kLinked || e.refs.load(std::memory_order_acquire) != 1) {
    s.lock.unlock();
    return Take::kBusy;
  }
  const bool dead = !is_live(e, now);
  if (!dead && !evict_live) {  // eviction off (-M): only dead items are taken
    s.lock.unlock();
    return Take::kBusy;
  }
  if (!dead && second_chance && e.clock.load(std::memory_order_relaxed) != 0) {
    e.clock.store(0, std::memory_order_relaxed);
    s.lock.unlock();
    return Take::kSecondChance;
  }
  unchain_locked(s, id);
  e.refs.store(0, std::memory_order_relaxed);
  e.state = kFree;
  s.lock.unlock();
  return dead ? Take::kReclaimed : Take::kEvicted;
}

bool HashIndex::linked_time(const Entry& e, uint32_t* time) const {
  // Item fields are the stripe's: an entry being written or locked right now gives no answer.
  Stripe& st = stripe_for(e.hash);
  if (!st.lock.try_lock()) return false;
  const bool linked = e.state == kLinked;
  if (linked) *time = e.time;
  st.lock.unlock();
  return linked;
}

void HashIndex::flush_all(int64_t flush_at, int64_t now) {
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
// Growth

void HashIndex::expand_step() {
  // Whoever holds it is doing a bounded step; nobody waits for it.
  if (!expand_lock_.try_lock()) return;
  switch (expand_phase_.load(std::memory_order_relaxed)) {
    case kIdle:
      if (linked_items_.load(std::memory_order_relaxed) >
          grow_at_.load(std::memory_order_relaxed)) {
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

void HashIndex::start_expansion_locked() {
  Table* cur = table_.load(std::memory_order_relaxed);
  if (cur->power >= hash_power_max_) {
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
  set_prefetch_hint(bigger);
  grow_at_.store(grow_at_for(*bigger), std::memory_order_relaxed);
  expand_phase_.store(kMigrating, std::memory_order_release);
}

void HashIndex::migrate_buckets_locked() {
  Table* old = old_table_.load(std::memory_order_relaxed);
  Table* cur = table_.load(std::memory_order_relaxed);
  const uint64_t old_size = old->mask + 1;
  for (uint32_t k = 0; k < kExpandBucketsPerStep && expand_next_ < old_size; ++k) {
    const uint64_t b = expand_next_++;
    Stripe& s = stripes_[b & stripe_mask_];
    s.lock.lock();
    uint32_t lo = kNil, hi = kNil;  // chains of buckets b and b + old_size
    for (uint32_t id = old->buckets()[b]; id != kNil;) {
      Entry& e = slabs_.entry(id);
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

void HashIndex::sweep_stripes_locked() {
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
// Statistics and audit

void HashIndex::add_stats(StoreStats& st) const {
  for (uint64_t i = 0; i <= stripe_mask_; ++i) {
    Stripe& s = stripes_[i];
    s.lock.lock();
    st.curr_items += s.curr_items;
    st.bytes += s.bytes;
    st.total_items += s.total_items;
    s.lock.unlock();
  }
  expand_lock_.lock();
  const Table* cur = table_.load(std::memory_order_relaxed);
  const Table* old = old_table_.load(std::memory_order_relaxed);
  st.hash_power_level = cur->power;
  st.hash_bytes = cur->bytes() + (old != nullptr ? old->bytes() : 0) +
                  (retiring_ != nullptr ? retiring_->bytes() : 0);
  st.hash_is_expanding = old != nullptr;
  expand_lock_.unlock();
  st.hash_expansions = hash_expansions_.load(std::memory_order_relaxed);
}

IndexAudit HashIndex::audit() const {
  IndexAudit a;
  for (uint64_t si = 0; si <= stripe_mask_; ++si) {
    Stripe& s = stripes_[si];
    s.lock.lock();
    Table* cur = table_.load(std::memory_order_acquire);
    Table* old = old_table_.load(std::memory_order_acquire);
    if (old == cur) old = nullptr;
    auto walk = [&](uint32_t head, uint64_t bucket, uint64_t mask) {
      uint32_t len = 0;
      for (uint32_t id = head; id != kNil; id = slabs_.entry(id).chain_next) {
        const Entry& e = slabs_.entry(id);
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

}  // namespace fm::kv::store_internal
