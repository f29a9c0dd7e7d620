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
  // A 0 extent anywhere: no elements, in any order of the extents.
  EXPECT_EQ(numel_of({int64_t{1} << 62, 8, 0}), 0);
  EXPECT_EQ(numel_of({int64_t{1} << 62, 0, 8}), 0);
  const Tensor empty = Tensor::empty({int64_t{1} << 62, 8, 0});
  EXPECT_EQ(empty.numel(), 0);
  EXPECT_EQ(make_view(empty, {0, 8, int64_t{1} << 62}, {0, 0, 0}, 0).numel(), 0);
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

// Window output sizes with input extents near 2^63 (tensors without elements can have them):
// in + 2 pad, and ceil_mode's rounding, are formed without wrapping; small geometries give
// PyTorch's formula exactly, written here in its own terms.
TEST(Shape, WindowOutputSizesOfHugeExtentsDoNotWrap) {
  for (int64_t in = 0; in <= 20; ++in)
    for (int64_t k = 1; k <= 5; ++k)
      for (int64_t s = 1; s <= 4; ++s)
        for (int64_t p = 0; p <= k / 2; ++p)
          for (bool ceil_mode : {false, true}) {
            if (in + 2 * p < k) continue;
            const int64_t n = in + 2 * p - k;
            int64_t want = (ceil_mode ? (n + s - 1) / s : n / s) + 1;
            if (ceil_mode && (want - 1) * s >= in + p) --want;
            EXPECT_EQ(pool_out_size(in, k, s, p, ceil_mode), want)
                << in << " " << k << " " << s << " " << p << " " << ceil_mode;
          }
  // (2^63 - 4) / (2^31 - 1) = 4294967298 rem 2: ceil_mode adds a window, which starts inside.
  EXPECT_EQ(pool_out_size(kMax, 3, 0x7fffffff, 0, true), 4294967299);
  EXPECT_EQ(pool_out_size(kMax, 3, 0x7fffffff, 0, false), 4294967298);
  EXPECT_EQ(pool_out_size(kMax - 2, 3, 0x7fffffff, 1, true), 4294967298);
  EXPECT_EQ(conv_out_size(kMax, 1, 1, 0, 1), kMax);
  EXPECT_ERROR_WITH(pool_out_size(kMax, 3, 1, 1, false),
                    "pool: the input extent 9223372036854775807 plus padding 2*1 is past 2^63");
  EXPECT_ERROR_WITH(conv_out_size(kMax - 1, 3, 1, 1, 1), "conv: the input extent",
                    "plus padding 2*1 is past 2^63");
}

// [0, 2^62, 8] has 0 elements (any 0 extent does); its stride for dim 0, 8 * 2^62, wrapped
// (to 0) unchecked.
TEST(Shape, StridePastInt64IsAnError) {
  EXPECT_EQ(contiguous_strides({}), (Shape{}));
  EXPECT_EQ(contiguous_strides({2, 0, 5}), (Shape{0, 5, 1}));
  // The product with the first extent is no stride: [2^62, 8] has strides, not elements.
  EXPECT_EQ(contiguous_strides({int64_t{1} << 62, 8}), (Shape{8, 1}));
  EXPECT_ERROR_WITH(contiguous_strides({0, int64_t{1} << 62, 8}), "[0,4611686018427387904,8]",
                    "stride of dimension 0", "past 2^63");
  EXPECT_ERROR_WITH(Tensor::empty({0, int64_t{1} << 62, 8}), "stride of dimension 0",
                    "past 2^63");
}

// reshape's -1: the product of the other extents wrapped (3 * 6148914691236517206 = 2^64 + 2
// became 2), divided numel and inferred a made-up extent.
TEST(Shape, ReshapeWhoseExtentsMultiplyPastInt64IsAnError) {
  const int64_t third = 6148914691236517206;  // ceil(2^64 / 3)
  const Tensor x = Tensor::zeros({4});
  EXPECT_ERROR_WITH(reshape(x, {-1, 3, third}), "reshape: the extents of", "multiply past 2^63");
  EXPECT_ERROR_WITH(reshape(Tensor::zeros({0}), {-1, 3, third}), "reshape: the extents of",
                    "multiply past 2^63");
  EXPECT_EQ(reshape(Tensor::zeros({0, 5}), {-1, 5}).shape(), (Shape{0, 5}));
  EXPECT_EQ(reshape(x, {2, -1}).shape(), (Shape{2, 2}));
}

// A tensor without elements can hold extents whose product is past 2^63 (a permuted view of
// [2^62, 0, 8]); flattening them wrapped to 0 and gave [0, 0].
TEST(Shape, FlattenOfAnEmptyTensor) {
  EXPECT_EQ(flatten(Tensor::zeros({0, 5}), 0, 1).shape(), (Shape{0}));
  EXPECT_EQ(flatten(Tensor::zeros({0, 5}), 1, 1).shape(), (Shape{0, 5}));
  EXPECT_EQ(flatten(Tensor::zeros({2, 0, 3}), 1, 2).shape(), (Shape{2, 0}));
  const Tensor v = permute(Tensor::zeros({int64_t{1} << 62, 0, 8}), {1, 0, 2});
  ASSERT_EQ(v.shape(), (Shape{0, int64_t{1} << 62, 8}));
  EXPECT_ERROR_WITH(flatten(v, 1, 2), "flatten: dimensions 1 to 2", "[0,4611686018427387904,8]",
                    "multiply past 2^63");
}

// A zero extent along the axis contributes nothing; extents that add up past 2^63 (tensors
// without elements) are an error: three of 2^63 - 1 wrapped to 2^63 - 3, a wrong shape.
TEST(Shape, ConcatOfEmptyTensors) {
  const Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::Float64);
  const Tensor b = Tensor::from_vector({7, 8, 9}, {1, 3}, DType::Float64);
  const Tensor none = Tensor::zeros({0, 3}, DType::Float64);
  const Tensor y = concat({none, a, none, b, none}, 0);
  EXPECT_EQ(y.shape(), (Shape{3, 3}));
  EXPECT_EQ(y.to_vector(), (std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(concat({Tensor::zeros({2, 0}), Tensor::zeros({2, 0})}, 1).shape(), (Shape{2, 0}));
  const Tensor huge = Tensor::zeros({0, kMax});
  EXPECT_EQ(concat({huge, Tensor::zeros({0, 0})}, 1).shape(), (Shape{0, kMax}));
  EXPECT_ERROR_WITH(concat({huge, huge, huge}, 1), "concat: the extents along dim 1",
                    "past 2^63", "tensor 1");
}

}  // namespace
}  // namespace fragile
