// The pieces of one explanation-attack iteration, each small enough to test on its own:
// the pixel box and the epsilon ball in preprocessed units, the sign step with its projection,
// the label check, and the best-iterate rule of Ghorbani et al.'s Algorithm 1.
//
// Vocabulary: x, x0 [N, C, H, W] preprocessed inputs (x0 the unperturbed one); per-channel
// quantities are [1, C, 1, 1] tensors so they broadcast over N, H, W. "Pixel units" are the
// 0..255 units of the image file; preprocessing maps pixel p of channel c to
// (p - mean[c]) * scale[c], so a pixel-unit length l is l * |scale[c]| in preprocessed units.
#pragma once
#include <cstdint>
#include <limits>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"
#include "nn/image.h"

namespace fragile::attacks {

// The valid box and the unit conversion of a model's input space, per channel.
struct PixelSpace {
  std::vector<double> mean, scale;  // the preprocessing, one value per channel
  std::vector<double> lo, hi;       // preprocessed values of pixels 0 and 255 (lo <= hi)
  std::vector<double> unit;         // preprocessed units per pixel unit: |scale[c]|

  // mean / scale with 1 value are shared by all `channels`; with `channels` values, per channel.
  static PixelSpace from_preprocess(const nn::Preprocess& p, int64_t channels);
  int64_t channels() const { return static_cast<int64_t>(lo.size()); }

  // [1, C, 1, 1] tensors in `dtype` on `device`.
  Tensor lo_tensor(DType dtype, Device device = Device::CPU) const;
  Tensor hi_tensor(DType dtype, Device device = Device::CPU) const;
  // A length given in pixel units (epsilon, alpha) as per-channel preprocessed lengths.
  Tensor pixels(double length, DType dtype, Device device = Device::CPU) const;
  // The fused step's per-channel parameters for a step `alpha` and a ball `epsilon` given in
  // pixel units.
  AttackStepParams step_params(double alpha, double epsilon) const;
  // Preprocessed value of channel c back to pixel units (inverse of the preprocessing).
  double to_pixel(int64_t c, double value) const { return value / scale[c] + mean[c]; }
  // max over elements of |x - x0| / unit[c]: the l-infinity distance in pixel units, per image.
  std::vector<double> linf_pixels(const Tensor& x, const Tensor& x0) const;
};

// x0 + clamp(x - x0, -eps, eps): the projection onto the l-infinity ball of radius eps
// ([1, C, 1, 1] or a scalar tensor) around x0. No autograd.
Tensor project_linf(const Tensor& x, const Tensor& x0, const Tensor& eps);
// Per-channel clamp to [lo, hi] (broadcasting tensors). No autograd.
Tensor clip_box(const Tensor& x, const Tensor& lo, const Tensor& hi);
// One step of Algorithm 1: x0 + clip(x + alpha * sign(d) - x0, -eps, eps), then clipped to the
// valid box. sign(0) = 0, so a coordinate with no gradient does not move. No autograd.
Tensor sign_step(const Tensor& x, const Tensor& x0, const Tensor& direction, const Tensor& alpha,
                 const Tensor& eps, const Tensor& lo, const Tensor& hi);

// The same step as one fused kernel on x's device (Backend::attack_step, fn::AttackStep), with
// per-channel parameters from PixelSpace::step_params. x, x0, direction: [N, C, ...] of one
// shape. No autograd.
Tensor sign_step(const Tensor& x, const Tensor& x0, const Tensor& direction,
                 const AttackStepParams& params);

// Row-wise argmax of scores [N, K] (the first maximum on ties).
std::vector<int64_t> predicted_labels(const Tensor& scores);
// Row-wise softmax probability of class labels[n].
std::vector<double> probabilities(const Tensor& scores, const std::vector<int64_t>& labels);
// kept[n] = (now[n] == before[n]).
std::vector<bool> labels_kept(const std::vector<int64_t>& before, const std::vector<int64_t>& now);

// The best-iterate rule for one image: among the iterates that keep the label, the one with the
// largest dissimilarity (the earliest on ties). Iterates that change the label never count, not
// even when they are far more dissimilar; when none keeps the label the attack has failed.
struct BestIterate {
  int64_t iter = -1;  // -1: no label-keeping iterate yet
  double value = -std::numeric_limits<double>::infinity();

  bool found() const { return iter >= 0; }
  // Offers iterate `iter` with dissimilarity `value`; returns true when it becomes the best.
  bool offer(int64_t iter, double value, bool label_kept);
};

}  // namespace fragile::attacks
