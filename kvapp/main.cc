// kvserver: the compute node — DPDK polling cores serving memcached UDP from the store.
#include <pthread.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <sched.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <optional>
#include <vector>

#include "config/server_config.h"
#include "dataplane/control.h"
#include "dataplane/core_alloc.h"
#include "dataplane/core_loop.h"
#include "dataplane/eal.h"
#include "dataplane/log.h"
#include "dataplane/tsc.h"
#include "kvapp/far_arena.h"
#include "kvapp/hash.h"
#include "kvapp/session.h"
#include "net/port.h"
#include "net/stack.h"
#include "paging/emulated_transport.h"
#include "paging/region.h"
#include "paging/verbs_transport.h"
#include "sched/fault_wait.h"
#include "sched/predictor.h"
#include "sched/scheduler.h"

namespace fm::kv {
namespace {
constexpr const char* kTag = "kvserver";

/// Seconds since the epoch, refreshed from the TSC at most every 10 ms (no syscall per request).
class CoarseClock {
 public:
  int64_t now() {
    const uint64_t t = rdtsc();
    if (t - last_tsc_ > refresh_) {
      last_tsc_ = t;
      now_ = int64_t(::time(nullptr));
    }
    return now_;
  }

 private:
  uint64_t refresh_ = tsc_hz() / 100;
  uint64_t last_tsc_ = 0;
  int64_t now_ = int64_t(::time(nullptr));
};

/// What `stats` reports beyond the kv app: every queue's stack and the far region (if any).
struct ServerView {
  std::vector<const net::Stack*> stacks;
  std::vector<const sched::CoreScheduler*> scheds;
  std::vector<const sched::PredictorCounters*> predictions;
  const sched::Scheduler* scheduler = nullptr;
  const paging::Region* region = nullptr;
  const paging::Transport* transport = nullptr;
};

/// Fetch latency percentile from the log2 histogram (upper bucket edge, ns).
uint64_t latency_percentile(const paging::PagingTotals& t, double q) {
  uint64_t total = 0;
  for (uint64_t c : t.fetch_latency) total += c;
  if (total == 0) return 0;
  const uint64_t rank = uint64_t(q * double(total) + 0.5);
  uint64_t seen = 0;
  for (size_t i = 0; i < t.fetch_latency.size(); ++i) {
    seen += t.fetch_latency[i];
    if (seen >= rank) return 1ull << (i + 7);
  }
  return 1ull << (t.fetch_latency.size() + 6);
}

/// Appends network statistics (summed over every queue's stack) to memcached's `stats`.
class ServerStats : public StatsHook {
 public:
  explicit ServerStats(const ServerView* v) : v_(v) {}
  void append_stats(StatsWriter& w) const override {
    uint64_t rx = 0, tx = 0, drops = 0;
    uint64_t by_reason[net::kDropReasonCount] = {};
    for (const net::Stack* s : v_->stacks) {
      rx += s->counters().rx_packets.read();
      tx += s->counters().tx_packets.read();
      drops += s->counters().total_drops();
      for (size_t i = 0; i < net::kDropReasonCount; ++i) by_reason[i] += s->counters().drops[i].read();
    }
    w.stat("dp_rx_packets", rx);
    w.stat("dp_tx_packets", tx);
    w.stat("dp_drops", drops);
    char name[64];
    for (size_t i = 0; i < net::kDropReasonCount; ++i) {
      std::snprintf(name, sizeof(name), "dp_drop_%s", net::drop_reason_name(net::DropReason(i)));
      w.stat(name, by_reason[i]);
    }
    uint64_t started = 0, finished = 0, dropped = 0, parks = 0, stolen = 0, in_flight = 0, queued = 0;
    uint64_t preemptions = 0, likely_fault_started = 0;
    for (const sched::CoreScheduler* c : v_->scheds) {
      started += c->counters().started.read();
      finished += c->counters().finished.read();
      dropped += c->counters().dropped.read();
      parks += c->counters().parks.read();
      stolen += c->counters().stolen_new.read() + c->counters().stolen_ready.read();
      preemptions += c->counters().preemptions.read();
      likely_fault_started += c->counters().started_likely_fault.read();
      in_flight += c->in_flight();
      queued += c->queued();
    }
    const sched::Scheduler& sc = *v_->scheduler;
    w.stat("sched_faults", sched::fault_mode_name(sc.faults()));
    w.stat("sched_dispatch", sched::dispatch_name(sc.options().dispatch));
    w.stat("sched_steal", sc.steal() ? 1 : 0);
    w.stat("sched_preempt_us", sc.preempt_us());
    w.stat("sched_started", started);
    w.stat("sched_finished", finished);
    w.stat("sched_dropped", dropped);
    w.stat("sched_parks", parks);
    w.stat("sched_stolen", stolen);
    w.stat("sched_preemptions", preemptions);
    w.stat("sched_in_flight", in_flight);
    w.stat("sched_queued", queued + sc.central_queued());
    w.stat("sched_predictor", sched::predictor_name(sc.predictor()));
    w.stat("sched_likely_fault_started", likely_fault_started);
    uint64_t tp = 0, fp = 0, fn = 0, tn = 0;
    for (const sched::PredictorCounters* p : v_->predictions) {
      tp += p->fault_faulted.read();
      fp += p->fault_clean.read();
      fn += p->clean_faulted.read();
      tn += p->clean_clean.read();
    }
    w.stat("predictor_fault_faulted", tp);
    w.stat("predictor_fault_clean", fp);
    w.stat("predictor_clean_faulted", fn);
    w.stat("predictor_clean_clean", tn);
    if (v_->region == nullptr) {
      w.stat("paging_mode", "local");
      return;
    }
    const paging::PagingTotals t = v_->region->totals();
    w.stat("paging_mode", "far");
    w.stat("paging_transport", v_->transport->name());
    w.stat("paging_memnode_alive", v_->transport->alive() ? 1 : 0);
    w.stat("paging_pages", t.pages);
    w.stat("paging_frames", t.frames);
    w.stat("paging_resident", t.resident);
    w.stat("paging_hits", t.pins);
    w.stat("paging_faults", t.faults);
    w.stat("paging_zero_fills", t.zero_fills);
    w.stat("paging_shared_waits", t.shared_waits);
    w.stat("paging_evictions", t.evictions);
    w.stat("paging_writebacks", t.writebacks);
    w.stat("paging_errors", t.errors);
    w.stat("paging_frame_waits", t.frame_waits);
    w.stat("paging_bounce_waits", t.bounce_waits);
    w.stat("paging_bytes_read", t.bytes_read);
    w.stat("paging_bytes_written", t.bytes_written);
    w.stat("paging_qp_full_retries", t.full_retries);
    w.stat("paging_fetch_p50_ns", latency_percentile(t, 0.5));
    w.stat("paging_fetch_p99_ns", latency_percentile(t, 0.99));
  }

 private:
  const ServerView* v_;
};

/// What one request carries through the scheduler: who sent it, then the datagram.
struct RequestHeader {
  net::UdpPeer from;
  uint32_t len;
};

/// The calling thread's core: its network stack (replies leave through it) and clock. A fiber
/// that moved reads the core it runs on now.
struct CoreContext {
  net::Stack* stack = nullptr;
  paging::PagingCore* paging = nullptr;
  sched::CoreScheduler* sched = nullptr;
  CoarseClock* clock = nullptr;
  sched::PredictorCounters* predictions = nullptr;
};
thread_local CoreContext tls_core;

/// Classifies requests before they run (sched.predictor): a GET whose keys are not all likely
/// resident is fault-likely. Shared by every core.
class KvPredictor {
 public:
  KvPredictor(sched::Scheduler& sched, Store& store, uint32_t window)
      : sched_(sched), store_(store), history_(window) {
    // The history's own key: its slots must not be collidable either (a flood of crafted keys
    // would make every request look recent or every one a fault).
    FM_CHECK_MSG(random_hash_key(&history_key_), "libsodium could not initialize its RNG");
  }

  /// `payload` is the UDP payload (frame header + command). `local` is the core's unpublished
  /// history count. Only get/gets are classified; other commands are predicted fault-free.
  bool likely_fault(std::span<const uint8_t> payload, CoarseClock& clock, uint32_t& local) {
    const sched::Predictor mode = sched_.predictor();
    if (mode == sched::Predictor::kNone || payload.size() <= kFrameHeaderBytes) return false;
    std::string_view line(reinterpret_cast<const char*>(payload.data()) + kFrameHeaderBytes,
                          payload.size() - kFrameHeaderBytes);
    if (const size_t eol = line.find('\r'); eol != std::string_view::npos) line = line.substr(0, eol);
    size_t pos;
    if (line.starts_with("get ")) pos = 4;
    else if (line.starts_with("gets ")) pos = 5;
    else return false;
    bool fault = false;
    while (pos < line.size()) {
      while (pos < line.size() && line[pos] == ' ') ++pos;
      size_t end = pos;
      while (end < line.size() && line[end] != ' ') ++end;
      if (end == pos) break;
      const std::string_view key = line.substr(pos, end - pos);
      pos = end;
      if (mode == sched::Predictor::kPageTable) {
        if (!store_.likely_resident(key, clock.now())) {
          fault = true;
          break;  // one non-resident key decides
        }
      } else {
        const uint64_t h = hash_key(key, history_key_);
        if (!history_.likely_resident(h)) fault = true;
        history_.touch(h, local);  // every key of the request is now recent
      }
    }
    return fault;
  }

 private:
  static constexpr size_t kFrameHeaderBytes = 8;
  sched::Scheduler& sched_;
  Store& store_;
  sched::HistoryPredictor history_;
  HashKey history_key_;
};

/// The key-value app as the scheduler sees it: each fiber slot owns a protocol session (its reply
/// buffer must not be shared by two requests that interleave at fetch boundaries).
class KvApp : public sched::App {
 public:
  void serve(sched::Fiber& fiber, sched::Request& req) override {
    RequestHeader h;
    std::memcpy(&h, req.bytes, sizeof(h));
    auto* session = static_cast<Session*>(fiber.app_state);
    session->handle_datagram(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(req.bytes) +
                                                          sizeof(h), h.len),
                             tls_core.clock->now(), &KvApp::emit, &h.from);
    // The core running it now counts how the prediction fared (it may not be the one that made it).
    if (tls_core.sched->parent().predictor() != sched::Predictor::kNone) {
      tls_core.predictions->record(req.likely_fault, fiber.waits > 0);
    }
  }

 private:
  /// Replies leave through the stack of the core the fiber runs on now.
  static void emit(void* ctx, std::span<const uint8_t> datagram) {
    tls_core.stack->send_udp(*static_cast<const net::UdpPeer*>(ctx), datagram);
  }
};

/// One core's glue: NIC datagrams become scheduler requests; the scheduler runs them in fibers.
class KvCore : public net::UdpHandler, public QueueSet {
 public:
  KvCore(net::Stack* stack, paging::PagingCore* pc, sched::CoreScheduler* sched,
         KvPredictor* predictor)
      : ctx_{stack, pc, sched, &clock_, &predictions_}, predictor_(predictor) {}

  void set_stack(net::Stack* s) { ctx_.stack = s; }

  void on_udp(net::Stack&, const net::UdpPeer& from, std::span<const uint8_t> payload) override {
    if (payload.size() + sizeof(RequestHeader) > sched::Request::kBytes) {
      dropped_oversize_.add();  // cannot happen with a 1500-byte MTU; counted if it does
      return;
    }
    sched::Request* r = ctx_.sched->acquire();
    if (r == nullptr) {
      no_request_.add();
      return;
    }
    const RequestHeader h{from, uint32_t(payload.size())};
    std::memcpy(r->bytes, &h, sizeof(h));
    std::memcpy(r->bytes + sizeof(h), payload.data(), payload.size());
    r->len = uint32_t(sizeof(h) + payload.size());
    r->likely_fault = predictor_ && predictor_->likely_fault(payload, clock_, history_local_);
    ctx_.sched->submit(r);  // a full queue drops and counts
  }

  /// One pass over this queue set, by whichever worker owns it now: NIC in, completions in,
  /// fibers run, replies out.
  uint32_t poll() override {
    tls_core = ctx_;
    current_paging_core() = ctx_.paging;
    uint32_t work = ctx_.stack->poll();
    if (ctx_.paging) work += ctx_.paging->poll();
    work += ctx_.sched->poll();
    ctx_.stack->flush();
    return work;
  }
  QueueProbe probe() const override {
    QueueProbe p;
    // Waiting first: an enqueue between the two reads then counts as taken (no false alarm).
    p.waiting = ctx_.sched->queued();
    p.enqueued = ctx_.sched->enqueued();
    p.fetches = ctx_.sched->parked();
    p.in_flight = ctx_.sched->in_flight();
    return p;
  }
  void set_accepting(bool on) override { ctx_.sched->set_accepting(on); }

  uint64_t no_request() const { return no_request_.read(); }
  const sched::PredictorCounters& predictions() const { return predictions_; }

 private:
  CoreContext ctx_;
  KvPredictor* predictor_;
  uint32_t history_local_ = 0;
  sched::PredictorCounters predictions_;
  CoarseClock clock_;
  Counter no_request_;
  Counter dropped_oversize_;
};

/// What the control handlers read and change. Everything outlives the control server.
struct ControlRefs {
  CoreAllocator& alloc;
  sched::Scheduler& sched;
  const std::vector<std::unique_ptr<CoreLoop>>& loops;
  const std::vector<std::unique_ptr<net::Stack>>& stacks;
  const std::vector<std::unique_ptr<KvCore>>& sets;
  Session& stats_session;  // used by the control thread only, for "stats"
  const config::ServerConfig& cfg;
};

nlohmann::json cores_json(const CoreAllocator& a) {
  return {{"active", a.active()}, {"min", a.min()},       {"max", a.max()},
          {"workers", a.workers()}, {"auto", a.automatic()},
          {"park", a.park_mode() == ParkMode::kSleep ? "sleep" : "spin"}};
}

nlohmann::json sched_json(const sched::Scheduler& s) {
  const sched::SchedOptions& o = s.options();
  return {{"faults", sched::fault_mode_name(s.faults())},
          {"steal", s.steal()},
          {"predictor", sched::predictor_name(s.predictor())},
          {"preempt_us", s.preempt_us()},
          {"dispatch", sched::dispatch_name(o.dispatch)},
          {"dispatcher", o.dispatcher == sched::DispatcherRole::kWorker ? "worker" : "dedicated"},
          {"dispatch_bound", o.dispatch_bound},
          {"max_in_flight", o.max_in_flight},
          {"queue_depth", o.queue_depth},
          {"stack_kb", o.stack_kb}};
}

nlohmann::json per_core_json(const ControlRefs& r) {
  nlohmann::json cores = nlohmann::json::array();
  for (uint16_t i = 0; i < r.alloc.workers(); ++i) {
    const WorkerInfo w = r.alloc.worker_info(i);
    const sched::CoreScheduler& cs = r.sched.core(CoreId{i});
    const QueueProbe p = r.sets[i]->probe();
    const CoreStats& ls = r.loops[i]->stats();
    const auto& nc = r.stacks[i]->counters();
    cores.push_back({{"core", i},
                     {"lcore", r.loops[i]->lcore()},
                     {"state", w.parked ? "parked" : (w.active ? "active" : "parking")},
                     {"queues", w.sets},
                     {"in_flight", p.in_flight},
                     {"queued", p.waiting},
                     {"fetches", p.fetches},
                     {"served", cs.counters().finished.read()},
                     {"rx_packets", nc.rx_packets.read()},
                     {"tx_packets", nc.tx_packets.read()},
                     {"drops", nc.total_drops()},
                     {"stolen", cs.counters().stolen_new.read() + cs.counters().stolen_ready.read()},
                     {"parks", cs.counters().parks.read()},
                     {"preemptions", cs.counters().preemptions.read()},
                     {"busy_cycles", w.busy_cycles},
                     {"loops", ls.loops.read()},
                     {"worker_parks", w.parks},
                     {"worker_wakes", w.wakes},
                     {"handoffs", w.handoffs}});
  }
  return cores;
}

/// "stats" as memcached answers it (the kv app's, the network's, the scheduler's and paging's
/// lines), parsed into name -> value.
nlohmann::json server_stats_json(Session& session) {
  static constexpr uint8_t kRequest[] = {0, 1, 0, 0, 0, 1, 0, 0, 's', 't', 'a', 't', 's', '\r', '\n'};
  std::string text;
  session.handle_datagram(std::span<const uint8_t>(kRequest, sizeof(kRequest)), int64_t(::time(nullptr)),
                          [](void* ctx, std::span<const uint8_t> d) {
                            if (d.size() > 8) {
                              static_cast<std::string*>(ctx)->append(
                                  reinterpret_cast<const char*>(d.data()) + 8, d.size() - 8);
                            }
                          },
                          &text);
  nlohmann::json out = nlohmann::json::object();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find("\r\n", pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 2;
    if (!line.starts_with("STAT ")) continue;
    line.remove_prefix(5);
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos) continue;
    const std::string name(line.substr(0, sp));
    const std::string value(line.substr(sp + 1));
    char* end = nullptr;
    const unsigned long long n = std::strtoull(value.c_str(), &end, 10);
    if (!value.empty() && end && *end == '\0' && value[0] != '-') out[name] = uint64_t(n);
    else out[name] = value;
  }
  return out;
}

void add_control_handlers(ControlServer& c, const ControlRefs& r) {
  using nlohmann::json;
  c.add("status", "active/min/max cores, each core's state and queues, the scheduler's switches",
        [r](const json&) -> Result<json> {
          return json{{"cores", cores_json(r.alloc)}, {"per_core", per_core_json(r)},
                      {"sched", sched_json(r.sched)}};
        });
  c.add("cores.set", "set any of active, min, max (active needs auto off)",
        [r](const json& q) -> Result<json> {
          // Every argument is parsed before anything changes.
          const int64_t workers = r.alloc.workers();
          std::optional<uint16_t> args[3];  // active, min, max
          const char* names[3] = {"active", "min", "max"};
          for (int i = 0; i < 3; ++i) {
            if (!q.contains(names[i])) continue;
            auto v = control_int_arg(q, names[i], 1, workers);
            if (!v) return v.status();
            args[i] = uint16_t(*v);
          }
          const auto& [active, min, max] = args;
          if (!active && !min && !max) return error(Errc::kInvalidArgument, "give active, min and/or max");
          // Widen max before min and narrow it after, so that a pair given together is checked
          // as a pair.
          if (max && *max >= r.alloc.max()) {
            if (Status s = r.alloc.set_max(*max); !s) return s;
          }
          if (min) {
            if (Status s = r.alloc.set_min(*min); !s) return s;
          }
          if (max) {
            if (Status s = r.alloc.set_max(*max); !s) return s;
          }
          if (active) {
            if (Status s = r.alloc.set_active(*active); !s) return s;
          }
          return cores_json(r.alloc);
        });
  c.add("auto.set", "automatic core allocation on/off: {\"on\": true|false}",
        [r](const json& q) -> Result<json> {
          auto on = control_bool_arg(q, "on");
          if (!on) return on.status();
          r.alloc.set_automatic(*on);
          return cores_json(r.alloc);
        });
  c.add("stats", "server statistics (as memcached's stats) and per-core counters",
        [r](const json&) -> Result<json> {
          return json{{"server", server_stats_json(r.stats_session)}, {"per_core", per_core_json(r)}};
        });
  c.add("sched.get", "the scheduler's options", [r](const json&) -> Result<json> {
    return sched_json(r.sched);
  });
  c.add("sched.set",
        "change faults (sync|async), steal (bool), predictor (none|history|pagetable), "
        "preempt_us while serving; the others need a restart",
        [r](const json& q) -> Result<json> {
          static const char* kRestart[] = {"dispatch", "dispatcher", "dispatch_bound",
                                           "max_in_flight", "queue_depth", "stack_kb",
                                           "history_window", "dispatcher_lcore"};
          // Check everything before changing anything.
          std::optional<sched::FaultMode> faults;
          std::optional<sched::Predictor> predictor;
          std::optional<bool> steal;
          std::optional<uint32_t> preempt;
          for (auto it = q.begin(); it != q.end(); ++it) {
            const std::string& k = it.key();
            if (k == "v" || k == "id" || k == "cmd") continue;
            for (const char* x : kRestart) {
              if (k == x) {
                return error(Errc::kRestartRequired,
                             "sched." + k + " cannot change while serving: set it in the config "
                             "file and restart");
              }
            }
            if (k == "faults") {
              auto v = control_string_arg(q, k);
              if (!v) return v.status();
              if (*v == "sync") faults = sched::FaultMode::kSync;
              else if (*v == "async") faults = sched::FaultMode::kAsync;
              else return error(Errc::kInvalidArgument, "faults must be \"sync\" or \"async\", not \"" + *v + "\"");
            } else if (k == "predictor") {
              auto v = control_string_arg(q, k);
              if (!v) return v.status();
              if (*v == "none") predictor = sched::Predictor::kNone;
              else if (*v == "history") predictor = sched::Predictor::kHistory;
              else if (*v == "pagetable") predictor = sched::Predictor::kPageTable;
              else return error(Errc::kInvalidArgument, "predictor must be none, history or pagetable, not \"" + *v + "\"");
            } else if (k == "steal") {
              auto v = control_bool_arg(q, k);
              if (!v) return v.status();
              steal = *v;
            } else if (k == "preempt_us") {
              auto v = control_int_arg(q, k, 0, 1000000);
              if (!v) return v.status();
              preempt = uint32_t(*v);
            } else {
              return error(Errc::kInvalidArgument, "unknown scheduler option \"" + k +
                                                       "\" (faults, steal, predictor, preempt_us)");
            }
          }
          if (faults) r.sched.set_faults(*faults);
          if (predictor) r.sched.set_predictor(*predictor);
          if (steal) r.sched.set_steal(*steal);
          if (preempt) r.sched.set_preempt_us(*preempt);
          return sched_json(r.sched);
        });
  c.add("decisions", "the last allocation decisions: {\"last\": N}", [r](const json& q) -> Result<json> {
    int64_t last = 20;
    if (q.contains("last")) {
      auto v = control_int_arg(q, "last", 1, 256);
      if (!v) return v.status();
      last = *v;
    }
    json list = json::array();
    for (const AllocDecision& d : r.alloc.decisions(size_t(last))) {
      list.push_back({{"seq", d.seq},
                      {"t_us", d.t_us},
                      {"action", d.action},
                      {"core", d.worker},
                      {"active", d.active},
                      {"signal_us", d.signal_us},
                      {"utilisation", d.utilisation},
                      {"reason", d.reason},
                      {"wake_us", d.wake_us},
                      {"first_work_us", d.first_work_us}});
    }
    return json{{"decisions", list}, {"total", r.alloc.decision_count()}};
  });
}

/// Helper threads (the control socket's, the transport's watcher) must not share a CPU with a
/// dataplane core: a thread inherits its creator's affinity, and after EAL init the main thread
/// is pinned to core 0's CPU. Threads started inside run_on_helper_cpus() get the CPUs the
/// process was allowed before EAL init minus the dataplane lcores (all of them if none is left).
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
  auto run_on_helper_cpus(Fn&& fn) {
    cpu_set_t mine;
    const bool moved = ok_ && ::pthread_getaffinity_np(::pthread_self(), sizeof(mine), &mine) == 0 &&
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

/// Connects the configured transport and creates the far region sized by [kv] and [paging].
Status open_far_memory(const config::ServerConfig& cfg, uint16_t ncores,
                       std::unique_ptr<paging::Transport>& transport,
                       std::unique_ptr<paging::Region>& region) {
  auto addr = paging::parse_channel_address(cfg.paging.memnode, "paging.memnode");
  if (!addr) return addr.status();
  const int timeout = int(cfg.paging.connect_timeout_ms);
  if (cfg.paging.transport == paging::TransportKind::kEmulated) {
    auto t = paging::EmulatedTransport::connect(cfg.paging.emulated, *addr, ncores, timeout,
                                                paging::tsc_clock());
    if (!t) return t.status();
    transport = std::move(t.value());
  } else {
    auto t = paging::connect_verbs(cfg.paging.verbs, *addr, ncores, timeout);
    if (!t) return t.status();
    transport = std::move(t.value());
  }
  const uint64_t bytes = uint64_t(cfg.store.memory_mb) << 20;
  const uint64_t pages = bytes / paging::kPageSize;
  const uint64_t frames = cfg.paging.local_mb > 0
                              ? (uint64_t(cfg.paging.local_mb) << 20) / paging::kPageSize
                              : uint64_t(double(pages) * cfg.paging.local_fraction + 0.5);
  auto r = paging::Region::create(bytes, frames, *transport, ncores, paging::tsc_clock(),
                                  cfg.store.item_size_max);
  if (!r) return r.status();
  region = std::move(r.value());
  return Status::ok();
}

int run(const config::ServerConfig& cfg) {
  HelperCpus helper_cpus;
  EalOptions eal = cfg.eal;
  const bool dedicated_dispatcher = cfg.sched.dispatch == sched::Dispatch::kCentral &&
                                    cfg.sched.dispatcher == sched::DispatcherRole::kDedicated;
  if (dedicated_dispatcher) eal.lcores.push_back(uint32_t(cfg.sched.dispatcher_lcore));
  if (cfg.port.pci.empty()) eal.vdevs.push_back(cfg.port.vdev);
  else eal.pci_allow.push_back(cfg.port.pci);
  auto ei = eal_init(eal, "kvserver");
  if (!ei) {
    FM_LOG_ERROR(kTag, "{}", ei.status().message());
    return 1;
  }
  install_stop_signals();
  helper_cpus.exclude(eal.lcores);
  const uint16_t ncores = uint16_t(cfg.eal.lcores.size());
  auto port = net::Port::open(cfg.port, ncores);
  if (!port) {
    FM_LOG_ERROR(kTag, "{}", port.status().message());
    eal_cleanup();
    return 1;
  }
  std::vector<std::unique_ptr<KvCore>> handlers;  // destroyed after the stacks
  std::vector<std::unique_ptr<net::Stack>> stacks;
  // Start-up failed after the port opened: stacks go first (they hold its mbufs), then the port.
  auto give_up = [&](const std::string& why) {
    FM_LOG_ERROR(kTag, "{}", why);
    stacks.clear();
    (*port)->close();
    eal_cleanup();
    return 1;
  };
  // A reply datagram larger than the port carries would be dropped on every full reply.
  if (Status st = net::check_udp_payload_fits(cfg.protocol.udp_max_payload, (*port)->mtu(),
                                              "kv.udp_max_payload", (*port)->name());
      !st) {
    return give_up(st.message());
  }
  net::Identity me{(*port)->mac(), cfg.net.ip, cfg.net.udp_port};
  if (!cfg.net.mac.empty()) me.mac = net::parse_mac(cfg.net.mac, "net.mac").value();

  // Far memory: connect to the memory node, build the region, put the store's arena in it.
  std::unique_ptr<paging::Transport> transport;
  std::unique_ptr<paging::Region> region;
  std::unique_ptr<Arena> arena;
  if (cfg.paging.mode == paging::PagingMode::kFar) {
    auto far = helper_cpus.run_on_helper_cpus(
        [&] { return open_far_memory(cfg, ncores, transport, region); });
    if (!far) return give_up(far.message());
    arena = std::make_unique<FarArena>(*region);
  }
  auto store = Store::create(cfg.store, std::move(arena));
  if (!store) return give_up(store.status().message());
  ServerView view;
  view.region = region.get();
  view.transport = transport.get();
  const ServerStats server_stats(&view);
  KvApp app;
  auto scheduler = sched::Scheduler::create(cfg.sched, ncores, app);
  if (!scheduler) return give_up(scheduler.status().message());
  view.scheduler = scheduler->get();
  // The history predictor counts a key as resident when it was accessed within the last F
  // accesses, F = the local frames: since then at most F distinct pages were touched, so under
  // CLOCK (~LRU) its page is still in. sched.history_window overrides.
  const uint32_t window =
      cfg.sched.history_window
          ? cfg.sched.history_window
          : uint32_t(std::max<uint64_t>(64, region ? region->frame_count() : 1024));
  KvPredictor predictor(**scheduler, **store, window);
  // One protocol session per fiber slot (their reply buffers are touched only when used).
  std::vector<std::unique_ptr<Session>> sessions;
  for (uint16_t i = 0; i < ncores; ++i) {
    sched::CoreScheduler& cs = (*scheduler)->core(CoreId{i});
    for (size_t f = 0; f < cs.fiber_slots(); ++f) {
      sessions.push_back(std::make_unique<Session>(**store, cfg.protocol, &server_stats));
      cs.fiber_slot(f).app_state = sessions.back().get();
    }
  }
  std::vector<std::unique_ptr<sched::FaultWait>> fault_waits;  // outlive the loops
  std::vector<std::unique_ptr<CoreLoop>> loops;
  std::vector<CoreLoop*> loop_ptrs;
  for (uint16_t i = 0; i < ncores; ++i) {
    paging::PagingCore* pc = region ? &region->core(CoreId{i}) : nullptr;
    sched::CoreScheduler* cs = &(*scheduler)->core(CoreId{i});
    // Installed in both fault modes: the hooks read the mode, which may change while serving.
    if (pc) fault_waits.push_back(std::make_unique<sched::FaultWait>(*pc, *cs));
    // Completions are polled between fibers too, so a burst of new requests cannot delay them.
    if (pc) cs->set_between(&paging::PagingCore::poll_hook, pc);
    handlers.push_back(std::make_unique<KvCore>(nullptr, pc, cs, &predictor));
    stacks.push_back(std::make_unique<net::Stack>(**port, i, me, cfg.net, handlers.back().get()));
    handlers.back()->set_stack(stacks.back().get());
    view.stacks.push_back(stacks.back().get());
    view.scheds.push_back(cs);
    view.predictions.push_back(&handlers.back()->predictions());
  }
  // One worker per lcore; worker i's home queue set is NIC queue i with its completion queue and
  // run queues, polled together in one loop (Shenango-style). A parked worker's sets are polled
  // by active ones.
  std::vector<QueueSet*> set_ptrs;
  for (auto& h : handlers) set_ptrs.push_back(h.get());
  auto alloc = CoreAllocator::create(cfg.alloc, set_ptrs);
  if (!alloc) return give_up(alloc.status().message());
  for (uint16_t i = 0; i < ncores; ++i) {
    loops.push_back(std::make_unique<CoreLoop>(CoreId{i}, cfg.eal.lcores[i], cfg.idle));
    loops.back()->add_poller((*alloc)->poller(i));
    loop_ptrs.push_back(loops.back().get());
  }
  if (dedicated_dispatcher) {
    // The dispatcher's own core only moves requests from the central queue to the workers.
    loops.push_back(std::make_unique<CoreLoop>(CoreId{ncores}, uint32_t(cfg.sched.dispatcher_lcore),
                                               cfg.idle));
    loops.back()->add_poller({"dispatch", &sched::Scheduler::dispatch_hook, scheduler->get()});
    loop_ptrs.push_back(loops.back().get());
  }
  // The control socket: core allocation, scheduler switches and statistics while serving.
  std::unique_ptr<ControlServer> control;
  Session control_session(**store, cfg.protocol, &server_stats);
  if (cfg.control) {
    auto c = ControlServer::open(cfg.control_socket, "kvserver");
    if (!c) return give_up(c.status().message() + " (or set control.enabled = false)");
    control = std::move(c.value());
    const ControlRefs refs{**alloc, **scheduler, loops, stacks, handlers, control_session, cfg};
    add_control_handlers(*control, refs);
    if (Status cs = helper_cpus.run_on_helper_cpus([&] { return control->start(); }); !cs) {
      return give_up(cs.message());
    }
    FM_LOG_INFO(kTag, "control socket {} (tools: build/tools/dpctl/dpctl --socket {})",
                cfg.control_socket, cfg.control_socket);
  }
  FM_LOG_INFO(kTag, "serving memcached UDP on {}:{} (mac {}) with {} core(s), {} active",
              me.ip.to_string(), me.udp_port, me.mac.to_string(), ncores, (*alloc)->active());
  std::fflush(stderr);
  Status st = run_cores(loop_ptrs);
  if (!st) FM_LOG_ERROR(kTag, "{}", st.message());
  if (control) control->stop();  // its handlers read what is torn down below

  // Every core has stopped polling: only now is it safe to close the port (memif).
  for (uint16_t i = 0; i < ncores; ++i) {
    const auto& nc = stacks[i]->counters();
    const auto& cs = loops[i]->stats();
    std::fprintf(stderr,
                 "core %u (lcore %u): rx %lu tx %lu udp %lu drops %lu arp %lu icmp %lu | loops %lu "
                 "busy %lu sleeps %lu\n",
                 i, loops[i]->lcore(), (unsigned long)nc.rx_packets.read(),
                 (unsigned long)nc.tx_packets.read(), (unsigned long)nc.udp_in.read(),
                 (unsigned long)nc.total_drops(), (unsigned long)nc.arp_replies.read(),
                 (unsigned long)nc.icmp_replies.read(), (unsigned long)cs.loops.read(),
                 (unsigned long)cs.busy_loops.read(), (unsigned long)cs.sleeps.read());
    const auto& sc = view.scheds[i]->counters();
    std::fprintf(stderr,
                 "  sched: submitted %lu dropped %lu started %lu finished %lu parks %lu wakes %lu "
                 "requeues %lu stolen %lu preempted %lu in-flight %u queued %u; no request buffer "
                 "%lu\n",
                 (unsigned long)sc.submitted.read(), (unsigned long)sc.dropped.read(),
                 (unsigned long)sc.started.read(), (unsigned long)sc.finished.read(),
                 (unsigned long)sc.parks.read(), (unsigned long)sc.wakes.read(),
                 (unsigned long)sc.requeues.read(),
                 (unsigned long)(sc.stolen_new.read() + sc.stolen_ready.read()),
                 (unsigned long)sc.preemptions.read(), view.scheds[i]->in_flight(), view.scheds[i]->queued(),
                 (unsigned long)handlers[i]->no_request());
    if ((*scheduler)->predictor() != sched::Predictor::kNone) {
      const sched::PredictorCounters& p = handlers[i]->predictions();
      std::fprintf(stderr,
                   "  predictor %s: fault-likely %lu (faulted %lu), fault-free %lu (faulted %lu)\n",
                   sched::predictor_name((*scheduler)->predictor()),
                   (unsigned long)(p.fault_faulted.read() + p.fault_clean.read()),
                   (unsigned long)p.fault_faulted.read(),
                   (unsigned long)(p.clean_faulted.read() + p.clean_clean.read()),
                   (unsigned long)p.clean_faulted.read());
    }
    for (size_t r = 0; r < net::kDropReasonCount; ++r) {
      if (uint64_t d = nc.drops[r].read())
        std::fprintf(stderr, "  drop %s: %lu\n", net::drop_reason_name(net::DropReason(r)), (unsigned long)d);
    }
  }
  if (region) {
    const paging::PagingTotals t = region->totals();
    std::fprintf(stderr,
                 "paging: %lu faults, %lu zero-fills, %lu shared waits, %lu evictions, %lu "
                 "write-backs, %lu errors; fetch p50 %lu ns p99 %lu ns\n",
                 (unsigned long)t.faults, (unsigned long)t.zero_fills, (unsigned long)t.shared_waits,
                 (unsigned long)t.evictions, (unsigned long)t.writebacks, (unsigned long)t.errors,
                 (unsigned long)latency_percentile(t, 0.5), (unsigned long)latency_percentile(t, 0.99));
  }
  stacks.clear();
  (*port)->close();
  eal_cleanup();
  return st ? 0 : 1;
}

}  // namespace
}  // namespace fm::kv

int main(int argc, char** argv) {
  CLI::App app{"kvserver: memcached-UDP key-value server on DPDK polling cores"};
  std::string config_path;
  bool print_config = false;
  app.add_option("--config", config_path,
                 "TOML config file (default: built-in defaults, identical to config/kvserver.toml)");
  app.add_flag("--print-config", print_config, "print the effective configuration and exit");
  CLI11_PARSE(app, argc, argv);

  fm::config::ServerConfig cfg;
  if (!config_path.empty()) {
    auto loaded = fm::config::load_server_config(config_path);
    if (!loaded) {
      std::fprintf(stderr, "kvserver: %s\n", loaded.status().message().c_str());
      return 1;
    }
    cfg = std::move(loaded.value());
  }
  if (fm::Status st = fm::kv::validate(cfg.store, cfg.protocol); !st) {
    std::fprintf(stderr, "kvserver: %s%s%s\n", config_path.c_str(), config_path.empty() ? "" : ": ",
                 st.message().c_str());
    return 1;
  }
  const std::string effective = fm::config::to_toml(cfg);
  if (print_config) {
    std::fputs(effective.c_str(), stdout);
    return 0;
  }
  fm::set_log_level(cfg.log_level);
  FM_LOG_INFO("config", "effective configuration ({}):\n{}",
              config_path.empty() ? "built-in defaults" : config_path, effective);
  return fm::kv::run(cfg);
}
