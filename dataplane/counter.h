// Single-writer statistics counters: plain adds for the owner, tear-free reads for others.
#pragma once

#include <atomic>
#include <cstdint>

namespace fm {

/// A counter written by one core and read by any. Owner-core only for add(); read() anywhere.
/// Compiles to a plain load+add+store (no lock prefix), unlike fetch_add.
class Counter {
 public:
  void add(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void set(uint64_t n) { v_.store(n, std::memory_order_relaxed); }
  uint64_t read() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

}  // namespace fm
