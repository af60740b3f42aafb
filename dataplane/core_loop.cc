// The per-core polling loop, idle back-off, and launching loops on EAL lcores.
#include "dataplane/core_loop.h"

#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_pause.h>

#include <sys/prctl.h>

#include <csignal>
#include <ctime>

#include "dataplane/log.h"
#include "dataplane/tsc.h"

namespace fm {
namespace {
constexpr const char* kTag = "core";
std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true, std::memory_order_relaxed); }

int launch_trampoline(void* arg) {
  static_cast<CoreLoop*>(arg)->run();
  return 0;
}

void sleep_us(uint32_t us) {
  timespec ts{0, static_cast<long>(us) * 1000};
  nanosleep(&ts, nullptr);
}
}  // namespace

void request_stop() { g_stop.store(true, std::memory_order_relaxed); }
bool stop_requested() { return g_stop.load(std::memory_order_relaxed); }

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

void CoreLoop::run() {
  // Idle sleeps must be short: the default 50 us timer slack would stretch each one.
  if (idle_.backoff) prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  const uint64_t spin_cycles = us_to_cycles(idle_.spin_us);
  const uint64_t start = rdtsc();
  uint64_t last_work = start;
  uint64_t loops = 0, busy = 0, work_total = 0, sleeps = 0, busy_cycles = 0;
  // Publish counters every few thousand loops: the atomics are read by other cores.
  constexpr uint64_t kPublishEvery = 1024;
  while (!stop_requested()) {
    const uint64_t t0 = rdtsc();
    uint32_t work = 0;
    for (const Poller& p : pollers_) work += p.fn(p.arg);
    ++loops;
    if (work != 0) {
      ++busy;
      work_total += work;
      const uint64_t t1 = rdtsc();
      busy_cycles += t1 - t0;
      last_work = t1;
    } else if (idle_.backoff && t0 - last_work > spin_cycles) {
      ++sleeps;
      sleep_us(idle_.sleep_us);
    } else {
      rte_pause();
    }
    if (loops % kPublishEvery == 0) {
      stats_.loops.set(loops);
      stats_.busy_loops.set(busy);
      stats_.work.set(work_total);
      stats_.sleeps.set(sleeps);
      stats_.busy_cycles.set(busy_cycles);
      stats_.cycles.set(rdtsc() - start);
    }
  }
  stats_.loops.set(loops);
  stats_.busy_loops.set(busy);
  stats_.work.set(work_total);
  stats_.sleeps.set(sleeps);
  stats_.busy_cycles.set(busy_cycles);
  stats_.cycles.set(rdtsc() - start);
}

Status run_cores(std::span<CoreLoop* const> cores) {
  if (cores.empty()) return error(Errc::kInvalidArgument, "no dataplane cores to run");
  const uint32_t main_lcore = rte_get_main_lcore();
  if (cores[0]->lcore() != main_lcore) {
    return error(Errc::kInternal, "core 0 must run on the main lcore " + std::to_string(main_lcore));
  }
  for (size_t i = 1; i < cores.size(); ++i) {
    int rc = rte_eal_remote_launch(launch_trampoline, cores[i], cores[i]->lcore());
    if (rc != 0) {
      request_stop();
      rte_eal_mp_wait_lcore();
      return error(Errc::kInternal, "cannot launch core " + std::to_string(i) + " on lcore " +
                                        std::to_string(cores[i]->lcore()));
    }
  }
  FM_LOG_INFO(kTag, "{} dataplane core(s) running", cores.size());
  cores[0]->run();
  rte_eal_mp_wait_lcore();
  return Status::ok();
}

}  // namespace fm
