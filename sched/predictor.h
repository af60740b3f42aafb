// Fault predictors: classify a request before it runs, so that fault-likely requests wait in a
// queue of their own and fault-free ones never queue behind them. The history predictor is the
// design paper's proposal (recently accessed keys are likely resident); the page-table predictor
// lives in the app (it needs the index) and only its accuracy counters are here.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "dataplane/counter.h"

namespace fm::sched {

/// Remembers the last access of key hashes in a direct-mapped table, stamped with a global
/// access sequence. A key is "likely resident" when it was accessed within the last `window`
/// accesses (the app sizes the window to what local memory holds). Lock-free; any core. A
/// collision forgets the older key (it is then predicted to fault: the safe side).
class HistoryPredictor {
 public:
  /// `window` accesses count as recent; the table has a power of two >= 2 x window slots.
  explicit HistoryPredictor(uint32_t window) : window_(window ? window : 1) {
    uint64_t n = 2;
    while (n < 2ull * window_) n <<= 1;
    mask_ = n - 1;
    slots_ = std::make_unique<std::atomic<uint64_t>[]>(n);
    for (uint64_t i = 0; i < n; ++i) slots_[i].store(0, std::memory_order_relaxed);
  }

  /// True when the key with hash `h` was accessed within the window.
  bool likely_resident(uint64_t h) const {
    const uint64_t e = slots_[h & mask_].load(std::memory_order_relaxed);
    if (e == 0 || uint32_t(e >> 32) != tag(h)) return false;
    // Stamps lag the shared sequence by < kBatch per core, never lead it: age >= 0.
    const uint32_t age = uint32_t(now()) - uint32_t(e);
    return age < window_;
  }

  /// Records an access of the key with hash `h`. `local` is the calling core's unpublished
  /// access count: it joins the shared sequence every kBatch accesses (no shared write per
  /// access).
  void touch(uint64_t h, uint32_t& local) {
    if (++local == kBatch) {
      seq_.fetch_add(kBatch, std::memory_order_relaxed);
      local = 0;
    }
    slots_[h & mask_].store(uint64_t(tag(h)) << 32 | uint32_t(now()), std::memory_order_relaxed);
  }

  uint32_t window() const { return window_; }
  uint64_t slots() const { return mask_ + 1; }

 private:
  static constexpr uint32_t kBatch = 64;
  static uint32_t tag(uint64_t h) { return uint32_t(h >> 32) | 1; }  // never 0: 0 is empty
  uint64_t now() const { return seq_.load(std::memory_order_relaxed); }

  uint32_t window_;
  uint64_t mask_ = 0;
  std::unique_ptr<std::atomic<uint64_t>[]> slots_;
  alignas(64) std::atomic<uint64_t> seq_{0};
};

/// How predictions compared with what happened (a request "faulted" when it waited for at least
/// one fetch). Single writer: the core that finished the request.
struct PredictorCounters {
  Counter fault_faulted;  // predicted fault-likely, did fault (true positive)
  Counter fault_clean;    // predicted fault-likely, did not (false positive)
  Counter clean_faulted;  // predicted fault-free, faulted (false negative)
  Counter clean_clean;    // predicted fault-free, did not fault (true negative)

  void record(bool predicted_fault, bool faulted) {
    if (predicted_fault) (faulted ? fault_faulted : fault_clean).add();
    else (faulted ? clean_faulted : clean_clean).add();
  }
};

}  // namespace fm::sched
