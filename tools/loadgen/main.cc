// loadgen: an open-loop memcached-UDP load generator over DPDK (memif client by default) or
// kernel sockets. Parses flags, sets up a backend, preloads, sweeps rate points, reports.
#include <cmath>
#include <cstdio>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/core_loop.h"
#include "dataplane/log.h"
#include "tools/loadgen/backend.h"
#include "tools/loadgen/exit_code.h"
#include "tools/loadgen/options.h"
#include "tools/loadgen/progress.h"
#include "tools/loadgen/report.h"
#include "tools/loadgen/tsc_clock.h"
#include "tools/loadgen/tuning.h"

namespace fm::loadgen {
namespace {
constexpr const char* kTag = "loadgen";

int run(Options& o) {
  auto keys = KeyDist::parse(o.key_dist, o.keys, "--key-dist");
  auto values = ValueSizes::parse(o.value_size, "--value-size");
  if (!keys || !values) {  // validate() parsed them already; this cannot fail
    FM_LOG_ERROR(kTag, "{}", (!keys ? keys.status() : values.status()).message());
    return int(ExitCode::kSetup);
  }
  const uint32_t ncores = uint32_t(o.lcores.size());
  const uint32_t flows =
      o.flows ? o.flows : auto_flows(max_rate(o) / o.queue_count, o.timeout_ms * 1e-3);

  install_stop_signals();
  auto backend = o.backend_kind == BackendKind::kDpdk
                     ? make_dpdk_backend(o, flows, &values.value())
                     : make_socket_backend(o, flows, &values.value());
  if (!backend) {
    std::fprintf(stderr, "loadgen: %s\n", backend.status().message().c_str());
    return int(ExitCode::kSetup);
  }
  Backend& b = **backend;
  auto reporter = Reporter::open(o, flows);
  if (!reporter) {
    std::fprintf(stderr, "loadgen: %s\n", reporter.status().message().c_str());
    return int(ExitCode::kSetup);
  }
  Reporter& rep = **reporter;

  ExitRules exit_rules;
  exit_rules.max_error_pct = o.max_error_pct;
  exit_rules.misses_are_missing = o.preload && o.verify;
  RunTally tally;
  if (o.preload) {
    const uint64_t t0 = rdtsc_now();
    const PreloadResult pr = b.preload(o.keys, o.preload_window, kPreloadRetries);
    const double secs = double(rdtsc_now() - t0) / b.hz();
    if (!o.quiet) {
      std::printf("preload: %lu keys (values %s B) in %.2f s, %lu not stored\n",
                  (unsigned long)o.keys, values->describe().c_str(), secs,
                  (unsigned long)pr.failed);
    }
    if (pr.failed) {
      std::fprintf(stderr,
                   "loadgen: warning: %lu of %lu keys could not be stored; their GETs "
                   "will count as misses\n",
                   (unsigned long)pr.failed, (unsigned long)o.keys);
      // Their misses are expected now; the failed SETs themselves make the status 3.
      tally.preload_failed = pr.failed;
      exit_rules.misses_are_missing = false;
    }
    if (stop_requested()) return int(ExitCode::kSetup);
  }

  WorkloadSpec workload{&keys.value(), o.get_ratio, o.arrival_kind};
  if (o.multiget_ratio > 0) {
    workload.multiget_keys = o.multiget_keys;
    workload.multiget_ratio = o.multiget_ratio;
  }
  std::string steps_text;
  for (const RateStep& s : o.steps)
    steps_text +=
        fmt::format("{}{:g}/s for {:g} s", steps_text.empty() ? "" : ", ", s.rate, s.seconds);
  rep.begin(fmt::format(
      "loadgen: {}; {} core(s) on CPU {}; {} flow(s)/queue; keys {} {}; values {} B; GET {:.0f}%"
      "{}; {} arrivals; warm-up {:g} s; {}; timeout {:g} ms; late > {:g} us{}",
      b.describe(), ncores, fmt::format("{}", o.lcores[0]) + (ncores > 1 ? "+" : ""), flows, o.keys,
      keys->describe(), values->describe(), o.get_ratio * 100,
      o.multiget_ratio > 0 ? fmt::format(" of the rest, {:g}% multi-key GETs of {} keys",
                                         o.multiget_ratio * 100, o.multiget_keys)
                           : std::string(),
      o.arrival, o.warmup_s,
      !o.steps.empty() ? fmt::format("rate steps {}", steps_text)
      : o.requests     ? fmt::format("{} requests per point", o.requests)
                       : fmt::format("{:g} s per point", o.duration_s),
      o.timeout_ms, o.late_us,
      o.timeline.empty() ? std::string() : fmt::format("; timeline every {:g} ms", o.timeline_ms)));

  ValidityRules rules;
  rules.min_adherence_pct = o.min_adherence;
  std::vector<ProgressSlot> slots(b.engines());
  ProgressPrinter progress(o.progress_s, o.lcores);
  for (uint32_t i = 0; i < o.rates.size() && !stop_requested(); ++i) {
    PointSpec p;
    p.index = i;
    p.rate = o.rates[i];
    p.workload = &workload;
    p.warmup_s = o.warmup_s;
    p.duration_s = o.duration_s;
    p.requests = o.requests;
    p.seed = o.seed;
    p.steps = o.steps;
    if (!o.timeline.empty()) p.timeline_s = o.timeline_ms * 1e-3;
    const double expected_s =
        o.warmup_s + (o.requests ? double(o.requests) / p.rate : o.duration_s);
    PointReport r;
    for (uint32_t attempt = 1;; ++attempt) {
      for (auto& s : slots) {
        s.sent.set(0);
        s.replies.set(0);
        s.timeouts.set(0);
        s.late.set(0);
      }
      {
        // Both backends' clocks are the TSC: a reading against the wall clock just before the
        // point dates its timeline rows (within the clock rate's error over one point).
        timespec ts{};
        ::clock_gettime(CLOCK_REALTIME, &ts);
        rep.set_wall_clock(rdtsc_now(), double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9, b.hz());
      }
      progress.start(p.rate, expected_s, slots, i, uint32_t(o.rates.size()));
      std::vector<CoreResult> per_core = b.run_point(p, slots);
      progress.stop();
      CoreResult merged;
      for (const CoreResult& c : per_core) merged.merge(c);
      r = make_report(p.rate, merged, b.hz(), rules);
      r.attempts = attempt;
      if (r.valid || attempt > o.retries || stop_requested()) break;
      std::fprintf(stderr, "loadgen: rate point %.0f req/s INVALID (%s); retrying (%u of %u)\n",
                   p.rate, r.invalid_reason.c_str(), attempt, o.retries);
      std::this_thread::sleep_for(std::chrono::duration<double>(std::max(o.pause_s, 0.2)));
    }
    rep.point(r);
    tally_point(tally, r, exit_rules);
    if (o.stop_p99_us > 0 && r.all.latency.p99 > o.stop_p99_us) {
      if (!o.quiet && i + 1 < o.rates.size()) {
        std::printf("sweep ends: p99 %s us exceeds --stop-p99-us %g\n",
                    fmt_us(r.all.latency.p99).c_str(), o.stop_p99_us);
      }
      break;
    }
    if (o.pause_s > 0 && i + 1 < o.rates.size()) {
      std::this_thread::sleep_for(std::chrono::duration<double>(o.pause_s));
    }
  }
  rep.finish();
  const ExitCode code = exit_code(tally);
  if (code != ExitCode::kOk)
    std::fprintf(stderr, "loadgen: %s\n", exit_reason(tally, exit_rules).c_str());
  return int(code);
}

}  // namespace
}  // namespace fm::loadgen

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  auto parsed = fm::loadgen::parse_args(args);
  if (!parsed) {
    if (parsed.status().code() == fm::Errc::kNotFound) {  // --help
      std::printf("%s", parsed.status().message().c_str());
      return 0;
    }
    std::fprintf(stderr, "loadgen: %s\nRun with --help for every flag.\n",
                 parsed.status().message().c_str());
    return int(fm::loadgen::ExitCode::kSetup);
  }
  fm::loadgen::Options o = std::move(parsed.value());
  if (auto st = fm::loadgen::validate(o); !st) {
    std::fprintf(stderr, "loadgen: %s\n", st.message().c_str());
    return int(fm::loadgen::ExitCode::kSetup);
  }
  if (o.quiet) fm::set_log_level(fm::LogLevel::kWarn);
  return fm::loadgen::run(o);
}
