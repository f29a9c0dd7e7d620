// CPU-only build: the CUDA backend is absent, and asking for it says so.
#include "core/backend.h"
#include "core/error.h"

namespace fragile {

Backend& cuda_backend() {
  if (Backend* stand_in = cuda_stand_in()) return *stand_in;
  FRAGILE_FAIL("this build of fragile has no CUDA backend (configured with FRAGILE_CUDA=OFF or "
               "without nvcc); use --device cpu");
}

bool cuda_available() { return false; }

}  // namespace fragile
