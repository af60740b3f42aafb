// The run-time control socket: a versioned JSON-lines protocol over a Unix stream socket.
// docs/control.md is the contract. This header is the whole API (Meson: control_dep); a program
// that needs one side only can include that header alone:
//   control_protocol.h  version, limits, error codes, argument helpers (both sides)
//   control_server.h    fm::ControlServer (kvserver; Meson: control_server_dep)
//   control_client.h    fm::ControlClient (dpctl, tests; Meson: control_client_dep, no DPDK)
#pragma once

#include "dataplane/control_client.h"
#include "dataplane/control_protocol.h"
#include "dataplane/control_server.h"
