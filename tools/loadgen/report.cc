// Table, CSV and JSON output of rate points.
#include "tools/loadgen/report.h"

#include <fmt/core.h>

#include <cerrno>
#include <cmath>
#include <cstring>

namespace fm::loadgen {
namespace {

Field text(std::string name, std::string v) {
  Field f;
  f.name = std::move(name);
  f.kind = Field::Kind::kText;
  f.text = std::move(v);
  return f;
}
Field num(std::string name, double v) {
  Field f;
  f.name = std::move(name);
  f.kind = Field::Kind::kNumber;
  f.number = v;
  return f;
}
Field integer(std::string name, uint64_t v) {
  Field f;
  f.name = std::move(name);
  f.kind = Field::Kind::kInteger;
  f.integer = v;
  return f;
}
Field flag(std::string name, bool v) {
  Field f;
  f.name = std::move(name);
  f.kind = Field::Kind::kBool;
  f.flag = v;
  return f;
}

std::string number_text(double v) {
  if (std::isinf(v)) return "inf";
  if (std::isnan(v)) return "nan";
  return fmt::format("{:.3f}", v);
}

void add_op(std::vector<Field>& out, const std::string& p, const OpReport& o) {
  out.push_back(integer(p + "_requests", o.requests));
  out.push_back(integer(p + "_replies", o.replies));
  out.push_back(num(p + "_scheduled_rps", o.scheduled_rps));
  out.push_back(num(p + "_achieved_rps", o.achieved_rps));
  out.push_back(integer(p + "_timeouts", o.timeouts));
  out.push_back(integer(p + "_misses", o.misses));
  out.push_back(integer(p + "_wrong", o.wrong));
  out.push_back(integer(p + "_server_errors", o.server_errors));
  out.push_back(integer(p + "_malformed", o.malformed));
  const LatencySummary& l = o.latency;
  out.push_back(num(p + "_min_us", l.min));
  out.push_back(num(p + "_mean_us", l.mean));
  out.push_back(num(p + "_p50_us", l.p50));
  out.push_back(num(p + "_p90_us", l.p90));
  out.push_back(num(p + "_p95_us", l.p95));
  out.push_back(num(p + "_p99_us", l.p99));
  out.push_back(num(p + "_p999_us", l.p999));
  out.push_back(num(p + "_p9999_us", l.p9999));
  out.push_back(num(p + "_max_us", l.max));
}

std::string join_lcores(const std::vector<uint32_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ";" : "") + std::to_string(v[i]);
  return s;
}

}  // namespace

std::string fmt_us(double us) {
  if (std::isinf(us)) return "inf";
  if (us < 1000) return fmt::format("{:.1f}", us);
  return fmt::format("{:.0f}", us);
}

std::vector<Field> config_fields(const Options& o, uint32_t flows, const std::string& timestamp) {
  std::vector<Field> f;
  f.push_back(text("label", o.label));
  f.push_back(text("timestamp", timestamp));
  f.push_back(text("backend", o.backend));
  f.push_back(text("lcores", join_lcores(o.lcores)));
  f.push_back(integer("cores", o.lcores.size()));
  f.push_back(text("server", fmt::format("{}:{}", o.server_ip, o.server_port)));
  f.push_back(integer("keys", o.keys));
  f.push_back(text("key_dist", o.key_dist));
  f.push_back(text("value_size", o.value_size));
  f.push_back(num("get_ratio", o.get_ratio));
  f.push_back(text("arrival", o.arrival));
  f.push_back(num("duration_s", o.requests ? 0.0 : o.duration_s));
  f.push_back(integer("requests_per_point", o.requests));
  f.push_back(num("warmup_s", o.warmup_s));
  f.push_back(num("timeout_ms", o.timeout_ms));
  f.push_back(num("late_us", o.late_us));
  f.push_back(num("min_adherence_pct", o.min_adherence));
  f.push_back(integer("flows", flows));
  f.push_back(integer("retries", o.retries));
  f.push_back(integer("seed", o.seed));
  f.push_back(flag("preload", o.preload));
  f.push_back(flag("verify", o.verify));
  return f;
}

std::vector<Field> config_fields_tail(const Options& o) {
  std::vector<Field> f;
  f.push_back(integer("multiget_keys", o.multiget_keys));
  f.push_back(num("multiget_ratio", o.multiget_ratio));
  f.push_back(integer("queues", o.queue_count));
  f.push_back(text("rate_steps", o.rate_steps));
  return f;
}

double step_rate_at(const std::vector<RateStep>& steps, double t_s) {
  double end = 0;
  for (const RateStep& s : steps) {
    end += s.seconds;
    // A nanosecond of slack: sums like 0.05 + 0.05 + 0.02 land a hair above 0.12.
    if (t_s + 1e-9 < end) return s.rate;
  }
  return steps.empty() ? 0.0 : steps.back().rate;
}

std::vector<Field> timeline_fields(const TimelineRow& row, double target_rps, uint32_t point,
                                   const std::string& label, double unix_s) {
  std::vector<Field> f;
  f.push_back(num("t_ms", row.t_ms));
  f.push_back(num("offered_rps", row.offered_rps));
  f.push_back(num("achieved_rps", row.achieved_rps));
  f.push_back(num("p50_us", row.latency.p50));
  f.push_back(num("p99_us", row.latency.p99));
  f.push_back(num("max_us", row.latency.max));
  f.push_back(integer("timeouts", row.timeouts));
  f.push_back(integer("late_sends", row.late));
  f.push_back(num("target_rps", target_rps));
  f.push_back(integer("requests", row.scheduled));
  f.push_back(integer("replies", row.received));
  f.push_back(integer("point", point));
  f.push_back(text("label", label));
  f.push_back(text("unix_s", fmt::format("{:.6f}", unix_s)));  // us: numbers keep 3 decimals
  f.push_back(integer("errors", row.errors));
  f.push_back(integer("wrong", row.wrong));
  f.push_back(integer("misses", row.misses));
  return f;
}

std::vector<Field> point_fields(const PointReport& r) {
  std::vector<Field> f;
  f.push_back(num("offered_rps", r.offered_rps));
  f.push_back(num("scheduled_rps", r.scheduled_rps));
  f.push_back(num("achieved_rps", r.all.achieved_rps));
  f.push_back(num("window_s", r.window_s));
  f.push_back(num("p50_us", r.all.latency.p50));
  f.push_back(num("p99_us", r.all.latency.p99));
  f.push_back(num("p999_us", r.all.latency.p999));
  f.push_back(integer("drops", r.all.timeouts));
  f.push_back(integer("wrong", r.all.wrong));
  f.push_back(integer("server_errors", r.all.server_errors));
  f.push_back(num("adherence_pct", r.adherence_pct));
  f.push_back(integer("late", r.late));
  f.push_back(integer("unsent", r.unsent));
  f.push_back(integer("tx_dropped", r.tx_dropped));
  f.push_back(integer("strays", r.strays));
  f.push_back(integer("id_wraps", r.id_wraps));
  f.push_back(num("send_lag_p99_us", r.send_lag_p99_us));
  f.push_back(num("send_lag_max_us", r.send_lag_max_us));
  f.push_back(num("loadgen_busy_pct", r.loadgen_busy_pct));
  f.push_back(integer("attempts", r.attempts));
  add_op(f, "all", r.all);
  add_op(f, "get", r.get);
  add_op(f, "set", r.set);
  f.push_back(flag("valid", r.valid));
  f.push_back(text("invalid_reason", r.invalid_reason));
  add_op(f, "mget", r.mget);
  return f;
}

std::string csv_header(const std::vector<Field>& fields) {
  std::string s;
  for (size_t i = 0; i < fields.size(); ++i) s += (i ? "," : "") + fields[i].name;
  return s;
}

std::string csv_row(const std::vector<Field>& fields) {
  std::string s;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) s += ',';
    const Field& f = fields[i];
    switch (f.kind) {
      case Field::Kind::kText:
        if (f.text.find_first_of(",\"\n\r") != std::string::npos) {
          s += '"';
          for (char c : f.text) s += c == '"' ? std::string("\"\"") : std::string(1, c);
          s += '"';
        } else {
          s += f.text;
        }
        break;
      case Field::Kind::kNumber:
        s += number_text(f.number);
        break;
      case Field::Kind::kInteger:
        s += std::to_string(f.integer);
        break;
      case Field::Kind::kBool:
        s += f.flag ? "1" : "0";
        break;
    }
  }
  return s;
}

std::string json_object(const std::vector<Field>& fields) {
  std::string s = "{";
  for (size_t i = 0; i < fields.size(); ++i) {
    const Field& f = fields[i];
    if (i) s += ", ";
    s += '"' + f.name + "\": ";
    switch (f.kind) {
      case Field::Kind::kText:
        s += '"';
        for (unsigned char c : f.text) {
          if (c == '"' || c == '\\')
            s += std::string("\\") + char(c);
          else if (c < 0x20)
            s += fmt::format("\\u{:04x}", c);
          else
            s += char(c);
        }
        s += '"';
        break;
      case Field::Kind::kNumber:
        s += std::isfinite(f.number) ? number_text(f.number) : "null";
        break;
      case Field::Kind::kInteger:
        s += std::to_string(f.integer);
        break;
      case Field::Kind::kBool:
        s += f.flag ? "true" : "false";
        break;
    }
  }
  return s + "}";
}

Result<std::unique_ptr<Reporter>> Reporter::open(const Options& o, uint32_t flows) {
  std::unique_ptr<Reporter> r(new Reporter());
  r->o_ = &o;
  char ts[32];
  const time_t now = ::time(nullptr);
  struct tm tm {};
  ::gmtime_r(&now, &tm);
  ::strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
  r->config_ = config_fields(o, flows, ts);
  r->config_tail_ = config_fields_tail(o);
  if (!o.csv.empty()) {
    r->csv_ = std::fopen(o.csv.c_str(), "w");
    if (!r->csv_) {
      return error(Errc::kNotFound,
                   fmt::format("--csv: cannot write '{}': {}", o.csv, std::strerror(errno)));
    }
  }
  if (!o.json.empty()) {
    r->json_ = std::fopen(o.json.c_str(), "w");
    if (!r->json_) {
      return error(Errc::kNotFound,
                   fmt::format("--json: cannot write '{}': {}", o.json, std::strerror(errno)));
    }
  }
  if (!o.timeline.empty()) {
    r->timeline_ = std::fopen(o.timeline.c_str(), "w");
    if (!r->timeline_) {
      return error(Errc::kNotFound, fmt::format("--timeline: cannot write '{}': {}", o.timeline,
                                                std::strerror(errno)));
    }
  }
  return r;
}

Reporter::~Reporter() {
  if (csv_) std::fclose(csv_);
  if (json_) std::fclose(json_);
  if (timeline_) std::fclose(timeline_);
}

void Reporter::begin(const std::string& setup_line) {
  if (o_->quiet) return;
  std::printf("%s\n", setup_line.c_str());
  std::printf("latency in us from the scheduled send time; drops (timeouts) count as infinite\n");
  std::printf("%10s %10s %-4s | %7s %7s %7s %7s %7s %7s %7s %7s %7s | %8s %6s %6s %5s | %8s %s\n",
              "offered", "achieved", "op", "min", "mean", "p50", "p90", "p95", "p99", "p99.9",
              "p99.99", "max", "timeouts", "misses", "errors", "wrong", "on-time", "valid");
  std::fflush(stdout);
}

void Reporter::point(const PointReport& r) {
  ++points_;
  if (!r.valid) ++invalid_;
  std::vector<Field> fields = config_;
  for (Field& f : point_fields(r)) fields.push_back(std::move(f));
  for (const Field& f : config_tail_) fields.push_back(f);
  if (timeline_) {
    for (const TimelineRow& row : r.timeline) {
      const double target =
          o_->steps.empty() ? r.offered_rps : step_rate_at(o_->steps, row.t_ms * 1e-3);
      const double unix_s =
          wall_hz_ > 0 ? wall_unix_s_ + (double(row.start_tick) - double(wall_tick_)) / wall_hz_
                       : 0.0;
      const std::vector<Field> tf =
          timeline_fields(row, target, uint32_t(points_ - 1), o_->label, unix_s);
      if (!timeline_header_done_) {
        std::fprintf(timeline_, "%s\n", csv_header(tf).c_str());
        timeline_header_done_ = true;
      }
      std::fprintf(timeline_, "%s\n", csv_row(tf).c_str());
    }
    std::fflush(timeline_);
  }
  if (csv_) {
    if (!csv_header_done_) {
      std::fprintf(csv_, "%s\n", csv_header(fields).c_str());
      csv_header_done_ = true;
    }
    std::fprintf(csv_, "%s\n", csv_row(fields).c_str());
    std::fflush(csv_);
  }
  if (json_) {
    std::fprintf(json_, "%s\n", json_object(fields).c_str());
    std::fflush(json_);
  }
  if (!o_->quiet) {
    const auto row = [&](const char* op, const OpReport& o, bool first) {
      const LatencySummary& l = o.latency;
      std::printf(
          "%10s %10.0f %-4s | %7s %7s %7s %7s %7s %7s %7s %7s %7s | %8lu %6lu %6lu %5lu | %8s %s\n",
          first ? fmt::format("{:.0f}", r.offered_rps).c_str() : "", o.achieved_rps, op,
          fmt_us(l.min).c_str(), fmt_us(l.mean).c_str(), fmt_us(l.p50).c_str(),
          fmt_us(l.p90).c_str(), fmt_us(l.p95).c_str(), fmt_us(l.p99).c_str(),
          fmt_us(l.p999).c_str(), fmt_us(l.p9999).c_str(), fmt_us(l.max).c_str(),
          (unsigned long)o.timeouts, (unsigned long)o.misses,
          (unsigned long)(o.server_errors + o.malformed), (unsigned long)o.wrong,
          first ? fmt::format("{:.2f}%", r.adherence_pct).c_str() : "",
          first ? (r.valid ? "ok" : "INVALID") : "");
    };
    row("all", r.all, true);
    // Per operation type when there is more than one.
    if ((r.get.requests != 0) + (r.set.requests != 0) + (r.mget.requests != 0) > 1) {
      if (r.get.requests) row("get", r.get, false);
      if (r.set.requests) row("set", r.set, false);
      if (r.mget.requests) row("mget", r.mget, false);
    }
    std::fflush(stdout);
  }
  if (!r.valid) {
    const std::string banner = fmt::format("*** INVALID: rate point {:.0f} req/s: {} ***",
                                           r.offered_rps, r.invalid_reason);
    std::fprintf(stderr, "%s\n", banner.c_str());
    if (!o_->quiet) std::printf("%s\n", banner.c_str());
  }
}

uint64_t Reporter::finish() {
  if (invalid_) {
    const std::string line = fmt::format(
        "*** {} of {} rate points INVALID: their numbers measure the loadgen, not the server ***",
        invalid_, points_);
    std::fprintf(stderr, "%s\n", line.c_str());
    if (!o_->quiet) std::printf("%s\n", line.c_str());
  }
  std::fflush(stdout);
  return invalid_;
}

}  // namespace fm::loadgen
