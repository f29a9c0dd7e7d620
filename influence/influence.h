// Influence functions (Koh & Liang 2017):
//   I(z_i, z_t) = -grad_theta L(z_t)^T H^{-1} grad_theta L(z_i),  H = Hessian of the objective J
// (influence.h's J includes the L2 term, see objective.h). I is dL(z_t)/d(epsilon) when z_i is
// up-weighted by epsilon in J; removing z_i is epsilon = -1/n, so the predicted change of the
// test loss on leaving z_i out is -I(z_i, z_t) / n = s_test . grad L(z_i) / n with
// s_test = H^{-1} grad L(z_t) (Koh & Liang's "predicted_loss_diffs").
//
// Sign convention: I > 0 means up-weighting z_i raises the test loss (a harmful training point);
// I < 0 lowers it (a helpful one). Rankings here sort by I, largest first, as the brief's eq. 4
// (Ghorbani et al.) is written: delta = -epsilon sign(grad_x sum_{top-3} I).
#pragma once
#include <string>

#include "influence/objective.h"
#include "influence/solvers.h"

namespace fragile::influence {

enum class IhvpMethod { Exact, Cg, Lissa };
IhvpMethod parse_ihvp_method(const std::string& name);  // "exact" | "cg" | "lissa"
const char* ihvp_method_name(IhvpMethod m);

struct IhvpOptions {
  IhvpMethod method = IhvpMethod::Cg;
  CgOptions cg;
  LissaOptions lissa;
  // LiSSA's HVP estimate per recursion step: the HVP of this many examples drawn uniformly with
  // replacement (plus the L2 term); 0 uses the full objective every step (deterministic).
  int64_t lissa_batch = 0;
};

// Solves H x = v at theta with H the Hessian of obj.all(). Exact: the dense Hessian and a
// Cholesky solve (small P only); CG and LiSSA: matrix-free on double-backward HVPs.
struct IhvpResult {
  Vec x;
  int operator_calls = 0;  // HVPs (CG, LiSSA) or Hessian rows (exact)
  double relative_residual = 0.0;  // |H x - v| / |v|, measured with one extra HVP
};
IhvpResult inverse_hvp(const Objective& obj, const Vec& theta, const Vec& v,
                       const IhvpOptions& opts = {});

// I(z_i, z_t) for every row g_i of `train_grads` (n x P) given s_test = H^{-1} grad L(z_t).
Vec influence_from_s_test(const Mat& train_grads, const Vec& s_test);

// The input gradient behind Ghorbani et al.'s influence attack (eq. 4):
//   grad_x [ -grad_theta L(x, theta)^T u ]  with u = H^{-1} sum_{i in top} grad_theta L(z_i)
// fixed (independent of the test input x). `loss(x, params)` returns the test loss (one element)
// built with ops.h; the theta-gradient is recorded (create_graph) and differentiated w.r.t. x,
// a mixed second derivative by double backward. Returns a tensor shaped like x.
using InputLossFn = std::function<Tensor(const Tensor& x, const std::vector<Tensor>& params)>;
Tensor influence_input_gradient(const InputLossFn& loss, const Tensor& x, const ParamLayout& layout,
                                const Vec& theta, const Vec& u);

// Indices of the k largest entries of `v` (ties broken by index), largest first.
std::vector<int64_t> top_k(const Vec& v, int64_t k);

}  // namespace fragile::influence
