// EAL initialisation: chooses hugepages or --no-huge and explains failures.
#include "dataplane/eal.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "dataplane/log.h"

namespace fm {
namespace {
constexpr const char* kTag = "eal";

std::string join_lcores(const std::vector<uint32_t>& lcores) {
  std::string s;
  for (size_t i = 0; i < lcores.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(lcores[i]);
  }
  return s;
}

uint64_t read_u64(const char* path) {
  std::ifstream f(path);
  uint64_t v = 0;
  if (f >> v) return v;
  return 0;
}
}  // namespace

uint64_t free_hugepages_2m() {
  // Pages another process reserved (a hugetlb mapping not yet touched) count as free in
  // free_hugepages but cannot be had: subtract them.
  const uint64_t free = read_u64("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages");
  const uint64_t resv = read_u64("/sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages");
  return free > resv ? free - resv : 0;
}

Result<EalInfo> build_eal_args(const EalOptions& opts, const std::string& program,
                               uint64_t free_2m) {
  if (opts.lcores.empty()) return error(Errc::kInvalidArgument, "eal.lcores must not be empty");
  if (opts.memory_mb == 0) return error(Errc::kInvalidArgument, "eal.memory_mb must be > 0");
  EalInfo info;
  auto& a = info.argv;
  a.push_back(program);
  a.push_back("-l");
  a.push_back(join_lcores(opts.lcores));
  a.push_back("--main-lcore");
  a.push_back(std::to_string(opts.lcores.front()));
  const uint64_t need_pages = (uint64_t(opts.memory_mb) + 1) / 2;
  bool huge = false;
  switch (opts.hugepages) {
    case HugepageMode::kOff: huge = false; break;
    case HugepageMode::kOn:
      if (free_2m < need_pages) {
        return error(Errc::kResourceExhausted,
                     "eal.hugepages = \"on\" but only " + std::to_string(free_2m) +
                         " free 2 MiB hugepages, " + std::to_string(need_pages) +
                         " needed for eal.memory_mb = " + std::to_string(opts.memory_mb) +
                         " (reserve more: echo N > /sys/kernel/mm/hugepages/hugepages-2048kB/"
                         "nr_hugepages, or set eal.hugepages = \"auto\")");
      }
      huge = true;
      break;
    case HugepageMode::kAuto: huge = free_2m >= need_pages; break;
  }
  info.hugepages = huge;
  std::string prefix = opts.file_prefix.empty()
                           ? program.substr(program.find_last_of('/') + 1) + "-" +
                                 std::to_string(::getpid())
                           : opts.file_prefix;
  a.push_back("--file-prefix=" + prefix);
  if (huge) {
    // --in-memory: no hugepage files left behind, several primaries can coexist.
    a.push_back("--in-memory");
    a.push_back("-m");
    a.push_back(std::to_string(opts.memory_mb));
  } else {
    a.push_back("--no-huge");
    a.push_back("--no-shconf");
    a.push_back("-m");
    a.push_back(std::to_string(opts.memory_mb));
  }
  if (opts.pci_allow.empty()) {
    a.push_back("--no-pci");
  } else {
    for (const auto& p : opts.pci_allow) {
      a.push_back("-a");
      a.push_back(p);
    }
  }
  for (const auto& v : opts.vdevs) {
    a.push_back("--vdev=" + v);
  }
  a.push_back("--log-level=" + opts.log_level);
  for (const auto& e : opts.extra_args) a.push_back(e);
  return info;
}

Result<EalInfo> eal_init(const EalOptions& opts, const std::string& program) {
  auto built = build_eal_args(opts, program, free_hugepages_2m());
  if (!built) return built.status();
  EalInfo info = std::move(built.value());
  std::vector<char*> argv;
  for (auto& s : info.argv) argv.push_back(s.data());
  std::string joined;
  for (auto& s : info.argv) joined += s + " ";
  FM_LOG_INFO(kTag, "rte_eal_init {}", joined);
  int rc = rte_eal_init(static_cast<int>(argv.size()), argv.data());
  if (rc < 0) {
    int err = rte_errno;
    std::string why = rte_strerror(err);
    std::string hint;
    if (info.hugepages) {
      hint = "; hugepages were chosen: check free pages in /proc/meminfo or set eal.hugepages = "
             "\"off\"";
    } else {
      hint = "; with --no-huge: check eal.lcores names CPUs this process may run on (nproc) and "
             "that eal.memory_mb fits in memory";
    }
    return error(Errc::kUnavailable,
                 "DPDK EAL initialisation failed: " + why + " (args: " + joined + ")" + hint);
  }
  FM_LOG_INFO(kTag, "EAL up: {} lcores, {}", rte_lcore_count(),
              info.hugepages ? "hugepages" : "no hugepages (--no-huge)");
  return info;
}

void eal_cleanup() { rte_eal_cleanup(); }

}  // namespace fm
