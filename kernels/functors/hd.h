// FRAGILE_HD marks element math shared by the CPU backend and CUDA kernels: __host__ __device__
// under nvcc, plain inline elsewhere. Functor headers include nothing but <cmath>, so they
// compile in both worlds and are tested on the host (tests/kernels/test_functors.cpp).
#pragma once
#include <cmath>

#if defined(__CUDACC__)
#define FRAGILE_HD __host__ __device__ __forceinline__
#else
#define FRAGILE_HD inline
#endif
