// Simulator stand-in for CUDA's <cudnn.h>: see kernels/cuda_sim/sim.h.
#pragma once
#include "kernels/cuda_sim/cudnn_api.h"
