// Element-wise unary math: one struct per op, operator()(x) is the value. Parameters (beta,
// exponent, bounds) are members so a kernel template receives a configured functor by value.
#pragma once
#include "kernels/functors/hd.h"

namespace fragile::fn {

struct Neg { template <class T> FRAGILE_HD T operator()(T x) const { return -x; } };
struct Exp { template <class T> FRAGILE_HD T operator()(T x) const { return std::exp(x); } };
struct Log { template <class T> FRAGILE_HD T operator()(T x) const { return std::log(x); } };
struct Abs { template <class T> FRAGILE_HD T operator()(T x) const { return std::fabs(x); } };
struct Sqrt { template <class T> FRAGILE_HD T operator()(T x) const { return std::sqrt(x); } };
struct Sign {
  template <class T> FRAGILE_HD T operator()(T x) const {
    return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
  }
};
struct Relu {
  template <class T> FRAGILE_HD T operator()(T x) const { return x > T(0) ? x : T(0); }
};
// 1 / (1 + e^-x), evaluated without overflow on either side: with e = e^-|x| <= 1, r = 1/(1+e)
// is sigmoid(|x|) and e r = sigmoid(-|x|). Written without branches so host loops vectorise.
struct Sigmoid {
  template <class T> FRAGILE_HD T operator()(T x) const {
    const T e = exp_nonpositive(-std::fabs(x));
    const T r = T(1) / (T(1) + e);
    return x >= T(0) ? r : e * r;
  }
};
struct Tanh { template <class T> FRAGILE_HD T operator()(T x) const { return std::tanh(x); } };
// softplus_beta(x) = log(1 + e^{beta x}) / beta = max(x, 0) + log1p(e^{-beta |x|}) / beta
// (exp_nonpositive and log1p_unit: vectorisable on the host for float).
// Stable for every x and beta with no linear threshold (PyTorch's threshold=20 makes the
// second derivative exactly 0 for beta x > 20, which would silently kill attack directions).
struct Softplus {
  double beta = 1.0;
  template <class T> FRAGILE_HD T operator()(T x) const {
    T b = T(beta);
    T relu = x > T(0) ? x : T(0);
    return relu + log1p_unit(exp_nonpositive(-b * std::fabs(x))) / b;
  }
};
// softplus_beta(x) and its slope sigmoid(beta x) together, from one exponential: both are
// functions of e = e^{-beta |x|} (softplus = max(x, 0) + log1p(e) / beta, sigmoid = 1 / (1 + e)
// or e / (1 + e) by the sign of beta x). The fused CUDA kernel's math: sharing e takes one of
// its two exps, and the kernel is close to compute-bound at 12 bytes per element. Bit for bit
// Softplus{beta}(x) and Sigmoid{}(beta x) for beta > 0 (the only betas softplus accepts):
// fabs(beta x) == beta fabs(x) exactly, since rounding is symmetric in sign.
struct SoftplusWithSlope {
  double beta = 1.0;
  template <class T> FRAGILE_HD void operator()(T x, T& value, T& slope) const {
    const T b = T(beta);
    const T bx = b * x;
    const T e = exp_nonpositive(-std::fabs(bx));
    value = (x > T(0) ? x : T(0)) + log1p_unit(e) / b;
    const T r = T(1) / (T(1) + e);
    slope = bx >= T(0) ? r : e * r;
  }
};
struct PowScalar {
  double exponent = 1.0;
  template <class T> FRAGILE_HD T operator()(T x) const {
    T e = T(exponent);
    if (e == T(2)) return x * x;  // exact and fast for the most common case
    return std::pow(x, e);
  }
};
struct Clamp {
  double lo, hi;
  template <class T> FRAGILE_HD T operator()(T x) const {
    T l = T(lo), h = T(hi);
    return x < l ? l : (x > h ? h : x);
  }
};
// clamp's derivative: 1 strictly inside (lo, hi), 0 outside and at the bounds.
struct ClampMask {
  double lo, hi;
  template <class T> FRAGILE_HD T operator()(T x) const {
    return (x > T(lo) && x < T(hi)) ? T(1) : T(0);
  }
};

}  // namespace fragile::fn
