// The loadgen's exit status: each outcome gets its own code, and the precedence when several apply.
#include "tools/loadgen/exit_code.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tools/loadgen/options.h"

namespace fm::loadgen {
namespace {

/// A valid point of `n` requests, every one answered right.
PointReport clean_point(uint64_t n = 10000) {
  PointReport r;
  r.offered_rps = 100000;
  r.all.requests = n;
  r.all.replies = n;
  r.adherence_pct = 100;
  return r;
}

PointReport invalid_point() {
  PointReport r = clean_point();
  r.valid = false;
  r.adherence_pct = 97.5;
  r.invalid_reason = "generator fell behind: 97.50% of requests sent on schedule < 99%";
  return r;
}

ExitCode code_of(const std::vector<PointReport>& points, const ExitRules& rules = {},
                 uint64_t preload_failed = 0) {
  RunTally t;
  t.preload_failed = preload_failed;
  for (const PointReport& p : points) tally_point(t, p, rules);
  return exit_code(t);
}

TEST(ExitCode, CleanRunIsZero) {
  EXPECT_EQ(code_of({clean_point(), clean_point()}), ExitCode::kOk);
}

TEST(ExitCode, NothingMeasuredIsASetupError) {
  EXPECT_EQ(code_of({}), ExitCode::kSetup);
  EXPECT_EQ(int(ExitCode::kSetup), 1);
}

TEST(ExitCode, InvalidMeasurementAloneIsFour) {
  EXPECT_EQ(code_of({clean_point(), invalid_point()}), ExitCode::kInvalid);
  EXPECT_EQ(int(ExitCode::kInvalid), 4);
}

TEST(ExitCode, WrongValuesMalformedRepliesAndMissingKeysAreTwo) {
  PointReport wrong = clean_point();
  wrong.all.wrong = 1;
  EXPECT_EQ(code_of({wrong}), ExitCode::kWrongAnswers);
  PointReport malformed = clean_point();
  malformed.all.malformed = 1;
  EXPECT_EQ(code_of({malformed}), ExitCode::kWrongAnswers);
  PointReport miss = clean_point();
  miss.all.misses = 1;
  EXPECT_EQ(code_of({miss}), ExitCode::kWrongAnswers);
  EXPECT_EQ(int(ExitCode::kWrongAnswers), 2);
}

TEST(ExitCode, MissesWithoutPreloadOrVerificationAreAnswers) {
  PointReport miss = clean_point();
  miss.all.misses = miss.all.replies;  // e.g. the reflector: END for every GET
  ExitRules rules;
  rules.misses_are_missing = false;
  EXPECT_EQ(code_of({miss}, rules), ExitCode::kOk);
}

TEST(ExitCode, TimeoutsAndErrorRepliesCountAboveTheThresholdOnly) {
  PointReport p = clean_point(10000);
  p.all.timeouts = 60;
  p.all.server_errors = 40;  // 1.0% in all: at the default threshold, not above it
  EXPECT_EQ(code_of({p}), ExitCode::kOk);
  p.all.server_errors = 41;
  EXPECT_EQ(code_of({p}), ExitCode::kErrors);
  EXPECT_EQ(int(ExitCode::kErrors), 3);

  ExitRules strict;
  strict.max_error_pct = 0;
  PointReport one = clean_point();
  one.all.timeouts = 1;
  EXPECT_EQ(code_of({one}, strict), ExitCode::kErrors);
  EXPECT_EQ(code_of({clean_point()}, strict), ExitCode::kOk);
}

TEST(ExitCode, TheThresholdIsPerPointNotDilutedByTheSweep) {
  PointReport low = clean_point(1000000);
  PointReport saturated = clean_point(10000);
  saturated.all.timeouts = 500;  // 5% of this point, 0.05% of the run
  EXPECT_EQ(code_of({low, saturated}), ExitCode::kErrors);
}

TEST(ExitCode, PreloadFailuresAreThree) {
  EXPECT_EQ(code_of({clean_point()}, {}, 3), ExitCode::kErrors);
}

TEST(ExitCode, PrecedenceIsWrongThenErrorsThenInvalid) {
  PointReport everything = invalid_point();
  everything.all.timeouts = 5000;
  everything.all.wrong = 1;
  EXPECT_EQ(code_of({everything}), ExitCode::kWrongAnswers);
  everything.all.wrong = 0;
  EXPECT_EQ(code_of({everything}), ExitCode::kErrors);
  everything.all.timeouts = 0;
  EXPECT_EQ(code_of({everything}), ExitCode::kInvalid);
  // Wrong answers outrank a run that measured nothing else valid, too.
  PointReport wrong_invalid = invalid_point();
  wrong_invalid.all.misses = 2;
  EXPECT_EQ(code_of({wrong_invalid}), ExitCode::kWrongAnswers);
}

TEST(ExitCode, ErrorShareOfAPointWithoutRequestsIsZero) {
  PointReport empty;
  empty.valid = false;
  EXPECT_EQ(error_pct(empty), 0.0);
  EXPECT_EQ(code_of({empty}), ExitCode::kInvalid);
}

TEST(ExitCode, TheReasonNamesTheCauseAndTheCounts) {
  ExitRules rules;
  RunTally t;
  tally_point(t, clean_point(), rules);
  EXPECT_EQ(exit_reason(t, rules), "");
  tally_point(t, invalid_point(), rules);
  EXPECT_NE(exit_reason(t, rules).find("exit 4: 1 of 2 points INVALID"), std::string::npos)
      << exit_reason(t, rules);
  PointReport lossy = clean_point(1000);
  lossy.all.timeouts = 20;
  tally_point(t, lossy, rules);
  t.preload_failed = 7;
  const std::string three = exit_reason(t, rules);
  EXPECT_NE(three.find("exit 3: 1 of 3 points"), std::string::npos) << three;
  EXPECT_NE(three.find("20 timeouts"), std::string::npos) << three;
  EXPECT_NE(three.find("could not store 7 keys"), std::string::npos) << three;
  PointReport wrong = clean_point();
  wrong.all.wrong = 3;
  tally_point(t, wrong, rules);
  EXPECT_NE(exit_reason(t, rules).find("exit 2: wrong or missing answers: 3 wrong values"),
            std::string::npos)
      << exit_reason(t, rules);
}

TEST(ExitCode, HelpListsEveryStatusAndTheFlag) {
  auto o = parse_args({"loadgen", "--help"});
  ASSERT_FALSE(o.is_ok());
  const std::string& help = o.status().message();
  EXPECT_NE(help.find("--max-error-pct"), std::string::npos);
  EXPECT_NE(help.find("Exit status"), std::string::npos) << help;
  for (const char* line : {"  0  ", "  1  ", "  2  ", "  3  ", "  4  "})
    EXPECT_NE(help.find(line), std::string::npos) << line;
  EXPECT_NE(help_text().find("Exit status"), std::string::npos);
}

TEST(ExitCode, MaxErrorPctIsAFlagWithBounds) {
  auto o = parse_args({"loadgen", "--max-error-pct", "0"});
  ASSERT_TRUE(o.is_ok()) << o.status().message();
  EXPECT_EQ(o.value().max_error_pct, 0.0);
  EXPECT_EQ(Options().max_error_pct, 1.0);
  auto bad = parse_args({"loadgen", "--max-error-pct", "101"});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("--max-error-pct"), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace fm::loadgen
