// Runs tests/gpu on the host simulator of a CUDA device (kernels/cuda_sim/sim.h): the real
// kernels, cuBLAS/cuDNN calls and CUDA Graph logic of kernels/cuda, executed on the CPU.
#include <gtest/gtest.h>

#include "kernels/cuda_sim/sim.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  fragile_sim::install();
  return RUN_ALL_TESTS();
}
