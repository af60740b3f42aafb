// The loadgen's settings: command-line flags (CLI11), an optional TOML file, and their checks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/result.h"
#include "tools/loadgen/distributions.h"
#include "tools/loadgen/schedule.h"

namespace fm::loadgen {

/// Which network path requests take.
enum class BackendKind : uint8_t {
  kDpdk,    // a DPDK port (memif client by default): kernel bypass, the same net/ code as kvserver
  kSocket,  // kernel UDP sockets (sendmmsg/recvmmsg): drives any memcached-UDP server
};

/// One step of --rate-steps: `rate` requests/s over all cores for `seconds`.
struct RateStep {
  double rate = 0;
  double seconds = 0;
};

/// Every setting, with its default and why. Flags and TOML keys share the long names.
struct Options {
  // --- where requests go
  std::string backend = "dpdk";  // dpdk | socket
  // CPUs of the sending/receiving cores, one thread each. CPU 0 by default: kvserver's
  // default config runs on CPU 1.
  std::vector<uint32_t> lcores = {0};
  // Queue pairs (dpdk) or socket sets (socket), each with its own schedule, flows and
  // engine, spread over the lcores round-robin; 0 = one per lcore. Over memif each pairs
  // with the server's queue of the same number, so a 12-core server wants 12 here.
  uint32_t queues = 0;
  // DPDK: the memif client that meets kvserver's default memif server.
  std::string vdev =
      "net_memif0,role=client,socket=/tmp/"
      "farmem-memif.sock,socket-abstract=no,mac=02:fa:00:00:00:02";
  std::string pci;                 // DPDK: a PCI NIC instead of vdev
  std::string hugepages = "auto";  // DPDK: auto | on | off
  uint32_t memory_mb = 256;        // DPDK: EAL memory; the mbuf pool needs ~20 MiB
  uint32_t mbufs = 16383;          // DPDK: mbufs in the pool (RX rings + TX in flight + caches)
  std::vector<std::string>
      eal_args;  // DPDK: extra EAL arguments, verbatim (e.g. --single-file-segments)
  std::string ip = "10.77.0.2";  // DPDK: this client's address
  std::string server_ip;  // empty: 10.77.0.1 (dpdk, kvserver's default) or 127.0.0.1 (socket)
  uint16_t server_port = 11211;   // memcached's UDP port
  uint16_t src_port = 40000;      // first source port; queue i, flow f uses src_port + i*flows + f
  bool udp_checksum = false;      // DPDK: UDP checksums on TX (0 = none, legal in IPv4)
  double connect_timeout_s = 10;  // DPDK: link up + ARP; socket: first reply to a probe
  // --- what is asked
  uint64_t keys = 10000;             // key space: k0000000000 .. k(keys-1)
  std::string key_dist = "uniform";  // uniform | zipf:S
  std::string value_size = "128";    // N | fixed:N | uniform:A-B | exp:MEAN | etc
  double get_ratio = 1.0;            // share of GETs; the rest are SETs (multi-gets aside)
  bool preload = true;               // store every key before measuring, so GETs hit
  uint32_t preload_window = 64;      // SETs in flight per core during preload
  bool verify = true;                // check each GET value against what was stored
  uint32_t multiget_keys = 0;        // > 0: keys of each multi-key GET ("get k1 .. kN")
  double multiget_ratio = 0;         // share of requests that are multi-key GETs
  // --- how fast and how long
  std::string rate = "100000";  // offered req/s: N, a list "100k,200k" or ranges "a:b:step"
  std::string rate_steps;       // "RATE@SECONDS,...": one measurement whose rate changes over time
  std::string arrival = "poisson";  // poisson | constant
  double duration_s = 3.0;          // measured seconds per rate point
  uint64_t requests = 0;            // > 0: measure this many requests per point instead
  double warmup_s = 0.5;            // sent but not measured, before each point's window
  double timeout_ms = 100;          // a reply later than this (after its due time) is a drop
  double late_us = 0;               // a send later than this after its due time is late; 0 = 10
                                    // for dpdk, 50 for socket (one syscall is the send granularity)
  double min_adherence = 99.0;      // % on-time sends below which a point is INVALID
  uint32_t flows = 0;               // source ports per queue (power of two <= 64); 0 = auto
  uint64_t seed = 1;                // every schedule derives from it
  double stop_p99_us = 0;           // > 0: end a sweep after the first point whose p99 exceeds it
  double pause_s = 0.2;             // idle time between rate points
  uint32_t retries = 0;             // rerun an INVALID point up to this many times (noisy hosts)
  double max_error_pct = 1.0;       // a point with more timeouts + error replies (% of its
                                    // requests) makes the exit status 3; at 1%, p99 turns inf
  // --- output
  std::string csv;          // CSV file: one row per rate point, every field + config
  std::string json;         // JSON-lines file: one object per rate point
  std::string label;        // names this run in CSV/JSON/plots (default: backend)
  std::string timeline;     // CSV file: one row per --timeline-ms interval of each measurement
  double timeline_ms = 10;  // interval of the --timeline rows
  double progress_s = 1.0;  // progress line period on stderr; 0 = off
  bool quiet = false;       // no table on stdout (errors and INVALID banners still print)
  std::string config_file;  // the TOML file read, if any

  // --- set by parse_args(): which flags were given (on the command line or in --config)
  bool rate_given = false;
  bool duration_given = false;

  // --- derived by validate()
  BackendKind backend_kind = BackendKind::kDpdk;
  std::vector<double> rates;  // with --rate-steps: one, their time-weighted mean
  std::vector<RateStep> steps;
  Arrival arrival_kind = Arrival::kPoisson;
  uint32_t queue_count = 1;  // --queues, or the number of lcores
};

/// Parses --rate-steps: comma-separated RATE@SECONDS items, RATE as in --rate (250k, 1.5M; 0 is
/// allowed: an idle step), SECONDS > 0. At least one step must have a rate > 0. The error
/// names --rate-steps.
Result<std::vector<RateStep>> parse_rate_steps(std::string_view spec);

/// The highest rate any point or step asks for (requests/s over all cores).
double max_rate(const Options& o);

/// Parses a rate spec: comma-separated items, each a rate ("250k", "1.5M", "100000"), a linear
/// range "FROM:TO:STEP" or a geometric range "FROM:TO:xFACTOR". The error names --rate.
Result<std::vector<double>> parse_rates(std::string_view spec);

/// Parses flags (and the --config TOML file they name) into Options without printing.
/// For --help the Status is kNotFound with the help text as message. Exposed for tests.
Result<Options> parse_args(const std::vector<std::string>& args);

/// Checks cross-field rules and parses the specs (rates, distributions) into `o`.
Status validate(Options& o);

/// Source ports a core needs so that a request id is not reused while its previous request
/// may still be in flight (ids last 65536 x flows requests; keep that >= 2 x rate x timeout:
/// even a server that drops everything has only rate x timeout requests in flight).
uint32_t auto_flows(double per_core_rate, double timeout_s);

/// The help text (every flag, its default and meaning).
std::string help_text();

}  // namespace fm::loadgen
