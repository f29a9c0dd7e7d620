// Direct (no cuDNN) 2-D convolution kernels: the fallback when cuDNN offers no algorithm for
// a configuration (e.g. a float64 case an engine does not cover). Plain C++ header.
// All tensors are contiguous device tensors of one float dtype; shapes as in core/backend.h.
#pragma once
#include <atomic>
#include <cstdint>

#include "core/backend.h"

namespace fragile::cuda {

// The most elements a cuDNN tensor descriptor holds: cudnnSetTensor4dDescriptor refuses more
// than 2^31 - 1 in all (NOT_SUPPORTED; "2 Giga-elements" in its documentation), which a large
// batch of IG points reaches (SqueezeNet's first activation is 1.18M elements per image).
// Such a convolution is split along the batch into calls cuDNN can describe (conv2d.cu); only
// when one image or the filter is too large do the direct kernels, which index in 64 bits,
// take it. Tests lower the limit to exercise the splitting on small tensors.
inline constexpr int64_t kCudnnMaxTensorElements = 0x7fffffff;
inline std::atomic<int64_t> cudnn_tensor_element_limit{kCudnnMaxTensorElements};

// Whether cuDNN can describe a tensor of this shape (under the limit above).
inline bool cudnn_can_describe(const Shape& s) {
  const int64_t limit = cudnn_tensor_element_limit.load(std::memory_order_relaxed);
  int64_t n = 1;
  for (int64_t e : s) {
    if (e > 0 && n > limit / e) return false;
    n *= e;
  }
  return n <= limit;
}

void conv2d_direct_forward(const Tensor& x, const Tensor& w, Tensor& out, const Conv2dParams& p);
void conv2d_direct_backward_input(const Tensor& grad, const Tensor& w, Tensor& out,
                                  const Conv2dParams& p);
void conv2d_direct_backward_weight(const Tensor& x, const Tensor& grad, Tensor& out,
                                   const Conv2dParams& p);

}  // namespace fragile::cuda
