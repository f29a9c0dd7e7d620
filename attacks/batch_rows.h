// Internal helpers of the attack drivers: per-image slices of batched [N, ...] values.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace fragile::attacks::detail {

// Image i's slice of a host copy of a [N, ...] tensor holding `size` values per image.
inline std::vector<double> row(const std::vector<double>& all, int64_t i, int64_t size) {
  return std::vector<double>(all.begin() + i * size, all.begin() + (i + 1) * size);
}

// Copies image i of `src` into image i of `dst` (both contiguous [N, ...], same shape/dtype).
inline void copy_image(Tensor& dst, const Tensor& src, int64_t i) {
  const int64_t per = dst.numel() / dst.size(0);
  FRAGILE_DISPATCH_FLOAT(dst.dtype(), "copy_image", [&] {
    std::copy_n(src.data<scalar_t>() + i * per, per, dst.data<scalar_t>() + i * per);
  });
}

}  // namespace fragile::attacks::detail
