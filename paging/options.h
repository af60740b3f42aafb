// Options of the paging subsystem (the [paging] config table) and of its transports.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/enum_names.h"

namespace fm::paging {

/// Where the key-value data lives.
enum class PagingMode : uint8_t {
  kLocal,  // no-fault: everything in local memory (the upper bound)
  kFar,    // values in a far region paged from the memory node
};

/// Which one-sided transport reaches the memory node.
enum class TransportKind : uint8_t { kEmulated, kVerbs };

/// Jitter added to each emulated operation's latency.
enum class JitterKind : uint8_t { kNone, kExponential, kUniform };

// The spellings of the config files (dataplane/enum_names.h).
inline constexpr EnumName<PagingMode> kPagingModeNames[] = {{"far", PagingMode::kFar},
                                                            {"local", PagingMode::kLocal}};
inline constexpr EnumName<TransportKind> kTransportKindNames[] = {
    {"emulated", TransportKind::kEmulated}, {"verbs", TransportKind::kVerbs}};
inline constexpr EnumName<JitterKind> kJitterKindNames[] = {
    {"none", JitterKind::kNone},
    {"exponential", JitterKind::kExponential},
    {"uniform", JitterKind::kUniform}};
static_assert(enum_table_ok(kPagingModeNames) && enum_table_ok(kTransportKindNames) &&
              enum_table_ok(kJitterKindNames));

/// The emulated one-sided transport's model of a real RDMA link.
struct EmulatedOptions {
  // Fixed latency of one READ/WRITE before serialization: DiLOS's whole remote fault, 3.3 us.
  uint32_t latency_ns = 3300;
  // Extra latency per operation: none, exponential with mean jitter_ns, or uniform [0, 2*mean].
  JitterKind jitter = JitterKind::kNone;
  uint32_t jitter_ns = 0;
  // Link bandwidth shared by every queue pair: 100 Gb/s, the paper's 100 GbE.
  double link_gbps = 100.0;
  // Work requests a queue pair may have outstanding (a real QP's send queue depth).
  uint32_t max_outstanding = 64;
  // Seed of the jitter generator (each queue pair derives its own).
  uint64_t seed = 1;
  // Whether a completed READ/WRITE moves its bytes (the emulated DMA: a memcpy on the polling
  // core). Benchmarks alone turn it off, to time the CPU a fault costs without the copy a real
  // NIC does; no config key sets it (data would be lost).
  bool move_bytes = true;
};

/// The libibverbs RC transport.
struct VerbsOptions {
  // RDMA device name (ibv_get_device_name); empty takes the first device.
  std::string device;
  // HCA port number (1-based).
  uint8_t ib_port = 1;
  // GID table index for RoCE; -1 uses the LID (InfiniBand).
  int gid_index = 0;
  // Send queue depth per queue pair: outstanding READ/WRITEs.
  uint32_t max_outstanding = 64;
};

/// The far-memory configuration of a compute node.
struct PagingOptions {
  // far: values paged from the memory node; local: the no-fault upper bound.
  PagingMode mode = PagingMode::kFar;
  // Local frames as a share of the far region (the working set): the paper's 20%.
  double local_fraction = 0.2;
  // Local frames in MiB; when > 0 it overrides local_fraction.
  uint32_t local_mb = 0;
  TransportKind transport = TransportKind::kEmulated;
  // The memory node's control address: unix:/path (emulated) or tcp:host:port (verbs).
  std::string memnode = "unix:/tmp/farmem-memnode/memnode.sock";
  // Several memory nodes (addresses as `memnode`): pages are striped across them and kept on
  // `replicas` of them. Empty: the one `memnode`.
  std::vector<std::string> memnodes;
  // Copies of each page on distinct nodes; 0: 2 when there are two or more nodes, else 1.
  uint32_t replicas = 0;
  // How often a dead memory node is dialled again (it comes back empty and is rebuilt from the
  // other replicas); 0: a dead node stays dead and the far memory goes through no extra layer.
  uint32_t reconnect_ms = 500;
  // Share of a node's link that rebuilding it may use (emulated: of link_gbps; verbs: of
  // 100 Gb/s).
  double repair_share = 0.5;
  // A file holding the secret shared with the memory node (its memnode.key_file); empty: none.
  // Required by a memnode that has a key (always over TCP).
  std::string key_file;
  // Free frames each core keeps ready, refilled between polls by a background CLOCK sweep with
  // pipelined write-backs, so a fault neither sweeps nor waits for a write-back (and prefetch
  // has frames to fetch into); 0: faults reclaim for themselves. At most an eighth of the
  // frames go to reserves.
  uint32_t reserve_frames = 64;
  // How long to wait for the memory node at start (it may still be starting).
  uint32_t connect_timeout_ms = 5000;
  EmulatedOptions emulated;
  VerbsOptions verbs;
};

}  // namespace fm::paging
