// The emulated one-sided transport's model, with an injected clock: completions appear exactly
// when the model says, the link limits bandwidth, the outstanding limit holds, a dead node fails.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "paging/emulated_transport.h"

namespace fm::paging {
namespace {

class EmulatedModel : public ::testing::Test {
 protected:
  void make(EmulatedOptions o, uint64_t pool = 1 << 20) {
    opts_ = o;
    auto t = EmulatedTransport::in_process(o, pool, manual_clock(&now_));
    ASSERT_TRUE(t.is_ok()) << t.status().message();
    transport_ = std::move(t.value());
    auto qp = transport_->create_queue_pair(CoreId{0});
    ASSERT_TRUE(qp.is_ok());
    qp_ = std::move(qp.value());
  }
  std::vector<Completion> drain() {
    std::vector<Completion> out(64);
    out.resize(qp_->poll(out));
    return out;
  }
  uint64_t now_ = 0;  // ns: manual_clock's hz is 1e9
  EmulatedOptions opts_;
  std::unique_ptr<EmulatedTransport> transport_;
  std::unique_ptr<QueuePair> qp_;
  alignas(64) std::byte buf_[64 * 4096];
};

TEST_F(EmulatedModel, ReadCompletesExactlyAtLatencyPlusSerialization) {
  EmulatedOptions o;
  o.latency_ns = 3300;
  o.link_gbps = 100;  // 4096 B = 327.68 ns -> 328 ticks
  make(o);
  now_ = 1000;
  ASSERT_EQ(qp_->post(IoOp::kRead, 0, buf_, 4096, 7), PostResult::kOk);
  now_ = 1000 + 328 + 3300 - 1;
  EXPECT_TRUE(drain().empty());
  now_ += 1;
  auto c = drain();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].wr_id, 7u);
  EXPECT_EQ(c[0].status, IoStatus::kOk);
  EXPECT_EQ(qp_->outstanding(), 0u);
}

TEST_F(EmulatedModel, BytesMoveOnlyAtCompletion) {
  EmulatedOptions o;
  o.latency_ns = 1000;
  make(o);
  std::memset(buf_, 0xAB, 4096);
  ASSERT_EQ(qp_->post(IoOp::kWrite, 8192, buf_, 4096, 1), PostResult::kOk);
  std::byte back[4096];
  std::memset(back, 0, sizeof(back));
  // A READ of the same page posted now completes later, in order, and sees the WRITE.
  ASSERT_EQ(qp_->post(IoOp::kRead, 8192, back, 4096, 2), PostResult::kOk);
  EXPECT_TRUE(drain().empty());
  EXPECT_EQ(back[0], std::byte{0});
  now_ = 1'000'000;
  auto c = drain();
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].wr_id, 1u);
  EXPECT_EQ(c[1].wr_id, 2u);
  EXPECT_EQ(back[0], std::byte{0xAB});
  EXPECT_EQ(back[4095], std::byte{0xAB});
}

TEST_F(EmulatedModel, LinkBandwidthQueuesOverlappingTransfers) {
  EmulatedOptions o;
  o.latency_ns = 0;
  o.link_gbps = 8;  // 1 byte per ns: 4096 B take 4096 ns
  o.max_outstanding = 64;
  make(o);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(qp_->post(IoOp::kRead, 0, buf_ + i * 4096, 4096, i), PostResult::kOk);
  for (int i = 0; i < 10; ++i) {
    now_ = uint64_t(i + 1) * 4096 - 1;
    EXPECT_EQ(drain().size(), 0u) << i;
    now_ += 1;
    auto c = drain();
    ASSERT_EQ(c.size(), 1u) << i;
    EXPECT_EQ(c[0].wr_id, uint64_t(i));
  }
  // Throughput equals the link: 10 pages in 10 serialization times.
}

TEST_F(EmulatedModel, LinkIsSharedByQueuePairs) {
  EmulatedOptions o;
  o.latency_ns = 0;
  o.link_gbps = 8;
  make(o);
  auto qp2 = transport_->create_queue_pair(CoreId{1});
  ASSERT_TRUE(qp2.is_ok());
  ASSERT_EQ(qp_->post(IoOp::kRead, 0, buf_, 4096, 1), PostResult::kOk);
  ASSERT_EQ((*qp2)->post(IoOp::kRead, 0, buf_ + 4096, 4096, 2), PostResult::kOk);
  now_ = 4096;
  EXPECT_EQ(drain().size(), 1u);
  std::vector<Completion> c(4);
  EXPECT_EQ((*qp2)->poll(c), 0u);  // its transfer waits behind the first on the one link
  now_ = 8192;
  EXPECT_EQ((*qp2)->poll(c), 1u);
}

TEST_F(EmulatedModel, OutstandingLimitIsRespected) {
  EmulatedOptions o;
  o.max_outstanding = 4;
  make(o);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(qp_->post(IoOp::kRead, 0, buf_, 4096, i), PostResult::kOk);
  EXPECT_EQ(qp_->post(IoOp::kRead, 0, buf_, 4096, 9), PostResult::kFull);
  EXPECT_EQ(qp_->outstanding(), 4u);
  now_ = 1'000'000'000;
  EXPECT_EQ(drain().size(), 4u);
  EXPECT_EQ(qp_->post(IoOp::kRead, 0, buf_, 4096, 9), PostResult::kOk);
}

TEST_F(EmulatedModel, CompletionsStayInPostOrderWithJitter) {
  EmulatedOptions o;
  o.latency_ns = 1000;
  o.jitter = JitterKind::kExponential;
  o.jitter_ns = 5000;
  o.max_outstanding = 64;
  make(o);
  for (int i = 0; i < 64; ++i) ASSERT_EQ(qp_->post(IoOp::kRead, 0, buf_, 64, i), PostResult::kOk);
  uint64_t expect = 0;
  for (now_ = 0; now_ < 10'000'000 && expect < 64; now_ += 100) {
    for (const auto& c : drain()) EXPECT_EQ(c.wr_id, expect++);
  }
  EXPECT_EQ(expect, 64u);
}

TEST_F(EmulatedModel, JitterHasTheConfiguredMean) {
  EmulatedOptions o;
  o.latency_ns = 0;
  o.link_gbps = 1e6;  // serialization negligible
  o.jitter = JitterKind::kExponential;
  o.jitter_ns = 2000;
  o.max_outstanding = 1;
  make(o);
  double sum = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const uint64_t t0 = now_;
    ASSERT_EQ(qp_->post(IoOp::kRead, 0, buf_, 8, i), PostResult::kOk);
    auto* eq = static_cast<EmulatedQueuePair*>(qp_.get());
    const uint64_t due = eq->next_due();
    sum += double(due - t0);
    now_ = due;
    ASSERT_EQ(drain().size(), 1u);
  }
  EXPECT_NEAR(sum / n, 2000.0, 2000.0 * 0.05);
}

TEST_F(EmulatedModel, OutOfBoundsIsARemoteError) {
  make(EmulatedOptions{}, 1 << 20);
  ASSERT_EQ(qp_->post(IoOp::kRead, (1 << 20) - 100, buf_, 4096, 3), PostResult::kOk);
  now_ = 1'000'000;
  auto c = drain();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].status, IoStatus::kRemoteError);
}

TEST_F(EmulatedModel, DeadNodeFailsPostsAndFlushesOutstanding) {
  make(EmulatedOptions{});
  std::memset(buf_, 0x11, 4096);
  ASSERT_EQ(qp_->post(IoOp::kRead, 0, buf_, 4096, 5), PostResult::kOk);
  transport_->kill();
  EXPECT_FALSE(transport_->alive());
  auto c = drain();  // no clock advance needed: a dead link flushes at once
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].status, IoStatus::kDisconnected);
  EXPECT_EQ(buf_[0], std::byte{0x11});  // nothing was copied
  EXPECT_EQ(qp_->post(IoOp::kRead, 0, buf_, 4096, 6), PostResult::kDead);
}

}  // namespace
}  // namespace fm::paging
