// create_graph = true: every method stays differentiable, and its derivative is the derivative
// of the method's definition. Checked by finite differences (float64, central, tests/support
// gradcheck): d<saliency_map(attribute(x)), v>/dx for random v, on the tiny models. This is the
// Hessian-vector-product path every explanation attack takes.
//
// The softplus model has non-zero second derivatives everywhere; on the ReLU model they come
// from the methods themselves (DeepLIFT's secant multipliers, LRP's z ratios, x in grad x input,
// beta-smoothing), which is what must not be lost or double counted.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "attribution/attribution.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "tests/attribution/attr_test_util.h"
#include "tests/support/gradcheck.h"

namespace fragile::test {
namespace {

struct Case {
  std::string model;
  attr::Method method;
};
std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.model + "_" + attr::method_name(info.param.method);
}

class SecondOrder : public ::testing::TestWithParam<Case> {};

TEST_P(SecondOrder, SaliencyGradientMatchesFiniteDifferences) {
  nn::Session s = reference_session(GetParam().model + ".onnx", DType::Float64);
  const attr::Method method = GetParam().method;
  attr::Options o;
  o.ig_steps = 3;
  o.ig_batch = 2;
  o.smoothgrad_samples = 2;
  o.lrp_epsilon = 0.01;
  o.smoothing_beta = 3.0;
  std::mt19937_64 rng(101);
  // The valid box of the tiny models is about [-1.28, 1.55]; stay inside it.
  Tensor x = Tensor::uniform({1, 2, 8, 8}, -1.0, 1.0, rng, DType::Float64);
  x.set_requires_grad(true);
  const std::vector<int64_t> classes{3};

  Tensor a = attr::attribute(s, x, classes, method, o, /*create_graph=*/true);
  // On a ReLU network the plain gradient, SmoothGrad and guided backprop are piecewise constant
  // in x: their maps carry no history and do not move under a small perturbation (which is why
  // attacks take their direction from a softplus surrogate).
  const std::string name = attr::method_name(method);
  if (GetParam().model == "tiny_relu" &&
      (name == "gradient" || name == "smoothgrad" || name == "guided_backprop")) {
    EXPECT_FALSE(a.requires_grad());
    std::mt19937_64 r2(5);
    const Tensor dx = Tensor::uniform(x.shape(), -1e-7, 1e-7, r2, DType::Float64);
    const Tensor moved = attr::attribute(s, add(x.detach(), dx), classes, method, o, false);
    EXPECT_LT(max_error_rel_to_max(moved, a.detach()), 1e-12);
    return;
  }
  // Every other method keeps its history and is differentiable to x.
  ASSERT_TRUE(a.requires_grad());
  Tensor g = grad({sum(attr::saliency_map(a))}, {x}, {}, false, /*allow_unused=*/true)[0];
  EXPECT_EQ(g.shape(), x.shape());

  auto fn = [&](const std::vector<Tensor>& in) {
    return attr::saliency_map(attr::attribute(s, in[0], classes, method, o, true));
  };
  EXPECT_TRUE(gradcheck(fn, {x}, 1e-6, 1e-7, 1e-4));
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const char* model : {"tiny_softplus", "tiny_relu"}) {
    for (const auto& name : attr::method_names()) {
      out.push_back({model, attr::method_from_name(name)});
    }
  }
  return out;
}
INSTANTIATE_TEST_SUITE_P(Methods, SecondOrder, ::testing::ValuesIn(cases()), case_name);

// Without create_graph the result carries no history, even when x requires grad.
TEST(SecondOrderMisc, NoGraphWithoutCreateGraph) {
  nn::Session s = reference_session("tiny_softplus.onnx", DType::Float64);
  std::mt19937_64 rng(7);
  Tensor x = Tensor::uniform({1, 2, 8, 8}, -1.0, 1.0, rng, DType::Float64);
  x.set_requires_grad(true);
  attr::Options o;
  o.ig_steps = 2;
  o.smoothgrad_samples = 2;
  for (const auto& name : attr::method_names()) {
    Tensor a = attr::attribute(s, x, {0}, attr::method_from_name(name), o, false);
    EXPECT_FALSE(a.requires_grad()) << name;
  }
}

}  // namespace
}  // namespace fragile::test
