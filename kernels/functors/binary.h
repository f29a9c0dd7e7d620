// Element-wise binary math shared by CPU and CUDA.
#pragma once
#include "kernels/functors/hd.h"
#include "kernels/functors/unary.h"

namespace fragile::fn {

struct Add { template <class T> FRAGILE_HD T operator()(T a, T b) const { return a + b; } };
struct Sub { template <class T> FRAGILE_HD T operator()(T a, T b) const { return a - b; } };
struct Mul { template <class T> FRAGILE_HD T operator()(T a, T b) const { return a * b; } };
struct Div { template <class T> FRAGILE_HD T operator()(T a, T b) const { return a / b; } };
struct Pow {
  template <class T> FRAGILE_HD T operator()(T a, T b) const { return std::pow(a, b); }
};
struct Eq { template <class T> FRAGILE_HD T operator()(T a, T b) const { return a == b ? T(1) : T(0); } };
struct Ne { template <class T> FRAGILE_HD T operator()(T a, T b) const { return a != b ? T(1) : T(0); } };
struct Lt { template <class T> FRAGILE_HD T operator()(T a, T b) const { return a < b ? T(1) : T(0); } };
struct Le { template <class T> FRAGILE_HD T operator()(T a, T b) const { return a <= b ? T(1) : T(0); } };
struct Gt { template <class T> FRAGILE_HD T operator()(T a, T b) const { return a > b ? T(1) : T(0); } };
struct Ge { template <class T> FRAGILE_HD T operator()(T a, T b) const { return a >= b ? T(1) : T(0); } };

// softplus_beta'(x) = sigmoid(beta x); the backward is grad * sigmoid(beta x).
struct SoftplusBackward {
  double beta = 1.0;
  template <class T> FRAGILE_HD T operator()(T grad, T x) const {
    return grad * Sigmoid{}(T(beta) * x);
  }
};

// relu's backward as one select, not grad * mask(x): one pass instead of two and no mask tensor.
// Where x <= 0 the result is 0 whatever grad is (NaN or infinite grads included), as PyTorch's
// threshold_backward.
struct ReluBackward {
  template <class T> FRAGILE_HD T operator()(T grad, T x) const { return x > T(0) ? grad : T(0); }
};

// Softplus double backward in one pass (the CUDA fused kernel; also used as a CPU reference).
// For y = g * s(beta x) and upstream u:  d/dg = u * s,  d/dx = u * g * beta * s * (1 - s).
// 1 - s is taken as s(-beta x) (no cancellation); s(beta x) and s(-beta x) share e^{-|beta x|}
// and 1 / (1 + e), so one exp and one division serve both, bit for bit Sigmoid{} of each.
struct SoftplusDoubleBackward {
  double beta = 1.0;
  template <class T> FRAGILE_HD void operator()(T u, T g, T x, T& grad_g, T& grad_x) const {
    const T bx = T(beta) * x;
    const T e = exp_nonpositive(-std::fabs(bx));
    const T r = T(1) / (T(1) + e);
    const T s = bx >= T(0) ? r : e * r;
    const T one_minus_s = -bx >= T(0) ? r : e * r;
    grad_g = u * s;
    grad_x = u * g * T(beta) * s * one_minus_s;
  }
};

}  // namespace fragile::fn
