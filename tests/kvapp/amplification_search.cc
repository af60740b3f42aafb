// Searches for the request datagram with the largest amplification: reply bytes / request bytes
// (UDP payloads, frame headers included) of one Session against a store holding items of every
// size up to kv.item_size_max. A program, not a test: docs/security.md reports what it finds.
//   amplification_search [iterations] [seed] [max request bytes] [all|small]
// "small" leaves out the keys whose values exceed 4 KiB: what commands alone amplify.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kvapp/options.h"
#include "kvapp/session.h"
#include "kvapp/store.h"
#include "kvapp/udp_frame.h"

namespace {

using fm::kv::ProtocolOptions;
using fm::kv::Session;
using fm::kv::Store;
using fm::kv::StoreOptions;

struct Measure {
  size_t request = 0, reply = 0;
  double ratio() const { return request == 0 ? 0 : double(reply) / double(request); }
};

Measure run(Session& s, const std::string& body) {
  std::vector<uint8_t> d(fm::kv::kUdpFrameHeaderSize);
  fm::kv::write_frame_header(fm::kv::UdpFrameHeader{1, 0, 1, 0}, d);
  d.insert(d.end(), body.begin(), body.end());
  size_t reply = 0;
  s.handle_datagram(
      d, 1'700'000'000,
      [](void* ctx, std::span<const uint8_t> g) { *static_cast<size_t*>(ctx) += g.size(); },
      &reply);
  return {d.size(), reply};
}

// Store one value of `len` bytes under `key` through the protocol itself.
void put(Session& s, const std::string& key, size_t len) {
  std::string body = "set " + key + " 0 0 " + std::to_string(len) + "\r\n";
  body.append(len, 'v');
  body += "\r\n";
  (void)run(s, body);
}

}  // namespace

int main(int argc, char** argv) {
  const long iterations = argc > 1 ? std::atol(argv[1]) : 200000;
  const unsigned seed = argc > 2 ? static_cast<unsigned>(std::atol(argv[2])) : 1;
  const size_t max_request = argc > 3 ? static_cast<size_t>(std::atol(argv[3])) : 1472;
  const bool small_only = argc > 4 && std::string(argv[4]) == "small";

  StoreOptions so;  // the defaults: 1 MiB items
  so.memory_mb = 64;
  so.hash_power = 12;
  ProtocolOptions po;  // the defaults: 2 MiB reply buffer, kv.reply_bytes_max = 0
  auto store = Store::create(so);
  if (!store) {
    std::fprintf(stderr, "store: %s\n", store.status().message().c_str());
    return 1;
  }
  Session s(**store, po, nullptr);
  // One-letter keys hold the largest item and sizes down from it; longer keys small values.
  const size_t largest = so.item_size_max - 1;
  const std::vector<size_t> sizes = {largest, largest / 2, 65536, 4096, 1400, 100, 1};
  const std::string letters = "abcdefg";
  for (size_t i = 0; i < sizes.size(); ++i) put(s, std::string(1, letters[i]), sizes[i]);

  // The words a request is built from: commands that read, commands that answer with text,
  // lines that answer with errors, and keys.
  std::vector<std::string> words = {
      "get a", "get b", "get c", "gets a", "gat 0 a", " a", " b", " c", " d", " g", "stats",
      "version", "", "x", "get", "delete z", "incr z 1", "touch z 0", "verbosity 1", "\r",
      "get d", "get e", " e", "gets d"};
  std::string keys = letters;
  if (small_only) {
    // Values of at most 4 KiB only (keys d..g).
    words = {"get d", "get e",    "gets d",   " d",        " e",          " g", "stats", "version",
             "",      "x",        "get",      "delete z", "incr z 1",    "touch z 0",
             "verbosity 1",       "\r"};
    keys = "defg";
  }
  std::mt19937_64 rng(seed);
  auto random_body = [&] {
    std::string b;
    const size_t n = 1 + rng() % 8;
    for (size_t i = 0; i < n; ++i) {
      b += words[rng() % words.size()];
      if (rng() % 3 != 0) b += "\n";
    }
    return b;
  };

  // Systematic shapes first: one key, a key repeated, a command repeated to fill a datagram.
  std::string best_body;
  Measure best;
  auto consider = [&](const std::string& body) {
    if (body.size() + fm::kv::kUdpFrameHeaderSize > max_request) return;
    const Measure m = run(s, body);
    if (m.ratio() > best.ratio()) {
      best = m;
      best_body = body;
    }
  };
  for (const char* cmd : {"get", "gets"}) {
    for (char k : keys) {
      std::string body = cmd;
      for (int n = 1; n < 700; ++n) {
        body += ' ';
        body += k;
        consider(body + "\n");
      }
    }
  }
  for (const char* line : {"stats\n", "version\n", "\n", "x\n", "get\n", "delete z\n"}) {
    std::string body;
    while (body.size() + std::strlen(line) + fm::kv::kUdpFrameHeaderSize <= max_request) {
      body += line;
      consider(body);
    }
  }
  const Measure systematic = best;
  // Then a random walk: mutate the best so far (append, drop a tail, splice in a word).
  std::string cur = best_body;
  for (long it = 0; it < iterations; ++it) {
    std::string cand;
    switch (rng() % 4) {
      case 0:
        cand = random_body();
        break;
      case 1:
        cand = cur + random_body();
        break;
      case 2:
        cand = cur.substr(0, cur.empty() ? 0 : rng() % cur.size());
        break;
      default: {
        cand = cur;
        const size_t at = cand.empty() ? 0 : rng() % cand.size();
        cand.insert(at, words[rng() % words.size()] + "\n");
      }
    }
    const double before = best.ratio();
    consider(cand);
    if (best.ratio() > before) cur = best_body;
  }
  std::string shown = best_body.substr(0, 120);
  for (char& c : shown) {
    if (c == '\n') c = '|';
    if (c == '\r') c = '~';
  }
  std::printf("systematic best: %zu -> %zu bytes (%.1fx)\n", systematic.request, systematic.reply,
              systematic.ratio());
  std::printf("overall best after %ld random steps: %zu -> %zu bytes (%.1fx): \"%s%s\"\n",
              iterations, best.request, best.reply, best.ratio(), shown.c_str(),
              best_body.size() > 120 ? "..." : "");
  return 0;
}
