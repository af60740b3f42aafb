// Per-core protocol counters and the registry that sums them for the "stats" command.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

#include "dataplane/counter.h"

namespace fm::kv {

/// Every per-core statistic. The memcached-named ones appear in "stats" under memcached's name;
/// the others are this server's own (prefixed kv_ in the stats reply).
enum class Stat : uint8_t {
  // memcached general-purpose stats, summed over cores
  kCmdGet,  // keys looked up by get/gets (memcached counts keys, not lines)
  kCmdSet,  // storage commands whose data block was read
  kCmdFlush,
  kCmdTouch,  // touch commands and gat/gats keys
  kGetHits,
  kGetMisses,
  kGetExpired,
  kGetFlushed,
  kDeleteMisses,
  kDeleteHits,
  kIncrMisses,
  kIncrHits,
  kDecrMisses,
  kDecrHits,
  kCasMisses,
  kCasHits,
  kCasBadval,
  kTouchHits,
  kTouchMisses,
  kStoreTooLarge,
  kStoreNoMemory,
  kBytesRead,
  kBytesWritten,
  // this server's datagram and parser counters
  kDatagramsIn,
  kDatagramsOut,
  kRuntDatagrams,    // shorter than the frame header: dropped, no reply possible
  kMultiPacket,      // total != 1, sequence 0: answered with SERVER_ERROR
  kReplyDatagrams,   // not answered: a memcached reply or a later datagram of a message, so
                     // two servers pointed at each other cannot start a reply loop
  kCommands,         // command lines executed (any outcome)
  kUnknownCommands,  // answered "ERROR"
  kClientErrors,     // answered "CLIENT_ERROR ..." (counted even under noreply)
  kBadDataChunks,    // storage commands whose data block was short or not \r\n-terminated
  kLinesTooLong,
  kUnterminatedLines,  // a datagram whose last line has no '\n'
  kAbandoned,          // datagrams whose tail was skipped because framing was lost
  kReplyOverflows,     // replies cut short because the reply buffer was full
  kRepliesCut,         // datagrams whose later commands were not run: reply bound reached
  kCount
};
inline constexpr size_t kStatCount = static_cast<size_t>(Stat::kCount);

/// The name "stats" prints for `s`.
std::string_view stat_name(Stat s);

/// The text-protocol commands, for per-command line counts.
enum class Command : uint8_t {
  kUnknown,
  kGet,
  kGets,
  kGat,
  kGats,
  kSet,
  kAdd,
  kReplace,
  kAppend,
  kPrepend,
  kCas,
  kDelete,
  kIncr,
  kDecr,
  kTouch,
  kFlushAll,
  kVersion,
  kVerbosity,
  kStats,
  kQuit,
  kCount
};
inline constexpr size_t kCommandCount = static_cast<size_t>(Command::kCount);

/// The command's protocol name ("get", "flush_all"; "unknown" for kUnknown).
std::string_view command_name(Command c);

/// Maps a command token to its Command (case-sensitive, like memcached; "bget" is get).
Command parse_command(std::string_view token);

/// One dataplane core's counters. Written by the owner core only; other cores may read.
class alignas(64) SessionCounters {
 public:
  void add(Stat s, uint64_t n = 1) { v_[static_cast<size_t>(s)].add(n); }
  uint64_t get(Stat s) const { return v_[static_cast<size_t>(s)].read(); }
  /// Command lines seen, by command (kUnknown: lines answered "ERROR" for their name).
  void add_command(Command c) { commands_[static_cast<size_t>(c)].add(1); }
  uint64_t command(Command c) const { return commands_[static_cast<size_t>(c)].read(); }

 private:
  std::array<fm::Counter, kStatCount> v_{};
  std::array<fm::Counter, kCommandCount> commands_{};
};

/// A plain snapshot of counter values.
using StatValues = std::array<uint64_t, kStatCount>;

/// The set of live sessions' counters, so that "stats" on any core reports totals over all
/// cores. Registration and summing take a mutex: control path and the (rare) stats command only.
class StatsRegistry {
 public:
  /// Adds a session's counters. Control path.
  void add(const SessionCounters* counters);
  /// Removes them, keeping their totals so the sums never go backwards. Control path.
  void remove(const SessionCounters* counters);
  /// Totals over all sessions, past and present, since the last reset().
  StatValues sum() const;
  /// "stats reset": later sums start from zero again.
  void reset();
  /// Sessions registered now (memcached's "threads").
  size_t sessions() const;

 private:
  StatValues raw_sum_locked() const;

  mutable std::mutex mu_;
  std::vector<const SessionCounters*> live_;
  StatValues retired_{};
  StatValues baseline_{};
};

}  // namespace fm::kv
