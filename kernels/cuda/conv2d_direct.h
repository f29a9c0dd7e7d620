// Direct (no cuDNN) 2-D convolution kernels: the fallback when cuDNN offers no algorithm for
// a configuration (e.g. a float64 case an engine does not cover). Plain C++ header.
// All tensors are contiguous device tensors of one float dtype; shapes as in core/backend.h.
#pragma once
#include "core/backend.h"

namespace fragile::cuda {

// Whether cuDNN can describe a tensor of this shape: cudnnSetTensor4dDescriptor refuses more
// than 2^31 - 1 elements in all (NOT_SUPPORTED; "2 Giga-elements" in its documentation), which a
// large batch of IG points reaches (SqueezeNet's first activation is 1.18M elements per image).
// Larger problems go to the direct kernels, which index in 64 bits.
inline bool cudnn_can_describe(const Shape& s) {
  int64_t n = 1;
  for (int64_t e : s) {
    if (e > 0 && n > 0x7fffffff / e) return false;
    n *= e;
  }
  return n <= 0x7fffffff;
}

void conv2d_direct_forward(const Tensor& x, const Tensor& w, Tensor& out, const Conv2dParams& p);
void conv2d_direct_backward_input(const Tensor& grad, const Tensor& w, Tensor& out,
                                  const Conv2dParams& p);
void conv2d_direct_backward_weight(const Tensor& x, const Tensor& grad, Tensor& out,
                                   const Conv2dParams& p);

}  // namespace fragile::cuda
