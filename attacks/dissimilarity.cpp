#include "attacks/dissimilarity.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace fragile::attacks {

namespace {

void check_map(const Tensor& s, const char* what) {
  FRAGILE_CHECK(s.defined() && s.dim() == 3, what, ": expected a saliency map [N, H, W], got ",
                s.defined() ? shape_str(s.shape()) : std::string("an undefined tensor"));
}

}  // namespace

Tensor topk_mask(const Tensor& s0, int64_t k) {
  check_map(s0, "topk_mask");
  const int64_t n = s0.size(0), hw = s0.size(1) * s0.size(2);
  FRAGILE_CHECK(k > 0 && k < hw, "top-k: k = ", k, " must be between 1 and ", hw - 1,
                " (the map has ", hw, " pixels)");
  const std::vector<double> v = s0.to_vector();
  std::vector<double> mask(v.size(), 0.0);
  std::vector<int64_t> idx(hw);
  for (int64_t i = 0; i < n; ++i) {
    const double* row = v.data() + i * hw;
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [row](int64_t a, int64_t b) {
      return row[a] > row[b] || (row[a] == row[b] && a < b);
    });
    for (int64_t j = 0; j < k; ++j) mask[i * hw + idx[j]] = 1.0;
  }
  return Tensor::from_vector(mask, s0.shape(), s0.dtype()).to(s0.device());
}

Tensor masked_mass(const Tensor& s, const Tensor& mask) {
  check_map(s, "masked_mass");
  return sum(mul(s, mask.detach()), {1, 2});
}

Tensor center_of_mass(const Tensor& s) {
  check_map(s, "center_of_mass");
  const int64_t h = s.size(1), w = s.size(2);
  std::vector<double> rows(h), cols(w);
  std::iota(rows.begin(), rows.end(), 0.0);
  std::iota(cols.begin(), cols.end(), 0.0);
  const Tensor r = Tensor::from_vector(rows, {1, h, 1}, s.dtype()).to(s.device());
  const Tensor c = Tensor::from_vector(cols, {1, 1, w}, s.dtype()).to(s.device());
  const Tensor cr = sum(mul(s, r), {1, 2}, /*keepdim=*/false);  // [N]
  const Tensor cc = sum(mul(s, c), {1, 2}, false);
  return concat({unsqueeze(cr, 1), unsqueeze(cc, 1)}, 1);
}

Tensor center_target(const Tensor& s0) {
  NoGradGuard no_grad;
  std::vector<double> c = center_of_mass(s0.detach()).to_vector();
  for (double& e : c) e = std::trunc(e);
  return Tensor::from_vector(c, {s0.size(0), 2}, s0.dtype()).to(s0.device());
}

Tensor center_loss(const Tensor& s, const Tensor& c0) {
  const Tensor d = sub(center_of_mass(s), c0.detach());
  return sum(mul(d, d), {1});
}

}  // namespace fragile::attacks

namespace fragile::attacks {

namespace {

void check_attribution(const Tensor& a, const char* what) {
  FRAGILE_CHECK(a.defined() && a.dim() == 4, what, ": expected an attribution [N, C, H, W], got ",
                a.defined() ? shape_str(a.shape()) : std::string("an undefined tensor"));
}

}  // namespace

Tensor masked_mass_fused(const Tensor& attribution, const Tensor& mask) {
  check_attribution(attribution, "masked_mass_fused");
  check_map(mask, "masked_mass_fused (mask)");
  const Tensor m = saliency_moments(attribution, unsqueeze(mask.detach(), 1));  // [N, 2]
  return reshape(slice(m, 1, 0, 1), {attribution.size(0)});
}

Tensor center_weights(int64_t h, int64_t w, DType dtype, Device device) {
  std::vector<double> v(static_cast<size_t>(2 * h * w));
  for (int64_t i = 0; i < h; ++i) {
    for (int64_t j = 0; j < w; ++j) {
      v[i * w + j] = static_cast<double>(i);
      v[h * w + i * w + j] = static_cast<double>(j);
    }
  }
  return Tensor::from_vector(v, {1, 2, h, w}, dtype).to(device);
}

Tensor center_loss_fused(const Tensor& attribution, const Tensor& c0, const Tensor& weights) {
  check_attribution(attribution, "center_loss_fused");
  const Tensor c = slice(saliency_moments(attribution, weights), 1, 0, 2);  // [N, 2]
  const Tensor d = sub(c, c0.detach());
  return sum(mul(d, d), {1});
}

}  // namespace fragile::attacks
