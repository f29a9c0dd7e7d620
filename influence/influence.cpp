#include "influence/influence.h"

#include <algorithm>
#include <numeric>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace fragile::influence {

IhvpMethod parse_ihvp_method(const std::string& name) {
  if (name == "exact") return IhvpMethod::Exact;
  if (name == "cg") return IhvpMethod::Cg;
  if (name == "lissa") return IhvpMethod::Lissa;
  FRAGILE_FAIL("unknown inverse-HVP method '", name, "' (expected exact, cg or lissa)");
}

const char* ihvp_method_name(IhvpMethod m) {
  switch (m) {
    case IhvpMethod::Exact:
      return "exact";
    case IhvpMethod::Cg:
      return "cg";
    case IhvpMethod::Lissa:
      return "lissa";
  }
  return "?";
}

IhvpResult inverse_hvp(const Objective& obj, const Vec& theta, const Vec& v,
                       const IhvpOptions& opts) {
  const Objective::Terms all = obj.all();
  int calls = 0;
  const LinearOperator h = [&](const Vec& u) {
    ++calls;
    return obj.hvp(theta, u, all);
  };
  IhvpResult r;
  switch (opts.method) {
    case IhvpMethod::Exact: {
      Eigen::LLT<Mat> llt(obj.hessian(theta, all));
      FRAGILE_CHECK(llt.info() == Eigen::Success,
                    "inverse_hvp: the Hessian is not positive definite (increase --l2)");
      r.x = llt.solve(v);
      calls = static_cast<int>(obj.layout.size());
      break;
    }
    case IhvpMethod::Cg:
      r.x = conjugate_gradient(h, v, opts.cg).x;
      break;
    case IhvpMethod::Lissa: {
      FRAGILE_CHECK(opts.lissa_batch >= 0, "inverse_hvp: lissa_batch must be >= 0 (0: the full "
                    "objective), got ", opts.lissa_batch);
      if (opts.lissa_batch == 0) {
        r.x = lissa(h, v, opts.lissa).x;
      } else {
        const int64_t n = obj.num_examples;
        const StochasticOperator hs = [&](const Vec& u, std::mt19937_64& rng) {
          std::uniform_int_distribution<int64_t> pick(0, n - 1);
          Objective::Terms batch;
          batch.weight = 1.0 / static_cast<double>(opts.lissa_batch);
          for (int64_t k = 0; k < opts.lissa_batch; ++k) batch.examples.push_back(pick(rng));
          ++calls;
          return obj.hvp(theta, u, batch);
        };
        r.x = lissa(hs, v, opts.lissa).x;
      }
      break;
    }
  }
  r.operator_calls = calls;
  const double vn = v.norm();
  r.relative_residual = vn > 0 ? (obj.hvp(theta, r.x, all) - v).norm() / vn : 0.0;
  return r;
}

Vec influence_from_s_test(const Mat& train_grads, const Vec& s_test) {
  FRAGILE_CHECK(train_grads.cols() == s_test.size(), "influence: gradients have ",
                train_grads.cols(), " parameters, s_test ", s_test.size());
  return -(train_grads * s_test);
}

Tensor influence_input_gradient(const InputLossFn& loss, const Tensor& x, const ParamLayout& layout,
                                const Vec& theta, const Vec& u) {
  EnableGradGuard enable;
  Tensor leaf = x.detach();
  leaf.set_requires_grad(true);
  const std::vector<Tensor> params = layout.unflatten(theta, true);
  const std::vector<Tensor> us = layout.unflatten(u, false);
  const Tensor l = sum(loss(leaf, params));
  // grad_theta L(x), recorded so that it can be differentiated w.r.t. x.
  const std::vector<Tensor> g = grad({l}, params, {}, /*create_graph=*/true, /*allow_unused=*/true);
  Tensor dot;
  for (size_t k = 0; k < g.size(); ++k) {
    if (!g[k].requires_grad()) continue;  // this block of grad_theta L does not depend on x
    Tensor term = sum(mul(g[k], us[k]));
    dot = dot.defined() ? add(dot, term) : term;
  }
  if (!dot.defined()) return Tensor::zeros(x.shape(), x.dtype(), x.device());
  return grad({neg(dot)}, {leaf}, {}, false, /*allow_unused=*/true)[0];
}

std::vector<int64_t> top_k(const Vec& v, int64_t k) {
  FRAGILE_CHECK(k >= 0, "top_k: k must be >= 0, got ", k);
  std::vector<int64_t> idx(static_cast<size_t>(v.size()));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  k = std::min<int64_t>(k, v.size());
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t a, int64_t b) {
    return v[a] > v[b] || (v[a] == v[b] && a < b);
  });
  idx.resize(static_cast<size_t>(k));
  return idx;
}

}  // namespace fragile::influence
