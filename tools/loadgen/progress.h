// The progress line: a thread that sums the cores' live counters and prints them on stderr.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <thread>
#include <vector>

#include "tools/loadgen/results.h"

namespace fm::loadgen {

/// Prints "rate 200000/s  1.0/3.5 s  sent ...  replies ...  timeouts ...  late ..." every
/// `period_s` while a point runs: one line rewritten in place on a terminal, one line per
/// period otherwise. Runs off the load cores (it pins itself to the other CPUs when there are
/// any) so printing never delays a scheduled send. Control path only.
class ProgressPrinter {
 public:
  ProgressPrinter(double period_s, std::span<const uint32_t> load_cpus);
  ~ProgressPrinter() { stop(); }

  /// Starts printing for a point of `rate` req/s lasting about `total_s`.
  void start(double rate, double total_s, std::span<const ProgressSlot> slots, uint32_t index,
             uint32_t points);
  /// Stops and clears the line.
  void stop();

 private:
  void loop();

  double period_s_;
  std::vector<uint32_t> load_cpus_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::span<const ProgressSlot> slots_;
  double rate_ = 0, total_s_ = 0;
  uint32_t index_ = 0, points_ = 0;
  bool tty_ = false;
};

}  // namespace fm::loadgen
