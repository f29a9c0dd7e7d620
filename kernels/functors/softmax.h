// Element math of the softmax kernels, shared by the CPU backend (kernels/cpu/softmax.cpp) and
// the CUDA kernels (kernels/cuda/softmax.cu), tested on the host (tests/kernels/test_functors.cpp).
//
// A softmax "row" is the set of elements along the softmax dim. Every kernel makes two kinds of
// pass over a row: reductions (its maximum and a sum) and one element-wise pass that applies
// the functors below with the row's statistics. Only the element-wise step lives here; the
// reductions are the backends' own (OpenMP loops / warp shuffles).
#pragma once
#include "kernels/functors/hd.h"

namespace fragile::fn {

// Row statistics of the forward: m = max_j x_j and sum_exp = sum_j exp(x_j - m) >= 1.
// Subtracting m keeps every exponent <= 0, so exp never overflows and the sum is at least 1
// (so its log and reciprocal are safe).
template <class T>
FRAGILE_HD T softmax_exp_term(T x, T row_max) {
  return exp_nonpositive(x - row_max);
}

// softmax: y = exp(x - m) / sum_exp.
struct SoftmaxOut {
  template <class T>
  FRAGILE_HD T operator()(T x, T row_max, T sum_exp) const {
    return softmax_exp_term(x, row_max) / sum_exp;
  }
};

// log_softmax: y = x - m - log(sum_exp), i.e. x minus the row's log-sum-exp.
struct LogSoftmaxOut {
  template <class T>
  FRAGILE_HD T operator()(T x, T row_max, T log_sum_exp) const {
    return x - row_max - log_sum_exp;
  }
};

// softmax backward, y the forward's output, g the upstream gradient and s = sum_j g_j y_j:
//   dx_i = y_i (g_i - s)        (the Jacobian diag(y) - y y^T applied to g)
struct SoftmaxGrad {
  template <class T>
  FRAGILE_HD T operator()(T g, T y, T s) const {
    return y * (g - s);
  }
};

// log_softmax backward, y the forward's output (log-probabilities) and s = sum_j g_j:
//   dx_i = g_i - exp(y_i) s     (the Jacobian I - 1 softmax^T applied to g)
// y <= 0 for a real log_softmax output; exp_nonpositive would flush a positive y, so plain exp.
struct LogSoftmaxGrad {
  template <class T>
  FRAGILE_HD T operator()(T g, T y, T s) const {
    return g - std::exp(y) * s;
  }
};

}  // namespace fragile::fn
