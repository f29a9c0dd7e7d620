// Kernel launches: launch(kernel, grid, block)(args...) is kernel<<<grid, block, 0,
// stream()>>>(args...) followed by the launch check, with the launch site (file:line) in any
// error message. Under the host simulator (FRAGILE_CUDA_SIM, kernels/cuda_sim/sim.h) the same
// call runs the kernel on the CPU; kernels/cuda has no other launch syntax, so every kernel
// runs in both worlds.
#pragma once
#include <source_location>
#include <utility>

#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#if defined(FRAGILE_CUDA_SIM)
#include "kernels/cuda_sim/launch.h"
#endif

// A block's shared array: FRAGILE_SHARED(double, acc, [8][32]) is `__shared__ double
// acc[8][32]`. Under the simulator it is also filled with NaN bytes when each block starts,
// since shared memory holds garbage on a GPU: a kernel reading a slot no thread wrote fails
// there instead of reading a lucky zero or the previous block's value.
#if defined(FRAGILE_CUDA_SIM)
#define FRAGILE_SHARED(T, name, dims) \
  static T name dims;                 \
  ::fragile_sim::poison_shared(&name, sizeof(name))
#else
#define FRAGILE_SHARED(T, name, dims) __shared__ T name dims
#endif

namespace fragile::cuda {

template <class... P>
class Launch {
 public:
  Launch(void (*kernel)(P...), dim3 grid, dim3 block, std::source_location where)
      : kernel_(kernel), grid_(grid), block_(block), where_(where) {}

  template <class... A>
  void operator()(A&&... args) const {
    // FRAGILE_CUDA_SYNC=1 waits before the launch too: a failure there belongs to the work
    // queued before it (a cuBLAS/cuDNN call or a copy), not to this kernel.
    const bool sync = sync_after_each_launch() && !capturing();
    if (sync) wait("CUDA work queued before this kernel (a cuBLAS/cuDNN call or a copy)");
#if defined(FRAGILE_CUDA_SIM)
    fragile_sim::launch(kernel_, grid_, block_, stream(), where_, std::forward<A>(args)...);
#else
    kernel_<<<grid_, block_, 0, stream()>>>(std::forward<A>(args)...);
#endif
    const cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess) {
      // A bad launch shape or argument is this launch's own error; any other error is sticky
      // and may come from earlier work still running asynchronously.
      const bool own = status == cudaErrorInvalidConfiguration ||
                       status == cudaErrorInvalidValue;
      detail::throw_cuda_error(status,
                               own ? "kernel launch"
                                   : "kernel launch (the error may be earlier work's: "
                                     "FRAGILE_CUDA_SYNC=1 checks each kernel where it runs)",
                               where_.file_name(), where_.line());
    }
    if (sync) wait("kernel (FRAGILE_CUDA_SYNC=1)");
  }

 private:
  void wait(const char* what) const {
    const cudaError_t done = cudaStreamSynchronize(stream());
    if (done != cudaSuccess)
      detail::throw_cuda_error(done, what, where_.file_name(), where_.line());
  }

  void (*kernel_)(P...);
  dim3 grid_, block_;
  std::source_location where_;
};

template <class... P>
Launch<P...> launch(void (*kernel)(P...), dim3 grid, dim3 block,
                    std::source_location where = std::source_location::current()) {
  return Launch<P...>(kernel, grid, block, where);
}

}  // namespace fragile::cuda
