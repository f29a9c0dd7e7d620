// The differentiable dissimilarities of Algorithm 1: top-k mask and mass, centre of mass and its
// squared shift (values and gradients).
#include <gtest/gtest.h>

#include "attacks/dissimilarity.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "tests/support/gradcheck.h"

namespace fragile::attacks {
namespace {

TEST(TopkMask, MarksTheKLargestPerImage) {
  const Tensor s = Tensor::from_vector({0.1, 0.4, 0.2, 0.3, /**/ 0.5, 0.1, 0.1, 0.3}, {2, 2, 2},
                                       DType::Float64);
  EXPECT_EQ(topk_mask(s, 2).to_vector(), (std::vector<double>{0, 1, 0, 1, 1, 0, 0, 1}));
  // Ties: the lower flat index first.
  EXPECT_EQ(topk_mask(s, 3).to_vector(), (std::vector<double>{0, 1, 1, 1, 1, 1, 0, 1}));
  EXPECT_THROW(topk_mask(s, 0), Error);
  EXPECT_THROW(topk_mask(s, 4), Error);  // k must leave pixels outside the set
}

TEST(MaskedMass, ValueAndGradient) {
  Tensor s = Tensor::from_vector({0.1, 0.4, 0.2, 0.3}, {1, 2, 2}, DType::Float64);
  s.set_requires_grad(true);
  const Tensor m = topk_mask(s.detach(), 2);
  const Tensor mass = masked_mass(s, m);
  EXPECT_NEAR(mass.item(), 0.7, 1e-12);
  EXPECT_EQ(grad({sum(mass)}, {s})[0].to_vector(), m.to_vector());
}

TEST(CenterOfMass, RowsAndColumnsFromZero) {
  // All mass at (row 2, col 1) of a 3x4 map; half at (0, 0) and half at (2, 3) in image 2.
  std::vector<double> v(24, 0.0);
  v[2 * 4 + 1] = 1.0;
  v[12 + 0] = 0.5;
  v[12 + 2 * 4 + 3] = 0.5;
  const Tensor s = Tensor::from_vector(v, {2, 3, 4}, DType::Float64);
  EXPECT_EQ(center_of_mass(s).to_vector(), (std::vector<double>{2, 1, 1, 1.5}));
  EXPECT_EQ(center_target(s).to_vector(), (std::vector<double>{2, 1, 1, 1}));  // truncated
}

TEST(CenterLoss, GradientMatchesFiniteDifferences) {
  std::mt19937_64 rng(7);
  Tensor s = Tensor::uniform({2, 3, 5}, 0.0, 1.0, rng, DType::Float64);
  s.set_requires_grad(true);
  const Tensor c0 = center_target(s);
  EXPECT_TRUE(test::gradcheck(
      [&](const std::vector<Tensor>& in) { return center_loss(in[0], c0); }, {s}));
  EXPECT_TRUE(test::gradgradcheck(
      [&](const std::vector<Tensor>& in) { return center_loss(in[0], c0); }, {s}));
}

TEST(CenterLoss, TruncationMakesTheFirstGradientNonZero) {
  // With C0 = C(x0) exactly, ||C - C0||^2 has a zero gradient at x0; truncating C0 does not.
  Tensor s = Tensor::from_vector({0.1, 0.2, 0.3, 0.4}, {1, 2, 2}, DType::Float64);
  s.set_requires_grad(true);
  const Tensor exact = center_of_mass(s.detach());
  const std::vector<double> g_exact = grad({sum(center_loss(s, exact))}, {s})[0].to_vector();
  for (double e : g_exact) EXPECT_EQ(e, 0.0);
  const std::vector<double> g = grad({sum(center_loss(s, center_target(s)))}, {s})[0].to_vector();
  double norm = 0;
  for (double e : g) norm += e * e;
  EXPECT_GT(norm, 0.0);
}

}  // namespace
}  // namespace fragile::attacks
