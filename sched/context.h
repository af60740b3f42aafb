// A user-level execution context on a caller-provided stack: the only file that sees
// Boost.Context (folly's BoostContextCompatibility.h does the same).
#pragma once

#include <cstddef>
#include <memory>

namespace fm::sched {

/// One resumable context. The scheduler side calls start() then resume(); the code running
/// inside calls yield(). Not thread-safe, but may be resumed by a different thread each time
/// (work stealing): it never touches thread-local state itself.
class Context {
 public:
  using Entry = void (*)(void* arg);

  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  /// Prepares a fresh context that will run entry(arg) on [stack, stack + size) at the next
  /// resume(). The previous run must have finished. No allocation: the stack is the caller's.
  void start(void* stack, size_t size, Entry entry, void* arg);

  /// Switches into the context; returns when it yields or finishes. Scheduler side only.
  void resume();

  /// Switches back to whoever called resume(). Inside the context only.
  void yield();

  /// True once entry() returned (and after construction).
  bool finished() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fm::sched
