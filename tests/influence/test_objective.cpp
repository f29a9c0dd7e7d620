// Parameter-space derivatives of a training objective (influence/objective.h) checked without
// any external reference: HVPs against central differences of gradients, the exact Hessian
// against stacked HVPs, per-example gradients against the full gradient; the three inverse-HVP
// methods against each other; and influence against leave-one-out retraining on a synthetic
// logistic regression.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <random>

#include "core/ops.h"
#include "influence/fashion.h"
#include "influence/influence.h"
#include "influence/stats.h"

namespace fragile::influence {
namespace {

// A softplus MLP classifier on seeded random data: theta = (W1 [5,3], b1 [5], W2 [4,5], b2 [4]).
struct MlpProblem {
  Tensor x;                 // [n, 3]
  std::vector<int64_t> y;   // [n] in 0..3
  Objective obj;
  Vec theta;

  explicit MlpProblem(int64_t n = 12, double l2 = 0.1) {
    std::mt19937_64 rng(42);
    x = Tensor::randn({n, 3}, rng, DType::Float64);
    for (int64_t i = 0; i < n; ++i) y.push_back(static_cast<int64_t>(rng() % 4));
    std::vector<Tensor> params = {Tensor::randn({5, 3}, rng, DType::Float64),
                                  Tensor::randn({5}, rng, DType::Float64),
                                  Tensor::randn({4, 5}, rng, DType::Float64),
                                  Tensor::randn({4}, rng, DType::Float64)};
    obj.layout = ParamLayout::of(params);
    theta = 0.5 * obj.layout.flatten(params);
    obj.num_examples = n;
    obj.l2 = l2;
    const Tensor xs = x;
    const std::vector<int64_t> ys = y;
    obj.loss = [xs, ys](const std::vector<Tensor>& p, const std::vector<int64_t>& ex) {
      std::vector<Tensor> rows;
      std::vector<int64_t> labels;
      for (int64_t i : ex) {
        rows.push_back(slice(xs, 0, i, i + 1));
        labels.push_back(ys[static_cast<size_t>(i)]);
      }
      const Tensor h = softplus(linear(concat(rows, 0), p[0], p[1]));
      const Tensor logp = log_softmax(linear(h, p[2], p[3]), 1);
      const int64_t b = static_cast<int64_t>(ex.size());
      const Tensor mask = one_hot(Tensor::from_int64(labels, {b}), 4, DType::Float64);
      return neg(sum(mul(logp, mask), {1}));
    };
  }
};

double rel(const Vec& got, const Vec& ref) { return (got - ref).norm() / ref.norm(); }

TEST(Objective, HvpMatchesFiniteDifferencesOfGradients) {
  MlpProblem p;
  const auto all = p.obj.all();
  std::mt19937_64 rng(1);
  for (int trial = 0; trial < 3; ++trial) {
    Vec v(p.obj.layout.size());
    std::normal_distribution<double> normal;
    for (int64_t i = 0; i < v.size(); ++i) v[i] = normal(rng);
    const double h = 1e-5;
    const Vec fd = (p.obj.gradient(p.theta + h * v, all) - p.obj.gradient(p.theta - h * v, all)) /
                   (2 * h);
    const Vec hv = p.obj.hvp(p.theta, v, all);
    EXPECT_LT(rel(hv, fd), 1e-7) << "trial " << trial;
  }
}

TEST(Objective, ExactHessianIsSymmetricAndEqualsStackedHvps) {
  MlpProblem p;
  const auto all = p.obj.all();
  const Mat h = p.obj.hessian(p.theta, all);
  const int64_t n = p.obj.layout.size();
  ASSERT_EQ(h.rows(), n);
  const double scale = h.cwiseAbs().maxCoeff();
  EXPECT_LT((h - h.transpose()).cwiseAbs().maxCoeff(), 1e-12 * scale);
  Mat stacked(n, n);
  for (int64_t k = 0; k < n; ++k) stacked.col(k) = p.obj.hvp(p.theta, Vec::Unit(n, k), all);
  EXPECT_LT((h - stacked).cwiseAbs().maxCoeff(), 1e-12 * scale);
  // The L2 term is in: H(l2) - H(0) = l2 I.
  Objective no_l2 = p.obj;
  no_l2.l2 = 0.0;
  EXPECT_LT((h - no_l2.hessian(p.theta, all) - p.obj.l2 * Mat::Identity(n, n)).cwiseAbs().maxCoeff(),
            1e-12 * scale);
}

TEST(Objective, PerExampleGradientsAverageToTheGradient) {
  MlpProblem p;
  const auto all = p.obj.all();
  const Mat g = per_example_gradients(p.obj.loss, p.obj.layout, p.theta, all.examples);
  ASSERT_EQ(g.rows(), p.obj.num_examples);
  const Vec mean = g.colwise().mean().transpose() + p.obj.l2 * p.theta;
  EXPECT_LT(rel(mean, p.obj.gradient(p.theta, all)), 1e-13);
  // Leaving example 3 out drops exactly its term (weight stays 1/n).
  const Vec lo = p.obj.gradient(p.theta, p.obj.leave_out(3));
  EXPECT_LT(rel(lo, p.obj.gradient(p.theta, all) -
                        g.row(3).transpose() / static_cast<double>(p.obj.num_examples)),
            1e-13);
}

// Logistic regression on Gaussian features: a convex objective with a positive definite Hessian.
struct LogisticProblem {
  LogisticLastLayer layer;
  Objective obj;
  Vec theta;
  Tensor test_f;
  std::vector<double> test_y;

  explicit LogisticProblem(int64_t n = 200, int64_t d = 5) {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> normal;
    std::vector<double> f, ft;
    Vec w_true(d);
    for (int64_t j = 0; j < d; ++j) w_true[j] = normal(rng);
    auto draw = [&](std::vector<double>& feats, std::vector<double>& ys) {
      double z = 0.3;
      for (int64_t j = 0; j < d; ++j) {
        const double v = normal(rng);
        feats.push_back(v);
        z += w_true[j] * v;
      }
      const double prob = 1.0 / (1.0 + std::exp(-z));
      ys.push_back(std::uniform_real_distribution<double>(0, 1)(rng) < prob ? 1.0 : -1.0);
    };
    for (int64_t i = 0; i < n; ++i) draw(f, layer.y);
    draw(ft, test_y);
    layer.features = Tensor::from_vector(f, {n, d}, DType::Float64);
    layer.l2 = 0.01;
    test_f = Tensor::from_vector(ft, {1, d}, DType::Float64);
    obj = layer.objective();
    const NewtonResult r = newton_minimize(obj, obj.all(), Vec::Zero(d + 1));
    EXPECT_LT(r.grad_norm, 1e-12);
    EXPECT_LT(r.iterations, 30);
    theta = r.theta;
  }
  double test_loss(const Vec& th) const {
    return logistic_losses(test_f, test_y, obj.layout.unflatten(th, false)).item();
  }
  Vec test_gradient() const {
    const ExampleLossFn l = [&](const std::vector<Tensor>& p, const std::vector<int64_t>&) {
      return logistic_losses(test_f, test_y, p);
    };
    return per_example_gradients(l, obj.layout, theta, {0}).row(0).transpose();
  }
};

TEST(Influence, InverseHvpMethodsAgree) {
  LogisticProblem p;
  const Vec g = p.test_gradient();
  IhvpOptions exact;
  exact.method = IhvpMethod::Exact;
  const IhvpResult e = inverse_hvp(p.obj, p.theta, g, exact);
  EXPECT_LT(e.relative_residual, 1e-12);

  IhvpOptions cg;
  cg.method = IhvpMethod::Cg;
  cg.cg.tol = 1e-12;
  const IhvpResult c = inverse_hvp(p.obj, p.theta, g, cg);
  EXPECT_LT(rel(c.x, e.x), 1e-9);
  EXPECT_LE(c.operator_calls, 3 * p.obj.layout.size());

  // LiSSA with scale from the largest eigenvalue (power iteration on HVPs).
  const auto all = p.obj.all();
  const EigenPair top =
      power_iteration([&](const Vec& v) { return p.obj.hvp(p.theta, v, all); },
                      p.obj.layout.size(), 500, 1e-8);
  IhvpOptions li;
  li.method = IhvpMethod::Lissa;
  li.lissa.scale = top.value;
  li.lissa.depth = 3000;
  const IhvpResult l = inverse_hvp(p.obj, p.theta, g, li);
  EXPECT_LT(rel(l.x, e.x), 1e-6);

  // Stochastic LiSSA (minibatches of 20), averaged over samples: close, not exact.
  li.lissa_batch = 20;
  li.lissa.depth = 1500;
  li.lissa.samples = 8;
  li.lissa.scale = 2 * top.value;
  EXPECT_LT(rel(inverse_hvp(p.obj, p.theta, g, li).x, e.x), 0.1);
}

TEST(Influence, PredictsLeaveOneOutRetraining) {
  LogisticProblem p;
  const Mat g = per_example_gradients(p.obj.loss, p.obj.layout, p.theta, p.obj.all().examples);
  IhvpOptions exact;
  exact.method = IhvpMethod::Exact;
  const Vec s = inverse_hvp(p.obj, p.theta, p.test_gradient(), exact).x;
  const Vec infl = influence_from_s_test(g, s);
  const double n = static_cast<double>(p.obj.num_examples);
  const std::vector<int64_t> top = top_k(infl.cwiseAbs(), 20);
  std::vector<double> pred, actual;
  const double l0 = p.test_loss(p.theta);
  for (int64_t i : top) {
    const NewtonResult r = newton_minimize(p.obj, p.obj.leave_out(i), p.theta);
    pred.push_back(-infl[i] / n);
    actual.push_back(p.test_loss(r.theta) - l0);
  }
  const double r = pearson(pred, actual);
  std::cout << "synthetic logistic regression: LOO Pearson " << r << " over the top 20\n";
  EXPECT_GT(r, 0.99);
}

}  // namespace
}  // namespace fragile::influence
