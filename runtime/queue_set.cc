// The queue set's glue between the NIC stack, the paging core and the scheduler.
#include "runtime/queue_set.h"

#include <cstring>
#include <ctime>

#include "dataplane/tsc.h"

namespace fm::rt {
namespace {

/// What a request carries through the scheduler ahead of the datagram: who sent it.
struct RequestHeader {
  net::UdpPeer from;
  uint32_t len;
};
static_assert(sizeof(RequestHeader) < sched::Request::kBytes);

}  // namespace

thread_local ServerQueueSet::Context ServerQueueSet::tls_;

// Replies leave through the stack of the core that runs the request when it sends them.
void ServerQueueSet::send_reply(void* peer, std::span<const uint8_t> datagram) {
  tls_.stack->send_udp(*static_cast<const net::UdpPeer*>(peer), datagram);
}

CoarseClock::CoarseClock() : refresh_(tsc_hz() / 100), now_(int64_t(::time(nullptr))) {}

int64_t CoarseClock::now() {
  const uint64_t t = rdtsc();
  if (t - last_tsc_ > refresh_) {
    last_tsc_ = t;
    now_ = int64_t(::time(nullptr));
  }
  return now_;
}

void FiberApp::serve(sched::Fiber& fiber, sched::Request& req) {
  RequestHeader h;
  std::memcpy(&h, req.bytes, sizeof(h));
  const auto* payload = reinterpret_cast<const uint8_t*>(req.bytes) + sizeof(h);
  app_.serve(fiber.app_state, std::span<const uint8_t>(payload, h.len),
             ServerQueueSet::tls_.clock->now(), &ServerQueueSet::send_reply, &h.from);
  // The core running it now counts how the prediction fared (it may not be the one that made it).
  const ServerQueueSet::Context& now = ServerQueueSet::tls_;
  if (now.sched->parent().predictor() != sched::Predictor::kNone) {
    now.predictions->record(req.likely_fault, fiber.waits > 0);
  }
}

ServerQueueSet::ServerQueueSet(paging::PagingCore* paging, sched::CoreScheduler* sched, UdpApp& app)
    : app_(app) {
  ctx_.paging = paging;
  ctx_.sched = sched;
  ctx_.clock = &clock_;
  ctx_.predictions = &predictions_;
}

std::unique_ptr<sched::FaultWait> attach_paging(paging::PagingCore& paging,
                                                sched::CoreScheduler& sched) {
  auto hooks = std::make_unique<sched::FaultWait>(paging, sched);
  sched.set_between(&paging::PagingCore::poll_background_hook, &paging);
  return hooks;
}

void ServerQueueSet::set_stack(net::Stack* s) { ctx_.stack = s; }

void ServerQueueSet::on_udp(net::Stack&, const net::UdpPeer& from,
                            std::span<const uint8_t> payload) {
  if (payload.size() + sizeof(RequestHeader) > sched::Request::kBytes) {
    counters_.oversize.add();  // cannot happen with a 1500-byte MTU; counted if it does
    return;
  }
  if (sched::Fiber* slot = ctx_.sched->idle_slot()) {
    // Nothing waits and nothing can park: served straight from the frame, no request buffer,
    // copy or ring operation (no far memory, so there is nothing to predict either).
    net::UdpPeer peer = from;
    app_.serve(slot->app_state, payload, clock_.now(), &send_reply, &peer);
    ctx_.sched->served_now();
    return;
  }
  sched::Request* r = ctx_.sched->acquire();
  if (r == nullptr) {
    counters_.no_request.add();
    return;
  }
  const RequestHeader h{from, uint32_t(payload.size())};
  std::memcpy(r->bytes, &h, sizeof(h));
  std::memcpy(r->bytes + sizeof(h), payload.data(), payload.size());
  r->len = uint32_t(sizeof(h) + payload.size());
  const sched::Scheduler& sc = ctx_.sched->parent();
  if (ctx_.paging != nullptr && sc.prefetch()) {
    // Prefetch at dispatch: the page-table predictor names the ranges to fetch (the ranges
    // live only on this path: the common one sets up no FarRanges per request).
    FarRanges fetch;
    r->likely_fault = app_.likely_fault(payload, sched::Predictor::kPageTable, clock_.now(),
                                        history_local_, &fetch);
    if (r->likely_fault && hold(r, fetch)) return;
  } else {
    const sched::Predictor mode = sc.predictor();
    r->likely_fault = mode != sched::Predictor::kNone &&
                      app_.likely_fault(payload, mode, clock_.now(), history_local_, nullptr);
  }
  ctx_.sched->submit(r);  // a full queue drops and counts
}

bool ServerQueueSet::fetching(const FarRanges& ranges) const {
  const paging::Region& region = ctx_.paging->region();
  for (uint32_t i = 0; i < ranges.n; ++i)
    if (region.fetching(ranges.range[i].offset, ranges.range[i].len)) return true;
  return false;
}

bool ServerQueueSet::hold(sched::Request* r, const FarRanges& ranges) {
  paging::Region& region = ctx_.paging->region();
  for (uint32_t i = 0; i < ranges.n; ++i)
    region.prefetch(*ctx_.paging, ranges.range[i].offset, ranges.range[i].len);
  // In flight by this prefetch or by another request's fault: either way it is worth waiting
  // apart for. Nothing in flight (no reserve frame, or the pages are back already): run it.
  if (!fetching(ranges)) return false;
  if (held_count_ == kMaxHeld) {
    counters_.prefetch_overflow.add();
    return false;
  }
  r->arrival = rdtsc();  // its queueing delay starts now, wait for the pages included
  held_[held_count_++] = Held{r, ranges};
  counters_.prefetch_held.add();
  return true;
}

void ServerQueueSet::release_held() {
  uint32_t kept = 0;
  for (uint32_t i = 0; i < held_count_; ++i) {
    const Held& h = held_[i];
    if (fetching(h.ranges)) {
      held_[kept++] = h;
      continue;
    }
    // Its pages are resident now (or their fetch failed: the request's pin reports it). It
    // arrived before whatever was queued meanwhile: it goes first.
    h.request->likely_fault = false;
    ctx_.sched->submit_landed(h.request);
  }
  held_count_ = kept;
}

uint32_t ServerQueueSet::poll() {
  tls_ = ctx_;
  paging::current_core() = ctx_.paging;
  uint32_t work = ctx_.stack->poll();
  if (ctx_.paging) work += ctx_.paging->poll();
  if (held_count_ != 0) release_held();
  work += ctx_.sched->poll();
  ctx_.stack->flush();
  return work;
}

QueueProbe ServerQueueSet::probe() const {
  QueueProbe p;
  // Waiting first: an enqueue between the two reads then counts as taken (no false alarm).
  p.waiting = ctx_.sched->queued();
  p.enqueued = ctx_.sched->enqueued();
  p.fetches = ctx_.sched->parked();
  p.in_flight = ctx_.sched->in_flight();
  return p;
}

void ServerQueueSet::set_accepting(bool on) { ctx_.sched->set_accepting(on); }

CoreParts ServerQueueSet::parts() const {
  CoreParts p;
  p.stack = ctx_.stack;
  p.sched = ctx_.sched;
  p.predictions = &predictions_;
  p.set = &counters_;
  return p;
}

}  // namespace fm::rt
