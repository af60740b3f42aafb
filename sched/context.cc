// Boost.Context's fiber behind fm::sched::Context, with a preallocated stack per start().
#include "sched/context.h"

#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>

#include "dataplane/check.h"
#include "dataplane/sanitizers.h"

#if FM_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if FM_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace fm::sched {
namespace ctx = boost::context;

namespace {
// AddressSanitizer must be told about every stack switch, or it takes the fiber's frames for
// overflows of the thread's stack and cannot clean up a finished fiber's fake frames.
// `*save` keeps the leaving side's fake stack (nullptr when that side is finished for good).
#if FM_ASAN
inline void asan_leave(void** save, const void* to_bottom, size_t to_size) {
  __sanitizer_start_switch_fiber(save, to_bottom, to_size);
}
inline void asan_arrive(void* save, const void** from_bottom, size_t* from_size) {
  __sanitizer_finish_switch_fiber(save, from_bottom, from_size);
}
// A stack handed to start() may hold a previous run's redzones (a run unwound by ~Context, or
// Boost's entry trampoline, which jumps away without returning): clear them first.
inline void asan_clear(void* bottom, size_t size) { ASAN_UNPOISON_MEMORY_REGION(bottom, size); }
#else
inline void asan_leave(void**, const void*, size_t) {}
inline void asan_arrive(void*, const void**, size_t*) {}
inline void asan_clear(void*, size_t) {}
#endif

// ThreadSanitizer keeps a clock and a shadow call stack per fiber, so each switch names the fiber
// it goes to. Flags 0: every switch synchronizes, so a stolen fiber's previous thread
// happens-before its new one. Always inlined: the switch must come right before the jump, or the
// helper's own return is counted on the other fiber's shadow stack.
#if FM_TSAN
[[gnu::always_inline]] inline void* tsan_current() { return __tsan_get_current_fiber(); }
[[gnu::always_inline]] inline void* tsan_create() { return __tsan_create_fiber(0); }
[[gnu::always_inline]] inline void tsan_destroy(void* f) {
  if (f != nullptr) __tsan_destroy_fiber(f);
}
[[gnu::always_inline]] inline void tsan_switch(void* f) { __tsan_switch_to_fiber(f, 0); }
#else
inline void* tsan_current() { return nullptr; }
inline void* tsan_create() { return nullptr; }
inline void tsan_destroy(void*) {}
inline void tsan_switch(void*) {}
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
  // TSan fibers: this context's, and the one that resumed it last.
  void* tsan_fiber = nullptr;
  void* tsan_caller = nullptr;
};

Context::Context() : impl_(std::make_unique<Impl>()) {}

Context::~Context() {
  if (impl_->self) {
    // A parked run: Boost unwinds its frames on its own stack (a forced_unwind thrown from the
    // yield() it parked in), so both sanitizers are told of the switch like a resume(). ASan must
    // know whose stack the throw is on, or it skips clearing the dead frames' redzones and the
    // stack's memory, once unmapped and mapped again, reads as a stack overflow.
    void* fake = nullptr;
    asan_leave(&fake, impl_->stack_bottom, impl_->stack_size);
    void* me = tsan_current();
    tsan_switch(impl_->tsan_fiber);
    impl_->self = ctx::fiber();
    asan_arrive(fake, nullptr, nullptr);
    tsan_switch(me);
  }
  tsan_destroy(impl_->tsan_fiber);
}

void Context::start(void* stack, size_t size, Entry entry, void* arg) {
  FM_CHECK_MSG(impl_->finished, "Context::start on a context that has not finished");
  impl_->entry = entry;
  impl_->arg = arg;
  impl_->finished = false;
  impl_->stack_bottom = stack;
  impl_->stack_size = size;
  asan_clear(stack, size);
  Impl* im = impl_.get();
  // A fresh TSan fiber per run: Boost's first jump into a new stack leaves a frame that is never
  // popped (the run ends by jumping away), so a reused one's shadow stack would grow every run.
  tsan_destroy(im->tsan_fiber);
  im->tsan_fiber = tsan_create();
  void* me = tsan_current();
  tsan_switch(im->tsan_fiber);
  impl_->self = ctx::fiber(std::allocator_arg, FixedStack{stack, size},
                           [im](ctx::fiber&& caller) {
                             asan_arrive(nullptr, &im->caller_bottom, &im->caller_size);
                             im->caller = std::move(caller);
                             try {
                               im->entry(im->arg);
                             } catch (const ctx::detail::forced_unwind&) {
                               // ~Context unwinding a parked run: Boost jumps back to it once
                               // this leaves the lambda. Never swallowed.
                               asan_leave(nullptr, im->caller_bottom, im->caller_size);
                               throw;
                             }
                             im->finished = true;
                             // This stack is done for good: no fake frames to keep.
                             asan_leave(nullptr, im->caller_bottom, im->caller_size);
                             return std::move(im->caller);
                           });
  tsan_switch(me);
}

void Context::resume() {
  FM_DCHECK(!impl_->finished);
  void* fake = nullptr;
  asan_leave(&fake, impl_->stack_bottom, impl_->stack_size);
  impl_->tsan_caller = tsan_current();
  tsan_switch(impl_->tsan_fiber);
  impl_->self = std::move(impl_->self).resume();
  asan_arrive(fake, nullptr, nullptr);
  // yield() switched back already; a finished run returns here still on its fiber (switching
  // before its last frames return would pop them from ours).
  if (impl_->finished) tsan_switch(impl_->tsan_caller);
}

void Context::yield() {
  asan_leave(&impl_->fake_stack, impl_->caller_bottom, impl_->caller_size);
  tsan_switch(impl_->tsan_caller);
  try {
    impl_->caller = std::move(impl_->caller).resume();
  } catch (const ctx::detail::forced_unwind&) {
    // Arrived from ~Context, which unwinds this parked run: finish the switch it started.
    asan_arrive(impl_->fake_stack, &impl_->caller_bottom, &impl_->caller_size);
    throw;
  }
  asan_arrive(impl_->fake_stack, &impl_->caller_bottom, &impl_->caller_size);
}

bool Context::finished() const { return impl_->finished; }

}  // namespace fm::sched
