// Simulator stand-in for CUDA's <cuda_runtime_api.h>: see kernels/cuda_sim/sim.h.
#pragma once
#include "kernels/cuda_sim/runtime_api.h"
