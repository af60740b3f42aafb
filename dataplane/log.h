// Logging with a module tag; per-packet warnings go through FM_LOG_FIRST_N.
#pragma once

#include <atomic>
#include <cstdint>
#include <fmt/core.h>
#include <string_view>
#include <utility>

#include "dataplane/enum_names.h"

namespace fm {

enum class LogLevel : uint8_t { kDebug = 0, kInfo, kWarn, kError };
inline constexpr EnumName<LogLevel> kLogLevelNames[] = {{"debug", LogLevel::kDebug},
                                                        {"info", LogLevel::kInfo},
                                                        {"warn", LogLevel::kWarn},
                                                        {"error", LogLevel::kError}};
static_assert(enum_table_ok(kLogLevelNames));

/// "debug", "info", "warn" or "error".
const char* log_level_name(LogLevel level);

/// Sets the lowest level printed. Not thread-safe against concurrent logging; call at start.
void set_log_level(LogLevel level);
LogLevel log_level();

/// Writes one line "[tag] LEVEL message" to stderr. Thread-safe; may allocate (not for hot paths).
void log_line(LogLevel level, const char* tag, std::string_view message);

template <typename... Args>
void log(LogLevel level, const char* tag, fmt::format_string<Args...> f, Args&&... args) {
  if (level < log_level()) return;
  log_line(level, tag, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace fm

#define FM_LOG_DEBUG(tag, ...) ::fm::log(::fm::LogLevel::kDebug, tag, __VA_ARGS__)
#define FM_LOG_INFO(tag, ...) ::fm::log(::fm::LogLevel::kInfo, tag, __VA_ARGS__)
#define FM_LOG_WARN(tag, ...) ::fm::log(::fm::LogLevel::kWarn, tag, __VA_ARGS__)
#define FM_LOG_ERROR(tag, ...) ::fm::log(::fm::LogLevel::kError, tag, __VA_ARGS__)

/// Logs only the first `n` times this line is reached (process-wide), for per-packet warnings.
#define FM_LOG_FIRST_N(level, n, tag, ...)                                       \
  do {                                                                           \
    static std::atomic<uint32_t> fm_log_count_{0};                               \
    if (fm_log_count_.load(std::memory_order_relaxed) < (n) &&                   \
        fm_log_count_.fetch_add(1, std::memory_order_relaxed) < (n))             \
      ::fm::log(level, tag, __VA_ARGS__);                                        \
  } while (0)
