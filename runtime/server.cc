// Start-up order, tear-down order and who runs where.
#include "runtime/server.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <functional>
#include <vector>

#include "dataplane/control.h"
#include "dataplane/log.h"
#include "dataplane/tsc.h"
#include "paging/emulated_transport.h"
#include "paging/replicated_transport.h"
#include "paging/verbs_transport.h"
#include "runtime/control_commands.h"
#include "runtime/queue_set.h"
#include "runtime/stats.h"
#include "sched/fault_wait.h"
#include "sched/scheduler.h"

namespace fm::rt {
namespace {
constexpr const char* kTag = "runtime";

/// Helper threads (the control socket's, the transport's watcher) must not share a CPU with a
/// dataplane core: a thread inherits its creator's affinity, and after EAL init the main thread
/// is pinned to core 0's CPU. Threads started inside run() get the CPUs the process was allowed
/// before EAL init minus the dataplane lcores (all of them if none is left).
class HelperCpus {
 public:
  /// Before eal_init(): the CPUs this process may use.
  HelperCpus() { ok_ = ::sched_getaffinity(0, sizeof(allowed_), &allowed_) == 0; }

  /// After eal_init(): leaves out the dataplane lcores (lcore ids are CPU ids: eal.lcores).
  void exclude(const std::vector<uint32_t>& lcores) {
    helpers_ = allowed_;
    for (uint32_t l : lcores)
      if (l < CPU_SETSIZE) CPU_CLR(l, &helpers_);
    if (CPU_COUNT(&helpers_) == 0) helpers_ = allowed_;
  }

  /// Runs `fn` (which starts threads) with the calling thread on the helper CPUs, then restores
  /// the calling thread's own affinity.
  template <typename Fn>
  auto run(Fn&& fn) {
    cpu_set_t mine;
    const bool moved = ok_ &&
                       ::pthread_getaffinity_np(::pthread_self(), sizeof(mine), &mine) == 0 &&
                       ::pthread_setaffinity_np(::pthread_self(), sizeof(helpers_), &helpers_) == 0;
    struct Restore {
      bool moved;
      cpu_set_t* mine;
      ~Restore() {
        if (moved) ::pthread_setaffinity_np(::pthread_self(), sizeof(*mine), mine);
      }
    } restore{moved, &mine};
    return fn();
  }

 private:
  cpu_set_t allowed_{};
  cpu_set_t helpers_{};
  bool ok_ = false;
};

/// Connects one memory node at `address` (the config key `what` names it in errors) with a lease
/// of `lease` bytes.
Result<std::unique_ptr<paging::Transport>> connect_node(const ServerOptions& o,
                                                        const std::string& address,
                                                        const std::string& what, uint16_t ncores,
                                                        uint64_t lease,
                                                        const paging::AuthKey& key) {
  auto addr = paging::parse_channel_address(address, what);
  if (!addr) return addr.status();
  const int timeout = int(o.paging.connect_timeout_ms);
  if (o.paging.transport == paging::TransportKind::kEmulated) {
    auto t = paging::EmulatedTransport::connect(o.paging.emulated, *addr, ncores, lease, key,
                                                timeout, paging::tsc_clock());
    if (!t) return t.status();
    return std::unique_ptr<paging::Transport>(std::move(t.value()));
  }
  return paging::connect_verbs(o.paging.verbs, *addr, ncores, lease, key, timeout);
}

/// Connects the configured memory node(s) and creates the far region: `bytes` of it, with local
/// frames from paging.local_mb or paging.local_fraction. Several nodes (paging.memnodes) are
/// one ReplicatedTransport: pages striped across them, paging.replicas copies of each.
Status open_far_memory(const ServerOptions& o, uint16_t ncores,
                       std::unique_ptr<paging::Transport>& transport,
                       std::unique_ptr<paging::Region>& region) {
  paging::AuthKey key;
  if (!o.paging.key_file.empty()) {
    auto k = paging::AuthKey::load(o.paging.key_file, "paging.key_file");
    if (!k) return k.status();
    key = *k;
  }
  const uint64_t region_pages = (o.far_bytes + paging::kPageSize - 1) / paging::kPageSize;
  paging::ReplicatedTransport* replicated = nullptr;
  if (o.paging.memnodes.empty() && o.paging.reconnect_ms == 0) {
    auto t = connect_node(o, o.paging.memnode, "paging.memnode", ncores,
                          region_pages * paging::kPageSize, key);
    if (!t) return t.status();
    transport = std::move(t.value());
  } else {
    // Several nodes, or one that may come back: one ReplicatedTransport.
    const bool one = o.paging.memnodes.empty();
    const std::vector<std::string> addrs = one ? std::vector{o.paging.memnode} : o.paging.memnodes;
    const uint32_t n = uint32_t(addrs.size());
    const uint32_t replicas = o.paging.replicas ? o.paging.replicas : (n >= 2 ? 2 : 1);
    const paging::Placement place{n, replicas};
    auto what = [one](uint32_t i) {
      return one ? std::string("paging.memnode") : "paging.memnodes[" + std::to_string(i) + "]";
    };
    // With recovery, each connection also serves the recovery thread's queue pair (rebuild
    // copies): a verbs memory node accepts only the queue pairs a Hello announced.
    const uint16_t qps = uint16_t(ncores + (o.paging.reconnect_ms > 0 ? 1 : 0));
    std::vector<std::unique_ptr<paging::Transport>> nodes;
    for (uint32_t i = 0; i < n; ++i) {
      auto t = connect_node(o, addrs[i], what(i), qps, place.lease_bytes(region_pages), key);
      if (!t) return t.status();
      nodes.push_back(std::move(t.value()));
    }
    auto r = paging::ReplicatedTransport::create(std::move(nodes), addrs, replicas,
                                                 region_pages * paging::kPageSize);
    if (!r) return r.status();
    if (!one) {
      FM_LOG_INFO("server", "far memory on {} memory nodes, {} cop{} of each page", n, replicas,
                  replicas == 1 ? "y" : "ies");
    }
    replicated = r.value().get();
    transport = std::move(r.value());
  }
  const uint64_t pages = o.far_bytes / paging::kPageSize;
  const uint64_t frames = o.paging.local_mb > 0
                              ? (uint64_t(o.paging.local_mb) << 20) / paging::kPageSize
                              : uint64_t(double(pages) * o.paging.local_fraction + 0.5);
  auto r = paging::Region::create(o.far_bytes, frames, *transport, ncores, paging::tsc_clock(),
                                  o.max_pin_bytes);
  if (!r) return r.status();
  region = std::move(r.value());
  const uint32_t reserve = region->set_reserve(o.paging.reserve_frames);
  if (reserve != o.paging.reserve_frames) {
    FM_LOG_INFO(kTag, "paging.reserve_frames: {} per core (at most an eighth of {} frames)",
                reserve, region->frame_count());
  }
  if (replicated != nullptr && o.paging.reconnect_ms > 0) {
    // Dead nodes are dialled again (quickly: the recovery thread has others to rebuild) and
    // rebuilt at paging.repair_share of their link.
    paging::RecoveryOptions ro;
    ServerOptions redial = o;
    redial.paging.connect_timeout_ms = std::min<uint32_t>(o.paging.connect_timeout_ms, 1000);
    std::vector<std::string> addrs =
        o.paging.memnodes.empty() ? std::vector{o.paging.memnode} : o.paging.memnodes;
    const uint64_t lease = replicated->placement().lease_bytes(region_pages);
    const uint16_t qps = uint16_t(ncores + 1);  // the cores' and the recovery thread's
    ro.connect = [redial, addrs, qps, lease, key](uint32_t i) {
      return connect_node(redial, addrs[i], addrs[i], qps, lease, key);
    };
    ro.reconnect_ms = o.paging.reconnect_ms;
    const double gbps = o.paging.transport == paging::TransportKind::kEmulated
                            ? o.paging.emulated.link_gbps
                            : 100.0;
    ro.repair_bytes_per_s = o.paging.repair_share * gbps * 1e9 / 8;
    FM_RETURN_IF_ERROR(replicated->start_recovery(std::move(ro)));
  }
  return Status::ok();
}

}  // namespace

struct Server::Impl {
  ServerOptions opts;
  HelperCpus helper_cpus;
  uint16_t ncores = 0;
  bool dedicated_dispatcher = false;
  bool eal_up = false;
  std::unique_ptr<net::Port> port;
  net::Identity me;
  std::unique_ptr<paging::Transport> transport;
  std::unique_ptr<paging::Region> region;
  // Built by run(); destroyed in reverse order of declaration, stacks first (~Impl).
  std::unique_ptr<FiberApp> fiber_app;
  std::unique_ptr<sched::Scheduler> scheduler;
  std::vector<std::unique_ptr<sched::FaultWait>> fault_waits;
  std::vector<std::unique_ptr<ServerQueueSet>> sets;
  std::vector<std::unique_ptr<net::Stack>> stacks;
  std::unique_ptr<CoreAllocator> alloc;
  std::vector<std::unique_ptr<CoreLoop>> loops;
  std::unique_ptr<ControlServer> control;
  ServerParts parts;
  std::atomic<bool> parts_ready{false};

  ~Impl() {
    if (control) control->stop();  // its handlers read what is torn down below
    // The stacks hold the port's mbufs; only then may the port (memif) close, then the EAL.
    stacks.clear();
    if (port) port->close();
    if (eal_up) eal_cleanup();
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;

paging::Region* Server::region() const { return impl_->region.get(); }

Result<std::unique_ptr<Server>> Server::open(const ServerOptions& o) {
  auto im = std::make_unique<Impl>();
  im->opts = o;
  EalOptions eal = o.eal;
  im->dedicated_dispatcher = o.sched.dispatch == sched::Dispatch::kCentral &&
                             o.sched.dispatcher == sched::DispatcherRole::kDedicated;
  if (im->dedicated_dispatcher) eal.lcores.push_back(uint32_t(o.sched.dispatcher_lcore));
  if (o.port.pci.empty())
    eal.vdevs.push_back(o.port.vdev);
  else
    eal.pci_allow.push_back(o.port.pci);
  auto ei = eal_init(eal, o.program);
  if (!ei) return ei.status();
  im->eal_up = true;
  install_stop_signals();
  im->helper_cpus.exclude(eal.lcores);
  im->ncores = uint16_t(o.eal.lcores.size());
  auto port = net::Port::open(o.port, im->ncores);
  if (!port) return port.status();
  im->port = std::move(port.value());
  // A reply datagram larger than the port carries would be dropped on every full reply.
  if (Status st = net::check_udp_payload_fits(o.udp_max_payload, im->port->mtu(),
                                              "kv.udp_max_payload", im->port->name());
      !st) {
    return st;
  }
  im->me = net::Identity{im->port->mac(), o.net.ip, o.net.udp_port};
  if (!o.net.mac.empty()) {
    auto mac = net::parse_mac(o.net.mac, "net.mac");
    if (!mac) return mac.status();
    im->me.mac = *mac;
  }
  if (o.paging.mode == paging::PagingMode::kFar) {
    Impl& r = *im;
    Status far = im->helper_cpus.run(
        [&] { return open_far_memory(r.opts, r.ncores, r.transport, r.region); });
    if (!far) return far;
  }
  return std::unique_ptr<Server>(new Server(std::move(im)));
}

Status Server::run(UdpApp& app) {
  Impl& im = *impl_;
  const ServerOptions& o = im.opts;
  im.fiber_app = std::make_unique<FiberApp>(app);
  auto scheduler = sched::Scheduler::create(o.sched, im.ncores, *im.fiber_app);
  if (!scheduler) return scheduler.status();
  im.scheduler = std::move(scheduler.value());
  // Without far memory no request reaches a fetch boundary: none needs a fiber of its own.
  im.scheduler->set_never_parks(im.region == nullptr);
  for (uint16_t i = 0; i < im.ncores; ++i) {
    sched::CoreScheduler& cs = im.scheduler->core(CoreId{i});
    for (size_t f = 0; f < cs.fiber_slots(); ++f)
      cs.fiber_slot(f).app_state = app.fiber_state(CoreId{i}, f);
  }
  for (uint16_t i = 0; i < im.ncores; ++i) {
    paging::PagingCore* pc = im.region ? &im.region->core(CoreId{i}) : nullptr;
    sched::CoreScheduler* cs = &im.scheduler->core(CoreId{i});
    if (pc) im.fault_waits.push_back(attach_paging(*pc, *cs));
    im.sets.push_back(std::make_unique<ServerQueueSet>(pc, cs, app));
    im.stacks.push_back(
        std::make_unique<net::Stack>(*im.port, i, im.me, o.net, im.sets.back().get()));
    im.sets.back()->set_stack(im.stacks.back().get());
  }
  // One worker per lcore; worker i's home queue set is NIC queue i with its completion queue and
  // run queues, polled together in one loop (Shenango-style). A parked worker's sets are polled
  // by active ones.
  std::vector<QueueSet*> set_ptrs;
  for (auto& s : im.sets) set_ptrs.push_back(s.get());
  auto alloc = CoreAllocator::create(o.alloc, set_ptrs);
  if (!alloc) return alloc.status();
  im.alloc = std::move(alloc.value());
  std::vector<CoreLoop*> loop_ptrs;
  for (uint16_t i = 0; i < im.ncores; ++i) {
    im.loops.push_back(std::make_unique<CoreLoop>(CoreId{i}, o.eal.lcores[i], o.idle));
    im.loops.back()->add_poller(im.alloc->poller(i));
    loop_ptrs.push_back(im.loops.back().get());
  }
  if (im.dedicated_dispatcher) {
    // The dispatcher's own core only moves requests from the central queue to the workers.
    im.loops.push_back(
        std::make_unique<CoreLoop>(CoreId{im.ncores}, uint32_t(o.sched.dispatcher_lcore), o.idle));
    im.loops.back()->add_poller({"dispatch", &sched::Scheduler::dispatch_hook, im.scheduler.get()});
    loop_ptrs.push_back(im.loops.back().get());
  }
  // The registry's view of every core, fixed from here on.
  for (uint16_t i = 0; i < im.ncores; ++i) {
    CoreParts p = im.sets[i]->parts();
    p.loop = im.loops[i].get();
    im.parts.cores.push_back(p);
  }
  im.parts.scheduler = im.scheduler.get();
  im.parts.alloc = im.alloc.get();
  im.parts.region = im.region.get();
  im.parts.transport = im.transport.get();
  im.parts_ready.store(true, std::memory_order_release);

  if (o.control) {
    auto c = ControlServer::open(o.control_socket, o.program);
    if (!c)
      return error(c.status().code(), c.status().message() + " (or set control.enabled = false)");
    im.control = std::move(c.value());
    add_control_commands(*im.control,
                         ControlRefs{*im.alloc, *im.scheduler, im.parts, im.sets, app});
    if (Status cs = im.helper_cpus.run([&] { return im.control->start(); }); !cs) return cs;
    FM_LOG_INFO(kTag, "control socket {} (tools: build/tools/dpctl/dpctl --socket {})",
                o.control_socket, o.control_socket);
  }
  FM_LOG_INFO(kTag, "serving {} on {}:{} (mac {}) with {} core(s), {} active", o.service,
              im.me.ip.to_string(), im.me.udp_port, im.me.mac.to_string(), im.ncores,
              im.alloc->active());
  std::fflush(stderr);
  auto* replicated = dynamic_cast<paging::ReplicatedTransport*>(im.transport.get());
  if (replicated != nullptr) {
    // Pages whose every copy died: those still in a frame are written back (marked dirty); the
    // app forgets what lived on the others, then they serve again.
    paging::Region* region = im.region.get();
    replicated->set_lost_keeper([region](uint64_t page) {
      return region != nullptr && region->keep_lost_page(page * paging::kPageSize);
    });
    replicated->set_lost_hook([&app](const std::function<bool(uint64_t)>& is_lost) {
      return app.forget_far(
          [&is_lost](uint64_t offset, uint32_t len) {
            const uint64_t last = (offset + std::max<uint32_t>(len, 1) - 1) / paging::kPageSize;
            for (uint64_t p = offset / paging::kPageSize; p <= last; ++p)
              if (is_lost(p)) return true;
            return false;
          },
          int64_t(::time(nullptr)));
    });
  }
  Status st = run_cores(loop_ptrs);
  if (replicated != nullptr) {
    replicated->set_lost_hook(nullptr);
    replicated->set_lost_keeper(nullptr);
  }
  if (im.control) im.control->stop();
  // Every core has stopped polling: the counters are final.
  print_summary(im.parts, stderr);
  // Fibers still parked are unwound now, while the app they run and far memory still exist;
  // the stacks, the port and the EAL go with the server (~Impl).
  im.parts_ready.store(false, std::memory_order_release);
  im.control.reset();
  im.alloc.reset();
  im.loops.clear();
  im.fault_waits.clear();
  im.scheduler.reset();
  return st;
}

void Server::write_stats(StatSink& out) const {
  if (!impl_->parts_ready.load(std::memory_order_acquire)) return;
  write_server_stats(impl_->parts, out);
}

}  // namespace fm::rt
