// Always-on invariant checks (FM_CHECK) and debug-only ones (FM_DCHECK).
#pragma once

namespace fm::detail {
[[noreturn, gnu::cold]] void check_failed(const char* file, int line, const char* expr,
                                          const char* msg);
}  // namespace fm::detail

/// Aborts with file, line and expression when `cond` is false. Always on.
#define FM_CHECK(cond)                                                          \
  do {                                                                          \
    if (__builtin_expect(!(cond), 0))                                           \
      ::fm::detail::check_failed(__FILE__, __LINE__, #cond, nullptr);           \
  } while (0)

/// FM_CHECK with a fixed message.
#define FM_CHECK_MSG(cond, msg)                                                 \
  do {                                                                          \
    if (__builtin_expect(!(cond), 0))                                           \
      ::fm::detail::check_failed(__FILE__, __LINE__, #cond, (msg));             \
  } while (0)

#ifdef NDEBUG
#define FM_DCHECK(cond) \
  do {                  \
    (void)sizeof(cond); \
  } while (0)
#else
#define FM_DCHECK(cond) FM_CHECK(cond)
#endif
