// fragile's host simulator of a CUDA device, for machines without a GPU.
//
// What it is: kernels/cuda's sources (kernels, launch code, caching allocator, copies, CUDA
// Graph capture) compiled unchanged as ordinary C++ against stand-ins for the CUDA runtime,
// cuBLAS and cuDNN (this folder), and run on the CPU. tests/gpu's parity and whole-model
// tests are built a second time against it (fragile_gpu_sim_tests), so every hand-written
// kernel, every cuBLAS/cuDNN call and the graph recording logic run in the ordinary suite.
//
// What it models, and checks:
//   - the CUDA execution model: a grid of blocks of threads with threadIdx/blockIdx/blockDim/
//     gridDim, __shared__ memory per block, __syncthreads, warp shuffles (down/up/xor/index,
//     with the mask and width rules), atomics; threads interleave only at barriers
//     (engine.cpp). Deadlocks (threads stopped at different barriers), shuffles that name a
//     returned or missing lane and invalid launch configurations are errors;
//   - device memory as a separate space: cudaMalloc'd blocks are tracked and start filled
//     with NaN bytes (uninitialised memory is not zero on a GPU); a kernel argument, copy,
//     memset, GEMM or convolution operand outside them is an error, as is a copy whose
//     direction disagrees with its pointers;
//   - stream capture: work on a capturing stream is recorded, not run, and runs at each
//     cudaGraphLaunch; a synchronisation or host transfer while capturing invalidates the
//     capture, as on a GPU;
//   - cuBLAS and cuDNN argument rules (leading dimensions, descriptor consistency, workspace
//     sizes, beta = 0 not reading the output), with exact reference arithmetic.
// What it does not model: anything about speed; memory-model races between blocks (blocks
// run one after another); the device's own math library (device code runs the host branches
// of the shared functors); the choice of algorithms inside cuBLAS and cuDNN. So it finds
// wrong indexing, wrong launch geometry, missing synchronisation inside a block, wrong
// library arguments and capture mistakes; it says nothing about performance, and passing it
// is not a GPU run.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/cuda_sim/runtime_api.h"

namespace fragile {
class Backend;
}

namespace fragile_sim {

// Installs the simulated CUDA backend as fragile's CUDA backend (core/backend.h's stand-in)
// and its caching allocator for Device::CUDA tensors. Idempotent. Returns the backend.
fragile::Backend& install();

struct Stats {
  int64_t launches = 0;       // kernels run (a graph replay counts its kernels again)
  int64_t fiber_blocks = 0;   // blocks run with a fiber per thread (kernels with barriers)
  int64_t plain_blocks = 0;   // blocks run as a loop over threads
  int64_t threads = 0;        // simulated threads run
};
Stats stats();

// The number of multiprocessors the device reports (default 4: grids stay small, so
// grid-stride loops take several turns).
void set_sm_count(int sms);
// Device memory capacity; allocations beyond it fail with cudaErrorMemoryAllocation.
void set_device_memory_limit(std::size_t bytes);
std::size_t device_bytes_in_use();

// ---- internal, shared by the simulator's own files ----------------------------------------
struct BarrierOutsideFibers {};  // thrown by a barrier in a block run as a plain loop
void record_launch_error(cudaError_t error, const std::string& what);

}  // namespace fragile_sim
