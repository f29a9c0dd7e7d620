// The test seam of core/backend.h: a stand-in answering for Device::CUDA. Lives in core so
// that both cuda_backend() implementations (kernels/cuda/register.cu, kernels/no_cuda.cpp)
// consult the same pointer.
#include "core/backend.h"

namespace fragile {
namespace {
Backend* g_cuda_stand_in = nullptr;
}  // namespace

Backend* set_cuda_stand_in(Backend* backend) {
  Backend* previous = g_cuda_stand_in;
  g_cuda_stand_in = backend;
  return previous;
}

Backend* cuda_stand_in() { return g_cuda_stand_in; }

}  // namespace fragile
