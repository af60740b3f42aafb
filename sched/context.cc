// Boost.Context's fiber behind fm::sched::Context, with a preallocated stack per start().
#include "sched/context.h"

#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>

#include "dataplane/check.h"

#if defined(__SANITIZE_ADDRESS__)
#define FM_ASAN_FIBERS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FM_ASAN_FIBERS 1
#endif
#endif
#ifdef FM_ASAN_FIBERS
#include <sanitizer/common_interface_defs.h>
#endif

namespace fm::sched {
namespace ctx = boost::context;

namespace {
// AddressSanitizer must be told about every stack switch, or it takes the fiber's frames for
// overflows of the thread's stack and cannot clean up a finished fiber's fake frames.
// `*save` keeps the leaving side's fake stack (nullptr when that side is finished for good).
#ifdef FM_ASAN_FIBERS
inline void asan_leave(void** save, const void* to_bottom, size_t to_size) {
  __sanitizer_start_switch_fiber(save, to_bottom, to_size);
}
inline void asan_arrive(void* save, const void** from_bottom, size_t* from_size) {
  __sanitizer_finish_switch_fiber(save, from_bottom, from_size);
}
#else
inline void asan_leave(void**, const void*, size_t) {}
inline void asan_arrive(void*, const void**, size_t*) {}
#endif
}  // namespace

namespace {
/// Hands Boost the caller's stack; nothing is allocated or freed.
struct FixedStack {
  void* base;
  size_t size;
  ctx::stack_context allocate() {
    ctx::stack_context sc;
    sc.size = size;
    sc.sp = static_cast<char*>(base) + size;  // stacks grow down: sp is the top
    return sc;
  }
  void deallocate(ctx::stack_context&) noexcept {}
};
}  // namespace

struct Context::Impl {
  ctx::fiber self;    // the suspended context (held by the scheduler side)
  ctx::fiber caller;  // the scheduler to return to (held inside)
  Entry entry = nullptr;
  void* arg = nullptr;
  bool finished = true;
  // Stack bounds for the sanitizer's switch annotations: this context's, and those of the thread
  // that resumed it last (a stolen fiber comes back to another thread's stack).
  void* stack_bottom = nullptr;
  size_t stack_size = 0;
  const void* caller_bottom = nullptr;
  size_t caller_size = 0;
  void* fake_stack = nullptr;  // the inside's, while it is switched out
};

Context::Context() : impl_(std::make_unique<Impl>()) {}
Context::~Context() = default;

void Context::start(void* stack, size_t size, Entry entry, void* arg) {
  FM_CHECK_MSG(impl_->finished, "Context::start on a context that has not finished");
  impl_->entry = entry;
  impl_->arg = arg;
  impl_->finished = false;
  impl_->stack_bottom = stack;
  impl_->stack_size = size;
  Impl* im = impl_.get();
  impl_->self = ctx::fiber(std::allocator_arg, FixedStack{stack, size},
                           [im](ctx::fiber&& caller) {
                             asan_arrive(nullptr, &im->caller_bottom, &im->caller_size);
                             im->caller = std::move(caller);
                             im->entry(im->arg);
                             im->finished = true;
                             // This stack is done for good: no fake frames to keep.
                             asan_leave(nullptr, im->caller_bottom, im->caller_size);
                             return std::move(im->caller);
                           });
}

void Context::resume() {
  FM_DCHECK(!impl_->finished);
  void* fake = nullptr;
  asan_leave(&fake, impl_->stack_bottom, impl_->stack_size);
  impl_->self = std::move(impl_->self).resume();
  asan_arrive(fake, nullptr, nullptr);
}

void Context::yield() {
  asan_leave(&impl_->fake_stack, impl_->caller_bottom, impl_->caller_size);
  impl_->caller = std::move(impl_->caller).resume();
  asan_arrive(impl_->fake_stack, &impl_->caller_bottom, &impl_->caller_size);
}

bool Context::finished() const { return impl_->finished; }

}  // namespace fm::sched
