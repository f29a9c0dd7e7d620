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

}  // namespace fragile::attacks
