// Strong integer ids shared by every module.
#pragma once

#include <cstdint>
#include <type_traits>

namespace fm {

enum class CoreId : uint16_t {};   // index of a dataplane core (0..n-1), not an lcore number
enum class QueueId : uint16_t {};  // an ethdev RX/TX queue index
enum class PortId : uint16_t {};   // a DPDK ethdev port id
enum class PageId : uint64_t {};   // a 4 KiB page of a far region

/// The far-memory page: the unit the region pages, the memory node serves and the store packs
/// items into. Defined once; paging::kPageSize and kv::kPageSize name this one.
inline constexpr uint32_t kPageSize = 4096;

template <typename E>
constexpr auto to_int(E e) {
  return static_cast<std::underlying_type_t<E>>(e);
}

}  // namespace fm
