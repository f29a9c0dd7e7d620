// Differentiable dissimilarities between a saliency map and the original one (Ghorbani et al.,
// Algorithm 1), and the host-side quantities they are built from.
//
// Vocabulary: S [N, H, W] saliency maps (non-negative, each summing to 1, see
// attr::saliency_map); S0 the original network's map of the unperturbed input; a mask is a
// [N, H, W] (or [1, H, W]) tensor of 0/1. Every function returns one value per image, [N], so
// the images of a batch stay independent: the gradient of their sum is each image's gradient.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace fragile::attacks {

// The k largest entries of each image's map (ties: lower flat index first), as a 0/1 mask in
// S0's dtype. Throws unless 0 < k < H * W.
Tensor topk_mask(const Tensor& s0, int64_t k);
// sum_{i,j} S * mask per image: the saliency mass inside the mask. [N]
Tensor masked_mass(const Tensor& s, const Tensor& mask);
// Centre of saliency mass C = sum_{i,j} S_ij (i, j), rows and columns counted from 0. [N, 2]
Tensor center_of_mass(const Tensor& s);
// The original centre truncated to integers, as Ghorbani's code does: that offset is what makes
// the first gradient of ||C(x) - C0||^2 non-zero when the direction comes from the same network.
// Host-side, no autograd. [N, 2]
Tensor center_target(const Tensor& s0);
// ||C(x) - c0||^2 per image. [N]
Tensor center_loss(const Tensor& s, const Tensor& c0);

// The same losses computed from the attribution A [N, C, H, W] with the fused saliency op
// (core/ops.h saliency_moments: normalisation and weighted sums in one pass, one element-wise
// backward), equal to the functions above applied to attr::saliency_map(A). These are what the
// attacks use.
// sum S * mask per image, mask [1 or N, H, W]. [N]
Tensor masked_mass_fused(const Tensor& attribution, const Tensor& mask);
// ||C - c0||^2 per image, C the centre of mass of saliency_map(A); `weights` from
// center_weights (made once per attack, not per iteration). [N]
Tensor center_loss_fused(const Tensor& attribution, const Tensor& c0, const Tensor& weights);
// The row and column index maps [1, 2, H, W] whose moments are the centre of mass.
Tensor center_weights(int64_t h, int64_t w, DType dtype, Device device);

}  // namespace fragile::attacks
