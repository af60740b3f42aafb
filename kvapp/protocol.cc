// memcached's text protocol: tokenizing, per-command execution and reply formatting.
#include "kvapp/protocol.h"

#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <cstring>
#include <string>

#include "dataplane/check.h"
#include "kvapp/numbers.h"
#include "kvapp/tuning.h"
#include "sched/scheduler.h"

namespace fm::kv {
namespace {

constexpr std::string_view kCrlf = "\r\n";
// A pin on far memory failed (memory node gone, no frame to spare): memcached's SERVER_ERROR
// form, so clients treat it as a failed request rather than a miss. Nothing was changed.
constexpr std::string_view kFarError = "SERVER_ERROR far memory unavailable\r\n";
// The lines that go into a reply buffer's reserve (after a rollback, or to end a reply cut
// short). Each must fit kMaxReservedLine, so two always fit the reserve.
constexpr std::string_view kBadFormat = "CLIENT_ERROR bad command line format\r\n";
constexpr std::string_view kOverflowError = "SERVER_ERROR out of memory preparing response\r\n";
constexpr std::string_view kGetOverflowError =
    "SERVER_ERROR out of memory writing get response\r\n";
constexpr std::string_view kStatsOverflowError = "SERVER_ERROR out of memory writing stats\r\n";
constexpr std::string_view kCutError = "SERVER_ERROR reply limit reached; later commands not run\r\n";
static_assert(kFarError.size() <= kMaxReservedLine && kBadFormat.size() <= kMaxReservedLine &&
              kOverflowError.size() <= kMaxReservedLine &&
              kGetOverflowError.size() <= kMaxReservedLine &&
              kStatsOverflowError.size() <= kMaxReservedLine &&
              kCutError.size() <= kMaxReservedLine);
// The longest replies of the commands that may change the store, which start only with this
// much room left (execute), so their reply always fits.
static_assert(sizeof("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n") - 1 <=
              kMaxShortReply);
static_assert(sizeof("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n") - 1 <=
              kMaxShortReply);
static_assert(20 + 2 <= kMaxShortReply);  // an incr/decr result: a uint64 and \r\n

bool has_nul(std::string_view s) { return std::memchr(s.data(), '\0', s.size()) != nullptr; }

// The next key of a get at or after `*pos`, read as next_token() reads it (runs of ' ' separate
// keys; empty at the end of the line); advances `*pos` past it. `*nul` says whether the key
// holds a NUL byte: one pass finds the key's end and any NUL together (every get key comes
// here; a separate memchr per key cost more than the scan).
[[gnu::always_inline]] inline std::string_view next_key(std::string_view line, size_t* pos,
                                                        bool* nul) {
  const char* d = line.data();
  const size_t n = line.size();
  size_t i = *pos;
  while (i < n && d[i] == ' ') ++i;
  size_t j = i;
  while (j < n && d[j] != ' ' && d[j] != '\0') ++j;
  *nul = j < n && d[j] == '\0';
  if (*nul) {
    while (j < n && d[j] != ' ') ++j;  // the whole token, as next_token() would take it
  }
  *pos = j;
  return line.substr(i, j - i);
}

// "00".."99": two digits per division when writing decimals.
constexpr std::array<char, 200> kDigitPairs = [] {
  std::array<char, 200> a{};
  for (size_t i = 0; i < 100; ++i) {
    a[2 * i] = static_cast<char>('0' + i / 10);
    a[2 * i + 1] = static_cast<char>('0' + i % 10);
  }
  return a;
}();

// How many decimal digits `v` takes (1-20). Flags and lengths are mostly short: the common
// cases answer in a compare or two.
unsigned decimal_digits(uint64_t v) {
  unsigned n = 1;
  for (;;) {
    if (v < 10) return n;
    if (v < 100) return n + 1;
    if (v < 1000) return n + 2;
    if (v < 10000) return n + 3;
    v /= 10000;
    n += 4;
  }
}

// Writes decimal `v`, which takes exactly `digits` digits (decimal_digits), at `p`; returns the
// end. Back to front, two digits at a time.
char* put_u64(char* p, uint64_t v, unsigned digits) {
  char* e = p + digits;
  while (v >= 100) {
    const size_t r = static_cast<size_t>(v % 100) * 2;
    v /= 100;
    e -= 2;
    e[0] = kDigitPairs[r];
    e[1] = kDigitPairs[r + 1];
  }
  if (v >= 10) {
    e[-2] = kDigitPairs[v * 2];
    e[-1] = kDigitPairs[v * 2 + 1];
  } else {
    e[-1] = static_cast<char>('0' + v);
  }
  return p + digits;
}

// Writes decimal `v` at `p` (at most 20 bytes) and returns the end.
char* put_u64(char* p, uint64_t v) { return put_u64(p, v, decimal_digits(v)); }

char* put_i64(char* p, int64_t v) {
  if (v >= 0) return put_u64(p, static_cast<uint64_t>(v));
  *p++ = '-';
  return put_u64(p, ~static_cast<uint64_t>(v) + 1);
}

char* put(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

}  // namespace

// A command line split on ' ' like memcached's tokenize_command: at most kMaxTokens - 1 tokens
// are kept; a line with more has n == kMaxTokens, which fails every command's count check.
struct Protocol::Tokens {
  std::array<std::string_view, kMaxTokens - 1> v;
  size_t n = 0;

  explicit Tokens(std::string_view line) {
    size_t pos = 0;
    for (std::string_view tok = next_token(line, &pos); !tok.empty(); tok = next_token(line, &pos)) {
      if (n == v.size()) {
        n = kMaxTokens;
        break;
      }
      v[n++] = tok;
    }
  }
  // memcached's set_noreply_maybe: the last token is "noreply".
  bool noreply() const { return n > 0 && n < kMaxTokens && v[n - 1] == "noreply"; }
};

// ---------------------------------------------------------------------------------------------
// StatsWriter

void StatsWriter::stat(std::string_view name, std::string_view value) {
  if (!ok_) return;
  ok_ = out_.append("STAT ") && out_.append(name) && out_.append(" ") && out_.append(value) &&
        out_.append(kCrlf);
}

void StatsWriter::stat(std::string_view name, uint64_t value) {
  char buf[24];
  char* e = put_u64(buf, value);
  stat(name, std::string_view(buf, e - buf));
}

void StatsWriter::stat_signed(std::string_view name, int64_t value) {
  char buf[24];
  char* e = put_i64(buf, value);
  stat(name, std::string_view(buf, e - buf));
}

// ---------------------------------------------------------------------------------------------
// Protocol

Protocol::Protocol(Store& store, SessionCounters& counters, const StatsHook* hook)
    : store_(store), counters_(counters), hook_(hook), pid_(static_cast<int64_t>(getpid())) {}

bool looks_like_reply(std::span<const uint8_t> text) {
  const auto* p = reinterpret_cast<const char*>(text.data());
  // Every reply word below is upper case or digits, every command lower case: one byte tells
  // the requests apart before any word is compared.
  if (text.empty() || !((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= '0' && p[0] <= '9'))) {
    return false;
  }
  size_t n = 0;
  while (n < text.size() && p[n] != ' ' && p[n] != '\r' && p[n] != '\n') ++n;
  const std::string_view word(p, n);
  if (word.empty()) return false;
  bool digits = true;
  for (char c : word) digits = digits && c >= '0' && c <= '9';
  if (digits) return true;  // an incr/decr result
  static constexpr std::string_view kReplies[] = {
      "VALUE",   "END",     "STORED", "NOT_STORED", "EXISTS",       "NOT_FOUND",
      "DELETED", "TOUCHED", "OK",     "ERROR",      "CLIENT_ERROR", "SERVER_ERROR",
      "STAT",    "VERSION", "RESET"};
  for (std::string_view r : kReplies) {
    if (word == r) return true;
  }
  return false;
}

bool Protocol::overflow(ReplyBuffer& out) {
  counters_.add(Stat::kReplyOverflows);
  (void)out.append_reserved(kOverflowError);
  return false;
}

bool Protocol::reply(ReplyBuffer& out, std::string_view line) {
  return out.append(line) || overflow(out);
}

bool Protocol::reply_unless(bool noreply, ReplyBuffer& out, std::string_view line) {
  return noreply || reply(out, line);
}

bool Protocol::client_error(bool noreply, ReplyBuffer& out, std::string_view line) {
  counters_.add(Stat::kClientErrors);
  return reply_unless(noreply, out, line);
}

Protocol::Flow Protocol::skip_block(const char* data, const char* end, uint64_t len) {
  const uint64_t avail = static_cast<uint64_t>(end - data);
  if (avail >= len + 2 && data[len] == '\r' && data[len + 1] == '\n') {
    return {data + len + 2, false};
  }
  if (avail > len) {
    // Resynchronize on the first line end at or after where the block should have ended.
    const void* nl = std::memchr(data + len, '\n', avail - len);
    if (nl != nullptr) return {static_cast<const char*>(nl) + 1, false};
  }
  return {end, true};
}

Protocol::Flow Protocol::skip_declared_block(const Tokens& t, const char* data, const char* end) {
  int32_t len = 0;
  if (t.n > 4 && t.n < kMaxTokens && parse_i32(t.v[4], &len) && len >= 0) {
    return skip_block(data, end, static_cast<uint64_t>(len));
  }
  // Without a trustworthy length the data block cannot be told from commands: stop here.
  if (data != end) counters_.add(Stat::kAbandoned);
  return {end, true};
}

void Protocol::execute(std::span<const uint8_t> request, int64_t now, ReplyBuffer& out) {
  const char* p = reinterpret_cast<const char*>(request.data());
  const char* const end = p + request.size();
  while (p < end) {
    if (out.room() < kMaxShortReply) {
      // Whatever the next command is, its reply might not fit: run nothing more, and say so in
      // the reserve (which still holds this line: see kReplyReserve).
      counters_.add(Stat::kReplyOverflows);
      counters_.add(Stat::kRepliesCut);
      (void)out.append_reserved(kCutError);
      return;
    }
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
    if (nl == nullptr) {
      // No later datagram can complete this line, so answer now rather than stay silent.
      counters_.add(Stat::kUnterminatedLines);
      if (static_cast<size_t>(end - p) > kMaxLineLength) {
        counters_.add(Stat::kLinesTooLong);
        (void)client_error(false, out, "CLIENT_ERROR line too long\r\n");
      } else {
        (void)client_error(false, out, "CLIENT_ERROR bad command line format\r\n");
      }
      return;
    }
    const char* line_end = nl;
    if (line_end > p && line_end[-1] == '\r') --line_end;
    const Flow f = execute_line(std::string_view(p, line_end - p), nl + 1, end, now, out);
    if (f.stop) return;
    p = f.next;
  }
}

Protocol::Flow Protocol::execute_line(std::string_view line, const char* data, const char* end,
                                      int64_t now, ReplyBuffer& out) {
  const Flow next{data, false};
  const Flow stop{end, true};
  counters_.add(Stat::kCommands);
  size_t pos = 0;
  const std::string_view name = next_token(line, &pos);
  const Command cmd = name.empty() ? Command::kUnknown : parse_command(name);
  counters_.add_command(cmd);

  // A get reads its arguments from the line itself (its keys are not bounded by kMaxTokens, nor
  // its line by kMaxLineLength): it needs no Tokens.
  if (cmd == Command::kGet || cmd == Command::kGets || cmd == Command::kGat ||
      cmd == Command::kGats) {
    return do_get(cmd, line, pos, now, out) ? next : stop;
  }
  return execute_tokens(cmd, line, data, end, now, out);
}

Protocol::Flow Protocol::execute_tokens(Command cmd, std::string_view line, const char* data,
                                        const char* end, int64_t now, ReplyBuffer& out) {
  const Flow next{data, false};
  const Flow stop{end, true};
  const Tokens t(line);
  const bool is_storage = cmd == Command::kSet || cmd == Command::kAdd ||
                          cmd == Command::kReplace || cmd == Command::kAppend ||
                          cmd == Command::kPrepend || cmd == Command::kCas;
  if (line.size() > kMaxLineLength) {
    counters_.add(Stat::kLinesTooLong);
    if (!client_error(false, out, "CLIENT_ERROR line too long\r\n")) return stop;
    return is_storage ? skip_declared_block(t, data, end) : next;
  }

  bool ok = true;
  switch (cmd) {
    case Command::kGet:
    case Command::kGets:
    case Command::kGat:
    case Command::kGats:
      break;  // served above
    case Command::kSet:
    case Command::kAdd:
    case Command::kReplace:
    case Command::kAppend:
    case Command::kPrepend:
    case Command::kCas:
      return do_storage(cmd, t, data, end, now, out);
    case Command::kIncr:
    case Command::kDecr:
      ok = do_delta(cmd, t, now, out);
      break;
    case Command::kTouch:
      ok = do_touch(t, now, out);
      break;
    case Command::kDelete:
      ok = do_delete(t, now, out);
      break;
    case Command::kFlushAll:
      ok = do_flush_all(t, now, out);
      break;
    case Command::kVersion:
      ok = out.append("VERSION ") && out.append(kServerVersion) && out.append(kCrlf);
      if (!ok) overflow(out);
      break;
    case Command::kVerbosity:
      ok = do_verbosity(t, out);
      break;
    case Command::kStats:
      ok = do_stats(t, now, out);
      break;
    case Command::kQuit:
      return stop;
    case Command::kUnknown:
    case Command::kCount:
      counters_.add(Stat::kUnknownCommands);
      ok = reply(out, "ERROR\r\n");
      break;
  }
  return ok ? next : stop;
}

// set/add/replace/append/prepend <key> <flags> <exptime> <bytes> [noreply]
// cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]
Protocol::Flow Protocol::do_storage(Command cmd, const Tokens& t, const char* data, const char* end,
                                    int64_t now, ReplyBuffer& out) {
  const Flow stop{end, true};
  const bool is_cas = cmd == Command::kCas;
  const size_t want = is_cas ? 6 : 5;
  if (t.n != want && t.n != want + 1) {
    counters_.add(Stat::kUnknownCommands);
    if (!reply(out, "ERROR\r\n")) return stop;
    return skip_declared_block(t, data, end);
  }
  const bool noreply = t.noreply();
  const std::string_view key = t.v[1];
  uint32_t flags = 0;
  int32_t exptime = 0;
  int32_t vlen = 0;
  uint64_t cas = 0;
  if (key.size() > kKeyMaxLength || !parse_u32(t.v[2], &flags) || !parse_i32(t.v[3], &exptime) ||
      !parse_i32(t.v[4], &vlen) || (is_cas && !parse_u64(t.v[5], &cas)) || vlen < 0 ||
      vlen > INT_MAX - 2 || has_nul(key)) {
    if (!client_error(noreply, out, kBadFormat)) return stop;
    return skip_declared_block(t, data, end);
  }
  const uint64_t len = static_cast<uint64_t>(vlen);
  if (key.size() + len > store_.options().item_size_max) {
    // memcached fails the allocation before reading the data, swallows the block, and drops the
    // old value of a set so a stale one does not outlive the failed update.
    counters_.add(Stat::kStoreTooLarge);
    const bool kept_old = cmd == Command::kSet && store_.remove(key, now) == Lookup::kUnavailable;
    if (!reply_unless(noreply, out,
                      kept_old ? kFarError : "SERVER_ERROR object too large for cache\r\n")) {
      return stop;
    }
    return skip_block(data, end, len);
  }
  counters_.add(Stat::kCmdSet);
  const uint64_t avail = static_cast<uint64_t>(end - data);
  if (avail < len + 2 || data[len] != '\r' || data[len + 1] != '\n') {
    counters_.add(Stat::kBadDataChunks);
    if (!client_error(noreply, out, "CLIENT_ERROR bad data chunk\r\n")) return stop;
    return skip_block(data, end, len);
  }

  StoreRequest r;
  switch (cmd) {
    case Command::kAdd:
      r.mode = StoreMode::kAdd;
      break;
    case Command::kReplace:
      r.mode = StoreMode::kReplace;
      break;
    case Command::kAppend:
      r.mode = StoreMode::kAppend;
      break;
    case Command::kPrepend:
      r.mode = StoreMode::kPrepend;
      break;
    case Command::kCas:
      r.mode = StoreMode::kCas;
      break;
    default:
      r.mode = StoreMode::kSet;
      break;
  }
  r.key = key;
  r.value = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data), len);
  r.flags = flags;
  r.expires_at = absolute_expiry(exptime, now);
  r.cas = cas;
  std::string_view line;
  switch (store_.store(r, now)) {
    case StoreOutcome::kStored:
      if (is_cas) counters_.add(Stat::kCasHits);
      line = "STORED\r\n";
      break;
    case StoreOutcome::kNotStored:
      line = "NOT_STORED\r\n";
      break;
    case StoreOutcome::kExists:
      counters_.add(Stat::kCasBadval);
      line = "EXISTS\r\n";
      break;
    case StoreOutcome::kNotFound:
      counters_.add(Stat::kCasMisses);
      line = "NOT_FOUND\r\n";
      break;
    case StoreOutcome::kTooLarge:
      counters_.add(Stat::kStoreTooLarge);
      line = "SERVER_ERROR object too large for cache\r\n";
      break;
    case StoreOutcome::kNoMemory:
      counters_.add(Stat::kStoreNoMemory);
      line = "SERVER_ERROR out of memory storing object\r\n";
      break;
    case StoreOutcome::kBadKey:
      counters_.add(Stat::kClientErrors);
      line = kBadFormat;
      break;
    case StoreOutcome::kUnavailable:
      line = kFarError;
      break;
  }
  if (!reply_unless(noreply, out, line)) return stop;
  return {data + len + 2, false};
}

// get|gets <key>*  /  gat|gats <exptime> <key>*
bool Protocol::do_get(Command cmd, std::string_view line, size_t pos, int64_t now,
                      ReplyBuffer& out) {
  const bool touch = cmd == Command::kGat || cmd == Command::kGats;
  const bool with_cas = cmd == Command::kGets || cmd == Command::kGats;
  // The first argument: a key, or the exptime of gat/gats.
  bool nul = false;
  std::string_view arg = touch ? next_token(line, &pos) : next_key(line, &pos, &nul);
  if (arg.empty()) {
    counters_.add(Stat::kUnknownCommands);
    return reply(out, "ERROR\r\n");
  }
  int64_t new_expiry = 0;
  if (touch) {
    int32_t exptime = 0;
    if (!parse_i32(arg, &exptime)) {
      return client_error(false, out, "CLIENT_ERROR invalid exptime argument\r\n");
    }
    new_expiry = absolute_expiry(exptime, now);
    arg = next_key(line, &pos, &nul);
  }

  const size_t mark = out.mark();
  bool fits = true;
  for (std::string_view key = arg; !key.empty();) {
    if (key.size() > kKeyMaxLength || nul) {
      // memcached drops what it had stacked for this get and answers only the error.
      out.rollback(mark);
      counters_.add(Stat::kClientErrors);
      return out.append_reserved(kBadFormat);
    }
    auto emit = [&](const ItemView& v) {
      // "VALUE <key> <flags> <bytes>[ <cas>]\r\n" (at most ~300 bytes), the value and "\r\n".
      // Sized first, so that when it all fits in the current datagram it is written there in
      // place; otherwise it is formatted aside and appended in pieces.
      const std::string_view k = key.substr(0, kKeyMaxLength);  // checked above; bounded
      const unsigned flag_digits = decimal_digits(v.flags);
      const unsigned len_digits = decimal_digits(v.value.size());
      const unsigned cas_digits = with_cas ? decimal_digits(v.cas) : 0;
      const size_t head_len = sizeof("VALUE ") - 1 + k.size() + 1 + flag_digits + 1 + len_digits +
                              (with_cas ? 1 + cas_digits : 0) + kCrlf.size();
      auto write_head = [&](char* p) {
        p = put(p, "VALUE ");
        p = put(p, k);
        *p++ = ' ';
        p = put_u64(p, v.flags, flag_digits);
        *p++ = ' ';
        p = put_u64(p, v.value.size(), len_digits);
        if (with_cas) {
          *p++ = ' ';
          p = put_u64(p, v.cas, cas_digits);
        }
        return put(p, kCrlf);
      };
      const size_t total = head_len + v.value.size() + kCrlf.size();
      // One value always fits, whatever the request's bound (its END included).
      out.fit_first(total + 5);
      if (char* const start = out.claim(total)) {
        char* p = write_head(start);
        FM_DCHECK(p == start + head_len);
        std::memcpy(p, v.value.data(), v.value.size());
        put(p + v.value.size(), kCrlf);
        fits = true;
        return;
      }
      char head[kKeyMaxLength + 64];
      write_head(head);
      fits =
          out.append(std::string_view(head, head_len)) && out.append(v.value) && out.append(kCrlf);
    };
    const Lookup r =
        touch ? store_.get_and_touch(key, new_expiry, now, emit) : store_.get(key, now, emit);
    counters_.add(touch ? Stat::kCmdTouch : Stat::kCmdGet);
    if (r == Lookup::kUnavailable) [[unlikely]] {
      // Like a bad key: what was stacked for this get is dropped and only the error is sent.
      out.rollback(mark);
      return out.append_reserved(kFarError);
    }
    if (touch) {
      counters_.add(r == Lookup::kHit ? Stat::kTouchHits : Stat::kTouchMisses);
    } else {
      counters_.add(r == Lookup::kHit ? Stat::kGetHits : Stat::kGetMisses);
    }
    if (r == Lookup::kExpired) counters_.add(Stat::kGetExpired);
    if (r == Lookup::kFlushed) counters_.add(Stat::kGetFlushed);
    if (!fits) break;
    key = next_key(line, &pos, &nul);
    // Between keys no lock or pin is held: a long multi-key get may give way here (not after
    // its last key, where only END is left to write).
    if (!key.empty()) sched::preempt_point();
  }
  if (fits && out.append("END\r\n")) return true;
  out.rollback(mark);
  counters_.add(Stat::kReplyOverflows);
  return out.append_reserved(kGetOverflowError);
}

// incr|decr <key> <delta> [noreply]
bool Protocol::do_delta(Command cmd, const Tokens& t, int64_t now, ReplyBuffer& out) {
  if (t.n != 3 && t.n != 4) {
    counters_.add(Stat::kUnknownCommands);
    return reply(out, "ERROR\r\n");
  }
  const bool noreply = t.noreply();
  const std::string_view key = t.v[1];
  if (key.size() > kKeyMaxLength || has_nul(key)) {
    return client_error(noreply, out, "CLIENT_ERROR bad command line format\r\n");
  }
  uint64_t delta = 0;
  if (!parse_u64(t.v[2], &delta)) {
    return client_error(noreply, out, "CLIENT_ERROR invalid numeric delta argument\r\n");
  }
  const bool incr = cmd == Command::kIncr;
  const DeltaResult r = store_.apply_delta(key, incr, delta, now);
  switch (r.outcome) {
    case DeltaOutcome::kOk: {
      counters_.add(incr ? Stat::kIncrHits : Stat::kDecrHits);
      if (noreply) return true;
      char buf[24];
      char* e = put_u64(buf, r.value);
      e = put(e, kCrlf);
      return reply(out, std::string_view(buf, e - buf));
    }
    case DeltaOutcome::kNotFound:
      counters_.add(incr ? Stat::kIncrMisses : Stat::kDecrMisses);
      return reply_unless(noreply, out, "NOT_FOUND\r\n");
    case DeltaOutcome::kNonNumeric:
      return client_error(noreply, out,
                          "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    case DeltaOutcome::kNoMemory:
      return reply_unless(noreply, out, "SERVER_ERROR out of memory\r\n");
    case DeltaOutcome::kUnavailable:
      return reply_unless(noreply, out, kFarError);
  }
  return true;
}

// touch <key> <exptime> [noreply]
bool Protocol::do_touch(const Tokens& t, int64_t now, ReplyBuffer& out) {
  if (t.n != 3 && t.n != 4) {
    counters_.add(Stat::kUnknownCommands);
    return reply(out, "ERROR\r\n");
  }
  const bool noreply = t.noreply();
  const std::string_view key = t.v[1];
  if (key.size() > kKeyMaxLength || has_nul(key)) {
    return client_error(noreply, out, "CLIENT_ERROR bad command line format\r\n");
  }
  int32_t exptime = 0;
  if (!parse_i32(t.v[2], &exptime)) {
    return client_error(noreply, out, "CLIENT_ERROR invalid exptime argument\r\n");
  }
  const Lookup r = store_.touch(key, absolute_expiry(exptime, now), now);
  counters_.add(Stat::kCmdTouch);
  if (r == Lookup::kUnavailable) return reply_unless(noreply, out, kFarError);
  counters_.add(r == Lookup::kHit ? Stat::kTouchHits : Stat::kTouchMisses);
  return reply_unless(noreply, out, r == Lookup::kHit ? "TOUCHED\r\n" : "NOT_FOUND\r\n");
}

// delete <key> [0] [noreply]   (the 0 is a long-gone hold time memcached still accepts)
bool Protocol::do_delete(const Tokens& t, int64_t now, ReplyBuffer& out) {
  if (t.n < 2 || t.n > 4) {
    counters_.add(Stat::kUnknownCommands);
    return reply(out, "ERROR\r\n");
  }
  bool noreply = false;
  if (t.n > 2) {
    const bool hold_is_zero = t.v[2] == "0";
    noreply = t.noreply();
    const bool valid =
        (t.n == 3 && (hold_is_zero || noreply)) || (t.n == 4 && hold_is_zero && noreply);
    if (!valid) {
      return client_error(
          noreply, out, "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
    }
  }
  const std::string_view key = t.v[1];
  if (key.size() > kKeyMaxLength || has_nul(key)) {
    return client_error(noreply, out, "CLIENT_ERROR bad command line format\r\n");
  }
  const Lookup r = store_.remove(key, now);
  if (r == Lookup::kUnavailable) return reply_unless(noreply, out, kFarError);
  counters_.add(r == Lookup::kHit ? Stat::kDeleteHits : Stat::kDeleteMisses);
  return reply_unless(noreply, out, r == Lookup::kHit ? "DELETED\r\n" : "NOT_FOUND\r\n");
}

// flush_all [delay] [noreply]
bool Protocol::do_flush_all(const Tokens& t, int64_t now, ReplyBuffer& out) {
  if (t.n < 1 || t.n > 3) {
    counters_.add(Stat::kUnknownCommands);
    return reply(out, "ERROR\r\n");
  }
  const bool noreply = t.noreply();
  counters_.add(Stat::kCmdFlush);
  int32_t delay = 0;
  if (t.n != (noreply ? 2u : 1u) && !parse_i32(t.v[1], &delay)) {
    return client_error(noreply, out, "CLIENT_ERROR invalid exptime argument\r\n");
  }
  // The delay reads like an exptime (relative up to 30 days, else absolute); <= 0 is now.
  store_.flush_all(delay > 0 ? absolute_expiry(delay, now) : now, now);
  return reply_unless(noreply, out, "OK\r\n");
}

// verbosity <level> [noreply]: accepted and ignored (logging is configured elsewhere).
bool Protocol::do_verbosity(const Tokens& t, ReplyBuffer& out) {
  if (t.n != 2 && t.n != 3) {
    counters_.add(Stat::kUnknownCommands);
    return reply(out, "ERROR\r\n");
  }
  const bool noreply = t.noreply();
  uint32_t level = 0;
  if (!parse_u32(t.v[1], &level)) {
    return client_error(noreply, out, "CLIENT_ERROR bad command line format\r\n");
  }
  return reply_unless(noreply, out, "OK\r\n");
}

// stats / stats reset
bool Protocol::do_stats(const Tokens& t, int64_t now, ReplyBuffer& out) {
  if (t.n >= 2) {
    if (t.v[1] == "reset") {
      store_.stats_registry().reset();
      store_.reset_stats();
      return reply(out, "RESET\r\n");
    }
    counters_.add(Stat::kUnknownCommands);
    return reply(out, "ERROR\r\n");
  }
  const size_t mark = out.mark();
  StatsWriter w(out);
  write_stats(now, w);
  if (w.ok() && out.append("END\r\n")) return true;
  out.rollback(mark);
  counters_.add(Stat::kReplyOverflows);
  return out.append_reserved(kStatsOverflowError);
}

void Protocol::write_stats(int64_t now, StatSink& w) const {
  const StatValues c = store_.stats_registry().sum();
  const StoreStats s = store_.stats();
  auto counter = [&](Stat k) { w.stat(stat_name(k), c[static_cast<size_t>(k)]); };

  w.stat_signed("pid", pid_);
  w.stat_signed("uptime", now > store_.started_at() ? now - store_.started_at() : 0);
  w.stat_signed("time", now);
  w.stat("version", kServerVersion);
  w.stat("pointer_size", uint64_t{sizeof(void*) * 8});
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  char buf[48];
  auto seconds = [&](const timeval& tv) {
    const int n = std::snprintf(buf, sizeof(buf), "%ld.%06ld", static_cast<long>(tv.tv_sec),
                                static_cast<long>(tv.tv_usec));
    return std::string_view(buf, n > 0 ? static_cast<size_t>(n) : 0);
  };
  w.stat("rusage_user", seconds(ru.ru_utime));
  w.stat("rusage_system", seconds(ru.ru_stime));
  for (size_t i = 0; i <= static_cast<size_t>(Stat::kBytesWritten); ++i) {
    counter(static_cast<Stat>(i));
  }
  w.stat("limit_maxbytes", s.limit_maxbytes);
  w.stat("threads", uint64_t{store_.stats_registry().sessions()});
  w.stat("hash_power_level", uint64_t{s.hash_power_level});
  w.stat("hash_bytes", s.hash_bytes);
  w.stat("hash_is_expanding", uint64_t{s.hash_is_expanding ? 1u : 0u});
  w.stat("hash_expansions", s.hash_expansions);
  w.stat("slabs_moved", s.slabs_moved);
  w.stat("slab_reassign_evictions", s.slab_reassign_evictions);
  w.stat("slab_reassign_busy", s.slab_reassign_busy);
  w.stat("bytes", s.bytes);
  w.stat("curr_items", s.curr_items);
  w.stat("total_items", s.total_items);
  w.stat("evictions", s.evictions);
  w.stat("reclaimed", s.reclaimed);
  w.stat("kv_slabs_used", s.used_slabs);
  w.stat("kv_slabs_total", s.total_slabs);
  w.stat("kv_chunks_used", s.chunks_used);
  w.stat("kv_far_errors", s.far_errors);
  w.stat("kv_lost_items", s.lost_items);
  w.stat("kv_store_retries", s.retries);
  for (size_t i = static_cast<size_t>(Stat::kBytesWritten) + 1; i < kStatCount; ++i) {
    counter(static_cast<Stat>(i));
  }
  if (hook_ != nullptr) hook_->append_stats(w);
}

}  // namespace fm::kv
