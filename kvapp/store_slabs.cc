// The store's slab allocator: slab classes, free lists, LRU, CLOCK eviction and slab moves.

// Invariants (store.cc lists the store-wide ones):
//  - A slab belongs to one class at a time. It leaves a class only when every chunk of it is
//    free (state kFree under that class's lock, so no reference and no id in any chain or
//    LRU); in between it belongs to the mover alone.
//  - The evictor and the slab mover hold a class lock and reach stripes only through the
//    owner's try_take(), which only try_locks (lock order: stripe, then class). The mover holds
//    one class lock at a time.
//  - An entry is in its class's LRU from alloc until it is freed or taken back.
#include "kvapp/store_slabs.h"

#include <new>

#include "dataplane/check.h"
#include "kvapp/store.h"

namespace fm::kv::store_internal {
namespace {
// A class that keeps evicting checks every this many evictions whether a class with more slabs
// holds older items, and takes a slab from it instead (memcached's slab_automove, by age).
constexpr uint32_t kAutomoveEvery = 64;
// Slabs a move tries (an item may be held, or its stripe busy) before this request gives up.
constexpr uint32_t kReassignAttempts = 3;
}  // namespace

SlabAllocator::SlabAllocator(const SlabGeometry& geometry, uint32_t slab_count, bool evict)
    : geometry_(geometry),
      index_bits_(geometry.index_bits()),
      slab_count_(slab_count),
      evict_(evict),
      classes_(std::make_unique<ClassState[]>(geometry.class_count())),
      slabs_(std::make_unique<SlabInfo[]>(slab_count)) {}

void SlabAllocator::free_entry(uint32_t id) {
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

void SlabAllocator::lru_push_head_locked(ClassState& c, uint32_t id) {
  Entry& e = entry(id);
  e.lru_prev = kNil;
  e.lru_next = c.lru_head;
  if (c.lru_head != kNil) entry(c.lru_head).lru_prev = id;
  c.lru_head = id;
  if (c.lru_tail == kNil) c.lru_tail = id;
  c.lru_size++;
}

void SlabAllocator::lru_remove_locked(ClassState& c, uint32_t id) {
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

void SlabAllocator::partial_push_locked(ClassState& c, uint32_t s) {
  SlabInfo& si = slabs_[s];
  FM_DCHECK(!si.in_partial);
  si.partial_prev = kNil;
  si.partial_next = c.partial_head;
  if (c.partial_head != kNil) slabs_[c.partial_head].partial_prev = s;
  c.partial_head = s;
  si.in_partial = true;
}

void SlabAllocator::partial_remove_locked(ClassState& c, uint32_t s) {
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

uint32_t SlabAllocator::pop_free_locked(ClassState& c) {
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

void SlabAllocator::attach_slab_locked(ClassState& c, int cls, uint32_t s,
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

void SlabAllocator::detach_slab_locked(ClassState& c, uint32_t s) {
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

uint32_t SlabAllocator::take_fresh_slab_locked(ClassState& c, int cls) {
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

uint32_t SlabAllocator::evict_locked(ClassState& c, int64_t now) {
  uint32_t skips = 0;
  uint32_t second_chances = 0;
  uint32_t id = c.lru_tail;
  while (id != kNil) {
    Entry& e = entry(id);
    const uint32_t prev = e.lru_prev;
    switch (owner_->try_take(id, e, now, evict_, second_chances < c.lru_size)) {
      case ChunkOwner::Take::kSecondChance:
        // CLOCK: a recently read item goes round once more.
        lru_remove_locked(c, id);
        lru_push_head_locked(c, id);
        ++second_chances;
        id = prev;
        continue;
      case ChunkOwner::Take::kReclaimed:
        lru_remove_locked(c, id);
        c.reclaimed++;
        return id;
      case ChunkOwner::Take::kEvicted:
        lru_remove_locked(c, id);
        c.evictions++;
        return id;
      default:
        break;
    }
    if (++skips > kEvictionSkipLimit) break;
    id = prev;
  }
  return kNil;
}

bool SlabAllocator::drain_slab_locked(ClassState& c, uint32_t s, int64_t now) {
  SlabInfo& si = slabs_[s];
  bool busy = false;
  for (uint32_t i = 0; i < si.chunks; ++i) {
    const uint32_t id = (s << index_bits_) | i;
    // Metadata only: the item's bytes are never read, so no far-memory fetch.
    const ChunkOwner::Take t =
        owner_->try_take(id, si.entries[i], now, evict_, /*second_chance=*/false);
    if (t == ChunkOwner::Take::kFree) continue;
    if (t == ChunkOwner::Take::kBusy) {
      busy = true;
      continue;
    }
    free_taken_locked(c, s, i);
    if (t == ChunkOwner::Take::kReclaimed) {
      c.reclaimed++;
    } else {
      reassign_evictions_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return !busy && si.free_count == si.chunks;
}

void SlabAllocator::free_taken_locked(ClassState& c, uint32_t s, uint32_t i) {
  SlabInfo& si = slabs_[s];
  const uint32_t id = (s << index_bits_) | i;
  lru_remove_locked(c, id);
  si.entries[i].chain_next = si.free_head;
  si.free_head = id;
  si.free_count++;
  if (!si.in_partial) partial_push_locked(c, s);
  c.chunks_used--;
}

SlabAllocator::Dropped SlabAllocator::drop_chunks(const ChunkFilter& gone, int64_t now) {
  Dropped d;
  for (size_t cls = 0; cls < geometry_.class_count(); ++cls) {
    ClassState& c = classes_[cls];
    const uint32_t size = geometry_.cls(int(cls)).chunk_size;
    c.lock.lock();
    for (uint32_t s = c.slab_head; s != kNil; s = slabs_[s].class_next) {
      SlabInfo& si = slabs_[s];
      for (uint32_t i = 0; i < si.chunks; ++i) {
        if (!gone(si.entries[i].offset, size)) continue;
        // Metadata only, like a slab move: the lost bytes are never read.
        const ChunkOwner::Take t = owner_->try_take((s << index_bits_) | i, si.entries[i], now,
                                                    /*evict_live=*/true, /*second_chance=*/false);
        if (t == ChunkOwner::Take::kFree) continue;
        if (t == ChunkOwner::Take::kBusy) {
          ++d.busy;
          continue;
        }
        free_taken_locked(c, s, i);
        ++d.dropped;
      }
    }
    c.lock.unlock();
  }
  return d;
}

bool SlabAllocator::tail_time_locked(const ClassState& c, uint32_t* time) const {
  if (c.lru_tail == kNil) return false;
  return owner_->linked_time(entry(c.lru_tail), time);
}

bool SlabAllocator::older_by_enough(const ClassState& v, uint32_t victim_slabs,
                                    uint32_t own_tail_time, int64_t now) const {
  // memcached's automove: move when the needy class's oldest item is well younger than the
  // victim's (ratio 0.8), so item lifetimes even out across classes. The victim keeps a slab.
  uint32_t victim_time = 0;
  if (victim_slabs < 2 || !tail_time_locked(v, &victim_time)) return false;
  const int64_t victim_age = now - int64_t{victim_time};
  const int64_t own_age = now - int64_t{own_tail_time};
  return own_age * 5 < victim_age * 4;
}

bool SlabAllocator::reassign_slab(int to, int64_t now, bool automove, uint32_t own_tail_time) {
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

uint32_t SlabAllocator::alloc(uint32_t size, uint64_t hash, int64_t now) {
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

void SlabAllocator::add_stats(StoreStats& st) const {
  for (size_t i = 0; i < geometry_.class_count(); ++i) {
    ClassState& c = classes_[i];
    c.lock.lock();
    st.evictions += c.evictions;
    st.reclaimed += c.reclaimed;
    st.used_slabs += c.slabs;
    st.chunks_used += c.chunks_used;
    c.lock.unlock();
  }
  st.total_slabs = slab_count_;
  st.slabs_moved = slabs_moved_.load(std::memory_order_relaxed);
  st.slab_reassign_evictions = reassign_evictions_.load(std::memory_order_relaxed);
  st.slab_reassign_busy = reassign_busy_.load(std::memory_order_relaxed);
}

}  // namespace fm::kv::store_internal
