// DPDK EAL initialisation from typed options: hugepages or --no-huge, vdevs, lcores.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/enum_names.h"
#include "dataplane/result.h"

namespace fm {

/// How EAL gets its memory.
enum class HugepageMode : uint8_t {
  kAuto,  // hugepages when enough are free, else --no-huge
  kOn,    // hugepages or fail with a clear message
  kOff,   // always --no-huge (anonymous memory)
};
inline constexpr EnumName<HugepageMode> kHugepageModeNames[] = {
    {"auto", HugepageMode::kAuto}, {"on", HugepageMode::kOn}, {"off", HugepageMode::kOff}};
static_assert(enum_table_ok(kHugepageModeNames));

/// EAL settings; config/ fills them from the [eal] table.
struct EalOptions {
  // Lcores the dataplane cores run on, in order; the first is EAL's main lcore. Keep the
  // default off core 0 so a loadgen on core 0 and the server do not share a CPU.
  std::vector<uint32_t> lcores = {1};
  // Hugepages when they can be had; --no-huge otherwise so a bare machine still runs.
  HugepageMode hugepages = HugepageMode::kAuto;
  // Memory EAL reserves (mempools, rings). 256 MiB holds the default mbuf pools with room.
  uint32_t memory_mb = 256;
  // Unique per process so two DPDK programs on one machine never share runtime files.
  std::string file_prefix;  // empty: "<program>-<pid>"
  // PCI devices to use; empty means --no-pci (virtual devices only).
  std::vector<std::string> pci_allow;
  // Virtual devices (e.g. "net_memif0,role=server,socket=/run/farmem/memif.sock").
  std::vector<std::string> vdevs;
  // EAL's own log level (--log-level): error keeps start-up quiet.
  std::string log_level = "error";
  // Extra EAL arguments appended verbatim (e.g. "-d", "/path/librte_net_memif.so").
  std::vector<std::string> extra_args;
};

/// What EAL initialisation decided.
struct EalInfo {
  bool hugepages = false;           // true: hugepage-backed; false: --no-huge
  std::vector<std::string> argv;    // the arguments passed to rte_eal_init
};

/// Builds the EAL argument list for `opts` given how many 2 MiB hugepages are free.
/// Pure; exposed for tests. Fails when hugepages=on and too few are free.
Result<EalInfo> build_eal_args(const EalOptions& opts, const std::string& program,
                               uint64_t free_hugepages_2m);

/// 2 MiB hugepages free and not reserved by another process (0 when unknown).
uint64_t free_hugepages_2m();

/// Initialises EAL once per process. Control path; main thread only.
Result<EalInfo> eal_init(const EalOptions& opts, const std::string& program);

/// Releases EAL resources (rte_eal_cleanup). Main thread only, after every core stopped.
void eal_cleanup();

}  // namespace fm
