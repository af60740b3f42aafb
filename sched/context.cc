// Boost.Context's fiber behind fm::sched::Context, with a preallocated stack per start().
#include "sched/context.h"

#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>

#include "dataplane/check.h"

namespace fm::sched {
namespace ctx = boost::context;

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
};

Context::Context() : impl_(std::make_unique<Impl>()) {}
Context::~Context() = default;

void Context::start(void* stack, size_t size, Entry entry, void* arg) {
  FM_CHECK_MSG(impl_->finished, "Context::start on a context that has not finished");
  impl_->entry = entry;
  impl_->arg = arg;
  impl_->finished = false;
  Impl* im = impl_.get();
  impl_->self = ctx::fiber(std::allocator_arg, FixedStack{stack, size},
                           [im](ctx::fiber&& caller) {
                             im->caller = std::move(caller);
                             im->entry(im->arg);
                             im->finished = true;
                             return std::move(im->caller);
                           });
}

void Context::resume() {
  FM_DCHECK(!impl_->finished);
  impl_->self = std::move(impl_->self).resume();
}

void Context::yield() { impl_->caller = std::move(impl_->caller).resume(); }

bool Context::finished() const { return impl_->finished; }

}  // namespace fm::sched
