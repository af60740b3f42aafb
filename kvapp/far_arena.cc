// The per-thread current paging core.
#include "kvapp/far_arena.h"

namespace fm::kv {

paging::PagingCore*& current_paging_core() {
  static thread_local paging::PagingCore* core = nullptr;
  return core;
}

}  // namespace fm::kv
