// connect_verbs() for builds without libibverbs: a clear error instead of a transport.
#include "paging/verbs_transport.h"

namespace fm::paging {

Result<std::unique_ptr<Transport>> connect_verbs(const VerbsOptions&, const ChannelAddress&,
                                                 uint16_t, uint64_t, const AuthKey&, int) {
  return error(Errc::kUnavailable,
               "paging.transport = \"verbs\": this kvserver was built without libibverbs "
               "(meson -Drdma=enabled needs libibverbs-dev); use paging.transport = "
               "\"emulated\"");
}

}  // namespace fm::paging
