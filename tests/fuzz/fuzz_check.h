// FUZZ_CHECK: an always-on property check for the libFuzzer harnesses; a failure aborts, so
// libFuzzer saves the input as a crash artifact.
#pragma once

#include <cstdio>
#include <cstdlib>

/// Aborts with file, line, the expression and a printf-style message when `cond` is false.
#define FUZZ_CHECK(cond, ...)                                                             \
  do {                                                                                    \
    if (!(cond)) [[unlikely]] {                                                           \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: ", __FILE__, __LINE__, #cond);  \
      std::fprintf(stderr, __VA_ARGS__);                                                  \
      std::fputc('\n', stderr);                                                           \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)
