// Direct (no cuDNN) 2-D convolution kernels: the fallback when cuDNN offers no algorithm for
// a configuration (e.g. a float64 case an engine does not cover). Plain C++ header.
// All tensors are contiguous device tensors of one float dtype; shapes as in core/backend.h.
#pragma once
#include "core/backend.h"

namespace fragile::cuda {

void conv2d_direct_forward(const Tensor& x, const Tensor& w, Tensor& out, const Conv2dParams& p);
void conv2d_direct_backward_input(const Tensor& grad, const Tensor& w, Tensor& out,
                                  const Conv2dParams& p);
void conv2d_direct_backward_weight(const Tensor& x, const Tensor& grad, Tensor& out,
                                   const Conv2dParams& p);

}  // namespace fragile::cuda
