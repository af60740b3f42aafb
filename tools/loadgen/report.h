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

/// Every measured field of a point, in CSV column order.
std::vector<Field> point_fields(const PointReport& r);

/// The CSV header line and a row (RFC 4180 quoting; +inf written as "inf").
std::string csv_header(const std::vector<Field>& fields);
std::string csv_row(const std::vector<Field>& fields);
/// One JSON object (+inf written as null) without a trailing newline.
std::string json_object(const std::vector<Field>& fields);

/// Writes points as they complete: table rows on stdout, CSV and JSON lines to their files
/// (flushed after every point so an interrupted sweep keeps what it measured).
class Reporter {
 public:
  /// Opens the --csv and --json files. The error names the flag and the path.
  static Result<std::unique_ptr<Reporter>> open(const Options& o, uint32_t flows);
  ~Reporter();

  /// Prints the configuration line and the table header (unless --quiet).
  void begin(const std::string& setup_line);
  /// Reports one point everywhere; an INVALID point also gets a banner on stderr.
  void point(const PointReport& r);
  /// Closing line: how many points were valid. Returns the number of invalid points.
  uint64_t finish();

 private:
  Reporter() = default;
  const Options* o_ = nullptr;
  std::vector<Field> config_;
  FILE* csv_ = nullptr;
  FILE* json_ = nullptr;
  bool csv_header_done_ = false;
  uint64_t points_ = 0, invalid_ = 0;
};

/// Formats microseconds for the table: "12.3", "1234", "inf".
std::string fmt_us(double us);

}  // namespace fm::loadgen
