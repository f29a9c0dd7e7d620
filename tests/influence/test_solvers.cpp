// Matrix-free solvers on explicit small matrices, where the answer is known from a dense
// factorization: conjugate gradient, LiSSA (deterministic and stochastic), power iteration and
// Lanczos.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "influence/solvers.h"

namespace fragile::influence {
namespace {

Mat random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  Mat m(rows, cols);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) m(i, j) = normal(rng);
  return m;
}

// Q diag(eigs) Q^T with a random orthogonal Q.
Mat with_spectrum(const Vec& eigs, uint64_t seed) {
  Eigen::HouseholderQR<Mat> qr(random_matrix(eigs.size(), eigs.size(), seed));
  const Mat q = qr.householderQ();
  return q * eigs.asDiagonal() * q.transpose();
}

LinearOperator op_of(const Mat& a) {
  return [a](const Vec& v) { return Vec(a * v); };
}

double rel(const Vec& got, const Vec& ref) { return (got - ref).norm() / ref.norm(); }

TEST(ConjugateGradient, ReproducesInverseOnExplicitSpdMatrix) {
  const int64_t n = 30;
  const Mat m = random_matrix(n, n, 1);
  const Mat a = m * m.transpose() / static_cast<double>(n) + 0.1 * Mat::Identity(n, n);
  const Vec b = random_matrix(n, 1, 2).col(0);
  CgOptions opts;
  opts.tol = 1e-12;
  const CgResult r = conjugate_gradient(op_of(a), b, opts);
  const Vec ref = a.llt().solve(b);
  EXPECT_TRUE(r.converged);
  EXPECT_LE(r.iterations, 2 * n);  // n in exact arithmetic
  EXPECT_LT(rel(r.x, ref), 1e-9);
  EXPECT_LT((a * r.x - b).norm() / b.norm(), 1e-11);
}

TEST(ConjugateGradient, ZeroRightHandSideAndIndefiniteOperator) {
  const Mat a = Vec::LinSpaced(6, 1.0, 6.0).asDiagonal();
  const CgResult z = conjugate_gradient(op_of(a), Vec::Zero(6));
  EXPECT_TRUE(z.converged);
  EXPECT_EQ(z.x.norm(), 0.0);
  Vec eig = Vec::LinSpaced(6, 1.0, 6.0);
  eig[2] = -2.0;
  EXPECT_THROW(conjugate_gradient(op_of(with_spectrum(eig, 3)), Vec::Ones(6)), Error);
}

TEST(Lissa, ConvergesOnPositiveDefiniteCase) {
  // Eigenvalues in [0.5, 4]; scale 3 > 4/2, so |1 - lambda/scale| <= 5/6 and depth 300 leaves
  // (5/6)^300 ~ 1e-24 of the initial error.
  const Mat a = with_spectrum(Vec::LinSpaced(12, 0.5, 4.0), 4);
  const Vec b = random_matrix(12, 1, 5).col(0);
  LissaOptions opts;
  opts.scale = 3.0;
  opts.depth = 300;
  const LissaResult r = lissa(op_of(a), b, opts);
  EXPECT_LT(rel(r.x, a.llt().solve(b)), 1e-10);
  EXPECT_LT(r.last_relative_change, 1e-12);

  // The error after t steps is (I - A/scale)^t applied to the start: check the rate.
  opts.depth = 20;
  const double e20 = rel(lissa(op_of(a), b, opts).x, a.llt().solve(b));
  EXPECT_LT(e20, std::pow(5.0 / 6.0, 20) * 10);
  EXPECT_GT(e20, 1e-6);  // and it really is an iteration, not a direct solve
}

TEST(Lissa, DampingSolvesTheShiftedSystem) {
  const Mat a = with_spectrum(Vec::LinSpaced(8, 0.2, 2.0), 6);
  const Vec b = random_matrix(8, 1, 7).col(0);
  LissaOptions opts;
  opts.scale = 2.0;
  opts.damping = 0.1;
  opts.depth = 400;
  const Vec ref = (a + opts.damping * opts.scale * Mat::Identity(8, 8)).llt().solve(b);
  EXPECT_LT(rel(lissa(op_of(a), b, opts).x, ref), 1e-10);
}

TEST(Lissa, StochasticHvpsAverageToTheSolution) {
  // A = (1/m) sum_k a_k a_k^T + lambda I; each step uses 10 random terms (an unbiased estimate).
  const int64_t d = 5, m = 60;
  const double lambda = 0.5;
  const Mat rows = random_matrix(m, d, 8);
  const Mat a = rows.transpose() * rows / static_cast<double>(m) + lambda * Mat::Identity(d, d);
  const StochasticOperator est = [&](const Vec& v, std::mt19937_64& rng) {
    std::uniform_int_distribution<int64_t> pick(0, m - 1);
    Vec out = lambda * v;
    for (int k = 0; k < 10; ++k) {
      const Vec r = rows.row(pick(rng)).transpose();
      out += r * r.dot(v) / 10.0;
    }
    return out;
  };
  const Vec b = random_matrix(d, 1, 9).col(0);
  LissaOptions opts;
  opts.scale = 4.0 * a.eigenvalues().real().maxCoeff();
  opts.depth = 300;
  opts.samples = 50;
  const double err = rel(lissa(est, b, opts).x, a.llt().solve(b));
  EXPECT_LT(err, 0.05);
}

TEST(Lissa, DivergesLoudlyWhenScaleIsTooSmall) {
  const Mat a = with_spectrum(Vec::LinSpaced(4, 1.0, 10.0), 10);
  LissaOptions opts;
  opts.scale = 1.0;  // needs > 5
  opts.depth = 5000;
  EXPECT_THROW(lissa(op_of(a), Vec::Ones(4), opts), Error);
}

TEST(Eigen, PowerIterationAndLanczosFindTheDominantPair) {
  // Indefinite: the eigenvalue of largest magnitude is negative (-5), the next is 3.
  Vec eig = Vec::LinSpaced(40, -1.0, 3.0);
  eig[7] = -5.0;
  const Mat a = with_spectrum(eig, 11);
  Eigen::SelfAdjointEigenSolver<Mat> ref(a);
  Eigen::Index k = 0;
  ref.eigenvalues().cwiseAbs().maxCoeff(&k);
  const Vec v_ref = ref.eigenvectors().col(k);

  const EigenPair p = power_iteration(op_of(a), 40, 2000, 1e-10, 1);
  EXPECT_NEAR(p.value, -5.0, 1e-8);
  EXPECT_NEAR(std::abs(p.vector.dot(v_ref)), 1.0, 1e-8);

  const LanczosResult l = lanczos(op_of(a), 40, 25, 2);
  const EigenPair q = dominant_pair(l);
  EXPECT_NEAR(q.value, -5.0, 1e-9);
  EXPECT_NEAR(std::abs(q.vector.dot(v_ref)), 1.0, 1e-9);
  EXPECT_LT((a * q.vector - q.value * q.vector).norm(), 1e-7);
  EXPECT_NEAR(l.values.maxCoeff(), 3.0, 1e-6);  // the other extreme converges too
  // Lanczos needs far fewer products than power iteration for the same accuracy.
  EXPECT_LT(l.steps, p.iterations);
}

TEST(Eigen, LanczosStopsOnAnInvariantSubspace) {
  const Mat a = Vec::LinSpaced(5, 1.0, 5.0).asDiagonal();
  const LanczosResult l = lanczos(op_of(a), 5, 50, 3);
  EXPECT_LE(l.steps, 5);
  EXPECT_NEAR(l.values.maxCoeff(), 5.0, 1e-10);
  EXPECT_NEAR(l.values.minCoeff(), 1.0, 1e-10);
}

// Settings with no meaning are refused, never run: zero CG iterations would return x = 0 as if
// it solved anything (the CLI printed all-zero influences), and a negative LiSSA damping or
// scale is no recursion at all.
TEST(Solvers, MeaninglessSettingsThrow) {
  const Mat a = Vec::LinSpaced(4, 1.0, 4.0).asDiagonal();
  CgOptions cg;
  cg.max_iter = 0;
  EXPECT_THROW(conjugate_gradient(op_of(a), Vec::Ones(4), cg), Error);
  cg = CgOptions{};
  cg.tol = -1;
  EXPECT_THROW(conjugate_gradient(op_of(a), Vec::Ones(4), cg), Error);
  cg.tol = std::nan("");
  EXPECT_THROW(conjugate_gradient(op_of(a), Vec::Ones(4), cg), Error);
  LissaOptions li;
  li.damping = -1;
  EXPECT_THROW(lissa(op_of(a), Vec::Ones(4), li), Error);
  li = LissaOptions{};
  li.scale = -1;
  EXPECT_THROW(lissa(op_of(a), Vec::Ones(4), li), Error);
  li.scale = std::numeric_limits<double>::infinity();
  EXPECT_THROW(lissa(op_of(a), Vec::Ones(4), li), Error);
}

}  // namespace
}  // namespace fragile::influence
