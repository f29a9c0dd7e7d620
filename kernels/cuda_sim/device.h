// What nvcc gives device code, for the host simulator: the execution-space keywords, the
// built-in index variables, __syncthreads, warp shuffles and atomics. Forced into every
// simulator translation unit (-include), before kernels/cuda's own headers.
//
// threadIdx and friends are per-OS-thread variables that the engine (engine.cpp) sets before
// it runs each simulated thread; shared arrays (FRAGILE_SHARED) are function statics, shared
// by the threads of a block because the engine runs one block at a time.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <type_traits>

#include "kernels/cuda_sim/runtime_api.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// No __shared__: kernels declare shared arrays with FRAGILE_SHARED (kernels/cuda/launch.cuh),
// which the simulator poisons per block.
#define __launch_bounds__(...)

inline thread_local uint3 threadIdx, blockIdx;
inline thread_local dim3 blockDim, gridDim;

namespace fragile_sim {

// Engine entry points for the intrinsics below (engine.cpp).
void sync_block(const std::source_location& where);
void poison_shared(void* array, std::size_t bytes);  // NaN bytes, once per block
enum class Shuffle { Down, Up, Xor, Index };
std::uint64_t shuffle(unsigned mask, std::uint64_t bits, Shuffle kind, int arg, int width);

template <class T>
T shuffle_as(unsigned mask, T v, Shuffle kind, int arg, int width) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffle of a wide type");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = shuffle(mask, bits, kind, arg, width);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

}  // namespace fragile_sim

// The call site identifies the barrier: threads of one block waiting at different
// __syncthreads calls is undefined behaviour on a GPU and an error here.
inline void __syncthreads(std::source_location where = std::source_location::current()) {
  fragile_sim::sync_block(where);
}

template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return fragile_sim::shuffle_as(mask, v, fragile_sim::Shuffle::Down, int(delta), width);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return fragile_sim::shuffle_as(mask, v, fragile_sim::Shuffle::Up, int(delta), width);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return fragile_sim::shuffle_as(mask, v, fragile_sim::Shuffle::Xor, lane_mask, width);
}
template <class T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  return fragile_sim::shuffle_as(mask, v, fragile_sim::Shuffle::Index, src_lane, width);
}

// One OS thread runs every simulated thread of a launch, and switches between them only at
// __syncthreads and shuffles, so a read-modify-write is atomic as written.
template <class T>
T atomicAdd(T* address, T value) {
  const T old = *address;
  *address = old + value;
  return old;
}

// Device code's global min and max (CUDA's math headers overload them for every arithmetic
// type; mixed arguments go to the common type, as there).
template <class A, class B>
  requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B>
std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(b) < static_cast<C>(a) ? static_cast<C>(b) : static_cast<C>(a);
}
template <class A, class B>
  requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B>
std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(b) : static_cast<C>(a);
}

// CUDA declares the classification functions in the global namespace too.
using std::isfinite;
using std::isinf;
using std::isnan;
