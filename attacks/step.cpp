#include "attacks/step.h"

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/ops.h"

namespace fragile::attacks {

namespace {

std::vector<double> per_channel(const std::vector<double>& v, int64_t channels, const char* what) {
  FRAGILE_CHECK(v.size() == 1 || static_cast<int64_t>(v.size()) == channels, "preprocess ", what,
                " has ", v.size(), " values but the input has ", channels, " channels");
  if (v.size() == 1) return std::vector<double>(channels, v[0]);
  return v;
}

Tensor channel_tensor(const std::vector<double>& v, DType dtype, Device device) {
  return Tensor::from_vector(v, {1, static_cast<int64_t>(v.size()), 1, 1}, dtype).to(device);
}

}  // namespace

PixelSpace PixelSpace::from_preprocess(const nn::Preprocess& p, int64_t channels) {
  FRAGILE_CHECK(channels >= 1, "input must have at least one channel");
  PixelSpace s;
  s.mean = per_channel(p.mean, channels, "mean");
  s.scale = per_channel(p.scale, channels, "scale");
  for (int64_t c = 0; c < channels; ++c) {
    FRAGILE_CHECK(s.scale[c] != 0 && std::isfinite(s.scale[c]), "preprocess scale of channel ", c,
                  " is ", s.scale[c], "; it must be finite and non-zero");
    const double a = (0.0 - s.mean[c]) * s.scale[c], b = (255.0 - s.mean[c]) * s.scale[c];
    s.lo.push_back(std::min(a, b));
    s.hi.push_back(std::max(a, b));
    s.unit.push_back(std::abs(s.scale[c]));
  }
  return s;
}

Tensor PixelSpace::lo_tensor(DType dtype, Device device) const {
  return channel_tensor(lo, dtype, device);
}
Tensor PixelSpace::hi_tensor(DType dtype, Device device) const {
  return channel_tensor(hi, dtype, device);
}

Tensor PixelSpace::pixels(double length, DType dtype, Device device) const {
  std::vector<double> v(unit.size());
  for (size_t c = 0; c < unit.size(); ++c) v[c] = length * unit[c];
  return channel_tensor(v, dtype, device);
}

AttackStepParams PixelSpace::step_params(double alpha, double epsilon) const {
  AttackStepParams p;
  for (size_t c = 0; c < unit.size(); ++c) {
    p.alpha.push_back(alpha * unit[c]);
    p.eps.push_back(epsilon * unit[c]);
  }
  p.lo = lo;
  p.hi = hi;
  return p;
}

std::vector<double> PixelSpace::linf_pixels(const Tensor& x, const Tensor& x0) const {
  FRAGILE_CHECK(x.shape() == x0.shape() && x.dim() == 4 && x.size(1) == channels(),
                "linf_pixels: shapes ", shape_str(x.shape()), " and ", shape_str(x0.shape()),
                " for ", channels(), " channels");
  const std::vector<double> a = x.to_vector(), b = x0.to_vector();
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  std::vector<double> out(n, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t ch = 0; ch < c; ++ch) {
      const int64_t base = (i * c + ch) * hw;
      for (int64_t j = 0; j < hw; ++j) {
        out[i] = std::max(out[i], std::abs(a[base + j] - b[base + j]) / unit[ch]);
      }
    }
  }
  return out;
}

Tensor project_linf(const Tensor& x, const Tensor& x0, const Tensor& eps) {
  NoGradGuard no_grad;
  const Tensor d = sub(x, x0);
  const Tensor neg_eps = neg(eps);
  const Tensor clipped = where(gt(d, eps), eps, where(lt(d, neg_eps), neg_eps, d));
  return add(x0, clipped);
}

Tensor clip_box(const Tensor& x, const Tensor& lo, const Tensor& hi) {
  NoGradGuard no_grad;
  // Broadcasting where() may give lo/hi's shape when x is smaller; x's shape always wins here.
  Tensor out = where(lt(x, lo), lo, where(gt(x, hi), hi, x));
  FRAGILE_CHECK(out.shape() == x.shape(), "clip_box: bounds of shape ", shape_str(lo.shape()),
                " do not broadcast to ", shape_str(x.shape()));
  return out;
}

Tensor sign_step(const Tensor& x, const Tensor& x0, const Tensor& direction, const Tensor& alpha,
                 const Tensor& eps, const Tensor& lo, const Tensor& hi) {
  NoGradGuard no_grad;
  FRAGILE_CHECK(direction.shape() == x.shape(), "attack direction has shape ",
                shape_str(direction.shape()), " but the input has shape ", shape_str(x.shape()));
  const Tensor moved = add(x, mul(alpha, sign(direction.detach())));
  return clip_box(project_linf(moved, x0, eps), lo, hi);
}

Tensor sign_step(const Tensor& x, const Tensor& x0, const Tensor& direction,
                 const AttackStepParams& params) {
  FRAGILE_CHECK(x.dim() >= 2 && x.shape() == x0.shape() && x.shape() == direction.shape(),
                "attack step: x ", shape_str(x.shape()), ", x0 ", shape_str(x0.shape()),
                " and direction ", shape_str(direction.shape()), " must be one [N, C, ...] shape");
  FRAGILE_CHECK(x.dtype() == x0.dtype() && x.dtype() == direction.dtype() &&
                    x.device() == x0.device() && x.device() == direction.device(),
                "attack step: x, x0 and the direction must share dtype and device");
  const size_t c = static_cast<size_t>(x.size(1));
  FRAGILE_CHECK(params.alpha.size() == c && params.eps.size() == c && params.lo.size() == c &&
                    params.hi.size() == c,
                "attack step: per-channel parameters for ", params.alpha.size(),
                " channels, the input has ", c);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend_for(x.device()).attack_step(x.detach(), direction.detach(), x0.detach(), params, out);
  return out;
}

std::vector<int64_t> predicted_labels(const Tensor& scores) {
  FRAGILE_CHECK(scores.dim() == 2, "scores must be [N, K], got ", shape_str(scores.shape()));
  const int64_t n = scores.size(0), k = scores.size(1);
  const std::vector<double> v = scores.to_vector();
  std::vector<int64_t> out(n);
  for (int64_t i = 0; i < n; ++i) {
    const double* row = v.data() + i * k;
    out[i] = std::max_element(row, row + k) - row;
  }
  return out;
}

std::vector<double> probabilities(const Tensor& scores, const std::vector<int64_t>& labels) {
  FRAGILE_CHECK(scores.dim() == 2 && scores.size(0) == static_cast<int64_t>(labels.size()),
                "probabilities: scores ", shape_str(scores.shape()), " for ", labels.size(),
                " labels");
  const int64_t n = scores.size(0), k = scores.size(1);
  const std::vector<double> v = scores.to_vector();
  std::vector<double> out(n);
  for (int64_t i = 0; i < n; ++i) {
    const double* row = v.data() + i * k;
    const double m = *std::max_element(row, row + k);
    double z = 0;
    for (int64_t j = 0; j < k; ++j) z += std::exp(row[j] - m);
    out[i] = std::exp(row[labels[i]] - m) / z;
  }
  return out;
}

std::vector<bool> labels_kept(const std::vector<int64_t>& before, const std::vector<int64_t>& now) {
  FRAGILE_CHECK(before.size() == now.size(), "labels_kept: ", before.size(), " vs ", now.size(),
                " labels");
  std::vector<bool> out(before.size());
  for (size_t i = 0; i < before.size(); ++i) out[i] = before[i] == now[i];
  return out;
}

bool BestIterate::offer(int64_t it, double v, bool label_kept) {
  if (!label_kept || std::isnan(v)) return false;
  if (found() && !(v > value)) return false;
  iter = it;
  value = v;
  return true;
}

}  // namespace fragile::attacks
