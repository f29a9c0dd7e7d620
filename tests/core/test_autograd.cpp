// The autograd engine itself: missing derivatives, gradient accumulation, no-grad scopes,
// higher-order derivatives and HVPs against closed forms. (Per-op checks: test_op_table.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/reference.h"

namespace fragile::test {
namespace {

constexpr DType F64 = DType::Float64;

Tensor leaf(const std::vector<double>& v, const Shape& shape) {
  Tensor t = Tensor::from_vector(v, shape, F64);
  t.set_requires_grad(true);
  return t;
}

// ---- missing derivatives ----------------------------------------------------------------------
TEST(Autograd, UnknownOpThrowsNamingIt) {
  try {
    (void)op_def("no_such_op");
    FAIL() << "op_def(\"no_such_op\") did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_op"), std::string::npos) << e.what();
  }
}

// Every table entry without a backward must throw, naming the op, as soon as it would be
// differentiated (at record time or in grad()). Never a silent zero.
TEST(Autograd, MissingDerivativeThrowsNamingTheOp) {
  int checked = 0;
  for (const OpDef& def : derivative_table()) {
    if (def.backward != nullptr) continue;
    ++checked;
    SCOPED_TRACE(def.name);
    Tensor x = leaf({1.0, 2.0, 3.0}, {3});
    try {
      Tensor y = record(def, {x}, Tensor::zeros({3}, F64));
      (void)grad({sum(y)}, {x});
      ADD_FAILURE() << "differentiating through '" << def.name << "' (no backward) did not throw";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(def.name), std::string::npos)
          << "message does not name the op: " << e.what();
    }
  }
  RecordProperty("ops_without_backward", checked);
}

TEST(Autograd, ComparisonsCarryNoHistory) {
  Tensor a = leaf({1.0, 2.0, 3.0}, {3});
  Tensor b = leaf({2.0, 2.0, 2.0}, {3});
  for (Tensor y : {eq(a, b), ne(a, b), lt(a, b), le(a, b), gt(a, b), ge(a, b)}) {
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
  }
}

// ---- accumulation -----------------------------------------------------------------------------
TEST(Autograd, AccumulatesOverSeveralUses) {
  std::vector<double> xv = {-1.2, -0.3, 0.4, 1.1, 2.0};
  Tensor x = leaf(xv, {5});
  // x feeds mul twice (both operands) and exp: d/dx sum(x*x + exp(x)) = 2x + exp(x).
  Tensor y = sum(add(mul(x, x), exp(x)));
  std::vector<double> g = grad({y}, {x})[0].to_vector();
  for (size_t i = 0; i < xv.size(); ++i)
    EXPECT_NEAR(g[i], 2 * xv[i] + std::exp(xv[i]), 1e-12) << "element " << i;

  // A non-leaf with several consumers: h = exp(x); d/dx sum(h*h + h + h[1:3]) = (2h + 1 + m) h.
  Tensor h = exp(x);
  Tensor z = add(sum(add(mul(h, h), h)), sum(slice(h, 0, 1, 3)));
  g = grad({z}, {x})[0].to_vector();
  for (size_t i = 0; i < xv.size(); ++i) {
    double e = std::exp(xv[i]);
    double m = (i >= 1 && i < 3) ? 1.0 : 0.0;
    EXPECT_NEAR(g[i], (2 * e + 1 + m) * e, 1e-12) << "element " << i;
  }

  // Several outputs at once: grad({y1, y2}) = grad(y1) + grad(y2); broadcasting accumulates.
  Tensor w = leaf({0.5, -2.0}, {2, 1});
  Tensor y1 = sum(mul(w, Tensor::ones({2, 3}, F64)));  // each w used 3 times: 3
  Tensor y2 = sum(mul(w, w));                          // 2w
  std::vector<double> gw = grad({y1, y2}, {w})[0].to_vector();
  EXPECT_NEAR(gw[0], 3 + 2 * 0.5, 1e-12);
  EXPECT_NEAR(gw[1], 3 - 2 * 2.0, 1e-12);
}

TEST(Autograd, AccumulationIsDifferentiable) {
  // d2/dx2 sum(x*x + exp(x)) = 2 + exp(x) on the diagonal: the accumulated gradient keeps its
  // graph under create_graph.
  std::vector<double> xv = {-0.7, 0.1, 1.3};
  Tensor x = leaf(xv, {3});
  Tensor y = sum(add(mul(x, x), exp(x)));
  Tensor g = grad({y}, {x}, {}, /*create_graph=*/true)[0];
  std::vector<double> h = grad({sum(g)}, {x})[0].to_vector();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_NEAR(h[i], 2 + std::exp(xv[i]), 1e-12);
}

// ---- grad mode --------------------------------------------------------------------------------
TEST(Autograd, NoGradScopeRecordsNothing) {
  Tensor x = leaf({0.5, 1.5}, {2});
  ASSERT_TRUE(grad_enabled());
  {
    NoGradGuard guard;
    EXPECT_FALSE(grad_enabled());
    Tensor y = mul(exp(x), x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    EXPECT_TRUE(y.is_leaf());
    {
      EnableGradGuard enable;
      EXPECT_TRUE(grad_enabled());
      Tensor z = exp(x);
      EXPECT_TRUE(z.requires_grad());
      EXPECT_NE(z.grad_fn(), nullptr);
    }
    EXPECT_FALSE(grad_enabled());
    // Nothing connects y to x: asking for the gradient is an error (not a silent zero) ...
    EXPECT_THROW((void)grad({sum(y)}, {x}), Error);
  }
  EXPECT_TRUE(grad_enabled());
  // ... and the same expression outside the scope records as usual.
  Tensor y = mul(exp(x), x);
  EXPECT_TRUE(y.requires_grad());
}

TEST(Autograd, GradWithoutCreateGraphIsConstant) {
  Tensor x = leaf({0.3, -0.4}, {2});
  Tensor g = grad({sum(exp(x))}, {x})[0];
  EXPECT_FALSE(g.requires_grad());
  Tensor g2 = grad({sum(exp(x))}, {x}, {}, /*create_graph=*/true)[0];
  EXPECT_TRUE(g2.requires_grad());
}

// ---- third order against closed forms ---------------------------------------------------------
struct ScalarCase {
  const char* name;
  std::function<Tensor(const Tensor&)> f;
  std::function<double(double)> d1, d2, d3;
};

double sigm(double z) { return 1.0 / (1.0 + std::exp(-z)); }

TEST(Autograd, ThirdOrderMatchesClosedForm) {
  const double beta = 10.0;
  std::vector<ScalarCase> cases = {
      {"x^3 exp(x)", [](const Tensor& x) { return mul(pow(x, 3.0), exp(x)); },
       [](double x) { return (3 * x * x + x * x * x) * std::exp(x); },
       [](double x) { return (6 * x + 6 * x * x + x * x * x) * std::exp(x); },
       [](double x) { return (6 + 18 * x + 9 * x * x + x * x * x) * std::exp(x); }},
      {"softplus beta=10", [&](const Tensor& x) { return softplus(x, beta); },
       [&](double x) { return sigm(beta * x); },
       [&](double x) { double s = sigm(beta * x); return beta * s * (1 - s); },
       [&](double x) { double s = sigm(beta * x); return beta * beta * s * (1 - s) * (1 - 2 * s); }},
      {"tanh", [](const Tensor& x) { return tanh(x); },
       [](double x) { double t = std::tanh(x); return 1 - t * t; },
       [](double x) { double t = std::tanh(x); return -2 * t * (1 - t * t); },
       [](double x) { double t = std::tanh(x); return -2 * (1 - t * t) * (1 - 3 * t * t); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); },
       [](double x) { double s = sigm(x); return s * (1 - s); },
       [](double x) { double s = sigm(x); return s * (1 - s) * (1 - 2 * s); },
       [](double x) { double s = sigm(x); return s * (1 - s) * (1 - 6 * s + 6 * s * s); }},
      {"log(x) / sqrt(x)", [](const Tensor& x) { return div(log(x), sqrt(x)); },
       [](double x) { return (2 - std::log(x)) / (2 * std::pow(x, 1.5)); },
       [](double x) { return (3 * std::log(x) - 8) / (4 * std::pow(x, 2.5)); },
       [](double x) { return (46 - 15 * std::log(x)) / (8 * std::pow(x, 3.5)); }},
  };
  for (const ScalarCase& c : cases) {
    for (double x0 : {0.05, 0.3, 1.2}) {
      SCOPED_TRACE(std::string(c.name) + " at x=" + std::to_string(x0));
      Tensor x = leaf({x0}, {});
      Tensor y = c.f(x);
      Tensor g1 = grad({y}, {x}, {}, true)[0];
      Tensor g2 = grad({g1}, {x}, {}, true)[0];
      Tensor g3 = grad({g2}, {x}, {}, true)[0];
      auto rel = [](double got, double want) {
        return std::fabs(got - want) / std::max(1.0, std::fabs(want));
      };
      EXPECT_LT(rel(g1.item(), c.d1(x0)), 1e-11) << g1.item() << " vs " << c.d1(x0);
      EXPECT_LT(rel(g2.item(), c.d2(x0)), 1e-11) << g2.item() << " vs " << c.d2(x0);
      EXPECT_LT(rel(g3.item(), c.d3(x0)), 1e-11) << g3.item() << " vs " << c.d3(x0);
    }
  }
}

// ---- hvp / vjp against closed forms -----------------------------------------------------------
TEST(Autograd, HvpOfQuadraticIsSymmetrisedMatrix) {
  // f(x) = 1/2 x^T A x (A not symmetric): grad = (A + A^T) x / 2, H = (A + A^T) / 2.
  const int n = 4;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> N01;
  std::vector<double> A(n * n), xv(n), vv(n);
  for (double& e : A) e = N01(rng);
  for (double& e : xv) e = N01(rng);
  for (double& e : vv) e = N01(rng);
  Tensor At = Tensor::from_vector(A, {n, n}, F64);
  ScalarFn f = [&](const Tensor& x) { return mul(sum(mul(x, matmul(At, x))), 0.5); };
  Tensor x = Tensor::from_vector(xv, {n, 1}, F64);
  Tensor v = Tensor::from_vector(vv, {n, 1}, F64);
  HvpResult r = hvp(f, x, v);
  std::vector<double> g = r.gradient.to_vector(), hv = r.hvp.to_vector();
  for (int i = 0; i < n; ++i) {
    double gi = 0, hi = 0;
    for (int j = 0; j < n; ++j) {
      double s = 0.5 * (A[i * n + j] + A[j * n + i]);
      gi += s * xv[j];
      hi += s * vv[j];
    }
    EXPECT_NEAR(g[i], gi, 1e-12);
    EXPECT_NEAR(hv[i], hi, 1e-12);
  }
  EXPECT_FALSE(x.requires_grad()) << "hvp must not modify its input";
}

TEST(Autograd, HvpOfLogSumExp) {
  // f(x) = log sum exp(x): H = diag(p) - p p^T with p = softmax(x); H v = p*v - p (p.v).
  std::vector<double> xv = {0.2, -1.0, 0.7, 1.5, -0.3}, vv = {1.0, -0.5, 0.25, 2.0, -1.5};
  ScalarFn f = [](const Tensor& x) { return log(sum(exp(x))); };
  HvpResult r = hvp(f, Tensor::from_vector(xv, {5}, F64), Tensor::from_vector(vv, {5}, F64));
  double z = 0, pv = 0;
  for (double e : xv) z += std::exp(e);
  std::vector<double> p(5);
  for (int i = 0; i < 5; ++i) {
    p[i] = std::exp(xv[i]) / z;
    pv += p[i] * vv[i];
  }
  std::vector<double> hv = r.hvp.to_vector(), g = r.gradient.to_vector();
  EXPECT_NEAR(r.value.item(), std::log(z), 1e-13);
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(g[i], p[i], 1e-13);
    EXPECT_NEAR(hv[i], p[i] * vv[i] - p[i] * pv, 1e-13);
  }
}

TEST(Autograd, HvpOfSoftplusSum) {
  // f(x) = sum softplus_beta(x): H = diag(beta s (1 - s)), s = sigmoid(beta x).
  const double beta = 10.0;
  std::vector<double> xv = {-0.4, -0.05, 0.0, 0.08, 0.5, 3.0}, vv = {1, 2, -1, 0.5, -2, 4};
  ScalarFn f = [&](const Tensor& x) { return sum(softplus(x, beta)); };
  HvpResult r = hvp(f, Tensor::from_vector(xv, {6}, F64), Tensor::from_vector(vv, {6}, F64));
  std::vector<double> hv = r.hvp.to_vector();
  for (size_t i = 0; i < xv.size(); ++i) {
    double s = sigm(beta * xv[i]);
    EXPECT_NEAR(hv[i], beta * s * (1 - s) * vv[i], 1e-12) << "element " << i;
  }
}

TEST(Autograd, VjpOfExp) {
  std::vector<double> xv = {-1.0, 0.0, 0.5}, vv = {2.0, -1.0, 3.0};
  VjpResult r = vjp([](const Tensor& x) { return exp(x); }, Tensor::from_vector(xv, {3}, F64),
                    Tensor::from_vector(vv, {3}, F64));
  std::vector<double> y = r.value.to_vector(), g = r.vjp.to_vector();
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(y[i], std::exp(xv[i]), 1e-15);
    EXPECT_NEAR(g[i], vv[i] * std::exp(xv[i]), 1e-14);
  }
}

// ---- the checkers check ------------------------------------------------------------------------
// gradcheck must catch a wrong derivative: d/dx of the custom `wrong` is not what it records.
TEST(Autograd, GradcheckDetectsAWrongDerivative) {
  Tensor x = leaf({0.3, -0.8, 1.1}, {3});
  // x*x computed as mul(x, detach(x)): the analytic gradient misses one term (x instead of 2x).
  auto wrong = [](const std::vector<Tensor>& in) { return mul(in[0], in[0].detach()); };
  ::testing::AssertionResult r = gradcheck(wrong, {x});
  EXPECT_FALSE(r);
  EXPECT_NE(std::string(r.message()).find("input 0 element"), std::string::npos) << r.message();
  auto right = [](const std::vector<Tensor>& in) { return mul(in[0], in[0]); };
  EXPECT_TRUE(gradcheck(right, {x}));
  EXPECT_TRUE(gradgradcheck(right, {x}));
}

TEST(Autograd, GradgradcheckDetectsAWrongSecondDerivative) {
  Tensor x = leaf({0.3, -0.8, 1.1}, {3});
  // exp(x) written as exp(d) * (1 + x - d) with d = detach(x): value and first derivative are
  // right, but the recorded gradient exp(d) * v is constant in x, so the second derivative is
  // lost. gradcheck passes, gradgradcheck must not.
  auto g = [](const std::vector<Tensor>& in) {
    Tensor d = in[0].detach();
    return mul(exp(d), add(sub(in[0], d), 1.0));
  };
  EXPECT_TRUE(gradcheck(g, {x}));
  ::testing::AssertionResult r = gradgradcheck(g, {x});
  EXPECT_FALSE(r);
  EXPECT_NE(std::string(r.message()).find("gradgradcheck"), std::string::npos) << r.message();
}

}  // namespace
}  // namespace fragile::test
