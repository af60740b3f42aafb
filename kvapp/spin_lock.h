// A test-and-test-and-set spinlock for short critical sections shared by dataplane cores.
#pragma once

#include <atomic>
#include <thread>

namespace fm::kv {

/// A spinlock for critical sections of a few hundred nanoseconds (hash stripes, slab classes).
/// Thread-safe; never allocates. Spins with a pause hint and yields the thread after a while, so
/// oversubscribed test machines do not livelock; pinned dataplane cores never reach the yield
/// in practice.
class SpinLock {
 public:
  void lock() {
    for (;;) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      int spins = 0;
      while (locked_.load(std::memory_order_relaxed)) {
        cpu_relax();
        if (++spins == kSpinsBeforeYield) {
          std::this_thread::yield();
          spins = 0;
        }
      }
    }
  }

  /// Takes the lock if it is free; never waits. Also fails on a lock this thread already holds.
  bool try_lock() {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }

  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  static constexpr int kSpinsBeforeYield = 256;
  static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  std::atomic<bool> locked_{false};
};

}  // namespace fm::kv
