// Unit tests of the UDP frame header, ReplyBuffer::claim, and Session's datagram handling and
// reply splitting.
#include "kvapp/udp_frame.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "kv_test_util.h"
#include "kvapp/reply_buffer.h"

namespace fm::kv {
namespace {

using testing::bytes;
using testing::Client;
using testing::Datagram;
using testing::kNow;
using testing::make_store;

TEST(UdpFrameTest, ParsesNetworkByteOrder) {
  const uint8_t raw[] = {0x12, 0x34, 0x00, 0x02, 0x00, 0x05, 0xab, 0xcd, 'x'};
  const auto h = parse_frame_header(raw);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->request_id, 0x1234);
  EXPECT_EQ(h->sequence, 2);
  EXPECT_EQ(h->total, 5);
  EXPECT_EQ(h->reserved, 0xabcd);
  EXPECT_FALSE(h->is_single_datagram());
}

TEST(UdpFrameTest, WriteRoundTrips) {
  uint8_t raw[8] = {};
  write_frame_header(UdpFrameHeader{0xfffe, 7, 9, 0}, raw);
  const uint8_t want[] = {0xff, 0xfe, 0x00, 0x07, 0x00, 0x09, 0x00, 0x00};
  EXPECT_EQ(std::vector<uint8_t>(raw, raw + 8), std::vector<uint8_t>(want, want + 8));
  const auto h = parse_frame_header(raw);
  EXPECT_EQ(h->request_id, 0xfffe);
  EXPECT_EQ(h->sequence, 7);
  EXPECT_EQ(h->total, 9);
}

TEST(UdpFrameTest, ShortHeaderIsRejected) {
  const uint8_t raw[7] = {};
  for (size_t n = 0; n <= 7; ++n) {
    EXPECT_FALSE(parse_frame_header(std::span<const uint8_t>(raw, n)).has_value()) << n;
  }
  EXPECT_TRUE((UdpFrameHeader{1, 0, 1, 0}.is_single_datagram()));
  EXPECT_FALSE((UdpFrameHeader{1, 1, 1, 0}.is_single_datagram()));
  EXPECT_FALSE((UdpFrameHeader{1, 0, 0, 0}.is_single_datagram()));
}

TEST(ReplyBufferTest, ClaimTakesBytesOnlyWithinTheSlotAndTheLimit) {
  // Four 100-byte datagrams: 92 text bytes each, 368 in all, 240 under the limit.
  ReplyBuffer rb(400, 100);
  rb.begin(1000);
  EXPECT_EQ(rb.datagram_count(), 0u);
  char* p = rb.claim(90);
  ASSERT_NE(p, nullptr);
  std::memset(p, 'a', 90);
  EXPECT_EQ(rb.size(), 90u);
  EXPECT_EQ(rb.datagram_count(), 1u);
  EXPECT_EQ(rb.claim(3), nullptr);  // would cross into the next datagram: nothing taken
  EXPECT_EQ(rb.size(), 90u);
  ASSERT_TRUE(rb.append(std::string_view("bcd")));  // append() crosses it
  EXPECT_EQ(rb.datagram_count(), 2u);
  p = rb.claim(2);
  ASSERT_NE(p, nullptr);
  std::memcpy(p, "ef", 2);
  EXPECT_EQ(rb.text(), std::string(90, 'a') + "bcdef");
  EXPECT_EQ(rb.claim(rb.room() + 1), nullptr);  // past the limit
  // begin() starts over in the first datagram, and its bound limits claim() too.
  rb.begin(10);
  EXPECT_EQ(rb.claim(11), nullptr);
  p = rb.claim(10);
  ASSERT_NE(p, nullptr);
  std::memcpy(p, "0123456789", 10);
  EXPECT_EQ(rb.text(), "0123456789");
  EXPECT_EQ(rb.claim(1), nullptr);
  // After a reserved line went past the limit, nothing more is taken.
  ASSERT_TRUE(rb.append_reserved("END\r\n"));
  EXPECT_EQ(rb.claim(0), nullptr);
}

TEST(UdpFrameTest, DatagramsFor) {
  EXPECT_EQ(datagrams_for(0, 1400), 0u);
  EXPECT_EQ(datagrams_for(1, 1400), 1u);
  EXPECT_EQ(datagrams_for(1392, 1400), 1u);
  EXPECT_EQ(datagrams_for(1393, 1400), 2u);
  EXPECT_EQ(datagrams_for(3000, 1400), 3u);
}

class SessionTest : public ::testing::Test {
 protected:
  SessionTest() : store_(make_store()), c_(*store_) {}
  uint64_t stat(Stat s) const { return c_.session.counters().get(s); }

  std::unique_ptr<Store> store_;
  Client c_;
};

TEST_F(SessionTest, RuntDatagramsAreDroppedAndCounted) {
  const uint8_t raw[8] = {0, 1, 0, 0, 0, 1, 0, 0};
  for (size_t n = 0; n < 8; ++n) {
    EXPECT_TRUE(c_.send_raw(std::span<const uint8_t>(raw, n)).empty());
  }
  EXPECT_EQ(stat(Stat::kRuntDatagrams), 8u);
  // Exactly a header and no text: a valid, empty request, so nothing to answer.
  EXPECT_TRUE(c_.send_raw(std::span<const uint8_t>(raw, 8)).empty());
  EXPECT_EQ(stat(Stat::kRuntDatagrams), 8u);
  EXPECT_EQ(stat(Stat::kDatagramsIn), 9u);
  EXPECT_EQ(stat(Stat::kDatagramsOut), 0u);
}

TEST_F(SessionTest, MultiPacketRequestsGetMemcachedsError) {
  for (auto [seq, total] : {std::pair{0, 2}, std::pair{0, 0}}) {
    const auto ds = c_.send_raw(c_.frame("set a 0 0 1\r\nx\r\n", 77, seq, total));
    ASSERT_EQ(ds.size(), 1u);
    EXPECT_EQ(ds[0].header.request_id, 77);
    EXPECT_EQ(ds[0].header.sequence, 0);
    EXPECT_EQ(ds[0].header.total, 1);
    EXPECT_EQ(ds[0].text, "SERVER_ERROR multi-packet request not supported\r\n");
  }
  // A later datagram of a message (a request's or another server's reply) is never answered:
  // its text may be anything, and answering it could start a loop.
  for (auto [seq, total] : {std::pair{1, 2}, std::pair{1, 1}}) {
    EXPECT_TRUE(c_.send_raw(c_.frame("set a 0 0 1\r\nx\r\n", 77, seq, total)).empty());
  }
  EXPECT_EQ(testing::peek(*store_, "a"), "<miss>");
  EXPECT_EQ(stat(Stat::kMultiPacket), 2u);
  EXPECT_EQ(stat(Stat::kReplyDatagrams), 2u);
}

TEST_F(SessionTest, ReservedFieldIsIgnored) {
  std::vector<uint8_t> d = c_.frame("version\r\n", 5);
  d[6] = 0x12;
  d[7] = 0x34;
  const auto ds = c_.send_raw(d);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].text, "VERSION 1.6.18-farmem\r\n");
}

TEST_F(SessionTest, EchoesRequestIds) {
  for (uint16_t id : {0, 1, 0x7fff, 0xffff}) {
    const auto ds = c_.send_raw(c_.frame("version\r\n", id));
    ASSERT_EQ(ds.size(), 1u);
    EXPECT_EQ(ds[0].header.request_id, id);
    EXPECT_EQ(ds[0].header.sequence, 0);
    EXPECT_EQ(ds[0].header.total, 1);
    EXPECT_EQ(ds[0].header.reserved, 0);
    EXPECT_EQ(ds[0].size, 8 + ds[0].text.size());
  }
}

TEST_F(SessionTest, NoreplyOnlyRequestEmitsNothing) {
  EXPECT_TRUE(c_.send_raw(c_.frame("set a 0 0 1 noreply\r\nx\r\n", 3)).empty());
  EXPECT_EQ(testing::peek(*store_, "a"), "x");
}

// Splits a get of `value_size` bytes with `max_payload`-byte datagrams and checks every header.
void check_split(size_t value_size, uint32_t max_payload) {
  auto store = make_store();
  ProtocolOptions po;
  po.udp_max_payload = max_payload;
  Client c(*store, po);
  const std::string value(value_size, 'v');
  std::string body = "set big 9 0 " + std::to_string(value_size) + "\r\n" + value + "\r\n";
  ASSERT_EQ(c.req(body), "STORED\r\n");
  const std::string want =
      "VALUE big 9 " + std::to_string(value_size) + "\r\n" + value + "\r\nEND\r\n";
  const auto ds = c.send_raw(c.frame("get big\r\n", 0xbeef));
  ASSERT_EQ(ds.size(), datagrams_for(want.size(), max_payload));
  std::string text;
  for (size_t i = 0; i < ds.size(); ++i) {
    EXPECT_EQ(ds[i].header.request_id, 0xbeef);
    EXPECT_EQ(ds[i].header.sequence, i);
    EXPECT_EQ(ds[i].header.total, ds.size());
    EXPECT_LE(ds[i].size, max_payload);
    if (i + 1 < ds.size()) {
      EXPECT_EQ(ds[i].size, max_payload);  // only the last is short
    }
    text += ds[i].text;
  }
  EXPECT_EQ(text, want);
  EXPECT_EQ(c.session.counters().get(Stat::kDatagramsOut), 1 + ds.size());
}

TEST_F(SessionTest, LargeRepliesAreSplitIntoDatagrams) {
  check_split(1, 1400);
  check_split(1367, 1400);  // "VALUE big 9 1367\r\n" + value + "\r\nEND\r\n" is 1392: one full
  check_split(1368, 1400);  // one byte more: two datagrams
  check_split(3000, 1400);
  check_split(60000, 1400);
  check_split(5000, 64);
  check_split(5000, 65507);
}

TEST_F(SessionTest, StatsSumAllSessionsAndRetireRemovedOnes) {
  {
    Client other(*store_);
    EXPECT_EQ(other.req("get x y z\r\n"), "END\r\n");
    EXPECT_EQ(c_.req("get x\r\n"), "END\r\n");
    const std::string s = c_.req("stats\r\n");
    EXPECT_NE(s.find("STAT cmd_get 4\r\n"), std::string::npos) << s;
    EXPECT_NE(s.find("STAT threads 2\r\n"), std::string::npos);
  }
  // The other session is gone; its counts are kept.
  const std::string s = c_.req("stats\r\n");
  EXPECT_NE(s.find("STAT cmd_get 4\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT threads 1\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT kv_datagrams_in 4\r\n"), std::string::npos) << s;
}

TEST_F(SessionTest, StatsReplySpansDatagrams) {
  ProtocolOptions po;
  po.udp_max_payload = 256;
  Client c(*store_, po);
  const auto ds = c.send_raw(c.frame("stats\r\n", 9));
  ASSERT_GE(ds.size(), 2u);
  std::string text;
  for (const Datagram& d : ds) text += d.text;
  EXPECT_EQ(text.substr(text.size() - 5), "END\r\n");
}

TEST_F(SessionTest, CountsBytes) {
  const auto d = c_.frame("version\r\n", 1);
  c_.send_raw(d);
  EXPECT_EQ(stat(Stat::kBytesRead), d.size());
  EXPECT_EQ(stat(Stat::kBytesWritten), 8 + std::string("VERSION 1.6.18-farmem\r\n").size());
  EXPECT_EQ(c_.session.counters().command(Command::kVersion), 1u);
}

}  // namespace
}  // namespace fm::kv
