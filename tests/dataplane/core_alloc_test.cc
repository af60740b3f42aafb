// Core allocation with fake queue sets on real threads: one poller per set at any time across
// thousands of park/unpark cycles, parked workers' sets keep being served, automatic growth on
// queueing delay and release when idle, and the control calls' limits.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "dataplane/core_alloc.h"
#include "dataplane/sanitizers.h"

namespace fm {
namespace {

using namespace std::chrono_literals;

/// A queue set that fails the test if two workers poll it at once, and serves `pending` work
/// items at `per_poll` a pass.
class FakeSet : public QueueSet {
 public:
  uint32_t poll() override {
    if (busy_.exchange(true)) overlaps.fetch_add(1);
    polls.fetch_add(1, std::memory_order_relaxed);
    if (track_gaps && pending_.load(std::memory_order_relaxed)) {
      track_gap();
      pending_.store(false, std::memory_order_release);  // last: its gap is recorded
    }
    uint32_t work = 0;
    if (serve.load(std::memory_order_relaxed)) {
      const uint64_t e = enq.load(), d = deq.load();
      const uint64_t n = std::min<uint64_t>(e - d, per_poll);
      deq.fetch_add(n);
      work = uint32_t(n);
    }
    busy_.store(false);
    return work;
  }
  QueueProbe probe() const override {
    QueueProbe p;
    const uint64_t d = deq.load();
    p.enqueued = enq.load();
    p.waiting = uint32_t(p.enqueued - d);
    p.fetches = fetches.load();
    return p;
  }
  void set_accepting(bool on) override { accepting.store(on); }

  std::atomic<uint64_t> polls{0}, overlaps{0}, enq{0}, deq{0};
  std::atomic<uint32_t> fetches{0};
  std::atomic<bool> serve{true}, accepting{true};
  uint32_t per_poll = 4;

  // Hand-off latency (track_gaps): from the old owner's hand-off to the new owner's first poll,
  // the longest, and the longest not explained by a thread waiting for a CPU: the new owner's
  // run-queue delay from schedstat over the interval, plus the old owner's (on_handoff runs
  // before it stores the new owner and kicks it, so a preemption there delays the kick; one
  // loaded run saw 1.6 ms that the new owner's delay alone did not explain).
  bool track_gaps = false;
  uint64_t handoffs = 0, max_gap_ns = 0, max_unexplained_ns = 0, gaps_over_1ms = 0, excused = 0;
  void on_handoff(uint16_t from, uint16_t to) override {
    if (!track_gaps) return;
    handoff_ns_ = now_ns();
    from_tid_ = worker_tid[from].load();
    to_delay_ = run_delay_ns(worker_tid[to].load());
    from_delay_ = run_delay_ns(from_tid_);
    pending_.store(true, std::memory_order_relaxed);
  }
  static inline std::atomic<pid_t> worker_tid[8];
  // A hand-off the new owner has not polled yet.
  bool handoff_pending() const { return pending_.load(std::memory_order_acquire); }

 private:
  static uint64_t now_ns() {
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count());
  }
  // Nanoseconds thread `tid` has waited on a run queue (the 2nd field of its schedstat).
  static uint64_t run_delay_ns(pid_t tid) {
    char path[64], buf[128];
    std::snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", int(tid));
    const int fd = ::open(path, O_RDONLY);
    if (fd < 0) return 0;
    const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
    ::close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    unsigned long long run = 0, wait = 0;
    return std::sscanf(buf, "%llu %llu", &run, &wait) == 2 ? wait : 0;
  }
  void track_gap() {
    ++handoffs;
    const uint64_t gap = now_ns() - handoff_ns_;
    max_gap_ns = std::max(max_gap_ns, gap);
    if (gap <= 1'000'000) return;
    ++gaps_over_1ms;
    const uint64_t d = run_delay_ns(pid_t(::syscall(SYS_gettid)));
    const uint64_t df = run_delay_ns(from_tid_);
    const uint64_t waited = (d - std::min(d, to_delay_)) + (df - std::min(df, from_delay_));
    const uint64_t unexplained = gap > waited ? gap - waited : 0;
    if (unexplained <= 1'000'000) ++excused;
    max_unexplained_ns = std::max(max_unexplained_ns, unexplained);
  }

  // Written by the old owner before it hands the set over, read by the new one after (and by
  // the test, waiting for the new owner's first poll).
  std::atomic<bool> pending_{false};
  pid_t from_tid_ = 0;
  uint64_t handoff_ns_ = 0, to_delay_ = 0, from_delay_ = 0;
  std::atomic<bool> busy_{false};
};

/// Runs `n` worker threads over the allocator until stop().
class Workers {
 public:
  Workers(CoreAllocator& a, uint16_t n) : a_(a) {
    for (uint16_t i = 0; i < n; ++i) {
      threads_.emplace_back([this, i] {
        if (i < 8) FakeSet::worker_tid[i].store(pid_t(::syscall(SYS_gettid)));
        while (!done_.load()) a_.poll_worker(i);
      });
    }
  }
  ~Workers() { stop(); }
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    // Parked workers return only once active again, and worker 0 (still looping) applies that:
    // make everyone active and wait for it before the loops end.
    a_.set_automatic(false);
    (void)a_.set_active(a_.max());
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < end) {
      bool all = true;
      for (uint16_t i = 0; i < a_.workers(); ++i) all = all && !a_.worker_info(i).parked;
      if (all && a_.active() == a_.max()) break;
      std::this_thread::sleep_for(100us);
    }
    done_.store(true);
    for (auto& t : threads_) t.join();
  }

 private:
  CoreAllocator& a_;
  std::atomic<bool> done_{false};
  bool stopped_ = false;
  std::vector<std::thread> threads_;
};

template <typename Pred>
bool wait_for(Pred p, std::chrono::milliseconds limit = 5000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (p()) return true;
    std::this_thread::sleep_for(100us);
  }
  return p();
}

struct Fixture {
  explicit Fixture(uint16_t n, AllocOptions o = {}) : sets(n) {
    std::vector<QueueSet*> ptrs;
    for (auto& s : sets) ptrs.push_back(&s);
    auto r = CoreAllocator::create(o, ptrs);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    alloc = std::move(r.value());
  }
  bool settled(uint16_t active) {
    if (alloc->active() != active) return false;
    size_t owned = 0;
    for (uint16_t w = 0; w < alloc->workers(); ++w) {
      const WorkerInfo i = alloc->worker_info(w);
      if (i.active != (w < active)) return false;
      if (!i.active && (!i.parked || !i.sets.empty())) return false;
      // An active worker has its home set back.
      if (i.active && std::find(i.sets.begin(), i.sets.end(), w) == i.sets.end()) return false;
      owned += i.sets.size();
    }
    return owned == sets.size();
  }
  std::vector<FakeSet> sets;
  std::unique_ptr<CoreAllocator> alloc;
};

TEST(CoreAlloc, ParkedWorkersSetsAreAdoptedAndHandedBack) {
  Fixture f(3);
  Workers w(*f.alloc, 3);
  ASSERT_TRUE(wait_for([&] { return f.settled(3); }));
  ASSERT_TRUE(f.alloc->set_active(1).is_ok());
  ASSERT_TRUE(wait_for([&] { return f.settled(1); }));
  EXPECT_EQ(f.alloc->worker_info(0).sets, (std::vector<uint16_t>{0, 1, 2}));
  EXPECT_FALSE(f.sets[1].accepting.load());
  // The parked workers' sets keep being served (by worker 0).
  const uint64_t before = f.sets[2].polls.load();
  f.sets[2].enq.fetch_add(100);
  ASSERT_TRUE(wait_for([&] { return f.sets[2].deq.load() == f.sets[2].enq.load(); }));
  EXPECT_GT(f.sets[2].polls.load(), before);
  ASSERT_TRUE(f.alloc->set_active(3).is_ok());
  ASSERT_TRUE(wait_for([&] { return f.settled(3); }));
  for (uint16_t i = 0; i < 3; ++i) EXPECT_EQ(f.alloc->worker_info(i).sets, (std::vector<uint16_t>{i}));
  EXPECT_TRUE(f.sets[1].accepting.load());
  w.stop();
  for (auto& s : f.sets) EXPECT_EQ(s.overlaps.load(), 0u);
  const auto d = f.alloc->decisions(10);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].action, "set");
  EXPECT_EQ(d[0].active, 1u);
  EXPECT_EQ(d[1].active, 3u);
  EXPECT_GE(d[1].wake_us, 0);  // the woken worker recorded when it left its park
}

TEST(CoreAlloc, ThousandsOfCyclesNeverPollASetTwiceAtOnceNorLoseWork) {
  Fixture f(3);
  Workers w(*f.alloc, 3);
  std::atomic<bool> feeding{true};
  std::thread feeder([&] {
    while (feeding.load()) {
      for (auto& s : f.sets) s.enq.fetch_add(1);
      std::this_thread::sleep_for(20us);
    }
  });
  for (int i = 0; i < 2000; ++i) {
    const uint16_t n = uint16_t(1 + i % 3);
    ASSERT_TRUE(f.alloc->set_active(n).is_ok());
    ASSERT_TRUE(wait_for([&] { return f.alloc->active() == n; })) << "cycle " << i;
    // Most cycles change the target again before the workers get there (that race is the
    // point); once in 30 cycles the test waits until all three are awake (n = 3) and then until
    // two have parked (n = 1), so parking itself is exercised however busy the machine is (a
    // loaded run once parked only 304 times in 2000 cycles).
    if (i % 30 == 29 || i % 30 == 0) {
      ASSERT_TRUE(wait_for([&] { return f.settled(n); })) << "cycle " << i;
    }
  }
  feeding.store(false);
  feeder.join();
  // Everything queued is served, whoever owns each set now.
  for (auto& s : f.sets) {
    ASSERT_TRUE(wait_for([&] { return s.deq.load() == s.enq.load(); }));
  }
  w.stop();
  for (auto& s : f.sets) EXPECT_EQ(s.overlaps.load(), 0u);
  uint64_t parks = 0;
  for (uint16_t i = 0; i < 3; ++i) parks += f.alloc->worker_info(i).parks;
  EXPECT_GE(parks, 130u);  // at least two parks in each of the 66 waited-for 3 -> 1 cycles
}

// Issue #11, 4: a hand-off whose kick was lost left the set unpolled until the new owner's
// 20 ms park timeout. Over a thousand park/wake cycles no set may wait half that from its
// hand-off to the new owner's first poll, save for time the new or old owner spent waiting for
// a CPU (schedstat's run delay: this VM has 2 vCPUs for 4 threads, and other tests run beside
// this one). The bound catches a lost kick (20 ms) but not the VM itself: its hypervisor stalls
// reach 3 ms unseen by schedstat (tools/loadgen engine_bench --hiccups), so a 1 ms bound failed
// about one run in ten under load. How many hand-offs took over 1 ms is printed.
TEST(CoreAlloc, NoSetGoesUnpolledUntilTheParkTimeoutAcrossHandOffs) {
  if (FM_TSAN || FM_ASAN) {
    // The sanitizers slow every access (TSan 5-15x, ASan ~2x) and their builds run on a machine
    // busy with the others, so a millisecond bound says nothing there (one ASan run saw 25 ms
    // unexplained under load); the normal build asserts it, and the sanitizer runs still check
    // the hand-offs of the other CoreAlloc tests.
    GTEST_SKIP() << "a timing bound; asserted on the normal build only";
  }
  Fixture f(3);
  for (auto& s : f.sets) s.track_gaps = true;
  Workers w(*f.alloc, 3);
  ASSERT_TRUE(wait_for([&] { return f.settled(3); }));
  // Each cycle waits until every set has been polled by the owner it was handed to: settled()
  // alone can return while a woken worker has not polled yet, and the next cycle may then hand
  // the set on again unmeasured (a loaded run counted 811 of its 1,334 hand-offs that way).
  const auto polled = [&] {
    for (auto& s : f.sets)
      if (s.handoff_pending()) return false;
    return true;
  };
  for (int i = 0; i < 1000; ++i) {
    const uint16_t n = uint16_t(1 + i % 3);
    ASSERT_TRUE(f.alloc->set_active(n).is_ok());
    ASSERT_TRUE(wait_for([&] { return f.settled(n) && polled(); })) << "cycle " << i;
  }
  // Both counts before stop() hands sets around again (nothing is being handed over now: every
  // hand-off's first poll has been seen, so the sets' counters are not being written).
  uint64_t made = 0, handoffs = 0;
  for (uint16_t i = 0; i < 3; ++i) made += f.alloc->worker_info(i).handoffs;
  for (auto& s : f.sets) handoffs += s.handoffs;
  w.stop();
  uint64_t over = 0, excused = 0, max_gap = 0, max_unexplained = 0;
  for (auto& s : f.sets) {
    over += s.gaps_over_1ms;
    excused += s.excused;
    max_gap = std::max(max_gap, s.max_gap_ns);
    max_unexplained = std::max(max_unexplained, s.max_unexplained_ns);
  }
  std::printf("hand-offs %lu; over 1 ms to the first poll %lu (%lu explained by run-queue "
              "delay); longest %.3f ms, longest unexplained %.3f ms\n",
              (unsigned long)handoffs, (unsigned long)over, (unsigned long)excused, max_gap / 1e6,
              max_unexplained / 1e6);
  // 3 -> 1 hands two sets over, 1 -> 2 and 2 -> 3 one each: 1,334 in the 1,000 cycles, every
  // one measured at its new owner's first poll.
  EXPECT_EQ(handoffs, made);
  EXPECT_GE(handoffs, 1334u);
  EXPECT_LE(max_unexplained, 10'000'000u) << "a set went unpolled for over 10 ms: a lost kick?";
}

TEST(CoreAlloc, AutomaticAddsOnQueueingDelayAndReleasesWhenIdle) {
  AllocOptions o;
  o.initial = 1;
  o.automatic = true;
  o.interval_us = 10;
  o.congestion_us = 10;
  o.congested_checks = 2;
  o.release_window_us = 2000;
  o.cooldown_us = 100;
  Fixture f(2, o);
  // Set 0 is not served (a stuck core): requests that waited at one check still wait at the next.
  f.sets[0].serve.store(false);
  Workers w(*f.alloc, 2);
  f.sets[0].enq.fetch_add(5);
  ASSERT_TRUE(wait_for([&] { return f.alloc->active() == 2; }));
  auto d = f.alloc->decisions(1);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].action, "add");
  EXPECT_EQ(d[0].worker, 1);
  EXPECT_GE(d[0].signal_us, 20.0);
  // Unstick; nothing arrives any more: the core goes back after a quiet window.
  f.sets[0].serve.store(true);
  ASSERT_TRUE(wait_for([&] { return f.alloc->active() == 1; }));
  d = f.alloc->decisions(1);
  EXPECT_EQ(d[0].action, "release");
  EXPECT_LT(d[0].utilisation, 0.5);
  w.stop();
}

TEST(CoreAlloc, AWorkerWaitingOnFetchesIsNotIdle) {
  AllocOptions o;
  o.automatic = true;
  o.release_window_us = 1000;
  o.cooldown_us = 0;
  Fixture f(2, o);
  f.sets[1].fetches.store(3);  // worker 1 has fetches in flight and nothing else to do
  Workers w(*f.alloc, 2);
  std::this_thread::sleep_for(30ms);  // 30 release windows
  EXPECT_EQ(f.alloc->active(), 2u);
  EXPECT_EQ(f.alloc->decision_count(), 0u);
  f.sets[1].fetches.store(0);  // completions arrived: now it is idle
  ASSERT_TRUE(wait_for([&] { return f.alloc->active() == 1; }));
  EXPECT_EQ(f.alloc->decisions(1)[0].action, "release");
  w.stop();
}

TEST(CoreAlloc, LimitsAreCheckedAndNamed) {
  AllocOptions o;
  o.max = 3;
  Fixture f(4, o);
  EXPECT_EQ(f.alloc->max(), 3u);
  EXPECT_EQ(f.alloc->active(), 3u);
  EXPECT_FALSE(f.alloc->set_active(0).is_ok());
  EXPECT_FALSE(f.alloc->set_active(4).is_ok());
  EXPECT_FALSE(f.alloc->set_max(5).is_ok());
  EXPECT_FALSE(f.alloc->set_min(0).is_ok());
  EXPECT_TRUE(f.alloc->set_min(2).is_ok());
  EXPECT_FALSE(f.alloc->set_active(1).is_ok());
  EXPECT_FALSE(f.alloc->set_max(1).is_ok());
  f.alloc->set_automatic(true);
  const Status s = f.alloc->set_active(2);
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("automatic"), std::string::npos);

  AllocOptions bad;
  bad.max = 9;
  std::vector<FakeSet> sets(2);
  std::vector<QueueSet*> ptrs{&sets[0], &sets[1]};
  auto r = CoreAllocator::create(bad, ptrs);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("alloc.max"), std::string::npos);
}

}  // namespace
}  // namespace fm
