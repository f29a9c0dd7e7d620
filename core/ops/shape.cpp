// Shape and layout ops. reshape/permute/slice/expand are views (no copy) whenever the layout
// allows; pad and concat write into fresh tensors.
#include <algorithm>
#include <numeric>

#include "core/op_attrs.h"
#include "core/ops/op_util.h"

namespace fragile {
using namespace detail;

namespace {
// Strides for viewing x as `shape` without copying, if x's layout allows (empty otherwise).
// Contiguous tensors always can; we only try that case and fall back to a copy otherwise.
bool can_view(const Tensor& x) { return x.is_contiguous(); }
}  // namespace

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor out = x.clone_data();
  return record(op_def("contiguous"), {x}, out);
}

Tensor reshape(const Tensor& x, Shape shape) {
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      FRAGILE_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      FRAGILE_CHECK(shape[i] >= 0, "reshape: negative extent in ", shape_str(shape));
      // Checked: a product wrapped past 2^63 could divide numel and infer a made-up extent.
      FRAGILE_CHECK(!__builtin_mul_overflow(known, shape[i], &known), "reshape: the extents of ",
                    shape_str(shape), " multiply past 2^63");
    }
  }
  if (infer >= 0) {
    FRAGILE_CHECK(known > 0 && x.numel() % known == 0, "reshape: cannot reshape ",
                  shape_str(x.shape()), " into ", shape_str(shape));
    shape[infer] = x.numel() / known;
  }
  FRAGILE_CHECK(numel_of(shape) == x.numel(), "reshape: cannot reshape ", shape_str(x.shape()),
                " (", x.numel(), " elements) into ", shape_str(shape));
  if (shape == x.shape()) return x;
  Tensor src = x;
  if (!can_view(src)) src = contiguous(x);  // recorded, so gradients still flow
  Tensor out = make_view(src, shape, contiguous_strides(shape), src.offset());
  return record(op_def("reshape"), {src}, out, ShapeAttrs{src.shape()});
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  start_dim = wrap_dim(start_dim, x.dim(), "flatten");
  end_dim = wrap_dim(end_dim, x.dim(), "flatten");
  FRAGILE_CHECK(start_dim <= end_dim, "flatten: start_dim after end_dim");
  Shape s(x.shape().begin(), x.shape().begin() + start_dim);
  // Checked: x may have no elements and extents whose product is past 2^63 (a permuted view of
  // [2^62, 0, 8], say); the product wrapped to 0 and the result had a wrong shape.
  int64_t m = 1;
  for (int64_t d = start_dim; d <= end_dim; ++d) {
    FRAGILE_CHECK(!__builtin_mul_overflow(m, x.shape()[d], &m), "flatten: dimensions ",
                  start_dim, " to ", end_dim, " of ", shape_str(x.shape()),
                  " multiply past 2^63");
  }
  s.push_back(m);
  s.insert(s.end(), x.shape().begin() + end_dim + 1, x.shape().end());
  return reshape(x, s);
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  FRAGILE_CHECK(static_cast<int64_t>(dims.size()) == x.dim(), "permute: ", dims.size(),
                " dims for a rank-", x.dim(), " tensor");
  std::vector<int64_t> d(dims.size());
  std::vector<bool> seen(dims.size(), false);
  Shape shape(dims.size()), strides(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    d[i] = wrap_dim(dims[i], x.dim(), "permute");
    FRAGILE_CHECK(!seen[d[i]], "permute: repeated dimension ", dims[i]);
    seen[d[i]] = true;
    shape[i] = x.shape()[d[i]];
    strides[i] = x.strides()[d[i]];
  }
  Tensor out = make_view(x, shape, strides, x.offset());
  return record(op_def("permute"), {x}, out, PermuteAttrs{d});
}

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  std::vector<int64_t> dims(x.dim());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[wrap_dim(d0, x.dim(), "transpose")], dims[wrap_dim(d1, x.dim(), "transpose")]);
  return permute(x, dims);
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  dim = wrap_dim(dim, x.dim() + 1, "unsqueeze");
  Shape s = x.shape();
  s.insert(s.begin() + dim, 1);
  return reshape(x, s);
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  dim = wrap_dim(dim, x.dim(), "squeeze");
  FRAGILE_CHECK(x.shape()[dim] == 1, "squeeze: dimension ", dim, " has extent ", x.shape()[dim]);
  Shape s = x.shape();
  s.erase(s.begin() + dim);
  return reshape(x, s);
}

namespace {
// Python slice semantics for start/end, step >= 1.
// Clamps start and end into [0, extent] (negative ones count from the end) and a step
// larger than the extent down to it (the same elements: only `start`), so that the extent
// and stride arithmetic of a slice cannot overflow whatever a model file says.
void resolve_slice(int64_t extent, int64_t& start, int64_t& end, int64_t& step) {
  FRAGILE_CHECK(step >= 1, "slice: step must be >= 1, got ", step);
  if (start < 0) start += extent;
  if (end < 0) end += extent;
  start = std::clamp<int64_t>(start, 0, extent);
  end = std::clamp<int64_t>(end, start, extent);
  step = std::min(step, std::max<int64_t>(extent, 1));
}

int64_t slice_extent(int64_t start, int64_t end, int64_t step) {
  return end == start ? 0 : (end - start - 1) / step + 1;
}
}  // namespace

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  dim = wrap_dim(dim, x.dim(), "slice");
  resolve_slice(x.shape()[dim], start, end, step);
  Shape shape = x.shape(), strides = x.strides();
  shape[dim] = slice_extent(start, end, step);
  strides[dim] *= step;
  Tensor out = make_view(x, shape, strides, x.offset() + start * x.strides()[dim]);
  return record(op_def("slice"), {x}, out, SliceAttrs{x.shape(), dim, start, end, step});
}

Tensor slice_backward(const Tensor& grad, const Shape& input_shape, int64_t dim, int64_t start,
                      int64_t end, int64_t step) {
  dim = wrap_dim(dim, static_cast<int64_t>(input_shape.size()), "slice_backward");
  resolve_slice(input_shape[dim], start, end, step);
  Tensor out = Tensor::zeros(input_shape, grad.dtype(), grad.device());
  Shape shape = input_shape, strides = out.strides();
  shape[dim] = slice_extent(start, end, step);
  FRAGILE_CHECK(shape == grad.shape(), "slice_backward: grad ", shape_str(grad.shape()),
                " does not match the slice ", shape_str(shape));
  strides[dim] *= step;
  Tensor window = make_view(out, shape, strides, start * out.strides()[dim]);
  backend_for(grad.device()).copy(grad, window);
  return record(op_def("slice_backward"), {grad}, out,
                SliceAttrs{input_shape, dim, start, end, step});
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& before, const std::vector<int64_t>& after,
           double value) {
  check_float(x, "pad");
  FRAGILE_CHECK(static_cast<int64_t>(before.size()) == x.dim() &&
                    static_cast<int64_t>(after.size()) == x.dim(),
                "pad: need ", x.dim(), " before/after amounts, got ", before.size(), "/",
                after.size());
  Shape shape = x.shape();
  int64_t offset = 0;
  for (int64_t d = 0; d < x.dim(); ++d) {
    FRAGILE_CHECK(before[d] >= 0 && after[d] >= 0, "pad: negative padding on dim ", d);
    FRAGILE_CHECK(!__builtin_add_overflow(shape[d], before[d], &shape[d]) &&
                      !__builtin_add_overflow(shape[d], after[d], &shape[d]),
                  "pad: padding ", before[d], " + ", after[d], " on dim ", d, " is too large");
  }
  Tensor out = Tensor::full(shape, value, x.dtype(), x.device());
  for (int64_t d = 0; d < x.dim(); ++d) offset += before[d] * out.strides()[d];
  Tensor window = make_view(out, x.shape(), out.strides(), offset);
  backend_for(x.device()).copy(x, window);
  return record(op_def("pad"), {x}, out, PadAttrs{before, after});
}

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  FRAGILE_CHECK(!xs.empty(), "concat: no tensors");
  const Tensor& first = xs[0];
  dim = wrap_dim(dim, first.dim(), "concat");
  Shape shape = first.shape();
  shape[dim] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    check_same(first, xs[i], "concat");
    FRAGILE_CHECK(xs[i].dim() == first.dim(), "concat: tensor ", i, " has rank ", xs[i].dim(),
                  ", expected ", first.dim());
    for (int64_t d = 0; d < first.dim(); ++d)
      FRAGILE_CHECK(d == dim || xs[i].shape()[d] == first.shape()[d], "concat: tensor ", i,
                    " has shape ", shape_str(xs[i].shape()), ", incompatible with ",
                    shape_str(first.shape()), " along dim ", d);
    // Checked: tensors without elements can have extents near 2^63 along `dim`, and a wrapped
    // sum gave a wrong (even positive) extent.
    FRAGILE_CHECK(!__builtin_add_overflow(shape[dim], xs[i].shape()[dim], &shape[dim]),
                  "concat: the extents along dim ", dim, " add up past 2^63 at tensor ", i,
                  " (shape ", shape_str(xs[i].shape()), ")");
  }
  Tensor out = Tensor::empty(shape, first.dtype(), first.device());
  int64_t at = 0;
  for (const Tensor& x : xs) {
    Tensor window = make_view(out, x.shape(), out.strides(), at * out.strides()[dim]);
    backend_for(x.device()).copy(x, window);
    at += x.shape()[dim];
  }
  return record(op_def("concat"), xs, out, ConcatAttrs{dim});
}

Tensor expand(const Tensor& x, const Shape& shape) {
  Tensor out = broadcast_view(x, shape);
  if (out.same(x)) return x;
  return record(op_def("expand"), {x}, out, ShapeAttrs{x.shape()});
}

Tensor to_dtype(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  check_float(x, "to_dtype");
  FRAGILE_CHECK(is_floating(dtype), "to_dtype: only float targets are differentiable");
  Tensor out = x.to(dtype);
  return record(op_def("to_dtype"), {x}, out, DTypeAttrs{x.dtype()});
}

}  // namespace fragile
