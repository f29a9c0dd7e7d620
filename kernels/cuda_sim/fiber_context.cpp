// Fiber switches for the simulator: see fiber_context.h for why there are two versions.
#include "kernels/cuda_sim/fiber_context.h"

#include <cstdint>
#include <cstring>

namespace fragile_sim {

#if FRAGILE_SIM_FAST_FIBERS

// fragile_sim_switch_stacks(void** save_sp, void* load_sp), System V x86-64 ABI: pushes the
// callee-saved registers (rbp, rbx, r12-r15) and the x87 control word and MXCSR (the ABI
// makes their control bits callee-saved too), stores rsp in *save_sp, loads load_sp into rsp
// and pops the same set in reverse; `ret` then returns into the other fiber. Caller-saved
// registers need no saving: the compiler assumes the call clobbers them.
extern "C" void fragile_sim_switch_stacks(void** save_sp, void* load_sp);
asm(R"(
  .pushsection .text
  .p2align 4
  .globl fragile_sim_switch_stacks
  .hidden fragile_sim_switch_stacks
  .type fragile_sim_switch_stacks, @function
fragile_sim_switch_stacks:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $16, %rsp
  stmxcsr 8(%rsp)
  fnstcw (%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  fldcw (%rsp)
  ldmxcsr 8(%rsp)
  addq $16, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size fragile_sim_switch_stacks, .-fragile_sim_switch_stacks
  .popsection
)");

void switch_fiber(FiberContext& from, FiberContext& to) {
  fragile_sim_switch_stacks(&from.sp, to.sp);
}

// The first switch to a fiber "returns" into entry() through a frame laid out as
// fragile_sim_switch_stacks leaves one: from the 16-byte aligned top down, a zero return
// address for entry() (it never returns; a zero also ends unwinding there), entry's address
// for `ret`, six zeroed registers, then the current x87 control word and MXCSR. entry()
// starts with rsp = top - 8, as after a call from an aligned frame.
void start_fiber(FiberContext& fiber, char* stack, std::size_t bytes, void (*entry)(),
                 FiberContext& /*scheduler: entry never returns*/) {
  auto top = reinterpret_cast<std::uintptr_t>(stack + bytes) & ~std::uintptr_t{15};
  auto* slot = reinterpret_cast<std::uint64_t*>(top);
  *--slot = 0;                                          // entry's return address
  *--slot = reinterpret_cast<std::uint64_t>(entry);     // popped by `ret`
  for (int r = 0; r < 6; ++r) *--slot = 0;             // rbp, rbx, r12-r15
  std::uint32_t mxcsr = 0;
  std::uint16_t x87_control = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(x87_control));
  *--slot = mxcsr;                                      // at sp + 8
  *--slot = 0;
  std::memcpy(slot, &x87_control, sizeof x87_control);  // at sp
  fiber.sp = slot;
}

#else

void switch_fiber(FiberContext& from, FiberContext& to) { swapcontext(&from.uc, &to.uc); }

void start_fiber(FiberContext& fiber, char* stack, std::size_t bytes, void (*entry)(),
                 FiberContext& scheduler) {
  getcontext(&fiber.uc);
  fiber.uc.uc_stack.ss_sp = stack;
  fiber.uc.uc_stack.ss_size = bytes;
  fiber.uc.uc_link = &scheduler.uc;
  makecontext(&fiber.uc, entry, 0);
}

#endif

}  // namespace fragile_sim
