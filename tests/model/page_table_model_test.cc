// Exhaustive interleaving check of the page-table word protocol of paging/region.cc.
//
// Covers: pin_page (load, pin CAS, frame_ref store), the claim CAS to kFetching, fault (take a
// frame, zero-fill or fetch, frame_page_ store, frame_ref store, word store), take_frame (load
// and fetch_add of next_unused_, the frame_page_ store for a never-used frame, the CLOCK hand's
// fetch_add, frame_page_ load and CAS, frame_ref_ exchange) and evict (word load and CAS to
// kEvicting, frame_page_ store, write-back, word store), the failure paths (failed fetch,
// failed write-back, no evictable frame) and unpin's fetch_sub: every load, CAS and store is
// its own step, as in the code. Each thread runs a bounded script of pin/read/write/unpin.
// Models: 2-3 threads, 2-3 pages, 1-2 frames, up to one injected memory-node error (see the
// tests for each script; 0.1 k to 1.8 M states each); frame contents and the memory node's copy
// are a version number per page, to check that no write is lost.
// Memory model: sequential consistency (interleavings only). The entry words change only by
// acq_rel CAS/fetch_sub and release stores, each on one word, and those hand a frame's data from
// one owner to the next; the relaxed accesses are single words whose stale values are harmless:
// next_unused_ and hand_ are RMWs (they always see the latest value), a stale frame_ref_ bit only
// changes which frame CLOCK picks, a stale frame_page_ value either fails the CAS from 0 or is
// checked again against the page's word by evict()'s CAS.
// Not covered: try_pin, kOverwrite (no fetch for whole-page overwrites), multi-page pins and
// their bounce buffers, the pin-count overflow wait, weak-CAS spurious failures (a retry that
// reloads, which the failing-CAS step already covers), the transport and the completion queue
// (a fetch or write-back is one step), the hand_'s 64-bit wrap, more threads/pages/frames or
// longer scripts. A thread waiting on a kFetching/kEvicting page is blocked (its spin loads
// change nothing) so a wait that never ends shows up as a deadlock at the end.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <string>
#include <vector>

#include "tests/model/explorer.h"

namespace fm::model {
namespace {

constexpr int kMaxThreads = 3, kMaxPages = 3, kMaxFrames = 2;

// Entry word states, as in region.cc.
constexpr uint8_t kUnbacked = 0, kRemote = 1, kFetching = 2, kResident = 3, kEvicting = 4;
// frame_page_ values: kFree (0), kClaimed, else page + 1.
constexpr uint8_t kFree = 0, kClaimed = 0xFF;
constexpr uint8_t kNone = 0xFF;     // no thread / no frame / no page
constexpr uint8_t kCorrupt = 0xFE;  // a remote copy written from another page's frame

struct Word {
  uint8_t state = kUnbacked, dirty = 0, backed = 0, pins = 0, frame = 0;
  bool operator==(const Word&) const = default;
};

enum Op : uint8_t { kPinRead, kPinWrite, kDoRead, kDoWrite, kDoUnpin };
struct Action {
  Op op;
  uint8_t page;
};

struct Config {
  int pages = 2, frames = 1;
  std::vector<std::vector<Action>> scripts;  // one per thread
  bool fixed = false;  // (b): frames start kClaimed and next_unused_ alone hands them out
  int failures = 0;    // memory-node errors (failed fetch or write-back) the model may inject
  bool seed_evict_pinned = false;  // a seeded bug: evict() ignores the pin count
};

// Where a thread is: the next atomic step it takes.
// clang-format off
enum Pc : uint8_t {
  kDone,
  kPinLoad, kPinCas, kPinRef, kClaimCas,                      // pin_page
  kTfLoad, kTfFetchAdd, kTfStoreClaimed,                      // take_frame: never-used frames
  kClHand, kClLoad, kClCas0, kClRef,                          // take_frame: CLOCK
  kEvLoad, kEvCas, kEvStoreClaimed, kEvWriteBack, kEvFailFrame, kEvFailWord, kEvStoreWord,
  kTfFailWord,                                                // fault: no frame
  kFill, kFailFrame, kFailWord, kFrameStore, kRefStore, kWordStore,  // fault
  kRead, kWrite, kUnpin,                                      // the script's other actions
};
// clang-format on

const char* pc_name(uint8_t pc) {
  // clang-format off
  static const char* const names[] = {
      "done", "pin:load", "pin:cas", "pin:ref", "pin:claim-cas", "take:load-next",
      "take:fetch-add", "take:store-claimed", "clock:hand", "clock:load", "clock:cas-free",
      "clock:ref", "evict:load", "evict:cas", "evict:store-claimed", "evict:write-back",
      "evict:fail-frame", "evict:fail-word", "evict:store-word", "fault:no-frame",
      "fault:fill", "fault:fail-frame", "fault:fail-word", "fault:frame-store",
      "fault:ref-store", "fault:word-store", "read", "write", "unpin"};
  // clang-format on
  static_assert(sizeof names / sizeof names[0] == kUnpin + 1);
  return names[pc];
}

struct Thread {
  uint8_t pc, ip;                // next step; next script action
  uint8_t page;                  // the current action's page
  uint8_t write;                 // the current pin is for writing
  Word old;                      // the word pin_page loaded (fault's `old` once claimed)
  uint8_t f;                     // take_frame: the frame taken / the hand's frame
  uint8_t i;                     // take_frame: CLOCK iteration
  uint8_t pg;                    // take_frame: frame_page_[h] as loaded
  Word ew;                       // evict: the word loaded (`backed` updated after a write-back)
  uint8_t holding;               // ghost: the frame this thread took and fills (kNone)
  uint8_t pinned[kMaxPages];     // ghost: 0 none, 1 read, 2 write
  uint8_t pin_frame[kMaxPages];  // ghost: the frame its pin returned
};

// Errors seen inside a step (the state after it carries them).
enum Error : uint8_t { kOk, kNotClaimer, kStaleRead, kStaleWrite, kUnpinNotResident };

struct State {
  Word word[kMaxPages];
  uint8_t frame_page[kMaxFrames];
  uint8_t ref[kMaxFrames];
  uint8_t next_unused, hand;
  uint8_t data_page[kMaxFrames], data_ver[kMaxFrames];  // what each frame holds
  uint8_t remote[kMaxPages];                            // the memory node's copy: a version
  uint8_t latest[kMaxPages];                            // ghost: the last version written
  uint8_t fetcher[kMaxPages];  // ghost: the thread whose CAS moved the page to kFetching
  uint8_t failures;            // memory-node errors left to inject
  uint8_t error, error_thread, error_page;
  Thread t[kMaxThreads];
};

std::string fmt(const char* f, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

std::string word_str(const Word& w) {
  static const char* const st[] = {"unbacked", "remote", "fetching", "resident", "evicting"};
  std::string s = st[w.state];
  if (w.state == kResident || w.state == kEvicting) {
    s += fmt("(f%d", w.frame);
    if (w.pins) s += fmt(" pins=%d", w.pins);
    if (w.dirty) s += " dirty";
    s += ")";
  }
  if (w.backed && w.state != kRemote) s += "+backed";
  return s;
}

std::string fp_str(uint8_t v) {
  return v == kFree ? "0" : v == kClaimed ? "claimed" : fmt("p%d+1", v - 1);
}

class PageTableModel {
 public:
  using State = ::fm::model::State;

  explicit PageTableModel(Config c) : c_(std::move(c)) {}

  State initial() const {
    State s{};
    for (int p = 0; p < kMaxPages; ++p) s.fetcher[p] = kNone;
    for (int f = 0; f < kMaxFrames; ++f) {
      s.frame_page[f] = c_.fixed && f < c_.frames ? kClaimed : kFree;
      s.data_page[f] = kNone;
    }
    s.failures = uint8_t(c_.failures);
    for (int k = 0; k < kMaxThreads; ++k) {
      s.t[k].holding = kNone;
      s.t[k].pc = kDone;
      if (k < int(c_.scripts.size())) next_action(s, k);
    }
    return s;
  }

  template <class F>
  void successors(const State& s, bool text, F&& emit) const {
    if (s.error != kOk) return;
    for (int k = 0; k < int(c_.scripts.size()); ++k)
      if (s.t[k].pc != kDone) step(s, k, text, emit);
  }

  std::string check(const State& s) const {
    if (s.error != kOk) {
      static const char* const what[] = {
          "", "a step of the fault path ran on a thread that did not claim the page",
          "a read saw stale data", "a write went to stale data",
          "unpin of a page that is not resident and pinned"};
      return fmt("T%d, page p%d: %s", s.error_thread, s.error_page, what[s.error]);
    }
    for (int f = 0; f < c_.frames; ++f) {
      std::string who;
      int n = 0;
      for (int k = 0; k < int(c_.scripts.size()); ++k)
        if (s.t[k].holding == f) {
          who += fmt(" T%d(filling p%d)", k, s.t[k].page);
          ++n;
        }
      for (int p = 0; p < c_.pages; ++p) {
        const Word& w = s.word[p];
        if ((w.state == kResident || w.state == kEvicting) && w.frame == f) {
          who += fmt(" p%d(%s)", p, word_str(w).c_str());
          ++n;
        }
      }
      if (n > 1) return fmt("frame f%d has two owners:%s", f, who.c_str());
    }
    for (int f = 0; f < c_.frames; ++f)
      for (int g = f + 1; g < c_.frames; ++g)
        if (s.frame_page[f] == s.frame_page[g] && s.frame_page[f] != kFree &&
            s.frame_page[f] != kClaimed)
          return fmt("frame_page_ names %s for both f%d and f%d", fp_str(s.frame_page[f]).c_str(),
                     f, g);
    for (int p = 0; p < c_.pages; ++p) {
      const Word& w = s.word[p];
      if (w.state == kResident && s.frame_page[w.frame] != p + 1)
        return fmt("p%d is resident in f%d but frame_page_[f%d] is %s", p, w.frame, w.frame,
                   fp_str(s.frame_page[w.frame]).c_str());
      int held = 0;
      for (int k = 0; k < int(c_.scripts.size()); ++k) {
        if (!s.t[k].pinned[p]) continue;
        ++held;
        if (w.state != kResident)
          return fmt("p%d is pinned by T%d but its word is %s", p, k, word_str(w).c_str());
        if (w.frame != s.t[k].pin_frame[p])
          return fmt("p%d pinned by T%d in f%d moved to f%d", p, k, s.t[k].pin_frame[p], w.frame);
      }
      if (w.state == kResident && w.pins != held)
        return fmt("p%d has pin count %d but %d pins are held", p, w.pins, held);
      if ((w.state == kFetching) != (s.fetcher[p] != kNone))
        return fmt("p%d is %s but its fetcher is %d", p, word_str(w).c_str(), s.fetcher[p]);
      // No lost data: wherever the page's data lives now, it is the latest version.
      const bool remote_ok = w.backed ? s.remote[p] == s.latest[p] : s.latest[p] == 0;
      if (w.state == kResident || w.state == kEvicting) {
        if (s.data_page[w.frame] != p || s.data_ver[w.frame] != s.latest[p])
          return fmt("lost data: f%d of p%d holds %s, the latest is version %d", w.frame, p,
                     data_str(s, w.frame).c_str(), s.latest[p]);
        if (!w.dirty && !remote_ok)
          return fmt("lost data: p%d is clean but its remote copy is not the latest (v%d)", p,
                     s.latest[p]);
      } else if (!remote_ok) {
        return fmt("lost data: p%d is %s but the latest is version %d (remote v%d)", p,
                   word_str(w).c_str(), s.latest[p], s.remote[p]);
      }
    }
    return "";
  }

  std::string check_end(const State& s) const {
    for (int k = 0; k < int(c_.scripts.size()); ++k)
      if (s.t[k].pc != kDone)
        return fmt("deadlock: T%d waits at %s on p%d (%s) for ever", k, pc_name(s.t[k].pc),
                   s.t[k].page, word_str(s.word[s.t[k].page]).c_str());
    for (int p = 0; p < c_.pages; ++p) {
      const Word& w = s.word[p];
      if (w.state == kFetching || w.state == kEvicting || w.pins != 0)
        return fmt("p%d is left %s", p, word_str(w).c_str());
    }
    const int used = std::min<int>(s.next_unused, c_.frames);
    for (int f = 0; f < c_.frames; ++f) {
      const uint8_t v = s.frame_page[f];
      if (v == kClaimed && f < used) return fmt("f%d is left claimed: nobody can use it", f);
      if (v != kFree && v != kClaimed &&
          !(s.word[v - 1].state == kResident && s.word[v - 1].frame == f))
        return fmt("frame_page_[f%d] is p%d+1 but p%d is %s", f, v - 1, v - 1,
                   word_str(s.word[v - 1]).c_str());
    }
    return "";
  }

  std::string show(const State& s) const {
    std::string o = "words[";
    for (int p = 0; p < c_.pages; ++p)
      o += fmt("%sp%d=%s", p ? " " : "", p, word_str(s.word[p]).c_str());
    o += "] frame_page[";
    for (int f = 0; f < c_.frames; ++f)
      o += fmt("%s%s", f ? " " : "", fp_str(s.frame_page[f]).c_str());
    o += fmt("] next_unused=%d hand=%d ref[", s.next_unused, s.hand);
    for (int f = 0; f < c_.frames; ++f) o += fmt("%s%d", f ? " " : "", s.ref[f]);
    o += "] frames[";
    for (int f = 0; f < c_.frames; ++f) o += fmt("%s%s", f ? " " : "", data_str(s, f).c_str());
    o += "] remote/latest[";
    for (int p = 0; p < c_.pages; ++p)
      o += fmt("%sv%d/v%d", p ? " " : "", s.remote[p], s.latest[p]);
    o += "] |";
    for (int k = 0; k < int(c_.scripts.size()); ++k) {
      const Thread& t = s.t[k];
      o += fmt(" T%d@%s", k, pc_name(t.pc));
      if (t.pc != kDone) o += fmt("(p%d)", t.page);
      for (int p = 0; p < c_.pages; ++p)
        if (t.pinned[p]) o += fmt(" pin:p%d@f%d", p, t.pin_frame[p]);
    }
    return o;
  }

 private:
  static std::string data_str(const State& s, int f) {
    if (s.data_page[f] == kNone) return "-";
    return fmt("p%d.v%d", s.data_page[f], s.data_ver[f]);
  }

  template <class F, class D>
  static void out(F& emit, int k, const State& n, bool text, D&& describe) {
    emit(n, Step{k, false, text ? describe() : std::string()});
  }

  // Moves thread k to its next script action (skipping the reads, writes and unpin of a page
  // whose pin failed); local work, so part of the step that finished the previous action.
  void next_action(State& s, int k) const {
    Thread& t = s.t[k];
    const auto& script = c_.scripts[k];
    for (;;) {
      if (t.ip >= script.size()) {
        t.pc = kDone;
        return;
      }
      const Action a = script[t.ip];
      t.page = a.page;
      switch (a.op) {
        case kPinRead:
        case kPinWrite:
          t.write = a.op == kPinWrite;
          t.pc = kPinLoad;
          return;
        case kDoRead:
        case kDoWrite:
        case kDoUnpin:
          if (t.pinned[a.page]) {
            t.pc = a.op == kDoRead ? kRead : a.op == kDoWrite ? kWrite : kUnpin;
            return;
          }
          ++t.ip;  // its pin failed
          continue;
      }
    }
  }
  void finish_action(State& s, int k) const {
    ++s.t[k].ip;
    next_action(s, k);
  }
  void take(State& s, int k, uint8_t f) const {
    s.t[k].f = f;
    s.t[k].holding = f;
    s.t[k].pc = kFill;
  }
  // The CLOCK loop's `continue`: next iteration, or give up after 4 * frames.
  void next_clock(State& s, int k) const {
    Thread& t = s.t[k];
    ++t.i;
    t.pc = t.i < 4 * c_.frames ? kClHand : kTfFailWord;
  }
  static void fail(State& s, int k, Error e, int page) {
    s.error = e;
    s.error_thread = uint8_t(k);
    s.error_page = uint8_t(page);
  }

  template <class F>
  void step(const State& s, int k, bool text, F& emit) const {
    const Thread& t = s.t[k];
    const int p = t.page;
    const int f = t.f;
    const int q = t.pg - 1;  // the page CLOCK found in frame f
    State n = s;
    Thread& me = n.t[k];
    switch (t.pc) {
      case kPinLoad: {
        const Word w = s.word[p];
        if (w.state == kFetching || w.state == kEvicting) return;  // waits for it to settle
        me.old = w;
        me.pc = w.state == kResident ? kPinCas : kClaimCas;
        return out(emit, k, n, text,
                   [&] { return fmt("pin p%d: load word -> %s", p, word_str(w).c_str()); });
      }
      case kPinCas: {
        if (!(s.word[p] == t.old)) {
          me.pc = kPinLoad;
          return out(emit, k, n, text, [&] { return fmt("pin p%d: pin CAS fails", p); });
        }
        Word w = t.old;
        ++w.pins;
        if (t.write) w.dirty = 1;
        n.word[p] = w;
        me.pinned[p] = t.write ? 2 : 1;
        me.pin_frame[p] = w.frame;
        me.pc = kPinRef;
        return out(emit, k, n, text,
                   [&] { return fmt("pin p%d: CAS word -> %s", p, word_str(w).c_str()); });
      }
      case kPinRef:
        n.ref[t.pin_frame[p]] = 1;
        finish_action(n, k);
        return out(emit, k, n, text,
                   [&] { return fmt("pin p%d: frame_ref_[f%d] = 1; pinned", p, t.pin_frame[p]); });
      case kClaimCas: {
        if (!(s.word[p] == t.old)) {
          me.pc = kPinLoad;
          return out(emit, k, n, text, [&] { return fmt("pin p%d: claim CAS fails", p); });
        }
        Word w;
        w.state = kFetching;
        w.backed = t.old.backed;
        n.word[p] = w;
        n.fetcher[p] = uint8_t(k);
        me.pc = kTfLoad;
        return out(emit, k, n, text, [&] {
          return fmt("pin p%d: CAS word %s -> %s (this thread faults it in)", p,
                     word_str(t.old).c_str(), word_str(w).c_str());
        });
      }
      case kTfLoad:
        if (s.next_unused < c_.frames) {
          me.pc = kTfFetchAdd;
        } else {
          me.pc = kClHand;
          me.i = 0;
        }
        return out(emit, k, n, text,
                   [&] { return fmt("take_frame: load next_unused_ -> %d", s.next_unused); });
      case kTfFetchAdd: {
        const int u = s.next_unused;
        n.next_unused = uint8_t(u + 1);
        if (u >= c_.frames) {
          me.pc = kClHand;
          me.i = 0;
        } else if (c_.fixed) {
          take(n, k, uint8_t(u));
        } else {
          me.f = uint8_t(u);
          me.pc = kTfStoreClaimed;
        }
        return out(emit, k, n, text, [&] {
          return fmt("take_frame: next_unused_.fetch_add(1) -> %d%s", u,
                     u < c_.frames && c_.fixed ? fmt("; takes never-used f%d", u).c_str() : "");
        });
      }
      case kTfStoreClaimed:
        n.frame_page[f] = kClaimed;
        take(n, k, uint8_t(f));
        return out(emit, k, n, text, [&] {
          return fmt("take_frame: frame_page_[f%d] = claimed; takes never-used f%d", f, f);
        });
      case kClHand:
        me.f = s.hand;
        n.hand = uint8_t((s.hand + 1) % c_.frames);
        me.pc = kClLoad;
        return out(emit, k, n, text, [&] {
          return fmt("CLOCK: hand_.fetch_add(1) -> f%d (iteration %d)", s.hand, t.i);
        });
      case kClLoad: {
        const uint8_t v = s.frame_page[f];
        me.pg = v;
        if (v == kFree) {
          me.pc = kClCas0;
        } else if (v == kClaimed) {
          next_clock(n, k);
        } else {
          me.pc = kClRef;
        }
        return out(emit, k, n, text,
                   [&] { return fmt("CLOCK: load frame_page_[f%d] -> %s", f, fp_str(v).c_str()); });
      }
      case kClCas0:
        if (s.frame_page[f] != kFree) {
          next_clock(n, k);
          return out(emit, k, n, text,
                     [&] { return fmt("CLOCK: CAS frame_page_[f%d] 0 -> claimed fails", f); });
        }
        n.frame_page[f] = kClaimed;
        take(n, k, uint8_t(f));
        return out(emit, k, n, text, [&] {
          return fmt("CLOCK: CAS frame_page_[f%d] 0 -> claimed; takes free f%d", f, f);
        });
      case kClRef: {
        const uint8_t r = s.ref[f];
        n.ref[f] = 0;
        if (r)
          next_clock(n, k);
        else
          me.pc = kEvLoad;
        return out(emit, k, n, text,
                   [&] { return fmt("CLOCK: frame_ref_[f%d].exchange(0) -> %d", f, r); });
      }
      case kEvLoad: {
        const Word w = s.word[q];
        if (w.state != kResident || w.frame != f || (w.pins != 0 && !c_.seed_evict_pinned)) {
          next_clock(n, k);
        } else {
          me.ew = w;
          me.pc = kEvCas;
        }
        return out(emit, k, n, text, [&] {
          return fmt("evict f%d: load word[p%d] -> %s", f, q, word_str(w).c_str());
        });
      }
      case kEvCas: {
        if (!(s.word[q] == t.ew)) {
          next_clock(n, k);
          return out(emit, k, n, text, [&] { return fmt("evict p%d: CAS fails", q); });
        }
        Word w = t.ew;
        w.state = kEvicting;
        n.word[q] = w;
        me.pc = kEvStoreClaimed;
        return out(emit, k, n, text,
                   [&] { return fmt("evict p%d: CAS word -> %s", q, word_str(w).c_str()); });
      }
      case kEvStoreClaimed:
        n.frame_page[f] = kClaimed;
        me.pc = t.ew.dirty ? kEvWriteBack : kEvStoreWord;
        return out(emit, k, n, text,
                   [&] { return fmt("evict p%d: frame_page_[f%d] = claimed", q, f); });
      case kEvWriteBack: {
        n.remote[q] = s.data_page[f] == q ? s.data_ver[f] : kCorrupt;
        me.ew.backed = 1;
        me.pc = kEvStoreWord;
        out(emit, k, n, text, [&] {
          return fmt("evict p%d: write-back of f%d (%s) to the memory node", q, f,
                     data_str(s, f).c_str());
        });
        if (s.failures > 0) {
          State m = s;
          --m.failures;
          m.t[k].pc = kEvFailFrame;
          out(emit, k, m, text,
              [&] { return fmt("evict p%d: write-back fails (memory node error)", q); });
        }
        return;
      }
      case kEvFailFrame:
        n.frame_page[f] = uint8_t(q + 1);
        me.pc = kEvFailWord;
        return out(emit, k, n, text, [&] {
          return fmt("evict p%d: frame_page_[f%d] = p%d+1 (keep it here)", q, f, q);
        });
      case kEvFailWord:
        n.word[q] = t.ew;
        next_clock(n, k);
        return out(emit, k, n, text, [&] {
          return fmt("evict p%d: store word back -> %s", q, word_str(t.ew).c_str());
        });
      case kEvStoreWord: {
        Word w;
        if (t.ew.backed) {
          w.state = kRemote;
          w.backed = 1;
        }
        n.word[q] = w;
        take(n, k, uint8_t(f));
        return out(emit, k, n, text, [&] {
          return fmt("evict p%d: store word -> %s; takes f%d", q, word_str(w).c_str(), f);
        });
      }
      case kTfFailWord:
        n.word[p] = t.old;
        n.fetcher[p] = kNone;
        finish_action(n, k);
        return out(emit, k, n, text, [&] {
          return fmt("fault p%d: no frame; store word back -> %s; pin fails", p,
                     word_str(t.old).c_str());
        });
      case kFill: {
        if (s.fetcher[p] != k || s.word[p].state != kFetching) fail(n, k, kNotClaimer, p);
        n.data_page[f] = uint8_t(p);
        n.data_ver[f] = t.old.backed ? s.remote[p] : 0;
        me.pc = kFrameStore;
        out(emit, k, n, text, [&] {
          return t.old.backed ? fmt("fault p%d: fetch into f%d (v%d)", p, f, s.remote[p])
                              : fmt("fault p%d: zero-fill f%d (never written back)", p, f);
        });
        if (t.old.backed && s.failures > 0) {
          State m = s;
          --m.failures;
          m.data_page[f] = kNone;  // whatever the failed read left there
          m.t[k].pc = kFailFrame;
          out(emit, k, m, text,
              [&] { return fmt("fault p%d: fetch into f%d fails (memory node error)", p, f); });
        }
        return;
      }
      case kFailFrame:
        n.frame_page[f] = kFree;
        me.holding = kNone;
        me.pc = kFailWord;
        return out(emit, k, n, text, [&] {
          return fmt("fault p%d: frame_page_[f%d] = 0 (give the frame back)", p, f);
        });
      case kFailWord:
        n.word[p] = t.old;
        n.fetcher[p] = kNone;
        finish_action(n, k);
        return out(emit, k, n, text, [&] {
          return fmt("fault p%d: store word back -> %s; pin fails", p, word_str(t.old).c_str());
        });
      case kFrameStore:
        n.frame_page[f] = uint8_t(p + 1);
        me.pc = kRefStore;
        return out(emit, k, n, text,
                   [&] { return fmt("fault p%d: frame_page_[f%d] = p%d+1", p, f, p); });
      case kRefStore:
        n.ref[f] = 1;
        me.pc = kWordStore;
        return out(emit, k, n, text, [&] { return fmt("fault p%d: frame_ref_[f%d] = 1", p, f); });
      case kWordStore: {
        if (s.fetcher[p] != k || s.word[p].state != kFetching) fail(n, k, kNotClaimer, p);
        Word w;
        w.state = kResident;
        w.dirty = t.write;
        w.backed = t.old.backed;
        w.pins = 1;
        w.frame = uint8_t(f);
        n.word[p] = w;
        n.fetcher[p] = kNone;
        me.holding = kNone;
        me.pinned[p] = t.write ? 2 : 1;
        me.pin_frame[p] = uint8_t(f);
        finish_action(n, k);
        return out(emit, k, n, text, [&] {
          return fmt("fault p%d: store word -> %s; pinned", p, word_str(w).c_str());
        });
      }
      case kRead:
      case kWrite: {
        const int pf = t.pin_frame[p];
        const bool fresh = s.data_page[pf] == p && s.data_ver[pf] == s.latest[p];
        if (!fresh) fail(n, k, t.pc == kRead ? kStaleRead : kStaleWrite, p);
        if (t.pc == kWrite) {
          n.latest[p] = uint8_t(s.latest[p] + 1);
          n.data_page[pf] = uint8_t(p);
          n.data_ver[pf] = n.latest[p];
        }
        finish_action(n, k);
        return out(emit, k, n, text, [&] {
          return t.pc == kRead ? fmt("read p%d in f%d: %s", p, pf, data_str(s, pf).c_str())
                               : fmt("write p%d in f%d: %s -> v%d", p, pf, data_str(s, pf).c_str(),
                                     n.latest[p]);
        });
      }
      case kUnpin: {
        const Word w = s.word[p];
        if (w.state != kResident || w.pins == 0) {
          fail(n, k, kUnpinNotResident, p);
        } else {
          --n.word[p].pins;
        }
        me.pinned[p] = 0;
        finish_action(n, k);
        return out(emit, k, n, text, [&] {
          return fmt("unpin p%d: word.fetch_sub(pin) -> %s", p, word_str(n.word[p]).c_str());
        });
      }
      default:
        return;
    }
  }

  Config c_;
};

// --------------------------------------------------------------------------------------------

struct ModelRun {
  Outcome outcome;
  std::string trace;
  double seconds = 0;
};

ModelRun explore(const char* name, const Config& c) {
  PageTableModel m(c);
  Explorer<PageTableModel> x(m);
  const auto t0 = std::chrono::steady_clock::now();
  ModelRun r;
  r.outcome = x.run();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (r.outcome.bad != kNoState) r.trace = x.trace(r.outcome.bad);
  std::printf("[model] page table %s: %zu states, %zu transitions, depth %zu, %.2f s%s\n", name,
              r.outcome.states, r.outcome.transitions, r.outcome.depth, r.seconds,
              r.outcome.complete ? " (complete)" : " (stopped at a violation)");
  if (!r.outcome.violation.empty())
    std::printf("[model]   violation: %s\n[model]   trace:\n%s", r.outcome.violation.c_str(),
                r.trace.c_str());
  return r;
}

constexpr Action PR(int p) { return {kPinRead, uint8_t(p)}; }
constexpr Action PW(int p) { return {kPinWrite, uint8_t(p)}; }
constexpr Action R(int p) { return {kDoRead, uint8_t(p)}; }
constexpr Action W(int p) { return {kDoWrite, uint8_t(p)}; }
constexpr Action U(int p) { return {kDoUnpin, uint8_t(p)}; }

// Two threads cross over the pages: each writes one and then reads another.
Config two_threads(int pages, int frames, bool fixed, int failures) {
  Config c;
  c.pages = pages;
  c.frames = frames;
  c.fixed = fixed;
  c.failures = failures;
  const int last = pages - 1;
  c.scripts = {{PW(0), W(0), U(0), PR(last), R(last), U(last)},
               {PW(1), W(1), U(1), PR(0), R(0), U(0)}};
  return c;
}

// Three threads: two writers and a reader that holds two pages at once (with one frame its
// second pin finds nothing to evict and fails).
Config three_threads(int pages, int frames, bool fixed, int failures) {
  Config c;
  c.pages = pages;
  c.frames = frames;
  c.fixed = fixed;
  c.failures = failures;
  const int last = pages - 1;
  c.scripts = {{PW(0), W(0), U(0), PR(last), R(last), U(last)},
               {PW(1), W(1), U(1), PW(last), W(last), U(last)},
               {PR(0), PR(1), R(0), R(1), U(1), U(0)}};
  return c;
}

std::string name_of(const char* protocol, const Config& c) {
  return fmt("%s, %zu threads, %d pages, %d frame(s), %d memory-node error(s)", protocol,
             c.scripts.size(), c.pages, c.frames, c.failures);
}

// (a) The current hand-out of never-used frames: fetch_add, then a separate kClaimed store,
// while frame_page_ starts at 0 (free to CLOCK). The checker must find two pages in one frame.
// (With as many frames as pages CLOCK never runs unless a fetch fails, hence 3 pages for 2.)
TEST(PageTableModel, CurrentHandOutGivesOneFrameToTwoPages) {
  for (const Config& c :
       {two_threads(2, 1, /*fixed=*/false, 0), two_threads(3, 2, /*fixed=*/false, 0)}) {
    const std::string name = name_of("current", c);
    const ModelRun r = explore(name.c_str(), c);
    ASSERT_FALSE(r.outcome.violation.empty()) << name << ": the race was not found";
    EXPECT_NE(r.outcome.violation.find("two owners"), std::string::npos) << r.outcome.violation;
    EXPECT_NE(r.trace.find("next_unused_.fetch_add(1)"), std::string::npos) << r.trace;
    EXPECT_NE(r.trace.find("CLOCK: CAS frame_page_"), std::string::npos) << r.trace;
  }
}

// (b) The fix: frames start kClaimed, next_unused_ alone hands them out, a failed fetch gives
// its frame back as 0. Every interleaving is clean, with and without memory-node errors.
TEST(PageTableModel, FixedHandOutIsCleanWithTwoThreads) {
  for (int failures : {0, 1}) {
    for (const Config& c :
         {two_threads(2, 1, /*fixed=*/true, failures), two_threads(2, 2, /*fixed=*/true, failures),
          two_threads(3, 2, /*fixed=*/true, failures)}) {
      const std::string name = name_of("fixed", c);
      const ModelRun r = explore(name.c_str(), c);
      EXPECT_TRUE(r.outcome.violation.empty()) << name;
      EXPECT_TRUE(r.outcome.complete) << name;
    }
  }
}

TEST(PageTableModel, FixedHandOutIsCleanWithThreeThreads) {
  for (const Config& c :
       {three_threads(2, 1, /*fixed=*/true, 1), three_threads(2, 2, /*fixed=*/true, 1),
        three_threads(3, 2, /*fixed=*/true, 1)}) {
    const std::string name = name_of("fixed", c);
    const ModelRun r = explore(name.c_str(), c);
    EXPECT_TRUE(r.outcome.violation.empty()) << name;
    EXPECT_TRUE(r.outcome.complete) << name;
  }
}

// The checker itself: a write under a read pin leaves the page clean, so CLOCK drops it without
// a write-back; that must show up as lost data, so a clean result above means something.
TEST(PageTableModel, CheckerCatchesASeededBug) {
  Config c = two_threads(2, 1, /*fixed=*/true, 0);
  c.scripts = {{PR(0), W(0), U(0)}, {PR(1), R(1), U(1)}};
  const ModelRun r = explore("seeded bug: a write under a read pin", c);
  ASSERT_FALSE(r.outcome.violation.empty());
  EXPECT_NE(r.outcome.violation.find("lost data"), std::string::npos) << r.outcome.violation;
}

// And an eviction that ignores the pin count must be caught moving a pinned page.
TEST(PageTableModel, CheckerCatchesEvictionOfAPinnedPage) {
  Config c = two_threads(2, 1, /*fixed=*/true, 0);
  c.seed_evict_pinned = true;
  const ModelRun r = explore("seeded bug: evict() ignores pins", c);
  ASSERT_FALSE(r.outcome.violation.empty());
  EXPECT_NE(r.outcome.violation.find("pinned"), std::string::npos) << r.outcome.violation;
}

}  // namespace
}  // namespace fm::model
