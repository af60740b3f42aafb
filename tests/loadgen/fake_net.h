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
  };

  explicit FakeNet(Server s, uint64_t loop_cost_ns = 50) : s_(s), loop_cost_(loop_cost_ns) {}

  // --- Engine transport interface
  uint64_t now() {
    t_ += loop_cost_;
    if (stall_at_ && t_ >= stall_at_) {  // the generator loses the CPU once
      t_ += stall_ns_;
      stall_at_ = 0;
    }
    return t_;
  }

  std::span<uint8_t> tx_begin(uint32_t flow) {
    cur_flow_ = flow;
    return {buf_, sizeof buf_};
  }

  void tx_commit(uint32_t flow, size_t len) {
    ++requests_;
    const std::string_view req(reinterpret_cast<const char*>(buf_ + kFrameHeaderLen),
                               len - kFrameHeaderLen);
    if (s_.never_answer || (s_.drop_every && requests_ % s_.drop_every == 0)) {
      ++dropped_;
      return;
    }
    const uint64_t arrive = t_ + s_.one_way_ns;
    busy_until_ = std::max(busy_until_, arrive) + s_.service_ns;
    Reply r;
    r.flow = flow;
    r.at = busy_until_ + s_.one_way_ns;
    r.bytes.assign(buf_, buf_ + kFrameHeaderLen);
    r.bytes[4] = 0;
    r.bytes[5] = 1;
    const std::string body = answer(req);
    r.bytes.insert(r.bytes.end(), body.begin(), body.end());
    replies_.push_back(std::move(r));
    (void)cur_flow_;
  }

  uint64_t tx_flush() { return 0; }

  template <class Sink>
  uint32_t rx_poll(Sink& sink) {
    uint32_t n = 0;
    while (!replies_.empty() && replies_.front().at <= t_ && n < 32) {
      Reply r = std::move(replies_.front());
      replies_.pop_front();
      sink.on_datagram(r.flow, std::span<const uint8_t>(r.bytes.data(), r.bytes.size()), t_);
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
  uint64_t time() const { return t_; }
  const std::vector<uint64_t>& stored() const { return stored_keys_; }

 private:
  struct Reply {
    uint32_t flow = 0;
    uint64_t at = 0;
    std::vector<uint8_t> bytes;
  };

  static uint64_t key_of(std::string_view k) { return std::stoull(std::string(k.substr(1))); }

  std::string answer(std::string_view req) {
    if (req.starts_with("get ")) {
      const std::string_view k = req.substr(4, kKeyLen);
      const uint64_t key = key_of(k);
      auto it = values_.find(key);
      if (it == values_.end()) return "END\r\n";
      std::string v = it->second;
      if (s_.corrupt_every && ++gets_ % s_.corrupt_every == 0 && !v.empty()) v[0] ^= 1;
      return "VALUE " + std::string(k) + " 0 " + std::to_string(v.size()) + "\r\n" + v +
             "\r\nEND\r\n";
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
  uint64_t stall_at_ = 0, stall_ns_ = 0;
  uint64_t busy_until_ = 0;
  uint64_t requests_ = 0, dropped_ = 0, gets_ = 0;
  uint32_t cur_flow_ = 0;
  uint8_t buf_[kMaxRequestLen + 64];
  std::deque<Reply> replies_;
  std::unordered_map<uint64_t, std::string> values_;
  std::vector<uint64_t> stored_keys_;
};

}  // namespace fm::loadgen::testing
