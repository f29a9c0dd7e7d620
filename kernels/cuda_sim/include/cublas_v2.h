// Simulator stand-in for CUDA's <cublas_v2.h>: see kernels/cuda_sim/sim.h.
#pragma once
#include "kernels/cuda_sim/cublas_api.h"
