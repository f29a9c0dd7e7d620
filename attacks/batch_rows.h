// Internal helpers of the attack drivers: per-image slices of batched [N, ...] values.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "attacks/attack.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/tensor.h"

namespace fragile::attacks::detail {

// Image i's slice of a host copy of a [N, ...] tensor holding `size` values per image.
inline std::vector<double> row(const std::vector<double>& all, int64_t i, int64_t size) {
  return std::vector<double>(all.begin() + i * size, all.begin() + (i + 1) * size);
}

// Copies image i of `src` into image i of `dst` (both contiguous [N, ...], same shape, dtype
// and device), on their device.
inline void copy_image(Tensor& dst, const Tensor& src, int64_t i) {
  FRAGILE_CHECK(dst.shape() == src.shape() && dst.device() == src.device() &&
                    dst.is_contiguous() && src.is_contiguous(),
                "copy_image: ", shape_str(src.shape()), " into ", shape_str(dst.shape()));
  const int64_t per = dst.numel() / dst.size(0);
  Shape one = dst.shape();
  one[0] = 1;
  Tensor to = make_view(dst, one, dst.strides(), dst.offset() + i * per);
  backend_for(dst.device()).copy(make_view(src, one, src.strides(), src.offset() + i * per), to);
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
