// The progress line printer.
#include "tools/loadgen/progress.h"

#include <fmt/core.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace fm::loadgen {

ProgressPrinter::ProgressPrinter(double period_s, std::span<const uint32_t> load_cpus)
    : period_s_(period_s), load_cpus_(load_cpus.begin(), load_cpus.end()), tty_(::isatty(2) != 0) {}

void ProgressPrinter::start(double rate, double total_s, std::span<const ProgressSlot> slots,
                            uint32_t index, uint32_t points) {
  stop();
  if (period_s_ <= 0) return;
  rate_ = rate;
  total_s_ = total_s;
  slots_ = slots;
  index_ = index;
  points_ = points;
  running_.store(true);
  thread_ = std::thread([this] { loop(); });
}

void ProgressPrinter::stop() {
  if (!thread_.joinable()) return;
  running_.store(false);
  thread_.join();
  if (tty_) std::fprintf(stderr, "\r\033[K");
}

void ProgressPrinter::loop() {
  // Keep off the load cores when another CPU exists: a print must not preempt a sender.
  cpu_set_t set;
  CPU_ZERO(&set);
  const long ncpu = ::sysconf(_SC_NPROCESSORS_ONLN);
  int free_cpus = 0;
  for (long c = 0; c < ncpu && c < CPU_SETSIZE; ++c) {
    bool load = false;
    for (uint32_t l : load_cpus_) load = load || l == uint32_t(c);
    if (!load) {
      CPU_SET(int(c), &set);
      ++free_cpus;
    }
  }
  if (free_cpus) pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  const auto t0 = std::chrono::steady_clock::now();
  auto next = t0 + std::chrono::duration<double>(period_s_);
  while (running_.load()) {
    if (std::chrono::steady_clock::now() < next) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    next += std::chrono::duration<double>(period_s_);
    uint64_t sent = 0, replies = 0, timeouts = 0, late = 0;
    for (const ProgressSlot& s : slots_) {
      sent += s.sent.read();
      replies += s.replies.read();
      timeouts += s.timeouts.read();
      late += s.late.read();
    }
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::string line = fmt::format(
        "[{}/{}] rate {:.0f}/s  {:.1f}/{:.1f} s  sent {}  replies {}  timeouts {}  late {}",
        index_ + 1, points_, rate_, el, total_s_, sent, replies, timeouts, late);
    if (tty_)
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
    else
      std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  }
}

}  // namespace fm::loadgen
