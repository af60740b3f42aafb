// The key-value app's side of the server runtime.
#include "kvapp/server_app.h"

#include <algorithm>
#include <string_view>

#include "dataplane/check.h"
#include "dataplane/tsc.h"
#include "kvapp/protocol.h"
#include "kvapp/tuning.h"

namespace fm::kv {
namespace {

uint32_t window_for(const rt::Server& server, uint32_t configured) {
  // A key accessed within the last F accesses, F = the local frames, is still resident under
  // CLOCK (~LRU): since then at most F distinct pages were touched.
  if (configured) return configured;
  const paging::Region* r = server.region();
  return uint32_t(std::max<uint64_t>(64, r ? r->frame_count() : 1024));
}

// A request datagram's text after its frame header; empty when there is none.
std::string_view request_text(std::span<const uint8_t> payload) {
  if (payload.size() <= kUdpFrameHeaderSize) return {};
  return std::string_view(reinterpret_cast<const char*>(payload.data()) + kUdpFrameHeaderSize,
                          payload.size() - kUdpFrameHeaderSize);
}

}  // namespace

KvServerApp::KvServerApp(Store& store, const ProtocolOptions& protocol, rt::Server& server,
                         uint32_t history_window)
    : store_(store),
      protocol_(protocol),
      runtime_stats_(server),
      control_session_(store, protocol, nullptr),
      history_(window_for(server, history_window)) {
  // The history's own key: its slots must not be collidable either (a flood of crafted keys
  // would make every request look recent or every one a fault).
  FM_CHECK_MSG(random_hash_key(&history_key_), "libsodium could not initialize its RNG");
  spin_cycles_ = uint64_t(double(protocol.spin_ns) * 1e-9 * double(tsc_hz_any()));
}

void* KvServerApp::fiber_state(CoreId, size_t) {
  // One session per fiber slot: a reply buffer must not be shared by two requests that
  // interleave at fetch boundaries. Their buffers are touched only when used.
  sessions_.push_back(std::make_unique<Session>(store_, protocol_, &runtime_stats_));
  return sessions_.back().get();
}

void KvServerApp::serve(void* state, std::span<const uint8_t> payload, int64_t now_unix,
                        rt::ReplyFn reply, void* ctx) {
  static_cast<Session*>(state)->handle_datagram(payload, now_unix, reply, ctx);
  if (spin_cycles_ != 0) [[unlikely]] {
    // kv.spin_ns: the request's synthetic work, after its replies were handed over (they go
    // out with the core's next TX burst, as any reply does). No PAUSE in the loop: a dense PAUSE
    // loop is what KVM's pause-loop exiting takes for a lock waiter, and the vCPU would exit to
    // the host as the work it stands for never does.
    const uint64_t until = rdtsc() + spin_cycles_;
    while (rdtsc() < until) {
    }
  }
}

bool KvServerApp::likely_fault(std::span<const uint8_t> payload, sched::Predictor mode,
                               int64_t now_unix, uint32_t& history, rt::FarRanges* fetch) {
  // Only get/gets are classified; other commands are predicted fault-free.
  const std::string_view text = request_text(payload);
  if (text.empty()) return false;
  bool fault = false;
  for_each_get_key(text, [&](std::string_view key) {
    if (mode == sched::Predictor::kPageTable) {
      if (fetch == nullptr) {
        fault = !store_.likely_resident(key, now_unix);
        return !fault;  // one non-resident key decides
      }
      // Prefetch: every key's range that is not resident, so that a multi-get waits for all
      // of its fetches at once rather than for one and then fault by fault.
      rt::FarRange& r = fetch->range[fetch->n];
      if (!store_.likely_resident(key, now_unix, &r.offset, &r.len)) {
        fault = true;
        ++fetch->n;
      }
      return fetch->n < rt::FarRanges::kMax;
    }
    const uint64_t h = hash_key(key, history_key_);
    if (!history_.likely_resident(h)) fault = true;
    history_.touch(h, history);  // every key of the request is now recent
    return true;
  });
  return fault;
}

void KvServerApp::prefetch(std::span<const uint8_t> payload) {
  // A get's first key: a multi-get's others are looked up one after another anyway, and other
  // commands are rare.
  const std::string_view key = first_get_key(request_text(payload));
  if (!key.empty()) store_.prefetch_key(key);
}

void KvServerApp::write_stats(int64_t now_unix, StatSink& out) const {
  control_session_.write_stats(now_unix, out);
}

}  // namespace fm::kv
