// make_view is how the library's ops (slice, transpose, batch splits, broadcast) describe
// part of a storage. A wrong geometry there would let a kernel read or write past the
// buffer, so make_view refuses any view that reaches outside its storage.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "core/tensor.h"
#include "tests/support/expect_error.h"

namespace fragile {
namespace {

TEST(Views, ViewsInsideTheStorageAreMade) {
  const Tensor t = Tensor::ones({4, 6});  // 24 elements
  EXPECT_EQ(make_view(t, {3, 6}, {6, 1}, 6).numel(), 18);     // the last three rows
  EXPECT_EQ(make_view(t, {6, 4}, {1, 6}, 0).numel(), 24);     // the transpose
  EXPECT_EQ(make_view(t, {5, 6}, {0, 1}, 18).numel(), 30);    // the last row broadcast
  EXPECT_EQ(make_view(t, {0, 6}, {6, 1}, 24).numel(), 0);     // empty, at the end
  EXPECT_EQ(make_view(t, {}, {}, 23).numel(), 1);             // the last element
}

TEST(Views, ViewsReachingOutsideTheStorageAreErrors) {
  const Tensor t = Tensor::ones({4, 6});
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  // One element too far: a [4, 6] view one row in (what a test of an unaligned input made).
  EXPECT_ERROR_WITH(make_view(t, {4, 6}, {6, 1}, 1), "internal error: a view [4,6] with strides [6,1]",
                    "at offset 1 reaches outside its tensor's storage");
  EXPECT_ERROR_WITH(make_view(t, {}, {}, 24), "reaches outside");
  EXPECT_ERROR_WITH(make_view(t, {2}, {1}, -1), "reaches outside");
  EXPECT_ERROR_WITH(make_view(t, {2, 2}, {-6, 1}, 0), "reaches outside");  // row -1
  EXPECT_ERROR_WITH(make_view(t, {3}, {kMax}, 0), "reaches outside");     // overflows
  EXPECT_ERROR_WITH(make_view(t, {2, 2}, {1}, 0), "reaches outside");     // rank mismatch
}

// A view without elements is contiguous whatever its extents and strides: there is nothing to
// lay out. The check used to multiply the extents from the innermost out, and for
// [0, 2^32, 2^32] that product passed 2^63 (undefined behaviour) and, wrapped to 0, made the
// answer depend on the outermost stride.
TEST(Views, AViewWithoutElementsIsContiguous) {
  const Tensor t = Tensor::ones({4, 6});
  constexpr int64_t k32 = int64_t{1} << 32;
  EXPECT_TRUE(make_view(t, {0, k32, k32}, {5, k32, 1}, 0).is_contiguous());
  EXPECT_TRUE(make_view(t, {6, 0}, {1, 6}, 0).is_contiguous());
  EXPECT_TRUE(make_view(t, {3, 6}, {6, 1}, 6).is_contiguous());
  EXPECT_FALSE(make_view(t, {6, 4}, {1, 6}, 0).is_contiguous());  // the transpose
  EXPECT_FALSE(make_view(t, {5, 6}, {0, 1}, 18).is_contiguous());  // a broadcast row
}

}  // namespace
}  // namespace fragile
