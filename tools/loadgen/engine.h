// One loadgen core's sender and receiver, over any transport (DPDK queue, kernel sockets, fake).
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "tools/loadgen/distributions.h"
#include "tools/loadgen/multiget.h"
#include "tools/loadgen/results.h"
#include "tools/loadgen/schedule.h"
#include "tools/loadgen/tuning.h"
#include "tools/loadgen/workload.h"

namespace fm::loadgen {

/// Settings of one core's engine (the same on every core).
struct EngineConfig {
  // Source ports (request-id spaces of 65536 each) this core uses, a power of two <= 64.
  // memcached's UDP request id is 16 bits, so one flow can have at most 65536 requests in
  // flight; more flows keep ids unique for longer at high rates or long timeouts.
  uint32_t flows = 1;
  // A request not answered this long after its scheduled time is dropped (infinite latency).
  uint64_t timeout_ticks = 0;
  // A measured request sent later than this after its scheduled time counts as late.
  uint64_t late_ticks = 0;
  // Clock ticks to nanoseconds.
  double ns_per_tick = 1.0;
  // Check every GET value against what was stored.
  bool verify = true;
  // Value size of each key (shared, read-only).
  const ValueSizes* values = nullptr;
  // Polled once per loop iteration; true cuts the run short (SIGINT). May be null.
  bool (*stop)() = nullptr;
  // Keys per multi-key GET (0: the workload has none) and how many may be in flight at once
  // (each holds a reply buffer; one that finds none free is counted unsent).
  uint32_t multiget_keys = 0;
  uint32_t multiget_slots = 0;
};

/// When one rate point runs on a core, in that core's clock.
struct PointPlan {
  uint64_t start = 0;           // clock time of schedule time 0
  uint64_t measure_from = 0;    // ticks after start: requests due from here on are measured...
  uint64_t measure_until = 0;   // ...until here (exclusive), when measure_count is 0
  uint64_t measure_count = 0;   // > 0: measure exactly this many requests instead
  uint64_t timeline_ticks = 0;  // > 0 (with measure_count 0): a Timeline of intervals this long
};

/// Outcome of the preload phase on one core.
struct PreloadResult {
  uint64_t stored = 0;  // keys the server answered STORED
  uint64_t failed = 0;  // keys still not stored after every retry round
};

/// The sending and receiving logic of one queue pair (or socket set): follows its Schedule
/// open loop (never waits for replies to send), matches replies to requests by (flow,
/// request id), puts multi-datagram replies back together by sequence number, verifies them,
/// and expires requests at their timeout as infinite latency. Everything about time comes
/// from the transport's clock, so a test can drive it with a fake clock and a fake server.
/// run() drives one point alone; begin()/step()/finish() let one core interleave several
/// engines (several queue pairs per lcore).
///
/// Transport requirements (all owner-core only, no allocation on the data path):
///   uint64_t now();                        the clock, in ticks
///   std::span<uint8_t> tx_begin(uint32_t flow);  room for one datagram's payload
///                                          (>= kMaxRequestLen), or empty when out of buffers
///   void tx_commit(uint32_t flow, size_t len);   queue the datagram begun last
///   uint64_t tx_flush();                   send what is queued; returns frames refused
///   template <class Sink> uint32_t rx_poll(Sink&);  calls sink.on_datagram(flow, payload, now)
///                                          for each received datagram; returns how many
/// Not thread-safe: one engine per core.
template <class Transport>
class Engine {
 public:
  Engine(Transport& t, const EngineConfig& cfg)
      : t_(t),
        cfg_(cfg),
        flow_shift_(uint32_t(std::countr_zero(cfg.flows))),
        cap_(uint64_t(cfg.flows) << 16),
        slots_(cap_) {
    if (cfg.multiget_keys) {
      mget_.init(cfg.multiget_slots ? cfg.multiget_slots : 64, cfg.multiget_keys,
                 multiget_reply_capacity(cfg.multiget_keys, cfg.values->max()));
    }
  }

  /// Runs one rate point open loop: sends every request of `sched` at its due time (late ones
  /// as soon as possible, never skipped), until the measured window is over, then waits until
  /// every request is answered or timed out. Returns what the measured requests saw.
  CoreResult run(Schedule& sched, const PointPlan& plan, ProgressSlot* progress = nullptr) {
    Loop l = start(sched, plan, progress);  // a local, so the loop's state stays in registers
    while (!turn(l)) {
    }
    return end(l);
  }

  /// Sets up a point as run() does, without running it: step() until it returns true, then
  /// finish(). `sched` must outlive the point. Control path (allocates the timeline).
  void begin(Schedule& sched, const PointPlan& plan, ProgressSlot* progress = nullptr) {
    loop_ = start(sched, plan, progress);
  }

  /// One turn of the loop: sends what is due, polls RX once, expires. True when the point is
  /// over (every request answered or timed out, or stop()). Owner core only.
  bool step() { return turn(loop_); }

  /// True when the last step() sent or received anything.
  bool worked() const { return loop_.prev_work; }

  /// Ends the point begun by begin(): what the measured requests saw.
  CoreResult finish() { return end(loop_); }

  /// The transport's clock.
  uint64_t now() { return t_.now(); }

  /// Receives without sending, for an engine whose own work is done while others still run: the
  /// transport passes on replies for other queues that arrive on this one (a server core that
  /// stole a request answers from its own queue); late replies of its own count as strays.
  uint32_t poll_rx() { return t_.rx_poll(*this); }

  /// Stores keys first, first+stride, ... below `keys`, closed loop with `window` SETs in
  /// flight; keys that time out or get an error are retried in up to `retries` more rounds.
  /// `between` (may be empty) runs once per loop turn: the other engines of this core keep
  /// receiving meanwhile (poll_rx()), so replies for this engine that land on their queues are
  /// passed on.
  PreloadResult preload(uint64_t first, uint64_t stride, uint64_t keys, uint32_t window,
                        uint32_t retries, const std::function<void()>& between = {}) {
    res_ = fresh_result();
    progress_ = &dummy_progress_;
    preloading_ = true;
    PreloadResult out;
    preload_failed_.clear();
    std::vector<uint64_t> round_keys;
    for (uint32_t round = 0; round <= retries; ++round) {
      const bool from_list = round > 0;
      if (from_list) {
        round_keys.swap(preload_failed_);
        preload_failed_.clear();
        if (round_keys.empty()) break;
      }
      uint64_t idx = 0;
      const uint64_t total =
          from_list ? round_keys.size() : (keys > first ? (keys - first + stride - 1) / stride : 0);
      while ((idx < total || outstanding_ != 0) && !(cfg_.stop && cfg_.stop())) {
        const uint64_t now = t_.now();
        while (idx < total && outstanding_ < window) {
          const uint64_t key = from_list ? round_keys[idx] : first + idx * stride;
          if (!send_request(Op::kSet, key, now, false)) break;
          ++idx;
        }
        t_.tx_flush();
        t_.rx_poll(*this);
        expire(t_.now());
        if (between) between();
      }
    }
    out.failed = preload_failed_.size();
    out.stored = preload_stored_;
    preload_stored_ = 0;
    preloading_ = false;
    return out;
  }

  /// Sink for the transport: one reply datagram on `flow`, received at clock time `now`.
  /// A multi-key GET's reply may come in several datagrams, in any order, some twice: it is
  /// complete (and its latency taken) when the last missing one arrives; one that never does
  /// leaves the request to time out.
  void on_datagram(uint32_t flow, std::span<const uint8_t> p, uint64_t now) {
    if (p.size() < kFrameHeaderLen || flow >= cfg_.flows) {
      ++res_.strays;
      return;
    }
    const kv::UdpFrameHeader h = *kv::parse_frame_header(p);  // size checked above
    const uint16_t id = h.request_id;
    const uint16_t seq = h.sequence;
    const uint16_t total = h.total;
    Slot& s = slots_[(uint64_t(id) << flow_shift_) | flow];
    if (!s.in_flight) {  // late after its timeout, or a duplicate
      ++res_.strays;
      return;
    }
    if (s.op == Op::kMultiGet) [[unlikely]] {
      on_multiget_datagram(s, seq, total, p.subspan(kFrameHeaderLen), now);
      return;
    }
    if (seq != 0) {  // a continuation: single-key replies are sized to fit one datagram
      ++res_.strays;
      return;
    }
    s.in_flight = false;
    --outstanding_;
    const std::string_view body(reinterpret_cast<const char*>(p.data() + kFrameHeaderLen),
                                p.size() - kFrameHeaderLen);
    if (now - s.due > cfg_.timeout_ticks && now > s.due) {  // expire() has not run yet
      drop(s);
      return;
    }
    ReplyOutcome o;
    if (total != 1)
      o = ReplyOutcome::kMalformed;  // values are sized to fit one datagram
    else if (s.op == Op::kGet)
      o = check_get_reply(body, s.key, s.value_len, cfg_.verify);
    else
      o = check_set_reply(body);
    if (preloading_) {
      if (o == ReplyOutcome::kOk)
        ++preload_stored_;
      else
        preload_failed_.push_back(s.key);
      return;
    }
    complete(s, o, now);
  }

  uint64_t outstanding() const { return outstanding_; }
  const EngineConfig& config() const { return cfg_; }

 private:
  /// The state of one point's sending loop.
  struct Loop {
    Schedule* sched = nullptr;
    PointPlan plan;
    Request next;
    uint64_t measured_seen = 0;
    uint64_t window_end = 0;  // schedule time the measured window ended at
    uint64_t prev_now = 0;
    uint64_t loop_start = 0;
    bool sched_done = false;
    bool prev_work = false;
  };

  Loop start(Schedule& sched, const PointPlan& plan, ProgressSlot* progress) {
    res_ = fresh_result();
    progress_ = progress ? progress : &dummy_progress_;
    preloading_ = false;
    sched_ = &sched;
    tl_ = nullptr;
    if (plan.timeline_ticks && !plan.measure_count) {
      res_.timeline =
          std::make_unique<Timeline>(plan.start + plan.measure_from, plan.timeline_ticks,
                                     plan.measure_until - plan.measure_from);
      tl_ = res_.timeline.get();
    }
    Loop l;
    l.sched = &sched;
    l.plan = plan;
    l.next = sched.next();
    l.prev_now = t_.now();
    l.loop_start = l.prev_now;
    return l;
  }

  [[gnu::always_inline]] inline bool turn(Loop& l) {
    const uint64_t now = t_.now();
    if (l.prev_work) res_.busy_ticks += now - l.prev_now;
    l.prev_now = now;
    // Send what is due in bursts; a full burst means the schedule is ahead of us (after a
    // stall), so keep sending, up to kCatchUpBursts, before the next RX poll.
    uint32_t sent = 0;
    uint64_t due_by = now;
    for (uint32_t burst = 0; burst < kCatchUpBursts; ++burst) {
      uint32_t in_burst = 0;
      while (!l.sched_done && l.plan.start + l.next.at <= due_by && in_burst < kSendBurst) {
        bool measured = false;
        if (l.next.at >= l.plan.measure_from) {
          if (l.plan.measure_count ? l.measured_seen == l.plan.measure_count
                                   : l.next.at >= l.plan.measure_until) {
            l.sched_done = true;
            l.window_end = l.next.at;
            break;
          }
          measured = true;
          ++l.measured_seen;
        }
        send_scheduled(l.next, l.plan.start + l.next.at, measured);
        l.next = l.sched->next();
        ++in_burst;
      }
      res_.tx_dropped += t_.tx_flush();
      sent += in_burst;
      if (in_burst == 0) break;
      const uint64_t after = t_.now();
      if (n_lag_) account_lag(after);
      if (in_burst < kSendBurst) break;
      due_by = after;
    }
    const uint32_t got = t_.rx_poll(*this);
    expire(now);
    l.prev_work = sent != 0 || got != 0;
    if (l.sched_done && outstanding_ == 0) return true;
    if (cfg_.stop && cfg_.stop()) {
      res_.interrupted = true;
      if (!l.sched_done) l.window_end = now > l.plan.start ? now - l.plan.start : 0;
      return true;
    }
    return false;
  }

  CoreResult end(const Loop& l) {
    res_.window_ticks = l.window_end > l.plan.measure_from ? l.window_end - l.plan.measure_from : 0;
    res_.loop_ticks = l.prev_now - l.loop_start;
    if (res_.interrupted) expire_all();
    CoreResult out(std::move(res_));
    res_ = fresh_result();  // strays between points still count somewhere valid
    tl_ = nullptr;
    sched_ = nullptr;
    return out;
  }

  struct Slot {
    uint64_t due = 0;  // clock time the request was scheduled for: latency starts here
    uint64_t key = 0;  // kMultiGet: its MultiGetPool slot
    uint32_t value_len = 0;
    Op op = Op::kGet;
    bool in_flight = false;
    bool measured = false;
  };
  static_assert(sizeof(Slot) == 24);

  /// A reply (all of it) to the in-flight request `s`, at clock `now`: its latency and outcome.
  void complete(const Slot& s, ReplyOutcome o, uint64_t now) {
    progress_->replies.add();
    if (!s.measured) return;
    OpStats& st = res_.ops[size_t(s.op)];
    ++st.completed;
    const uint64_t ns = uint64_t(double(now > s.due ? now - s.due : 0) * cfg_.ns_per_tick);
    st.latency.record(ns);
    if (tl_) tl_->on_reply(s.due, now, ns);
    switch (o) {
      case ReplyOutcome::kOk:
        break;
      case ReplyOutcome::kMiss:
        ++st.misses;
        break;
      case ReplyOutcome::kWrongValue:
        ++st.wrong;
        break;
      case ReplyOutcome::kServerError:
        ++st.server_errors;
        break;
      case ReplyOutcome::kMalformed:
        ++st.malformed;
        break;
    }
    if (tl_ && o != ReplyOutcome::kOk) {
      tl_->on_outcome(s.due, o == ReplyOutcome::kServerError || o == ReplyOutcome::kMalformed,
                      o == ReplyOutcome::kWrongValue, o == ReplyOutcome::kMiss);
    }
  }

  /// One datagram of a multi-key GET's reply (frame header stripped).
  [[gnu::noinline]] void on_multiget_datagram(Slot& s, uint16_t seq, uint16_t total,
                                              std::span<const uint8_t> body, uint64_t now) {
    const uint32_t m = uint32_t(s.key);
    ReplyAssembly& a = mget_.assembly(m);
    const ReplyAssembly::Add r = a.add(seq, total, body);
    if (r == ReplyAssembly::Add::kDuplicate) {
      ++res_.strays;
      return;
    }
    if (r == ReplyAssembly::Add::kMore) return;
    s.in_flight = false;
    --outstanding_;
    if (now - s.due > cfg_.timeout_ticks && now > s.due) {  // expire() has not run yet
      drop(s);
      return;
    }
    ReplyOutcome o = ReplyOutcome::kMalformed;
    if (r == ReplyAssembly::Add::kComplete && !a.overflowed()) {
      const std::string_view whole = a.assemble(mget_.scratch());
      o = check_multiget_reply(whole, mget_.keys(m), *cfg_.values, cfg_.verify).outcome;
    }
    mget_.release(m);
    complete(s, o, now);
  }

  void send_scheduled(const Request& r, uint64_t due, bool measured) {
    if (measured) {
      ++res_.ops[size_t(r.op)].scheduled;
      if (tl_) tl_->on_scheduled(due);
    }
    if (send_request(r.op, r.key, due, measured)) {
      progress_->sent.add();
      if (measured) lag_due_[n_lag_++] = due;
    } else if (measured) {  // nothing to build it in: dropped here, and certainly late
      ++res_.unsent;
      ++res_.late;
      ++res_.ops[size_t(r.op)].timeouts;
      res_.ops[size_t(r.op)].latency.record_infinite();
      progress_->timeouts.add();
      if (tl_) {
        tl_->on_late(due);
        tl_->on_timeout(due);
      }
    }
  }

  /// Schedule adherence of the requests just handed to the transport, against `sent_at`, the
  /// clock after the flush: the lag includes building and queueing the whole burst.
  void account_lag(uint64_t sent_at) {
    for (uint32_t i = 0; i < n_lag_; ++i) {
      const uint64_t lag = sent_at > lag_due_[i] ? sent_at - lag_due_[i] : 0;
      res_.send_lag.record(uint64_t(double(lag) * cfg_.ns_per_tick));
      if (lag > cfg_.late_ticks) {
        ++res_.late;
        progress_->late.add();
        if (tl_) tl_->on_late(lag_due_[i]);
      }
    }
    n_lag_ = 0;
  }

  bool send_request(Op op, uint64_t key, uint64_t due, bool measured) {
    while (next_seq_ - head_ >= cap_) {  // every id of every flow is in flight: reuse the oldest
      Slot& old = slots_[head_ & (cap_ - 1)];
      if (old.in_flight) {
        ++res_.id_wraps;
        old.in_flight = false;
        --outstanding_;
        drop(old);
      }
      ++head_;
    }
    const uint32_t flow = uint32_t(next_seq_ & (cfg_.flows - 1));
    const uint16_t id = uint16_t(next_seq_ >> flow_shift_);
    uint32_t vlen = 0;
    if (op == Op::kMultiGet) [[unlikely]] {
      key = send_multiget(flow, id);  // now its MultiGetPool slot
      if (key == MultiGetPool::kNone) return false;
    } else {
      std::span<uint8_t> buf = t_.tx_begin(flow);
      if (buf.size() < kMaxRequestLen) return false;
      vlen = cfg_.values->size_for(key);
      const size_t len =
          op == Op::kGet ? encode_get(buf.data(), id, key) : encode_set(buf.data(), id, key, vlen);
      t_.tx_commit(flow, len);
    }
    Slot& s = slots_[next_seq_ & (cap_ - 1)];
    s.due = due;
    s.key = key;
    s.value_len = vlen;
    s.op = op;
    s.in_flight = true;
    s.measured = measured;
    ++next_seq_;
    ++outstanding_;
    return true;
  }

  /// Builds and queues the current multi-key GET (the schedule's keys) on `flow` with `id`.
  /// Returns its MultiGetPool slot, or kNone when no slot or buffer is free.
  [[gnu::noinline]] uint32_t send_multiget(uint32_t flow, uint16_t id) {
    const uint32_t m = mget_.acquire();
    if (m == MultiGetPool::kNone) return m;
    std::span<uint8_t> buf = t_.tx_begin(flow);
    if (buf.size() < kMaxRequestLen) {
      mget_.release(m);
      return MultiGetPool::kNone;
    }
    const std::span<const uint64_t> keys = sched_->multiget_keys();
    std::copy(keys.begin(), keys.end(), mget_.keys(m).begin());
    t_.tx_commit(flow, encode_multiget(buf.data(), id, keys));
    return m;
  }

  /// A request that will never be answered in time: infinite latency (measured), or a key to
  /// retry (preload).
  void drop(const Slot& s) {
    if (s.op == Op::kMultiGet) mget_.release(uint32_t(s.key));
    if (preloading_) {
      preload_failed_.push_back(s.key);
      return;
    }
    if (!s.measured) return;
    OpStats& st = res_.ops[size_t(s.op)];
    ++st.timeouts;
    st.latency.record_infinite();
    progress_->timeouts.add();
    if (tl_) tl_->on_timeout(s.due);
  }

  /// Times out requests whose deadline passed. Slots are reused in sequence order and due
  /// times grow with it, so the oldest in-flight request is always at head_.
  void expire(uint64_t now) {
    while (head_ != next_seq_) {
      Slot& s = slots_[head_ & (cap_ - 1)];
      if (s.in_flight) {
        if (now < s.due || now - s.due <= cfg_.timeout_ticks) return;
        s.in_flight = false;
        --outstanding_;
        drop(s);
      }
      ++head_;
    }
  }

  void expire_all() {
    while (head_ != next_seq_) {
      Slot& s = slots_[head_ & (cap_ - 1)];
      if (s.in_flight) {
        s.in_flight = false;
        --outstanding_;
        drop(s);
      }
      ++head_;
    }
  }

  Transport& t_;
  EngineConfig cfg_;
  uint32_t flow_shift_;
  uint64_t cap_;
  std::vector<Slot> slots_;
  uint64_t next_seq_ = 0;  // sequence number of the next request (slot, flow and id follow)
  uint64_t head_ = 0;      // oldest sequence number that may still be in flight
  uint64_t outstanding_ = 0;
  uint64_t lag_due_[kSendBurst] = {};  // due times of this burst's measured requests
  uint32_t n_lag_ = 0;
  CoreResult res_;
  Timeline* tl_ = nullptr;  // res_.timeline while a point runs with --timeline
  MultiGetPool mget_;
  Schedule* sched_ = nullptr;  // the point under way's, for a multi-key GET's keys
  Loop loop_;                  // begin() .. finish()
  ProgressSlot dummy_progress_;
  ProgressSlot* progress_ = &dummy_progress_;
  bool preloading_ = false;
  uint64_t preload_stored_ = 0;
  std::vector<uint64_t> preload_failed_;
};

}  // namespace fm::loadgen
