// Shapes and strides: int64 extents, strides in elements, row-major.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace fragile {

using Shape = std::vector<int64_t>;

// The product of the extents; throws when it does not fit in int64.
int64_t numel_of(const Shape& shape);
// Row-major strides; throws when one does not fit in int64 (possible without elements).
Shape contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);
// NumPy broadcasting of two shapes; throws naming both shapes and `what` when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* what);
// Wraps a possibly negative dimension index into [0, rank); throws when out of range.
int64_t wrap_dim(int64_t dim, int64_t rank, const char* what);

}  // namespace fragile
