// Derivatives of a training objective with respect to a chosen parameter set theta, all by the
// engine's autograd: per-example loss gradients, Hessian-vector products by double backward
// (reverse over reverse) for any parameter set, and the exact Hessian for small ones.
//
// Vocabulary: P = number of parameters in the set (all its tensors flattened and concatenated in
// order), n = number of training examples, B = examples in one call. Parameter values and
// directions travel as flat Eigen vectors of length P (float64); the tensors are rebuilt from
// them as fresh leaves each call, so nothing here mutates a model.
//
// The training objective (Koh & Liang's setup, the L2 term inside the Hessian):
//   J(theta) = weight * sum_{j in S} L(z_j, theta) + (l2 / 2) |theta|^2
// with S = all n examples and weight = 1/n by default. Leaving example i out is S = all but i with
// the same weight 1/n: the point epsilon = -1/n of the up-weighting path the influence function
// linearises, so leave-one-out retraining and the influence prediction describe the same change.
#pragma once
#include <Eigen/Dense>

#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace fragile::influence {

using Vec = Eigen::VectorXd;
using Mat = Eigen::MatrixXd;

// Per-example losses: given the parameter tensors (leaves that may require grad) and example
// indices, returns a [B] tensor L(z_j, theta) computed with ops.h, so differentiable twice.
using ExampleLossFn =
    std::function<Tensor(const std::vector<Tensor>& params, const std::vector<int64_t>& examples)>;

// The shapes and dtype of a parameter set; converts between flat vectors and tensors.
struct ParamLayout {
  std::vector<Shape> shapes;
  DType dtype = DType::Float64;

  static ParamLayout of(const std::vector<Tensor>& params);
  int64_t size() const;  // P
  Vec flatten(const std::vector<Tensor>& params) const;
  // Fresh leaves holding `theta`'s values (requires_grad as asked).
  std::vector<Tensor> unflatten(const Vec& theta, bool requires_grad) const;
};

struct Objective {
  ExampleLossFn loss;
  ParamLayout layout;
  int64_t num_examples = 0;  // n
  double l2 = 0.0;           // lambda of (lambda / 2) |theta|^2

  // Example subset with its weight: all examples with 1/n by default.
  struct Terms {
    std::vector<int64_t> examples;
    double weight = 0.0;
  };
  Terms all() const;
  Terms leave_out(int64_t i) const;  // all but i, weight still 1/n

  double value(const Vec& theta, const Terms& t) const;
  Vec gradient(const Vec& theta, const Terms& t) const;
  // H v by double backward: g(theta) = dJ/dtheta recorded with its graph, then d<g, v>/dtheta.
  Vec hvp(const Vec& theta, const Vec& v, const Terms& t) const;
  // The exact P x P Hessian: row k is the gradient of the k-th gradient component (P backward
  // passes through one recorded gradient graph). For small P (a last layer).
  Mat hessian(const Vec& theta, const Terms& t) const;
};

// Row j is dL(z_{examples[j]}, theta)/dtheta (no L2 term): B backward passes of one example each.
Mat per_example_gradients(const ExampleLossFn& loss, const ParamLayout& layout, const Vec& theta,
                          const std::vector<int64_t>& examples);

// Options of Newton's method on an Objective (convex, e.g. logistic regression with L2).
struct NewtonOptions {
  int max_iter = 50;
  double grad_tol = 1e-12;  // stop when |grad J|_inf <= grad_tol
};
struct NewtonResult {
  Vec theta;
  int iterations = 0;
  double grad_norm = 0.0;  // |grad J|_inf at theta
  double value = 0.0;
};
// Damped Newton (exact Hessian by `Objective::hessian`, Cholesky solve, backtracking line search
// on J) from `theta0`. Throws when the Hessian is not positive definite.
NewtonResult newton_minimize(const Objective& obj, const Objective::Terms& t, const Vec& theta0,
                             const NewtonOptions& opts = {});

}  // namespace fragile::influence
