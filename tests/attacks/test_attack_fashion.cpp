// End-to-end attacks on the shipped Fashion-MNIST softplus CNN (tools/models/fashion_cnn.onnx):
// top-k and mass-center attacks move the gradient map more than random sign noise while the
// label stays; images of a batch are attacked independently; the targeted and manipulation
// attacks move the map towards their goals; the surrogate rebuilds a smooth network from a ReLU
// one. Small P keeps this fast.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "attacks/attack.h"
#include "core/autograd.h"
#include "core/functional.h"
#include "core/ops.h"
#include "nn/image.h"
#include "nn/onnx_io.h"
#include "nn/session.h"
#include "tests/support/reference.h"

namespace fragile::attacks {
namespace {

namespace fs = std::filesystem;

fs::path model_dir() { return fs::path(test::source_dir()) / "tools" / "models"; }

// The model's preprocessing (metadata: GRAY, mean 0, scale 1/255), written out so the test does
// not depend on the image loader's channel handling: a gray PNG decodes to R = G = B.
nn::Preprocess fashion_preprocess() {
  nn::Preprocess p;
  p.mean = {0};
  p.scale = {1.0 / 255.0};
  return p;
}

Tensor load_samples(const std::vector<std::string>& names, DType dtype) {
  std::vector<double> v;
  for (const std::string& name : names) {
    const nn::Image im = nn::load_image(model_dir() / "fashion_samples" / name);
    EXPECT_EQ(im.width, 28);
    EXPECT_EQ(im.height, 28);
    for (int64_t i = 0; i < 28 * 28; ++i) v.push_back(im.rgb[i * 3] / 255.0);
  }
  return Tensor::from_vector(v, {static_cast<int64_t>(names.size()), 1, 28, 28}, dtype);
}

const std::vector<std::string> kSamples = {"test0_ankle_boot.png", "test1_pullover.png",
                                           "test2_trouser.png", "test4_shirt.png"};

class FashionAttack : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path path = model_dir() / "fashion_cnn.onnx";
    ASSERT_TRUE(fs::exists(path)) << path << " is missing (it ships with the repo)";
    session_ = std::make_unique<nn::Session>(nn::load_onnx(path), DType::Float64);
    space_ = PixelSpace::from_preprocess(fashion_preprocess(), 1);
  }

  Config config(Kind kind, int64_t iters) const {
    Config c;
    c.kind = kind;
    c.method = attr::Method::Gradient;
    c.epsilon = 16;  // pixels (16/255 in the model's [0, 1] units)
    c.step = 2;
    c.iters = iters;
    c.k = 100;  // Chen et al.'s k for 28x28 Fashion-MNIST
    c.seed = 1;
    return c;
  }

  Result attack(const Tensor& x, const Config& c) {
    Surrogate surrogate(*session_);
    return run_attack(*session_, surrogate, x, space_, c);
  }

  std::unique_ptr<nn::Session> session_;
  PixelSpace space_;
};

double mean_of(const Result& r, double ImageResult::*field) {
  double s = 0;
  for (const ImageResult& i : r.images) s += i.*field;
  return s / r.images.size();
}

TEST_F(FashionAttack, TopkAndCenterBeatRandomSignWithTheLabelKept) {
  const Tensor x = load_samples(kSamples, DType::Float64);
  const Result rnd = attack(x, config(Kind::RandomSign, 8));
  const Result topk = attack(x, config(Kind::TopK, 8));
  const Result center = attack(x, config(Kind::MassCenter, 8));
  for (const Result* r : {&rnd, &topk, &center}) {
    for (const ImageResult& i : r->images) {
      EXPECT_TRUE(i.success);
      EXPECT_EQ(i.label_after, i.label_before);
      EXPECT_LE(i.linf, 16.0 + 1e-9);
      EXPECT_GE(i.best_iter, 1);
    }
  }
  const double i_rnd = mean_of(rnd, &ImageResult::topk_intersection);
  const double i_topk = mean_of(topk, &ImageResult::topk_intersection);
  const double i_center = mean_of(center, &ImageResult::topk_intersection);
  const double c_rnd = mean_of(rnd, &ImageResult::center_shift);
  const double c_center = mean_of(center, &ImageResult::center_shift);
  RecordProperty("topk_intersection_random", std::to_string(i_rnd));
  RecordProperty("topk_intersection_topk", std::to_string(i_topk));
  RecordProperty("topk_intersection_center", std::to_string(i_center));
  EXPECT_LT(i_topk, i_rnd);
  EXPECT_LT(i_center, i_rnd);
  EXPECT_GT(c_center, c_rnd);
  // The attacks really move the map: well below the untouched 1.0.
  EXPECT_LT(i_topk, 0.8);
}

// Pixels of image i of `r` that differ from `one`'s single image by more than 1e-9.
int64_t pixels_differing(const Result& one, const Result& r, int64_t i) {
  const std::vector<double> a = one.perturbed.to_vector();
  const std::vector<double> b = contiguous(slice(r.perturbed, 0, i, i + 1)).to_vector();
  int64_t differ = 0;
  for (size_t j = 0; j < a.size(); ++j) differ += std::abs(a[j] - b[j]) > 1e-9;
  return differ;
}

TEST_F(FashionAttack, BatchedImagesAreAttackedIndependently) {
  const Tensor x = load_samples({kSamples[0], kSamples[1]}, DType::Float64);
  for (Kind kind : {Kind::TopK, Kind::RandomSign, Kind::MassCenter}) {
    const Config c = config(kind, 3);
    const Result both = attack(x, c);
    for (int64_t i = 0; i < 2; ++i) {
      // Alone, image i is told its place in the run: random signs come from its own stream.
      Config alone = c;
      alone.attribution.first_image = i;
      const Result one = attack(contiguous(slice(x, 0, i, i + 1)), alone);
      EXPECT_EQ(one.images[0].best_iter, both.images[i].best_iter) << kind_name(kind);
      EXPECT_NEAR(one.images[0].topk_intersection, both.images[i].topk_intersection, 1e-12);
      EXPECT_EQ(pixels_differing(one, both, i), 0) << kind_name(kind) << ", image " << i;
    }
  }
  // Image 1 alone without its place gets image 0's random signs: the check above can fail.
  const Result both = attack(x, config(Kind::RandomSign, 3));
  const Result wrong = attack(contiguous(slice(x, 0, 1, 2)), config(Kind::RandomSign, 3));
  EXPECT_GT(pixels_differing(wrong, both, 1), 0);
}

// Gradient x input of a black image is zero everywhere: its map has no centre of mass. That
// image gets no dissimilarity (NaN, so no best iterate); the other image of the batch is
// attacked as if alone.
TEST_F(FashionAttack, AnAllZeroMapDoesNotEndTheBatch) {
  const Tensor sample = load_samples({kSamples[1]}, DType::Float64);
  const Tensor x = concat({Tensor::zeros({1, 1, 28, 28}, DType::Float64), sample}, 0);
  Config c = config(Kind::MassCenter, 3);
  c.method = attr::Method::GradientTimesInput;
  const Result both = attack(x, c);
  ASSERT_EQ(both.images.size(), 2u);
  EXPECT_TRUE(std::isnan(both.images[0].center_shift));
  EXPECT_EQ(both.images[0].best_iter, -1);
  Config alone = c;
  alone.attribution.first_image = 1;
  const Result one = attack(sample, alone);
  EXPECT_TRUE(std::isfinite(both.images[1].center_shift));
  EXPECT_EQ(one.images[0].best_iter, both.images[1].best_iter);
  EXPECT_NEAR(one.images[0].center_shift, both.images[1].center_shift, 1e-12);
  EXPECT_EQ(pixels_differing(one, both, 1), 0);
}

TEST_F(FashionAttack, FailureIsReportedAndTheInputReturned) {
  // Steps of 255 pixels saturate every pixel to 0 or 1: such noise images rarely keep a label.
  const Tensor x = load_samples(kSamples, DType::Float64);
  Config c = config(Kind::RandomSign, 3);
  c.epsilon = 255;
  c.step = 255;
  const Result r = attack(x, c);
  int64_t failed = 0;
  for (size_t i = 0; i < r.images.size(); ++i) {
    const ImageResult& ir = r.images[i];
    if (ir.success) {
      EXPECT_EQ(ir.label_after, ir.label_before);
      continue;
    }
    ++failed;
    EXPECT_EQ(ir.best_iter, -1);
    EXPECT_EQ(ir.kept_iters, 0);
    EXPECT_EQ(ir.linf, 0.0);  // the unperturbed input comes back
    EXPECT_DOUBLE_EQ(ir.topk_intersection, 1.0);
  }
  EXPECT_GT(failed, 0);
}

TEST_F(FashionAttack, TargetedRegionGainsSaliencyMass) {
  const Tensor x = load_samples({kSamples[1]}, DType::Float64);
  Config c = config(Kind::Targeted, 8);
  std::vector<double> mask(28 * 28, 0.0);
  for (int r = 0; r < 10; ++r) {
    for (int col = 0; col < 10; ++col) mask[r * 28 + col] = 1.0;  // top-left corner
  }
  c.region = Tensor::from_vector(mask, {1, 28, 28}, DType::Float64);
  const Result r = attack(x, c);
  ASSERT_TRUE(r.images[0].success);
  const std::vector<double> before = r.map_before.to_vector();
  double m0 = 0;
  for (size_t i = 0; i < mask.size(); ++i) m0 += before[i] * mask[i];
  EXPECT_GT(r.images[0].dissimilarity, 1.25 * m0);
}

TEST_F(FashionAttack, ManipulationMovesTheMapTowardsTheTarget) {
  const Tensor x = load_samples({kSamples[1]}, DType::Float64);
  const Tensor xt = load_samples({kSamples[2]}, DType::Float64);
  Config c = config(Kind::Manipulate, 20);
  c.epsilon = 0;  // Dombrowski: no ball, only the box
  c.lr = 2.0;     // pixels per Adam step: few iterations here
  const std::vector<int64_t> target_label =
      predicted_labels(session_->scores(xt).detach());
  c.target_map = saliency(*session_, xt, target_label, c);
  const Result r = attack(x, c);
  const ImageResult& ir = r.images[0];
  ASSERT_TRUE(ir.success);
  EXPECT_EQ(ir.label_after, ir.label_before);
  EXPECT_LT(ir.target_mse_after, 0.7 * ir.target_mse_before);
}

// IG and SmoothGrad directions computed one chunk of points at a time (memory bounded, see
// attr::gradient_of_attribution_loss) are the directions of the whole map: Algorithm 1 and the
// manipulation take the same iterates whether the M points form one chunk or several.
TEST_F(FashionAttack, ChunkedIgAndSmoothGradDirectionsAreTheWholeMapsDirections) {
  const Tensor x = load_samples({kSamples[0], kSamples[3]}, DType::Float64);
  const Tensor xt = load_samples({kSamples[2]}, DType::Float64);
  for (const Kind kind : {Kind::TopK, Kind::MassCenter, Kind::Manipulate}) {
    for (const attr::Method method :
         {attr::Method::IntegratedGradients, attr::Method::SmoothGrad}) {
      Config c = config(kind, 3);
      c.method = method;
      c.attribution.ig_steps = 7;
      c.attribution.smoothgrad_samples = 7;
      if (kind == Kind::Manipulate) {
        c.epsilon = 0;
        c.lr = 2.0;
        c.target_map = saliency(*session_, xt, {1}, c);
      }
      c.attribution.ig_batch = 7;  // one chunk: the map differentiated directly
      const Result whole = attack(x, c);
      c.attribution.ig_batch = 3;  // chunks of 3, 3 and 1 points
      const Result chunked = attack(x, c);
      const std::string what = std::string(kind_name(kind)) + " " + attr::method_name(method);
      const std::vector<double> a = whole.perturbed.to_vector(), b = chunked.perturbed.to_vector();
      const std::vector<double> x0 = x.to_vector();
      double moved = 0, differs = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        moved = std::max(moved, std::abs(a[i] - x0[i]));
        differs = std::max(differs, std::abs(a[i] - b[i]));
      }
      EXPECT_GT(moved, 0.0) << what;
      EXPECT_LT(differs, 1e-12) << what;
      for (size_t i = 0; i < whole.images.size(); ++i) {
        EXPECT_EQ(chunked.images[i].best_iter, whole.images[i].best_iter) << what;
      }
    }
  }
}

TEST(Surrogate, ReluNetworkHasZeroInputHessianSoftplusDoesNot) {
  const fs::path path = model_dir() / "fashion_cnn.onnx";
  ASSERT_TRUE(fs::exists(path)) << path << " is missing (it ships with the repo)";
  // The ReLU twin of the shipped model: same weights, Softplus -> Relu.
  nn::Model relu_model = nn::load_onnx(path);
  int64_t swapped = 0;
  for (nn::Node& node : relu_model.graph.nodes) {
    if (node.op_type == "Softplus") {
      node.op_type = "Relu";
      node.attrs.clear();
      ++swapped;
    }
  }
  ASSERT_EQ(swapped, 3);
  const nn::Session relu(std::move(relu_model), DType::Float64);
  Surrogate surrogate(relu);
  EXPECT_EQ(surrogate.relu_count(), 3);
  EXPECT_TRUE(surrogate.is_original(0));
  EXPECT_EQ(&surrogate.at(0), &relu);
  const nn::Session& smooth = surrogate.at(1.0);
  EXPECT_NE(&smooth, &relu);
  EXPECT_EQ(&surrogate.at(1.0), &smooth);  // cached

  const Tensor x = load_samples({kSamples[0]}, DType::Float64);
  std::mt19937_64 rng(5);
  const Tensor v = Tensor::randn(x.shape(), rng, DType::Float64);
  auto hv_norm = [&](const nn::Session& s) {
    const ScalarFn f = [&](const Tensor& xi) { return sum(slice(s.scores(xi), 1, 9, 10)); };
    const HvpResult r = hvp(f, x, v);
    double n = 0;
    for (double e : r.hvp.to_vector()) n += e * e;
    return std::sqrt(n);
  };
  EXPECT_EQ(hv_norm(relu), 0.0);
  EXPECT_GT(hv_norm(smooth), 1e-3);
}

}  // namespace
}  // namespace fragile::attacks
