// Deciding the loadgen's exit status from what the run reported.
#include "tools/loadgen/exit_code.h"

#include <fmt/core.h>

#include <algorithm>

namespace fm::loadgen {

double error_pct(const PointReport& r) {
  const uint64_t n = r.all.requests;
  if (n == 0) return 0.0;
  return 100.0 * double(r.all.timeouts + r.all.server_errors) / double(n);
}

void tally_point(RunTally& t, const PointReport& r, const ExitRules& rules) {
  ++t.points;
  if (!r.valid) ++t.invalid_points;
  const double pct = error_pct(r);
  t.worst_error_pct = std::max(t.worst_error_pct, pct);
  // Strictly above: a threshold of 0 fails any error, and a point exactly at it passes.
  if (pct > rules.max_error_pct) ++t.error_points;
  t.wrong += r.all.wrong;
  t.malformed += r.all.malformed;
  t.misses += r.all.misses;
  if (rules.misses_are_missing) t.missing += r.all.misses;
  t.timeouts += r.all.timeouts;
  t.server_errors += r.all.server_errors;
}

ExitCode exit_code(const RunTally& t) {
  if (t.wrong || t.malformed || t.missing) return ExitCode::kWrongAnswers;
  if (t.error_points || t.preload_failed) return ExitCode::kErrors;
  if (t.points == 0) return ExitCode::kSetup;  // stopped before measuring anything
  if (t.invalid_points) return ExitCode::kInvalid;
  return ExitCode::kOk;
}

std::string exit_reason(const RunTally& t, const ExitRules& rules) {
  const ExitCode c = exit_code(t);
  switch (c) {
    case ExitCode::kOk:
      return {};
    case ExitCode::kSetup:
      return "exit 1: stopped before any rate point was measured";
    case ExitCode::kWrongAnswers:
      return fmt::format(
          "exit 2: wrong or missing answers: {} wrong values, {} unparseable replies, {} misses "
          "of keys the preload stored",
          t.wrong, t.malformed, t.missing);
    case ExitCode::kErrors: {
      std::string s = "exit 3: ";
      if (t.error_points) {
        s += fmt::format(
            "{} of {} points had more than {:g}% of requests time out or answered with an error "
            "(worst {:.3g}%: {} timeouts, {} error replies in all)",
            t.error_points, t.points, rules.max_error_pct, t.worst_error_pct, t.timeouts,
            t.server_errors);
      }
      if (t.preload_failed) {
        s += fmt::format("{}the preload could not store {} keys", t.error_points ? "; " : "",
                         t.preload_failed);
      }
      return s;
    }
    case ExitCode::kInvalid:
      return fmt::format(
          "exit 4: {} of {} points INVALID (the measurement, not the server; every answer was "
          "right)",
          t.invalid_points, t.points);
  }
  return {};
}

std::string exit_code_help() {
  return "Exit status (when several apply, the first in this order wins: 2, 3, 4):\n"
         "  0  every point valid, every answer right, errors within --max-error-pct\n"
         "  1  bad flags or config, no server, an output file not writable, or stopped before\n"
         "     any point was measured\n"
         "  2  wrong or missing answers: a GET value that is not the key's, a reply that cannot\n"
         "     be parsed, or (with preload and verification on) a stored key answered as a miss\n"
         "  3  timeouts or error replies (SERVER_ERROR, ERROR, CLIENT_ERROR, NOT_STORED) above\n"
         "     --max-error-pct of some point's requests, or keys the preload could not store\n"
         "  4  only an invalid measurement: some point INVALID (the generator fell behind its\n"
         "     schedule, request ids reused, or interrupted); every answer was right\n";
}

}  // namespace fm::loadgen
