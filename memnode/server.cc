// Control-plane connections of the memory node, one thread each (control path only).
#include "memnode/server.h"

#include <cstring>

#include "dataplane/core_loop.h"
#include "dataplane/log.h"

namespace fm::memnode {
namespace {
constexpr const char* kTag = "memnode";
namespace wire = paging::wire;

void send_error(paging::Channel& ch, const std::string& reason) {
  wire::ErrorMsg e{};
  e.h = wire::make_header<wire::ErrorMsg>(wire::MsgType::kError);
  std::snprintf(e.reason, sizeof(e.reason), "%s", reason.c_str());
  (void)ch.send(&e, sizeof(e));
}

const char* kind_name(uint16_t k) {
  return k == uint16_t(wire::TransportKind::kEmulated) ? "emulated"
         : k == uint16_t(wire::TransportKind::kVerbs)  ? "verbs"
                                                       : "unknown";
}
}  // namespace

HelloCheck check_hello(const wire::Hello& hello, paging::TransportKind served) {
  HelloCheck out;
  out.who.assign(hello.name, strnlen(hello.name, sizeof(hello.name) - 1));
  const uint16_t want = served == paging::TransportKind::kEmulated
                            ? uint16_t(wire::TransportKind::kEmulated)
                            : uint16_t(wire::TransportKind::kVerbs);
  if (hello.transport != want) {
    out.refusal = std::string("this memory node serves the ") + kind_name(want) +
                  " transport, not " + kind_name(hello.transport);
  }
  return out;
}

Step next_step(wire::MsgType type, std::span<const uint8_t> msg, bool verbs) {
  Step step;
  if (type == wire::MsgType::kGoodbye) {
    step.kind = Step::Kind::kClose;
  } else if (type == wire::MsgType::kHeartbeat) {
    step.kind = Step::Kind::kIgnore;
  } else if (type == wire::MsgType::kQpConnect && msg.size() == sizeof(wire::QpConnect) && verbs) {
    step.kind = Step::Kind::kConnectQp;
    std::memcpy(&step.qp, msg.data(), sizeof(step.qp));
  } else {
    step.kind = Step::Kind::kRefuse;
    step.reason = "unexpected control message type " + std::to_string(int(type));
  }
  return step;
}

Server::~Server() {
  stop();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

Status Server::listen() {
  auto addr = paging::parse_channel_address(cfg_.listen, "memnode.listen");
  if (!addr) return addr.status();
  auto l = paging::Listener::listen(*addr);
  if (!l) return l.status();
  listener_ = std::move(l.value());
  return Status::ok();
}

void Server::run() {
  while (!stop_.load() && !stop_requested()) {
    auto ch = listener_.accept(200);
    if (!ch) continue;
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back([this, c = std::move(ch.value())]() mutable { serve(std::move(c)); });
  }
  stop_.store(true);
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Server::serve(paging::Channel ch) {
  auto hello = ch.recv_as<wire::Hello>(wire::MsgType::kHello, 5000);
  if (!hello) {
    FM_LOG_WARN(kTag, "a compute node connected but sent no valid Hello: {}", hello.status().message());
    return;
  }
  const HelloCheck checked = check_hello(*hello, cfg_.transport);
  const std::string& who = checked.who;
  if (!checked.refusal.empty()) {
    FM_LOG_WARN(kTag, "refused {}: {}", who, checked.refusal);
    send_error(ch, checked.refusal);
    return;
  }
  wire::HelloAck ack{};
  ack.h = wire::make_header<wire::HelloAck>(wire::MsgType::kHelloAck);
  ack.pool_bytes = pool_.bytes();
  if (verbs_) {
    ack.pool_addr = verbs_->pool_addr();
    ack.rkey = verbs_->rkey();
  }
  Status st = ch.send(&ack, sizeof(ack), verbs_ ? -1 : pool_.memfd());
  if (!st) {
    FM_LOG_WARN(kTag, "{}: {}", who, st.message());
    return;
  }
  connections_.fetch_add(1);
  const uint64_t session = next_session_.fetch_add(1);
  FM_LOG_INFO(kTag, "compute node {} connected ({} transport, {} core(s))", who,
              kind_name(hello->transport), hello->cores);
  std::vector<uint8_t> buf;
  uint64_t beat = 0;
  const int tick_ms = 100;
  int idle_ms = 0;
  std::string why = "it closed the connection";
  while (!stop_.load() && !stop_requested()) {
    auto t = ch.recv(buf, tick_ms);
    if (!t) {
      if (t.status().code() == Errc::kTimeout) {
        idle_ms += tick_ms;
        if (cfg_.heartbeat_ms && idle_ms >= int(cfg_.heartbeat_ms)) {
          idle_ms = 0;
          wire::Heartbeat hb{wire::make_header<wire::Heartbeat>(wire::MsgType::kHeartbeat), ++beat};
          if (!ch.send(&hb, sizeof(hb))) break;
        }
        continue;
      }
      why = t.status().message();
      break;
    }
    idle_ms = 0;
    const Step step = next_step(*t, buf, verbs_ != nullptr);
    if (step.kind == Step::Kind::kClose) {
      why = "it said goodbye";
      break;
    }
    if (step.kind == Step::Kind::kIgnore) continue;
    if (step.kind == Step::Kind::kRefuse) {
      send_error(ch, step.reason);
      continue;
    }
    auto mine = verbs_->accept(step.qp.qp, session);
    if (!mine) {
      send_error(ch, mine.status().message());
      continue;
    }
    wire::QpAccept qa{};
    qa.h = wire::make_header<wire::QpAccept>(wire::MsgType::kQpAccept);
    qa.core = step.qp.core;
    qa.qp = *mine;
    if (!ch.send(&qa, sizeof(qa))) break;
  }
  if (stop_.load() || stop_requested()) {
    wire::Heartbeat bye{wire::make_header<wire::Heartbeat>(wire::MsgType::kGoodbye), 0};
    (void)ch.send(&bye, sizeof(bye));
    why = "the memory node is shutting down";
  }
  if (verbs_) verbs_->release(session);
  connections_.fetch_sub(1);
  FM_LOG_INFO(kTag, "compute node {} disconnected: {}", who, why);
}

}  // namespace fm::memnode
