// Result types for control paths: an error code plus a human message naming what was wrong.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace fm {

/// Broad error classes; the message says the specifics (key, file, device, address).
enum class Errc : uint8_t {
  kOk = 0,
  kInvalidArgument,  // a bad value: config key, flag, request
  kNotFound,         // missing file, device, key
  kUnavailable,      // a peer or device is not there or died
  kResourceExhausted,// hugepages, memory, queue slots
  kInternal,         // a library call failed unexpectedly
  kTimeout,          // a peer did not answer in time
  kRestartRequired,  // a valid setting that only takes effect when the program restarts
  kPermissionDenied, // a peer or file failed an ownership, credential or key check
};

/// A status: ok, or an error class and a message. Cheap when ok.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Errc code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  bool is_ok() const { return code_ == Errc::kOk; }
  explicit operator bool() const { return is_ok(); }
  Errc code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Errc code_ = Errc::kOk;
  std::string message_;
};

inline Status error(Errc code, std::string message) { return Status(code, std::move(message)); }

/// A value or an error Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}     // NOLINT: must not be ok

  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const Status& status() const { return std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace fm

/// Returns the Status of `expr` from the enclosing function when it is an error.
#define FM_RETURN_IF_ERROR(expr)          \
  do {                                    \
    ::fm::Status fm_status_ = (expr);     \
    if (!fm_status_.is_ok()) return fm_status_; \
  } while (0)
