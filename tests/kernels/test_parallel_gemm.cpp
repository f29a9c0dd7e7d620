// kernels/cpu/parallel_gemm.h: the split product equals the unsplit one, whichever way it cuts
// C (column pieces for wide C, row pieces for tall C), in both modes (= and +=), with
// transposed and strided operands, and inside an enclosing parallel region (no nested split).
#include <gtest/gtest.h>
#include <omp.h>

#include <Eigen/Core>
#include <random>

#include "kernels/cpu/parallel_gemm.h"

namespace fragile::cpu {
namespace {

using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Mat random_mat(int64_t r, int64_t c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  Mat m(r, c);
  for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = u(rng);
  return m;
}

double max_rel_err(const Mat& got, const Mat& want) {
  return (got - want).cwiseAbs().maxCoeff() / std::max(1e-300, want.cwiseAbs().maxCoeff());
}

struct Shape3 {
  int64_t m, k, n;
};

class ParallelGemm : public ::testing::TestWithParam<Shape3> {};

TEST_P(ParallelGemm, EqualsTheUnsplitProduct) {
  const auto [m, k, n] = GetParam();
  // Large enough to be split: the test is void if the product runs whole.
  ASSERT_GE(static_cast<double>(m) * n * k, kGemmSplitWork);
  ASSERT_GE(std::max(m, n) / kGemmMinPiece, 2);
  const Mat a = random_mat(m, k, 1), b = random_mat(k, n, 2), c0 = random_mat(m, n, 3);
  const Mat want = a * b;
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 3, 5}) {
    omp_set_num_threads(threads);
    Mat c(m, n);
    parallel_gemm(c, a, b);
    EXPECT_LT(max_rel_err(c, want), 1e-13) << threads << " threads";
    Mat acc = c0;
    parallel_gemm(acc, a, b, /*accumulate=*/true);
    EXPECT_LT(max_rel_err(acc, c0 + want), 1e-13) << threads << " threads, +=";
    // Transposed operands (how convolution backward passes read them).
    const Mat at = a.transpose(), bt = b.transpose();
    Mat ct(m, n);
    parallel_gemm(ct, at.transpose(), bt.transpose());
    EXPECT_LT(max_rel_err(ct, want), 1e-13) << threads << " threads, transposed views";
  }
  omp_set_num_threads(saved);
}

INSTANTIATE_TEST_SUITE_P(Shapes, ParallelGemm,
                         ::testing::Values(Shape3{64, 288, 1024},   // wide: column pieces
                                           Shape3{1000, 512, 169},  // tall: row pieces
                                           Shape3{97, 301, 1111},   // ragged last piece
                                           Shape3{1111, 257, 130}));

TEST(ParallelGemmRegion, InsideAParallelRegionEachProductStaysWhole) {
  const Mat a = random_mat(64, 288, 4), b = random_mat(288, 1024, 5);
  const Mat want = a * b;
  Mat c1(64, 1024), c2(64, 1024);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
#pragma omp parallel sections
  {
#pragma omp section
    parallel_gemm(c1, a, b);
#pragma omp section
    parallel_gemm(c2, a, b);
  }
  EXPECT_LT(max_rel_err(c1, want), 1e-13);
  EXPECT_LT(max_rel_err(c2, want), 1e-13);
  omp_set_num_threads(saved);
}

TEST(ParallelGemmRegion, EigenIsKeptSingleThreaded) {
  const Mat a = random_mat(8, 8, 6);
  Mat c(8, 8);
  parallel_gemm(c, a, a);
  EXPECT_EQ(Eigen::nbThreads(), 1);
}

}  // namespace
}  // namespace fragile::cpu
