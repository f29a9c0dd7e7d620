// Every attribution method against its reference formula on small models with known weights
// (tiny_methods.json from tools/gen_attribution_reference.py, PyTorch float64):
//
//   tiny_relu:     Conv(pads 1) Relu MaxPool | Conv 1x1 Relu, Conv 3x3 Relu | Concat
//                  Conv(asymmetric pads) Relu AveragePool Dropout Identity Flatten Gemm Relu
//                  MatMul Add(bias) Relu Add(residual) Gemm -> logits (Softmax -> prob)
//   tiny_softplus: the same graph with Softplus
//   tiny_gap:      Conv Relu Conv(1x1, pads 1) Relu GlobalAveragePool Flatten: no max pooling,
//                  so DeepLIFT sums exactly to S(x) - S(ref); IG completeness for large M
//
// A batch of 3 images, each explained for its own class. Float64 must agree to 1e-9 of each
// tensor's scale; float32 to 2e-4.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "attribution/attribution.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/image_streams.h"
#include "core/ops.h"
#include "nn/onnx_io.h"
#include "tests/attribution/attr_test_util.h"

namespace fragile::test {
namespace {

struct Case {
  std::string model, method;
};
std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.model + "_" + info.param.method;
}

attr::Method method_of(const std::string& ref_name) {
  if (ref_name == "ig_with_reference") return attr::Method::IntegratedGradients;
  if (ref_name == "lrp_alpha2beta1") return attr::Method::LrpAlphaBeta;
  if (ref_name == "deeplift_image_mean") return attr::Method::DeepLift;
  return attr::method_from_name(ref_name);
}

class TinyMethod : public ::testing::TestWithParam<Case> {
 protected:
  void check(DType dtype, double tol) {
    const json& doc = attribution_json("tiny_methods.json");
    const json& m = doc.at("models").at(GetParam().model).at("methods").at(GetParam().method);
    Tensor x = tensor_from_json(doc.at("x"), dtype);
    Tensor ref = tensor_from_json(doc.at("ig_reference"), dtype);
    const auto classes = doc.at("classes").get<std::vector<int64_t>>();
    nn::Session s = reference_session(GetParam().model + ".onnx", dtype);
    attr::Options o = options_from_json(m.at("options"), ref);
    Tensor a = attr::attribute(s, x, classes, method_of(GetParam().method), o);
    EXPECT_FALSE(a.requires_grad());
    EXPECT_EQ(a.dtype(), dtype);
    EXPECT_TRUE(all_close(a, tensor_from_json(m.at("attribution")), tol, "attribution"));
    EXPECT_TRUE(all_close(attr::saliency_map(a), tensor_from_json(m.at("saliency")), tol,
                          "saliency"));
  }
};

TEST_P(TinyMethod, Float64MatchesReference) { check(DType::Float64, 1e-9); }
// DeepLIFT's secant (f(x) - f(r)) / (x - r) loses float32 digits where a pre-activation sits
// close to its reference value (up to sqrt(eps) relative before it switches to f'(x)); with
// the zero reference small pre-activations do.
TEST_P(TinyMethod, Float32MatchesReference) {
  check(DType::Float32, GetParam().method.rfind("deeplift", 0) == 0 ? 1e-3 : 2e-4);
}

std::vector<Case> tiny_cases() {
  std::vector<Case> out;
  for (const char* model : {"tiny_relu", "tiny_softplus"}) {
    for (const char* method : {"gradient", "grad_x_input", "ig", "ig_with_reference", "deeplift",
                               "deeplift_image_mean", "guided_backprop", "lrp_epsilon", "lrp_alphabeta",
                               "lrp_alpha2beta1", "beta_smoothed"}) {
      out.push_back({model, method});
    }
  }
  return out;
}
INSTANTIATE_TEST_SUITE_P(Reference, TinyMethod, ::testing::ValuesIn(tiny_cases()), case_name);

// ---- properties that need no reference --------------------------------------------------------

Tensor tiny_input(uint64_t seed, const Shape& shape, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  return mul(Tensor::uniform(shape, -1.0, 1.0, rng, DType::Float64), scale);
}

double score_sum(const nn::Session& s, const Tensor& x, const std::vector<int64_t>& classes) {
  NoGradGuard ng;
  Tensor z = s.scores(x);
  double t = 0;
  for (size_t n = 0; n < classes.size(); ++n) {
    t += z.to_vector()[n * z.size(1) + classes[n]];
  }
  return t;
}

// DeepLIFT's summation-to-delta: without max pooling, sum of attributions = S(x) - S(ref).
TEST(MethodProperties, DeepLiftSumsToDelta) {
  nn::Session s = reference_session("tiny_gap.onnx", DType::Float64);
  Tensor x = tiny_input(3, {2, 3, 6, 6}, 2.0);
  const std::vector<int64_t> classes{4, 1};
  using Ref = attr::Options::DefaultReference;
  struct RefCase {
    const char* name;
    Tensor ref;          // what the reference should be
    bool explicit_ref;   // given in Options::reference, or left to the default
    Ref default_ref;
  };
  const std::vector<RefCase> cases{
      {"default (zero)", Tensor::zeros({1, 3, 6, 6}, DType::Float64), false, Ref::Zero},
      {"image channel mean", contiguous(expand(mean(x, {2, 3}, true), x.shape())), false,
       Ref::ImageChannelMean},
      {"explicit", tiny_input(9, {1, 3, 6, 6}, 0.5), true, Ref::Zero},
  };
  for (const RefCase& c : cases) {
    attr::Options o;
    o.default_reference = c.default_ref;
    if (c.explicit_ref) o.reference = c.ref;
    Tensor a = attr::attribute(s, x, classes, attr::Method::DeepLift, o);
    for (int64_t n = 0; n < 2; ++n) {
      Tensor an = slice(a, 0, n, n + 1);
      Tensor rn = c.ref.size(0) == 1 ? c.ref : slice(c.ref, 0, n, n + 1);
      const double delta = score_sum(s, slice(x, 0, n, n + 1), {classes[n]}) -
                           score_sum(s, rn, {classes[n]});
      // Guards against a vacuous pass: the references really give different totals.
      EXPECT_GT(std::abs(delta), 1e-3) << c.name;
      EXPECT_NEAR(sum(an).item(), delta, 1e-10 * (1 + std::abs(delta)))
          << "image " << n << " (" << c.name << ")";
    }
  }
}

// IG completeness: sum IG -> S(x) - S(ref) as M grows (the Riemann sum's error is O(1/M)).
TEST(MethodProperties, IntegratedGradientsCompleteness) {
  nn::Session s = reference_session("tiny_gap.onnx", DType::Float64);
  Tensor x = tiny_input(5, {1, 3, 6, 6}, 2.0);
  attr::Options o;
  o.ig_steps = 400;
  o.ig_batch = 100;
  Tensor a = attr::attribute(s, x, {2}, attr::Method::IntegratedGradients, o);
  const double delta = score_sum(s, x, {2}) - score_sum(s, mul(x, 0.0), {2});
  EXPECT_NEAR(sum(a).item(), delta, 5e-3 * std::abs(delta));
}

// IG and SmoothGrad chunking (ig_batch) changes nothing but the batch size.
TEST(MethodProperties, ChunkingDoesNotChangeTheResult) {
  nn::Session s = reference_session("tiny_softplus.onnx", DType::Float64);
  Tensor x = tiny_input(11, {2, 2, 8, 8});
  for (attr::Method m : {attr::Method::IntegratedGradients, attr::Method::SmoothGrad}) {
    attr::Options o1, o2;
    o1.ig_steps = o2.ig_steps = 7;
    o1.smoothgrad_samples = o2.smoothgrad_samples = 7;
    o1.ig_batch = 1;
    o2.ig_batch = 3;
    Tensor a1 = attr::attribute(s, x, {0, 4}, m, o1);
    Tensor a2 = attr::attribute(s, x, {0, 4}, m, o2);
    EXPECT_TRUE(all_close(a2, a1, 1e-12, attr::method_name(m)));
  }
}

// SmoothGrad = mean of gradients at x + N(0, sigma^2), sigma = smoothgrad_sigma * (max - min)
// per image, the noise drawn sample by sample from mt19937_64(seed) (documented order).
TEST(MethodProperties, SmoothGradIsTheMeanOfNoisyGradients) {
  nn::Session s = reference_session("tiny_softplus.onnx", DType::Float64);
  Tensor x = tiny_input(13, {2, 2, 8, 8});
  const std::vector<int64_t> classes{3, 2};
  attr::Options o;
  o.smoothgrad_samples = 5;
  o.smoothgrad_sigma = 0.2;
  o.seed = 42;
  Tensor got = attr::attribute(s, x, classes, attr::Method::SmoothGrad, o);

  std::vector<double> xv = x.to_vector();
  const int64_t per = x.numel() / 2;
  std::vector<double> sigma(2);
  for (int n = 0; n < 2; ++n) {
    auto [lo, hi] = std::minmax_element(xv.begin() + n * per, xv.begin() + (n + 1) * per);
    sigma[n] = 0.2 * (*hi - *lo);
  }
  ImageStreams streams(42, /*first_image=*/0, 2);  // one noise stream per image
  Tensor expect = Tensor::zeros(x.shape(), DType::Float64);
  for (int i = 0; i < 5; ++i) {
    std::vector<double> noise = streams.randn(x.shape(), DType::Float64).to_vector();
    std::vector<double> xi(xv.size());
    for (size_t k = 0; k < xv.size(); ++k) xi[k] = xv[k] + sigma[k / per] * noise[k];
    Tensor g = attr::attribute(s, Tensor::from_vector(xi, x.shape(), DType::Float64), classes,
                               attr::Method::Gradient);
    expect = add(expect, g);
  }
  EXPECT_TRUE(all_close(got, div(expect, 5.0), 1e-12, "smoothgrad"));

  o.smoothgrad_sigma = 0.0;  // no noise: the plain gradient
  EXPECT_TRUE(all_close(attr::attribute(s, x, classes, attr::Method::SmoothGrad, o),
                        attr::attribute(s, x, classes, attr::Method::Gradient), 1e-12,
                        "smoothgrad sigma 0"));
}

// A batch gives each image the attribution it gets alone.
TEST(MethodProperties, BatchedEqualsOneByOne) {
  nn::Session s = reference_session("tiny_relu.onnx", DType::Float64);
  Tensor x = tiny_input(17, {3, 2, 8, 8});
  const std::vector<int64_t> classes{2, 0, 2};
  attr::Options o;
  o.ig_steps = 4;
  o.smoothgrad_samples = 3;
  for (const std::string& name : attr::method_names()) {
    const attr::Method m = attr::method_from_name(name);
    Tensor all = attr::attribute(s, x, classes, m, o);
    for (int64_t n = 0; n < 3; ++n) {
      // SmoothGrad's noise: image n of the run draws from its own stream, found again by
      // telling the call where its batch starts.
      attr::Options alone = o;
      alone.first_image = n;
      Tensor one = attr::attribute(s, slice(x, 0, n, n + 1), {classes[n]}, m, alone);
      EXPECT_TRUE(all_close(slice(all, 0, n, n + 1), one, 1e-12, name)) << "image " << n;
    }
  }
  // The check above can fail: without first_image, image 2 alone gets image 0's noise.
  o.seed = 5;
  Tensor all = attr::attribute(s, x, classes, attr::Method::SmoothGrad, o);
  Tensor wrong = attr::attribute(s, slice(x, 0, 2, 3), {classes[2]}, attr::Method::SmoothGrad, o);
  EXPECT_FALSE(all_close(slice(all, 0, 2, 3), wrong, 1e-6, "smoothgrad, unrelated noise"));
}

TEST(MethodProperties, SaliencyMapIsNormalised) {
  nn::Session s = reference_session("tiny_relu.onnx", DType::Float64);
  Tensor x = tiny_input(19, {2, 2, 8, 8});
  Tensor m = attr::saliency_map(attr::attribute(s, x, {1, 1}, attr::Method::Gradient));
  ASSERT_EQ(m.shape(), (Shape{2, 8, 8}));
  for (double v : m.to_vector()) EXPECT_GE(v, 0.0);
  Tensor totals = sum(m, {1, 2});
  for (double t : totals.to_vector()) EXPECT_NEAR(t, 1.0, 1e-12);
  EXPECT_THROW(attr::saliency_map(Tensor::zeros({2, 8, 8}, DType::Float64)), Error);
  // An all-zero attribution stays zero (no 0/0).
  for (double v : attr::saliency_map(Tensor::zeros({1, 2, 3, 3}, DType::Float64)).to_vector()) {
    EXPECT_EQ(v, 0.0);
  }
}

// ---- names and errors ------------------------------------------------------------------------

TEST(MethodNames, RoundTripAndUnknown) {
  const auto names = attr::method_names();
  EXPECT_EQ(names.size(), 9u);
  for (const auto& n : names) EXPECT_EQ(attr::method_name(attr::method_from_name(n)), n);
  try {
    attr::method_from_name("saliency");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'saliency'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("deeplift"), std::string::npos) << msg;
    EXPECT_NE(msg.find("lrp_alphabeta"), std::string::npos) << msg;
  }
}

TEST(MethodErrors, UnsupportedLayerNamesNodeAndMethod) {
  nn::Model model = nn::load_onnx(attribution_reference("tiny_relu.onnx"));
  for (auto& n : model.graph.nodes) {
    if (n.name == "r4") n.op_type = "Sigmoid";  // the runtime runs it; modified backwards do not
  }
  nn::Session s(std::move(model), DType::Float64);
  Tensor x = tiny_input(23, {1, 2, 8, 8});
  // Gradient methods work for any op the runtime has.
  EXPECT_NO_THROW(attr::attribute(s, x, {0}, attr::Method::Gradient));
  for (attr::Method m : {attr::Method::DeepLift, attr::Method::GuidedBackprop,
                         attr::Method::LrpEpsilon, attr::Method::LrpAlphaBeta}) {
    try {
      attr::attribute(s, x, {0}, m);
      ADD_FAILURE() << attr::method_name(m) << ": expected an error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(attr::method_name(m)), std::string::npos) << msg;
      EXPECT_NE(msg.find("'r4'"), std::string::npos) << msg;
      EXPECT_NE(msg.find("Sigmoid"), std::string::npos) << msg;
    }
  }
}

TEST(MethodErrors, BadArguments) {
  nn::Session s = reference_session("tiny_relu.onnx", DType::Float64);
  Tensor x = tiny_input(29, {2, 2, 8, 8});
  EXPECT_THROW(attr::attribute(s, x, {0}, attr::Method::Gradient), Error);      // 1 class, 2 images
  EXPECT_THROW(attr::attribute(s, x, {0, 5}, attr::Method::Gradient), Error);   // class 5 of 5
  EXPECT_THROW(attr::attribute(s, x, {0, 5}, attr::Method::DeepLift), Error);
  attr::Options o;
  o.reference = Tensor::zeros({1, 2, 4, 4}, DType::Float64);
  EXPECT_THROW(attr::attribute(s, x, {0, 1}, attr::Method::IntegratedGradients, o), Error);
  o = {};
  o.ig_steps = 0;
  EXPECT_THROW(attr::attribute(s, x, {0, 1}, attr::Method::IntegratedGradients, o), Error);
}

TEST(MethodErrors, LrpNeedsTheInputBox) {
  nn::Model model = nn::load_onnx(attribution_reference("tiny_gap.onnx"));
  std::vector<std::pair<std::string, std::string>> kept;
  for (const auto& kv : model.metadata) {
    if (kv.first.rfind("preprocess.", 0) != 0) kept.push_back(kv);
  }
  model.metadata = kept;
  nn::Session s(std::move(model), DType::Float64);
  Tensor x = tiny_input(31, {1, 3, 6, 6});
  try {
    attr::attribute(s, x, {0}, attr::Method::LrpEpsilon);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lrp_low"), std::string::npos) << e.what();
  }
  attr::Options o;
  o.lrp_low = {-1.0};
  o.lrp_high = {1.0};
  EXPECT_NO_THROW(attr::attribute(s, x, {0}, attr::Method::LrpEpsilon, o));
}

}  // namespace
}  // namespace fragile::test
