// EAL argument building: hugepage choice, --no-huge fallback, PCI/vdev handling, errors.
#include <gtest/gtest.h>

#include <algorithm>

#include "dataplane/eal.h"

namespace fm {
namespace {

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST(EalArgs, AutoUsesHugepagesWhenEnoughAreFree) {
  EalOptions o;
  o.memory_mb = 256;
  auto r = build_eal_args(o, "kvserver", 128);
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(r->hugepages);
  EXPECT_TRUE(has(r->argv, "--in-memory"));
  EXPECT_FALSE(has(r->argv, "--no-huge"));
}

TEST(EalArgs, AutoFallsBackToNoHuge) {
  EalOptions o;
  o.memory_mb = 256;
  auto r = build_eal_args(o, "kvserver", 127);
  ASSERT_TRUE(r.is_ok());
  EXPECT_FALSE(r->hugepages);
  EXPECT_TRUE(has(r->argv, "--no-huge"));
  EXPECT_FALSE(has(r->argv, "--in-memory"));
}

TEST(EalArgs, OnFailsClearlyWithoutHugepages) {
  EalOptions o;
  o.hugepages = HugepageMode::kOn;
  auto r = build_eal_args(o, "kvserver", 3);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Errc::kResourceExhausted);
  EXPECT_NE(r.status().message().find("eal.hugepages"), std::string::npos);
  EXPECT_NE(r.status().message().find("nr_hugepages"), std::string::npos);
}

TEST(EalArgs, OffNeverUsesHugepages) {
  EalOptions o;
  o.hugepages = HugepageMode::kOff;
  auto r = build_eal_args(o, "x", 100000);
  ASSERT_TRUE(r.is_ok());
  EXPECT_FALSE(r->hugepages);
}

TEST(EalArgs, NoPciUnlessConfiguredAndVdevsPassed) {
  EalOptions o;
  o.lcores = {3, 5};
  o.vdevs = {"net_memif0,role=server"};
  auto r = build_eal_args(o, "x", 0);
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(has(r->argv, "--no-pci"));
  EXPECT_TRUE(has(r->argv, "--vdev=net_memif0,role=server"));
  EXPECT_TRUE(has(r->argv, "3,5"));
  EXPECT_TRUE(has(r->argv, "--main-lcore"));
  o.pci_allow = {"0000:3b:00.0"};
  r = build_eal_args(o, "x", 0);
  ASSERT_TRUE(r.is_ok());
  EXPECT_FALSE(has(r->argv, "--no-pci"));
  EXPECT_TRUE(has(r->argv, "0000:3b:00.0"));
}

TEST(EalArgs, UniqueDefaultFilePrefix) {
  EalOptions o;
  auto r = build_eal_args(o, "/usr/bin/kvserver", 0);
  ASSERT_TRUE(r.is_ok());
  const auto it = std::find_if(r->argv.begin(), r->argv.end(),
                               [](const std::string& s) { return s.starts_with("--file-prefix="); });
  ASSERT_NE(it, r->argv.end());
  EXPECT_TRUE(it->starts_with("--file-prefix=kvserver-"));
}

TEST(EalArgs, RejectsEmptyLcoresAndZeroMemory) {
  EalOptions o;
  o.lcores = {};
  EXPECT_FALSE(build_eal_args(o, "x", 0).is_ok());
  o.lcores = {1};
  o.memory_mb = 0;
  auto r = build_eal_args(o, "x", 0);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("eal.memory_mb"), std::string::npos);
}

}  // namespace
}  // namespace fm
