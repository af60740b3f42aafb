// The server runtime: EAL, port, far memory, scheduler, queue sets, core allocation, control
// socket and statistics, wired from module options; an app plugs in as a UdpApp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dataplane/core_alloc.h"
#include "dataplane/core_loop.h"
#include "dataplane/eal.h"
#include "dataplane/result.h"
#include "dataplane/stat_sink.h"
#include "net/port.h"
#include "net/stack.h"
#include "paging/options.h"
#include "paging/region.h"
#include "runtime/app.h"
#include "sched/options.h"

namespace fm::rt {

/// Every module's options, and what the app asks of far memory.
struct ServerOptions {
  std::string program = "kvserver";  // the EAL's program name and the control socket's
  std::string service = "UDP";       // what the start-up line says is served ("memcached UDP")
  EalOptions eal;
  IdleOptions idle;
  net::PortOptions port;
  net::NetOptions net;
  paging::PagingOptions paging;
  sched::SchedOptions sched;
  AllocOptions alloc;
  bool control = true;
  std::string control_socket;
  uint32_t udp_max_payload = 1400;  // the app's largest reply datagram: must fit the port's MTU
  uint64_t far_bytes = 0;           // the far region's size (paging.mode = far)
  uint32_t max_pin_bytes = 4096;    // the longest range the app pins at once
};

class Server {
 public:
  /// Starts the EAL, opens the port and, in far mode, connects to the memory node and creates
  /// the far region. Errors name the key, device or address. Main thread; control path.
  static Result<std::unique_ptr<Server>> open(const ServerOptions& opts);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// The far region (null in local mode): the app puts its data there before run().
  paging::Region* region() const;

  /// Builds the scheduler, one queue set per core, the allocator, the loops and the control
  /// socket around `app`, serves until SIGINT/SIGTERM, then prints the exit summary on stderr.
  /// Main thread; once.
  Status run(UdpApp& app);

  /// The runtime's statistics (network, scheduler, far memory), server-wide; writes nothing
  /// before run() has built the cores. Any thread: the app's "stats" appends them.
  void write_stats(StatSink& out) const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fm::rt
