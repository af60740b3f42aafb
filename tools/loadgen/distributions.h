// Key popularity (uniform, Zipf) and value-size distributions, parsed from flag specs.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/result.h"
#include "tools/loadgen/rng.h"

namespace fm::loadgen {

/// Zipf over ranks 1..n with exponent s > 0: P(k) ∝ k^-s. Rejection-inversion (Hörmann &
/// Derflinger 1996): O(1) per sample for any n (no zeta table), about 1.1 tries per sample.
/// Immutable after construction: one sampler may serve every core (each with its own Rng).
class ZipfSampler {
 public:
  ZipfSampler(uint64_t n, double s);

  /// A rank in [1, n]; 1 is the most popular.
  uint64_t sample(Rng& rng) const {
    for (;;) {
      const double u = h_n_ + rng.uniform() * (h_x1_ - h_n_);
      const double x = h_inv(u);
      double kd = std::floor(x + 0.5);
      if (kd < 1) kd = 1;
      if (kd > n_d_) kd = n_d_;
      if (kd - x <= s_div_ || u >= big_h(kd + 0.5) - h(kd)) return uint64_t(kd);
    }
  }

  uint64_t n() const { return n_; }
  double s() const { return s_; }

 private:
  double h(double x) const { return std::exp(-s_ * std::log(x)); }
  // H(x) = (x^(1-s) - 1) / (1 - s), continuous at s = 1 (log x).
  double big_h(double x) const {
    const double lx = std::log(x);
    return helper2((1.0 - s_) * lx) * lx;
  }
  double h_inv(double x) const {
    double t = x * (1.0 - s_);
    if (t < -1.0) t = -1.0;
    return std::exp(helper1(t) * x);
  }
  // log1p(x)/x and expm1(x)/x, with their series near 0.
  static double helper1(double x) {
    return std::abs(x) > 1e-8 ? std::log1p(x) / x : 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
  }
  static double helper2(double x) {
    return std::abs(x) > 1e-8 ? std::expm1(x) / x
                              : 1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x));
  }

  uint64_t n_;
  double n_d_;
  double s_;
  double h_x1_ = 0, h_n_ = 0, s_div_ = 0;
};

/// Which keys requests name: uniform over [0, keys) or Zipf (key = rank - 1: key 0 hottest).
class KeyDist {
 public:
  enum class Kind : uint8_t { kUniform, kZipf };

  /// Parses "uniform" or "zipf:S" (0 < S <= 10). The error names `flag`.
  static Result<KeyDist> parse(std::string_view spec, uint64_t keys, std::string_view flag);
  static KeyDist uniform(uint64_t keys) { return KeyDist(Kind::kUniform, keys, 0); }
  static KeyDist zipf(uint64_t keys, double s) { return KeyDist(Kind::kZipf, keys, s); }

  uint64_t sample(Rng& rng) const {
    return kind_ == Kind::kUniform ? rng.below(keys_) : zipf_.sample(rng) - 1;
  }
  Kind kind() const { return kind_; }
  uint64_t keys() const { return keys_; }
  double skew() const { return skew_; }
  /// "uniform" or "zipf:0.99" (the spec it was parsed from, normalised).
  std::string describe() const;

 private:
  KeyDist(Kind k, uint64_t keys, double s)
      : kind_(k), keys_(keys), skew_(s), zipf_(keys, s > 0 ? s : 1.0) {}
  Kind kind_;
  uint64_t keys_;
  double skew_;
  ZipfSampler zipf_;
};

/// The largest value the loadgen stores: a SET and a GET reply must each fit one datagram
/// (memcached's and kvserver's 1400-byte UDP replies, frame header and "VALUE ..." included).
inline constexpr uint32_t kMaxValueSize = 1300;

/// Value size of each key: a pure function of the key, so a GET knows the length that every
/// SET of that key wrote, whichever core sent it and in whatever order.
class ValueSizes {
 public:
  enum class Kind : uint8_t { kFixed, kUniform, kExponential, kEtc };

  /// Parses "N", "fixed:N", "uniform:MIN-MAX", "exp:MEAN" or "etc" (Facebook ETC: generalized
  /// Pareto, scale 214.476, shape 0.348238, Atikoglu et al. SIGMETRICS'12), all clamped to
  /// [1, kMaxValueSize]. The error names `flag`.
  static Result<ValueSizes> parse(std::string_view spec, std::string_view flag);
  static ValueSizes fixed(uint32_t n) { return ValueSizes(Kind::kFixed, n, n, 0); }

  uint32_t size_for(uint64_t key) const {
    if (kind_ == Kind::kFixed) return min_;
    uint64_t st = key ^ 0x5851F42D4C957F2Dull;
    const double u = double(splitmix64(st) >> 11) * 0x1.0p-53;  // [0, 1)
    double v = 0;
    switch (kind_) {
      case Kind::kFixed:
        break;
      case Kind::kUniform:
        v = double(min_) + std::floor(u * double(max_ - min_ + 1));
        break;
      case Kind::kExponential:
        v = std::ceil(-std::log1p(-u) * param_);
        break;
      case Kind::kEtc:
        v = std::ceil(214.476 * (std::pow(1.0 - u, -0.348238) - 1.0) / 0.348238);
        break;
    }
    if (!(v >= double(min_))) v = double(min_);
    if (v > double(max_)) v = double(max_);
    return uint32_t(v);
  }

  Kind kind() const { return kind_; }
  uint32_t min() const { return min_; }
  uint32_t max() const { return max_; }
  std::string describe() const;

 private:
  ValueSizes(Kind k, uint32_t min, uint32_t max, double param)
      : kind_(k), min_(min), max_(max), param_(param) {}
  Kind kind_;
  uint32_t min_, max_;
  double param_;
};

}  // namespace fm::loadgen
