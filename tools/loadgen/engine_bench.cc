// engine_bench: the loadgen's own cost per request with no network at all. One core runs the
// real Engine and Schedule against an in-process transport that answers every request at once
// (the reply is built when the request is committed and delivered at the next poll), on the
// real TSC clock. The highest rate it sustains with >= 99% schedule adherence is what one
// loadgen core could do if the NIC/memif cost nothing: an upper bound for any backend.
#include <sched.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "tools/loadgen/engine.h"
#include "tools/loadgen/results.h"
#include "tools/loadgen/tsc_clock.h"

namespace fm::loadgen {
namespace {

/// Answers each request instantly: GET -> END, SET -> STORED, like tools/loadgen/reflector.
class InstantTransport {
 public:
  uint64_t now() const { return rdtsc_now(); }
  std::span<uint8_t> tx_begin(uint32_t) { return {buf_, sizeof buf_}; }
  void tx_commit(uint32_t flow, size_t len) {
    if (n_ == kMax) return;  // a full reply queue: dropped, as on a full ring
    Pending& p = pending_[n_++];
    p.flow = flow;
    std::memcpy(p.bytes, buf_, 8);
    const bool get = std::memcmp(buf_ + 8, "get ", 4) == 0;
    const char* body = get ? "END\r\n" : "STORED\r\n";
    p.len = uint32_t(8 + std::strlen(body));
    std::memcpy(p.bytes + 8, body, p.len - 8);
    (void)len;
  }
  uint64_t tx_flush() { return 0; }
  template <class Sink>
  uint32_t rx_poll(Sink& sink) {
    const uint32_t n = n_;
    if (n == 0) return 0;
    const uint64_t t = rdtsc_now();
    for (uint32_t i = 0; i < n; ++i)
      sink.on_datagram(pending_[i].flow, {pending_[i].bytes, pending_[i].len}, t);
    n_ = 0;
    return n;
  }

 private:
  static constexpr uint32_t kMax = 64;
  struct Pending {
    uint32_t flow, len;
    uint8_t bytes[32];
  };
  uint8_t buf_[kMaxRequestLen + 64];
  Pending pending_[kMax];
  uint32_t n_ = 0;
};

}  // namespace
}  // namespace fm::loadgen

int main(int argc, char** argv) {
  using namespace fm::loadgen;
  double seconds = 2;
  std::vector<double> rates = {1e6, 2e6, 4e6, 6e6, 8e6, 10e6, 12e6, 16e6};
  int cpu = -1;
  double hiccup_s = 0;
  CLI::App app{"engine_bench: the loadgen engine's own ceiling, without any network"};
  app.add_option("--duration", seconds, "seconds per rate")->capture_default_str();
  app.add_option("--rates", rates, "rates to try (req/s)")->delimiter(',')->capture_default_str();
  app.add_option("--cpu", cpu, "pin to this CPU (-1: do not pin)")->capture_default_str();
  app.add_option("--hiccups", hiccup_s,
                 "first measure for this many seconds how much of the "
                 "time this CPU is taken away (gaps > 10 us in a tight TSC loop): the machine's "
                 "noise floor, which bounds any generator's schedule adherence")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
  }
  const double hz = tsc_hz_calibrated();
  if (hiccup_s > 0) {
    const uint64_t gap = uint64_t(10e-6 * hz), end = rdtsc_now() + uint64_t(hiccup_s * hz);
    uint64_t prev = rdtsc_now(), lost = 0, n = 0, longest = 0;
    while (prev < end) {
      const uint64_t t = rdtsc_now();
      if (t - prev > gap) {
        lost += t - prev;
        ++n;
        longest = std::max(longest, t - prev);
      }
      prev = t;
    }
    std::printf(
        "noise floor: %.3f%% of %.0f s lost in %lu stalls > 10 us (longest %.0f us, %.1f/s)\n",
        100.0 * double(lost) / (hiccup_s * hz), hiccup_s, (unsigned long)n,
        double(longest) * 1e6 / hz, double(n) / hiccup_s);
  }
  const KeyDist keys = KeyDist::uniform(10000);
  const ValueSizes values = ValueSizes::fixed(128);
  const WorkloadSpec w{&keys, 1.0, Arrival::kPoisson};
  EngineConfig c;
  c.flows = 4;
  c.timeout_ticks = uint64_t(0.01 * hz);
  c.late_ticks = uint64_t(10e-6 * hz);
  c.ns_per_tick = 1e9 / hz;
  c.values = &values;
  InstantTransport t;
  Engine<InstantTransport> e(t, c);
  std::printf("%12s %12s %10s %10s %10s\n", "offered", "achieved", "on-time", "busy", "valid");
  for (size_t i = 0; i < rates.size(); ++i) {
    Schedule s(w, rates[i], hz, derive_seed(1, i, 0));
    PointPlan plan;
    plan.start = rdtsc_now() + uint64_t(0.001 * hz);
    plan.measure_from = uint64_t(0.2 * hz);
    plan.measure_until = plan.measure_from + uint64_t(seconds * hz);
    const CoreResult r = e.run(s, plan);
    const PointReport rep = make_report(rates[i], r, hz, ValidityRules{});
    std::printf("%12.0f %12.0f %9.2f%% %9.1f%% %10s\n", rates[i], rep.all.achieved_rps,
                rep.adherence_pct, rep.loadgen_busy_pct, rep.valid ? "ok" : "INVALID");
  }
  return 0;
}
