// Kernel launch on the host simulator: what `kernel<<<grid, block, 0, stream>>>(args...)`
// does, for kernels/cuda/launch.cuh. The arguments are converted to the kernel's parameter
// types and copied once, as CUDA copies them into parameter space at launch (a graph
// records those copies); every pointer argument must point into simulated device memory, as
// a host pointer would fault on a GPU.
#pragma once
#include <functional>
#include <memory>
#include <source_location>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kernels/cuda_sim/runtime_api.h"

namespace fragile_sim {

// Runs (or, while `stream` is capturing, records) the grid: `thread` runs one simulated
// thread with threadIdx/blockIdx/blockDim/gridDim set. `kernel` identifies the kernel (for
// the engine's bookkeeping), `where` is the launch site for messages. Throws
// std::runtime_error naming the launch site when the launch or the kernel misbehaves.
void run_grid(const void* kernel, const std::source_location& where, dim3 grid, dim3 block,
              cudaStream_t stream, std::function<void()> thread);

// Throws when argument `index` of the launch at `where` is a non-null pointer outside
// simulated device memory.
void check_device_argument(const void* p, int index, const std::source_location& where);

template <class T>
void check_argument(const T& v, int index, const std::source_location& where) {
  if constexpr (std::is_pointer_v<T>) check_device_argument(v, index, where);
}

template <class... P, class... A>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, cudaStream_t stream,
            const std::source_location& where, A&&... args) {
  static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong argument count");
  // Implicit conversions only, as a launch by nvcc allows.
  using Params = std::tuple<std::decay_t<P>...>;
  auto params = std::make_shared<Params>(Params(std::forward<A>(args)...));
  const auto check_all = [where](const Params& ps) {
    std::apply(
        [&](const auto&... p) {
          int i = 0;
          (check_argument(p, i++, where), ...);
        },
        ps);
  };
  check_all(*params);
  run_grid(reinterpret_cast<const void*>(kernel), where, grid, block, stream,
           [kernel, params, check_all] {
             check_all(*params);  // again when it runs: a graph replay may outlive a buffer
             std::apply(kernel, *params);
           });
}

}  // namespace fragile_sim
