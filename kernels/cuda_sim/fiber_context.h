// Switching between the simulator's fibers (one per simulated thread of a block that uses
// __syncthreads or warp shuffles).
//
// On x86-64 a switch is a dozen instructions (fiber_context.cpp): the callee-saved registers,
// the x87 control word and MXCSR go on the old stack, the stack pointer changes, and they come
// back off the new one. glibc's swapcontext does the same plus a sigprocmask system call each
// way, which made switches cost about a microsecond: a block-reduction kernel over 65536
// images took minutes on the simulator. Elsewhere, and under AddressSanitizer (which must see
// stack switches through its swapcontext interceptor), ucontext is used.
#pragma once

#include <cstddef>

// GCC says ASan with __SANITIZE_ADDRESS__; clang (before 15) only through __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define FRAGILE_SIM_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FRAGILE_SIM_UNDER_ASAN 1
#endif
#endif

#if defined(__x86_64__) && !defined(FRAGILE_SIM_UNDER_ASAN)
#define FRAGILE_SIM_FAST_FIBERS 1
#else
#define FRAGILE_SIM_FAST_FIBERS 0
#include <ucontext.h>
#endif

namespace fragile_sim {

// Where a suspended fiber (or the scheduler) resumes.
struct FiberContext {
#if FRAGILE_SIM_FAST_FIBERS
  void* sp = nullptr;  // its saved stack pointer; the registers lie on that stack
#else
  ucontext_t uc;
#endif
};

// Saves the running code's context in `from` and resumes `to`.
void switch_fiber(FiberContext& from, FiberContext& to);

// Makes `fiber` start `entry()` on the `bytes` of stack at `stack` when first switched to.
// `entry` must never return: a finished fiber switches back to its scheduler for good.
// `scheduler` is where ucontext resumes should entry() return anyway.
void start_fiber(FiberContext& fiber, char* stack, std::size_t bytes, void (*entry)(),
                 FiberContext& scheduler);

}  // namespace fragile_sim
