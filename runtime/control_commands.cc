// Handlers run on the control thread: they read counters and call the allocator's and the
// scheduler's thread-safe setters, never the cores' state directly.
#include "runtime/control_commands.h"

#include <ctime>
#include <optional>
#include <string>

#include "paging/replicated_transport.h"

namespace fm::rt {
namespace {

using nlohmann::json;

/// Statistics as a JSON object: numbers stay numbers.
class JsonSink final : public StatSink {
 public:
  explicit JsonSink(json& out) : out_(out) {}
  void stat(std::string_view name, uint64_t value) override { out_[std::string(name)] = value; }
  void stat(std::string_view name, std::string_view value) override {
    out_[std::string(name)] = std::string(value);
  }
  void stat_signed(std::string_view name, int64_t value) override {
    out_[std::string(name)] = value;
  }

 private:
  json& out_;
};

json cores_json(const CoreAllocator& a) {
  return {{"active", a.active()},  {"min", a.min()},
          {"max", a.max()},        {"workers", a.workers()},
          {"auto", a.automatic()}, {"park", enum_name(kParkModeNames, a.park_mode())}};
}

json sched_json(const sched::Scheduler& s) {
  const sched::SchedOptions& o = s.options();
  return {{"faults", sched::fault_mode_name(s.faults())},
          {"steal", s.steal()},
          {"predictor", sched::predictor_name(s.predictor())},
          {"prefetch", s.prefetch()},
          {"preempt_us", s.preempt_us()},
          {"dispatch", sched::dispatch_name(o.dispatch)},
          {"dispatcher", sched::dispatcher_role_name(o.dispatcher)},
          {"dispatch_bound", o.dispatch_bound},
          {"max_in_flight", o.max_in_flight},
          {"queue_depth", o.queue_depth},
          {"stack_kb", o.stack_kb}};
}

/// Each core: where it runs, its state and queue sets, then every registry statistic.
json per_core_json(const ControlRefs& r) {
  json cores = json::array();
  for (uint16_t i = 0; i < r.alloc.workers(); ++i) {
    const WorkerInfo w = r.alloc.worker_info(i);
    json c = {{"core", i},
              {"lcore", r.parts.cores[i].loop->lcore()},
              {"state", w.parked ? "parked" : (w.active ? "active" : "parking")},
              {"queues", w.sets}};
    JsonSink sink(c);
    write_core_stats(r.parts, i, sink);
    cores.push_back(std::move(c));
  }
  return cores;
}

json decisions_json(const CoreAllocator& alloc, size_t last) {
  json list = json::array();
  for (const AllocDecision& d : alloc.decisions(last)) {
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
  return json{{"decisions", list}, {"total", alloc.decision_count()}};
}

Result<json> set_cores(CoreAllocator& alloc, const json& q) {
  // Every argument is parsed before anything changes.
  const int64_t workers = alloc.workers();
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
  // Widen max before min and narrow it after, so that a pair given together is checked as a pair.
  if (max && *max >= alloc.max()) {
    if (Status s = alloc.set_max(*max); !s) return s;
  }
  if (min) {
    if (Status s = alloc.set_min(*min); !s) return s;
  }
  if (max) {
    if (Status s = alloc.set_max(*max); !s) return s;
  }
  if (active) {
    if (Status s = alloc.set_active(*active); !s) return s;
  }
  return cores_json(alloc);
}

/// An enum argument spelled as in the config file (the same table: dataplane/enum_names.h).
template <typename E, size_t N>
Result<E> enum_arg(const json& q, const std::string& key, const EnumName<E> (&names)[N]) {
  auto v = control_string_arg(q, key);
  if (!v) return v.status();
  if (auto e = parse_enum(names, *v)) return *e;
  return error(Errc::kInvalidArgument,
               key + " must be one of " + enum_choices(names) + ", not \"" + *v + "\"");
}

Result<json> set_sched(sched::Scheduler& sched, const json& q) {
  static const char* kRestart[] = {"dispatch",       "dispatcher",      "dispatch_bound",
                                   "max_in_flight",  "queue_depth",     "stack_kb",
                                   "history_window", "dispatcher_lcore"};
  // Check everything before changing anything.
  std::optional<sched::FaultMode> faults;
  std::optional<sched::Predictor> predictor;
  std::optional<bool> steal;
  std::optional<bool> prefetch;
  std::optional<uint32_t> preempt;
  for (auto it = q.begin(); it != q.end(); ++it) {
    const std::string& k = it.key();
    if (k == "v" || k == "id" || k == "cmd") continue;
    for (const char* x : kRestart) {
      if (k == x) {
        return error(Errc::kRestartRequired, "sched." + k +
                                                 " cannot change while serving: set it in the "
                                                 "config file and restart");
      }
    }
    if (k == "faults") {
      auto v = enum_arg(q, k, sched::kFaultModeNames);
      if (!v) return v.status();
      faults = *v;
    } else if (k == "predictor") {
      auto v = enum_arg(q, k, sched::kPredictorNames);
      if (!v) return v.status();
      predictor = *v;
    } else if (k == "steal") {
      auto v = control_bool_arg(q, k);
      if (!v) return v.status();
      steal = *v;
    } else if (k == "prefetch") {
      auto v = control_bool_arg(q, k);
      if (!v) return v.status();
      prefetch = *v;
    } else if (k == "preempt_us") {
      auto v = control_int_arg(q, k, 0, 1000000);
      if (!v) return v.status();
      preempt = uint32_t(*v);
    } else {
      return error(Errc::kInvalidArgument,
                   "unknown scheduler option \"" + k +
                       "\" (faults, steal, predictor, prefetch, preempt_us)");
    }
  }
  if (faults) sched.set_faults(*faults);
  if (predictor) sched.set_predictor(*predictor);
  if (steal) sched.set_steal(*steal);
  if (prefetch) sched.set_prefetch(*prefetch);
  if (preempt) sched.set_preempt_us(*preempt);
  return sched_json(sched);
}

/// The memory nodes as the compute side sees them: state, deaths, rejoins, rebuild progress.
json memnodes_json(const ServerParts& parts) {
  json nodes = json::array();
  const auto* r = dynamic_cast<const paging::ReplicatedTransport*>(parts.transport);
  if (r == nullptr) {  // local mode, or one node without recovery
    if (parts.transport == nullptr) return {{"nodes", nodes}};
    nodes.push_back({{"name", "memnode"}, {"state", parts.transport->alive() ? "live" : "dead"}});
    return {{"nodes", std::move(nodes)}, {"recovery", false}};
  }
  for (const paging::NodeInfo& n : r->nodes_info()) {
    nodes.push_back({{"name", n.name},
                     {"state", enum_name(paging::kNodeStateNames, n.state)},
                     {"deaths", n.deaths},
                     {"rejoins", n.rejoins},
                     {"rebuild_pages", n.repair_pages},
                     {"rebuilt", n.repaired},
                     {"lost", n.lost},
                     {"recopied", n.recopied},
                     {"last_rebuild_ms", n.last_repair_ms},
                     {"died_unix_ms", n.died_unix_ms},
                     {"rejoined_unix_ms", n.rejoined_unix_ms},
                     {"rebuilt_unix_ms", n.rebuilt_unix_ms}});
  }
  return {{"nodes", std::move(nodes)},
          {"recovery", true},
          {"replicas", r->placement().replicas},
          {"pages_repaired", r->pages_repaired()},
          {"pages_lost", r->pages_lost()},
          {"reads_reissued", r->reads_reissued()},
          {"writes_degraded", r->writes_degraded()}};
}

}  // namespace

void add_control_commands(ControlServer& c, const ControlRefs& r) {
  c.add("status", "active/min/max cores, each core's state and queues, the scheduler's switches",
        [r](const json&) -> Result<json> {
          return json{{"cores", cores_json(r.alloc)},
                      {"per_core", per_core_json(r)},
                      {"sched", sched_json(r.sched)}};
        });
  c.add("cores.set", "set any of active, min, max (active needs auto off)",
        [r](const json& q) { return set_cores(r.alloc, q); });
  c.add("auto.set", "automatic core allocation on/off: {\"on\": true|false}",
        [r](const json& q) -> Result<json> {
          auto on = control_bool_arg(q, "on");
          if (!on) return on.status();
          r.alloc.set_automatic(*on);
          return cores_json(r.alloc);
        });
  c.add("stats",
        "server statistics (the app's, as memcached's stats, then the runtime's) and per-core "
        "counters",
        [r](const json&) -> Result<json> {
          json server = json::object();
          JsonSink sink(server);
          r.app.write_stats(int64_t(::time(nullptr)), sink);
          write_server_stats(r.parts, sink);
          return json{{"server", std::move(server)}, {"per_core", per_core_json(r)}};
        });
  c.add("sched.get", "the scheduler's options",
        [r](const json&) -> Result<json> { return sched_json(r.sched); });
  c.add("sched.set",
        "change faults (sync|async), steal (bool), predictor (none|history|pagetable), "
        "prefetch (bool), "
        "preempt_us while serving; the others need a restart",
        [r](const json& q) { return set_sched(r.sched, q); });
  c.add("memnodes",
        "the memory nodes: state (live, dead, rebuilding), deaths, rejoins, rebuild progress",
        [r](const json&) -> Result<json> { return memnodes_json(r.parts); });
  c.add("decisions", "the last allocation decisions: {\"last\": N}",
        [r](const json& q) -> Result<json> {
          int64_t last = 20;
          if (q.contains("last")) {
            auto v = control_int_arg(q, "last", 1, 256);
            if (!v) return v.status();
            last = *v;
          }
          return decisions_json(r.alloc, size_t(last));
        });
}

}  // namespace fm::rt
