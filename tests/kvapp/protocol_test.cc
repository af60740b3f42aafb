// Unit tests of the memcached text protocol: exact reply bytes for every command and error.
#include "kvapp/protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "kv_test_util.h"
#include "kvapp/tuning.h"

namespace fm::kv {
namespace {

using testing::Client;
using testing::kNow;
using testing::make_store;
using testing::peek;
using testing::small_options;
using namespace std::string_literals;
using namespace std::string_view_literals;

class ProtocolTest : public ::testing::Test {
 protected:
  ProtocolTest() : store_(make_store()), c_(*store_) {}

  // The store's observable state, to show a bad input changed nothing.
  struct Snapshot {
    uint64_t curr_items, total_items, bytes;
    std::string a, b, n;
    bool operator==(const Snapshot&) const = default;
  };
  Snapshot snapshot() {
    const StoreStats s = store_->stats();
    return {s.curr_items,       s.total_items,      s.bytes,
            peek(*store_, "a"), peek(*store_, "b"), peek(*store_, "n")};
  }
  void seed() {
    ASSERT_EQ(c_.req("set a 1 0 3\r\nabc\r\nset b 2 0 3\r\nxyz\r\nset n 0 0 2\r\n10\r\n"),
              "STORED\r\nSTORED\r\nSTORED\r\n");
  }
  // Sends `body`, expects `reply`, and expects the store unchanged.
  void expect_rejected(std::string_view body, std::string_view reply) {
    seed();
    const Snapshot before = snapshot();
    EXPECT_EQ(c_.req(body), reply) << "request: " << ::testing::PrintToString(std::string(body));
    EXPECT_TRUE(snapshot() == before)
        << "store changed by: " << ::testing::PrintToString(std::string(body));
  }
  uint64_t stat(Stat s) const { return c_.session.counters().get(s); }

  std::unique_ptr<Store> store_;
  Client c_;
};

// --- version, verbosity, unknown -------------------------------------------------------------

TEST(ParseCommand, EveryNameAndNothingElse) {
  for (size_t i = 1; i < kCommandCount; ++i) {
    const auto c = static_cast<Command>(i);
    EXPECT_EQ(parse_command(command_name(c)), c) << command_name(c);
    // A prefix, an extension or another case of a name is not that command.
    const std::string name(command_name(c));
    EXPECT_EQ(parse_command(name.substr(0, name.size() - 1)),
              name == "gets" || name == "gats" ? static_cast<Command>(i - 1) : Command::kUnknown)
        << name;
    EXPECT_EQ(parse_command(name + "x"), Command::kUnknown) << name;
    std::string upper = name;
    upper[0] = static_cast<char>(upper[0] - 'a' + 'A');
    EXPECT_EQ(parse_command(upper), Command::kUnknown) << name;
  }
  EXPECT_EQ(parse_command("bget"), Command::kGet);
  EXPECT_EQ(parse_command(""), Command::kUnknown);
  EXPECT_EQ(parse_command("unknown"), Command::kUnknown);
  EXPECT_EQ(parse_command(std::string_view("get\0", 4)), Command::kUnknown);
}

TEST_F(ProtocolTest, Version) {
  EXPECT_EQ(c_.req("version\r\n"), "VERSION 1.6.18-farmem\r\n");
  EXPECT_EQ(c_.req("version extra tokens\r\n"), "VERSION 1.6.18-farmem\r\n");
  // Commands are case-sensitive, and "VERSION" starts a reply, which is never answered (a reply
  // loop between two servers could follow): memcached would say ERROR.
  EXPECT_EQ(c_.req("VERSION\r\n"), "");
  EXPECT_EQ(c_.req("Version\r\n"), "ERROR\r\n");
}

TEST_F(ProtocolTest, UnknownAndEmptyLines) {
  EXPECT_EQ(c_.req("bogus\r\n"), "ERROR\r\n");
  EXPECT_EQ(c_.req("\r\n"), "ERROR\r\n");
  EXPECT_EQ(c_.req("\n"), "ERROR\r\n");
  EXPECT_EQ(c_.req("g\r\n"), "ERROR\r\n");
  EXPECT_EQ(c_.req("   \r\n"), "ERROR\r\n");
  EXPECT_EQ(c_.req("mg a v\r\n"), "ERROR\r\n");  // meta commands are not supported
  EXPECT_EQ(c_.req("\x01\x02\x03\r\n"sv), "ERROR\r\n");
  EXPECT_EQ(stat(Stat::kUnknownCommands), 7u);
}

TEST_F(ProtocolTest, Verbosity) {
  EXPECT_EQ(c_.req("verbosity 1\r\n"), "OK\r\n");
  EXPECT_EQ(c_.req("verbosity 1 noreply\r\n"), "");
  EXPECT_EQ(c_.req("verbosity\r\n"), "ERROR\r\n");
  EXPECT_EQ(c_.req("verbosity 1 2 3\r\n"), "ERROR\r\n");
  EXPECT_EQ(c_.req("verbosity x\r\n"), "CLIENT_ERROR bad command line format\r\n");
}

// --- storage commands ------------------------------------------------------------------------

TEST_F(ProtocolTest, SetAndGet) {
  EXPECT_EQ(c_.req("set a 5 0 3\r\nabc\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("get a\r\n"), "VALUE a 5 3\r\nabc\r\nEND\r\n");
  EXPECT_EQ(c_.req("get nokey\r\n"), "END\r\n");
  EXPECT_EQ(c_.req("set b 4294967295 0 0\r\n\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("get a nokey b a\r\n"),
            "VALUE a 5 3\r\nabc\r\nVALUE b 4294967295 0\r\n\r\nVALUE a 5 3\r\nabc\r\nEND\r\n");
  EXPECT_EQ(c_.req("get   a  \r\n"), "VALUE a 5 3\r\nabc\r\nEND\r\n");
  EXPECT_EQ(c_.req(" get a\r\n"), "VALUE a 5 3\r\nabc\r\nEND\r\n");
  EXPECT_EQ(c_.req("bget a\r\n"), "VALUE a 5 3\r\nabc\r\nEND\r\n");
  EXPECT_EQ(c_.req("get\r\n"), "ERROR\r\n");
  EXPECT_EQ(c_.req("gets\r\n"), "ERROR\r\n");
  EXPECT_EQ(c_.req("get a\r\r\n"), "END\r\n");  // only one \r is stripped: key "a\r"
  // Values may hold any bytes, CR LF and NUL included.
  EXPECT_EQ(c_.req("set bin 0 0 6\r\n\r\n\0x\r\n\r\n"s), "STORED\r\n");
  EXPECT_EQ(c_.req("get bin\r\n"), "VALUE bin 0 6\r\n\r\n\0x\r\n\r\nEND\r\n"s);
  EXPECT_EQ(stat(Stat::kCmdSet), 3u);
  EXPECT_EQ(stat(Stat::kGetHits), 8u);
  EXPECT_EQ(stat(Stat::kGetMisses), 3u);
}

TEST_F(ProtocolTest, NumbersAcceptedLikeMemcached) {
  EXPECT_EQ(c_.req("set a +1 00 001\r\nx\r\nget a\r\n"), "STORED\r\nVALUE a 1 1\r\nx\r\nEND\r\n");
  // strtoul-style trailing whitespace inside a token (a tab) is accepted, as memcached does.
  EXPECT_EQ(c_.req("set a 7 0 1\t\r\ny\r\nget a\r\n"), "STORED\r\nVALUE a 7 1\r\ny\r\nEND\r\n");
  EXPECT_EQ(c_.req("set a 0 0 1 noreply\r\nz\r\nget a\r\n"), "VALUE a 0 1\r\nz\r\nEND\r\n");
  // Extra spaces between tokens are fine.
  EXPECT_EQ(c_.req("set  a  1   0  1\r\nq\r\nget a\r\n"), "STORED\r\nVALUE a 1 1\r\nq\r\nEND\r\n");
}

TEST_F(ProtocolTest, GetsShowsCasAndCasCommand) {
  ASSERT_EQ(c_.req("set c 1 0 1\r\nx\r\n"), "STORED\r\n");
  std::string gets = c_.req("gets c\r\n");
  ASSERT_EQ(gets.substr(0, 12), "VALUE c 1 1 ");
  const std::string cas = gets.substr(12, gets.find("\r\n") - 12);
  EXPECT_EQ(gets, "VALUE c 1 1 " + cas + "\r\nx\r\nEND\r\n");

  EXPECT_EQ(c_.req("cas c 2 0 1 999999\r\ny\r\n"), "EXISTS\r\n");
  EXPECT_EQ(c_.req("cas c 2 0 1 0\r\ny\r\n"), "EXISTS\r\n");
  EXPECT_EQ(c_.req("cas nokey 0 0 1 1\r\ny\r\n"), "NOT_FOUND\r\n");
  EXPECT_EQ(peek(*store_, "c"), "x");
  EXPECT_EQ(c_.req("cas c 2 0 1 " + cas + "\r\nz\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("get c\r\n"), "VALUE c 2 1\r\nz\r\nEND\r\n");
  EXPECT_EQ(c_.req("cas c 2 0 1 " + cas + "\r\nw\r\n"), "EXISTS\r\n");  // cas changed
  EXPECT_EQ(c_.req("cas c 2 0 1 " + cas + " noreply\r\nw\r\n"), "");
  EXPECT_EQ(stat(Stat::kCasHits), 1u);
  EXPECT_EQ(stat(Stat::kCasBadval), 4u);
  EXPECT_EQ(stat(Stat::kCasMisses), 1u);
}

TEST_F(ProtocolTest, CasErrors) {
  expect_rejected("cas a 2 0 1 abc\r\nz\r\n", "CLIENT_ERROR bad command line format\r\n");
  expect_rejected("cas a 2 0 1 -1\r\nz\r\n", "CLIENT_ERROR bad command line format\r\n");
  expect_rejected("cas a 2 0 1 18446744073709551616\r\nz\r\n",
                  "CLIENT_ERROR bad command line format\r\n");
  expect_rejected("cas a 2 0 1\r\nz\r\n", "ERROR\r\n");  // too few tokens; the block is skipped
  expect_rejected("cas a 2 0 1 5 noreply x\r\nz\r\n", "ERROR\r\n");
}

TEST_F(ProtocolTest, AddReplace) {
  EXPECT_EQ(c_.req("add d 0 0 1\r\nq\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("add d 0 0 1\r\nr\r\n"), "NOT_STORED\r\n");
  EXPECT_EQ(c_.req("replace e 0 0 1\r\nq\r\n"), "NOT_STORED\r\n");
  EXPECT_EQ(c_.req("replace d 7 0 2\r\nqq\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("get d e\r\n"), "VALUE d 7 2\r\nqq\r\nEND\r\n");
}

TEST_F(ProtocolTest, AppendPrependKeepFlags) {
  EXPECT_EQ(c_.req("set d 7 0 2\r\nqq\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("append d 9 0 2\r\nAP\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("prepend d 9 0 2\r\nPP\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("append zz 0 0 1\r\nx\r\n"), "NOT_STORED\r\n");
  EXPECT_EQ(c_.req("prepend zz 0 0 1\r\nx\r\n"), "NOT_STORED\r\n");
  EXPECT_EQ(c_.req("get d zz\r\n"), "VALUE d 7 6\r\nPPqqAP\r\nEND\r\n");
  EXPECT_EQ(c_.req("append d 0 0 -1\r\n"), "CLIENT_ERROR bad command line format\r\n");
}

TEST_F(ProtocolTest, StorageLineErrors) {
  const std::string bad = "CLIENT_ERROR bad command line format\r\n";
  expect_rejected("set a 0 0\r\n", "ERROR\r\n");
  expect_rejected("set a 0 0 1 noreply extra\r\nx\r\n", "ERROR\r\n");
  expect_rejected("set a 0 0 abc\r\n", bad);
  expect_rejected("set a 0 0 -1\r\n", bad);
  expect_rejected("set a 0 0 -1 noreply\r\n", "");
  expect_rejected("set a -1 0 1\r\nx\r\n", bad);
  expect_rejected("set a 4294967296 0 1\r\nx\r\n", bad);  // flags must fit 32 bits
  expect_rejected("set a 0x10 0 1\r\nx\r\n", bad);
  expect_rejected("set a 10x 0 1\r\nx\r\n", bad);
  expect_rejected("set a 0 2147483648 1\r\nx\r\n", bad);  // exptime must fit int32
  expect_rejected("set a 0 0 2147483648\r\nx\r\n", bad);
  expect_rejected("set a 0 0 2147483647\r\nx\r\n", bad);  // memcached's INT_MAX - 2 limit
  expect_rejected("add a 0 0 2147483645\r\nx\r\n", "SERVER_ERROR object too large for cache\r\n");
  expect_rejected("set a\t0 0 1\r\nx\r\n", "ERROR\r\n");  // only spaces separate tokens
  expect_rejected("set " + std::string(251, 'k') + " 0 0 1\r\nx\r\n", bad);
  expect_rejected("set " + std::string(251, 'k') + " 0 0 1 noreply\r\nx\r\n", "");
  expect_rejected("set a\0b 0 0 1\r\nx\r\n"s, bad);  // NUL in a key
  std::string many = "set a 0 0 1";
  for (int i = 0; i < 30; ++i) many += " t";
  expect_rejected(many + "\r\nx\r\n", "ERROR\r\n");  // more tokens than memcached keeps
}

TEST_F(ProtocolTest, RejectedStorageLineSkipsItsDataBlock) {
  // The block of a rejected line is skipped, so the value is never run as a command
  // (stock memcached would execute "delete a" here).
  seed();
  EXPECT_EQ(c_.req("set " + std::string(300, 'k') + " 0 0 8\r\ndelete a\r\nget a\r\n"),
            "CLIENT_ERROR bad command line format\r\nVALUE a 1 3\r\nabc\r\nEND\r\n");
  EXPECT_EQ(c_.req("set a 0 0 8 extra tokens\r\ndelete a\r\nget a\r\n"),
            "ERROR\r\nVALUE a 1 3\r\nabc\r\nEND\r\n");
  // With no usable length the rest of the datagram is dropped instead.
  EXPECT_EQ(c_.req("set a 0 0 x\r\ndelete a\r\nget a\r\n"),
            "CLIENT_ERROR bad command line format\r\n");
  EXPECT_EQ(c_.req("set a 0\r\ndelete a\r\n"), "ERROR\r\n");
  EXPECT_EQ(peek(*store_, "a"), "abc");
  EXPECT_EQ(stat(Stat::kAbandoned), 2u);
}

TEST_F(ProtocolTest, KeyLengthLimit) {
  const std::string k250(250, 'k');
  EXPECT_EQ(c_.req("set " + k250 + " 0 0 1\r\nx\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("get " + k250 + "\r\n"), "VALUE " + k250 + " 0 1\r\nx\r\nEND\r\n");
  // A key over 250 bytes anywhere in a get replaces the whole reply with the error.
  EXPECT_EQ(c_.req("get " + k250 + " " + std::string(251, 'k') + "\r\n"),
            "CLIENT_ERROR bad command line format\r\n");
  EXPECT_EQ(c_.req("get a\0b\r\n"s), "CLIENT_ERROR bad command line format\r\n");
  // A NUL anywhere in any key of a get (first, last, later key, after a long run) is the error.
  for (const std::string& line :
       {"get \0\r\n"s, "get a\0\r\n"s, "get abcdefghijklmnop\0q\r\n"s, "get a b \0c\r\n"s,
        "get " + k250 + " x\0\r\n", "gets a abcdefgh\0\r\n"s, "gat 10 a\0b\r\n"s}) {
    EXPECT_EQ(c_.req(line), "CLIENT_ERROR bad command line format\r\n") << line;
  }
  const std::string bad = "CLIENT_ERROR bad command line format\r\n";
  expect_rejected("touch " + std::string(251, 'k') + " 10\r\n", bad);
  expect_rejected("incr " + std::string(251, 'k') + " 10\r\n", bad);
  expect_rejected("delete " + std::string(251, 'k') + "\r\n", bad);
  expect_rejected("delete " + std::string(251, 'k') + " noreply\r\n", "");
  expect_rejected("gat 10 " + std::string(251, 'k') + "\r\n", bad);
}

TEST_F(ProtocolTest, TooLargeValue) {
  StoreOptions so = small_options();
  so.item_size_max = 8192;
  auto store = make_store(so);
  Client c(*store);
  ASSERT_EQ(c.req("set big 3 0 1\r\nx\r\n"), "STORED\r\n");
  const std::string v(8192, 'v');
  // add of an oversized value leaves the old item alone...
  EXPECT_EQ(c.req("add big 0 0 8192\r\n" + v + "\r\nget big\r\n"),
            "SERVER_ERROR object too large for cache\r\nVALUE big 3 1\r\nx\r\nEND\r\n");
  // ...but a failed set drops it, as memcached does, so a stale value does not survive.
  EXPECT_EQ(c.req("set big 0 0 8192\r\n" + v + "\r\nget big\r\n"),
            "SERVER_ERROR object too large for cache\r\nEND\r\n");
  EXPECT_EQ(c.req("set big 0 0 8189\r\n" + v.substr(0, 8189) + "\r\n"), "STORED\r\n");  // + key
  // A declared size beyond the datagram: error, and nothing after it is read.
  EXPECT_EQ(c.req("set x 0 0 2000000\r\nabc\r\nget big\r\n"),
            "SERVER_ERROR object too large for cache\r\n");
  EXPECT_EQ(c.req("append big 0 0 10\r\n0123456789\r\n"), "NOT_STORED\r\n");  // combined too big
  EXPECT_EQ(c.session.counters().get(Stat::kStoreTooLarge), 3u);
}

// --- the data block ---------------------------------------------------------------------------

TEST_F(ProtocolTest, BadDataChunk) {
  const std::string chunk = "CLIENT_ERROR bad data chunk\r\n";
  expect_rejected("set a 0 0 3\r\nab\r\n", chunk);    // short
  expect_rejected("set a 0 0 3\r\nabcd\r\n", chunk);  // long
  expect_rejected("set a 0 0 3\r\nabc", chunk);       // no \r\n after the block
  expect_rejected("set a 0 0 3\r\nabc\n", chunk);     // bare \n after the block
  expect_rejected("set a 0 0 3\r\nabc\rX", chunk);
  expect_rejected("set a 0 0 3\r\n", chunk);  // no block at all
  expect_rejected("set a 0 0 3 noreply\r\nabcd\r\n", "");
  expect_rejected("append a 0 0 3\r\nab\r\n", chunk);
  expect_rejected("cas a 0 0 3 1\r\nab\r\n", chunk);
  EXPECT_EQ(stat(Stat::kBadDataChunks), 9u);
}

TEST_F(ProtocolTest, BadDataChunkResynchronizesOnTheNextLine) {
  seed();
  // The block is one byte too long: the rest of that line is skipped, then "get a" runs.
  EXPECT_EQ(c_.req("set a 0 0 3\r\nabcd\r\nget a\r\n"),
            "CLIENT_ERROR bad data chunk\r\nVALUE a 1 3\r\nabc\r\nEND\r\n");
  EXPECT_EQ(c_.req("set a 0 0 3\r\nab\r\nget a\r\n"),  // short: resumes at "get a" here
            "CLIENT_ERROR bad data chunk\r\nVALUE a 1 3\r\nabc\r\nEND\r\n");
}

TEST_F(ProtocolTest, ShortDataBlockDoesNotAffectTheNextDatagram) {
  seed();
  EXPECT_EQ(c_.req("set a 0 0 10\r\nabc"), "CLIENT_ERROR bad data chunk\r\n");
  // Stock memcached would now read this datagram as the rest of the value.
  EXPECT_EQ(c_.req("get a\r\n"), "VALUE a 1 3\r\nabc\r\nEND\r\n");
  EXPECT_EQ(c_.req("set a 0 0 3\r\nnew\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("get a\r\n"), "VALUE a 0 3\r\nnew\r\nEND\r\n");
}

TEST_F(ProtocolTest, DataBlockLengthRulesOverContent) {
  // The declared length decides: "\r\n" inside the block is data.
  EXPECT_EQ(c_.req("set a 0 0 10\r\nabc\r\nget a\r\n"), "STORED\r\n");
  EXPECT_EQ(peek(*store_, "a"), "abc\r\nget a");
}

TEST_F(ProtocolTest, TruncatedSetAtEveryByteStoresNothing) {
  const std::string full = "set key 0 0 10\r\n0123456789\r\n";
  for (size_t cut = 1; cut < full.size(); ++cut) {
    auto store = make_store();
    Client c(*store);
    const std::string reply = c.req(full.substr(0, cut));
    EXPECT_TRUE(reply == "CLIENT_ERROR bad data chunk\r\n" ||
                reply == "CLIENT_ERROR bad command line format\r\n")
        << "cut " << cut << ": " << reply;
    EXPECT_EQ(peek(*store, "key"), "<miss>") << "cut " << cut;
    EXPECT_EQ(store->stats().curr_items, 0u);
  }
}

TEST_F(ProtocolTest, LineEndings) {
  EXPECT_EQ(c_.req("set a 0 0 1\nx\r\nget a\n"), "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
  // A last line without '\n' is answered at once (memcached would wait for more, forever).
  EXPECT_EQ(c_.req("get a\r\nget a"),
            "VALUE a 0 1\r\nx\r\nEND\r\nCLIENT_ERROR bad command line format\r\n");
  EXPECT_EQ(c_.req("get a\r"), "CLIENT_ERROR bad command line format\r\n");
  EXPECT_EQ(stat(Stat::kUnterminatedLines), 2u);
}

TEST_F(ProtocolTest, LineTooLong) {
  seed();
  const std::string junk(kMaxLineLength + 1, 'x');
  EXPECT_EQ(c_.req(junk + "\r\nget a\r\n"),
            "CLIENT_ERROR line too long\r\nVALUE a 1 3\r\nabc\r\nEND\r\n");
  EXPECT_EQ(c_.req(junk), "CLIENT_ERROR line too long\r\n");
  EXPECT_EQ(c_.req(std::string(kMaxLineLength, 'x') + "\r\n"), "ERROR\r\n");
  // get lines may be long: their key lists are unbounded.
  std::string get = "get";
  for (int i = 0; i < 1000; ++i) get += " a";
  std::string want;
  for (int i = 0; i < 1000; ++i) want += "VALUE a 1 3\r\nabc\r\n";
  EXPECT_EQ(c_.req(get + "\r\n"), want + "END\r\n");
  // A long storage line: error, and its data block is skipped.
  EXPECT_EQ(c_.req("set a 0 0 3 " + junk + "\r\nxyz\r\nget a\r\n"),
            "CLIENT_ERROR line too long\r\nVALUE a 1 3\r\nabc\r\nEND\r\n");
  EXPECT_EQ(stat(Stat::kLinesTooLong), 3u);
}

// --- delete, incr/decr, touch, gat --------------------------------------------------------------

TEST_F(ProtocolTest, Delete) {
  seed();
  EXPECT_EQ(c_.req("delete a\r\n"), "DELETED\r\n");
  EXPECT_EQ(c_.req("delete a\r\n"), "NOT_FOUND\r\n");
  EXPECT_EQ(c_.req("delete b 0\r\n"), "DELETED\r\n");
  EXPECT_EQ(c_.req("delete n 0 noreply\r\ndelete n noreply\r\nget n\r\n"), "END\r\n");
  EXPECT_EQ(c_.req("delete\r\n"), "ERROR\r\n");
  EXPECT_EQ(c_.req("delete a b c d\r\n"), "ERROR\r\n");
  expect_rejected("delete a 1\r\n",
                  "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
  expect_rejected("delete a x noreply\r\n", "");
  expect_rejected("delete a 1 2\r\n",
                  "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
  EXPECT_EQ(stat(Stat::kDeleteHits), 3u);
  EXPECT_EQ(stat(Stat::kDeleteMisses), 2u);
}

TEST_F(ProtocolTest, IncrDecr) {
  ASSERT_EQ(c_.req("set n 5 0 2\r\n10\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("incr n 5\r\n"), "15\r\n");
  EXPECT_EQ(c_.req("decr n 100\r\n"), "0\r\n");                    // decr stops at zero
  EXPECT_EQ(c_.req("get n\r\n"), "VALUE n 5 2\r\n0 \r\nEND\r\n");  // padded like memcached
  EXPECT_EQ(c_.req("incr n 1000\r\nget n\r\n"), "1000\r\nVALUE n 5 4\r\n1000\r\nEND\r\n");
  EXPECT_EQ(c_.req("incr n 5 noreply\r\nget n\r\n"), "VALUE n 5 4\r\n1005\r\nEND\r\n");
  EXPECT_EQ(c_.req("incr n 1 x\r\n"), "1006\r\n");  // memcached ignores a stray 4th token
  EXPECT_EQ(c_.req("incr nokey 1\r\n"), "NOT_FOUND\r\n");
  EXPECT_EQ(c_.req("decr nokey 1\r\n"), "NOT_FOUND\r\n");
  EXPECT_EQ(c_.req("incr n 18446744073709551615\r\n"), "1005\r\n");  // wraps modulo 2^64
  ASSERT_EQ(c_.req("set w 0 0 20\r\n18446744073709551615\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("incr w 2\r\nget w\r\n"),
            "1\r\nVALUE w 0 20\r\n1                   \r\nEND\r\n");
  EXPECT_EQ(c_.req("set s 0 0 3\r\n 12\r\nincr s 1\r\n"), "STORED\r\n13\r\n");
  EXPECT_EQ(c_.req("set s 0 0 4\r\n0012\r\nincr s 1\r\n"), "STORED\r\n13\r\n");
  EXPECT_EQ(c_.req("set s 0 0 2\r\n9\0\r\nincr s 1\r\n"s), "STORED\r\n10\r\n");
  EXPECT_EQ(c_.req("incr\r\n"), "ERROR\r\n");
  EXPECT_EQ(c_.req("incr n\r\n"), "ERROR\r\n");
  EXPECT_EQ(c_.req("incr n 1 2 3\r\n"), "ERROR\r\n");
  EXPECT_EQ(stat(Stat::kIncrHits), 9u);
  EXPECT_EQ(stat(Stat::kIncrMisses), 1u);
  EXPECT_EQ(stat(Stat::kDecrHits), 1u);
  EXPECT_EQ(stat(Stat::kDecrMisses), 1u);
}

TEST_F(ProtocolTest, IncrDecrErrors) {
  const std::string delta = "CLIENT_ERROR invalid numeric delta argument\r\n";
  expect_rejected("incr n -1\r\n", delta);
  expect_rejected("incr n abc\r\n", delta);
  expect_rejected("incr n 18446744073709551616\r\n", delta);
  expect_rejected("decr n 1x\r\n", delta);
  expect_rejected("incr n abc noreply\r\n", "");
  const std::string nonnum = "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
  expect_rejected("incr a 1\r\n", nonnum);
  for (const char* v : {"-12", "+", "", "  ", "18446744073709551616", "12abc"}) {
    auto store = make_store();
    Client c(*store);
    const std::string value(v);
    ASSERT_EQ(c.req("set s 3 0 " + std::to_string(value.size()) + "\r\n" + value + "\r\n"),
              "STORED\r\n");
    EXPECT_EQ(c.req("incr s 1\r\n"), nonnum) << "value '" << v << "'";
    EXPECT_EQ(c.req("decr s 1\r\n"), nonnum) << "value '" << v << "'";
    EXPECT_EQ(peek(*store, "s"), value);
  }
}

TEST_F(ProtocolTest, IncrGrowsIntoANewItemAndKeepsFlags) {
  ASSERT_EQ(c_.req("set s 5 0 2\r\n99\r\n"), "STORED\r\n");
  const std::string before = c_.req("gets s\r\n");
  EXPECT_EQ(c_.req("incr s 1\r\n"), "100\r\n");
  const std::string after = c_.req("gets s\r\n");
  EXPECT_EQ(after.substr(0, 12), "VALUE s 5 3 ");
  EXPECT_NE(before.substr(12), after.substr(12));  // a new cas
}

TEST_F(ProtocolTest, TouchAndGat) {
  seed();
  EXPECT_EQ(c_.req("touch a 10\r\n"), "TOUCHED\r\n");
  EXPECT_EQ(c_.req("touch nokey 10\r\n"), "NOT_FOUND\r\n");
  EXPECT_EQ(c_.req("touch a 10 noreply\r\n"), "");
  EXPECT_EQ(c_.req("get a\r\n", kNow + 9), "VALUE a 1 3\r\nabc\r\nEND\r\n");
  EXPECT_EQ(c_.req("get a\r\n", kNow + 10), "END\r\n");
  EXPECT_EQ(c_.req("touch b\r\n"), "ERROR\r\n");
  expect_rejected("touch b abc\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
  expect_rejected("touch b abc noreply\r\n", "");

  EXPECT_EQ(c_.req("gat 100 b nokey\r\n"), "VALUE b 2 3\r\nxyz\r\nEND\r\n");
  const std::string gats = c_.req("gats 0 b\r\n");
  EXPECT_EQ(gats.substr(0, 12), "VALUE b 2 3 ");
  EXPECT_EQ(c_.req("get b\r\n", kNow + 1000), "VALUE b 2 3\r\nxyz\r\nEND\r\n");  // 0: never
  EXPECT_EQ(c_.req("gat 10\r\n"), "END\r\n");
  EXPECT_EQ(c_.req("gat\r\n"), "ERROR\r\n");
  expect_rejected("gat abc a\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
  // gat with a negative exptime returns the value, then it is gone.
  EXPECT_EQ(c_.req("gat -1 b\r\nget b\r\n"), "VALUE b 2 3\r\nxyz\r\nEND\r\nEND\r\n");
  EXPECT_GE(stat(Stat::kTouchHits), 5u);
  EXPECT_EQ(stat(Stat::kCmdTouch), stat(Stat::kTouchHits) + stat(Stat::kTouchMisses));
}

// --- expiry and flush_all ---------------------------------------------------------------------

TEST_F(ProtocolTest, Expiry) {
  EXPECT_EQ(c_.req("set r 0 10 1\r\nx\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("get r\r\n", kNow + 9), "VALUE r 0 1\r\nx\r\nEND\r\n");
  EXPECT_EQ(c_.req("get r\r\n", kNow + 10), "END\r\n");
  // Absolute (beyond 30 days) expiry.
  EXPECT_EQ(c_.req("set abs 0 " + std::to_string(kNow + 100) + " 1\r\nx\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("get abs\r\n", kNow + 99), "VALUE abs 0 1\r\nx\r\nEND\r\n");
  EXPECT_EQ(c_.req("get abs\r\n", kNow + 100), "END\r\n");
  // 30 days exactly is still relative.
  EXPECT_EQ(c_.req("set m 0 2592000 1\r\nx\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("get m\r\n", kNow + 2591999), "VALUE m 0 1\r\nx\r\nEND\r\n");
  EXPECT_EQ(c_.req("get m\r\n", kNow + 2592000), "END\r\n");
  // Negative and absolute-in-the-past: stored, but already expired (and the old value gone).
  EXPECT_EQ(c_.req("set r 0 0 1\r\nx\r\nset r 0 -1 1\r\ny\r\nget r\r\n"),
            "STORED\r\nSTORED\r\nEND\r\n");
  EXPECT_EQ(c_.req("set p 0 2592001 1\r\nx\r\nget p\r\n"), "STORED\r\nEND\r\n");
  EXPECT_EQ(c_.req("set big 0 -2147483648 1\r\nx\r\nget big\r\n"), "STORED\r\nEND\r\n");
  EXPECT_GE(stat(Stat::kGetExpired), 4u);
}

TEST_F(ProtocolTest, FlushAll) {
  seed();
  EXPECT_EQ(c_.req("flush_all\r\n"), "OK\r\n");
  EXPECT_EQ(c_.req("get a b n\r\n"), "END\r\n");
  // Items stored after the flush in the same second survive.
  EXPECT_EQ(c_.req("set a 0 0 1\r\nx\r\nget a\r\n"), "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
  EXPECT_EQ(c_.req("flush_all 0 noreply\r\nget a\r\n"), "END\r\n");
  EXPECT_EQ(c_.req("flush_all -1\r\n"), "OK\r\n");
  EXPECT_EQ(c_.req("flush_all 1 2\r\n"), "OK\r\n");  // memcached reads the first token only
  EXPECT_EQ(c_.req("flush_all 1 2 3\r\n"), "ERROR\r\n");
  EXPECT_EQ(c_.req("flush_all abc\r\n"), "CLIENT_ERROR invalid exptime argument\r\n");
  EXPECT_EQ(c_.req("flush_all abc noreply\r\n"), "");
  EXPECT_GE(stat(Stat::kGetFlushed), 3u);
}

TEST_F(ProtocolTest, FlushAllWithDelay) {
  seed();
  EXPECT_EQ(c_.req("flush_all 10\r\n"), "OK\r\n");
  EXPECT_EQ(c_.req("get a\r\n", kNow + 9), "VALUE a 1 3\r\nabc\r\nEND\r\n");
  EXPECT_EQ(c_.req("set late 0 0 1\r\nx\r\n", kNow + 10), "STORED\r\n");
  EXPECT_EQ(c_.req("get a b late\r\n", kNow + 10), "VALUE late 0 1\r\nx\r\nEND\r\n");
  // A later flush_all never brings back what an earlier one removed.
  EXPECT_EQ(c_.req("flush_all 100\r\n", kNow + 20), "OK\r\n");
  // ("n" was never read, so it was not reclaimed yet: memcached would show it again here.)
  EXPECT_EQ(c_.req("get n late\r\n", kNow + 21), "VALUE late 0 1\r\nx\r\nEND\r\n");
  EXPECT_EQ(c_.req("get late\r\n", kNow + 120), "END\r\n");
}

// --- several commands, quit, noreply, stats
// --------------------------------------------------------

TEST_F(ProtocolTest, SeveralCommandsInOneDatagramRunInOrder) {
  EXPECT_EQ(c_.req("set p 0 0 1\r\n1\r\nincr p 1\r\nget p\r\ndelete p\r\nget p\r\nversion\r\n"),
            "STORED\r\n2\r\nVALUE p 0 1\r\n2\r\nEND\r\nDELETED\r\nEND\r\n"
            "VERSION 1.6.18-farmem\r\n");
  EXPECT_EQ(stat(Stat::kCommands), 6u);
  EXPECT_EQ(c_.session.counters().command(Command::kGet), 2u);
  EXPECT_EQ(c_.session.counters().command(Command::kSet), 1u);
}

TEST_F(ProtocolTest, QuitStopsTheDatagram) {
  EXPECT_EQ(c_.req("set q 0 0 1\r\nx\r\nquit\r\nget q\r\n"), "STORED\r\n");
  EXPECT_EQ(c_.req("quit x\r\nversion\r\n"), "");
  EXPECT_EQ(c_.req("get q\r\n"), "VALUE q 0 1\r\nx\r\nEND\r\n");
}

TEST_F(ProtocolTest, NoreplyOnEveryCommand) {
  EXPECT_EQ(c_.req("set a 0 0 1 noreply\r\n1\r\n"
                   "add b 0 0 1 noreply\r\n2\r\n"
                   "add b 0 0 1 noreply\r\n3\r\n"
                   "replace b 0 0 1 noreply\r\n4\r\n"
                   "append b 0 0 1 noreply\r\n5\r\n"
                   "prepend b 0 0 1 noreply\r\n6\r\n"
                   "cas b 0 0 1 1 noreply\r\n7\r\n"
                   "incr a 1 noreply\r\n"
                   "decr a 1 noreply\r\n"
                   "touch a 100 noreply\r\n"
                   "delete nokey noreply\r\n"
                   "verbosity 1 noreply\r\n"),
            "");
  EXPECT_EQ(c_.req("get a b\r\n"), "VALUE a 0 1\r\n1\r\nVALUE b 0 3\r\n645\r\nEND\r\n");
  EXPECT_EQ(c_.req("delete b noreply\r\nflush_all noreply\r\nget a b\r\n"), "END\r\n");
  // noreply is not an option of get: it is a key.
  EXPECT_EQ(c_.req("get noreply\r\n"), "END\r\n");
}

class TestHook : public StatsHook {
 public:
  void append_stats(StatSink& out) const override {
    out.stat("dp_rx_packets", uint64_t{42});
    out.stat("dp_mode", "test");
  }
};

TEST_F(ProtocolTest, StatsAndHook) {
  TestHook hook;
  Client c(*store_, ProtocolOptions{}, &hook);
  ASSERT_EQ(c.req("set a 0 0 1\r\nx\r\nget a nokey\r\n"), "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
  const std::string s = c.req("stats\r\n", kNow);
  EXPECT_EQ(s.substr(0, 9), "STAT pid ");
  EXPECT_NE(s.find("STAT time 1700000000\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT version 1.6.18-farmem\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT cmd_get 2\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT cmd_set 1\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT get_hits 1\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT get_misses 1\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT curr_items 1\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT total_items 1\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT bytes 2\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT limit_maxbytes 8388608\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT threads 2\r\n"), std::string::npos);  // c_ and c
  EXPECT_NE(s.find("STAT evictions 0\r\n"), std::string::npos);
  EXPECT_NE(s.find("STAT dp_rx_packets 42\r\nSTAT dp_mode test\r\nEND\r\n"), std::string::npos);
  EXPECT_EQ(s.substr(s.size() - 5), "END\r\n");

  EXPECT_EQ(c.req("stats reset\r\n"), "RESET\r\n");
  const std::string r = c.req("stats\r\n");
  EXPECT_NE(r.find("STAT cmd_get 0\r\n"), std::string::npos);
  EXPECT_NE(r.find("STAT total_items 0\r\n"), std::string::npos);
  EXPECT_NE(r.find("STAT curr_items 1\r\n"), std::string::npos);  // a gauge, not reset
  EXPECT_EQ(c.req("stats nosuch\r\n"), "ERROR\r\n");
}

// --- the reply buffer ---------------------------------------------------------------------------

TEST_F(ProtocolTest, GetReplyTooLargeForTheBuffer) {
  StoreOptions so = small_options();
  so.item_size_max = 4096;
  auto store = make_store(so);
  ProtocolOptions po;
  po.reply_buffer_kb = 8;
  ASSERT_TRUE(validate(so, po).is_ok());
  Client c(*store, po);
  ASSERT_EQ(c.req("set v 0 0 4000\r\n" + std::string(4000, 'v') + "\r\n"), "STORED\r\n");
  EXPECT_EQ(c.req("get v\r\n").size(), 16 + 4000u + 2 + 5);
  // Three copies do not fit in 8 KiB: the whole get reply is replaced, like memcached.
  EXPECT_EQ(c.req("get v v v\r\n"), "SERVER_ERROR out of memory writing get response\r\n");
  EXPECT_EQ(c.req("version\r\nget v v v\r\nversion\r\n"),
            "VERSION 1.6.18-farmem\r\nSERVER_ERROR out of memory writing get response\r\n"
            "VERSION 1.6.18-farmem\r\n");
  // Thousands of small replies: as many as fit, then one error, then the datagram stops.
  std::string many;
  for (int i = 0; i < 2000; ++i) many += "version\r\n";
  const std::string reply = c.req(many);
  const std::string tail = "SERVER_ERROR reply limit reached; later commands not run\r\n";
  ASSERT_GT(reply.size(), tail.size());
  EXPECT_EQ(reply.substr(reply.size() - tail.size()), tail);
  EXPECT_LE(reply.size(), 8u * 1024);
  EXPECT_EQ(c.session.counters().get(Stat::kReplyOverflows), 3u);
  EXPECT_EQ(c.session.counters().get(Stat::kRepliesCut), 1u);
}

// The datagram that wrote past the reply buffer: a get that fills it to just under the limit,
// a command whose error line went into the reserve (past the limit), then another get whose
// append computed `limit - size` with size > limit. Every value of the fill is tried.
TEST_F(ProtocolTest, ErrorLinePastTheLimitThenAnotherGetStaysInTheBuffer) {
  StoreOptions so = small_options();
  so.item_size_max = 4096;
  auto store = make_store(so);
  ProtocolOptions po;
  po.reply_buffer_kb = 8;
  ASSERT_TRUE(validate(so, po).is_ok());
  Client c(*store, po);
  ASSERT_EQ(c.req("set a 0 0 4000\r\n" + std::string(4000, 'a') + "\r\n"), "STORED\r\n");
  const std::string long_key(kKeyMaxLength + 1, 'k');
  const size_t total = c.session.reply_capacity();
  for (size_t n = 2500; n < 3000; n += 3) {
    ASSERT_EQ(c.req("set b 0 0 " + std::to_string(n) + "\r\n" + std::string(n, 'b') + "\r\n"),
              "STORED\r\n");
    const std::string reply =
        c.req("get a b\r\nget " + long_key + "\r\nget a\r\nset z 0 0 1\r\nz\r\n");
    ASSERT_LE(reply.size(), total) << "fill " << n;
    // The first get is whole or only its error, and the reply ends with END, STORED or a clean
    // error.
    ASSERT_TRUE(reply.starts_with("VALUE a 0 4000\r\n") ||
                reply.starts_with("SERVER_ERROR out of memory writing get response\r\n"))
        << "fill " << n;
    const bool ends_clean = reply.ends_with("END\r\n") || reply.ends_with("STORED\r\n") ||
                            reply.ends_with("later commands not run\r\n");
    ASSERT_TRUE(ends_clean) << "fill " << n << ": ..." << reply.substr(reply.size() - 80);
    // A set runs only when its reply fits: STORED in the reply <=> z stored.
    const bool stored = reply.ends_with("STORED\r\n");
    ASSERT_EQ(peek(*store, "z") == "z", stored) << "fill " << n;
    ASSERT_EQ(c.req("delete z\r\n"), stored ? "DELETED\r\n" : "NOT_FOUND\r\n");
  }
}

// Later commands still get their answers after one command's reply did not fit.
TEST_F(ProtocolTest, CommandsAfterAnOverflowStillAnswer) {
  StoreOptions so = small_options();
  so.item_size_max = 4096;
  auto store = make_store(so);
  ProtocolOptions po;
  po.reply_buffer_kb = 8;
  Client c(*store, po);
  ASSERT_EQ(c.req("set v 0 0 3000\r\n" + std::string(3000, 'v') + "\r\n"), "STORED\r\n");
  EXPECT_EQ(c.req("get v v v\r\nset w 0 0 1\r\nw\r\nget w\r\n"),
            "SERVER_ERROR out of memory writing get response\r\nSTORED\r\n"
            "VALUE w 0 1\r\nw\r\nEND\r\n");
}

// kv.reply_bytes_max bounds what one small datagram can return: a reply's first value always
// fits (one largest item), repeated keys and long multi-gets beyond the bound get the get's error,
// and many commands stop at the bound.
TEST_F(ProtocolTest, ReplyBoundLimitsRepeatedKeysAndCommands) {
  auto store = make_store();  // 1 MiB items, the default bound (32 KiB)
  Client c(*store);
  const std::string big(1 << 20, 'B');
  ASSERT_EQ(c.req("set big 0 0 " + std::to_string(big.size() - 3) + "\r\n" +
                  big.substr(3) + "\r\n"),
            "STORED\r\n");
  const std::string one = c.req("get big\r\n");
  EXPECT_TRUE(one.starts_with("VALUE big 0 1048573\r\n") && one.ends_with("END\r\n"));
  EXPECT_EQ(one.size(), 21 + big.size() - 3 + 2 + 5);
  EXPECT_EQ(c.req("get big big\r\n"), "SERVER_ERROR out of memory writing get response\r\n");
  // The first value's room is its own: a second get in the datagram is cut.
  EXPECT_TRUE(c.req("get big\r\nget big\r\n")
                  .ends_with("END\r\nSERVER_ERROR reply limit reached; later commands not run\r\n"));
  ASSERT_EQ(c.req("set s 0 0 1000\r\n" + std::string(1000, 's') + "\r\n"), "STORED\r\n");
  // 32 KiB holds 32 copies of a 1000-byte value (1018 bytes each with its VALUE line), not 33.
  std::string keys;
  for (int i = 0; i < 33; ++i) keys += " s";
  EXPECT_EQ(c.req("get" + keys + "\r\n"), "SERVER_ERROR out of memory writing get response\r\n");
  keys.clear();
  for (int i = 0; i < 32; ++i) keys += " s";
  EXPECT_TRUE(c.req("get" + keys + "\r\n").ends_with("END\r\n"));
  // Repeated commands stop at the bound too.
  std::string stats;
  for (int i = 0; i < 200; ++i) stats += "stats\r\n";
  const std::string r = c.req(stats);
  EXPECT_LE(r.size(), 32u * 1024 + kReplyReserve);
  EXPECT_TRUE(r.ends_with("SERVER_ERROR reply limit reached; later commands not run\r\n"));

  // A bound too small for a stats reply is a config error naming the key.
  ProtocolOptions po;
  po.reply_bytes_max = 4096;
  EXPECT_NE(po.validate().message().find("kv.reply_bytes_max must be 0"), std::string::npos)
      << po.validate().message();
  po.reply_bytes_max = 10000;
  ASSERT_TRUE(validate(StoreOptions{}, po).is_ok());
  Client c2(*store, po);
  EXPECT_EQ(c2.req("get s s s s s s s s s\r\n").size(), 9 * (16 + 1002) + 5u);
  EXPECT_EQ(c2.req("get s s s s s s s s s s\r\n"),
            "SERVER_ERROR out of memory writing get response\r\n");
}

// A datagram that is itself a reply, or a later part of a multi-datagram message, gets no answer:
// two servers pointed at each other stop after one exchange.
TEST_F(ProtocolTest, RepliesAndLaterDatagramsAreNotAnswered) {
  for (std::string_view text : {"ERROR\r\n"sv, "SERVER_ERROR x\r\n"sv, "CLIENT_ERROR y\r\n"sv,
                                "VALUE k 0 1\r\nv\r\nEND\r\n"sv, "END\r\n"sv, "STORED\r\n"sv,
                                "NOT_FOUND\r\n"sv, "STAT pid 1\r\nEND\r\n"sv, "VERSION 1.6\r\n"sv,
                                "42\r\n"sv, "OK\r\n"sv, "DELETED"sv}) {
    EXPECT_TRUE(c_.send_raw(c_.frame(text, 9)).empty()) << text;
  }
  EXPECT_EQ(stat(Stat::kReplyDatagrams), 12u);
  // Sequence != 0: a later datagram of some message (a reply's or a request's), never answered.
  EXPECT_TRUE(c_.send_raw(c_.frame("get a\r\n", 9, 1, 2)).empty());
  EXPECT_EQ(stat(Stat::kReplyDatagrams), 13u);
  // The first datagram of a multi-datagram request still gets memcached's error.
  const auto d = c_.send_raw(c_.frame("get a\r\n", 9, 0, 2));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].text, "SERVER_ERROR multi-packet request not supported\r\n");
  // Commands and lower-case words still run; unknown ones still get ERROR.
  EXPECT_EQ(c_.req("version\r\n"), "VERSION 1.6.18-farmem\r\n");
  EXPECT_EQ(c_.req("value\r\n"), "ERROR\r\n");
  EXPECT_EQ(c_.req("\r\n"), "ERROR\r\n");
  EXPECT_FALSE(looks_like_reply(testing::bytes("get 42\r\n")));
  EXPECT_FALSE(looks_like_reply(testing::bytes("")));
}

TEST(ProtocolOptionsTest, Validation) {
  ProtocolOptions po;
  EXPECT_TRUE(po.validate().is_ok());
  po.udp_max_payload = 8;
  EXPECT_EQ(po.validate().message(), "kv.udp_max_payload must be between 64 and 65507");
  po = ProtocolOptions{};
  po.reply_buffer_kb = 1;
  EXPECT_EQ(po.validate().message(), "kv.reply_buffer_kb must be between 4 and 1048576");
  po.reply_buffer_kb = 1 << 20;
  EXPECT_NE(po.validate().message().find("kv.reply_buffer_kb is too large"), std::string::npos);
  po = ProtocolOptions{};
  po.reply_buffer_kb = 512;  // smaller than a 1 MiB item
  const Status st = validate(StoreOptions{}, po);
  EXPECT_EQ(st.code(), Errc::kInvalidArgument);
  EXPECT_NE(st.message().find("kv.reply_buffer_kb (512) must hold"), std::string::npos)
      << st.message();
  EXPECT_TRUE(validate(StoreOptions{}, ProtocolOptions{}).is_ok());
}

// The predictor reads a get's keys with the protocol's own tokenizer.
TEST(GetKeysTest, KeysOfGetAndGetsOnly) {
  auto keys = [](std::string_view text) {
    std::vector<std::string> out;
    const bool is_get = for_each_get_key(text, [&](std::string_view k) {
      out.emplace_back(k);
      return true;
    });
    return std::make_pair(is_get, out);
  };
  EXPECT_EQ(keys("get a bb  ccc\r\n"), std::make_pair(true, std::vector<std::string>{"a", "bb", "ccc"}));
  EXPECT_EQ(keys("gets k\n"), std::make_pair(true, std::vector<std::string>{"k"}));
  EXPECT_EQ(keys("get x\r\nget y\r\n"), std::make_pair(true, std::vector<std::string>{"x"}));
  EXPECT_EQ(keys("  get   x"), std::make_pair(true, std::vector<std::string>{"x"}));
  EXPECT_EQ(keys("get"), std::make_pair(true, std::vector<std::string>{}));
  EXPECT_FALSE(keys("set k 0 0 1\r\nx\r\n").first);
  EXPECT_FALSE(keys("getx k\r\n").first);
  EXPECT_FALSE(keys("").first);
  int seen = 0;
  for_each_get_key("get a b c", [&](std::string_view) { return ++seen < 2; });
  EXPECT_EQ(seen, 2);  // stops when fn says so
}

}  // namespace
}  // namespace fm::kv
