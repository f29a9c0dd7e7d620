// Element math of the fused attack and attribution kernels, shared by the CPU backend
// (kernels/cpu/fused.cpp) and the CUDA kernels (kernels/cuda/fused.cu), tested on the host
// (tests/kernels/test_functors.cpp).
#pragma once
#include <cstdint>

#include "kernels/functors/hd.h"
#include "kernels/functors/unary.h"

namespace fragile::fn {

// One step of Ghorbani et al.'s Algorithm 1 for one element, both projections included:
//   clamp(x0 + clamp(x + alpha sign(d) - x0, -eps, eps), lo, hi)
// (the l-infinity ball of radius eps around x0, then the valid input box). sign(0) = 0: a
// coordinate without gradient does not move.
struct AttackStep {
  double alpha, eps, lo, hi;
  template <class T>
  FRAGILE_HD T operator()(T x, T d, T x0) const {
    const T stepped = x + static_cast<T>(alpha) * Sign{}(d);
    const T delta = Clamp{-eps, eps}(stepped - x0);
    return Clamp{lo, hi}(x0 + delta);
  }
};

// The gradient of the saliency moments (core/ops.h saliency_moments) with respect to one
// attribution element A. With a = sum_c |A| the pixel's saliency, T the image's total and
// m_k = sum a w_k / T:
//   d m_k / dA = sign(A) (w_k - m_k) / T,     d T / dA = sign(A)
// so for upstream gradients g_k (moments) and g_T (total):
//   dA = sign(A) (sum_k g_k (w_k - m_k) / T + g_T).
// An all-zero image (T = 0) has no normalised map (saliency_map leaves it zero): its moment
// terms contribute nothing. `w`, `m` and `g` hold k values each, stride 1.
struct SaliencyMomentsGrad {
  template <class T>
  FRAGILE_HD T operator()(T a, const T* w, int64_t w_stride, const T* m, const T* g, int k,
                          T total, T g_total) const {
    T acc = g_total;
    if (total != T(0)) {
      T moments = T(0);
      for (int j = 0; j < k; ++j) moments += g[j] * (w[j * w_stride] - m[j]);
      acc += moments / total;
    }
    return Sign{}(a) * acc;
  }
};

}  // namespace fragile::fn
