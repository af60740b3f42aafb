// The control protocol's shared code: error codes, nesting depth, argument helpers, and the
// socket and JSON helpers both the server and the client use.
#include "dataplane/control_protocol.h"

#include <fmt/core.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <system_error>

#include "dataplane/control_internal.h"

namespace fm {
namespace control_internal {

using json = nlohmann::json;

std::string errno_text(int e) { return std::generic_category().message(e); }

// Invalid UTF-8 from a handler (a file name, a device string) is replaced, never thrown.
std::string to_line(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// nlohmann's what() starts with "[json.exception.parse_error.101] "; the rest is the useful part.
std::string_view strip_json_prefix(std::string_view what) {
  if (!what.empty() && what.front() == '[') {
    if (size_t end = what.find("] "); end != std::string_view::npos) what.remove_prefix(end + 2);
  }
  return what;
}

Status fill_addr(const std::string& path, sockaddr_un* addr) {
  if (path.empty()) {
    return error(Errc::kInvalidArgument, "control socket path is empty (set control.socket)");
  }
  if (path.find('\0') != std::string::npos) {
    return error(Errc::kInvalidArgument, "control socket path contains a NUL byte");
  }
  std::memset(addr, 0, sizeof(*addr));
  if (path.size() >= sizeof(addr->sun_path)) {
    return error(Errc::kInvalidArgument,
                 fmt::format("control socket path {} is {} bytes; a Unix socket path must be "
                             "shorter than {} bytes (sun_path): set control.socket to a shorter "
                             "path",
                             path, path.size(), sizeof(addr->sun_path)));
  }
  addr->sun_family = AF_UNIX;
  std::memcpy(addr->sun_path, path.data(), path.size());
  return Status::ok();
}

}  // namespace control_internal

using json = nlohmann::json;
using control_internal::to_line;

size_t json_nesting(std::string_view line) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : line) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) deepest = depth;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

const char* control_error_code(Errc code) {
  switch (code) {
    case Errc::kInvalidArgument:
      return "invalid_argument";
    case Errc::kNotFound:
      return "not_found";
    case Errc::kUnavailable:
      return "unavailable";
    case Errc::kResourceExhausted:
      return "resource_exhausted";
    case Errc::kTimeout:
      return "timeout";
    case Errc::kRestartRequired:
      return "restart_required";
    case Errc::kPermissionDenied:
      return "permission_denied";
    case Errc::kInternal:
    case Errc::kOk:
      break;
  }
  return "internal";
}

// ---------------------------------------------------------------------------------------------
// Argument helpers

Result<int64_t> control_int_arg(const json& request, std::string_view key, int64_t min,
                                int64_t max) {
  const auto it = request.find(key);
  if (it == request.end()) {
    return error(Errc::kInvalidArgument, fmt::format("missing argument \"{}\"", key));
  }
  int64_t v = 0;
  if (it->is_number_unsigned()) {
    const uint64_t u = it->get<uint64_t>();
    if (u > uint64_t(INT64_MAX)) {
      return error(Errc::kInvalidArgument,
                   fmt::format("argument \"{}\" = {} is out of range [{}, {}]", key, u, min, max));
    }
    v = int64_t(u);
  } else if (it->is_number_integer()) {
    v = it->get<int64_t>();
  } else {
    return error(Errc::kInvalidArgument,
                 fmt::format("argument \"{}\" must be an integer, not {}", key, to_line(*it)));
  }
  if (v < min || v > max) {
    return error(Errc::kInvalidArgument,
                 fmt::format("argument \"{}\" = {} is out of range [{}, {}]", key, v, min, max));
  }
  return v;
}

Result<bool> control_bool_arg(const json& request, std::string_view key) {
  const auto it = request.find(key);
  if (it == request.end()) {
    return error(Errc::kInvalidArgument, fmt::format("missing argument \"{}\"", key));
  }
  if (!it->is_boolean()) {
    return error(Errc::kInvalidArgument,
                 fmt::format("argument \"{}\" must be true or false, not {}", key, to_line(*it)));
  }
  return it->get<bool>();
}

Result<std::string> control_string_arg(const json& request, std::string_view key) {
  const auto it = request.find(key);
  if (it == request.end()) {
    return error(Errc::kInvalidArgument, fmt::format("missing argument \"{}\"", key));
  }
  if (!it->is_string()) {
    return error(Errc::kInvalidArgument,
                 fmt::format("argument \"{}\" must be a string, not {}", key, to_line(*it)));
  }
  return it->get<std::string>();
}

}  // namespace fm
