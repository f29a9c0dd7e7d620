// Registration of the CUDA backend: the two entry points core/backend.h declares, which
// kernels/no_cuda.cpp stubs out in CPU-only builds. Core never includes CUDA: it finds the
// backend through cuda_backend(), and storage finds the caching allocator through
// allocator_for(Device::CUDA).
#include "core/error.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"

namespace fragile {
namespace {

// Device count, or 0 when there is no usable driver/device. Never throws.
int device_count() noexcept {
  int n = 0;
  const cudaError_t st = cudaGetDeviceCount(&n);
  if (st != cudaSuccess) {
    (void)cudaGetLastError();  // clear the error so later calls do not see it
    return 0;
  }
  return n;
}

// The caching allocator is installed at start-up too (not only when the backend is first
// built), so Tensor::empty(shape, dtype, Device::CUDA) works before anyone has called
// cuda_backend(). Installing touches no device; a test that installs its own allocator in
// main() still overrides it.
const bool kAllocatorInstalled = (cuda::install_caching_allocator(), true);

}  // namespace

namespace cuda {

CudaBackend::CudaBackend() {
  FRAGILE_CHECK(device_count() > 0, "no CUDA device available");
  install_caching_allocator();
  (void)stream();  // creates the stream and the cuBLAS handle now, not inside a first op
}

}  // namespace cuda

Backend& cuda_backend() {
  if (Backend* stand_in = cuda_stand_in()) return *stand_in;  // tests: core/backend.h
  // Leaked singleton: its handles must outlive every static Tensor freed at exit. If
  // construction throws (no device), the next call tries again.
  static cuda::CudaBackend* backend = [] {
    const int n = device_count();
    if (n == 0) {
      int unused = 0;
      const cudaError_t st = cudaGetDeviceCount(&unused);
      (void)cudaGetLastError();
      FRAGILE_FAIL("no CUDA device available (",
                   st == cudaSuccess ? "the driver reports 0 devices" : cudaGetErrorString(st),
                   "); use --device cpu");
    }
    return new cuda::CudaBackend();
  }();
  (void)kAllocatorInstalled;
  return *backend;
}

bool cuda_available() {
  static const bool available = device_count() > 0;  // the driver query is slow: ask once
  return available;
}

}  // namespace fragile
