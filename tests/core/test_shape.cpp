// Shape arithmetic on extents that come from outside (a model's attributes, a file's header):
// a product or sum past int64 is an error, never a wrapped-around small size that a kernel
// would then write past (found by tools/fuzz.sh: a Pad of 7e18 wrapped to a few bytes).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "core/backend.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/shape.h"
#include "core/tensor.h"
#include "tests/support/expect_error.h"

namespace fragile {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

TEST(Shape, ElementCountOverflowIsAnError) {
  EXPECT_EQ(numel_of({}), 1);
  EXPECT_EQ(numel_of({3, 0, 5}), 0);
  EXPECT_EQ(numel_of({int64_t{1} << 31, int64_t{1} << 31}), int64_t{1} << 62);
  EXPECT_EQ(numel_of({kMax}), kMax);
  EXPECT_ERROR_WITH(numel_of({25702, 7022836102411059203}), "more than 2^63 elements");
  EXPECT_ERROR_WITH(numel_of({int64_t{1} << 32, int64_t{1} << 32}), "more than 2^63 elements");
}

TEST(Shape, TensorWhoseBytesOverflowIsAnError) {
  // 2^61 float64 elements are 2^64 bytes: the element count fits, the byte count does not.
  EXPECT_ERROR_WITH(Tensor::empty({int64_t{1} << 61}, DType::Float64), "is too large",
                    "8 bytes");
  EXPECT_ERROR_WITH(Tensor::empty({25702, 7022836102411059203}), "more than 2^63 elements");
}

TEST(Shape, PaddingPastInt64IsAnError) {
  const Tensor x = Tensor::ones({1, 2});
  EXPECT_ERROR_WITH(pad(x, {0, kMax - 1}, {0, 5}), "pad: padding", "too large");
  EXPECT_ERROR_WITH(pad(x, {0, 0}, {0, kMax}), "pad: padding", "too large");
}

// A step of 2^63 - 1 (from a Slice node's `steps`) selects only `start`; its extent and stride
// arithmetic overflowed before.
TEST(Shape, SliceWithAHugeStepTakesOneElement) {
  const Tensor x = Tensor::from_vector({1, 2, 3, 4, 5}, {5}, DType::Float64);
  const Tensor y = slice(x, 0, 1, kMax, kMax);
  EXPECT_EQ(y.shape(), (Shape{1}));
  EXPECT_EQ(y.to_vector(), (std::vector<double>{2}));
  EXPECT_EQ(slice(x, 0, 3, 3, kMax).shape(), (Shape{0}));
  EXPECT_EQ(slice(x, 0, 0, 5, 2).to_vector(), (std::vector<double>{1, 3, 5}));
  EXPECT_EQ(slice(x, 0, 1, 5, 2).to_vector(), (std::vector<double>{2, 4}));
}

// Window attributes are bounded (2^31 - 1, cuDNN's own limit), so the output-size arithmetic
// cannot overflow whatever a model file says.
TEST(Shape, HugeWindowAttributesAreErrors) {
  const int64_t big = int64_t{1} << 40;
  EXPECT_ERROR_WITH(conv_out_size(8, 3, 1, 1, big), "conv: dilation", "too large");
  EXPECT_ERROR_WITH(conv_out_size(8, 3, 1, big, 1), "conv: padding", "too large");
  EXPECT_ERROR_WITH(conv_out_size(8, 3, kMax, 0, 1), "conv: stride", "too large");
  EXPECT_ERROR_WITH(pool_out_size(8, big, 1, 0, false), "pool: kernel size", "too large");
  EXPECT_ERROR_WITH(pool_out_size(8, 2, kMax, 0, true), "pool: stride", "too large");
  EXPECT_EQ(conv_out_size(8, 3, 0x7fffffff, 1, 1), 1);
}

}  // namespace
}  // namespace fragile
