// The cuBLAS API as the host simulator provides it: exactly what the CUDA backend uses, declared
// with cuBLAS's names and values (kernels/cuda_sim/include/cublas_v2.h includes this file).
//
// These are C++ functions of this program, not libcublas's C symbols, so a binary may link
// both. Semantics (cublas.cpp): arguments are validated as cuBLAS validates them, operands
// must lie in simulated device memory, and the GEMM runs through fragile_sim::enqueue on the
// handle's stream, so it is recorded, not run, while that stream captures a CUDA Graph.
#pragma once
#include <cstddef>

#include "kernels/cuda_sim/runtime_api.h"

enum cublasStatus_t {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_ALLOC_FAILED = 3,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_ARCH_MISMATCH = 8,
  CUBLAS_STATUS_MAPPING_ERROR = 11,
  CUBLAS_STATUS_EXECUTION_FAILED = 13,
  CUBLAS_STATUS_INTERNAL_ERROR = 14,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
  CUBLAS_STATUS_LICENSE_ERROR = 16,
};

enum cublasOperation_t {
  CUBLAS_OP_N = 0,
  CUBLAS_OP_T = 1,
  CUBLAS_OP_C = 2,  // conjugate transpose: the same as CUBLAS_OP_T for real types
};

// TF32 (and the deprecated TENSOR_OP) modes are emulated: float GEMM inputs are rounded to a
// 10-bit mantissa, as tensor cores would, so a change of math mode shows in parity tests.
enum cublasMath_t {
  CUBLAS_DEFAULT_MATH = 0,
  CUBLAS_TENSOR_OP_MATH = 1,
  CUBLAS_PEDANTIC_MATH = 2,
  CUBLAS_TF32_TENSOR_OP_MATH = 3,
};

struct FragileSimCublas;
using cublasHandle_t = FragileSimCublas*;

cublasStatus_t cublasCreate(cublasHandle_t* handle);
cublasStatus_t cublasDestroy(cublasHandle_t handle);
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream);
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode);
// The workspace must be device memory, 256-byte aligned (cuBLAS's documented requirement).
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void* workspace, size_t bytes);

const char* cublasGetStatusName(cublasStatus_t status);   // "CUBLAS_STATUS_INVALID_VALUE"
// cuBLAS's text for the status; for the status the last failing call of this thread
// returned, the simulator appends that call's reason ("...: lda 2 < max(1, m = 3)").
const char* cublasGetStatusString(cublasStatus_t status);

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const float* alpha, const float* A, int lda,
                                         long long int strideA, const float* B, int ldb,
                                         long long int strideB, const float* beta, float* C,
                                         int ldc, long long int strideC, int batchCount);
cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const double* alpha, const double* A, int lda,
                                         long long int strideA, const double* B, int ldb,
                                         long long int strideB, const double* beta, double* C,
                                         int ldc, long long int strideC, int batchCount);
