// core/image_streams.h: image i's draws depend on (seed, i) only, not on the batch around it.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/image_streams.h"
#include "core/ops.h"

namespace fragile {
namespace {

std::vector<double> image_slice(const Tensor& t, int64_t n) {
  return contiguous(slice(t, 0, n, n + 1)).to_vector();
}

TEST(ImageStreams, AnImagesDrawsDoNotDependOnItsBatch) {
  ImageStreams batch(7, 0, 3);
  const Tensor a = batch.randn({3, 2, 4, 4}, DType::Float64);
  const Tensor b = batch.randn({3, 2, 4, 4}, DType::Float64);  // each stream moves on
  for (int64_t n = 0; n < 3; ++n) {
    ImageStreams alone(7, n, 1);
    EXPECT_EQ(image_slice(alone.randn({1, 2, 4, 4}, DType::Float64), 0), image_slice(a, n));
    EXPECT_EQ(image_slice(alone.randn({1, 2, 4, 4}, DType::Float64), 0), image_slice(b, n));
  }
  // Image 2 as the first of a later batch.
  ImageStreams later(7, 2, 1);
  EXPECT_EQ(later.randn({1, 2, 4, 4}, DType::Float64).to_vector(), image_slice(a, 2));
}

TEST(ImageStreams, ImagesAndSeedsGetDifferentStandardNormalDraws) {
  const std::vector<double> v = ImageStreams(7, 0, 2).randn({2, 4000}, DType::Float64).to_vector();
  const std::vector<double> first(v.begin(), v.begin() + 4000), second(v.begin() + 4000, v.end());
  EXPECT_NE(first, second);
  EXPECT_NE(ImageStreams(8, 0, 1).randn({1, 4000}, DType::Float64).to_vector(), first);
  // Standard normal: mean ~ 0 and variance ~ 1 within a few standard errors (4000 draws).
  double mean = 0, var = 0;
  for (double x : first) mean += x / 4000;
  for (double x : first) var += (x - mean) * (x - mean) / 3999;
  EXPECT_NEAR(mean, 0.0, 0.07);
  EXPECT_NEAR(var, 1.0, 0.1);
}

TEST(ImageStreams, ShapeMustStartWithTheImageCount) {
  ImageStreams s(1, 0, 2);
  EXPECT_THROW(s.randn({3, 4}, DType::Float32), Error);
  EXPECT_THROW(s.randn({}, DType::Float32), Error);
  EXPECT_THROW(ImageStreams(1, -1, 2), Error);
}

}  // namespace
}  // namespace fragile
