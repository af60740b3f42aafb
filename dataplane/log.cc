// Logging and check-failure reporting.
#include "dataplane/log.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "dataplane/check.h"

namespace fm {
namespace {
std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::mutex g_log_mu;
const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarn: return "WARN";
    case LogLevel::kError: return "ERROR";
  }
  return "?";
}
}  // namespace

const char* log_level_name(LogLevel level) { return enum_name(kLogLevelNames, level).data(); }

void set_log_level(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
LogLevel log_level() { return g_level.load(std::memory_order_relaxed); }

void log_line(LogLevel level, const char* tag, std::string_view message) {
  std::lock_guard<std::mutex> lock(g_log_mu);
  std::fprintf(stderr, "[%s] %s %.*s\n", tag, level_name(level), static_cast<int>(message.size()),
               message.data());
}

namespace detail {
void check_failed(const char* file, int line, const char* expr, const char* msg) {
  std::fprintf(stderr, "%s:%d: CHECK failed: %s%s%s\n", file, line, expr, msg ? ": " : "",
               msg ? msg : "");
  std::fflush(stderr);
  std::abort();
}
}  // namespace detail
}  // namespace fm
