// Error checks for CUDA runtime, cuBLAS and cuDNN calls. A failing call throws fragile::Error
// naming the call, the library's error string, and file:line, e.g.
//   "CUDA call cudaMalloc(&p, n) failed: out of memory (cudaErrorMemoryAllocation)
//    [allocator.cu:80]"
// This header includes CUDA headers, so only .cu files under kernels/cuda include it (the
// design rule: .cpp files never see CUDA types).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

namespace fragile::cuda::detail {
[[noreturn]] void throw_cuda_error(cudaError_t status, const char* call, const char* file,
                                   int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file,
                                     int line);
[[noreturn]] void throw_cudnn_error(cudnnStatus_t status, const char* call, const char* file,
                                    int line);
}  // namespace fragile::cuda::detail

#define FRAGILE_CUDA_CHECK(expr)                                                       \
  do {                                                                                 \
    const cudaError_t fragile_status_ = (expr);                                        \
    if (fragile_status_ != cudaSuccess)                                                \
      ::fragile::cuda::detail::throw_cuda_error(fragile_status_, #expr, __FILE__, __LINE__); \
  } while (0)

#define FRAGILE_CUBLAS_CHECK(expr)                                                       \
  do {                                                                                   \
    const cublasStatus_t fragile_status_ = (expr);                                       \
    if (fragile_status_ != CUBLAS_STATUS_SUCCESS)                                        \
      ::fragile::cuda::detail::throw_cublas_error(fragile_status_, #expr, __FILE__, __LINE__); \
  } while (0)

#define FRAGILE_CUDNN_CHECK(expr)                                                       \
  do {                                                                                  \
    const cudnnStatus_t fragile_status_ = (expr);                                       \
    if (fragile_status_ != CUDNN_STATUS_SUCCESS)                                        \
      ::fragile::cuda::detail::throw_cudnn_error(fragile_status_, #expr, __FILE__, __LINE__); \
  } while (0)

// Kernel launches are checked by launch() (kernels/cuda/launch.cuh): a bad configuration is
// caught at once; faults inside a kernel surface at the next synchronising call.
