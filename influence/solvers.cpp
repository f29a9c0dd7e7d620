#include "influence/solvers.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace fragile::influence {

namespace {

Vec random_unit(int64_t dim, uint64_t seed) {
  FRAGILE_CHECK(dim > 0, "eigen solver: dimension must be positive");
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  Vec v(dim);
  for (int64_t i = 0; i < dim; ++i) v[i] = normal(rng);
  return v / v.norm();
}

}  // namespace

CgResult conjugate_gradient(const LinearOperator& a, const Vec& b, const CgOptions& opts) {
  // Zero iterations would return x = 0 as if it were a solution.
  FRAGILE_CHECK(opts.max_iter >= 1, "conjugate_gradient: max_iter must be >= 1, got ",
                opts.max_iter);
  FRAGILE_CHECK(std::isfinite(opts.tol) && opts.tol >= 0,
                "conjugate_gradient: tol must be a finite number >= 0, got ", opts.tol);
  CgResult res;
  res.x = Vec::Zero(b.size());
  const double bnorm = b.norm();
  if (bnorm == 0.0) {
    res.converged = true;
    return res;
  }
  Vec r = b;
  Vec p = r;
  double rs = r.squaredNorm();
  for (res.iterations = 0; res.iterations < opts.max_iter;) {
    const Vec ap = a(p);
    FRAGILE_CHECK(ap.size() == b.size(), "conjugate_gradient: operator returned ", ap.size(),
                  " entries for a vector of ", b.size());
    const double pap = p.dot(ap);
    FRAGILE_CHECK(pap > 0.0, "conjugate_gradient: non-positive curvature p^T A p = ", pap,
                  " at iteration ", res.iterations,
                  "; the operator is not positive definite (add damping)");
    const double alpha = rs / pap;
    res.x += alpha * p;
    r -= alpha * ap;
    ++res.iterations;
    const double rs_new = r.squaredNorm();
    res.relative_residual = std::sqrt(rs_new) / bnorm;
    if (res.relative_residual <= opts.tol) {
      res.converged = true;
      break;
    }
    p = r + (rs_new / rs) * p;
    rs = rs_new;
  }
  return res;
}

LissaResult lissa(const StochasticOperator& a, const Vec& b, const LissaOptions& opts) {
  FRAGILE_CHECK(std::isfinite(opts.scale) && opts.scale > 0.0,
                "lissa: scale must be positive, got ", opts.scale);
  FRAGILE_CHECK(std::isfinite(opts.damping) && opts.damping >= 0.0,
                "lissa: damping must be a finite number >= 0, got ", opts.damping);
  FRAGILE_CHECK(opts.depth >= 1 && opts.samples >= 1, "lissa: depth and samples must be >= 1");
  LissaResult res;
  res.x = Vec::Zero(b.size());
  std::mt19937_64 rng(opts.seed);
  for (int64_t s = 0; s < opts.samples; ++s) {
    Vec cur = b;
    for (int64_t t = 0; t < opts.depth; ++t) {
      const Vec h = a(cur, rng);
      Vec next = b + (1.0 - opts.damping) * cur - h / opts.scale;
      FRAGILE_CHECK(next.allFinite(), "lissa: the recursion diverged at depth ", t,
                    "; increase scale (it must exceed half the largest Hessian eigenvalue)");
      const double nn = next.norm();
      res.last_relative_change = nn > 0 ? (next - cur).norm() / nn : 0.0;
      cur = std::move(next);
    }
    res.x += cur / opts.scale;
  }
  res.x /= static_cast<double>(opts.samples);
  return res;
}

LissaResult lissa(const LinearOperator& a, const Vec& b, const LissaOptions& opts) {
  return lissa(StochasticOperator([&a](const Vec& v, std::mt19937_64&) { return a(v); }), b,
               opts);
}

EigenPair power_iteration(const LinearOperator& a, int64_t dim, int max_iter, double tol,
                          uint64_t seed) {
  EigenPair e;
  e.vector = random_unit(dim, seed);
  for (e.iterations = 1; e.iterations <= max_iter; ++e.iterations) {
    const Vec w = a(e.vector);
    e.value = e.vector.dot(w);
    e.residual = (w - e.value * e.vector).norm();
    const double wn = w.norm();
    if (e.residual <= tol * std::abs(e.value) || wn == 0.0) break;
    e.vector = w / wn;
  }
  e.iterations = std::min(e.iterations, max_iter);
  return e;
}

LanczosResult lanczos(const LinearOperator& a, int64_t dim, int steps, uint64_t seed) {
  FRAGILE_CHECK(steps >= 1, "lanczos: steps must be >= 1");
  steps = static_cast<int>(std::min<int64_t>(steps, dim));
  Mat q(dim, steps);
  std::vector<double> alpha, beta;
  q.col(0) = random_unit(dim, seed);
  int k = 0;
  double scale = 0.0;
  while (k < steps) {
    Vec w = a(q.col(k));
    const double al = q.col(k).dot(w);
    alpha.push_back(al);
    ++k;
    // Full reorthogonalization (twice is enough, Parlett's rule): keeps the basis orthonormal
    // so no spurious copies of converged Ritz values appear.
    for (int pass = 0; pass < 2; ++pass) {
      w -= q.leftCols(k) * (q.leftCols(k).transpose() * w);
    }
    const double be = w.norm();
    scale = std::max({scale, std::abs(al), be});
    if (k == steps || be <= 1e-12 * scale) {
      beta.push_back(be);
      break;
    }
    beta.push_back(be);
    q.col(k) = w / be;
  }
  Mat t = Mat::Zero(k, k);
  for (int i = 0; i < k; ++i) {
    t(i, i) = alpha[i];
    if (i + 1 < k) t(i, i + 1) = t(i + 1, i) = beta[i];
  }
  Eigen::SelfAdjointEigenSolver<Mat> eig(t);
  LanczosResult r;
  r.steps = k;
  r.values = eig.eigenvalues();
  r.vectors = q.leftCols(k) * eig.eigenvectors();
  r.residuals.resize(k);
  for (int i = 0; i < k; ++i) r.residuals[i] = std::abs(beta[k - 1] * eig.eigenvectors()(k - 1, i));
  return r;
}

EigenPair dominant_pair(const LanczosResult& r) {
  FRAGILE_CHECK(r.values.size() > 0, "dominant_pair: empty Lanczos result");
  Eigen::Index best = 0;
  r.values.cwiseAbs().maxCoeff(&best);
  EigenPair e;
  e.value = r.values[best];
  e.vector = r.vectors.col(best);
  e.vector /= e.vector.norm();
  e.iterations = r.steps;
  e.residual = r.residuals[best];
  return e;
}

}  // namespace fragile::influence
