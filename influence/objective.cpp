#include "influence/objective.h"

#include <cmath>
#include <numeric>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace fragile::influence {

ParamLayout ParamLayout::of(const std::vector<Tensor>& params) {
  FRAGILE_CHECK(!params.empty(), "influence: empty parameter set");
  ParamLayout l;
  l.dtype = params[0].dtype();
  for (const Tensor& p : params) {
    FRAGILE_CHECK(p.dtype() == l.dtype, "influence: parameters of mixed dtypes");
    l.shapes.push_back(p.shape());
  }
  return l;
}

int64_t ParamLayout::size() const {
  int64_t n = 0;
  for (const Shape& s : shapes) n += numel_of(s);
  return n;
}

Vec ParamLayout::flatten(const std::vector<Tensor>& params) const {
  FRAGILE_CHECK(params.size() == shapes.size(), "influence: expected ", shapes.size(),
                " parameter tensors, got ", params.size());
  Vec out(size());
  int64_t at = 0;
  for (size_t k = 0; k < params.size(); ++k) {
    FRAGILE_CHECK(params[k].shape() == shapes[k], "influence: parameter ", k, " has shape ",
                  shape_str(params[k].shape()), ", expected ", shape_str(shapes[k]));
    for (double v : params[k].to_vector()) out[at++] = v;
  }
  return out;
}

std::vector<Tensor> ParamLayout::unflatten(const Vec& theta, bool requires_grad) const {
  FRAGILE_CHECK(theta.size() == size(), "influence: parameter vector has ", theta.size(),
                " entries, the parameter set ", size());
  std::vector<Tensor> out;
  int64_t at = 0;
  for (const Shape& s : shapes) {
    const int64_t n = numel_of(s);
    std::vector<double> vals(theta.data() + at, theta.data() + at + n);
    at += n;
    Tensor t = Tensor::from_vector(vals, s, dtype);
    if (requires_grad) t.set_requires_grad(true);
    out.push_back(t);
  }
  return out;
}

namespace {

Vec flat_of(const std::vector<Tensor>& ts, int64_t size) {
  Vec out(size);
  int64_t at = 0;
  for (const Tensor& t : ts) {
    for (double v : t.to_vector()) out[at++] = v;
  }
  FRAGILE_CHECK(at == size, "influence: internal size mismatch");
  return out;
}

// J as a recorded scalar tensor of `params`.
Tensor objective_tensor(const Objective& obj, const std::vector<Tensor>& params,
                        const Objective::Terms& t) {
  FRAGILE_CHECK(obj.loss, "influence: objective without a loss function");
  Tensor j;
  if (!t.examples.empty()) {
    Tensor losses = obj.loss(params, t.examples);
    FRAGILE_CHECK(losses.numel() == static_cast<int64_t>(t.examples.size()),
                  "influence: the loss function returned ", losses.numel(), " values for ",
                  t.examples.size(), " examples");
    j = mul(sum(losses), t.weight);
  }
  if (obj.l2 != 0.0) {
    for (const Tensor& p : params) {
      Tensor r = mul(sum(mul(p, p)), 0.5 * obj.l2);
      j = j.defined() ? add(j, r) : r;
    }
  }
  if (!j.defined()) j = Tensor::scalar(0.0, obj.layout.dtype);
  return j;
}

}  // namespace

Objective::Terms Objective::all() const {
  FRAGILE_CHECK(num_examples > 0, "influence: objective with no examples");
  Terms t;
  t.examples.resize(num_examples);
  std::iota(t.examples.begin(), t.examples.end(), int64_t{0});
  t.weight = 1.0 / static_cast<double>(num_examples);
  return t;
}

Objective::Terms Objective::leave_out(int64_t i) const {
  FRAGILE_CHECK(i >= 0 && i < num_examples, "influence: example ", i, " out of range [0, ",
                num_examples, ")");
  Terms t = all();
  t.examples.erase(t.examples.begin() + i);
  return t;
}

double Objective::value(const Vec& theta, const Terms& t) const {
  NoGradGuard no_grad;
  return objective_tensor(*this, layout.unflatten(theta, false), t).item();
}

Vec Objective::gradient(const Vec& theta, const Terms& t) const {
  EnableGradGuard enable;
  std::vector<Tensor> params = layout.unflatten(theta, true);
  Tensor j = objective_tensor(*this, params, t);
  if (!j.requires_grad()) return Vec::Zero(layout.size());
  return flat_of(grad({j}, params, {}, false, /*allow_unused=*/true), layout.size());
}

Vec Objective::hvp(const Vec& theta, const Vec& v, const Terms& t) const {
  FRAGILE_CHECK(v.size() == layout.size(), "influence: hvp direction has ", v.size(),
                " entries, the parameter set ", layout.size());
  EnableGradGuard enable;
  std::vector<Tensor> params = layout.unflatten(theta, true);
  Tensor j = objective_tensor(*this, params, t);
  if (!j.requires_grad()) return Vec::Zero(layout.size());
  std::vector<Tensor> g = grad({j}, params, {}, /*create_graph=*/true, /*allow_unused=*/true);
  std::vector<Tensor> vs = layout.unflatten(v, false);
  // Gradient components that do not depend on theta (J linear in them) contribute nothing.
  std::vector<Tensor> outs, gouts;
  for (size_t k = 0; k < g.size(); ++k) {
    if (g[k].requires_grad()) {
      outs.push_back(g[k]);
      gouts.push_back(vs[k]);
    }
  }
  if (outs.empty()) return Vec::Zero(layout.size());
  return flat_of(grad(outs, params, gouts, false, /*allow_unused=*/true), layout.size());
}

Mat Objective::hessian(const Vec& theta, const Terms& t) const {
  const int64_t p = layout.size();
  EnableGradGuard enable;
  std::vector<Tensor> params = layout.unflatten(theta, true);
  Tensor j = objective_tensor(*this, params, t);
  Mat h = Mat::Zero(p, p);
  if (!j.requires_grad()) return h;
  std::vector<Tensor> g = grad({j}, params, {}, /*create_graph=*/true, /*allow_unused=*/true);
  std::vector<Tensor> flat;
  for (const Tensor& gk : g) flat.push_back(reshape(gk, {-1}));
  Tensor gflat = concat(flat, 0);
  if (!gflat.requires_grad()) return h;
  for (int64_t k = 0; k < p; ++k) {
    Vec e = Vec::Zero(p);
    e[k] = 1.0;
    Tensor ek = Tensor::from_vector(std::vector<double>(e.data(), e.data() + p), {p},
                                    layout.dtype);
    h.row(k) = flat_of(grad({gflat}, params, {ek}, false, /*allow_unused=*/true), p).transpose();
  }
  return h;
}

Mat per_example_gradients(const ExampleLossFn& loss, const ParamLayout& layout, const Vec& theta,
                          const std::vector<int64_t>& examples) {
  const int64_t p = layout.size();
  Mat out(static_cast<int64_t>(examples.size()), p);
  EnableGradGuard enable;
  for (size_t r = 0; r < examples.size(); ++r) {
    std::vector<Tensor> params = layout.unflatten(theta, true);
    Tensor l = sum(loss(params, {examples[r]}));
    const Vec g = l.requires_grad()
                      ? flat_of(grad({l}, params, {}, false, /*allow_unused=*/true), p)
                      : Vec::Zero(p);
    out.row(static_cast<int64_t>(r)) = g.transpose();
  }
  return out;
}

NewtonResult newton_minimize(const Objective& obj, const Objective::Terms& t, const Vec& theta0,
                             const NewtonOptions& opts) {
  NewtonResult r;
  r.theta = theta0;
  Vec g = obj.gradient(r.theta, t);
  double f = obj.value(r.theta, t);
  for (r.iterations = 0; r.iterations < opts.max_iter; ++r.iterations) {
    if (g.lpNorm<Eigen::Infinity>() <= opts.grad_tol) break;
    Eigen::LLT<Mat> llt(obj.hessian(r.theta, t));
    FRAGILE_CHECK(llt.info() == Eigen::Success,
                  "newton: the Hessian is not positive definite (add L2 damping)");
    const Vec step = -llt.solve(g);
    const double decrease = g.dot(step);  // -(Newton decrement)^2 < 0
    double s = 1.0;
    // Backtracking (Armijo) while far from the optimum; inside the quadratic region the full
    // step is right and J's change is below float64 resolution, so it is taken as is.
    if (-decrease > 1e-12 * (1.0 + std::abs(f))) {
      while (s > 1e-10 && obj.value(r.theta + s * step, t) > f + 1e-4 * s * decrease) s *= 0.5;
    }
    r.theta += s * step;
    f = obj.value(r.theta, t);
    g = obj.gradient(r.theta, t);
  }
  r.grad_norm = g.lpNorm<Eigen::Infinity>();
  r.value = f;
  return r;
}

}  // namespace fragile::influence
