// The loadgen's research knobs in one place (deployment settings are flags, docs/config.md).
#pragma once

#include <cstdint>

namespace fm::loadgen {

// Most requests an engine sends between two RX polls: enough to batch TX, small enough that a
// burst of due requests never keeps replies waiting in the RX ring for long.
inline constexpr uint32_t kSendBurst = 32;
// Full send bursts an engine may send back to back before polling RX again: after a stall the
// backlog goes out first (requests are late already; replies wait in a ring of >= 1024).
inline constexpr uint32_t kCatchUpBursts = 4;
// Frames per rte_eth_rx_burst / tx batch (DPDK) and per recvmmsg / sendmmsg (sockets).
inline constexpr uint16_t kDpdkBurst = 32;
inline constexpr uint32_t kSocketBatch = 32;
// Preload: rounds of retries for keys that timed out or got an error.
inline constexpr uint32_t kPreloadRetries = 2;
// A rate point starts this long after the control thread sets it up, so every core (and, for
// sockets, every freshly started thread) is polling when the schedule's time 0 arrives.
inline constexpr double kDpdkStartDelayS = 0.005;
inline constexpr double kSocketStartDelayS = 0.01;
// Socket buffers asked for (SO_RCVBUFFORCE/SO_SNDBUFFORCE as root, else capped by rmem_max).
inline constexpr int kSocketBufferBytes = 8 << 20;

}  // namespace fm::loadgen
