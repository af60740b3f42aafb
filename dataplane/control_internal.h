// Helpers shared by control_server.cc and control_client.cc (defined in control_protocol.cc).
// Not an API: include it from the control_*.cc files only.
#pragma once

#include <sys/un.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "dataplane/result.h"

namespace fm::control_internal {

/// The text of errno value `e`.
std::string errno_text(int e);

/// `j` as one line of JSON; invalid UTF-8 from a handler (a file name, a device string) is
/// replaced, never thrown.
std::string to_line(const nlohmann::json& j);

/// nlohmann's what() without its "[json.exception.parse_error.101] " prefix.
std::string_view strip_json_prefix(std::string_view what);

/// Fills `addr` with the Unix socket `path`; the error names control.socket when the path is
/// empty, holds a NUL byte or does not fit sun_path.
Status fill_addr(const std::string& path, sockaddr_un* addr);

}  // namespace fm::control_internal
