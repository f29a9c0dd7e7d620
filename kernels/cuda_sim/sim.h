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
//     gridDim, shared arrays per block (FRAGILE_SHARED), __syncthreads, warp shuffles
//     (down/up/xor/index, with the mask and width rules), atomics (engine.cpp). Threads of a
//     block are fibers that run warp by warp, each warp until it waits at __syncthreads, so a
//     warp sees another's shared writes only across a barrier. Blocks, warps and threads run in
//     ascending order on one launch and descending on the next, so order a kernel is not
//     promised does not hold still. Errors: deadlocks, threads waiting at different
//     __syncthreads calls, shuffles whose mask names a returned or missing lane, invalid
//     launch shapes. Undefined values read as NaN: fresh and reused device memory, shared
//     arrays at the start of each block, a shuffle from a lane outside the mask;
//   - device memory as a separate space: cudaMalloc'd blocks are tracked; a kernel argument
//     (checked at launch and again whenever recorded work runs), copy, memset, GEMM or
//     convolution operand outside them is an error, as is a copy whose direction disagrees
//     with its pointers or overruns its block;
//   - stream capture: work on a capturing stream is recorded, not run, and runs at each
//     cudaGraphLaunch; a synchronisation or host transfer while capturing invalidates the
//     capture, as on a GPU;
//   - cuBLAS and cuDNN argument rules (leading dimensions, descriptor consistency, workspace
//     sizes, beta = 0 not reading the output), with reference arithmetic in double.
// What it does not model: speed; asynchrony (work runs when it is queued, so a missing stream
// synchronisation cannot show); host code touching device memory (it is host memory here);
// races between blocks beyond their order; the device's math library (device code runs the
// host branches of the shared functors) and the libraries' float rounding. So it finds wrong
// indexing, wrong launch geometry, missing barriers and masks, reads of unwritten memory,
// wrong library arguments and capture mistakes; it says nothing about performance or float32
// tolerances on a GPU, and passing it is not a GPU run.
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

// Fills simulated device memory with NaN bytes (the caching allocator calls it for a reused
// block, which then looks as a fresh cudaMalloc block does).
void poison(void* device_memory, std::size_t bytes);

// ---- internal, shared by the simulator's own files ----------------------------------------
struct BarrierOutsideFibers {};  // thrown by a barrier in a block run as a plain loop
void record_launch_error(cudaError_t error, const std::string& what);

}  // namespace fragile_sim
