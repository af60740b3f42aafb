// Control-plane connections of the memory node, one thread each (control path only).
#include "memnode/server.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
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

HelloCheck check_hello(const wire::Hello& hello, const HelloPolicy& policy) {
  HelloCheck out;
  out.who.assign(hello.name, strnlen(hello.name, sizeof(hello.name) - 1));
  const uint16_t want = policy.served == paging::TransportKind::kEmulated
                            ? uint16_t(wire::TransportKind::kEmulated)
                            : uint16_t(wire::TransportKind::kVerbs);
  if (policy.key && policy.key->present() &&
      (policy.challenge == nullptr ||
       !paging::hello_mac_ok(*policy.key, *policy.challenge, hello))) {
    out.refusal =
        "authentication failed: the Hello is not signed with this memory node's key "
        "(paging.key_file must name the file memnode.key_file names)";
  } else if (hello.transport != want) {
    out.refusal = std::string("this memory node serves the ") + kind_name(want) +
                  " transport, not " + kind_name(hello.transport);
  } else if (hello.region_bytes == 0) {
    out.refusal = "the Hello asks for an empty region";
  } else if (hello.cores == 0 || hello.cores > policy.max_qps) {
    out.refusal = "the Hello announces " + std::to_string(hello.cores) +
                  " queue pairs; this memory node allows 1 to " + std::to_string(policy.max_qps) +
                  " per compute node (memnode.max_qps_per_client)";
  }
  return out;
}

bool uid_allowed(uint32_t uid, uint32_t self, const std::vector<uint32_t>& allowed) {
  if (uid == self || uid == 0) return true;
  for (uint32_t a : allowed) {
    if (a == uid) return true;
  }
  return false;
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
  reap(/*all=*/true);
}

Status Server::listen() {
  auto addr = paging::parse_channel_address(cfg_.listen, "memnode.listen");
  if (!addr) return addr.status();
  auto l = paging::Listener::listen(*addr, "memnode.listen");
  if (!l) return l.status();
  listener_ = std::move(l.value());
  return Status::ok();
}

void Server::reap(bool all) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = threads_.begin(); it != threads_.end();) {
    if (all || it->done.load()) {
      if (it->thread.joinable()) it->thread.join();
      it = threads_.erase(it);
    } else {
      ++it;
    }
  }
}

void Server::run() {
  auto last_exhausted_log = std::chrono::steady_clock::now() - std::chrono::seconds(10);
  while (!stop_.load() && !stop_requested()) {
    reap(/*all=*/false);
    auto ch = listener_.accept(200);
    if (!ch) {
      if (ch.status().code() == Errc::kResourceExhausted) {
        // The connection stays queued: calling accept again at once would spin a core.
        const auto now = std::chrono::steady_clock::now();
        if (now - last_exhausted_log > std::chrono::seconds(5)) {
          last_exhausted_log = now;
          FM_LOG_WARN(kTag, "cannot accept a compute node ({}); retrying every 100 ms",
                      ch.status().message());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      } else if (ch.status().code() != Errc::kTimeout) {
        FM_LOG_WARN(kTag, "accept: {}", ch.status().message());
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      continue;
    }
    if (sessions_.load() >= cfg_.max_clients) {
      refused_.fetch_add(1);
      send_error(*ch, "too many compute nodes: this memory node serves at most " +
                          std::to_string(cfg_.max_clients) + " (memnode.max_clients)");
      continue;  // the channel closes here
    }
    sessions_.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu_);
    Session& s = threads_.emplace_back();
    s.thread = std::thread([this, &s, c = std::move(ch.value())]() mutable {
      serve(std::move(c));
      sessions_.fetch_sub(1);
      s.done.store(true);
    });
  }
  stop_.store(true);
  reap(/*all=*/true);
}

void Server::serve(paging::Channel ch) {
  if (auto peer = ch.peer(); peer.is_ok()) {  // a Unix socket: the kernel says who it is
    if (!uid_allowed(peer->uid, uint32_t(::geteuid()), cfg_.allow_uids)) {
      refused_.fetch_add(1);
      const std::string why =
          "uid " + std::to_string(peer->uid) + " may not use this memory node (memnode.allow_uids)";
      FM_LOG_WARN(kTag, "refused pid {}: {}", peer->pid, why);
      send_error(ch, why);
      return;
    }
  }
  const wire::Challenge challenge = paging::make_challenge(key_.present());
  if (!ch.send(&challenge, sizeof(challenge))) return;
  auto hello = ch.recv_as<wire::Hello>(wire::MsgType::kHello, 5000);
  if (!hello) {
    refused_.fetch_add(1);
    FM_LOG_WARN(kTag, "a compute node connected but sent no valid Hello: {}",
                hello.status().message());
    return;
  }
  HelloPolicy policy;
  policy.served = cfg_.transport;
  policy.key = &key_;
  policy.challenge = &challenge;
  policy.max_qps = cfg_.max_qps_per_client;
  const HelloCheck checked = check_hello(*hello, policy);
  const std::string& who = checked.who;
  if (!checked.refusal.empty()) {
    refused_.fetch_add(1);
    FM_LOG_WARN(kTag, "refused {}: {}", who, checked.refusal);
    send_error(ch, checked.refusal);
    return;
  }
  auto lease = pool_.lease(hello->region_bytes, who);
  if (!lease) {
    refused_.fetch_add(1);
    FM_LOG_WARN(kTag, "refused {}: {}", who, lease.status().message());
    send_error(ch, lease.status().message());
    return;
  }
  const uint64_t session = next_session_.fetch_add(1);
  struct Release {  // the lease and its registrations end with the session, however it ends
    Server* s;
    uint64_t lease, session;
    ~Release() {
      if (s->verbs_) s->verbs_->release(session);
      s->pool_.release(lease);
    }
  } release{this, lease->id, session};
  wire::HelloAck ack{};
  ack.h = wire::make_header<wire::HelloAck>(wire::MsgType::kHelloAck);
  ack.pool_bytes = lease->bytes;
  ack.heartbeat_ms = cfg_.heartbeat_ms;
  ack.lease_id = lease->id;
  if (verbs_) {
    auto rkey = verbs_->lease_rkey(lease->offset, lease->bytes, session);
    if (!rkey) {
      send_error(ch, rkey.status().message());
      return;
    }
    ack.pool_addr = verbs_->pool_addr() + lease->offset;
    ack.rkey = *rkey;
  }
  if (key_.present()) paging::sign_ack(key_, *hello, ack);
  Status st = ch.send(&ack, sizeof(ack), verbs_ ? -1 : lease->memfd);
  if (!st) {
    FM_LOG_WARN(kTag, "{}: {}", who, st.message());
    return;
  }
  connections_.fetch_add(1);
  FM_LOG_INFO(kTag, "compute node {} connected ({} transport, {} core(s)): lease {} of {} MiB{}",
              who, kind_name(hello->transport), hello->cores, lease->id, lease->bytes >> 20,
              key_.present() ? ", authenticated" : "");
  std::vector<uint8_t> buf;
  const uint32_t hb = cfg_.heartbeat_ms;
  paging::Heartbeats beats(hb, paging::kHeartbeatMisses, paging::steady_ms());
  const int tick_ms = hb ? int(std::min<uint32_t>(hb / 2 + 1, 100)) : 100;
  uint32_t qps = 0;
  std::string why = "it closed the connection";
  while (!stop_.load() && !stop_requested()) {
    auto t = ch.recv(buf, tick_ms);
    const uint64_t now = paging::steady_ms();
    if (!t && t.status().code() != Errc::kTimeout) {
      why = t.status().message();
      break;
    }
    if (t) {
      beats.heard(now);
      const Step step = next_step(*t, buf, verbs_ != nullptr);
      if (step.kind == Step::Kind::kClose) {
        why = "it said goodbye";
        break;
      }
      if (step.kind == Step::Kind::kRefuse) {
        send_error(ch, step.reason);
      } else if (step.kind == Step::Kind::kConnectQp) {
        if (qps >= hello->cores) {
          send_error(ch, "queue pair " + std::to_string(qps + 1) +
                             " refused: the Hello announced " + std::to_string(hello->cores));
        } else if (auto mine = verbs_->accept(step.qp.qp, session); !mine) {
          send_error(ch, mine.status().message());
        } else {
          ++qps;
          wire::QpAccept qa{};
          qa.h = wire::make_header<wire::QpAccept>(wire::MsgType::kQpAccept);
          qa.core = step.qp.core;
          qa.qp = *mine;
          if (!ch.send(&qa, sizeof(qa))) break;
        }
      }
    }
    if (beats.peer_silent(now)) {
      why = "it missed " + std::to_string(paging::kHeartbeatMisses) + " heartbeats";
      break;
    }
    if (beats.send_due(now)) {
      wire::Heartbeat b{wire::make_header<wire::Heartbeat>(wire::MsgType::kHeartbeat), 0};
      if (!ch.send(&b, sizeof(b))) {
        why = "a heartbeat could not be sent";
        break;
      }
    }
  }
  if (stop_.load() || stop_requested()) {
    wire::Heartbeat bye{wire::make_header<wire::Heartbeat>(wire::MsgType::kGoodbye), 0};
    (void)ch.send(&bye, sizeof(bye));
    why = "the memory node is shutting down";
  }
  connections_.fetch_sub(1);
  FM_LOG_INFO(kTag, "compute node {} disconnected ({}); lease {} released", who, why, lease->id);
}

}  // namespace fm::memnode
