// The key-value app as the server runtime runs it: a protocol session per fiber slot, the fault
// predictor, and memcached's "stats" with the runtime's statistics appended.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kvapp/hash.h"
#include "kvapp/options.h"
#include "kvapp/session.h"
#include "kvapp/store.h"
#include "runtime/app.h"
#include "runtime/server.h"
#include "sched/predictor.h"

namespace fm::kv {

class KvServerApp final : public rt::UdpApp {
 public:
  /// `history_window`: recent key accesses the history predictor counts as resident (0: the
  /// local frames, at least 64; 1024 in local mode). `store` and `server` outlive this object.
  KvServerApp(Store& store, const ProtocolOptions& protocol, rt::Server& server,
              uint32_t history_window);

  void* fiber_state(CoreId core, size_t slot) override;
  void serve(void* state, std::span<const uint8_t> payload, int64_t now_unix, rt::ReplyFn reply,
             void* ctx) override;
  bool likely_fault(std::span<const uint8_t> payload, sched::Predictor mode, int64_t now_unix,
                    uint32_t& history, rt::FarRanges* fetch) override;
  void prefetch(std::span<const uint8_t> payload) override;
  void prefetch_burst() override { store_.prefetch_burst(); }
  void burst_served() override { store_.end_burst(); }
  void write_stats(int64_t now_unix, StatSink& out) const override;
  bool forget_far(const std::function<bool(uint64_t offset, uint32_t len)>& gone,
                  int64_t now_unix) override {
    store_.drop_lost(gone, now_unix);
    return true;
  }

 private:
  /// memcached's "stats" ends with the runtime's lines.
  class RuntimeStats final : public StatsHook {
   public:
    explicit RuntimeStats(const rt::Server& s) : server_(s) {}
    void append_stats(StatSink& out) const override { server_.write_stats(out); }

   private:
    const rt::Server& server_;
  };

  Store& store_;
  ProtocolOptions protocol_;
  RuntimeStats runtime_stats_;
  std::vector<std::unique_ptr<Session>> sessions_;
  Session control_session_;  // the control thread's, for dpctl's stats: the app's lines only
  sched::HistoryPredictor history_;
  HashKey history_key_;
  uint64_t spin_cycles_ = 0;  // kv.spin_ns in TSC cycles
};

}  // namespace fm::kv
