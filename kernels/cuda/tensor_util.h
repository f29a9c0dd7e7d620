// Small tensor helpers shared by the CUDA kernel files. Plain C++ header.
#pragma once
#include "core/tensor.h"

namespace fragile::cuda {

// A fresh contiguous device tensor.
Tensor empty_device(const Shape& shape, DType dtype);
// `t` itself when it is a contiguous device tensor, else a contiguous device copy (same dtype).
Tensor contiguous(const Tensor& t);
// Device -> device copy of same-shaped views with dtype conversion (copy.cu).
void copy_device(const Tensor& src, Tensor& dst);
// Throws naming `what` unless t lives on the GPU.
void check_on_device(const Tensor& t, const char* what, const char* name);

}  // namespace fragile::cuda
