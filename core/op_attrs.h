// Attributes recorded with each primitive op, read back by its rule in derivatives.cpp.
#pragma once
#include <vector>

#include "core/backend.h"

namespace fragile {

struct ScalarAttrs { double a = 0, b = 0; };                 // pow exponent, clamp bounds, beta
struct ReduceAttrs { std::vector<int64_t> dims; bool keepdim; };  // dims sorted, unique
struct ShapeAttrs { Shape shape; };                          // reshape/expand source shape, etc.
struct PermuteAttrs { std::vector<int64_t> dims; };
struct SliceAttrs { Shape input_shape; int64_t dim, start, end, step; };
struct PadAttrs { std::vector<int64_t> before, after; };
struct ConcatAttrs { int64_t dim; };
struct DimAttrs { int64_t dim; };                           // softmax dim (wrapped)
struct DTypeAttrs { DType dtype; };
struct ConvAttrs { Shape shape; Conv2dParams p; };  // shape: input (bwd-input) / weight (bwd-weight)
struct PoolAttrs { Shape input_shape; Pool2dParams p; };

}  // namespace fragile
