// Per-process CUDA state shared by every kernel file: the backend's stream, library handles
// and device properties. CUDA-side header (includes CUDA types): .cu files only.
//
// One stream for everything. It is created with cudaStreamDefault, i.e. a *blocking* stream:
// it is ordered with respect to the legacy default stream, so code elsewhere that uses plain
// cudaMemcpy (stream 0) still sees our results in order. Using a named stream rather than
// stream 0 keeps the door open for CUDA Graph capture of attack iterations (capture needs a
// non-default stream). Because every kernel, copy, cuBLAS and cuDNN call goes on this one
// stream, the caching allocator can hand a freed block to the next request without any event
// bookkeeping: the next user's work is queued behind the previous user's.
//
// The device is the one current when the backend was first used (device 0 by default);
// multi-GPU is out of scope.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstdint>

namespace fragile::cuda {

cudaStream_t stream();
cublasHandle_t cublas_handle();  // bound to stream()
// Created on first use (loading cuDNN takes ~100 ms); bound to stream().
cudnnHandle_t cudnn_handle();
int sm_count();

// Grid size for a grid-stride loop over n items with `threads` per block: enough blocks to
// fill every SM several times over, never more than the work needs.
int64_t grid_for(int64_t n, int threads);

// Waits for everything queued on stream() (device->host copies, before the host reads).
void synchronize();

// True while stream() is recording a CUDA Graph (graph.cu).
bool capturing();

// Debugging a fault: kernels run asynchronously, so an illegal address or a trap is reported
// by whichever CUDA call comes next, often another kernel's launch. With FRAGILE_CUDA_SYNC=1
// in the environment (or set_sync_after_each_launch(true)) every launch outside graph capture
// waits for the work before it and then for its kernel, and reports a failure at that launch's
// file:line, saying which of the two failed (work before a kernel: a cuBLAS/cuDNN call or a
// copy). Slow: off by default.
bool sync_after_each_launch();
void set_sync_after_each_launch(bool on);

}  // namespace fragile::cuda
