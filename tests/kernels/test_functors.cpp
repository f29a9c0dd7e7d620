// The element math shared by the CPU backend and the CUDA kernels (kernels/functors), tested
// directly on the host in float and double: against closed forms evaluated in long double, and
// derivatives against central differences of the functors they differentiate. The CUDA kernels
// compile these same functions for the device, so what passes here is the math the GPU runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/functors/attack.h"
#include "kernels/functors/binary.h"
#include "kernels/functors/softmax.h"
#include "kernels/functors/unary.h"

namespace fragile::fn {
namespace {

using LD = long double;
// The unsigned integer of T's width, to compare results bit for bit (and -0 from +0).
template <class T>
using Bits = std::conditional_t<sizeof(T) == sizeof(float), uint32_t, uint64_t>;

// Relative error with a floor, so values near zero are compared absolutely.
template <class T>
double rel_err(T got, LD want) {
  return static_cast<double>(std::fabs(static_cast<LD>(got) - want) /
                             std::max<LD>(1.0L, std::fabs(want)));
}

// Central difference of f at x in double (step scaled to x).
double central_diff(const std::function<double(double)>& f, double x) {
  const double h = 1e-6 * std::max(1.0, std::fabs(x));
  return (f(x + h) - f(x - h)) / (2 * h);
}

template <class T>
class Functors : public ::testing::Test {
 protected:
  // Tolerance of one evaluation in T (a few ulps of the result).
  static double tol() { return sizeof(T) == sizeof(float) ? 2e-6 : 1e-14; }
};
using FloatTypes = ::testing::Types<float, double>;
TYPED_TEST_SUITE(Functors, FloatTypes);

TYPED_TEST(Functors, ExpNonpositiveFlushesOnlyBelowTheNormalRange) {
  using T = TypeParam;
  const T floor = sizeof(T) == sizeof(float) ? T(-87) : T(-708);
  for (T y : {T(0), T(-1), T(-20.5), floor + T(0.5)})
    EXPECT_LT(rel_err(exp_nonpositive(y), std::exp(static_cast<LD>(y))), this->tol()) << y;
  EXPECT_EQ(exp_nonpositive(floor - T(0.5)), T(0));
  EXPECT_EQ(exp_nonpositive(-std::numeric_limits<T>::infinity()), T(0));
}

// The host float path is a polynomial (exp_range_f32, so loops vectorise): its error over the
// whole range it serves, on a dense sweep, and the special values the selects handle.
TEST(FunctorExp, HostFloatExpIsWithinOneUlpOverItsRange) {
  double worst = 0, worst_at = 0;
  for (double t = -87.0; t <= 88.0; t += 3.7e-5) {
    const float y = static_cast<float>(t);
    const LD want = std::exp(static_cast<LD>(y));
    const double err = static_cast<double>(std::fabs(exp_nonpositive(y) - want) / want);
    if (err > worst) worst = err, worst_at = y;
  }
  EXPECT_LT(worst, 1.2e-7) << "at y = " << worst_at;  // 1 ulp of float, 2^-23 (seen: 8.2e-8)
  EXPECT_EQ(exp_nonpositive(0.0f), 1.0f);
  EXPECT_EQ(exp_nonpositive(-87.5f), 0.0f);
  EXPECT_EQ(exp_nonpositive(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_TRUE(std::isnan(exp_nonpositive(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(exp_nonpositive(100.0f), std::numeric_limits<float>::infinity());
  EXPECT_EQ(exp_nonpositive(std::numeric_limits<float>::infinity()),
            std::numeric_limits<float>::infinity());
}

// Softplus' tail term log(1 + e), e in [0, 1]: the host float polynomial on a sweep of every
// binade down to the denormals (tiny e must keep their relative precision: log1p(e) ~ e).
TEST(FunctorExp, HostFloatLog1pIsWithinTwoUlpOnTheUnitInterval) {
  double worst = 0, worst_at = 0;
  for (int binade = -140; binade <= 0; ++binade) {
    for (int i = 0; i < 2000; ++i) {
      const float e = static_cast<float>(std::ldexp(1.0 + i / 2000.0, binade));
      if (e > 1.0f) continue;
      const LD want = std::log1p(static_cast<LD>(e));
      const double err = static_cast<double>(std::fabs(log1p_unit(e) - want) / want);
      if (err > worst) worst = err, worst_at = e;
    }
  }
  EXPECT_LT(worst, 2.4e-7) << "at e = " << worst_at;  // 2 ulp of float (seen: 1.7e-7)
  EXPECT_EQ(log1p_unit(0.0f), 0.0f);
}

TYPED_TEST(Functors, SigmoidMatchesClosedFormWithoutOverflow) {
  using T = TypeParam;
  for (T x : {T(-30), T(-5), T(-0.25), T(0), T(0.25), T(5), T(30)}) {
    const LD want = 1.0L / (1.0L + std::exp(-static_cast<LD>(x)));
    EXPECT_LT(rel_err(Sigmoid{}(x), want), this->tol()) << x;
  }
  // Far tails: exactly 1 on the right, tiny but finite and non-negative on the left.
  EXPECT_EQ(Sigmoid{}(T(1000)), T(1));
  const T left = Sigmoid{}(T(-1000));
  EXPECT_TRUE(std::isfinite(left) && left >= T(0));
  // sigmoid(-x) keeps full relative precision where 1 - sigmoid(x) would cancel to 0.
  const T x = sizeof(T) == sizeof(float) ? T(20) : T(40);
  const LD want = std::exp(-static_cast<LD>(x)) / (1.0L + std::exp(-static_cast<LD>(x)));
  EXPECT_LT(std::fabs(static_cast<LD>(Sigmoid{}(-x)) - want) / want, 1e-5L);
}

TYPED_TEST(Functors, SoftplusIsStableAndHasNoLinearThreshold) {
  using T = TypeParam;
  for (double beta : {0.5, 1.0, 10.0}) {
    for (T x : {T(-3), T(-0.5), T(0), T(0.7), T(2.5), T(6)}) {
      const LD bx = static_cast<LD>(beta) * static_cast<LD>(x);
      const LD want = std::log1p(std::exp(bx)) / static_cast<LD>(beta);
      EXPECT_LT(rel_err(Softplus{beta}(x), want), 4 * this->tol()) << "beta " << beta << " x " << x;
    }
    EXPECT_EQ(Softplus{beta}(T(1e4)), T(1e4));
    EXPECT_EQ(Softplus{beta}(T(-1e4)), T(0));
  }
  // beta x = 25, past PyTorch's threshold of 20: the second derivative is small but not 0.
  T grad_g = 0, grad_x = 0;
  SoftplusDoubleBackward{10.0}(T(1), T(1), T(2.5), grad_g, grad_x);
  const LD want = 10.0L * std::exp(-25.0L) / std::pow(1.0L + std::exp(-25.0L), 2);
  EXPECT_LT(std::fabs(static_cast<LD>(grad_x) - want) / want, 1e-5L);
}

// The fused kernels share one exponential between softplus and its slope, and between
// s(beta x) and s(-beta x): bit for bit the separate functors, on a sweep through both
// saturated tails, zero and underflowing products (x = -1e-45 with beta 0.5).
TYPED_TEST(Functors, SharedExponentialFunctorsEqualTheSeparateOnesBitForBit) {
  using T = TypeParam;
  std::vector<T> xs = {T(0), -T(0), T(-1e-45), T(1e-45), T(-1e4), T(1e4), T(-88), T(88)};
  for (int i = -4000; i <= 4000; ++i) xs.push_back(T(i) * T(0.0123));
  for (double beta : {0.5, 1.0, 3.0, 10.0}) {
    const T b = T(beta);
    for (T x : xs) {
      T value = 0, slope = 0;
      SoftplusWithSlope{beta}(x, value, slope);
      EXPECT_EQ(std::bit_cast<Bits<T>>(value), std::bit_cast<Bits<T>>(Softplus{beta}(x)))
          << "beta " << beta << " x " << x;
      EXPECT_EQ(std::bit_cast<Bits<T>>(slope), std::bit_cast<Bits<T>>(Sigmoid{}(b * x)))
          << "beta " << beta << " x " << x;
      const T u = T(-1.3), g = T(0.7);
      T grad_g = 0, grad_x = 0;
      SoftplusDoubleBackward{beta}(u, g, x, grad_g, grad_x);
      const T s = Sigmoid{}(b * x);
      EXPECT_EQ(std::bit_cast<Bits<T>>(grad_g), std::bit_cast<Bits<T>>(T(u * s)));
      EXPECT_EQ(std::bit_cast<Bits<T>>(grad_x),
                std::bit_cast<Bits<T>>(T(u * g * b * s * Sigmoid{}(-(b * x)))))
          << "beta " << beta << " x " << x;
    }
  }
}

TEST(FunctorDerivatives, SoftplusChainAgreesWithCentralDifferences) {
  for (double beta : {1.0, 10.0}) {
    for (double x : {-2.0, -0.3, 0.0, 0.4, 1.5}) {
      // softplus' = SoftplusBackward with grad 1.
      const double d1 = central_diff([&](double t) { return Softplus{beta}(t); }, x);
      EXPECT_NEAR(SoftplusBackward{beta}(1.0, x), d1, 1e-8) << beta << " " << x;
      // d/dx of g * s(beta x), and d/dg of it, from the fused double backward.
      const double g = 0.7, u = -1.3;
      double grad_g = 0, grad_x = 0;
      SoftplusDoubleBackward{beta}(u, g, x, grad_g, grad_x);
      const double dx = central_diff([&](double t) { return u * SoftplusBackward{beta}(g, t); }, x);
      const double dg = central_diff([&](double t) { return u * SoftplusBackward{beta}(t, x); }, g);
      EXPECT_NEAR(grad_x, dx, 1e-7) << beta << " " << x;
      EXPECT_NEAR(grad_g, dg, 1e-8) << beta << " " << x;
    }
  }
}

TYPED_TEST(Functors, ReluBackwardSelectsTheGradient) {
  using T = TypeParam;
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  EXPECT_EQ(ReluBackward{}(T(-1.5), T(0.25)), T(-1.5));  // x > 0: the gradient passes
  EXPECT_EQ(ReluBackward{}(T(-1.5), T(-0.25)), T(0));   // x < 0: blocked
  EXPECT_EQ(ReluBackward{}(T(2), T(0)), T(0));           // relu'(0) = 0
  // A select, not grad * mask: where x <= 0 no gradient gets through, not even NaN or
  // infinity (grad * 0 would be NaN), as PyTorch's threshold_backward.
  EXPECT_EQ(ReluBackward{}(nan, T(-1)), T(0));
  EXPECT_EQ(ReluBackward{}(inf, T(0)), T(0));
  EXPECT_TRUE(std::isnan(ReluBackward{}(nan, T(1))));
  EXPECT_EQ(ReluBackward{}(T(3), nan), T(0));  // NaN > 0 is false
}

TYPED_TEST(Functors, AttackStepProjectsOntoBallThenBox) {
  using T = TypeParam;
  const AttackStep step{/*alpha=*/0.5, /*eps=*/1.0, /*lo=*/-2.0, /*hi=*/2.0};
  EXPECT_EQ(step(T(0.25), T(3), T(0)), T(0.75));    // inside the ball: a plain sign step
  EXPECT_EQ(step(T(0.75), T(3), T(0)), T(1));       // 1.25 leaves the ball: back to x0 + eps
  EXPECT_EQ(step(T(-0.75), T(-1e-9), T(0)), T(-1)); // sign only, the size of d is irrelevant
  EXPECT_EQ(step(T(0.25), T(0), T(0)), T(0.25));    // sign(0) = 0: no gradient, no move
  EXPECT_EQ(step(T(1.75), T(1), T(1.5)), T(2));     // ball allows 2.25, the box caps at hi
  EXPECT_EQ(step(T(-1.75), T(-1), T(-1.5)), T(-2)); // and at lo
}

TEST(FunctorDerivatives, SaliencyMomentsGradAgreesWithCentralDifferences) {
  // A [C=2, P=3 pixels]; two weight maps; the function differentiated is
  //   L(A) = sum_k g_k m_k(A) + g_T T(A),  a_p = sum_c |A_cp|,  T = sum_p a_p,
  //   m_k = sum_p a_p w_kp / T.
  const int C = 2, P = 3, K = 2;
  std::vector<double> A = {0.4, -1.1, 0.3, -0.2, 0.9, 1.6};
  const std::vector<double> w = {0, 1, 2, /* k = 1 */ 1, 0, 1};
  const double g[K] = {0.8, -0.5}, g_total = 0.3;
  auto moments = [&](const std::vector<double>& a, std::vector<double>& m, double& total) {
    std::vector<double> s(P, 0.0);
    for (int c = 0; c < C; ++c)
      for (int p = 0; p < P; ++p) s[p] += std::fabs(a[c * P + p]);
    total = 0;
    for (double v : s) total += v;
    m.assign(K, 0.0);
    for (int k = 0; k < K; ++k)
      for (int p = 0; p < P; ++p) m[k] += s[p] * w[k * P + p] / total;
  };
  auto loss = [&](const std::vector<double>& a) {
    std::vector<double> m;
    double total;
    moments(a, m, total);
    return g[0] * m[0] + g[1] * m[1] + g_total * total;
  };
  std::vector<double> m;
  double total;
  moments(A, m, total);
  for (int i = 0; i < C * P; ++i) {
    const int p = i % P;
    const double analytic =
        SaliencyMomentsGrad{}(A[i], w.data() + p, /*w_stride=*/P, m.data(), g, K, total, g_total);
    const double numeric = central_diff(
        [&](double t) {
          std::vector<double> a = A;
          a[i] = t;
          return loss(a);
        },
        A[i]);
    EXPECT_NEAR(analytic, numeric, 1e-8) << "element " << i;
  }
  // An all-zero map has no moments: only the total's gradient passes (times sign(0) = 0).
  EXPECT_EQ(SaliencyMomentsGrad{}(0.0, w.data(), P, m.data(), g, K, 0.0, g_total), 0.0);
}

// Softmax of one row through the functors, the way both backends apply them.
template <class T>
std::vector<T> softmax_row(const std::vector<T>& x, bool log) {
  T m = -std::numeric_limits<T>::infinity();
  for (T v : x) m = std::max(m, v);
  T s = 0;
  for (T v : x) s += softmax_exp_term(v, m);
  std::vector<T> y;
  for (T v : x) y.push_back(log ? LogSoftmaxOut{}(v, m, std::log(s)) : SoftmaxOut{}(v, m, s));
  return y;
}

TYPED_TEST(Functors, SoftmaxRowMatchesClosedFormAndSurvivesHugeLogits) {
  using T = TypeParam;
  const std::vector<T> x = {T(1.5), T(-0.5), T(3), T(0)};
  LD z = 0;
  for (T v : x) z += std::exp(static_cast<LD>(v));
  const std::vector<T> p = softmax_row(x, false), lp = softmax_row(x, true);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_LT(rel_err(p[i], std::exp(static_cast<LD>(x[i])) / z), this->tol()) << i;
    EXPECT_LT(rel_err(lp[i], static_cast<LD>(x[i]) - std::log(z)), this->tol()) << i;
  }
  // exp(1000) overflows every float type: the max shift must make this exact.
  const std::vector<T> huge = {T(1000), T(0), T(-1000)};
  const std::vector<T> ph = softmax_row(huge, false), lh = softmax_row(huge, true);
  EXPECT_EQ(ph[0], T(1));
  EXPECT_EQ(ph[1], T(0));  // e^-1000 underflows to 0 in both types
  EXPECT_EQ(lh[0], T(0));
  EXPECT_EQ(lh[1], T(-1000));
  EXPECT_EQ(lh[2], T(-2000));
}

TEST(FunctorDerivatives, SoftmaxGradsAreVectorJacobianProducts) {
  const std::vector<double> x = {0.3, -1.2, 2.0, 0.5}, g = {0.7, -0.4, 1.1, 0.2};
  for (bool log : {false, true}) {
    const std::vector<double> y = softmax_row(x, log);
    double s = 0;
    for (size_t j = 0; j < x.size(); ++j) s += log ? g[j] : g[j] * y[j];
    for (size_t i = 0; i < x.size(); ++i) {
      const double analytic = log ? LogSoftmaxGrad{}(g[i], y[i], s) : SoftmaxGrad{}(g[i], y[i], s);
      // d/dx_i of <g, softmax(x)>.
      const double numeric = central_diff(
          [&](double t) {
            std::vector<double> xt = x;
            xt[i] = t;
            const std::vector<double> yt = softmax_row(xt, log);
            double dot = 0;
            for (size_t j = 0; j < x.size(); ++j) dot += g[j] * yt[j];
            return dot;
          },
          x[i]);
      EXPECT_NEAR(analytic, numeric, 1e-8) << (log ? "log_softmax " : "softmax ") << i;
    }
  }
}

}  // namespace
}  // namespace fragile::fn
