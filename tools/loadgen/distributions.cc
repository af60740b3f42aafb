// Parsing and set-up of the key and value-size distributions.
#include "tools/loadgen/distributions.h"

#include <fmt/core.h>

#include "tools/loadgen/spec_parse.h"

namespace fm::loadgen {

ZipfSampler::ZipfSampler(uint64_t n, double s) : n_(n ? n : 1), n_d_(double(n ? n : 1)), s_(s) {
  h_x1_ = big_h(1.5) - 1.0;
  h_n_ = big_h(n_d_ + 0.5);
  s_div_ = 2.0 - h_inv(big_h(2.5) - h(2.0));
}

Result<KeyDist> KeyDist::parse(std::string_view spec, uint64_t keys, std::string_view flag) {
  if (keys == 0) return error(Errc::kInvalidArgument, "--keys must be at least 1");
  if (spec == "uniform") return KeyDist::uniform(keys);
  if (spec.starts_with("zipf:")) {
    auto s = parse_number(spec.substr(5), false);
    if (!s || !(*s > 0) || *s > 10) {
      return error(Errc::kInvalidArgument,
                   fmt::format("{}: '{}': the Zipf exponent must be a number in (0, 10], e.g. "
                               "zipf:0.99",
                               flag, spec));
    }
    return KeyDist::zipf(keys, *s);
  }
  return error(Errc::kInvalidArgument,
               fmt::format("{}: '{}' is not a key distribution: use uniform or zipf:S (e.g. "
                           "zipf:0.99)",
                           flag, spec));
}

std::string KeyDist::describe() const {
  return kind_ == Kind::kUniform ? "uniform" : fmt::format("zipf:{:g}", skew_);
}

Result<ValueSizes> ValueSizes::parse(std::string_view spec, std::string_view flag) {
  const auto bad = [&](std::string_view why) {
    return error(Errc::kInvalidArgument,
                 fmt::format("{}: '{}': {} (forms: N, fixed:N, uniform:MIN-MAX, exp:MEAN, etc; "
                             "sizes 1..{})",
                             flag, spec, why, kMaxValueSize));
  };
  const auto size = [&](std::string_view t) -> std::optional<uint32_t> {
    auto v = parse_count(t);
    if (!v || *v < 1 || *v > kMaxValueSize) return std::nullopt;
    return uint32_t(*v);
  };
  if (spec == "etc") return ValueSizes(Kind::kEtc, 1, kMaxValueSize, 0);
  std::string_view body = spec;
  if (body.starts_with("fixed:")) body.remove_prefix(6);
  if (body.find(':') == std::string_view::npos) {
    auto n = size(body);
    if (!n) return bad("a size must be an integer in range");
    return ValueSizes::fixed(*n);
  }
  if (spec.starts_with("uniform:")) {
    const std::string_view r = spec.substr(8);
    const size_t dash = r.find('-');
    if (dash == std::string_view::npos) return bad("uniform needs MIN-MAX");
    auto lo = size(r.substr(0, dash)), hi = size(r.substr(dash + 1));
    if (!lo || !hi) return bad("MIN and MAX must be integers in range");
    if (*lo > *hi) return bad("MIN is larger than MAX");
    return ValueSizes(Kind::kUniform, *lo, *hi, 0);
  }
  if (spec.starts_with("exp:")) {
    auto m = parse_number(spec.substr(4), false);
    if (!m || !(*m >= 1) || *m > kMaxValueSize) return bad("MEAN must be a number in range");
    return ValueSizes(Kind::kExponential, 1, kMaxValueSize, *m);
  }
  return bad("unknown form");
}

std::string ValueSizes::describe() const {
  switch (kind_) {
    case Kind::kFixed:
      return std::to_string(min_);
    case Kind::kUniform:
      return fmt::format("uniform:{}-{}", min_, max_);
    case Kind::kExponential:
      return fmt::format("exp:{:g}", param_);
    case Kind::kEtc:
      return "etc";
  }
  return "?";
}

}  // namespace fm::loadgen
