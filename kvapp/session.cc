// Session: frame header handling around the protocol, and reply datagram emission.
#include "kvapp/session.h"

#include "dataplane/check.h"
#include "kvapp/udp_frame.h"

namespace fm::kv {

namespace {
const ProtocolOptions& checked(const ProtocolOptions& options) {
  FM_CHECK_MSG(options.validate().is_ok(), "kv ProtocolOptions must pass validate()");
  return options;
}
}  // namespace

Session::Session(Store& store, const ProtocolOptions& options, const StatsHook* hook)
    : store_(store),
      reply_(size_t{checked(options).reply_buffer_kb} * 1024, options.udp_max_payload),
      protocol_(store, counters_, hook),
      reply_bound_(reply_bound(options)) {
  store_.stats_registry().add(&counters_);
}

Session::~Session() { store_.stats_registry().remove(&counters_); }

size_t Session::handle_datagram(std::span<const uint8_t> payload, int64_t now_unix, EmitFn emit,
                                void* ctx) {
  counters_.add(Stat::kDatagramsIn);
  counters_.add(Stat::kBytesRead, payload.size());
  const std::optional<UdpFrameHeader> header = parse_frame_header(payload);
  if (!header) {
    counters_.add(Stat::kRuntDatagrams);
    return 0;
  }
  const std::span<const uint8_t> text = payload.subspan(kUdpFrameHeaderSize);
  if (header->sequence != 0 || looks_like_reply(text)) {
    counters_.add(Stat::kReplyDatagrams);
    return 0;
  }
  reply_.begin(reply_bound_);
  if (!header->is_single_datagram()) {
    counters_.add(Stat::kMultiPacket);
    (void)reply_.append("SERVER_ERROR multi-packet request not supported\r\n");
  } else {
    protocol_.execute(text, now_unix, reply_);
  }
  const size_t n = reply_.for_each_datagram(header->request_id, [&](std::span<const uint8_t> d) {
    counters_.add(Stat::kBytesWritten, d.size());
    emit(ctx, d);
  });
  counters_.add(Stat::kDatagramsOut, n);
  return n;
}

}  // namespace fm::kv
