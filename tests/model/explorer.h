// A small explicit-state model checker: breadth-first search over every interleaving of a
// model's atomic steps, invariant checks in every reachable state, an end-state check where no
// step is enabled, shortest counterexample traces, and an optional progress check over the
// whole state graph ("from here, can the system still reach a good state on its own?").
//
// A model is a class with:
//   using State = ...;   // plain bytes (no padding): states are hashed and compared bytewise
//   State initial() const;
//   template <class F> void successors(const State& s, bool text, F&& emit) const;
//       // calls emit(next, Step{thread, env, text}) once per enabled atomic step; Step::text
//       // only needs filling when `text` is true (trace printing re-derives the steps)
//   std::string check(const State& s) const;      // invariant; empty when it holds
//   std::string check_end(const State& s) const;  // no step enabled; empty when fine
//   std::string show(const State& s) const;       // one line, for traces
// Single-threaded and deterministic: the same model always gives the same counts and traces.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace fm::model {

/// One atomic step of a model, as it is named in a trace.
struct Step {
  int thread = -1;   // who moved
  bool env = false;  // an environment move: left out of the progress check (see find_stuck)
  std::string text;  // what it did; filled only when the model is asked for text
};

inline constexpr uint32_t kNoState = std::numeric_limits<uint32_t>::max();

/// What one exploration found.
struct Outcome {
  size_t states = 0;        // distinct reachable states stored
  size_t transitions = 0;   // steps taken (edges, counting duplicates)
  size_t depth = 0;         // longest shortest-path from the initial state
  bool complete = false;    // every reachable state was expanded
  std::string violation;    // the first violation in BFS order (empty: none)
  uint32_t bad = kNoState;  // the state it was found in
};

template <class Model>
class Explorer {
 public:
  using State = typename Model::State;
  static_assert(std::is_trivially_copyable_v<State> &&
                    std::has_unique_object_representations_v<State>,
                "states are hashed and compared as bytes: no padding, no pointers");

  /// `keep_edges`: store the state graph for find_stuck() (costs 4 bytes a transition).
  explicit Explorer(const Model& m, bool keep_edges = false) : m_(m), keep_edges_(keep_edges) {}

  /// Explores every reachable state (up to `max_states`). Stops at the first violation when
  /// `stop_at_violation`, else records only the first one and goes on.
  Outcome run(size_t max_states = 20'000'000, bool stop_at_violation = true) {
    Outcome out;
    const State init = m_.initial();
    intern(init, kNoState);
    if (std::string v = m_.check(init); !v.empty()) {
      out.violation = std::move(v);
      out.bad = 0;
      if (stop_at_violation) return finish(out, 0);
    }
    size_t i = 0;
    for (; i < states_.size(); ++i) {
      const State s = states_[i];  // a copy: emit may grow states_
      bool any = false;
      bool stop = false;
      m_.successors(s, false, [&](const State& n, Step&& st) {
        any = true;
        ++out.transitions;
        const size_t before = states_.size();
        const uint32_t idx = intern(n, uint32_t(i));
        if (keep_edges_) edges_.push_back(idx | (st.env ? kEnvBit : 0));
        if (states_.size() != before && out.violation.empty()) {
          if (std::string v = m_.check(n); !v.empty()) {
            out.violation = std::move(v);
            out.bad = idx;
            stop = stop_at_violation;
          }
        }
      });
      if (keep_edges_) edge_end_.push_back(uint32_t(edges_.size()));
      if (!any && out.violation.empty()) {
        if (std::string v = m_.check_end(s); !v.empty()) {
          out.violation = "end state: " + v;
          out.bad = uint32_t(i);
          stop = stop_at_violation;
        }
      }
      if (stop || states_.size() > max_states) {
        ++i;
        break;
      }
    }
    out.complete = i == states_.size() && states_.size() <= max_states &&
                   (out.violation.empty() || !stop_at_violation);
    return finish(out, i);
  }

  /// The progress check, after a complete run with keep_edges. A state is stuck when `idle`
  /// holds (the environment may stop acting for good) and no `good` state can be reached from
  /// it by non-environment steps. Returns the stuck state nearest the initial one for which
  /// `prefer` holds, else the nearest stuck one, else kNoState; `count` gets how many are stuck.
  template <class Idle, class Good, class Prefer>
  uint32_t find_stuck(Idle idle, Good good, Prefer prefer, size_t* count) const {
    const size_t n = states_.size();
    // Reverse graph of the non-environment edges, then a backward search from the good states.
    std::vector<uint32_t> in_begin(n + 1, 0);
    for (size_t s = 0; s < n; ++s)
      for (uint32_t e = edge_begin(s); e < edge_end_[s]; ++e)
        if (!(edges_[e] & kEnvBit)) ++in_begin[edges_[e] + 1];
    for (size_t s = 0; s < n; ++s) in_begin[s + 1] += in_begin[s];
    std::vector<uint32_t> in(in_begin[n]);
    std::vector<uint32_t> fill(in_begin.begin(), in_begin.end() - 1);
    for (size_t s = 0; s < n; ++s)
      for (uint32_t e = edge_begin(s); e < edge_end_[s]; ++e)
        if (!(edges_[e] & kEnvBit)) in[fill[edges_[e]]++] = uint32_t(s);
    std::vector<uint8_t> reach(n, 0);
    std::vector<uint32_t> queue;
    for (size_t s = 0; s < n; ++s)
      if (good(states_[s])) {
        reach[s] = 1;
        queue.push_back(uint32_t(s));
      }
    for (size_t q = 0; q < queue.size(); ++q)
      for (uint32_t e = in_begin[queue[q]]; e < in_begin[queue[q] + 1]; ++e)
        if (!reach[in[e]]) {
          reach[in[e]] = 1;
          queue.push_back(in[e]);
        }
    *count = 0;
    uint32_t first = kNoState, first_preferred = kNoState;
    for (size_t s = 0; s < n; ++s) {
      if (reach[s] || !idle(states_[s])) continue;
      ++*count;
      if (first == kNoState) first = uint32_t(s);
      if (first_preferred == kNoState && prefer(states_[s])) first_preferred = uint32_t(s);
    }
    return first_preferred != kNoState ? first_preferred : first;
  }

  /// The shortest path from the initial state to `target`, one numbered line per step followed
  /// by the state it leads to.
  std::string trace(uint32_t target) const {
    std::vector<uint32_t> path;
    for (uint32_t s = target; s != kNoState; s = parent_[s]) path.push_back(s);
    std::string out = "   0. initial\n      " + m_.show(states_[path.back()]) + "\n";
    int n = 0;
    for (size_t k = path.size() - 1; k > 0; --k) {
      const State& from = states_[path[k]];
      const State& to = states_[path[k - 1]];
      std::string what = "?";
      int who = -1;
      bool found = false;
      m_.successors(from, true, [&](const State& next, Step&& st) {
        if (!found && std::memcmp(&next, &to, sizeof(State)) == 0) {
          found = true;
          what = std::move(st.text);
          who = st.thread;
        }
      });
      char num[16];
      std::snprintf(num, sizeof num, "%4d. ", ++n);
      out += num;
      out += who >= 0 ? "T" + std::to_string(who) + ": " : "";
      out += what + "\n      " + m_.show(to) + "\n";
    }
    return out;
  }

  const State& state(uint32_t i) const { return states_[i]; }
  size_t size() const { return states_.size(); }
  size_t depth_of(uint32_t i) const { return depth_[i]; }

 private:
  static constexpr uint32_t kEnvBit = 1u << 31;

  uint32_t edge_begin(size_t s) const { return s == 0 ? 0 : edge_end_[s - 1]; }

  Outcome& finish(Outcome& out, size_t expanded) {
    out.states = states_.size();
    size_t d = 0;
    for (size_t s = 0; s < expanded && s < states_.size(); ++s) d = std::max<size_t>(d, depth_[s]);
    out.depth = d;
    return out;
  }

  static uint64_t hash(const State& s) {
    const auto* p = reinterpret_cast<const unsigned char*>(&s);
    uint64_t h = 0x9E3779B97F4A7C15ull ^ sizeof(State);
    size_t i = 0;
    for (; i + 8 <= sizeof(State); i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
      h ^= h >> 31;
    }
    uint64_t w = 0;
    std::memcpy(&w, p + i, sizeof(State) - i);
    h = (h ^ w) * 0x94D049BB133111EBull;
    return h ^ (h >> 29);
  }

  // Returns the index of `s`, adding it (with its BFS parent) when new.
  uint32_t intern(const State& s, uint32_t parent) {
    if ((states_.size() + 1) * 2 > table_.size()) grow();
    const size_t mask = table_.size() - 1;
    for (size_t slot = hash(s) & mask;; slot = (slot + 1) & mask) {
      const uint32_t idx = table_[slot];
      if (idx == kNoState) {
        table_[slot] = uint32_t(states_.size());
        states_.push_back(s);
        parent_.push_back(parent);
        depth_.push_back(parent == kNoState ? 0 : depth_[parent] + 1);
        return table_[slot];
      }
      if (std::memcmp(&states_[idx], &s, sizeof(State)) == 0) return idx;
    }
  }

  void grow() {
    std::vector<uint32_t> t(table_.empty() ? 1024 : table_.size() * 2, kNoState);
    const size_t mask = t.size() - 1;
    for (uint32_t idx = 0; idx < states_.size(); ++idx) {
      size_t slot = hash(states_[idx]) & mask;
      while (t[slot] != kNoState) slot = (slot + 1) & mask;
      t[slot] = idx;
    }
    table_.swap(t);
  }

  const Model& m_;
  bool keep_edges_;
  std::vector<State> states_;
  std::vector<uint32_t> parent_;
  std::vector<uint32_t> depth_;
  std::vector<uint32_t> table_;
  std::vector<uint32_t> edges_;  // successors of state s: [edge_end_[s-1], edge_end_[s])
  std::vector<uint32_t> edge_end_;
};

}  // namespace fm::model
