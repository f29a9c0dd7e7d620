// The simulated CUDA backend: kernels/cuda's CudaBackend (compiled here as fragile::cuda_sim,
// see CMakeLists.txt), built without a device check and installed as fragile's CUDA backend.
// This file stands in for kernels/cuda/register.cu, which asks the driver for a device.
#include "core/allocator.h"
#include "core/backend.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda_sim/sim.h"

namespace fragile::cuda {

CudaBackend::CudaBackend() { (void)stream(); }

}  // namespace fragile::cuda

namespace fragile_sim {

fragile::Backend& install() {
  static fragile::cuda::CudaBackend* backend = new fragile::cuda::CudaBackend();
  // Override whatever allocator is installed for Device::CUDA (a CUDA build installs the real
  // caching allocator at start-up, which would ask a missing driver for memory).
  fragile::set_allocator(fragile::Device::CUDA, &fragile::cuda::caching_allocator());
  fragile::set_cuda_stand_in(backend);
  return *backend;
}

}  // namespace fragile_sim
