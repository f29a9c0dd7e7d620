// The pieces of one attack iteration: pixel box and units, projection, clipping, the sign step,
// the label check and the best-iterate rule.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "attacks/step.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace fragile::attacks {
namespace {

nn::Preprocess squeezenet_preprocess() {
  nn::Preprocess p;
  p.channel_order = "BGR";
  p.mean = {104, 117, 123};
  p.scale = {1};
  return p;
}

TEST(PixelSpace, BoxAndUnitsFollowThePreprocessing) {
  const PixelSpace s = PixelSpace::from_preprocess(squeezenet_preprocess(), 3);
  ASSERT_EQ(s.channels(), 3);
  EXPECT_DOUBLE_EQ(s.lo[0], -104);
  EXPECT_DOUBLE_EQ(s.hi[0], 151);
  EXPECT_DOUBLE_EQ(s.lo[2], -123);
  EXPECT_DOUBLE_EQ(s.hi[2], 132);
  EXPECT_DOUBLE_EQ(s.unit[1], 1.0);

  nn::Preprocess gray;
  gray.mean = {0};
  gray.scale = {1.0 / 255.0};
  const PixelSpace g = PixelSpace::from_preprocess(gray, 1);
  EXPECT_DOUBLE_EQ(g.lo[0], 0.0);
  EXPECT_DOUBLE_EQ(g.hi[0], 1.0);
  // epsilon 8 pixels is 8/255 in [0, 1] units.
  EXPECT_NEAR(g.pixels(8, DType::Float64).item(), 8.0 / 255.0, 1e-15);
  EXPECT_NEAR(g.to_pixel(0, 0.5), 127.5, 1e-12);

  // A torchvision-style normalisation: per-channel scale 1 / (255 std).
  nn::Preprocess tv;
  tv.mean = {123.675, 116.28, 103.53};
  tv.scale = {1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225)};
  const PixelSpace t = PixelSpace::from_preprocess(tv, 3);
  EXPECT_NEAR(t.lo[0], -0.485 / 0.229, 1e-9);
  EXPECT_NEAR(t.hi[2], (1 - 0.406) / 0.225, 1e-9);
  const std::vector<double> eps = t.pixels(2, DType::Float64).to_vector();
  EXPECT_NEAR(eps[1], 2 / (255 * 0.224), 1e-12);
}

TEST(PixelSpace, RejectsMismatchedChannelsAndZeroScale) {
  nn::Preprocess p = squeezenet_preprocess();
  EXPECT_THROW(PixelSpace::from_preprocess(p, 1), Error);
  p.scale = {0};
  EXPECT_THROW(PixelSpace::from_preprocess(p, 3), Error);
}

TEST(PixelSpace, LinfInPixelUnitsPerImage) {
  nn::Preprocess p;
  p.mean = {0};
  p.scale = {0.5};
  const PixelSpace s = PixelSpace::from_preprocess(p, 1);
  const Tensor x0 = Tensor::zeros({2, 1, 2, 2}, DType::Float64);
  const Tensor x = Tensor::from_vector({0, 1, -2, 0, 0.25, 0, 0, 0}, {2, 1, 2, 2}, DType::Float64);
  const std::vector<double> l = s.linf_pixels(x, x0);
  EXPECT_DOUBLE_EQ(l[0], 4.0);  // 2 preprocessed units = 4 pixels
  EXPECT_DOUBLE_EQ(l[1], 0.5);
}

TEST(Projection, ClipsTheDifferencePerChannel) {
  const Tensor x0 = Tensor::from_vector({0, 0, 10, 10}, {1, 2, 1, 2}, DType::Float64);
  const Tensor x = Tensor::from_vector({5, -0.5, 13, 7}, {1, 2, 1, 2}, DType::Float64);
  const Tensor eps = Tensor::from_vector({1, 2}, {1, 2, 1, 1}, DType::Float64);
  const std::vector<double> p = project_linf(x, x0, eps).to_vector();
  EXPECT_EQ(p, (std::vector<double>{1, -0.5, 12, 8}));
  // Inside the ball nothing moves.
  EXPECT_EQ(project_linf(x0, x0, eps).to_vector(), x0.to_vector());
}

TEST(Clipping, ClampsToThePerChannelBox) {
  const Tensor x = Tensor::from_vector({-200, 0, 200, -200, 0, 200}, {1, 2, 1, 3}, DType::Float32);
  const Tensor lo = Tensor::from_vector({-104, -123}, {1, 2, 1, 1}, DType::Float32);
  const Tensor hi = Tensor::from_vector({151, 132}, {1, 2, 1, 1}, DType::Float32);
  EXPECT_EQ(clip_box(x, lo, hi).to_vector(), (std::vector<double>{-104, 0, 151, -123, 0, 132}));
}

TEST(SignStep, StepsProjectsThenClips) {
  // One channel, box [0, 1], eps 0.1, alpha 0.04.
  const Tensor x0 = Tensor::from_vector({0.5, 0.5, 0.99, 0.02, 0.5}, {1, 1, 1, 5}, DType::Float64);
  Tensor x = Tensor::from_vector({0.58, 0.42, 0.99, 0.02, 0.5}, {1, 1, 1, 5}, DType::Float64);
  const Tensor d = Tensor::from_vector({1, -1, 1, -1, 0}, {1, 1, 1, 5}, DType::Float64);
  const Tensor alpha = Tensor::full({1, 1, 1, 1}, 0.04, DType::Float64);
  const Tensor eps = Tensor::full({1, 1, 1, 1}, 0.1, DType::Float64);
  const Tensor lo = Tensor::zeros({1, 1, 1, 1}, DType::Float64);
  const Tensor hi = Tensor::ones({1, 1, 1, 1}, DType::Float64);
  const std::vector<double> y = sign_step(x, x0, d, alpha, eps, lo, hi).to_vector();
  EXPECT_NEAR(y[0], 0.6, 1e-12);   // 0.62 projected back to x0 + eps
  EXPECT_NEAR(y[1], 0.4, 1e-12);   // 0.38 projected to x0 - eps
  EXPECT_NEAR(y[2], 1.0, 1e-12);   // 1.03 inside the ball, clipped to the box
  EXPECT_NEAR(y[3], 0.0, 1e-12);   // -0.02 clipped to the box
  EXPECT_NEAR(y[4], 0.5, 1e-12);   // sign(0) = 0: no move
}

TEST(SignStep, ManyStepsStayInBallAndBox) {
  std::mt19937_64 rng(3);
  const Tensor x0 = Tensor::uniform({2, 3, 4, 4}, -1, 1, rng, DType::Float32);
  const Tensor alpha = Tensor::full({1, 3, 1, 1}, 0.3, DType::Float32);
  const Tensor eps = Tensor::from_vector({0.5, 0.25, 1.0}, {1, 3, 1, 1}, DType::Float32);
  const Tensor lo = Tensor::full({1, 3, 1, 1}, -1, DType::Float32);
  const Tensor hi = Tensor::full({1, 3, 1, 1}, 1, DType::Float32);
  Tensor x = x0;
  for (int i = 0; i < 20; ++i) {
    x = sign_step(x, x0, Tensor::randn(x0.shape(), rng, DType::Float32), alpha, eps, lo, hi);
  }
  const std::vector<double> a = x.to_vector(), b = x0.to_vector();
  const double e[3] = {0.5, 0.25, 1.0};
  for (size_t i = 0; i < a.size(); ++i) {
    const int64_t c = (i / 16) % 3;
    EXPECT_LE(std::abs(a[i] - b[i]), e[c] + 1e-6) << i;
    EXPECT_GE(a[i], -1.0f);
    EXPECT_LE(a[i], 1.0f);
  }
}

TEST(SignStep, FusedStepEqualsTheComposedOpsPerChannel) {
  // The fused kernel (Backend::attack_step) against project-then-clip written with ops, with
  // per-channel steps, balls and boxes as the ImageNet preprocessing gives, and a direction on
  // a coarse grid so sign(0) = 0 happens.
  std::mt19937_64 rng(11);
  const PixelSpace space = PixelSpace::from_preprocess(
      [] {
        nn::Preprocess p;
        p.mean = {104, 117, 123};
        p.scale = {0.5, 1.0, 2.0};
        return p;
      }(),
      3);
  for (const DType dt : {DType::Float32, DType::Float64}) {
    // Inside every channel's box with room for the ball, so only the ball binds.
    const Tensor x0 = Tensor::uniform({2, 3, 4, 5}, -40, 70, rng, dt);
    Tensor x = x0;
    std::uniform_int_distribution<int> coarse(-2, 2);
    for (int it = 0; it < 12; ++it) {
      std::vector<double> dv(x0.numel());
      for (double& v : dv) v = coarse(rng);
      const Tensor d = Tensor::from_vector(dv, x0.shape(), dt);
      const Tensor composed =
          sign_step(x, x0, d, space.pixels(3.0, dt), space.pixels(8.0, dt), space.lo_tensor(dt),
                    space.hi_tensor(dt));
      const Tensor fused = sign_step(x, x0, d, space.step_params(3.0, 8.0));
      const std::vector<double> a = composed.to_vector(), b = fused.to_vector();
      for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << dtype_name(dt) << " " << i;
      x = fused;
    }
    for (double l : space.linf_pixels(x, x0)) EXPECT_LE(l, 8.0 + 1e-4);
  }
}

TEST(SignStep, FusedStepRejectsMismatchedParameters) {
  const Tensor x = Tensor::zeros({1, 2, 2, 2}, DType::Float64);
  AttackStepParams p;
  p.alpha = p.eps = p.lo = p.hi = {1.0};  // one channel's worth for a two-channel input
  EXPECT_THROW(sign_step(x, x, x, p), Error);
  p.alpha = p.eps = p.lo = p.hi = {1.0, 1.0};
  EXPECT_THROW(sign_step(x, x, Tensor::zeros({1, 2, 2, 3}, DType::Float64), p), Error);
}

TEST(SignStep, LeavesNoHistory) {
  Tensor x = Tensor::zeros({1, 1, 2, 2}, DType::Float64);
  x.set_requires_grad(true);
  const Tensor one = Tensor::ones({1, 1, 1, 1}, DType::Float64);
  const Tensor y = sign_step(x, x.detach(), Tensor::ones({1, 1, 2, 2}, DType::Float64), one, one,
                             neg(one).detach(), one);
  EXPECT_TRUE(y.is_leaf());
  EXPECT_FALSE(y.requires_grad());
}

TEST(LabelCheck, ArgmaxProbabilitiesAndKept) {
  const Tensor z = Tensor::from_vector({0, 2, 1, 5, 1, 5}, {2, 3}, DType::Float64);
  const std::vector<int64_t> labels = predicted_labels(z);
  EXPECT_EQ(labels, (std::vector<int64_t>{1, 0}));  // first maximum on ties
  const std::vector<double> p = probabilities(z, labels);
  const double z0 = std::exp(0) + std::exp(2) + std::exp(1);
  EXPECT_NEAR(p[0], std::exp(2) / z0, 1e-12);
  EXPECT_NEAR(p[1], std::exp(5) / (2 * std::exp(5) + std::exp(1)), 1e-12);
  EXPECT_EQ(labels_kept({1, 0, 3}, {1, 2, 3}), (std::vector<bool>{true, false, true}));
  EXPECT_THROW(labels_kept({1}, {1, 2}), Error);
}

TEST(BestIterate, KeepsTheMostDissimilarLabelKeepingIterate) {
  BestIterate b;
  EXPECT_FALSE(b.found());
  EXPECT_FALSE(b.offer(1, 0.9, /*label_kept=*/false));  // label changed: never counts
  EXPECT_FALSE(b.found());
  EXPECT_TRUE(b.offer(2, 0.3, true));
  EXPECT_FALSE(b.offer(3, 0.2, true));   // less dissimilar
  EXPECT_FALSE(b.offer(4, 0.3, true));   // tie: the earliest stays
  EXPECT_FALSE(b.offer(5, 5.0, false));  // far more dissimilar but the label changed
  EXPECT_TRUE(b.offer(6, 0.5, true));
  EXPECT_FALSE(b.offer(7, std::nan(""), true));
  EXPECT_EQ(b.iter, 6);
  EXPECT_DOUBLE_EQ(b.value, 0.5);
}

TEST(BestIterate, FailsWhenNoIterateKeepsTheLabel) {
  BestIterate b;
  for (int p = 1; p <= 5; ++p) b.offer(p, p, false);
  EXPECT_FALSE(b.found());
  EXPECT_EQ(b.iter, -1);
}

}  // namespace
}  // namespace fragile::attacks
