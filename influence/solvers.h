// Matrix-free linear algebra on Hessian-vector products: inverse-HVP by conjugate gradient and by
// LiSSA, and extreme eigenpairs by power iteration and Lanczos. Operators are callables on flat
// float64 vectors, so the same solvers serve parameter Hessians (influence) and input Hessians
// (Ghorbani's section 5 analysis).
#pragma once
#include <cstdint>
#include <functional>
#include <random>

#include "influence/objective.h"

namespace fragile::influence {

// v -> A v for a symmetric A.
using LinearOperator = std::function<Vec(const Vec&)>;
// v -> an unbiased estimate of A v (e.g. the HVP of a random minibatch), drawing from `rng`.
using StochasticOperator = std::function<Vec(const Vec&, std::mt19937_64& rng)>;

// ---- conjugate gradient --------------------------------------------------------------------
struct CgOptions {
  int max_iter = 100;   // Koh & Liang: fmin_ncg maxiter 100
  double tol = 1e-10;   // stop when |A x - b| <= tol |b|
};
struct CgResult {
  Vec x;
  int iterations = 0;
  double relative_residual = 0.0;  // |A x - b| / |b| (recursive residual)
  bool converged = false;
};
// Solves A x = b for a symmetric positive definite A (Hestenes-Stiefel CG from x = 0). Throws
// when a direction of non-positive curvature shows up (A not positive definite: add damping).
CgResult conjugate_gradient(const LinearOperator& a, const Vec& b, const CgOptions& opts = {});

// ---- LiSSA (Agarwal et al. 2017, as in Koh & Liang's code) ----------------------------------
struct LissaOptions {
  double damping = 0.0;    // adds damping * scale to A
  double scale = 10.0;     // must exceed lambda_max(A) / 2 for the recursion to converge
  int64_t depth = 10000;   // recursion depth
  int64_t samples = 1;     // independent recursions averaged
  uint64_t seed = 0;
};
struct LissaResult {
  Vec x;  // ~ (A + damping * scale I)^{-1} b
  // |cur_t - cur_{t-1}| / |cur_t| at the last step of the last sample (convergence diagnostic).
  double last_relative_change = 0.0;
};
// Koh & Liang's recursion: cur_0 = b; cur_t = b + (1 - damping) cur_{t-1} - A_t cur_{t-1} / scale
// with A_t a fresh stochastic estimate each step; the estimate is cur_depth / scale, averaged
// over `samples`. It is the truncated Neumann series of (damping I + A / scale)^{-1} b.
LissaResult lissa(const StochasticOperator& a, const Vec& b, const LissaOptions& opts = {});
// Deterministic A (full-batch HVPs).
LissaResult lissa(const LinearOperator& a, const Vec& b, const LissaOptions& opts = {});

// ---- eigenpairs ----------------------------------------------------------------------------
struct EigenPair {
  double value = 0.0;
  Vec vector;          // unit norm
  int iterations = 0;  // operator applications
  double residual = 0.0;  // |A v - value v|
};
// Power iteration from a seeded random start: the eigenpair of largest |eigenvalue| (for a
// symmetric A also the top singular pair). Stops when |A v - value v| <= tol |value|.
EigenPair power_iteration(const LinearOperator& a, int64_t dim, int max_iter = 1000,
                          double tol = 1e-8, uint64_t seed = 0);

struct LanczosResult {
  Vec values;   // Ritz values, ascending
  Mat vectors;  // dim x k Ritz vectors (columns, unit norm)
  Vec residuals;  // |A y - theta y| per Ritz pair (cheap estimate |beta_k * s_k|)
  int steps = 0;
};
// Lanczos with full reorthogonalization: `steps` operator applications (fewer on an invariant
// subspace). The extreme Ritz pairs converge first.
LanczosResult lanczos(const LinearOperator& a, int64_t dim, int steps, uint64_t seed = 0);
// The Ritz pair of largest |eigenvalue| from a Lanczos run.
EigenPair dominant_pair(const LanczosResult& r);

}  // namespace fragile::influence
