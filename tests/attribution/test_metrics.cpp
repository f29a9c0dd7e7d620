// Saliency-map metrics against scipy / scikit-image (metrics.json from
// tools/gen_metric_reference.py): Spearman (average ranks for ties), Kendall tau-b, Pearson,
// MSE, top-k intersection, centre of mass and its shift, SSIM. Agreement to 1e-9 (absolute, on
// values of order 1; relative for MSE).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "attribution/metrics.h"
#include "core/error.h"
#include "tests/attribution/attr_test_util.h"

namespace fragile::test {
namespace {

constexpr double kTol = 1e-9;

class MetricCase : public ::testing::TestWithParam<std::string> {
 protected:
  const json& c() {
    for (const auto& j : attribution_json("metrics.json").at("cases")) {
      if (j.at("name").get<std::string>() == GetParam()) return j;
    }
    throw std::runtime_error("no metric case " + GetParam());
  }
};

TEST_P(MetricCase, MatchesScipyAndSkimage) {
  const json& j = c();
  const auto a = j.at("a").get<std::vector<double>>();
  const auto b = j.at("b").get<std::vector<double>>();
  const int64_t h = j.at("h").get<int64_t>(), w = j.at("w").get<int64_t>();
  const int64_t k = j.at("k").get<int64_t>();

  EXPECT_NEAR(attr::spearman(a, b), j.at("spearman").get<double>(), kTol);
  EXPECT_NEAR(attr::kendall_tau_b(a, b), j.at("kendall_tau_b").get<double>(), kTol);
  EXPECT_NEAR(attr::pearson(a, b), j.at("pearson").get<double>(), kTol);
  const double mse = j.at("mse").get<double>();
  EXPECT_NEAR(attr::mse(a, b), mse, kTol * std::max(mse, 1e-300));
  EXPECT_DOUBLE_EQ(attr::topk_intersection(a, b, k), j.at("topk_intersection").get<double>());
  if (j.contains("center_shift")) {
    auto [ra, ca] = attr::center_of_mass(a, h, w);
    auto [rb, cb] = attr::center_of_mass(b, h, w);
    EXPECT_NEAR(ra, j.at("center_a")[0].get<double>(), kTol);
    EXPECT_NEAR(ca, j.at("center_a")[1].get<double>(), kTol);
    EXPECT_NEAR(rb, j.at("center_b")[0].get<double>(), kTol);
    EXPECT_NEAR(cb, j.at("center_b")[1].get<double>(), kTol);
    EXPECT_NEAR(attr::center_shift(a, b, h, w), j.at("center_shift").get<double>(), kTol);
  }
  if (j.contains("ssim")) {
    EXPECT_NEAR(attr::ssim(a, b, h, w), j.at("ssim").get<double>(), kTol);
  } else if (h >= 7 && w >= 7) {
    // SSIM is checked only when the generator had scikit-image (python3-skimage).
    EXPECT_FALSE(attribution_json("metrics.json").at("ssim_available").get<bool>());
  }
}

INSTANTIATE_TEST_SUITE_P(Reference, MetricCase,
                         ::testing::Values("saliency_like", "random", "ties", "negative",
                                           "identical", "small", "squeezenet_sized"));

TEST(Metrics, RejectsMismatchedInputs) {
  const std::vector<double> a{1, 2, 3}, b{1, 2};
  EXPECT_THROW(attr::spearman(a, b), Error);
  EXPECT_THROW(attr::kendall_tau_b(a, b), Error);
  EXPECT_THROW(attr::topk_intersection(a, a, 4), Error);
  EXPECT_THROW(attr::topk_intersection(a, a, 0), Error);
  EXPECT_THROW(attr::center_of_mass(a, 2, 2), Error);
  EXPECT_THROW(attr::center_of_mass({1, -1, 0, 0}, 2, 2), Error);
  EXPECT_THROW(attr::ssim(std::vector<double>(36, 1.0), std::vector<double>(36, 1.0), 6, 6), Error);
}

TEST(Metrics, SimpleValues) {
  // A map with all its mass at (2, 1) of a 3 x 4 grid.
  std::vector<double> m(12, 0.0);
  m[2 * 4 + 1] = 5.0;
  auto [r, c] = attr::center_of_mass(m, 3, 4);
  EXPECT_DOUBLE_EQ(r, 2.0);
  EXPECT_DOUBLE_EQ(c, 1.0);
  std::vector<double> m2(12, 0.0);
  m2[0] = 1.0;
  EXPECT_DOUBLE_EQ(attr::center_shift(m, m2, 3, 4), std::sqrt(5.0));
  // An all-zero map has no centre: NaN, not an error that would end an attack's whole batch.
  const std::vector<double> zero(12, 0.0);
  EXPECT_TRUE(std::isnan(attr::center_of_mass(zero, 3, 4).first));
  EXPECT_TRUE(std::isnan(attr::center_of_mass(zero, 3, 4).second));
  EXPECT_TRUE(std::isnan(attr::center_shift(m, zero, 3, 4)));
  // Top-k with ties: the lower index wins (tf.nn.top_k's order).
  EXPECT_DOUBLE_EQ(attr::topk_intersection({1, 1, 1, 0}, {1, 0, 1, 1}, 2), 0.5);
  EXPECT_NEAR(attr::kendall_tau_b({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0, 1e-15);
  EXPECT_NEAR(attr::spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0, 1e-15);
  std::vector<double> c7(49, 0.25);
  EXPECT_DOUBLE_EQ(attr::ssim(c7, c7, 7, 7), 1.0);
}

}  // namespace
}  // namespace fragile::test
