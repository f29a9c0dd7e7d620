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

// The attack step and the saliency moments are Backend methods (CudaBackend::attack_step,
// saliency_moments, saliency_moments_backward in fused_attack.cu), reached through
// core/ops.h and attacks/step.h on any device.

// Integrated-gradients accumulation, in place: acc += w * g. acc may be any view.
void ig_accumulate(Tensor& acc, const Tensor& g, double w);

}  // namespace fragile::cuda
