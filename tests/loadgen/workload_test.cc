// Key popularity (Zipf, uniform), value sizes, request encoding and reply verification.
#include "tools/loadgen/workload.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "tools/loadgen/distributions.h"

namespace fm::loadgen {
namespace {

/// Chi-square statistic of observed counts against probabilities p (sum 1) over n samples.
double chi_square(const std::vector<uint64_t>& observed, const std::vector<double>& p, double n) {
  double x2 = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double e = p[i] * n;
    x2 += (double(observed[i]) - e) * (double(observed[i]) - e) / e;
  }
  return x2;
}

class ZipfSkew : public ::testing::TestWithParam<double> {};

TEST_P(ZipfSkew, MatchesTheExactPmf) {
  const double s = GetParam();
  const uint64_t n = 100;
  ZipfSampler z(n, s);
  std::vector<double> p(n);
  double h = 0;
  for (uint64_t k = 1; k <= n; ++k) h += std::pow(double(k), -s);
  for (uint64_t k = 1; k <= n; ++k) p[k - 1] = std::pow(double(k), -s) / h;
  Rng rng(12345);
  const int samples = 500'000;
  std::vector<uint64_t> count(n, 0);
  for (int i = 0; i < samples; ++i) {
    const uint64_t k = z.sample(rng);
    ASSERT_GE(k, 1u);
    ASSERT_LE(k, n);
    ++count[k - 1];
  }
  // 99 degrees of freedom: the 0.001 critical value is 148.2.
  EXPECT_LT(chi_square(count, p, samples), 148.2);
  EXPECT_NEAR(double(count[0]) / samples, p[0], 0.005);  // the hottest key's share
}

INSTANTIATE_TEST_SUITE_P(Skews, ZipfSkew, ::testing::Values(0.5, 0.99, 1.0, 1.2, 2.0));

TEST(Zipf, HugeKeySpacesNeedNoTable) {
  // 10^10 keys: no O(n) set-up; the top rank's share is 1/H(n, s).
  ZipfSampler z(10'000'000'000ull, 0.99);
  Rng rng(1);
  uint64_t top = 0, max = 0;
  const int samples = 200'000;
  for (int i = 0; i < samples; ++i) {
    const uint64_t k = z.sample(rng);
    top += k == 1;
    max = std::max(max, k);
  }
  EXPECT_LE(max, 10'000'000'000ull);
  EXPECT_GT(max, 1'000'000u);  // the long tail is reached
  // H(n, s) ~ zeta(s) + n^(1-s)/(1-s) = -99.42 + 125.89 = 26.5: rank 1 has 3.78%.
  EXPECT_NEAR(double(top) / samples, 0.0378, 0.002);
}

TEST(KeyDist, UniformCoversTheKeySpaceEvenly) {
  const KeyDist d = KeyDist::uniform(10);
  Rng rng(2);
  std::vector<uint64_t> count(10, 0);
  for (int i = 0; i < 100'000; ++i) {
    const uint64_t k = d.sample(rng);
    ASSERT_LT(k, 10u);
    ++count[k];
  }
  // 9 degrees of freedom, 0.001 critical value 27.9.
  EXPECT_LT(chi_square(count, std::vector<double>(10, 0.1), 100'000), 27.9);
}

TEST(KeyDist, ZipfKeyZeroIsTheHottest) {
  auto d = KeyDist::parse("zipf:1.2", 1000, "--key-dist");
  ASSERT_TRUE(d.is_ok());
  Rng rng(3);
  std::map<uint64_t, int> count;
  for (int i = 0; i < 10'000; ++i) {
    const uint64_t k = d->sample(rng);
    ASSERT_LT(k, 1000u);
    ++count[k];
  }
  EXPECT_GT(count[0], count[1]);
  EXPECT_GT(count[1], count[5]);
  EXPECT_EQ(d->describe(), "zipf:1.2");
}

TEST(KeyDist, BadSpecsNameTheFlag) {
  for (const char* bad : {"zipf", "zipf:", "zipf:0", "zipf:-1", "zipf:abc", "zipf:11", "normal"}) {
    auto d = KeyDist::parse(bad, 100, "--key-dist");
    ASSERT_FALSE(d.is_ok()) << bad;
    EXPECT_NE(d.status().message().find("--key-dist"), std::string::npos) << d.status().message();
  }
}

TEST(ValueSizes, FormsParseAndStayInBounds) {
  auto fixed = ValueSizes::parse("128", "--value-size");
  ASSERT_TRUE(fixed.is_ok());
  EXPECT_EQ(fixed->size_for(7), 128u);
  auto f2 = ValueSizes::parse("fixed:1300", "--value-size");
  ASSERT_TRUE(f2.is_ok());
  EXPECT_EQ(f2->size_for(7), 1300u);
  auto uni = ValueSizes::parse("uniform:10-20", "--value-size");
  ASSERT_TRUE(uni.is_ok());
  double sum = 0;
  for (uint64_t k = 0; k < 10'000; ++k) {
    const uint32_t v = uni->size_for(k);
    ASSERT_GE(v, 10u);
    ASSERT_LE(v, 20u);
    EXPECT_EQ(v, uni->size_for(k));  // a function of the key
    sum += v;
  }
  EXPECT_NEAR(sum / 10'000, 15.0, 0.2);
  for (const char* spec : {"exp:200", "etc"}) {
    auto d = ValueSizes::parse(spec, "--value-size");
    ASSERT_TRUE(d.is_ok()) << spec;
    double s = 0;
    for (uint64_t k = 0; k < 20'000; ++k) {
      const uint32_t v = d->size_for(k);
      ASSERT_GE(v, 1u);
      ASSERT_LE(v, kMaxValueSize);
      s += v;
    }
    EXPECT_GT(s / 20'000, 150.0) << spec;  // exp mean 200; ETC mean ~330 before clamping
    EXPECT_LT(s / 20'000, 400.0) << spec;
  }
}

TEST(ValueSizes, BadSpecsNameTheFlag) {
  for (const char* bad :
       {"0", "1301", "abc", "uniform:5", "uniform:20-10", "exp:0", "fixed:", "pareto:1"}) {
    auto d = ValueSizes::parse(bad, "--value-size");
    ASSERT_FALSE(d.is_ok()) << bad;
    EXPECT_NE(d.status().message().find("--value-size"), std::string::npos);
  }
}

std::string body_of(const uint8_t* buf, size_t len) {
  return std::string(reinterpret_cast<const char*>(buf) + kFrameHeaderLen, len - kFrameHeaderLen);
}

/// What memcached answers to a GET of `key` holding `value`.
std::string get_reply(uint64_t key, const std::string& value) {
  char k[kKeyLen];
  key_text(key, k);
  return "VALUE " + std::string(k, kKeyLen) + " 0 " + std::to_string(value.size()) + "\r\n" +
         value + "\r\nEND\r\n";
}

std::string value_of(uint64_t key, uint32_t len) {
  std::string v(len, '\0');
  write_value(v.data(), key, len);
  return v;
}

TEST(Workload, RequestsAreMemcachedText) {
  uint8_t buf[kMaxRequestLen];
  size_t n = encode_get(buf, 0x1234, 42);
  EXPECT_EQ(buf[0], 0x12);
  EXPECT_EQ(buf[1], 0x34);
  EXPECT_EQ(buf[5], 1);  // one datagram
  EXPECT_EQ(body_of(buf, n), "get k0000000042\r\n");
  n = encode_set(buf, 7, 9, 20);
  EXPECT_EQ(body_of(buf, n), "set k0000000009 0 0 20\r\n" + value_of(9, 20) + "\r\n");
  n = encode_set(buf, 7, 9, kMaxValueSize);
  EXPECT_LE(n, kMaxRequestLen);
}

TEST(Workload, ValuesArePrintableAndDifferPerKey) {
  const std::string a = value_of(1, 64), b = value_of(2, 64);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, value_of(1, 64));
  for (char c : a) EXPECT_TRUE(std::isalpha(static_cast<unsigned char>(c)));
  // Even one-byte values usually differ between keys.
  int same = 0;
  for (uint64_t k = 0; k < 100; ++k) same += value_of(k, 1) == value_of(k + 1, 1);
  EXPECT_LT(same, 15);
}

TEST(Workload, GetRepliesAreVerified) {
  EXPECT_EQ(check_get_reply(get_reply(5, value_of(5, 100)), 5, 100, true), ReplyOutcome::kOk);
  std::string bad = value_of(5, 100);
  bad[50] ^= 1;
  EXPECT_EQ(check_get_reply(get_reply(5, bad), 5, 100, true), ReplyOutcome::kWrongValue);
  EXPECT_EQ(check_get_reply(get_reply(5, bad), 5, 100, false), ReplyOutcome::kOk);
  // Another key's value under the right name, the right value under another name, wrong length.
  EXPECT_EQ(check_get_reply(get_reply(5, value_of(6, 100)), 5, 100, true),
            ReplyOutcome::kWrongValue);
  EXPECT_EQ(check_get_reply(get_reply(6, value_of(5, 100)), 5, 100, true),
            ReplyOutcome::kWrongValue);
  EXPECT_EQ(check_get_reply(get_reply(5, value_of(5, 99)), 5, 100, true),
            ReplyOutcome::kWrongValue);
  EXPECT_EQ(check_get_reply("END\r\n", 5, 100, true), ReplyOutcome::kMiss);
  EXPECT_EQ(check_get_reply("SERVER_ERROR out of memory\r\n", 5, 100, true),
            ReplyOutcome::kServerError);
  EXPECT_EQ(check_get_reply("ERROR\r\n", 5, 100, true), ReplyOutcome::kServerError);
  EXPECT_EQ(check_get_reply("VALUE k0000000005 0 100\r\nshort", 5, 100, true),
            ReplyOutcome::kMalformed);
  EXPECT_EQ(check_get_reply("hello", 5, 100, true), ReplyOutcome::kMalformed);
  EXPECT_EQ(check_get_reply("", 5, 100, true), ReplyOutcome::kMalformed);
}

TEST(Workload, SetRepliesAreChecked) {
  EXPECT_EQ(check_set_reply("STORED\r\n"), ReplyOutcome::kOk);
  EXPECT_EQ(check_set_reply("NOT_STORED\r\n"), ReplyOutcome::kServerError);
  EXPECT_EQ(check_set_reply("SERVER_ERROR object too large for cache\r\n"),
            ReplyOutcome::kServerError);
  EXPECT_EQ(check_set_reply("STORED"), ReplyOutcome::kMalformed);
}

}  // namespace
}  // namespace fm::loadgen
