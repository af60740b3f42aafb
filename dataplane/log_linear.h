// Log-linear bucket arithmetic (HdrHistogram-style), shared by the loadgen's latency histogram
// and the paging layer's per-core fetch latency counters.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace fm {

/// 2^SubBits buckets per power of two: values below 2^SubBits land in buckets of their own, a
/// larger v in the bucket named by its top SubBits bits, so a bucket spans less than
/// 2/2^SubBits of the values in it.
template <int SubBits>
struct LogLinear {
  static_assert(SubBits >= 2 && SubBits < 64);
  static constexpr uint64_t kSub = 1ull << SubBits;
  static constexpr double kRelativeError = 2.0 / double(kSub);

  /// Buckets needed for values below 2^max_bits.
  static constexpr size_t buckets(int max_bits) { return size_t(max_bits - SubBits + 1) * kSub; }

  /// Bucket of v.
  static constexpr size_t index(uint64_t v) {
    if (v < kSub) return size_t(v);
    const int shift = (63 - std::countl_zero(v)) - SubBits + 1;
    return size_t(shift) * kSub + size_t(v >> shift);
  }

  /// Largest value that lands in bucket i.
  static constexpr uint64_t upper(size_t i) {
    const size_t shift = i / kSub;
    const uint64_t bucket = i % kSub;
    return ((bucket + 1) << shift) - 1;
  }
};

}  // namespace fm
