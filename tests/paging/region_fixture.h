// The paging tests' set-up: a far region over an in-process emulated memory node.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>

#include "paging/emulated_transport.h"
#include "paging/region.h"

namespace fm::paging::testing {

/// A region of `bytes` with `frames` local frames shared by `cores` paging cores, over an
/// emulated memory node with `latency_ns` per READ/WRITE and a link fast enough (1 Tb/s) that
/// bandwidth seldom matters; `max_pin` bytes at most per pin.
struct RegionFixture {
  explicit RegionFixture(uint64_t bytes, uint64_t frames, uint16_t cores = 1,
                         uint32_t latency_ns = 0, uint32_t max_pin = 16384) {
    EmulatedOptions o;
    o.latency_ns = latency_ns;
    o.link_gbps = 1000;
    auto t = EmulatedTransport::in_process(o, bytes, tsc_clock());
    EXPECT_TRUE(t.is_ok());
    transport = std::move(t.value());
    auto r = Region::create(bytes, frames, *transport, cores, tsc_clock(), max_pin);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    region = std::move(r.value());
  }
  PagingCore& core(uint16_t i = 0) { return region->core(CoreId{i}); }
  /// Polls every core until no background transfer is in flight (at most 10 s), so a test can
  /// check a quiescent region.
  void settle() {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (uint16_t i = 0; i < region->core_count(); ++i) {
      while (core(i).background_in_flight() != 0 && std::chrono::steady_clock::now() < end) {
        core(i).poll();
      }
    }
  }
  std::unique_ptr<EmulatedTransport> transport;
  std::unique_ptr<Region> region;
};

}  // namespace fm::paging::testing
