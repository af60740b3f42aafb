// Output of rate points: the human table on stdout, CSV rows and JSON lines with the config.
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/result.h"
#include "tools/loadgen/options.h"
#include "tools/loadgen/results.h"

namespace fm::loadgen {

/// One output field: a name and a value that is text, a number (+inf allowed) or a flag.
struct Field {
  enum class Kind : uint8_t { kText, kNumber, kInteger, kBool };
  std::string name;
  Kind kind = Kind::kText;
  std::string text;
  double number = 0;
  uint64_t integer = 0;
  bool flag = false;
};

/// The run's configuration as fields (label, backend, cores, workload, timing...), computed
/// once and repeated in every CSV row and JSON line so each row stands alone.
std::vector<Field> config_fields(const Options& o, uint32_t flows, const std::string& timestamp);

/// Configuration fields added after the first release of the CSV format (multi-key GETs,
/// --queues, --rate-steps): they follow the point fields so older columns keep their places.
std::vector<Field> config_fields_tail(const Options& o);

/// Every measured field of a point, in CSV column order. Columns added later (mget_*) come
/// last, so older columns keep their places.
std::vector<Field> point_fields(const PointReport& r);

/// The rate --rate-steps asks for at `t_s` seconds into the measured window (the last step's
/// after the end); 0 without steps.
double step_rate_at(const std::vector<RateStep>& steps, double t_s);

/// One --timeline row: the interval, then `target_rps` (the rate asked for at its start),
/// the point's index in the sweep, the run's label and `unix_s`, the wall-clock time of the
/// interval's start (to line up with other tools' logs; 0 when unknown).
std::vector<Field> timeline_fields(const TimelineRow& row, double target_rps, uint32_t point,
                                   const std::string& label, double unix_s);

/// The CSV header line and a row (RFC 4180 quoting; +inf written as "inf").
std::string csv_header(const std::vector<Field>& fields);
std::string csv_row(const std::vector<Field>& fields);
/// One JSON object (+inf written as null) without a trailing newline.
std::string json_object(const std::vector<Field>& fields);

/// Writes points as they complete: table rows on stdout, CSV and JSON lines to their files
/// (flushed after every point so an interrupted sweep keeps what it measured).
class Reporter {
 public:
  /// Opens the --csv, --json and --timeline files. The error names the flag and the path.
  static Result<std::unique_ptr<Reporter>> open(const Options& o, uint32_t flows);
  ~Reporter();

  /// Prints the configuration line and the table header (unless --quiet).
  void begin(const std::string& setup_line);
  /// The load cores' clock (`hz` ticks per second) read `tick` at wall-clock `unix_s`: lets
  /// timeline rows say when they were, in wall-clock time.
  void set_wall_clock(uint64_t tick, double unix_s, double hz) {
    wall_tick_ = tick;
    wall_unix_s_ = unix_s;
    wall_hz_ = hz;
  }
  /// Reports one point everywhere; an INVALID point also gets a banner on stderr.
  void point(const PointReport& r);
  /// Closing line: how many points were valid. Returns the number of invalid points.
  uint64_t finish();

 private:
  Reporter() = default;
  const Options* o_ = nullptr;
  std::vector<Field> config_;
  std::vector<Field> config_tail_;
  FILE* csv_ = nullptr;
  FILE* json_ = nullptr;
  FILE* timeline_ = nullptr;
  bool csv_header_done_ = false;
  bool timeline_header_done_ = false;
  uint64_t wall_tick_ = 0;
  double wall_unix_s_ = 0, wall_hz_ = 0;
  uint64_t points_ = 0, invalid_ = 0;
};

/// Formats microseconds for the table: "12.3", "1234", "inf".
std::string fmt_us(double us);

}  // namespace fm::loadgen
