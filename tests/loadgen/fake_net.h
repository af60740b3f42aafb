// A fake transport for the loadgen engine: a simulated clock and a simulated memcached server
// (FIFO, one request at a time, a fixed service time), so open-loop behaviour is testable
// in-process and deterministically.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "tools/loadgen/workload.h"

namespace fm::loadgen::testing {

/// Clock in nanoseconds (hz = 1e9). Each now() advances it by `loop_cost_ns`: the cost of one
/// turn of the sender's loop, so the simulated generator is fast but not infinitely so.
class FakeNet {
 public:
  struct Server {
    uint64_t service_ns = 1000;  // time to answer one request; requests queue behind it
    uint64_t one_way_ns = 500;   // wire delay each way
    uint32_t drop_every = 0;     // > 0: never answer every Nth request
    uint32_t corrupt_every = 0;  // > 0: every Nth GET hit returns a damaged value
    bool never_answer = false;
    // Multi-datagram replies (any reply longer than max_datagram, frame header included):
    uint32_t max_datagram = 1400;    // bytes per reply datagram, as memcached
    uint64_t datagram_gap_ns = 100;  // between the arrivals of one reply's datagrams
    bool reverse = false;            // datagrams arrive last to first
    bool duplicate = false;          // the first datagram sent arrives twice (again at the end)
    uint32_t lose_every = 0;         // > 0: the second datagram of every Nth multi-datagram
                                     // reply never arrives
    bool message_per_item = false;   // memcached 1.6: each item of a GET reply is a message of
                                     // its own ("sequence 0 of 1"), END in the last one
  };

  explicit FakeNet(Server s, uint64_t loop_cost_ns = 50) : s_(s), loop_cost_(loop_cost_ns) {}

  // --- Engine transport interface
  uint64_t now() {
    uint64_t& t = *clock_;
    t += loop_cost_;
    if (stall_at_ && t >= stall_at_) {  // the generator loses the CPU once
      t += stall_ns_;
      stall_at_ = 0;
    }
    return t;
  }

  std::span<uint8_t> tx_begin(uint32_t flow) {
    cur_flow_ = flow;
    return {buf_, sizeof buf_};
  }

  void tx_commit(uint32_t flow, size_t len) {
    ++requests_;
    const std::string_view req(reinterpret_cast<const char*>(buf_ + kFrameHeaderLen),
                               len - kFrameHeaderLen);
    last_request_.assign(req);
    if (s_.never_answer || (s_.drop_every && requests_ % s_.drop_every == 0)) {
      ++dropped_;
      return;
    }
    const uint64_t arrive = *clock_ + s_.one_way_ns;
    busy_until_ = std::max(busy_until_, arrive) + s_.service_ns;
    const std::string body = answer(req);
    std::vector<Reply> parts;
    if (s_.message_per_item && req.starts_with("get ")) {
      // One message per "VALUE ...\r\n<data>\r\n" item; END goes with the last one.
      std::vector<std::string> items;
      size_t pos = 0;
      while (body.compare(pos, 6, "VALUE ") == 0) {
        const size_t eol = body.find("\r\n", pos);
        const size_t sp = body.rfind(' ', eol);
        const size_t n = std::stoul(body.substr(sp + 1, eol - sp - 1));
        items.push_back(body.substr(pos, eol + 2 + n + 2 - pos));
        pos = eol + 2 + n + 2;
      }
      if (items.empty()) items.emplace_back();
      items.back() += "END\r\n";
      for (const std::string& m : items) {
        Reply r;
        r.flow = flow;
        r.bytes.assign(buf_, buf_ + kFrameHeaderLen);
        r.bytes.insert(r.bytes.end(), m.begin(), m.end());
        parts.push_back(std::move(r));
      }
      if (items.size() > 1) ++multi_replies_;
      uint64_t at = busy_until_ + s_.one_way_ns;
      for (Reply& r : parts) {
        r.at = at;
        at += s_.datagram_gap_ns;
        last_reply_at_ = r.at;
        replies_.push_back(std::move(r));
      }
      return;
    }
    // Cut the body into datagrams of at most max_datagram bytes (frame header included).
    const size_t chunk = s_.max_datagram - kFrameHeaderLen;
    const size_t total = body.empty() ? 1 : (body.size() + chunk - 1) / chunk;
    for (size_t seq = 0; seq < total; ++seq) {
      Reply r;
      r.flow = flow;
      r.bytes.assign(buf_, buf_ + kFrameHeaderLen);
      r.bytes[2] = uint8_t(seq >> 8);
      r.bytes[3] = uint8_t(seq);
      r.bytes[4] = uint8_t(total >> 8);
      r.bytes[5] = uint8_t(total);
      const size_t off = seq * chunk;
      r.bytes.insert(r.bytes.end(), body.begin() + long(off),
                     body.begin() + long(std::min(body.size(), off + chunk)));
      parts.push_back(std::move(r));
    }
    if (total > 1) {
      ++multi_replies_;
      if (s_.reverse) std::reverse(parts.begin(), parts.end());
      if (s_.duplicate) parts.push_back(parts.front());
      if (s_.lose_every && multi_replies_ % s_.lose_every == 0) {
        parts.erase(std::find_if(parts.begin(), parts.end(), [](const Reply& r) {
          return r.bytes[2] == 0 && r.bytes[3] == 1;
        }));
        ++lost_datagrams_;
      }
    }
    uint64_t at = busy_until_ + s_.one_way_ns;
    for (Reply& r : parts) {
      r.at = at;
      at += s_.datagram_gap_ns;
      last_reply_at_ = r.at;
      // Kept in arrival order: a long reply's last datagrams may come after the next reply.
      auto pos = std::upper_bound(replies_.begin(), replies_.end(), r.at,
                                  [](uint64_t at, const Reply& x) { return at < x.at; });
      replies_.insert(pos, std::move(r));
    }
    (void)cur_flow_;
  }

  uint64_t tx_flush() { return 0; }

  template <class Sink>
  uint32_t rx_poll(Sink& sink) {
    uint32_t n = 0;
    const uint64_t t = *clock_;
    while (!replies_.empty() && replies_.front().at <= t && n < 32) {
      Reply r = std::move(replies_.front());
      replies_.pop_front();
      sink.on_datagram(r.flow, std::span<const uint8_t>(r.bytes.data(), r.bytes.size()), t);
      ++n;
    }
    return n;
  }

  // --- test controls
  /// At clock time `at_ns` the generator is descheduled for `ns`.
  void stall_at(uint64_t at_ns, uint64_t ns) {
    stall_at_ = at_ns;
    stall_ns_ = ns;
  }
  uint64_t requests() const { return requests_; }
  uint64_t dropped() const { return dropped_; }
  uint64_t time() const { return *clock_; }
  const std::vector<uint64_t>& stored() const { return stored_keys_; }
  uint64_t multi_replies() const { return multi_replies_; }
  uint64_t lost_datagrams() const { return lost_datagrams_; }
  /// The text of the last request (after the frame header).
  const std::string& last_request() const { return last_request_; }
  /// When the last datagram of the last reply arrives.
  uint64_t last_reply_at() const { return last_reply_at_; }
  /// Shares `other`'s clock: several fake queue pairs driven by one core.
  void share_clock(FakeNet& other) { clock_ = other.clock_; }

 private:
  struct Reply {
    uint32_t flow = 0;
    uint64_t at = 0;
    std::vector<uint8_t> bytes;
  };

  static uint64_t key_of(std::string_view k) { return std::stoull(std::string(k.substr(1))); }

  std::string answer(std::string_view req) {
    if (req.starts_with("get ")) {
      // Every key of the command, in order; absent ones are left out, as memcached does.
      std::string out;
      size_t pos = 4;
      while (pos + kKeyLen <= req.size() && req[pos] == 'k') {
        const std::string_view k = req.substr(pos, kKeyLen);
        pos += kKeyLen + 1;
        auto it = values_.find(key_of(k));
        if (it == values_.end()) continue;
        std::string v = it->second;
        if (s_.corrupt_every && ++gets_ % s_.corrupt_every == 0 && !v.empty()) v[0] ^= 1;
        out += "VALUE " + std::string(k) + " 0 " + std::to_string(v.size()) + "\r\n" + v + "\r\n";
      }
      return out + "END\r\n";
    }
    if (req.starts_with("set ")) {
      const std::string_view k = req.substr(4, kKeyLen);
      const size_t eol = req.find("\r\n");
      const size_t sp = req.rfind(' ', eol);
      const size_t n = std::stoul(std::string(req.substr(sp + 1, eol - sp - 1)));
      values_[key_of(k)] = std::string(req.substr(eol + 2, n));
      stored_keys_.push_back(key_of(k));
      return "STORED\r\n";
    }
    return "ERROR\r\n";
  }

  Server s_;
  uint64_t loop_cost_;
  uint64_t t_ = 1'000'000;
  uint64_t* clock_ = &t_;
  uint64_t stall_at_ = 0, stall_ns_ = 0;
  uint64_t busy_until_ = 0;
  uint64_t requests_ = 0, dropped_ = 0, gets_ = 0;
  uint64_t multi_replies_ = 0, lost_datagrams_ = 0, last_reply_at_ = 0;
  std::string last_request_;
  uint32_t cur_flow_ = 0;
  uint8_t buf_[kMaxRequestLen + 64];
  std::deque<Reply> replies_;
  std::unordered_map<uint64_t, std::string> values_;
  std::vector<uint64_t> stored_keys_;
};

}  // namespace fm::loadgen::testing
