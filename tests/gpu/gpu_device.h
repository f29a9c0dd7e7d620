// Whether tests/gpu has a CUDA device to run on: a real one, or, in the build of these tests
// against the host simulator (fragile_gpu_sim_tests, kernels/cuda_sim/sim.h), the simulated
// one, which sim_main.cpp installs before any test runs.
#pragma once
#include <gtest/gtest.h>

#include "core/backend.h"

namespace fragile::gputest {

inline bool have_device() {
#if defined(FRAGILE_CUDA_SIM)
  return cuda_stand_in() != nullptr;
#else
  return cuda_available();
#endif
}

}  // namespace fragile::gputest

#define FRAGILE_REQUIRE_CUDA_DEVICE() \
  if (!::fragile::gputest::have_device()) GTEST_SKIP() << "no CUDA device"
