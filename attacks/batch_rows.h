// Internal helpers of the attack drivers: per-image slices of batched [N, ...] values.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "attacks/attack.h"
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

// An image's outcome under the best-iterate rule: success, the chosen iterate and its
// dissimilarity, and how many iterates kept the label.
inline void record_outcome(ImageResult& ir, const BestIterate& best, int64_t kept_iters) {
  ir.success = best.found();
  ir.best_iter = best.iter;
  ir.kept_iters = kept_iters;
  ir.dissimilarity = ir.success ? best.value : 0.0;
}

}  // namespace fragile::attacks::detail
