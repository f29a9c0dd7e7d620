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
  FRAGILE_CHECK(in + 2 * pad >= span, "conv: kernel (", kernel, ", dilation ", dilation,
                ", spanning ", span, ") is larger than the padded input (", in, " + 2*", pad,
                " = ", in + 2 * pad, ")");
  return (in + 2 * pad - span) / stride + 1;
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
  FRAGILE_CHECK(in + 2 * pad >= kernel, "pool: kernel (", kernel,
                ") is larger than the padded input (", in, " + 2*", pad, " = ", in + 2 * pad,
                ")");
  int64_t out = (in + 2 * pad - kernel + (ceil_mode ? stride - 1 : 0)) / stride + 1;
  // ceil_mode may add a window that starts in the right padding; PyTorch drops it: the last
  // window must start inside the input or the left padding.
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

}  // namespace fragile
