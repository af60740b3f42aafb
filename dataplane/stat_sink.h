// Where a view of statistics writes: memcached's STAT lines, dpctl's JSON, the exit summary.
#pragma once

#include <cstdint>
#include <string_view>

namespace fm {

/// One named value at a time, in the order the source lists them. Implementations decide the
/// format; a sink never fails loudly (a bounded one stops writing and says so itself).
class StatSink {
 public:
  virtual ~StatSink() = default;
  virtual void stat(std::string_view name, uint64_t value) = 0;
  virtual void stat(std::string_view name, std::string_view value) = 0;
  virtual void stat_signed(std::string_view name, int64_t value) = 0;
};

}  // namespace fm
