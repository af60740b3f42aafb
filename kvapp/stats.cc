// Statistic and command names, and the registry that sums per-core counters.
#include "kvapp/stats.h"

#include <algorithm>

#include "dataplane/check.h"

namespace fm::kv {

std::string_view stat_name(Stat s) {
  switch (s) {
    case Stat::kCmdGet:
      return "cmd_get";
    case Stat::kCmdSet:
      return "cmd_set";
    case Stat::kCmdFlush:
      return "cmd_flush";
    case Stat::kCmdTouch:
      return "cmd_touch";
    case Stat::kGetHits:
      return "get_hits";
    case Stat::kGetMisses:
      return "get_misses";
    case Stat::kGetExpired:
      return "get_expired";
    case Stat::kGetFlushed:
      return "get_flushed";
    case Stat::kDeleteMisses:
      return "delete_misses";
    case Stat::kDeleteHits:
      return "delete_hits";
    case Stat::kIncrMisses:
      return "incr_misses";
    case Stat::kIncrHits:
      return "incr_hits";
    case Stat::kDecrMisses:
      return "decr_misses";
    case Stat::kDecrHits:
      return "decr_hits";
    case Stat::kCasMisses:
      return "cas_misses";
    case Stat::kCasHits:
      return "cas_hits";
    case Stat::kCasBadval:
      return "cas_badval";
    case Stat::kTouchHits:
      return "touch_hits";
    case Stat::kTouchMisses:
      return "touch_misses";
    case Stat::kStoreTooLarge:
      return "store_too_large";
    case Stat::kStoreNoMemory:
      return "store_no_memory";
    case Stat::kBytesRead:
      return "bytes_read";
    case Stat::kBytesWritten:
      return "bytes_written";
    case Stat::kDatagramsIn:
      return "kv_datagrams_in";
    case Stat::kDatagramsOut:
      return "kv_datagrams_out";
    case Stat::kRuntDatagrams:
      return "kv_runt_datagrams";
    case Stat::kMultiPacket:
      return "kv_multi_packet_requests";
    case Stat::kReplyDatagrams:
      return "kv_reply_datagrams_ignored";
    case Stat::kCommands:
      return "kv_commands";
    case Stat::kUnknownCommands:
      return "kv_unknown_commands";
    case Stat::kClientErrors:
      return "kv_client_errors";
    case Stat::kBadDataChunks:
      return "kv_bad_data_chunks";
    case Stat::kLinesTooLong:
      return "kv_lines_too_long";
    case Stat::kUnterminatedLines:
      return "kv_unterminated_lines";
    case Stat::kAbandoned:
      return "kv_abandoned_datagrams";
    case Stat::kReplyOverflows:
      return "kv_reply_overflows";
    case Stat::kRepliesCut:
      return "kv_replies_cut_short";
    case Stat::kCount:
      break;
  }
  return "?";
}

std::string_view command_name(Command c) {
  switch (c) {
    case Command::kUnknown:
      return "unknown";
    case Command::kGet:
      return "get";
    case Command::kGets:
      return "gets";
    case Command::kGat:
      return "gat";
    case Command::kGats:
      return "gats";
    case Command::kSet:
      return "set";
    case Command::kAdd:
      return "add";
    case Command::kReplace:
      return "replace";
    case Command::kAppend:
      return "append";
    case Command::kPrepend:
      return "prepend";
    case Command::kCas:
      return "cas";
    case Command::kDelete:
      return "delete";
    case Command::kIncr:
      return "incr";
    case Command::kDecr:
      return "decr";
    case Command::kTouch:
      return "touch";
    case Command::kFlushAll:
      return "flush_all";
    case Command::kVersion:
      return "version";
    case Command::kVerbosity:
      return "verbosity";
    case Command::kStats:
      return "stats";
    case Command::kQuit:
      return "quit";
    case Command::kCount:
      break;
  }
  return "?";
}

Command parse_command(std::string_view t) {
  // Nearly every request line is a get: it answers without a pass over the names.
  if (t == "get") return Command::kGet;
  if (t == "gets") return Command::kGets;
  if (t == "bget") return Command::kGet;  // memcached's ancient alias
  for (size_t i = 1; i < kCommandCount; ++i) {
    if (t == command_name(static_cast<Command>(i))) return static_cast<Command>(i);
  }
  return Command::kUnknown;
}

void StatsRegistry::add(const SessionCounters* counters) {
  std::lock_guard<std::mutex> lock(mu_);
  FM_CHECK(std::find(live_.begin(), live_.end(), counters) == live_.end());
  live_.push_back(counters);
}

void StatsRegistry::remove(const SessionCounters* counters) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find(live_.begin(), live_.end(), counters);
  FM_CHECK(it != live_.end());
  for (size_t i = 0; i < kStatCount; ++i) retired_[i] += counters->get(static_cast<Stat>(i));
  live_.erase(it);
}

StatValues StatsRegistry::raw_sum_locked() const {
  StatValues v = retired_;
  for (const SessionCounters* c : live_) {
    for (size_t i = 0; i < kStatCount; ++i) v[i] += c->get(static_cast<Stat>(i));
  }
  return v;
}

StatValues StatsRegistry::sum() const {
  std::lock_guard<std::mutex> lock(mu_);
  StatValues v = raw_sum_locked();
  for (size_t i = 0; i < kStatCount; ++i) v[i] = v[i] >= baseline_[i] ? v[i] - baseline_[i] : 0;
  return v;
}

void StatsRegistry::reset() {
  std::lock_guard<std::mutex> lock(mu_);
  baseline_ = raw_sum_locked();
}

size_t StatsRegistry::sessions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_.size();
}

}  // namespace fm::kv
