// Which sanitizer this translation unit is built with, for gcc (__SANITIZE_*__) and clang
// (__has_feature) alike: FM_ASAN and FM_TSAN are 1 or 0.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define FM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FM_ASAN 1
#endif
#endif
#ifndef FM_ASAN
#define FM_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define FM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FM_TSAN 1
#endif
#endif
#ifndef FM_TSAN
#define FM_TSAN 0
#endif
