// memcached's text protocol: executes the commands of one request and writes their replies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "dataplane/result.h"
#include "dataplane/stat_sink.h"
#include "kvapp/options.h"
#include "kvapp/reply_buffer.h"
#include "kvapp/stats.h"
#include "kvapp/store.h"

namespace fm::kv {

/// Writes "STAT <name> <value>\r\n" lines into a stats reply. Bounded: once a line does not fit,
/// it stops writing and the protocol replaces the whole reply with
/// "SERVER_ERROR out of memory writing stats". Owner core only.
class StatsWriter final : public StatSink {
 public:
  explicit StatsWriter(ReplyBuffer& out) : out_(out) {}
  void stat(std::string_view name, std::string_view value) override;
  void stat(std::string_view name, uint64_t value) override;
  void stat_signed(std::string_view name, int64_t value) override;
  /// False once any line did not fit.
  bool ok() const { return ok_; }

 private:
  ReplyBuffer& out_;
  bool ok_ = true;
};

/// The next token of `line` at or after `*pos`, memcached's way (runs of ' ' separate tokens);
/// empty at the end of the line. Advances `*pos` past it.
inline std::string_view next_token(std::string_view line, size_t* pos) {
  size_t i = *pos;
  while (i < line.size() && line[i] == ' ') ++i;
  size_t j = i;
  while (j < line.size() && line[j] != ' ') ++j;
  *pos = j;
  return line.substr(i, j - i);
}

/// Calls `fn(key)` for each key of a request whose first line is a get or gets (`text` is the
/// datagram's text after the frame header), reading keys as Protocol does; false when it is not
/// one. For the fault predictor: no allocation, no store access.
template <typename Fn>
bool for_each_get_key(std::string_view text, Fn&& fn) {
  if (const size_t eol = text.find('\n'); eol != std::string_view::npos) text = text.substr(0, eol);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  size_t pos = 0;
  const std::string_view cmd = next_token(text, &pos);
  if (cmd != "get" && cmd != "gets") return false;
  for (std::string_view key = next_token(text, &pos); !key.empty(); key = next_token(text, &pos)) {
    if (!fn(key)) break;
  }
  return true;
}

/// The first key of a request whose first line starts "get " or "gets " (`text` is the
/// datagram's text after the frame header), or empty. For the burst prefetch (Store::prefetch_key):
/// cheaper than for_each_get_key, and where it reads a key differently from Protocol (one
/// holding '\r', say) the lookup only misses the hash the prefetch kept.
inline std::string_view first_get_key(std::string_view text) {
  const char* p = text.data();
  const char* const end = p + text.size();
  if (text.size() < 5 || p[0] != 'g' || p[1] != 'e' || p[2] != 't') return {};
  p += p[3] == 's' ? 4 : 3;
  if (p == end || *p != ' ') return {};
  while (p != end && *p == ' ') ++p;
  const char* const key = p;
  while (p != end && *p != ' ' && *p != '\r' && *p != '\n') ++p;
  return std::string_view(key, size_t(p - key));
}

/// Lets the server add its own lines (the runtime's: network, scheduler, paging) to every
/// "stats" reply, after the kv app's and before END.
class StatsHook {
 public:
  virtual ~StatsHook() = default;
  /// Called on the core that received "stats" (or the control thread). Must not block or yield;
  /// may read other cores' counters; writes only through `out`.
  virtual void append_stats(StatSink& out) const = 0;
};

/// Executes memcached text-protocol requests against a Store. One per dataplane core, owned by
/// its Session; owner core only. Never allocates.
///
/// Parsing rules (memcached 1.6's, with these deliberate differences, each so a datagram stands
/// alone and a bad one cannot corrupt the store):
///  - Lines end in "\r\n" or a bare "\n" (as memcached accepts). A data block must be followed
///    by "\r\n" exactly. A last line without '\n' is answered "CLIENT_ERROR bad command line
///    format" (memcached waits for the rest, which over UDP never comes).
///  - A storage command whose data block is short or not "\r\n"-terminated is answered
///    "CLIENT_ERROR bad data chunk" and stores nothing; parsing resumes after the first '\n' at
///    or after the declared end of the block. A rejected storage command line whose <bytes>
///    token is a valid length has its data block skipped the same way; when the length is
///    unknown the rest of the datagram is dropped (memcached would run the value as commands).
///  - Keys containing NUL are rejected with "CLIENT_ERROR bad command line format" (memcached
///    cuts the line at the NUL). Flags above 2^32-1 and exptime/bytes outside int32 are rejected
///    with the same error (memcached truncates them).
///  - A non-get line longer than kMaxLineLength gets "CLIENT_ERROR line too long".
///  - "quit" stops processing the datagram; replies so far are still sent.
///  - A request's replies are bounded (ReplyBuffer::begin, kv.reply_bytes_max), except that the
///    first value of a reply always fits: a get that does not fit is answered only
///    "SERVER_ERROR out of memory writing get response"; a command
///    starts only while kMaxShortReply bytes of room are left, so no store change goes
///    unanswered; once the room is gone the rest of the datagram is not run and one
///    "SERVER_ERROR reply limit reached; later commands not run" ends the reply.
///  - Meta commands (mg/ms/...) and stats sub-commands other than "reset" answer "ERROR".
///  - A command whose item is in far memory that cannot be reached (memory node gone, no frame
///    to spare) is answered "SERVER_ERROR far memory unavailable" and changes nothing (a failed
///    set keeps the old value). In a multi-key get it replaces the whole reply, like a bad key.
///    Counted in "stats" as kv_far_errors.
/// True when `text` (a datagram's text after its frame header) starts like a memcached reply
/// (VALUE, END, STORED, ERROR, SERVER_ERROR, STAT, a number, ...) rather than a command: the
/// server does not answer it, so two servers pointed at each other cannot loop. Any thread.
bool looks_like_reply(std::span<const uint8_t> text);

class Protocol {
 public:
  /// `hook` may be null. `store`, `counters` and `hook` must outlive this object.
  Protocol(Store& store, SessionCounters& counters, const StatsHook* hook);

  /// Executes every command in `request` (a datagram's text after its frame header) in order
  /// and appends the replies to `out`. `now` is unix seconds. Owner core; no allocation.
  void execute(std::span<const uint8_t> request, int64_t now, ReplyBuffer& out);

  /// What "stats" answers, as named values: memcached's general statistics, this server's own,
  /// then the hook's. `now` is unix seconds. Any thread (reads only summed counters).
  void write_stats(int64_t now, StatSink& w) const;

 private:
  struct Tokens;
  // Where to continue after a command: `next` in the request, or stop the datagram.
  struct Flow {
    const char* next;
    bool stop;
  };

  Flow execute_line(std::string_view line, const char* data, const char* end, int64_t now,
                    ReplyBuffer& out);
  // Every command but the gets: splits the line into Tokens and runs it. Out of line, so that
  // execute_line's get path does not set up the Tokens' frame.
  [[gnu::noinline]] Flow execute_tokens(Command cmd, std::string_view line, const char* data,
                                        const char* end, int64_t now, ReplyBuffer& out);
  Flow do_storage(Command cmd, const Tokens& t, const char* data, const char* end, int64_t now,
                  ReplyBuffer& out);
  // `pos`: where the arguments start in `line` (after the command's name).
  bool do_get(Command cmd, std::string_view line, size_t pos, int64_t now, ReplyBuffer& out);
  bool do_delta(Command cmd, const Tokens& t, int64_t now, ReplyBuffer& out);
  bool do_touch(const Tokens& t, int64_t now, ReplyBuffer& out);
  bool do_delete(const Tokens& t, int64_t now, ReplyBuffer& out);
  bool do_flush_all(const Tokens& t, int64_t now, ReplyBuffer& out);
  bool do_verbosity(const Tokens& t, ReplyBuffer& out);
  bool do_stats(const Tokens& t, int64_t now, ReplyBuffer& out);

  // Reply helpers: return false once the reply buffer is full (the datagram then stops).
  bool reply(ReplyBuffer& out, std::string_view line);
  bool reply_unless(bool noreply, ReplyBuffer& out, std::string_view line);
  bool client_error(bool noreply, ReplyBuffer& out, std::string_view line);
  bool overflow(ReplyBuffer& out);
  Flow skip_block(const char* data, const char* end, uint64_t len);
  Flow skip_declared_block(const Tokens& t, const char* data, const char* end);

  Store& store_;
  SessionCounters& counters_;
  const StatsHook* hook_;
  const int64_t pid_;
};

}  // namespace fm::kv
