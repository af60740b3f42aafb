// The loadgen's exit status: what a finished run means to the script that started it.
#pragma once

#include <cstdint>
#include <string>

#include "tools/loadgen/results.h"

namespace fm::loadgen {

/// Exit statuses, most serious first where several apply (2 > 3 > 4 > 0; 1 ends the run early).
/// A script can rely on: 0 and 4 mean every answer was right and complete; 4 only says that
/// some point's numbers describe the loadgen (it fell behind), not the server.
enum class ExitCode : int {
  kOk = 0,            // every point valid, every answer right, errors within --max-error-pct
  kSetup = 1,         // bad flags or config, no server, an output file not writable, or
                      // stopped (SIGINT/SIGTERM) before any point was measured
  kWrongAnswers = 2,  // a GET's value was not the key's, a reply could not be parsed, or
                      // (with preload and --verify) a key that was stored answered as a miss
  kErrors = 3,        // some point's timeouts + error replies exceeded --max-error-pct of its
                      // requests, or the preload could not store every key
  kInvalid = 4,       // only that: some point INVALID (generator behind, ids reused, SIGINT)
};

/// What turns counts into a status.
struct ExitRules {
  // Misses are missing answers (status 2): every key was stored by the preload and GET
  // values are verified. Without preload (or with --no-verify, e.g. for a cache that may
  // evict) a miss is an answer like any other.
  bool misses_are_missing = true;
  // A point whose timeouts + error replies are more than this percent of its measured
  // requests makes the run's status 3 (0: any).
  double max_error_pct = 1.0;
};

/// The run so far, point by point.
struct RunTally {
  uint64_t points = 0;          // rate points reported
  uint64_t invalid_points = 0;  // of them INVALID
  uint64_t error_points = 0;    // of them over max_error_pct
  uint64_t wrong = 0;           // wrong values, all points
  uint64_t malformed = 0;       // unparseable replies, all points
  uint64_t missing = 0;         // misses counted as missing answers (see ExitRules)
  uint64_t misses = 0;          // every miss, missing or not
  uint64_t timeouts = 0;        // drops, all points
  uint64_t server_errors = 0;   // error replies, all points
  uint64_t preload_failed = 0;  // keys the preload could not store
  double worst_error_pct = 0;   // the highest (timeouts + errors) / requests of any point
};

/// Percent of a point's measured requests that timed out or got an error reply.
double error_pct(const PointReport& r);

/// Adds one reported point to `t`. Pure.
void tally_point(RunTally& t, const PointReport& r, const ExitRules& rules);

/// The exit status of a run with tally `t`; precedence 2 > 3 > 4 > 0, and 1 when no point was
/// measured. Pure.
ExitCode exit_code(const RunTally& t);

/// One line for stderr that says why the status is what it is (empty for kOk).
std::string exit_reason(const RunTally& t, const ExitRules& rules);

/// The exit statuses and their precedence, for --help.
std::string exit_code_help();

}  // namespace fm::loadgen
