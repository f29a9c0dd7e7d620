// Output extents of convolution and pooling windows along one axis, with PyTorch's formulas,
// so that shapes (and hence loaded models and reference data) agree with it exactly.
//
// in = input extent, kernel = window extent, stride, pad = zero/implicit padding on each side,
// dilation = spacing between kernel taps.
#include "core/backend.h"
#include "core/error.h"

namespace fragile {
namespace {

void check_geometry_bound(const char* op, const char* what, int64_t v) {
  FRAGILE_CHECK(v <= 0x7fffffff, op, ": ", what, " ", v, " is too large (at most 2^31 - 1)");
}

// in + 2 pad, checked: `in` is usually a real extent, but a tensor without elements can have
// an extent near 2^63 (a model's Reshape to [0, 2^63 - 1], say), and the sum would wrap.
int64_t padded_extent(const char* op, int64_t in, int64_t pad) {
  int64_t padded = 0;
  FRAGILE_CHECK(!__builtin_add_overflow(in, 2 * pad, &padded), op, ": the input extent ", in,
                " plus padding 2*", pad, " is past 2^63");
  return padded;
}

}  // namespace

RowsAround rows_around(const Shape& shape, int64_t dim) {
  RowsAround r;
  for (int64_t d = 0; d < dim; ++d) r.outer *= shape[d];
  r.len = shape[dim];
  for (size_t d = dim + 1; d < shape.size(); ++d) r.inner *= shape[d];
  return r;
}

int64_t conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                      int64_t dilation) {
  FRAGILE_CHECK(in >= 0, "conv: negative input extent ", in);
  FRAGILE_CHECK(kernel >= 1, "conv: kernel size must be >= 1, got ", kernel);
  FRAGILE_CHECK(stride >= 1, "conv: stride must be >= 1, got ", stride);
  FRAGILE_CHECK(pad >= 0, "conv: padding must be >= 0, got ", pad);
  FRAGILE_CHECK(dilation >= 1, "conv: dilation must be >= 1, got ", dilation);
  // Attributes come from model files: bounded so that the arithmetic below cannot overflow
  // (in is a real extent; every term then stays under 2^63).
  check_geometry_bound("conv", "kernel size", kernel);
  check_geometry_bound("conv", "stride", stride);
  check_geometry_bound("conv", "padding", pad);
  check_geometry_bound("conv", "dilation", dilation);
  // A dilated kernel spans d(k-1)+1 input positions.
  const int64_t span = dilation * (kernel - 1) + 1;
  const int64_t padded = padded_extent("conv", in, pad);
  FRAGILE_CHECK(padded >= span, "conv: kernel (", kernel, ", dilation ", dilation,
                ", spanning ", span, ") is larger than the padded input (", in, " + 2*", pad,
                " = ", padded, ")");
  return (padded - span) / stride + 1;
}

int64_t pool_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode) {
  FRAGILE_CHECK(in >= 0, "pool: negative input extent ", in);
  FRAGILE_CHECK(kernel >= 1, "pool: kernel size must be >= 1, got ", kernel);
  FRAGILE_CHECK(stride >= 1, "pool: stride must be >= 1, got ", stride);
  FRAGILE_CHECK(pad >= 0, "pool: padding must be >= 0, got ", pad);
  check_geometry_bound("pool", "kernel size", kernel);
  check_geometry_bound("pool", "stride", stride);
  check_geometry_bound("pool", "padding", pad);
  // PyTorch's rule; it guarantees every window overlaps the input, so a max-pool window is
  // never all padding and an average never divides an empty sum.
  FRAGILE_CHECK(pad <= kernel / 2, "pool: padding (", pad,
                ") must be at most half the kernel size (", kernel, ")");
  const int64_t padded = padded_extent("pool", in, pad);
  FRAGILE_CHECK(padded >= kernel, "pool: kernel (", kernel,
                ") is larger than the padded input (", in, " + 2*", pad, " = ", padded, ")");
  const int64_t reach = padded - kernel;  // the last window's latest start
  int64_t out = reach / stride + 1;
  // ceil_mode adds a window when the strides do not land on `reach` exactly; PyTorch drops it
  // when it would start in the right padding (the last window must start inside the input or
  // the left padding). Its start, out * stride, may pass 2^63: then it is past the input too.
  if (ceil_mode && reach % stride != 0) {
    int64_t start = 0;
    if (!__builtin_mul_overflow(out, stride, &start) && start < in + pad) ++out;
  }
  return out;
}

}  // namespace fragile
