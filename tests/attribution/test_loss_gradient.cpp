// attr::gradient_of_attribution_loss, the gradient every attack follows. For IG and SmoothGrad
// with several chunks of points it recomputes each chunk's share of the map with history
// instead of keeping every chunk's graph: the result must be the direct derivative (same
// numbers, float64), and the memory it holds must not grow with the number of points.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "attribution/attribution.h"
#include "core/allocator.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "tests/attribution/attr_test_util.h"

namespace fragile::test {
namespace {

// A nonlinear loss on the saliency map, per image: sum (S - T)^2 (T a fixed random map).
attr::AttributionLoss squared_distance_to(const Tensor& target) {
  return [target](const Tensor& a) {
    const Tensor d = sub(attr::saliency_map(a), target);
    return sum(mul(d, d), {1, 2});
  };
}

struct Inputs {
  Tensor x, target;
  std::vector<int64_t> classes{3, 1};
};

Inputs inputs() {
  std::mt19937_64 rng(7);
  Inputs in;
  // The valid box of the tiny models is about [-1.28, 1.55]; stay inside it.
  in.x = Tensor::uniform({2, 2, 8, 8}, -1.0, 1.0, rng, DType::Float64);
  in.target = Tensor::uniform({2, 8, 8}, 0.0, 2.0 / 64, rng, DType::Float64);
  return in;
}

// d sum(loss(attribute(x, create_graph))) / dx, the way attacks took it before.
Tensor direct_gradient(const nn::Session& s, const Inputs& in, attr::Method method,
                       const attr::Options& o) {
  EnableGradGuard grad_on;
  Tensor x = in.x.detach();
  x.set_requires_grad(true);
  const Tensor a = attr::attribute(s, x, in.classes, method, o, true);
  return grad({sum(squared_distance_to(in.target)(a))}, {x})[0];
}

struct Case {
  attr::Method method;
  attr::Options::DefaultReference reference;
};

class LossGradient : public ::testing::TestWithParam<Case> {};

TEST_P(LossGradient, ChunkedEqualsTheDirectDerivative) {
  const nn::Session s = reference_session("tiny_softplus.onnx", DType::Float64);
  const Inputs in = inputs();
  attr::Options o;
  o.ig_steps = 8;
  o.smoothgrad_samples = 8;
  o.default_reference = GetParam().reference;  // image-mean: the reference moves with x too
  o.ig_batch = 3;                              // chunks of 3, 3 and 2 points
  const Tensor want = direct_gradient(s, in, GetParam().method, o);
  const attr::AttributionLossGradient got = attr::gradient_of_attribution_loss(
      s, in.x, in.classes, GetParam().method, o, squared_distance_to(in.target));
  ASSERT_EQ(got.grad.shape(), in.x.shape());
  EXPECT_FALSE(got.grad.requires_grad());
  EXPECT_GT(max_error_rel_to_max(want, Tensor::zeros(want.shape(), DType::Float64)), 0.0);
  EXPECT_LT(max_error_rel_to_max(got.grad, want), 1e-12);
  const Tensor map = attr::attribute(s, in.x, in.classes, GetParam().method, o, false);
  EXPECT_LT(max_error_rel_to_max(got.attribution, map), 1e-14);

  // One chunk covering every point takes the direct path: the same gradient again.
  o.ig_batch = 8;
  const attr::AttributionLossGradient one = attr::gradient_of_attribution_loss(
      s, in.x, in.classes, GetParam().method, o, squared_distance_to(in.target));
  EXPECT_LT(max_error_rel_to_max(one.grad, want), 1e-12);
}

INSTANTIATE_TEST_SUITE_P(
    Methods, LossGradient,
    ::testing::Values(
        Case{attr::Method::IntegratedGradients, attr::Options::DefaultReference::Zero},
        Case{attr::Method::IntegratedGradients,
             attr::Options::DefaultReference::ImageChannelMean},
        Case{attr::Method::SmoothGrad, attr::Options::DefaultReference::Zero},
        Case{attr::Method::Gradient, attr::Options::DefaultReference::Zero},
        Case{attr::Method::DeepLift, attr::Options::DefaultReference::Zero}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(attr::method_name(info.param.method)) +
             (info.param.reference == attr::Options::DefaultReference::Zero ? "_zero_ref"
                                                                            : "_image_mean_ref");
    });

// Counts the host bytes alive and their peak (wraps the CPU allocator while installed).
class PeakCountingAllocator : public Allocator {
 public:
  PeakCountingAllocator() : inner_(cpu_allocator()) {
    previous_ = set_allocator(Device::CPU, this);
  }
  ~PeakCountingAllocator() override { set_allocator(Device::CPU, previous_); }
  void* allocate(std::size_t nbytes) override {
    live_ += nbytes;
    peak_ = std::max(peak_, live_);
    return inner_.allocate(nbytes);
  }
  void deallocate(void* ptr, std::size_t nbytes) override {
    live_ -= nbytes;
    inner_.deallocate(ptr, nbytes);
  }
  // Peak bytes above what was alive when the count was reset.
  std::size_t peak_since_reset() const { return peak_ - base_; }
  void reset() { peak_ = base_ = live_; }

 private:
  Allocator& inner_;
  Allocator* previous_ = nullptr;
  std::size_t live_ = 0, peak_ = 0, base_ = 0;
};

// The memory held while differentiating through IG with M points, chunked by 2 or in one piece.
std::size_t peak_bytes(const nn::Session& s, const Inputs& in, int64_t m, int64_t chunk) {
  attr::Options o;
  o.ig_steps = m;
  o.ig_batch = chunk;
  PeakCountingAllocator counter;
  counter.reset();
  const attr::AttributionLossGradient g = attr::gradient_of_attribution_loss(
      s, in.x, in.classes, attr::Method::IntegratedGradients, o, squared_distance_to(in.target));
  EXPECT_TRUE(g.grad.defined());
  return counter.peak_since_reset();
}

TEST(LossGradientMemory, ChunkedPeakDoesNotGrowWithThePoints) {
  const nn::Session s = reference_session("tiny_softplus.onnx", DType::Float64);
  const Inputs in = inputs();
  const std::size_t chunked_8 = peak_bytes(s, in, 8, 2), chunked_32 = peak_bytes(s, in, 32, 2);
  const std::size_t direct_8 = peak_bytes(s, in, 8, 8), direct_32 = peak_bytes(s, in, 32, 32);
  // Keeping every point's graph grows with M; one chunk's graph at a time does not.
  EXPECT_GT(direct_32, 3 * direct_8);
  EXPECT_LT(chunked_32, chunked_8 + chunked_8 / 4);
  EXPECT_LT(chunked_32, direct_32 / 4);
}

}  // namespace
}  // namespace fragile::test
