// Float64 sums of float32 products (core/accumulation.h): with the setting on, matmul and the
// three convolution ops give exactly the float32 rounding of the same op computed in float64
// (the inputs widened), which plain float32 sums do not on products whose terms cancel; the
// setting is per thread and scoped.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "core/accumulation.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "core/tensor.h"

namespace fragile::test {
namespace {

constexpr DType F32 = DType::Float32, F64 = DType::Float64;

// Pixel-like values: 100 +- 50, as a first convolution sees them (SqueezeNet's inputs are 0..255
// minus the mean colour).
Tensor pixels(const Shape& s, std::mt19937_64& rng) {
  return Tensor::uniform(s, 50.0, 150.0, rng, F32);
}
// Zero-mean weights, so that the sums of large terms cancel.
Tensor weights(const Shape& s, std::mt19937_64& rng) { return Tensor::randn(s, rng, F32); }

// The largest distance of `got` (float32) from `ref` (float32) in units of ref's float32 spacing.
double max_ulps(const Tensor& got, const Tensor& ref) {
  const std::vector<double> g = got.to_vector(), r = ref.to_vector();
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const float rf = static_cast<float>(r[i]);
    const double ulp = std::nextafter(std::fabs(rf), INFINITY) - std::fabs(rf);
    worst = std::max(worst, std::fabs(g[i] - r[i]) / ulp);
  }
  return worst;
}

// `op` on float32 inputs with float64 sums equals op on the widened inputs in float64, rounded
// to float32, bit for bit (the backend's float64 kernel does both); with float32 sums it is
// several float32 spacings away somewhere.
template <typename Op>
void expect_float64_sums_round_once(const Tensor& a, const Tensor& b, Op op, const char* what) {
  const Tensor rounded = op(a.to(F64), b.to(F64)).to(F32);
  Tensor wide_sums;
  {
    Float32SumsScope scope(Float32Sums::Float64);
    wide_sums = op(a, b);
  }
  EXPECT_EQ(wide_sums.dtype(), F32) << what;
  EXPECT_EQ(wide_sums.to_vector(), rounded.to_vector()) << what;
  const Tensor native = op(a, b);
  EXPECT_GE(max_ulps(native, rounded), 2.0) << what << ": float32 sums did not lose a digit on "
                                            << "this product, so the test shows nothing";
}

TEST(Float32Sums, ProductsAreFloat64RoundedOnce) {
  std::mt19937_64 rng(7);
  expect_float64_sums_round_once(
      pixels({2, 40, 147}, rng), weights({2, 147, 24}, rng),
      [](const Tensor& a, const Tensor& b) { return matmul(a, b); }, "matmul");
  // SqueezeNet's first convolution in small: 3 channels, 7x7, stride 2.
  Conv2dParams p;
  p.stride = {2, 2};
  p.padding = {1, 1};
  const Tensor x = pixels({2, 3, 19, 19}, rng), w = weights({8, 3, 7, 7}, rng);
  expect_float64_sums_round_once(
      x, w, [&](const Tensor& a, const Tensor& b) { return conv2d(a, b, Tensor(), p); },
      "conv2d");
  const Tensor y = conv2d(x, w, Tensor(), p);
  expect_float64_sums_round_once(
      pixels(y.shape(), rng), w,
      [&](const Tensor& g, const Tensor& b) {
        return conv2d_backward_input(g, b, x.shape(), p);
      },
      "conv2d_backward_input");
  expect_float64_sums_round_once(
      x, weights(y.shape(), rng),
      [&](const Tensor& a, const Tensor& g) {
        return conv2d_backward_weight(a, g, w.shape(), p);
      },
      "conv2d_backward_weight");
}

// Derivatives go through the same ops: under float64 sums, the input gradient of sum(y^2),
// y = conv2d(x, w), is conv2d_backward_input(2y, w) computed in float64 and rounded once.
TEST(Float32Sums, GradientsUseThem) {
  std::mt19937_64 rng(11);
  const Tensor w = weights({6, 3, 5, 5}, rng);
  Tensor x = pixels({1, 3, 12, 12}, rng);
  x.set_requires_grad(true);
  auto input_grad = [&] {
    const Tensor y = conv2d(x, w, Tensor(), Conv2dParams{});
    const Tensor g = grad({sum(mul(y, y))}, {x})[0];
    const Tensor expected =
        conv2d_backward_input(mul(y.detach(), 2.0).to(F64), w.to(F64), x.shape(), Conv2dParams{})
            .to(F32);
    return std::make_pair(g, expected);
  };
  {
    Float32SumsScope scope(Float32Sums::Float64);
    const auto [g, expected] = input_grad();
    EXPECT_EQ(g.to_vector(), expected.to_vector());
  }
  const auto [g, expected] = input_grad();  // float32 sums: not float64's rounding
  EXPECT_GE(max_ulps(g, expected), 2.0);
}

TEST(Float32Sums, PerThreadAndScoped) {
  EXPECT_EQ(float32_sums(), Float32Sums::Float32);
  {
    Float32SumsScope outer(Float32Sums::Float64);
    EXPECT_EQ(float32_sums(), Float32Sums::Float64);
    Float32Sums seen_elsewhere = Float32Sums::Float64;
    std::thread([&] { seen_elsewhere = float32_sums(); }).join();
    EXPECT_EQ(seen_elsewhere, Float32Sums::Float32);
    {
      Float32SumsScope inner(Float32Sums::Float32);
      EXPECT_EQ(float32_sums(), Float32Sums::Float32);
    }
    EXPECT_EQ(float32_sums(), Float32Sums::Float64);
  }
  EXPECT_EQ(float32_sums(), Float32Sums::Float32);
  EXPECT_STREQ(float32_sums_name(Float32Sums::Float64), "float64");
}

}  // namespace
}  // namespace fragile::test
