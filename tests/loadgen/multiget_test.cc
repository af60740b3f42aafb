// Multi-key GETs: request encoding, reply checking, reassembly of multi-datagram replies (in
// order, out of order, duplicated, one missing), and the engine's per-class accounting.
#include "tools/loadgen/multiget.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "tests/loadgen/fake_net.h"
#include "tools/loadgen/engine.h"
#include "tools/loadgen/results.h"
#include "tools/loadgen/schedule.h"
#include "tools/loadgen/workload.h"

namespace fm::loadgen {
namespace {

using testing::FakeNet;
constexpr double kHz = 1e9;

std::string key_str(uint64_t k) {
  char t[kKeyLen];
  key_text(k, t);
  return std::string(t, kKeyLen);
}

std::string item(uint64_t key, uint32_t len) {
  std::string v(len, '\0');
  write_value(v.data(), key, len);
  return "VALUE " + key_str(key) + " 0 " + std::to_string(len) + "\r\n" + v + "\r\n";
}

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(MultiGetRequest, IsOneGetCommandThatFitsADatagram) {
  uint8_t buf[kMaxRequestLen];
  const std::vector<uint64_t> keys = {7, 42, 9};
  const size_t n = encode_multiget(buf, 0x0102, keys);
  EXPECT_EQ(n, multiget_request_len(3));
  EXPECT_EQ(buf[0], 0x01);
  EXPECT_EQ(buf[1], 0x02);
  EXPECT_EQ(buf[5], 1);  // the request is one datagram
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf) + kFrameHeaderLen, n - kFrameHeaderLen),
            "get k0000000007 k0000000042 k0000000009\r\n");
  // The largest allowed request fits; one more key would not.
  EXPECT_EQ(kMaxMultiGetKeys, 115u);
  std::vector<uint64_t> many(kMaxMultiGetKeys);
  for (size_t i = 0; i < many.size(); ++i) many[i] = i;
  EXPECT_LE(encode_multiget(buf, 1, many), kMaxDatagramLen);
  EXPECT_GT(multiget_request_len(kMaxMultiGetKeys + 1), kMaxDatagramLen);
}

TEST(MultiGetReply, EveryKeyPresentAndRightIsOk) {
  const ValueSizes v = ValueSizes::parse("uniform:10-300", "--value-size").value();
  const std::vector<uint64_t> keys = {3, 17, 5};
  std::string body;
  for (uint64_t k : keys) body += item(k, v.size_for(k));
  body += "END\r\n";
  MultiGetCheck c = check_multiget_reply(body, keys, v, true);
  EXPECT_EQ(c.outcome, ReplyOutcome::kOk);
  EXPECT_EQ(c.found, 3u);
  // Any order of items is accepted.
  const std::string swapped =
      item(5, v.size_for(5)) + item(3, v.size_for(3)) + item(17, v.size_for(17)) + "END\r\n";
  EXPECT_EQ(check_multiget_reply(swapped, keys, v, true).outcome, ReplyOutcome::kOk);
}

TEST(MultiGetReply, MissingWrongAndMalformedAreTold) {
  const ValueSizes v = ValueSizes::fixed(64);
  const std::vector<uint64_t> keys = {1, 2, 3};
  const std::string ok = item(1, 64) + item(2, 64) + item(3, 64) + "END\r\n";
  // A key left out: a miss (its key was preloaded).
  EXPECT_EQ(check_multiget_reply(item(1, 64) + item(3, 64) + "END\r\n", keys, v, true).outcome,
            ReplyOutcome::kMiss);
  EXPECT_EQ(check_multiget_reply("END\r\n", keys, v, true).outcome, ReplyOutcome::kMiss);
  // A damaged value, a key not asked for, a key twice: wrong.
  std::string bad = ok;
  bad[bad.find("\r\n") + 10] ^= 1;
  EXPECT_EQ(check_multiget_reply(bad, keys, v, true).outcome, ReplyOutcome::kWrongValue);
  EXPECT_EQ(check_multiget_reply(bad, keys, v, false).outcome, ReplyOutcome::kOk);
  EXPECT_EQ(check_multiget_reply(item(1, 64) + item(2, 64) + item(4, 64) + "END\r\n", keys, v, true)
                .outcome,
            ReplyOutcome::kWrongValue);
  EXPECT_EQ(check_multiget_reply(item(1, 64) + item(1, 64) + item(3, 64) + "END\r\n", keys, v, true)
                .outcome,
            ReplyOutcome::kWrongValue);
  // No END, bytes after END, a short value, garbage: malformed.
  EXPECT_EQ(check_multiget_reply(item(1, 64) + item(2, 64) + item(3, 64), keys, v, true).outcome,
            ReplyOutcome::kMalformed);
  EXPECT_EQ(check_multiget_reply(ok + "x", keys, v, true).outcome, ReplyOutcome::kMalformed);
  EXPECT_EQ(
      check_multiget_reply("VALUE k0000000001 0 64\r\nshort\r\nEND\r\n", keys, v, true).outcome,
      ReplyOutcome::kMalformed);
  EXPECT_EQ(check_multiget_reply("hello", keys, v, true).outcome, ReplyOutcome::kMalformed);
  EXPECT_EQ(check_multiget_reply("SERVER_ERROR busy\r\n", keys, v, true).outcome,
            ReplyOutcome::kServerError);
}

/// Splits `body` into datagram payloads of at most `chunk` bytes.
std::vector<std::string> split(const std::string& body, size_t chunk) {
  std::vector<std::string> out;
  for (size_t off = 0; off < body.size(); off += chunk) out.push_back(body.substr(off, chunk));
  return out;
}

TEST(ReplyAssembly, InOrderOutOfOrderAndDuplicates) {
  std::string body;
  for (uint64_t k = 0; k < 10; ++k) body += item(k, 300);
  body += "END\r\n";
  const std::vector<std::string> parts = split(body, 1392);
  ASSERT_EQ(parts.size(), 3u);
  std::vector<char> buf(multiget_reply_capacity(10, 300)), out(buf.size());
  for (const std::vector<int>& order :
       std::vector<std::vector<int>>{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}}) {
    ReplyAssembly a;
    a.reset(buf);
    for (size_t i = 0; i < order.size(); ++i) {
      const auto r = a.add(uint16_t(order[i]), 3, bytes(parts[size_t(order[i])]));
      EXPECT_EQ(r,
                i + 1 == order.size() ? ReplyAssembly::Add::kComplete : ReplyAssembly::Add::kMore);
      if (i == 0) {  // a duplicate right away changes nothing
        EXPECT_EQ(a.add(uint16_t(order[0]), 3, bytes(parts[size_t(order[0])])),
                  ReplyAssembly::Add::kDuplicate);
      }
    }
    EXPECT_EQ(a.received(), 3);
    EXPECT_EQ(a.assemble(out), body);
  }
}

TEST(ReplyAssembly, BadHeadersAndOversizedReplies) {
  std::vector<char> buf(100), out(100);
  ReplyAssembly a;
  a.reset(buf);
  const std::string p(40, 'x');
  EXPECT_EQ(a.add(0, 0, bytes(p)), ReplyAssembly::Add::kBad);  // total 0
  EXPECT_EQ(a.add(3, 3, bytes(p)), ReplyAssembly::Add::kBad);  // seq past the total
  EXPECT_EQ(a.add(0, uint16_t(kMaxReplyDatagrams + 1), bytes(p)), ReplyAssembly::Add::kBad);
  EXPECT_EQ(a.add(0, 3, bytes(p)), ReplyAssembly::Add::kMore);
  EXPECT_EQ(a.add(1, 4, bytes(p)), ReplyAssembly::Add::kBad);  // total changed
  EXPECT_EQ(a.add(1, 3, bytes(p)), ReplyAssembly::Add::kMore);
  // 120 bytes do not fit a 100-byte buffer: counted, flagged, nothing to check.
  EXPECT_EQ(a.add(2, 3, bytes(p)), ReplyAssembly::Add::kComplete);
  EXPECT_TRUE(a.overflowed());
  EXPECT_TRUE(a.assemble(out).empty());
}

TEST(ReplyAssembly, Memcached16SendsOneMessagePerItem) {
  // memcached 1.6: each item is its own message, "sequence 0 of 1", END with the last.
  const std::vector<std::string> msgs = {item(1, 100), item(2, 100), item(3, 100) + "END\r\n"};
  std::vector<char> buf(multiget_reply_capacity(3, 100)), out(buf.size());
  ReplyAssembly a;
  a.reset(buf);
  EXPECT_EQ(a.add(0, 1, bytes(msgs[0])), ReplyAssembly::Add::kMore);
  EXPECT_EQ(a.add(0, 1, bytes(msgs[1])), ReplyAssembly::Add::kMore);
  EXPECT_EQ(a.add(0, 1, bytes(msgs[2])), ReplyAssembly::Add::kComplete);
  EXPECT_EQ(a.messages(), 2u);
  EXPECT_EQ(a.assemble(out), msgs[0] + msgs[1] + msgs[2]);
  // A message that is neither whole items nor the end cannot be continued: complete, and
  // the checker calls it malformed.
  a.reset(buf);
  EXPECT_EQ(a.add(0, 1, bytes(std::string("VALUE k0000000001 0 100\r\nabc"))),
            ReplyAssembly::Add::kComplete);
  // A single message whose END is split over two datagrams is complete, in either order.
  const std::string body = item(1, 100) + "END\r\n";
  const std::string p0 = body.substr(0, body.size() - 2), p1 = body.substr(body.size() - 2);
  a.reset(buf);
  EXPECT_EQ(a.add(1, 2, bytes(p1)), ReplyAssembly::Add::kMore);
  EXPECT_EQ(a.add(0, 2, bytes(p0)), ReplyAssembly::Add::kComplete);
  EXPECT_EQ(a.assemble(out), body);
  // A message of several datagrams that arrived out of order, then one more message.
  const std::string first = item(1, 100) + item(2, 100);
  a.reset(buf);
  EXPECT_EQ(a.add(1, 2, bytes(first.substr(150))), ReplyAssembly::Add::kMore);
  EXPECT_EQ(a.add(0, 2, bytes(first.substr(0, 150))), ReplyAssembly::Add::kMore);
  EXPECT_EQ(a.add(0, 1, bytes(item(3, 100) + "END\r\n")), ReplyAssembly::Add::kComplete);
  EXPECT_EQ(a.assemble(out), first + item(3, 100) + "END\r\n");
}

TEST(MultiGetPool, SlotsAreReusedAndBounded) {
  MultiGetPool pool;
  pool.init(2, 5, 1000);
  const uint32_t a = pool.acquire(), b = pool.acquire();
  EXPECT_NE(a, b);
  EXPECT_EQ(pool.acquire(), MultiGetPool::kNone);
  EXPECT_EQ(pool.keys(a).size(), 5u);
  pool.release(a);
  EXPECT_EQ(pool.in_use(), 1u);
  EXPECT_EQ(pool.acquire(), a);
}

TEST(MultiGetSchedule, KeysAreDistinctAndTheShareIsTheRatio) {
  const KeyDist keys = KeyDist::zipf(1000, 0.99);
  WorkloadSpec w{&keys, 0.9, Arrival::kPoisson};
  w.multiget_keys = 50;
  w.multiget_ratio = 0.05;
  Schedule s(w, 1e5, kHz, 3);
  int mgets = 0, gets = 0;
  const int n = 100'000;
  for (int i = 0; i < n; ++i) {
    const Request r = s.next();
    if (r.op == Op::kMultiGet) {
      ++mgets;
      const auto k = s.multiget_keys();
      ASSERT_EQ(k.size(), 50u);
      EXPECT_EQ(k[0], r.key);
      EXPECT_EQ(std::set<uint64_t>(k.begin(), k.end()).size(), 50u);
      for (uint64_t x : k) EXPECT_LT(x, 1000u);
    } else if (r.op == Op::kGet) {
      ++gets;
    }
  }
  EXPECT_NEAR(double(mgets) / n, 0.05, 0.003);
  EXPECT_NEAR(double(gets) / (n - mgets), 0.9, 0.005);  // --get-ratio splits the rest
}

TEST(MultiGetSchedule, ASkewThatRepeatsHotKeysStillEnds) {
  // Zipf 10 over 120 keys: rank 100 has probability ~1e-20; the fallback fills the rest.
  const KeyDist keys = KeyDist::zipf(120, 10.0);
  WorkloadSpec w{&keys, 1.0, Arrival::kPoisson};
  w.multiget_keys = 115;
  w.multiget_ratio = 1.0;
  Schedule s(w, 1e5, kHz, 3);
  for (int i = 0; i < 20; ++i) {
    s.next();
    const auto k = s.multiget_keys();
    EXPECT_EQ(std::set<uint64_t>(k.begin(), k.end()).size(), 115u);
  }
}

TEST(MultiGetSchedule, WithoutMultiGetsTheScheduleIsUnchanged) {
  // multiget_keys set but ratio 0: no extra random draws, so the same sequence as before.
  const KeyDist keys = KeyDist::uniform(1000);
  WorkloadSpec plain{&keys, 0.7, Arrival::kPoisson};
  WorkloadSpec off = plain;
  off.multiget_keys = 10;
  Schedule a(plain, 1e5, kHz, 8), b(off, 1e5, kHz, 8);
  for (int i = 0; i < 1000; ++i) {
    const Request x = a.next(), y = b.next();
    ASSERT_EQ(x.at, y.at);
    ASSERT_EQ(x.key, y.key);
    ASSERT_EQ(x.op, y.op);
  }
}

class MultiGetEngineTest : public ::testing::Test {
 protected:
  EngineConfig config(uint32_t keys_per_get, double timeout_ms = 2, uint32_t slots = 0) {
    EngineConfig c;
    c.flows = 1;
    c.timeout_ticks = uint64_t(timeout_ms * 1e6);
    c.late_ticks = 10'000;
    c.ns_per_tick = 1.0;
    c.verify = true;
    c.values = &values_;
    c.multiget_keys = keys_per_get;
    c.multiget_slots = slots;
    return c;
  }

  PointReport run(FakeNet& net, const EngineConfig& cfg, double rate, double duration_s,
                  double ratio, bool preload = true, CoreResult* raw = nullptr) {
    Engine<FakeNet> e(net, cfg);
    if (preload) {
      EXPECT_EQ(e.preload(0, 1, keys_.keys(), 32, 2).failed, 0u);
    }
    WorkloadSpec w{&keys_, 1.0, Arrival::kPoisson};
    w.multiget_keys = cfg.multiget_keys;
    w.multiget_ratio = ratio;
    Schedule s(w, rate, kHz, 5);
    PointPlan plan;
    plan.start = net.now() + 1000;
    plan.measure_from = 1'000'000;
    plan.measure_until = plan.measure_from + uint64_t(duration_s * kHz);
    CoreResult r = e.run(s, plan);
    PointReport rep = make_report(rate, r, kHz, ValidityRules{});
    if (raw) *raw = std::move(r);
    return rep;
  }

  KeyDist keys_ = KeyDist::uniform(500);
  ValueSizes values_ = ValueSizes::fixed(200);
};

TEST_F(MultiGetEngineTest, RepliesOfSeveralDatagramsCompleteAndVerify) {
  FakeNet net({.service_ns = 1000, .one_way_ns = 500});
  const PointReport r = run(net, config(20), 20'000, 0.05, 1.0);
  EXPECT_GT(net.multi_replies(), 500u);  // 20 x ~230 bytes: 4 datagrams each
  EXPECT_GT(r.mget.requests, 500u);
  EXPECT_EQ(r.mget.replies, r.mget.requests);
  EXPECT_EQ(r.mget.timeouts + r.mget.misses + r.mget.wrong + r.mget.malformed, 0u);
  EXPECT_EQ(r.get.requests, 0u);
  EXPECT_EQ(r.strays, 0u);
  EXPECT_TRUE(r.valid) << r.invalid_reason;
  // Wire, service and the 3 gaps before the last of 4 datagrams: 0.5 + 1 + 0.5 + 0.3 us.
  EXPECT_GE(r.mget.latency.min, 2.3);
}

TEST_F(MultiGetEngineTest, OutOfOrderAndDuplicatedDatagramsAreReassembled) {
  FakeNet net({.service_ns = 1000, .one_way_ns = 500, .reverse = true, .duplicate = true});
  const PointReport r = run(net, config(20), 20'000, 0.05, 1.0);
  EXPECT_GT(r.mget.requests, 500u);
  EXPECT_EQ(r.mget.replies, r.mget.requests);
  EXPECT_EQ(r.mget.wrong + r.mget.malformed + r.mget.misses + r.mget.timeouts, 0u);
  // Each reply's duplicate arrives after it completed (or before, while in flight): a stray.
  EXPECT_EQ(r.strays, net.multi_replies());
}

TEST_F(MultiGetEngineTest, AMissingDatagramIsATimeoutAndFreesItsSlot) {
  // Few slots: a leak would soon leave none, and requests would count as unsent.
  FakeNet net({.service_ns = 1000, .one_way_ns = 500, .lose_every = 4});
  const PointReport r = run(net, config(20, /*timeout_ms=*/0.2, /*slots=*/8), 20'000, 0.1, 1.0);
  const double n = double(r.mget.requests);
  EXPECT_NEAR(double(r.mget.timeouts), n / 4, n * 0.02 + 2);
  EXPECT_EQ(r.mget.replies + r.mget.timeouts, r.mget.requests);
  EXPECT_EQ(r.unsent, 0u);
  EXPECT_TRUE(std::isinf(r.mget.latency.p99));  // 25% drops: p99 is a drop
  EXPECT_TRUE(std::isfinite(r.mget.latency.p50));
  EXPECT_EQ(r.mget.wrong + r.mget.malformed, 0u);
}

TEST_F(MultiGetEngineTest, Memcached16StyleRepliesComplete) {
  FakeNet net({.service_ns = 1000, .one_way_ns = 500, .message_per_item = true});
  const PointReport r = run(net, config(20), 20'000, 0.05, 1.0);
  EXPECT_GT(r.mget.requests, 500u);
  EXPECT_EQ(r.mget.replies, r.mget.requests);
  EXPECT_EQ(r.mget.wrong + r.mget.malformed + r.mget.misses + r.mget.timeouts, 0u);
  EXPECT_EQ(r.strays, 0u);
}

TEST_F(MultiGetEngineTest, LatencyRunsToTheLastDatagram) {
  FakeNet net({.service_ns = 1000, .one_way_ns = 500, .datagram_gap_ns = 5000});
  Engine<FakeNet> e(net, config(20));
  e.preload(0, 1, keys_.keys(), 32, 2);
  WorkloadSpec w{&keys_, 1.0, Arrival::kConstant};
  w.multiget_keys = 20;
  w.multiget_ratio = 1.0;
  Schedule s(w, 1000, kHz, 1);  // one request per ms
  PointPlan plan;
  plan.start = net.now() + 1000;
  plan.measure_count = 1;
  const CoreResult res = e.run(s, plan);
  const OpStats& m = res.ops[size_t(Op::kMultiGet)];
  ASSERT_EQ(m.completed, 1u);
  // Due at start + 1 ms; 4 datagrams 5 us apart: the last arrives 0.5 + 1 + 0.5 + 15 us later.
  EXPECT_EQ(net.last_request().substr(0, 4), "get ");
  EXPECT_GE(m.latency.min(), 17'000u);
  EXPECT_LT(m.latency.max(), 17'000u + 1'000u);  // a few loop turns of 50 ns
}

TEST_F(MultiGetEngineTest, ClassesAreReportedApart) {
  FakeNet net({.service_ns = 1000, .one_way_ns = 500, .datagram_gap_ns = 1000});
  const PointReport r = run(net, config(10), 50'000, 0.1, 0.1);
  EXPECT_GT(r.get.requests, 0u);
  EXPECT_GT(r.mget.requests, 0u);
  EXPECT_EQ(r.get.requests + r.mget.requests, r.all.requests);
  EXPECT_NEAR(double(r.mget.requests) / double(r.all.requests), 0.1, 0.02);
  EXPECT_EQ(r.get.replies + r.mget.replies, r.all.replies);
  // Multi-gets carry ten values: slower than single GETs on the same server.
  EXPECT_GT(r.mget.latency.p50, r.get.latency.p50);
}

TEST_F(MultiGetEngineTest, MissesAndWrongValuesAreCountedPerRequest) {
  FakeNet empty({.service_ns = 1000, .one_way_ns = 500});
  const PointReport miss = run(empty, config(10), 20'000, 0.05, 1.0, /*preload=*/false);
  EXPECT_EQ(miss.mget.misses, miss.mget.replies);
  EXPECT_EQ(miss.mget.wrong, 0u);
  FakeNet bad({.service_ns = 1000, .one_way_ns = 500, .corrupt_every = 50});
  const PointReport wrong = run(bad, config(10), 20'000, 0.05, 1.0);
  // One value in 50 is damaged: about one multi-get in five holds one.
  EXPECT_GT(wrong.mget.wrong, wrong.mget.replies / 10);
  EXPECT_LT(wrong.mget.wrong, wrong.mget.replies / 3);
}

}  // namespace
}  // namespace fm::loadgen
