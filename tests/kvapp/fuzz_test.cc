// Fuzz-style tests (fixed seeds): random and mutated datagrams never crash, always get
// well-formed replies, and never change items they do not validly name.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "kv_test_util.h"

namespace fm::kv {
namespace {

using testing::Client;
using testing::Datagram;
using testing::kNow;
using testing::make_store;
using namespace std::string_literals;

// "" when `text` is a sequence of well-formed memcached replies; otherwise what is wrong.
std::string check_reply(std::string_view text) {
  static const std::set<std::string_view> kExact = {"STORED",  "NOT_STORED", "EXISTS", "NOT_FOUND",
                                                    "DELETED", "TOUCHED",    "OK",     "END",
                                                    "ERROR",   "RESET"};
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t e = text.find("\r\n", pos);
    if (e == std::string_view::npos) return "unterminated reply line at " + std::to_string(pos);
    const std::string_view line = text.substr(pos, e - pos);
    pos = e + 2;
    if (line.starts_with("VALUE ")) {
      std::vector<std::string_view> tok;
      for (size_t i = 0; i < line.size();) {
        const size_t j = std::min(line.find(' ', i), line.size());
        tok.push_back(line.substr(i, j - i));
        i = j + 1;
      }
      if (tok.size() != 4 && tok.size() != 5) return "bad VALUE line";
      const size_t n = std::stoul(std::string(tok[3]));
      if (pos + n + 2 > text.size() || text.substr(pos + n, 2) != "\r\n") return "bad VALUE data";
      pos += n + 2;
      continue;
    }
    if (kExact.count(line) || line.starts_with("CLIENT_ERROR ") ||
        line.starts_with("SERVER_ERROR ") || line.starts_with("VERSION ") ||
        line.starts_with("STAT ")) {
      continue;
    }
    if (!line.empty() && line.find_first_not_of("0123456789") == std::string_view::npos) continue;
    return "unexpected reply line: " + ::testing::PrintToString(std::string(line));
  }
  return "";
}

class FuzzTest : public ::testing::Test {
 protected:
  static constexpr int kProtected = 50;

  FuzzTest() : store_(make_store()), c_(*store_) {
    for (int i = 0; i < kProtected; ++i) {
      const std::string v = "value-" + std::to_string(i);
      EXPECT_EQ(c_.req("set PROT_" + std::to_string(i) + " " + std::to_string(i) + " 0 " +
                       std::to_string(v.size()) + "\r\n" + v + "\r\n"),
                "STORED\r\n");
    }
    protected_ = protected_state();
  }

  std::string protected_state() {
    std::string get = "gets";
    for (int i = 0; i < kProtected; ++i) get += " PROT_" + std::to_string(i);
    return c_.req(get + "\r\n");
  }

  // Sends one payload; checks the datagrams and the reply grammar.
  void send(const std::string& payload, uint64_t i) {
    const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
    const std::vector<Datagram> ds = c_.send_raw(std::span<const uint8_t>(p, payload.size()));
    if (payload.size() < 8) {
      ASSERT_TRUE(ds.empty());
      return;
    }
    const uint16_t id = static_cast<uint16_t>((uint8_t(payload[0]) << 8) | uint8_t(payload[1]));
    std::string text;
    for (size_t k = 0; k < ds.size(); ++k) {
      ASSERT_EQ(ds[k].header.request_id, id);
      ASSERT_EQ(ds[k].header.sequence, k);
      ASSERT_EQ(ds[k].header.total, ds.size());
      ASSERT_LE(ds[k].size, 1400u);
      text += ds[k].text;
    }
    ASSERT_EQ(check_reply(text), "")
        << "input #" << i << ": " << ::testing::PrintToString(payload.substr(8));
  }

  static std::string header(std::mt19937_64& rng) {
    std::string h(8, '\0');
    h[0] = char(rng());
    h[1] = char(rng());
    h[5] = 1;  // total 1, sequence 0: most inputs reach the parser
    if (rng() % 50 == 0) h[5] = char(rng());
    if (rng() % 50 == 0) h[3] = char(rng());
    return h;
  }

  std::unique_ptr<Store> store_;
  Client c_;
  std::string protected_;
};

TEST_F(FuzzTest, RandomBytesChangeNothing) {
  std::mt19937_64 rng(12345);
  const StoreStats before = store_->stats();
  for (int i = 0; i < 20000; ++i) {
    std::string payload;
    if (rng() % 10 == 0) {
      payload.resize(rng() % 12);  // runts and bare headers too
    } else {
      payload = header(rng);
      const size_t n = rng() % 400;
      for (size_t k = 0; k < n; ++k) {
        const uint64_t r = rng() % 20;
        payload += r == 0 ? '\n' : r == 1 ? '\r' : r == 2 ? ' ' : char(rng());
      }
    }
    send(payload, i);
    if (HasFatalFailure()) return;
  }
  const StoreStats after = store_->stats();
  EXPECT_EQ(after.curr_items, before.curr_items);
  EXPECT_EQ(after.total_items, before.total_items);
  EXPECT_EQ(after.bytes, before.bytes);
  EXPECT_EQ(protected_state(), protected_);
}

TEST_F(FuzzTest, TokenSoupNeverTouchesOtherKeys) {
  // Commands and arguments that look right, glued with every kind of separator. No flush_all
  // and no protected key names, so the protected items must come through untouched.
  const std::vector<std::string> cmds = {
      "get",     "gets", "gat",    "gats", "set",  "add",    "replace", "append",
      "prepend", "cas",  "delete", "incr", "decr", "touch",  "version", "verbosity",
      "stats",   "quit", "bogus",  "mg",   "",     "set\0"s, "GET",     "bget"};
  const std::vector<std::string> args = {"fz0",
                                         "fz1",
                                         "fz2",
                                         "fz3",
                                         "0",
                                         "1",
                                         "2",
                                         "5",
                                         "10",
                                         "-1",
                                         "4294967295",
                                         "4294967296",
                                         "18446744073709551615",
                                         "18446744073709551616",
                                         "2147483647",
                                         "-2147483648",
                                         "abc",
                                         "+3",
                                         "0x1f",
                                         "",
                                         "noreply",
                                         std::string(251, 'k'),
                                         "fz\0x"s,
                                         "1\t",
                                         "99999999999999999999"};
  const std::vector<std::string> seps = {" ", "  ", "\t", "\0"s, ""};
  const std::vector<std::string> ends = {"\r\n", "\r\n", "\r\n", "\n", "", "\r", "\r\r\n"};
  std::mt19937_64 rng(777);
  for (int i = 0; i < 20000; ++i) {
    std::string payload = header(rng);
    const int commands = 1 + rng() % 4;
    for (int c = 0; c < commands; ++c) {
      payload += cmds[rng() % cmds.size()];
      const int nargs = rng() % 8;
      for (int a = 0; a < nargs; ++a) {
        payload += seps[rng() % 2 == 0 ? 0 : rng() % seps.size()];
        payload += args[rng() % args.size()];
      }
      payload += ends[rng() % ends.size()];
      if (rng() % 2 == 0) {  // a data block of some length, maybe properly ended
        const size_t n = rng() % 12;
        for (size_t k = 0; k < n; ++k) payload += char('a' + rng() % 26);
        if (rng() % 3 != 0) payload += "\r\n";
      }
    }
    send(payload, i);
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(protected_state(), protected_);
}

TEST_F(FuzzTest, MutatedValidRequestsNeverTouchOtherKeys) {
  const std::vector<std::string> valid = {
      "set mk1 5 0 10\r\n0123456789\r\n",
      "add mk2 0 100 3\r\nabc\r\n",
      "replace mk1 1 0 2\r\nzz\r\nget mk1 mk2\r\n",
      "append mk1 0 0 4\r\ntail\r\nprepend mk1 0 0 4\r\nhead\r\n",
      "cas mk1 0 0 1 12\r\nq\r\n",
      "gets mk1 mk2 mk3\r\n",
      "gat 100 mk1\r\ngats 0 mk2\r\n",
      "incr mk3 5\r\ndecr mk3 2\r\n",
      "set mk3 0 0 2\r\n42\r\nincr mk3 1\r\n",
      "delete mk2\r\ndelete mk1 0 noreply\r\n",
      "touch mk1 10\r\n",
      "version\r\nverbosity 1\r\nstats\r\n",
      "set mk1 0 0 3 noreply\r\nabc\r\nget mk1\r\n",
  };
  std::mt19937_64 rng(4242);
  for (int i = 0; i < 20000; ++i) {
    std::string body = valid[rng() % valid.size()];
    const int mutations = 1 + rng() % 3;
    for (int m = 0; m < mutations && !body.empty(); ++m) {
      const size_t at = rng() % body.size();
      switch (rng() % 5) {
        case 0:
          body[at] = char(rng());
          break;  // flip a byte
        case 1:
          body.erase(at, 1);
          break;  // drop a byte
        case 2:
          body.insert(at, 1, char(rng()));
          break;  // insert a byte
        case 3:
          body.resize(at);
          break;  // truncate
        default:
          body.insert(at, body.substr(at, rng() % 8));
          break;  // duplicate a run
      }
    }
    std::string payload = header(rng) + body;
    send(payload, i);
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(protected_state(), protected_);
}

TEST_F(FuzzTest, ValidatorAcceptsRealRepliesAndRejectsJunk) {
  EXPECT_EQ(check_reply("STORED\r\nVALUE a 1 3 9\r\nabc\r\nEND\r\n123\r\n"), "");
  EXPECT_NE(check_reply("VALUE a 1 5\r\nabc\r\nEND\r\n"), "");
  EXPECT_NE(check_reply("STORED"), "");
  EXPECT_NE(check_reply("HELLO\r\n"), "");
}

}  // namespace
}  // namespace fm::kv
