#include "core/shape.h"

#include <sstream>

#include "core/error.h"

namespace fragile {

int64_t numel_of(const Shape& shape) {
  // Checked: a shape computed from a hostile model (Pad by 2^62, say) must not wrap around to
  // a small element count and then be written past its end.
  // A 0 extent anywhere means no elements, whatever the other extents multiply to: checked
  // first, so that [2^62, 8, 0] has 0 elements as [0, 2^62, 8] does (order must not matter:
  // a permuted view of an empty tensor is empty too).
  for (int64_t s : shape)
    if (s == 0) return 0;
  int64_t n = 1;
  for (int64_t s : shape)
    FRAGILE_CHECK(!__builtin_mul_overflow(n, s, &n), "shape ", shape_str(shape),
                  " has more than 2^63 elements");
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  // Checked like numel_of, and needed even after numel_of succeeded: a shape with a 0 extent
  // has 0 elements whatever the others are, so [0, 2^62, 8] passes numel_of while its stride
  // 8 * 2^62 is past int64. (The product with the first extent is no stride and is not formed.)
  Shape strides(shape.size());
  int64_t s = 1;
  for (int64_t i = static_cast<int64_t>(shape.size()) - 1; i >= 0; --i) {
    strides[i] = s;
    if (i > 0) {
      FRAGILE_CHECK(!__builtin_mul_overflow(s, shape[i], &s), "shape ", shape_str(shape),
                    ": the stride of dimension ", i - 1, " (the product of the extents after "
                    "it) is past 2^63");
    }
  }
  return strides;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? "," : "") << shape[i];
  os << ']';
  return os.str();
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* what) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    FRAGILE_CHECK(da == db || da == 1 || db == 1, what, ": shapes ", shape_str(a), " and ",
                  shape_str(b), " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int64_t wrap_dim(int64_t dim, int64_t rank, const char* what) {
  int64_t d = dim < 0 ? dim + rank : dim;
  FRAGILE_CHECK(d >= 0 && d < rank, what, ": dimension ", dim, " out of range for rank ", rank);
  return d;
}

}  // namespace fragile
