// Fused CUDA kernels: several element-wise steps in one pass over memory. Plain C++ header
// (no CUDA types) so .cpp code (ops, attacks, attribution) can call them.
//
// All tensors are device tensors of one float dtype (float32 or float64). Inputs have the
// outputs' shape and may be strided or broadcast (stride-0) views; outputs are preallocated
// by the caller and must be contiguous, except where a function says otherwise.
#pragma once
#include "core/tensor.h"

namespace fragile::cuda {

// value = softplus_beta(x) = log(1 + e^{beta x}) / beta and sig = sigmoid(beta x) (its
// derivative), from one read of x: the forward value and what the backward needs.
void softplus_forward_backward(const Tensor& x, double beta, Tensor& value, Tensor& sig);

// The backward of y = softplus_backward(g, x) = g * sigmoid(beta x) for upstream u, both
// outputs in one pass (fn::SoftplusDoubleBackward):
//   grad_g = u * s,   grad_x = u * g * beta * s * (1 - s),   s = sigmoid(beta x).
void softplus_double_backward(const Tensor& u, const Tensor& g, const Tensor& x, double beta,
                              Tensor& grad_g, Tensor& grad_x);

// One signed-gradient attack step with both projections:
//   x_new = clamp(x0 + clamp(x + alpha * sign(d) - x0, -eps, eps), lo, hi)
// (an L-inf ball of radius eps around x0, then the valid input range [lo, hi]). x_new may be
// x itself (in-place update) or any view of x's shape.
void attack_step(const Tensor& x, const Tensor& d, const Tensor& x0, double alpha, double eps,
                 double lo, double hi, Tensor& x_new);

// Integrated-gradients accumulation, in place: acc += w * g. acc may be any view.
void ig_accumulate(Tensor& acc, const Tensor& g, double w);

}  // namespace fragile::cuda
