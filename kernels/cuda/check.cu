// Out-of-line bodies of the FRAGILE_*_CHECK macros: formatting the message once here keeps
// every call site to a compare and a cold call.
#include "kernels/cuda/check.h"

#include <string>

#include "core/error.h"

namespace fragile::cuda::detail {

void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
  ::fragile::detail::throw_error(
      file, line,
      ::fragile::detail::concat("CUDA call ", call, " failed: ", cudaGetErrorString(status), " (",
                                cudaGetErrorName(status), ")"));
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  ::fragile::detail::throw_error(
      file, line,
      ::fragile::detail::concat("cuBLAS call ", call, " failed: ", cublasGetStatusString(status),
                                " (", cublasGetStatusName(status), ")"));
}

void throw_cudnn_error(cudnnStatus_t status, const char* call, const char* file, int line) {
  // cuDNN 9 keeps a more specific message for the last failure in this thread.
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));
  ::fragile::detail::throw_error(
      file, line,
      ::fragile::detail::concat("cuDNN call ", call, " failed: ", cudnnGetErrorString(status),
                                detail[0] ? " - " : "", detail));
}

}  // namespace fragile::cuda::detail
