// Log-linear latency histogram (HdrHistogram-style): bounded relative error, O(1) record.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <vector>

#include "dataplane/log_linear.h"

namespace fm::loadgen {

/// Records non-negative integer values (ns) with relative error < 2/kSub (0.78% at 8 bits).
/// Values below 2^SubBits are exact; values of 2^MaxBits and above are recorded as
/// 2^MaxBits - 1 (a smaller MaxBits and Count make a compact histogram, e.g. one per timeline
/// interval). Single-threaded; merge() combines per-core histograms.
template <int SubBits, int MaxBits, class Count>
class LogLinearHistogram {
 public:
  static_assert(SubBits >= 2 && SubBits < MaxBits && MaxBits <= 64);
  using Buckets = LogLinear<SubBits>;
  static constexpr int kSubBits = SubBits;
  static constexpr uint64_t kSub = Buckets::kSub;
  static constexpr int kGroups = MaxBits - kSubBits + 1;
  static constexpr double kRelativeError = Buckets::kRelativeError;
  static constexpr uint64_t kMaxValue = MaxBits == 64 ? ~0ull : (1ull << (MaxBits % 64)) - 1;

  LogLinearHistogram() : counts_(size_t(kGroups) * kSub, 0) {}

  void record(uint64_t v, uint64_t n = 1) {
    if constexpr (MaxBits < 64) v = std::min(v, kMaxValue);
    counts_[index(v)] += Count(n);
    total_ += n;
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
    sum_ += double(v) * double(n);
  }
  /// A value that never came back (dropped, timed out): infinite latency in every percentile.
  void record_infinite(uint64_t n = 1) { infinite_ += n; }

  void merge(const LogLinearHistogram& o) {
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    infinite_ += o.infinite_;
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
    sum_ += o.sum_;
  }

  uint64_t count() const { return total_; }  // finite samples
  uint64_t infinite() const { return infinite_; }
  uint64_t min() const { return total_ ? min_ : 0; }
  uint64_t max() const { return infinite_ ? std::numeric_limits<uint64_t>::max() : max_; }
  double mean() const { return total_ ? sum_ / double(total_) : 0.0; }

  /// The value at quantile q in [0,1] over finite and infinite samples; UINT64_MAX when it
  /// falls among the infinite ones. Reports the bucket's upper edge, clamped to max.
  uint64_t percentile(double q) const {
    const uint64_t all = total_ + infinite_;
    if (all == 0) return 0;
    uint64_t rank = uint64_t(q * double(all) + 0.5);
    rank = std::clamp<uint64_t>(rank, 1, all);
    if (rank > total_) return std::numeric_limits<uint64_t>::max();
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(upper(i), max_);
    }
    return max_;
  }

  static size_t index(uint64_t v) { return Buckets::index(v); }
  static uint64_t upper(size_t i) { return Buckets::upper(i); }

 private:
  std::vector<Count> counts_;
  uint64_t total_ = 0;
  uint64_t infinite_ = 0;
  uint64_t min_ = std::numeric_limits<uint64_t>::max();
  uint64_t max_ = 0;
  double sum_ = 0;
};

/// The latency histogram of every report: 256 sub-buckets per power of two, any uint64_t.
using Histogram = LogLinearHistogram<8, 64, uint64_t>;

}  // namespace fm::loadgen
