// The control protocol's shared half: version, limits, error codes and the argument helpers that
// both fm::ControlServer (control_server.h) and fm::ControlClient (control_client.h) rely on.
// docs/control.md is the contract.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "dataplane/result.h"

namespace fm {

/// The protocol version this code speaks: requests may carry "v":1 (or no "v"); every
/// response carries "v":1.
inline constexpr int kControlProtocolVersion = 1;
/// The longest request line accepted, in bytes without the newline; a longer one is answered
/// "line_too_long" and its connection closed.
inline constexpr size_t kControlMaxLineBytes = 64 * 1024;
/// The deepest nesting of arrays and objects a request may have; a deeper one is answered
/// "bad_request" before it is parsed (no recursion on a hostile line, however deep).
inline constexpr size_t kControlMaxDepth = 32;
/// How deeply the arrays and objects of JSON text `line` nest (brackets inside strings are not
/// counted; malformed text is measured all the same). Any thread; no allocation.
size_t json_nesting(std::string_view line);
/// Connections served at once; one more is accepted, answered "too_many_clients" and closed.
inline constexpr size_t kControlMaxClients = 16;
/// Unsent response bytes a client may let pile up (it does not read) before it is dropped.
inline constexpr size_t kControlMaxPendingOutput = 1024 * 1024;
/// Where kvserver and dpctl look for the socket unless told otherwise.
inline constexpr const char* kControlDefaultSocket = "/run/farmem/kvserver.sock";

/// The protocol's error code for an Errc: "invalid_argument", "restart_required", "internal",
/// "not_found", "unavailable", "resource_exhausted", "timeout" ("internal" for kOk).
const char* control_error_code(Errc code);

/// The integer argument `key` of a request, or invalid_argument naming the key when it is
/// missing, not an integer, or outside [min, max]. For handlers.
Result<int64_t> control_int_arg(const nlohmann::json& request, std::string_view key,
                                int64_t min = INT64_MIN, int64_t max = INT64_MAX);
/// The boolean argument `key` of a request, or invalid_argument naming it. For handlers.
Result<bool> control_bool_arg(const nlohmann::json& request, std::string_view key);
/// The string argument `key` of a request, or invalid_argument naming it. For handlers.
Result<std::string> control_string_arg(const nlohmann::json& request, std::string_view key);

}  // namespace fm
