// The differentiable dissimilarities of Algorithm 1: top-k mask and mass, centre of mass and its
// squared shift (values and gradients).
#include <gtest/gtest.h>

#include <functional>
#include <random>

#include "attacks/dissimilarity.h"
#include "attribution/attribution.h"
#include "core/error.h"
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

// ---- the fused versions (saliency_moments) ------------------------------------------------

// An attribution [N, C, H, W] kept away from 0 (|.| has a kink there), image 1 all zero when
// `zero_image` (its total is 0: no normalised map).
Tensor attribution_for_test(std::mt19937_64& rng, bool zero_image) {
  Tensor a = Tensor::uniform({3, 2, 4, 5}, 0.2, 1.5, rng, DType::Float64);
  std::vector<double> v = a.to_vector();
  std::bernoulli_distribution flip(0.5);
  for (size_t i = 0; i < v.size(); ++i) {
    if (flip(rng)) v[i] = -v[i];
    if (zero_image && i >= 40 && i < 80) v[i] = 0.0;
  }
  return Tensor::from_vector(v, a.shape(), DType::Float64);
}

void expect_same(const Tensor& a, const Tensor& b, double tol, const char* what) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  ASSERT_EQ(x.size(), y.size()) << what;
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], y[i], tol) << what << " " << i;
}

TEST(FusedLosses, EqualTheComposedLossesInValueGradientAndHvp) {
  std::mt19937_64 rng(5);
  for (const bool zero_image : {false, true}) {
    Tensor a = attribution_for_test(rng, zero_image);
    a.set_requires_grad(true);
    const Tensor s0 = attr::saliency_map(a.detach());
    const Tensor mask = topk_mask(s0, 7);
    const Tensor c0 = center_target(s0);
    const Tensor weights = center_weights(4, 5, DType::Float64, Device::CPU);
    const Tensor v = Tensor::randn(a.shape(), rng, DType::Float64);
    struct Pair {
      const char* what;
      std::function<Tensor(const Tensor&)> fused, composed;
    };
    const Pair pairs[] = {
        {"masked mass", [&](const Tensor& t) { return masked_mass_fused(t, mask); },
         [&](const Tensor& t) { return masked_mass(attr::saliency_map(t), mask); }},
        {"center loss", [&](const Tensor& t) { return center_loss_fused(t, c0, weights); },
         [&](const Tensor& t) { return center_loss(attr::saliency_map(t), c0); }},
    };
    for (const Pair& p : pairs) {
      const Tensor f = p.fused(a), c = p.composed(a);
      expect_same(f, c, 1e-12, p.what);
      // Gradient with create_graph, then the HVP along v (second order through the fused op's
      // backward and its own rule).
      const Tensor gf = grad({sum(f)}, {a}, {}, true)[0], gc = grad({sum(c)}, {a}, {}, true)[0];
      expect_same(gf, gc, 1e-10, p.what);
      const Tensor hf = grad({sum(mul(gf, v))}, {a}, {}, false, true)[0];
      const Tensor hc = grad({sum(mul(gc, v))}, {a}, {}, false, true)[0];
      expect_same(hf, hc, 1e-9, p.what);
    }
  }
}

TEST(FusedLosses, GradcheckAndGradgradcheck) {
  std::mt19937_64 rng(9);
  Tensor a = attribution_for_test(rng, false);
  a.set_requires_grad(true);
  const Tensor s0 = attr::saliency_map(a.detach());
  const Tensor mask = topk_mask(s0, 5), c0 = center_target(s0);
  const Tensor weights = center_weights(4, 5, DType::Float64, Device::CPU);
  const test::TensorFn mass = [&](const std::vector<Tensor>& in) {
    return masked_mass_fused(in[0], mask);
  };
  const test::TensorFn center = [&](const std::vector<Tensor>& in) {
    return center_loss_fused(in[0], c0, weights);
  };
  EXPECT_TRUE(test::gradcheck(mass, {a}));
  EXPECT_TRUE(test::gradgradcheck(mass, {a}));
  EXPECT_TRUE(test::gradcheck(center, {a}));
  EXPECT_TRUE(test::gradgradcheck(center, {a}));
}

TEST(FusedLosses, RejectBadShapes) {
  const Tensor a = Tensor::ones({2, 3, 4, 5}, DType::Float64);
  EXPECT_THROW(masked_mass_fused(a, Tensor::ones({2, 4, 6}, DType::Float64)), Error);
  EXPECT_THROW(masked_mass_fused(Tensor::ones({2, 4, 5}, DType::Float64),
                                 Tensor::ones({2, 4, 5}, DType::Float64)),
               Error);
  EXPECT_THROW(saliency_moments(a, Tensor::ones({3, 1, 4, 5}, DType::Float64)), Error);
  EXPECT_THROW(saliency_moments(a, Tensor::ones({1, 1, 4, 5}, DType::Float32)), Error);
}

}  // namespace
}  // namespace fragile::attacks
